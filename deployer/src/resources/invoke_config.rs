//! The function's asynchronous-invocation settings: bounded retries, bounded event age, failures routed to the queue.

use anyhow::{Context, Result};
use aws_sdk_lambda::operation::delete_function_event_invoke_config::DeleteFunctionEventInvokeConfigError;
use aws_sdk_lambda::operation::get_function_event_invoke_config::GetFunctionEventInvokeConfigError;
use aws_sdk_lambda::operation::put_function_event_invoke_config::PutFunctionEventInvokeConfigError;
use aws_sdk_lambda::types::{DestinationConfig, OnFailure};

use super::Deletion;
use crate::aws::{Aws, Patience, retry_while, sdk_error};
use crate::plan::{Describe, PropertyChange};

pub const KIND: &str = "lambda event invoke config";
/// Lambda retries a failed asynchronous invocation this many times (after the first try).
pub const MAX_RETRY_ATTEMPTS: i32 = 2;
/// An event older than this (6 h) goes to the on-failure destination instead of being retried.
pub const MAX_EVENT_AGE_SECONDS: i32 = 6 * 3600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub function_name: String,
    pub on_failure_arn: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub max_retry_attempts: Option<i32>,
    pub max_event_age_seconds: Option<i32>,
    pub on_failure_arn: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Create,
    MaxRetryAttempts { old: Option<i32> },
    MaxEventAge { old: Option<i32> },
    OnFailure { old: Option<String>, new: String },
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match self {
            Change::Create => PropertyChange::set("exists", "true"),
            Change::MaxRetryAttempts { old } => PropertyChange::replace(
                "maximum_retry_attempts",
                old.map(|n| n.to_string()),
                MAX_RETRY_ATTEMPTS.to_string(),
            ),
            Change::MaxEventAge { old } => PropertyChange::replace(
                "maximum_event_age_seconds",
                old.map(|n| n.to_string()),
                MAX_EVENT_AGE_SECONDS.to_string(),
            ),
            Change::OnFailure { old, new } => {
                PropertyChange::replace("on_failure_destination", old.clone(), new.clone())
            }
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, Change::Create)
    }
}

pub fn diff(spec: &Spec, observed: Option<&Observed>) -> Vec<Change> {
    let absent = Observed::default();
    let mut changes = Vec::new();
    let o = match observed {
        Some(o) => o,
        None => {
            changes.push(Change::Create);
            &absent
        }
    };
    if o.max_retry_attempts != Some(MAX_RETRY_ATTEMPTS) {
        changes.push(Change::MaxRetryAttempts {
            old: o.max_retry_attempts,
        });
    }
    if o.max_event_age_seconds != Some(MAX_EVENT_AGE_SECONDS) {
        changes.push(Change::MaxEventAge {
            old: o.max_event_age_seconds,
        });
    }
    if o.on_failure_arn.as_deref() != Some(spec.on_failure_arn.as_str()) {
        changes.push(Change::OnFailure {
            old: o.on_failure_arn.clone(),
            new: spec.on_failure_arn.clone(),
        });
    }
    changes
}

/// `None` when the function has no event invoke config (or does not exist).
pub async fn read(aws: &Aws, function_name: &str) -> Result<Option<Observed>> {
    match aws
        .lambda
        .get_function_event_invoke_config()
        .function_name(function_name)
        .send()
        .await
    {
        Ok(out) => Ok(Some(Observed {
            max_retry_attempts: out.maximum_retry_attempts(),
            max_event_age_seconds: out.maximum_event_age_in_seconds(),
            on_failure_arn: out
                .destination_config()
                .and_then(|d| d.on_failure())
                .and_then(|f| f.destination())
                .map(str::to_owned),
            last_modified: out.last_modified().map(|t| t.to_string()),
        })),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetFunctionEventInvokeConfigError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(sdk_error(e)).with_context(|| {
            format!("reading the event invoke config of lambda function {function_name}")
        }),
    }
}

/// One `PutFunctionEventInvokeConfig` sets every property, so any change costs one call.
pub async fn apply(aws: &Aws, spec: &Spec, changes: &[Change]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let name = spec.function_name.as_str();
    // Lambda checks that the function's role may send to the destination: a role policy put
    // moments ago may not have propagated yet.
    retry_while(
        Patience::IAM,
        || {
            aws.lambda
                .put_function_event_invoke_config()
                .function_name(name)
                .maximum_retry_attempts(MAX_RETRY_ATTEMPTS)
                .maximum_event_age_in_seconds(MAX_EVENT_AGE_SECONDS)
                .destination_config(
                    DestinationConfig::builder()
                        .on_failure(
                            OnFailure::builder()
                                .destination(&spec.on_failure_arn)
                                .build(),
                        )
                        .build(),
                )
                .send()
        },
        |e| {
            destination_not_yet_allowed(e.as_service_error()).then(|| {
                format!("waiting for IAM to let the role of {name} send to its failed-events queue")
            })
        },
    )
    .await
    .map_err(sdk_error)
    .with_context(|| format!("PutFunctionEventInvokeConfig on lambda function {name}"))?;
    Ok(())
}

/// Whether Lambda refused the destination because the role may not (yet) send to it:
/// `InvalidParameterValueException` saying the execution role lacks permission.
fn destination_not_yet_allowed(e: Option<&PutFunctionEventInvokeConfigError>) -> bool {
    matches!(e, Some(PutFunctionEventInvokeConfigError::InvalidParameterValueException(e))
    if e.message().is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("permission") || m.contains("execution role")
    }))
}

/// Removes it (the caller has checked the function is ours).
pub async fn delete(aws: &Aws, function_name: &str) -> Result<Deletion> {
    match aws
        .lambda
        .delete_function_event_invoke_config()
        .function_name(function_name)
        .send()
        .await
    {
        Ok(_) => Ok(Deletion::Deleted),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DeleteFunctionEventInvokeConfigError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(Deletion::Absent)
        }
        Err(e) => Err(sdk_error(e)).with_context(|| {
            format!("deleting the event invoke config of lambda function {function_name}")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            function_name: "demo".into(),
            on_failure_arn: "arn:aws:sqs:us-east-1:0:demo-failed-events".into(),
        }
    }

    #[test]
    fn converged_missing_and_each_drift() {
        let s = spec();
        let ok = Observed {
            max_retry_attempts: Some(2),
            max_event_age_seconds: Some(21600),
            on_failure_arn: Some(s.on_failure_arn.clone()),
            last_modified: None,
        };
        assert_eq!(diff(&s, Some(&ok)), vec![]);
        assert_eq!(diff(&s, None).len(), 4);
        let drifts: [fn(&mut Observed); 3] = [
            |o| o.max_retry_attempts = Some(0),
            |o| o.max_event_age_seconds = Some(60),
            |o| o.on_failure_arn = None,
        ];
        for drift in drifts {
            let mut o = ok.clone();
            drift(&mut o);
            assert_eq!(diff(&s, Some(&o)).len(), 1, "{o:?}");
        }
    }
}
