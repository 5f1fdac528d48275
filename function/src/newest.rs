//! Newest version wins: which source version the outputs at a key may come from, decided from
//! the source stamp every output carries in its user metadata. Pure; the handler does the I/O.
//!
//! S3 delivers events at least once and in any order, and two versions of one key can be
//! processed at the same time. Every output object carries the identity of the source version
//! it was made from (a [`Stamp`]); before writing an output, the handler reads the stamp of
//! the object there and [`judge`]s. The write itself is conditional (`If-None-Match: *` when
//! the key was empty, `If-Match` on the ETag that was judged), so a racing invocation that
//! changed the object in between makes the write fail with `PreconditionFailed`; the handler
//! then reads and judges again. An older version therefore never overwrites a newer one.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::store::ObjectInfo;

/// An S3 event's `sequencer`: hexadecimal, comparable between events of the same key once
/// left-padded to equal length (S3's documented rule). Stored upper-case without leading zeros.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sequencer(String);

impl Sequencer {
    /// `None` unless `text` is a non-empty run of hex digits.
    pub fn parse(text: &str) -> Option<Sequencer> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let digits = text.trim_start_matches('0').to_ascii_uppercase();
        Some(Sequencer(if digits.is_empty() {
            "0".to_owned()
        } else {
            digits
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for Sequencer {
    /// Left-padding to equal length and comparing as text is comparing the numbers: without
    /// leading zeros, the longer is the larger, and equal lengths compare digit by digit.
    fn cmp(&self, other: &Sequencer) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Sequencer {
    fn partial_cmp(&self, other: &Sequencer) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Sequencer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// User-metadata names of a stamp (`x-amz-meta-…`).
pub mod meta {
    /// A digest of `bucket/key` of the source (keys can be 1,024 bytes; metadata only 2 KB).
    pub const SOURCE: &str = "csv-ingest-source";
    pub const VERSION_ID: &str = "csv-ingest-source-version-id";
    pub const ETAG: &str = "csv-ingest-source-etag";
    pub const SEQUENCER: &str = "csv-ingest-source-sequencer";
}

/// Which source version an output was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// [`source_digest`] of the source's bucket and key.
    pub source: String,
    pub version_id: Option<String>,
    /// The source's ETag without quotes, when known.
    pub e_tag: Option<String>,
    /// `None` for a record that did not come from S3 (`deployer reprocess`, a hand-made test
    /// event): such a record has no place in S3's order.
    pub sequencer: Option<Sequencer>,
}

/// A short, stable digest of `bucket/key` (SHA-256, first 16 bytes as hex).
pub fn source_digest(bucket: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(bucket.as_bytes());
    hasher.update(b"/");
    hasher.update(key.as_bytes());
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An ETag without its quotes.
pub fn bare_etag(e_tag: &str) -> &str {
    e_tag.trim().trim_matches('"')
}

impl Stamp {
    /// The user metadata that carries this stamp.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([(meta::SOURCE.to_owned(), self.source.clone())]);
        if let Some(v) = &self.version_id {
            m.insert(meta::VERSION_ID.to_owned(), v.clone());
        }
        if let Some(e) = &self.e_tag {
            m.insert(meta::ETAG.to_owned(), e.clone());
        }
        if let Some(s) = &self.sequencer {
            m.insert(meta::SEQUENCER.to_owned(), s.as_str().to_owned());
        }
        m
    }

    /// The stamp in an object's metadata; `None` when it has none (written before stamps, or
    /// by someone else).
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Option<Stamp> {
        let source = metadata.get(meta::SOURCE)?.clone();
        let non_empty = |name: &str| metadata.get(name).filter(|v| !v.is_empty()).cloned();
        Some(Stamp {
            source,
            version_id: non_empty(meta::VERSION_ID),
            e_tag: non_empty(meta::ETAG).map(|e| bare_etag(&e).to_owned()),
            sequencer: metadata
                .get(meta::SEQUENCER)
                .and_then(|s| Sequencer::parse(s)),
        })
    }

    /// Whether both stamps name the same source version (or, without versions, the same
    /// bytes: equal ETags make equal outputs).
    pub fn same_version(&self, other: &Stamp) -> bool {
        match (&self.version_id, &other.version_id) {
            (Some(a), Some(b)) if a == b => true,
            _ => matches!((&self.e_tag, &other.e_tag), (Some(a), Some(b)) if a == b),
        }
    }

    /// Whether `current` (the source object as it is now) is the version this stamp names.
    pub fn is_version(&self, current: &ObjectInfo) -> bool {
        match (&self.version_id, &current.version_id) {
            (Some(a), Some(b)) => a == b,
            _ => self
                .e_tag
                .as_deref()
                .is_some_and(|e| e == bare_etag(&current.e_tag)),
        }
    }
}

/// What to do about one output key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing newer is there: write (conditionally on what was read).
    Write,
    /// The object there comes from a newer version of the source: leave it.
    Superseded,
    /// The two cannot be ordered by sequencer (one of them has none): the version that is
    /// current in the source bucket is the newest, so ask whether ours is.
    AskCurrent,
}

/// Whether outputs of the version `ours` may replace an object stamped `theirs`.
///
/// - nothing there, or an object without a stamp: write;
/// - made from another source key (`a.csv` and `a` share outputs): the later write wins, as
///   before stamps existed;
/// - the same version: a replay (a duplicate event, `reprocess`, a retry), which rewrites it;
/// - both ordered by S3: the larger sequencer wins;
/// - otherwise: [`Verdict::AskCurrent`].
pub fn judge(ours: &Stamp, theirs: Option<&Stamp>) -> Verdict {
    let Some(theirs) = theirs else {
        return Verdict::Write;
    };
    if theirs.source != ours.source || ours.same_version(theirs) {
        return Verdict::Write;
    }
    match (&ours.sequencer, &theirs.sequencer) {
        (Some(a), Some(b)) => match a.cmp(b) {
            Ordering::Greater | Ordering::Equal => Verdict::Write,
            Ordering::Less => Verdict::Superseded,
        },
        _ => Verdict::AskCurrent,
    }
}

/// [`Verdict::AskCurrent`] answered: write only if `ours` is the source's current version
/// (`current` is `None` when the key no longer exists: nothing newer will come, write).
pub fn judge_by_current(ours: &Stamp, current: Option<&ObjectInfo>) -> Verdict {
    match current {
        Some(current) if !ours.is_version(current) => Verdict::Superseded,
        _ => Verdict::Write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> Sequencer {
        Sequencer::parse(s).unwrap_or_else(|| panic!("bad sequencer {s}"))
    }

    #[test]
    fn sequencers_compare_after_left_padding() {
        let cases = [
            ("0055AED6DCD90281E5", "0055AED6DCD90281E6", Ordering::Less),
            ("55AED6DCD90281E5", "0055AED6DCD90281E5", Ordering::Equal),
            ("FF", "100", Ordering::Less),
            ("00ff", "FE", Ordering::Greater),
            ("0", "000", Ordering::Equal),
            ("1", "0", Ordering::Greater),
            ("0A", "9", Ordering::Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(seq(a).cmp(&seq(b)), want, "{a} vs {b}");
            assert_eq!(seq(b).cmp(&seq(a)), want.reverse(), "{b} vs {a}");
        }
        for bad in ["", " ", "xyz", "12G", "0x12"] {
            assert_eq!(Sequencer::parse(bad), None, "{bad:?}");
        }
    }

    fn stamp(version: Option<&str>, e_tag: &str, sequencer: Option<&str>) -> Stamp {
        Stamp {
            source: source_digest("in", "users.csv"),
            version_id: version.map(str::to_owned),
            e_tag: Some(e_tag.to_owned()),
            sequencer: sequencer.map(seq),
        }
    }

    #[test]
    fn stamps_survive_metadata_and_tolerate_missing_fields() {
        let s = stamp(Some("v1"), "abc", Some("00AB"));
        assert_eq!(Stamp::from_metadata(&s.to_metadata()), Some(s));
        let bare = stamp(None, "abc", None);
        assert_eq!(Stamp::from_metadata(&bare.to_metadata()), Some(bare));
        assert_eq!(Stamp::from_metadata(&BTreeMap::new()), None);
        let quoted = BTreeMap::from([
            (meta::SOURCE.to_owned(), "d".to_owned()),
            (meta::ETAG.to_owned(), "\"abc\"".to_owned()),
            (meta::SEQUENCER.to_owned(), "not hex".to_owned()),
        ]);
        let parsed = Stamp::from_metadata(&quoted).unwrap();
        assert_eq!(parsed.e_tag.as_deref(), Some("abc"));
        assert_eq!(parsed.sequencer, None);
    }

    /// Every case of the rule, as a table: (ours, theirs, verdict, why).
    #[test]
    fn the_newest_version_wins() {
        let other_key = Stamp {
            source: source_digest("in", "users"),
            ..stamp(Some("v9"), "zzz", Some("FF"))
        };
        let cases: Vec<(Stamp, Option<Stamp>, Verdict, &str)> = vec![
            (
                stamp(Some("v2"), "b", Some("02")),
                None,
                Verdict::Write,
                "nothing there",
            ),
            (
                stamp(Some("v2"), "b", Some("02")),
                Some(stamp(Some("v1"), "a", Some("01"))),
                Verdict::Write,
                "newer than what is there",
            ),
            (
                stamp(Some("v1"), "a", Some("01")),
                Some(stamp(Some("v2"), "b", Some("02"))),
                Verdict::Superseded,
                "a late event of an older version",
            ),
            (
                stamp(Some("v1"), "a", Some("0001")),
                Some(stamp(Some("v2"), "b", Some("2"))),
                Verdict::Superseded,
                "compared after padding",
            ),
            (
                stamp(Some("v2"), "b", Some("02")),
                Some(stamp(Some("v2"), "b", Some("02"))),
                Verdict::Write,
                "a duplicate of the same event",
            ),
            (
                stamp(Some("v2"), "b", None),
                Some(stamp(Some("v2"), "b", Some("02"))),
                Verdict::Write,
                "reprocess of the version the outputs came from: a replay",
            ),
            (
                stamp(None, "b", None),
                Some(stamp(None, "b", Some("02"))),
                Verdict::Write,
                "unversioned bucket, same ETag: same bytes",
            ),
            (
                stamp(Some("v3"), "c", None),
                Some(stamp(Some("v2"), "b", Some("02"))),
                Verdict::AskCurrent,
                "no sequencer to order a different version by",
            ),
            (
                stamp(Some("v3"), "c", Some("03")),
                Some(stamp(Some("v2"), "b", None)),
                Verdict::AskCurrent,
                "the outputs came from a record without a sequencer",
            ),
            (
                stamp(Some("v1"), "a", Some("01")),
                Some(other_key),
                Verdict::Write,
                "another source key with the same outputs: the later write wins",
            ),
        ];
        for (ours, theirs, want, why) in cases {
            assert_eq!(judge(&ours, theirs.as_ref()), want, "{why}");
        }
    }

    #[test]
    fn without_sequencers_the_current_version_wins() {
        let ours = stamp(Some("v3"), "c", None);
        let info = |version: Option<&str>, e_tag: &str| ObjectInfo {
            version_id: version.map(str::to_owned),
            e_tag: format!("\"{e_tag}\""),
            ..ObjectInfo::default()
        };
        assert_eq!(
            judge_by_current(&ours, Some(&info(Some("v3"), "c"))),
            Verdict::Write
        );
        assert_eq!(
            judge_by_current(&ours, Some(&info(Some("v4"), "d"))),
            Verdict::Superseded
        );
        assert_eq!(judge_by_current(&ours, None), Verdict::Write);
        let unversioned = stamp(None, "c", None);
        assert_eq!(
            judge_by_current(&unversioned, Some(&info(None, "c"))),
            Verdict::Write
        );
        assert_eq!(
            judge_by_current(&unversioned, Some(&info(None, "d"))),
            Verdict::Superseded
        );
    }
}
