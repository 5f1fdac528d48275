//! The output-size bounds of `shared::bounds` against the input shapes that grow the most:
//! every output of each is measured and must stay within its bound (the function sizes its
//! upload parts by these bounds, so a miss would break S3's 10,000-part limit).

use shared::bounds::{Output, max_output_bytes};
use shared::output::CsvOutputs;
use shared::{Processor, parquet};

const HEADER: &[u8] = b"id,name,email,create_ts,update_ts\n";

fn repeat(row: &[u8], bytes: usize) -> Vec<u8> {
    let mut input = HEADER.to_vec();
    while input.len() < bytes {
        input.extend_from_slice(row);
    }
    input
}

/// The four outputs' sizes for `input`, in `Output` order.
fn sizes(input: &[u8]) -> [(Output, u64); 4] {
    let mut processor = Processor::new();
    let mut csv = CsvOutputs::new();
    processor.feed(input, &mut csv);
    processor.finish(&mut csv);
    let (clean, rejected) = parquet::encode(input).expect("parquet");
    [
        (Output::CleanCsv, csv.clean.len() as u64),
        (Output::RejectedCsv, csv.rejected.len() as u64),
        (Output::CleanParquet, clean.len() as u64),
        (Output::RejectedParquet, rejected.len() as u64),
    ]
}

/// Rows made by `row` from a deterministic pseudo-random stream, so nothing repeats for the
/// encoders to compress away.
fn random_rows(bytes: usize, row: impl Fn(&mut dyn FnMut() -> u8) -> Vec<u8>) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b'a' + (x % 26) as u8
    };
    let mut input = HEADER.to_vec();
    while input.len() < bytes {
        input.extend(row(&mut next));
    }
    input
}

#[test]
fn no_input_shape_outgrows_the_bounds() {
    let valid_ts = "2025-01-01T00:00:00";
    let quote_heavy = format!("1,a\"\"\"\"\"\"\"\"b,a@b.co,{valid_ts},{valid_ts}\n");
    let shapes: Vec<(&str, Vec<u8>)> = vec![
        ("five empty fields", repeat(b",,,,\n", 1 << 17)),
        (
            "five empty fields, CR line ends",
            repeat(b",,,,\r", 1 << 17),
        ),
        ("one-character malformed rows", repeat(b"x\n", 1 << 17)),
        ("white-space malformed rows", repeat(b" \n", 1 << 17)),
        (
            "bare quotes as data",
            repeat(b"\"\"\"\",\",\",,,\n", 1 << 17),
        ),
        ("not UTF-8", repeat(b"\xff,\xff,\xff,\xff,\xff\n", 1 << 17)),
        ("one long invalid field", repeat(&[0xfe; 4096], 1 << 17)),
        (
            "quote-heavy clean names",
            repeat(quote_heavy.as_bytes(), 1 << 17),
        ),
        (
            "shortest clean rows",
            repeat(
                format!("1,a,a@b.co,{valid_ts},{valid_ts}\n").as_bytes(),
                1 << 17,
            ),
        ),
        (
            "upper-case emails with a Kelvin sign",
            repeat(
                format!("1,a,\u{212a}@B.CO,{valid_ts},{valid_ts}\n").as_bytes(),
                1 << 17,
            ),
        ),
        (
            "bad timestamps everywhere",
            repeat(b"1,n,a@b.co,2025-02-30T00:00:00,x\n", 1 << 17),
        ),
        ("invalid header", {
            let mut v = b"a,b\n".to_vec();
            v.extend(repeat(b"x\n", 1 << 17));
            v
        }),
        (
            "random one-letter fields",
            random_rows(1 << 17, |r| {
                vec![r(), b',', r(), b',', r(), b',', r(), b',', r(), b'\n']
            }),
        ),
        (
            "random malformed rows",
            random_rows(1 << 17, |r| vec![r(), b'\n']),
        ),
        (
            "random empty-ish rows",
            random_rows(1 << 17, |r| vec![b',', b',', b',', b',', r(), b'\n']),
        ),
        (
            "random clean rows",
            random_rows(1 << 17, |r| {
                format!(
                    "{},{},{}@b.co,2025-01-01T00:00:{:02},2025-01-02T00:00:00\n",
                    r() as char,
                    r() as char,
                    r() as char,
                    r() % 60
                )
                .into_bytes()
            }),
        ),
        ("empty", Vec::new()),
        ("header only", HEADER.to_vec()),
    ];
    for (name, input) in shapes {
        for (output, size) in sizes(&input) {
            if std::env::var_os("BOUNDS_VERBOSE").is_some() {
                eprintln!(
                    "{name}: {output:?} {:.2}x",
                    size as f64 / input.len().max(1) as f64
                );
            }
            let bound = max_output_bytes(output, input.len() as u64);
            assert!(
                size <= bound,
                "{name}: {output:?} is {size} bytes for {} input bytes, over its bound {bound}",
                input.len()
            );
        }
    }
}

#[test]
fn the_worst_rejected_shape_uses_most_of_its_factor() {
    // So the factor is not slack by an order of magnitude: five empty fields grow ~16-18x.
    let input = repeat(b",,,,\n", 1 << 17);
    let rejected = sizes(&input)[1].1;
    let ratio = rejected as f64 / input.len() as f64;
    assert!(ratio > 15.0, "ratio {ratio}");
    assert!(ratio < Output::RejectedCsv.factor() as f64, "ratio {ratio}");
}
