//! Order-preserving parallel processing of a whole input: `Processor`'s outputs and summary, byte for byte, from worker threads.
//!
//! The input is read in segments of about 1 MiB, each cut just after its last line terminator
//! (the bytes after it start the next segment). Segments go to workers in turn; a worker
//! processes its segment as if it started between records, from a line number the reading
//! thread counted (line numbers are physical, so counting needs no parsing). That guess is
//! wrong only when the cut fell inside a record (a quoted line break, or a record longer than a
//! segment), and then the worker's processor ends the segment inside a record. Its state is
//! nevertheless exact (its segment did start between records), so the reading thread takes it
//! over, re-feeds the segments handed out after it sequentially (their results are dropped),
//! and hands segments out again once the input is between records at a segment end.
//!
//! Memory stays bounded: at most `workers + 1` segments (with their outputs) are in flight.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::mpsc;

use crate::output::{
    CLEAN_HEADER, REJECTED_HEADER, RowSink, write_clean, write_line, write_rejected,
};
use crate::process::{CHUNK_BYTES, Header, Processor, Summary};
use crate::record::{MAX_RECORD_BYTES, count_line_breaks};
use crate::row::{CleanRow, RejectedRow};

/// Which output a piece of bytes belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Clean,
    Rejected,
}

/// Settings of a parallel run.
#[derive(Clone, Debug)]
pub struct Parallel {
    /// Worker threads (at least 1; the calling thread reads, counts lines and writes).
    pub workers: usize,
    /// Bytes read per segment.
    pub segment_bytes: usize,
    /// As `Processor::with_max_record_bytes`.
    pub max_record_bytes: usize,
}

impl Default for Parallel {
    /// One worker per available core, 1 MiB segments, the standard record limit.
    fn default() -> Parallel {
        Parallel {
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            segment_bytes: CHUNK_BYTES,
            max_record_bytes: MAX_RECORD_BYTES,
        }
    }
}

/// Output rows without headers: the driver writes each header once, before the first row.
#[derive(Debug, Default)]
struct Rows {
    clean: Vec<u8>,
    rejected: Vec<u8>,
}

impl RowSink for Rows {
    fn clean(&mut self, row: &CleanRow<'_>) {
        write_clean(&mut self.clean, row);
    }
    fn clean_verbatim(&mut self, _row: &CleanRow<'_>, line: &str) {
        write_line(&mut self.clean, line);
    }
    fn rejected(&mut self, row: &RejectedRow<'_>) {
        write_rejected(&mut self.rejected, row);
    }
}

struct Job {
    seq: u64,
    bytes: Vec<u8>,
    header: Header,
    line: u64,
    prev_cr: bool,
    rows: Rows,
}

struct Done {
    seq: u64,
    bytes: Vec<u8>,
    rows: Rows,
    summary: Summary,
    /// The processor, when the segment ended inside a record.
    rest: Option<Processor>,
    /// The worker panicked on this segment.
    panicked: bool,
}

fn run_job(job: Job, max_record_bytes: usize) -> Done {
    let Job {
        seq,
        bytes,
        header,
        line,
        prev_cr,
        mut rows,
    } = job;
    rows.clean.clear();
    rows.rejected.clear();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut p = Processor::resume(header, line, prev_cr, max_record_bytes);
        p.feed(&bytes, &mut rows);
        let summary = p.summary().clone();
        let rest = p.boundary().is_none().then_some(p);
        (summary, rest)
    }));
    match outcome {
        Ok((summary, rest)) => Done {
            seq,
            bytes,
            rows,
            summary,
            rest,
            panicked: false,
        },
        Err(_) => Done {
            seq,
            bytes,
            rows: Rows::default(),
            summary: Summary::default(),
            rest: None,
            panicked: true,
        },
    }
}

/// Adds the counts of `part` to `total`.
fn absorb(total: &mut Summary, part: &Summary) {
    total.records += part.records;
    total.clean += part.clean;
    total.rejected += part.rejected;
    for (reason, n) in part.reasons.iter() {
        total.reasons.add_n(reason, n);
    }
    if part.header_problem.is_some() {
        total.header_problem.clone_from(&part.header_problem);
    }
}

/// Writes output bytes in order, each header once before its first row.
struct Emitter<W> {
    write: W,
    clean_started: bool,
    rejected_started: bool,
}

impl<W: FnMut(Output, &[u8]) -> io::Result<()>> Emitter<W> {
    fn emit(&mut self, rows: &mut Rows) -> io::Result<()> {
        for (output, bytes) in [
            (Output::Clean, &mut rows.clean),
            (Output::Rejected, &mut rows.rejected),
        ] {
            if bytes.is_empty() {
                continue;
            }
            let (started, header) = match output {
                Output::Clean => (&mut self.clean_started, CLEAN_HEADER),
                Output::Rejected => (&mut self.rejected_started, REJECTED_HEADER),
            };
            if !*started {
                *started = true;
                let mut line = header.as_bytes().to_vec();
                line.push(b'\n');
                (self.write)(output, &line)?;
            }
            (self.write)(output, bytes)?;
            bytes.clear();
        }
        Ok(())
    }
}

enum Mode {
    /// The calling thread processes the input itself (at the start, and after a segment ended
    /// inside a record).
    Sequential(Box<Processor>),
    /// Segments go to workers; the next one starts between records at `line`.
    Parallel {
        header: Header,
        line: u64,
        prev_cr: bool,
    },
}

struct Driver<'a, R, W> {
    settings: &'a Parallel,
    input: R,
    emitter: Emitter<W>,
    jobs: Vec<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    mode: Mode,
    total: Summary,
    /// Next segment number to hand out, and to commit.
    next_seq: u64,
    next_commit: u64,
    /// Results that arrived before their turn.
    waiting: BTreeMap<u64, Done>,
    /// Buffers to reuse.
    spare_bytes: Vec<Vec<u8>>,
    spare_rows: Vec<Rows>,
    /// Output of the calling thread's own processing.
    own_rows: Rows,
}

impl Parallel {
    /// Processes all of `input`, handing the clean and rejected output bytes to `write` in
    /// order (headers included, as `CsvOutputs` writes them), and returns the summary: the
    /// same bytes and counts as one `Processor` over the whole input.
    pub fn run<R, W>(&self, input: R, write: W) -> io::Result<Summary>
    where
        R: Read,
        W: FnMut(Output, &[u8]) -> io::Result<()>,
    {
        let workers = self.workers.max(1);
        std::thread::scope(|scope| {
            let (done_tx, done_rx) = mpsc::channel::<Done>();
            let mut jobs = Vec::with_capacity(workers);
            for _ in 0..workers {
                let (job_tx, job_rx) = mpsc::channel::<Job>();
                let done_tx = done_tx.clone();
                let max = self.max_record_bytes;
                scope.spawn(move || {
                    for job in job_rx {
                        if done_tx.send(run_job(job, max)).is_err() {
                            break;
                        }
                    }
                });
                jobs.push(job_tx);
            }
            drop(done_tx);
            let driver = Driver {
                settings: self,
                input,
                emitter: Emitter {
                    write,
                    clean_started: false,
                    rejected_started: false,
                },
                jobs,
                done: done_rx,
                mode: Mode::Sequential(Box::new(Processor::with_max_record_bytes(
                    self.max_record_bytes,
                ))),
                total: Summary::default(),
                next_seq: 0,
                next_commit: 0,
                waiting: BTreeMap::new(),
                spare_bytes: Vec::new(),
                spare_rows: Vec::new(),
                own_rows: Rows::default(),
            };
            // Dropping the driver (job senders, result receiver) lets the workers end.
            driver.run()
        })
    }
}

impl<R: Read, W: FnMut(Output, &[u8]) -> io::Result<()>> Driver<'_, R, W> {
    fn run(mut self) -> io::Result<Summary> {
        let segment = self.settings.segment_bytes.max(1);
        let mut tail: Vec<u8> = Vec::new();
        loop {
            // Read a segment: the previous tail, then up to `segment` new bytes.
            let mut bytes = self.spare_bytes.pop().unwrap_or_default();
            bytes.clear();
            bytes.extend_from_slice(&tail);
            let before = bytes.len();
            (&mut self.input)
                .take(segment as u64)
                .read_to_end(&mut bytes)?;
            let eof = bytes.len() - before < segment;
            // Cut after the last line terminator (all of it at the end of the input).
            let cut = if eof {
                bytes.len()
            } else {
                memchr::memrchr2(b'\n', b'\r', &bytes).map_or(bytes.len(), |i| i + 1)
            };
            tail.clear();
            tail.extend_from_slice(&bytes[cut..]);
            bytes.truncate(cut);

            self.process(bytes, eof)?;
            if eof {
                break;
            }
        }
        self.commit_all()?;
        if let Mode::Sequential(p) = std::mem::replace(
            &mut self.mode,
            Mode::Sequential(Box::new(Processor::with_max_record_bytes(0))),
        ) {
            let summary = p.finish(&mut self.own_rows);
            self.emitter.emit(&mut self.own_rows)?;
            absorb(&mut self.total, &summary);
        }
        Ok(self.total)
    }

    /// Processes one segment: hands it out, or processes it here when sequential.
    fn process(&mut self, bytes: Vec<u8>, eof: bool) -> io::Result<()> {
        if matches!(self.mode, Mode::Parallel { .. }) {
            while self.next_seq - self.next_commit > self.jobs.len() as u64 {
                self.commit_next()?;
            }
        }
        if let Mode::Parallel {
            header,
            line,
            prev_cr,
        } = &mut self.mode
        {
            let start_line = *line;
            let start_cr = *prev_cr;
            *line += count_line_breaks(&bytes, *prev_cr);
            if let Some(&last) = bytes.last() {
                *prev_cr = last == b'\r';
            }
            let job = Job {
                seq: self.next_seq,
                bytes,
                header: header.clone(),
                line: start_line,
                prev_cr: start_cr,
                rows: self.spare_rows.pop().unwrap_or_default(),
            };
            let worker = (self.next_seq % self.jobs.len() as u64) as usize;
            self.next_seq += 1;
            return self.jobs[worker]
                .send(job)
                .map_err(|_| io::Error::other("a processing thread stopped"));
        }
        // Sequential: earlier segments first.
        self.commit_all()?;
        self.feed_here(&bytes)?;
        self.spare_bytes.push(bytes);
        if !eof {
            self.maybe_go_parallel();
        }
        Ok(())
    }

    /// Feeds bytes to the calling thread's processor.
    fn feed_here(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Mode::Sequential(p) = &mut self.mode {
            p.feed(bytes, &mut self.own_rows);
        }
        self.emitter.emit(&mut self.own_rows)
    }

    /// Hands segments out again once the input is between records with the header settled.
    fn maybe_go_parallel(&mut self) {
        let Mode::Sequential(p) = &self.mode else {
            return;
        };
        if let Some((header, line, prev_cr)) = p.boundary() {
            absorb(&mut self.total, p.summary());
            self.mode = Mode::Parallel {
                header,
                line,
                prev_cr,
            };
        }
    }

    fn commit_all(&mut self) -> io::Result<()> {
        while self.next_commit < self.next_seq {
            self.commit_next()?;
        }
        Ok(())
    }

    /// Waits for the next segment in order and commits it.
    fn commit_next(&mut self) -> io::Result<()> {
        let done = loop {
            if let Some(done) = self.waiting.remove(&self.next_commit) {
                break done;
            }
            let done = self
                .done
                .recv()
                .map_err(|_| io::Error::other("the processing threads stopped"))?;
            self.waiting.insert(done.seq, done);
        };
        self.next_commit += 1;
        if done.panicked {
            return Err(io::Error::other("a processing thread panicked"));
        }
        let Done {
            bytes,
            mut rows,
            summary,
            rest,
            ..
        } = done;
        match (&self.mode, rest) {
            (Mode::Parallel { .. }, None) => {
                self.emitter.emit(&mut rows)?;
                absorb(&mut self.total, &summary);
            }
            (Mode::Parallel { .. }, Some(p)) => {
                // The segment ended inside a record: its rows are right, and its processor
                // carries on here (its counts are taken when it is done).
                self.emitter.emit(&mut rows)?;
                self.mode = Mode::Sequential(Box::new(p));
            }
            (Mode::Sequential(_), _) => {
                // Handed out after a segment that ended inside a record: redo it here.
                self.feed_here(&bytes)?;
            }
        }
        self.spare_rows.push(rows);
        self.spare_bytes.push(bytes);
        Ok(())
    }
}
