//! The ingestion contract (`SPEC.md`) as pure code: row validation, the streaming processor and the output key layout.
//!
//! Invariant: this crate does no I/O beyond `std::io::Read`/`Write` handed to it (or a `Read`
//! and an output callback, for `parallel`), and depends on no async runtime or AWS crate. The Lambda function, `deployer check` and `deployer smoke` all go
//! through it, so there is exactly one implementation of the contract.

pub mod bounds;
pub mod budget;
pub mod email;
pub mod failure;
pub mod header;
pub mod layout;
pub mod output;
pub mod parallel;
pub mod parquet;
pub mod process;
pub mod reason;
pub mod record;
pub mod row;
pub mod timestamp;

pub use layout::{OutputKeys, decode_event_key};
pub use process::{Processor, Summary};
pub use reason::{Reason, ReasonSet};
pub use timestamp::Timestamp;
