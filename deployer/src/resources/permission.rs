//! The function's resource-policy statement letting S3 (only our ingest bucket, only our account) invoke it.

use anyhow::{Context, Result};
use aws_sdk_lambda::operation::add_permission::AddPermissionError;
use aws_sdk_lambda::operation::get_policy::GetPolicyError;
use aws_sdk_lambda::operation::remove_permission::RemovePermissionError;
use serde_json::{Value, json};

use super::Deletion;
use crate::aws::{Aws, sdk_error};
use crate::plan::{Describe, PropertyChange};
use crate::policy;

pub const KIND: &str = "lambda permission";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub function_name: String,
    pub function_arn: String,
    /// Deterministic statement id, so `up` finds its own statement again.
    pub statement_id: String,
    pub source_bucket_arn: String,
    /// Confused-deputy guard: only S3 acting for this account may invoke.
    pub source_account: String,
}

impl Spec {
    /// The statement as Lambda renders it in `GetPolicy`.
    pub fn statement(&self) -> Value {
        json!({
            "Sid": self.statement_id,
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Resource": self.function_arn,
            "Condition": {
                "StringEquals": {"AWS:SourceAccount": self.source_account},
                "ArnLike": {"AWS:SourceArn": self.source_bucket_arn}
            }
        })
    }
}

/// Our statement in the function's resource policy, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub statement: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Add,
    /// Our statement exists with other content: remove it, then add it again.
    Replace {
        old: Value,
    },
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        let new = "s3.amazonaws.com may invoke, for the ingest bucket and this account only";
        match self {
            Change::Add => PropertyChange::set("statement", new),
            Change::Replace { old } => {
                PropertyChange::update("statement", policy::summary(old), new)
            }
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, Change::Add)
    }
}

pub fn diff(spec: &Spec, observed: Option<&Observed>) -> Vec<Change> {
    match observed {
        None => vec![Change::Add],
        Some(o)
            if policy::equivalent(
                &json!({"Statement": [o.statement.clone()]}),
                &json!({"Statement": [spec.statement()]}),
            ) =>
        {
            vec![]
        }
        Some(o) => vec![Change::Replace {
            old: o.statement.clone(),
        }],
    }
}

/// Our statement, or `None` when the function, its policy or the statement is missing.
pub async fn read(aws: &Aws, spec: &Spec) -> Result<Option<Observed>> {
    let name = spec.function_name.as_str();
    let out = match aws.lambda.get_policy().function_name(name).send().await {
        Ok(out) => out,
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetPolicyError::ResourceNotFoundException(_))
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(sdk_error(e)).with_context(|| {
                format!("reading the policy of lambda function {name} (GetPolicy)")
            });
        }
    };
    let Some(text) = out.policy() else {
        return Ok(None);
    };
    let document: Value = serde_json::from_str(text)
        .with_context(|| format!("the policy of lambda function {name} is not JSON"))?;
    Ok(
        policy::statement(&document, &spec.statement_id).map(|s| Observed {
            statement: s.clone(),
        }),
    )
}

pub async fn apply(aws: &Aws, spec: &Spec, changes: &[Change]) -> Result<()> {
    let name = spec.function_name.as_str();
    for change in changes {
        if let Change::Replace { .. } = change {
            remove(aws, spec).await?;
        }
        let result = aws
            .lambda
            .add_permission()
            .function_name(name)
            .statement_id(&spec.statement_id)
            .action("lambda:InvokeFunction")
            .principal("s3.amazonaws.com")
            .source_arn(&spec.source_bucket_arn)
            .source_account(&spec.source_account)
            .send()
            .await;
        match result {
            Ok(_) => {}
            // A retry of a call whose answer was lost finds its own statement. Lambda uses the
            // same error for "update in progress", so only a statement we can read back as
            // exactly ours counts as done.
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(AddPermissionError::ResourceConflictException(_))
                ) =>
            {
                let now = read(aws, spec).await?;
                if !diff(spec, now.as_ref()).is_empty() {
                    return Err(sdk_error(e))
                        .with_context(|| format!("AddPermission on lambda function {name}"));
                }
            }
            Err(e) => {
                return Err(sdk_error(e))
                    .with_context(|| format!("AddPermission on lambda function {name}"));
            }
        }
    }
    Ok(())
}

async fn remove(aws: &Aws, spec: &Spec) -> Result<Deletion> {
    let name = spec.function_name.as_str();
    match aws
        .lambda
        .remove_permission()
        .function_name(name)
        .statement_id(&spec.statement_id)
        .send()
        .await
    {
        Ok(_) => Ok(Deletion::Deleted),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(RemovePermissionError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(Deletion::Absent)
        }
        Err(e) => {
            Err(sdk_error(e)).with_context(|| format!("RemovePermission on lambda function {name}"))
        }
    }
}

/// Removes our statement (the caller has checked the function is ours).
pub async fn delete(aws: &Aws, spec: &Spec) -> Result<Deletion> {
    if read(aws, spec).await?.is_none() {
        return Ok(Deletion::Absent);
    }
    remove(aws, spec).await
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> Spec {
        Spec {
            function_name: "demo".into(),
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:demo".into(),
            statement_id: "csv-ingest-s3-invoke".into(),
            source_bucket_arn: "arn:aws:s3:::demo-ingest".into(),
            source_account: "000000000000".into(),
        }
    }

    #[test]
    fn statement_carries_both_confused_deputy_guards() {
        let statement = spec().statement();
        assert_eq!(
            statement["Condition"]["ArnLike"]["AWS:SourceArn"],
            "arn:aws:s3:::demo-ingest"
        );
        assert_eq!(
            statement["Condition"]["StringEquals"]["AWS:SourceAccount"],
            "000000000000"
        );
        assert_eq!(statement["Principal"]["Service"], "s3.amazonaws.com");
        assert_eq!(statement["Action"], "lambda:InvokeFunction");
    }

    #[test]
    fn only_a_missing_or_different_statement_is_written() {
        let s = spec();
        assert_eq!(diff(&s, None), vec![Change::Add]);
        // As Lambda returns it: lists where we wrote strings, keys in another case.
        let same = json!({
            "Sid": "csv-ingest-s3-invoke", "Effect": "Allow", "Principal": {"Service": ["s3.amazonaws.com"]},
            "Action": ["lambda:InvokeFunction"], "Resource": ["arn:aws:lambda:us-east-1:000000000000:function:demo"],
            "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::demo-ingest"}, "StringEquals": {"aws:SourceAccount": "000000000000"}}
        });
        assert_eq!(diff(&s, Some(&Observed { statement: same })), vec![]);
        let mut missing_account = s.statement();
        missing_account["Condition"]
            .as_object_mut()
            .unwrap()
            .remove("StringEquals");
        assert!(matches!(
            diff(
                &s,
                Some(&Observed {
                    statement: missing_account
                })
            )
            .as_slice(),
            [Change::Replace { .. }]
        ));
    }
}
