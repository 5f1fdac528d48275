//! `deployer reprocess (--key KEY… | --prefix P) [--since DATE] [--dry-run]`: runs files that
//! are already in the ingest bucket through the function again (after a contract change, say):
//! for each, an `ObjectCreated` record of its current version (`versionId`, size, ETag, and
//! `LastModified` as the event time, so the outputs land in the partition the upload made) is
//! invoked asynchronously. Outputs are rewritten in place.
//!
//! Such a record has no sequencer (it is not from S3); the function orders it by the version
//! current in the ingest bucket: a replay of the version the outputs came from rewrites them.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};
use shared::Timestamp;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws::{Aws, sdk_error};
use crate::commands::connect;
use crate::config::Config;
use crate::redrive::invoke_async;
use crate::report::{Output, Reporter, print_json};

/// Invocations in flight at once.
const CONCURRENCY: usize = 8;

/// One object version of the ingest bucket, as a record needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Current {
    pub key: String,
    pub version_id: Option<String>,
    pub size: i64,
    /// Without quotes.
    pub e_tag: String,
    #[serde(serialize_with = "rfc3339")]
    pub last_modified: Timestamp,
}

fn rfc3339<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_millis())
}

/// Which files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Files {
    Keys(Vec<String>),
    Prefix(String),
}

/// S3's event-key encoding: `+` for a space, `%XX` for anything but unreserved bytes and `/`.
pub fn encode_event_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `ObjectCreated` event for one current object version, without a sequencer.
pub fn event_for(bucket: &str, region: &str, object: &Current) -> Value {
    let mut o = json!({
        "key": encode_event_key(&object.key),
        "size": object.size,
        "eTag": object.e_tag,
    });
    if let Some(v) = &object.version_id {
        o["versionId"] = json!(v);
    }
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": object.last_modified.to_rfc3339_millis(),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "deployer-reprocess"},
        "requestParameters": {"sourceIPAddress": "deployer-reprocess"},
        "responseElements": {},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "deployer-reprocess",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": o,
        },
    }]})
}

/// `YYYY-MM-DD` (midnight UTC) or a full timestamp.
pub fn parse_since(text: &str) -> Result<Timestamp> {
    let t = text.trim();
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_owned()
    };
    Timestamp::parse(full.as_bytes()).with_context(|| {
        format!(
            "--since {text:?}: expected a date like 2025-06-24 or a time like 2025-06-24T15:00:00Z"
        )
    })
}

fn timestamp(t: &aws_sdk_s3::primitives::DateTime) -> Option<Timestamp> {
    Timestamp::from_unix(t.secs(), t.subsec_nanos())
}

/// The current versions of the selected files (all pages).
pub async fn current_objects(aws: &Aws, bucket: &str, files: &Files) -> Result<Vec<Current>> {
    let mut out = Vec::new();
    match files {
        Files::Keys(keys) => {
            for key in keys {
                let head = aws
                    .s3
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| {
                        format!("reading s3://{bucket}/{key} (HeadObject): is the key right?")
                    })?;
                out.push(Current {
                    key: key.clone(),
                    version_id: head
                        .version_id()
                        .filter(|v| *v != "null")
                        .map(str::to_owned),
                    size: head.content_length().unwrap_or(0),
                    e_tag: head
                        .e_tag()
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_owned(),
                    last_modified: head
                        .last_modified()
                        .and_then(timestamp)
                        .context("no LastModified")?,
                });
            }
        }
        Files::Prefix(prefix) => {
            let (mut key_marker, mut version_marker): (Option<String>, Option<String>) =
                (None, None);
            loop {
                let page = aws
                    .s3
                    .list_object_versions()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_key_marker(key_marker.take())
                    .set_version_id_marker(version_marker.take())
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| {
                        format!("listing s3://{bucket}/{prefix} (ListObjectVersions)")
                    })?;
                for v in page.versions() {
                    let (Some(key), Some(true)) = (v.key(), v.is_latest()) else {
                        continue;
                    };
                    if key.ends_with('/') {
                        continue;
                    }
                    out.push(Current {
                        key: key.to_owned(),
                        version_id: v.version_id().filter(|v| *v != "null").map(str::to_owned),
                        size: v.size().unwrap_or(0),
                        e_tag: v.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                        last_modified: v
                            .last_modified()
                            .and_then(timestamp)
                            .context("no LastModified")?,
                    });
                }
                if page.is_truncated() != Some(true) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_owned);
                version_marker = page.next_version_id_marker().map(str::to_owned);
                if key_marker.is_none() {
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct Summary<'a> {
    files: usize,
    invoked: usize,
    failed: usize,
    dry_run: bool,
    objects: &'a [Current],
    errors: &'a [String],
}

pub async fn run(
    config: &Config,
    output: Output,
    files: Files,
    since: Option<Timestamp>,
    dry_run: bool,
) -> Result<u8> {
    let report = Reporter::new(output);
    let (aws, _) = connect(config, &report).await?;
    let bucket = config.buckets.ingest.clone();
    let mut objects = current_objects(&aws, &bucket, &files).await?;
    if let Some(since) = since {
        objects.retain(|o| o.last_modified >= since);
    }
    if objects.is_empty() && matches!(files, Files::Keys(_)) {
        bail!("none of the keys is in s3://{bucket} after --since");
    }
    let total = objects.len();
    let mut errors = Vec::new();
    let mut invoked = 0;
    if dry_run {
        for o in &objects {
            report.line(format!(
                "  would reprocess s3://{bucket}/{} (version {}, {} bytes, event time {})",
                o.key,
                o.version_id.as_deref().unwrap_or("-"),
                o.size,
                o.last_modified.to_rfc3339_millis()
            ));
        }
    } else {
        let limit = Arc::new(Semaphore::new(CONCURRENCY));
        let mut tasks = JoinSet::new();
        for o in &objects {
            let (aws, limit, function) = (aws.clone(), limit.clone(), config.function.name.clone());
            let payload = event_for(&bucket, &config.target.region, o);
            let key = o.key.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (key, invoke_async(&aws, &function, &payload).await)
            });
        }
        let mut done = 0;
        while let Some(joined) = tasks.join_next().await {
            done += 1;
            match joined {
                Ok((_, Ok(()))) => invoked += 1,
                Ok((key, Err(e))) => errors.push(format!("s3://{bucket}/{key}: {e:#}")),
                Err(e) => errors.push(format!("an invocation task failed: {e}")),
            }
            if total >= 20 && (done % (total / 20).max(1) == 0 || done == total) {
                eprint!(
                    "\r  reprocess: {done}/{total} invoked ({} failed)",
                    errors.len()
                );
                if done == total {
                    eprintln!();
                }
            }
        }
    }
    for e in &errors {
        report.line(format!("  FAILED {e}"));
    }
    match output {
        Output::Json => print_json(&Summary {
            files: total,
            invoked,
            failed: errors.len(),
            dry_run,
            objects: &objects,
            errors: &errors,
        })?,
        Output::Text => println!(
            "{total} files, {invoked} invoked, {} failed{}. Outputs are rewritten in place as the function processes them (`deployer logs --follow` to watch).",
            errors.len(),
            if dry_run {
                " (dry run: nothing invoked)"
            } else {
                ""
            }
        ),
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reprocess_record_is_an_object_created_event_of_the_current_version_without_a_sequencer() {
        let current = Current {
            key: "in/my users+1.csv".into(),
            version_id: Some("3HL4kqtJ".into()),
            size: 309,
            e_tag: "abc".into(),
            last_modified: Timestamp::parse(b"2025-06-24T15:59:58Z").unwrap(),
        };
        let event = event_for("ingest", "eu-west-1", &current);
        let r = &event["Records"][0];
        assert_eq!(r["eventName"], "ObjectCreated:Put");
        assert_eq!(r["eventTime"], "2025-06-24T15:59:58.000Z");
        assert_eq!(r["s3"]["bucket"]["name"], "ingest");
        assert_eq!(r["s3"]["object"]["key"], "in/my+users%2B1.csv");
        assert_eq!(r["s3"]["object"]["versionId"], "3HL4kqtJ");
        assert_eq!(r["s3"]["object"]["size"], 309);
        assert_eq!(r["s3"]["object"]["eTag"], "abc");
        assert!(r["s3"]["object"].get("sequencer").is_none());
        assert_eq!(
            shared::decode_event_key(r["s3"]["object"]["key"].as_str().unwrap()).unwrap(),
            current.key
        );
        // The partition the function picks for it is the upload's.
        assert_eq!(
            shared::OutputKeys::new(&current.key, current.last_modified).cleaned,
            "refined/date=2025-06-24/hour=15/in/my users+1_cleaned.csv"
        );
        let unversioned = Current {
            version_id: None,
            ..current
        };
        assert!(
            event_for("ingest", "eu-west-1", &unversioned)["Records"][0]["s3"]["object"]
                .get("versionId")
                .is_none()
        );
    }

    #[test]
    fn since_takes_a_date_or_a_time() {
        assert_eq!(
            parse_since("2025-06-24").unwrap(),
            Timestamp::parse(b"2025-06-24T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse_since("2025-06-24T15:00:00+02:00").unwrap(),
            Timestamp::parse(b"2025-06-24T13:00:00Z").unwrap()
        );
        assert!(
            parse_since("yesterday")
                .unwrap_err()
                .to_string()
                .contains("--since")
        );
    }
}
