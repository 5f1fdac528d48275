//! `deployer check --format parquet|both`: the Parquet files are the function's (same writer,
//! same bytes), their schema is exactly the Glue tables' columns, and the usual `check` rules
//! hold (only outputs with rows, stale outputs removed, the CSV outputs unchanged).

mod support;

use std::path::Path;
use std::process::Output;

use bytes::Bytes;
use deployer::resources::glue::{Column, TableSpec};
use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use shared::Processor;
use shared::output::CsvOutputs;
use shared::parquet::ParquetOutputs;
use support::{run_deployer as deployer, scratch_dir};

fn check(file: &Path, out_dir: &Path, format: &str) -> Output {
    let out = deployer(&[
        "check",
        file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--format",
        format,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What the function writes for `input`: (csv clean, csv rejected, parquet clean, parquet
/// rejected), in one go.
fn function_outputs(input: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut csv = CsvOutputs::new();
    let mut pq = ParquetOutputs::new().unwrap();
    let mut p = Processor::new();
    p.feed(input, &mut (&mut csv, &mut pq));
    p.finish(&mut (&mut csv, &mut pq));
    let mut clean = std::mem::take(pq.clean.buffer());
    let mut rejected = std::mem::take(pq.rejected.buffer());
    let (c, r) = pq.finish().unwrap();
    clean.extend_from_slice(&c);
    rejected.extend_from_slice(&r);
    (csv.clean, csv.rejected, clean, rejected)
}

/// A users file of `rows` rows, one in eight bad, some names quoted.
fn generate(rows: usize) -> Vec<u8> {
    let mut out = b"id,name,email,create_ts,update_ts\r\n".to_vec();
    for i in 0..rows {
        let line = match i % 8 {
            7 => format!("{i},,bad,2025-01-01T00:00:00,x\r\n"),
            3 => format!(
                "{i},\"Doe, J {}\",J.{i}@Example.com,2025-03-01 10:00:{:02}+02:00,2025-03-02T00:00:00Z\r\n",
                i % 50,
                i % 60
            ),
            _ => format!(
                "{i},User {},u{i}@example.com,2025-01-{:02}T10:00:00,2025-02-01T00:00:00.25Z\r\n",
                i % 300,
                1 + i % 28
            ),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// `(name, hive type)` of every column in a Parquet footer, as Glue would declare it; every
/// column must be required and flat.
fn glue_columns(file: &[u8]) -> Vec<Column> {
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(file)).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    schema
        .columns()
        .iter()
        .map(|c| {
            assert_eq!(
                c.self_type().get_basic_info().repetition(),
                Repetition::REQUIRED
            );
            assert_eq!(c.path().parts().len(), 1);
            let data_type = match (c.physical_type(), c.logical_type_ref()) {
                (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)) => "string",
                (PhysicalType::INT64, Some(LogicalType::Timestamp(t)))
                    if t.is_adjusted_to_u_t_c && t.unit == TimeUnit::MICROS =>
                {
                    "timestamp"
                }
                (PhysicalType::INT64, None) => "bigint",
                other => panic!("no glue type for {other:?}"),
            };
            Column {
                name: c.name().to_owned(),
                data_type: data_type.to_owned(),
            }
        })
        .collect()
}

#[test]
fn parquet_files_are_the_functions_and_match_the_glue_tables() {
    let dir = scratch_dir("same");
    let file = dir.join("gen.csv");
    // More than one default row group (32,768 rows) per table.
    let input = generate(160_000);
    std::fs::write(&file, &input).unwrap();
    let (csv_clean, csv_rejected, pq_clean, pq_rejected) = function_outputs(&input);

    let out_dir = dir.join("out");
    let out = check(&file, &out_dir, "parquet");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("160000 records, 140000 clean, 20000 rejected"),
        "{stdout}"
    );
    assert!(stdout.contains("wrote "), "{stdout}");
    let got_clean = std::fs::read(out_dir.join("gen.parquet")).unwrap();
    let got_rejected = std::fs::read(out_dir.join("rejected/gen_rejected.parquet")).unwrap();
    assert!(
        got_clean == pq_clean,
        "clean parquet differs from the function's"
    );
    assert!(
        got_rejected == pq_rejected,
        "rejected parquet differs from the function's"
    );
    assert!(!out_dir.join("gen_cleaned.csv").exists());
    let groups = SerializedFileReader::new(Bytes::from(got_clean.clone()))
        .unwrap()
        .metadata()
        .num_row_groups();
    assert_eq!(groups, 5, "140,000 rows in groups of 32,768");

    // The schema is exactly the catalog's.
    let users = TableSpec::users("db", "bucket", "2025-01-01");
    let users_rejected = TableSpec::users_rejected("db", "bucket", "2025-01-01");
    assert_eq!(glue_columns(&got_clean), users.columns);
    assert_eq!(glue_columns(&got_rejected), users_rejected.columns);
    // Partition columns come from the path, never from the file.
    for key in &users.partition_keys {
        assert!(!glue_columns(&got_clean).contains(key));
    }

    // `both`: the same Parquet bytes, and the CSV outputs of a plain `check`.
    let both_dir = dir.join("both");
    check(&file, &both_dir, "both");
    assert!(std::fs::read(both_dir.join("gen.parquet")).unwrap() == pq_clean);
    assert!(std::fs::read(both_dir.join("rejected/gen_rejected.parquet")).unwrap() == pq_rejected);
    assert!(std::fs::read(both_dir.join("gen_cleaned.csv")).unwrap() == csv_clean);
    assert!(std::fs::read(both_dir.join("rejected/gen_rejected.csv")).unwrap() == csv_rejected);
    let csv_dir = dir.join("csv");
    check(&file, &csv_dir, "csv");
    assert!(std::fs::read(csv_dir.join("gen_cleaned.csv")).unwrap() == csv_clean);
}

#[test]
fn only_outputs_with_rows_are_written_and_stale_ones_go() {
    let dir = scratch_dir("stale");
    let file = dir.join("people.csv");
    let out_dir = dir.join("out");
    let clean_pq = out_dir.join("people.parquet");
    let rejected_pq = out_dir.join("rejected/people_rejected.parquet");
    std::fs::write(
        &file,
        "id,name,email,create_ts,update_ts\n1,A,a@b.co,2025-01-01T00:00:00,2025-01-02T00:00:00\n2,,bad,x,y\n",
    )
    .unwrap();
    check(&file, &out_dir, "both");
    assert!(clean_pq.exists() && rejected_pq.exists());
    assert!(out_dir.join("people_cleaned.csv").exists());

    // All clean now: the rejected Parquet file of the last run must not linger.
    std::fs::write(
        &file,
        "id,name,email,create_ts,update_ts\n1,A,a@b.co,2025-01-01T00:00:00,2025-01-02T00:00:00\n",
    )
    .unwrap();
    check(&file, &out_dir, "parquet");
    assert!(clean_pq.exists());
    assert!(!rejected_pq.exists());
    // Parquet only: the CSV outputs of the earlier run are stale too.
    assert!(!out_dir.join("people_cleaned.csv").exists());
    assert!(!out_dir.join("rejected/people_rejected.csv").exists());

    // Header only: nothing to write, and a plain `check` clears the Parquet files as well.
    std::fs::write(&file, "id,name,email,create_ts,update_ts\n").unwrap();
    let out = check(&file, &out_dir, "parquet");
    assert!(!String::from_utf8(out.stdout).unwrap().contains("wrote"));
    assert!(!clean_pq.exists());
    std::fs::write(
        &file,
        "id,name,email,create_ts,update_ts\n1,A,a@b.co,2025-01-01T00:00:00,2025-01-02T00:00:00\n",
    )
    .unwrap();
    check(&file, &out_dir, "parquet");
    assert!(clean_pq.exists());
    check(&file, &out_dir, "csv");
    assert!(!clean_pq.exists());
    assert!(out_dir.join("people_cleaned.csv").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn format_errors_are_one_line() {
    let out = deployer(&["check", "data/users.csv", "--format", "orc"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid value 'orc'"), "{err}");
    let dir = scratch_dir("missing");
    let out = deployer(&[
        "check",
        dir.join("nope.csv").to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
        "--format",
        "parquet",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: cannot read "), "{err}");
}
