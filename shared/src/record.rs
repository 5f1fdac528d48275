//! Push-based CSV record splitting with the `csv` crate's default dialect (SPEC §1), on bytes.
//!
//! Two paths, both exact (the differential tests against the `csv` crate cover both, cut into
//! chunks anywhere):
//!
//! 1. The fast path handles every record that ends inside the chunk at hand. One pass over
//!    64-byte blocks, each turned into one bit per `,` `"` `\r` `\n` (SSE2 compares through
//!    `safe_arch` on x86_64, SWAR words elsewhere; no `unsafe`); a small state machine over
//!    those bytes follows the quoting and records field bounds. Fields borrow the input (a
//!    `"..."` field is the text between its quotes); only a record with `""` or bytes after a
//!    closing quote is unquoted, into a reused buffer. UTF-8 is validated for a whole chunk at
//!    once, so records usually arrive as text already.
//! 2. The exact path carries a record that straddles chunks: a resumable state machine
//!    (`memchr3` outside quotes, `memchr` inside) that keeps the record's bytes, up to the record
//!    limit; beyond it the record is only measured, never held.
//!
//! The dialect is `csv::ReaderBuilder` defaults with `flexible(true)` and `has_headers(false)`:
//! a UTF-8 BOM at the very start is dropped; `\r\n`, `\n` and a lone `\r` end a record; runs of
//! them between records are skipped (empty lines are not records); `"` opens a quoted field only
//! as the first byte of a field; `""` in a quoted field is one `"`; bytes after a closing quote are
//! appended to the field; an unclosed quote runs to the end of the input.
//!
//! Line numbers are physical: `\r\n`, `\n` and a lone `\r` each end a line, inside quoted fields
//! too; line 1 is the first line of the input.

use memchr::{memchr, memchr2_iter, memchr3};

/// The largest record (raw bytes, terminator excluded) that is buffered and validated; a larger
/// one is reported with `Record::too_large` and never held in memory.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between records: line terminators are skipped.
    StartRecord,
    /// At the first byte of a field.
    StartField,
    /// In an unquoted field, or after a quoted part of a field.
    InField,
    /// Inside quotes.
    InQuoted,
    /// Just after a `"` inside quotes: either an escaped `"` or the closing quote.
    QuoteInQuoted,
}

#[derive(Clone, Copy, Debug)]
enum Bom {
    /// Fewer than 3 bytes seen so far: they are held until we know whether they are a BOM.
    Pending([u8; 3], usize),
    Done,
}

/// One record as found in the input.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// 1-based physical line on which the record starts.
    pub line: u64,
    /// The record's bytes, quotes included, terminator excluded; empty when `too_large`.
    pub raw: &'a [u8],
    /// The record's fields, unquoted and untrimmed; one empty field when `too_large`.
    pub fields: Fields<'a>,
    /// The record is longer than the splitter's limit; its bytes were not kept.
    pub too_large: bool,
    /// Some field opened a quote (so `fields` were unquoted, not just cut at commas).
    pub quoted: bool,
}

/// Where scanning stopped.
enum Scan {
    /// The record ends just before the terminator at this index.
    Complete(usize),
    /// The buffer ended inside the record.
    Incomplete,
}

/// Push-based record splitter: `feed` chunks of any size, then `finish`.
#[derive(Debug)]
pub struct RecordSplitter {
    state: State,
    bom: Bom,
    /// Line of the next byte to be scanned.
    line: u64,
    /// The previous chunk ended with `\r` (so a leading `\n` is the same line break).
    prev_chunk_cr: bool,
    /// Line on which the record in progress started.
    record_line: u64,
    /// Whether the record in progress opened a quote.
    quoted: bool,
    /// Bytes of the record in progress from earlier chunks (empty once it is too large).
    carry: Vec<u8>,
    /// Length of the record in progress from earlier chunks, kept or not.
    carry_len: usize,
    max_record_bytes: usize,
    /// Field storage for the record being emitted.
    fields: FieldBuf,
}

impl Default for RecordSplitter {
    fn default() -> RecordSplitter {
        RecordSplitter::new()
    }
}

impl RecordSplitter {
    pub fn new() -> RecordSplitter {
        RecordSplitter::with_max_record_bytes(MAX_RECORD_BYTES)
    }

    /// A splitter whose record limit is `max_record_bytes` instead of `MAX_RECORD_BYTES`.
    pub fn with_max_record_bytes(max_record_bytes: usize) -> RecordSplitter {
        RecordSplitter {
            state: State::StartRecord,
            bom: Bom::Pending([0; 3], 0),
            line: 1,
            prev_chunk_cr: false,
            record_line: 1,
            quoted: false,
            carry: Vec::new(),
            carry_len: 0,
            max_record_bytes,
            fields: FieldBuf::new(),
        }
    }

    /// Splits `chunk`, continuing where the previous chunk stopped, calling `on_record` for each
    /// record that ends in it (the last record of the input is only known at `finish`).
    pub fn feed<F: FnMut(Record<'_>)>(&mut self, chunk: &[u8], mut on_record: F) {
        let chunk = match self.bom {
            Bom::Done => chunk,
            Bom::Pending(mut held, len) => {
                let take = (3 - len).min(chunk.len());
                held[len..len + take].copy_from_slice(&chunk[..take]);
                if len + take < 3 {
                    self.bom = Bom::Pending(held, len + take);
                    return;
                }
                self.bom = Bom::Done;
                if held != BOM {
                    self.feed_body(&held, &mut on_record);
                }
                &chunk[take..]
            }
        };
        self.feed_body(chunk, &mut on_record);
    }

    /// Ends the input: a record without a terminator (even inside an unclosed quote) is still a
    /// record. The splitter is then reset for a new input.
    pub fn finish<F: FnMut(Record<'_>)>(&mut self, mut on_record: F) {
        if let Bom::Pending(held, len) = self.bom {
            self.bom = Bom::Done;
            self.feed_body(&held[..len], &mut on_record);
        }
        if self.state != State::StartRecord {
            self.emit_carry(&[], &mut on_record);
        }
        let max = self.max_record_bytes;
        *self = RecordSplitter::with_max_record_bytes(max);
    }

    /// Line on which the next byte would be (1 + the number of line breaks seen so far).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Where the input stands when it is between records (BOM settled, no record in progress):
    /// the line of the next byte and whether the last byte was `\r`.
    pub fn boundary(&self) -> Option<(u64, bool)> {
        let between = self.state == State::StartRecord && matches!(self.bom, Bom::Done);
        between.then_some((self.line, self.prev_chunk_cr))
    }

    /// A splitter continuing an input at a point between records (see `boundary`).
    pub fn resume(line: u64, prev_cr: bool, max_record_bytes: usize) -> RecordSplitter {
        RecordSplitter {
            bom: Bom::Done,
            line,
            prev_chunk_cr: prev_cr,
            ..RecordSplitter::with_max_record_bytes(max_record_bytes)
        }
    }

    fn feed_body<F: FnMut(Record<'_>)>(&mut self, chunk: &[u8], on_record: &mut F) {
        if chunk.is_empty() {
            return;
        }
        let mut pos = 0;
        if self.state != State::StartRecord {
            match self.scan(chunk, 0) {
                Scan::Complete(end) => {
                    self.emit_carry(&chunk[..end], on_record);
                    pos = end;
                }
                Scan::Incomplete => {
                    self.hold(chunk);
                    self.prev_chunk_cr = chunk[chunk.len() - 1] == b'\r';
                    return;
                }
            }
        }
        loop {
            pos = self.fast_records(chunk, pos, on_record);
            // Between records: skip line terminators (empty lines), counting line breaks.
            while pos < chunk.len() && matches!(chunk[pos], b'\r' | b'\n') {
                if chunk[pos] == b'\r' || !self.after_cr(chunk, pos) {
                    self.line += 1;
                }
                pos += 1;
            }
            if pos == chunk.len() {
                break;
            }
            // The record at `pos` runs past the chunk (or the fast path left it): the exact path.
            let start = pos;
            self.record_line = self.line;
            self.quoted = false;
            self.state = State::StartField;
            match self.scan(chunk, start) {
                Scan::Complete(end) => {
                    let raw = &chunk[start..end];
                    let too_large = raw.len() > self.max_record_bytes;
                    let raw = if too_large { &[][..] } else { raw };
                    on_record(Record {
                        line: self.record_line,
                        raw,
                        fields: self.fields.split(raw, self.quoted),
                        too_large,
                        quoted: self.quoted,
                    });
                    self.state = State::StartRecord;
                    pos = end;
                }
                Scan::Incomplete => {
                    self.hold(&chunk[start..]);
                    break;
                }
            }
        }
        self.prev_chunk_cr = chunk[chunk.len() - 1] == b'\r';
    }

    /// The fast path: emits the records of `chunk[start..]` that end in it; returns where the
    /// first record not ending in it starts (the exact path then carries it over).
    ///
    /// One pass over 64-byte blocks (`special_mask`) finds every `,` `"` `\r` `\n`; a small
    /// state machine over those bytes follows the quoting. Fields are bounds into the record (a `"..."` field is
    /// the text between its quotes); only a record with `""` or bytes after a closing quote is
    /// unquoted into the field buffer.
    #[inline]
    fn fast_records<F: FnMut(Record<'_>)>(
        &mut self,
        chunk: &[u8],
        start: usize,
        on_record: &mut F,
    ) -> usize {
        let rest = &chunk[start..];
        let mut cut = Cut {
            record: start,
            field: start,
            line: self.line,
            in_quotes: false,
            closed_at: usize::MAX,
            escaped_at: usize::MAX,
            opened: false,
            saw_quote: false,
            decode: false,
            text_start: start,
            text: valid_prefix(rest),
        };
        self.fields.bounds.clear();
        let mut blocks = rest.chunks_exact(BLOCK);
        let mut base = start;
        for block in &mut blocks {
            let mut hits = special_mask(block);
            while hits != 0 {
                let at = base + hits.trailing_zeros() as usize;
                hits &= hits - 1;
                if !self.special(chunk, at, &mut cut, on_record) {
                    self.line = cut.line;
                    return cut.record;
                }
            }
            base += BLOCK;
        }
        for (i, &b) in blocks.remainder().iter().enumerate() {
            if matches!(b, b',' | b'"' | b'\r' | b'\n')
                && !self.special(chunk, base + i, &mut cut, on_record)
            {
                self.line = cut.line;
                return cut.record;
            }
        }
        // A record in progress is started over by the exact path, line breaks included.
        self.line = cut.line;
        cut.record
    }

    /// Handles a `,` `"` `\r` or `\n` at `at` in the fast path; false when the record in
    /// progress cannot be settled in this chunk.
    #[inline(always)]
    fn special<'c, F: FnMut(Record<'_>)>(
        &mut self,
        chunk: &'c [u8],
        at: usize,
        cut: &mut Cut<'c>,
        on_record: &mut F,
    ) -> bool {
        let b = chunk[at];
        if cut.in_quotes {
            match b {
                b'"' if at == cut.escaped_at => {}
                b'"' => match chunk.get(at + 1) {
                    None => return false,
                    Some(b'"') => {
                        cut.decode = true;
                        cut.escaped_at = at + 1;
                    }
                    Some(_) => {
                        cut.in_quotes = false;
                        cut.closed_at = at;
                    }
                },
                // A line break inside quotes.
                b'\r' | b'\n' if b == b'\r' || !self.after_cr(chunk, at) => self.line += 1,
                _ => {}
            }
            return true;
        }
        match b {
            b'"' => {
                cut.saw_quote = true;
                if at == cut.field {
                    cut.in_quotes = true;
                    cut.opened = true;
                }
            }
            b',' => {
                self.end_field(at, cut);
                cut.field = at + 1;
            }
            _ if at == cut.record => {
                // An empty line, or the `\n` of a `\r\n`.
                if b == b'\r' || !self.after_cr(chunk, at) {
                    self.line += 1;
                }
                cut.record = at + 1;
                cut.field = at + 1;
                cut.line = self.line;
            }
            _ => {
                self.end_field(at, cut);
                let raw = &chunk[cut.record..at];
                let too_large = raw.len() > self.max_record_bytes;
                let fields = if too_large {
                    self.fields.bounds.clear();
                    self.fields.bounds.push((0, 0));
                    Fields {
                        data: &[],
                        bounds: &self.fields.bounds,
                        text: Some(""),
                        quote_free: false,
                    }
                } else if cut.decode {
                    self.fields.split(raw, true)
                } else {
                    let valid_end = cut.text_start + cut.text.len();
                    if cut.record > valid_end {
                        // The invalid byte that ended the valid text is behind: validate on.
                        cut.text_start = cut.record;
                        cut.text = valid_prefix(&chunk[cut.record..]);
                    }
                    Fields {
                        data: raw,
                        bounds: &self.fields.bounds,
                        // Bounds sit next to ASCII bytes: character boundaries of valid text.
                        text: cut
                            .text
                            .get(cut.record - cut.text_start..at - cut.text_start),
                        quote_free: !cut.saw_quote,
                    }
                };
                on_record(Record {
                    line: cut.line,
                    raw: if too_large { &[] } else { raw },
                    fields,
                    too_large,
                    quoted: cut.opened,
                });
                self.fields.bounds.clear();
                // The byte before is record data or a closing quote, so even a `\n` is a line
                // break of its own.
                self.line += 1;
                cut.record = at + 1;
                cut.field = at + 1;
                cut.line = self.line;
                cut.opened = false;
                cut.saw_quote = false;
                cut.decode = false;
            }
        }
        true
    }

    /// Ends the field before the separator at `at`.
    #[inline(always)]
    fn end_field(&mut self, at: usize, cut: &mut Cut<'_>) {
        let bounds = if cut.closed_at == usize::MAX {
            (cut.field - cut.record, at - cut.record)
        } else {
            if cut.closed_at + 1 != at {
                // Bytes after the closing quote are appended: unquote the record.
                cut.decode = true;
            }
            (cut.field + 1 - cut.record, cut.closed_at - cut.record)
        };
        self.fields.bounds.push(bounds);
        cut.closed_at = usize::MAX;
    }

    /// Emits the record in progress, whose last bytes are `tail`.
    fn emit_carry<F: FnMut(Record<'_>)>(&mut self, tail: &[u8], on_record: &mut F) {
        let too_large = self.carry_len + tail.len() > self.max_record_bytes;
        if too_large {
            self.carry.clear();
        } else {
            self.carry.extend_from_slice(tail);
        }
        on_record(Record {
            line: self.record_line,
            raw: &self.carry,
            fields: self.fields.split(&self.carry, self.quoted),
            too_large,
            quoted: self.quoted,
        });
        self.carry.clear();
        self.carry_len = 0;
        self.state = State::StartRecord;
    }

    /// Keeps `bytes` of the record in progress, unless that makes it too large.
    fn hold(&mut self, bytes: &[u8]) {
        let fits = self.carry_len + bytes.len() <= self.max_record_bytes;
        self.carry_len += bytes.len();
        if fits {
            self.carry.extend_from_slice(bytes);
        } else {
            self.carry.clear();
        }
    }

    /// Whether the byte before `pos` (possibly the last byte of the previous chunk) is `\r`.
    #[inline]
    fn after_cr(&self, buf: &[u8], pos: usize) -> bool {
        if pos == 0 {
            self.prev_chunk_cr
        } else {
            buf[pos - 1] == b'\r'
        }
    }

    /// Counts the line breaks in `buf[from..to]` (inside a quoted field).
    fn count_breaks(&mut self, buf: &[u8], from: usize, to: usize) {
        for i in memchr2_iter(b'\r', b'\n', &buf[from..to]) {
            let p = from + i;
            if buf[p] == b'\r' || !self.after_cr(buf, p) {
                self.line += 1;
            }
        }
    }

    /// Advances through the record in progress from `pos`, which is inside it.
    fn scan(&mut self, buf: &[u8], mut pos: usize) -> Scan {
        loop {
            match self.state {
                State::StartField | State::InField => {
                    let rest = &buf[pos..];
                    match memchr3(b'\n', b'\r', b'"', rest) {
                        None => {
                            if let Some(&last) = rest.last() {
                                self.state = if last == b',' {
                                    State::StartField
                                } else {
                                    State::InField
                                };
                            }
                            return Scan::Incomplete;
                        }
                        Some(i) => {
                            let p = pos + i;
                            if buf[p] != b'"' {
                                return Scan::Complete(p);
                            }
                            let at_field_start = if i == 0 {
                                self.state == State::StartField
                            } else {
                                buf[p - 1] == b','
                            };
                            if at_field_start {
                                self.quoted = true;
                                self.state = State::InQuoted;
                            } else {
                                self.state = State::InField;
                            }
                            pos = p + 1;
                        }
                    }
                }
                State::InQuoted => match memchr(b'"', &buf[pos..]) {
                    None => {
                        self.count_breaks(buf, pos, buf.len());
                        return Scan::Incomplete;
                    }
                    Some(i) => {
                        self.count_breaks(buf, pos, pos + i);
                        self.state = State::QuoteInQuoted;
                        pos += i + 1;
                    }
                },
                State::QuoteInQuoted => {
                    let Some(&b) = buf.get(pos) else {
                        return Scan::Incomplete;
                    };
                    match b {
                        b'\r' | b'\n' => return Scan::Complete(pos),
                        b'"' => self.state = State::InQuoted,
                        b',' => self.state = State::StartField,
                        _ => self.state = State::InField,
                    }
                    pos += 1;
                }
                State::StartRecord => return Scan::Complete(pos),
            }
        }
    }
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// The longest valid UTF-8 prefix of `bytes`, as text.
fn valid_prefix(bytes: &[u8]) -> &str {
    match simdutf8::compat::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => simdutf8::compat::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// The fast path's view of the record in progress.
struct Cut<'t> {
    /// Where the record and the field in progress start.
    record: usize,
    field: usize,
    /// Line on which the record starts.
    line: u64,
    in_quotes: bool,
    /// The closing quote of the field in progress, if it was quoted.
    closed_at: usize,
    /// The second quote of a `""` inside quotes, to pass over.
    escaped_at: usize,
    /// Some field opened a quote; some `"` was seen; the record needs unquoting.
    opened: bool,
    saw_quote: bool,
    decode: bool,
    /// A valid UTF-8 prefix of the chunk from `text_start` (up to its first invalid byte).
    text_start: usize,
    text: &'t str,
}

/// High bit clear exactly in the bytes of `w` equal to `b`: `x` is zero exactly in those bytes,
/// and `(x & 0x7f) + 0x7f` sets the high bit of every other byte without carrying into the next.
#[inline(always)]
fn nonzero_high(w: u64, b: u8) -> u64 {
    let x = w ^ (ONES * u64::from(b));
    ((x & LOW7) + LOW7) | x
}

/// `bytes` as little-endian words, the last padded with zeros (one zero word for no bytes).
#[inline(always)]
pub(crate) fn le_words(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    let words = bytes.chunks_exact(8);
    let tail = tail_word(words.remainder());
    words
        .map(|w| u64::from_le_bytes(<[u8; 8]>::try_from(w).unwrap_or([0; 8])))
        .chain(std::iter::once(tail))
}

/// Fewer than 8 bytes as a little-endian word, zero-padded, from loads of the bytes themselves:
/// two overlapping 4-byte loads for 4–7 bytes, three single bytes for 1–3 (their overlaps
/// carry equal bits). Not a copy into a padded buffer: that is a `memcpy` call per value and a
/// load that waits for its byte stores.
#[inline(always)]
fn tail_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    let u32_at = |i: usize| {
        let mut w = [0; 4];
        w.copy_from_slice(&rest[i..i + 4]);
        u64::from(u32::from_le_bytes(w))
    };
    match n {
        0 => 0,
        1..=3 => {
            let byte = |i: usize| u64::from(rest[i]) << (8 * i);
            byte(0) | byte(n / 2) | byte(n - 1)
        }
        _ => u32_at(0) | (u32_at(n - 4) << (8 * (n - 4))),
    }
}

/// The high bit of every byte of `w` that is `,`, `"`, `\r` or `\n`, and no other bit.
#[inline(always)]
pub(crate) fn special_bytes(w: u64) -> u64 {
    !(nonzero_high(w, b',')
        & nonzero_high(w, b'"')
        & nonzero_high(w, b'\r')
        & nonzero_high(w, b'\n'))
        & HIGH
}

/// Bytes the fast path classifies at once.
const BLOCK: usize = 64;

/// Bit `i` of the result set exactly when `hit` marks byte `i` of `block` (`BLOCK` bytes):
/// `hit` compares one 16-byte lane (SSE2, part of every x86_64) and a move-mask keeps one bit
/// per byte.
#[cfg(all(target_arch = "x86_64", not(csv_ingest_portable)))]
#[inline(always)]
fn lane_bits(block: &[u8], hit: impl Fn(safe_arch::m128i) -> safe_arch::m128i) -> u64 {
    let mut mask = 0;
    for (i, lane) in block.chunks_exact(16).enumerate() {
        let Ok(lane) = <&[u8; 16]>::try_from(lane) else {
            continue;
        };
        let v = safe_arch::load_unaligned_m128i(lane);
        // The mask has 16 bits; the cast keeps them.
        mask |= u64::from(safe_arch::move_mask_i8_m128i(hit(v)) as u16) << (16 * i);
    }
    mask
}

/// Lanes equal to `b`, byte by byte.
#[cfg(all(target_arch = "x86_64", not(csv_ingest_portable)))]
#[inline(always)]
fn eq_byte(v: safe_arch::m128i, b: u8) -> safe_arch::m128i {
    safe_arch::cmp_eq_mask_i8_m128i(v, safe_arch::set_splat_i8_m128i(b as i8))
}

/// Bit `i` set exactly when `block[i]` is `,`, `"`, `\r` or `\n` (`block` is `BLOCK` bytes).
#[cfg(all(target_arch = "x86_64", not(csv_ingest_portable)))]
#[inline(always)]
fn special_mask(block: &[u8]) -> u64 {
    lane_bits(block, |v| {
        (eq_byte(v, b',') | eq_byte(v, b'"')) | (eq_byte(v, b'\r') | eq_byte(v, b'\n'))
    })
}

/// Bit `i` set exactly when `block[i]` is `,`, `"`, `\r` or `\n`.
#[cfg(any(not(target_arch = "x86_64"), csv_ingest_portable))]
#[inline(always)]
fn special_mask(block: &[u8]) -> u64 {
    special_mask_swar(block)
}

/// `special_mask` by SWAR over 8-byte words, each word's high bits packed into one byte by a
/// multiply: what arm64 runs (tested on every target).
#[inline(always)]
#[cfg_attr(
    all(target_arch = "x86_64", not(csv_ingest_portable)),
    allow(dead_code)
)]
fn special_mask_swar(block: &[u8]) -> u64 {
    let mut mask = 0;
    for (i, word) in block.chunks_exact(8).enumerate() {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            continue;
        };
        mask |= pack_high_bits(special_bytes(u64::from_le_bytes(word))) << (8 * i);
    }
    mask
}

/// The high bits of the 8 bytes of `w` (and no other bit set) as bits 0..8.
#[inline(always)]
#[cfg_attr(
    all(target_arch = "x86_64", not(csv_ingest_portable)),
    allow(dead_code)
)]
fn pack_high_bits(w: u64) -> u64 {
    ((w >> 7).wrapping_mul(0x0002_0408_1020_4081) >> 49) & 0xff
}

/// The number of line breaks (`\r\n`, `\n` or a lone `\r`) in `bytes`, which follow a `\r` when
/// `prev_cr`. Line numbers are physical, so this does not depend on quoting.
pub fn count_line_breaks(bytes: &[u8], prev_cr: bool) -> u64 {
    #[cfg(all(target_arch = "x86_64", not(csv_ingest_portable)))]
    {
        // 64 bytes at a time: every `\r` is a break, a `\n` unless a `\r` precedes it.
        let mut blocks = bytes.chunks_exact(BLOCK);
        let mut n = 0;
        let mut carry = u64::from(prev_cr);
        for block in &mut blocks {
            let (cr, lf) = line_end_masks(block);
            // No byte is both, so one count (x86_64's baseline has no popcount instruction).
            n += u64::from((cr | (lf & !((cr << 1) | carry))).count_ones());
            carry = cr >> 63;
        }
        let rest = blocks.remainder();
        let before = bytes.len() - rest.len();
        let prev_cr = if before == 0 {
            prev_cr
        } else {
            bytes[before - 1] == b'\r'
        };
        n + count_line_breaks_scalar(rest, prev_cr)
    }
    #[cfg(any(not(target_arch = "x86_64"), csv_ingest_portable))]
    count_line_breaks_scalar(bytes, prev_cr)
}

/// Bit `i` of each mask: `block[i]` is `\r`, `\n` (`block` is `BLOCK` bytes).
#[cfg(all(target_arch = "x86_64", not(csv_ingest_portable)))]
#[inline(always)]
fn line_end_masks(block: &[u8]) -> (u64, u64) {
    (
        lane_bits(block, |v| eq_byte(v, b'\r')),
        lane_bits(block, |v| eq_byte(v, b'\n')),
    )
}

/// `count_line_breaks` one line terminator at a time.
fn count_line_breaks_scalar(bytes: &[u8], prev_cr: bool) -> u64 {
    let mut n = 0;
    for i in memchr2_iter(b'\r', b'\n', bytes) {
        let after_cr = if i == 0 {
            prev_cr
        } else {
            bytes[i - 1] == b'\r'
        };
        n += u64::from(bytes[i] == b'\r' || !after_cr);
    }
    n
}

/// Reusable storage for the fields of one record.
#[derive(Debug, Default)]
pub struct FieldBuf {
    data: Vec<u8>,
    bounds: Vec<(usize, usize)>,
}

/// The fields of one record: unquoted bytes, untrimmed.
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    data: &'a [u8],
    bounds: &'a [(usize, usize)],
    /// `data` as text, when already known to be valid UTF-8 with every bound on a character
    /// boundary (the fast path validates whole chunks at once).
    text: Option<&'a str>,
    /// `data` is the whole record and holds no `"`: the fields are exactly its comma-separated
    /// pieces.
    quote_free: bool,
}

impl<'a> Fields<'a> {
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Field `i`, if the record has it.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let data = self.data;
        self.bounds.get(i).map(|&(s, e)| &data[s..e])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let data = self.data;
        self.bounds.iter().map(move |&(s, e)| &data[s..e])
    }
}

/// The fields of one record as text (every field is valid UTF-8).
#[derive(Clone, Copy, Debug)]
pub struct StrFields<'a> {
    text: &'a str,
    bounds: &'a [(usize, usize)],
    quote_free: bool,
}

impl<'a> StrFields<'a> {
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// Field `i`, if the record has it.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let &(s, e) = self.bounds.get(i)?;
        self.text.get(s..e)
    }

    /// The whole record, when it holds no `"` (so its fields are its comma-separated pieces).
    pub fn quote_free_record(&self) -> Option<&'a str> {
        self.quote_free.then_some(self.text)
    }
}

impl<'a> Fields<'a> {
    /// The fields as text, or `None` when some field is not valid UTF-8.
    ///
    /// One validation of the record's bytes instead of one per field: every field is valid
    /// UTF-8 exactly when the bytes holding them are and every field starts and ends on a
    /// character boundary (a field ending inside a character that the next one completes is
    /// caught by the boundary check).
    #[inline]
    pub fn to_str(&self) -> Option<StrFields<'a>> {
        if let Some(text) = self.text {
            return Some(StrFields {
                text,
                bounds: self.bounds,
                quote_free: self.quote_free,
            });
        }
        let text = std::str::from_utf8(self.data).ok()?;
        let on_boundaries = self
            .bounds
            .iter()
            .all(|&(s, e)| text.is_char_boundary(s) && text.is_char_boundary(e));
        on_boundaries.then_some(StrFields {
            text,
            bounds: self.bounds,
            quote_free: false,
        })
    }
}

impl FieldBuf {
    pub fn new() -> FieldBuf {
        FieldBuf::default()
    }

    /// Cuts a complete record (`Record::raw`, with its `quoted` flag) into fields. A record has
    /// at least one field; a too-large record (empty `raw`) gives one empty field.
    pub fn split<'s>(&'s mut self, raw: &'s [u8], quoted: bool) -> Fields<'s> {
        self.bounds.clear();
        if !quoted {
            let mut start = 0;
            for comma in memchr::memchr_iter(b',', raw) {
                self.bounds.push((start, comma));
                start = comma + 1;
            }
            self.bounds.push((start, raw.len()));
            return Fields {
                data: raw,
                bounds: &self.bounds,
                text: None,
                quote_free: false,
            };
        }
        self.data.clear();
        let mut state = State::StartField;
        let mut start = 0;
        for &b in raw {
            match state {
                State::StartField if b == b'"' => state = State::InQuoted,
                State::StartField | State::InField => {
                    if b == b',' {
                        self.bounds.push((start, self.data.len()));
                        start = self.data.len();
                        state = State::StartField;
                    } else {
                        self.data.push(b);
                        state = State::InField;
                    }
                }
                State::InQuoted => {
                    if b == b'"' {
                        state = State::QuoteInQuoted;
                    } else {
                        self.data.push(b);
                    }
                }
                State::QuoteInQuoted => {
                    if b == b'"' {
                        self.data.push(b);
                        state = State::InQuoted;
                    } else if b == b',' {
                        self.bounds.push((start, self.data.len()));
                        start = self.data.len();
                        state = State::StartField;
                    } else {
                        self.data.push(b);
                        state = State::InField;
                    }
                }
                // Never entered: a record has no terminator outside quotes.
                State::StartRecord => {}
            }
        }
        self.bounds.push((start, self.data.len()));
        Fields {
            data: &self.data,
            bounds: &self.bounds,
            text: None,
            quote_free: false,
        }
    }
}

/// Splits a whole input into owned records of owned fields (for tests and small outputs).
pub fn split_all(input: &[u8]) -> Vec<(u64, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut take = |r: Record<'_>| {
        out.push((r.line, r.fields.iter().map(<[u8]>::to_vec).collect()));
    };
    let mut splitter = RecordSplitter::new();
    splitter.feed(input, &mut take);
    splitter.finish(&mut take);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_counted_by_blocks_as_one_by_one() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000, 4099] {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        b"\r\n\r\nab,\""[(x % 8) as usize]
                    })
                    .collect();
                for prev_cr in [false, true] {
                    assert_eq!(
                        count_line_breaks(&bytes, prev_cr),
                        count_line_breaks_scalar(&bytes, prev_cr),
                        "{len} bytes, prev_cr {prev_cr}: {bytes:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn words_are_the_bytes_zero_padded_at_every_length() {
        let bytes: Vec<u8> = (1..=40u8).map(|b| b.wrapping_mul(37) | 0x80).collect();
        for len in 0..=bytes.len() {
            let value = &bytes[..len];
            let mut padded = value.to_vec();
            padded.resize(len / 8 * 8 + 8, 0);
            let want: Vec<u64> = padded
                .chunks(8)
                .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
                .collect();
            assert_eq!(le_words(value).collect::<Vec<_>>(), want, "length {len}");
        }
    }

    #[test]
    fn block_masks_mark_exactly_the_special_bytes() {
        let reference = |block: &[u8]| {
            block.iter().enumerate().fold(0u64, |m, (i, b)| {
                m | (u64::from(matches!(b, b',' | b'"' | b'\r' | b'\n')) << i)
            })
        };
        // Every byte value at every position, and blocks dense with specials.
        for value in 0..=255u8 {
            for at in 0..BLOCK {
                let mut block = [b'a'; BLOCK];
                block[at] = value;
                assert_eq!(
                    special_mask(&block),
                    reference(&block),
                    "{value:#x} at {at}"
                );
                assert_eq!(
                    special_mask_swar(&block),
                    reference(&block),
                    "{value:#x} at {at}"
                );
            }
        }
        let dense: Vec<u8> = (0..BLOCK).map(|i| b",\"\r\nx\xff"[i % 6]).collect();
        assert_eq!(special_mask(&dense), reference(&dense));
        assert_eq!(special_mask_swar(&dense), reference(&dense));
        for pattern in 0..=255u64 {
            let w = (0..8).fold(0, |w, i| w | (((pattern >> i) & 1) << (8 * i + 7)));
            assert_eq!(pack_high_bits(w), pattern);
        }
    }

    fn fields(input: &str) -> Vec<Vec<String>> {
        split_all(input.as_bytes())
            .into_iter()
            .map(|(_, f)| {
                f.iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect()
            })
            .collect()
    }

    fn lines(input: &str) -> Vec<u64> {
        split_all(input.as_bytes())
            .into_iter()
            .map(|(l, _)| l)
            .collect()
    }

    #[test]
    fn dialect_basics() {
        assert_eq!(fields("a,b\nc,d"), [["a", "b"], ["c", "d"]]);
        assert_eq!(fields("a,b\r\nc,d\r\n"), [["a", "b"], ["c", "d"]]);
        assert_eq!(fields("a\rb\r"), [["a"], ["b"]]);
        assert_eq!(fields("\n\r\n\ra\n\n\nb\n\n"), [["a"], ["b"]]);
        assert_eq!(fields(""), Vec::<Vec<String>>::new());
        assert_eq!(fields("\r\n\r\n"), Vec::<Vec<String>>::new());
        assert_eq!(fields(" \n"), [[" "]]);
        assert_eq!(fields("a,"), [["a", ""]]);
        assert_eq!(fields(","), [["", ""]]);
        assert_eq!(fields("\"\""), [[""]]);
        assert_eq!(fields("\""), [[""]]);
    }

    #[test]
    fn quoting() {
        assert_eq!(fields("\"a,b\",c"), [["a,b", "c"]]);
        assert_eq!(fields("\"a\"\"b\""), [["a\"b"]]);
        assert_eq!(fields("\"a\nb\",c\nd"), [vec!["a\nb", "c"], vec!["d"]]);
        assert_eq!(fields("\"a\"b,c"), [["ab", "c"]]);
        assert_eq!(fields("a\"b\",c"), [["a\"b\"", "c"]]);
        assert_eq!(fields(" \"a\""), [[" \"a\""]]);
        assert_eq!(fields("\"a\" \"b\""), [["a \"b\""]]);
        assert_eq!(fields("\"unclosed,\nstill\n"), [["unclosed,\nstill\n"]]);
        assert_eq!(fields("x,\"\"\"\""), [["x", "\""]]);
    }

    #[test]
    fn bom_only_at_start() {
        assert_eq!(fields("\u{feff}a,b"), [["a", "b"]]);
        assert_eq!(fields("a,\u{feff}b"), [["a", "\u{feff}b"]]);
        assert_eq!(fields("\u{feff}\u{feff}a"), [["\u{feff}a"]]);
        assert_eq!(split_all(b"\xef\xbb"), [(1, vec![b"\xef\xbb".to_vec()])]);
        assert!(split_all(b"\xef\xbb\xbf").is_empty());
    }

    #[test]
    fn physical_line_numbers() {
        assert_eq!(lines("a\nb\r\nc\rd"), [1, 2, 3, 4]);
        assert_eq!(lines("\n\na\r\n\r\nb"), [3, 5]);
        assert_eq!(lines("\"x\r\ny\rz\nw\",1\nb"), [1, 5]);
        assert_eq!(lines("h\n \nb"), [1, 2, 3]);
    }

    #[test]
    fn chunking_does_not_matter() {
        let input: &[u8] =
            b"\xef\xbb\xbfid,\"na\"\"me\"\r\n\r\n1,\"a\r\nb\"x\r2,\"\"\n3,c\"d\r\n\"open,\n";
        let whole = split_all(input);
        for size in 1..input.len() {
            let mut got = Vec::new();
            let mut take = |r: Record<'_>| {
                got.push((
                    r.line,
                    r.fields.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(),
                ));
            };
            let mut s = RecordSplitter::new();
            for c in input.chunks(size) {
                s.feed(c, &mut take);
            }
            s.finish(&mut take);
            assert_eq!(got, whole, "chunk size {size}");
        }
    }

    #[test]
    fn too_large_records_are_measured_not_kept() {
        let input = b"ab,c\n\"123456\n7\"\nx\n123456789";
        for size in [1, 2, 3, 5, 100] {
            let mut got = Vec::new();
            let mut s = RecordSplitter::with_max_record_bytes(4);
            let mut take = |r: Record<'_>| got.push((r.line, r.raw.to_vec(), r.too_large));
            for c in input.chunks(size) {
                s.feed(c, &mut take);
                assert!(
                    s.carry.len() <= 4,
                    "kept at most the limit (chunk size {size})"
                );
            }
            s.finish(&mut take);
            assert_eq!(
                got,
                [
                    (1, b"ab,c".to_vec(), false),
                    (2, vec![], true),
                    (4, b"x".to_vec(), false),
                    (5, vec![], true)
                ],
                "chunk size {size}"
            );
        }
    }
}
