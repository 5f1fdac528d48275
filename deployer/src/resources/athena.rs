//! The Athena workgroup `deployer query` runs in: results under `athena-results/` in the
//! refined bucket (never under `curated/`), its configuration enforced over the client's.

use anyhow::{Context, Result};
use aws_sdk_athena::error::ProvideErrorMetadata;
use aws_sdk_athena::operation::create_work_group::CreateWorkGroupError;
use aws_sdk_athena::operation::get_work_group::GetWorkGroupError;
use aws_sdk_athena::types::{
    ResultConfiguration, ResultConfigurationUpdates, Tag, WorkGroupConfiguration,
    WorkGroupConfigurationUpdates, WorkGroupState,
};

use super::{Deletion, Tags, describe_tags, missing_tags, ownership_problem};
use crate::aws::{Aws, sdk_error};
use crate::config::OWNERSHIP_TAG;
use crate::plan::{Describe, PropertyChange};

pub const KIND: &str = "athena workgroup";
const ENABLED: &str = "ENABLED";

/// Where query results go: beside the tables, never under their locations.
pub fn output_location(refined_bucket: &str) -> String {
    format!("s3://{refined_bucket}/athena-results/")
}

/// `arn:aws:athena:<region>:<account>:workgroup/<name>`, what Athena's tagging API wants.
pub fn workgroup_arn(partition: &str, region: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:athena:{region}:{account}:workgroup/{name}")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub arn: String,
    pub output_location: String,
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// `ENABLED` or `DISABLED`.
    pub state: Option<String>,
    pub output_location: Option<String>,
    pub enforce_configuration: Option<bool>,
    pub tags: Tags,
    /// Seconds since the epoch.
    pub created: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Create,
    State { old: Option<String> },
    OutputLocation { old: Option<String>, new: String },
    EnforceConfiguration { old: Option<bool> },
    Tags { observed: Tags, set: Tags },
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match self {
            Change::Create => PropertyChange::set("exists", "true"),
            Change::State { old } => PropertyChange::replace("state", old.clone(), ENABLED),
            Change::OutputLocation { old, new } => {
                PropertyChange::replace("output_location", old.clone(), new.clone())
            }
            Change::EnforceConfiguration { old } => PropertyChange::replace(
                "enforce_workgroup_configuration",
                old.map(|b| b.to_string()),
                "true",
            ),
            Change::Tags { observed, set } => describe_tags(observed, set),
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, Change::Create)
    }
}

pub fn diff(spec: &Spec, observed: Option<&Observed>) -> Vec<Change> {
    // CreateWorkGroup sets the configuration and the tags in one call.
    let Some(o) = observed else {
        return vec![Change::Create];
    };
    let mut changes = Vec::new();
    if o.state.as_deref() != Some(ENABLED) {
        changes.push(Change::State {
            old: o.state.clone(),
        });
    }
    if o.output_location.as_deref() != Some(spec.output_location.as_str()) {
        changes.push(Change::OutputLocation {
            old: o.output_location.clone(),
            new: spec.output_location.clone(),
        });
    }
    if o.enforce_configuration != Some(true) {
        changes.push(Change::EnforceConfiguration {
            old: o.enforce_configuration,
        });
    }
    let set = missing_tags(&spec.tags, &o.tags);
    if !set.is_empty() {
        changes.push(Change::Tags {
            observed: o.tags.clone(),
            set,
        });
    }
    changes
}

/// Athena has no typed "not found" for workgroups: it answers `InvalidRequestException`
/// "WorkGroup <name> is not found" (AWS) or "… not found" (ministack).
fn is_not_found(error: &GetWorkGroupError) -> bool {
    match error {
        GetWorkGroupError::InvalidRequestException(e) => e
            .message()
            .or_else(|| error.message())
            .is_some_and(|m| m.to_ascii_lowercase().contains("not found")),
        _ => false,
    }
}

pub async fn read(aws: &Aws, spec: &Spec) -> Result<Option<Observed>> {
    let name = spec.name.as_str();
    let workgroup = match aws.athena.get_work_group().work_group(name).send().await {
        Ok(out) => out.work_group,
        Err(e) if e.as_service_error().is_some_and(is_not_found) => return Ok(None),
        Err(e) => {
            return Err(sdk_error(e))
                .with_context(|| format!("reading athena workgroup {name} (GetWorkGroup)"));
        }
    };
    let Some(workgroup) = workgroup else {
        return Ok(None);
    };
    let mut tags = Tags::new();
    let mut next_token = None;
    loop {
        let page = aws
            .athena
            .list_tags_for_resource()
            .resource_arn(&spec.arn)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("reading athena workgroup {name} (ListTagsForResource)"))?;
        tags.extend(
            page.tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))),
        );
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    let configuration = workgroup.configuration();
    Ok(Some(Observed {
        state: workgroup.state().map(|s| s.as_str().to_owned()),
        output_location: configuration
            .and_then(|c| c.result_configuration())
            .and_then(|r| r.output_location())
            .map(str::to_owned),
        enforce_configuration: configuration.and_then(|c| c.enforce_work_group_configuration()),
        tags,
        created: workgroup.creation_time().map(|t| t.secs()),
    }))
}

/// One call per kind of change: state and configuration drift share one UpdateWorkGroup.
pub async fn apply(aws: &Aws, spec: &Spec, changes: &[Change]) -> Result<()> {
    if !changes.iter().any(Describe::is_create) {
        return update(aws, spec, changes).await;
    }
    match create(aws, spec).await? {
        None => Ok(()),
        // It was there already and is ours: converge what differs.
        Some(now) => update(aws, spec, &diff(spec, Some(&now))).await,
    }
}

/// Creates the workgroup with its configuration and tags. `Some(observed)` when it already
/// existed with our ownership tag: our own create, retried after its answer was lost.
async fn create(aws: &Aws, spec: &Spec) -> Result<Option<Observed>> {
    let name = spec.name.as_str();
    let configuration = WorkGroupConfiguration::builder()
        .result_configuration(
            ResultConfiguration::builder()
                .output_location(&spec.output_location)
                .build(),
        )
        .enforce_work_group_configuration(true)
        .build();
    let result = aws
        .athena
        .create_work_group()
        .name(name)
        .configuration(configuration)
        .set_tags(Some(tag_list(&spec.tags)))
        .send()
        .await;
    match result {
        Ok(_) => Ok(None),
        // Athena says "already exists" with its generic InvalidRequestException.
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateWorkGroupError::InvalidRequestException(_))
            ) =>
        {
            match read(aws, spec).await? {
                Some(now) if now.tags.get(OWNERSHIP_TAG) == spec.tags.get(OWNERSHIP_TAG) => {
                    Ok(Some(now))
                }
                _ => Err(sdk_error(e))
                    .with_context(|| format!("CreateWorkGroup on athena workgroup {name}")),
            }
        }
        Err(e) => {
            Err(sdk_error(e)).with_context(|| format!("CreateWorkGroup on athena workgroup {name}"))
        }
    }
}

async fn update(aws: &Aws, spec: &Spec, changes: &[Change]) -> Result<()> {
    let name = spec.name.as_str();
    let doing = |what: &str| format!("{what} on athena workgroup {name}");
    let mut updated = false;
    for change in changes {
        match change {
            // `apply` creates.
            Change::Create => {}
            Change::State { .. }
            | Change::OutputLocation { .. }
            | Change::EnforceConfiguration { .. }
                if !updated =>
            {
                updated = true;
                let updates = WorkGroupConfigurationUpdates::builder()
                    .result_configuration_updates(
                        ResultConfigurationUpdates::builder()
                            .output_location(&spec.output_location)
                            .build(),
                    )
                    .enforce_work_group_configuration(true)
                    .build();
                aws.athena
                    .update_work_group()
                    .work_group(name)
                    .configuration_updates(updates)
                    .state(WorkGroupState::Enabled)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("UpdateWorkGroup"))?;
            }
            Change::State { .. }
            | Change::OutputLocation { .. }
            | Change::EnforceConfiguration { .. } => {}
            Change::Tags { set, .. } => {
                aws.athena
                    .tag_resource()
                    .resource_arn(&spec.arn)
                    .set_tags(Some(tag_list(set)))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("TagResource"))?;
            }
        }
    }
    Ok(())
}

fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Deletes the workgroup if it is ours, with its saved queries; the result files stay in the
/// refined bucket (deleted with it by `down --purge`).
pub async fn delete(aws: &Aws, spec: &Spec, stack: &str) -> Result<Deletion> {
    let name = spec.name.as_str();
    let Some(observed) = read(aws, spec).await? else {
        return Ok(Deletion::Absent);
    };
    if let Some(problem) = ownership_problem(&observed.tags, stack) {
        return Ok(Deletion::Kept(problem));
    }
    match aws
        .athena
        .delete_work_group()
        .work_group(name)
        .recursive_delete_option(true)
        .send()
        .await
    {
        Ok(_) => Ok(Deletion::Deleted),
        Err(e) => {
            // Gone meanwhile (or our own delete, retried after its answer was lost).
            if read(aws, spec).await?.is_none() {
                return Ok(Deletion::Absent);
            }
            Err(sdk_error(e))
                .with_context(|| format!("deleting athena workgroup {name} (DeleteWorkGroup)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "demo".into(),
            arn: workgroup_arn("aws", "us-east-1", "000000000000", "demo"),
            output_location: output_location("demo-refined"),
            tags: [(OWNERSHIP_TAG.to_owned(), "demo".to_owned())].into(),
        }
    }

    #[test]
    fn results_go_beside_the_tables_not_under_them() {
        let s = spec();
        assert_eq!(s.output_location, "s3://demo-refined/athena-results/");
        assert!(!s.output_location.contains("curated/"));
        assert_eq!(
            s.arn,
            "arn:aws:athena:us-east-1:000000000000:workgroup/demo"
        );
    }

    #[test]
    fn each_property_is_checked_independently() {
        let s = spec();
        let ok = Observed {
            state: Some(ENABLED.into()),
            output_location: Some(s.output_location.clone()),
            enforce_configuration: Some(true),
            tags: s.tags.clone(),
            created: None,
        };
        assert_eq!(diff(&s, Some(&ok)), vec![]);
        assert_eq!(diff(&s, None), vec![Change::Create]);
        type Drift = fn(&mut Observed);
        let drifts: Vec<(&str, Drift)> = vec![
            ("state", |o| o.state = Some("DISABLED".into())),
            ("output_location", |o| {
                o.output_location = Some("s3://demo-refined/curated/users/".into())
            }),
            ("output_location", |o| o.output_location = None),
            ("enforce_workgroup_configuration", |o| {
                o.enforce_configuration = Some(false)
            }),
            ("enforce_workgroup_configuration", |o| {
                o.enforce_configuration = None
            }),
            ("tags", |o| o.tags.clear()),
        ];
        for (property, drift) in drifts {
            let mut o = ok.clone();
            drift(&mut o);
            let changes = diff(&s, Some(&o));
            assert_eq!(changes.len(), 1, "{property}: {changes:?}");
            assert_eq!(changes[0].describe().property, property);
        }
    }

    #[test]
    fn only_a_not_found_request_error_means_absent() {
        use aws_sdk_athena::types::error::InvalidRequestException;
        let not_found = GetWorkGroupError::InvalidRequestException(
            InvalidRequestException::builder()
                .message("WorkGroup demo is not found.")
                .build(),
        );
        assert!(is_not_found(&not_found));
        let other = GetWorkGroupError::InvalidRequestException(
            InvalidRequestException::builder()
                .message("1 validation error detected")
                .build(),
        );
        assert!(!is_not_found(&other));
    }
}
