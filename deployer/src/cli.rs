//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::report::Output;

/// Deploys the CSV ingestion pipeline (S3 → Lambda → S3) and checks files against its contract.
#[derive(Debug, Parser)]
#[command(name = "deployer", version)]
pub struct Cli {
    /// Deployment config (TOML).
    #[arg(long, global = true, default_value = "config/local.toml")]
    pub config: PathBuf,
    /// Human text, or exactly one JSON document on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what `up` would change; exit 0 when nothing, 2 when changes are pending.
    Plan,
    /// Create or converge every resource; a second run changes nothing.
    Up,
    /// Delete every resource this stack owns, in reverse dependency order.
    Down {
        /// Also empty the buckets (every object version) so they can be deleted.
        #[arg(long)]
        purge: bool,
    },
    /// Upload the sample file and verify the deployed pipeline's outputs.
    Smoke {
        /// How long to wait for the outputs.
        #[arg(long, value_parser = parse_duration, default_value = "60s")]
        timeout: Duration,
        /// Leave the uploaded file and the outputs in place.
        #[arg(long)]
        keep: bool,
    },
    /// Show what exists, whether it is ours, key properties and the failed-events queue depth.
    Status,
    /// Print the function's recent log events.
    Logs {
        /// How far back to start.
        #[arg(long, value_parser = parse_duration, default_value = "10m")]
        since: Duration,
        /// Keep printing new events until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Check a function zip: an executable `bootstrap` of the given architecture.
    Artifact {
        /// The zip built by `make build`.
        zip: PathBuf,
        #[arg(long, value_parser = ["arm64", "x86_64"])]
        architecture: String,
    },
    /// Validate a local CSV file with the pipeline's own rules; no AWS involved.
    Check {
        /// The CSV file.
        file: PathBuf,
        /// Where to write `<name>_cleaned.csv` and `rejected/<name>_rejected.csv`.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
}

/// `90s`, `10m`, `2h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 10m or 2h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?} is not a duration like 90s, 10m or 2h")),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
