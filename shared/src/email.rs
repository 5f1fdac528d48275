//! The SPEC §2 email syntax rule, checked on bytes.

/// Byte classes of the email grammar, one bit each.
const LOCAL: u8 = 1; // allowed in the local part: A-Z a-z 0-9 and the SPEC's specials, or `.`
const LABEL: u8 = 2; // allowed in the domain: A-Z a-z 0-9 `-`, or `.`
const ALPHA: u8 = 4; // A-Z a-z
const DOT: u8 = 8;
const HYPHEN: u8 = 16; // `DOT << 1`, so a shift lines the two up
const UPPER: u8 = 32; // A-Z
const NON_ASCII: u8 = 64; // 0x80..=0xFF

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_uppercase() {
            LOCAL | LABEL | ALPHA | UPPER
        } else if c.is_ascii_alphabetic() {
            LOCAL | LABEL | ALPHA
        } else if !c.is_ascii() {
            NON_ASCII
        } else if c.is_ascii_digit() {
            LOCAL | LABEL
        } else if c == b'-' {
            LOCAL | LABEL | HYPHEN
        } else if c == b'.' {
            LOCAL | LABEL | DOT
        } else {
            let specials = b"!#$%&'*+/=?^_`{|}~";
            let mut class = 0;
            let mut i = 0;
            while i < specials.len() {
                if specials[i] == c {
                    class = LOCAL;
                }
                i += 1;
            }
            class
        };
        b += 1;
    }
    t
};

/// True when `email` (already trimmed and lowercased) satisfies SPEC §2.
///
/// Every allowed character is ASCII, so characters are bytes here. Two loops, one per part:
/// each folds class bits over its bytes (where dots fall varies from row to row, so branching
/// on them would mispredict).
pub fn is_valid_email(email: &[u8]) -> bool {
    inspect(email).valid
}

/// What one pass over an email finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inspection {
    /// The SPEC §2 rule holds for these bytes as they are.
    pub valid: bool,
    /// Some byte is `A`..=`Z` (reliable when `valid`).
    pub upper: bool,
    /// Some byte is not ASCII, so lowercasing may change the verdict (the Kelvin sign): the
    /// caller lowercases and checks again. Reliable unless an ASCII byte already makes the
    /// address invalid, which lowercasing cannot repair.
    pub non_ascii: bool,
}

/// Checks `email` as it is, and notes what lowercasing would have to do.
#[inline]
pub(crate) fn inspect(email: &[u8]) -> Inspection {
    #[cfg(all(target_arch = "x86_64", not(csv_ingest_portable)))]
    if let Some(seen) = fast::inspect(email) {
        return seen;
    }
    inspect_bytes(email)
}

/// `inspect` one byte at a time: every email (the x86_64 fast path takes the usual ones).
#[inline]
fn inspect_bytes(email: &[u8]) -> Inspection {
    let invalid = |non_ascii| Inspection {
        valid: false,
        upper: false,
        non_ascii,
    };
    if email.len() > 254 {
        // SPEC counts characters of the lowercased value: a non-ASCII byte may lowercase away
        // (the 3-byte Kelvin sign becomes `k`), so only an ASCII value is too long as it is.
        return invalid(!email.is_ascii());
    }
    // Local part: LOCAL bytes (dots included) up to the first byte that is not; that byte must
    // be the `@`. No leading, trailing or doubled dot; 1–64 bytes.
    let mut at = 0;
    let mut pairs = 0; // class bits shared by two neighbours
    let mut prev = 0;
    let mut any = 0; // every class bit seen
    while let Some(&b) = email.get(at) {
        let class = CLASS[usize::from(b)];
        if class & LOCAL == 0 {
            if class & NON_ASCII != 0 {
                return invalid(true);
            }
            break;
        }
        pairs |= prev & class;
        prev = class;
        any |= class;
        at += 1;
    }
    let local_ok = email.get(at) == Some(&b'@')
        && (1..=64).contains(&at)
        && email[0] != b'.'
        && email[at - 1] != b'.'
        && pairs & DOT == 0;
    if !local_ok {
        return invalid(false);
    }
    let (domain_ok, domain_any) = valid_domain(&email[at + 1..]);
    any |= domain_any;
    Inspection {
        valid: domain_ok,
        upper: any & UPPER != 0,
        non_ascii: any & NON_ASCII != 0,
    }
}

/// Two or more dot-separated labels of 1–63 LABEL bytes not starting or ending with `-`; the
/// last one letters only, at least 2. (A second `@` lands here and is not a LABEL byte.)
#[inline(always)]
fn valid_domain(domain: &[u8]) -> (bool, u8) {
    let Some(&first) = domain.first() else {
        return (false, 0);
    };
    let mut any = 0;
    let mut all = LABEL;
    let mut bad = 0; // DOT bit: `..` or `-.`; HYPHEN bit: `.-`
    let mut prev = 0;
    let mut tld_start = 0; // just after the last dot
    let mut tld_alpha = ALPHA; // ALPHA while the bytes since the last dot are letters
    for (i, &b) in domain.iter().enumerate() {
        let class = CLASS[usize::from(b)];
        all &= class;
        any |= class;
        bad |= ((prev | (prev >> 1)) & class & DOT) | ((prev << 1) & class & HYPHEN);
        let dot = class & DOT != 0;
        tld_start = if dot { i + 1 } else { tld_start };
        tld_alpha = if dot { ALPHA } else { tld_alpha & class };
        prev = class;
    }
    // A TLD of 2+ letters also rules out a trailing `.` or `-`; `tld_start > 0` means a dot,
    // so two labels at least.
    let shape_ok = all != 0
        && bad == 0
        && first != b'.'
        && first != b'-'
        && tld_start > 0
        && domain.len() - tld_start >= 2
        && tld_alpha != 0;
    // Labels are at most 63 long; only a long domain can break that.
    let ok = shape_ok
        && (domain.len() <= 63 || domain.split(|&b| b == b'.').all(|label| label.len() <= 63));
    (ok, any)
}

/// The usual email at once: up to 32 bytes of letters, digits, `.` `-` `_` `+` and `@`,
/// classified 16 bytes at a time (SSE2, part of every x86_64) into one bit per byte, the rule
/// then checked on those bit masks. `None` for anything else (the byte loop decides); otherwise
/// exactly the byte loop's `Inspection` (a test compares the two).
#[cfg(all(target_arch = "x86_64", not(csv_ingest_portable)))]
mod fast {
    use safe_arch::{
        cmp_eq_mask_i8_m128i as eq, load_unaligned_m128i, m128i, min_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i, sub_i8_m128i,
    };

    use super::Inspection;
    use crate::record::le_words;

    /// Bit `i`: byte `i` is of that kind.
    #[derive(Clone, Copy, Default)]
    struct Masks {
        alpha: u32,
        upper: u32,
        digit: u32,
        dot: u32,
        hyphen: u32,
        at: u32,
        /// `_` or `+`: allowed before the `@` only.
        local_only: u32,
    }

    #[inline(always)]
    fn splat(b: u8) -> m128i {
        set_splat_i8_m128i(b as i8)
    }

    /// Bytes in `lo..=lo + span`.
    #[inline(always)]
    fn in_range(v: m128i, lo: u8, span: u8) -> m128i {
        let d = sub_i8_m128i(v, splat(lo));
        eq(min_u8_m128i(d, splat(span)), d)
    }

    #[inline(always)]
    fn bits(v: m128i) -> u32 {
        // 16 bits, one per byte; the cast keeps them.
        u32::from(move_mask_i8_m128i(v) as u16)
    }

    #[inline(always)]
    fn classify(v: m128i, shift: u32, m: &mut Masks) {
        let upper = in_range(v, b'A', 25);
        m.alpha |= bits(upper | in_range(v, b'a', 25)) << shift;
        m.upper |= bits(upper) << shift;
        m.digit |= bits(in_range(v, b'0', 9)) << shift;
        m.dot |= bits(eq(v, splat(b'.'))) << shift;
        m.hyphen |= bits(eq(v, splat(b'-'))) << shift;
        m.at |= bits(eq(v, splat(b'@'))) << shift;
        m.local_only |= bits(eq(v, splat(b'_')) | eq(v, splat(b'+'))) << shift;
    }

    #[inline]
    pub(super) fn inspect(email: &[u8]) -> Option<Inspection> {
        let n = email.len();
        if !(1..=32).contains(&n) {
            return None;
        }
        // Loaded from the value itself, not copied into a padded buffer first (a wide load of
        // bytes just stored one by one waits for the stores): 16 bytes or more as their first
        // and last 16 (overlapping bytes classify the same), fewer as two zero-padded words.
        let mut m = Masks::default();
        if n >= 16 {
            classify(
                load_unaligned_m128i(email[..16].try_into().ok()?),
                0,
                &mut m,
            );
            let last = load_unaligned_m128i(email[n - 16..].try_into().ok()?);
            classify(last, (n - 16) as u32, &mut m);
        } else {
            let mut words = le_words(email);
            let words = [words.next().unwrap_or(0), words.next().unwrap_or(0)];
            classify(m128i::from(words), 0, &mut m);
        }
        let all = u32::MAX >> (32 - n);
        let label = m.alpha | m.digit | m.dot | m.hyphen;
        if (label | m.at | m.local_only) & all != all {
            return None;
        }
        let invalid = Inspection {
            valid: false,
            upper: false,
            non_ascii: false,
        };
        // Local part: everything before the first `@` (the only byte here that is not allowed
        // in it), 1–64 bytes, no leading, trailing or doubled dot.
        let at = m.at & all;
        if at == 0 {
            return Some(invalid);
        }
        let pos = at.trailing_zeros();
        let local = (1u32 << pos) - 1;
        let local_ok = pos >= 1
            && m.dot & 1 == 0
            && m.dot & (1 << (pos - 1)) == 0
            && m.dot & (m.dot >> 1) & local == 0;
        if !local_ok {
            return Some(invalid);
        }
        // Domain: labels of letters, digits and `-`, not starting or ending with `-`, no empty
        // label, at least two; the last of 2+ letters. (At most 31 bytes: no label over 63.)
        let domain = all & !(local | (1 << pos));
        let (dot, hyphen) = (m.dot & domain, m.hyphen & domain);
        let first = 1u32.checked_shl(pos + 1).unwrap_or(0);
        let shape_ok = domain != 0
            && (m.at | m.local_only) & domain == 0
            && (dot | hyphen) & first == 0
            && dot & (dot >> 1) == 0
            && hyphen & (dot >> 1) == 0
            && dot & (hyphen >> 1) == 0
            && dot != 0;
        let valid = shape_ok && {
            let last_dot = 31 - dot.leading_zeros();
            let tld = domain & !((2u32 << last_dot).wrapping_sub(1));
            tld.count_ones() >= 2 && tld & !m.alpha == 0
        };
        Some(Inspection {
            valid,
            upper: m.upper & all != 0,
            non_ascii: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        is_valid_email(s.as_bytes())
    }

    #[test]
    fn spec_examples() {
        assert!(ok("first+tag@gmail.com"));
        assert!(!ok("c"));
        assert!(!ok("a@b"));
        assert!(!ok("a..b@x.com"));
        assert!(!ok("a@-x.com"));
    }

    /// The x86_64 fast path gives exactly the byte loop's verdicts: every string of up to 6
    /// bytes over its alphabet, and longer ones across the 16- and 32-byte lane ends.
    #[cfg(all(target_arch = "x86_64", not(csv_ingest_portable)))]
    #[test]
    fn fast_path_agrees_with_the_byte_loop() {
        const ALPHABET: &[u8] = b"aZ0.-_+@";
        let mut checked = 0;
        // Every byte used here is one the fast path classifies, so up to 32 of them it must
        // answer (declining would hide a wrong load behind the byte loop's answer).
        let mut agree = |email: &[u8]| match fast::inspect(email) {
            Some(fast) => {
                assert_eq!(
                    fast,
                    inspect_bytes(email),
                    "{:?}",
                    String::from_utf8_lossy(email)
                );
                checked += 1;
            }
            None => assert!(
                email.len() > 32,
                "{:?} declined",
                String::from_utf8_lossy(email)
            ),
        };
        for len in 1..=6u32 {
            for mut code in 0..ALPHABET.len().pow(len) {
                let email: Vec<u8> = (0..len)
                    .map(|_| {
                        let b = ALPHABET[code % ALPHABET.len()];
                        code /= ALPHABET.len();
                        b
                    })
                    .collect();
                agree(&email);
            }
        }
        // Every length up to 32 (each way of loading the value), every byte changed in turn.
        for len in 6..=32 {
            let mut base = vec![b'x'; len - 5];
            base.extend_from_slice(b"@b.co");
            agree(&base);
            for at in 0..len {
                for &b in ALPHABET {
                    let mut email = base.clone();
                    email[at] = b;
                    agree(&email);
                }
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let pieces: [&[u8]; 12] = [
            b"a", b"B", b"7", b".", b"-", b"_", b"+", b"@", b"ab", b"x.io", b"@b.co", b"-.",
        ];
        for _ in 0..200_000 {
            let mut email = Vec::new();
            while email.len() < 40 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                email.extend_from_slice(pieces[(x % 12) as usize]);
                if (14..=18).contains(&email.len()) || (30..=34).contains(&email.len()) {
                    agree(&email);
                }
            }
        }
        for valid in [
            "first.last@sub.example.com",
            "a@b.co",
            "UPPER_case+tag@X-Y.IO",
        ] {
            assert_eq!(fast::inspect(valid.as_bytes()).map(|i| i.valid), Some(true));
        }
        assert!(checked > 250_000, "{checked}");
    }

    #[test]
    fn local_part() {
        assert!(ok("a@x.io"));
        assert!(ok("a.b.c@x.io"));
        assert!(ok("!#$%&'*+/=?^_`{|}~-@x.io"));
        assert!(ok("UPPER@X.IO"), "the rule itself allows upper case");
        assert!(!ok("@x.io"));
        assert!(!ok(".a@x.io"));
        assert!(!ok("a.@x.io"));
        assert!(!ok("a b@x.io"));
        assert!(!ok("a\"b@x.io"));
        assert!(!ok("a(b)@x.io"));
        assert!(!ok("a,b@x.io"));
        assert!(!ok("é@x.io"));
        assert!(!ok("a@b@x.io"));
        let l64 = "a".repeat(64);
        let l65 = "a".repeat(65);
        assert!(ok(&format!("{l64}@x.io")));
        assert!(!ok(&format!("{l65}@x.io")));
    }

    #[test]
    fn domain() {
        assert!(ok("a@x-y.example.com"));
        assert!(ok("a@1x.co"));
        assert!(!ok("a@x-.com"));
        assert!(!ok("a@x..com"));
        assert!(!ok("a@.x.com"));
        assert!(!ok("a@x.com."));
        assert!(!ok("a@x.c"));
        assert!(!ok("a@x.c0m"));
        assert!(!ok("a@x.123"));
        assert!(!ok("a@x.co-"));
        assert!(!ok("a@x_y.com"));
        assert!(!ok("a@"));
        assert!(!ok("a@com"));
        let l63 = "b".repeat(63);
        let l64 = "b".repeat(64);
        assert!(ok(&format!("a@{l63}.com")));
        assert!(!ok(&format!("a@{l64}.com")));
    }

    #[test]
    fn inspection_notes_case_and_non_ascii() {
        let i = inspect(b"Ann@X.io");
        assert!(i.valid && i.upper && !i.non_ascii);
        let i = inspect(b"ann@x.io");
        assert!(i.valid && !i.upper && !i.non_ascii);
        let i = inspect("\u{212a}@x.io".as_bytes());
        assert!(
            !i.valid && i.non_ascii,
            "the Kelvin sign needs lowercasing first"
        );
        let i = inspect("a@x\u{212a}.io".as_bytes());
        assert!(!i.valid && i.non_ascii);
        let i = inspect(b"a b@x.io");
        assert!(!i.valid);
        let long_kelvin = format!("{}@{}.com", "\u{212a}".repeat(64), "d".repeat(60));
        assert_eq!(long_kelvin.len(), 257);
        let i = inspect(long_kelvin.as_bytes());
        assert!(
            !i.valid && i.non_ascii,
            "over 254 bytes but maybe not over 254 characters once lowercased"
        );
    }

    #[test]
    fn total_length() {
        // 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254
        let base = format!("{}@{}.{}.", "a".repeat(64), "b".repeat(63), "c".repeat(63));
        let e254 = format!("{base}{}", "d".repeat(61));
        let e255 = format!("{base}{}", "d".repeat(62));
        assert_eq!(e254.len(), 254);
        assert!(ok(&e254));
        assert_eq!(e255.len(), 255);
        assert!(!ok(&e255));
    }
}
