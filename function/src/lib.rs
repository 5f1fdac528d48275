//! The ingestion Lambda as a library: the event handler over a narrow object store and
//! failed-events queue, their S3 and SQS implementations, tolerant event parsing, the
//! newest-version-wins rule, the raw copy, bounded-memory output uploads, logs and metrics.
//! `main.rs` only wires them.

pub mod copy;
pub mod event;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod newest;
pub mod s3;
pub mod sqs;
pub mod store;
pub mod upload;

#[cfg(any(test, feature = "fake"))]
pub mod fake;
#[cfg(test)]
mod tests;

pub use handler::{
    Config, ConfigError, EventReport, FileError, FileReport, Handler, HandlerError, Invocation,
    ParquetReport,
};
pub use store::{
    ChunkStream, CompletedPart, Condition, FailedEvents, ObjectInfo, ObjectStore, Operation, Pin,
    QueueError, Source, StoreError, WriteOptions,
};
pub use upload::UploadConfig;
