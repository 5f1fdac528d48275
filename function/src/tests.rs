//! Handler tests through the fake store: layout, ordering, faults, replays, multipart, logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::s3::S3Event;
use bytes::Bytes;
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};
use shared::output::{CLEAN_HEADER, CsvOutputs, REJECTED_HEADER};
use shared::{Processor, Summary};

use crate::fake::{FakeStore, Fault};
use crate::handler::{Config, ConfigError, EventReport, Handler, HandlerError};
use crate::metrics::MetricsSink;
use crate::store::Operation;
use crate::upload::UploadConfig;

const INGEST: &str = "ingest";
const RAW: &str = "raw";
const REFINED: &str = "refined";
const SAMPLE: &[u8] = include_bytes!("../../data/users.csv");
const T: &str = "2025-06-24T15:04:05.123Z";

/// Small parts, so a file of a few hundred KiB exercises multipart.
const SMALL_PARTS: UploadConfig = UploadConfig {
    part_size: 64 * 1024,
    max_parts_in_flight: 2,
};

fn config(upload: UploadConfig) -> Config {
    Config {
        raw_bucket: RAW.to_owned(),
        refined_bucket: REFINED.to_owned(),
        function_name: "csv-ingest-test".to_owned(),
        upload,
    }
}

fn record(bucket: &str, key: &str, time: &str) -> Value {
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-1",
        "eventTime": time,
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "ingest",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "EXAMPLE"},
                "arn": format!("arn:aws:s3:::{bucket}"),
            },
            "object": {"key": key, "size": 1, "eTag": "0", "sequencer": "0"},
        },
    })
}

fn event_of(records: Vec<Value>) -> S3Event {
    serde_json::from_value(json!({ "Records": records })).expect("valid s3 event")
}

/// An event of ingest-bucket records with the given (URL-encoded) keys, all at `T`.
fn event(keys: &[&str]) -> S3Event {
    event_of(keys.iter().map(|k| record(INGEST, k, T)).collect())
}

async fn run_with(
    store: &FakeStore,
    upload: UploadConfig,
    ev: &S3Event,
) -> Result<EventReport, HandlerError> {
    Handler::new(store.clone(), config(upload), MetricsSink::Discard)
        .handle(ev, "req-test")
        .await
}

async fn run(store: &FakeStore, ev: &S3Event) -> Result<EventReport, HandlerError> {
    run_with(store, UploadConfig::default(), ev).await
}

/// What `shared` makes of the whole input in one go, with the function's header-only rule.
fn reference(input: &[u8]) -> (Vec<u8>, Vec<u8>, Summary) {
    let mut p = Processor::new();
    let mut out = CsvOutputs::new();
    p.feed(input, &mut out);
    let summary = p.finish(&mut out);
    let fill = |v: Vec<u8>, header: &str| {
        if v.is_empty() {
            format!("{header}\n").into_bytes()
        } else {
            v
        }
    };
    (
        fill(out.clean, CLEAN_HEADER),
        fill(out.rejected, REJECTED_HEADER),
        summary,
    )
}

/// A deterministic users file of `rows` rows, about one in `bad_every` of them bad in some way
/// (bad email, update before create, missing name, wrong field count, bad timestamp), with
/// quoted fields holding commas, quotes and line breaks, and `\r\n` line ends.
fn generate(rows: usize, bad_every: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * 90);
    out.extend_from_slice(b"id,name,email,create_ts,update_ts\r\n");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let day = 1 + (x % 28);
        let line = if bad_every > 0 && i % bad_every == bad_every - 1 {
            match (x >> 8) % 5 {
                0 => format!(
                    "{i},User {i},user{i}.example.com,2025-01-{day:02}T10:00:00Z,2025-02-01T00:00:00Z\r\n"
                ),
                1 => format!(
                    "{i},User {i},u{i}@example.com,2025-03-{day:02}T10:00:00,2025-02-01 00:00:00\r\n"
                ),
                2 => format!(
                    "{i}, ,u{i}@example.com,2025-01-{day:02}T10:00:00Z,2025-02-01T00:00:00Z\r\n"
                ),
                3 => format!("{i},User {i},u{i}@example.com,2025-01-{day:02}T10:00:00Z\r\n"),
                _ => format!(
                    "{i},User {i},u{i}@example.com,2025-02-30T10:00:00Z,2025-03-01T00:00:00+02:00\r\n"
                ),
            }
        } else {
            match (x >> 8) % 4 {
                0 => format!(
                    "{i},\"Doe, Jane {i}\",Jane.{i}@Example.com,2025-01-{day:02}T10:00:00Z,2025-02-01T00:00:00.5+01:00\r\n"
                ),
                1 => format!(
                    "{i},\"Multi\nLine \"\"{i}\"\"\",m{i}@example.org,2025-01-{day:02} 10:00:00,2025-02-01T00:00:00Z\r\n"
                ),
                _ => format!(
                    "{i},User {i},user{i}@example.com,2025-01-{day:02}T10:00:00Z,2025-02-01T00:00:00Z\r\n"
                ),
            }
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn cleaned_key(stem: &str) -> String {
    format!("refined/date=2025-06-24/hour=15/{stem}_cleaned.csv")
}

fn rejected_key(stem: &str) -> String {
    format!("refined/date=2025-06-24/hour=15/rejected/{stem}_rejected.csv")
}

fn text(b: &Bytes) -> &str {
    std::str::from_utf8(b).expect("utf-8 output")
}

#[tokio::test]
async fn sample_file_gives_the_expected_outputs() {
    let store = FakeStore::new();
    store.insert(INGEST, "users.csv", SAMPLE);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let handler = Handler::new(
        store.clone(),
        config(UploadConfig::default()),
        MetricsSink::Memory(lines.clone()),
    );
    let report = handler
        .handle(&event(&["users.csv"]), "req-1")
        .await
        .expect("processed");

    assert_eq!(store.object(RAW, "users.csv").as_deref(), Some(SAMPLE));
    let refined = store.objects(REFINED);
    assert_eq!(
        refined.keys().cloned().collect::<Vec<_>>(),
        [
            "refined/date=2025-06-24/hour=15/rejected/users_rejected.csv",
            "refined/date=2025-06-24/hour=15/users_cleaned.csv",
        ]
    );
    assert_eq!(
        text(&refined[&cleaned_key("users")]),
        "id,name,email,create_ts,update_ts\n\
         1,Luke Skyrunner,a@gmail.com,2025-05-10T17:38:35,2025-05-12T15:27:35\n\
         2,Jimmy Pager,led@hotmail.com,2025-06-13T03:22:19,2025-06-23T11:36:19\n"
    );
    let rejected = text(&refined[&rejected_key("users")]);
    let rows: Vec<&str> = rejected.lines().collect();
    assert_eq!(rows.len(), 3, "{rejected}");
    assert_eq!(rows[0], REJECTED_HEADER);
    assert!(
        rows[1].starts_with("4,invalid_email,3,Daniel Jack,c,"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2].starts_with("5,update_before_create,4,Guybrush Fourpwood,"),
        "{}",
        rows[2]
    );

    let file = &report.files[0];
    assert_eq!((file.records, file.clean, file.rejected), (4, 2, 2));
    assert_eq!(file.bytes, SAMPLE.len() as u64);
    assert_eq!(file.source, "ingest/users.csv");
    assert!(report.skipped.is_empty());

    let emitted = lines.lock().expect("lock").clone();
    assert_eq!(emitted.len(), 1, "one EMF line per file");
    let emf: Value = serde_json::from_str(&emitted[0]).expect("json");
    assert_eq!(emf["RecordsIn"], 4);
    assert_eq!(emf["Clean"], 2);
    assert_eq!(emf["Rejected"], 2);
    assert_eq!(emf["BytesIn"], SAMPLE.len());
    assert_eq!(emf["FunctionName"], "csv-ingest-test");
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "CsvIngest"
    );
}

#[tokio::test]
async fn outputs_equal_a_single_shot_run_of_shared() {
    let input = generate(2_000, 7);
    let store = FakeStore::new();
    store.insert(INGEST, "gen.csv", input.clone());
    let report = run(&store, &event(&["gen.csv"])).await.expect("processed");
    let (clean, rejected, summary) = reference(&input);
    assert_eq!(
        store.object(REFINED, &cleaned_key("gen")).as_deref(),
        Some(&clean[..])
    );
    assert_eq!(
        store.object(REFINED, &rejected_key("gen")).as_deref(),
        Some(&rejected[..])
    );
    let f = &report.files[0];
    assert_eq!(
        (f.records, f.clean, f.rejected),
        (summary.records, summary.clean, summary.rejected)
    );
    assert_eq!(f.records, 2_000);
    assert!(summary.rejected > 200, "the generator makes bad rows");
}

#[tokio::test]
async fn chunk_boundaries_do_not_change_outputs() {
    let input = generate(300, 5);
    let (clean, rejected, _) = reference(&input);
    for chunk_size in [1, 2, 3, 7, 64, 4096, 1 << 30] {
        let store = FakeStore::new().with_chunk_size(chunk_size);
        store.insert(INGEST, "gen.csv", input.clone());
        store.insert(INGEST, "users.csv", SAMPLE);
        run(&store, &event(&["gen.csv", "users.csv"]))
            .await
            .expect("processed");
        assert_eq!(
            store.object(REFINED, &cleaned_key("gen")).as_deref(),
            Some(&clean[..]),
            "chunk size {chunk_size}"
        );
        assert_eq!(
            store.object(REFINED, &rejected_key("gen")).as_deref(),
            Some(&rejected[..]),
            "chunk size {chunk_size}"
        );
        assert_eq!(
            store.object(REFINED, &cleaned_key("users")).as_deref(),
            Some(&reference(SAMPLE).0[..])
        );
    }
}

#[tokio::test]
async fn every_record_of_an_event_is_processed() {
    let store = FakeStore::new();
    for name in ["a.csv", "b.csv", "c.csv"] {
        store.insert(INGEST, name, SAMPLE);
    }
    let report = run(&store, &event(&["a.csv", "b.csv", "c.csv"]))
        .await
        .expect("processed");
    assert_eq!(report.files.len(), 3);
    assert_eq!(store.objects(RAW).len(), 3);
    let refined = store.objects(REFINED);
    assert_eq!(refined.len(), 6);
    for stem in ["a", "b", "c"] {
        assert!(refined.contains_key(&cleaned_key(stem)), "{stem}");
        assert!(refined.contains_key(&rejected_key(stem)), "{stem}");
    }
}

#[tokio::test]
async fn url_encoded_key_with_spaces_and_a_directory() {
    let store = FakeStore::new();
    // As S3 sends it: spaces as `+`, a literal `+` as `%2B`, UTF-8 escaped.
    let decoded = "incoming/2025 06/my users+v2 é.csv";
    store.insert(INGEST, decoded, SAMPLE);
    let report = run(
        &store,
        &event(&["incoming/2025+06/my+users%2Bv2+%C3%A9.csv"]),
    )
    .await
    .expect("processed");
    assert_eq!(report.files[0].source, format!("ingest/{decoded}"));
    assert_eq!(store.object(RAW, decoded).as_deref(), Some(SAMPLE));
    let refined: Vec<String> = store.objects(REFINED).into_keys().collect();
    assert_eq!(
        refined,
        [
            "refined/date=2025-06-24/hour=15/incoming/2025 06/my users+v2 é_cleaned.csv",
            "refined/date=2025-06-24/hour=15/incoming/2025 06/rejected/my users+v2 é_rejected.csv",
        ]
    );
}

#[tokio::test]
async fn directory_markers_and_unusable_records_are_skipped_not_failed() {
    let store = FakeStore::new();
    store.insert(INGEST, "users.csv", SAMPLE);
    let mut not_created = record(INGEST, "users.csv", T);
    not_created["eventName"] = json!("ObjectRemoved:Delete");
    let mut no_bucket = record(INGEST, "users.csv", T);
    no_bucket["s3"]["bucket"]["name"] = Value::Null;
    let ev = event_of(vec![
        record(INGEST, "incoming/", T),
        record(INGEST, "incoming%2Fsub%2F", T),
        // `%FF` is not UTF-8: no object can have this key.
        record(INGEST, "bad%FF.csv", T),
        // An object in an output bucket would make the function trigger itself.
        record(REFINED, "refined/x.csv", T),
        record(RAW, "users.csv", T),
        not_created,
        no_bucket,
        record(INGEST, "users.csv", T),
    ]);
    let report = run(&store, &ev).await.expect("skips are not failures");
    assert_eq!(report.files.len(), 1);
    let skipped: Vec<usize> = report.skipped.iter().map(|s| s.index).collect();
    assert_eq!(skipped, [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(report.skipped[0].reason, "key ends with /");
    assert!(
        report.skipped[2].reason.contains("utf-8"),
        "{:?}",
        report.skipped[2]
    );
    assert!(report.skipped[3].reason.contains("refusing to loop"));
    // Only the good record touched storage.
    assert!(store.log().iter().all(|c| c.key.contains("users")));
    assert_eq!(store.calls(Operation::CopyObject), 1);
}

#[tokio::test]
async fn raw_copy_comes_before_anything_else_for_each_file() {
    let store = FakeStore::new().with_min_part_size(SMALL_PARTS.part_size);
    store.insert(INGEST, "big.csv", generate(6_000, 5));
    store.insert(INGEST, "users.csv", SAMPLE);
    run_with(&store, SMALL_PARTS, &event(&["big.csv", "users.csv"]))
        .await
        .expect("processed");
    let log = store.log();
    assert!(
        store.calls(Operation::UploadPart) > 2,
        "multipart was exercised"
    );
    for name in ["big", "users"] {
        let of_file: Vec<_> = log
            .iter()
            .filter(|c| {
                c.key.contains(&format!("{name}.csv")) || c.key.contains(&format!("{name}_"))
            })
            .collect();
        assert_eq!(of_file[0].op, Operation::CopyObject, "{name}: {of_file:?}");
        assert_eq!(of_file[0].bucket, RAW);
        assert_eq!(of_file[1].op, Operation::GetObject, "{name}");
        assert!(of_file[2..].iter().all(|c| c.bucket == REFINED), "{name}");
    }
    // Files are handled one after the other.
    let first_users = log
        .iter()
        .position(|c| c.key.contains("users"))
        .expect("users");
    assert!(log[..first_users].iter().all(|c| c.key.contains("big")));
}

#[tokio::test]
async fn partition_comes_from_the_event_time_in_utc() {
    let store = FakeStore::new();
    store.insert(INGEST, "users.csv", SAMPLE);
    let ev = event_of(vec![
        record(INGEST, "users.csv", "2020-01-02T03:59:59.999Z"),
        // Not what S3 sends, but an offset must still be read as an instant.
        record(INGEST, "users.csv", "2025-06-24T01:30:00+02:00"),
    ]);
    run(&store, &ev).await.expect("processed");
    let keys: Vec<String> = store.objects(REFINED).into_keys().collect();
    assert_eq!(
        keys,
        [
            "refined/date=2020-01-02/hour=03/rejected/users_rejected.csv",
            "refined/date=2020-01-02/hour=03/users_cleaned.csv",
            "refined/date=2025-06-23/hour=23/rejected/users_rejected.csv",
            "refined/date=2025-06-23/hour=23/users_cleaned.csv",
        ]
    );
}

#[tokio::test]
async fn the_same_event_three_times_leaves_identical_objects() {
    let store = FakeStore::new().with_min_part_size(SMALL_PARTS.part_size);
    store.insert(INGEST, "big.csv", generate(6_000, 5));
    store.insert(INGEST, "dir/users.csv", SAMPLE);
    let ev = event(&["big.csv", "dir/users.csv"]);
    run_with(&store, SMALL_PARTS, &ev).await.expect("first");
    let raw = store.objects(RAW);
    let refined = store.objects(REFINED);
    assert_eq!(refined.len(), 4);
    for _ in 0..2 {
        run_with(&store, SMALL_PARTS, &ev).await.expect("replay");
        assert_eq!(store.objects(RAW), raw);
        assert_eq!(store.objects(REFINED), refined);
        assert_eq!(store.objects(INGEST).len(), 2);
    }
    assert_eq!(store.open_uploads(), 0);
}

#[tokio::test]
async fn outputs_without_rows_are_written_header_only() {
    let store = FakeStore::new();
    let all_clean = b"id,name,email,create_ts,update_ts\n1,A,a@b.co,2025-01-01T00:00:00Z,2025-01-01T00:00:00Z\n";
    store.insert(INGEST, "clean.csv", &all_clean[..]);
    store.insert(
        INGEST,
        "header.csv",
        &b"id,name,email,create_ts,update_ts\r\n"[..],
    );
    store.insert(INGEST, "empty.csv", Bytes::new());
    let report = run(&store, &event(&["clean.csv", "header.csv", "empty.csv"]))
        .await
        .expect("processed");
    let clean_header = format!("{CLEAN_HEADER}\n");
    let rejected_header = format!("{REJECTED_HEADER}\n");
    assert_eq!(
        store.object(REFINED, &rejected_key("clean")).as_deref(),
        Some(rejected_header.as_bytes())
    );
    for stem in ["header", "empty"] {
        assert_eq!(
            store.object(REFINED, &cleaned_key(stem)).as_deref(),
            Some(clean_header.as_bytes()),
            "{stem}"
        );
        assert_eq!(
            store.object(REFINED, &rejected_key(stem)).as_deref(),
            Some(rejected_header.as_bytes()),
            "{stem}"
        );
    }
    assert!(report.files[1..].iter().all(|f| f.records == 0));
}

#[tokio::test]
async fn reprocessing_a_changed_file_leaves_no_stale_output() {
    // First version has rejected rows; the second, same key and hour, has none: its rejected
    // output must be rewritten (header only), not left from the first run.
    let store = FakeStore::new();
    store.insert(INGEST, "users.csv", SAMPLE);
    run(&store, &event(&["users.csv"])).await.expect("v1");
    store.insert(
        INGEST,
        "users.csv",
        &b"id,name,email,create_ts,update_ts\n1,A,a@b.co,2025-01-01T00:00:00Z,2025-01-01T00:00:00Z\n"[..],
    );
    run(&store, &event(&["users.csv"])).await.expect("v2");
    assert_eq!(
        store.object(REFINED, &rejected_key("users")).as_deref(),
        Some(format!("{REJECTED_HEADER}\n").as_bytes())
    );
}

#[tokio::test]
async fn a_failing_record_does_not_stop_the_others() {
    let store = FakeStore::new();
    store.insert(INGEST, "b.csv", SAMPLE);
    // `a.csv` does not exist: its copy fails with NoSuchKey.
    let err = run(&store, &event(&["a.csv", "b.csv"]))
        .await
        .expect_err("a.csv fails");
    let HandlerError::Records {
        failed,
        total,
        first,
    } = &err;
    assert_eq!((*failed, *total), (1, 2));
    assert_eq!(first.operation, Operation::CopyObject);
    assert_eq!(first.code.as_deref(), Some("NoSuchKey"));
    assert!(!first.retryable);
    assert!(store.object(REFINED, &cleaned_key("b")).is_some());
    let diagnostic = Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "S3.CopyObject.NoSuchKey");
    assert!(diagnostic.error_message.starts_with("1 of 2 records failed; first failure: s3 CopyObject failed for s3://raw/a.csv (NoSuchKey)"), "{}", diagnostic.error_message);
}

/// What a fault leaves visible in the refined bucket after the failed run.
#[derive(Clone, Copy, Debug)]
enum Leaves {
    /// No refined object at all.
    Nothing,
    /// The first-committed output (complete, with this input's bytes), not the second:
    /// S3 cannot commit two objects atomically.
    CleanedOnly,
}

struct FaultCase {
    name: &'static str,
    big: bool,
    faults: Vec<Fault>,
    op: Operation,
    leaves: Leaves,
    /// At least this many `AbortMultipartUpload` calls.
    aborts: usize,
}

fn fault_cases() -> Vec<FaultCase> {
    use Operation::*;
    let fail = |op, nth| Fault::Fail {
        op,
        nth,
        code: "InternalError",
    };
    let case = |name, big, faults, op, leaves, aborts| FaultCase {
        name,
        big,
        faults,
        op,
        leaves,
        aborts,
    };
    vec![
        case(
            "copy",
            false,
            vec![fail(CopyObject, 1)],
            CopyObject,
            Leaves::Nothing,
            0,
        ),
        case(
            "get",
            false,
            vec![fail(GetObject, 1)],
            GetObject,
            Leaves::Nothing,
            0,
        ),
        case(
            "get mid-stream (single put)",
            false,
            vec![Fault::GetMidStream { nth: 1, after: 100 }],
            GetObject,
            Leaves::Nothing,
            0,
        ),
        case(
            "put cleaned",
            false,
            vec![fail(PutObject, 1)],
            PutObject,
            Leaves::Nothing,
            0,
        ),
        case(
            "put rejected",
            false,
            vec![fail(PutObject, 2)],
            PutObject,
            Leaves::CleanedOnly,
            0,
        ),
        case(
            "create multipart (cleaned)",
            true,
            vec![fail(CreateMultipartUpload, 1)],
            CreateMultipartUpload,
            Leaves::Nothing,
            0,
        ),
        case(
            "create multipart (rejected)",
            true,
            vec![fail(CreateMultipartUpload, 2)],
            CreateMultipartUpload,
            Leaves::Nothing,
            1,
        ),
        case(
            "upload part 1",
            true,
            vec![fail(UploadPart, 1)],
            UploadPart,
            Leaves::Nothing,
            1,
        ),
        case(
            "upload part 3",
            true,
            vec![fail(UploadPart, 3)],
            UploadPart,
            Leaves::Nothing,
            1,
        ),
        case(
            "get mid-stream (multipart)",
            true,
            vec![Fault::GetMidStream {
                nth: 1,
                after: 600_000,
            }],
            GetObject,
            Leaves::Nothing,
            1,
        ),
        case(
            "complete cleaned",
            true,
            vec![fail(CompleteMultipartUpload, 1)],
            CompleteMultipartUpload,
            Leaves::Nothing,
            2,
        ),
        case(
            "complete rejected",
            true,
            vec![fail(CompleteMultipartUpload, 2)],
            CompleteMultipartUpload,
            Leaves::CleanedOnly,
            1,
        ),
        case(
            "upload part 2 and the abort too",
            true,
            vec![fail(UploadPart, 2), fail(AbortMultipartUpload, 1)],
            UploadPart,
            Leaves::Nothing,
            1,
        ),
    ]
}

#[tokio::test]
async fn a_fault_at_each_call_fails_the_invocation_and_a_rerun_matches_a_clean_run() {
    let big = generate(12_000, 4); // ~1 MB: both outputs go multipart with 64 KiB parts
    let upload = SMALL_PARTS;
    let fresh = |input: &[u8]| {
        let store = FakeStore::new().with_min_part_size(upload.part_size);
        store.insert(INGEST, "in/users.csv", input.to_vec());
        store
    };
    let ev = event(&["in/users.csv"]);
    let cleaned = "refined/date=2025-06-24/hour=15/in/users_cleaned.csv";

    for case in fault_cases() {
        let input: &[u8] = if case.big { &big } else { SAMPLE };
        let clean_run = fresh(input);
        run_with(&clean_run, upload, &ev).await.expect("clean run");
        if case.big {
            assert!(
                clean_run.calls(Operation::CreateMultipartUpload) == 2,
                "both outputs multipart"
            );
            assert!(clean_run.calls(Operation::UploadPart) >= 4);
        } else {
            assert_eq!(
                clean_run.calls(Operation::PutObject),
                2,
                "both outputs single put"
            );
        }

        let store = fresh(input);
        for fault in &case.faults {
            store.inject(fault.clone());
        }
        let err = run_with(&store, upload, &ev).await.expect_err(case.name);
        let HandlerError::Records { first, failed, .. } = &err;
        assert_eq!(*failed, 1, "{}", case.name);
        assert_eq!(first.operation, case.op, "{}: {first}", case.name);
        assert_eq!(
            first.bucket,
            if case.op == Operation::GetObject {
                INGEST
            } else if case.op == Operation::CopyObject {
                RAW
            } else {
                REFINED
            },
            "{}",
            case.name
        );

        let visible = store.objects(REFINED);
        match case.leaves {
            Leaves::Nothing => assert!(visible.is_empty(), "{}: {:?}", case.name, visible.keys()),
            Leaves::CleanedOnly => {
                assert_eq!(
                    visible.keys().collect::<Vec<_>>(),
                    [cleaned],
                    "{}",
                    case.name
                );
                assert_eq!(
                    visible[cleaned],
                    clean_run.objects(REFINED)[cleaned],
                    "{}",
                    case.name
                );
            }
        }
        assert!(
            store.calls(Operation::AbortMultipartUpload) >= case.aborts,
            "{}: {:?}",
            case.name,
            store.log()
        );
        let abort_failed = case.faults.iter().any(|f| {
            matches!(
                f,
                Fault::Fail {
                    op: Operation::AbortMultipartUpload,
                    ..
                }
            )
        });
        if !abort_failed {
            assert_eq!(store.open_uploads(), 0, "{}: upload left open", case.name);
        }
        // Nothing is written after an abort.
        if let Some(at) = store
            .log()
            .iter()
            .position(|c| c.op == Operation::AbortMultipartUpload)
        {
            assert!(
                store.log()[at..]
                    .iter()
                    .all(|c| c.op == Operation::AbortMultipartUpload),
                "{}: {:?}",
                case.name,
                store.log()
            );
        }

        // The retry (no more faults) converges on exactly the clean run's objects.
        store.clear_faults();
        run_with(&store, upload, &ev).await.expect("rerun");
        assert_eq!(
            store.objects(REFINED),
            clean_run.objects(REFINED),
            "{}",
            case.name
        );
        assert_eq!(store.objects(RAW), clean_run.objects(RAW), "{}", case.name);
        assert_eq!(
            store.objects(RAW)["in/users.csv"].as_ref(),
            input,
            "{}",
            case.name
        );
        if !abort_failed {
            assert_eq!(store.open_uploads(), 0, "{}", case.name);
        }
    }
}

#[tokio::test]
async fn large_object_goes_multipart_and_equals_single_shot_processing() {
    // ~30 MB; default 8 MiB parts, S3's 5 MiB minimum enforced by the fake.
    let input = generate(360_000, 10);
    assert!(input.len() > 28_000_000, "{}", input.len());
    let store = FakeStore::new();
    store.insert(INGEST, "big.csv", input.clone());
    let report = run(&store, &event(&["big.csv"])).await.expect("processed");

    let (clean, rejected, summary) = reference(&input);
    let got_clean = store.object(REFINED, &cleaned_key("big")).expect("cleaned");
    let got_rejected = store
        .object(REFINED, &rejected_key("big"))
        .expect("rejected");
    assert!(
        got_clean.as_ref() == clean.as_slice(),
        "cleaned output differs"
    );
    assert!(
        got_rejected.as_ref() == rejected.as_slice(),
        "rejected output differs"
    );
    assert_eq!(store.object(RAW, "big.csv").as_deref(), Some(&input[..]));

    let log = store.log();
    let clean_parts: Vec<usize> = log
        .iter()
        .filter(|c| c.op == Operation::UploadPart && c.key == cleaned_key("big"))
        .map(|c| c.size)
        .collect();
    assert!(clean_parts.len() >= 3, "{clean_parts:?}");
    let part_size = UploadConfig::default().part_size;
    for size in &clean_parts[..clean_parts.len() - 1] {
        // At least a part, at most a part plus one feed's worth of output.
        assert!(
            *size >= part_size && *size < part_size + part_size / 4,
            "{size}"
        );
    }
    assert_eq!(
        store.calls(Operation::CompleteMultipartUpload),
        1 + usize::from(rejected.len() >= part_size)
    );
    assert!(
        store.max_parts_in_flight() == 2,
        "part uploads overlap, two at most: {}",
        store.max_parts_in_flight()
    );
    assert_eq!(store.open_uploads(), 0);

    let f = &report.files[0];
    assert_eq!(f.bytes, input.len() as u64);
    assert_eq!(
        (f.records, f.clean, f.rejected),
        (summary.records, summary.clean, summary.rejected)
    );
    assert_eq!(f.cleaned_bytes, clean.len() as u64);
    assert_eq!(f.rejected_bytes, rejected.len() as u64);
}

#[tokio::test]
async fn one_huge_transport_chunk_still_makes_bounded_parts() {
    let input = generate(20_000, 3);
    let store = FakeStore::new()
        .with_chunk_size(usize::MAX)
        .with_min_part_size(SMALL_PARTS.part_size);
    store.insert(INGEST, "big.csv", input.clone());
    run_with(&store, SMALL_PARTS, &event(&["big.csv"]))
        .await
        .expect("processed");
    let (clean, rejected, _) = reference(&input);
    assert_eq!(
        store.object(REFINED, &cleaned_key("big")).as_deref(),
        Some(&clean[..])
    );
    assert_eq!(
        store.object(REFINED, &rejected_key("big")).as_deref(),
        Some(&rejected[..])
    );
    let largest = store
        .log()
        .iter()
        .filter(|c| c.op == Operation::UploadPart)
        .map(|c| c.size)
        .max()
        .unwrap_or(0);
    assert!(
        largest < 2 * SMALL_PARTS.part_size,
        "largest part {largest}"
    );
}

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8 logs")
            .lines()
            .map(|l| serde_json::from_str(l).expect("every log line is json"))
            .collect()
    }
}

#[tokio::test]
async fn logs_one_json_line_per_file_and_per_failure() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(crate::logging::subscriber(
        move || writer.clone(),
        "info",
    ));
    let store = FakeStore::new();
    store.insert(INGEST, "users.csv", SAMPLE);
    store.insert(INGEST, "b.csv", SAMPLE);
    store.inject(Fault::Fail {
        op: Operation::GetObject,
        nth: 2,
        code: "SlowDown",
    });
    let ev = event(&["users.csv", "b.csv"]);
    Handler::new(
        store.clone(),
        config(UploadConfig::default()),
        MetricsSink::Discard,
    )
    .handle(&ev, "req-42")
    .await
    .expect_err("b.csv fails");

    let lines = logs.lines();
    let processed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "file processed")
        .collect();
    assert_eq!(processed.len(), 1, "{lines:?}");
    let p = processed[0];
    assert_eq!(p["source"], "ingest/users.csv");
    assert_eq!(p["records"], 4);
    assert_eq!(p["clean"], 2);
    assert_eq!(p["rejected"], 2);
    assert_eq!(p["bytes"], SAMPLE.len());
    assert!(p["duration_ms"].is_u64());
    assert_eq!(p["request_id"], "req-42");
    assert_eq!(p["level"], "INFO");

    let failed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "file failed")
        .collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    let f = failed[0];
    assert_eq!(f["code"], "SlowDown");
    assert_eq!(f["operation"], "GetObject");
    assert_eq!(f["bucket"], "ingest");
    assert_eq!(f["key"], "b.csv");
    assert_eq!(f["source"], "ingest/b.csv");
    assert_eq!(f["request_id"], "req-42");
    assert_eq!(f["retryable"], true);
    assert_eq!(f["s3_request_id"], "fake-2");
    assert_eq!(f["level"], "ERROR");
}

#[test]
fn missing_bucket_variables_are_named() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(
        Config::from_lookup(env(&[("REFINED_BUCKET", "r")])),
        Err(ConfigError::Missing("RAW_BUCKET"))
    );
    assert_eq!(
        Config::from_lookup(env(&[("RAW_BUCKET", "r")])).map_err(|e| e.to_string()),
        Err("missing environment variable REFINED_BUCKET".to_owned())
    );
    assert_eq!(
        Config::from_lookup(env(&[("RAW_BUCKET", ""), ("REFINED_BUCKET", "x")])),
        Err(ConfigError::Empty("RAW_BUCKET"))
    );
    let c = Config::from_lookup(env(&[
        ("RAW_BUCKET", "raw"),
        ("REFINED_BUCKET", "refined"),
        ("AWS_LAMBDA_FUNCTION_NAME", "csv-ingest"),
    ]))
    .expect("config");
    assert_eq!(
        (c.raw_bucket.as_str(), c.refined_bucket.as_str()),
        ("raw", "refined")
    );
    assert_eq!(c.function_name, "csv-ingest");
    assert_eq!(c.upload, UploadConfig::default());
}

#[test]
fn the_response_serializes_for_direct_invokes() {
    let report = EventReport::default();
    assert_eq!(
        serde_json::to_value(&report).expect("json"),
        json!({"files": [], "skipped": []})
    );
}
