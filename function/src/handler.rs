//! The S3 event handler: for every object in the event, a raw copy of the version the event
//! names, then streaming validation of that same version into the refined outputs (SPEC §3)
//! and their Parquet copies, written only if no newer version's outputs are there (`newest`).
//!
//! Each record ends one of five ways: processed; its version gone (nothing to do); superseded
//! by a newer version (raw copy made, outputs left); a permanent failure (sent to the
//! failed-events queue, the invocation succeeds so it is not retried in vain); or a transient
//! failure (the invocation fails, so Lambda retries it).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::time::Instant as Deadline;

use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use shared::bounds::Output;
use shared::failure::{self, PermanentFailure};
use shared::output::{CLEAN_HEADER, CsvOutputs, REJECTED_HEADER};
use shared::parquet::{ParquetError, ParquetOutputs, RowGroupLimits};
use shared::{OutputKeys, Processor, Summary, Timestamp, budget};

use crate::copy::{CopyConfig, RawCopy, pin_for};
use crate::event::{self, ObjectEvent, Payload, Record};
use crate::metrics::{FileMetrics, MetricsSink, render_emf};
use crate::newest::{Stamp, Verdict, judge, judge_by_current, source_digest};
use crate::store::{
    ChunkStream, Condition, FailedEvents, ObjectInfo, ObjectStore, Pin, QueueError, Source,
    StoreError, WriteOptions,
};
use crate::upload::{OutputUpload, UploadConfig};

/// Input is fed to the processor in slices of at most this size (and at most a quarter of a
/// part), and the output buffers are checked after each, so a huge transport chunk cannot make
/// an output buffer balloon past a part plus one slice's output.
const FEED_SLICE: usize = 256 * 1024;
/// Conditional commits of one output that may lose a race before the invocation gives up
/// (and Lambda retries it).
const COMMIT_ATTEMPTS: usize = 8;
/// Content types of the outputs.
const CSV: &str = "text/csv";
const PARQUET: &str = "application/vnd.apache.parquet";

/// What the function needs to know besides the event.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub raw_bucket: String,
    pub refined_bucket: String,
    /// The `FunctionName` metric dimension.
    pub function_name: String,
    pub upload: UploadConfig,
    pub copy: CopyConfig,
    /// Row-group limits of the Parquet outputs, or `None` when they are switched off
    /// (`PARQUET_OUTPUT=off`).
    pub parquet: Option<RowGroupLimits>,
    /// The function's memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`), which sets its CPU share;
    /// `None` outside Lambda: no time budget is applied.
    pub memory_mb: Option<u32>,
    /// S3's key limit, checked before any output is written.
    pub max_key_bytes: usize,
    /// How long before the invocation's deadline a file still in progress is abandoned (its
    /// uploads aborted) rather than left to the runtime's kill.
    pub deadline_margin: Duration,
    /// `REJECTED_RATIO_ALERT`: the share of rejected records the rejected-share alarm is set
    /// at, for the `RejectedExcess` metric; `None`: no such metric.
    pub rejected_ratio: Option<f64>,
}

/// A configuration the function cannot start with.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {0} is empty")]
    Empty(&'static str),
    #[error("environment variable {0} is {1:?}, not a number of megabytes")]
    NotANumber(&'static str, String),
    #[error("environment variable {0} is {1:?}, not a ratio between 0 and 1")]
    NotARatio(&'static str, String),
}

impl Config {
    /// Reads `RAW_BUCKET`, `REFINED_BUCKET`, `AWS_LAMBDA_FUNCTION_NAME`, `PARQUET_OUTPUT`
    /// (Parquet outputs unless it is `off`) and `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` from the
    /// environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| match lookup(name) {
            None => Err(ConfigError::Missing(name)),
            Some(v) if v.trim().is_empty() => Err(ConfigError::Empty(name)),
            Some(v) => Ok(v.trim().to_owned()),
        };
        const MEMORY: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";
        let memory_mb = match lookup(MEMORY).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| ConfigError::NotANumber(MEMORY, v.clone()))?,
            ),
        };
        const RATIO: &str = "REJECTED_RATIO_ALERT";
        let rejected_ratio = match lookup(RATIO).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => Some(
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0 && *r < 1.0)
                    .ok_or_else(|| ConfigError::NotARatio(RATIO, v.clone()))?,
            ),
        };
        Ok(Config {
            rejected_ratio,
            raw_bucket: required("RAW_BUCKET")?,
            refined_bucket: required("REFINED_BUCKET")?,
            function_name: lookup("AWS_LAMBDA_FUNCTION_NAME")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "unknown".to_owned()),
            upload: UploadConfig::default(),
            copy: CopyConfig::default(),
            parquet: match lookup("PARQUET_OUTPUT") {
                Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
                _ => Some(RowGroupLimits::default()),
            },
            memory_mb,
            max_key_bytes: 1024,
            deadline_margin: Duration::from_secs(5),
        })
    }
}

/// One invocation: its request id and, in Lambda, when the runtime will stop it.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub request_id: String,
    /// On tokio's clock, so tests with paused time can reach it.
    pub deadline: Option<Deadline>,
}

impl Invocation {
    /// An invocation without a deadline (tests, tools).
    pub fn new(request_id: &str) -> Invocation {
        Invocation {
            request_id: request_id.to_owned(),
            deadline: None,
        }
    }

    /// Lambda's deadline (milliseconds since the epoch) as an `Instant`.
    pub fn with_deadline_ms(request_id: &str, deadline_ms: u64) -> Invocation {
        let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Invocation {
            request_id: request_id.to_owned(),
            deadline: Some(Deadline::now() + left),
        }
    }

    /// An invocation that must be done `left` from now.
    pub fn with_time_left(request_id: &str, left: Duration) -> Invocation {
        Invocation {
            request_id: request_id.to_owned(),
            deadline: Some(Deadline::now() + left),
        }
    }

    fn seconds_left(&self) -> Option<f64> {
        self.deadline
            .map(|d| d.saturating_duration_since(Deadline::now()).as_secs_f64())
    }
}

/// One processed object, as returned in the invocation's response and logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// `bucket/key` of the source object (decoded key).
    pub source: String,
    /// The version processed (`None` in an unversioned bucket).
    pub version_id: Option<String>,
    pub raw_key: String,
    pub cleaned_key: String,
    pub rejected_key: String,
    pub records: u64,
    pub clean: u64,
    pub rejected: u64,
    /// Bytes read from the source object.
    pub bytes: u64,
    pub cleaned_bytes: u64,
    pub rejected_bytes: u64,
    /// The Parquet copies of the clean and rejected rows (absent when switched off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parquet: Option<ParquetReport>,
    pub duration_ms: u64,
}

/// The Parquet objects written for one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParquetReport {
    pub cleaned_key: String,
    pub rejected_key: String,
    pub cleaned_bytes: u64,
    pub rejected_bytes: u64,
}

/// A record that was deliberately not processed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedRecord {
    /// Position of the record in the event.
    pub index: usize,
    /// The key as it appeared in the event (still URL-encoded), when present.
    pub key: Option<String>,
    pub reason: String,
}

/// A record whose version was gone, or whose outputs a newer version already owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionNote {
    pub index: usize,
    /// `bucket/key` (decoded).
    pub source: String,
    pub version_id: Option<String>,
    pub why: String,
}

/// A record sent to the failed-events queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailedRecord {
    pub index: usize,
    pub source: Option<String>,
    pub reason: String,
    pub message: String,
}

/// The invocation's response: what was done with each record (S3 ignores it; direct invokes,
/// replays and smoke tests can read it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EventReport {
    pub files: Vec<FileReport>,
    pub skipped: Vec<SkippedRecord>,
    /// The event's version no longer exists (a later upload replaced it in an unversioned
    /// bucket, or it was deleted): nothing written.
    pub gone: Vec<VersionNote>,
    /// A newer version's outputs were already there: the raw copy was made, nothing else.
    pub superseded: Vec<VersionNote>,
    /// Permanent failures, each sent to the failed-events queue.
    pub failed: Vec<FailedRecord>,
    /// The payload was S3's `s3:TestEvent`.
    pub test_event: bool,
}

/// Why one object could not be processed this time; retrying the invocation may succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// An S3 call failed in a way that may pass (throttling, 5xx, a broken connection).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The deadline came close before the file was done; its uploads were aborted.
    #[error(
        "stopped {margin:?} before the invocation's deadline while {stage}; every upload of the file was aborted"
    )]
    Deadline {
        stage: &'static str,
        margin: Duration,
    },
    /// The failure could not be put in the failed-events queue, so the event must fail to
    /// reach it through Lambda's on-failure destination.
    #[error("{message}")]
    Queue { message: String },
}

impl FileError {
    /// The S3 failure, when it is one.
    pub fn store(&self) -> Option<&StoreError> {
        match self {
            FileError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// The invocation failed: at least one object could not be processed this time. Lambda
/// retries the whole event; objects that succeeded are rewritten with the same bytes.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{failed} of {total} records failed; first failure: {first}")]
    Records {
        failed: usize,
        total: usize,
        first: FileError,
    },
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        let error_type = match &e {
            HandlerError::Records { first, .. } => match first {
                FileError::Store(first) => match &first.code {
                    Some(code) => format!("S3.{}.{code}", first.operation),
                    None => format!("S3.{}", first.operation),
                },
                FileError::Deadline { .. } => "Deadline".to_owned(),
                FileError::Queue { .. } => "FailedEventsQueue".to_owned(),
            },
        };
        Diagnostic {
            error_type,
            error_message: e.to_string(),
        }
    }
}

/// A permanent failure of one record, before it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Permanent {
    pub(crate) reason: String,
    pub(crate) message: String,
}

impl Permanent {
    fn new(reason: impl Into<String>, message: impl Into<String>) -> Permanent {
        Permanent {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// How one object ended.
pub(crate) enum Outcome {
    Processed(FileReport),
    Gone(String),
    Superseded(String),
    Permanent(Permanent),
}

/// A failure inside the processing of one object, before it is classified.
pub(crate) enum Stop {
    Store(StoreError),
    Parquet(ParquetError),
    Deadline(&'static str),
    Outcome(Outcome),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Store(e)
    }
}

impl From<ParquetError> for Stop {
    fn from(e: ParquetError) -> Stop {
        Stop::Parquet(e)
    }
}

/// An S3 error that retrying the event may fix. `NoSuchUpload` means the upload was aborted
/// under us (a lifecycle rule): a new attempt starts a new one.
fn is_transient(e: &StoreError) -> bool {
    e.retryable || e.code.as_deref() == Some("NoSuchUpload")
}

/// The function: a store, a failed-events queue, the buckets, and where metrics go.
pub struct Handler<S, Q> {
    store: S,
    queue: Q,
    config: Config,
    metrics: MetricsSink,
}

impl<S, Q> Handler<S, Q>
where
    S: ObjectStore + Clone + 'static,
    Q: FailedEvents,
{
    pub fn new(store: S, queue: Q, config: Config, metrics: MetricsSink) -> Handler<S, Q> {
        Handler {
            store,
            queue,
            config,
            metrics,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Processes every record of `payload` in order. A record that cannot be processed ever is
    /// sent to the failed-events queue; one that failed in a way that may pass does not stop
    /// the others, but makes the invocation fail once all have been tried.
    pub async fn handle(
        &self,
        payload: &Value,
        invocation: &Invocation,
    ) -> Result<EventReport, HandlerError> {
        let request_id = invocation.request_id.as_str();
        let mut report = EventReport::default();
        let records = match event::payload(payload) {
            Payload::TestEvent => {
                tracing::info!(request_id, "s3:TestEvent skipped");
                report.test_event = true;
                return Ok(report);
            }
            Payload::Unrecognised(why) => {
                let failure = Permanent::new(failure::reason::UNPARSEABLE_EVENT, why);
                let result = self
                    .fail_permanently(0, None, payload, false, failure, request_id)
                    .await
                    .map(|failed| report.failed.push(failed));
                return match result {
                    Ok(()) => Ok(report),
                    Err(first) => Err(HandlerError::Records {
                        failed: 1,
                        total: 1,
                        first,
                    }),
                };
            }
            Payload::Records(records) => records,
        };
        let mut failures = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let encoded_key = record["s3"]["object"]["key"].as_str().map(str::to_owned);
            let object = match event::record(record) {
                Record::Object(object) => object,
                Record::Skip(reason) => {
                    tracing::info!(index, key = encoded_key.as_deref().unwrap_or(""), reason = %reason, request_id, "record skipped");
                    report.skipped.push(SkippedRecord {
                        index,
                        key: encoded_key,
                        reason,
                    });
                    continue;
                }
                Record::Invalid(why) => {
                    let failure = Permanent::new(failure::reason::UNPARSEABLE_EVENT, why);
                    match self
                        .fail_permanently(index, None, record, true, failure, request_id)
                        .await
                    {
                        Ok(failed) => report.failed.push(failed),
                        Err(e) => failures.push(e),
                    }
                    continue;
                }
            };
            // Writing into an output bucket would trigger the function again: refuse to loop
            // even if the deployment was misconfigured.
            if object.bucket == self.config.raw_bucket
                || object.bucket == self.config.refined_bucket
            {
                let reason = format!(
                    "source bucket {} is an output bucket; refusing to loop",
                    object.bucket
                );
                tracing::error!(index, reason = %reason, request_id, "record skipped");
                report.skipped.push(SkippedRecord {
                    index,
                    key: encoded_key,
                    reason,
                });
                continue;
            }
            let source = format!("{}/{}", object.bucket, object.key);
            match self.object(&object, invocation).await {
                Ok(Outcome::Processed(file)) => report.files.push(file),
                Ok(Outcome::Gone(why)) => {
                    tracing::warn!(source = %source, version_id = object.version_id.as_deref().unwrap_or(""), why = %why, request_id, "version gone; nothing written");
                    self.count(&source, request_id, |m| m.versions_gone = 1);
                    report.gone.push(VersionNote {
                        index,
                        source,
                        version_id: object.version_id.clone(),
                        why,
                    });
                }
                Ok(Outcome::Superseded(why)) => {
                    tracing::info!(source = %source, version_id = object.version_id.as_deref().unwrap_or(""), why = %why, request_id, "superseded by a newer version; raw copy made, outputs left as they are");
                    self.count(&source, request_id, |m| m.superseded = 1);
                    report.superseded.push(VersionNote {
                        index,
                        source,
                        version_id: object.version_id.clone(),
                        why,
                    });
                }
                Ok(Outcome::Permanent(failure)) => {
                    match self
                        .fail_permanently(index, Some(&object), record, true, failure, request_id)
                        .await
                    {
                        Ok(failed) => report.failed.push(failed),
                        Err(e) => failures.push(e),
                    }
                }
                Err(e) => {
                    let store = e.store();
                    // The invocation fails, so Lambda retries the event.
                    tracing::error!(
                        source = %source,
                        operation = store.map_or("", |s| s.operation.name()),
                        code = store.and_then(|s| s.code.as_deref()).unwrap_or(""),
                        bucket = store.map_or("", |s| s.bucket.as_str()),
                        key = store.map_or("", |s| s.key.as_str()),
                        s3_request_id = store.and_then(|s| s.request_id.as_deref()).unwrap_or(""),
                        retryable = true,
                        request_id,
                        error = %e,
                        "file failed",
                    );
                    failures.push(e);
                }
            }
        }
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(report),
            Some(first) => Err(HandlerError::Records {
                failed,
                total: records.len(),
                first,
            }),
        }
    }

    /// Sends the failure to the failed-events queue (with the record, so `deployer redrive`
    /// can run it again) and logs it. If it cannot be sent, the record fails the invocation
    /// instead, so it still reaches the queue through Lambda's on-failure destination.
    async fn fail_permanently(
        &self,
        index: usize,
        object: Option<&ObjectEvent>,
        record: &Value,
        is_record: bool,
        failure: Permanent,
        request_id: &str,
    ) -> Result<FailedRecord, FileError> {
        let source = object.map(|o| format!("{}/{}", o.bucket, o.key));
        let message = PermanentFailure {
            kind: failure::KIND.to_owned(),
            reason: failure.reason.clone(),
            message: failure.message.clone(),
            bucket: object.map(|o| o.bucket.clone()),
            key: object.map(|o| o.key.clone()),
            version_id: object.and_then(|o| o.version_id.clone()),
            sequencer: object.and_then(|o| o.sequencer.as_ref().map(|s| s.to_string())),
            event_time: object.map(|o| o.event_time_text.clone()),
            failed_at: now().to_rfc3339_millis(),
            function: self.config.function_name.clone(),
            request_id: request_id.to_owned(),
            record: record.clone(),
            is_record,
        };
        tracing::error!(
            index,
            source = source.as_deref().unwrap_or(""),
            reason = %failure.reason,
            error = %failure.message,
            request_id,
            "permanent failure; sending the event to the failed-events queue",
        );
        self.count(source.as_deref().unwrap_or(""), request_id, |m| {
            m.permanent_failures = 1
        });
        if !self.queue.configured() {
            return Err(FileError::Queue {
                message: format!(
                    "permanent failure ({}: {}), and FAILED_EVENTS_QUEUE is not set: failing the invocation instead",
                    failure.reason, failure.message
                ),
            });
        }
        let body = serde_json::to_string(&message).unwrap_or_default();
        match self.queue.send(body).await {
            Ok(()) => Ok(FailedRecord {
                index,
                source,
                reason: failure.reason,
                message: failure.message,
            }),
            Err(QueueError {
                queue,
                code,
                message,
            }) => Err(FileError::Queue {
                message: format!(
                    "permanent failure ({}: {}) could not be sent to {queue} ({}: {message}): failing the invocation instead",
                    failure.reason,
                    failure.message,
                    code.as_deref().unwrap_or("no error code")
                ),
            }),
        }
    }

    /// One EMF line for a record that was not processed.
    fn count(&self, source: &str, request_id: &str, set: impl FnOnce(&mut FileMetrics)) {
        let mut metrics = FileMetrics::default();
        set(&mut metrics);
        self.metrics.emit(render_emf(
            &metrics,
            None,
            &self.config.function_name,
            source,
            request_id,
            now_ms(),
        ));
    }

    /// One object: how its processing ended.
    async fn object(
        &self,
        object: &ObjectEvent,
        invocation: &Invocation,
    ) -> Result<Outcome, FileError> {
        // Boxed: the processing future is large, and nesting it in the invocation's future
        // would make that one too deep for the compiler and too big for a small stack.
        match Box::pin(self.process(object, invocation)).await {
            Ok(file) => Ok(Outcome::Processed(file)),
            Err(stop) => classify(stop, self.config.deadline_margin),
        }
    }

    /// Runs `work` until the deadline's margin; past it, `Stop::Deadline(stage)`.
    async fn before_deadline<T>(
        &self,
        invocation: &Invocation,
        stage: &'static str,
        work: impl Future<Output = Result<T, Stop>>,
    ) -> Result<T, Stop> {
        match invocation.deadline {
            None => work.await,
            Some(deadline) => {
                let stop = deadline
                    .checked_sub(self.config.deadline_margin)
                    .unwrap_or(deadline);
                match tokio::time::timeout_at(stop, work).await {
                    Ok(result) => result,
                    Err(_) => Err(Stop::Deadline(stage)),
                }
            }
        }
    }

    /// The source as it is pinned, with its size: `HeadObject` when the event does not say
    /// the size, or names no version to read (then the reads are pinned to what it found).
    async fn pinned_source(&self, object: &ObjectEvent) -> Result<(Pin, ObjectInfo), Stop> {
        let pin = object.pin();
        if let (Some(size), false) = (object.size, pin == Pin::Current) {
            return Ok((
                pin,
                ObjectInfo {
                    size,
                    e_tag: object.e_tag.clone().unwrap_or_default(),
                    version_id: object.version_id.clone(),
                    ..ObjectInfo::default()
                },
            ));
        }
        match self
            .store
            .head_object(&object.bucket, &object.key, &pin)
            .await
        {
            Ok(Some(info)) => {
                let pin = if pin == Pin::Current {
                    pin_for(&info)
                } else {
                    pin
                };
                Ok((pin, info))
            }
            Ok(None) => Err(gone(&pin)),
            Err(e) if e.is_gone() => Err(gone(&pin)),
            Err(e) => Err(Stop::Store(e)),
        }
    }

    /// Raw copy, checks, then stream → validate → upload → conditional commits; on failure
    /// every unfinished upload is aborted so no partial refined object becomes visible.
    async fn process(
        &self,
        object: &ObjectEvent,
        invocation: &Invocation,
    ) -> Result<FileReport, Stop> {
        let started = Instant::now();
        let cfg = &self.config;
        let keys = OutputKeys::new(&object.key, object.event_time);
        let (pin, mut info) = self.pinned_source(object).await?;
        let source = Source {
            bucket: &object.bucket,
            key: &object.key,
            pin: &pin,
        };
        // The time budget: refuse up front what cannot be finished in time (after the raw
        // copy, if that much fits, so the bytes are kept).
        let over_budget = match (cfg.memory_mb, invocation.seconds_left()) {
            (Some(memory), Some(left)) => {
                let timeout = left.ceil() as u32;
                budget::check(info.size, memory, timeout, left, cfg.parquet.is_some()).err()
            }
            _ => None,
        };
        let copy_fits = match (&over_budget, invocation.seconds_left()) {
            (Some(_), Some(left)) => {
                budget::FIXED_SECONDS + budget::copy_seconds(info.size) <= left
            }
            _ => true,
        };
        if !copy_fits {
            return Err(Stop::Outcome(Outcome::Permanent(Permanent::new(
                failure::reason::OVER_TIME_BUDGET,
                format!(
                    "{}; not even the raw copy fits, so it was not made",
                    over_budget.map(|b| b.to_string()).unwrap_or_default()
                ),
            ))));
        }
        if info.size > cfg.copy.max_single_copy && info.content_type.is_none() {
            // A multipart copy sets the headers itself: read them from the pinned version.
            if let Some(head) = self
                .store
                .head_object(&object.bucket, &object.key, &pin)
                .await
                .or_else(|e| if e.is_gone() { Ok(None) } else { Err(e) })?
            {
                info = head;
            }
        }
        let mut copy = RawCopy::new(self.store.clone(), cfg.copy);
        let copied = self
            .before_deadline(invocation, "copying to the raw bucket", async {
                copy.run(source, &info, &cfg.raw_bucket, &keys.raw)
                    .await
                    .map_err(Stop::Store)
            })
            .await;
        match copied {
            Ok(()) => {}
            Err(Stop::Store(e)) if e.is_gone() => {
                copy.abort().await;
                return Err(gone(&pin));
            }
            Err(stop) => {
                copy.abort().await;
                return Err(stop);
            }
        }
        if let Some(over) = over_budget {
            return Err(Stop::Outcome(Outcome::Permanent(Permanent::new(
                failure::reason::OVER_TIME_BUDGET,
                format!("{over} (the raw copy was made)"),
            ))));
        }
        if let Some(long) = self
            .output_keys(&keys)
            .find(|k| k.len() > cfg.max_key_bytes)
        {
            return Err(Stop::Outcome(Outcome::Permanent(Permanent::new(
                failure::reason::OUTPUT_KEY_TOO_LONG,
                format!(
                    "output key {long:?} would be {} bytes, over S3's {}-byte limit: shorten the source key (the raw copy was made)",
                    long.len(),
                    cfg.max_key_bytes
                ),
            ))));
        }
        let ours = Stamp {
            source: source_digest(&object.bucket, &object.key),
            version_id: info
                .version_id
                .clone()
                .or_else(|| object.version_id.clone()),
            e_tag: object
                .e_tag
                .clone()
                .or_else(|| Some(crate::newest::bare_etag(&info.e_tag).to_owned()))
                .filter(|e| !e.is_empty()),
            sequencer: object.sequencer.clone(),
        };
        let mut outputs = self.outputs(&keys, &ours, info.size);
        let result = self
            .before_deadline(invocation, "processing", async {
                for out in outputs.iter_mut() {
                    let (verdict, condition) = self.judge(&out.key, &ours, object).await?;
                    if verdict == Verdict::Superseded {
                        return Err(Stop::Outcome(Outcome::Superseded(format!(
                            "s3://{}/{} comes from a newer version",
                            cfg.refined_bucket, out.key
                        ))));
                    }
                    out.condition = condition;
                }
                let mut body = match self.store.get_object(source).await {
                    Ok(body) => body,
                    Err(e) if e.is_gone() => return Err(gone(&pin)),
                    Err(e) => return Err(Stop::Store(e)),
                };
                let (summary, bytes) = stream(&mut body, &mut outputs, cfg).await?;
                self.commit(&mut outputs, &ours, object).await?;
                Ok((summary, bytes))
            })
            .await;
        let (summary, bytes) = match result {
            Ok(done) => done,
            Err(stop) => {
                // Every part upload of the file stops before the first abort is sent.
                for out in outputs.iter_mut() {
                    out.upload.cancel_parts();
                }
                for out in outputs.iter_mut() {
                    out.upload.abort().await;
                }
                return Err(stop);
            }
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let size_of = |kind: Output| {
            outputs
                .iter()
                .find(|o| o.kind == kind)
                .map(|o| o.upload.size())
        };
        let file = FileReport {
            source: format!("{}/{}", object.bucket, object.key),
            version_id: ours.version_id.clone(),
            raw_key: keys.raw.clone(),
            cleaned_key: keys.cleaned.clone(),
            rejected_key: keys.rejected.clone(),
            records: summary.records,
            clean: summary.clean,
            rejected: summary.rejected,
            bytes,
            cleaned_bytes: size_of(Output::CleanCsv).unwrap_or(0),
            rejected_bytes: size_of(Output::RejectedCsv).unwrap_or(0),
            parquet: cfg.parquet.map(|_| ParquetReport {
                cleaned_key: keys.parquet_cleaned.clone(),
                rejected_key: keys.parquet_rejected.clone(),
                cleaned_bytes: size_of(Output::CleanParquet).unwrap_or(0),
                rejected_bytes: size_of(Output::RejectedParquet).unwrap_or(0),
            }),
            duration_ms,
        };
        self.observe(&file, &summary, &invocation.request_id);
        Ok(file)
    }

    /// The output keys this deployment writes (the Parquet ones only when switched on).
    fn output_keys<'k>(&self, keys: &'k OutputKeys) -> impl Iterator<Item = &'k String> {
        let parquet = self.config.parquet.is_some();
        [&keys.cleaned, &keys.rejected].into_iter().chain(
            [&keys.parquet_cleaned, &keys.parquet_rejected]
                .into_iter()
                .filter(move |_| parquet),
        )
    }

    /// The uploads of one file in commit order: the Parquet objects first and the rejected CSV
    /// last, so once `_rejected.csv` is visible every output of the file is.
    fn outputs(&self, keys: &OutputKeys, ours: &Stamp, input_size: u64) -> Vec<PendingOutput<S>> {
        let cfg = &self.config;
        let metadata = ours.to_metadata();
        let make = |kind: Output, key: &str, content_type: &str| PendingOutput {
            kind,
            key: key.to_owned(),
            condition: Condition::IfAbsent,
            upload: OutputUpload::new(
                self.store.clone(),
                &cfg.refined_bucket,
                key,
                cfg.upload,
                cfg.upload.part_size_for(kind, input_size),
                WriteOptions {
                    content_type: Some(content_type.to_owned()),
                    metadata: metadata.clone(),
                },
            ),
        };
        let mut outputs = Vec::with_capacity(4);
        if cfg.parquet.is_some() {
            outputs.push(make(Output::CleanParquet, &keys.parquet_cleaned, PARQUET));
            outputs.push(make(
                Output::RejectedParquet,
                &keys.parquet_rejected,
                PARQUET,
            ));
        }
        outputs.push(make(Output::CleanCsv, &keys.cleaned, CSV));
        outputs.push(make(Output::RejectedCsv, &keys.rejected, CSV));
        outputs
    }

    /// Reads the stamp of the object at `key` and judges it against ours; the condition to
    /// commit with is the state that was judged.
    async fn judge(
        &self,
        key: &str,
        ours: &Stamp,
        object: &ObjectEvent,
    ) -> Result<(Verdict, Condition), Stop> {
        let there = self
            .store
            .head_object(&self.config.refined_bucket, key, &Pin::Current)
            .await?;
        let theirs = there
            .as_ref()
            .and_then(|i| Stamp::from_metadata(&i.metadata));
        let mut verdict = judge(ours, theirs.as_ref());
        if verdict == Verdict::AskCurrent {
            let current = self
                .store
                .head_object(&object.bucket, &object.key, &Pin::Current)
                .await?;
            verdict = judge_by_current(ours, current.as_ref());
        }
        let condition = match there {
            None => Condition::IfAbsent,
            Some(info) => Condition::IfMatch(info.e_tag),
        };
        Ok((verdict, condition))
    }

    /// Commits every output in order, each conditionally on the state judged; a lost race is
    /// judged again, and a newer version found there ends the file as superseded (the
    /// outputs not yet committed are aborted by the caller).
    async fn commit(
        &self,
        outputs: &mut [PendingOutput<S>],
        ours: &Stamp,
        object: &ObjectEvent,
    ) -> Result<(), Stop> {
        for out in outputs.iter_mut() {
            let mut attempts = 0;
            loop {
                attempts += 1;
                match out.upload.commit(&out.condition).await {
                    Ok(()) => break,
                    Err(e) if e.is_precondition_failed() && attempts < COMMIT_ATTEMPTS => {
                        let (verdict, condition) = self.judge(&out.key, ours, object).await?;
                        if verdict == Verdict::Superseded {
                            return Err(Stop::Outcome(Outcome::Superseded(format!(
                                "a newer version wrote s3://{}/{} while this one was processed",
                                self.config.refined_bucket, out.key
                            ))));
                        }
                        out.condition = condition;
                    }
                    Err(e) if e.is_precondition_failed() => {
                        // Lost every race: let Lambda retry the event.
                        return Err(Stop::Store(StoreError {
                            retryable: true,
                            ..e
                        }));
                    }
                    Err(e) => return Err(Stop::Store(e)),
                }
            }
        }
        Ok(())
    }

    /// The per-file log line and EMF metrics line.
    fn observe(&self, file: &FileReport, summary: &Summary, request_id: &str) {
        let reasons = serde_json::to_string(&summary.reasons).unwrap_or_default();
        tracing::info!(
            source = %file.source,
            version_id = file.version_id.as_deref().unwrap_or(""),
            records = file.records,
            clean = file.clean,
            rejected = file.rejected,
            bytes = file.bytes,
            duration_ms = file.duration_ms,
            request_id,
            reasons = %reasons,
            cleaned_key = %file.cleaned_key,
            rejected_key = %file.rejected_key,
            parquet_cleaned_key = file.parquet.as_ref().map_or("", |p| p.cleaned_key.as_str()),
            parquet_rejected_key = file.parquet.as_ref().map_or("", |p| p.rejected_key.as_str()),
            "file processed",
        );
        if let Some(problem) = &summary.header_problem {
            tracing::warn!(
                source = %file.source,
                problem = %problem,
                request_id,
                "header unusable; every record rejected as invalid_header",
            );
        }
        let metrics = FileMetrics {
            records_in: file.records,
            clean: file.clean,
            rejected: file.rejected,
            bytes_in: file.bytes,
            duration_ms: file.duration_ms,
            ..FileMetrics::default()
        };
        self.metrics.emit(render_emf(
            &metrics,
            self.config.rejected_ratio,
            &self.config.function_name,
            &file.source,
            request_id,
            now_ms(),
        ));
    }
}

/// Whether a stopped file is retried (`Err`: the invocation fails) or ends here: a permanent
/// failure (the failed-events queue), its version gone, or superseded.
pub(crate) fn classify(stop: Stop, deadline_margin: Duration) -> Result<Outcome, FileError> {
    match stop {
        Stop::Outcome(outcome) => Ok(outcome),
        Stop::Deadline(stage) => Err(FileError::Deadline {
            stage,
            margin: deadline_margin,
        }),
        Stop::Parquet(e) => Ok(Outcome::Permanent(Permanent::new(
            failure::reason::ENCODING_ERROR,
            e.to_string(),
        ))),
        Stop::Store(e) if is_transient(&e) => Err(FileError::Store(e)),
        Stop::Store(e) => Ok(Outcome::Permanent(Permanent::new(
            failure::reason::s3(
                e.code
                    .as_deref()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("Http{}", e.status.unwrap_or(0)))
                    .as_str(),
            ),
            e.to_string(),
        ))),
    }
}

/// The version asked for no longer exists.
fn gone(pin: &Pin) -> Stop {
    Stop::Outcome(Outcome::Gone(match pin {
        Pin::Version(v) => format!("version {v} no longer exists"),
        Pin::ETag(e) => format!("the object no longer has ETag {e} (it was replaced or deleted)"),
        Pin::Current => "the object no longer exists".to_owned(),
    }))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_unix(i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_nanos())
        .or_else(|| Timestamp::from_unix(0, 0))
        .unwrap_or_else(|| unreachable!("the epoch is a valid timestamp"))
}

/// One output of a file: its upload and the condition its commit is made on.
struct PendingOutput<S> {
    kind: Output,
    key: String,
    condition: Condition,
    upload: OutputUpload<S>,
}

/// Streams `body` through the processor into every output (CSV, and Parquet unless switched
/// off), then prepares them all. Everything that moves data (every part) is done here,
/// before the first commit, so a failure leaves no output changed. Returns the summary and the
/// input size.
async fn stream<S, B>(
    body: &mut B,
    outputs: &mut [PendingOutput<S>],
    cfg: &Config,
) -> Result<(Summary, u64), Stop>
where
    S: ObjectStore + Clone + 'static,
    B: ChunkStream,
{
    let index = |kind: Output| outputs.iter().position(|o| o.kind == kind);
    let (clean_i, rejected_i) = match (index(Output::CleanCsv), index(Output::RejectedCsv)) {
        (Some(c), Some(r)) => (c, r),
        _ => unreachable!("every file has both CSV outputs"),
    };
    let parquet_i = index(Output::CleanParquet).zip(index(Output::RejectedParquet));
    let mut processor = Processor::new();
    let mut csv = CsvOutputs {
        clean: outputs[clean_i].upload.new_buffer(),
        ..CsvOutputs::new()
    };
    let mut parquet = match (cfg.parquet, parquet_i) {
        (Some(limits), Some(_)) => Some(ParquetOutputs::with_limits(limits)?),
        _ => None,
    };
    let feed_slice = (cfg.upload.part_size / 4).clamp(4096, FEED_SLICE);
    let mut bytes = 0u64;
    while let Some(chunk) = body.next_chunk().await? {
        bytes += chunk.len() as u64;
        for slice in chunk.chunks(feed_slice) {
            processor.feed(slice, &mut (&mut csv, parquet.as_mut()));
            outputs[clean_i].upload.offer(&mut csv.clean).await?;
            outputs[rejected_i].upload.offer(&mut csv.rejected).await?;
            if let (Some(pq), Some((pc, pr))) = (parquet.as_mut(), parquet_i) {
                if let Some(e) = pq.error() {
                    return Err(e.clone().into());
                }
                outputs[pc].upload.offer(pq.clean.buffer()).await?;
                outputs[pr].upload.offer(pq.rejected.buffer()).await?;
            }
        }
    }
    let summary = processor.finish(&mut (&mut csv, parquet.as_mut()));
    let parquet_rest = parquet.map(ParquetOutputs::finish).transpose()?;
    let CsvOutputs {
        clean: clean_rest,
        rejected: rejected_rest,
        ..
    } = csv;
    outputs[clean_i]
        .upload
        .prepare(clean_rest, format!("{CLEAN_HEADER}\n").as_bytes())
        .await?;
    outputs[rejected_i]
        .upload
        .prepare(rejected_rest, format!("{REJECTED_HEADER}\n").as_bytes())
        .await?;
    if let (Some((pc, pr)), Some((clean, rejected))) = (parquet_i, parquet_rest) {
        // Never empty: a Parquet file ends with its footer.
        outputs[pc].upload.prepare(clean, &[]).await?;
        outputs[pr].upload.prepare(rejected, &[]).await?;
    }
    Ok((summary, bytes))
}
