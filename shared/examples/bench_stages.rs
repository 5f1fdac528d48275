//! In-memory stage timings for tuning: `bench_stages FILE [RUNS]` prints the best time of split only,
//! split + validate (null sink) and split + validate + CSV outputs, each over 1 MiB chunks.

use std::time::{Duration, Instant};

use shared::email::is_valid_email;
use shared::output::{CsvOutputs, RowSink};
use shared::process::CHUNK_BYTES;
use shared::record::RecordSplitter;
use shared::row::{CleanRow, RejectedRow};
use shared::{Processor, Timestamp};

struct Null(u64);

impl RowSink for Null {
    fn clean(&mut self, row: &CleanRow<'_>) {
        self.0 += row.line;
    }
    fn rejected(&mut self, row: &RejectedRow<'_>) {
        self.0 += row.line;
    }
}

fn best(runs: usize, mut f: impl FnMut() -> u64) -> (Duration, u64) {
    if runs == 0 {
        return (Duration::ZERO, 0);
    }
    let mut best = Duration::MAX;
    let mut check = 0;
    for _ in 0..runs {
        let t = Instant::now();
        check = std::hint::black_box(f());
        best = best.min(t.elapsed());
    }
    (best, check)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: bench_stages FILE [RUNS]");
        std::process::exit(2);
    };
    let runs = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(7);
    // Optional third argument: run only the stages whose name contains it.
    let only = args.get(2).cloned().unwrap_or_default();
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("error: {path}: {e}");
            std::process::exit(1);
        }
    };
    let mb = data.len() as f64 / 1e6;
    let wanted = |name: &str| name.contains(only.as_str());
    let report = |name: &str, (t, check): (Duration, u64)| {
        if t.is_zero() {
            return;
        }
        println!(
            "{name:<28} {:>8.1} ms {:>7.0} MB/s  (check {check})",
            t.as_secs_f64() * 1e3,
            mb / t.as_secs_f64()
        );
    };

    report(
        "split",
        best(if wanted("split") { runs } else { 0 }, || {
            let mut s = RecordSplitter::new();
            let mut n = 0u64;
            for chunk in data.chunks(CHUNK_BYTES) {
                s.feed(chunk, |r| n += r.fields.len() as u64);
            }
            s.finish(|r| n += r.fields.len() as u64);
            n
        }),
    );
    report(
        "split+utf8",
        best(if wanted("split+utf8") { runs } else { 0 }, || {
            let mut s = RecordSplitter::new();
            let mut n = 0u64;
            for chunk in data.chunks(CHUNK_BYTES) {
                s.feed(chunk, |r| n += u64::from(r.fields.to_str().is_some()));
            }
            s.finish(|r| n += u64::from(r.fields.to_str().is_some()));
            n
        }),
    );
    report(
        "split+utf8+ts",
        best(if wanted("split+utf8+ts") { runs } else { 0 }, || {
            let mut s = RecordSplitter::new();
            let mut n = 0u64;
            for chunk in data.chunks(CHUNK_BYTES) {
                s.feed(chunk, |r| {
                    if let Some(t) = r.fields.to_str() {
                        for i in [3, 4] {
                            let v = t.get(i).unwrap_or("");
                            n += u64::from(Timestamp::parse(v.as_bytes()).is_some());
                        }
                    }
                });
            }
            n
        }),
    );
    report(
        "split+utf8+email",
        best(if wanted("split+utf8+email") { runs } else { 0 }, || {
            let mut s = RecordSplitter::new();
            let mut n = 0u64;
            for chunk in data.chunks(CHUNK_BYTES) {
                s.feed(chunk, |r| {
                    if let Some(t) = r.fields.to_str() {
                        let v = t.get(2).unwrap_or("");
                        n += u64::from(is_valid_email(v.as_bytes()));
                    }
                });
            }
            n
        }),
    );
    // Isolated: the values alone, packed in one buffer.
    let mut emails: Vec<(usize, usize)> = Vec::new();
    let mut stamps: Vec<(usize, usize)> = Vec::new();
    let mut packed: Vec<u8> = Vec::new();
    {
        let mut s = RecordSplitter::new();
        s.feed(&data, |r| {
            if let Some(t) = r.fields.to_str() {
                for i in [2, 3, 4] {
                    let x = t.get(i).unwrap_or("").as_bytes();
                    let v = if i == 2 { &mut emails } else { &mut stamps };
                    v.push((packed.len(), packed.len() + x.len()));
                    packed.extend_from_slice(x);
                }
            }
        });
    }
    report(
        "isolated email",
        best(if wanted("isolated email") { runs } else { 0 }, || {
            emails
                .iter()
                .map(|&(a, b)| u64::from(is_valid_email(&packed[a..b])))
                .sum()
        }),
    );
    report(
        "isolated timestamps",
        best(
            if wanted("isolated timestamps") {
                runs
            } else {
                0
            },
            || {
                stamps
                    .iter()
                    .map(|&(a, b)| u64::from(Timestamp::parse(&packed[a..b]).is_some()))
                    .sum()
            },
        ),
    );
    report(
        "split+validate",
        best(if wanted("split+validate") { runs } else { 0 }, || {
            let mut p = Processor::new();
            let mut sink = Null(0);
            for chunk in data.chunks(CHUNK_BYTES) {
                p.feed(chunk, &mut sink);
            }
            p.finish(&mut sink).clean
        }),
    );
    report(
        "split+validate+csv",
        best(
            if wanted("split+validate+csv") {
                runs
            } else {
                0
            },
            || {
                let mut p = Processor::new();
                let mut out = CsvOutputs::new();
                let mut bytes = 0u64;
                for chunk in data.chunks(CHUNK_BYTES) {
                    p.feed(chunk, &mut out);
                    bytes += (out.clean.len() + out.rejected.len()) as u64;
                    out.clean.clear();
                    out.rejected.clear();
                }
                p.finish(&mut out);
                bytes + (out.clean.len() + out.rejected.len()) as u64
            },
        ),
    );
}
