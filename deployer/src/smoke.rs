//! `deployer smoke`: uploads the sample file to the deployed pipeline and verifies every output against the contract.
//!
//! The expected outputs are computed locally by the same `shared` processor the function runs,
//! so the check is "the deployed pipeline does exactly what the contract code does", plus the
//! sample's known verdicts (ids 1 and 2 clean; 3 `invalid_email`; 4 `update_before_create`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;
use shared::output::{CsvOutputs, parse_clean_csv, parse_rejected_csv};
use shared::{OutputKeys, Processor, Reason, Timestamp};

use crate::aws::{Aws, error_code, sdk_error};
use crate::commands::connect;
use crate::config::{Config, NotificationFilter};
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

/// A key unique to this run, with a space on purpose (S3 events URL-encode it), under the
/// notification's prefix and ending with its suffix, so the deployed notification fires for
/// it whatever the filter.
fn smoke_key(filter: &NotificationFilter, unique: &str) -> String {
    let prefix = filter.prefix.as_deref().unwrap_or_default();
    let name = match filter.suffix.as_deref() {
        Some(suffix) => format!("users sample{suffix}"),
        None => "users sample.csv".to_owned(),
    };
    format!("{prefix}smoke/{unique}/{name}")
}

/// How long smoke waits for the outputs when `--timeout` is not given: on AWS long enough for
/// Lambda's first retry of an invocation (IAM propagation can deny the first one, and the
/// retry comes about a minute later); on an emulator a minute.
pub fn default_timeout(endpoint: Option<&str>) -> Duration {
    match endpoint {
        None => Duration::from_secs(180),
        Some(_) => Duration::from_secs(60),
    }
}

/// The output keys for every hour the object's event time can fall in.
fn candidate_keys(key: &str, from: SystemTime, to: SystemTime) -> Vec<OutputKeys> {
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
    };
    let mut keys: Vec<OutputKeys> = Vec::new();
    // `LastModified` is truncated to the second and `eventTime` has milliseconds: one second
    // either side covers both.
    let (start, end) = (secs(from) - 1, secs(to) + 1);
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

pub async fn run(
    config: &Config,
    output: Output,
    timeout: Option<Duration>,
    keep: bool,
) -> Result<()> {
    let report = Reporter::new(output);
    let expected = expected_outputs()?;
    let timeout = timeout.unwrap_or_else(|| default_timeout(config.target.endpoint.as_deref()));
    let (aws, _identity) = connect(config, &report).await?;
    let unique = format!(
        "{}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
        std::process::id()
    );
    let key = smoke_key(&config.notification, &unique);
    let ingest = &config.buckets.ingest;
    report.line(format!("Uploading the sample to s3://{ingest}/{key}"));
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
    // The event time S3 gives the object is its creation time, which `LastModified` holds
    // (to the second): the partition comes from it, not from this machine's clock.
    let created = aws
        .s3
        .head_object()
        .bucket(ingest)
        .key(&key)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("reading s3://{ingest}/{key} back (HeadObject)"))?
        .last_modified()
        .and_then(|t| u64::try_from(t.secs()).ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(SystemTime::now);
    let candidates = candidate_keys(&key, created, created + Duration::from_secs(1));
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
    let mut checks = Checks {
        uploaded: window.uploaded,
        report,
        done: Vec::new(),
    };
    let deadline = window.uploaded + window.timeout;
    let refined = config.buckets.refined.as_str();
    let raw = [(config.buckets.raw.as_str(), key.to_owned())];
    let found = checks
        .present("raw copy", &raw, aws, deadline, window.timeout)
        .await;
    if let Some((_, bytes)) = found {
        checks.compare("raw copy equals the upload byte for byte", &bytes, SAMPLE);
    }
    let in_refined = |pick: fn(&OutputKeys) -> &String| -> Vec<(&str, String)> {
        candidates
            .iter()
            .map(|k| (refined, pick(k).clone()))
            .collect()
    };
    let cleaned = in_refined(|k| &k.cleaned);
    if let Some((_, bytes)) = checks
        .present("cleaned output", &cleaned, aws, deadline, window.timeout)
        .await
    {
        let ids = parse_clean_csv(&bytes)
            .map(|rows| rows.into_iter().map(|r| r.id).collect::<Vec<_>>())
            .map_err(|e| e.to_string());
        checks.record(
            "cleaned rows re-validate clean (ids 1, 2)",
            ids.as_ref().is_ok_and(|ids| ids == &["1", "2"]),
            format!("ids {}", shown(&ids)),
        );
        checks.compare(
            "cleaned output equals local processing",
            &bytes,
            &expected.cleaned,
        );
    }
    let rejected = in_refined(|k| &k.rejected);
    if let Some((_, bytes)) = checks
        .present("rejected output", &rejected, aws, deadline, window.timeout)
        .await
    {
        let got = parse_rejected_csv(&bytes)
            .map(|rows| {
                rows.iter()
                    .map(|r| (r.original[0].clone(), r.reasons.to_string()))
                    .collect::<Vec<_>>()
            })
            .map_err(|e| e.to_string());
        let want = vec![
            ("3".to_owned(), Reason::InvalidEmail.code().to_owned()),
            ("4".to_owned(), Reason::UpdateBeforeCreate.code().to_owned()),
        ];
        checks.record(
            "rejected rows are id 3 invalid_email and id 4 update_before_create",
            got.as_ref().is_ok_and(|got| *got == want),
            shown(&got),
        );
        checks.compare(
            "rejected output equals local processing",
            &bytes,
            &expected.rejected,
        );
    }
    // The Parquet copies under curated/, byte for byte (the writer is deterministic).
    if config.outputs.parquet {
        for (what, want, keys) in [
            (
                "clean parquet",
                &expected.parquet_cleaned,
                in_refined(|k| &k.parquet_cleaned),
            ),
            (
                "rejected parquet",
                &expected.parquet_rejected,
                in_refined(|k| &k.parquet_rejected),
            ),
        ] {
            if let Some((found, bytes)) = checks
                .find(what, &keys, aws, deadline, window.timeout)
                .await
            {
                checks.record(
                    &format!("{what} equals local processing"),
                    bytes == *want,
                    format!("s3://{refined}/{found}"),
                );
            }
        }
    }
    checks.done
}

/// The checks decided so far, each printed as it is decided.
struct Checks<'a> {
    uploaded: Instant,
    report: &'a Reporter,
    done: Vec<Check>,
}

impl Checks<'_> {
    fn record(&mut self, name: &str, passed: bool, detail: String) {
        let check = Check {
            name: name.to_owned(),
            passed,
            seconds: self.uploaded.elapsed().as_secs_f64(),
            detail,
        };
        self.report.line(format!(
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
        self.done.push(check);
    }

    fn compare(&mut self, name: &str, got: &[u8], want: &[u8]) {
        let detail = if got == want {
            String::new()
        } else {
            format!("{} bytes instead of {}", got.len(), want.len())
        };
        self.record(name, got == want, detail);
    }

    /// Waits for one of `keys`; records only a failure (the caller records what it checks).
    async fn find(
        &mut self,
        what: &str,
        keys: &[(&str, String)],
        aws: &Aws,
        deadline: Instant,
        timeout: Duration,
    ) -> Option<(String, Vec<u8>)> {
        match poll(aws, keys, deadline).await {
            Ok(Some(found)) => Some(found),
            Ok(None) => {
                let names: Vec<String> =
                    keys.iter().map(|(b, k)| format!("s3://{b}/{k}")).collect();
                self.record(
                    &format!("{what} present"),
                    false,
                    format!("none of {names:?} appeared within {timeout:?}"),
                );
                None
            }
            Err(e) => {
                self.record(&format!("{what} present"), false, format!("{e:#}"));
                None
            }
        }
    }

    /// Waits for one of `keys` and records that it is present.
    async fn present(
        &mut self,
        what: &str,
        keys: &[(&str, String)],
        aws: &Aws,
        deadline: Instant,
        timeout: Duration,
    ) -> Option<(String, Vec<u8>)> {
        let found = self.find(what, keys, aws, deadline, timeout).await?;
        let bucket = keys
            .iter()
            .find(|(_, k)| *k == found.0)
            .map_or("", |(b, _)| *b);
        self.record(
            &format!("{what} present"),
            true,
            format!("s3://{bucket}/{}", found.0),
        );
        Some(found)
    }
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
        crate::resources::bucket::delete_versions(aws, bucket, Some(&key))
            .await
            .with_context(|| format!("cleaning up s3://{bucket}/{key}"))?;
    }
    Ok(())
}

/// What a check read, for its detail: the values, or why the output could not be read.
fn shown<T: std::fmt::Debug>(read: &Result<T, String>) -> String {
    match read {
        Ok(values) => format!("{values:?}"),
        Err(e) => format!("unreadable: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_details_show_values_not_results() {
        assert_eq!(shown(&Ok::<_, String>(vec!["1", "2"])), r#"["1", "2"]"#);
        assert_eq!(
            shown(&Err::<Vec<&str>, _>("bad header".to_owned())),
            "unreadable: bad header"
        );
    }

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
    fn the_smoke_key_is_under_the_notification_prefix_with_its_suffix() {
        let filter = |prefix: Option<&str>, suffix: Option<&str>| NotificationFilter {
            prefix: prefix.map(str::to_owned),
            suffix: suffix.map(str::to_owned),
        };
        assert_eq!(
            smoke_key(&filter(None, None), "1-2"),
            "smoke/1-2/users sample.csv"
        );
        assert_eq!(
            smoke_key(&filter(Some("incoming/"), Some(".csv")), "1-2"),
            "incoming/smoke/1-2/users sample.csv"
        );
        assert_eq!(
            smoke_key(&filter(Some("in-"), Some("_v1.CSV")), "1-2"),
            "in-smoke/1-2/users sample_v1.CSV"
        );
        assert_eq!(default_timeout(None), Duration::from_secs(180));
        assert_eq!(
            default_timeout(Some("http://127.0.0.1:4566")),
            Duration::from_secs(60)
        );
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
