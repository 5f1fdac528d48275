//! File-level cases: whole inputs through `Processor` + `CsvOutputs`, compared byte for byte.

use shared::header::HeaderProblem;
use shared::output::{CsvOutputs, parse_clean_csv, parse_rejected_csv};
use shared::process::process_reader;
use shared::{Processor, Reason, Summary};

struct Run {
    summary: Summary,
    clean: String,
    rejected: String,
}

fn run_with(input: &[u8], max: usize, chunk: usize) -> (Summary, Vec<u8>, Vec<u8>) {
    let mut p = Processor::with_max_record_bytes(max);
    let mut out = CsvOutputs::new();
    let (mut clean, mut rejected) = (Vec::new(), Vec::new());
    for c in input.chunks(chunk.max(1)) {
        p.feed(c, &mut out);
        clean.append(&mut out.clean);
        rejected.append(&mut out.rejected);
    }
    let summary = p.finish(&mut out);
    clean.append(&mut out.clean);
    rejected.append(&mut out.rejected);
    (summary, clean, rejected)
}

/// Runs `input` whole, byte by byte and in 7-byte chunks; all three must agree.
fn run_max(input: &[u8], max: usize) -> Run {
    let whole = run_with(input, max, input.len());
    assert_eq!(
        run_with(input, max, 1),
        whole,
        "byte-by-byte feeding differs"
    );
    assert_eq!(run_with(input, max, 7), whole, "7-byte chunks differ");
    let (summary, clean, rejected) = whole;
    assert_eq!(
        summary.records,
        summary.clean + summary.rejected,
        "nothing lost"
    );
    Run {
        summary,
        clean: String::from_utf8(clean).expect("clean output is UTF-8"),
        rejected: String::from_utf8(rejected).expect("rejected output is UTF-8"),
    }
}

fn run(input: &[u8]) -> Run {
    run_max(input, shared::record::MAX_RECORD_BYTES)
}

const H: &str = "id,name,email,create_ts,update_ts";
const CH: &str = "id,name,email,create_ts,update_ts\n";
const RH: &str = "line,reasons,id,name,email,create_ts,update_ts\n";
const GOOD: &str = "1,Ann,ann@x.io,2025-01-01T00:00:00,2025-01-02T00:00:00";
const GOOD_OUT: &str = "1,Ann,ann@x.io,2025-01-01T00:00:00,2025-01-02T00:00:00\n";

fn json(s: &Summary) -> String {
    serde_json::to_string(s).expect("summary serializes")
}

#[test]
fn sample_users_csv_exact_outputs() {
    let input = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/users.csv"))
        .expect("data/users.csv is in the repository");
    let r = run(&input);
    assert_eq!(
        r.clean,
        "id,name,email,create_ts,update_ts\n\
         1,Luke Skyrunner,a@gmail.com,2025-05-10T17:38:35,2025-05-12T15:27:35\n\
         2,Jimmy Pager,led@hotmail.com,2025-06-13T03:22:19,2025-06-23T11:36:19\n"
    );
    assert_eq!(
        r.rejected,
        "line,reasons,id,name,email,create_ts,update_ts\n\
         4,invalid_email,3,Daniel Jack,c,2024-12-14T23:09:32,2024-12-15T21:12:32\n\
         5,update_before_create,4,Guybrush Fourpwood,guy@lucas.com,2025-01-25T06:27:45,2025-01-20T00:12:45\n"
    );
    assert_eq!(
        json(&r.summary),
        r#"{"records":4,"clean":2,"rejected":2,"reasons":{"invalid_email":1,"update_before_create":1}}"#
    );
    assert_eq!(r.summary.header_problem, None);
    // process_reader gives the same.
    let mut out = CsvOutputs::new();
    let summary = process_reader(&input[..], &mut out).expect("reading a slice cannot fail");
    assert_eq!(summary, r.summary);
    assert_eq!(String::from_utf8_lossy(&out.clean), r.clean);
}

#[test]
fn bom_only_stripped_at_the_start() {
    let r = run(format!("\u{feff}{H}\n{GOOD}\n").as_bytes());
    assert_eq!(r.clean, format!("{CH}{GOOD_OUT}"));
    // A BOM anywhere else is data: here it makes the id column unknown.
    let r = run(format!("\u{feff}\u{feff}{H}\n{GOOD}\n").as_bytes());
    assert_eq!(r.summary.header_problem, Some(HeaderProblem::Missing("id")));
}

#[test]
fn crlf_lf_and_lone_cr_line_ends() {
    let input = format!("{H}\r\n{GOOD}\r{GOOD}\n{GOOD}\r\n");
    let r = run(input.as_bytes());
    assert_eq!(r.summary.clean, 3);
    assert_eq!(r.clean, format!("{CH}{GOOD_OUT}{GOOD_OUT}{GOOD_OUT}"));
}

#[test]
fn quoted_commas_quotes_and_newlines() {
    let input = format!(
        "{H}\n1,\"Doe, Jane\",j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n\
         2,\"Jo \"\"JJ\"\" Smith\",j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n\
         3,\"two\r\nlines\",j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n\
         ,\"x\ny\",j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n"
    );
    let r = run(input.as_bytes());
    assert_eq!(
        r.clean,
        format!(
            "{CH}1,\"Doe, Jane\",j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n\
             2,\"Jo \"\"JJ\"\" Smith\",j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n\
             3,\"two\r\nlines\",j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n"
        )
    );
    // The record after the two-line one starts on line 6.
    assert_eq!(
        r.rejected,
        format!("{RH}6,missing_id,,\"x\ny\",j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n")
    );
}

#[test]
fn quote_only_opens_at_field_start() {
    // `a"b` is data; `"x"y` appends y after the closing quote.
    let input = format!("{H}\n1,a\"b,\"x\"y@z.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n");
    let r = run(input.as_bytes());
    assert_eq!(
        r.clean,
        format!("{CH}1,\"a\"\"b\",xy@z.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n")
    );
}

#[test]
fn blank_lines_are_skipped_but_counted() {
    let input = format!("\n{H}\n\n\r\n{GOOD}\n\n,{}\n\n", &GOOD[2..]);
    let r = run(input.as_bytes());
    assert_eq!(r.summary.records, 2);
    assert_eq!(
        r.rejected,
        format!("{RH}7,missing_id,,Ann,ann@x.io,2025-01-01T00:00:00,2025-01-02T00:00:00\n")
    );
}

#[test]
fn whitespace_only_line_is_a_one_field_record() {
    let input = format!("{H}\n \n{GOOD}\n");
    let r = run(input.as_bytes());
    assert_eq!(r.summary.records, 2);
    assert_eq!(r.rejected, format!("{RH}2,malformed_row,\" \",,,,\n"));
}

#[test]
fn no_trailing_newline_and_unclosed_quote() {
    let r = run(format!("{H}\n{GOOD}").as_bytes());
    assert_eq!(r.clean, format!("{CH}{GOOD_OUT}"));
    let r = run(format!("{H}\n{GOOD}\n2,\"open,x@y.io\n").as_bytes());
    assert_eq!(r.summary.records, 2);
    assert_eq!(
        r.rejected,
        format!("{RH}3,malformed_row,2,\"open,x@y.io\n\",,,\n")
    );
}

#[test]
fn wrong_field_counts() {
    let input = format!("{H}\n1,Ann,ann@x.io,2025-01-01T00:00:00\n{GOOD},extra\n{GOOD},\n");
    let r = run(input.as_bytes());
    assert_eq!(
        r.rejected,
        format!(
            "{RH}2,malformed_row,1,Ann,ann@x.io,2025-01-01T00:00:00,\n\
             3,malformed_row,1,Ann,ann@x.io,2025-01-01T00:00:00,2025-01-02T00:00:00\n\
             4,malformed_row,1,Ann,ann@x.io,2025-01-01T00:00:00,2025-01-02T00:00:00\n"
        )
    );
    assert_eq!(r.summary.reasons.get(Reason::MalformedRow), 3);
}

#[test]
fn malformed_row_takes_precedence_over_bad_values() {
    let input = format!("{H}\n,,not-an-email,\n");
    let r = run(input.as_bytes());
    assert_eq!(
        r.rejected,
        format!("{RH}2,malformed_row,,,not-an-email,,\n")
    );
}

#[test]
fn invalid_utf8_in_a_required_or_an_ignored_column() {
    let mut input = format!("{H},note\n").into_bytes();
    input.extend_from_slice(b"1,Jos\xe9,j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00,ok\n");
    input.extend_from_slice(b"2,Ann,a@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00,caf\xe9\n");
    input.extend_from_slice(b"3,Ann,bad email,2025-01-01T00:00:00,2025-01-01T00:00:00,\xff\n");
    input.extend_from_slice(format!("{GOOD},fine\n").as_bytes());
    let r = run(&input);
    assert_eq!(
        r.rejected,
        format!(
            "{RH}2,invalid_utf8,1,Jos\u{fffd},j@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n\
             3,invalid_utf8,2,Ann,a@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n\
             4,invalid_utf8,3,Ann,bad email,2025-01-01T00:00:00,2025-01-01T00:00:00\n"
        )
    );
    assert_eq!(r.clean, format!("{CH}{GOOD_OUT}"));
}

#[test]
fn utf8_split_by_a_quote_is_invalid() {
    // `"a\xC3"\xA9` unquotes to the valid `aé`, but the next field ends inside a character.
    let mut input = format!("{H}\n").into_bytes();
    input.extend_from_slice(b"1,\"n\xc3\"\xa9,x@y.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n");
    input.extend_from_slice(b"2,\"n\xc3\",\xa9x@y.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n");
    let r = run(&input);
    assert_eq!(r.summary.clean, 1);
    assert!(r.clean.contains("1,n\u{e9},x@y.io"), "{}", r.clean);
    assert!(
        r.rejected.starts_with(&format!("{RH}3,invalid_utf8,2,")),
        "{}",
        r.rejected
    );
}

#[test]
fn missing_header_column_rejects_everything() {
    let input = "id,name,create_ts,update_ts\n1,Ann,2025-01-01T00:00:00,2025-01-01T00:00:00\n2\n";
    let r = run(input.as_bytes());
    assert_eq!(
        r.summary.header_problem,
        Some(HeaderProblem::Missing("email"))
    );
    assert_eq!(
        json(&r.summary),
        r#"{"records":2,"clean":0,"rejected":2,"reasons":{"invalid_header":2}}"#
    );
    assert_eq!(r.clean, "");
    // Columns that can be located still show their values.
    assert_eq!(
        r.rejected,
        format!(
            "{RH}2,invalid_header,1,Ann,,2025-01-01T00:00:00,2025-01-01T00:00:00\n\
             3,invalid_header,2,,,,\n"
        )
    );
}

#[test]
fn duplicate_header_column_rejects_everything() {
    let input = format!("{H},Email\n{GOOD},b@x.io\n");
    let r = run(input.as_bytes());
    assert_eq!(
        r.summary.header_problem,
        Some(HeaderProblem::Duplicate("email"))
    );
    assert_eq!(
        r.rejected,
        format!("{RH}2,invalid_header,1,Ann,,2025-01-01T00:00:00,2025-01-02T00:00:00\n")
    );
}

#[test]
fn reordered_upper_case_header_with_extras() {
    let input = "Extra, UPDATE_TS ,Email,ID,extra,Name,Create_TS\n\
                 x,2025-01-02T00:00:00, ANN@X.IO ,1,y,Ann,2025-01-01T00:00:00\n";
    let r = run(input.as_bytes());
    assert_eq!(r.summary.header_problem, None);
    assert_eq!(r.clean, format!("{CH}{GOOD_OUT}"));
}

#[test]
fn non_utf8_header_rejects_everything() {
    let input = format!("{H},caf\u{e9}\n").replace('\u{e9}', "\u{fffd}");
    let mut bytes = input.into_bytes();
    let at = bytes.len() - 4;
    bytes.splice(at..at + 3, [0xe9]);
    bytes.extend_from_slice(format!("{GOOD},x\n").as_bytes());
    let r = run(&bytes);
    assert_eq!(r.summary.header_problem, Some(HeaderProblem::NotUtf8));
    assert_eq!(r.summary.reasons.get(Reason::InvalidHeader), 1);
}

#[test]
fn semicolon_separated_file_is_an_invalid_header() {
    let input = "id;name;email;create_ts;update_ts\n1;Ann;ann@x.io;2025-01-01T00:00:00;2025-01-02T00:00:00\n";
    let r = run(input.as_bytes());
    assert_eq!(r.summary.header_problem, Some(HeaderProblem::Missing("id")));
    assert_eq!(
        r.rejected,
        format!("{RH}2,invalid_header,,,,,\n"),
        "no column can be located"
    );
}

#[test]
fn header_only_and_empty_files() {
    for input in [
        "",
        "\n\n",
        H,
        &format!("{H}\r\n"),
        &format!("\u{feff}{H}\n\n"),
    ] {
        let r = run(input.as_bytes());
        assert_eq!(
            json(&r.summary),
            r#"{"records":0,"clean":0,"rejected":0,"reasons":{}}"#
        );
        assert_eq!(
            (r.clean.as_str(), r.rejected.as_str()),
            ("", ""),
            "input {input:?}"
        );
    }
}

#[test]
fn a_two_megabyte_field() {
    let name = "N".repeat(2 << 20);
    let input = format!("{H}\n1,{name},a@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00\n{GOOD}\n");
    let r = run_with(input.as_bytes(), shared::record::MAX_RECORD_BYTES, 1 << 20);
    assert_eq!(r.0.clean, 2);
    let clean = String::from_utf8(r.1).expect("utf-8");
    assert!(clean.contains(&format!("1,{name},a@x.io")));
    assert!(clean.ends_with(GOOD_OUT));
}

#[test]
fn record_too_large_is_rejected_without_its_values() {
    // With a small limit: a long row in the middle, and an unclosed quote at the end.
    let input = format!(
        "{H}\n{GOOD}\n2,{},a@x.io,x,y\n{GOOD}\n3,\"open\n{GOOD}\n",
        "N".repeat(100)
    );
    let r = run_max(input.as_bytes(), 60);
    assert_eq!(
        r.rejected,
        format!("{RH}3,record_too_large,,,,,\n5,record_too_large,,,,,\n")
    );
    assert_eq!(
        json(&r.summary),
        r#"{"records":4,"clean":2,"rejected":2,"reasons":{"record_too_large":2}}"#
    );
    // A header over the limit makes the header unusable.
    let r = run_max(format!("{H}\n{GOOD}\n").as_bytes(), 10);
    assert_eq!(r.summary.header_problem, Some(HeaderProblem::TooLarge));
    assert_eq!(r.rejected, format!("{RH}2,invalid_header,,,,,\n"));
}

#[test]
fn record_too_large_at_the_real_limit() {
    // An unclosed quote at the top of a file larger than 16 MiB: one rejected record.
    let mut input = format!("{H}\n{GOOD}\n\"").into_bytes();
    input.resize(input.len() + (16 << 20) + 10, b'x');
    let (summary, clean, rejected) = run_with(&input, shared::record::MAX_RECORD_BYTES, 1 << 20);
    assert_eq!(summary.records, 2);
    assert_eq!(clean, format!("{CH}{GOOD_OUT}").as_bytes());
    assert_eq!(
        rejected,
        format!("{RH}3,record_too_large,,,,,\n").as_bytes()
    );
}

#[test]
fn every_reason_with_its_counts() {
    let t1 = "2025-01-01T00:00:00";
    let t2 = "2025-01-02T00:00:00";
    let input = format!(
        "{H}\n\
         ,Ann,a@x.io,{t1},{t2}\n\
         1,,a@x.io,{t1},{t2}\n\
         1,Ann,a@b,{t1},{t2}\n\
         1,Ann,a@x.io,2025-02-30T00:00:00,{t2}\n\
         1,Ann,a@x.io,{t1},2025-01-02\n\
         1,Ann,a@x.io,{t2},{t1}\n\
         ,,x,{t2},{t1}\n\
         1,Ann,a@x.io,2025-06-01T13:00:00+02:00,2025-06-01T12:00:00Z\n"
    );
    let r = run(input.as_bytes());
    assert_eq!(
        r.rejected,
        format!(
            "{RH}2,missing_id,,Ann,a@x.io,{t1},{t2}\n\
             3,missing_name,1,,a@x.io,{t1},{t2}\n\
             4,invalid_email,1,Ann,a@b,{t1},{t2}\n\
             5,invalid_create_ts,1,Ann,a@x.io,2025-02-30T00:00:00,{t2}\n\
             6,invalid_update_ts,1,Ann,a@x.io,{t1},2025-01-02\n\
             7,update_before_create,1,Ann,a@x.io,{t2},{t1}\n\
             8,missing_id;missing_name;invalid_email;update_before_create,,,x,{t2},{t1}\n"
        )
    );
    assert_eq!(
        json(&r.summary),
        r#"{"records":8,"clean":1,"rejected":7,"reasons":{"missing_id":2,"missing_name":2,"invalid_email":2,"invalid_create_ts":1,"invalid_update_ts":1,"update_before_create":2}}"#
    );
}

#[test]
fn outputs_read_back() {
    let input = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/users.csv"))
        .expect("data/users.csv is in the repository");
    let r = run(&input);
    let clean = parse_clean_csv(r.clean.as_bytes()).expect("clean output re-validates");
    assert_eq!(clean.len(), 2);
    assert_eq!(clean[1].email, "led@hotmail.com");
    let rejected = parse_rejected_csv(r.rejected.as_bytes()).expect("rejected output parses");
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].line, 4);
    assert_eq!(rejected[0].reasons.to_string(), "invalid_email");
    assert_eq!(rejected[1].original[2], "guy@lucas.com");
}

#[test]
fn summary_json_reads_back() {
    let s: Summary = serde_json::from_str(
        r#"{"records":3,"clean":1,"rejected":2,"reasons":{"invalid_email":2}}"#,
    )
    .expect("summary json");
    assert_eq!(s.reasons.get(Reason::InvalidEmail), 2);
    assert_eq!(s.records, 3);
}
