//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::check::Format as CheckFormat;
use crate::query::Format;
use crate::report::Output;

/// Deploys the CSV ingestion pipeline (S3 → Lambda → S3) and checks files against its contract.
#[derive(Debug, Parser)]
#[command(name = "deployer", version)]
pub struct Cli {
    /// Deployment config (TOML).
    #[arg(long, global = true, default_value = "config/local.toml")]
    pub config: PathBuf,
    /// Human text (`table` is an alias), exactly one JSON document on stdout, or CSV (`query` only).
    #[arg(long, global = true, value_enum, default_value_t = OutputArg::Text)]
    pub output: OutputArg,
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
        /// How long to wait for the outputs (default 180s on AWS, time for one Lambda retry;
        /// 60s on an endpoint).
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// Leave the uploaded file and the outputs in place.
        #[arg(long)]
        keep: bool,
    },
    /// Show what exists, whether it is ours, key properties, alarms and the failed-events queue depth.
    Status,
    /// List the failed events (file, version, when, why) without taking them off the queue.
    Failed,
    /// Run failed events again (their cause fixed): invoke the function with each original
    /// event, then delete its message.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["all", "keys"]))]
    Redrive {
        /// Every failed event.
        #[arg(long)]
        all: bool,
        /// Only the events of these object keys (as in the bucket, not URL-encoded).
        keys: Vec<String>,
        /// Say what would be redriven; invoke and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run files already in the ingest bucket through the function again (e.g. after a
    /// contract change); their outputs are rewritten in place.
    #[command(group = clap::ArgGroup::new("files").required(true).args(["key", "prefix"]))]
    Reprocess {
        /// An object key of the ingest bucket (repeatable).
        #[arg(long)]
        key: Vec<String>,
        /// Every object under this prefix ("" for the whole bucket).
        #[arg(long)]
        prefix: Option<String>,
        /// Only objects last modified at or after this (YYYY-MM-DD or a timestamp).
        #[arg(long)]
        since: Option<String>,
        /// List the files; invoke nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the function's recent log events.
    Logs {
        /// How far back to start.
        #[arg(long, value_parser = parse_duration, default_value = "10m")]
        since: Duration,
        /// Keep printing new events until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Run SQL in the stack's Athena workgroup (its Glue database is the default schema) and print the result.
    Query {
        /// The SQL, e.g. "SELECT count(*) AS n FROM users".
        #[arg(required_unless_present = "counts", conflicts_with = "counts")]
        sql: Option<String>,
        /// Clean and rejected rows per partition (`date`, `hour`).
        #[arg(long)]
        counts: bool,
        /// How long to wait for the query; it is stopped after that.
        #[arg(long, value_parser = parse_duration, default_value = "60s")]
        timeout: Duration,
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
        /// Where to write `<name>_cleaned.csv` and `rejected/<name>_rejected.csv` (and
        /// `<name>.parquet`, `rejected/<name>_rejected.parquet`).
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Outputs to write: CSV (the contract's), Parquet (the function's query copies), or both.
        #[arg(long, value_enum, default_value_t = CheckFormat::Csv)]
        format: CheckFormat,
    },
}

/// `--output` as typed. Only `query` prints CSV: every other command takes a `report::Output`
/// (text or JSON), so CSV cannot reach it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputArg {
    #[default]
    #[value(alias = "table")]
    Text,
    Json,
    Csv,
}

impl OutputArg {
    /// The output of a command other than `query`; CSV is refused.
    pub fn for_command(self, command: &str) -> anyhow::Result<Output> {
        match self {
            OutputArg::Text => Ok(Output::Text),
            OutputArg::Json => Ok(Output::Json),
            OutputArg::Csv => {
                anyhow::bail!("`--output csv` is only for `query`; `{command}` prints text or json")
            }
        }
    }

    /// How `query` prints its result.
    pub fn for_query(self) -> Format {
        match self {
            OutputArg::Text => Format::Table,
            OutputArg::Json => Format::Json,
            OutputArg::Csv => Format::Csv,
        }
    }
}

impl Command {
    /// The subcommand's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Plan => "plan",
            Command::Up => "up",
            Command::Down { .. } => "down",
            Command::Smoke { .. } => "smoke",
            Command::Status => "status",
            Command::Failed => "failed",
            Command::Redrive { .. } => "redrive",
            Command::Reprocess { .. } => "reprocess",
            Command::Logs { .. } => "logs",
            Command::Query { .. } => "query",
            Command::Artifact { .. } => "artifact",
            Command::Check { .. } => "check",
        }
    }
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
    fn output_accepts_table_as_text_and_csv_only_for_query() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| e.to_string());
        let cli = parse(&["deployer", "--output", "table", "query", "SELECT 1"]).unwrap();
        assert_eq!(cli.output, OutputArg::Text);
        assert_eq!(cli.output.for_query(), Format::Table);
        let cli = parse(&["deployer", "query", "--counts", "--output", "csv"]).unwrap();
        assert_eq!(cli.output.for_query(), Format::Csv);
        assert!(matches!(
            cli.command,
            Command::Query { counts: true, sql: None, timeout } if timeout == Duration::from_secs(60)
        ));
        let cli = parse(&["deployer", "--output", "csv", "status"]).unwrap();
        let err = cli
            .output
            .for_command(cli.command.name())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "`--output csv` is only for `query`; `status` prints text or json"
        );
        assert_eq!(OutputArg::Json.for_command("plan").unwrap(), Output::Json);
        assert_eq!(OutputArg::Text.for_command("plan").unwrap(), Output::Text);
    }

    #[test]
    fn query_needs_sql_or_counts_but_not_both() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| e.to_string());
        assert!(parse(&["deployer", "query"]).is_err());
        assert!(parse(&["deployer", "query", "SELECT 1", "--counts"]).is_err());
        let cli = parse(&["deployer", "query", "SELECT 1", "--timeout", "2m"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Query { sql: Some(ref s), counts: false, timeout } if s == "SELECT 1" && timeout == Duration::from_secs(120)
        ));
    }

    #[test]
    fn redrive_and_reprocess_need_a_selection() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| e.to_string());
        assert!(parse(&["deployer", "redrive"]).is_err());
        assert!(parse(&["deployer", "redrive", "--all", "a.csv"]).is_err());
        assert!(matches!(
            parse(&["deployer", "redrive", "in/a b.csv", "--dry-run"]).unwrap().command,
            Command::Redrive { all: false, ref keys, dry_run: true } if keys == &["in/a b.csv"]
        ));
        assert!(parse(&["deployer", "reprocess"]).is_err());
        assert!(parse(&["deployer", "reprocess", "--key", "a", "--prefix", "p"]).is_err());
        assert!(matches!(
            parse(&["deployer", "reprocess", "--prefix", "in/", "--since", "2025-06-24"]).unwrap().command,
            Command::Reprocess { ref prefix, ref since, .. } if prefix.as_deref() == Some("in/") && since.as_deref() == Some("2025-06-24")
        ));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
