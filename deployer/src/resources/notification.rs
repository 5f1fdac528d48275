//! Our entry in the ingest bucket's notification configuration (ObjectCreated → the function), leaving every other entry as it is.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, LambdaFunctionConfiguration, NotificationConfiguration,
    NotificationConfigurationFilter, S3KeyFilter,
};

use super::Deletion;
use crate::aws::{Aws, Patience, error_code, retry_while, sdk_error};
use crate::plan::{Describe, PropertyChange};

pub const KIND: &str = "s3 notification";
pub const EVENT: &str = "s3:ObjectCreated:*";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub bucket: String,
    /// Deterministic id of our entry; entries with other ids are not ours.
    pub id: String,
    pub function_arn: String,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

impl Spec {
    fn filter_rules(&self) -> BTreeSet<(String, String)> {
        [("prefix", &self.prefix), ("suffix", &self.suffix)]
            .into_iter()
            .filter_map(|(name, value)| value.as_ref().map(|v| (name.to_owned(), v.clone())))
            .collect()
    }

    fn render(&self) -> String {
        let rules: Vec<String> = self
            .filter_rules()
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{EVENT} → {} [{}]", self.function_arn, rules.join(", "))
    }

    fn configuration(&self) -> Result<LambdaFunctionConfiguration> {
        let rules = self
            .filter_rules()
            .into_iter()
            .map(|(name, value)| {
                FilterRule::builder()
                    .name(if name == "prefix" {
                        FilterRuleName::Prefix
                    } else {
                        FilterRuleName::Suffix
                    })
                    .value(value)
                    .build()
            })
            .collect::<Vec<_>>();
        let mut config = LambdaFunctionConfiguration::builder()
            .id(&self.id)
            .lambda_function_arn(&self.function_arn)
            .events(Event::from(EVENT));
        if !rules.is_empty() {
            config = config.filter(
                NotificationConfigurationFilter::builder()
                    .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
                    .build(),
            );
        }
        Ok(config.build()?)
    }
}

/// Our entry as read, reduced to what we manage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub function_arn: String,
    pub events: BTreeSet<String>,
    pub filter_rules: BTreeSet<(String, String)>,
}

impl Observed {
    fn from_configuration(c: &LambdaFunctionConfiguration) -> Observed {
        Observed {
            function_arn: c.lambda_function_arn().to_owned(),
            events: c.events().iter().map(|e| e.as_str().to_owned()).collect(),
            filter_rules: c
                .filter()
                .and_then(|f| f.key())
                .map(|k| {
                    k.filter_rules()
                        .iter()
                        .filter_map(|r| {
                            // S3 answers `Prefix`/`Suffix`; names are case-insensitive.
                            Some((
                                r.name()?.as_str().to_ascii_lowercase(),
                                r.value()?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn render(&self) -> String {
        let events: Vec<&str> = self.events.iter().map(String::as_str).collect();
        let rules: Vec<String> = self
            .filter_rules
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!(
            "{} → {} [{}]",
            events.join(","),
            self.function_arn,
            rules.join(", ")
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub old: Option<String>,
    pub new: String,
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match &self.old {
            None => PropertyChange::set("lambda_configuration", self.new.clone()),
            Some(old) => {
                PropertyChange::update("lambda_configuration", old.clone(), self.new.clone())
            }
        }
    }

    fn is_create(&self) -> bool {
        self.old.is_none()
    }
}

pub fn diff(spec: &Spec, observed: Option<&Observed>) -> Vec<Change> {
    let desired = Observed {
        function_arn: spec.function_arn.clone(),
        events: [EVENT.to_owned()].into(),
        filter_rules: spec.filter_rules(),
    };
    match observed {
        Some(o) if *o == desired => vec![],
        other => vec![Change {
            old: other.map(Observed::render),
            new: spec.render(),
        }],
    }
}

async fn read_all(aws: &Aws, bucket: &str) -> Result<NotificationConfiguration> {
    let out = aws
        .s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("reading the notification configuration of s3 bucket {bucket}"))?;
    Ok(NotificationConfiguration::builder()
        .set_topic_configurations(Some(out.topic_configurations().to_vec()))
        .set_queue_configurations(Some(out.queue_configurations().to_vec()))
        .set_lambda_function_configurations(Some(out.lambda_function_configurations().to_vec()))
        .set_event_bridge_configuration(out.event_bridge_configuration().cloned())
        .build())
}

/// Our entry, or `None` (also when the bucket does not exist yet).
pub async fn read(aws: &Aws, spec: &Spec, bucket_exists: bool) -> Result<Option<Observed>> {
    if !bucket_exists {
        return Ok(None);
    }
    let all = read_all(aws, &spec.bucket).await?;
    Ok(all
        .lambda_function_configurations()
        .iter()
        .find(|c| c.id() == Some(spec.id.as_str()))
        .map(Observed::from_configuration))
}

/// Writes the configuration with our entry replaced by `ours` (removed when `None`), every
/// other entry kept: read, modify, write.
async fn write_ours(
    aws: &Aws,
    bucket: &str,
    id: &str,
    ours: Option<LambdaFunctionConfiguration>,
) -> Result<bool> {
    let all = read_all(aws, bucket).await?;
    let had_ours = all
        .lambda_function_configurations()
        .iter()
        .any(|c| c.id() == Some(id));
    if ours.is_none() && !had_ours {
        return Ok(false);
    }
    let mut lambdas: Vec<LambdaFunctionConfiguration> = all
        .lambda_function_configurations()
        .iter()
        .filter(|c| c.id() != Some(id))
        .cloned()
        .collect();
    lambdas.extend(ours);
    let config = NotificationConfiguration::builder()
        .set_topic_configurations(Some(all.topic_configurations().to_vec()))
        .set_queue_configurations(Some(all.queue_configurations().to_vec()))
        .set_lambda_function_configurations(Some(lambdas))
        .set_event_bridge_configuration(all.event_bridge_configuration().cloned())
        .build();
    // S3 checks that it may invoke the function; a permission added moments ago may not be
    // visible to it yet ("Unable to validate the following destination configurations").
    retry_while(
        Patience::IAM,
        || {
            aws.s3
                .put_bucket_notification_configuration()
                .bucket(bucket)
                .notification_configuration(config.clone())
                .send()
        },
        |e| {
            (error_code(e) == Some("InvalidArgument"))
                .then(|| "waiting for S3 to see the invoke permission".to_owned())
        },
    )
    .await
    .map_err(sdk_error)
    .with_context(|| format!("PutBucketNotificationConfiguration on s3 bucket {bucket}"))?;
    Ok(true)
}

pub async fn apply(aws: &Aws, spec: &Spec, changes: &[Change]) -> Result<()> {
    if !changes.is_empty() {
        write_ours(aws, &spec.bucket, &spec.id, Some(spec.configuration()?)).await?;
    }
    Ok(())
}

/// Removes our entry only.
pub async fn delete(aws: &Aws, bucket: &str, id: &str) -> Result<Deletion> {
    Ok(if write_ours(aws, bucket, id, None).await? {
        Deletion::Deleted
    } else {
        Deletion::Absent
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            bucket: "demo-ingest".into(),
            id: "demo-ingest-to-lambda".into(),
            function_arn: "arn:aws:lambda:us-east-1:0:function:demo".into(),
            prefix: None,
            suffix: Some(".csv".into()),
        }
    }

    #[test]
    fn converged_entry_needs_nothing() {
        let s = spec();
        let observed = Observed::from_configuration(&s.configuration().unwrap());
        assert_eq!(diff(&s, Some(&observed)), vec![]);
        // S3 capitalises filter rule names.
        let mut capitalised = observed.clone();
        capitalised.filter_rules = [("suffix".to_owned(), ".csv".to_owned())].into();
        assert_eq!(diff(&s, Some(&capitalised)), vec![]);
    }

    #[test]
    fn every_managed_property_is_compared() {
        let s = spec();
        let base = Observed::from_configuration(&s.configuration().unwrap());
        let mut other_function = base.clone();
        other_function.function_arn = "arn:aws:lambda:us-east-1:0:function:other".into();
        let mut other_events = base.clone();
        other_events.events = ["s3:ObjectRemoved:*".to_owned()].into();
        let mut other_filter = base.clone();
        other_filter
            .filter_rules
            .insert(("prefix".into(), "in/".into()));
        for drifted in [other_function, other_events, other_filter] {
            let changes = diff(&s, Some(&drifted));
            assert_eq!(changes.len(), 1);
            assert!(changes[0].old.is_some());
        }
        assert!(diff(&s, None)[0].is_create());
    }
}
