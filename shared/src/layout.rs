//! Where outputs go (SPEC §3): event key decoding and the raw / refined key layout.

use crate::Timestamp;

/// An S3 event key that does not decode to UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDecodeError {
    pub key: String,
}

/// Decodes an S3 event object key: `+` is a space, then `%XX` escapes (UTF-8).
pub fn decode_event_key(raw: &str) -> Result<String, KeyDecodeError> {
    todo!("{raw}")
}

/// Every key derived from one source object and its event time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputKeys {
    /// Same key in the raw bucket.
    pub raw: String,
    /// `refined/date=YYYY-MM-DD/hour=HH/<dir/><name>_cleaned.csv` in the refined bucket.
    pub cleaned: String,
    /// `refined/date=YYYY-MM-DD/hour=HH/<dir/>rejected/<name>_rejected.csv` in the refined bucket.
    pub rejected: String,
}

impl OutputKeys {
    /// `source_key` is the decoded key; `event_time` the S3 event's `eventTime`.
    pub fn new(source_key: &str, event_time: Timestamp) -> OutputKeys {
        todo!("{source_key} {event_time:?}")
    }
}
