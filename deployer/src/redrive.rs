//! `deployer redrive [--all | KEY…] [--dry-run]`: runs failed events again once their cause is
//! fixed. Each selected event's original payload is invoked asynchronously (as S3 invoked it;
//! the function's idempotency makes a second redrive harmless) and its message deleted only
//! after Lambda accepted the invocation. Events not selected are made visible again at once.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde::Serialize;

use crate::aws::{Aws, sdk_error};
use crate::commands::connect;
use crate::config::Config;
use crate::failed::{FailedEvent, event_of, line, queue_url, receive_all, release};
use crate::report::{Output, Reporter, print_json};

/// Which events to run again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    All,
    /// Events naming one of these (decoded) object keys.
    Keys(Vec<String>),
}

impl Selection {
    pub fn picks(&self, event: &FailedEvent) -> bool {
        match self {
            Selection::All => true,
            Selection::Keys(keys) => event.keys.iter().any(|k| keys.contains(k)),
        }
    }
}

/// What happened to one selected event.
#[derive(Clone, Debug, Serialize)]
pub struct Redriven {
    #[serde(flatten)]
    pub event: FailedEvent,
    /// `redriven`, `would redrive` (dry run) or `failed`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize)]
struct Summary<'a> {
    events: &'a [Redriven],
    redriven: usize,
    failed: usize,
    left_in_queue: usize,
    dry_run: bool,
}

/// Invokes the function asynchronously with `payload`; accepted means `202`.
pub async fn invoke_async(aws: &Aws, function: &str, payload: &serde_json::Value) -> Result<()> {
    let out = aws
        .lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(serde_json::to_vec(payload)?))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("invoking lambda function {function} (Invoke, asynchronous)"))?;
    if out.status_code() != 202 {
        bail!(
            "lambda function {function} did not accept the asynchronous invocation (status {})",
            out.status_code()
        );
    }
    Ok(())
}

pub async fn run(
    config: &Config,
    output: Output,
    selection: Selection,
    dry_run: bool,
) -> Result<u8> {
    let report = Reporter::new(output);
    let (aws, _) = connect(config, &report).await?;
    let url = queue_url(&aws, config).await?;
    // Held long enough for every invocation; released or deleted before this returns.
    let messages = receive_all(&aws, &url, Duration::from_secs(600), &report).await?;
    let (mut chosen, mut others) = (Vec::new(), Vec::new());
    for m in &messages {
        let event = event_of(m);
        if selection.picks(&event) {
            chosen.push((m, event));
        } else {
            others.push(m);
        }
    }
    release(&aws, &url, &others).await?;
    let total = chosen.len();
    let mut results = Vec::with_capacity(total);
    let mut keep = Vec::new();
    for (i, (m, event)) in chosen.into_iter().enumerate() {
        if total > 20 && i % 20 == 0 {
            eprintln!("  … {i}/{total}");
        }
        let outcome = match (&event.payload, dry_run) {
            (None, _) => Err("not an S3 event (nothing to invoke with); left in the queue".to_owned()),
            (Some(_), true) => Ok("would redrive"),
            (Some(payload), false) => match invoke_async(&aws, &config.function.name, payload).await {
                Err(e) => Err(format!("{e:#}")),
                Ok(()) => aws
                    .sqs
                    .delete_message()
                    .queue_url(&url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .map(|_| "redriven")
                    .map_err(|e| {
                        format!(
                            "invoked, but its message could not be deleted ({}): a second redrive is harmless",
                            crate::aws::SdkErrorText(&e)
                        )
                    }),
            },
        };
        let (outcome, error) = match outcome {
            Ok(o) => (o, None),
            Err(e) => ("failed", Some(e)),
        };
        if error.is_some() || dry_run {
            keep.push(m);
        }
        let r = Redriven {
            event,
            outcome,
            error,
        };
        report.line(format!(
            "  {} {}{}",
            r.outcome,
            line(&r.event),
            r.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
        results.push(r);
    }
    release(&aws, &url, &keep).await?;
    let redriven = results.iter().filter(|r| r.outcome == "redriven").count();
    let failed = results.iter().filter(|r| r.outcome == "failed").count();
    let left = messages.len() - redriven;
    match output {
        Output::Json => print_json(&Summary {
            events: &results,
            redriven,
            failed,
            left_in_queue: left,
            dry_run,
        })?,
        Output::Text => {
            if dry_run {
                println!(
                    "Dry run: {total} events would be redriven; {} in the queue.",
                    messages.len()
                );
            } else {
                println!("{redriven} redriven, {failed} failed; {left} events left in the queue.");
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failed::parse;

    #[test]
    fn keys_select_the_events_that_name_them() {
        let body = serde_json::json!({"requestContext": {"condition": "RetriesExhausted"},
            "requestPayload": {"Records": [{"eventTime": "t", "s3": {"bucket": {"name": "in"}, "object": {"key": "a+b.csv"}}}]}})
        .to_string();
        let e = parse("m", "r", &body, None);
        assert!(Selection::All.picks(&e));
        assert!(Selection::Keys(vec!["a b.csv".into()]).picks(&e));
        assert!(!Selection::Keys(vec!["a+b.csv".into(), "c.csv".into()]).picks(&e));
    }
}
