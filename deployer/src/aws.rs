//! AWS clients for one target (endpoint, region, credentials), the call-counting interceptor and SDK error text.
//!
//! Invariant: every control-plane call the deployer makes goes through a client built here, so
//! the `CallLog` sees all of them.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;

use crate::config::{Credentials, Target};

/// One client per service the deployer drives, all sharing one `CallLog`.
#[derive(Clone, Debug)]
pub struct Aws {
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub sts: aws_sdk_sts::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub glue: aws_sdk_glue::Client,
    pub athena: aws_sdk_athena::Client,
    pub sns: aws_sdk_sns::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub calls: CallLog,
    pub endpoint: Option<String>,
    /// The region the clients target (for messages about resources found elsewhere).
    pub region: String,
}

/// Attempts per call (the first try plus retries), in the SDK's standard retry mode.
pub const MAX_ATTEMPTS: u32 = 6;

impl Aws {
    /// Builds the clients. Makes no call: credentials are resolved lazily by the first request.
    pub async fn connect(target: &Target) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(target.region.clone()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(100)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(endpoint) = &target.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if target.credentials == Credentials::Emulator {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "emulator",
            ));
        }
        let sdk = loader.load().await;
        Aws::from_sdk_config(&sdk, target.endpoint.clone())
    }

    /// Builds the clients from an SDK config (tests pass one with a replay HTTP client).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, endpoint: Option<String>) -> Aws {
        let calls = CallLog::default();
        let s3 = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(endpoint.is_some())
            .interceptor(calls.clone())
            .build();
        Aws {
            s3: aws_sdk_s3::Client::from_conf(s3),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            lambda: aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            logs: aws_sdk_cloudwatchlogs::Client::from_conf(
                aws_sdk_cloudwatchlogs::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            glue: aws_sdk_glue::Client::from_conf(
                aws_sdk_glue::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            athena: aws_sdk_athena::Client::from_conf(
                aws_sdk_athena::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            calls,
            endpoint,
            region: sdk
                .region()
                .map(|r| r.as_ref().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// How long to keep retrying a call AWS refuses for a while after a related change: IAM not
/// yet propagated, a queue name deleted less than 60 s ago, a bucket operation in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patience {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// No retry is started past this, counted from the first attempt.
    pub total: Duration,
}

impl Patience {
    /// IAM propagation (a new role, a new role policy) and what waits on it.
    pub const IAM: Patience = Patience {
        first_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(10),
        total: Duration::from_secs(120),
    };
    /// SQS refuses a queue name for 60 s after it was deleted.
    pub const QUEUE_DELETED_RECENTLY: Patience = Patience {
        first_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(10),
        total: Duration::from_secs(90),
    };
    /// S3's bucket operations in progress (`OperationAborted`), and a bucket just created
    /// not yet visible to every endpoint (`NoSuchBucket`).
    pub const S3_BUCKET: Patience = Patience {
        first_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(10),
        total: Duration::from_secs(120),
    };
    /// A Lambda function with an update in progress (`ResourceConflictException`).
    pub const LAMBDA_UPDATE: Patience = Patience {
        first_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(5),
        total: Duration::from_secs(120),
    };
}

/// Runs `call` until it succeeds or fails in a way `waiting` does not recognise; while
/// `waiting` names what is being waited for, retries with exponential backoff within
/// `patience.total`, saying so on stderr. The last error is returned when patience runs out.
pub async fn retry_while<T, E, F, Fut>(
    patience: Patience,
    mut call: F,
    mut waiting: impl FnMut(&E) -> Option<String>,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // Tokio's clock, so a test with paused time sees the same waits.
    let started = tokio::time::Instant::now();
    let mut delay = patience.first_delay;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) => match waiting(&e) {
                Some(why) if started.elapsed() + delay < patience.total => {
                    eprintln!("    {why} (retrying in {delay:?})");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(patience.max_delay);
                }
                _ => return Err(e),
            },
        }
    }
}

/// The error code and message of an SDK error the service answered.
pub fn code_and_message<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> (Option<&str>, &str) {
    match err {
        SdkError::ServiceError(service) => (
            service.err().code(),
            service.err().message().unwrap_or_default(),
        ),
        _ => (None, ""),
    }
}

/// Counts every call made through the clients: by operation, whether it mutates, and attempts.
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<CallCounts>>);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    /// Calls whose operation changes something (anything but Get/List/Describe/Head/Filter).
    pub mutating: u64,
    pub total: u64,
    /// HTTP attempts, so `attempts - total` is the number of retries.
    pub attempts: u64,
    /// `service:Operation` → calls, for mutating operations.
    pub mutating_operations: BTreeMap<String, u64>,
}

impl CallLog {
    pub fn snapshot(&self) -> CallCounts {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, update: impl FnOnce(&mut CallCounts)) {
        if let Ok(mut counts) = self.0.lock() {
            update(&mut counts);
        }
    }
}

/// Whether an API operation changes state, judged by its name.
pub fn is_mutating(operation: &str) -> bool {
    !["Get", "List", "Describe", "Head", "Filter"]
        .iter()
        .any(|read| operation.starts_with(read))
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_default();
        self.record(|c| {
            c.total += 1;
            if is_mutating(&operation) {
                c.mutating += 1;
                *c.mutating_operations
                    .entry(format!("{service}:{operation}"))
                    .or_default() += 1;
            }
        });
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.record(|c| c.attempts += 1);
        Ok(())
    }
}

/// An SDK error as one line: the service's error code and message when it answered, otherwise
/// what went wrong on the way (connection refused, timeout) with every cause.
pub struct SdkErrorText<'a, E, R>(pub &'a SdkError<E, R>);

impl<E, R> fmt::Display for SdkErrorText<'_, E, R>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SdkError::ServiceError(service) => {
                let err = service.err();
                match (err.code(), err.message()) {
                    (Some(code), Some(message)) => write!(f, "{code}: {message}"),
                    (Some(code), None) => f.write_str(code),
                    _ => write!(
                        f,
                        "{}",
                        aws_smithy_types::error::display::DisplayErrorContext(err)
                    ),
                }
            }
            other => {
                let text = aws_smithy_types::error::display::DisplayErrorContext(other).to_string();
                f.write_str(&text.replace('\n', " "))
            }
        }
    }
}

/// Converts an SDK error into an `anyhow::Error` whose text has the code and message.
pub fn sdk_error<E, R>(err: SdkError<E, R>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    let hint = match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            " (is the endpoint reachable? for the local emulator run `make emulator`)"
        }
        _ => "",
    };
    anyhow::anyhow!("{}{hint}", SdkErrorText(&err))
}

/// The service error code of an SDK error, when the service answered with one.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// Who we are acting as, from STS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub account: String,
    /// `aws`, `aws-cn` or `aws-us-gov`: the first field of every ARN we build.
    pub partition: String,
    pub arn: String,
}

impl Aws {
    pub async fn identity(&self) -> anyhow::Result<Identity> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(sdk_error)
            .map_err(|e| e.context("asking STS who we are (GetCallerIdentity)"))?;
        let account = out.account().unwrap_or_default().to_owned();
        let arn = out.arn().unwrap_or_default().to_owned();
        if account.is_empty() {
            anyhow::bail!("STS GetCallerIdentity returned no account id");
        }
        let partition = arn
            .split(':')
            .nth(1)
            .filter(|p| !p.is_empty())
            .unwrap_or("aws")
            .to_owned();
        Ok(Identity {
            account,
            partition,
            arn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_within_their_patience_and_stop_on_other_errors() {
        let patience = Patience {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(4),
            total: Duration::from_secs(20),
        };
        // Refused three times, then accepted.
        let mut calls = 0;
        let started = tokio::time::Instant::now();
        let result: Result<u32, &str> = retry_while(
            patience,
            || {
                calls += 1;
                let n = calls;
                async move { if n <= 3 { Err("busy") } else { Ok(n) } }
            },
            |e| (*e == "busy").then(|| "waiting".to_owned()),
        )
        .await;
        assert_eq!(result, Ok(4));
        assert_eq!(started.elapsed(), Duration::from_secs(1 + 2 + 4));
        // Never accepted: gives up within the total, with the last error.
        let mut calls = 0;
        let started = tokio::time::Instant::now();
        let result: Result<(), &str> = retry_while(
            patience,
            || {
                calls += 1;
                async { Err("busy") }
            },
            |_| Some("waiting".to_owned()),
        )
        .await;
        assert_eq!(result, Err("busy"));
        assert!(started.elapsed() <= Duration::from_secs(20));
        assert_eq!(
            calls, 7,
            "1, 2, 4, 4, 4, 4 s apart (19 s); one more would pass 20 s"
        );
        // Another error is not retried.
        let mut calls = 0;
        let result: Result<(), &str> = retry_while(
            patience,
            || {
                calls += 1;
                async { Err("denied") }
            },
            |e| (*e == "busy").then(|| "waiting".to_owned()),
        )
        .await;
        assert_eq!((result, calls), (Err("denied"), 1));
    }

    #[test]
    fn reads_are_not_mutating() {
        for op in [
            "GetFunction",
            "ListTags",
            "DescribeLogGroups",
            "HeadBucket",
            "FilterLogEvents",
            "GetCallerIdentity",
        ] {
            assert!(!is_mutating(op), "{op}");
        }
        for op in [
            "CreateBucket",
            "PutBucketTagging",
            "UpdateFunctionCode",
            "AddPermission",
            "DeleteRole",
            "TagResource",
        ] {
            assert!(is_mutating(op), "{op}");
        }
    }
}
