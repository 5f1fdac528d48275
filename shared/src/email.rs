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
