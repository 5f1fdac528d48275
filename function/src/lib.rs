//! The ingestion Lambda as a library: the event handler over a narrow object store, its S3
//! implementation, bounded-memory output uploads, logs and metrics. `main.rs` only wires them.

pub mod handler;
pub mod logging;
pub mod metrics;
pub mod s3;
pub mod store;
pub mod upload;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use handler::{
    Config, ConfigError, EventReport, FileError, FileReport, Handler, HandlerError, ParquetReport,
};
pub use store::{ChunkStream, CompletedPart, ObjectStore, Operation, StoreError};
pub use upload::UploadConfig;
