//! Rejection reasons with their stable string codes, in SPEC order, and a compact set of them.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::{Serialize, Serializer, ser::SerializeMap};

/// Why a data record was rejected. The declaration order is the order of SPEC §2, which is
/// the order reasons are reported in (`a;b`).
///
/// `InvalidHeader` and `RecordTooLarge` are always the single reason of a row;
/// `RecordTooLarge` is an extension of SPEC §2 (see `record::MAX_RECORD_BYTES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    InvalidHeader,
    MalformedRow,
    RecordTooLarge,
    InvalidUtf8,
    MissingId,
    MissingName,
    InvalidEmail,
    InvalidCreateTs,
    InvalidUpdateTs,
    UpdateBeforeCreate,
}

impl Reason {
    /// Every reason, in report order.
    pub const ALL: [Reason; 10] = [
        Reason::InvalidHeader,
        Reason::MalformedRow,
        Reason::RecordTooLarge,
        Reason::InvalidUtf8,
        Reason::MissingId,
        Reason::MissingName,
        Reason::InvalidEmail,
        Reason::InvalidCreateTs,
        Reason::InvalidUpdateTs,
        Reason::UpdateBeforeCreate,
    ];

    /// The stable code written to outputs and summaries (`invalid_email`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Reason::InvalidHeader => "invalid_header",
            Reason::MalformedRow => "malformed_row",
            Reason::RecordTooLarge => "record_too_large",
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::MissingId => "missing_id",
            Reason::MissingName => "missing_name",
            Reason::InvalidEmail => "invalid_email",
            Reason::InvalidCreateTs => "invalid_create_ts",
            Reason::InvalidUpdateTs => "invalid_update_ts",
            Reason::UpdateBeforeCreate => "update_before_create",
        }
    }

    /// The reason whose `code()` is `code` (exact, case-sensitive).
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Position in report order (index into `Reason::ALL`).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A set of reasons, iterated in report order. `Display` joins the codes with `;`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReasonSet(u16);

impl ReasonSet {
    /// The empty set.
    pub const EMPTY: ReasonSet = ReasonSet(0);

    pub fn new() -> ReasonSet {
        ReasonSet(0)
    }

    /// The set holding only `reason`.
    pub fn single(reason: Reason) -> ReasonSet {
        ReasonSet(1 << reason.index())
    }

    pub fn insert(&mut self, reason: Reason) {
        self.0 |= 1 << reason.index();
    }

    /// Returns `self` with `reason` added.
    pub fn with(mut self, reason: Reason) -> ReasonSet {
        self.insert(reason);
        self
    }

    pub fn contains(self, reason: Reason) -> bool {
        self.0 & (1 << reason.index()) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The reasons of the set, in report order.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// Appends `a;b;...` to `out` without allocating.
    pub fn write_codes(self, out: &mut Vec<u8>) {
        let mut first = true;
        for reason in self.iter() {
            if !first {
                out.push(b';');
            }
            first = false;
            out.extend_from_slice(reason.code().as_bytes());
        }
    }
}

impl FromIterator<Reason> for ReasonSet {
    fn from_iter<I: IntoIterator<Item = Reason>>(iter: I) -> ReasonSet {
        let mut set = ReasonSet::new();
        for reason in iter {
            set.insert(reason);
        }
        set
    }
}

impl fmt::Display for ReasonSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for reason in self.iter() {
            if !first {
                f.write_str(";")?;
            }
            first = false;
            f.write_str(reason.code())?;
        }
        Ok(())
    }
}

/// A `reasons` text that is not a non-empty `;`-separated list of known codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseReasonError {
    /// The offending code (empty for an empty list or an empty item).
    pub code: String,
}

impl fmt::Display for ParseReasonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            f.write_str("empty reason code")
        } else {
            write!(f, "unknown reason code `{}`", self.code)
        }
    }
}

impl std::error::Error for ParseReasonError {}

impl FromStr for ReasonSet {
    type Err = ParseReasonError;

    /// Parses `a;b;...` (codes exactly as written by `Display`, any order). An empty text, an
    /// empty item or an unknown code is an error.
    fn from_str(text: &str) -> Result<ReasonSet, ParseReasonError> {
        let mut set = ReasonSet::new();
        for code in text.split(';') {
            match Reason::from_code(code) {
                Some(reason) => set.insert(reason),
                None => {
                    return Err(ParseReasonError {
                        code: code.to_owned(),
                    });
                }
            }
        }
        Ok(set)
    }
}

/// How many rejected rows carried each reason. Serializes as a JSON object of the non-zero
/// counts, keyed by code, in report order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReasonCounts([u64; Reason::ALL.len()]);

impl ReasonCounts {
    pub fn new() -> ReasonCounts {
        ReasonCounts::default()
    }

    /// Counts one row carrying `reasons` (once under each of its codes).
    pub fn add(&mut self, reasons: ReasonSet) {
        for reason in reasons.iter() {
            self.0[reason.index()] += 1;
        }
    }

    /// Adds `n` to the count of `reason`.
    pub fn add_n(&mut self, reason: Reason, n: u64) {
        self.0[reason.index()] += n;
    }

    pub fn get(&self, reason: Reason) -> u64 {
        self.0[reason.index()]
    }

    /// True when every count is zero.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&n| n == 0)
    }

    /// The non-zero counts, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL
            .into_iter()
            .map(|r| (r, self.0[r.index()]))
            .filter(|&(_, n)| n != 0)
    }
}

impl Serialize for ReasonCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.iter().count()))?;
        for (reason, n) in self.iter() {
            map.serialize_entry(reason.code(), &n)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ReasonCounts {
    /// Reads the object written by `Serialize`; unknown codes are an error, absent codes are zero.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ReasonCounts, D::Error> {
        struct CountsVisitor;

        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = ReasonCounts;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of reason code to count")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReasonCounts, A::Error> {
                let mut counts = ReasonCounts::new();
                while let Some((code, n)) = map.next_entry::<String, u64>()? {
                    let reason = Reason::from_code(&code).ok_or_else(|| {
                        de::Error::custom(format!("unknown reason code `{code}`"))
                    })?;
                    counts.add_n(reason, n);
                }
                Ok(counts)
            }
        }

        deserializer.deserialize_map(CountsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_in_spec_order() {
        let codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(
            codes,
            [
                "invalid_header",
                "malformed_row",
                "record_too_large",
                "invalid_utf8",
                "missing_id",
                "missing_name",
                "invalid_email",
                "invalid_create_ts",
                "invalid_update_ts",
                "update_before_create",
            ]
        );
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
            assert_eq!(Reason::ALL[r.index()], r);
        }
        assert_eq!(Reason::from_code("Invalid_Email"), None);
        assert_eq!(Reason::from_code(""), None);
    }

    #[test]
    fn set_iterates_in_report_order_and_displays_with_semicolons() {
        let set: ReasonSet = [
            Reason::UpdateBeforeCreate,
            Reason::MissingId,
            Reason::InvalidEmail,
        ]
        .into_iter()
        .collect();
        assert_eq!(
            set.to_string(),
            "missing_id;invalid_email;update_before_create"
        );
        assert_eq!(set.len(), 3);
        let mut buf = Vec::new();
        set.write_codes(&mut buf);
        assert_eq!(buf, b"missing_id;invalid_email;update_before_create");
        assert_eq!(ReasonSet::new().to_string(), "");
        assert!(ReasonSet::new().is_empty());
        assert!(set.contains(Reason::MissingId) && !set.contains(Reason::MissingName));
    }

    #[test]
    fn set_parses_from_codes() {
        let set: ReasonSet = "invalid_email;missing_id".parse().expect("valid codes");
        assert_eq!(
            set,
            ReasonSet::single(Reason::MissingId).with(Reason::InvalidEmail)
        );
        assert_eq!(
            "invalid_email;bogus".parse::<ReasonSet>(),
            Err(ParseReasonError {
                code: "bogus".into()
            })
        );
        assert!("".parse::<ReasonSet>().is_err());
        assert!("missing_id;".parse::<ReasonSet>().is_err());
        assert_eq!(
            "x".parse::<ReasonSet>().map_err(|e| e.to_string()),
            Err("unknown reason code `x`".to_string())
        );
    }

    #[test]
    fn counts_serialize_non_zero_in_report_order_and_read_back() {
        let mut counts = ReasonCounts::new();
        counts.add(ReasonSet::single(Reason::UpdateBeforeCreate).with(Reason::MissingId));
        counts.add(ReasonSet::single(Reason::MissingId));
        let json = serde_json::to_string(&counts).expect("serializes");
        assert_eq!(json, r#"{"missing_id":2,"update_before_create":1}"#);
        let back: ReasonCounts = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, counts);
        assert_eq!(
            serde_json::to_string(&ReasonCounts::new()).expect("serializes"),
            "{}"
        );
        assert!(serde_json::from_str::<ReasonCounts>(r#"{"nope":1}"#).is_err());
        assert_eq!(counts.get(Reason::MissingId), 2);
        assert_eq!(counts.iter().count(), 2);
    }
}
