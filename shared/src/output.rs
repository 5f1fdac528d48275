//! Output formats for clean and rejected rows, and parsers that read those outputs back.
//!
//! Both outputs are CSV with `\n` line ends. A value is quoted only when it must be: when it
//! holds `,`, `"`, `\r` or `\n`, and, for the original values of rejected rows, also when it
//! starts or ends with white space (so it reads back unchanged even by a trimming reader).
//! Original bytes that are not UTF-8 are written lossily (U+FFFD); the raw copy keeps the bytes.

use std::borrow::Cow;
use std::fmt;

use crate::process::Processor;
use crate::reason::ReasonSet;
use crate::record::{Record, RecordSplitter, le_words, special_bytes};
use crate::row::{CleanRow, RejectedRow};
use crate::timestamp::Timestamp;

/// Header of every `_cleaned.csv` output.
pub const CLEAN_HEADER: &str = "id,name,email,create_ts,update_ts";
/// Header of every `_rejected.csv` output.
pub const REJECTED_HEADER: &str = "line,reasons,id,name,email,create_ts,update_ts";

/// Receives the processor's verdict on each data record, in input order.
pub trait RowSink {
    fn clean(&mut self, row: &CleanRow<'_>);
    fn rejected(&mut self, row: &RejectedRow<'_>);

    /// A clean row whose input record needed no cleaning: `line` is exactly the clean output
    /// line `CsvOutputs` writes for it (without the `\n`), so a CSV writer can copy it. The
    /// default ignores the hint and calls `clean`.
    fn clean_verbatim(&mut self, row: &CleanRow<'_>, line: &str) {
        let _ = line;
        self.clean(row);
    }
}

impl<S: RowSink + ?Sized> RowSink for &mut S {
    #[inline]
    fn clean(&mut self, row: &CleanRow<'_>) {
        (**self).clean(row);
    }
    #[inline]
    fn rejected(&mut self, row: &RejectedRow<'_>) {
        (**self).rejected(row);
    }
    #[inline]
    fn clean_verbatim(&mut self, row: &CleanRow<'_>, line: &str) {
        (**self).clean_verbatim(row, line);
    }
}

/// Both sinks receive every verdict, the first one first (e.g. CSV and Parquet outputs).
impl<A: RowSink, B: RowSink> RowSink for (A, B) {
    #[inline]
    fn clean(&mut self, row: &CleanRow<'_>) {
        self.0.clean(row);
        self.1.clean(row);
    }
    #[inline]
    fn rejected(&mut self, row: &RejectedRow<'_>) {
        self.0.rejected(row);
        self.1.rejected(row);
    }
    #[inline]
    fn clean_verbatim(&mut self, row: &CleanRow<'_>, line: &str) {
        self.0.clean_verbatim(row, line);
        self.1.clean_verbatim(row, line);
    }
}

/// An optional sink: `None` ignores every verdict.
impl<S: RowSink> RowSink for Option<S> {
    #[inline]
    fn clean(&mut self, row: &CleanRow<'_>) {
        if let Some(sink) = self {
            sink.clean(row);
        }
    }
    #[inline]
    fn rejected(&mut self, row: &RejectedRow<'_>) {
        if let Some(sink) = self {
            sink.rejected(row);
        }
    }
    #[inline]
    fn clean_verbatim(&mut self, row: &CleanRow<'_>, line: &str) {
        if let Some(sink) = self {
            sink.clean_verbatim(row, line);
        }
    }
}

/// CSV outputs accumulated in memory; the owner drains `clean` / `rejected` as they fill up.
/// A header is written before the first row of each, so an output with no rows stays empty.
#[derive(Debug, Default)]
pub struct CsvOutputs {
    pub clean: Vec<u8>,
    pub rejected: Vec<u8>,
    /// Rows written to `clean` so far (draining the buffer does not reset it).
    pub clean_rows: u64,
    /// Rows written to `rejected` so far (draining the buffer does not reset it).
    pub rejected_rows: u64,
}

impl CsvOutputs {
    pub fn new() -> CsvOutputs {
        CsvOutputs::default()
    }
}

impl RowSink for CsvOutputs {
    fn clean(&mut self, row: &CleanRow<'_>) {
        if self.clean_rows == 0 {
            self.clean.extend_from_slice(CLEAN_HEADER.as_bytes());
            self.clean.push(b'\n');
        }
        self.clean_rows += 1;
        write_clean(&mut self.clean, row);
    }

    fn clean_verbatim(&mut self, _row: &CleanRow<'_>, line: &str) {
        if self.clean_rows == 0 {
            self.clean.extend_from_slice(CLEAN_HEADER.as_bytes());
            self.clean.push(b'\n');
        }
        self.clean_rows += 1;
        write_line(&mut self.clean, line);
    }

    fn rejected(&mut self, row: &RejectedRow<'_>) {
        if self.rejected_rows == 0 {
            self.rejected.extend_from_slice(REJECTED_HEADER.as_bytes());
            self.rejected.push(b'\n');
        }
        self.rejected_rows += 1;
        write_rejected(&mut self.rejected, row);
    }
}

/// Appends the clean output line of `row`.
pub(crate) fn write_clean(out: &mut Vec<u8>, row: &CleanRow<'_>) {
    let values = [
        row.id.as_bytes(),
        row.name.as_bytes(),
        row.email.as_bytes(),
        row.create_ts.as_bytes(),
        row.update_ts.as_bytes(),
    ];
    // Optimistic: write the values unquoted, then look once at the whole line; the 4
    // separators must be its only special bytes, else rewrite it with quoting.
    let start = out.len();
    out.reserve(values.iter().map(|v| v.len()).sum::<usize>() + 5);
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(value);
    }
    if count_special(&out[start..]) != 4 {
        out.truncate(start);
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_value(out, value);
        }
    }
    out.push(b'\n');
}

/// Appends a line that is already a clean output line (see `RowSink::clean_verbatim`).
#[inline]
pub(crate) fn write_line(out: &mut Vec<u8>, line: &str) {
    out.reserve(line.len() + 1);
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

/// Appends the rejected output line of `row`.
pub(crate) fn write_rejected(out: &mut Vec<u8>, row: &RejectedRow<'_>) {
    write_u64(out, row.line);
    out.push(b',');
    row.reasons.write_codes(out);
    for value in row.original {
        out.push(b',');
        write_original(out, value, row.utf8);
    }
    out.push(b'\n');
}

/// How many bytes of `line` are `,` `"` `\r` or `\n`.
#[inline]
fn count_special(line: &[u8]) -> usize {
    // Branch-free, so it vectorizes; fixed-size blocks keep the per-block counter narrow.
    let mut n = 0usize;
    let mut blocks = line.chunks_exact(32);
    for block in &mut blocks {
        let hits: u8 = block
            .iter()
            .map(|&b| u8::from((b == b',') | (b == b'"') | (b == b'\r') | (b == b'\n')))
            .sum();
        n += usize::from(hits);
    }
    for &b in blocks.remainder() {
        n += usize::from((b == b',') | (b == b'"') | (b == b'\r') | (b == b'\n'));
    }
    n
}

/// True when a value holds a byte that needs quoting (`,` `"` `\r` `\n`), looked at 8 bytes
/// at a time (values are short; the tail is padded with zeros, which are not special).
#[inline]
fn has_special(value: &[u8]) -> bool {
    le_words(value).fold(0, |special, word| special | special_bytes(word)) != 0
}

/// `value` with invalid UTF-8 replaced by U+FFFD, as `String::from_utf8_lossy`; ASCII, the
/// usual case, is recognised without a UTF-8 pass.
#[inline]
pub(crate) fn lossy_utf8(value: &[u8]) -> Cow<'_, [u8]> {
    if value.is_ascii() || std::str::from_utf8(value).is_ok() {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(String::from_utf8_lossy(value).into_owned().into_bytes())
    }
}

/// True when valid UTF-8 `text` starts or ends with white space (`char::is_whitespace`).
fn has_edge_whitespace(text: &[u8]) -> bool {
    match (text.first(), text.last()) {
        (Some(&first), Some(&last)) if first.is_ascii() && last.is_ascii() => {
            char::from(first).is_whitespace() || char::from(last).is_whitespace()
        }
        (Some(_), Some(_)) => std::str::from_utf8(text)
            .is_ok_and(|t| t.starts_with(char::is_whitespace) || t.ends_with(char::is_whitespace)),
        _ => false,
    }
}

fn write_quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    for part in value.split_inclusive(|&b| b == b'"') {
        out.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

/// Writes a cleaned value, quoted only when it holds `,` `"` `\r` `\n`.
#[inline]
fn write_value(out: &mut Vec<u8>, value: &[u8]) {
    if has_special(value) {
        write_quoted(out, value);
    } else {
        out.extend_from_slice(value);
    }
}

/// An original value as the outputs write it: as it is when it is known to be valid UTF-8
/// (`RejectedRow::utf8`), else as lossy UTF-8. The CSV and the Parquet output both use this.
#[inline]
pub(crate) fn original_text(value: &[u8], utf8: bool) -> Cow<'_, [u8]> {
    if utf8 {
        Cow::Borrowed(value)
    } else {
        lossy_utf8(value)
    }
}

/// Writes an original value: lossy UTF-8 (unless known to be valid: `utf8`), quoted also when
/// it starts or ends with white space.
fn write_original(out: &mut Vec<u8>, value: &[u8], utf8: bool) {
    let text = original_text(value, utf8);
    if has_special(&text) || has_edge_whitespace(&text) {
        write_quoted(out, &text);
    } else {
        out.extend_from_slice(&text);
    }
}

fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A clean output row read back (owned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedCleanRow {
    /// Line of the row in the clean output file.
    pub line: u64,
    pub id: String,
    pub name: String,
    pub email: String,
    pub create_ts: String,
    pub update_ts: String,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A rejected output row read back (owned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRejectedRow {
    /// Line of the record in the source file.
    pub line: u64,
    pub reasons: ReasonSet,
    /// The original values of the required columns, in `header::REQUIRED` order.
    pub original: [String; 5],
}

/// Why an output file does not read back as this pipeline writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputError {
    /// The first line is not the expected header.
    Header { expected: &'static str },
    /// A row of a clean output fails validation.
    NotClean { line: u64, reasons: ReasonSet },
    /// A row of a rejected output cannot be read (field count, line number, reasons, UTF-8).
    BadRow { line: u64, problem: String },
    /// The file parses but differs from what the writer produces for the same rows.
    NotCanonical { line: u64 },
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::Header { expected } => {
                write!(f, "output does not start with the header `{expected}`")
            }
            OutputError::NotClean { line, reasons } => {
                write!(f, "line {line} of the clean output is not clean: {reasons}")
            }
            OutputError::BadRow { line, problem } => {
                write!(f, "line {line} of the rejected output: {problem}")
            }
            OutputError::NotCanonical { line } => {
                write!(
                    f,
                    "line {line} of the output is not written the way the pipeline writes it"
                )
            }
        }
    }
}

impl std::error::Error for OutputError {}

/// Checks that `header` (with its `\n`) starts a non-empty `data`.
fn check_header(data: &[u8], header: &'static str) -> Result<(), OutputError> {
    let ok = data.len() > header.len()
        && data.starts_with(header.as_bytes())
        && data[header.len()] == b'\n';
    if ok {
        Ok(())
    } else {
        Err(OutputError::Header { expected: header })
    }
}

/// Line of the first byte where `written` and `data` differ, if they do.
fn first_difference(written: &[u8], data: &[u8]) -> Option<u64> {
    if written == data {
        return None;
    }
    let at = written
        .iter()
        .zip(data)
        .position(|(a, b)| a != b)
        .unwrap_or(written.len().min(data.len()));
    Some(1 + memchr::memchr_iter(b'\n', &data[..at]).count() as u64)
}

/// Reads back a `_cleaned.csv` output: the exact header, then rows that the processor finds
/// clean, written exactly as `CsvOutputs` writes them. An empty file has no rows.
pub fn parse_clean_csv(data: &[u8]) -> Result<Vec<OwnedCleanRow>, OutputError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    check_header(data, CLEAN_HEADER)?;

    struct Collect {
        rows: Vec<OwnedCleanRow>,
        first_rejected: Option<(u64, ReasonSet)>,
        rewritten: CsvOutputs,
    }
    impl RowSink for Collect {
        fn clean(&mut self, row: &CleanRow<'_>) {
            self.rewritten.clean(row);
            self.rows.push(OwnedCleanRow {
                line: row.line,
                id: row.id.to_owned(),
                name: row.name.to_owned(),
                email: row.email.clone().into_owned(),
                create_ts: row.create_ts.to_owned(),
                update_ts: row.update_ts.to_owned(),
                created: row.created,
                updated: row.updated,
            });
        }
        fn rejected(&mut self, row: &RejectedRow<'_>) {
            if self.first_rejected.is_none() {
                self.first_rejected = Some((row.line, row.reasons));
            }
        }
    }
    let mut sink = Collect {
        rows: Vec::new(),
        first_rejected: None,
        rewritten: CsvOutputs::new(),
    };
    let mut processor = Processor::new();
    processor.feed(data, &mut sink);
    processor.finish(&mut sink);
    if let Some((line, reasons)) = sink.first_rejected {
        return Err(OutputError::NotClean { line, reasons });
    }
    let mut written = sink.rewritten.clean;
    if written.is_empty() {
        // Header only: what a writer with no rows would never produce, but harmless.
        written.extend_from_slice(CLEAN_HEADER.as_bytes());
        written.push(b'\n');
    }
    if let Some(line) = first_difference(&written, data) {
        return Err(OutputError::NotCanonical { line });
    }
    Ok(sink.rows)
}

/// Reads back a `_rejected.csv` output: the exact header, then rows of a source line number,
/// a non-empty `;`-list of reason codes and the five original values, written exactly as
/// `CsvOutputs` writes them. An empty file has no rows.
pub fn parse_rejected_csv(data: &[u8]) -> Result<Vec<OwnedRejectedRow>, OutputError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    check_header(data, REJECTED_HEADER)?;

    let mut rows = Vec::new();
    let mut error = None;
    let mut header_seen = false;
    let mut take = |record: Record<'_>| {
        if error.is_some() {
            return;
        }
        if !header_seen {
            header_seen = true;
            return;
        }
        match read_rejected(record.line, record.fields.iter()) {
            Ok(row) => rows.push(row),
            Err(e) => error = Some(e),
        }
    };
    let mut splitter = RecordSplitter::new();
    splitter.feed(data, &mut take);
    splitter.finish(&mut take);
    if let Some(e) = error {
        return Err(e);
    }

    let mut rewritten = CsvOutputs::new();
    for row in &rows {
        let original = [0, 1, 2, 3, 4].map(|i| row.original[i].as_bytes());
        rewritten.rejected(&RejectedRow {
            line: row.line,
            reasons: row.reasons,
            original,
            utf8: true,
        });
    }
    let mut written = rewritten.rejected;
    if written.is_empty() {
        written.extend_from_slice(REJECTED_HEADER.as_bytes());
        written.push(b'\n');
    }
    if let Some(line) = first_difference(&written, data) {
        return Err(OutputError::NotCanonical { line });
    }
    Ok(rows)
}

fn read_rejected<'a>(
    line: u64,
    mut fields: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Result<OwnedRejectedRow, OutputError> {
    let bad = |problem: String| OutputError::BadRow { line, problem };
    if fields.len() != 7 {
        return Err(bad(format!("expected 7 fields, found {}", fields.len())));
    }
    let mut text = || -> Result<&'a str, OutputError> {
        let field = fields.next().unwrap_or_default();
        std::str::from_utf8(field).map_err(|_| bad("a value is not valid utf-8".into()))
    };
    let source_line = text()?;
    let source_line: u64 = match source_line.parse() {
        Ok(n) if n > 0 && source_line.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return Err(bad(format!("bad line number `{source_line}`"))),
    };
    let reasons: ReasonSet = text()?.parse().map_err(|e| bad(format!("{e}")))?;
    let original = [text()?, text()?, text()?, text()?, text()?].map(str::to_owned);
    Ok(OwnedRejectedRow {
        line: source_line,
        reasons,
        original,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reason::Reason;

    #[test]
    fn has_special_finds_every_special_byte_at_every_place() {
        let reference = |v: &[u8]| v.iter().any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
        for len in 0..40 {
            let plain = vec![b'a'; len];
            assert!(!has_special(&plain), "{len} plain bytes");
            // Bytes one off the special ones, and the high half, must not count.
            for near in [
                b'+', b'-', b'!', b'#', b'\x0c', b'\x0e', b'\t', b'\x0b', 0xac, 0xa2, 0x8d, 0x8a, 0,
            ] {
                let mut v = plain.clone();
                if len > 0 {
                    v[len / 2] = near;
                }
                assert_eq!(has_special(&v), reference(&v), "{v:?}");
            }
            for at in 0..len {
                for special in [b',', b'"', b'\r', b'\n'] {
                    let mut v = plain.clone();
                    v[at] = special;
                    assert!(has_special(&v), "{special} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn originals_are_lossy_utf8_quoted_at_edge_white_space() {
        // (value, what the rejected CSV holds): `char::is_whitespace` decides, so vertical
        // tab and no-break space count though `u8::is_ascii_whitespace` leaves the first out.
        let cases: [(&[u8], &str); 10] = [
            (b"plain", "plain"),
            (b"", ""),
            (b" lead", "\" lead\""),
            (b"trail\t", "\"trail\t\""),
            (b"\x0bvt", "\"\x0bvt\""),
            ("\u{a0}nbsp".as_bytes(), "\"\u{a0}nbsp\""),
            ("ideographic\u{3000}".as_bytes(), "\"ideographic\u{3000}\""),
            ("caf\u{e9}".as_bytes(), "caf\u{e9}"),
            (b"bad \xff byte", "bad \u{fffd} byte"),
            (b"\xc3", "\u{fffd}"),
        ];
        for (value, want) in cases {
            let mut out = Vec::new();
            write_original(&mut out, value, false);
            assert_eq!(String::from_utf8_lossy(&out), want, "{value:?}");
            // Known to be UTF-8 (validated with the record): the same line without looking.
            if std::str::from_utf8(value).is_ok() {
                let mut known = Vec::new();
                write_original(&mut known, value, true);
                assert_eq!(known, out, "{value:?}");
            }
        }
    }

    fn clean_row<'a>(id: &'a str, name: &'a str) -> CleanRow<'a> {
        let t = Timestamp::from_unix(0, 0).unwrap_or_else(|| panic!("epoch is in range"));
        CleanRow {
            line: 2,
            id,
            name,
            email: Cow::Borrowed("a@x.io"),
            create_ts: "1970-01-01T00:00:00",
            update_ts: "1970-01-01T00:00:00",
            created: t,
            updated: t,
        }
    }

    #[test]
    fn clean_rows_quote_only_when_needed() {
        let mut out = CsvOutputs::new();
        out.clean(&clean_row("1", "Plain Name"));
        out.clean(&clean_row("2", "Doe, \"Jo\""));
        out.clean(&clean_row("3", "two\nlines"));
        assert_eq!(
            String::from_utf8_lossy(&out.clean),
            "id,name,email,create_ts,update_ts\n\
             1,Plain Name,a@x.io,1970-01-01T00:00:00,1970-01-01T00:00:00\n\
             2,\"Doe, \"\"Jo\"\"\",a@x.io,1970-01-01T00:00:00,1970-01-01T00:00:00\n\
             3,\"two\nlines\",a@x.io,1970-01-01T00:00:00,1970-01-01T00:00:00\n"
        );
        assert!(out.rejected.is_empty());
        out.clean.clear();
        out.clean(&clean_row("4", "n"));
        assert!(out.clean.starts_with(b"4,"), "the header is written once");
        assert_eq!(out.clean_rows, 4);
    }

    #[test]
    fn rejected_rows_keep_originals_readable() {
        let mut out = CsvOutputs::new();
        out.rejected(&RejectedRow {
            line: 12,
            reasons: ReasonSet::single(Reason::MissingId).with(Reason::InvalidEmail),
            original: [b"", b" x ", b"a,b", b"bad\xff", b"\r"],
            utf8: false,
        });
        assert_eq!(
            String::from_utf8_lossy(&out.rejected),
            "line,reasons,id,name,email,create_ts,update_ts\n\
             12,missing_id;invalid_email,,\" x \",\"a,b\",bad\u{fffd},\"\r\"\n"
        );
        let back = parse_rejected_csv(&out.rejected).expect("reads back");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].line, 12);
        assert_eq!(back[0].original[1], " x ");
        assert_eq!(back[0].original[3], "bad\u{fffd}");
        assert_eq!(back[0].original[4], "\r");
    }

    #[test]
    fn originals_with_unicode_edge_white_space_are_quoted() {
        let mut out = CsvOutputs::new();
        out.rejected(&RejectedRow {
            line: 2,
            reasons: ReasonSet::single(Reason::MissingName),
            original: [b"\tx", "y\u{a0}".as_bytes(), b"", b"a b", b"\xff "],
            utf8: false,
        });
        assert_eq!(
            String::from_utf8_lossy(&out.rejected),
            "line,reasons,id,name,email,create_ts,update_ts\n\
             2,missing_name,\"\tx\",\"y\u{a0}\",,a b,\"\u{fffd} \"\n"
        );
    }

    #[test]
    fn clean_parser_revalidates_and_insists_on_the_written_form() {
        let good = "id,name,email,create_ts,update_ts\n1,n,a@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n";
        let rows = parse_clean_csv(good.as_bytes()).expect("clean output");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].email, "a@x.io");
        assert_eq!(parse_clean_csv(b""), Ok(vec![]));

        let dirty = good.replace("a@x.io", "nope");
        assert_eq!(
            parse_clean_csv(dirty.as_bytes()),
            Err(OutputError::NotClean {
                line: 2,
                reasons: ReasonSet::single(Reason::InvalidEmail)
            })
        );
        let untrimmed = good.replace("1,n", "1, n");
        assert_eq!(
            parse_clean_csv(untrimmed.as_bytes()),
            Err(OutputError::NotCanonical { line: 2 })
        );
        let upper = good.replace("a@x.io", "A@x.io");
        assert_eq!(
            parse_clean_csv(upper.as_bytes()),
            Err(OutputError::NotCanonical { line: 2 })
        );
        let reordered = good.replace("id,name", "name,id");
        assert!(matches!(
            parse_clean_csv(reordered.as_bytes()),
            Err(OutputError::Header { .. })
        ));
        let crlf = good.replace('\n', "\r\n");
        assert!(parse_clean_csv(crlf.as_bytes()).is_err());
    }

    #[test]
    fn rejected_parser_checks_every_field() {
        let h = "line,reasons,id,name,email,create_ts,update_ts\n";
        let bad_reason = format!("{h}3,bogus,,,,,\n");
        assert!(matches!(
            parse_rejected_csv(bad_reason.as_bytes()),
            Err(OutputError::BadRow { line: 2, .. })
        ));
        let few = format!("{h}3,missing_id,,,,\n");
        assert!(matches!(
            parse_rejected_csv(few.as_bytes()),
            Err(OutputError::BadRow { .. })
        ));
        let zero = format!("{h}0,missing_id,,,,,\n");
        assert!(matches!(
            parse_rejected_csv(zero.as_bytes()),
            Err(OutputError::BadRow { .. })
        ));
        let plus = format!("{h}+3,missing_id,,,,,\n");
        assert!(matches!(
            parse_rejected_csv(plus.as_bytes()),
            Err(OutputError::BadRow { .. })
        ));
        let quoted_plain = format!("{h}3,missing_id,\"x\",,,,\n");
        assert_eq!(
            parse_rejected_csv(quoted_plain.as_bytes()),
            Err(OutputError::NotCanonical { line: 2 })
        );
        let ok = format!("{h}3,missing_id;invalid_email,,n,x,t,u\n");
        let rows = parse_rejected_csv(ok.as_bytes()).expect("valid");
        assert_eq!(rows[0].reasons.len(), 2);
        assert_eq!(rows[0].original, ["", "n", "x", "t", "u"].map(String::from));
    }
}
