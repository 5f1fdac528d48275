//! The deployed pipeline with the real function on ministack: an S3 event replayed three times
//! changes nothing, and 200 files uploaded at once are each processed exactly once (SPEC §4).
//! Every file has four outputs in the refined bucket: the cleaned and rejected CSVs under
//! `refined/` and their Parquet copies under `curated/` (`OutputKeys`). Each test deploys a
//! stack of its own with the zip at `CSV_INGEST_TEST_ARTIFACT` and tears it down at the end;
//! the expected outputs (all four, byte for byte) are computed locally with `shared`.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use deployer::aws::Aws;
use deployer::config::Config;
use deployer::resources::Deletion;
use deployer::stack::Names;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Value, json};
use shared::output::{
    CLEAN_HEADER, CsvOutputs, REJECTED_HEADER, parse_clean_csv, parse_rejected_csv,
};
use shared::{OutputKeys, Processor, Summary, Timestamp, decode_event_key};
use support::Stack;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A stack of its own with the real function, deployed through the library as the `up`
/// command does, and converged: a second plan is empty (the real artifact really is deployed).
async fn deploy(test: &str, extra: &str) -> Stack {
    let stack = Stack::real(test, extra).await;
    stack
        .up()
        .await
        .unwrap_or_else(|e| panic!("deploying the stack: {e:?}"));
    let after = stack.plan().await;
    assert!(after.is_empty(), "not converged after up: {after}");
    stack
}

/// `down --purge`: everything ours goes, versioned raw bucket included.
async fn teardown(stack: &Stack) {
    let removed = support::down(&stack.config, true)
        .await
        .unwrap_or_else(|e| panic!("down --purge: {e:?}"));
    assert!(
        removed
            .iter()
            .all(|r| matches!(r.deletion, Deletion::Deleted | Deletion::Absent)),
        "down --purge left something: {removed:?}"
    );
}

/// The pipeline's own helper on the shared stack.
impl Stack {
    fn buckets(&self) -> (&str, &str, &str) {
        let b = &self.config.buckets;
        (&b.ingest, &b.raw, &b.refined)
    }
}

/// Deploys a stack, runs `body` on it, tears the stack down whatever happened, then re-raises
/// the body's panic (so a failed assertion still cleans up).
async fn with_stack<F, Fut>(test: &str, extra: &str, body: F)
where
    F: FnOnce(Arc<Stack>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stack = Arc::new(deploy(test, extra).await);
    let outcome = tokio::spawn(body(stack.clone())).await;
    teardown(&stack).await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test body did not finish: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Expected outputs, computed locally.

/// What the function must write for one input: the four outputs are always all written, the
/// CSVs header-only and the Parquet files without a row group when they have no row (the
/// function's `OutputUpload::prepare`, `ParquetOutputs::finish`).
struct Expected {
    summary: Summary,
    cleaned: Vec<u8>,
    rejected: Vec<u8>,
    parquet_cleaned: Vec<u8>,
    parquet_rejected: Vec<u8>,
}

fn expected(input: &[u8]) -> Expected {
    let mut outputs = CsvOutputs::new();
    let mut processor = Processor::new();
    processor.feed(input, &mut outputs);
    let summary = processor.finish(&mut outputs);
    let or_header = |bytes: Vec<u8>, header: &str| {
        if bytes.is_empty() {
            format!("{header}\n").into_bytes()
        } else {
            bytes
        }
    };
    // The Parquet writer is deterministic (the bytes depend only on the rows), so the
    // function's files are these bytes exactly.
    let (parquet_cleaned, parquet_rejected) =
        shared::parquet::encode(input).unwrap_or_else(|e| panic!("{e}"));
    Expected {
        summary,
        cleaned: or_header(outputs.clean, CLEAN_HEADER),
        rejected: or_header(outputs.rejected, REJECTED_HEADER),
        parquet_cleaned,
        parquet_rejected,
    }
}

/// Reads both outputs back and checks the contract's accounting against the local run:
/// clean + rejected = records, and the bytes are exactly the local processor's.
fn check_outputs(
    what: &str,
    cleaned: &[u8],
    rejected: &[u8],
    want: &Expected,
) -> Result<(u64, u64), String> {
    let clean = parse_clean_csv(cleaned).map_err(|e| format!("{what}: cleaned output: {e}"))?;
    let bad = parse_rejected_csv(rejected).map_err(|e| format!("{what}: rejected output: {e}"))?;
    let (c, r) = (clean.len() as u64, bad.len() as u64);
    let s = &want.summary;
    if c + r != s.records || c != s.clean || r != s.rejected {
        return Err(format!(
            "{what}: {c} clean + {r} rejected rows in the outputs, {} records ({} clean, {} rejected) in the input",
            s.records, s.clean, s.rejected
        ));
    }
    if cleaned != want.cleaned {
        return Err(format!(
            "{what}: cleaned output differs from local processing ({} bytes, {} expected)",
            cleaned.len(),
            want.cleaned.len()
        ));
    }
    if rejected != want.rejected {
        return Err(format!(
            "{what}: rejected output differs from local processing ({} bytes, {} expected)",
            rejected.len(),
            want.rejected.len()
        ));
    }
    Ok((c, r))
}

/// Every row of a Parquet output, as (column, value) pairs in schema order (timestamps as
/// microseconds, strings as they are).
fn parquet_rows(file: &[u8]) -> Result<Vec<Vec<(String, String)>>, String> {
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(file))
        .map_err(|e| format!("not a parquet file: {e}"))?;
    let mut out = Vec::new();
    for row in reader.get_row_iter(None).map_err(|e| e.to_string())? {
        let row = row.map_err(|e| e.to_string())?;
        let mut values = Vec::new();
        for (name, field) in row.get_column_iter() {
            let value = match field {
                Field::Str(s) => s.clone(),
                Field::Long(n) | Field::TimestampMicros(n) => n.to_string(),
                other => return Err(format!("column {name}: unexpected value {other:?}")),
            };
            values.push((name.clone(), value));
        }
        out.push(values);
    }
    Ok(out)
}

/// The values of column `name` in rows read by `parquet_rows`.
fn parquet_column(rows: &[Vec<(String, String)>], name: &str) -> Vec<String> {
    rows.iter()
        .map(|row| {
            row.iter()
                .find(|(column, _)| column == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("no column {name} in {row:?}"))
        })
        .collect()
}

/// The same as `check_outputs` for the two Parquet copies: both read back, clean + rejected =
/// records, and the bytes are exactly the local writer's.
fn check_parquet(
    what: &str,
    cleaned: &[u8],
    rejected: &[u8],
    want: &Expected,
) -> Result<(u64, u64), String> {
    let clean = parquet_rows(cleaned).map_err(|e| format!("{what}: clean parquet output: {e}"))?;
    let bad =
        parquet_rows(rejected).map_err(|e| format!("{what}: rejected parquet output: {e}"))?;
    let (c, r) = (clean.len() as u64, bad.len() as u64);
    let s = &want.summary;
    if c + r != s.records || c != s.clean || r != s.rejected {
        return Err(format!(
            "{what}: {c} clean + {r} rejected rows in the parquet outputs, {} records ({} clean, {} rejected) in the input",
            s.records, s.clean, s.rejected
        ));
    }
    if cleaned != want.parquet_cleaned {
        return Err(format!(
            "{what}: clean parquet output differs from local processing ({} bytes, {} expected)",
            cleaned.len(),
            want.parquet_cleaned.len()
        ));
    }
    if rejected != want.parquet_rejected {
        return Err(format!(
            "{what}: rejected parquet output differs from local processing ({} bytes, {} expected)",
            rejected.len(),
            want.parquet_rejected.len()
        ));
    }
    Ok((c, r))
}

// ---------------------------------------------------------------------------------------------
// S3 helpers.

#[derive(Clone, Debug, PartialEq, Eq)]
struct Listed {
    key: String,
    etag: Option<String>,
    size: i64,
    last_modified_ms: Option<i64>,
}

/// Every current object of `bucket` (ListObjectsV2, all pages).
async fn list(aws: &Aws, bucket: &str) -> Vec<Listed> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = aws
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("listing s3://{bucket}: {e:?}"));
        for o in page.contents() {
            out.push(Listed {
                key: o.key().unwrap_or_default().to_owned(),
                etag: o.e_tag().map(str::to_owned),
                size: o.size().unwrap_or(-1),
                last_modified_ms: o.last_modified().and_then(|t| t.to_millis().ok()),
            });
        }
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => break,
        }
    }
    out
}

/// Every version and delete marker of `bucket` as (key, version id, is latest, etag, is a
/// delete marker) (ListObjectVersions, all pages).
async fn versions(aws: &Aws, bucket: &str) -> Vec<(String, String, bool, String, bool)> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = aws
            .s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("listing versions of s3://{bucket}: {e:?}"));
        for v in page.versions() {
            out.push((
                v.key().unwrap_or_default().to_owned(),
                v.version_id().unwrap_or_default().to_owned(),
                v.is_latest() == Some(true),
                v.e_tag().unwrap_or_default().to_owned(),
                false,
            ));
        }
        for m in page.delete_markers() {
            out.push((
                m.key().unwrap_or_default().to_owned(),
                m.version_id().unwrap_or_default().to_owned(),
                m.is_latest() == Some(true),
                String::new(),
                true,
            ));
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        if key_marker.is_none() && version_marker.is_none() {
            break;
        }
    }
    out
}

async fn get(aws: &Aws, bucket: &str, key: &str) -> (Vec<u8>, Option<String>) {
    let out = aws
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObject s3://{bucket}/{key}: {e:?}"));
    let etag = out.e_tag().map(str::to_owned);
    let bytes = out
        .body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("reading s3://{bucket}/{key}: {e}"))
        .into_bytes()
        .to_vec();
    (bytes, etag)
}

/// Gets many objects, at most 32 at a time.
async fn get_all(aws: &Aws, bucket: &str, keys: &[String]) -> HashMap<String, Vec<u8>> {
    let limit = Arc::new(Semaphore::new(32));
    let mut tasks = JoinSet::new();
    for key in keys {
        let (aws, bucket, key, limit) =
            (aws.clone(), bucket.to_owned(), key.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            let (bytes, _) = get(&aws, &bucket, &key).await;
            (key, bytes)
        });
    }
    let mut out = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (key, bytes) = done.expect("a GetObject task panicked");
        out.insert(key, bytes);
    }
    out
}

/// One object in a snapshot: its bytes and ETag.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Object {
    bytes: Vec<u8>,
    etag: Option<String>,
    listed_etag: Option<String>,
}

/// Every current object of the buckets, keyed `bucket/key`.
async fn snapshot(aws: &Aws, buckets: &[&str]) -> BTreeMap<String, Object> {
    let mut out = BTreeMap::new();
    for bucket in buckets {
        for o in list(aws, bucket).await {
            let (bytes, etag) = get(aws, bucket, &o.key).await;
            out.insert(
                format!("{bucket}/{}", o.key),
                Object {
                    bytes,
                    etag,
                    listed_etag: o.etag,
                },
            );
        }
    }
    out
}

/// The differences between two snapshots, for an assertion message.
fn snapshot_diff(a: &BTreeMap<String, Object>, b: &BTreeMap<String, Object>) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => None,
            (Some(x), Some(y)) => Some(format!(
                "{k}: {} bytes etag {:?} -> {} bytes etag {:?}",
                x.bytes.len(),
                x.etag,
                y.bytes.len(),
                y.etag
            )),
            (Some(_), None) => Some(format!("{k}: disappeared")),
            (None, _) => Some(format!("{k}: appeared")),
        })
        .collect()
}

use deployer::reprocess::encode_event_key;

/// What S3's event says of an uploaded object version.
struct Uploaded {
    size: usize,
    e_tag: String,
    version_id: String,
    sequencer: String,
}

/// Uploads `body` to `bucket/key`; `sequencer` is what S3's event for it would carry.
async fn upload(aws: &Aws, bucket: &str, key: &str, body: &[u8], sequencer: u64) -> Uploaded {
    let out = aws
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .content_type("text/csv")
        .send()
        .await
        .unwrap_or_else(|e| panic!("uploading s3://{bucket}/{key}: {e:?}"));
    Uploaded {
        size: body.len(),
        e_tag: out.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
        version_id: out.version_id().unwrap_or_default().to_owned(),
        sequencer: format!("{sequencer:016X}"),
    }
}

/// A one-record `ObjectCreated:Put` event, as S3 sends it to Lambda.
fn s3_event(bucket: &str, key: &str, object: &Uploaded, event_time: &str) -> Value {
    json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": event_time,
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "EXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "REPLAY", "x-amz-id-2": "REPLAY"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "replay",
                "bucket": {
                    "name": bucket,
                    "ownerIdentity": {"principalId": "EXAMPLE"},
                    "arn": format!("arn:aws:s3:::{bucket}"),
                },
                "object": {
                    "key": encode_event_key(key),
                    "size": object.size,
                    "eTag": object.e_tag,
                    "versionId": object.version_id,
                    "sequencer": object.sequencer,
                },
            },
        }],
    })
}

/// The URL of the stack's failed-events queue (the on-failure destination).
async fn failed_queue_url(aws: &Aws, config: &Config) -> String {
    let name = Names::new(config).queue;
    aws.sqs
        .get_queue_url()
        .queue_name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueUrl {name}: {e:?}"))
        .queue_url()
        .unwrap_or_default()
        .to_owned()
}

/// Events in the failed-events queue, received or not.
async fn failed_depth(aws: &Aws, config: &Config) -> usize {
    let url = failed_queue_url(aws, config).await;
    let attrs = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes {url}: {e:?}"));
    let count = |name: QueueAttributeName| {
        attrs
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    };
    count(QueueAttributeName::ApproximateNumberOfMessages)
        + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

/// Events in the failed-events queue: how many, and a summary of up to 10 (object key,
/// condition, attempts, the function's error).
async fn failed_events(aws: &Aws, config: &Config) -> (usize, Vec<String>) {
    let depth = failed_depth(aws, config).await;
    let url = failed_queue_url(aws, config).await;
    let mut summaries = Vec::new();
    if depth > 0 {
        let got = aws
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage {url}: {e:?}"));
        for m in got.messages() {
            let body: Value =
                serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_default();
            summaries.push(format!(
                "key {} condition {} attempts {} error {}",
                body["requestPayload"]["Records"][0]["s3"]["object"]["key"],
                body["requestContext"]["condition"],
                body["requestContext"]["approximateInvokeCount"],
                body["responsePayload"]
            ));
        }
    }
    (depth, summaries)
}

// ---------------------------------------------------------------------------------------------
// 1. Replay.

/// The sample plus rows that need cleaning or are rejected for other reasons: a quoted name
/// with a comma, a padded mixed-case email, offsets and fractions, a missing name, a record
/// with a field too many, an empty line (skipped), Latin-1 bytes, no final line end.
fn replay_input() -> Vec<u8> {
    let mut data = deployer::smoke::SAMPLE.to_vec();
    data.extend_from_slice(
        b"5,\"Marley, Elaine\", Elaine.Marley@Melee.ISLAND ,2025-06-01 10:00:00Z,2025-06-02T10:00:00.5+02:00\r\n\
          6,,nobody@example.org,2025-01-01T00:00:00,2025-01-01T00:00:00\r\n\
          7,Too Many,x@y.com,2025-01-01T00:00:00,2025-01-01T00:00:00,extra\r\n\
          \r\n\
          8,Jos\xe9 Latin,jose@example.org,2025-01-01T00:00:00,2025-01-02T00:00:00",
    );
    data
}

const REPLAY_EVENT_TIME: &str = "2025-06-24T15:04:05.000Z";

#[tokio::test]
#[ignore = "needs ministack and the built function: run by `make test`"]
async fn replaying_an_event_three_times_changes_nothing() {
    // The notification is deployed, but filtered to `auto/`: the object below is outside it,
    // so the three direct invocations are the only processing it gets (which makes the raw
    // bucket's version count exact).
    let extra = "[notification]\nprefix = \"auto/\"\n";
    with_stack("replay", extra, replay).await;
}

async fn replay(s: Arc<Stack>) {
    let (ingest, raw, refined) = s.buckets();
    let key = "in/replay test/users.csv";
    let input = replay_input();
    let want = expected(&input);
    assert_eq!(
        (
            want.summary.records,
            want.summary.clean,
            want.summary.rejected
        ),
        (8, 3, 5),
        "the test input's own verdicts changed"
    );
    let uploaded = upload(&s.aws, ingest, key, &input, 1).await;
    assert!(
        !uploaded.version_id.is_empty(),
        "the ingest bucket is versioned"
    );
    let event = s3_event(ingest, key, &uploaded, REPLAY_EVENT_TIME);
    let encoded = event["Records"][0]["s3"]["object"]["key"].as_str().unwrap();
    assert_eq!(encoded, "in/replay+test/users.csv");
    assert_eq!(decode_event_key(encoded).as_deref(), Ok(key));
    let payload = serde_json::to_vec(&event).unwrap();
    let event_time = Timestamp::parse(REPLAY_EVENT_TIME.as_bytes()).unwrap();
    let keys = OutputKeys::new(key, event_time);
    assert_eq!(
        keys.cleaned,
        "refined/date=2025-06-24/hour=15/in/replay test/users_cleaned.csv"
    );
    assert_eq!(
        keys.rejected,
        "refined/date=2025-06-24/hour=15/in/replay test/rejected/users_rejected.csv"
    );
    assert_eq!(
        keys.parquet_cleaned,
        "curated/users/date=2025-06-24/hour=15/in/replay test/users.parquet"
    );
    assert_eq!(
        keys.parquet_rejected,
        "curated/users_rejected/date=2025-06-24/hour=15/in/replay test/users.parquet"
    );

    let mut snapshots = Vec::new();
    for attempt in 1..=3 {
        let out = s
            .aws
            .lambda
            .invoke()
            .function_name(&s.config.function.name)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoke #{attempt}: {e:?}"));
        let body = out
            .payload()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            out.function_error(),
            None,
            "invoke #{attempt} failed: {text}"
        );
        assert_eq!(out.status_code(), 200, "invoke #{attempt}: {text}");
        let report: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("invoke #{attempt}: response is not JSON ({e}): {text}"));
        assert_eq!(report["skipped"], json!([]), "invoke #{attempt}: {text}");
        let files = report["files"].as_array().expect("files in the report");
        assert_eq!(files.len(), 1, "invoke #{attempt}: {text}");
        let f = &files[0];
        assert_eq!(f["source"], json!(format!("{ingest}/{key}")), "{text}");
        assert_eq!(f["raw_key"], json!(keys.raw), "{text}");
        assert_eq!(f["cleaned_key"], json!(keys.cleaned), "{text}");
        assert_eq!(f["rejected_key"], json!(keys.rejected), "{text}");
        assert_eq!(
            (&f["records"], &f["clean"], &f["rejected"], &f["bytes"]),
            (
                &json!(want.summary.records),
                &json!(want.summary.clean),
                &json!(want.summary.rejected),
                &json!(input.len())
            ),
            "invoke #{attempt}: {text}"
        );
        assert_eq!(
            (&f["cleaned_bytes"], &f["rejected_bytes"]),
            (&json!(want.cleaned.len()), &json!(want.rejected.len())),
            "invoke #{attempt}: {text}"
        );
        assert_eq!(
            f["parquet"],
            json!({
                "cleaned_key": keys.parquet_cleaned,
                "rejected_key": keys.parquet_rejected,
                "cleaned_bytes": want.parquet_cleaned.len(),
                "rejected_bytes": want.parquet_rejected.len(),
            }),
            "invoke #{attempt}: {text}"
        );
        snapshots.push(snapshot(&s.aws, &[raw, refined]).await);
    }

    for (i, later) in snapshots.iter().enumerate().skip(1) {
        let diff = snapshot_diff(&snapshots[0], later);
        assert!(
            diff.is_empty(),
            "replay #{} changed the buckets: {diff:#?}",
            i + 1
        );
    }
    let snap = &snapshots[2];
    let want_keys: BTreeSet<String> = [
        format!("{raw}/{}", keys.raw),
        format!("{refined}/{}", keys.cleaned),
        format!("{refined}/{}", keys.rejected),
        format!("{refined}/{}", keys.parquet_cleaned),
        format!("{refined}/{}", keys.parquet_rejected),
    ]
    .into();
    let got_keys: BTreeSet<String> = snap.keys().cloned().collect();
    assert_eq!(got_keys, want_keys, "keys after three deliveries");
    for (k, o) in snap {
        assert!(o.etag.is_some() && o.etag == o.listed_etag, "{k}: {o:?}");
    }
    assert_eq!(
        snap[&format!("{raw}/{}", keys.raw)].bytes,
        input,
        "raw copy"
    );
    let cleaned = &snap[&format!("{refined}/{}", keys.cleaned)].bytes;
    let rejected = &snap[&format!("{refined}/{}", keys.rejected)].bytes;
    check_outputs(key, cleaned, rejected, &want).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = parse_clean_csv(cleaned)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["1", "2", "5"]);
    let lines: Vec<u64> = parse_rejected_csv(rejected)
        .unwrap()
        .into_iter()
        .map(|r| r.line)
        .collect();
    assert_eq!(lines, [4, 5, 7, 8, 10]);

    // The Parquet copies: the same rows, and exactly the local writer's bytes.
    let pq_cleaned = &snap[&format!("{refined}/{}", keys.parquet_cleaned)].bytes;
    let pq_rejected = &snap[&format!("{refined}/{}", keys.parquet_rejected)].bytes;
    check_parquet(key, pq_cleaned, pq_rejected, &want).unwrap_or_else(|e| panic!("{e}"));
    let ids = parquet_column(&parquet_rows(pq_cleaned).unwrap(), "id");
    assert_eq!(ids, ["1", "2", "5"]);
    let lines = parquet_column(&parquet_rows(pq_rejected).unwrap(), "line");
    assert_eq!(lines, ["4", "5", "7", "8", "10"]);

    // The ingest bucket still holds the one upload.
    let ingest_keys: Vec<String> = list(&s.aws, ingest)
        .await
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(ingest_keys, [key]);

    // The raw bucket is versioned (the audit copy survives an overwrite): every delivery
    // makes a server-side copy, and a copy onto a versioned key is a new version even when
    // the bytes are the same. So three deliveries leave exactly three versions of the one
    // key, all with the upload's bytes (same ETag), the last one current, no delete
    // marker. Replays are idempotent for the current objects; the version history records
    // that the event was delivered three times.
    let raw_versions = versions(&s.aws, raw).await;
    assert_eq!(
        raw_versions.len(),
        3,
        "raw versions after three deliveries: {raw_versions:#?}"
    );
    let current_etag = snap[&format!("{raw}/{}", keys.raw)].etag.clone().unwrap();
    let ids: BTreeSet<&str> = raw_versions.iter().map(|v| v.1.as_str()).collect();
    assert_eq!(ids.len(), 3, "version ids are distinct: {raw_versions:#?}");
    for (k, id, _, etag, marker) in &raw_versions {
        assert_eq!(k, key);
        assert!(
            !marker,
            "a delete marker in the raw bucket: {raw_versions:#?}"
        );
        assert_eq!(etag, &current_etag, "version {id} holds other bytes");
        assert!(id != "null" && !id.is_empty(), "{raw_versions:#?}");
    }
    assert_eq!(
        raw_versions.iter().filter(|v| v.2).count(),
        1,
        "exactly one current version: {raw_versions:#?}"
    );
    let (depth, failed) = failed_events(&s.aws, &s.config).await;
    assert_eq!(depth, 0, "failed events: {failed:#?}");
}

// ---------------------------------------------------------------------------------------------
// 2. What real S3 sends: versions out of order, test events, minimal records, long keys.

/// Invokes the function synchronously with `payload`; its report (the invocation must not
/// fail).
async fn invoke(s: &Stack, payload: &Value) -> Value {
    let out = s
        .aws
        .lambda
        .invoke()
        .function_name(&s.config.function.name)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(serde_json::to_vec(payload).unwrap()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke: {e:?}"));
    let body = out
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(out.function_error(), None, "the invocation failed: {text}");
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Polls `check` every 100 ms until it holds or `within` passes.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs ministack and the built function: run by `make test`"]
async fn versions_out_of_order_test_events_and_long_keys_on_the_emulator() {
    // Direct invocations for objects outside `auto/`; the notification fires for `auto/`.
    let extra = "[notification]\nprefix = \"auto/\"\n";
    with_stack("semantics", extra, semantics).await;
}

async fn semantics(s: Arc<Stack>) {
    let (ingest, raw, refined) = s.buckets();

    // Two versions of one key; the newer version's event is delivered first.
    let key = "in/versions/users.csv";
    let (old, new) = (deployer::smoke::SAMPLE.to_vec(), replay_input());
    let v1 = upload(&s.aws, ingest, key, &old, 1).await;
    let v2 = upload(&s.aws, ingest, key, &new, 2).await;
    assert_ne!(
        v1.version_id, v2.version_id,
        "the ingest bucket is versioned"
    );
    let report = invoke(&s, &s3_event(ingest, key, &v2, REPLAY_EVENT_TIME)).await;
    assert_eq!(
        report["files"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(report["files"][0]["version_id"], json!(v2.version_id));
    let after_newer = snapshot(&s.aws, &[refined]).await;
    let report = invoke(&s, &s3_event(ingest, key, &v1, REPLAY_EVENT_TIME)).await;
    assert_eq!(report["files"], json!([]), "{report}");
    assert_eq!(
        report["superseded"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let after_older = snapshot(&s.aws, &[refined]).await;
    let diff = snapshot_diff(&after_newer, &after_older);
    assert!(
        diff.is_empty(),
        "the older version touched the newer outputs: {diff:#?}"
    );
    let keys = OutputKeys::new(key, Timestamp::parse(REPLAY_EVENT_TIME.as_bytes()).unwrap());
    let want = expected(&new);
    let at = |k: &str| &after_older[&format!("{refined}/{k}")].bytes;
    check_outputs(key, at(&keys.cleaned), at(&keys.rejected), &want)
        .unwrap_or_else(|e| panic!("{e}"));
    check_parquet(
        key,
        at(&keys.parquet_cleaned),
        at(&keys.parquet_rejected),
        &want,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Both versions' exact bytes are in raw.
    let mut raw_bytes = BTreeSet::new();
    for (k, id, _, _, marker) in versions(&s.aws, raw).await {
        if k == key && !marker {
            let out = s
                .aws
                .s3
                .get_object()
                .bucket(raw)
                .key(&k)
                .version_id(&id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("raw version {id}: {e:?}"));
            raw_bytes.insert(out.body.collect().await.unwrap().into_bytes().to_vec());
        }
    }
    assert_eq!(raw_bytes, BTreeSet::from([old.clone(), new.clone()]));

    // S3's test event, and a record with only what the function uses: no function error.
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent",
        "Time": REPLAY_EVENT_TIME, "Bucket": ingest, "RequestId": "T", "HostId": "H"});
    let report = invoke(&s, &test_event).await;
    assert_eq!(report["test_event"], json!(true), "{report}");
    let minimal_key = "in/minimal/users.csv";
    upload(&s.aws, ingest, minimal_key, &old, 3).await;
    let minimal = json!({"Records": [{"eventTime": REPLAY_EVENT_TIME,
        "s3": {"bucket": {"name": ingest}, "object": {"key": "in/minimal/users.csv"}}}]});
    let report = invoke(&s, &minimal).await;
    assert_eq!(
        report["files"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );

    // A ~990-byte key, uploaded where the notification fires: the raw copy, no output, and
    // exactly one failed-events message that says why.
    let long = format!("auto/{}.csv", "k".repeat(981));
    assert!(long.len() > 980 && long.len() < 1024, "{}", long.len());
    upload(&s.aws, ingest, &long, &old, 4).await;
    eventually(
        "the long key's failed-events message",
        Duration::from_secs(60),
        || async { failed_depth(&s.aws, &s.config).await >= 1 },
    )
    .await;
    let url = failed_queue_url(&s.aws, &s.config).await;
    let got = s
        .aws
        .sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("ReceiveMessage");
    assert_eq!(got.messages().len(), 1, "{:?}", got.messages());
    let body = got.messages()[0].body().unwrap_or_default();
    let failure = shared::failure::PermanentFailure::parse(body)
        .unwrap_or_else(|| panic!("not the function's message: {body}"));
    assert_eq!(failure.reason, "output_key_too_long", "{body}");
    assert_eq!(failure.key.as_deref(), Some(long.as_str()));
    assert!(
        failure.message.contains("1024-byte limit"),
        "{}",
        failure.message
    );
    assert!(
        failure.version_id.is_some() && failure.sequencer.is_some(),
        "{body}"
    );
    assert_eq!(
        failed_depth(&s.aws, &s.config).await,
        1,
        "exactly one message"
    );
    let (raw_copy, _) = get(&s.aws, raw, &long).await;
    assert_eq!(raw_copy, old, "the raw copy is made");
    let outputs: Vec<String> = list(&s.aws, refined)
        .await
        .into_iter()
        .map(|o| o.key)
        .filter(|k| k.contains("kkkkkkkk"))
        .collect();
    assert!(
        outputs.is_empty(),
        "no output for the long key: {outputs:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Operating it: a failed file is alerted on, listed, redriven; good files are reprocessed.

/// The deployer binary on the stack's config; its stdout as JSON.
fn deployer_json(s: &Stack, args: &[&str]) -> Value {
    let config = s.config.source.to_str().unwrap().to_owned();
    let mut all = vec!["--config", config.as_str(), "--output", "json"];
    all.extend_from_slice(args);
    let out = support::run_deployer(&all);
    assert!(
        out.status.success(),
        "deployer {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "deployer {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
#[ignore = "needs ministack and the built function: run by `make test`"]
async fn a_failed_file_is_listed_redriven_and_reprocessed() {
    let extra = "[notification]\nprefix = \"auto/\"\n[alerts]\nemail = [\"oncall@example.com\"]\nrejected_ratio = 0.3\n";
    with_stack("operate", extra, operate).await;
}

async fn operate(s: Arc<Stack>) {
    let (ingest, _, refined) = s.buckets();
    // The alerts are converged: topic, pending subscription, four alarms.
    let status = deployer_json(&s, &["status"]);
    let rows = status.as_array().expect("rows");
    let kinds = |kind: &str| rows.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!(kinds("sns topic"), 1, "{status}");
    assert_eq!(kinds("cloudwatch alarm"), 4, "{status}");
    let sub = rows
        .iter()
        .find(|r| r["kind"] == "sns subscription")
        .expect("subscription");
    // ministack confirms email subscriptions at once; on AWS they stay pending until the
    // address clicks the link (`topic::Subscription::pending`, unit-tested).
    let state = sub["properties"]["state"].as_str().unwrap_or_default();
    assert!(
        state == "confirmed" || state.starts_with("pending"),
        "{sub}"
    );

    // The refined bucket goes out of band; a file uploaded then fails into the queue.
    deployer::resources::bucket::delete_versions(&s.aws, refined, None)
        .await
        .unwrap();
    s.aws
        .s3
        .delete_bucket()
        .bucket(refined)
        .send()
        .await
        .unwrap();
    let key = "auto/ops/users.csv";
    let input = replay_input();
    upload(&s.aws, ingest, key, &input, 1).await;
    eventually(
        "the failed event in the queue",
        Duration::from_secs(60),
        || async { failed_depth(&s.aws, &s.config).await >= 1 },
    )
    .await;

    // `up` repairs the stack: the refined bucket is back, the plan clean.
    let (plan, _) = s.up().await.unwrap();
    assert!(
        plan.resources
            .iter()
            .any(|r| r.name.starts_with(refined) && r.action == deployer::plan::Action::Create),
        "{plan}"
    );
    assert!(s.plan().await.is_empty());

    // `failed` lists the file, and leaves it in the queue.
    let listed = deployer_json(&s, &["failed"]);
    let events = listed.as_array().expect("events");
    assert_eq!(events.len(), 1, "{listed}");
    assert_eq!(events[0]["key"], key);
    assert_eq!(events[0]["bucket"], json!(ingest));
    assert!(
        events[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("NoSuchBucket"),
        "{listed}"
    );
    assert!(
        events[0]["version_id"].is_string() && events[0]["failed_at"].is_string(),
        "{listed}"
    );
    assert_eq!(
        deployer_json(&s, &["failed"]).as_array().map(Vec::len),
        Some(1),
        "still there"
    );

    // `redrive --all`: the outputs appear and the queue empties.
    let redriven = deployer_json(&s, &["redrive", "--all"]);
    assert_eq!(redriven["redriven"], 1, "{redriven}");
    assert_eq!(redriven["failed"], 0, "{redriven}");
    let keys = OutputKeys::new(key, {
        let head = s
            .aws
            .s3
            .head_object()
            .bucket(ingest)
            .key(key)
            .send()
            .await
            .unwrap();
        let secs = head.last_modified().unwrap().secs();
        Timestamp::from_unix(secs, 0).unwrap()
    });
    let want = expected(&input);
    let all = [
        &keys.cleaned,
        &keys.rejected,
        &keys.parquet_cleaned,
        &keys.parquet_rejected,
    ];
    eventually(
        "the redriven file's outputs",
        Duration::from_secs(60),
        || async {
            // The rejected CSV is committed last.
            s.aws
                .s3
                .head_object()
                .bucket(refined)
                .key(&keys.rejected)
                .send()
                .await
                .is_ok()
        },
    )
    .await;
    let mut outputs = BTreeMap::new();
    for k in all {
        let out = s
            .aws
            .s3
            .get_object()
            .bucket(refined)
            .key(k)
            .send()
            .await
            .unwrap();
        let modified = out.last_modified().map(|t| t.secs());
        let bytes = out.body.collect().await.unwrap().into_bytes().to_vec();
        outputs.insert(k.clone(), (bytes, modified));
    }
    check_outputs(
        key,
        &outputs[&keys.cleaned].0,
        &outputs[&keys.rejected].0,
        &want,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        failed_depth(&s.aws, &s.config).await,
        0,
        "the queue is empty after redrive"
    );

    // `reprocess --prefix`: the same bytes, written again.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a new LastModified second
    let reprocessed = deployer_json(&s, &["reprocess", "--prefix", "auto/"]);
    assert_eq!(
        (
            &reprocessed["files"],
            &reprocessed["invoked"],
            &reprocessed["failed"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "{reprocessed}"
    );
    let before = outputs[&keys.rejected].1;
    eventually(
        "the reprocessed outputs rewritten",
        Duration::from_secs(60),
        || async {
            let out = s
                .aws
                .s3
                .head_object()
                .bucket(refined)
                .key(&keys.rejected)
                .send()
                .await
                .unwrap();
            out.last_modified().map(|t| t.secs()) > before
        },
    )
    .await;
    for (k, (bytes, _)) in &outputs {
        let (now, _) = get(&s.aws, refined, k).await;
        assert!(now == *bytes, "{k} changed on reprocess");
    }
    assert!(s.plan().await.is_empty(), "the plan is clean");

    // `down` (by the teardown) removes the topic, its subscription and the alarms: checked
    // here through a dry look at what it would delete.
    let removed = support::down(&s.config, true).await.unwrap();
    for kind in ["sns topic", "cloudwatch alarm"] {
        assert!(
            removed
                .iter()
                .any(|r| r.kind == kind && r.deletion == deployer::resources::Deletion::Deleted),
            "{kind}: {removed:?}"
        );
    }
    let names = deployer::stack::Names::new(&s.config);
    assert!(
        deployer::resources::alarms::read(&s.aws, &names.alarms)
            .await
            .unwrap()
            .is_empty()
    );
    let identity = s.aws.identity().await.unwrap();
    assert_eq!(
        deployer::resources::topic::read(&s.aws, &names.topic_arn(&identity), &s.config.stack)
            .await
            .unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Load.

/// splitmix64: a tiny deterministic generator for the load files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NAMES: [&str; 8] = [
    "Luke Skyrunner",
    "Jimmy Pager",
    "Daniel Jack",
    "Guybrush Fourpwood",
    "Ada Lovelace",
    "Grace Hopper",
    "Ken Thompson",
    "Barbara Liskov",
];

fn timestamp(unix: i64, form: u64) -> String {
    let t = Timestamp::from_unix(unix, 0).unwrap();
    let (y, mo, d, h) = t.utc_date_hour();
    let (mi, s) = (unix.rem_euclid(3600) / 60, unix.rem_euclid(60));
    match form {
        0 => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z"),
        1 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.250+00:00"),
        _ => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}"),
    }
}

/// Load file `n`: deterministic, with mixed sizes (0 to 2,000 rows), line ends (`\r\n`,
/// `\n`, BOM), column orders and about 12% bad rows. A few are special: header-only
/// (`n % 50 == 0`), a bad header (`n % 50 == 1`: `mail` for `email`; `n % 50 == 26`: `id`
/// twice), and one empty file (`n == 7`).
fn load_file(n: usize) -> Vec<u8> {
    if n == 7 {
        return Vec::new();
    }
    let mut rng = Rng(0x10ad_0000_0000_0000 ^ n as u64);
    let eol: &[u8] = if n % 3 == 1 { b"\n" } else { b"\r\n" };
    let mut out = Vec::new();
    if n % 3 == 2 {
        out.extend_from_slice("\u{feff}".as_bytes());
    }
    // Column order: `order[i]` is the required field written in column i; 5 is an extra column.
    let (header, order): (&str, &[usize]) = match n % 50 {
        1 => ("id,name,mail,create_ts,update_ts", &[0, 1, 2, 3, 4]),
        26 => ("id,name,email,create_ts,id", &[0, 1, 2, 3, 4]),
        _ if n % 5 == 3 => (
            " Email ,ID,name,update_ts,create_ts,source",
            &[2, 0, 1, 4, 3, 5],
        ),
        _ => ("id,name,email,create_ts,update_ts", &[0, 1, 2, 3, 4]),
    };
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(eol);
    let rows = match (n % 50, n % 4) {
        (0, _) => 0,
        (_, 0) => rng.below(20),
        (_, 1) => rng.below(200),
        (_, 2) => 200 + rng.below(800),
        _ => 1000 + rng.below(1001),
    };
    for id in 1..=rows {
        let kind = rng.below(100);
        let created = 1_577_836_800 + rng.below(170_000_000) as i64;
        let updated = created + rng.below(90 * 86_400) as i64;
        let who = NAMES[rng.below(NAMES.len() as u64) as usize];
        let mut f: [Vec<u8>; 6] = [
            id.to_string().into_bytes(),
            who.as_bytes().to_vec(),
            format!(
                "{}{}@example.org",
                who.to_ascii_lowercase().replace(' ', "."),
                rng.below(1000)
            )
            .into_bytes(),
            timestamp(created, rng.below(30)).into_bytes(),
            timestamp(updated, rng.below(30)).into_bytes(),
            b"crm".to_vec(),
        ];
        match kind {
            0..=3 => f[2] = b"not-an-email".to_vec(),
            4 => f[0] = b"  ".to_vec(),
            5 => f[1].clear(),
            6 => f[3] = b"2025-02-30T10:00:00".to_vec(),
            7 => f.swap(3, 4),
            8 => f[5].extend_from_slice(b",spill"), // a field too many
            9 => f[1] = b"Jos\xe9 Latin".to_vec(),
            10 => {
                f[2] = b"".to_vec();
                f[4] = b"yesterday".to_vec();
            }
            11..=14 => f[1] = format!("\"{}, \"\"the\"\" {}\"", who, id % 7).into_bytes(),
            15..=17 => {
                f[2] = format!(" {} ", String::from_utf8_lossy(&f[2]).to_uppercase()).into_bytes()
            }
            _ => {}
        }
        let mut line = Vec::new();
        for (i, &col) in order.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            line.extend_from_slice(&f[col]);
        }
        if kind == 8 && order.len() == 5 {
            line.extend_from_slice(b",spill");
        }
        out.extend_from_slice(&line);
        // Some files end without a final line end.
        if id < rows || n % 5 != 4 {
            out.extend_from_slice(eol);
        }
    }
    out
}

/// The four output keys of one file and event time, in `OUTPUT_NAMES` order.
fn output_keys(k: OutputKeys) -> [String; OUTPUTS] {
    [k.cleaned, k.rejected, k.parquet_cleaned, k.parquet_rejected]
}

/// Every partition an event between `from` and `to` (± 5 s) can land in.
fn partitions_between(from: SystemTime, to: SystemTime) -> Vec<Timestamp> {
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (start, end) = (secs(from) - 5, secs(to) + 5);
    let mut out = Vec::new();
    let mut hour = start - start.rem_euclid(3600);
    while hour <= end {
        out.push(Timestamp::from_unix(hour.max(start), 0).unwrap());
        hour += 3600;
    }
    out
}

const FILES: usize = 200;
/// Outputs per file in the refined bucket: cleaned and rejected CSV, and their Parquet copies.
const OUTPUTS: usize = 4;
/// The outputs, in `output_keys` order.
const OUTPUT_NAMES: [&str; OUTPUTS] = ["cleaned", "rejected", "clean parquet", "rejected parquet"];
const UPLOADS_IN_FLIGHT: usize = 32;
const LOAD_DEADLINE: Duration = Duration::from_secs(180);

#[tokio::test]
#[ignore = "needs ministack and the built function: run by `make test`"]
async fn two_hundred_files_uploaded_concurrently_are_all_processed_once() {
    let extra = "[notification]\nprefix = \"load/\"\nsuffix = \".csv\"\n";
    with_stack("load", extra, load).await;
}

async fn load(s: Arc<Stack>) {
    let (ingest, raw, refined) = s.buckets();
    let files: Vec<(String, Vec<u8>)> = (0..FILES)
        .map(|n| (format!("load/{n:03}.csv"), load_file(n)))
        .collect();
    let wanted: Vec<Expected> = files.iter().map(|(_, data)| expected(data)).collect();
    let total_rows: u64 = wanted.iter().map(|w| w.summary.records).sum();
    let total_bytes: usize = files.iter().map(|(_, d)| d.len()).sum();
    // The generator really makes the mix the test claims.
    let header_only = wanted
        .iter()
        .zip(&files)
        .filter(|(w, (_, d))| !d.is_empty() && w.summary.records == 0)
        .count();
    let bad_header = wanted
        .iter()
        .filter(|w| w.summary.header_problem.is_some())
        .count();
    let with_bad_rows = wanted.iter().filter(|w| w.summary.rejected > 0).count();
    let biggest = wanted.iter().map(|w| w.summary.records).max().unwrap();
    assert!(
        header_only >= 3 && bad_header >= 6 && with_bad_rows >= 150 && biggest > 1500,
        "generator mix: {header_only} header-only, {bad_header} bad header, {with_bad_rows} with bad rows, biggest {biggest}"
    );

    // Upload, at most 32 at a time.
    let started_at = SystemTime::now();
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(UPLOADS_IN_FLIGHT));
    let mut uploads = JoinSet::new();
    for (key, data) in &files {
        let (aws, bucket, key, data, limit) = (
            s.aws.clone(),
            ingest.to_owned(),
            key.clone(),
            data.clone(),
            limit.clone(),
        );
        uploads.spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            aws.s3
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .body(ByteStream::from(data))
                .content_type("text/csv")
                .send()
                .await
                .unwrap_or_else(|e| panic!("uploading {key}: {e:?}"));
        });
    }
    while let Some(done) = uploads.join_next().await {
        done.expect("an upload task panicked");
    }
    let uploaded = started.elapsed();

    // Poll the listings until every output is there, or every file is either done or
    // dead-lettered (the failed-events queue: no point waiting for those), or the deadline
    // passes.
    let deadline = started + LOAD_DEADLINE;
    let mut last_report = Instant::now();
    let (raw_list, refined_list) = loop {
        let raw_list = list(&s.aws, raw).await;
        let refined_list = list(&s.aws, refined).await;
        let dead = failed_depth(&s.aws, &s.config).await;
        if (raw_list.len() >= FILES && refined_list.len() >= OUTPUTS * FILES)
            || (dead > 0 && refined_list.len() / OUTPUTS + dead >= FILES)
            || Instant::now() >= deadline
        {
            break (raw_list, refined_list);
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "load: {:>5.1} s: {} raw, {} refined objects, {dead} failed events",
                started.elapsed().as_secs_f64(),
                raw_list.len(),
                refined_list.len()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seen_done = started.elapsed();
    let finished_at = SystemTime::now();

    // Map every refined key to its file: exactly one of each of the four outputs each, all in
    // one partition of the run's event times.
    let partitions = partitions_between(started_at, finished_at);
    let mut owner: HashMap<String, (usize, usize, usize)> = HashMap::new();
    for (i, (key, _)) in files.iter().enumerate() {
        for (p, &t) in partitions.iter().enumerate() {
            for (o, k) in output_keys(OutputKeys::new(key, t)).into_iter().enumerate() {
                owner.insert(k, (i, o, p));
            }
        }
    }
    let mut problems: Vec<String> = Vec::new();
    // `outputs_of[file][output]`: the keys found, with their partition's index.
    let mut outputs_of: Vec<[Vec<(String, usize)>; OUTPUTS]> =
        (0..FILES).map(|_| Default::default()).collect();
    for o in &refined_list {
        match owner.get(&o.key) {
            Some(&(i, out, p)) => outputs_of[i][out].push((o.key.clone(), p)),
            None => problems.push(format!("unexpected refined key {}", o.key)),
        }
    }
    let raw_keys: BTreeSet<&str> = raw_list.iter().map(|o| o.key.as_str()).collect();
    let upload_keys: BTreeSet<&str> = files.iter().map(|(k, _)| k.as_str()).collect();
    for k in raw_keys.difference(&upload_keys) {
        problems.push(format!("unexpected raw key {k}"));
    }
    let (depth, failed) = failed_events(&s.aws, &s.config).await;
    if depth > 0 {
        problems.push(format!(
            "{depth} events in the failed-events queue (the function failed or was throttled \
             until its retries ran out), e.g.:\n  {}",
            failed.join("\n  ")
        ));
    }
    let mut untouched = Vec::new();
    for (i, (key, _)) in files.iter().enumerate() {
        let has_raw = raw_keys.contains(key.as_str());
        let outputs = &outputs_of[i];
        let one_each = outputs.iter().all(|found| found.len() == 1);
        let none = outputs.iter().all(Vec::is_empty);
        if has_raw && one_each {
            let parts: BTreeSet<usize> = outputs.iter().map(|found| found[0].1).collect();
            if parts.len() != 1 {
                let keys: Vec<&str> = outputs.iter().map(|found| found[0].0.as_str()).collect();
                problems.push(format!(
                    "{key}: outputs in {} partitions: {}",
                    parts.len(),
                    keys.join(", ")
                ));
            }
        } else if !has_raw && none {
            untouched.push(key.as_str());
        } else {
            let found: Vec<String> = OUTPUT_NAMES
                .iter()
                .zip(outputs)
                .map(|(name, found)| {
                    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
                    format!("{name} outputs {keys:?}")
                })
                .collect();
            problems.push(format!("{key}: raw copy {has_raw}, {}", found.join(", ")));
        }
    }
    if !untouched.is_empty() {
        problems.push(format!(
            "{} files not processed at all: {}",
            untouched.len(),
            untouched.join(" ")
        ));
    }
    assert!(
        problems.is_empty(),
        "after {seen_done:?}: {} raw and {} refined objects ({} and {} expected); {} problems:\n{}",
        raw_list.len(),
        refined_list.len(),
        FILES,
        OUTPUTS * FILES,
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        (raw_list.len(), refined_list.len()),
        (FILES, OUTPUTS * FILES)
    );

    // Every file: raw bytes = upload, all four outputs = local processing, clean + rejected =
    // records (in the CSVs and in the Parquet copies).
    let raw_bytes = get_all(
        &s.aws,
        raw,
        &files.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
    )
    .await;
    let refined_keys: Vec<String> = refined_list.iter().map(|o| o.key.clone()).collect();
    let refined_bytes = get_all(&s.aws, refined, &refined_keys).await;
    let (mut clean_rows, mut rejected_rows) = (0u64, 0u64);
    let (mut pq_clean_rows, mut pq_rejected_rows) = (0u64, 0u64);
    let (mut pq_clean_bytes, mut pq_rejected_bytes) = (0usize, 0usize);
    for (i, (key, data)) in files.iter().enumerate() {
        if raw_bytes[key] != *data {
            problems.push(format!(
                "{key}: raw copy has {} bytes, upload {}",
                raw_bytes[key].len(),
                data.len()
            ));
        }
        let [cleaned, rejected, pq_cleaned, pq_rejected] = outputs_of[i]
            .each_ref()
            .map(|found| &refined_bytes[&found[0].0]);
        match check_outputs(key, cleaned, rejected, &wanted[i]) {
            Ok((c, r)) => {
                clean_rows += c;
                rejected_rows += r;
            }
            Err(e) => problems.push(e),
        }
        match check_parquet(key, pq_cleaned, pq_rejected, &wanted[i]) {
            Ok((c, r)) => {
                pq_clean_rows += c;
                pq_rejected_rows += r;
            }
            Err(e) => problems.push(e),
        }
        pq_clean_bytes += pq_cleaned.len();
        pq_rejected_bytes += pq_rejected.len();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(clean_rows + rejected_rows, total_rows);
    assert_eq!(
        (pq_clean_rows, pq_rejected_rows),
        (clean_rows, rejected_rows),
        "rows in the parquet outputs"
    );

    // Processed once: the raw bucket is versioned and every processing makes one copy,
    // so one version per file means no file was processed twice (no retry, no duplicate
    // delivery) by the time its outputs were all there.
    let raw_versions = versions(&s.aws, raw).await;
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &raw_versions {
        *per_key.entry(v.0.as_str()).or_default() += 1;
    }
    let repeated: Vec<_> = per_key.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "raw keys with more than one version: {repeated:?}"
    );
    assert_eq!(raw_versions.len(), FILES);
    let ingest_count = list(&s.aws, ingest).await.len();
    assert_eq!(ingest_count, FILES, "ingest bucket");

    let last_output_ms = refined_list.iter().filter_map(|o| o.last_modified_ms).max();
    let start_ms = started_at.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let secs = seen_done.as_secs_f64();
    eprintln!(
        "load: {FILES} files, {total_rows} rows ({clean_rows} clean, {rejected_rows} rejected), {:.1} MB",
        total_bytes as f64 / 1e6
    );
    eprintln!(
        "load: {header_only} header-only, {bad_header} with a bad header, 1 empty, {with_bad_rows} with rejected rows, largest {biggest} rows"
    );
    eprintln!(
        "load: parquet copies {:.2} MB clean, {:.2} MB rejected ({} files)",
        pq_clean_bytes as f64 / 1e6,
        pq_rejected_bytes as f64 / 1e6,
        2 * FILES
    );
    eprintln!(
        "load: uploads done in {:.2} s ({UPLOADS_IN_FLIGHT} in flight)",
        uploaded.as_secs_f64()
    );
    eprintln!(
        "load: first upload to all {} outputs seen: {secs:.2} s (polling every 200 ms)",
        OUTPUTS * FILES + FILES
    );
    if let Some(last) = last_output_ms {
        eprintln!(
            "load: first upload to last output's LastModified: {:.2} s",
            (last - start_ms) as f64 / 1000.0
        );
    }
    eprintln!(
        "load: throughput {:.1} files/s, {:.0} rows/s, {:.2} MB/s",
        FILES as f64 / secs,
        total_rows as f64 / secs,
        total_bytes as f64 / 1e6 / secs
    );
}
