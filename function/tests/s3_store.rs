//! The handler over the real S3 store against an S3 emulator (ministack): copy-source encoding,
//! path-style addressing, single and multipart outputs (CSV and Parquet), and S3 error codes.
//!
//! Needs an endpoint, so it is ignored by default. Run with, e.g.:
//! `AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
//! AWS_REGION=us-east-1 cargo test -p function --test s3_store -- --ignored`

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use bytes::Bytes;
use function::copy::CopyConfig;
use function::metrics::MetricsSink;
use function::s3::S3Store;
use function::upload::OutputUpload;
use function::{
    Condition, Config, FailedEvents, Handler, Invocation, ObjectStore, Operation, Pin, QueueError,
    Source, UploadConfig, WriteOptions,
};
use serde_json::{Value, json};
use shared::Processor;
use shared::output::{CLEAN_HEADER, CsvOutputs, REJECTED_HEADER};
use shared::parquet::{ParquetOutputs, RowGroupLimits};

const SAMPLE: &[u8] = include_bytes!("../../data/users.csv");

/// The Parquet files `shared` writes for `input`: (clean, rejected).
fn parquet_reference(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut p = Processor::new();
    let mut out = ParquetOutputs::new().expect("parquet writers");
    p.feed(input, &mut out);
    p.finish(&mut out);
    let mut clean = std::mem::take(out.clean.buffer());
    let mut rejected = std::mem::take(out.rejected.buffer());
    let (c, r) = out.finish().expect("parquet");
    clean.extend_from_slice(&c);
    rejected.extend_from_slice(&r);
    (clean, rejected)
}

fn reference(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut p = Processor::new();
    let mut out = CsvOutputs::new();
    p.feed(input, &mut out);
    p.finish(&mut out);
    let fill = |v: Vec<u8>, h: &str| {
        if v.is_empty() {
            format!("{h}\n").into_bytes()
        } else {
            v
        }
    };
    (
        fill(out.clean, CLEAN_HEADER),
        fill(out.rejected, REJECTED_HEADER),
    )
}

fn generate(rows: usize) -> Vec<u8> {
    let mut out = b"id,name,email,create_ts,update_ts\n".to_vec();
    for i in 0..rows {
        let line = if i % 9 == 0 {
            format!("{i},User {i},not-an-email,2025-01-01T00:00:00Z,2025-01-02T00:00:00Z\n")
        } else {
            format!(
                "{i},\"Doe, {i}\",user{i}@example.com,2025-01-01T00:00:00Z,2025-01-02T00:00:00Z\n"
            )
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// Records for these (URL-encoded) keys, with what S3 would say of each current version.
async fn event(client: &aws_sdk_s3::Client, bucket: &str, encoded_keys: &[&str]) -> Value {
    let mut records = Vec::new();
    for (i, k) in encoded_keys.iter().enumerate() {
        let key = shared::decode_event_key(k).expect("key");
        let head = client
            .head_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .expect("head");
        records.push(json!({
            "eventTime": "2025-06-24T15:04:05Z",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {
                "key": k,
                "size": head.content_length(),
                "eTag": head.e_tag().unwrap_or_default().trim_matches('"'),
                "versionId": head.version_id(),
                "sequencer": format!("{:016X}", i + 1),
            }},
        }));
    }
    json!({ "Records": records })
}

async fn read(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"));
    out.body.collect().await.expect("body").to_vec()
}

/// These tests have no permanent failure: a queue that is never used.
struct NoQueue;

impl FailedEvents for NoQueue {
    fn configured(&self) -> bool {
        false
    }
    async fn send(&self, _: String) -> Result<(), QueueError> {
        Ok(())
    }
}

fn config(raw: &str, refined: &str) -> Config {
    Config {
        raw_bucket: raw.to_owned(),
        refined_bucket: refined.to_owned(),
        function_name: "it".into(),
        upload: UploadConfig::default(),
        copy: CopyConfig::default(),
        parquet: Some(RowGroupLimits::default()),
        memory_mb: None,
        max_key_bytes: 1024,
        deadline_margin: Duration::from_secs(5),
        rejected_ratio: None,
    }
}

async fn client() -> aws_sdk_s3::Client {
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(true)
            .build(),
    )
}

/// Fresh buckets `fn-it-<what>-<pid>-…`, the ingest and raw ones versioned.
async fn buckets(client: &aws_sdk_s3::Client, test: &str) -> (String, String, String) {
    let suffix = std::process::id();
    let names = (
        format!("fn-it-{test}-ingest-{suffix}"),
        format!("fn-it-{test}-raw-{suffix}"),
        format!("fn-it-{test}-refined-{suffix}"),
    );
    for (b, versioned) in [(&names.0, true), (&names.1, true), (&names.2, false)] {
        client
            .create_bucket()
            .bucket(b)
            .send()
            .await
            .expect("create bucket");
        if versioned {
            client
                .put_bucket_versioning()
                .bucket(b)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .expect("versioning");
        }
    }
    names
}

async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) -> String {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect("put")
        .version_id()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
#[ignore = "needs an S3 endpoint in AWS_ENDPOINT_URL (ministack)"]
async fn handler_over_s3_against_the_emulator() {
    let store = S3Store::from_env().await;
    let client = client().await;
    let (ingest, raw, refined) = buckets(&client, "handler").await;

    let odd_key = "in dir/2025+06/my users é.csv";
    let big = generate(400_000); // ~23 MB: multipart with 8 MiB parts
    for (key, body) in [(odd_key, SAMPLE.to_vec()), ("big.csv", big.clone())] {
        client
            .put_object()
            .bucket(&ingest)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("seed");
    }

    let handler = Handler::new(
        store.clone(),
        NoQueue,
        config(&raw, &refined),
        MetricsSink::Discard,
    );
    let ev = event(
        &client,
        &ingest,
        &["in+dir/2025%2B06/my+users+%C3%A9.csv", "big.csv"],
    )
    .await;
    let report = handler
        .handle(&ev, &Invocation::new("it"))
        .await
        .expect("handled");
    assert_eq!(report.files.len(), 2);

    assert_eq!(read(&client, &raw, odd_key).await, SAMPLE);
    assert_eq!(read(&client, &raw, "big.csv").await, big);
    for (source, input) in [(odd_key, SAMPLE), ("big.csv", &big[..])] {
        let file = report
            .files
            .iter()
            .find(|f| f.source.ends_with(source))
            .expect("file");
        let (clean, rejected) = reference(input);
        assert!(
            read(&client, &refined, &file.cleaned_key).await == clean,
            "{source} cleaned"
        );
        assert!(
            read(&client, &refined, &file.rejected_key).await == rejected,
            "{source} rejected"
        );
        let (pq_clean, pq_rejected) = parquet_reference(input);
        let pq = file.parquet.as_ref().expect("parquet on");
        assert!(
            read(&client, &refined, &pq.cleaned_key).await == pq_clean,
            "{source} parquet cleaned"
        );
        assert!(
            read(&client, &refined, &pq.rejected_key).await == pq_rejected,
            "{source} parquet rejected"
        );
    }
    let cleaned = &report.files[0].cleaned_key;
    assert_eq!(
        cleaned,
        "refined/date=2025-06-24/hour=15/in dir/2025+06/my users é_cleaned.csv"
    );

    // A replay writes the same bytes again.
    handler
        .handle(&ev, &Invocation::new("it"))
        .await
        .expect("replay");
    let (clean, _) = reference(&big);
    assert!(read(&client, &refined, &report.files[1].cleaned_key).await == clean);

    // S3 failures carry the operation and the S3 error code; a missing object is "gone".
    let current = Pin::Current;
    let missing = Source {
        bucket: &ingest,
        key: "missing.csv",
        pin: &current,
    };
    let err = match store.get_object(missing).await {
        Ok(_) => panic!("missing object read"),
        Err(e) => e,
    };
    assert_eq!(err.operation, Operation::GetObject);
    assert_eq!(err.code.as_deref(), Some("NoSuchKey"), "{err}");
    assert!(!err.retryable && err.is_gone());
    let err = store
        .copy_object(missing, &raw, "missing.csv")
        .await
        .expect_err("copy of a missing object");
    assert_eq!(err.operation, Operation::CopyObject);
    assert!(err.is_gone(), "{err}");
}

/// What the handler relies on S3 for, checked against the emulator through the real store:
/// reads and copies pinned to a version or an ETag, conditional writes answering 412, part
/// copies of a version's byte range, and user metadata.
#[tokio::test]
#[ignore = "needs an S3 endpoint in AWS_ENDPOINT_URL (ministack)"]
async fn versions_preconditions_and_part_copies_against_the_emulator() {
    let store = S3Store::from_env().await;
    let client = client().await;
    let (ingest, raw, refined) = buckets(&client, "semantics").await;
    let v1 = put(&client, &ingest, "k.csv", b"first version").await;
    let v2 = put(&client, &ingest, "k.csv", b"second version, longer").await;
    assert!(!v1.is_empty() && v1 != v2, "versioning on: {v1:?} {v2:?}");
    let pin1 = Pin::Version(v1.clone());
    let source = |pin| Source {
        bucket: &ingest,
        key: "k.csv",
        pin,
    };

    // HeadObject: by version, current, missing version.
    let head = store
        .head_object(&ingest, "k.csv", &pin1)
        .await
        .expect("head")
        .expect("v1 exists");
    assert_eq!(
        (head.size, head.version_id.as_deref()),
        (13, Some(v1.as_str()))
    );
    let current = store
        .head_object(&ingest, "k.csv", &Pin::Current)
        .await
        .expect("head")
        .expect("current");
    assert_eq!(current.version_id.as_deref(), Some(v2.as_str()));
    assert_eq!(
        store
            .head_object(&ingest, "nope.csv", &Pin::Current)
            .await
            .expect("404 is not an error"),
        None
    );

    // Reads and copies pinned to the older version see its bytes, not the current ones.
    let mut body = store.get_object(source(&pin1)).await.expect("get v1");
    let mut got = Vec::new();
    while let Some(chunk) = function::ChunkStream::next_chunk(&mut body)
        .await
        .expect("read")
    {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"first version");
    store
        .copy_object(source(&pin1), &raw, "k.csv")
        .await
        .expect("copy v1");
    assert_eq!(read(&client, &raw, "k.csv").await, b"first version");

    // An ETag that is no longer current: 412 on the copy and the read, "gone".
    let stale = Pin::ETag(head.e_tag.trim_matches('"').to_owned());
    let err = store
        .copy_object(source(&stale), &raw, "k2.csv")
        .await
        .expect_err("stale etag copy");
    assert!(err.is_gone(), "{err}");
    let err = match store.get_object(source(&stale)).await {
        Ok(_) => panic!("stale etag read"),
        Err(e) => e,
    };
    assert!(err.is_gone(), "{err}");
    let fresh = Pin::ETag(current.e_tag.trim_matches('"').to_owned());
    store
        .copy_object(source(&fresh), &raw, "k2.csv")
        .await
        .expect("current etag copy");

    // Conditional PutObject: If-None-Match on an existing key and a wrong If-Match lose.
    let stamped = WriteOptions {
        content_type: Some("text/csv".into()),
        metadata: BTreeMap::from([("csv-ingest-source-version-id".into(), v1.clone())]),
    };
    let body = || Bytes::from_static(b"out");
    store
        .put_object(&refined, "o.csv", body(), &stamped, &Condition::IfAbsent)
        .await
        .expect("absent: written");
    let err = store
        .put_object(&refined, "o.csv", body(), &stamped, &Condition::IfAbsent)
        .await
        .expect_err("exists now");
    assert!(err.is_precondition_failed(), "{err}");
    let err = store
        .put_object(
            &refined,
            "o.csv",
            body(),
            &stamped,
            &Condition::IfMatch("\"0000\"".into()),
        )
        .await
        .expect_err("wrong etag");
    assert!(err.is_precondition_failed(), "{err}");
    let there = store
        .head_object(&refined, "o.csv", &Pin::Current)
        .await
        .expect("head")
        .expect("there");
    assert_eq!(
        there.metadata.get("csv-ingest-source-version-id"),
        Some(&v1),
        "user metadata round-trips"
    );
    assert_eq!(there.content_type.as_deref(), Some("text/csv"));
    store
        .put_object(
            &refined,
            "o.csv",
            body(),
            &stamped,
            &Condition::IfMatch(there.e_tag.clone()),
        )
        .await
        .expect("right etag");

    // Conditional CompleteMultipartUpload, and part copies of a version's byte range.
    let id = store
        .create_multipart_upload(&refined, "o.csv", &stamped)
        .await
        .expect("create");
    let e_tag = store
        .upload_part_copy(&refined, "o.csv", &id, 1, source(&pin1), 6..13)
        .await
        .expect("part copy of v1's bytes 6..13");
    let parts = [function::CompletedPart {
        part_number: 1,
        e_tag,
    }];
    let err = store
        .complete_multipart_upload(&refined, "o.csv", &id, &parts, &Condition::IfAbsent)
        .await
        .expect_err("the key exists");
    assert!(err.is_precondition_failed(), "{err}");
    let there = store
        .head_object(&refined, "o.csv", &Pin::Current)
        .await
        .expect("head")
        .expect("there");
    store
        .complete_multipart_upload(
            &refined,
            "o.csv",
            &id,
            &parts,
            &Condition::IfMatch(there.e_tag),
        )
        .await
        .expect("the upload stayed open after the 412 and completes now");
    assert_eq!(read(&client, &refined, "o.csv").await, b"version");
}

/// The SDK lets go of a part's bytes by the time `UploadPart` returns, so the handler's part
/// buffers are reused against real S3 as they are against the fake store.
#[tokio::test]
#[ignore = "needs an S3 endpoint in AWS_ENDPOINT_URL (ministack)"]
async fn part_buffers_are_reused_over_the_sdk() {
    let store = S3Store::from_env().await;
    let client = client().await;
    let (_, _, refined) = buckets(&client, "reuse").await;
    let part = UploadConfig::default().part_size;
    let config = UploadConfig {
        part_size: part,
        max_parts_in_flight: 2,
        max_parts: 10_000,
    };
    let options = WriteOptions::default();
    let mut upload = OutputUpload::new(store, &refined, "k", config, part, options);
    let mut buffer = upload.new_buffer();
    let mut want = Vec::new();
    for i in 0..6u8 {
        buffer.resize(part, i);
        want.extend_from_slice(&buffer);
        upload.offer(&mut buffer).await.expect("offer");
    }
    upload.prepare(buffer, b"").await.expect("prepare");
    upload.commit(&Condition::None).await.expect("commit");
    assert!(
        read(&client, &refined, "k").await == want,
        "the parts' bytes, in order"
    );
    // One filling and two uploading at most: six parts in three buffers.
    assert!(
        upload.buffers_made() <= 3,
        "{} buffers for 6 parts",
        upload.buffers_made()
    );
}
