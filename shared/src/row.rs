//! Validation of one data record against the SPEC §2 rules, yielding a clean or a rejected row.

use std::borrow::Cow;

use crate::email::{inspect, is_valid_email};
use crate::header::ColumnMap;
use crate::reason::Reason;
use crate::record::Fields;
use crate::{ReasonSet, Timestamp};

/// A row that passed every rule, with its cleaned values (trimmed; email lowercased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanRow<'a> {
    /// 1-based physical line on which the record starts in the source file.
    pub line: u64,
    pub id: &'a str,
    pub name: &'a str,
    pub email: Cow<'a, str>,
    pub create_ts: &'a str,
    pub update_ts: &'a str,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// A row that failed at least one rule, with the original (untrimmed) bytes of the required
/// columns in `header::REQUIRED` order; a column the record does not have is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRow<'a> {
    pub line: u64,
    pub reasons: ReasonSet,
    pub original: [&'a [u8]; 5],
    /// Every original is known to be valid UTF-8 (the record passed the UTF-8 check), so the
    /// outputs write them as they are; false when that is not known (they are then written as
    /// lossy UTF-8).
    pub utf8: bool,
}

/// The verdict on one data record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// A clean row, with the record itself when it is already its clean output line (quote-free,
    /// exactly the required columns in order, nothing to trim or lowercase).
    Clean(CleanRow<'a>, Option<&'a str>),
    Rejected(RejectedRow<'a>),
}

/// Applies the SPEC §2 rules to the fields of one data record read under header `map`.
///
/// `lower` is scratch space for a lowercased email (reused across rows, so clean rows do not
/// allocate); the returned row may borrow from it.
#[inline(always)]
pub fn validate<'a>(
    line: u64,
    fields: &Fields<'a>,
    map: &ColumnMap,
    lower: &'a mut String,
) -> Verdict<'a> {
    let reject = |reasons, utf8| {
        let original = |col: usize| fields.get(map.index[col]).unwrap_or(b"");
        Verdict::Rejected(RejectedRow {
            line,
            reasons,
            utf8,
            original: [
                original(0),
                original(1),
                original(2),
                original(3),
                original(4),
            ],
        })
    };
    if fields.len() != map.width {
        return reject(ReasonSet::single(Reason::MalformedRow), false);
    }
    let Some(text) = fields.to_str() else {
        return reject(ReasonSet::single(Reason::InvalidUtf8), false);
    };
    let raw = |col: usize| text.get(map.index[col]).unwrap_or("");
    let untrimmed = [raw(0), raw(1), raw(2), raw(3), raw(4)];
    let [id, name, email, create_ts, update_ts] = untrimmed;
    let (id, name, email, create_ts, update_ts) = (
        trim(id),
        trim(name),
        trim(email),
        trim(create_ts),
        trim(update_ts),
    );

    let mut reasons = ReasonSet::new();
    if id.is_empty() {
        reasons.insert(Reason::MissingId);
    }
    if name.is_empty() {
        reasons.insert(Reason::MissingName);
    }
    let (email, lowered, email_ok) = lowercase_email(email, lower);
    if !email_ok {
        reasons.insert(Reason::InvalidEmail);
    }
    let created = Timestamp::parse(create_ts.as_bytes());
    let updated = Timestamp::parse(update_ts.as_bytes());
    if created.is_none() {
        reasons.insert(Reason::InvalidCreateTs);
    }
    if updated.is_none() {
        reasons.insert(Reason::InvalidUpdateTs);
    }
    if let (Some(created), Some(updated)) = (created, updated) {
        if updated < created {
            reasons.insert(Reason::UpdateBeforeCreate);
        } else if reasons.is_empty() {
            let unchanged = !lowered
                && id.len() + name.len() + email.len() + create_ts.len() + update_ts.len()
                    == untrimmed.iter().map(|v| v.len()).sum::<usize>();
            let verbatim = text
                .quote_free_record()
                .filter(|_| unchanged && map.is_canonical());
            return Verdict::Clean(
                CleanRow {
                    line,
                    id,
                    name,
                    email: Cow::Borrowed(email),
                    create_ts,
                    update_ts,
                    created,
                    updated,
                },
                verbatim,
            );
        }
    }
    reject(reasons, true)
}

/// `str::trim` (Unicode White_Space), skipping the work when both ends are printable ASCII.
#[inline]
fn trim(text: &str) -> &str {
    match text.as_bytes() {
        [first, .., last] if (0x21..0x7f).contains(first) && (0x21..0x7f).contains(last) => text,
        [only] if (0x21..0x7f).contains(only) => text,
        _ => text.trim(),
    }
}

/// The email lowercased as `str::to_lowercase` does (without allocating when it is ASCII),
/// whether lowercasing changed it, and whether it is valid (SPEC §2). One pass in the usual
/// case: validity does not depend on ASCII case.
fn lowercase_email<'a>(text: &'a str, scratch: &'a mut String) -> (&'a str, bool, bool) {
    let seen = inspect(text.as_bytes());
    if seen.non_ascii {
        // Full Unicode rules (final sigma, the Kelvin sign becoming `k`, ...), then check the
        // lowercased text.
        *scratch = text.to_lowercase();
        let valid = is_valid_email(scratch.as_bytes());
        return (scratch, true, valid);
    }
    if !seen.upper {
        return (text, false, seen.valid);
    }
    scratch.clear();
    scratch.push_str(text);
    scratch.make_ascii_lowercase();
    (scratch, true, seen.valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::FieldBuf;

    const MAP: ColumnMap = ColumnMap {
        index: [0, 1, 2, 3, 4],
        width: 5,
    };

    fn check(fields: &[&[u8]]) -> Result<String, String> {
        let raw = fields.join(&b","[..]);
        let mut fb = FieldBuf::new();
        let mut lower = String::new();
        match validate(7, &fb.split(&raw, false), &MAP, &mut lower) {
            Verdict::Clean(c, _) => Ok(format!(
                "{}|{}|{}|{}|{}",
                c.id, c.name, c.email, c.create_ts, c.update_ts
            )),
            Verdict::Rejected(r) => {
                assert_eq!(r.line, 7);
                Err(r.reasons.to_string())
            }
        }
    }

    const T1: &[u8] = b"2025-05-10T17:38:35";
    const T2: &[u8] = b"2025-05-12T15:27:35";

    /// SPEC §2: the 254-character limit counts characters of the trimmed, lowercased value.
    #[test]
    fn email_length_is_counted_in_characters_after_lowercasing() {
        let kelvin = "\u{212A}";
        let domain63 = format!("{}.{}.", "b".repeat(63), "c".repeat(63));
        let cases: Vec<(String, bool, &str)> = vec![
            (
                format!("{}@{}.com", kelvin.repeat(64), "d".repeat(60)),
                true,
                "257 bytes, 129 characters once the Kelvin signs are k",
            ),
            (
                format!("{kelvin}{}@{domain63}{}", "a".repeat(63), "d".repeat(61)),
                true,
                "256 bytes, 254 characters after lowercasing",
            ),
            (
                format!("{kelvin}{}@{domain63}{}", "a".repeat(63), "d".repeat(62)),
                false,
                "255 characters after lowercasing",
            ),
            (
                format!("{}@{domain63}{}", "a".repeat(64), "d".repeat(62)),
                false,
                "255 ASCII characters",
            ),
            (
                format!("{}@x.io", kelvin.repeat(65)),
                false,
                "65 characters of local part after lowercasing",
            ),
        ];
        for (email, clean, why) in cases {
            let got = check(&[b"1", b"n", email.as_bytes(), T1, T2]);
            assert_eq!(got.is_ok(), clean, "{why}: {email:?} gave {got:?}");
            if !clean {
                assert_eq!(got, Err("invalid_email".into()), "{why}");
            }
        }
    }

    #[test]
    fn clean_row_is_trimmed_and_lowercased() {
        assert_eq!(
            check(&[
                b" 1 ",
                b"\tLuke Sky ",
                b" A@Gmail.COM ",
                T1,
                b" 2025-05-12 15:27:35Z "
            ]),
            Ok("1|Luke Sky|a@gmail.com|2025-05-10T17:38:35|2025-05-12 15:27:35Z".into())
        );
        assert_eq!(
            check(&[b"1", b"n", "\u{212A}@x.io".as_bytes(), T1, T2]),
            Ok("1|n|k@x.io|2025-05-10T17:38:35|2025-05-12T15:27:35".into()),
            "the Kelvin sign lowercases to an ASCII k"
        );
        assert_eq!(
            check(&[b"1", b"n", "a@x.io\u{a0}".as_bytes(), T1, T1]),
            Ok("1|n|a@x.io|2025-05-10T17:38:35|2025-05-10T17:38:35".into()),
            "Unicode white space is trimmed; equal instants are fine"
        );
    }

    #[test]
    fn every_reason() {
        let e = |r: &str| Err(r.to_string());
        assert_eq!(check(&[b"1", b"n", b"a@x.io", T1]), e("malformed_row"));
        assert_eq!(
            check(&[b"1", b"n", b"a@x.io", T1, T2, b""]),
            e("malformed_row")
        );
        assert_eq!(
            check(&[b"1", b"\xff", b"a@x.io", T1, T2]),
            e("invalid_utf8")
        );
        assert_eq!(check(&[b"", b"n", b"a@x.io", T1, T2]), e("missing_id"));
        assert_eq!(check(&[b"1", b" ", b"a@x.io", T1, T2]), e("missing_name"));
        assert_eq!(check(&[b"1", b"n", b"c", T1, T2]), e("invalid_email"));
        assert_eq!(
            check(&[b"1", b"n", "é@x.io".as_bytes(), T1, T2]),
            e("invalid_email")
        );
        assert_eq!(
            check(&[b"1", b"n", b"a@x.io", b"2025-02-30T00:00:00", T2]),
            e("invalid_create_ts")
        );
        assert_eq!(
            check(&[b"1", b"n", b"a@x.io", T1, b"2025-05-12"]),
            e("invalid_update_ts")
        );
        assert_eq!(
            check(&[b"1", b"n", b"a@x.io", T2, T1]),
            e("update_before_create")
        );
        assert_eq!(
            check(&[
                b"1",
                b"n",
                b"a@x.io",
                b"2025-06-01T13:00:00+02:00",
                b"2025-06-01T12:00:00Z"
            ]),
            Ok("1|n|a@x.io|2025-06-01T13:00:00+02:00|2025-06-01T12:00:00Z".into()),
            "compared as instants: 11:00Z is before 12:00Z"
        );
        assert_eq!(
            check(&[
                b"1",
                b"n",
                b"a@x.io",
                b"2025-06-01T12:00:00Z",
                b"2025-06-01T13:00:00+02:00"
            ]),
            e("update_before_create")
        );
    }

    #[test]
    fn several_reasons_in_spec_order() {
        assert_eq!(
            check(&[b" ", b"", b"x@", b"nope", b""]),
            Err("missing_id;missing_name;invalid_email;invalid_create_ts;invalid_update_ts".into())
        );
        assert_eq!(
            check(&[b"", b"n", b"a@x.io", T2, T1]),
            Err("missing_id;update_before_create".into())
        );
    }

    #[test]
    fn originals_follow_the_header_map() {
        let map = ColumnMap {
            index: [2, 0, 4, 1, 3],
            width: 6,
        };
        let mut fb = FieldBuf::new();
        let mut lower = String::new();
        let v = validate(3, &fb.split(b" n ,t1,1,t2, e ,x", false), &map, &mut lower);
        let Verdict::Rejected(r) = v else {
            panic!("expected a rejected row, got {v:?}")
        };
        assert_eq!(r.original, [&b"1"[..], b" n ", b" e ", b"t1", b"t2"]);
        let v = validate(3, &fb.split(b"a,b,c", false), &map, &mut lower);
        let Verdict::Rejected(r) = v else {
            panic!("expected a rejected row, got {v:?}")
        };
        assert_eq!(r.reasons.to_string(), "malformed_row");
        assert_eq!(r.original, [&b"c"[..], b"a", b"", b"b", b""]);
    }

    #[test]
    fn originals_are_known_utf8_only_after_the_utf8_check() {
        let mut fb = FieldBuf::new();
        let mut lower = String::new();
        let cases: [(&[u8], &str, bool); 4] = [
            (
                b"1,n,bad,2025-01-01T00:00:00,2025-01-01T00:00:00",
                "invalid_email",
                true,
            ),
            (
                "1,n\u{e9},bad,x,y".as_bytes(),
                "invalid_email;invalid_create_ts;invalid_update_ts",
                true,
            ),
            (
                b"1,n\xff,a@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00",
                "invalid_utf8",
                false,
            ),
            (b"1,n,a@x.io", "malformed_row", false),
        ];
        for (record, reasons, utf8) in cases {
            let v = validate(2, &fb.split(record, false), &MAP, &mut lower);
            let Verdict::Rejected(r) = v else {
                panic!("expected a rejected row, got {v:?}")
            };
            let got = (r.reasons.to_string(), r.utf8);
            assert_eq!(got, (reasons.to_owned(), utf8), "{record:?}");
        }
    }
}
