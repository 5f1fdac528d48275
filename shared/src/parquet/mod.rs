//! Parquet outputs: the clean and rejected rows as two Parquet files (the `users` and
//! `users_rejected` Glue tables), written in bounded row groups into buffers the caller drains.
//!
//! Schemas (lowercase names, every column `REQUIRED`; partition columns come from the path):
//!
//! | file | columns |
//! |---|---|
//! | clean | `id`, `name`, `email`: `BYTE_ARRAY` `STRING`; `create_ts`, `update_ts`: `INT64` `TIMESTAMP(MICROS, isAdjustedToUTC=true)` |
//! | rejected | `line`: `INT64`; `reasons` (codes joined by `;`), `id`, `name`, `email`, `create_ts`, `update_ts` (original values, lossy UTF-8): `BYTE_ARRAY` `STRING` |
//!
//! Timestamps are the parsed instants (offsets applied, so `13:00:00+02:00` is `11:00:00Z`),
//! truncated to the microsecond. Rows are buffered column by column and written as one row
//! group every `RowGroupLimits::rows` rows or `RowGroupLimits::bytes` bytes of values, so memory
//! is bounded by one row group whatever the file size. The bytes depend only on the rows (not
//! on how the input was chunked or when the buffers are drained), and the footer holds nothing
//! variable (`created_by` is constant), so a replay writes identical files. A file with no
//! rows is still a valid Parquet file (no row group).
//!
//! The file format is written here (`encode`, `thrift`), not by a general Parquet writer: Format
//! 1.0 data pages of PLAIN values, Snappy per column chunk where it saves space, statistics
//! per page and per chunk, dictionary encoding for `name`, `reasons` and the clean file's
//! instants where it pays (see
//! `encode` for each choice). The tests read every file back with the `parquet` crate's reader.
//! Gathering (`RowGroups`) and encoding (`TableEncoder`) are separate so `deployer check` can
//! run them on two threads; `ParquetOutputs` runs both on the caller's.

use std::collections::VecDeque;
use std::fmt;

mod encode;
mod thrift;

use encode::{ColumnSpec, GroupMeta, Kind, Scratch, Values};

use crate::Processor;
use crate::output::{RowSink, original_text};
use crate::row::{CleanRow, RejectedRow};

/// `created_by` in every file's footer: constant for a release, so replays are byte-identical.
pub const CREATED_BY: &str = concat!("csv-ingest version ", env!("CARGO_PKG_VERSION"));

/// Columns of the clean file, in order.
pub const CLEAN_COLUMNS: [&str; 5] = ["id", "name", "email", "create_ts", "update_ts"];
/// Columns of the rejected file, in order.
pub const REJECTED_COLUMNS: [&str; 7] = [
    "line",
    "reasons",
    "id",
    "name",
    "email",
    "create_ts",
    "update_ts",
];

/// When a row group is written: after this many rows, or once the buffered values reach this
/// many bytes (strings by length, integers 8 bytes each), whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowGroupLimits {
    pub rows: usize,
    pub bytes: usize,
}

impl Default for RowGroupLimits {
    /// 32,768 rows or 4 MiB of values (about 2.5 MiB of input per group for typical rows):
    /// small enough that the function stays well inside 128 MB with all four outputs
    /// streaming, large enough for Athena to skip whole groups by their statistics.
    fn default() -> RowGroupLimits {
        RowGroupLimits {
            rows: 32_768,
            bytes: 4 << 20,
        }
    }
}

/// Which of the two files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Clean,
    Rejected,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Clean => "clean",
            Table::Rejected => "rejected",
        }
    }

    /// The file's columns, in order: what the rows are gathered into and the footer says.
    fn schema(self) -> &'static [ColumnSpec] {
        match self {
            Table::Clean => &CLEAN_SCHEMA,
            Table::Rejected => &REJECTED_SCHEMA,
        }
    }
}

/// The Parquet encoder failed (a bug rather than bad input: every row is representable, and a
/// page is far below the format's 2 GiB limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetError {
    pub table: Table,
    pub message: String,
}

impl fmt::Display for ParquetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot encode the {} parquet output: {}",
            self.table.name(),
            self.message
        )
    }
}

impl std::error::Error for ParquetError {}

/// One buffered column of the current row group.
#[derive(Debug)]
enum Column {
    /// UTF-8 values PLAIN-encoded back to back (each a 4-byte little-endian length, then its
    /// bytes), so a data page is a slice of `data`; `ends[i]` is where value `i` ends.
    Text {
        data: Vec<u8>,
        ends: Vec<usize>,
    },
    Int64(Vec<i64>),
}

impl Column {
    fn text() -> Column {
        Column::Text {
            data: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// Appends a string value; returns its size in bytes (without the length prefix).
    #[inline]
    fn push_text(&mut self, value: &[u8]) -> usize {
        if let Column::Text { data, ends } = self {
            // A value is part of one record, far below 4 GiB (`MAX_RECORD_BYTES`).
            data.extend_from_slice(&(value.len() as u32).to_le_bytes());
            data.extend_from_slice(value);
            ends.push(data.len());
        }
        value.len()
    }

    #[inline]
    fn push_i64(&mut self, value: i64) -> usize {
        if let Column::Int64(values) = self {
            values.push(value);
        }
        8
    }
}

/// Rows of one table gathered column by column: a row group to be.
#[derive(Debug)]
pub struct RowGroup {
    table: Table,
    columns: Vec<Column>,
    rows: usize,
    bytes: usize,
}

impl RowGroup {
    pub fn new(table: Table) -> RowGroup {
        let columns = table
            .schema()
            .iter()
            .map(|spec| match spec.kind {
                Kind::Text { .. } => Column::text(),
                Kind::Timestamp | Kind::Int64 => Column::Int64(Vec::new()),
            })
            .collect();
        RowGroup {
            table,
            columns,
            rows: 0,
            bytes: 0,
        }
    }

    pub fn table(&self) -> Table {
        self.table
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of values gathered (strings by length, integers 8 bytes each).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    fn is_full(&self, limits: RowGroupLimits) -> bool {
        self.rows >= limits.rows || self.bytes >= limits.bytes
    }

    fn clear(&mut self) {
        self.rows = 0;
        self.bytes = 0;
        for column in &mut self.columns {
            match column {
                Column::Text { data, ends } => {
                    data.clear();
                    ends.clear();
                }
                Column::Int64(values) => values.clear(),
            }
        }
    }

    #[inline]
    fn push_clean(&mut self, row: &CleanRow<'_>) {
        let [id, name, email, created, updated] = &mut self.columns[..] else {
            return;
        };
        self.bytes += id.push_text(row.id.as_bytes())
            + name.push_text(row.name.as_bytes())
            + email.push_text(row.email.as_bytes())
            + created.push_i64(row.created.unix_micros())
            + updated.push_i64(row.updated.unix_micros());
        self.rows += 1;
    }

    fn push_rejected(&mut self, row: &RejectedRow<'_>) {
        let [line, reasons, originals @ ..] = &mut self.columns[..] else {
            return;
        };
        let mut bytes = line.push_i64(i64::try_from(row.line).unwrap_or(i64::MAX));
        if let Column::Text { data, ends } = reasons {
            let at = data.len();
            data.extend_from_slice(&[0; 4]);
            row.reasons.write_codes(data);
            let len = data.len() - at - 4;
            // At most every reason code: a few dozen bytes.
            data[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
            ends.push(data.len());
            bytes += len;
        }
        for (column, value) in originals.iter_mut().zip(row.original) {
            bytes += column.push_text(&original_text(value, row.utf8));
        }
        self.bytes += bytes;
        self.rows += 1;
    }
}

/// A `RowSink` gathering the rows of both tables into row groups without encoding them: each
/// full group waits in a queue (`next_ready`) to be encoded by a [`TableEncoder`], possibly on
/// another thread. [`ParquetOutputs`] is this plus the two encoders on the caller's thread; both
/// give the same groups, so the same bytes.
#[derive(Debug)]
pub struct RowGroups {
    limits: RowGroupLimits,
    clean: RowGroup,
    rejected: RowGroup,
    ready: VecDeque<RowGroup>,
    spare: Vec<RowGroup>,
    clean_rows: u64,
    rejected_rows: u64,
}

impl RowGroups {
    pub fn new(limits: RowGroupLimits) -> RowGroups {
        RowGroups {
            limits: RowGroupLimits {
                rows: limits.rows.max(1),
                bytes: limits.bytes.max(1),
            },
            clean: RowGroup::new(Table::Clean),
            rejected: RowGroup::new(Table::Rejected),
            ready: VecDeque::new(),
            spare: Vec::new(),
            clean_rows: 0,
            rejected_rows: 0,
        }
    }

    /// The oldest full group (groups of one table come out in row order).
    pub fn next_ready(&mut self) -> Option<RowGroup> {
        self.ready.pop_front()
    }

    /// Gives back a written (emptied) group so its buffers are reused.
    pub fn recycle(&mut self, mut group: RowGroup) {
        group.clear();
        if self.spare.len() < 4 {
            self.spare.push(group);
        }
    }

    /// Rows gathered so far: (clean, rejected).
    pub fn rows(&self) -> (u64, u64) {
        (self.clean_rows, self.rejected_rows)
    }

    /// Ends the input: every group not handed out yet, the partial ones last (empty ones left
    /// out), in the order to write them.
    pub fn finish(mut self) -> Vec<RowGroup> {
        let mut groups: Vec<RowGroup> = self.ready.drain(..).collect();
        groups.extend(
            [self.clean, self.rejected]
                .into_iter()
                .filter(|g| !g.is_empty()),
        );
        groups
    }

    /// Queues `group` when it is full, putting an empty one in its place.
    #[inline]
    fn check_full(&mut self, table: Table) {
        let limits = self.limits;
        let (group, spare) = match table {
            Table::Clean => (&mut self.clean, &mut self.spare),
            Table::Rejected => (&mut self.rejected, &mut self.spare),
        };
        if group.is_full(limits) {
            let fresh = match spare.iter().position(|g| g.table == table) {
                Some(i) => spare.swap_remove(i),
                None => RowGroup::new(table),
            };
            self.ready.push_back(std::mem::replace(group, fresh));
        }
    }
}

impl RowSink for RowGroups {
    #[inline]
    fn clean(&mut self, row: &CleanRow<'_>) {
        self.clean.push_clean(row);
        self.clean_rows += 1;
        self.check_full(Table::Clean);
    }

    #[inline]
    fn rejected(&mut self, row: &RejectedRow<'_>) {
        self.rejected.push_rejected(row);
        self.rejected_rows += 1;
        self.check_full(Table::Rejected);
    }
}

/// Schema of the clean file.
const CLEAN_SCHEMA: [ColumnSpec; 5] = [
    text_spec("id", false),
    text_spec("name", true),
    text_spec("email", false),
    ColumnSpec {
        name: "create_ts",
        kind: Kind::Timestamp,
    },
    ColumnSpec {
        name: "update_ts",
        kind: Kind::Timestamp,
    },
];

/// Schema of the rejected file: the original values are text, as read.
const REJECTED_SCHEMA: [ColumnSpec; 7] = [
    ColumnSpec {
        name: "line",
        kind: Kind::Int64,
    },
    text_spec("reasons", true),
    text_spec("id", false),
    text_spec("name", true),
    text_spec("email", false),
    text_spec("create_ts", false),
    text_spec("update_ts", false),
];

/// A string column; `dictionary` where values repeat (names, reason lists): ids, emails and
/// the rejected file's original instants are nearly unique, and a dictionary would only be
/// built to be dropped. (Parsed instants, `Kind::Timestamp`, always try one: a batch's rows
/// often share them, and trying costs only the first 1,024 values of a chunk.)
const fn text_spec(name: &'static str, dictionary: bool) -> ColumnSpec {
    ColumnSpec {
        name,
        kind: Kind::Text { dictionary },
    }
}

/// One Parquet file: encodes row groups of its table into a buffer the caller drains.
pub struct TableEncoder {
    table: Table,
    schema: &'static [ColumnSpec],
    buffer: Vec<u8>,
    /// Bytes appended to `buffer` since the file began (drained or not): the next byte's offset.
    written: u64,
    groups: Vec<GroupMeta>,
    rows: u64,
    scratch: Scratch,
}

impl fmt::Debug for TableEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableEncoder")
            .field("table", &self.table)
            .field("rows", &self.rows)
            .field("row_groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl TableEncoder {
    /// A file of `table`'s schema, so far only its leading magic bytes.
    pub fn new(table: Table) -> Result<TableEncoder, ParquetError> {
        Ok(TableEncoder {
            table,
            schema: table.schema(),
            buffer: b"PAR1".to_vec(),
            written: 4,
            groups: Vec::new(),
            rows: 0,
            scratch: Scratch::default(),
        })
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// Encoded bytes not yet drained. Take them (`mem::take`, `clear`, or swap in an empty
    /// buffer) whenever convenient: the file is everything drained, in order, then `finish`'s
    /// rest.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Row groups written so far.
    pub fn row_groups(&self) -> u64 {
        self.groups.len() as u64
    }

    /// Writes `group` as the file's next row group (nothing for an empty group) and empties it.
    pub fn write(&mut self, group: &mut RowGroup) -> Result<(), ParquetError> {
        let result = if group.table != self.table {
            Err(format!(
                "a {} row group cannot go into the {} file",
                group.table.name(),
                self.table.name()
            ))
        } else if group.is_empty() {
            Ok(())
        } else {
            self.encode(group)
        };
        group.clear();
        result.map_err(|message| ParquetError {
            table: self.table,
            message,
        })
    }

    fn encode(&mut self, group: &RowGroup) -> Result<(), String> {
        if group.columns.len() != self.schema.len() {
            return Err("the schema and the rows have different columns".to_owned());
        }
        let before = self.buffer.len();
        let offset = self.written - before as u64;
        // About the group's PLAIN size, so a freshly drained buffer grows once, not by doubling.
        self.buffer
            .reserve(group.bytes + 4 * group.rows * self.schema.len() + (1 << 16));
        let mut columns = Vec::with_capacity(self.schema.len());
        for (spec, column) in self.schema.iter().zip(&group.columns) {
            let values = match column {
                Column::Text { data, ends } => Values::Text { data, ends },
                Column::Int64(values) => Values::Int64(values),
            };
            if values.len() != group.rows {
                return Err(format!("column {} has a value missing", spec.name));
            }
            columns.push(encode::write_chunk(
                &mut self.buffer,
                offset,
                *spec,
                values,
                &mut self.scratch,
            )?);
        }
        self.written += (self.buffer.len() - before) as u64;
        self.groups.push(GroupMeta {
            rows: group.rows as i64,
            columns,
        });
        self.rows += group.rows as u64;
        Ok(())
    }

    /// Writes the footer; returns the bytes not drained yet (never empty: at least the footer).
    pub fn finish(mut self) -> Result<Vec<u8>, ParquetError> {
        let base = self.written - self.buffer.len() as u64;
        encode::write_page_indexes(&mut self.buffer, base, &mut self.groups);
        encode::write_footer(&mut self.buffer, self.schema, &self.groups, CREATED_BY);
        Ok(self.buffer)
    }
}

/// The two Parquet outputs of one input, as a `RowSink` encoding on the caller's thread: clean
/// rows to `clean`, rejected rows to `rejected`. Drain `clean.buffer()` / `rejected.buffer()` as
/// they fill up, then `finish`.
#[derive(Debug)]
pub struct ParquetOutputs {
    groups: RowGroups,
    pub clean: TableEncoder,
    pub rejected: TableEncoder,
    error: Option<ParquetError>,
}

impl ParquetOutputs {
    /// Both files with the default row-group limits.
    pub fn new() -> Result<ParquetOutputs, ParquetError> {
        ParquetOutputs::with_limits(RowGroupLimits::default())
    }

    pub fn with_limits(limits: RowGroupLimits) -> Result<ParquetOutputs, ParquetError> {
        Ok(ParquetOutputs {
            groups: RowGroups::new(limits),
            clean: TableEncoder::new(Table::Clean)?,
            rejected: TableEncoder::new(Table::Rejected)?,
            error: None,
        })
    }

    /// The first encoding failure, if any (rows after it are dropped).
    pub fn error(&self) -> Option<&ParquetError> {
        self.error.as_ref()
    }

    /// Rows received so far: (clean, rejected).
    pub fn rows(&self) -> (u64, u64) {
        self.groups.rows()
    }

    /// Ends both files; returns the rest of each (clean, rejected), to append to what was
    /// drained.
    pub fn finish(self) -> Result<(Vec<u8>, Vec<u8>), ParquetError> {
        let ParquetOutputs {
            groups,
            mut clean,
            mut rejected,
            error,
        } = self;
        if let Some(e) = error {
            return Err(e);
        }
        for mut group in groups.finish() {
            match group.table {
                Table::Clean => clean.write(&mut group)?,
                Table::Rejected => rejected.write(&mut group)?,
            }
        }
        Ok((clean.finish()?, rejected.finish()?))
    }

    #[inline]
    fn encode_ready(&mut self) {
        while let Some(mut group) = self.groups.next_ready() {
            if self.error.is_none() {
                let encoder = match group.table {
                    Table::Clean => &mut self.clean,
                    Table::Rejected => &mut self.rejected,
                };
                if let Err(e) = encoder.write(&mut group) {
                    self.error = Some(e);
                }
            }
            self.groups.recycle(group);
        }
    }
}

impl RowSink for ParquetOutputs {
    #[inline]
    fn clean(&mut self, row: &CleanRow<'_>) {
        self.groups.clean(row);
        if !self.groups.ready.is_empty() {
            self.encode_ready();
        }
    }

    #[inline]
    fn rejected(&mut self, row: &RejectedRow<'_>) {
        self.groups.rejected(row);
        if !self.groups.ready.is_empty() {
            self.encode_ready();
        }
    }
}

/// The two Parquet files of a whole input, (clean, rejected), with the default row-group
/// limits: exactly the function's bytes for it (they depend only on the rows).
pub fn encode(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ParquetError> {
    let mut outputs = ParquetOutputs::new()?;
    let mut processor = Processor::new();
    processor.feed(input, &mut outputs);
    processor.finish(&mut outputs);
    let mut clean = std::mem::take(outputs.clean.buffer());
    let mut rejected = std::mem::take(outputs.rejected.buffer());
    let (clean_rest, rejected_rest) = outputs.finish()?;
    clean.extend_from_slice(&clean_rest);
    rejected.extend_from_slice(&rejected_rest);
    Ok((clean, rejected))
}
