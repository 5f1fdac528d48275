//! Validation of one data record against the SPEC §2 rules, yielding a clean or a rejected row.

use std::borrow::Cow;

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
}
