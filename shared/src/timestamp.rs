//! The SPEC §2 timestamp grammar, parsed from bytes into an instant (naive means UTC).

/// An instant: seconds since the Unix epoch plus nanoseconds. Ordering is by instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_seconds: i64,
    nanos: u32,
}

impl Timestamp {
    /// Parses `YYYY-MM-DD[T| ]HH:MM:SS[.f{1,9}][Z|±HH:MM]` exactly as SPEC §2; `None` if invalid.
    pub fn parse(text: &[u8]) -> Option<Timestamp> {
        todo!("{text:?}")
    }

    /// `None` when `nanos >= 1_000_000_000` or the instant is outside years 0001..=9999.
    pub fn from_unix(unix_seconds: i64, nanos: u32) -> Option<Timestamp> {
        todo!("{unix_seconds} {nanos}")
    }

    pub fn unix_seconds(self) -> i64 {
        self.unix_seconds
    }

    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Microseconds since the epoch, truncated toward negative infinity.
    pub fn unix_micros(self) -> i64 {
        todo!()
    }

    /// The UTC civil date and hour: `(year, month, day, hour)`.
    pub fn utc_date_hour(self) -> (i32, u8, u8, u8) {
        todo!()
    }
}
