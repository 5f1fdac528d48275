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
//! Format 1.0 data pages, Snappy (pure Rust), statistics per page; dictionary encoding only for
//! `name` and `reasons`. Gathering (`RowGroups`) and encoding (`TableEncoder`) are separate so
//! `deployer check` can run them on two threads; `ParquetOutputs` runs both on the caller's.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use ::parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use ::parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use ::parquet::errors::{ParquetError as EncodeError, Result as EncodeResult};
use ::parquet::file::properties::{WriterProperties, WriterVersion};
use ::parquet::file::writer::SerializedFileWriter;
use ::parquet::schema::types::{ColumnPath, Type};
use bytes::Bytes;

use crate::Processor;
use crate::output::RowSink;
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

/// Values handed to the column writer per call (bounds the scratch `ByteArray` list).
const WRITE_BATCH: usize = 4096;

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
}

/// The Parquet encoder failed (a bug rather than bad input: every row is representable).
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

/// The text of an encoder error, without the crate's `Parquet error: ` prefix on our own ones.
fn message(e: EncodeError) -> String {
    match e {
        EncodeError::General(text) => text,
        other => other.to_string(),
    }
}

/// One buffered column of the current row group.
#[derive(Debug)]
enum Column {
    /// UTF-8 values back to back; `ends[i]` is where value `i` ends.
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

    /// Appends a string value; returns its size in bytes.
    #[inline]
    fn push_text(&mut self, value: &[u8]) -> usize {
        if let Column::Text { data, ends } = self {
            data.extend_from_slice(value);
            ends.push(data.len());
        }
        value.len()
    }

    /// Appends original bytes as lossy UTF-8 (U+FFFD for invalid sequences, as the CSV output).
    fn push_lossy(&mut self, value: &[u8]) -> usize {
        match std::str::from_utf8(value) {
            Ok(_) => self.push_text(value),
            Err(_) => self.push_text(String::from_utf8_lossy(value).as_bytes()),
        }
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
        let columns = match table {
            Table::Clean => vec![
                Column::text(),
                Column::text(),
                Column::text(),
                Column::Int64(Vec::new()),
                Column::Int64(Vec::new()),
            ],
            Table::Rejected => {
                let mut columns = vec![Column::Int64(Vec::new())];
                columns.extend((1..REJECTED_COLUMNS.len()).map(|_| Column::text()));
                columns
            }
        };
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
            let before = data.len();
            row.reasons.write_codes(data);
            ends.push(data.len());
            bytes += data.len() - before;
        }
        for (column, value) in originals.iter_mut().zip(row.original) {
            bytes += column.push_lossy(value);
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

/// One Parquet file: encodes row groups of its table into a buffer the caller drains.
pub struct TableEncoder {
    table: Table,
    writer: SerializedFileWriter<Vec<u8>>,
    rows: u64,
    row_groups: u64,
    /// Scratch list of values for one `write_batch` call.
    scratch: Vec<ByteArray>,
}

impl fmt::Debug for TableEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableEncoder")
            .field("table", &self.table)
            .field("rows", &self.rows)
            .field("row_groups", &self.row_groups)
            .finish_non_exhaustive()
    }
}

fn string_column(name: &str) -> EncodeResult<Arc<Type>> {
    Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
        .with_repetition(Repetition::REQUIRED)
        .with_logical_type(Some(LogicalType::String))
        .build()
        .map(Arc::new)
}

fn timestamp_column(name: &str) -> EncodeResult<Arc<Type>> {
    Type::primitive_type_builder(name, PhysicalType::INT64)
        .with_repetition(Repetition::REQUIRED)
        .with_logical_type(Some(LogicalType::timestamp(true, TimeUnit::MICROS)))
        .build()
        .map(Arc::new)
}

fn int64_column(name: &str) -> EncodeResult<Arc<Type>> {
    Type::primitive_type_builder(name, PhysicalType::INT64)
        .with_repetition(Repetition::REQUIRED)
        .build()
        .map(Arc::new)
}

impl TableEncoder {
    /// A file of `table`'s schema, so far only its leading magic bytes.
    pub fn new(table: Table) -> Result<TableEncoder, ParquetError> {
        let error = |e: EncodeError| ParquetError {
            table,
            message: message(e),
        };
        let (fields, dictionary): (Vec<Arc<Type>>, &[&str]) = match table {
            Table::Clean => (
                vec![
                    string_column("id").map_err(error)?,
                    string_column("name").map_err(error)?,
                    string_column("email").map_err(error)?,
                    timestamp_column("create_ts").map_err(error)?,
                    timestamp_column("update_ts").map_err(error)?,
                ],
                &["name"],
            ),
            Table::Rejected => {
                let mut fields = vec![int64_column("line").map_err(error)?];
                for name in &REJECTED_COLUMNS[1..] {
                    fields.push(string_column(name).map_err(error)?);
                }
                (fields, &["reasons", "name"])
            }
        };
        let schema = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .map_err(error)?;
        // Dictionary encoding only where values repeat (names, reason lists): ids, emails and
        // instants are nearly unique, and a dictionary would only be built to be dropped.
        let mut props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_compression(Compression::SNAPPY)
            .set_created_by(CREATED_BY.to_owned())
            .set_dictionary_enabled(false);
        for column in dictionary {
            props = props.set_column_dictionary_enabled(ColumnPath::from(*column), true);
        }
        let writer =
            SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(props.build()))
                .map_err(error)?;
        Ok(TableEncoder {
            table,
            writer,
            rows: 0,
            row_groups: 0,
            scratch: Vec::new(),
        })
    }

    pub fn table(&self) -> Table {
        self.table
    }

    /// Encoded bytes not yet drained. Take them (`mem::take`, `clear`, or swap in another
    /// buffer) whenever convenient: the file is everything drained, in order, then `finish`'s
    /// rest.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        self.writer.inner_mut()
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Row groups written so far.
    pub fn row_groups(&self) -> u64 {
        self.row_groups
    }

    /// Writes `group` as the file's next row group (nothing for an empty group) and empties it.
    pub fn write(&mut self, group: &mut RowGroup) -> Result<(), ParquetError> {
        let result = if group.table != self.table {
            Err(EncodeError::General(format!(
                "a {} row group cannot go into the {} file",
                group.table.name(),
                self.table.name()
            )))
        } else if group.is_empty() {
            Ok(())
        } else {
            self.encode(group)
        };
        group.clear();
        result.map_err(|e| ParquetError {
            table: self.table,
            message: message(e),
        })
    }

    fn encode(&mut self, group: &mut RowGroup) -> EncodeResult<()> {
        let rows = group.rows;
        let mut out_group = self.writer.next_row_group()?;
        for column in group.columns.iter_mut() {
            let Some(mut out) = out_group.next_column()? else {
                return Err(EncodeError::General(
                    "the schema has fewer columns than the rows".to_owned(),
                ));
            };
            match column {
                Column::Text { data, ends } => {
                    // One shared buffer; each value is a slice of it (no copy per value).
                    let all = Bytes::from(std::mem::take(data));
                    let mut start = 0;
                    for batch in ends.chunks(WRITE_BATCH) {
                        self.scratch.clear();
                        for &end in batch {
                            self.scratch.push(ByteArray::from(all.slice(start..end)));
                            start = end;
                        }
                        out.typed::<ByteArrayType>()
                            .write_batch(&self.scratch, None, None)?;
                    }
                    self.scratch.clear();
                }
                Column::Int64(values) => {
                    for batch in values.chunks(WRITE_BATCH) {
                        out.typed::<Int64Type>().write_batch(batch, None, None)?;
                    }
                }
            }
            out.close()?;
        }
        out_group.close()?;
        self.rows += rows as u64;
        self.row_groups += 1;
        Ok(())
    }

    /// Writes the footer; returns the bytes not drained yet (never empty: at least the footer).
    pub fn finish(mut self) -> Result<Vec<u8>, ParquetError> {
        let table = self.table;
        self.writer.finish().map_err(|e| ParquetError {
            table,
            message: message(e),
        })?;
        Ok(std::mem::take(self.writer.inner_mut()))
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
