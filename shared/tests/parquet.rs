//! The Parquet outputs read back with the `parquet` crate's own reader: the exact schema of the
//! Glue tables, values, bounded row groups, zero-row files and byte-for-byte determinism.

use bytes::Bytes;
use parquet::basic::{
    Compression, ConvertedType, Encoding, LogicalType, Repetition, TimeUnit, Type as PhysicalType,
};
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;
use parquet::file::statistics::Statistics;
use parquet::record::Field;
use shared::output::{CsvOutputs, parse_clean_csv, parse_rejected_csv};
use shared::parquet::{
    CLEAN_COLUMNS, CREATED_BY, ParquetOutputs, REJECTED_COLUMNS, RowGroup, RowGroupLimits,
    RowGroups, Table, TableEncoder,
};
use shared::{Processor, Summary, Timestamp};

/// Runs `input` through a processor feeding both CSV and Parquet outputs, in `chunk`-byte
/// pieces, draining the Parquet buffers after every `drain_every` pieces.
fn run(
    input: &[u8],
    chunk: usize,
    drain_every: usize,
    limits: RowGroupLimits,
) -> (Vec<u8>, Vec<u8>, CsvOutputs, Summary) {
    let mut p = Processor::new();
    let mut csv = CsvOutputs::new();
    let mut pq = ParquetOutputs::with_limits(limits).expect("parquet writers");
    let (mut clean, mut rejected) = (Vec::new(), Vec::new());
    for (i, piece) in input.chunks(chunk.max(1)).enumerate() {
        p.feed(piece, &mut (&mut csv, &mut pq));
        if i % drain_every.max(1) == 0 {
            clean.append(pq.clean.buffer());
            rejected.append(pq.rejected.buffer());
        }
    }
    let summary = p.finish(&mut (&mut csv, &mut pq));
    assert!(pq.error().is_none(), "{:?}", pq.error());
    let (clean_rest, rejected_rest) = pq.finish().expect("finish");
    clean.extend_from_slice(&clean_rest);
    rejected.extend_from_slice(&rejected_rest);
    (clean, rejected, csv, summary)
}

fn reader(file: &[u8]) -> SerializedFileReader<Bytes> {
    SerializedFileReader::new(Bytes::copy_from_slice(file)).expect("a valid parquet file")
}

/// Every row as (column name, value) pairs.
fn rows(file: &[u8]) -> Vec<Vec<(String, Field)>> {
    let r = reader(file);
    r.get_row_iter(None)
        .expect("row iterator")
        .map(|row| {
            row.expect("row")
                .get_column_iter()
                .map(|(name, field)| (name.clone(), field.clone()))
                .collect()
        })
        .collect()
}

fn text(field: &Field) -> &str {
    match field {
        Field::Str(s) => s,
        other => panic!("expected a string, got {other:?}"),
    }
}

fn micros(field: &Field) -> i64 {
    match field {
        Field::TimestampMicros(v) => *v,
        other => panic!("expected a timestamp, got {other:?}"),
    }
}

fn at(text: &str) -> i64 {
    Timestamp::parse(text.as_bytes())
        .unwrap_or_else(|| panic!("bad test timestamp {text}"))
        .unix_micros()
}

/// The Glue (Hive) type a Parquet column maps to, and whether it is nullable.
fn hive_type(column: &parquet::schema::types::ColumnDescriptor) -> (String, String, bool) {
    let t = match (column.physical_type(), column.logical_type_ref()) {
        (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)) => "string",
        (PhysicalType::INT64, Some(LogicalType::Timestamp(ts)))
            if ts.is_adjusted_to_u_t_c && ts.unit == TimeUnit::MICROS =>
        {
            "timestamp"
        }
        (PhysicalType::INT64, None) => "bigint",
        other => panic!("unexpected column type {other:?}"),
    };
    (
        column.name().to_owned(),
        t.to_owned(),
        column.self_type().get_basic_info().repetition() != Repetition::REQUIRED,
    )
}

const SAMPLE: &[u8] = include_bytes!("../../data/users.csv");

/// Clean rows with every timestamp form, cleaning, commas, quotes and line breaks, plus
/// rejected rows with several reasons, invalid UTF-8 and a malformed row.
const MIXED: &[u8] = b"\xef\xbb\xbfID , Name,EMAIL,create_ts,update_ts,extra\r\n\
1,Luke,A@Gmail.COM,2025-05-10T17:38:35,2025-05-12 15:27:35Z,x\r\n\
2,\"Doe, \"\"Jo\"\"\nJr\",jo@x.io,2025-06-01T13:00:00+02:00,2025-06-01T12:00:00.1234567Z,\r\n\
3, Zo\xc3\xab ,z@x.io,0001-01-01T00:00:00,9999-12-31T23:59:59.999999-05:30,\r\n\
,,bad,2025-02-30T00:00:00,nope,\r\n\
5,n\xff,a@x.io,2025-01-01T00:00:00,2025-01-01T00:00:00,\r\n\
6,short\r\n\
7,Late,l@x.io,2025-06-01T13:00:00+02:00,2025-06-01T12:00:00Z,\r\n";

#[test]
fn schema_is_exactly_the_glue_tables() {
    let (clean, rejected, _, _) = run(SAMPLE, 1 << 20, 1, RowGroupLimits::default());
    let expect_users = [
        ("id", "string"),
        ("name", "string"),
        ("email", "string"),
        ("create_ts", "timestamp"),
        ("update_ts", "timestamp"),
    ];
    let expect_rejected = [
        ("line", "bigint"),
        ("reasons", "string"),
        ("id", "string"),
        ("name", "string"),
        ("email", "string"),
        ("create_ts", "string"),
        ("update_ts", "string"),
    ];
    for (file, expected, names) in [
        (&clean, &expect_users[..], &CLEAN_COLUMNS[..]),
        (&rejected, &expect_rejected[..], &REJECTED_COLUMNS[..]),
    ] {
        let r = reader(file);
        let meta = r.metadata().file_metadata();
        let schema = meta.schema_descr();
        let got: Vec<(String, String, bool)> =
            schema.columns().iter().map(|c| hive_type(c)).collect();
        let want: Vec<(String, String, bool)> = expected
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned(), false))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            schema
                .columns()
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>(),
            names
        );
        // Flat: every column is a top-level field, no repetition, lowercase names.
        for c in schema.columns() {
            assert_eq!(c.path().parts().len(), 1);
            assert_eq!(c.max_rep_level(), 0);
            assert_eq!(c.max_def_level(), 0, "{} is required", c.name());
            assert_eq!(c.name(), c.name().to_lowercase());
            // Old readers see the same through the converted types.
            let converted = c.converted_type();
            match c.physical_type() {
                PhysicalType::BYTE_ARRAY => assert_eq!(converted, ConvertedType::UTF8),
                PhysicalType::INT64 if c.logical_type_ref().is_some() => {
                    assert_eq!(converted, ConvertedType::TIMESTAMP_MICROS)
                }
                _ => assert_eq!(converted, ConvertedType::NONE),
            }
        }
        assert_eq!(meta.created_by(), Some(CREATED_BY));
        assert!(meta.key_value_metadata().is_none());
        for rg in r.metadata().row_groups() {
            for col in rg.columns() {
                let codec = col.compression();
                assert!(
                    matches!(codec, Compression::SNAPPY | Compression::UNCOMPRESSED),
                    "{codec:?}"
                );
            }
        }
    }
}

/// The codec of each column of the file's first row group.
fn codecs(file: &[u8]) -> Vec<(String, Compression)> {
    let r = reader(file);
    r.metadata().row_groups()[0]
        .columns()
        .iter()
        .map(|c| (c.column_path().string(), c.compression()))
        .collect()
}

#[test]
fn snappy_is_kept_where_it_saves_space() {
    // Instants that are all different (a pseudo-random second over ten years) come out of
    // Snappy no smaller, so their chunks are stored as is; the same instant on every row, and
    // all the text columns, compress.
    let mut input = b"id,name,email,create_ts,update_ts\n".to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let t = Timestamp::from_unix(1_500_000_000 + (x % 315_360_000) as i64, 0)
            .expect("in range")
            .to_rfc3339_millis();
        let line = format!(
            "{i},User {},u{i}@example.com,{t},2030-01-01T00:00:00Z\n",
            i % 97
        );
        input.extend_from_slice(line.as_bytes());
    }
    let (clean, _, _, summary) = run(&input, 1 << 16, 1, RowGroupLimits::default());
    assert_eq!(summary.clean, 20_000);
    let want = [
        ("id", Compression::SNAPPY),
        ("name", Compression::SNAPPY),
        ("email", Compression::SNAPPY),
        ("create_ts", Compression::UNCOMPRESSED),
        ("update_ts", Compression::SNAPPY),
    ]
    .map(|(c, codec)| (c.to_owned(), codec));
    assert_eq!(codecs(&clean), want);
    // The repeated instant is a one-entry dictionary; the distinct ones stay PLAIN.
    let dictionary = |column: usize| {
        reader(&clean).metadata().row_groups()[0].columns()[column]
            .encodings()
            .any(|e| e == Encoding::RLE_DICTIONARY)
    };
    assert_eq!((dictionary(3), dictionary(4)), (false, true));
    // And the values read back whatever the codec.
    let rows = rows(&clean);
    assert_eq!(rows.len(), 20_000);
    assert_eq!(micros(&rows[7][4].1), at("2030-01-01T00:00:00Z"));
}

#[test]
fn values_round_trip() {
    let (clean, rejected, csv, summary) = run(MIXED, 5, 3, RowGroupLimits::default());
    assert_eq!((summary.clean, summary.rejected), (4, 3));

    let got = rows(&clean);
    let strings = |row: &Vec<(String, Field)>| -> Vec<String> {
        row[..3].iter().map(|(_, f)| text(f).to_owned()).collect()
    };
    assert_eq!(got.len(), 4);
    assert_eq!(strings(&got[0]), ["1", "Luke", "a@gmail.com"]);
    assert_eq!(strings(&got[1]), ["2", "Doe, \"Jo\"\nJr", "jo@x.io"]);
    assert_eq!(strings(&got[2]), ["3", "Zoë", "z@x.io"]);
    let ts = |row: &Vec<(String, Field)>| (micros(&row[3].1), micros(&row[4].1));
    assert_eq!(
        ts(&got[0]),
        (at("2025-05-10T17:38:35Z"), at("2025-05-12T15:27:35Z"))
    );
    // Offsets are applied; a fraction keeps its microseconds (the rest is truncated).
    assert_eq!(
        ts(&got[1]),
        (
            at("2025-06-01T11:00:00Z"),
            at("2025-06-01T12:00:00.123456Z")
        )
    );
    assert_eq!(ts(&got[1]).0, 1_748_775_600_000_000);
    // The extremes: year 1, and an instant just past 9999 once the offset is applied.
    assert_eq!(
        ts(&got[2]),
        (-62_135_596_800_000_000, 253_402_320_599_999_999)
    );
    assert_eq!(
        ts(&got[3]),
        (at("2025-06-01T11:00:00Z"), at("2025-06-01T12:00:00Z"))
    );

    // Every clean Parquet row is the clean CSV row, with the timestamps as instants.
    let back = parse_clean_csv(&csv.clean).expect("clean csv");
    assert_eq!(back.len(), got.len());
    for (csv_row, pq_row) in back.iter().zip(&got) {
        assert_eq!(
            strings(pq_row),
            [
                csv_row.id.clone(),
                csv_row.name.clone(),
                csv_row.email.clone()
            ]
        );
        assert_eq!(
            ts(pq_row),
            (csv_row.created.unix_micros(), csv_row.updated.unix_micros())
        );
    }

    // Rejected rows: line, reasons, originals (lossy UTF-8), like the CSV output.
    let got = rows(&rejected);
    let back = parse_rejected_csv(&csv.rejected).expect("rejected csv");
    assert_eq!(got.len(), 3);
    assert_eq!(back.len(), 3);
    for (csv_row, pq_row) in back.iter().zip(&got) {
        let names: Vec<&str> = pq_row.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, REJECTED_COLUMNS);
        assert_eq!(pq_row[0].1, Field::Long(csv_row.line as i64));
        assert_eq!(text(&pq_row[1].1), csv_row.reasons.to_string());
        let originals: Vec<&str> = pq_row[2..].iter().map(|(_, f)| text(f)).collect();
        assert_eq!(
            originals,
            csv_row
                .original
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(got[0][0].1, Field::Long(6));
    assert_eq!(
        text(&got[0][1].1),
        "missing_id;missing_name;invalid_email;invalid_create_ts;invalid_update_ts"
    );
    assert_eq!(text(&got[0][6].1), "nope");
    assert_eq!(got[1][0].1, Field::Long(7));
    assert_eq!(text(&got[1][1].1), "invalid_utf8");
    assert_eq!(text(&got[1][3].1), "n\u{fffd}");
    assert_eq!(text(&got[2][1].1), "malformed_row");
    assert_eq!(text(&got[2][2].1), "6");
    assert_eq!(text(&got[2][3].1), "short");
    assert_eq!(text(&got[2][4].1), "");
}

/// A users file of `rows` rows, about one in ten bad.
fn generate(rows: usize) -> Vec<u8> {
    let mut out = b"id,name,email,create_ts,update_ts\n".to_vec();
    for i in 0..rows {
        let line = if i % 10 == 9 {
            format!("{i},User {i},bad-email,2025-01-01T00:00:00,2025-01-01T00:00:00\n")
        } else {
            format!(
                "{i},User {},u{i}@example.com,2025-01-{:02}T10:00:{:02}Z,2025-02-01T00:00:00+01:00\n",
                i % 97,
                1 + i % 28,
                i % 60
            )
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

#[test]
fn row_groups_are_bounded_by_rows_and_by_bytes() {
    let input = generate(2_500);
    // By rows: 2,250 clean rows in groups of at most 1,000.
    let limits = RowGroupLimits {
        rows: 1_000,
        bytes: usize::MAX,
    };
    let (clean, rejected, _, summary) = run(&input, 4096, 1, limits);
    let r = reader(&clean);
    let sizes: Vec<i64> = r
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert_eq!(sizes, [1_000, 1_000, 250]);
    assert_eq!(summary.clean, 2_250);
    let r = reader(&rejected);
    assert_eq!(r.metadata().file_metadata().num_rows(), 250);
    assert_eq!(r.metadata().num_row_groups(), 1);

    // By bytes: a clean row here is 40-45 bytes of values, so 4 KiB groups hold about 100.
    let limits = RowGroupLimits {
        rows: usize::MAX,
        bytes: 4096,
    };
    let (clean, _, _, _) = run(&input, 4096, 1, limits);
    let r = reader(&clean);
    let groups = r.metadata().row_groups();
    assert!(groups.len() > 20, "{}", groups.len());
    for g in &groups[..groups.len() - 1] {
        assert!((85..=115).contains(&g.num_rows()), "{}", g.num_rows());
    }
    assert_eq!(groups.iter().map(|g| g.num_rows()).sum::<i64>(), 2_250);
    assert_eq!(rows(&clean).len(), 2_250);

    // The defaults: 32,768 rows per group.
    let big = generate(160_000);
    let (clean, _, _, _) = run(&big, 1 << 20, 1, RowGroupLimits::default());
    let r = reader(&clean);
    let sizes: Vec<i64> = r
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows())
        .collect();
    assert_eq!(sizes, [32_768, 32_768, 32_768, 32_768, 12_928]);
}

#[test]
fn files_without_rows_are_valid_parquet() {
    for input in [&b""[..], b"id,name,email,create_ts,update_ts\r\n"] {
        let (clean, rejected, _, summary) = run(input, 1, 1, RowGroupLimits::default());
        assert_eq!(summary.records, 0);
        for file in [&clean, &rejected] {
            assert!(file.starts_with(b"PAR1") && file.ends_with(b"PAR1"));
            let r = reader(file);
            assert_eq!(r.metadata().num_row_groups(), 0);
            assert_eq!(r.metadata().file_metadata().num_rows(), 0);
            assert_eq!(rows(file).len(), 0);
        }
        assert_eq!(
            reader(&clean)
                .metadata()
                .file_metadata()
                .schema_descr()
                .num_columns(),
            5
        );
        assert_eq!(
            reader(&rejected)
                .metadata()
                .file_metadata()
                .schema_descr()
                .num_columns(),
            7
        );
    }
    // Only rejected rows: the clean file is empty but valid, and the other way round.
    let (clean, rejected, _, _) = run(b"id,name\n1,2\n", 1 << 20, 1, RowGroupLimits::default());
    assert_eq!(reader(&clean).metadata().file_metadata().num_rows(), 0);
    assert_eq!(reader(&rejected).metadata().file_metadata().num_rows(), 1);
}

#[test]
fn same_rows_give_the_same_bytes_whatever_the_chunking() {
    let mut input = generate(3_000);
    input.extend_from_slice(MIXED.get(3..).unwrap_or_default());
    let limits = RowGroupLimits {
        rows: 700,
        bytes: 16 * 1024,
    };
    let (clean, rejected, _, _) = run(&input, 1 << 20, 1, limits);
    assert!(reader(&clean).metadata().num_row_groups() > 3);
    for (chunk, drain_every) in [(1, 1), (7, 1000), (4096, 3), (65_536, 1), (usize::MAX, 1)] {
        let (c, r, _, _) = run(&input, chunk, drain_every, limits);
        assert!(c == clean, "clean file differs with chunk {chunk}");
        assert!(r == rejected, "rejected file differs with chunk {chunk}");
    }
    // A second run in the same process (other hash seeds) writes the same bytes, too.
    let (c, r, _, _) = run(&input, 1 << 20, 1, limits);
    assert!(c == clean && r == rejected);
    // Nothing variable in the footer.
    let meta = reader(&clean);
    let meta = meta.metadata().file_metadata();
    assert_eq!(meta.created_by(), Some(CREATED_BY));
    assert!(meta.key_value_metadata().is_none());
}

#[test]
fn gathering_and_encoding_apart_gives_the_same_files() {
    let input = generate(4_000);
    let limits = RowGroupLimits {
        rows: 300,
        bytes: 8 * 1024,
    };
    let (clean, rejected, _, _) = run(&input, 1 << 20, 1, limits);

    // Row groups gathered here, encoded later (as `check` does on another thread).
    let mut p = Processor::new();
    let mut groups = RowGroups::new(limits);
    let mut queue: Vec<RowGroup> = Vec::new();
    for piece in input.chunks(10_000) {
        p.feed(piece, &mut groups);
        while let Some(g) = groups.next_ready() {
            queue.push(g);
        }
    }
    p.finish(&mut groups);
    assert_eq!(groups.rows(), (3_600, 400));
    queue.extend(groups.finish());
    assert!(queue.iter().all(|g| !g.is_empty() && g.rows() <= 300));
    let mut enc_clean = TableEncoder::new(Table::Clean).expect("encoder");
    let mut enc_rejected = TableEncoder::new(Table::Rejected).expect("encoder");
    let (mut c, mut r) = (Vec::new(), Vec::new());
    for mut g in queue {
        match g.table() {
            Table::Clean => {
                enc_clean.write(&mut g).expect("encode");
                c.append(enc_clean.buffer());
            }
            Table::Rejected => {
                enc_rejected.write(&mut g).expect("encode");
                r.append(enc_rejected.buffer());
            }
        }
        assert!(g.is_empty(), "written groups are emptied");
    }
    assert_eq!(enc_clean.rows(), 3_600);
    c.extend_from_slice(&enc_clean.finish().expect("footer"));
    r.extend_from_slice(&enc_rejected.finish().expect("footer"));
    assert!(c == clean, "clean file differs");
    assert!(r == rejected, "rejected file differs");
}

#[test]
fn a_group_of_the_other_table_is_an_error_not_a_corrupt_file() {
    let mut encoder = TableEncoder::new(Table::Clean).expect("encoder");
    let mut groups = RowGroups::new(RowGroupLimits {
        rows: 1,
        bytes: usize::MAX,
    });
    let mut p = Processor::new();
    p.feed(b"id,name\n1,2\n", &mut groups);
    p.finish(&mut groups);
    let mut group = groups.next_ready().expect("a full rejected group");
    let err = encoder.write(&mut group).expect_err("wrong table");
    assert_eq!(
        err.to_string(),
        "cannot encode the clean parquet output: a rejected row group cannot go into the clean file"
    );
    // The file is still a valid, empty one.
    let file = encoder.finish().expect("footer");
    assert_eq!(reader(&file).metadata().file_metadata().num_rows(), 0);
}

/// A value as the bytes its statistics compare: strings as UTF-8, integers and instants as
/// numbers (big-endian with the sign flipped, so byte order is numeric order).
fn sort_key(field: &Field) -> Vec<u8> {
    match field {
        Field::Str(s) => s.as_bytes().to_vec(),
        Field::Long(v) | Field::TimestampMicros(v) => {
            ((*v as u64) ^ (1 << 63)).to_be_bytes().to_vec()
        }
        other => panic!("unexpected value {other:?}"),
    }
}

fn statistic_keys(statistics: &Statistics) -> Option<(Vec<u8>, Vec<u8>)> {
    let flip = |v: i64| ((v as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    match statistics {
        Statistics::ByteArray(s) => {
            Some((s.min_opt()?.data().to_vec(), s.max_opt()?.data().to_vec()))
        }
        Statistics::Int64(s) => Some((flip(*s.min_opt()?), flip(*s.max_opt()?))),
        other => panic!("unexpected statistics {other:?}"),
    }
}

/// Several groups and pages, non-ASCII names, long rejected values (whose statistics are left
/// out rather than truncated): (clean, rejected).
fn statistics_files() -> (Vec<u8>, Vec<u8>) {
    let mut input = generate(45_000);
    let long = "x".repeat(100);
    for i in 0..300 {
        let line =
            format!("{i},Zoë Ünicode {i},{long}@example.com,not-a-time,2025-01-01T00:00:00Z\n");
        input.extend_from_slice(line.as_bytes());
    }
    let limits = RowGroupLimits {
        rows: 25_000,
        bytes: usize::MAX,
    };
    let (clean, rejected, _, _) = run(&input, 1 << 16, 1, limits);
    (clean, rejected)
}

/// Every value of every row group of `file`, column by column, as `sort_key`s.
fn columns_by_group(file: &[u8]) -> Vec<Vec<Vec<Vec<u8>>>> {
    let r = reader(file);
    (0..r.num_row_groups())
        .map(|g| {
            let group = r.get_row_group(g).expect("row group");
            let rows: Vec<Vec<Vec<u8>>> = group
                .get_row_iter(None)
                .expect("rows")
                .map(|row| {
                    let row = row.expect("row");
                    row.get_column_iter().map(|(_, f)| sort_key(f)).collect()
                })
                .collect();
            (0..group.num_columns())
                .map(|c| rows.iter().map(|row| row[c].clone()).collect())
                .collect()
        })
        .collect()
}

#[test]
fn the_page_index_locates_every_data_page_with_its_true_bounds() {
    use parquet::file::page_index::column_index::ColumnIndexMetaData;
    let (clean, rejected) = statistics_files();
    let (mut pages, mut bounded) = (0, 0);
    for file in [&clean, &rejected] {
        let values = columns_by_group(file);
        let options = ReadOptionsBuilder::new().with_page_index().build();
        let r = SerializedFileReader::new_with_options(Bytes::copy_from_slice(file), options)
            .expect("a valid parquet file");
        for (g, columns) in values.iter().enumerate() {
            let index = r.metadata().page_index_for_row_group(g);
            for (c, column) in columns.iter().enumerate() {
                let offsets = index
                    .offset_index(c)
                    .expect("every chunk has an offset index");
                let locations = offsets.page_locations();
                // Pages back to back, the first at row 0.
                let mut starts: Vec<usize> = locations
                    .iter()
                    .map(|p| p.first_row_index as usize)
                    .collect();
                assert_eq!(starts.first(), Some(&0), "group {g} column {c}");
                for pair in locations.windows(2) {
                    let end = pair[0].offset + i64::from(pair[0].compressed_page_size);
                    assert_eq!(end, pair[1].offset, "group {g} column {c}");
                }
                starts.push(column.len());
                let bounds: Vec<(Vec<u8>, Vec<u8>)> = starts
                    .windows(2)
                    .map(|w| {
                        let page = &column[w[0]..w[1]];
                        let min = page.iter().min().expect("a page has values");
                        let max = page.iter().max().expect("a page has values");
                        (min.clone(), max.clone())
                    })
                    .collect();
                pages += bounds.len();
                let Some(column_index) = index.column_index(c) else {
                    assert!(column.iter().any(|v| v.len() > 64), "group {g} column {c}");
                    continue;
                };
                let flip = |v: i64| ((v as u64) ^ (1 << 63)).to_be_bytes().to_vec();
                for (k, want) in bounds.into_iter().enumerate() {
                    let got = match column_index {
                        ColumnIndexMetaData::INT64(i) => (
                            i.min_value(k).map(|v| flip(*v)),
                            i.max_value(k).map(|v| flip(*v)),
                        ),
                        ColumnIndexMetaData::BYTE_ARRAY(i) => (
                            i.min_value(k).map(<[u8]>::to_vec),
                            i.max_value(k).map(<[u8]>::to_vec),
                        ),
                        other => panic!("unexpected index {other:?}"),
                    };
                    let want = (Some(want.0), Some(want.1));
                    assert_eq!(got, want, "group {g} column {c} page {k}");
                    bounded += 1;
                }
            }
        }
        // Reading through the offset index gives the same rows.
        let rows_of = |r: &SerializedFileReader<Bytes>| -> Vec<String> {
            r.get_row_iter(None)
                .expect("rows")
                .map(|row| format!("{:?}", row.expect("row")))
                .collect()
        };
        assert_eq!(rows_of(&r), rows_of(&reader(file)));
    }
    assert!(
        bounded > 20 && pages > bounded,
        "{pages} pages, {bounded} with bounds"
    );
}

#[test]
fn statistics_are_the_true_bounds_of_each_chunk_and_page() {
    // Athena skips row groups and pages by these: a wrong bound silently drops rows from
    // query results.
    let (clean, rejected) = statistics_files();
    let mut checked = (0, 0, 0);
    for file in [&clean, &rejected] {
        let options = ReadOptionsBuilder::new()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_page_statistics(true)
                    .build(),
            )
            .build();
        let r = SerializedFileReader::new_with_options(Bytes::copy_from_slice(file), options)
            .expect("a valid parquet file");
        for g in 0..r.num_row_groups() {
            let group = r.get_row_group(g).expect("row group");
            let rows: Vec<Vec<Vec<u8>>> = group
                .get_row_iter(None)
                .expect("rows")
                .map(|row| {
                    row.expect("row")
                        .get_column_iter()
                        .map(|(_, f)| sort_key(f))
                        .collect()
                })
                .collect();
            for c in 0..group.num_columns() {
                let mut values: Vec<&Vec<u8>> = rows.iter().map(|row| &row[c]).collect();
                let chunk = group.metadata().column(c);
                let want = (
                    values.iter().min().map(|v| (*v).clone()),
                    values.iter().max().map(|v| (*v).clone()),
                );
                let long_value = values.iter().any(|v| v.len() > 64);
                match chunk.statistics().and_then(statistic_keys) {
                    Some((min, max)) => {
                        assert_eq!((Some(min), Some(max)), want, "group {g} column {c}");
                        checked.0 += 1;
                    }
                    None => {
                        assert!(long_value, "group {g} column {c} has no statistics");
                        checked.1 += 1;
                    }
                }
                // Pages, in order, each bounding its own values.
                let mut pages = group.get_column_page_reader(c).expect("pages");
                while let Some(page) = pages.get_next_page().expect("page") {
                    if page.page_type() == parquet::basic::PageType::DICTIONARY_PAGE {
                        continue;
                    }
                    let n = page.num_values() as usize;
                    let (these, rest) = values.split_at(n);
                    if let Some((min, max)) = page.statistics().and_then(statistic_keys) {
                        assert_eq!(
                            (Some(&min), Some(&max)),
                            (these.iter().min().copied(), these.iter().max().copied()),
                            "group {g} column {c} page"
                        );
                        checked.2 += 1;
                    }
                    values = rest.to_vec();
                }
                assert!(values.is_empty(), "pages hold every value");
            }
        }
    }
    // Both files' chunks with bounds, the long ones without, and pages past the first.
    assert!(
        checked.0 >= 15 && checked.1 >= 1 && checked.2 > checked.0,
        "{checked:?}"
    );
}
