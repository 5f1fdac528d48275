//! The narrow object-store interface the handler needs, and its error type.
//!
//! The handler only ever talks to storage through [`ObjectStore`], so it can be tested against
//! an in-memory fake and run against S3 (`s3.rs`) unchanged.

use std::fmt;
use std::future::Future;

use bytes::Bytes;

/// The S3 operation a [`StoreError`] comes from (displayed as the S3 API name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    CopyObject,
    GetObject,
    PutObject,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    AbortMultipartUpload,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::CopyObject => "CopyObject",
            Operation::GetObject => "GetObject",
            Operation::PutObject => "PutObject",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
        }
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
/// Every `StoreError` fails the invocation (so Lambda retries the event); `retryable` says whether
/// that retry is expected to help, and is logged so an operator can tell throttling from a
/// misconfiguration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("s3 {operation} failed for s3://{bucket}/{key} ({}): {message}", .code.as_deref().unwrap_or("no error code"))]
pub struct StoreError {
    pub operation: Operation,
    pub bucket: String,
    pub key: String,
    /// The S3 error code, when the service answered with one.
    pub code: Option<Box<str>>,
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
            message: message.into(),
            request_id: None,
            retryable: true,
        }
    }

    pub fn with_request_id(mut self, request_id: Option<String>) -> StoreError {
        self.request_id = request_id.map(String::into_boxed_str);
        self
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
    )
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

    /// Server-side copy of `src_bucket/src_key` to `dst_bucket/dst_key`.
    fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Opens the object for streaming; the body yields its bytes in order.
    fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Self::Body, StoreError>> + Send;

    /// Writes a whole object in one request (visible at once, or not at all).
    fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Starts a multipart upload; returns its upload id.
    fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
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

    /// Makes the object visible as the concatenation of `parts` (in part-number order).
    fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Discards an unfinished multipart upload and its parts.
    fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
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
        ] {
            assert!(is_retryable_code(code), "{code}");
        }
        for code in [
            "NoSuchKey",
            "AccessDenied",
            "NoSuchBucket",
            "InvalidRequest",
        ] {
            assert!(!is_retryable_code(code), "{code}");
        }
    }
}
