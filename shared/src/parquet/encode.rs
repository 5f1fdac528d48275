//! The Parquet file format for our two flat schemas (every column `REQUIRED`, no nesting): column
//! chunks of Format 1.0 data pages, statistics per page and per chunk, and the footer. Written
//! directly rather than through a general column writer, which spent more of the function's
//! CPU than validating the rows did, dispatching per value (README, Performance).
//!
//! Choices (the same as the `parquet` crate's writer made of these rows before, except where
//! said):
//!
//! - PLAIN values; a data page ends at 1 MiB of values or 20,000 values.
//! - Dictionary columns (`name`, `reasons`, and the parsed instants `create_ts`, `update_ts`)
//!   get a PLAIN dictionary page and `RLE_DICTIONARY` data pages (a bit width byte, then
//!   bit-packed runs), but only where it pays (new): a chunk falls back to PLAIN when its
//!   dictionary passes 1 MiB, when more than half of its first 1,024 or more values are
//!   distinct, or when dictionary plus indices are not smaller than PLAIN. (Dictionary-encoded
//!   `INT64` instants are what pyarrow and parquet-mr write by default.)
//! - Snappy, per column chunk, unless Snappy would not save 1/32 of the chunk (new), judged on
//!   the first 16 KiB of its first page, or for a dictionary chunk on those of its dictionary
//!   and of its first data page, each counted for its share of the chunk. Such a chunk (nearly
//!   unique instants, the indices of a few distinct instants) is stored `UNCOMPRESSED`, which
//!   every reader takes, rather than paying to compress it for nothing.
//! - Statistics: `min_value`/`max_value` (and the deprecated `min`/`max` for `INT64`, whose
//!   order is the same), `null_count` 0; a string statistic longer than 64 bytes is left out
//!   (min and max both) rather than truncated.
//! - A page index for every chunk (offset index; column index with each page's bounds, order
//!   `UNORDERED`, unless a page has no statistics), before the footer as the crate laid it out.
//! - No bloom filter, CRC or key-value metadata.

use super::thrift::{Compact, Element};
use crate::record::le_words;

/// Largest PLAIN data page (bytes of values) and values per page.
const PAGE_BYTES: usize = 1 << 20;
const PAGE_VALUES: usize = 20_000;
/// Largest dictionary (bytes of its PLAIN page).
const DICTIONARY_BYTES: usize = 1 << 20;
/// Values looked at before the distinct ratio may abandon a dictionary.
const DICTIONARY_PROBE: usize = 1024;
/// Longest string statistic written.
const STATISTIC_BYTES: usize = 64;
/// Bytes of a chunk's first page that Snappy is tried on to choose the chunk's codec.
const PROBE_BYTES: usize = 16 << 10;
/// Most bit-packed groups (of 8 values) in one run: a one-byte run header.
const GROUPS_PER_RUN: usize = 63;

// Thrift enum values of parquet.thrift.
const TYPE_INT64: i32 = 2;
const TYPE_BYTE_ARRAY: i32 = 6;
const REQUIRED: i32 = 0;
const CONVERTED_UTF8: i32 = 0;
const CONVERTED_TIMESTAMP_MICROS: i32 = 10;
const PLAIN: i32 = 0;
const RLE: i32 = 3;
const RLE_DICTIONARY: i32 = 8;
const UNCOMPRESSED: i32 = 0;
const SNAPPY: i32 = 1;
const DATA_PAGE: i32 = 0;
const DICTIONARY_PAGE: i32 = 2;

/// What a column holds, as far as the file format is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 strings; `dictionary` when values are expected to repeat.
    Text {
        dictionary: bool,
    },
    /// Microseconds since the epoch, UTC; dictionary-encoded where instants repeat (a batch's
    /// one `update_ts`, say), which also spares Snappy 8 bytes a value.
    Timestamp,
    Int64,
}

/// One column of a schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: Kind,
}

impl ColumnSpec {
    fn physical(self) -> i32 {
        match self.kind {
            Kind::Text { .. } => TYPE_BYTE_ARRAY,
            Kind::Timestamp | Kind::Int64 => TYPE_INT64,
        }
    }
}

/// The values of one column chunk, borrowed from the gathered row group.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    /// Strings PLAIN-encoded back to back in `data` (a 4-byte little-endian length, then the
    /// bytes); value `i` ends at `ends[i]`, so its bytes are `data[ends[i - 1] + 4..ends[i]]`.
    Text {
        data: &'a [u8],
        ends: &'a [usize],
    },
    Int64(&'a [i64]),
}

impl Values<'_> {
    pub fn len(&self) -> usize {
        match self {
            Values::Text { ends, .. } => ends.len(),
            Values::Int64(v) => v.len(),
        }
    }
}

/// Min and max of some values, as their PLAIN bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Statistics {
    min: Vec<u8>,
    max: Vec<u8>,
    /// Also in the deprecated `min`/`max` fields (signed integers only).
    legacy: bool,
}

/// Bytes of a value in its `prefix_key`.
const KEY_BYTES: usize = 16;

/// The first 16 bytes of `data[start..end]` as a big-endian number, zeros past the end: when
/// two values' keys differ, they order the values as the bytes do (a zero pad sorts like the
/// end of a shorter value), so most comparisons need no `memcmp`. Sixteen, not eight: names and
/// emails often share their first eight bytes (`User Num…`, `user.123…`).
#[inline(always)]
fn prefix_key(data: &[u8], start: usize, end: usize) -> u128 {
    let len = end - start;
    // The bytes after a value (the next one's, mostly) are read and masked off.
    let word = match data.get(start..start + KEY_BYTES) {
        Some(w) => u128::from_be_bytes(<[u8; KEY_BYTES]>::try_from(w).unwrap_or([0; KEY_BYTES])),
        None => {
            let mut padded = [0u8; KEY_BYTES];
            let n = len.min(KEY_BYTES);
            padded[..n].copy_from_slice(&data[start..start + n]);
            u128::from_be_bytes(padded)
        }
    };
    if len >= KEY_BYTES {
        word
    } else {
        // len 0 keeps nothing: `u128::MAX >> 0` is all ones.
        word & !(u128::MAX >> (8 * len as u32))
    }
}

/// The least and greatest of some values of a text buffer, as (key, start, end).
#[derive(Clone, Copy, Debug, Default)]
struct TextBounds {
    min: (u128, usize, usize),
    max: (u128, usize, usize),
    any: bool,
}

impl TextBounds {
    #[inline(always)]
    fn add(&mut self, data: &[u8], start: usize, end: usize) {
        let key = prefix_key(data, start, end);
        let here = (key, start, end);
        if !self.any {
            (self.min, self.max, self.any) = (here, here, true);
            return;
        }
        let value = &data[start..end];
        let (min_key, min_start, min_end) = self.min;
        let (max_key, max_start, max_end) = self.max;
        if key < min_key || (key == min_key && value < &data[min_start..min_end]) {
            self.min = here;
        } else if key > max_key || (key == max_key && value > &data[max_start..max_end]) {
            self.max = here;
        }
    }

    fn statistics(&self, data: &[u8]) -> Option<Statistics> {
        self.any.then_some(())?;
        Statistics::of_text_bounds(&data[self.min.1..self.min.2], &data[self.max.1..self.max.2])
    }
}

impl Statistics {
    /// String statistics, or none when either bound is longer than `STATISTIC_BYTES`.
    fn of_text_bounds(min: &[u8], max: &[u8]) -> Option<Statistics> {
        (min.len() <= STATISTIC_BYTES && max.len() <= STATISTIC_BYTES).then(|| Statistics {
            min: min.to_vec(),
            max: max.to_vec(),
            legacy: false,
        })
    }

    fn of_ints(values: &[i64]) -> Option<Statistics> {
        let min = values.iter().min()?;
        let max = values.iter().max()?;
        Some(Statistics::of_int_bounds(*min, *max))
    }

    fn of_int_bounds(min: i64, max: i64) -> Statistics {
        Statistics {
            min: min.to_le_bytes().to_vec(),
            max: max.to_le_bytes().to_vec(),
            legacy: true,
        }
    }

    /// The statistics of a chunk from those of its pages (None if any page has none).
    fn merge(pages: &[Option<Statistics>]) -> Option<Statistics> {
        let mut all = pages.iter();
        let mut merged = all.next()?.clone()?;
        for page in all {
            let page = page.as_ref()?;
            if !merged.legacy {
                // Strings: by their bytes.
                if page.min < merged.min {
                    merged.min.clone_from(&page.min);
                }
                if page.max > merged.max {
                    merged.max.clone_from(&page.max);
                }
            } else {
                // Signed integers: by value.
                let int = |b: &[u8]| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                if int(&page.min) < int(&merged.min) {
                    merged.min.clone_from(&page.min);
                }
                if int(&page.max) > int(&merged.max) {
                    merged.max.clone_from(&page.max);
                }
            }
        }
        Some(merged)
    }

    fn write(&self, c: &mut Compact<'_>) {
        if self.legacy {
            c.binary(1, &self.max).binary(2, &self.min);
        }
        c.i64(3, 0)
            .binary(5, &self.max)
            .binary(6, &self.min)
            .bool(7, true)
            .bool(8, true);
    }
}

/// What the footer says of one written column chunk.
#[derive(Clone, Debug)]
pub struct ChunkMeta {
    spec: ColumnSpec,
    values: i64,
    uncompressed: i64,
    compressed: i64,
    start: i64,
    data_page_offset: i64,
    dictionary: bool,
    /// The data pages, in order (not the dictionary page).
    pages: Vec<PageEntry>,
    statistics: Option<Statistics>,
    /// Snappy, unless the probe of the first pages found the values incompressible.
    snappy: Option<bool>,
    /// Where the page index entries of this chunk are: (offset, length).
    column_index: Option<(i64, i32)>,
    offset_index: Option<(i64, i32)>,
}

/// A data page as the page index describes it.
#[derive(Clone, Debug)]
struct PageEntry {
    offset: i64,
    /// Header and body.
    size: i32,
    first_row: i64,
    values: i64,
    statistics: Option<Statistics>,
}

impl ChunkMeta {
    /// Compresses `body` as the chunk's next data page and appends it to `out` (whose first
    /// byte is at file offset `base`).
    fn data_page(
        &mut self,
        out: &mut Vec<u8>,
        base: u64,
        pages: &mut PageWriter,
        body: &[u8],
        (values, encoding): (usize, i32),
        statistics: Option<Statistics>,
    ) -> Result<(), String> {
        let offset = base as i64 + out.len() as i64;
        let kind = PageKind::Data { values, encoding };
        let (uncompressed, compressed) =
            pages.write(out, body, &mut self.snappy, kind, statistics.as_ref())?;
        self.uncompressed += uncompressed;
        self.compressed += compressed;
        let first_row = self.pages.last().map_or(0, |p| p.first_row + p.values);
        self.pages.push(PageEntry {
            offset,
            size: page_i32(compressed as usize, "bytes")?,
            first_row,
            values: values as i64,
            statistics,
        });
        Ok(())
    }
}

/// What the footer says of one written row group.
#[derive(Clone, Debug)]
pub struct GroupMeta {
    pub rows: i64,
    pub columns: Vec<ChunkMeta>,
}

/// Buffers reused from chunk to chunk.
#[derive(Default)]
pub struct Scratch {
    /// A page body built here (integers, dictionary indices, a dictionary); PLAIN text pages
    /// are slices of the gathered values instead.
    page: Vec<u8>,
    pages: PageWriter,
    indices: Vec<u32>,
    /// Dictionary entries in first-seen order: the (start, end) of their bytes in `data`.
    entries: Vec<(usize, usize)>,
    /// The same for an integer column: the values.
    int_entries: Vec<i64>,
    /// A dictionary chunk's data page being written (the first one built early, to choose the
    /// codec on).
    index_page: Vec<u8>,
    /// Per dictionary entry, the last page (numbered from 1) that used it.
    seen: Vec<u32>,
    slots: Slots,
}

/// Writes pages: the codec, the header, and buffers for both.
struct PageWriter {
    compressed: Vec<u8>,
    header: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Default for PageWriter {
    fn default() -> PageWriter {
        PageWriter {
            compressed: Vec::new(),
            header: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}

/// Appends one column chunk to `out`, whose first byte is at file offset `offset`.
pub fn write_chunk(
    out: &mut Vec<u8>,
    offset: u64,
    spec: ColumnSpec,
    values: Values<'_>,
    scratch: &mut Scratch,
) -> Result<ChunkMeta, String> {
    let file_offset = |out: &Vec<u8>| offset as i64 + out.len() as i64;
    let chunk_start = file_offset(out);
    let mut meta = ChunkMeta {
        spec,
        values: values.len() as i64,
        uncompressed: 0,
        compressed: 0,
        start: chunk_start,
        data_page_offset: chunk_start,
        dictionary: false,
        pages: Vec::new(),
        statistics: None,
        snappy: None,
        column_index: None,
        offset_index: None,
    };
    match values {
        Values::Text { data, ends } => {
            let dictionary = matches!(spec.kind, Kind::Text { dictionary: true })
                && build_dictionary(data, ends, scratch);
            if dictionary {
                scratch.page.clear();
                for &(s, e) in &scratch.entries {
                    // The entry with its length prefix: its PLAIN bytes.
                    scratch.page.extend_from_slice(&data[s - 4..e]);
                }
                let entries = std::mem::take(&mut scratch.entries);
                // Page statistics from the entries a page uses, each looked at once.
                let mut seen = std::mem::take(&mut scratch.seen);
                seen.clear();
                seen.resize(entries.len(), 0);
                let mut stamp = 0;
                let page_bounds = |_: usize, page: &[u32]| {
                    stamp += 1;
                    let mut bounds = TextBounds::default();
                    for &i in page {
                        let i = i as usize;
                        if seen[i] != stamp {
                            seen[i] = stamp;
                            let (s, e) = entries[i];
                            bounds.add(data, s, e);
                        }
                    }
                    bounds.statistics(data)
                };
                let written = write_dictionary_pages(
                    out,
                    offset,
                    &mut meta,
                    scratch,
                    entries.len(),
                    page_bounds,
                );
                (scratch.entries, scratch.seen) = (entries, seen);
                written?;
            } else {
                // The values are PLAIN already: each page is a slice of them.
                let (mut i, mut end) = (0, 0);
                while i < ends.len() {
                    let (first, page_start) = (i, end);
                    let mut bounds = TextBounds::default();
                    while i < ends.len() && i - first < PAGE_VALUES && end - page_start < PAGE_BYTES
                    {
                        bounds.add(data, end + 4, ends[i]);
                        end = ends[i];
                        i += 1;
                    }
                    let statistics = bounds.statistics(data);
                    let body = &data[page_start..end];
                    let page_values = (i - first, PLAIN);
                    meta.data_page(
                        out,
                        offset,
                        &mut scratch.pages,
                        body,
                        page_values,
                        statistics,
                    )?;
                }
            }
        }
        Values::Int64(ints)
            if spec.kind == Kind::Timestamp && build_int_dictionary(ints, scratch) =>
        {
            scratch.page.clear();
            for v in &scratch.int_entries {
                scratch.page.extend_from_slice(&v.to_le_bytes());
            }
            let entries = scratch.int_entries.len();
            // A page's bounds from its values themselves: cheaper than through its indices.
            let page_bounds =
                |first: usize, page: &[u32]| Statistics::of_ints(&ints[first..first + page.len()]);
            write_dictionary_pages(out, offset, &mut meta, scratch, entries, page_bounds)?;
        }
        Values::Int64(ints) => {
            // 8 bytes a value: the row limit ends a page long before 1 MiB.
            for page in ints.chunks(PAGE_VALUES.min(PAGE_BYTES / 8)) {
                scratch.page.clear();
                scratch.page.resize(page.len() * 8, 0);
                for (to, v) in scratch.page.chunks_exact_mut(8).zip(page) {
                    to.copy_from_slice(&v.to_le_bytes());
                }
                let statistics = Statistics::of_ints(page);
                let page_values = (page.len(), PLAIN);
                let body = &scratch.page;
                meta.data_page(
                    out,
                    offset,
                    &mut scratch.pages,
                    body,
                    page_values,
                    statistics,
                )?;
            }
        }
    }
    let pages: Vec<Option<Statistics>> = meta.pages.iter().map(|p| p.statistics.clone()).collect();
    meta.statistics = Statistics::merge(&pages);
    Ok(meta)
}

/// Writes a dictionary chunk's pages: the dictionary (its PLAIN body in `scratch.page`, of
/// `entries` values), then `scratch.indices` as `RLE_DICTIONARY` data pages, each with the
/// statistics `page_bounds(first value, its indices)` gives.
fn write_dictionary_pages(
    out: &mut Vec<u8>,
    offset: u64,
    meta: &mut ChunkMeta,
    scratch: &mut Scratch,
    entries: usize,
    mut page_bounds: impl FnMut(usize, &[u32]) -> Option<Statistics>,
) -> Result<(), String> {
    meta.dictionary = true;
    let width = bit_width(entries);
    let indices = std::mem::take(&mut scratch.indices);
    let pack = |body: &mut Vec<u8>, page: &[u32]| {
        body.clear();
        body.push(width);
        bit_pack(body, page, width);
    };
    // The first data page, built before the dictionary page is written: the codec is chosen
    // on both, since a dictionary's entries (names) may compress where its indices do not, or
    // (instants) the other way round.
    pack(
        &mut scratch.index_page,
        &indices[..indices.len().min(PAGE_VALUES)],
    );
    let samples = [
        (&scratch.page[..], scratch.page.len()),
        (&scratch.index_page[..], index_bytes(indices.len(), entries)),
    ];
    let result = scratch.pages.snappy_saves(&samples).and_then(|saves| {
        meta.snappy = Some(saves);
        let kind = PageKind::Dictionary { entries };
        let sizes = scratch
            .pages
            .write(out, &scratch.page, &mut meta.snappy, kind, None)?;
        meta.uncompressed += sizes.0;
        meta.compressed += sizes.1;
        meta.data_page_offset = offset as i64 + out.len() as i64;
        for (page_number, page) in indices.chunks(PAGE_VALUES).enumerate() {
            let statistics = page_bounds(page_number * PAGE_VALUES, page);
            if page_number > 0 {
                pack(&mut scratch.index_page, page);
            }
            let page_values = (page.len(), RLE_DICTIONARY);
            let body = &scratch.index_page;
            meta.data_page(
                out,
                offset,
                &mut scratch.pages,
                body,
                page_values,
                statistics,
            )?;
        }
        Ok(())
    });
    scratch.indices = indices;
    result
}

/// FxHash over whole words, with the length: the dictionary's keys are short strings from our
/// own rows (a colliding adversary could only make a chunk slower, not wrong).
#[inline(always)]
fn hash_value(value: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (value.len() as u64).wrapping_mul(K);
    for word in le_words(value) {
        h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    }
    // The high bits are the best mixed: they pick the slot.
    h ^ (h >> 29)
}

/// The same mix for one integer.
#[inline(always)]
fn hash_int(value: i64) -> u64 {
    let h = (value as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    h ^ (h >> 29)
}

/// `a == b` a word at a time, inline: the values are short names and reason lists that repeat
/// (most lookups find their entry), where a `memcmp` call per value costs more than the words.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && le_words(a).zip(le_words(b)).all(|(x, y)| x == y)
}

/// Open addressing over `Scratch::entries`: slot = entry index + 1 (0 empty), linear probing,
/// at most half full.
#[derive(Debug, Default)]
struct Slots {
    slots: Vec<u32>,
    /// Per entry, its hash (compared before the bytes).
    hashes: Vec<u64>,
}

impl Slots {
    fn reset(&mut self) {
        self.slots.clear();
        self.slots.resize(1024, 0);
        self.hashes.clear();
    }

    /// The index of `data[start..end]` in `entries`, adding it when new: (index, was new).
    #[inline(always)]
    fn intern(
        &mut self,
        data: &[u8],
        start: usize,
        end: usize,
        entries: &mut Vec<(usize, usize)>,
    ) -> (u32, bool) {
        let value = &data[start..end];
        let found = self.find_or_add(hash_value(value), |index| {
            let (s, e) = entries[index];
            same_bytes(&data[s..e], value)
        });
        if found.1 {
            entries.push((start, end));
        }
        found
    }

    /// The index of `value` in `entries`, adding it when new: (index, was new).
    #[inline(always)]
    fn intern_int(&mut self, value: i64, entries: &mut Vec<i64>) -> (u32, bool) {
        let found = self.find_or_add(hash_int(value), |index| entries[index] == value);
        if found.1 {
            entries.push(value);
        }
        found
    }

    /// The entry of this `hash` for which `is_it` holds, or the index of a new one (which the
    /// caller then appends to its entries): (index, was new).
    #[inline(always)]
    fn find_or_add(&mut self, hash: u64, is_it: impl Fn(usize) -> bool) -> (u32, bool) {
        let mask = self.slots.len() - 1;
        let mut at = (hash as usize) & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                break;
            }
            let index = (slot - 1) as usize;
            if self.hashes[index] == hash && is_it(index) {
                return (index as u32, false);
            }
            at = (at + 1) & mask;
        }
        let index = self.hashes.len() as u32;
        self.hashes.push(hash);
        self.slots[at] = index + 1;
        if self.hashes.len() * 2 > self.slots.len() {
            self.grow();
        }
        (index, true)
    }

    fn grow(&mut self) {
        let size = self.slots.len() * 2;
        self.slots.clear();
        self.slots.resize(size, 0);
        let mask = size - 1;
        for (index, &hash) in self.hashes.iter().enumerate() {
            let mut at = (hash as usize) & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = index as u32 + 1;
        }
    }
}

/// Builds the chunk's dictionary into `scratch.entries` (value ranges, first-seen order) and
/// `scratch.indices`; false when the chunk is better PLAIN (see the module docs).
fn build_dictionary(data: &[u8], ends: &[usize], scratch: &mut Scratch) -> bool {
    scratch.entries.clear();
    scratch.indices.clear();
    scratch.slots.reset();
    let mut dictionary_bytes = 0;
    let mut start = 4;
    for (seen, &end) in ends.iter().enumerate() {
        let (index, new) = scratch.slots.intern(data, start, end, &mut scratch.entries);
        if new {
            dictionary_bytes += 4 + (end - start);
        }
        scratch.indices.push(index);
        start = end + 4;
        if dictionary_abandoned(dictionary_bytes, scratch.entries.len(), seen + 1) {
            return false;
        }
    }
    dictionary_pays(
        dictionary_bytes,
        scratch.entries.len(),
        ends.len(),
        data.len(),
    )
}

/// Whether a dictionary of `entries` entries (`bytes` of PLAIN values) built over the first
/// `seen` values of a chunk is given up: past `DICTIONARY_BYTES`, or more than half distinct
/// once `DICTIONARY_PROBE` values have been seen.
#[inline(always)]
fn dictionary_abandoned(bytes: usize, entries: usize, seen: usize) -> bool {
    bytes > DICTIONARY_BYTES || (seen >= DICTIONARY_PROBE && entries * 2 > seen)
}

/// Whether a finished dictionary (`bytes` of entries) plus the indices of `values` values is
/// smaller than the chunk PLAIN (`plain_bytes`).
fn dictionary_pays(bytes: usize, entries: usize, values: usize, plain_bytes: usize) -> bool {
    bytes + index_bytes(values, entries) < plain_bytes
}

/// About the bytes of `values` dictionary indices into `entries` entries, bit-packed.
fn index_bytes(values: usize, entries: usize) -> usize {
    values * usize::from(bit_width(entries)) / 8 + 1
}

/// Builds an integer chunk's dictionary into `scratch.int_entries` and `scratch.indices`, by
/// the same rules as a string chunk's (8 bytes an entry, as PLAIN).
fn build_int_dictionary(values: &[i64], scratch: &mut Scratch) -> bool {
    scratch.int_entries.clear();
    scratch.indices.clear();
    scratch.slots.reset();
    // The last value and its index: instants come in runs (a batch's one `update_ts`).
    let mut last: Option<(i64, u32)> = None;
    for (seen, &value) in values.iter().enumerate() {
        let index = match last {
            Some((v, index)) if v == value => index,
            _ => scratch.slots.intern_int(value, &mut scratch.int_entries).0,
        };
        last = Some((value, index));
        scratch.indices.push(index);
        let entries = scratch.int_entries.len();
        if dictionary_abandoned(8 * entries, entries, seen + 1) {
            return false;
        }
    }
    let entries = scratch.int_entries.len();
    dictionary_pays(8 * entries, entries, values.len(), 8 * values.len())
}

/// Bits per dictionary index (at least 1, for readers that do not take 0).
fn bit_width(entries: usize) -> u8 {
    let max = entries.saturating_sub(1) as u64;
    (64 - max.leading_zeros()).max(1) as u8
}

/// Appends `indices` as bit-packed runs of the RLE/bit-packing hybrid (the last group padded
/// with zeros; readers stop at the page's value count).
fn bit_pack(out: &mut Vec<u8>, indices: &[u32], width: u8) {
    for run in indices.chunks(8 * GROUPS_PER_RUN) {
        let groups = run.len().div_ceil(8);
        out.push(((groups as u8) << 1) | 1);
        let mut eights = run.chunks_exact(8);
        for group in &mut eights {
            let mut eight = [0u32; 8];
            eight.copy_from_slice(group);
            pack_eight(out, eight, width);
        }
        let rest = eights.remainder();
        if !rest.is_empty() {
            let mut eight = [0u32; 8];
            eight[..rest.len()].copy_from_slice(rest);
            pack_eight(out, eight, width);
        }
    }
}

/// Eight values of `width` bits as `width` bytes, the first value in the lowest bits.
#[inline(always)]
fn pack_eight(out: &mut Vec<u8>, eight: [u32; 8], width: u8) {
    let w = usize::from(width);
    if w <= 16 {
        // All eight in one 128-bit word (dictionaries of up to 65,536 entries).
        let mut acc: u128 = 0;
        for (j, &v) in eight.iter().enumerate() {
            acc |= u128::from(v) << (j * w);
        }
        out.extend_from_slice(&acc.to_le_bytes()[..w]);
        return;
    }
    let mut acc: u64 = 0;
    let mut bits = 0;
    for v in eight {
        acc |= u64::from(v) << bits;
        bits += w;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum PageKind {
    Data { values: usize, encoding: i32 },
    Dictionary { entries: usize },
}

fn page_i32(n: usize, what: &str) -> Result<i32, String> {
    i32::try_from(n).map_err(|_| format!("a page of {n} {what} does not fit the format"))
}

impl PageWriter {
    /// Snappy of `body` into `self.compressed`: its length.
    fn compress(&mut self, body: &[u8]) -> Result<usize, String> {
        let max = snap::raw::max_compress_len(body.len());
        if self.compressed.len() < max {
            self.compressed.resize(max, 0);
        }
        self.snappy
            .compress(body, &mut self.compressed)
            .map_err(|e| format!("snappy: {e}"))
    }

    /// Whether a chunk is worth compressing, from samples of its pages: `(body, bytes)` is a
    /// page standing for `bytes` of the chunk. Snappy must save at least 1/32 of the chunk, as
    /// judged on the first `PROBE_BYTES` of each sample, else the chunk is stored as is (nearly
    /// unique 8-byte instants, or the indices of a small dictionary, come out of it no smaller).
    fn snappy_saves(&mut self, samples: &[(&[u8], usize)]) -> Result<bool, String> {
        // Bytes saved (or, negative, added) over the chunk, and its bytes, both times 32.
        let (mut saved, mut total) = (0i128, 0i128);
        for &(body, bytes) in samples {
            let probe = &body[..body.len().min(PROBE_BYTES)];
            if !probe.is_empty() {
                let compressed = self.compress(probe)? as i128;
                let length = probe.len() as i128;
                saved += 32 * (length - compressed) * bytes as i128 / length;
            }
            total += bytes as i128;
        }
        Ok(saved > total)
    }

    /// Compresses `body` and appends header and page to `out`; returns the sizes the footer
    /// counts (uncompressed, compressed), headers included.
    fn write(
        &mut self,
        out: &mut Vec<u8>,
        body: &[u8],
        snappy: &mut Option<bool>,
        kind: PageKind,
        statistics: Option<&Statistics>,
    ) -> Result<(i64, i64), String> {
        let use_snappy = match *snappy {
            Some(decided) => decided,
            None => {
                let sample = &body[..body.len().min(PROBE_BYTES)];
                *snappy.insert(self.snappy_saves(&[(sample, sample.len())])?)
            }
        };
        let (stored, compressed): (&[u8], usize) = if use_snappy {
            let n = self.compress(body)?;
            (&self.compressed[..n], n)
        } else {
            (body, body.len())
        };
        let uncompressed = page_i32(body.len(), "bytes")?;
        let compressed_i32 = page_i32(compressed, "bytes")?;
        self.header.clear();
        let mut c = Compact::new(&mut self.header);
        match kind {
            PageKind::Data { values, encoding } => {
                let values = page_i32(values, "values")?;
                c.i32(1, DATA_PAGE)
                    .i32(2, uncompressed)
                    .i32(3, compressed_i32)
                    .structure(5, |h| {
                        h.i32(1, values).i32(2, encoding).i32(3, RLE).i32(4, RLE);
                        if let Some(s) = statistics {
                            h.structure(5, |st| s.write(st));
                        }
                    });
            }
            PageKind::Dictionary { entries } => {
                let entries = page_i32(entries, "values")?;
                c.i32(1, DICTIONARY_PAGE)
                    .i32(2, uncompressed)
                    .i32(3, compressed_i32)
                    .structure(7, |h| {
                        h.i32(1, entries).i32(2, PLAIN).bool(3, false);
                    });
            }
        }
        c.finish();
        out.extend_from_slice(&self.header);
        out.extend_from_slice(stored);
        let header = self.header.len() as i64;
        Ok((header + i64::from(uncompressed), header + compressed as i64))
    }
}

/// Appends the page index of every chunk of `groups` to `out` (whose first byte is at file
/// offset `base`): all column indexes, then all offset indexes, as the `parquet` crate lays
/// them out, and notes where each is. A chunk with a page without statistics (a string bound
/// over 64 bytes) gets no column index, only an offset index.
pub fn write_page_indexes(out: &mut Vec<u8>, base: u64, groups: &mut [GroupMeta]) {
    let at = |out: &Vec<u8>| base as i64 + out.len() as i64;
    for chunk in groups.iter_mut().flat_map(|g| g.columns.iter_mut()) {
        let bounds: Option<Vec<&Statistics>> =
            chunk.pages.iter().map(|p| p.statistics.as_ref()).collect();
        let Some(bounds) = bounds else { continue };
        let start = at(out);
        let mut c = Compact::new(out);
        // ColumnIndex { null_pages, min_values, max_values, boundary_order, null_counts }
        c.list(1, Element::Bool, bounds.len(), |l| {
            for _ in &bounds {
                l.element_bool(false);
            }
        })
        .list(2, Element::Binary, bounds.len(), |l| {
            for b in &bounds {
                l.element_binary(&b.min);
            }
        })
        .list(3, Element::Binary, bounds.len(), |l| {
            for b in &bounds {
                l.element_binary(&b.max);
            }
        })
        // UNORDERED: always true, and readers then look at every page's bounds.
        .i32(4, 0)
        .list(5, Element::I64, bounds.len(), |l| {
            for _ in &bounds {
                l.element_i64(0);
            }
        });
        c.finish();
        chunk.column_index = Some((start, (at(out) - start) as i32));
    }
    for chunk in groups.iter_mut().flat_map(|g| g.columns.iter_mut()) {
        let start = at(out);
        let mut c = Compact::new(out);
        // OffsetIndex { page_locations: [PageLocation { offset, compressed_page_size,
        // first_row_index }] }
        c.list(1, Element::Struct, chunk.pages.len(), |l| {
            for page in &chunk.pages {
                l.element_struct(|p| {
                    p.i64(1, page.offset)
                        .i32(2, page.size)
                        .i64(3, page.first_row);
                });
            }
        });
        c.finish();
        chunk.offset_index = Some((start, (at(out) - start) as i32));
    }
}

/// Appends the footer (metadata, its length, the magic) for `groups` of a `schema` file.
pub fn write_footer(
    out: &mut Vec<u8>,
    schema: &[ColumnSpec],
    groups: &[GroupMeta],
    created_by: &str,
) {
    let start = out.len();
    let mut c = Compact::new(out);
    let rows: i64 = groups.iter().map(|g| g.rows).sum();
    c.i32(1, 1)
        .list(2, Element::Struct, schema.len() + 1, |l| {
            l.element_struct(|root| {
                root.binary(4, b"schema").i32(5, schema.len() as i32);
            });
            for spec in schema {
                l.element_struct(|e| write_schema_element(e, *spec));
            }
        })
        .i64(3, rows)
        .list(4, Element::Struct, groups.len(), |l| {
            for (ordinal, group) in groups.iter().enumerate() {
                l.element_struct(|g| write_row_group(g, group, ordinal));
            }
        })
        .binary(6, created_by.as_bytes())
        .list(7, Element::Struct, schema.len(), |l| {
            for _ in schema {
                // ColumnOrder { TYPE_ORDER: TypeDefinedOrder {} }
                l.element_struct(|o| {
                    o.structure(1, |_| {});
                });
            }
        });
    c.finish();
    let length = (out.len() - start) as u32;
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(b"PAR1");
}

fn write_schema_element(e: &mut Compact<'_>, spec: ColumnSpec) {
    e.i32(1, spec.physical())
        .i32(3, REQUIRED)
        .binary(4, spec.name.as_bytes());
    match spec.kind {
        Kind::Text { .. } => {
            // LogicalType { STRING: StringType {} }
            e.i32(6, CONVERTED_UTF8).structure(10, |t| {
                t.structure(1, |_| {});
            });
        }
        Kind::Timestamp => {
            // LogicalType { TIMESTAMP: { isAdjustedToUTC: true, unit: { MICROS: {} } } }
            e.i32(6, CONVERTED_TIMESTAMP_MICROS).structure(10, |t| {
                t.structure(8, |ts| {
                    ts.bool(1, true).structure(2, |unit| {
                        unit.structure(2, |_| {});
                    });
                });
            });
        }
        Kind::Int64 => {}
    }
}

fn write_row_group(g: &mut Compact<'_>, group: &GroupMeta, ordinal: usize) {
    let uncompressed: i64 = group.columns.iter().map(|c| c.uncompressed).sum();
    let compressed: i64 = group.columns.iter().map(|c| c.compressed).sum();
    let first = group.columns.first().map_or(0, |c| c.start);
    g.list(1, Element::Struct, group.columns.len(), |l| {
        for chunk in &group.columns {
            l.element_struct(|cc| {
                cc.i64(2, chunk.start)
                    .structure(3, |m| write_column_metadata(m, chunk));
                if let Some((offset, length)) = chunk.offset_index {
                    cc.i64(4, offset).i32(5, length);
                }
                if let Some((offset, length)) = chunk.column_index {
                    cc.i64(6, offset).i32(7, length);
                }
            });
        }
    })
    .i64(2, uncompressed)
    .i64(3, group.rows)
    .i64(5, first)
    .i64(6, compressed)
    .i32(7, ordinal as i32);
}

fn write_column_metadata(m: &mut Compact<'_>, chunk: &ChunkMeta) {
    let encodings: &[i32] = if chunk.dictionary {
        &[PLAIN, RLE, RLE_DICTIONARY]
    } else {
        &[PLAIN, RLE]
    };
    m.i32(1, chunk.spec.physical())
        .list(2, Element::I32, encodings.len(), |l| {
            for &e in encodings {
                l.element_i32(e);
            }
        })
        .list(3, Element::Binary, 1, |l| {
            l.element_binary(chunk.spec.name.as_bytes())
        })
        .i32(
            4,
            if chunk.snappy == Some(false) {
                UNCOMPRESSED
            } else {
                SNAPPY
            },
        )
        .i64(5, chunk.values)
        .i64(6, chunk.uncompressed)
        .i64(7, chunk.compressed)
        .i64(9, chunk.data_page_offset);
    if chunk.dictionary {
        m.i64(11, chunk.start);
    }
    if let Some(s) = &chunk.statistics {
        m.structure(12, |st| s.write(st));
    }
    // PageEncodingStats { page_type, encoding, count }
    let pages: Vec<(i32, i32, i32)> = if chunk.dictionary {
        vec![
            (DICTIONARY_PAGE, PLAIN, 1),
            (DATA_PAGE, RLE_DICTIONARY, chunk.pages.len() as i32),
        ]
    } else {
        vec![(DATA_PAGE, PLAIN, chunk.pages.len() as i32)]
    };
    m.list(13, Element::Struct, pages.len(), |l| {
        for (page_type, encoding, count) in pages {
            l.element_struct(|p| {
                p.i32(1, page_type).i32(2, encoding).i32(3, count);
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_width_covers_the_largest_index() {
        for (entries, width) in [
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (256, 8),
            (257, 9),
        ] {
            assert_eq!(bit_width(entries), width, "{entries} entries");
        }
    }

    #[test]
    fn bit_packing_follows_the_hybrid_encoding() {
        // The example of the Parquet encodings page: 0..=7 at 3 bits.
        let mut out = Vec::new();
        bit_pack(&mut out, &[0, 1, 2, 3, 4, 5, 6, 7], 3);
        assert_eq!(out, [0x03, 0b1000_1000, 0b1100_0110, 0b1111_1010]);
        // 9 values: two groups, the second padded with zeros.
        let mut out = Vec::new();
        bit_pack(&mut out, &[1; 9], 1);
        assert_eq!(out, [0x05, 0xff, 0x01]);
        // More than 63 groups: a second run.
        let mut out = Vec::new();
        bit_pack(&mut out, &[0; 8 * 64], 1);
        assert_eq!(out.len(), 1 + 63 + 1 + 1);
        assert_eq!((out[0], out[64]), ((63 << 1) | 1, (1 << 1) | 1));
    }

    #[test]
    fn bit_packing_agrees_with_a_bit_by_bit_reading_at_every_width() {
        for width in 1..=32u8 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 503, 504, 505, 1100] {
                let values: Vec<u32> = (0..len as u32)
                    .map(|i| i.wrapping_mul(2_654_435_761) >> (32 - width))
                    .collect();
                let mut got = Vec::new();
                bit_pack(&mut got, &values, width);
                // Runs of up to 63 groups of 8, each value's bits lowest first, zero padded.
                let mut want = Vec::new();
                for run in values.chunks(8 * GROUPS_PER_RUN) {
                    let groups = run.len().div_ceil(8);
                    want.push(((groups as u8) << 1) | 1);
                    let mut bits: Vec<bool> = Vec::new();
                    for i in 0..groups * 8 {
                        let v = run.get(i).copied().unwrap_or(0);
                        bits.extend((0..width).map(|b| v >> b & 1 == 1));
                    }
                    for byte in bits.chunks(8) {
                        want.push(byte.iter().rev().fold(0, |acc, &b| acc << 1 | u8::from(b)));
                    }
                }
                assert_eq!(got, want, "width {width}, {len} values");
            }
        }
    }

    /// `values` as a gathered column: PLAIN, back to back.
    fn text_values(values: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut data = Vec::new();
        let mut ends = Vec::new();
        for v in values {
            data.extend_from_slice(&(v.len() as u32).to_le_bytes());
            data.extend_from_slice(v);
            ends.push(data.len());
        }
        (data, ends)
    }

    #[test]
    fn dictionaries_are_kept_only_where_they_pay() {
        let repeated: Vec<String> = (0..5000).map(|i| format!("name {}", i % 50)).collect();
        let unique: Vec<String> = (0..5000).map(|i| format!("name {i}")).collect();
        let few_unique: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let cases: [(&str, &[String], bool); 3] = [
            ("50 names over 5,000 rows", &repeated, true),
            ("every name distinct", &unique, false),
            (
                "10 distinct short values: indices cost more than they save",
                &few_unique,
                false,
            ),
        ];
        for (what, values, kept) in cases {
            let refs: Vec<&[u8]> = values.iter().map(String::as_bytes).collect();
            let (data, ends) = text_values(&refs);
            let mut scratch = Scratch::default();
            assert_eq!(build_dictionary(&data, &ends, &mut scratch), kept, "{what}");
            if kept {
                assert_eq!(scratch.entries.len(), 50, "{what}");
                assert_eq!(scratch.indices.len(), values.len(), "{what}");
                let (s, e) = scratch.entries[scratch.indices[1234] as usize];
                assert_eq!(&data[s..e], values[1234].as_bytes(), "{what}");
            }
        }
    }

    #[test]
    fn instant_dictionaries_are_kept_only_where_they_pay() {
        let day = 86_400_000_000i64;
        let repeated: Vec<i64> = (0..5000).map(|i| (i % 28) * day - 7).collect();
        // Runs of one instant, coming back after others.
        let runs: Vec<i64> = (0..5000)
            .map(|i| [day, day, day + 1, day][i / 7 % 4])
            .collect();
        let unique: Vec<i64> = (0..5000).map(|i| i * 1_000_003).collect();
        let cases: [(&str, &[i64], Option<usize>); 4] = [
            ("28 days over 5,000 rows", &repeated, Some(28)),
            ("runs of two instants", &runs, Some(2)),
            ("every instant distinct", &unique, None),
            ("one instant, once", &[42], None),
        ];
        for (what, values, kept) in cases {
            let mut scratch = Scratch::default();
            let built = build_int_dictionary(values, &mut scratch);
            assert_eq!(built, kept.is_some(), "{what}");
            if let Some(entries) = kept {
                assert_eq!(scratch.int_entries.len(), entries, "{what}");
                let got: Vec<i64> = scratch
                    .indices
                    .iter()
                    .map(|&i| scratch.int_entries[i as usize])
                    .collect();
                assert_eq!(got, values, "{what}");
            }
        }
    }

    /// The bounds of `values` as `TextBounds` finds them.
    fn bounds(values: &[&[u8]]) -> Option<Statistics> {
        let (data, ends) = text_values(values);
        let mut bounds = TextBounds::default();
        let mut start = 4;
        for end in ends {
            bounds.add(&data, start, end);
            start = end + 4;
        }
        bounds.statistics(&data)
    }

    #[test]
    fn text_bounds_order_as_the_bytes_do() {
        // Values sharing their first 8 or 16 bytes (the key's), shorter than 16, empty,
        // prefixes of each other, zero bytes (which the key's padding looks like), high bytes.
        let values: Vec<&[u8]> = vec![
            b"abcdefghijklmnop",
            b"abcdefghijklmno",
            b"abcdefghijklmnopq",
            b"abcdefghijklmnop\0",
            b"abcdefghijklmnoq",
            b"user.1234@example.com",
            b"user.1234@example.co",
            b"user.123",
            b"user.12",
            b"",
            b"a\0",
            b"a",
            b"\xff\xfe",
            b"\xff",
            b"user.1234@example.com\0",
            b"zz",
            b"z\0\0\0\0\0\0\0\0",
        ];
        // Every order of insertion that rotates the list, and each prefix of it.
        for rotate in 0..values.len() {
            let mut list = values.clone();
            list.rotate_left(rotate);
            for n in 1..=list.len() {
                let part = &list[..n];
                let want_min = part.iter().min().copied().unwrap_or_default();
                let want_max = part.iter().max().copied().unwrap_or_default();
                let got = bounds(part).expect("short values have statistics");
                assert_eq!(
                    (got.min.as_slice(), got.max.as_slice()),
                    (want_min, want_max),
                    "{part:?}"
                );
            }
        }
    }

    #[test]
    fn interning_finds_every_value_again_across_growth() {
        // 5,000 distinct values (the table grows several times), each seen three times, and
        // values that are prefixes of each other or differ only past 8 bytes.
        let mut values: Vec<Vec<u8>> = (0..5000).map(|i| format!("v{i}").into_bytes()).collect();
        values.extend(
            [
                &b""[..],
                b"a",
                b"a\0",
                b"abcdefgh",
                b"abcdefghi",
                b"abcdefghj",
            ]
            .map(<[u8]>::to_vec),
        );
        let refs: Vec<&[u8]> = values
            .iter()
            .chain(&values)
            .chain(&values)
            .map(Vec::as_slice)
            .collect();
        let (data, ends) = text_values(&refs);
        let mut slots = Slots::default();
        slots.reset();
        let mut entries = Vec::new();
        let mut start = 4;
        for (i, &end) in ends.iter().enumerate() {
            let (index, new) = slots.intern(&data, start, end, &mut entries);
            let first = i % values.len();
            assert_eq!(
                (index as usize, new),
                (first, i < values.len()),
                "value {i}"
            );
            start = end + 4;
        }
        assert_eq!(entries.len(), values.len());
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let base: Vec<u8> = (0..24u8).map(|b| b.wrapping_mul(41) ^ 0x5a).collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(same_bytes(a, a), "length {len}");
            for other in [0, 1, 7, 8, 9] {
                let b = &base[..other.min(base.len())];
                assert_eq!(same_bytes(a, b), a == b, "lengths {len} and {other}");
            }
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 1;
                assert!(!same_bytes(a, &b), "length {len}, differing at {at}");
            }
        }
        // Zero padding is not a byte: a value and itself plus zeros differ.
        for (a, b) in [
            (&b""[..], &b"\0"[..]),
            (b"a", b"a\0"),
            (b"abcdefgh", b"abcdefgh\0"),
        ] {
            assert!(!same_bytes(a, b) && !same_bytes(b, a), "{a:?} {b:?}");
        }
    }

    #[test]
    fn long_strings_leave_the_statistics_out() {
        let s = bounds(&[b"b", b"a", b"c"]).expect("stats");
        assert_eq!((s.min.as_slice(), s.max.as_slice()), (&b"a"[..], &b"c"[..]));
        let long = "x".repeat(STATISTIC_BYTES + 1);
        assert_eq!(bounds(&[b"b", long.as_bytes()]), None);
        let pages = [Some(s), None];
        assert_eq!(Statistics::merge(&pages), None);
    }

    #[test]
    fn integer_statistics_merge_by_value_not_by_bytes() {
        let a = Statistics::of_ints(&[-1, 5]);
        let b = Statistics::of_ints(&[256, 3]);
        let merged = Statistics::merge(&[a, b]).expect("stats");
        assert_eq!(merged.min, (-1i64).to_le_bytes());
        assert_eq!(merged.max, 256i64.to_le_bytes());
    }
}
