//! The narrow object-store interface the handler needs, and its error type.
//!
//! The handler only ever talks to storage through [`ObjectStore`] (and to the failed-events
//! queue through [`FailedEvents`]), so it can be tested against an in-memory fake and run
//! against S3 (`s3.rs`) and SQS (`sqs.rs`) unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::ops::Range;

use bytes::Bytes;

/// The S3 operation a [`StoreError`] comes from (displayed as the S3 API name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    HeadObject,
    CopyObject,
    GetObject,
    PutObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::HeadObject => "HeadObject",
            Operation::CopyObject => "CopyObject",
            Operation::GetObject => "GetObject",
            Operation::PutObject => "PutObject",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::UploadPartCopy => "UploadPartCopy",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
        }
    }

    /// Whether the operation makes something visible in a bucket (the ones S3's conditional
    /// writes apply to).
    pub fn commits(self) -> bool {
        matches!(
            self,
            Operation::PutObject | Operation::CompleteMultipartUpload
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed storage call: which operation on which object, the S3 error code when the service
/// answered one (`NoSuchKey`, `AccessDenied`, `SlowDown`, ...), and whether trying again later
/// may succeed.
///
/// `retryable` decides what the handler does with it: a retryable error fails the invocation
/// (Lambda retries the event), a permanent one sends the event to the failed-events queue at
/// once (retrying would fail the same way).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("s3 {operation} failed for s3://{bucket}/{key} ({}): {message}", .code.as_deref().unwrap_or("no error code"))]
pub struct StoreError {
    pub operation: Operation,
    pub bucket: String,
    pub key: String,
    /// The S3 error code, when the service answered with one.
    pub code: Option<Box<str>>,
    /// The HTTP status, when the service answered.
    pub status: Option<u16>,
    pub message: String,
    /// The S3 request id, when the service answered.
    pub request_id: Option<Box<str>>,
    pub retryable: bool,
}

impl StoreError {
    /// An error with an S3 error code; `retryable` is derived from the code.
    pub fn service(
        operation: Operation,
        bucket: &str,
        key: &str,
        code: &str,
        message: impl Into<String>,
    ) -> StoreError {
        StoreError {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code: Some(code.into()),
            status: status_of_code(code),
            message: message.into(),
            request_id: None,
            retryable: is_retryable_code(code),
        }
    }

    /// An error without a service answer (connection, timeout, broken body stream): retryable.
    pub fn transport(
        operation: Operation,
        bucket: &str,
        key: &str,
        message: impl Into<String>,
    ) -> StoreError {
        StoreError {
            operation,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code: None,
            status: None,
            message: message.into(),
            request_id: None,
            retryable: true,
        }
    }

    /// A request this function refuses to send because S3 would refuse it (a key over 1,024
    /// bytes, a part past the 10,000th): permanent.
    pub fn refused(
        operation: Operation,
        bucket: &str,
        key: &str,
        code: &str,
        message: impl Into<String>,
    ) -> StoreError {
        StoreError {
            retryable: false,
            ..StoreError::service(operation, bucket, key, code, message)
        }
    }

    pub fn with_request_id(mut self, request_id: Option<String>) -> StoreError {
        self.request_id = request_id.map(String::into_boxed_str);
        self
    }

    /// The object (or the version of it that was asked for) does not exist, or no longer has
    /// the ETag asked for: `NoSuchKey`, `NoSuchVersion`, `PreconditionFailed`, or a bare 404
    /// / 412 (a HEAD has no error body).
    pub fn is_gone(&self) -> bool {
        match self.code.as_deref() {
            Some(code) => matches!(
                code,
                "NoSuchKey" | "NoSuchVersion" | "PreconditionFailed" | "NotFound"
            ),
            None => matches!(self.status, Some(404 | 412)),
        }
    }

    /// A conditional write lost: the object changed since it was read (`If-Match`), or exists
    /// when it was expected absent (`If-None-Match: *`). S3 also answers `ConditionalRequestConflict`
    /// (409) when two conditional writes race.
    pub fn is_precondition_failed(&self) -> bool {
        match self.code.as_deref() {
            Some(code) => matches!(code, "PreconditionFailed" | "ConditionalRequestConflict"),
            None => matches!(self.status, Some(412 | 409)),
        }
    }
}

/// Whether an S3 error code describes a transient condition (throttling, server trouble,
/// timeouts) rather than a permanent one (missing object or bucket, denied access, bad request).
pub fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException"
            | "TransactionInProgressException"
            | "RequestLimitExceeded"
            | "BandwidthLimitExceeded"
            | "LimitExceededException"
            | "PriorRequestNotComplete"
            | "InternalError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "RequestTimeTooSkewed"
            | "OperationAborted"
            | "IDPCommunicationError"
            | "ConditionalRequestConflict"
            | "ExpiredToken"
            | "TokenRefreshRequired"
    )
}

/// The HTTP status S3 answers with a code, for the codes the handler reasons about.
fn status_of_code(code: &str) -> Option<u16> {
    match code {
        "NoSuchKey" | "NoSuchVersion" | "NoSuchBucket" | "NoSuchUpload" | "NotFound" => Some(404),
        "PreconditionFailed" => Some(412),
        "AccessDenied" => Some(403),
        "ConditionalRequestConflict" => Some(409),
        "SlowDown" | "ServiceUnavailable" => Some(503),
        "InternalError" => Some(500),
        _ => None,
    }
}

/// Which version of a source object a read or copy is pinned to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pin {
    /// `versionId` (the event of a versioned bucket names one).
    Version(String),
    /// `If-Match` / `x-amz-copy-source-if-match` on this ETag (an event without a version).
    ETag(String),
    /// Whatever version is current (an event that names neither, or asking what is current).
    Current,
}

/// A source object, pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub pin: &'a Pin,
}

/// What `HeadObject` says about an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// As S3 sends it, quotes included.
    pub e_tag: String,
    /// `None` in a bucket that was never versioned.
    pub version_id: Option<String>,
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), names lowercased without the prefix.
    pub metadata: BTreeMap<String, String>,
}

/// The precondition of a write (S3 conditional writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Write whatever is there.
    None,
    /// `If-None-Match: *`: only if no object exists at the key.
    IfAbsent,
    /// `If-Match`: only if the current object has this ETag.
    IfMatch(String),
}

/// Headers a new object gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    pub content_type: Option<String>,
    /// User metadata, names without the `x-amz-meta-` prefix; US-ASCII values.
    pub metadata: BTreeMap<String, String>,
}

/// One uploaded part, as `CompleteMultipartUpload` needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1-based, consecutive.
    pub part_number: i32,
    pub e_tag: String,
}

/// The body of a `GetObject`, read chunk by chunk (chunk sizes are the transport's choice).
pub trait ChunkStream: Send {
    /// The next chunk, or `None` at the end of the object. An error mid-stream is a failed read.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;
}

/// The storage calls the handler makes. Buckets and keys are plain (decoded) strings; any
/// encoding a transport needs is the implementation's business.
pub trait ObjectStore: Send + Sync {
    type Body: ChunkStream;

    /// The object's size, ETag, version and metadata; `None` when it (or the pinned version)
    /// does not exist.
    fn head_object(
        &self,
        bucket: &str,
        key: &str,
        pin: &Pin,
    ) -> impl Future<Output = Result<Option<ObjectInfo>, StoreError>> + Send;

    /// Server-side copy of the pinned `source` to `dst_bucket/dst_key`, content type and user
    /// metadata included (S3 refuses a source over 5 GiB: see `upload_part_copy`).
    fn copy_object(
        &self,
        source: Source<'_>,
        dst_bucket: &str,
        dst_key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Opens the pinned object for streaming; the body yields its bytes in order.
    fn get_object(
        &self,
        source: Source<'_>,
    ) -> impl Future<Output = Result<Self::Body, StoreError>> + Send;

    /// Writes a whole object in one request (visible at once, or not at all), if `condition`
    /// holds (else `PreconditionFailed`).
    fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &WriteOptions,
        condition: &Condition,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Starts a multipart upload of an object with these headers; returns its upload id.
    fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Uploads one part; returns its ETag.
    fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Bytes,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Copies `range` (bytes, end exclusive) of the pinned `source` as one part; returns its ETag.
    fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        source: Source<'_>,
        range: Range<u64>,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Makes the object visible as the concatenation of `parts` (in part-number order), if
    /// `condition` holds (else `PreconditionFailed`, and the upload stays open).
    fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        condition: &Condition,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Discards an unfinished multipart upload and its parts.
    fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A failed `SendMessage` to the failed-events queue.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("sqs SendMessage to the failed-events queue {queue} failed ({}): {message}", .code.as_deref().unwrap_or("no error code"))]
pub struct QueueError {
    pub queue: String,
    pub code: Option<String>,
    pub message: String,
}

/// Where the function puts an event it will never be able to process (a permanent failure),
/// so it is neither retried nor lost.
pub trait FailedEvents: Send + Sync {
    /// Whether a queue is configured at all (`FAILED_EVENTS_QUEUE`).
    fn configured(&self) -> bool;

    /// Sends one message (a JSON document).
    fn send(&self, body: String) -> impl Future<Output = Result<(), QueueError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_names_operation_object_and_code() {
        let e = StoreError::service(
            Operation::GetObject,
            "in",
            "a/b.csv",
            "NoSuchKey",
            "the specified key does not exist",
        );
        assert_eq!(
            e.to_string(),
            "s3 GetObject failed for s3://in/a/b.csv (NoSuchKey): the specified key does not exist"
        );
        assert!(!e.retryable);
        let t = StoreError::transport(Operation::UploadPart, "out", "k", "connection reset");
        assert_eq!(
            t.to_string(),
            "s3 UploadPart failed for s3://out/k (no error code): connection reset"
        );
        assert!(t.retryable);
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        for code in [
            "SlowDown",
            "InternalError",
            "ServiceUnavailable",
            "RequestTimeout",
            "ConditionalRequestConflict",
        ] {
            assert!(is_retryable_code(code), "{code}");
        }
        for code in [
            "NoSuchKey",
            "AccessDenied",
            "NoSuchBucket",
            "InvalidRequest",
            "KeyTooLongError",
            "EntityTooLarge",
        ] {
            assert!(!is_retryable_code(code), "{code}");
        }
    }

    #[test]
    fn gone_and_lost_races_are_told_apart_from_other_errors() {
        let e = |code: &str| StoreError::service(Operation::GetObject, "b", "k", code, "m");
        for code in ["NoSuchKey", "NoSuchVersion", "PreconditionFailed"] {
            assert!(e(code).is_gone(), "{code}");
        }
        for code in ["AccessDenied", "NoSuchBucket", "SlowDown"] {
            assert!(!e(code).is_gone(), "{code}");
        }
        assert!(e("PreconditionFailed").is_precondition_failed());
        assert!(!e("NoSuchKey").is_precondition_failed());
        let bare = |status| StoreError {
            status: Some(status),
            ..StoreError::transport(Operation::HeadObject, "b", "k", "no body")
        };
        assert!(bare(404).is_gone());
        assert!(bare(412).is_precondition_failed());
        assert!(!bare(403).is_gone());
    }
}
