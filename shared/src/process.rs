//! The streaming processor: bytes in, verdicts out to a `RowSink`, memory bounded by the largest record.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use crate::header::{ColumnMap, HeaderProblem, resolve_detailed};
use crate::output::RowSink;
use crate::reason::{Reason, ReasonCounts, ReasonSet};
use crate::record::{Record, RecordSplitter};
use crate::row::{RejectedRow, Verdict, validate};

/// Counts for one processed file. Serializes as
/// `{"records":N,"clean":N,"rejected":N,"reasons":{"invalid_email":N,...}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub records: u64,
    pub clean: u64,
    pub rejected: u64,
    pub reasons: ReasonCounts,
    /// Set when the header could not be used (every record is then `invalid_header`).
    #[serde(skip)]
    pub header_problem: Option<HeaderProblem>,
}

/// Size of the chunks `process_reader` reads.
pub const CHUNK_BYTES: usize = 1 << 20;

#[derive(Clone, Debug)]
pub(crate) enum Header {
    /// No record seen yet: the first record is the header.
    Pending,
    Usable(ColumnMap),
    /// Unusable header; the required columns that could still be located.
    Unusable([Option<usize>; 5]),
}

/// Everything but the splitter, so a record borrowed from the splitter can be validated.
#[derive(Debug)]
struct Rows {
    header: Header,
    lower: String,
    summary: Summary,
}

/// Push-based processor: feed it the file in chunks of any size, then `finish`.
#[derive(Debug)]
pub struct Processor {
    splitter: RecordSplitter,
    rows: Rows,
}

impl Default for Processor {
    fn default() -> Processor {
        Processor::new()
    }
}

impl Processor {
    pub fn new() -> Processor {
        Processor::with_max_record_bytes(crate::record::MAX_RECORD_BYTES)
    }

    /// A processor rejecting records larger than `max_record_bytes` as `record_too_large`
    /// (instead of `record::MAX_RECORD_BYTES`). A header larger than that makes the header
    /// unusable.
    pub fn with_max_record_bytes(max_record_bytes: usize) -> Processor {
        Processor {
            splitter: RecordSplitter::with_max_record_bytes(max_record_bytes),
            rows: Rows {
                header: Header::Pending,
                lower: String::new(),
                summary: Summary::default(),
            },
        }
    }

    /// Splits `chunk` (continuing where the previous chunk stopped) into records, validates
    /// each complete one and hands the verdict to `sink`.
    pub fn feed<S: RowSink>(&mut self, chunk: &[u8], sink: &mut S) {
        let rows = &mut self.rows;
        self.splitter.feed(chunk, |record| rows.take(record, sink));
    }

    /// Ends the input (a last record without a terminator is still a record) and returns the counts.
    pub fn finish<S: RowSink>(mut self, sink: &mut S) -> Summary {
        let rows = &mut self.rows;
        self.splitter.finish(|record| rows.take(record, sink));
        self.rows.summary
    }

    /// The counts so far.
    pub fn summary(&self) -> &Summary {
        &self.rows.summary
    }

    /// When the input fed so far ends between records and the header is settled: what a
    /// processor resuming there needs (the header, the line of the next byte, whether the last
    /// byte was `\r`).
    pub(crate) fn boundary(&self) -> Option<(Header, u64, bool)> {
        if matches!(self.rows.header, Header::Pending) {
            return None;
        }
        let (line, prev_cr) = self.splitter.boundary()?;
        Some((self.rows.header.clone(), line, prev_cr))
    }

    /// A processor for the rest of an input from a boundary (see `boundary`), counting from zero.
    pub(crate) fn resume(
        header: Header,
        line: u64,
        prev_cr: bool,
        max_record_bytes: usize,
    ) -> Processor {
        Processor {
            splitter: RecordSplitter::resume(line, prev_cr, max_record_bytes),
            rows: Rows {
                header,
                lower: String::new(),
                summary: Summary::default(),
            },
        }
    }
}

impl Rows {
    #[inline(always)]
    fn take<S: RowSink>(&mut self, record: Record<'_>, sink: &mut S) {
        let summary = &mut self.summary;
        match &self.header {
            Header::Usable(map) => {
                summary.records += 1;
                if record.too_large {
                    // No original is kept: empty, so valid UTF-8.
                    let original = [&[][..]; 5];
                    reject(
                        summary,
                        sink,
                        record.line,
                        Reason::RecordTooLarge,
                        original,
                        true,
                    );
                    return;
                }
                // By reference, not moved: both are read in place where they were written.
                match &validate(record.line, &record.fields, map, &mut self.lower) {
                    Verdict::Clean(row, verbatim) => {
                        summary.clean += 1;
                        match verbatim {
                            Some(line) => sink.clean_verbatim(row, line),
                            None => sink.clean(row),
                        }
                    }
                    Verdict::Rejected(row) => {
                        summary.rejected += 1;
                        summary.reasons.add(row.reasons);
                        sink.rejected(row);
                    }
                }
            }
            Header::Unusable(located) => {
                summary.records += 1;
                let fields = record.fields;
                let original = located.map(|at| at.and_then(|i| fields.get(i)).unwrap_or(b""));
                reject(
                    summary,
                    sink,
                    record.line,
                    Reason::InvalidHeader,
                    original,
                    false,
                );
            }
            Header::Pending => {
                let resolution = if record.too_large {
                    Err((HeaderProblem::TooLarge, [None; 5]))
                } else {
                    let r = resolve_detailed(record.fields.iter());
                    r.map.map_err(|problem| (problem, r.located))
                };
                self.header = match resolution {
                    Ok(map) => Header::Usable(map),
                    Err((problem, located)) => {
                        summary.header_problem = Some(problem);
                        Header::Unusable(located)
                    }
                };
            }
        }
    }
}

fn reject<S: RowSink>(
    summary: &mut Summary,
    sink: &mut S,
    line: u64,
    reason: Reason,
    original: [&[u8]; 5],
    utf8: bool,
) {
    let reasons = ReasonSet::single(reason);
    summary.rejected += 1;
    summary.reasons.add(reasons);
    sink.rejected(&RejectedRow {
        line,
        reasons,
        original,
        utf8,
    });
}

/// Processes a whole input read in `CHUNK_BYTES` chunks. The sink receives every row; with
/// `CsvOutputs` the outputs are then held in memory, so large inputs should rather `feed`
/// chunks and drain the outputs in between.
pub fn process_reader<R: Read, S: RowSink>(mut reader: R, sink: &mut S) -> io::Result<Summary> {
    let mut processor = Processor::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => processor.feed(&buf[..n], sink),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(processor.finish(sink))
}
