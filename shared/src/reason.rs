//! Rejection reasons with their stable string codes, in SPEC order, and a compact set of them.

use serde::{Serialize, Serializer, ser::SerializeMap};

/// Why a data record was rejected. The declaration order is the order of SPEC §2, which is
/// the order reasons are reported in (`a;b`).
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
        todo!()
    }

    pub fn from_code(code: &str) -> Option<Reason> {
        todo!("{code}")
    }
}

/// A set of reasons, iterated in report order. `Display` joins the codes with `;`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReasonSet(u16);

/// How many rejected rows carried each reason. Serializes as a JSON object of the non-zero
/// counts, keyed by code, in report order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReasonCounts([u64; Reason::ALL.len()]);

impl Serialize for ReasonCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let map = serializer.serialize_map(None)?;
        let _ = &self.0;
        todo!();
        #[allow(unreachable_code)]
        map.end()
    }
}
