//! The invocation payload, read tolerantly: only the fields the function uses (bucket, key,
//! size, eTag, versionId, sequencer, eventTime, eventName), so a record lacking the others
//! (`userIdentity`, `requestParameters`, …) is still processed, and S3's `s3:TestEvent` is
//! recognised and skipped instead of failing deserialization.

use serde_json::Value;
use shared::{Timestamp, decode_event_key};

use crate::newest::{Sequencer, bare_etag};
use crate::store::Pin;

/// What an invocation payload is.
#[derive(Debug, PartialEq)]
pub enum Payload<'a> {
    /// `s3:TestEvent`: S3 sends one when a notification is configured. Nothing to do.
    TestEvent,
    /// An S3 notification (or a record built by `deployer reprocess`/`redrive`).
    Records(&'a [Value]),
    /// Neither: nothing in it can be processed, ever.
    Unrecognised(String),
}

/// Tells what `payload` is.
pub fn payload(payload: &Value) -> Payload<'_> {
    if payload.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Payload::TestEvent;
    }
    match payload.get("Records") {
        Some(Value::Array(records)) => Payload::Records(records),
        Some(_) => Payload::Unrecognised("`Records` is not an array".to_owned()),
        None => Payload::Unrecognised(
            "the payload is neither an S3 event (no `Records`) nor an s3:TestEvent".to_owned(),
        ),
    }
}

/// One `ObjectCreated` record, with what the function needs of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEvent {
    pub bucket: String,
    /// Decoded (`+` is a space, `%XX` escapes).
    pub key: String,
    /// As it appeared in the event.
    pub encoded_key: String,
    /// The object's size, when the record says.
    pub size: Option<u64>,
    /// Without quotes.
    pub e_tag: Option<String>,
    pub version_id: Option<String>,
    pub sequencer: Option<Sequencer>,
    pub event_time: Timestamp,
    /// `eventTime` as written in the record.
    pub event_time_text: String,
    pub event_name: String,
}

impl ObjectEvent {
    /// The version the event is about: its `versionId`, else its ETag, else whatever is current.
    pub fn pin(&self) -> Pin {
        match (&self.version_id, &self.e_tag) {
            (Some(v), _) => Pin::Version(v.clone()),
            (None, Some(e)) => Pin::ETag(e.clone()),
            (None, None) => Pin::Current,
        }
    }
}

/// What to do with one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Object(ObjectEvent),
    /// Deliberately not processed: not an object creation, or a folder marker.
    Skip(String),
    /// Cannot be processed, now or ever: a permanent failure.
    Invalid(String),
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, name| v.get(name))
        .and_then(Value::as_str)
}

/// Reads one record of `Records`.
pub fn record(v: &Value) -> Record {
    let event_name = text(v, &["eventName"]).unwrap_or_default().to_owned();
    if !event_name.is_empty()
        && !event_name.starts_with("ObjectCreated:")
        && !event_name.starts_with("s3:ObjectCreated:")
    {
        return Record::Skip(format!("event {event_name} is not an object creation"));
    }
    let Some(bucket) = text(v, &["s3", "bucket", "name"]).filter(|b| !b.is_empty()) else {
        return Record::Invalid("the record has no s3.bucket.name".to_owned());
    };
    let Some(encoded_key) = text(v, &["s3", "object", "key"]) else {
        return Record::Invalid("the record has no s3.object.key".to_owned());
    };
    let key = match decode_event_key(encoded_key) {
        Ok(key) => key,
        Err(_) => {
            return Record::Invalid(format!(
                "the object key {encoded_key:?} does not decode to UTF-8"
            ));
        }
    };
    if key.is_empty() {
        return Record::Invalid("the record's object key is empty".to_owned());
    }
    if key.ends_with('/') {
        return Record::Skip("key ends with / (a folder marker)".to_owned());
    }
    let Some(time_text) = text(v, &["eventTime"]) else {
        return Record::Invalid("the record has no eventTime".to_owned());
    };
    let Some(event_time) = Timestamp::parse(time_text.trim().as_bytes()) else {
        return Record::Invalid(format!(
            "eventTime {time_text:?} is not a timestamp like 2025-06-24T15:04:05.123Z"
        ));
    };
    let object = &v["s3"]["object"];
    let size = match &object["size"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let non_empty = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "null")
    };
    Record::Object(ObjectEvent {
        bucket: bucket.to_owned(),
        key,
        encoded_key: encoded_key.to_owned(),
        size,
        e_tag: non_empty("eTag").map(|e| bare_etag(e).to_owned()),
        version_id: non_empty("versionId").map(str::to_owned),
        sequencer: non_empty("sequencer").and_then(Sequencer::parse),
        event_time,
        event_time_text: time_text.to_owned(),
        event_name,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_test_event_is_recognised_and_other_payloads_are_not_records() {
        let test = json!({
            "Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2025-06-24T15:04:05.000Z",
            "Bucket": "in", "RequestId": "R", "HostId": "H"
        });
        assert_eq!(payload(&test), Payload::TestEvent);
        let records = json!({"Records": []});
        assert_eq!(payload(&records), Payload::Records(&[]));
        assert!(matches!(
            payload(&json!({"hello": 1})),
            Payload::Unrecognised(_)
        ));
        assert!(matches!(
            payload(&json!({"Records": {}})),
            Payload::Unrecognised(_)
        ));
        assert!(matches!(payload(&json!("text")), Payload::Unrecognised(_)));
    }

    #[test]
    fn a_minimal_record_is_enough() {
        let r = record(&json!({
            "eventTime": "2025-06-24T15:04:05Z",
            "s3": {"bucket": {"name": "in"}, "object": {"key": "a+b%2Fc.csv"}}
        }));
        let Record::Object(o) = r else {
            panic!("{r:?}")
        };
        assert_eq!(o.bucket, "in");
        assert_eq!(o.key, "a b/c.csv");
        assert_eq!(o.size, None);
        assert_eq!(o.pin(), Pin::Current);
        assert_eq!(
            o.event_time,
            Timestamp::parse(b"2025-06-24T15:04:05Z").unwrap()
        );
    }

    #[test]
    fn a_full_record_names_its_version() {
        let r = record(&json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "eventTime": "2025-06-24T15:04:05.123Z",
            "userIdentity": {"principalId": "X"},
            "s3": {"bucket": {"name": "in", "arn": "arn:aws:s3:::in"},
                   "object": {"key": "users.csv", "size": 309, "eTag": "\"abc\"",
                              "versionId": "3HL4kqtJvjVBH40Nrjfkd", "sequencer": "0055AED6DCD90281E5"}}
        }));
        let Record::Object(o) = r else {
            panic!("{r:?}")
        };
        assert_eq!(o.size, Some(309));
        assert_eq!(o.e_tag.as_deref(), Some("abc"));
        assert_eq!(o.pin(), Pin::Version("3HL4kqtJvjVBH40Nrjfkd".into()));
        assert_eq!(o.sequencer, Sequencer::parse("55AED6DCD90281E5"));
        let unversioned = record(&json!({
            "eventTime": "2025-06-24T15:04:05Z",
            "s3": {"bucket": {"name": "in"}, "object": {"key": "k", "eTag": "abc", "size": "12"}}
        }));
        let Record::Object(o) = unversioned else {
            panic!()
        };
        assert_eq!(o.pin(), Pin::ETag("abc".into()));
        assert_eq!(o.size, Some(12));
    }

    #[test]
    fn records_are_skipped_or_refused_with_a_reason() {
        let base = |name: &str, key: Value, time: Value| {
            json!({"eventName": name, "eventTime": time,
                   "s3": {"bucket": {"name": "in"}, "object": {"key": key}}})
        };
        let t = json!("2025-06-24T15:04:05Z");
        let cases: Vec<(Value, &str)> = vec![
            (
                base("ObjectRemoved:Delete", json!("a.csv"), t.clone()),
                "skip",
            ),
            (
                base("s3:ObjectCreated:Copy", json!("dir/"), t.clone()),
                "skip",
            ),
            (
                base("ObjectCreated:Put", json!("%FF.csv"), t.clone()),
                "invalid",
            ),
            (base("ObjectCreated:Put", json!(""), t.clone()), "invalid"),
            (base("ObjectCreated:Put", json!(null), t.clone()), "invalid"),
            (
                base("ObjectCreated:Put", json!("a.csv"), json!("yesterday")),
                "invalid",
            ),
            (
                base("ObjectCreated:Put", json!("a.csv"), json!(null)),
                "invalid",
            ),
            (
                json!({"eventTime": "2025-06-24T15:04:05Z", "s3": {}}),
                "invalid",
            ),
        ];
        for (v, want) in cases {
            let got = match record(&v) {
                Record::Skip(_) => "skip",
                Record::Invalid(_) => "invalid",
                Record::Object(_) => "object",
            };
            assert_eq!(got, want, "{v}");
        }
    }
}
