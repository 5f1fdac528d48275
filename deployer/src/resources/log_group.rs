//! The function's CloudWatch log group `/aws/lambda/<function>` and its retention.

use anyhow::{Context, Result};
use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::operation::delete_log_group::DeleteLogGroupError;

use super::{Deletion, Tags, describe_tags, missing_tags, ownership_problem};
use crate::aws::{Aws, sdk_error};
use crate::plan::{Describe, PropertyChange};

pub const KIND: &str = "log group";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub retention_days: i32,
    pub tags: Tags,
}

impl Spec {
    /// The log group Lambda writes a function's output to.
    pub fn name_for_function(function: &str) -> String {
        format!("/aws/lambda/{function}")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The ARN without the trailing `:*`, as tagging APIs want it.
    pub arn: String,
    pub retention_days: Option<i32>,
    pub tags: Tags,
    /// Creation time, milliseconds since the epoch.
    pub created_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Create,
    Retention { old: Option<i32>, new: i32 },
    Tags { observed: Tags, set: Tags },
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match self {
            Change::Create => PropertyChange::set("exists", "true"),
            Change::Retention { old, new } => PropertyChange::update(
                "retention_days",
                old.map_or_else(|| "never expire".to_owned(), |d| d.to_string()),
                new.to_string(),
            ),
            Change::Tags { observed, set } => describe_tags(observed, set),
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, Change::Create)
    }
}

pub fn diff(spec: &Spec, observed: Option<&Observed>) -> Vec<Change> {
    let mut changes = Vec::new();
    let absent = Observed::default();
    let o = match observed {
        Some(o) => o,
        None => {
            changes.push(Change::Create);
            &absent
        }
    };
    if o.retention_days != Some(spec.retention_days) {
        changes.push(Change::Retention {
            old: o.retention_days,
            new: spec.retention_days,
        });
    }
    let set = missing_tags(&spec.tags, &o.tags);
    // CreateLogGroup sets the tags.
    if observed.is_some() && !set.is_empty() {
        changes.push(Change::Tags {
            observed: o.tags.clone(),
            set,
        });
    }
    changes
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Observed>> {
    // Every page: the prefix also matches longer names (`/aws/lambda/x` and `/aws/lambda/x-2`).
    let groups = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("reading log group {name} (DescribeLogGroups)"))?;
    let Some(group) = groups.iter().find(|g| g.log_group_name() == Some(name)) else {
        return Ok(None);
    };
    let arn = group
        .log_group_arn()
        .map(str::to_owned)
        .or_else(|| group.arn().map(|a| a.trim_end_matches(":*").to_owned()))
        .unwrap_or_default();
    let tags = if arn.is_empty() {
        Tags::new()
    } else {
        aws.logs
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("reading log group {name} (ListTagsForResource)"))?
            .tags
            .unwrap_or_default()
            .into_iter()
            .collect()
    };
    Ok(Some(Observed {
        arn,
        retention_days: group.retention_in_days(),
        tags,
        created_ms: group.creation_time(),
    }))
}

pub async fn apply(
    aws: &Aws,
    spec: &Spec,
    observed_arn: Option<&str>,
    changes: &[Change],
) -> Result<()> {
    let name = spec.name.as_str();
    let doing = |what: &str| format!("{what} on log group {name}");
    for change in changes {
        match change {
            Change::Create => {
                let result = aws
                    .logs
                    .create_log_group()
                    .log_group_name(name)
                    .set_tags(Some(spec.tags.clone().into_iter().collect()))
                    .send()
                    .await;
                match result {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.as_service_error(),
                            Some(CreateLogGroupError::ResourceAlreadyExistsException(_))
                        ) => {}
                    Err(e) => return Err(sdk_error(e)).with_context(|| doing("CreateLogGroup")),
                }
            }
            Change::Retention { .. } => {
                aws.logs
                    .put_retention_policy()
                    .log_group_name(name)
                    .retention_in_days(spec.retention_days)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("PutRetentionPolicy"))?;
            }
            Change::Tags { set, .. } => {
                let arn = observed_arn.unwrap_or_default();
                aws.logs
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(set.clone().into_iter().collect()))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("TagResource"))?;
            }
        }
    }
    Ok(())
}

pub async fn delete(aws: &Aws, name: &str, stack: &str) -> Result<Deletion> {
    let Some(observed) = read(aws, name).await? else {
        return Ok(Deletion::Absent);
    };
    if let Some(problem) = ownership_problem(&observed.tags, stack) {
        return Ok(Deletion::Kept(problem));
    }
    match aws
        .logs
        .delete_log_group()
        .log_group_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(Deletion::Deleted),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DeleteLogGroupError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(Deletion::Absent)
        }
        Err(e) => {
            Err(sdk_error(e)).with_context(|| format!("deleting log group {name} (DeleteLogGroup)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OWNERSHIP_TAG;

    fn spec() -> Spec {
        Spec {
            name: "/aws/lambda/demo".into(),
            retention_days: 14,
            tags: [(OWNERSHIP_TAG.to_owned(), "demo".to_owned())].into(),
        }
    }

    #[test]
    fn converged_missing_and_drifted() {
        let s = spec();
        let ok = Observed {
            arn: "arn:aws:logs:us-east-1:0:log-group:/aws/lambda/demo".into(),
            retention_days: Some(14),
            tags: s.tags.clone(),
            created_ms: None,
        };
        assert_eq!(diff(&s, Some(&ok)), vec![]);
        let unset = Change::Retention { old: None, new: 14 };
        assert_eq!(diff(&s, None), vec![Change::Create, unset.clone()]);
        let mut drift = ok.clone();
        drift.retention_days = None;
        assert_eq!(diff(&s, Some(&drift)), vec![unset.clone()]);
        assert_eq!(
            unset.describe(),
            PropertyChange::update("retention_days", "never expire", "14")
        );
        let mut drift = ok;
        drift.tags.clear();
        assert!(matches!(
            diff(&s, Some(&drift)).as_slice(),
            [Change::Tags { .. }]
        ));
    }
}
