//! [`ObjectStore`] over aws-sdk-s3, plus the client construction (honouring `AWS_ENDPOINT_URL`
//! for a local emulator) and the `x-amz-copy-source` encoding.

use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart as S3CompletedPart};
use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::store::{ChunkStream, CompletedPart, ObjectStore, Operation, StoreError};

const CONTENT_TYPE: &str = "text/csv";

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

/// Whether the environment points the SDK at a custom endpoint (a local emulator), which
/// needs path-style addressing (no bucket-name DNS).
pub fn custom_endpoint(lookup: impl Fn(&str) -> Option<String>) -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|name| lookup(name).is_some_and(|v| !v.trim().is_empty()))
}

/// The S3-backed store. Cloning is cheap (the SDK client is reference-counted).
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
}

impl S3Store {
    pub fn new(client: Client) -> S3Store {
        S3Store { client }
    }

    /// Builds a client from the standard AWS environment (region, credentials, endpoint,
    /// retry settings); path-style addressing when a custom endpoint is set.
    pub async fn from_env() -> S3Store {
        let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk_config);
        if custom_endpoint(|name| std::env::var(name).ok()) {
            builder = builder.force_path_style(true);
        }
        S3Store::new(Client::from_conf(builder.build()))
    }
}

/// Maps an SDK error to a [`StoreError`]: the S3 error code and request id when the service
/// answered, the full error chain as the message.
fn store_error<E>(operation: Operation, bucket: &str, key: &str, err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let request_id = err.request_id().map(str::to_owned);
    let message = match err.message() {
        Some(m) => m.to_owned(),
        None => DisplayErrorContext(&err).to_string(),
    };
    let e = match (&err, err.code()) {
        (SdkError::ServiceError(_), Some(code)) => {
            StoreError::service(operation, bucket, key, code, message)
        }
        (SdkError::ServiceError(ctx), None) => {
            // No code (a HEAD-style error without a body): classify by HTTP status.
            let status = ctx.raw().status().as_u16();
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
    e.with_request_id(request_id)
}

/// A `GetObject` body.
pub struct S3Body {
    body: ByteStream,
    bucket: String,
    key: String,
}

impl ChunkStream for S3Body {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        self.body.try_next().await.map_err(|e| {
            StoreError::transport(
                Operation::GetObject,
                &self.bucket,
                &self.key,
                format!("reading body: {}", DisplayErrorContext(&e)),
            )
        })
    }
}

impl ObjectStore for S3Store {
    type Body = S3Body;

    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
    ) -> Result<(), StoreError> {
        self.client
            .copy_object()
            .copy_source(copy_source(src_bucket, src_key))
            .bucket(dst_bucket)
            .key(dst_key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let mut e = store_error(Operation::CopyObject, dst_bucket, dst_key, e);
                e.message = format!("copying from s3://{src_bucket}/{src_key}: {}", e.message);
                e
            })
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<S3Body, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| store_error(Operation::GetObject, bucket, key, e))?;
        Ok(S3Body {
            body: out.body,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    async fn put_object(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(CONTENT_TYPE)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(Operation::PutObject, bucket, key, e))
    }

    async fn create_multipart_upload(&self, bucket: &str, key: &str) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(CONTENT_TYPE)
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

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
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
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
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
