//! Handler tests through the fake store: layout, ordering, faults, replays, multipart, logs,
//! and the Parquet outputs beside the CSV ones (on by default, `PARQUET_OUTPUT=off`). The S3
//! semantics (versions, newest-wins, limits, time budget, failure classes) are in `semantics`.

mod semantics;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};
use shared::output::{CLEAN_HEADER, CsvOutputs, REJECTED_HEADER};
use shared::parquet::{ParquetError, ParquetOutputs, RowGroupLimits, Table};
use shared::{Processor, Summary};

use crate::copy::CopyConfig;
use crate::fake::{FakeQueue, FakeStore, Fault};
use crate::handler::{
    Config, ConfigError, EventReport, FileError, Handler, HandlerError, Invocation,
};
use crate::metrics::MetricsSink;
use crate::store::Operation;
use crate::upload::UploadConfig;

const INGEST: &str = "ingest";
const RAW: &str = "raw";
const REFINED: &str = "refined";
const SAMPLE: &[u8] = include_bytes!("../../../data/users.csv");
const T: &str = "2025-06-24T15:04:05.123Z";

/// Small parts, so a file of a few hundred KiB exercises multipart.
const SMALL_PARTS: UploadConfig = UploadConfig {
    part_size: 64 * 1024,
    max_parts_in_flight: 2,
    max_parts: 10_000,
};

/// Small row groups to go with small parts: a row group's encoded bytes stay well under a
/// part, so Parquet parts are as bounded as CSV ones and Parquet outputs go multipart too.
const SMALL_ROW_GROUPS: RowGroupLimits = RowGroupLimits {
    rows: 400,
    bytes: 16 * 1024,
};

/// The Parquet row groups that go with `upload` (small parts, small groups).
fn row_groups(upload: UploadConfig) -> RowGroupLimits {
    if upload == UploadConfig::default() {
        RowGroupLimits::default()
    } else {
        SMALL_ROW_GROUPS
    }
}

fn config(upload: UploadConfig) -> Config {
    Config {
        raw_bucket: RAW.to_owned(),
        refined_bucket: REFINED.to_owned(),
        function_name: "csv-ingest-test".to_owned(),
        upload,
        copy: CopyConfig::default(),
        parquet: Some(row_groups(upload)),
        memory_mb: None,
        max_key_bytes: 1024,
        deadline_margin: std::time::Duration::from_secs(5),
        rejected_ratio: None,
    }
}

/// A record as S3 sends it for `key` (URL-encoded as in an event), without the object's size,
/// ETag, version or sequencer (see `object_record`).
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
            "object": {"key": key},
        },
    })
}

/// S3's sequencers grow with each event of a key; one counter for all tests does that.
fn next_sequencer() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0x0055_AED6_DCD9_0281);
    format!("{:018X}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The record S3 sends for the current version of `key` (URL-encoded) in `store`: its size,
/// ETag, version id (in a versioned bucket) and a fresh sequencer.
fn object_record(store: &FakeStore, bucket: &str, key: &str, time: &str) -> Value {
    let decoded = shared::decode_event_key(key).expect("test keys decode");
    let info = store
        .info(bucket, &decoded)
        .unwrap_or_else(|| panic!("no {bucket}/{decoded} in the fake store"));
    let mut r = record(bucket, key, time);
    let object = &mut r["s3"]["object"];
    object["size"] = json!(info.size);
    object["eTag"] = json!(info.e_tag.trim_matches('"'));
    object["sequencer"] = json!(next_sequencer());
    if let Some(v) = info.version_id {
        object["versionId"] = json!(v);
    }
    r
}

fn event_of(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// An event of ingest-bucket records for the current versions of these (URL-encoded) keys,
/// all at `T`.
fn event(store: &FakeStore, keys: &[&str]) -> Value {
    event_of(
        keys.iter()
            .map(|k| object_record(store, INGEST, k, T))
            .collect(),
    )
}

fn handler(store: &FakeStore, config: Config) -> Handler<FakeStore, FakeQueue> {
    Handler::new(
        store.clone(),
        FakeQueue::default(),
        config,
        MetricsSink::Discard,
    )
}

async fn run_with(
    store: &FakeStore,
    upload: UploadConfig,
    ev: &Value,
) -> Result<EventReport, HandlerError> {
    handler(store, config(upload))
        .handle(ev, &Invocation::new("req-test"))
        .await
}

async fn run(store: &FakeStore, ev: &Value) -> Result<EventReport, HandlerError> {
    run_with(store, UploadConfig::default(), ev).await
}

async fn run_without_parquet(
    store: &FakeStore,
    upload: UploadConfig,
    ev: &Value,
) -> Result<EventReport, HandlerError> {
    let config = Config {
        parquet: None,
        ..config(upload)
    };
    handler(store, config)
        .handle(ev, &Invocation::new("req-test"))
        .await
}

/// The Parquet files `shared` writes for the whole input in one go: (clean, rejected).
fn parquet_reference(input: &[u8], limits: RowGroupLimits) -> (Vec<u8>, Vec<u8>) {
    let mut p = Processor::new();
    let mut out = ParquetOutputs::with_limits(limits).expect("parquet writers");
    p.feed(input, &mut out);
    p.finish(&mut out);
    let (mut clean, mut rejected) = (Vec::new(), Vec::new());
    clean.append(out.clean.buffer());
    rejected.append(out.rejected.buffer());
    let (c, r) = out.finish().expect("parquet");
    clean.extend_from_slice(&c);
    rejected.extend_from_slice(&r);
    (clean, rejected)
}

/// The S3 failure of a failed invocation.
fn store_failure(first: &FileError) -> &crate::store::StoreError {
    first
        .store()
        .unwrap_or_else(|| panic!("expected an s3 failure, got {first}"))
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

fn parquet_cleaned_key(stem: &str) -> String {
    format!("curated/users/date=2025-06-24/hour=15/{stem}.parquet")
}

fn parquet_rejected_key(stem: &str) -> String {
    format!("curated/users_rejected/date=2025-06-24/hour=15/{stem}.parquet")
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
        FakeQueue::default(),
        config(UploadConfig::default()),
        MetricsSink::Memory(lines.clone()),
    );
    let report = handler
        .handle(&event(&store, &["users.csv"]), &Invocation::new("req-1"))
        .await
        .expect("processed");

    assert_eq!(store.object(RAW, "users.csv").as_deref(), Some(SAMPLE));
    let refined = store.objects(REFINED);
    assert_eq!(
        refined.keys().cloned().collect::<Vec<_>>(),
        [
            "curated/users/date=2025-06-24/hour=15/users.parquet",
            "curated/users_rejected/date=2025-06-24/hour=15/users.parquet",
            "refined/date=2025-06-24/hour=15/rejected/users_rejected.csv",
            "refined/date=2025-06-24/hour=15/users_cleaned.csv",
        ]
    );
    let (pq_clean, pq_rejected) = parquet_reference(SAMPLE, RowGroupLimits::default());
    assert_eq!(refined[&parquet_cleaned_key("users")], pq_clean);
    for (key, content_type) in [
        (
            parquet_cleaned_key("users"),
            "application/vnd.apache.parquet",
        ),
        (
            parquet_rejected_key("users"),
            "application/vnd.apache.parquet",
        ),
        (cleaned_key("users"), "text/csv"),
        (rejected_key("users"), "text/csv"),
    ] {
        let info = store.info(REFINED, &key).expect("written");
        assert_eq!(info.content_type.as_deref(), Some(content_type), "{key}");
    }
    assert_eq!(refined[&parquet_rejected_key("users")], pq_rejected);
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
    let pq = file.parquet.as_ref().expect("parquet on by default");
    assert_eq!(pq.cleaned_key, parquet_cleaned_key("users"));
    assert_eq!(pq.rejected_key, parquet_rejected_key("users"));
    assert_eq!(pq.cleaned_bytes, pq_clean.len() as u64);
    assert_eq!(pq.rejected_bytes, pq_rejected.len() as u64);
    let json = serde_json::to_value(file).expect("json");
    assert_eq!(json["parquet"]["cleaned_key"], parquet_cleaned_key("users"));
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
    let report = run(&store, &event(&store, &["gen.csv"]))
        .await
        .expect("processed");
    let (clean, rejected, summary) = reference(&input);
    assert_eq!(
        store.object(REFINED, &cleaned_key("gen")).as_deref(),
        Some(&clean[..])
    );
    assert_eq!(
        store.object(REFINED, &rejected_key("gen")).as_deref(),
        Some(&rejected[..])
    );
    let (pq_clean, pq_rejected) = parquet_reference(&input, RowGroupLimits::default());
    assert!(
        store
            .object(REFINED, &parquet_cleaned_key("gen"))
            .as_deref()
            == Some(&pq_clean[..])
    );
    assert!(
        store
            .object(REFINED, &parquet_rejected_key("gen"))
            .as_deref()
            == Some(&pq_rejected[..])
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
    let (pq_clean, pq_rejected) = parquet_reference(&input, RowGroupLimits::default());
    for chunk_size in [1, 2, 3, 7, 64, 4096, 1 << 30] {
        let store = FakeStore::new().with_chunk_size(chunk_size);
        store.insert(INGEST, "gen.csv", input.clone());
        store.insert(INGEST, "users.csv", SAMPLE);
        run(&store, &event(&store, &["gen.csv", "users.csv"]))
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
        assert!(
            store
                .object(REFINED, &parquet_cleaned_key("gen"))
                .as_deref()
                == Some(&pq_clean[..]),
            "chunk size {chunk_size}"
        );
        assert!(
            store
                .object(REFINED, &parquet_rejected_key("gen"))
                .as_deref()
                == Some(&pq_rejected[..]),
            "chunk size {chunk_size}"
        );
    }
}

#[tokio::test]
async fn every_record_of_an_event_is_processed() {
    let store = FakeStore::new();
    for name in ["a.csv", "b.csv", "c.csv"] {
        store.insert(INGEST, name, SAMPLE);
    }
    let report = run(&store, &event(&store, &["a.csv", "b.csv", "c.csv"]))
        .await
        .expect("processed");
    assert_eq!(report.files.len(), 3);
    assert_eq!(store.objects(RAW).len(), 3);
    let refined = store.objects(REFINED);
    assert_eq!(refined.len(), 12);
    for stem in ["a", "b", "c"] {
        assert!(refined.contains_key(&cleaned_key(stem)), "{stem}");
        assert!(refined.contains_key(&rejected_key(stem)), "{stem}");
        assert!(refined.contains_key(&parquet_cleaned_key(stem)), "{stem}");
        assert!(refined.contains_key(&parquet_rejected_key(stem)), "{stem}");
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
        &event(&store, &["incoming/2025+06/my+users%2Bv2+%C3%A9.csv"]),
    )
    .await
    .expect("processed");
    assert_eq!(report.files[0].source, format!("ingest/{decoded}"));
    assert_eq!(store.object(RAW, decoded).as_deref(), Some(SAMPLE));
    let refined: Vec<String> = store.objects(REFINED).into_keys().collect();
    assert_eq!(
        refined,
        [
            "curated/users/date=2025-06-24/hour=15/incoming/2025 06/my users+v2 é.parquet",
            "curated/users_rejected/date=2025-06-24/hour=15/incoming/2025 06/my users+v2 é.parquet",
            "refined/date=2025-06-24/hour=15/incoming/2025 06/my users+v2 é_cleaned.csv",
            "refined/date=2025-06-24/hour=15/incoming/2025 06/rejected/my users+v2 é_rejected.csv",
        ]
    );
}

#[tokio::test]
async fn folder_markers_and_other_events_are_skipped_and_unusable_records_sent_to_the_queue() {
    let store = FakeStore::new();
    store.insert(INGEST, "users.csv", SAMPLE);
    let mut not_created = record(INGEST, "users.csv", T);
    not_created["eventName"] = json!("ObjectRemoved:Delete");
    let mut no_bucket = record(INGEST, "users.csv", T);
    no_bucket["s3"]["bucket"]["name"] = Value::Null;
    let ev = event_of(vec![
        record(INGEST, "incoming/", T),
        record(INGEST, "incoming%2Fsub%2F", T),
        // An object in an output bucket would make the function trigger itself.
        record(REFINED, "refined/x.csv", T),
        record(RAW, "users.csv", T),
        not_created,
        // `%FF` is not UTF-8: no object can have this key.
        record(INGEST, "bad%FF.csv", T),
        no_bucket,
        object_record(&store, INGEST, "users.csv", T),
    ]);
    let queue = FakeQueue::default();
    let report = Handler::new(
        store.clone(),
        queue.clone(),
        config(UploadConfig::default()),
        MetricsSink::Discard,
    )
    .handle(&ev, &Invocation::new("req-test"))
    .await
    .expect("skips and permanent failures do not fail the invocation");
    assert_eq!(report.files.len(), 1);
    let skipped: Vec<usize> = report.skipped.iter().map(|s| s.index).collect();
    assert_eq!(skipped, [0, 1, 2, 3, 4]);
    assert_eq!(
        report.skipped[0].reason,
        "key ends with / (a folder marker)"
    );
    assert!(report.skipped[2].reason.contains("refusing to loop"));
    assert!(report.skipped[4].reason.contains("not an object creation"));
    let failed: Vec<usize> = report.failed.iter().map(|f| f.index).collect();
    assert_eq!(failed, [5, 6]);
    assert!(
        report
            .failed
            .iter()
            .all(|f| f.reason == "unparseable_event")
    );
    assert!(
        report.failed[0].message.contains("UTF-8"),
        "{:?}",
        report.failed[0]
    );
    // Each unusable record is in the queue with the record itself, for `redrive`.
    let messages = queue.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["record"]["s3"]["object"]["key"], "bad%FF.csv");
    assert_eq!(messages[0]["kind"], shared::failure::KIND);
    // Only the good record touched storage.
    assert!(store.log().iter().all(|c| c.key.contains("users")));
    assert_eq!(store.calls(Operation::CopyObject), 1);
}

#[tokio::test]
async fn raw_copy_comes_before_anything_else_for_each_file() {
    let store = FakeStore::new().with_min_part_size(SMALL_PARTS.part_size);
    store.insert(INGEST, "big.csv", generate(6_000, 5));
    store.insert(INGEST, "users.csv", SAMPLE);
    run_with(
        &store,
        SMALL_PARTS,
        &event(&store, &["big.csv", "users.csv"]),
    )
    .await
    .expect("processed");
    let log = store.log();
    assert!(
        store.calls(Operation::UploadPart) > 2,
        "multipart was exercised"
    );
    // The source file a call is about, from the file name of its key.
    let of = |c: &crate::fake::Call| -> String {
        let file = c.key.rsplit('/').next().unwrap_or_default();
        ["_cleaned.csv", "_rejected.csv", ".csv", ".parquet"]
            .iter()
            .find_map(|suffix| file.strip_suffix(suffix))
            .unwrap_or(file)
            .to_owned()
    };
    for name in ["big", "users"] {
        let of_file: Vec<_> = log.iter().filter(|c| of(c) == name).collect();
        assert_eq!(of_file[0].op, Operation::CopyObject, "{name}: {of_file:?}");
        assert_eq!(of_file[0].bucket, RAW);
        // Then the stamps of the four outputs are read, then the same version is streamed.
        assert!(
            of_file[1..5]
                .iter()
                .all(|c| c.op == Operation::HeadObject && c.bucket == REFINED),
            "{name}: {of_file:?}"
        );
        assert_eq!(of_file[5].op, Operation::GetObject, "{name}");
        assert_eq!(
            of_file[5].pin, of_file[0].pin,
            "{name}: copy and read pinned alike"
        );
        assert!(of_file[6..].iter().all(|c| c.bucket == REFINED), "{name}");
    }
    // Files are handled one after the other.
    let first_users = log.iter().position(|c| of(c) == "users").expect("users");
    assert!(log[..first_users].iter().all(|c| of(c) == "big"));
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
            "curated/users/date=2020-01-02/hour=03/users.parquet",
            "curated/users/date=2025-06-23/hour=23/users.parquet",
            "curated/users_rejected/date=2020-01-02/hour=03/users.parquet",
            "curated/users_rejected/date=2025-06-23/hour=23/users.parquet",
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
    let ev = event(&store, &["big.csv", "dir/users.csv"]);
    run_with(&store, SMALL_PARTS, &ev).await.expect("first");
    let raw = store.objects(RAW);
    let refined = store.objects(REFINED);
    assert_eq!(refined.len(), 8);
    assert!(
        store
            .log()
            .iter()
            .any(|c| c.op == Operation::UploadPart && c.key.ends_with("big.parquet")),
        "a parquet output went multipart"
    );
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
    let report = run(
        &store,
        &event(&store, &["clean.csv", "header.csv", "empty.csv"]),
    )
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
    // Parquet outputs without rows are still written, as valid files with no row group.
    let (empty_clean, empty_rejected) = parquet_reference(b"", RowGroupLimits::default());
    assert!(empty_clean.starts_with(b"PAR1") && empty_clean.ends_with(b"PAR1"));
    assert_eq!(
        store
            .object(REFINED, &parquet_rejected_key("clean"))
            .as_deref(),
        Some(&empty_rejected[..])
    );
    for stem in ["header", "empty"] {
        assert_eq!(
            store.object(REFINED, &parquet_cleaned_key(stem)).as_deref(),
            Some(&empty_clean[..]),
            "{stem}"
        );
        assert_eq!(
            store
                .object(REFINED, &parquet_rejected_key(stem))
                .as_deref(),
            Some(&empty_rejected[..]),
            "{stem}"
        );
    }
}

#[tokio::test]
async fn reprocessing_a_changed_file_leaves_no_stale_output() {
    // First version has rejected rows; the second, same key and hour, has none: its rejected
    // output must be rewritten (header only), not left from the first run.
    let store = FakeStore::new();
    store.insert(INGEST, "users.csv", SAMPLE);
    run(&store, &event(&store, &["users.csv"]))
        .await
        .expect("v1");
    store.insert(
        INGEST,
        "users.csv",
        &b"id,name,email,create_ts,update_ts\n1,A,a@b.co,2025-01-01T00:00:00Z,2025-01-01T00:00:00Z\n"[..],
    );
    run(&store, &event(&store, &["users.csv"]))
        .await
        .expect("v2");
    assert_eq!(
        store.object(REFINED, &rejected_key("users")).as_deref(),
        Some(format!("{REJECTED_HEADER}\n").as_bytes())
    );
    assert_eq!(
        store
            .object(REFINED, &parquet_rejected_key("users"))
            .as_deref(),
        Some(&parquet_reference(b"", RowGroupLimits::default()).1[..])
    );
}

#[tokio::test]
async fn a_failing_record_does_not_stop_the_others() {
    let store = FakeStore::new();
    store.insert(INGEST, "a.csv", SAMPLE);
    store.insert(INGEST, "b.csv", SAMPLE);
    let ev = event(&store, &["a.csv", "b.csv"]);
    // Throttled on a.csv's copy, three times: more than the SDK would retry.
    store.inject(Fault::FailOn {
        op: Operation::CopyObject,
        key: "a.csv",
        nth: 1,
        code: "SlowDown",
    });
    let err = run(&store, &ev).await.expect_err("a.csv fails");
    let HandlerError::Records {
        failed,
        total,
        first,
    } = &err;
    assert_eq!((*failed, *total), (1, 2));
    let first = store_failure(first);
    assert_eq!(first.operation, Operation::CopyObject);
    assert_eq!(first.code.as_deref(), Some("SlowDown"));
    assert!(first.retryable);
    assert!(store.object(REFINED, &cleaned_key("b")).is_some());
    let diagnostic = Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "S3.CopyObject.SlowDown");
    assert!(diagnostic.error_message.starts_with("1 of 2 records failed; first failure: s3 CopyObject failed for s3://raw/a.csv (SlowDown)"), "{}", diagnostic.error_message);
}

/// The four refined outputs of `in/users.csv`, in commit order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    ParquetCleaned,
    ParquetRejected,
    Cleaned,
    Rejected,
}

impl Out {
    const ALL: [Out; 4] = [
        Out::ParquetCleaned,
        Out::ParquetRejected,
        Out::Cleaned,
        Out::Rejected,
    ];

    fn key(self) -> &'static str {
        match self {
            Out::ParquetCleaned => "curated/users/date=2025-06-24/hour=15/in/users.parquet",
            Out::ParquetRejected => {
                "curated/users_rejected/date=2025-06-24/hour=15/in/users.parquet"
            }
            Out::Cleaned => "refined/date=2025-06-24/hour=15/in/users_cleaned.csv",
            Out::Rejected => "refined/date=2025-06-24/hour=15/in/rejected/users_rejected.csv",
        }
    }

    fn is_parquet(self) -> bool {
        matches!(self, Out::ParquetCleaned | Out::ParquetRejected)
    }
}

struct FaultCase {
    name: &'static str,
    big: bool,
    faults: Vec<Fault>,
    op: Operation,
    /// The output the fault targets, when it targets one.
    target: Option<Out>,
    /// What the failed run leaves visible in the refined bucket: whole objects committed
    /// before the failing call (S3 cannot commit several objects atomically), never a partial
    /// one. With Parquet off, only the CSV ones of these.
    leaves: &'static [Out],
    /// At least this many `AbortMultipartUpload` calls (with Parquet on).
    aborts: usize,
}

fn fault_cases() -> Vec<FaultCase> {
    use Operation::*;
    let fail = |op, nth| Fault::Fail {
        op,
        nth,
        code: "InternalError",
    };
    let fail_on = |op, out: Out| Fault::FailOn {
        op,
        key: out.key(),
        nth: 1,
        code: "InternalError",
    };
    let case = |name, big, faults, op, target, leaves, aborts| FaultCase {
        name,
        big,
        faults,
        op,
        target,
        leaves,
        aborts,
    };
    let mut cases = vec![
        case(
            "copy",
            false,
            vec![fail(CopyObject, 1)],
            CopyObject,
            None,
            &[][..],
            0,
        ),
        case(
            "get",
            false,
            vec![fail(GetObject, 1)],
            GetObject,
            None,
            &[],
            0,
        ),
        case(
            "get mid-stream (single put)",
            false,
            vec![Fault::GetMidStream { nth: 1, after: 100 }],
            GetObject,
            None,
            &[],
            0,
        ),
        case(
            "get mid-stream (multipart)",
            true,
            vec![Fault::GetMidStream {
                nth: 1,
                after: 600_000,
            }],
            GetObject,
            None,
            &[],
            1,
        ),
        case(
            "upload part 3",
            true,
            vec![fail(UploadPart, 3)],
            UploadPart,
            None,
            &[],
            1,
        ),
        case(
            "upload part 2 and the abort too",
            true,
            vec![fail(UploadPart, 2), fail(AbortMultipartUpload, 1)],
            UploadPart,
            None,
            &[],
            1,
        ),
    ];
    // Each output's single put (small file), create, first part and completion (big file).
    let committed_before = |out: Out| {
        let i = Out::ALL.iter().position(|o| *o == out).unwrap_or(0);
        &Out::ALL[..i]
    };
    for out in Out::ALL {
        let before = committed_before(out);
        cases.push(case(
            "put",
            false,
            vec![fail_on(PutObject, out)],
            PutObject,
            Some(out),
            before,
            0,
        ));
        cases.push(case(
            "create multipart",
            true,
            vec![fail_on(CreateMultipartUpload, out)],
            CreateMultipartUpload,
            Some(out),
            &[],
            0,
        ));
        cases.push(case(
            "upload part 1",
            true,
            vec![fail_on(UploadPart, out)],
            UploadPart,
            Some(out),
            &[],
            1,
        ));
        cases.push(case(
            "complete",
            true,
            vec![fail_on(CompleteMultipartUpload, out)],
            CompleteMultipartUpload,
            Some(out),
            before,
            // The failed upload and the ones after it are aborted.
            Out::ALL.len() - before.len(),
        ));
    }
    cases
}

#[tokio::test]
async fn a_fault_at_each_call_fails_the_invocation_and_a_rerun_matches_a_clean_run() {
    let big = generate(12_000, 3); // ~1 MB: all four outputs go multipart with 64 KiB parts
    let upload = SMALL_PARTS;
    let fresh = |input: &[u8]| {
        let store = FakeStore::new().with_min_part_size(upload.part_size);
        store.insert(INGEST, "in/users.csv", input.to_vec());
        store
    };
    for parquet in [true, false] {
        let run = |store: FakeStore| {
            let ev = event(&store, &["in/users.csv"]);
            async move {
                if parquet {
                    run_with(&store, upload, &ev).await
                } else {
                    run_without_parquet(&store, upload, &ev).await
                }
            }
        };
        let outputs: Vec<Out> = Out::ALL
            .into_iter()
            .filter(|o| parquet || !o.is_parquet())
            .collect();
        for case in fault_cases() {
            if !parquet && case.target.is_some_and(Out::is_parquet) {
                continue;
            }
            let name = format!(
                "{} {} (parquet {})",
                case.name,
                case.target.map_or("", |o| o.key()),
                if parquet { "on" } else { "off" }
            );
            let input: &[u8] = if case.big { &big } else { SAMPLE };
            let clean_run = fresh(input);
            run(clean_run.clone()).await.expect("clean run");
            let committed: Vec<String> = clean_run
                .log()
                .iter()
                .filter(|c| {
                    matches!(
                        c.op,
                        Operation::PutObject | Operation::CompleteMultipartUpload
                    )
                })
                .map(|c| c.key.clone())
                .collect();
            assert_eq!(
                committed,
                outputs.iter().map(|o| o.key()).collect::<Vec<_>>(),
                "{name}: commit order"
            );
            let expect_op = if case.big {
                Operation::CompleteMultipartUpload
            } else {
                Operation::PutObject
            };
            assert_eq!(
                clean_run.calls(expect_op),
                outputs.len(),
                "{name}: every output {}",
                if case.big {
                    "multipart"
                } else {
                    "a single put"
                }
            );
            if case.big {
                assert!(clean_run.calls(Operation::UploadPart) >= 2 * outputs.len());
            }

            let store = fresh(input);
            for fault in &case.faults {
                store.inject(fault.clone());
            }
            let err = run(store.clone()).await.expect_err(&name);
            let HandlerError::Records { first, failed, .. } = &err;
            assert_eq!(*failed, 1, "{name}");
            let first = store_failure(first);
            assert_eq!(first.operation, case.op, "{name}: {first}");
            assert_eq!(
                first.bucket,
                if case.op == Operation::GetObject {
                    INGEST
                } else if case.op == Operation::CopyObject {
                    RAW
                } else {
                    REFINED
                },
                "{name}"
            );
            if let Some(target) = case.target {
                assert_eq!(first.key, target.key(), "{name}");
            }

            let visible = store.objects(REFINED);
            let expected: Vec<&str> = case
                .leaves
                .iter()
                .filter(|o| parquet || !o.is_parquet())
                .map(|o| o.key())
                .collect();
            let mut got: Vec<&str> = visible.keys().map(String::as_str).collect();
            got.sort_by_key(|k| Out::ALL.iter().position(|o| o.key() == *k));
            assert_eq!(got, expected, "{name}");
            for key in &got {
                assert_eq!(
                    visible[*key],
                    clean_run.objects(REFINED)[*key],
                    "{name}: {key} is complete"
                );
            }
            if parquet {
                assert!(
                    store.calls(Operation::AbortMultipartUpload) >= case.aborts,
                    "{name}: {:?}",
                    store.log()
                );
            }
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
                assert_eq!(store.open_uploads(), 0, "{name}: upload left open");
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
                    "{name}: {:?}",
                    store.log()
                );
            }

            // The retry (no more faults) converges on exactly the clean run's objects.
            store.clear_faults();
            run(store.clone()).await.expect("rerun");
            assert_eq!(store.objects(REFINED), clean_run.objects(REFINED), "{name}");
            assert_eq!(store.objects(RAW), clean_run.objects(RAW), "{name}");
            assert_eq!(store.objects(RAW)["in/users.csv"].as_ref(), input, "{name}");
            if !abort_failed {
                assert_eq!(store.open_uploads(), 0, "{name}");
            }
        }
    }
}

#[tokio::test]
async fn large_object_goes_multipart_and_equals_single_shot_processing() {
    // ~40 MB, so the clean Parquet file is well past one part too; default 5 MiB parts, S3's
    // 5 MiB minimum enforced by the fake.
    let input = generate(480_000, 10);
    assert!(input.len() > 28_000_000, "{}", input.len());
    let store = FakeStore::new();
    store.insert(INGEST, "big.csv", input.clone());
    let report = run(&store, &event(&store, &["big.csv"]))
        .await
        .expect("processed");

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
        .map(|c| c.size as usize)
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
    // Every output that outgrew a part went multipart, the Parquet ones included.
    let (pq_clean, pq_rejected) = parquet_reference(&input, RowGroupLimits::default());
    let outgrown = [
        clean.len(),
        rejected.len(),
        pq_clean.len(),
        pq_rejected.len(),
    ]
    .into_iter()
    .filter(|&len| len >= part_size)
    .count();
    assert!(
        pq_clean.len() >= part_size,
        "the clean Parquet file outgrew a part too"
    );
    assert!(outgrown >= 2, "{outgrown}");
    assert_eq!(store.calls(Operation::CompleteMultipartUpload), outgrown);
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
    let (pq_clean, pq_rejected) = parquet_reference(&input, RowGroupLimits::default());
    let pq = f.parquet.as_ref().expect("parquet report");
    assert_eq!(pq.cleaned_bytes, pq_clean.len() as u64);
    assert!(store.object(REFINED, &pq.cleaned_key).as_deref() == Some(&pq_clean[..]));
    assert!(store.object(REFINED, &pq.rejected_key).as_deref() == Some(&pq_rejected[..]));
}

#[tokio::test]
async fn one_huge_transport_chunk_still_makes_bounded_parts() {
    let input = generate(20_000, 3);
    let store = FakeStore::new()
        .with_chunk_size(usize::MAX)
        .with_min_part_size(SMALL_PARTS.part_size);
    store.insert(INGEST, "big.csv", input.clone());
    run_with(&store, SMALL_PARTS, &event(&store, &["big.csv"]))
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
        .map(|c| c.size as usize)
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
    let ev = event(&store, &["users.csv", "b.csv"]);
    handler(&store, config(UploadConfig::default()))
        .handle(&ev, &Invocation::new("req-42"))
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
    assert_eq!(p["parquet_cleaned_key"], parquet_cleaned_key("users"));
    assert_eq!(p["parquet_rejected_key"], parquet_rejected_key("users"));

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
        json!({"files": [], "skipped": [], "gone": [], "superseded": [], "failed": [], "test_event": false})
    );
}

#[test]
fn parquet_output_is_on_unless_switched_off() {
    let env = |parquet: Option<&'static str>| {
        move |name: &str| match name {
            "RAW_BUCKET" => Some("raw".to_owned()),
            "REFINED_BUCKET" => Some("refined".to_owned()),
            "PARQUET_OUTPUT" => parquet.map(str::to_owned),
            _ => None,
        }
    };
    let on = Some(RowGroupLimits::default());
    for (value, expected) in [
        (None, on),
        (Some("on"), on),
        (Some(""), on),
        (Some("off"), None),
        (Some(" OFF "), None),
    ] {
        let c = Config::from_lookup(env(value)).expect("config");
        assert_eq!(c.parquet, expected, "PARQUET_OUTPUT={value:?}");
    }
}

#[tokio::test]
async fn parquet_off_writes_only_the_csv_outputs() {
    let input = generate(3_000, 4);
    let on = FakeStore::new();
    on.insert(INGEST, "gen.csv", input.clone());
    run(&on, &event(&on, &["gen.csv"]))
        .await
        .expect("parquet on");

    let off = FakeStore::new();
    off.insert(INGEST, "gen.csv", input.clone());
    let report = run_without_parquet(&off, UploadConfig::default(), &event(&off, &["gen.csv"]))
        .await
        .expect("parquet off");
    let refined = off.objects(REFINED);
    assert_eq!(
        refined.keys().collect::<Vec<_>>(),
        [&cleaned_key("gen"), &rejected_key("gen")]
    );
    assert!(off.log().iter().all(|c| !c.key.contains("curated/")));
    // The CSV outputs do not depend on the switch.
    for key in [cleaned_key("gen"), rejected_key("gen")] {
        assert_eq!(refined[&key], on.objects(REFINED)[&key], "{key}");
    }
    let file = &report.files[0];
    assert!(file.parquet.is_none());
    let json = serde_json::to_value(file).expect("json");
    assert!(json.get("parquet").is_none(), "{json}");
}

#[tokio::test]
async fn parquet_replays_are_byte_identical_across_handlers_and_chunkings() {
    let input = generate(5_000, 6);
    let mut seen: Option<(Bytes, Bytes)> = None;
    for chunk_size in [1_000, 64 * 1024, usize::MAX] {
        // A fresh handler and store each time, as a retried invocation on a new instance.
        let store = FakeStore::new()
            .with_chunk_size(chunk_size)
            .with_min_part_size(SMALL_PARTS.part_size);
        store.insert(INGEST, "gen.csv", input.clone());
        run_with(&store, SMALL_PARTS, &event(&store, &["gen.csv"]))
            .await
            .expect("processed");
        run_with(&store, SMALL_PARTS, &event(&store, &["gen.csv"]))
            .await
            .expect("replayed");
        let clean = store
            .object(REFINED, &parquet_cleaned_key("gen"))
            .expect("parquet cleaned");
        let rejected = store
            .object(REFINED, &parquet_rejected_key("gen"))
            .expect("parquet rejected");
        let (want_clean, want_rejected) = parquet_reference(&input, SMALL_ROW_GROUPS);
        assert!(clean == want_clean, "chunk size {chunk_size}");
        assert!(rejected == want_rejected, "chunk size {chunk_size}");
        if let Some((c, r)) = &seen {
            assert!(*c == clean && *r == rejected, "chunk size {chunk_size}");
        }
        seen = Some((clean, rejected));
    }
}

#[test]
fn an_encoding_failure_is_permanent_and_a_deadline_transient() {
    use crate::handler::{Stop, classify};
    let outcome = classify(
        Stop::Parquet(ParquetError {
            table: Table::Rejected,
            message: "boom".to_owned(),
        }),
        std::time::Duration::from_secs(5),
    );
    let Ok(crate::handler::Outcome::Permanent(p)) = outcome else {
        panic!("an encoding failure is permanent");
    };
    assert_eq!(p.reason, "encoding_error");
    assert!(p.message.contains("boom"), "{}", p.message);
    let deadline = classify(
        Stop::Deadline("processing"),
        std::time::Duration::from_secs(5),
    );
    let Err(e) = deadline else {
        panic!("a deadline is transient");
    };
    assert!(matches!(e, FileError::Deadline { .. }));
    let err = HandlerError::Records {
        failed: 1,
        total: 1,
        first: e,
    };
    assert_eq!(Diagnostic::from(err).error_type, "Deadline");
}
