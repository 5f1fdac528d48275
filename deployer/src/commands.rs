//! The AWS-facing commands: `plan`, `up`, `down`. Each loads what it needs, prints its target, then acts.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::artifact::Artifact;
use crate::aws::{Aws, CallCounts, Identity};
use crate::config::{Config, Target};
use crate::plan::Plan;
use crate::report::{Output, Reporter, print_json};
use crate::stack::{self, Desired, Names};

/// Connects to the config's target and asks who we are; prints the target banner.
pub async fn connect(config: &Config, report: &Reporter) -> Result<(Aws, Identity)> {
    let aws = Aws::connect(&config.target).await;
    let identity = aws.identity().await?;
    report.target(&config.target, &identity);
    Ok((aws, identity))
}

#[derive(Serialize)]
struct TargetJson<'a> {
    endpoint: Option<&'a str>,
    region: &'a str,
    account: &'a str,
}

impl<'a> TargetJson<'a> {
    fn new(target: &'a Target, identity: &'a Identity) -> Self {
        TargetJson {
            endpoint: target.endpoint.as_deref(),
            region: &target.region,
            account: &identity.account,
        }
    }
}

/// The largest file the configured memory and timeout let the function process (the time
/// budget of `shared::budget`, the table the function itself refuses files by).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Capacity {
    pub memory_mb: i32,
    pub timeout_s: i32,
    pub parquet: bool,
    pub largest_file_bytes: u64,
}

impl Capacity {
    pub fn of(config: &Config) -> Capacity {
        let memory = u32::try_from(config.function.memory_mb).unwrap_or(0);
        let timeout = u32::try_from(config.function.timeout_s).unwrap_or(0);
        Capacity {
            memory_mb: config.function.memory_mb,
            timeout_s: config.function.timeout_s,
            parquet: config.outputs.parquet,
            largest_file_bytes: shared::budget::max_file_bytes(
                memory,
                timeout,
                config.outputs.parquet,
            ),
        }
    }
}

impl std::fmt::Display for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Largest file the function can process: about {} ({} bytes) at {} MB and {} s{}; a larger one goes to the failed-events queue (raise function.memory_mb or timeout_s).",
            human_bytes(self.largest_file_bytes),
            self.largest_file_bytes,
            self.memory_mb,
            self.timeout_s,
            if self.parquet {
                ", Parquet on"
            } else {
                ", Parquet off"
            }
        )
    }
}

/// `4.1 GiB`, `512.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Reads everything and diffs it. The artifact is checked before any call.
async fn read_and_plan(
    config: &Config,
    report: &Reporter,
) -> Result<(
    Aws,
    Identity,
    Desired,
    stack::Observed,
    stack::Changes,
    Plan,
)> {
    let artifact = Artifact::inspect(&config.function.artifact, config.function.architecture)?;
    let (aws, identity) = connect(config, report).await?;
    let desired = Desired::new(config, &identity, &artifact);
    let observed = stack::read(&aws, &desired).await?;
    let (changes, plan) = stack::diff(&desired, &observed);
    Ok((aws, identity, desired, observed, changes, plan))
}

/// `plan`: 0 when nothing would change, 2 when changes are pending.
pub async fn plan(config: &Config, output: Output) -> Result<u8> {
    let report = Reporter::new(output);
    let (aws, identity, _, _, _, plan) = read_and_plan(config, &report).await?;
    let capacity = Capacity::of(config);
    match output {
        Output::Text => {
            print!("{plan}");
            println!("{capacity}");
        }
        Output::Json => {
            #[derive(Serialize)]
            struct PlanJson<'a> {
                target: TargetJson<'a>,
                #[serde(flatten)]
                plan: &'a Plan,
                capacity: Capacity,
                calls: CallCounts,
            }
            print_json(&PlanJson {
                target: TargetJson::new(&config.target, &identity),
                plan: &plan,
                capacity,
                calls: aws.calls.snapshot(),
            })?;
        }
    }
    if plan.has_conflicts() {
        anyhow::bail!(
            "{} resources exist but are not ours: see the plan above",
            plan.counts.conflict
        );
    }
    Ok(if plan.is_empty() { 0 } else { 2 })
}

/// `up`: converge; a second run makes no mutating call.
pub async fn up(config: &Config, output: Output) -> Result<()> {
    let started = Instant::now();
    let report = Reporter::new(output);
    let (aws, identity, desired, observed, changes, plan) = read_and_plan(config, &report).await?;
    stack::apply(&aws, &desired, &observed, &changes, &plan, &report).await?;
    let calls = aws.calls.snapshot();
    let c = plan.counts;
    let seconds = started.elapsed().as_secs_f64();
    match output {
        Output::Text => {
            if plan.is_empty() {
                println!(
                    "No changes: {} resources up to date ({} mutating calls).",
                    c.unchanged, calls.mutating
                );
            } else {
                println!(
                    "Done in {seconds:.2} s: {} created, {} updated, {} unchanged ({} mutating calls).",
                    c.create, c.update, c.unchanged, calls.mutating
                );
            }
            println!(
                "Upload CSV files to s3://{}/ ; raw copies land in s3://{}/, outputs in s3://{}/refined/.",
                config.buckets.ingest, config.buckets.raw, config.buckets.refined
            );
            println!("{}", Capacity::of(config));
            if config.outputs.parquet {
                println!(
                    "Parquet copies in s3://{}/curated/ are tables {db}.users and {db}.users_rejected: try `deployer query --counts`.",
                    config.buckets.refined,
                    db = config.catalog.database
                );
            }
        }
        Output::Json => {
            #[derive(Serialize)]
            struct UpJson<'a> {
                target: TargetJson<'a>,
                plan: &'a Plan,
                created: usize,
                updated: usize,
                unchanged: usize,
                mutating_calls: u64,
                calls: CallCounts,
                capacity: Capacity,
                seconds: f64,
            }
            print_json(&UpJson {
                target: TargetJson::new(&config.target, &identity),
                plan: &plan,
                created: c.create,
                updated: c.update,
                unchanged: c.unchanged,
                mutating_calls: calls.mutating,
                calls,
                capacity: Capacity::of(config),
                seconds,
            })?;
        }
    }
    Ok(())
}

/// `down`: delete what is ours; say what was kept and why.
pub async fn down(config: &Config, output: Output, purge: bool) -> Result<()> {
    let started = Instant::now();
    let report = Reporter::new(output);
    let (aws, identity) = connect(config, &report).await?;
    let names = Names::new(config);
    let removed = stack::down(&aws, &names, &identity, purge, &report).await?;
    let calls = aws.calls.snapshot();
    let deleted = removed
        .iter()
        .filter(|r| r.deletion == crate::resources::Deletion::Deleted)
        .count();
    let kept = removed
        .iter()
        .filter(|r| matches!(r.deletion, crate::resources::Deletion::Kept(_)))
        .count();
    let seconds = started.elapsed().as_secs_f64();
    match output {
        Output::Text => println!(
            "Done in {seconds:.2} s: {deleted} deleted, {kept} kept ({} mutating calls).",
            calls.mutating
        ),
        Output::Json => {
            #[derive(Serialize)]
            struct DownJson<'a> {
                target: TargetJson<'a>,
                resources: &'a [stack::Removed],
                deleted: usize,
                kept: usize,
                mutating_calls: u64,
                calls: CallCounts,
                seconds: f64,
            }
            print_json(&DownJson {
                target: TargetJson::new(&config.target, &identity),
                resources: &removed,
                deleted,
                kept,
                mutating_calls: calls.mutating,
                calls,
                seconds,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capacity_line_comes_from_the_budget_table() {
        let config = Config::parse(
            std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../config/aws.example.toml"
            )),
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../config/aws.example.toml"
            ))
            .expect("example config"),
            None,
        )
        .expect("parses");
        let c = Capacity::of(&config);
        assert_eq!(
            c.largest_file_bytes,
            shared::budget::max_file_bytes(256, 900, true)
        );
        let text = c.to_string();
        assert!(
            text.starts_with("Largest file the function can process: about "),
            "{text}"
        );
        assert!(text.contains("at 256 MB and 900 s, Parquet on"), "{text}");
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }
}
