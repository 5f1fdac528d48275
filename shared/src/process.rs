//! The streaming processor: bytes in, verdicts out to a `RowSink`, memory bounded by the largest record.

use serde::Serialize;

use crate::header::HeaderProblem;
use crate::output::RowSink;
use crate::reason::ReasonCounts;

/// Counts for one processed file. Serializes as
/// `{"records":N,"clean":N,"rejected":N,"reasons":{"invalid_email":N,...}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub records: u64,
    pub clean: u64,
    pub rejected: u64,
    pub reasons: ReasonCounts,
    /// Set when the header could not be used (every record is then `invalid_header`).
    #[serde(skip)]
    pub header_problem: Option<HeaderProblem>,
}

/// Push-based processor: feed it the file in chunks of any size, then `finish`.
#[derive(Debug, Default)]
pub struct Processor {}

impl Processor {
    pub fn new() -> Processor {
        Processor::default()
    }

    /// Splits `chunk` (continuing where the previous chunk stopped) into records, validates
    /// each complete one and hands the verdict to `sink`.
    pub fn feed<S: RowSink>(&mut self, chunk: &[u8], sink: &mut S) {
        let _ = (chunk, sink);
        todo!()
    }

    /// Ends the input (a last record without a terminator is still a record) and returns the counts.
    pub fn finish<S: RowSink>(self, sink: &mut S) -> Summary {
        let _ = sink;
        todo!()
    }
}
