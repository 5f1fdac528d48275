//! The failed-events queue as an operator reads it: `deployer failed` lists its events without
//! consuming them; `redrive` (see `redrive.rs`) runs them again.
//!
//! Two kinds of message land there: Lambda's on-failure invocation records (an invocation
//! that failed after its retries: the original event under `requestPayload`, the error under
//! `responseContext`/`responsePayload`), and the function's own permanent-failure messages
//! (`shared::failure`). [`parse`] reads both into one [`FailedEvent`].

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
};
use serde::Serialize;
use serde_json::Value;
use shared::decode_event_key;
use shared::failure::PermanentFailure;

use crate::aws::{Aws, sdk_error};
use crate::commands::connect;
use crate::config::Config;
use crate::report::{Output, Reporter, print_json};
use crate::stack::Names;

/// Who put the message in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Lambda's on-failure destination, after the invocation's retries.
    Lambda,
    /// The function, for an event it will never be able to process.
    Function,
    /// Neither (someone sent it by hand): listed, never redriven.
    Unknown,
}

/// One failed event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedEvent {
    pub message_id: String,
    pub origin: Origin,
    pub bucket: Option<String>,
    /// The decoded object key of the (first) record.
    pub key: Option<String>,
    pub version_id: Option<String>,
    pub event_time: Option<String>,
    pub failed_at: Option<String>,
    /// Invocations Lambda made (1 for the function's own messages: it does not retry them).
    pub attempts: Option<u64>,
    /// Lambda's condition and error type (`RetriesExhausted: S3.PutObject.NoSuchBucket`), or
    /// the function's reason code (`output_key_too_long`).
    pub reason: String,
    pub message: String,
    /// Every object key the event names (for `redrive KEY…`).
    #[serde(skip)]
    pub keys: Vec<String>,
    /// What `redrive` invokes the function with: the original event.
    #[serde(skip)]
    pub payload: Option<Value>,
    #[serde(skip)]
    pub receipt_handle: String,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What the listing needs of one record of an S3 event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Named {
    bucket: Option<String>,
    /// Decoded.
    key: Option<String>,
    version_id: Option<String>,
    event_time: Option<String>,
}

/// Every record of an S3 event, as named objects.
fn objects(event: &Value) -> Vec<Named> {
    event["Records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|r| {
                    let key = r["s3"]["object"]["key"]
                        .as_str()
                        .map(|k| decode_event_key(k).unwrap_or_else(|_| k.to_owned()));
                    Named {
                        bucket: text(&r["s3"]["bucket"]["name"]),
                        key,
                        version_id: text(&r["s3"]["object"]["versionId"]),
                        event_time: text(&r["eventTime"]),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads one queue message, whichever kind it is.
pub fn parse(
    message_id: &str,
    receipt_handle: &str,
    body: &str,
    sent_at: Option<String>,
) -> FailedEvent {
    let mut event = FailedEvent {
        message_id: message_id.to_owned(),
        origin: Origin::Unknown,
        bucket: None,
        key: None,
        version_id: None,
        event_time: None,
        failed_at: sent_at,
        attempts: None,
        reason: "unrecognised".to_owned(),
        message: body.chars().take(200).collect(),
        keys: Vec::new(),
        payload: None,
        receipt_handle: receipt_handle.to_owned(),
    };
    if let Some(f) = PermanentFailure::parse(body) {
        let payload = f.redrive_payload();
        event.origin = Origin::Function;
        event.keys = objects(&payload)
            .into_iter()
            .filter_map(|o| o.key)
            .collect();
        event.bucket = f.bucket;
        event.key = f.key.or_else(|| event.keys.first().cloned());
        event.version_id = f.version_id;
        event.event_time = f.event_time;
        event.failed_at = Some(f.failed_at);
        event.attempts = Some(1);
        event.reason = f.reason;
        event.message = f.message;
        event.payload = Some(payload);
        return event;
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return event;
    };
    if v.get("requestContext").is_none() || v.get("requestPayload").is_none() {
        return event;
    }
    let payload = v["requestPayload"].clone();
    let records = objects(&payload);
    event.origin = Origin::Lambda;
    event.keys = records.iter().filter_map(|o| o.key.clone()).collect();
    if let Some(first) = records.into_iter().next() {
        event.bucket = first.bucket;
        event.key = first.key;
        event.version_id = first.version_id;
        event.event_time = first.event_time;
    }
    event.failed_at = text(&v["timestamp"]).or(event.failed_at);
    event.attempts = v["requestContext"]["approximateInvokeCount"].as_u64();
    let condition = text(&v["requestContext"]["condition"]).unwrap_or_else(|| "Failed".to_owned());
    let error_type = text(&v["responsePayload"]["errorType"])
        .or_else(|| text(&v["responseContext"]["functionError"]));
    event.reason = match error_type {
        Some(t) => format!("{condition}: {t}"),
        None => condition,
    };
    event.message = text(&v["responsePayload"]["errorMessage"])
        .or_else(|| text(&v["responsePayload"]))
        .unwrap_or_default();
    event.payload = Some(payload);
    event
}

/// The failed-events queue's URL.
pub async fn queue_url(aws: &Aws, config: &Config) -> Result<String> {
    let name = Names::new(config).queue;
    aws.sqs
        .get_queue_url()
        .queue_name(&name)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("finding the failed-events queue {name} (GetQueueUrl; is the stack deployed? run `up`)"))?
        .queue_url()
        .map(str::to_owned)
        .with_context(|| format!("sqs queue {name} has no URL"))
}

/// Every message of the queue, each held (invisible to other readers) for `hold`: received
/// until a receive comes back empty (held messages are not received twice).
pub async fn receive_all(
    aws: &Aws,
    url: &str,
    hold: Duration,
    report: &Reporter,
) -> Result<Vec<Message>> {
    let seconds = i32::try_from(hold.as_secs()).unwrap_or(i32::MAX);
    let mut all: Vec<Message> = Vec::new();
    loop {
        let got = aws
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(seconds)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("reading the failed-events queue {url} (ReceiveMessage)"))?;
        let fresh: Vec<Message> = got
            .messages()
            .iter()
            .filter(|m| !all.iter().any(|a| a.message_id() == m.message_id()))
            .cloned()
            .collect();
        if fresh.is_empty() {
            break;
        }
        let before = all.len();
        all.extend(fresh);
        if all.len() / 500 > before / 500 {
            report.line(format!("  … {} messages read", all.len()));
        }
    }
    Ok(all)
}

/// Makes `messages` visible again at once (best effort: they come back after their hold anyway).
pub async fn release(aws: &Aws, url: &str, messages: &[&Message]) -> Result<()> {
    for batch in messages.chunks(10) {
        let entries = batch
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        if entries.is_empty() {
            continue;
        }
        aws.sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| {
                format!(
                    "making failed events visible again in {url} (ChangeMessageVisibilityBatch)"
                )
            })?;
    }
    Ok(())
}

/// Reads one received message.
pub fn event_of(m: &Message) -> FailedEvent {
    let sent = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(|ms| {
            shared::Timestamp::from_unix(
                ms.div_euclid(1000),
                (ms.rem_euclid(1000) as u32) * 1_000_000,
            )
        })
        .map(|t| t.to_rfc3339_millis());
    parse(
        m.message_id().unwrap_or_default(),
        m.receipt_handle().unwrap_or_default(),
        m.body().unwrap_or_default(),
        sent,
    )
}

/// `deployer failed`: every failed event, left in the queue.
pub async fn run(config: &Config, output: Output) -> Result<()> {
    let report = Reporter::new(output);
    let (aws, _) = connect(config, &report).await?;
    let url = queue_url(&aws, config).await?;
    let messages = receive_all(&aws, &url, Duration::from_secs(60), &report).await?;
    let events: Vec<FailedEvent> = messages.iter().map(event_of).collect();
    release(&aws, &url, &messages.iter().collect::<Vec<_>>()).await?;
    match output {
        Output::Json => print_json(&events)?,
        Output::Text => {
            if events.is_empty() {
                println!("No failed events in {}.", Names::new(config).queue);
            }
            for e in &events {
                println!("{}", line(e));
            }
            if !events.is_empty() {
                println!(
                    "{} failed events (still in the queue). Fix the cause, then `deployer redrive --all` (or `redrive KEY…`).",
                    events.len()
                );
            }
        }
    }
    Ok(())
}

/// One event as one line.
pub fn line(e: &FailedEvent) -> String {
    let object = match (&e.bucket, &e.key) {
        (Some(b), Some(k)) => format!("s3://{b}/{k}"),
        (None, Some(k)) => k.clone(),
        _ => "(no object)".to_owned(),
    };
    format!(
        "{object} version {} · event {} · failed {} · {} attempts · {}: {}",
        e.version_id.as_deref().unwrap_or("-"),
        e.event_time.as_deref().unwrap_or("-"),
        e.failed_at.as_deref().unwrap_or("-"),
        e.attempts.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        e.reason,
        e.message
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(key: &str) -> Value {
        json!({"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
               "eventTime": "2025-06-24T15:04:05.123Z",
               "s3": {"bucket": {"name": "in"}, "object": {"key": key, "versionId": "v7", "size": 12}}})
    }

    /// Shaped like Lambda's documented on-failure destination record.
    #[test]
    fn lambda_on_failure_records_are_read() {
        let body = json!({
            "version": "1.0",
            "timestamp": "2025-06-24T15:07:11.568Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:csv-ingest:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": {"Records": [record("dir/my+file.csv")]},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": "1 of 1 records failed; first failure: s3 PutObject failed", "errorType": "S3.PutObject.NoSuchBucket"}
        })
        .to_string();
        let e = parse("m1", "r1", &body, None);
        assert_eq!(e.origin, Origin::Lambda);
        assert_eq!(e.bucket.as_deref(), Some("in"));
        assert_eq!(e.key.as_deref(), Some("dir/my file.csv"));
        assert_eq!(e.version_id.as_deref(), Some("v7"));
        assert_eq!(e.event_time.as_deref(), Some("2025-06-24T15:04:05.123Z"));
        assert_eq!(e.failed_at.as_deref(), Some("2025-06-24T15:07:11.568Z"));
        assert_eq!(e.attempts, Some(3));
        assert_eq!(e.reason, "RetriesExhausted: S3.PutObject.NoSuchBucket");
        assert!(e.message.starts_with("1 of 1 records failed"));
        assert_eq!(
            e.payload,
            Some(json!({"Records": [record("dir/my+file.csv")]}))
        );
        assert_eq!(e.keys, ["dir/my file.csv"]);
        assert!(line(&e).starts_with("s3://in/dir/my file.csv version v7"));
        // An event too old to retry carries no response.
        let old = json!({"timestamp": "t", "requestContext": {"condition": "EventAgeExceeded", "approximateInvokeCount": 1},
                         "requestPayload": {"Records": [record("a.csv")]}, "responseContext": {}})
        .to_string();
        assert_eq!(parse("m", "r", &old, None).reason, "EventAgeExceeded");
    }

    #[test]
    fn the_functions_own_messages_are_read() {
        let f = PermanentFailure {
            kind: shared::failure::KIND.to_owned(),
            reason: "output_key_too_long".to_owned(),
            message: "output key … over S3's 1024-byte limit".to_owned(),
            bucket: Some("in".to_owned()),
            key: Some("a b.csv".to_owned()),
            version_id: Some("v1".to_owned()),
            sequencer: Some("0A".to_owned()),
            event_time: Some("2025-06-24T15:04:05.123Z".to_owned()),
            failed_at: "2025-06-24T15:04:06.000Z".to_owned(),
            function: "f".to_owned(),
            request_id: "r".to_owned(),
            record: record("a+b.csv"),
            is_record: true,
        };
        let e = parse(
            "m2",
            "r2",
            &serde_json::to_string(&f).unwrap(),
            Some("sent".into()),
        );
        assert_eq!(e.origin, Origin::Function);
        assert_eq!(e.key.as_deref(), Some("a b.csv"));
        assert_eq!(e.attempts, Some(1));
        assert_eq!(e.reason, "output_key_too_long");
        assert_eq!(e.failed_at.as_deref(), Some("2025-06-24T15:04:06.000Z"));
        assert_eq!(e.payload, Some(json!({"Records": [record("a+b.csv")]})));
    }

    #[test]
    fn other_messages_are_listed_but_never_redriven() {
        let e = parse("m3", "r3", "hello", Some("2025-01-01T00:00:00.000Z".into()));
        assert_eq!(e.origin, Origin::Unknown);
        assert_eq!(e.payload, None);
        assert_eq!(e.message, "hello");
        assert_eq!(e.failed_at.as_deref(), Some("2025-01-01T00:00:00.000Z"));
        let json = serde_json::to_value(&e).unwrap();
        assert!(json.get("payload").is_none() && json.get("receipt_handle").is_none());
    }
}
