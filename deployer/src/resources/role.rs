//! The function's IAM role: trust policy, the basic-execution managed policy and one least-privilege inline policy.

use anyhow::{Context, Result};
use aws_sdk_iam::operation::create_role::CreateRoleError;
use aws_sdk_iam::operation::get_role::GetRoleError;
use aws_sdk_iam::operation::get_role_policy::GetRolePolicyError;
use aws_sdk_iam::types::Tag;
use serde_json::{Value, json};

use super::{Deletion, Tags, describe_tags, missing_tags, ownership_problem};
use crate::aws::{Aws, sdk_error};
use crate::plan::{Describe, PropertyChange};
use crate::policy;

pub const KIND: &str = "iam role";
pub const INLINE_POLICY_KIND: &str = "iam role policy";

/// What the function needs to touch, as ARNs, for rendering its inline policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grants {
    pub partition: String,
    pub ingest_bucket: String,
    pub raw_bucket: String,
    pub refined_bucket: String,
    /// The failed-events queue the function's on-failure destination sends to.
    pub failed_events_queue_arn: Option<String>,
}

/// The least-privilege inline policy, each grant for one thing the function does:
///
/// - read the version of an ingest object its event names (`s3:GetObject`,
///   `s3:GetObjectVersion`), and list the ingest bucket so a version that is gone reads as
///   `NoSuchKey`/404 (the function then writes nothing) rather than `AccessDenied`;
/// - write (and abort multipart uploads to) raw and refined;
/// - read the stamps of the refined outputs it may replace (`HeadObject` is `s3:GetObject`),
///   and list the refined bucket so a missing output is a 404: the newest-version-wins check;
/// - put a permanent failure in the failed-events queue (`sqs:GetQueueUrl` finds it from its
///   ARN; `sqs:SendMessage` is also what Lambda's on-failure destination uses).
///
/// Nothing else: no delete, no wildcard action.
pub fn function_policy(g: &Grants) -> Value {
    let bucket = |name: &str| format!("arn:{}:s3:::{name}", g.partition);
    let objects = |name: &str| format!("arn:{}:s3:::{name}/*", g.partition);
    let mut statements = vec![
        json!({
            "Sid": "ReadIngestVersions",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": [objects(&g.ingest_bucket)]
        }),
        json!({
            "Sid": "WriteOutputs",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": [objects(&g.raw_bucket), objects(&g.refined_bucket)]
        }),
        json!({
            "Sid": "ReadOutputStamps",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [objects(&g.refined_bucket)]
        }),
        json!({
            "Sid": "TellMissingFromDenied",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket(&g.ingest_bucket), bucket(&g.refined_bucket)]
        }),
    ];
    if let Some(queue) = &g.failed_events_queue_arn {
        statements.push(json!({
            "Sid": "RouteFailedEvents",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
            "Resource": [queue]
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// Only Lambda may assume the role.
pub fn lambda_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub partition: String,
    pub account: String,
    pub tags: Tags,
    pub trust: Value,
    pub managed_policy_arns: Vec<String>,
    pub inline_policy_name: String,
    pub inline_policy: Value,
}

impl Spec {
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:role/{}",
            self.partition, self.account, self.name
        )
    }

    /// `arn:<partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole`.
    pub fn basic_execution_policy_arn(partition: &str) -> String {
        format!("arn:{partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub tags: Tags,
    /// When the role was created (IAM keeps no modification time).
    pub created: Option<String>,
    pub trust: Option<Value>,
    pub managed_policy_arns: Vec<String>,
    pub inline_policy: Option<Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Create,
    Trust { old: Option<Value> },
    AttachManagedPolicy { arn: String },
    InlinePolicy { old: Option<Value> },
    Tags { observed: Tags, set: Tags },
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match self {
            Change::Create => PropertyChange::set("exists", "true"),
            Change::Trust { old } => PropertyChange::replace(
                "trust_policy",
                old.as_ref().map(policy::summary),
                "lambda.amazonaws.com may assume it",
            ),
            Change::AttachManagedPolicy { arn } => {
                PropertyChange::set("attached_policy", arn.clone())
            }
            Change::InlinePolicy { old } => PropertyChange::replace(
                "inline_policy",
                old.as_ref().map(policy::summary),
                "least-privilege S3/SQS access",
            ),
            Change::Tags { observed, set } => describe_tags(observed, set),
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
    // CreateRole sets the trust policy, so only an existing role can have a wrong one.
    if observed.is_some()
        && !o
            .trust
            .as_ref()
            .is_some_and(|t| policy::equivalent(t, &spec.trust))
    {
        changes.push(Change::Trust {
            old: o.trust.clone(),
        });
    }
    for arn in &spec.managed_policy_arns {
        if !o.managed_policy_arns.contains(arn) {
            changes.push(Change::AttachManagedPolicy { arn: arn.clone() });
        }
    }
    if !o
        .inline_policy
        .as_ref()
        .is_some_and(|p| policy::equivalent(p, &spec.inline_policy))
    {
        changes.push(Change::InlinePolicy {
            old: o.inline_policy.clone(),
        });
    }
    // CreateRole sets the tags too.
    let set = missing_tags(&spec.tags, &o.tags);
    if observed.is_some() && !set.is_empty() {
        changes.push(Change::Tags {
            observed: o.tags.clone(),
            set,
        });
    }
    changes
}

pub async fn read(aws: &Aws, spec: &Spec, stack: &str) -> Result<Option<Observed>> {
    let Some(mut observed) = read_existence(aws, &spec.name).await? else {
        return Ok(None);
    };
    if ownership_problem(&observed.tags, stack).is_some() {
        return Ok(Some(observed));
    }
    let name = spec.name.as_str();
    let (attached, inline) = tokio::join!(
        attached_policy_arns(aws, name),
        aws.iam
            .get_role_policy()
            .role_name(name)
            .policy_name(&spec.inline_policy_name)
            .send(),
    );
    observed.managed_policy_arns =
        attached.with_context(|| format!("reading iam role {name} (ListAttachedRolePolicies)"))?;
    observed.inline_policy = match inline {
        Ok(out) => Some(
            policy::parse(out.policy_document())
                .map_err(anyhow::Error::msg)
                .with_context(|| {
                    format!("reading iam role policy {name}/{}", spec.inline_policy_name)
                })?,
        ),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetRolePolicyError::NoSuchEntityException(_))
            ) =>
        {
            None
        }
        Err(e) => {
            return Err(sdk_error(e))
                .with_context(|| format!("reading iam role {name} (GetRolePolicy)"));
        }
    };
    Ok(Some(observed))
}

/// The role's trust policy and tags, or `None` when it does not exist.
pub async fn read_existence(aws: &Aws, name: &str) -> Result<Option<Observed>> {
    let role = match aws.iam.get_role().role_name(name).send().await {
        Ok(out) => out.role,
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetRoleError::NoSuchEntityException(_))
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(sdk_error(e)).with_context(|| format!("reading iam role {name} (GetRole)"));
        }
    };
    let Some(role) = role else {
        return Ok(None);
    };
    let trust = role
        .assume_role_policy_document()
        .map(policy::parse)
        .transpose()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("reading the trust policy of iam role {name}"))?;
    let mut tags: Tags = role
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    if tags.is_empty() {
        // Some implementations leave tags out of GetRole.
        tags = aws
            .iam
            .list_role_tags()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("reading iam role {name} (ListRoleTags)"))?
            .into_iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect();
    }
    Ok(Some(Observed {
        tags,
        trust,
        created: Some(role.create_date().to_string()),
        ..Observed::default()
    }))
}

/// Every managed policy attached to the role (all pages).
async fn attached_policy_arns(aws: &Aws, name: &str) -> Result<Vec<String>> {
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(sdk_error)?;
    Ok(attached
        .iter()
        .filter_map(|p| p.policy_arn().map(str::to_owned))
        .collect())
}

fn iam_tags(tags: &Tags) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(anyhow::Error::from)
        })
        .collect()
}

pub async fn apply(aws: &Aws, spec: &Spec, changes: &[Change]) -> Result<()> {
    let iam = &aws.iam;
    let name = spec.name.as_str();
    for change in changes {
        let doing = |what: &str| format!("{what} on iam role {name}");
        match change {
            Change::Create => {
                let result = iam
                    .create_role()
                    .role_name(name)
                    .assume_role_policy_document(spec.trust.to_string())
                    .description("Runs the CSV ingestion function (managed by the deployer)")
                    .set_tags(Some(iam_tags(&spec.tags)?))
                    .send()
                    .await;
                match result {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.as_service_error(),
                            Some(CreateRoleError::EntityAlreadyExistsException(_))
                        ) => {}
                    Err(e) => return Err(sdk_error(e)).with_context(|| doing("CreateRole")),
                }
            }
            Change::Trust { .. } => {
                iam.update_assume_role_policy()
                    .role_name(name)
                    .policy_document(spec.trust.to_string())
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("UpdateAssumeRolePolicy"))?;
            }
            Change::AttachManagedPolicy { arn } => {
                iam.attach_role_policy()
                    .role_name(name)
                    .policy_arn(arn)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("AttachRolePolicy"))?;
            }
            Change::InlinePolicy { .. } => {
                iam.put_role_policy()
                    .role_name(name)
                    .policy_name(&spec.inline_policy_name)
                    .policy_document(spec.inline_policy.to_string())
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("PutRolePolicy"))?;
            }
            Change::Tags { set, .. } => {
                iam.tag_role()
                    .role_name(name)
                    .set_tags(Some(iam_tags(set)?))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("TagRole"))?;
            }
        }
    }
    Ok(())
}

/// Deletes the role if it is ours, after detaching and deleting its policies.
pub async fn delete(aws: &Aws, name: &str, stack: &str) -> Result<Deletion> {
    let Some(observed) = read_existence(aws, name).await? else {
        return Ok(Deletion::Absent);
    };
    if let Some(problem) = ownership_problem(&observed.tags, stack) {
        return Ok(Deletion::Kept(problem));
    }
    let iam = &aws.iam;
    let doing = |what: &str| format!("deleting iam role {name} ({what})");
    let attached = attached_policy_arns(aws, name)
        .await
        .with_context(|| doing("ListAttachedRolePolicies"))?;
    for arn in &attached {
        iam.detach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| doing("DetachRolePolicy"))?;
    }
    let inline: Vec<String> = iam
        .list_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(sdk_error)
        .with_context(|| doing("ListRolePolicies"))?;
    for policy_name in &inline {
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| doing("DeleteRolePolicy"))?;
    }
    iam.delete_role()
        .role_name(name)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| doing("DeleteRole"))?;
    Ok(Deletion::Deleted)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::OWNERSHIP_TAG;

    pub(crate) fn grants() -> Grants {
        Grants {
            partition: "aws".into(),
            ingest_bucket: "demo-ingest".into(),
            raw_bucket: "demo-raw".into(),
            refined_bucket: "demo-refined".into(),
            failed_events_queue_arn: Some(
                "arn:aws:sqs:us-east-1:000000000000:demo-failed-events".into(),
            ),
        }
    }

    fn spec() -> Spec {
        Spec {
            name: "demo-function".into(),
            partition: "aws".into(),
            account: "000000000000".into(),
            tags: [(OWNERSHIP_TAG.to_owned(), "demo".to_owned())].into(),
            trust: lambda_trust_policy(),
            managed_policy_arns: vec![Spec::basic_execution_policy_arn("aws")],
            inline_policy_name: "demo-pipeline".into(),
            inline_policy: function_policy(&grants()),
        }
    }

    fn converged(spec: &Spec) -> Observed {
        Observed {
            tags: spec.tags.clone(),
            // As IAM hands it back: URL-encoded, reordered.
            trust: Some(
                policy::parse(
                    &percent_encoding::utf8_percent_encode(
                        &spec.trust.to_string(),
                        percent_encoding::NON_ALPHANUMERIC,
                    )
                    .to_string(),
                )
                .unwrap(),
            ),
            managed_policy_arns: vec![
                "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
                Spec::basic_execution_policy_arn("aws"),
            ],
            inline_policy: Some(spec.inline_policy.clone()),
            created: None,
        }
    }

    #[test]
    fn a_converged_role_needs_nothing() {
        let s = spec();
        assert_eq!(diff(&s, Some(&converged(&s))), vec![]);
    }

    #[test]
    fn a_missing_role_is_created_then_given_its_policies() {
        let changes = diff(&spec(), None);
        assert_eq!(changes[0], Change::Create);
        assert!(matches!(changes[1], Change::AttachManagedPolicy { .. }));
        assert!(matches!(changes[2], Change::InlinePolicy { old: None }));
        assert_eq!(changes.len(), 3);
    }

    #[test]
    fn each_property_is_checked_independently() {
        let s = spec();
        type Drift = fn(&mut Observed);
        let drifts: Vec<(&str, Drift)> = vec![
            ("trust_policy", |o| {
                o.trust = Some(
                    json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
                )
            }),
            ("attached_policy", |o| o.managed_policy_arns.truncate(1)),
            ("inline_policy", |o| {
                o.inline_policy = Some(json!({"Statement": []}))
            }),
            ("tags", |o| {
                o.tags.insert(OWNERSHIP_TAG.into(), "other".into());
            }),
        ];
        for (property, drift) in drifts {
            let mut o = converged(&s);
            drift(&mut o);
            let changes = diff(&s, Some(&o));
            assert_eq!(changes.len(), 1, "{property}: {changes:?}");
            assert_eq!(changes[0].describe().property, property);
        }
    }

    /// The policy the deployer renders stays least-privilege: no wildcard action, no
    /// resource outside our buckets and queue, no deletes.
    #[test]
    fn rendered_policy_is_least_privilege() {
        let g = grants();
        let document = function_policy(&g);
        let statements = document["Statement"].as_array().unwrap();
        let mut granted = std::collections::BTreeSet::new();
        for statement in statements {
            assert_eq!(statement["Effect"], "Allow");
            assert!(statement.get("NotAction").is_none() && statement.get("NotResource").is_none());
            assert!(statement.get("Condition").is_none());
            for action in statement["Action"].as_array().unwrap() {
                let action = action.as_str().unwrap();
                assert!(!action.contains('*'), "wildcard action {action}");
                assert!(!action.starts_with("s3:Delete"), "delete action {action}");
                for resource in statement["Resource"].as_array().unwrap() {
                    granted.insert((action.to_owned(), resource.as_str().unwrap().to_owned()));
                }
            }
        }
        // Exactly these (action, resource) pairs: nothing on raw but writes, no listing of
        // raw, nothing outside the stack.
        let want: std::collections::BTreeSet<(String, String)> = [
            ("s3:GetObject", "arn:aws:s3:::demo-ingest/*"),
            ("s3:GetObjectVersion", "arn:aws:s3:::demo-ingest/*"),
            ("s3:ListBucket", "arn:aws:s3:::demo-ingest"),
            ("s3:PutObject", "arn:aws:s3:::demo-raw/*"),
            ("s3:AbortMultipartUpload", "arn:aws:s3:::demo-raw/*"),
            ("s3:PutObject", "arn:aws:s3:::demo-refined/*"),
            ("s3:AbortMultipartUpload", "arn:aws:s3:::demo-refined/*"),
            ("s3:GetObject", "arn:aws:s3:::demo-refined/*"),
            ("s3:ListBucket", "arn:aws:s3:::demo-refined"),
            (
                "sqs:GetQueueUrl",
                "arn:aws:sqs:us-east-1:000000000000:demo-failed-events",
            ),
            (
                "sqs:SendMessage",
                "arn:aws:sqs:us-east-1:000000000000:demo-failed-events",
            ),
        ]
        .into_iter()
        .map(|(a, r)| (a.to_owned(), r.to_owned()))
        .collect();
        assert_eq!(granted, want);
    }
}
