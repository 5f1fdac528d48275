//! The handler over the real S3 store against an S3 emulator (ministack): copy-source encoding,
//! path-style addressing, single and multipart outputs (CSV and Parquet), and S3 error codes.
//!
//! Needs an endpoint, so it is ignored by default. Run with, e.g.:
//! `AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
//! AWS_REGION=us-east-1 cargo test -p function --test s3_store -- --ignored`

use aws_lambda_events::event::s3::S3Event;
use aws_sdk_s3::primitives::ByteStream;
use function::metrics::MetricsSink;
use function::s3::S3Store;
use function::{Config, Handler, ObjectStore, Operation, UploadConfig};
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

fn event(bucket: &str, encoded_keys: &[&str]) -> S3Event {
    let records: Vec<_> = encoded_keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "eventTime": "2025-06-24T15:04:05Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "x"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {},
                "s3": {"bucket": {"name": bucket}, "object": {"key": k}},
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("event")
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

#[tokio::test]
#[ignore = "needs an S3 endpoint in AWS_ENDPOINT_URL (ministack)"]
async fn handler_over_s3_against_the_emulator() {
    let store = S3Store::from_env().await;
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(true)
            .build(),
    );
    let suffix = std::process::id();
    let (ingest, raw, refined) = (
        format!("fn-it-ingest-{suffix}"),
        format!("fn-it-raw-{suffix}"),
        format!("fn-it-refined-{suffix}"),
    );
    for b in [&ingest, &raw, &refined] {
        client
            .create_bucket()
            .bucket(b)
            .send()
            .await
            .expect("create bucket");
    }

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

    let config = Config {
        raw_bucket: raw.clone(),
        refined_bucket: refined.clone(),
        function_name: "it".into(),
        upload: UploadConfig::default(),
        parquet: Some(RowGroupLimits::default()),
    };
    let handler = Handler::new(store.clone(), config, MetricsSink::Discard);
    let ev = event(
        &ingest,
        &["in+dir/2025%2B06/my+users+%C3%A9.csv", "big.csv"],
    );
    let report = handler.handle(&ev, "it").await.expect("handled");
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
    handler.handle(&ev, "it").await.expect("replay");
    let (clean, _) = reference(&big);
    assert!(read(&client, &refined, &report.files[1].cleaned_key).await == clean);

    // S3 failures carry the operation and the S3 error code.
    let err = match store.get_object(&ingest, "missing.csv").await {
        Ok(_) => panic!("missing object read"),
        Err(e) => e,
    };
    assert_eq!(err.operation, Operation::GetObject);
    assert_eq!(err.code.as_deref(), Some("NoSuchKey"), "{err}");
    assert!(!err.retryable);
    let err = store
        .copy_object(&ingest, "missing.csv", &raw, "missing.csv")
        .await
        .expect_err("copy of a missing object");
    assert_eq!(err.operation, Operation::CopyObject);
    assert!(err.code.is_some(), "{err}");
}
