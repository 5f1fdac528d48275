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
    #[inline(always)]
    pub fn parse(text: &[u8]) -> Option<Timestamp> {
        // Shortest valid form: `YYYY-MM-DDTHH:MM:SS` (19 bytes).
        let (t, rest) = text.split_first_chunk::<19>()?;
        let [date, time, seconds] = fixed_part(t)?;
        // Byte `i` of a pair word is the two-digit number at bytes `i`, `i + 1` of its word.
        let byte = |w: u64, i: u32| ((w >> (8 * i)) & 0xFF) as u32;
        let year = byte(date, 0) * 100 + byte(date, 2);
        let month = byte(date, 5);
        let day = byte(time, 0);
        let (hour, minute, second) = (byte(time, 3), byte(time, 6), byte(seconds, 6));
        // Hour ≤ 23, minute ≤ 59, second ≤ 59 at once: a pair is at most 99, so adding
        // 128 − (limit + 1) sets its high bit exactly when it is over the limit, with no carry.
        const TIME_LIMITS: u64 = (0x80 - 24) << 24 | (0x80 - 60) << 48;
        const SECOND_LIMIT: u64 = (0x80 - 60) << 48;
        const TIME_HIGHS: u64 = 0x80 << 24 | 0x80 << 48;
        let over = ((time + TIME_LIMITS) & TIME_HIGHS) | ((seconds + SECOND_LIMIT) & (0x80 << 48));
        // Days 1..=28 exist in every month; only later ones need the month's length.
        let day_ok = day.wrapping_sub(1) < 28 || (day != 0 && day <= days_in_month(year, month));
        if (over != 0) | (year == 0) | (month.wrapping_sub(1) >= 12) || !day_ok {
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

/// `bytes` as a little-endian word: byte `i` is bits `8i..8i + 8`.
const fn le(bytes: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*bytes)
}

/// The fixed part's bytes, 8 at a time: `YYYY-MM-` (bytes 0..8), `DD?HH:MM` (8..16) and
/// `HH:MM:SS` (11..19, overlapping the second). `?` (byte 10) is checked on its own.
const PATTERNS: [u64; 3] = [le(b"0000-00-"), le(b"00T00:00"), le(b"00:00:00")];
/// Added to a word XOR its pattern: a digit byte becomes its value, which must be at most 9
/// (`+ 0x76` keeps the high bit clear exactly then); a separator byte must become 0 (`+ 0x7F`).
const LIMITS: [u64; 3] = [
    le(&[0x76, 0x76, 0x76, 0x76, 0x7F, 0x76, 0x76, 0x7F]),
    le(&[0x76, 0x76, 0x7F, 0x76, 0x76, 0x7F, 0x76, 0x76]),
    le(&[0x76, 0x76, 0x7F, 0x76, 0x76, 0x7F, 0x76, 0x76]),
];
const HIGH: u64 = 0x8080_8080_8080_8080;
/// Byte 2 of the second word: the date-time separator.
const SEPARATOR: u64 = 0xFF << 16;

/// `YYYY-MM-DD?HH:MM:SS` with ASCII digits and `?` being `T` or a space, checked 8 bytes at a
/// time. Returns the three words as digit pairs: byte `i` of each is `10 × digit i + digit
/// i + 1` (meaningful where a number starts; separators count as 0).
#[inline(always)]
fn fixed_part(t: &[u8; 19]) -> Option<[u64; 3]> {
    let word = |i: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&t[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let t_or_space = (t[10] == b'T') | (t[10] == b' ');
    // Byte values: the digit's value where a digit is expected, 0 at a matching separator;
    // anything else is some byte over its limit (or with its high bit set already). A byte
    // of at most 0x7F plus at most 0x7F cannot carry into the next; one that could has its
    // high bit set and fails anyway.
    let values = [
        word(0) ^ PATTERNS[0],
        (word(8) ^ PATTERNS[1]) & !SEPARATOR,
        word(11) ^ PATTERNS[2],
    ];
    let over = |i: usize| (values[i].wrapping_add(LIMITS[i]) | values[i]) & HIGH;
    if (over(0) | over(1) | over(2) != 0) | !t_or_space {
        return None;
    }
    // Pairs: at most 9 × 10 + 9 per byte, so no carry.
    Some(values.map(|v| v * 10 + (v >> 8)))
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

/// Days since 1970-01-01 of a proleptic Gregorian date, year 1..=9999, month 1..=12: counted
/// in years that start on March 1 (so a leap day ends its year and needs no test), as Neri and
/// Schneider do ("Euclidean affine functions and their application to calendar algorithms",
/// 2022): `1461 y / 4` days of the years' four-year cycles less the century days that are not
/// leap, then `(979 m − 2919) / 32`, the days before month `m` (3 = March … 14 = February).
#[inline(always)]
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let january_or_february = month <= 2;
    let y = year - u32::from(january_or_february);
    let m = if january_or_february {
        month + 12
    } else {
        month
    };
    let centuries = y / 100;
    let days = 1461 * y / 4 - centuries + centuries / 4 + (979 * m - 2919) / 32 + day;
    // 1970-01-01 is day 719_469 of this count.
    i64::from(days) - 719_469
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

    /// The fixed part byte by byte, as the grammar reads: what `fixed_part` and the range
    /// checks decide a word at a time.
    fn fixed_part_one_by_one(t: &[u8; 19]) -> Option<i64> {
        let digit = |i: usize| t[i].is_ascii_digit().then(|| u32::from(t[i] - b'0'));
        let number =
            |at: usize, len: usize| (at..at + len).try_fold(0, |n, i| digit(i).map(|d| n * 10 + d));
        let separators = t[4] == b'-'
            && t[7] == b'-'
            && matches!(t[10], b'T' | b' ')
            && t[13] == b':'
            && t[16] == b':';
        if !separators {
            return None;
        }
        let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
        let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
        let exists = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour < 24
            && minute < 60
            && second < 60;
        exists.then(|| {
            days_from_civil(year, month, day) * 86_400
                + i64::from(hour * 3600 + minute * 60 + second)
        })
    }

    #[test]
    fn every_single_byte_change_of_the_fixed_part_is_judged_as_byte_by_byte() {
        let bases = [
            "2024-02-29T23:59:59",
            "0001-01-01 00:00:00",
            "9999-12-31T23:59:59",
            "2025-04-30T09:05:07",
            "1900-02-28T19:49:50",
        ];
        let (mut valid, mut cases) = (0, 0);
        for base in bases {
            for at in 0..19 {
                for byte in 0..=255u8 {
                    let mut t: [u8; 19] = base.as_bytes().try_into().unwrap();
                    t[at] = byte;
                    let want = fixed_part_one_by_one(&t);
                    let got = Timestamp::parse(&t).map(Timestamp::unix_seconds);
                    assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&t));
                    valid += usize::from(want.is_some());
                    cases += 1;
                }
            }
        }
        // Both outcomes are well represented (each position takes 1 to 11 of 256 bytes).
        assert!(valid > 500 && valid < cases / 10, "{valid} of {cases}");
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
