//! Where outputs go (SPEC §3): event key decoding and the raw / refined key layout.

use std::fmt;

use crate::Timestamp;

/// An S3 event key that does not decode to UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDecodeError {
    pub key: String,
}

impl fmt::Display for KeyDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "object key `{}` does not decode to utf-8", self.key)
    }
}

impl std::error::Error for KeyDecodeError {}

/// Decodes an S3 event object key: `+` is a space, then `%XX` escapes (UTF-8).
///
/// `+` is replaced before percent-decoding, so `%2B` stays a literal `+`. A `%` not followed by
/// two hex digits is kept as is.
pub fn decode_event_key(raw: &str) -> Result<String, KeyDecodeError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| KeyDecodeError {
            key: raw.to_owned(),
        })
}

/// The refined partition of an event time: `date=YYYY-MM-DD/hour=HH` (UTC).
pub fn partition(event_time: Timestamp) -> String {
    let (year, month, day, hour) = event_time.utc_date_hour();
    format!("date={year:04}-{month:02}-{day:02}/hour={hour:02}")
}

/// `<name>` of a file name: the name without a final `.csv` (case-sensitive), else the whole name.
pub fn output_stem(file_name: &str) -> &str {
    file_name.strip_suffix(".csv").unwrap_or(file_name)
}

/// Local output paths for `deployer check`, relative to the output directory:
/// (`<name>_cleaned.csv`, `rejected/<name>_rejected.csv`).
pub fn local_output_paths(file_name: &str) -> (String, String) {
    let stem = output_stem(file_name);
    (
        format!("{stem}_cleaned.csv"),
        format!("rejected/{stem}_rejected.csv"),
    )
}

/// Local Parquet output paths for `deployer check`, relative to the output directory:
/// (`<name>.parquet`, `rejected/<name>_rejected.parquet`).
pub fn local_parquet_paths(file_name: &str) -> (String, String) {
    let stem = output_stem(file_name);
    (
        format!("{stem}.parquet"),
        format!("rejected/{stem}_rejected.parquet"),
    )
}

/// Folder of the clean rows' Parquet table in the refined bucket (the `users` Glue table).
pub const CURATED_USERS: &str = "curated/users";
/// Folder of the rejected rows' Parquet table in the refined bucket (`users_rejected`).
pub const CURATED_USERS_REJECTED: &str = "curated/users_rejected";

/// Every key derived from one source object and its event time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputKeys {
    /// Same key in the raw bucket.
    pub raw: String,
    /// `refined/date=YYYY-MM-DD/hour=HH/<dir/><name>_cleaned.csv` in the refined bucket.
    pub cleaned: String,
    /// `refined/date=YYYY-MM-DD/hour=HH/<dir/>rejected/<name>_rejected.csv` in the refined bucket.
    pub rejected: String,
    /// `curated/users/date=YYYY-MM-DD/hour=HH/<dir/><name>.parquet` in the refined bucket.
    pub parquet_cleaned: String,
    /// `curated/users_rejected/date=YYYY-MM-DD/hour=HH/<dir/><name>.parquet` in the refined bucket.
    pub parquet_rejected: String,
}

impl OutputKeys {
    /// `source_key` is the decoded key; `event_time` the S3 event's `eventTime`.
    pub fn new(source_key: &str, event_time: Timestamp) -> OutputKeys {
        let (dir, file) = match source_key.rfind('/') {
            Some(slash) => source_key.split_at(slash + 1),
            None => ("", source_key),
        };
        let (cleaned, rejected) = local_output_paths(file);
        let part = partition(event_time);
        let stem = output_stem(file);
        OutputKeys {
            raw: source_key.to_owned(),
            cleaned: format!("refined/{part}/{dir}{cleaned}"),
            rejected: format!("refined/{part}/{dir}{rejected}"),
            parquet_cleaned: format!("{CURATED_USERS}/{part}/{dir}{stem}.parquet"),
            parquet_rejected: format!("{CURATED_USERS_REJECTED}/{part}/{dir}{stem}.parquet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text.as_bytes()).unwrap_or_else(|| panic!("bad test timestamp {text}"))
    }

    #[test]
    fn decodes_event_keys() {
        assert_eq!(decode_event_key("users.csv"), Ok("users.csv".into()));
        assert_eq!(decode_event_key("my+file.csv"), Ok("my file.csv".into()));
        assert_eq!(decode_event_key("a%2Fb.csv"), Ok("a/b.csv".into()));
        assert_eq!(decode_event_key("a%2Bb.csv"), Ok("a+b.csv".into()));
        assert_eq!(decode_event_key("caf%C3%A9.csv"), Ok("café.csv".into()));
        assert_eq!(decode_event_key("100%25+done"), Ok("100% done".into()));
        assert_eq!(decode_event_key("50%.csv"), Ok("50%.csv".into()));
        assert_eq!(
            decode_event_key("bad%FF.csv"),
            Err(KeyDecodeError {
                key: "bad%FF.csv".into()
            })
        );
        assert_eq!(
            decode_event_key("bad%FF.csv").map_err(|e| e.to_string()),
            Err("object key `bad%FF.csv` does not decode to utf-8".into())
        );
    }

    #[test]
    fn key_without_directory_keeps_the_original_layout() {
        let keys = OutputKeys::new("users.csv", at("2025-06-24T15:59:59Z"));
        assert_eq!(
            keys,
            OutputKeys {
                raw: "users.csv".into(),
                cleaned: "refined/date=2025-06-24/hour=15/users_cleaned.csv".into(),
                rejected: "refined/date=2025-06-24/hour=15/rejected/users_rejected.csv".into(),
                parquet_cleaned: "curated/users/date=2025-06-24/hour=15/users.parquet".into(),
                parquet_rejected: "curated/users_rejected/date=2025-06-24/hour=15/users.parquet"
                    .into(),
            }
        );
    }

    #[test]
    fn parquet_keys_share_the_partition_under_their_table_folders() {
        let t = at("2025-01-02T03:04:05+05:00");
        // (source key, clean table key, rejected table key), partition date=2025-01-01/hour=22.
        let cases = [
            (
                "users.csv",
                "curated/users/date=2025-01-01/hour=22/users.parquet",
                "curated/users_rejected/date=2025-01-01/hour=22/users.parquet",
            ),
            (
                "in/2025/my users.csv",
                "curated/users/date=2025-01-01/hour=22/in/2025/my users.parquet",
                "curated/users_rejected/date=2025-01-01/hour=22/in/2025/my users.parquet",
            ),
            (
                "d/export.CSV",
                "curated/users/date=2025-01-01/hour=22/d/export.CSV.parquet",
                "curated/users_rejected/date=2025-01-01/hour=22/d/export.CSV.parquet",
            ),
            (
                "data.csv.gz",
                "curated/users/date=2025-01-01/hour=22/data.csv.gz.parquet",
                "curated/users_rejected/date=2025-01-01/hour=22/data.csv.gz.parquet",
            ),
            (
                "noext",
                "curated/users/date=2025-01-01/hour=22/noext.parquet",
                "curated/users_rejected/date=2025-01-01/hour=22/noext.parquet",
            ),
            (
                "a/rejected/b.csv",
                "curated/users/date=2025-01-01/hour=22/a/rejected/b.parquet",
                "curated/users_rejected/date=2025-01-01/hour=22/a/rejected/b.parquet",
            ),
        ];
        for (source, clean, rejected) in cases {
            let keys = OutputKeys::new(source, t);
            assert_eq!(keys.parquet_cleaned, clean, "{source}");
            assert_eq!(keys.parquet_rejected, rejected, "{source}");
            // Same partition as the CSV outputs; nothing but table files under each table.
            let part = keys.cleaned.split('/').take(3).collect::<Vec<_>>()[1..].join("/");
            assert!(
                keys.parquet_cleaned.contains(&format!("/{part}/")),
                "{source}"
            );
            assert!(keys.parquet_cleaned.starts_with("curated/users/date="));
            assert!(
                keys.parquet_rejected
                    .starts_with("curated/users_rejected/date=")
            );
        }
    }

    #[test]
    fn directories_and_names() {
        let t = at("2025-01-02T03:04:05+05:00");
        let keys = OutputKeys::new("in/2025/my users.csv", t);
        assert_eq!(keys.raw, "in/2025/my users.csv");
        assert_eq!(
            keys.cleaned,
            "refined/date=2025-01-01/hour=22/in/2025/my users_cleaned.csv"
        );
        assert_eq!(
            keys.rejected,
            "refined/date=2025-01-01/hour=22/in/2025/rejected/my users_rejected.csv"
        );
        let keys = OutputKeys::new("d/export.CSV", t);
        assert_eq!(
            keys.cleaned,
            "refined/date=2025-01-01/hour=22/d/export.CSV_cleaned.csv"
        );
        let keys = OutputKeys::new("data.csv.gz", t);
        assert_eq!(
            keys.rejected,
            "refined/date=2025-01-01/hour=22/rejected/data.csv.gz_rejected.csv"
        );
        let keys = OutputKeys::new("noext", t);
        assert_eq!(
            keys.cleaned,
            "refined/date=2025-01-01/hour=22/noext_cleaned.csv"
        );
    }

    #[test]
    fn partitions_from_event_time() {
        assert_eq!(
            partition(at("2025-06-24T15:59:59Z")),
            "date=2025-06-24/hour=15"
        );
        assert_eq!(
            partition(at("2025-06-24T16:00:00Z")),
            "date=2025-06-24/hour=16"
        );
        assert_eq!(
            partition(at("2024-12-31T23:30:00-01:00")),
            "date=2025-01-01/hour=00"
        );
        assert_eq!(
            partition(at("0999-03-04T05:06:07")),
            "date=0999-03-04/hour=05"
        );
    }

    #[test]
    fn local_parquet_outputs() {
        assert_eq!(
            local_parquet_paths("users.csv"),
            (
                "users.parquet".into(),
                "rejected/users_rejected.parquet".into()
            )
        );
        assert_eq!(
            local_parquet_paths("users.txt"),
            (
                "users.txt.parquet".into(),
                "rejected/users.txt_rejected.parquet".into()
            )
        );
    }

    #[test]
    fn local_outputs() {
        assert_eq!(
            local_output_paths("users.csv"),
            (
                "users_cleaned.csv".into(),
                "rejected/users_rejected.csv".into()
            )
        );
        assert_eq!(
            local_output_paths("users.txt"),
            (
                "users.txt_cleaned.csv".into(),
                "rejected/users.txt_rejected.csv".into()
            )
        );
    }
}
