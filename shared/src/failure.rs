//! The message the function sends to the failed-events queue for an event it will never be
//! able to process (a permanent failure), and the reason codes. The function writes it;
//! `deployer failed` and `redrive` read it back, beside Lambda's own on-failure records.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `kind` of every permanent-failure message, telling it from Lambda's records.
pub const KIND: &str = "csv-ingest/permanent-failure";

/// Why an event failed permanently.
pub mod reason {
    /// An output key would be over S3's 1,024-byte limit (the raw copy was made).
    pub const OUTPUT_KEY_TOO_LONG: &str = "output_key_too_long";
    /// The file cannot be processed within the function's timeout at its memory size.
    pub const OVER_TIME_BUDGET: &str = "over_time_budget";
    /// The payload or record names no object the function could process.
    pub const UNPARSEABLE_EVENT: &str = "unparseable_event";
    /// The Parquet encoder failed (a bug, not bad data).
    pub const ENCODING_ERROR: &str = "encoding_error";

    /// An S3 error that retrying will not fix: `s3.AccessDenied`, `s3.InvalidRequest`, …
    pub fn s3(code: &str) -> String {
        format!("s3.{code}")
    }
}

/// One permanent failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PermanentFailure {
    /// Always [`KIND`].
    pub kind: String,
    /// A code from [`reason`].
    pub reason: String,
    /// What went wrong and what would fix it, in one line.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The decoded object key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    /// The record's `eventTime`, as written in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// When the function gave up, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub failed_at: String,
    pub function: String,
    pub request_id: String,
    /// The record as the function received it (for a payload that is not an S3 event at all,
    /// the whole payload). `redrive` invokes the function with `{"Records": [record]}`.
    pub record: Value,
    /// Whether `record` is one record of `Records` (`false`: the whole payload).
    #[serde(default = "yes")]
    pub is_record: bool,
}

fn yes() -> bool {
    true
}

impl PermanentFailure {
    /// Reads a queue message body, when it is one of ours.
    pub fn parse(body: &str) -> Option<PermanentFailure> {
        let failure: PermanentFailure = serde_json::from_str(body).ok()?;
        (failure.kind == KIND).then_some(failure)
    }

    /// The payload that runs this record again.
    pub fn redrive_payload(&self) -> Value {
        if self.is_record {
            serde_json::json!({ "Records": [self.record] })
        } else {
            self.record.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_message_round_trips_and_others_are_not_ours() {
        let f = PermanentFailure {
            kind: KIND.to_owned(),
            reason: reason::OUTPUT_KEY_TOO_LONG.to_owned(),
            message: "too long".to_owned(),
            bucket: Some("in".to_owned()),
            key: Some("a.csv".to_owned()),
            version_id: Some("v1".to_owned()),
            sequencer: None,
            event_time: Some("2025-06-24T15:04:05.000Z".to_owned()),
            failed_at: "2025-06-24T15:04:06.000Z".to_owned(),
            function: "f".to_owned(),
            request_id: "r".to_owned(),
            record: json!({"eventName": "ObjectCreated:Put"}),
            is_record: true,
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(PermanentFailure::parse(&text), Some(f.clone()));
        assert_eq!(
            f.redrive_payload(),
            json!({"Records": [{"eventName": "ObjectCreated:Put"}]})
        );
        assert_eq!(PermanentFailure::parse(r#"{"requestContext": {}}"#), None);
        assert_eq!(PermanentFailure::parse("not json"), None);
        assert_eq!(reason::s3("AccessDenied"), "s3.AccessDenied");
    }
}
