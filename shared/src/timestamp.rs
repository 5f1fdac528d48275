//! The SPEC §2 timestamp grammar, parsed from bytes into an instant (naive means UTC).

/// An instant: seconds since the Unix epoch plus nanoseconds. Ordering is by instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_seconds: i64,
    nanos: u32,
}

/// Seconds from the epoch to 0001-01-01T00:00:00Z.
const MIN_UNIX: i64 = -62_135_596_800;
/// Seconds from the epoch to 9999-12-31T23:59:59Z.
const MAX_UNIX: i64 = 253_402_300_799;

impl Timestamp {
    /// Parses `YYYY-MM-DD[T| ]HH:MM:SS[.f{1,9}][Z|±HH:MM]` exactly as SPEC §2; `None` if invalid.
    ///
    /// The written local date-time must exist (year 0001–9999); the instant it denotes may fall
    /// just outside that range once the offset is applied (`0001-01-01T00:00:00+01:00`).
    pub fn parse(text: &[u8]) -> Option<Timestamp> {
        // Shortest valid form: `YYYY-MM-DDTHH:MM:SS` (19 bytes).
        let (t, rest) = text.split_first_chunk::<19>()?;
        let [p0, p1, p2] = fixed_part(t)?;
        // Byte `i` of a pair word is the two-digit number at bytes `i`, `i + 1` of its word.
        let byte = |w: u64, i: u32| ((w >> (8 * i)) & 0xFF) as u32;
        let year = byte(p0, 0) * 100 + byte(p0, 2);
        let month = byte(p0, 5);
        let day = byte(p1, 0);
        let hour = byte(p1, 3);
        let minute = byte(p1, 6);
        let second = byte(p2, 1);
        let in_range = (year != 0)
            & (month.wrapping_sub(1) < 12)
            & (day != 0)
            & (hour <= 23)
            & (minute <= 59)
            & (second <= 59);
        if !in_range || day > days_in_month(year, month) {
            return None;
        }

        let mut rest = rest;
        let mut nanos = 0u32;
        if let [b'.', after @ ..] = rest {
            let n = after
                .iter()
                .take(10)
                .take_while(|b| b.is_ascii_digit())
                .count();
            if n == 0 || n > 9 {
                return None;
            }
            for &b in &after[..n] {
                nanos = nanos * 10 + u32::from(b - b'0');
            }
            nanos *= POW10[9 - n];
            rest = &after[n..];
        }

        let offset_seconds: i64 = match rest {
            [] | [b'Z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let [oh1, oh2, om1, om2] = [*h1, *h2, *m1, *m2].map(|b| b.wrapping_sub(b'0'));
                if oh1 > 9 || oh2 > 9 || om1 > 9 || om2 > 9 {
                    return None;
                }
                let (oh, om) = (oh1 * 10 + oh2, om1 * 10 + om2);
                if oh > 23 || om > 59 {
                    return None;
                }
                let magnitude = i64::from(oh) * 3600 + i64::from(om) * 60;
                if *sign == b'-' { -magnitude } else { magnitude }
            }
            _ => return None,
        };

        let days = days_from_civil(year, month, day);
        let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
        Some(Timestamp {
            unix_seconds: local - offset_seconds,
            nanos,
        })
    }

    /// `None` when `nanos >= 1_000_000_000` or the instant is outside years 0001..=9999.
    pub fn from_unix(unix_seconds: i64, nanos: u32) -> Option<Timestamp> {
        if nanos >= 1_000_000_000 || !(MIN_UNIX..=MAX_UNIX).contains(&unix_seconds) {
            return None;
        }
        Some(Timestamp {
            unix_seconds,
            nanos,
        })
    }

    pub fn unix_seconds(self) -> i64 {
        self.unix_seconds
    }

    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Microseconds since the epoch, truncated toward negative infinity.
    pub fn unix_micros(self) -> i64 {
        self.unix_seconds * 1_000_000 + i64::from(self.nanos / 1000)
    }

    /// The instant in UTC as `YYYY-MM-DDTHH:MM:SS.mmmZ` (milliseconds, truncated), the form
    /// S3 writes `eventTime` in.
    pub fn to_rfc3339_millis(self) -> String {
        let (year, month, day, hour) = self.utc_date_hour();
        let secs = self.unix_seconds.rem_euclid(86_400);
        format!(
            "{year:04}-{month:02}-{day:02}T{hour:02}:{:02}:{:02}.{:03}Z",
            (secs / 60) % 60,
            secs % 60,
            self.nanos / 1_000_000
        )
    }

    /// The UTC civil date and hour: `(year, month, day, hour)`.
    pub fn utc_date_hour(self) -> (i32, u8, u8, u8) {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs = self.unix_seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // Years of a parsed timestamp are within 0000..=10000, so the narrowing is exact.
        (year as i32, month, day, (secs / 3600) as u8)
    }
}

const ZEROS: u64 = 0x3030_3030_3030_3030;
const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
const SIXES: u64 = 0x0606_0606_0606_0606;

/// True when every byte of `w` is an ASCII digit: the high nibble is 3 and adding 6 does not
/// carry out of the low nibble (so it is at most 9). No carry crosses a byte.
#[inline(always)]
fn all_digits(w: u64) -> bool {
    (w & HIGH_NIBBLES) == ZEROS && ((w + SIXES) & HIGH_NIBBLES) == ZEROS
}

/// `YYYY-MM-DD?HH:MM:SS` with ASCII digits and `?` being `T` or a space, checked 8 bytes at a
/// time: separator bytes are compared, then replaced by `0` so the rest is a digits check.
/// Returns the three words (`YYYY-MM-`, `DD?HH:MM`, `:SS` padded) as digit pairs: byte `i` of
/// each is `10 × digit i + digit i + 1` (meaningful where a number starts).
#[inline(always)]
fn fixed_part(t: &[u8; 19]) -> Option<[u64; 3]> {
    let word = |i: usize| {
        u64::from_le_bytes([
            t[i],
            t[i + 1],
            t[i + 2],
            t[i + 3],
            t[i + 4],
            t[i + 5],
            t[i + 6],
            t[i + 7],
        ])
    };
    // Little-endian: byte i of a word is bits 8i..8i+8.
    let (w0, w1) = (word(0), word(8)); // `YYYY-MM-`, `DD?HH:MM`
    let w2 = u64::from_le_bytes([t[16], t[17], t[18], b'0', b'0', b'0', b'0', b'0']); // `:SS`
    const SEP0: u64 = 0xFF00_00FF_0000_0000; // bytes 4 and 7
    const SEP1: u64 = 0x0000_FF00_00FF_0000; // bytes 2 and 5
    const SEP2: u64 = 0x0000_0000_0000_00FF; // byte 0
    let date_sep = (w0 & SEP0) == 0x2D00_002D_0000_0000; // `-` `-`
    let t_or_space = (t[10] == b'T') | (t[10] == b' ');
    let colons = (t[13] == b':') & (w2 & SEP2 == 0x3A);
    let digits = [
        (w0 & !SEP0) | (ZEROS & SEP0),
        (w1 & !SEP1) | (ZEROS & SEP1),
        (w2 & !SEP2) | (ZEROS & SEP2),
    ];
    let ok = date_sep
        & t_or_space
        & colons
        & all_digits(digits[0])
        & all_digits(digits[1])
        & all_digits(digits[2]);
    // Digit values (0..=9 per byte), then pairs: at most 9 × 10 + 9 per byte, so no carry.
    ok.then(|| {
        digits.map(|w| {
            let v = w - ZEROS;
            v * 10 + (v >> 8)
        })
    })
}

const POW10: [u32; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

#[inline(always)]
fn is_leap(year: u32) -> bool {
    (year & 3 == 0) & (!year.is_multiple_of(100) | year.is_multiple_of(400))
}

#[inline(always)]
fn days_in_month(year: u32, month: u32) -> u32 {
    const DAYS: [u32; 13] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    DAYS[month as usize % 13] + u32::from((month == 2) & is_leap(year))
}

/// Days since 1970-01-01 of a proleptic Gregorian date, year 1..=9999, month 1..=12. The
/// divisions are independent of each other, so they overlap in the pipeline.
#[inline(always)]
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    /// Days in the months before each month of a common year.
    const BEFORE: [u32; 13] = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let y = year - 1;
    let before_year = 365 * y + y / 4 - y / 100 + y / 400;
    let leap_day = u32::from((month > 2) & is_leap(year));
    let before_day = BEFORE[month as usize % 13] + leap_day + day - 1;
    // 719_162 days from 0001-01-01 to 1970-01-01.
    i64::from(before_year + before_day) - 719_162
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (inverse of `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Option<Timestamp> {
        Timestamp::parse(text.as_bytes())
    }

    fn secs(text: &str) -> i64 {
        ts(text).map(Timestamp::unix_seconds).unwrap_or(i64::MIN)
    }

    #[test]
    fn accepts_the_grammar() {
        assert_eq!(secs("1970-01-01T00:00:00"), 0);
        assert_eq!(secs("2025-05-10T17:38:35"), 1_746_898_715);
        assert_eq!(secs("2025-05-10 17:38:35"), 1_746_898_715);
        assert_eq!(secs("2025-05-10T17:38:35Z"), 1_746_898_715);
        assert_eq!(secs("2025-05-10T19:38:35+02:00"), 1_746_898_715);
        assert_eq!(secs("2025-05-10T15:08:35-02:30"), 1_746_898_715);
        assert_eq!(secs("2025-05-10T17:38:35-00:00"), 1_746_898_715);
        assert_eq!(
            secs("2025-05-10T17:38:35+23:59"),
            1_746_898_715 - 23 * 3600 - 59 * 60
        );
        assert_eq!(secs("0001-01-01T00:00:00"), MIN_UNIX);
        assert_eq!(secs("9999-12-31T23:59:59Z"), MAX_UNIX);
        assert_eq!(secs("1969-12-31T23:59:59"), -1);
    }

    #[test]
    fn fractions_have_one_to_nine_digits() {
        let nanos = |t: &str| ts(t).map(Timestamp::subsec_nanos);
        assert_eq!(nanos("2025-01-01T00:00:00.5"), Some(500_000_000));
        assert_eq!(nanos("2025-01-01T00:00:00.12"), Some(120_000_000));
        assert_eq!(nanos("2025-01-01T00:00:00.123456"), Some(123_456_000));
        assert_eq!(nanos("2025-01-01T00:00:00.123456789"), Some(123_456_789));
        assert_eq!(nanos("2025-01-01T00:00:00.123456789Z"), Some(123_456_789));
        assert_eq!(nanos("2025-01-01T00:00:00.1+01:00"), Some(100_000_000));
        assert_eq!(nanos("2025-01-01T00:00:00.1234567890"), None);
        assert_eq!(nanos("2025-01-01T00:00:00."), None);
        assert_eq!(nanos("2025-01-01T00:00:00.Z"), None);
        assert_eq!(nanos("2025-01-01T00:00:00,5"), None);
    }

    #[test]
    fn rejects_what_the_grammar_excludes() {
        for bad in [
            "",
            "2025-05-10",
            "2025-05-10T17:38",
            "2025-05-10t17:38:35",
            "2025-05-10T17:38:35z",
            "2025-05-10  17:38:35",
            "2025-05-10T17:38:35 ",
            " 2025-05-10T17:38:35",
            "2025-05-10T17:38:35+0200",
            "2025-05-10T17:38:35+02",
            "2025-05-10T17:38:35+24:00",
            "2025-05-10T17:38:35+02:60",
            "2025-05-10T17:38:35Z+02:00",
            "2025-05-10T17:38:35ZZ",
            "2025-02-30T00:00:00",
            "2023-02-29T00:00:00",
            "1900-02-29T00:00:00",
            "2025-04-31T00:00:00",
            "2025-13-01T00:00:00",
            "2025-00-01T00:00:00",
            "2025-01-00T00:00:00",
            "2025-01-01T24:00:00",
            "2025-01-01T23:60:00",
            "2025-12-31T23:59:60",
            "0000-01-01T00:00:00",
            "10000-01-01T00:00:00",
            "2025/05/10T17:38:35",
            "２025-05-10T17:38:35",
            "2025-05-10T17:38:3５",
            "+025-05-10T17:38:35",
            "2025-5-10T17:38:35",
        ] {
            assert_eq!(ts(bad), None, "{bad:?} must be invalid");
        }
        assert!(ts("2024-02-29T00:00:00").is_some());
        assert!(ts("2000-02-29T00:00:00").is_some());
        assert!(ts("2025-01-31T23:59:59").is_some());
    }

    #[test]
    fn comparisons_are_between_instants() {
        let z = ts("2025-06-01T12:00:00Z");
        let plus2 = ts("2025-06-01T13:00:00+02:00");
        assert!(plus2 < z, "13:00+02:00 is 11:00Z, earlier than 12:00Z");
        assert_eq!(ts("2025-06-01T14:00:00+02:00"), z);
        assert_eq!(ts("2025-06-01 12:00:00"), z);
        assert!(ts("2025-06-01T12:00:00.000000001") > z);
        assert!(ts("2025-06-01T11:59:59.999999999") < z);
    }

    #[test]
    fn rfc3339_round_trips_through_parse() {
        for text in [
            "2025-06-24T15:04:05.123Z",
            "1970-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
            "0001-01-01T00:00:00.000Z",
        ] {
            let t = Timestamp::parse(text.as_bytes()).unwrap();
            assert_eq!(t.to_rfc3339_millis(), text);
        }
        let t = Timestamp::parse(b"2025-06-24T15:04:05.123456+02:00").unwrap();
        assert_eq!(t.to_rfc3339_millis(), "2025-06-24T13:04:05.123Z");
    }

    #[test]
    fn civil_conversions_round_trip() {
        for days in (-719_162..=2_932_896).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            let y = u32::try_from(y).unwrap_or(0);
            assert_eq!(days_from_civil(y, m.into(), d.into()), days, "{y}-{m}-{d}");
        }
        let t = ts("2025-06-24T15:59:59.999Z").map(Timestamp::utc_date_hour);
        assert_eq!(t, Some((2025, 6, 24, 15)));
        let t = ts("2024-03-01T00:30:00+01:00").map(Timestamp::utc_date_hour);
        assert_eq!(t, Some((2024, 2, 29, 23)));
        let t = Timestamp::from_unix(-1, 0).map(Timestamp::utc_date_hour);
        assert_eq!(t, Some((1969, 12, 31, 23)));
    }

    #[test]
    fn from_unix_checks_range_and_micros_floor() {
        assert!(Timestamp::from_unix(0, 1_000_000_000).is_none());
        assert!(Timestamp::from_unix(MIN_UNIX - 1, 0).is_none());
        assert!(Timestamp::from_unix(MAX_UNIX + 1, 0).is_none());
        assert_eq!(
            Timestamp::from_unix(MAX_UNIX, 999_999_999),
            ts("9999-12-31T23:59:59.999999999")
        );
        let t = Timestamp::from_unix(-2, 500_999_999).map(Timestamp::unix_micros);
        assert_eq!(t, Some(-1_499_001));
        let t = Timestamp::from_unix(1, 1_999).map(Timestamp::unix_micros);
        assert_eq!(t, Some(1_000_001));
    }
}
