//! `deployer smoke`: uploads the sample file to the deployed pipeline and verifies every output against the contract.
//!
//! The expected outputs are computed locally by the same `shared` processor the function runs,
//! so the check is "the deployed pipeline does exactly what the contract code does", plus the
//! sample's known verdicts (ids 1 and 2 clean; 3 `invalid_email`; 4 `update_before_create`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use serde::Serialize;
use shared::output::{CsvOutputs, parse_clean_csv, parse_rejected_csv};
use shared::{OutputKeys, Processor, Reason, Timestamp};

use crate::aws::{Aws, error_code, sdk_error};
use crate::commands::connect;
use crate::config::Config;
use crate::report::{Output, Reporter, print_json};

/// The repository's sample: 4 rows, 2 clean, 2 rejected.
pub const SAMPLE: &[u8] = include_bytes!("../../data/users.csv");

/// One verified property of the deployed pipeline.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// Seconds since the upload finished when the check was decided.
    pub seconds: f64,
    pub detail: String,
}

#[derive(Debug, Serialize)]
struct SmokeJson<'a> {
    passed: bool,
    key: &'a str,
    checks: &'a [Check],
}

/// What the function must produce for `SAMPLE`.
struct Expected {
    cleaned: Vec<u8>,
    rejected: Vec<u8>,
    parquet_cleaned: Vec<u8>,
    parquet_rejected: Vec<u8>,
}

fn expected_outputs() -> Result<Expected> {
    let mut outputs = CsvOutputs::new();
    let mut processor = Processor::new();
    processor.feed(SAMPLE, &mut outputs);
    processor.finish(&mut outputs);
    // The Parquet writer is deterministic, so the function's files are these bytes exactly.
    let (parquet_cleaned, parquet_rejected) =
        shared::parquet::encode(SAMPLE).context("encoding the sample as parquet")?;
    Ok(Expected {
        cleaned: outputs.clean,
        rejected: outputs.rejected,
        parquet_cleaned,
        parquet_rejected,
    })
}

/// A key unique to this run, with a space on purpose: S3 events URL-encode it.
fn smoke_key() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "smoke/{}-{}/users sample.csv",
        now.as_millis(),
        std::process::id()
    )
}

/// The output keys for every hour the object's event time can fall in.
fn candidate_keys(key: &str, from: SystemTime, to: SystemTime) -> Vec<OutputKeys> {
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    };
    let mut keys: Vec<OutputKeys> = Vec::new();
    let (start, end) = (secs(from) - 5, secs(to) + 5);
    let mut hour = start - start.rem_euclid(3600);
    while hour <= end {
        if let Some(t) = Timestamp::from_unix(hour.max(start), 0) {
            let k = OutputKeys::new(key, t);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        hour += 3600;
    }
    keys
}

pub async fn run(config: &Config, output: Output, timeout: Duration, keep: bool) -> Result<()> {
    let report = Reporter::new(output);
    let expected = expected_outputs()?;
    let (aws, _identity) = connect(config, &report).await?;
    let key = smoke_key();
    let ingest = &config.buckets.ingest;
    report.line(format!("Uploading the sample to s3://{ingest}/{key}"));
    let before = SystemTime::now();
    aws.s3
        .put_object()
        .bucket(ingest)
        .key(&key)
        .body(ByteStream::from_static(SAMPLE))
        .content_type("text/csv")
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("uploading the smoke sample to s3://{ingest}/{key} (is the stack deployed? run `up`)"))?;
    let uploaded = Instant::now();
    let candidates = candidate_keys(&key, before, SystemTime::now());
    let checks = verify(
        &aws,
        config,
        &key,
        &candidates,
        &expected,
        Window { uploaded, timeout },
        &report,
    )
    .await;
    if !keep {
        cleanup(&aws, config, &key, &candidates).await?;
    }
    let passed = checks.iter().all(|c| c.passed);
    if output == Output::Json {
        print_json(&SmokeJson {
            passed,
            key: &key,
            checks: &checks,
        })?;
    }
    if !passed {
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        bail!("smoke test failed: {}", failed.join("; "));
    }
    report.line(format!("Smoke test passed: {} checks.", checks.len()));
    Ok(())
}

/// When the upload finished and how long its outputs may take.
struct Window {
    uploaded: Instant,
    timeout: Duration,
}

async fn verify(
    aws: &Aws,
    config: &Config,
    key: &str,
    candidates: &[OutputKeys],
    expected: &Expected,
    window: Window,
    report: &Reporter,
) -> Vec<Check> {
    let Window { uploaded, timeout } = window;
    let mut checks = Vec::new();
    let mut record = |name: &str, passed: bool, detail: String| {
        let check = Check {
            name: name.to_owned(),
            passed,
            seconds: uploaded.elapsed().as_secs_f64(),
            detail,
        };
        report.line(format!(
            "  {} {} ({:.2} s){}",
            if passed { "PASS" } else { "FAIL" },
            check.name,
            check.seconds,
            if check.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", check.detail)
            }
        ));
        checks.push(check);
    };
    let deadline = uploaded + timeout;
    let raw_bucket = &config.buckets.raw;
    let refined = &config.buckets.refined;

    // 1. The raw copy, byte for byte.
    match poll(aws, &[(raw_bucket.as_str(), key.to_owned())], deadline).await {
        Ok(Some((_, bytes))) => {
            record("raw copy present", true, format!("s3://{raw_bucket}/{key}"));
            let same = bytes == SAMPLE;
            record(
                "raw copy equals the upload byte for byte",
                same,
                if same {
                    String::new()
                } else {
                    format!("{} bytes instead of {}", bytes.len(), SAMPLE.len())
                },
            );
        }
        Ok(None) => record(
            "raw copy present",
            false,
            format!("s3://{raw_bucket}/{key} not there after {timeout:?}"),
        ),
        Err(e) => record("raw copy present", false, format!("{e:#}")),
    }

    // 2. The cleaned output, in the event-time partition.
    let cleaned_keys: Vec<(&str, String)> = candidates
        .iter()
        .map(|k| (refined.as_str(), k.cleaned.clone()))
        .collect();
    match poll(aws, &cleaned_keys, deadline).await {
        Ok(Some((found, bytes))) => {
            record(
                "cleaned output present",
                true,
                format!("s3://{refined}/{found}"),
            );
            match parse_clean_csv(&bytes) {
                Ok(rows) => {
                    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
                    record(
                        "cleaned rows re-validate clean (ids 1, 2)",
                        ids == ["1", "2"],
                        format!("ids {ids:?}"),
                    );
                }
                Err(e) => record(
                    "cleaned rows re-validate clean (ids 1, 2)",
                    false,
                    e.to_string(),
                ),
            }
            let same = bytes == expected.cleaned;
            record(
                "cleaned output equals local processing",
                same,
                String::new(),
            );
        }
        Ok(None) => record(
            "cleaned output present",
            false,
            format!("none of {cleaned_keys:?} appeared within {timeout:?}"),
        ),
        Err(e) => record("cleaned output present", false, format!("{e:#}")),
    }

    // 3. The rejected output: exactly rows 3 and 4, with their reasons.
    let rejected_keys: Vec<(&str, String)> = candidates
        .iter()
        .map(|k| (refined.as_str(), k.rejected.clone()))
        .collect();
    match poll(aws, &rejected_keys, deadline).await {
        Ok(Some((found, bytes))) => {
            record(
                "rejected output present",
                true,
                format!("s3://{refined}/{found}"),
            );
            match parse_rejected_csv(&bytes) {
                Ok(rows) => {
                    let got: Vec<(String, String)> = rows
                        .iter()
                        .map(|r| (r.original[0].clone(), r.reasons.to_string()))
                        .collect();
                    let want = vec![
                        ("3".to_owned(), Reason::InvalidEmail.code().to_owned()),
                        ("4".to_owned(), Reason::UpdateBeforeCreate.code().to_owned()),
                    ];
                    record(
                        "rejected rows are id 3 invalid_email and id 4 update_before_create",
                        got == want,
                        format!("{got:?}"),
                    );
                }
                Err(e) => record(
                    "rejected rows are id 3 invalid_email and id 4 update_before_create",
                    false,
                    e.to_string(),
                ),
            }
            let same = bytes == expected.rejected;
            record(
                "rejected output equals local processing",
                same,
                String::new(),
            );
        }
        Ok(None) => record(
            "rejected output present",
            false,
            format!("none of {rejected_keys:?} appeared within {timeout:?}"),
        ),
        Err(e) => record("rejected output present", false, format!("{e:#}")),
    }

    // 4. The Parquet copies under curated/, byte for byte (the writer is deterministic).
    if config.outputs.parquet {
        for (what, want, keys) in [
            (
                "clean parquet",
                &expected.parquet_cleaned,
                candidates
                    .iter()
                    .map(|k| k.parquet_cleaned.clone())
                    .collect::<Vec<_>>(),
            ),
            (
                "rejected parquet",
                &expected.parquet_rejected,
                candidates
                    .iter()
                    .map(|k| k.parquet_rejected.clone())
                    .collect(),
            ),
        ] {
            let keys: Vec<(&str, String)> =
                keys.into_iter().map(|k| (refined.as_str(), k)).collect();
            match poll(aws, &keys, deadline).await {
                Ok(Some((found, bytes))) => record(
                    &format!("{what} equals local processing"),
                    bytes == *want,
                    format!("s3://{refined}/{found}"),
                ),
                Ok(None) => record(
                    &format!("{what} present"),
                    false,
                    format!("none of {keys:?} appeared within {timeout:?}"),
                ),
                Err(e) => record(&format!("{what} present"), false, format!("{e:#}")),
            }
        }
    }
    checks
}

/// Polls until one of `keys` exists (returning it and its bytes) or the deadline passes.
async fn poll(
    aws: &Aws,
    keys: &[(&str, String)],
    deadline: Instant,
) -> Result<Option<(String, Vec<u8>)>> {
    let mut delay = Duration::from_millis(50);
    loop {
        for (bucket, key) in keys {
            match aws.s3.get_object().bucket(*bucket).key(key).send().await {
                Ok(out) => {
                    let bytes = out
                        .body
                        .collect()
                        .await
                        .with_context(|| format!("reading s3://{bucket}/{key}"))?
                        .into_bytes();
                    return Ok(Some((key.clone(), bytes.to_vec())));
                }
                Err(e) if error_code(&e) == Some("NoSuchKey") => {}
                Err(e) => {
                    return Err(sdk_error(e))
                        .with_context(|| format!("reading s3://{bucket}/{key}"));
                }
            }
        }
        if Instant::now() + delay > deadline {
            return Ok(None);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// Deletes every version of the smoke objects (the raw bucket is versioned).
async fn cleanup(aws: &Aws, config: &Config, key: &str, candidates: &[OutputKeys]) -> Result<()> {
    let mut targets: Vec<(&str, String)> = vec![
        (config.buckets.ingest.as_str(), key.to_owned()),
        (config.buckets.raw.as_str(), key.to_owned()),
    ];
    for k in candidates {
        targets.push((config.buckets.refined.as_str(), k.cleaned.clone()));
        targets.push((config.buckets.refined.as_str(), k.rejected.clone()));
        targets.push((config.buckets.refined.as_str(), k.parquet_cleaned.clone()));
        targets.push((config.buckets.refined.as_str(), k.parquet_rejected.clone()));
    }
    for (bucket, key) in targets {
        let versions = aws
            .s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(&key)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("cleaning up s3://{bucket}/{key}"))?;
        let ids: Vec<ObjectIdentifier> = versions
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                versions
                    .delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter(|(k, _)| *k == Some(key.as_str()))
            .filter_map(|(k, v)| {
                ObjectIdentifier::builder()
                    .set_key(k.map(str::to_owned))
                    .set_version_id(v.filter(|v| *v != "null").map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        if ids.is_empty() {
            continue;
        }
        aws.s3
            .delete_objects()
            .bucket(bucket)
            .delete(
                Delete::builder()
                    .set_objects(Some(ids))
                    .quiet(true)
                    .build()?,
            )
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("cleaning up s3://{bucket}/{key}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_has_the_known_verdicts() {
        let e = expected_outputs().unwrap();
        assert!(e.parquet_cleaned.starts_with(b"PAR1") && e.parquet_cleaned.ends_with(b"PAR1"));
        assert!(e.parquet_rejected.starts_with(b"PAR1") && e.parquet_rejected.ends_with(b"PAR1"));
        let clean = parse_clean_csv(&e.cleaned).unwrap();
        assert_eq!(
            clean.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["1", "2"]
        );
        let rejected = parse_rejected_csv(&e.rejected).unwrap();
        assert_eq!(rejected.len(), 2);
    }

    #[test]
    fn candidate_keys_cover_an_hour_boundary() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        // 2025-06-24T15:59:58Z .. 16:00:01Z spans two partitions.
        let keys = candidate_keys(
            "smoke/x/users sample.csv",
            at(1_750_780_798),
            at(1_750_780_801),
        );
        let cleaned: Vec<&str> = keys.iter().map(|k| k.cleaned.as_str()).collect();
        assert_eq!(
            cleaned,
            [
                "refined/date=2025-06-24/hour=15/smoke/x/users sample_cleaned.csv",
                "refined/date=2025-06-24/hour=16/smoke/x/users sample_cleaned.csv"
            ]
        );
        // Well inside an hour: one partition.
        assert_eq!(
            candidate_keys("k.csv", at(1_750_779_000), at(1_750_779_001)).len(),
            1
        );
    }
}
