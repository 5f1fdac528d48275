//! Property tests: whole generated files through the processor (CSV and Parquet outputs), and
//! the email and timestamp rules against plain reference implementations written from the SPEC
//! text.

use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;
use shared::email::is_valid_email;
use shared::output::{CsvOutputs, RowSink, parse_clean_csv, parse_rejected_csv};
use shared::parallel::{Output, Parallel};
use shared::parquet::{ParquetOutputs, RowGroupLimits};
use shared::reason::ReasonCounts;
use shared::row::{CleanRow, RejectedRow};
use shared::{Processor, Summary, Timestamp};

/// XorShift: the default ChaCha generator dominates the run time of unoptimized test builds.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Generated files

/// Values for a column: mostly valid, with every kind of trouble now and then.
fn value_for(column: &str) -> BoxedStrategy<Vec<u8>> {
    let pick = |items: Vec<(u32, &'static [u8])>| {
        prop::strategy::Union::new_weighted(
            items
                .into_iter()
                .map(|(w, v)| (w, Just(v.to_vec()).boxed()))
                .collect(),
        )
        .boxed()
    };
    match column.trim().to_lowercase().as_str() {
        "id" => pick(vec![
            (8, b"1"),
            (2, b"42"),
            (1, b""),
            (1, b"  "),
            (1, b" 7 "),
            (1, b"\xff"),
        ]),
        "name" => pick(vec![
            (8, b"Ann"),
            (1, b"Doe, Jane"),
            (1, b"say \"hi\""),
            (1, b"two\r\nlines"),
            (1, " \u{a0}Zo\u{eb} ".as_bytes()),
            (1, b"\tTab\t"),
            (1, b""),
            (1, b"bad\xffbyte"),
        ]),
        "email" => pick(vec![
            (8, b"ann@x.io"),
            (1, b" ANN@X.IO "),
            (1, "\u{212a}@x.io".as_bytes()),
            (1, b"a..b@x.io"),
            (1, b"a@b"),
            (1, b""),
        ]),
        "create_ts" | "update_ts" => pick(vec![
            (5, b"2025-01-01T00:00:00"),
            (3, b"2025-01-02 00:00:00Z"),
            (1, b"2025-01-01T02:00:00+02:00"),
            (1, b" 2025-01-01T00:00:00.5 "),
            (1, b"2025-02-30T00:00:00"),
            (1, b"2025-01-01"),
        ]),
        _ => pick(vec![
            (3, b"x"),
            (1, b""),
            (1, b"a,b"),
            (1, b"\""),
            (1, b"caf\xe9"),
        ]),
    }
}

#[derive(Debug, Clone)]
struct File {
    bytes: Vec<u8>,
    cuts: Vec<usize>,
}

fn file() -> impl Strategy<Value = File> {
    let header = prop_oneof![
        6 => Just(vec!["id", "name", "email", "create_ts", "update_ts"]),
        2 => Just(vec![" Update_TS", "email", "extra", "ID", "name", "create_ts", "extra"]),
        1 => Just(vec!["id", "name", "create_ts", "update_ts"]),
        1 => Just(vec!["id", "name", "email", "create_ts", "update_ts", "Id"]),
    ];
    header
        .prop_flat_map(|header| {
            let values: Vec<BoxedStrategy<Vec<u8>>> = header.iter().map(|c| value_for(c)).collect();
            let rows = prop::collection::vec(
                (
                    values,
                    any::<bool>(), // quote every field
                    0u8..6,        // line end before the row: 0 `\r\n`, 1 `\r`, else `\n`
                    0u8..10,       // 0: a blank line before the row
                    0u8..20,       // 0: a field too few, 1: a field too many
                ),
                0..25,
            );
            (
                Just(header),
                rows,
                any::<bool>(),
                any::<bool>(),
                prop::collection::vec(0usize..2000, 0..10),
            )
        })
        .prop_map(|(header, rows, bom, trailing_newline, cuts)| {
            let mut bytes = Vec::new();
            if bom {
                bytes.extend_from_slice(b"\xef\xbb\xbf");
            }
            bytes.extend_from_slice(header.join(",").as_bytes());
            for (mut values, quote_all, end, blank, width) in rows {
                match width {
                    0 => {
                        values.pop();
                    }
                    1 => values.push(b"more".to_vec()),
                    _ => {}
                }
                let end: &[u8] = match end {
                    0 => b"\r\n",
                    1 => b"\r",
                    _ => b"\n",
                };
                bytes.extend_from_slice(end);
                if blank == 0 {
                    bytes.extend_from_slice(end);
                }
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        bytes.push(b',');
                    }
                    let special = v.iter().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
                    if quote_all || special {
                        bytes.push(b'"');
                        for &b in v {
                            if b == b'"' {
                                bytes.push(b'"');
                            }
                            bytes.push(b);
                        }
                        bytes.push(b'"');
                    } else {
                        bytes.extend_from_slice(v);
                    }
                }
            }
            if trailing_newline {
                bytes.push(b'\n');
            }
            let mut cuts = cuts;
            cuts.sort_unstable();
            File { bytes, cuts }
        })
}

/// Processes `bytes` fed in pieces cut at `cuts`; returns the summary and both outputs.
fn process(bytes: &[u8], cuts: &[usize]) -> (Summary, Vec<u8>, Vec<u8>) {
    let mut p = Processor::new();
    let mut out = CsvOutputs::new();
    let (mut clean, mut rejected) = (Vec::new(), Vec::new());
    let mut prev = 0;
    for &cut in cuts.iter().chain([&bytes.len()]) {
        let cut = cut.clamp(prev, bytes.len());
        p.feed(&bytes[prev..cut], &mut out);
        clean.append(&mut out.clean);
        rejected.append(&mut out.rejected);
        prev = cut;
    }
    let summary = p.finish(&mut out);
    clean.append(&mut out.clean);
    rejected.append(&mut out.rejected);
    (summary, clean, rejected)
}

/// What a file should give, computed independently: the `csv` crate for parsing, `str`
/// methods and the reference rules below. Clean rows as cleaned values; rejected rows as
/// (reasons, original values).
#[derive(Debug, Default, PartialEq)]
struct Expected {
    clean: Vec<[String; 5]>,
    rejected: Vec<(String, [String; 5])>,
}

fn reference_pipeline(bytes: &[u8]) -> Expected {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let records: Vec<csv::ByteRecord> = reader.byte_records().filter_map(Result::ok).collect();
    let mut expected = Expected::default();
    let Some((header, data)) = records.split_first() else {
        return expected;
    };
    let names: Vec<Option<String>> = header
        .iter()
        .map(|f| std::str::from_utf8(f).ok().map(|n| n.trim().to_lowercase()))
        .collect();
    let required = ["id", "name", "email", "create_ts", "update_ts"];
    let positions: Vec<Vec<usize>> = required
        .iter()
        .map(|r| {
            (0..names.len())
                .filter(|&i| names[i].as_deref() == Some(*r))
                .collect()
        })
        .collect();
    let header_ok = names.iter().all(Option::is_some) && positions.iter().all(|p| p.len() == 1);
    let lossy = |f: Option<&[u8]>| String::from_utf8_lossy(f.unwrap_or(b"")).into_owned();
    for record in data {
        let original: [String; 5] = std::array::from_fn(|c| match positions[c][..] {
            [i] => lossy(record.get(i)),
            _ => String::new(),
        });
        let mut reasons = Vec::new();
        if !header_ok {
            reasons.push("invalid_header");
        } else if record.len() != header.len() {
            reasons.push("malformed_row");
        } else if record.iter().any(|f| std::str::from_utf8(f).is_err()) {
            reasons.push("invalid_utf8");
        } else {
            let v: [String; 5] = std::array::from_fn(|c| {
                String::from_utf8_lossy(record.get(positions[c][0]).unwrap_or(b""))
                    .trim()
                    .to_string()
            });
            let email = v[2].to_lowercase();
            let created = reference_timestamp(v[3].as_bytes());
            let updated = reference_timestamp(v[4].as_bytes());
            if v[0].is_empty() {
                reasons.push("missing_id");
            }
            if v[1].is_empty() {
                reasons.push("missing_name");
            }
            if !reference_email(email.as_bytes()) {
                reasons.push("invalid_email");
            }
            if created.is_none() {
                reasons.push("invalid_create_ts");
            }
            if updated.is_none() {
                reasons.push("invalid_update_ts");
            }
            if let (Some(c), Some(u)) = (created, updated)
                && u < c
            {
                reasons.push("update_before_create");
            }
            if reasons.is_empty() {
                let [id, name, _, create_ts, update_ts] = v;
                expected.clean.push([id, name, email, create_ts, update_ts]);
                continue;
            }
        }
        expected.rejected.push((reasons.join(";"), original));
    }
    expected
}

/// The parallel driver's outputs and summary.
fn process_parallel(
    bytes: &[u8],
    workers: usize,
    segment: usize,
    max: usize,
) -> (Summary, Vec<u8>, Vec<u8>) {
    let (mut clean, mut rejected) = (Vec::new(), Vec::new());
    let settings = Parallel {
        workers,
        segment_bytes: segment,
        max_record_bytes: max,
    };
    let summary = settings
        .run(bytes, |output, piece| {
            match output {
                Output::Clean => clean.extend_from_slice(piece),
                Output::Rejected => rejected.extend_from_slice(piece),
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("reading a slice cannot fail: {e}"));
    (summary, clean, rejected)
}

fn process_max(bytes: &[u8], max: usize) -> (Summary, Vec<u8>, Vec<u8>) {
    let mut p = Processor::with_max_record_bytes(max);
    let mut out = CsvOutputs::new();
    p.feed(bytes, &mut out);
    let summary = p.finish(&mut out);
    (summary, out.clean, out.rejected)
}

/// `CsvOutputs` without its `clean_verbatim` shortcut (the trait's default calls `clean`).
struct NoShortcut(CsvOutputs);

impl RowSink for NoShortcut {
    fn clean(&mut self, row: &CleanRow<'_>) {
        self.0.clean(row);
    }
    fn rejected(&mut self, row: &RejectedRow<'_>) {
        self.0.rejected(row);
    }
}

fn process_without_shortcut(bytes: &[u8]) -> (Summary, Vec<u8>, Vec<u8>) {
    let mut p = Processor::new();
    let mut sink = NoShortcut(CsvOutputs::new());
    p.feed(bytes, &mut sink);
    let summary = p.finish(&mut sink);
    (summary, sink.0.clean, sink.0.rejected)
}

/// Data records per the `csv` crate: every record after the first.
fn csv_data_records(bytes: &[u8]) -> u64 {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let n = reader.byte_records().count() as u64;
    n.saturating_sub(1)
}

proptest! {
    #![proptest_config(config(600))]

    #[test]
    fn generated_files_keep_the_guarantees(f in file()) {
        let (summary, clean, rejected) = process(&f.bytes, &f.cuts);

        // The same verdicts, values and reasons as the independent reference.
        let expected = reference_pipeline(&f.bytes);
        let got = Expected {
            clean: parse_clean_csv(&clean)
                .unwrap_or_default()
                .into_iter()
                .map(|r| [r.id, r.name, r.email, r.create_ts, r.update_ts])
                .collect(),
            rejected: parse_rejected_csv(&rejected)
                .unwrap_or_default()
                .into_iter()
                .map(|r| (r.reasons.to_string(), r.original))
                .collect(),
        };
        prop_assert_eq!(&got, &expected);

        // Nothing lost: every data record is in exactly one output.
        prop_assert_eq!(summary.records, csv_data_records(&f.bytes));
        prop_assert_eq!(summary.records, summary.clean + summary.rejected);

        // Copying verbatim records writes exactly what `clean` writes.
        prop_assert_eq!(&process_without_shortcut(&f.bytes), &(summary.clone(), clean.clone(), rejected.clone()));

        // Chunking never matters.
        prop_assert_eq!(&process(&f.bytes, &[]), &(summary.clone(), clean.clone(), rejected.clone()));

        // Every clean output row re-validates as clean, and the clean output is a fixed point.
        let clean_rows = parse_clean_csv(&clean);
        prop_assert!(clean_rows.is_ok(), "clean output does not re-validate: {:?}", clean_rows);
        prop_assert_eq!(clean_rows.map(|r| r.len() as u64).unwrap_or(0), summary.clean);
        let (again, clean_again, rejected_again) = process(&clean, &[]);
        prop_assert_eq!(again.clean, summary.clean);
        prop_assert_eq!(&clean_again, &clean);
        prop_assert!(rejected_again.is_empty());

        // The rejected output parses back with the same rows and reason counts.
        let rows = parse_rejected_csv(&rejected);
        prop_assert!(rows.is_ok(), "rejected output does not parse: {:?}", rows);
        let rows = rows.unwrap_or_default();
        prop_assert_eq!(rows.len() as u64, summary.rejected);
        let mut counts = ReasonCounts::new();
        for row in &rows {
            prop_assert!(!row.reasons.is_empty());
            counts.add(row.reasons);
        }
        prop_assert_eq!(&counts, &summary.reasons);
        prop_assert!(rows.windows(2).all(|w| w[0].line < w[1].line), "lines increase");
        if summary.header_problem.is_some() {
            prop_assert_eq!(summary.clean, 0);
        }
    }
}

/// The Parquet files of `bytes` fed in pieces cut at `cuts`, with row groups of at most 3 rows,
/// and the CSV outputs: (parquet clean, parquet rejected, csv clean, csv rejected).
fn process_parquet(bytes: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let limits = RowGroupLimits {
        rows: 3,
        bytes: 200,
    };
    let mut p = Processor::new();
    let mut csv = CsvOutputs::new();
    let mut pq = ParquetOutputs::with_limits(limits).unwrap_or_else(|e| panic!("{e}"));
    let (mut clean, mut rejected) = (Vec::new(), Vec::new());
    let mut prev = 0;
    for &cut in cuts.iter().chain([&bytes.len()]) {
        let cut = cut.clamp(prev, bytes.len());
        p.feed(&bytes[prev..cut], &mut (&mut csv, &mut pq));
        clean.append(pq.clean.buffer());
        rejected.append(pq.rejected.buffer());
        prev = cut;
    }
    p.finish(&mut (&mut csv, &mut pq));
    let (c, r) = pq.finish().unwrap_or_else(|e| panic!("{e}"));
    clean.extend_from_slice(&c);
    rejected.extend_from_slice(&r);
    (clean, rejected, csv.clean, csv.rejected)
}

/// Every row of a Parquet file, each value as text (timestamps as microseconds).
fn parquet_rows(file: &[u8]) -> Vec<Vec<String>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let reader = SerializedFileReader::new(bytes::Bytes::copy_from_slice(file))
        .unwrap_or_else(|e| panic!("not a parquet file: {e}"));
    let rows = reader.get_row_iter(None).unwrap_or_else(|e| panic!("{e}"));
    rows.map(|row| {
        row.unwrap_or_else(|e| panic!("{e}"))
            .get_column_iter()
            .map(|(_, field)| match field {
                Field::Str(s) => s.clone(),
                Field::Long(n) | Field::TimestampMicros(n) => n.to_string(),
                other => panic!("unexpected value {other:?}"),
            })
            .collect()
    })
    .collect()
}

/// Where a row group's chunk statistics are not exactly the least and greatest of its values
/// (strings by bytes, integers by value), a description of the first such chunk. Absent
/// statistics are right only where a value is over 64 bytes.
fn wrong_bounds(file: &[u8]) -> Option<String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::statistics::Statistics;
    use parquet::record::Field;
    let reader = SerializedFileReader::new(bytes::Bytes::copy_from_slice(file))
        .unwrap_or_else(|e| panic!("not a parquet file: {e}"));
    // Integers as big-endian with the sign flipped, so byte order is numeric order.
    let key = |v: i64| ((v as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<Vec<Vec<u8>>> = group
            .get_row_iter(None)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|row| {
                row.unwrap_or_else(|e| panic!("{e}"))
                    .get_column_iter()
                    .map(|(_, field)| match field {
                        Field::Str(s) => s.as_bytes().to_vec(),
                        Field::Long(n) | Field::TimestampMicros(n) => key(*n),
                        other => panic!("unexpected value {other:?}"),
                    })
                    .collect()
            })
            .collect();
        for c in 0..group.num_columns() {
            let values: Vec<&Vec<u8>> = rows.iter().map(|row| &row[c]).collect();
            let want = values.iter().min().zip(values.iter().max());
            let got = match group.metadata().column(c).statistics() {
                Some(Statistics::ByteArray(s)) => s
                    .min_opt()
                    .zip(s.max_opt())
                    .map(|(a, b)| (a.data().to_vec(), b.data().to_vec())),
                Some(Statistics::Int64(s)) => s
                    .min_opt()
                    .zip(s.max_opt())
                    .map(|(a, b)| (key(*a), key(*b))),
                _ => None,
            };
            let ok = match (&got, want) {
                (Some((min, max)), Some((want_min, want_max))) => {
                    min == *want_min && max == *want_max
                }
                (None, _) => values.iter().any(|v| v.len() > 64),
                (Some(_), None) => false,
            };
            if !ok {
                return Some(format!(
                    "group {g} column {c}: statistics {got:?}, values {values:?}"
                ));
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn parquet_holds_the_csv_rows_with_true_bounds_whatever_the_chunking(f in file()) {
        let (pq_clean, pq_rejected, csv_clean, csv_rejected) = process_parquet(&f.bytes, &f.cuts);
        let clean: Vec<Vec<String>> = parse_clean_csv(&csv_clean)
            .unwrap_or_default()
            .into_iter()
            .map(|r| vec![
                r.id,
                r.name,
                r.email,
                r.created.unix_micros().to_string(),
                r.updated.unix_micros().to_string(),
            ])
            .collect();
        prop_assert_eq!(parquet_rows(&pq_clean), clean);
        let rejected: Vec<Vec<String>> = parse_rejected_csv(&csv_rejected)
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let mut row = vec![r.line.to_string(), r.reasons.to_string()];
                row.extend(r.original);
                row
            })
            .collect();
        prop_assert_eq!(parquet_rows(&pq_rejected), rejected);
        prop_assert_eq!(wrong_bounds(&pq_clean), None);
        prop_assert_eq!(wrong_bounds(&pq_rejected), None);
        let (whole_clean, whole_rejected, _, _) = process_parquet(&f.bytes, &[]);
        prop_assert!(whole_clean == pq_clean && whole_rejected == pq_rejected, "chunking changed the bytes");
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn parallel_matches_sequential(
        f in file(),
        workers in 1usize..4,
        segment in 1usize..120,
        max in prop_oneof![Just(usize::MAX), 20usize..200],
    ) {
        let expected = process_max(&f.bytes, max);
        prop_assert_eq!(process_parallel(&f.bytes, workers, segment, max), expected);
    }
}

#[test]
fn parallel_edge_cases() {
    let h = "id,name,email,create_ts,update_ts";
    let good = "1,Ann,ann@x.io,2025-01-01T00:00:00,2025-01-02T00:00:00";
    let cases = [
        String::new(),
        h.to_string(),
        format!("\u{feff}{h}\r\n{good}\r\n{good}"),
        // Quoted line breaks everywhere: most cuts fall inside a record.
        format!(
            "{h}\n{}",
            "1,\"a\nb\nc\",ann@x.io,2025-01-01T00:00:00,2025-01-02T00:00:00\n".repeat(40)
        ),
        // An unclosed quote swallowing the rest.
        format!("{h}\n{good}\n2,\"open\n{}", format!("{good}\n").repeat(30)),
        // A bad header.
        format!("id;name\n{}", format!("{good}\n").repeat(30)),
        // Lone CRs and a CR at every cut.
        format!("{h}\r{}", format!("{good}\r").repeat(30)),
    ];
    for input in &cases {
        for max in [usize::MAX, 70] {
            let expected = process_max(input.as_bytes(), max);
            for workers in [1, 2, 3] {
                for segment in [1, 2, 7, 55, 56, 57, 100, 1 << 20] {
                    assert_eq!(
                        process_parallel(input.as_bytes(), workers, segment, max),
                        expected,
                        "workers {workers}, segment {segment}, max {max}, input {input:?}"
                    );
                }
            }
        }
    }
}

/// Gives `good` bytes, then fails.
struct FailingReader {
    data: Vec<u8>,
    at: usize,
    good: usize,
}

impl std::io::Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.good {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf
            .len()
            .min(self.good - self.at)
            .min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn parallel_failures_are_errors_not_hangs() {
    let good = "1,Ann,ann@x.io,2025-01-01T00:00:00,2025-01-02T00:00:00\n";
    let data = format!("id,name,email,create_ts,update_ts\n{}", good.repeat(2000)).into_bytes();
    let settings = Parallel {
        workers: 2,
        segment_bytes: 256,
        max_record_bytes: 1 << 20,
    };
    // The reader fails half-way.
    let reader = FailingReader {
        at: 0,
        good: data.len() / 2,
        data: data.clone(),
    };
    let err = settings.run(reader, |_, _| Ok(())).map(|s| s.records);
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err("disk on fire".to_string())
    );
    // The writer fails on its third piece.
    let mut calls = 0;
    let err = settings.run(&data[..], |_, _| {
        calls += 1;
        if calls == 3 {
            Err(std::io::Error::other("no space left"))
        } else {
            Ok(())
        }
    });
    assert_eq!(
        err.map(|s| s.records).map_err(|e| e.to_string()),
        Err("no space left".to_string())
    );
    assert_eq!(calls, 3, "nothing is written after a failure");
}

// ---------------------------------------------------------------------------------------------
// Email: the SPEC text, written plainly.

fn reference_email(bytes: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(bytes) else {
        return false;
    };
    if s.chars().count() > 254 {
        return false;
    }
    let parts: Vec<&str> = s.split('@').collect();
    let [local, domain] = parts[..] else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.chars().count())
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

fn email_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => Just(&b"a"[..]),
        2 => Just(&b"Z"[..]),
        2 => Just(&b"7"[..]),
        4 => Just(&b"."[..]),
        3 => Just(&b"-"[..]),
        3 => Just(&b"@"[..]),
        1 => Just(&b"+"[..]),
        1 => Just(&b"_"[..]),
        1 => Just(&b" "[..]),
        1 => Just("é".as_bytes()),
        1 => Just(&b"\xff"[..]),
        2 => Just(&b"abcdefghijklmnopqrstuvwxyzabcdefghij"[..]),
        1 => Just(&b"com"[..]),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

fn structured_email() -> impl Strategy<Value = Vec<u8>> {
    (
        1usize..70,
        prop::collection::vec(1usize..70, 1..5),
        0usize..4,
    )
        .prop_map(|(local, labels, tld_kind)| {
            let mut s = "l".repeat(local);
            s.push('@');
            for (i, len) in labels.iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(&"d".repeat(*len));
            }
            s.push_str(match tld_kind {
                0 => ".io",
                1 => ".c",
                2 => ".x1",
                _ => "",
            });
            s.into_bytes()
        })
}

proptest! {
    #![proptest_config(config(20000))]

    #[test]
    fn email_matches_the_reference(e in prop_oneof![email_like(), structured_email()]) {
        prop_assert_eq!(is_valid_email(&e), reference_email(&e), "{:?}", String::from_utf8_lossy(&e));
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps: the SPEC text, written plainly, with day counting by loops.

fn reference_timestamp(bytes: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(bytes).ok()?;
    if !s.is_ascii() || s.len() < 19 {
        return None;
    }
    let num = |part: &str| -> Option<u32> {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (date, sep, time, rest) = (&s[..10], &s[10..11], &s[11..19], &s[19..]);
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || t.len() != 3 || !(sep == "T" || sep == " ") {
        return None;
    }
    if d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 || t.iter().any(|p| p.len() != 2) {
        return None;
    }
    let (year, month, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (hour, minute, second) = (num(t[0])?, num(t[1])?, num(t[2])?);
    let leap = |y: u32| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let month_len = |y: u32, m: u32| match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => 0,
    };
    if !(1..=9999).contains(&year) || day < 1 || day > month_len(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(after) => {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            if !(1..=9).contains(&n) {
                return None;
            }
            (&after[..n], &after[n..])
        }
        None => ("", rest),
    };
    let nanos = if fraction.is_empty() {
        0
    } else {
        num(fraction)? * 10u32.pow(9 - fraction.len() as u32)
    };
    let offset: i64 = match zone {
        "" | "Z" => 0,
        _ if zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && &zone[3..4] == ":" =>
        {
            let (h, m) = (num(&zone[1..3])?, num(&zone[4..6])?);
            if h > 23 || m > 59 {
                return None;
            }
            let v = i64::from(h * 3600 + m * 60);
            if zone.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    // Days since 1970-01-01 by counting.
    let mut days: i64 = 0;
    if year >= 1970 {
        for y in 1970..year {
            days += if leap(y) { 366 } else { 365 };
        }
    } else {
        for y in year..1970 {
            days -= if leap(y) { 366 } else { 365 };
        }
    }
    for m in 1..month {
        days += i64::from(month_len(year, m));
    }
    days += i64::from(day - 1);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset;
    Some((secs, nanos))
}

fn timestamp_like() -> impl Strategy<Value = Vec<u8>> {
    let year = prop_oneof![
        Just("0000".to_string()),
        Just("0001".to_string()),
        Just("1900".to_string()),
        Just("1969".to_string()),
        Just("2000".to_string()),
        Just("2023".to_string()),
        Just("2024".to_string()),
        Just("9999".to_string()),
        (0u32..10000).prop_map(|y| format!("{y:04}")),
    ];
    let two = |max: u32| (0..=max).prop_map(|v| format!("{v:02}"));
    let fraction = prop_oneof![
        3 => Just(String::new()),
        1 => Just(".".to_string()),
        2 => (1usize..=10).prop_map(|n| format!(".{}", "1234567890".get(..n).unwrap_or(""))),
    ];
    let zone = prop_oneof![
        3 => Just(String::new()),
        2 => Just("Z".to_string()),
        1 => Just("z".to_string()),
        2 => (prop_oneof![Just('+'), Just('-')], 0u32..26, 0u32..62).prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}")),
        1 => Just("+0200".to_string()),
        1 => Just("+02".to_string()),
    ];
    let sep = prop_oneof![6 => Just("T"), 3 => Just(" "), 1 => Just("t"), 1 => Just("  ")];
    (
        year,
        two(13),
        two(32),
        sep,
        two(25),
        two(61),
        two(61),
        fraction,
        zone,
        any::<Option<(usize, u8)>>(),
    )
        .prop_map(|(y, mo, d, sep, h, mi, s, f, z, mutation)| {
            let mut b = format!("{y}-{mo}-{d}{sep}{h}:{mi}:{s}{f}{z}").into_bytes();
            if let Some((at, byte)) = mutation {
                let at = at % (b.len() + 1);
                match byte % 4 {
                    0 => b.insert(at, b"0:-T.+Z\xef"[usize::from(byte / 4) % 8]),
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    2 if at < b.len() => b[at] = b"0:-T.+Z9"[usize::from(byte / 4) % 8],
                    _ => {}
                }
            }
            b
        })
}

proptest! {
    #![proptest_config(config(6000))]

    #[test]
    fn timestamp_matches_the_reference(t in timestamp_like()) {
        let ours = Timestamp::parse(&t).map(|ts| (ts.unix_seconds(), ts.subsec_nanos()));
        prop_assert_eq!(ours, reference_timestamp(&t), "{:?}", String::from_utf8_lossy(&t));
    }
}

#[test]
fn generated_files_have_both_outcomes() {
    // Guards the generator: a property over files without clean (or rejected) rows would test
    // little.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut clean, mut rejected) = (0, 0);
    for _ in 0..200 {
        let f = file().new_tree(&mut runner).map(|t| t.current());
        let f = f.unwrap_or_else(|e| panic!("generator failed: {e}"));
        let (summary, _, _) = process(&f.bytes, &[]);
        clean += summary.clean;
        rejected += summary.rejected;
    }
    eprintln!("clean {clean}, rejected {rejected}");
    assert!(
        clean > 200 && rejected > 200,
        "clean {clean}, rejected {rejected}"
    );
}

#[test]
fn references_agree_with_spec_examples() {
    // Guards the references themselves.
    assert!(reference_email(b"first+tag@gmail.com"));
    for bad in ["c", "a@b", "a..b@x.com", "a@-x.com"] {
        assert!(!reference_email(bad.as_bytes()), "{bad}");
    }
    assert_eq!(reference_timestamp(b"1970-01-01T00:00:00"), Some((0, 0)));
    assert_eq!(
        reference_timestamp(b"2025-05-10T19:38:35.5+02:00"),
        Some((1_746_898_715, 500_000_000))
    );
    assert_eq!(reference_timestamp(b"2023-02-29T00:00:00"), None);
}
