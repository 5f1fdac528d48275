//! [`ObjectStore`] over aws-sdk-s3, plus the client construction (honouring `AWS_ENDPOINT_URL`
//! for a local emulator; stalled-stream protection configured for a streaming consumer) and
//! the `x-amz-copy-source` encoding.
//!
//! Stalled-stream protection: the SDK's default (on with `behavior-version-latest`) fails a
//! download whose throughput falls under 1 B/s for its 5 s grace period. The handler reads
//! the source at the pace of its outputs: while part uploads back-pressure it, the body is not
//! read, and a long `CopyObject` is silent until S3 is done. So download protection is off
//! (uploads keep it: their bodies are in memory), and a dead connection is caught instead by
//! a per-read idle timeout that only runs while the handler waits for the next chunk, plus a
//! per-attempt timeout on every call.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart as S3CompletedPart};
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::store::{
    ChunkStream, CompletedPart, Condition, ObjectInfo, ObjectStore, Operation, Pin, Source,
    StoreError, WriteOptions,
};

/// Characters left as they are in `x-amz-copy-source`: RFC 3986 unreserved, and `/` (the
/// bucket/key separator and key "directories"). Everything else, space and `+` included, is
/// percent-encoded as UTF-8.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The `x-amz-copy-source` value for `bucket/key`: URL-encoded, as S3 requires.
pub fn copy_source(bucket: &str, key: &str) -> String {
    format!(
        "{}/{}",
        utf8_percent_encode(bucket, COPY_SOURCE),
        utf8_percent_encode(key, COPY_SOURCE)
    )
}

/// `x-amz-copy-source` for a pinned source: `?versionId=` when the pin is a version.
pub fn pinned_copy_source(source: &Source<'_>) -> String {
    let base = copy_source(source.bucket, source.key);
    match source.pin {
        Pin::Version(v) => format!("{base}?versionId={}", utf8_percent_encode(v, COPY_SOURCE)),
        Pin::ETag(_) | Pin::Current => base,
    }
}

/// Whether the environment points the SDK at a custom endpoint (a local emulator), which
/// needs path-style addressing (no bucket-name DNS).
pub fn custom_endpoint(lookup: impl Fn(&str) -> Option<String>) -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|name| lookup(name).is_some_and(|v| !v.trim().is_empty()))
}

/// How long the store waits on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// While the handler waits for the next chunk of a `GetObject` body: no byte for this
    /// long is a dead connection.
    pub body_idle: Duration,
    /// One attempt of any call (a 5 GiB `CopyObject` takes S3 a minute or two).
    pub attempt: Duration,
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            body_idle: Duration::from_secs(30),
            attempt: Duration::from_secs(600),
            connect: Duration::from_secs(5),
        }
    }
}

/// The SDK settings the store needs: stalled-stream protection for uploads only (see the
/// module docs) and the timeouts.
pub fn sdk_settings(
    loader: aws_config::ConfigLoader,
    timeouts: Timeouts,
) -> aws_config::ConfigLoader {
    loader
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .upload_enabled(true)
                .download_enabled(false)
                .build(),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .operation_attempt_timeout(timeouts.attempt)
                .build(),
        )
}

/// The S3-backed store. Cloning is cheap (the SDK client is reference-counted).
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    body_idle: Duration,
}

impl S3Store {
    pub fn new(client: Client, timeouts: Timeouts) -> S3Store {
        S3Store {
            client,
            body_idle: timeouts.body_idle,
        }
    }

    /// An S3 client for `sdk_config`; path-style addressing when a custom endpoint is set.
    pub fn client(sdk_config: &aws_config::SdkConfig, path_style: bool) -> Client {
        let builder = aws_sdk_s3::config::Builder::from(sdk_config).force_path_style(path_style);
        Client::from_conf(builder.build())
    }

    /// Builds a client from the standard AWS environment (region, credentials, endpoint,
    /// retry settings) with [`sdk_settings`].
    pub async fn from_env() -> S3Store {
        let timeouts = Timeouts::default();
        let sdk_config = sdk_settings(aws_config::defaults(BehaviorVersion::latest()), timeouts)
            .load()
            .await;
        let path_style = custom_endpoint(|name| std::env::var(name).ok());
        S3Store::new(S3Store::client(&sdk_config, path_style), timeouts)
    }
}

/// Maps an SDK error to a [`StoreError`]: the S3 error code, HTTP status and request id when
/// the service answered, the full error chain as the message.
fn store_error<E>(operation: Operation, bucket: &str, key: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let request_id = err.request_id().map(str::to_owned);
    let message = match err.message() {
        Some(m) => m.to_owned(),
        None => DisplayErrorContext(&err).to_string(),
    };
    let status = match &err {
        SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
        SdkError::ResponseError(ctx) => Some(ctx.raw().status().as_u16()),
        _ => None,
    };
    let mut e = match (&err, err.code()) {
        (SdkError::ServiceError(_), Some(code)) => {
            StoreError::service(operation, bucket, key, code, message)
        }
        (SdkError::ServiceError(_), None) => {
            // No code (a HEAD-style error without a body): classify by HTTP status.
            let status = status.unwrap_or(0);
            let mut e = StoreError::transport(
                operation,
                bucket,
                key,
                format!("http status {status}: {message}"),
            );
            e.retryable = status >= 500 || status == 429;
            e
        }
        (SdkError::ConstructionFailure(_), _) => {
            let mut e = StoreError::transport(operation, bucket, key, message);
            e.retryable = false;
            e
        }
        _ => StoreError::transport(operation, bucket, key, message),
    };
    e.status = status.or(e.status);
    e.with_request_id(request_id)
}

/// A `GetObject` body.
pub struct S3Body {
    body: ByteStream,
    bucket: String,
    key: String,
    idle: Duration,
}

impl ChunkStream for S3Body {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        match tokio::time::timeout(self.idle, self.body.try_next()).await {
            Ok(result) => result.map_err(|e| {
                StoreError::transport(
                    Operation::GetObject,
                    &self.bucket,
                    &self.key,
                    format!("reading body: {}", DisplayErrorContext(&e)),
                )
            }),
            Err(_) => Err(StoreError::transport(
                Operation::GetObject,
                &self.bucket,
                &self.key,
                format!(
                    "reading body: no byte for {:?} (the connection is dead)",
                    self.idle
                ),
            )),
        }
    }
}

fn metadata(options: &WriteOptions) -> Option<HashMap<String, String>> {
    (!options.metadata.is_empty()).then(|| {
        options
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

impl ObjectStore for S3Store {
    type Body = S3Body;

    async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        pin: &Pin,
    ) -> Result<Option<ObjectInfo>, StoreError> {
        let mut request = self.client.head_object().bucket(bucket).key(key);
        match pin {
            Pin::Version(v) => request = request.version_id(v),
            Pin::ETag(e) => request = request.if_match(format!("\"{e}\"")),
            Pin::Current => {}
        }
        match request.send().await {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                e_tag: out.e_tag().unwrap_or_default().to_owned(),
                version_id: out
                    .version_id()
                    .filter(|v| !v.is_empty() && *v != "null")
                    .map(str::to_owned),
                content_type: out.content_type().map(str::to_owned),
                metadata: out
                    .metadata()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            })),
            Err(e) => {
                let e = store_error(Operation::HeadObject, bucket, key, e);
                // 404: no such key or version. (Without s3:ListBucket S3 answers 403 instead,
                // which stays an error: the role grants it.)
                if e.status == Some(404) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn copy_object(
        &self,
        source: Source<'_>,
        dst_bucket: &str,
        dst_key: &str,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .copy_object()
            .copy_source(pinned_copy_source(&source))
            .bucket(dst_bucket)
            .key(dst_key);
        if let Pin::ETag(e) = source.pin {
            request = request.copy_source_if_match(format!("\"{e}\""));
        }
        request.send().await.map(|_| ()).map_err(|e| {
            let mut e = store_error(Operation::CopyObject, dst_bucket, dst_key, e);
            e.message = format!(
                "copying from s3://{}/{}: {}",
                source.bucket, source.key, e.message
            );
            e
        })
    }

    async fn get_object(&self, source: Source<'_>) -> Result<S3Body, StoreError> {
        let mut request = self
            .client
            .get_object()
            .bucket(source.bucket)
            .key(source.key);
        match source.pin {
            Pin::Version(v) => request = request.version_id(v),
            Pin::ETag(e) => request = request.if_match(format!("\"{e}\"")),
            Pin::Current => {}
        }
        let out = request
            .send()
            .await
            .map_err(|e| store_error(Operation::GetObject, source.bucket, source.key, e))?;
        Ok(S3Body {
            body: out.body,
            bucket: source.bucket.to_owned(),
            key: source.key.to_owned(),
            idle: self.body_idle,
        })
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &WriteOptions,
        condition: &Condition,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_content_type(options.content_type.clone())
            .set_metadata(metadata(options))
            .body(ByteStream::from(body));
        match condition {
            Condition::None => {}
            Condition::IfAbsent => request = request.if_none_match("*"),
            Condition::IfMatch(e) => request = request.if_match(e),
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(Operation::PutObject, bucket, key, e))
    }

    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        options: &WriteOptions,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_content_type(options.content_type.clone())
            .set_metadata(metadata(options))
            .send()
            .await
            .map_err(|e| store_error(Operation::CreateMultipartUpload, bucket, key, e))?;
        match out.upload_id() {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(StoreError::transport(
                Operation::CreateMultipartUpload,
                bucket,
                key,
                "response has no upload id",
            )),
        }
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Bytes,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| store_error(Operation::UploadPart, bucket, key, e))?;
        match out.e_tag() {
            Some(tag) if !tag.is_empty() => Ok(tag.to_owned()),
            _ => Err(StoreError::transport(
                Operation::UploadPart,
                bucket,
                key,
                format!("response for part {part_number} has no etag"),
            )),
        }
    }

    async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        source: Source<'_>,
        range: Range<u64>,
    ) -> Result<String, StoreError> {
        let mut request = self
            .client
            .upload_part_copy()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .copy_source(pinned_copy_source(&source))
            // HTTP ranges are inclusive.
            .copy_source_range(format!(
                "bytes={}-{}",
                range.start,
                range.end.saturating_sub(1)
            ));
        if let Pin::ETag(e) = source.pin {
            request = request.copy_source_if_match(format!("\"{e}\""));
        }
        let out = request
            .send()
            .await
            .map_err(|e| store_error(Operation::UploadPartCopy, bucket, key, e))?;
        match out.copy_part_result().and_then(|r| r.e_tag()) {
            Some(tag) if !tag.is_empty() => Ok(tag.to_owned()),
            _ => Err(StoreError::transport(
                Operation::UploadPartCopy,
                bucket,
                key,
                format!("response for part {part_number} has no etag"),
            )),
        }
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        condition: &Condition,
    ) -> Result<(), StoreError> {
        let parts = parts
            .iter()
            .map(|p| {
                S3CompletedPart::builder()
                    .part_number(p.part_number)
                    .e_tag(&p.e_tag)
                    .build()
            })
            .collect();
        let mut request = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        match condition {
            Condition::None => {}
            Condition::IfAbsent => request = request.if_none_match("*"),
            Condition::IfMatch(e) => request = request.if_match(e),
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(Operation::CompleteMultipartUpload, bucket, key, e))
    }

    async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(Operation::AbortMultipartUpload, bucket, key, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_is_percent_encoded_utf8_keeping_slashes() {
        assert_eq!(copy_source("in", "users.csv"), "in/users.csv");
        assert_eq!(
            copy_source("in", "my dir/a+b é.csv"),
            "in/my%20dir/a%2Bb%20%C3%A9.csv"
        );
        assert_eq!(
            copy_source("in", "q?x=1&y#z%.csv"),
            "in/q%3Fx%3D1%26y%23z%25.csv"
        );
        assert_eq!(copy_source("in", "a-b_c.d~e"), "in/a-b_c.d~e");
    }

    #[test]
    fn a_pinned_copy_source_names_the_version() {
        let pin = Pin::Version("3/L4kq+tJ".to_owned());
        let source = Source {
            bucket: "in",
            key: "a b.csv",
            pin: &pin,
        };
        assert_eq!(
            pinned_copy_source(&source),
            "in/a%20b.csv?versionId=3/L4kq%2BtJ"
        );
        let etag = Pin::ETag("abc".to_owned());
        assert_eq!(
            pinned_copy_source(&Source {
                pin: &etag,
                ..source
            }),
            "in/a%20b.csv"
        );
    }

    #[test]
    fn custom_endpoint_from_either_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(!custom_endpoint(env(&[])));
        assert!(!custom_endpoint(env(&[("AWS_ENDPOINT_URL", " ")])));
        assert!(custom_endpoint(env(&[(
            "AWS_ENDPOINT_URL",
            "http://127.0.0.1:4566"
        )])));
        assert!(custom_endpoint(env(&[(
            "AWS_ENDPOINT_URL_S3",
            "http://127.0.0.1:4566"
        )])));
    }
}
