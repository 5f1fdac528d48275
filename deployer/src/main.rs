//! `deployer`: parses the command line, runs one command, prints errors on one line and exits with its code.

use std::process::ExitCode;

use clap::Parser;

use deployer::artifact::{Architecture, Artifact};
use deployer::cli::{Cli, Command};
use deployer::config::Config;
use deployer::report::Output;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = || Config::load(&cli.config, std::env::var("AWS_ENDPOINT_URL").ok());
    // Only `query` prints CSV: every other command refuses it here, before any work.
    let output = match &cli.command {
        // Unused: `query` takes its own format below.
        Command::Query { .. } => Output::Text,
        other => cli.output.for_command(other.name())?,
    };
    match cli.command {
        Command::Check { file, out, format } => {
            deployer::check::run(&file, &out, format, output).map(|()| 0)
        }
        Command::Artifact { zip, architecture } => {
            let architecture = if architecture == "arm64" {
                Architecture::Arm64
            } else {
                Architecture::X86_64
            };
            let artifact = Artifact::inspect(&zip, architecture)?;
            println!(
                "{}: executable {} bootstrap, {} bytes, CodeSha256 {}",
                zip.display(),
                artifact.architecture,
                artifact.size,
                artifact.code_sha256
            );
            Ok(0)
        }
        Command::Status => deployer::status::run(&config()?, output).await.map(|()| 0),
        Command::Failed => deployer::failed::run(&config()?, output).await.map(|()| 0),
        Command::Redrive { all, keys, dry_run } => {
            let selection = if all {
                deployer::redrive::Selection::All
            } else {
                deployer::redrive::Selection::Keys(keys)
            };
            deployer::redrive::run(&config()?, output, selection, dry_run).await
        }
        Command::Reprocess {
            key,
            prefix,
            since,
            dry_run,
        } => {
            let since = since
                .as_deref()
                .map(deployer::reprocess::parse_since)
                .transpose()?;
            let files = match prefix {
                Some(p) => deployer::reprocess::Files::Prefix(p),
                None => deployer::reprocess::Files::Keys(key),
            };
            let config = config()?;
            deployer::reprocess::run(&config, output, files, since, dry_run).await
        }
        Command::Logs { since, follow } => deployer::logs::run(&config()?, output, since, follow)
            .await
            .map(|()| 0),
        Command::Plan => deployer::commands::plan(&config()?, output).await,
        Command::Up => deployer::commands::up(&config()?, output).await.map(|()| 0),
        Command::Down { purge } => deployer::commands::down(&config()?, output, purge)
            .await
            .map(|()| 0),
        Command::Query {
            sql,
            counts,
            timeout,
        } => deployer::query::run(&config()?, cli.output.for_query(), sql, counts, timeout)
            .await
            .map(|()| 0),
        Command::Smoke { timeout, keep } => deployer::smoke::run(&config()?, output, timeout, keep)
            .await
            .map(|()| 0),
    }
}
