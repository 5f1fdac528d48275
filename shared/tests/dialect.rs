//! Differential tests: the record splitter against the `csv` crate, whole and in random chunks.

use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;

/// XorShift: the default ChaCha generator dominates the run time of unoptimized test builds.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}
use shared::record::{MAX_RECORD_BYTES, Record, RecordSplitter, split_all};

/// What the `csv` crate reads: default dialect, `flexible(true)`, `has_headers(false)`.
fn csv_crate(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut out = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => out.push(record.iter().map(<[u8]>::to_vec).collect()),
            Ok(false) => break,
            Err(e) => panic!("the csv crate never fails on bytes with flexible(true): {e}"),
        }
    }
    out
}

/// Records (line, fields) from our splitter, fed in chunks cut at `cuts` (sorted offsets).
fn ours_chunked(input: &[u8], cuts: &[usize], max: usize) -> Vec<(u64, Vec<Vec<u8>>, bool)> {
    let mut out = Vec::new();
    let mut take = |r: Record<'_>| {
        out.push((
            r.line,
            r.fields.iter().map(<[u8]>::to_vec).collect(),
            r.too_large,
        ));
    };
    let mut splitter = RecordSplitter::with_max_record_bytes(max);
    let mut prev = 0;
    for &cut in cuts {
        let cut = cut.min(input.len()).max(prev);
        splitter.feed(&input[prev..cut], &mut take);
        prev = cut;
    }
    splitter.feed(&input[prev..], &mut take);
    splitter.finish(&mut take);
    out
}

/// Physical line numbers by a naive reference: count `\r\n`, `\n`, lone `\r` before each
/// record start, where record starts are found by a byte-at-a-time state machine.
fn reference_lines(input: &[u8]) -> Vec<u64> {
    let body = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let mut lines = Vec::new();
    let mut line = 1u64;
    // 0 between records, 1 field start, 2 unquoted, 3 quoted, 4 quote in quoted
    let mut state = 0;
    for (i, &b) in body.iter().enumerate() {
        let is_break = b == b'\r' || (b == b'\n' && (i == 0 || body[i - 1] != b'\r'));
        let term = b == b'\r' || b == b'\n';
        state = match state {
            0 if term => 0,
            0 => {
                lines.push(line);
                match b {
                    b'"' => 3,
                    b',' => 1,
                    _ => 2,
                }
            }
            1 | 2 => match b {
                _ if term => 0,
                b'"' if state == 1 => 3,
                b',' => 1,
                _ => 2,
            },
            3 => {
                if b == b'"' {
                    4
                } else {
                    3
                }
            }
            _ => match b {
                _ if term => 0,
                b'"' => 3,
                b',' => 1,
                _ => 2,
            },
        };
        if is_break {
            line += 1;
        }
    }
    lines
}

fn alphabet() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => Just(b'a'),
        3 => Just(b','),
        3 => Just(b'"'),
        2 => Just(b'\r'),
        2 => Just(b'\n'),
        1 => Just(b' '),
        1 => Just(0xff),
        1 => Just(0xc3),
        1 => Just(0xef),
        1 => Just(0xbb),
        1 => Just(0xbf),
    ]
}

fn input_strategy() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), prop::collection::vec(alphabet(), 0..200)).prop_map(|(bom, mut body)| {
        if bom {
            body.splice(0..0, [0xef, 0xbb, 0xbf]);
        }
        body
    })
}

proptest! {
    #![proptest_config(config(4000))]

    #[test]
    fn same_records_as_the_csv_crate(input in input_strategy(), cuts in prop::collection::vec(0usize..220, 0..12)) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let expected = csv_crate(&input);
        let got = ours_chunked(&input, &cuts, MAX_RECORD_BYTES);
        let fields: Vec<Vec<Vec<u8>>> = got.iter().map(|(_, f, _)| f.clone()).collect();
        prop_assert_eq!(&fields, &expected);
        let lines: Vec<u64> = got.iter().map(|(l, _, _)| *l).collect();
        prop_assert_eq!(lines, reference_lines(&input));
        prop_assert!(got.iter().all(|(_, _, too_large)| !too_large));
    }

    #[test]
    fn chunking_never_changes_anything(input in input_strategy(), cuts in prop::collection::vec(0usize..220, 0..40), max in 0usize..30) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let whole = ours_chunked(&input, &[], max);
        prop_assert_eq!(&ours_chunked(&input, &cuts, max), &whole);
        let every_byte: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(&ours_chunked(&input, &every_byte, max), &whole);
        // Records under the limit are exactly the unlimited ones.
        let unlimited = ours_chunked(&input, &[], MAX_RECORD_BYTES);
        prop_assert_eq!(whole.len(), unlimited.len());
        for (limited, full) in whole.iter().zip(&unlimited) {
            prop_assert_eq!(limited.0, full.0);
            if !limited.2 {
                prop_assert_eq!(&limited.1, &full.1);
            }
        }
    }
}

/// Longer inputs, mostly quote-free, so the 8-byte fast path runs over long stretches.
fn long_input() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            30 => Just(&b"abcdefg"[..]),
            10 => Just(&b","[..]),
            4 => Just(&b"\r\n"[..]),
            4 => Just(&b"\n"[..]),
            1 => Just(&b"\r"[..]),
            1 => Just(&b"\""[..]),
            1 => Just(&b"\"x,\ny\""[..]),
            1 => Just(&b"\xff"[..]),
        ],
        0..300,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn fast_path_matches_the_csv_crate(input in long_input(), cuts in prop::collection::vec(0usize..1500, 0..8)) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let got = ours_chunked(&input, &cuts, MAX_RECORD_BYTES);
        let fields: Vec<Vec<Vec<u8>>> = got.iter().map(|(_, f, _)| f.clone()).collect();
        prop_assert_eq!(fields, csv_crate(&input));
        let lines: Vec<u64> = got.iter().map(|(l, _, _)| *l).collect();
        prop_assert_eq!(lines, reference_lines(&input));
    }
}

#[test]
fn reference_agrees_on_a_known_case() {
    // Guards the reference itself: a bug in it would make the property tests meaningless.
    let input = b"\xef\xbb\xbfa\r\n\r\n\"b\r\nc\",d\re\n";
    assert_eq!(reference_lines(input), [1, 3, 5]);
    let recs = split_all(input);
    assert_eq!(recs.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3, 5]);
    assert_eq!(recs[1].1, [b"b\r\nc".to_vec(), b"d".to_vec()]);
    assert_eq!(csv_crate(input).len(), 3);
}
