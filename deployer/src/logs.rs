//! `deployer logs`: the function's recent log events from CloudWatch Logs, optionally followed.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsError;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde::Serialize;

use crate::aws::{Aws, sdk_error};
use crate::commands::connect;
use crate::config::Config;
use crate::report::{Output, Reporter};
use crate::resources::log_group;

/// How often `--follow` asks for new events.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
struct Event<'a> {
    timestamp: String,
    stream: &'a str,
    message: &'a str,
}

/// Prints the events of the last `since`; with `follow`, keeps printing new ones until interrupted.
pub async fn run(config: &Config, output: Output, since: Duration, follow: bool) -> Result<()> {
    let report = Reporter::new(output);
    let (aws, _identity) = connect(config, &report).await?;
    let group = log_group::Spec::name_for_function(&config.function.name);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let mut start = now_ms - since.as_millis() as i64;
    // Events at the boundary timestamp come back on the next poll too: skip what was printed.
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let newest = print_since(&aws, &group, start, &mut seen, output).await?;
        if !follow {
            return Ok(());
        }
        start = newest.unwrap_or(start);
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Prints every event from `start_ms` on; returns the newest timestamp printed.
async fn print_since(
    aws: &Aws,
    group: &str,
    start_ms: i64,
    seen: &mut HashSet<String>,
    output: Output,
) -> Result<Option<i64>> {
    let mut token: Option<String> = None;
    let mut newest = None;
    loop {
        let page = match aws
            .logs
            .filter_log_events()
            .log_group_name(group)
            .start_time(start_ms)
            .set_next_token(token.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(FilterLogEventsError::ResourceNotFoundException(_))
                ) =>
            {
                bail!(
                    "log group {group} does not exist: deploy with `up` first (it is created with the function)"
                )
            }
            Err(e) => {
                return Err(sdk_error(e))
                    .with_context(|| format!("reading log group {group} (FilterLogEvents)"));
            }
        };
        for event in page.events() {
            let id = event.event_id().map(str::to_owned).unwrap_or_else(|| {
                format!(
                    "{:?}{:?}{:?}",
                    event.timestamp(),
                    event.log_stream_name(),
                    event.message()
                )
            });
            if !seen.insert(id) {
                continue;
            }
            let ms = event.timestamp().unwrap_or_default();
            newest = newest.max(Some(ms));
            let timestamp = DateTime::from_millis(ms)
                .fmt(Format::DateTime)
                .unwrap_or_else(|_| ms.to_string());
            let message = event.message().unwrap_or_default().trim_end();
            let stream = event.log_stream_name().unwrap_or_default();
            match output {
                Output::Text => println!("{timestamp} {message}"),
                // One JSON object per line, so `--follow` output can be piped into jq.
                Output::Json => println!(
                    "{}",
                    serde_json::to_string(&Event {
                        timestamp,
                        stream,
                        message
                    })?
                ),
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(newest);
        }
    }
}
