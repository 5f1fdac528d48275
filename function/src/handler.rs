//! The S3 event handler: for every object in the event, a raw copy, then streaming validation
//! into the refined outputs (SPEC §3) and their Parquet copies, through any [`ObjectStore`].

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use lambda_runtime::Diagnostic;
use serde::Serialize;
use shared::output::{CLEAN_HEADER, CsvOutputs, REJECTED_HEADER};
use shared::parquet::{ParquetError, ParquetOutputs, RowGroupLimits};
use shared::{OutputKeys, Processor, Summary, Timestamp, decode_event_key};

use crate::metrics::{FileMetrics, MetricsSink, render_emf};
use crate::store::{ChunkStream, ObjectStore, StoreError};
use crate::upload::{OutputUpload, UploadConfig};

/// Input is fed to the processor in slices of at most this size (and at most a quarter of a
/// part), and the output buffers are checked after each, so a huge transport chunk cannot make
/// an output buffer balloon past a part plus one slice's output.
const FEED_SLICE: usize = 256 * 1024;

/// What the function needs to know besides the event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub raw_bucket: String,
    pub refined_bucket: String,
    /// The `FunctionName` metric dimension.
    pub function_name: String,
    pub upload: UploadConfig,
    /// Row-group limits of the Parquet outputs, or `None` when they are switched off
    /// (`PARQUET_OUTPUT=off`).
    pub parquet: Option<RowGroupLimits>,
}

/// A configuration the function cannot start with.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {0} is empty")]
    Empty(&'static str),
}

impl Config {
    /// Reads `RAW_BUCKET`, `REFINED_BUCKET`, `AWS_LAMBDA_FUNCTION_NAME` and `PARQUET_OUTPUT`
    /// (Parquet outputs unless it is `off`) from the environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| match lookup(name) {
            None => Err(ConfigError::Missing(name)),
            Some(v) if v.trim().is_empty() => Err(ConfigError::Empty(name)),
            Some(v) => Ok(v.trim().to_owned()),
        };
        Ok(Config {
            raw_bucket: required("RAW_BUCKET")?,
            refined_bucket: required("REFINED_BUCKET")?,
            function_name: lookup("AWS_LAMBDA_FUNCTION_NAME")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "unknown".to_owned()),
            upload: UploadConfig::default(),
            parquet: match lookup("PARQUET_OUTPUT") {
                Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
                _ => Some(RowGroupLimits::default()),
            },
        })
    }
}

/// One processed object, as returned in the invocation's response and logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// `bucket/key` of the source object (decoded key).
    pub source: String,
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

/// An event record that was deliberately not processed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedRecord {
    /// Position of the record in the event.
    pub index: usize,
    /// The key as it appeared in the event (still URL-encoded), when present.
    pub key: Option<String>,
    pub reason: String,
}

/// The invocation's response: what was done with each record (S3 ignores it; direct invokes,
/// replays and smoke tests can read it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EventReport {
    pub files: Vec<FileReport>,
    pub skipped: Vec<SkippedRecord>,
}

/// Why one object could not be processed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// An S3 call failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Parquet encoder failed (a bug, not bad data: retrying will not help).
    #[error(transparent)]
    Parquet(#[from] ParquetError),
}

impl FileError {
    /// The S3 failure, when it is one.
    pub fn store(&self) -> Option<&StoreError> {
        match self {
            FileError::Store(e) => Some(e),
            FileError::Parquet(_) => None,
        }
    }
}

/// The invocation failed: at least one object could not be read or written. Lambda retries
/// the whole event; objects that succeeded are rewritten with the same bytes.
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
                FileError::Parquet(_) => "Parquet.Encode".to_owned(),
            },
        };
        Diagnostic {
            error_type,
            error_message: e.to_string(),
        }
    }
}

/// One record's object, ready to process.
#[derive(Clone, Debug)]
struct Job {
    bucket: String,
    key: String,
    keys: OutputKeys,
}

/// The function: a store, the buckets, and where metrics go.
pub struct Handler<S> {
    store: S,
    config: Config,
    metrics: MetricsSink,
}

impl<S> Handler<S>
where
    S: ObjectStore + Clone + 'static,
{
    pub fn new(store: S, config: Config, metrics: MetricsSink) -> Handler<S> {
        Handler {
            store,
            config,
            metrics,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Processes every record of `event` in order. Records that cannot name an object are
    /// skipped (logged, reported); an S3 failure on one object does not stop the others, but
    /// makes the invocation fail once all have been tried.
    pub async fn handle(
        &self,
        event: &S3Event,
        request_id: &str,
    ) -> Result<EventReport, HandlerError> {
        let mut report = EventReport::default();
        let mut failures = Vec::new();
        for (index, record) in event.records.iter().enumerate() {
            let job = match self.plan(index, record) {
                Ok(job) => job,
                Err(skipped) => {
                    report.skipped.push(skipped);
                    continue;
                }
            };
            match self.process(&job, request_id).await {
                Ok(file) => report.files.push(file),
                Err(FileError::Store(e)) => {
                    tracing::error!(
                        source = %format!("{}/{}", job.bucket, job.key),
                        operation = %e.operation,
                        code = e.code.as_deref().unwrap_or(""),
                        bucket = %e.bucket,
                        key = %e.key,
                        s3_request_id = e.request_id.as_deref().unwrap_or(""),
                        retryable = e.retryable,
                        request_id,
                        error = %e,
                        "file failed",
                    );
                    failures.push(FileError::Store(e));
                }
                Err(FileError::Parquet(e)) => {
                    tracing::error!(
                        source = %format!("{}/{}", job.bucket, job.key),
                        table = e.table.name(),
                        retryable = false,
                        request_id,
                        error = %e,
                        "file failed",
                    );
                    failures.push(FileError::Parquet(e));
                }
            }
        }
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(report),
            Some(first) => Err(HandlerError::Records {
                failed,
                total: event.records.len(),
                first,
            }),
        }
    }

    /// Turns an event record into a job, or says why it is skipped. None of these reasons can
    /// be fixed by retrying the event, so none of them is an error (which would only re-run
    /// the event until it is dead-lettered).
    fn plan(&self, index: usize, record: &S3EventRecord) -> Result<Job, SkippedRecord> {
        let raw_key = record.s3.object.key.clone();
        let skip = |reason: String| {
            tracing::error!(index, key = raw_key.as_deref().unwrap_or(""), reason = %reason, "record skipped");
            SkippedRecord {
                index,
                key: raw_key.clone(),
                reason,
            }
        };
        if let Some(name) = record.event_name.as_deref()
            && !name.is_empty()
            && !name.starts_with("ObjectCreated:")
            && !name.starts_with("s3:ObjectCreated:")
        {
            return Err(skip(format!("event {name} is not an object creation")));
        }
        let Some(bucket) = record.s3.bucket.name.clone().filter(|b| !b.is_empty()) else {
            return Err(skip("record has no bucket name".to_owned()));
        };
        let Some(encoded) = raw_key.as_deref() else {
            return Err(skip("record has no object key".to_owned()));
        };
        // An undecodable key (a `%` escape that is not UTF-8, say) names no object S3 would
        // have sent us; retrying the event cannot change that, so it is logged and skipped
        // rather than failing the invocation (which would re-run the event's good records and
        // end in the dead-letter queue anyway).
        let key = match decode_event_key(encoded) {
            Ok(key) => key,
            Err(e) => return Err(skip(format!("key {:?} does not decode to utf-8", e.key))),
        };
        if key.is_empty() {
            return Err(skip("record has an empty object key".to_owned()));
        }
        if key.ends_with('/') {
            // A "folder" placeholder object: nothing to ingest.
            tracing::info!(index, source = %format!("{bucket}/{key}"), "directory marker skipped");
            return Err(SkippedRecord {
                index,
                key: raw_key.clone(),
                reason: "key ends with /".to_owned(),
            });
        }
        // Writing into an output bucket would trigger the function again: refuse to loop even
        // if the deployment was misconfigured.
        if bucket == self.config.raw_bucket || bucket == self.config.refined_bucket {
            return Err(skip(format!(
                "source bucket {bucket} is an output bucket; refusing to loop"
            )));
        }
        let event_time = Timestamp::from_unix(
            record.event_time.timestamp(),
            record.event_time.timestamp_subsec_nanos(),
        );
        let Some(event_time) = event_time else {
            return Err(skip(format!(
                "event time {} is outside years 1..=9999",
                record.event_time
            )));
        };
        let keys = OutputKeys::new(&key, event_time);
        Ok(Job { bucket, key, keys })
    }

    /// Raw copy, then stream → validate → upload; on failure every unfinished upload is
    /// aborted so no partial refined object becomes visible.
    async fn process(&self, job: &Job, request_id: &str) -> Result<FileReport, FileError> {
        let started = Instant::now();
        let cfg = &self.config;
        self.store
            .copy_object(&job.bucket, &job.key, &cfg.raw_bucket, &job.keys.raw)
            .await?;
        let mut body = self.store.get_object(&job.bucket, &job.key).await?;
        let upload =
            |key: &str| OutputUpload::new(self.store.clone(), &cfg.refined_bucket, key, cfg.upload);
        let mut uploads = Uploads {
            clean: upload(&job.keys.cleaned),
            rejected: upload(&job.keys.rejected),
            parquet: cfg.parquet.map(|limits| ParquetUploads {
                limits,
                clean: upload(&job.keys.parquet_cleaned),
                rejected: upload(&job.keys.parquet_rejected),
            }),
        };
        let outcome = stream(&mut body, &mut uploads, cfg.upload).await;
        let (summary, bytes) = match outcome {
            Ok(done) => done,
            Err(e) => {
                uploads.abort().await;
                return Err(e);
            }
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let file = FileReport {
            source: format!("{}/{}", job.bucket, job.key),
            raw_key: job.keys.raw.clone(),
            cleaned_key: job.keys.cleaned.clone(),
            rejected_key: job.keys.rejected.clone(),
            records: summary.records,
            clean: summary.clean,
            rejected: summary.rejected,
            bytes,
            cleaned_bytes: uploads.clean.size(),
            rejected_bytes: uploads.rejected.size(),
            parquet: uploads.parquet.as_ref().map(|p| ParquetReport {
                cleaned_key: p.clean.key().to_owned(),
                rejected_key: p.rejected.key().to_owned(),
                cleaned_bytes: p.clean.size(),
                rejected_bytes: p.rejected.size(),
            }),
            duration_ms,
        };
        self.observe(&file, &summary, request_id);
        Ok(file)
    }

    /// The per-file log line and EMF metrics line.
    fn observe(&self, file: &FileReport, summary: &Summary, request_id: &str) {
        let reasons = serde_json::to_string(&summary.reasons).unwrap_or_default();
        tracing::info!(
            source = %file.source,
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
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.metrics.emit(render_emf(
            &metrics,
            &self.config.function_name,
            &file.source,
            request_id,
            now_ms,
        ));
    }
}

/// The uploads of one file: the two CSV outputs and, unless switched off, their Parquet copies.
struct Uploads<S> {
    clean: OutputUpload<S>,
    rejected: OutputUpload<S>,
    parquet: Option<ParquetUploads<S>>,
}

struct ParquetUploads<S> {
    limits: RowGroupLimits,
    clean: OutputUpload<S>,
    rejected: OutputUpload<S>,
}

impl<S: ObjectStore + Clone + 'static> Uploads<S> {
    /// Aborts every unfinished upload (best effort, see [`OutputUpload::abort`]).
    async fn abort(&mut self) {
        self.clean.abort().await;
        self.rejected.abort().await;
        if let Some(p) = self.parquet.as_mut() {
            p.clean.abort().await;
            p.rejected.abort().await;
        }
    }
}

/// Streams `body` through the processor into every output (CSV, and Parquet unless switched
/// off), then prepares them all and commits them all. Everything that moves data (every part)
/// is done before the first commit, so a failure there leaves no output changed. The Parquet
/// objects are committed first and the rejected CSV last, so once `_rejected.csv` is visible,
/// every output of the file is. Returns the summary and the input size.
async fn stream<S, B>(
    body: &mut B,
    out: &mut Uploads<S>,
    upload: UploadConfig,
) -> Result<(Summary, u64), FileError>
where
    S: ObjectStore + Clone + 'static,
    B: ChunkStream,
{
    let mut processor = Processor::new();
    let mut csv = CsvOutputs {
        clean: upload.new_buffer(),
        ..CsvOutputs::new()
    };
    let mut parquet = match &out.parquet {
        Some(p) => Some(ParquetOutputs::with_limits(p.limits)?),
        None => None,
    };
    let feed_slice = (upload.part_size / 4).clamp(4096, FEED_SLICE);
    let mut bytes = 0u64;
    while let Some(chunk) = body.next_chunk().await? {
        bytes += chunk.len() as u64;
        for slice in chunk.chunks(feed_slice) {
            processor.feed(slice, &mut (&mut csv, parquet.as_mut()));
            out.clean.offer(&mut csv.clean).await?;
            out.rejected.offer(&mut csv.rejected).await?;
            if let (Some(pq), Some(up)) = (parquet.as_mut(), out.parquet.as_mut()) {
                if let Some(e) = pq.error() {
                    return Err(e.clone().into());
                }
                up.clean.offer(pq.clean.buffer()).await?;
                up.rejected.offer(pq.rejected.buffer()).await?;
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
    out.clean
        .prepare(clean_rest, format!("{CLEAN_HEADER}\n").as_bytes())
        .await?;
    out.rejected
        .prepare(rejected_rest, format!("{REJECTED_HEADER}\n").as_bytes())
        .await?;
    if let (Some(up), Some((clean, rejected))) = (out.parquet.as_mut(), parquet_rest) {
        // Never empty: a Parquet file ends with its footer.
        up.clean.prepare(clean, &[]).await?;
        up.rejected.prepare(rejected, &[]).await?;
    }
    if let Some(up) = out.parquet.as_mut() {
        up.clean.commit().await?;
        up.rejected.commit().await?;
    }
    out.clean.commit().await?;
    out.rejected.commit().await?;
    Ok((summary, bytes))
}
