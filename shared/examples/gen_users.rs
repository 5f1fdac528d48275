//! Deterministic users-file generator for benchmarks and tests: `gen_users ROWS [SEED] > file.csv`.
//!
//! Streams a header and ROWS data rows (`\r\n` line ends, like `data/users.csv`) to stdout,
//! about 90 bytes a row. About 10% of the rows are bad, spread over every reason code (some
//! with two reasons). Clean rows look like an export: mostly the sample's forms, with a few
//! percent of variants (4% quoted names, with commas or escaped quotes; 1% padded names; 3%
//! padded or mixed-case emails; 4% of timestamps with `Z`, an offset, a fraction or a space).
//! Same ROWS and SEED, same bytes.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use shared::Timestamp;

const DEFAULT_SEED: u64 = 0x5eed_1234_abcd_0001;

const FIRST: [&str; 16] = [
    "Luke", "Leia", "Han", "Jimmy", "Robert", "Guybrush", "Elaine", "Daniel", "Ada", "Grace",
    "Alan", "Margaret", "Linus", "Barbara", "Ken", "Frances",
];
const LAST: [&str; 16] = [
    "Skyrunner",
    "Organa",
    "Solo",
    "Pager",
    "Plant",
    "Fourpwood",
    "Marley",
    "Jack",
    "Lovelace",
    "Hopper",
    "Turing",
    "Hamilton",
    "Torvalds",
    "Liskov",
    "Thompson",
    "O'Neil",
];
const DOMAINS: [&str; 8] = [
    "gmail.com",
    "hotmail.com",
    "lucas.com",
    "example.org",
    "mail.co.uk",
    "corp-mail.io",
    "yahoo.fr",
    "proton.me",
];
const BAD_EMAILS: [&str; 8] = [
    "c",
    "a@b",
    "a..b@x.com",
    "a@-x.com",
    "user at mail.com",
    "user@mail.c0m",
    "@mail.com",
    "user@@mail.com",
];
const BAD_TS: [&str; 8] = [
    "2025-02-30T10:00:00",
    "2025-13-01T00:00:00",
    "2025-01-01T24:00:00",
    "2025-05-10",
    "yesterday",
    "2025-05-10T17:38:35+0200",
    "2025-05-10t17:38:35",
    "",
];

/// splitmix64: tiny, fast, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn push_ts(out: &mut Vec<u8>, unix: i64, rng: &mut Rng) {
    let Some(t) = Timestamp::from_unix(unix, 0) else {
        return;
    };
    let (y, mo, d, h) = t.utc_date_hour();
    let mi = unix.rem_euclid(3600) / 60;
    let s = unix.rem_euclid(60);
    // Mostly the sample's form; 4% other valid forms.
    let form = rng.below(100);
    let sep = if form == 0 { ' ' } else { 'T' };
    let _ = write!(out, "{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}");
    match form {
        1 => out.push(b'Z'),
        2 => {
            let _ = write!(out, ".{:06}", rng.below(1_000_000));
        }
        // 00:00 keeps the instant, so `update >= create` still holds.
        3 => out.extend_from_slice(b"+00:00"),
        _ => {}
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(rows), seed) = (
        args.first().and_then(|a| a.parse::<u64>().ok()),
        args.get(1).map(|s| s.parse::<u64>()),
    ) else {
        eprintln!("usage: gen_users ROWS [SEED] > file.csv");
        return ExitCode::from(2);
    };
    let seed = match seed {
        None => DEFAULT_SEED,
        Some(Ok(seed)) => seed,
        Some(Err(_)) => {
            eprintln!("usage: gen_users ROWS [SEED] > file.csv (SEED is an unsigned integer)");
            return ExitCode::from(2);
        }
    };
    let mut rng = Rng(seed);
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut line = Vec::with_capacity(256);
    if out
        .write_all(b"id,name,email,create_ts,update_ts\r\n")
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    // 2020-01-01 .. 2025-06-30
    let (lo, hi) = (1_577_836_800i64, 1_751_241_600i64);
    for id in 1..=rows {
        line.clear();
        let first = rng.pick(&FIRST);
        let last = rng.pick(&LAST);
        let created = lo + rng.below((hi - lo) as u64) as i64;
        let updated = created + rng.below(90 * 86_400) as i64;
        // 0..1000: < 100 is a bad row.
        let bad = rng.below(1000);

        // id
        if !matches!(bad, 40..=47 | 95..=99) {
            let _ = write!(line, "{id}");
        } else if bad.is_multiple_of(2) {
            line.extend_from_slice(b"  ");
        }
        line.push(b',');
        // name
        if matches!(bad, 48..=55) {
            // missing_name
        } else if matches!(bad, 88..=91) {
            // invalid_utf8 (latin-1 bytes)
            line.extend_from_slice(b"Jos\xe9 ");
            line.extend_from_slice(last.as_bytes());
        } else {
            match rng.below(100) {
                0..=2 => {
                    let _ = write!(line, "\"{last}, {first}\"");
                }
                3 => {
                    let _ = write!(line, "\"{first} \"\"The Kid\"\" {last}\"");
                }
                4 => {
                    let _ = write!(line, " {first} {last} ");
                }
                _ => {
                    let _ = write!(line, "{first} {last}");
                }
            }
        }
        line.push(b',');
        // email
        if matches!(bad, 0..=29 | 92..=99) {
            line.extend_from_slice(rng.pick(&BAD_EMAILS).as_bytes());
        } else {
            let n = rng.below(1000);
            let domain = rng.pick(&DOMAINS);
            let email = format!("{first}.{last}{n}@{domain}").replace('\'', "");
            match rng.below(100) {
                0 => {
                    let _ = write!(line, " {email} ");
                }
                1 | 2 => line.extend_from_slice(email.as_bytes()),
                _ => line.extend_from_slice(email.to_ascii_lowercase().as_bytes()),
            }
        }
        line.push(b',');
        // create_ts, update_ts
        let (c, u) = if matches!(bad, 30..=49) {
            (updated, created - 3600)
        } else {
            (created, updated)
        };
        if matches!(bad, 56..=63) {
            line.extend_from_slice(rng.pick(&BAD_TS).as_bytes());
        } else {
            push_ts(&mut line, c, &mut rng);
        }
        line.push(b',');
        if matches!(bad, 64..=71) {
            line.extend_from_slice(rng.pick(&BAD_TS).as_bytes());
        } else {
            push_ts(&mut line, u, &mut rng);
        }
        // malformed_row: a field too many or too few
        if matches!(bad, 72..=79) {
            line.extend_from_slice(b",extra");
        } else if matches!(bad, 80..=87)
            && let Some(comma) = line.iter().rposition(|&b| b == b',')
        {
            line.truncate(comma);
        }
        line.extend_from_slice(b"\r\n");
        if out.write_all(&line).is_err() {
            return ExitCode::FAILURE;
        }
    }
    if out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
