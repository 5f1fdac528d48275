//! The CloudWatch alarms that notify the alerts topic: failed events waiting in the queue, the
//! function's errors and throttles, and (with `alerts.rejected_ratio`) an hour whose rejected
//! share of the records exceeds the ratio. Each alarm is one resource of this module; one
//! `PutMetricAlarm` sets every property, so any property change costs one call.
//!
//! The rejected-share alarm needs no metric math: the function, told the ratio
//! (`REJECTED_RATIO_ALERT`), emits `RejectedExcess = Rejected − ratio × RecordsIn` per file,
//! whose hourly sum is positive exactly when the hour's rejected share exceeds the ratio.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};

use super::{Deletion, Tags, describe_tags, missing_tags, ownership_problem};
use crate::aws::{Aws, sdk_error};
use crate::config::Ratio;
use crate::plan::{Describe, PropertyChange};

pub const KIND: &str = "cloudwatch alarm";
/// The function's EMF namespace (`function::metrics::NAMESPACE`).
pub const FUNCTION_NAMESPACE: &str = "CsvIngest";
/// The function's environment variable carrying the rejected-share ratio.
pub const REJECTED_RATIO_ENV: &str = "REJECTED_RATIO_ALERT";

/// The alarms a stack can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alarm {
    FailedEvents,
    FunctionErrors,
    FunctionThrottles,
    RejectedRatio,
}

impl Alarm {
    pub const ALL: [Alarm; 4] = [
        Alarm::FailedEvents,
        Alarm::FunctionErrors,
        Alarm::FunctionThrottles,
        Alarm::RejectedRatio,
    ];

    /// `<stack>-failed-events`, …
    pub fn name(self, stack: &str) -> String {
        let suffix = match self {
            Alarm::FailedEvents => "failed-events",
            Alarm::FunctionErrors => "function-errors",
            Alarm::FunctionThrottles => "function-throttles",
            Alarm::RejectedRatio => "rejected-ratio",
        };
        format!("{stack}-{suffix}")
    }
}

/// An alarm as it should be.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub alarm: Alarm,
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: String,
    pub period_s: i32,
    pub evaluation_periods: i32,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing_data: String,
    /// The alerts topic, for ALARM and OK.
    pub actions: Vec<String>,
    pub tags: Tags,
}

/// What the alarms are about.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    pub stack: &'a str,
    pub topic_arn: &'a str,
    pub queue: &'a str,
    pub function: &'a str,
    pub rejected_ratio: Option<Ratio>,
    pub tags: &'a Tags,
}

/// Every alarm the stack can have, each with its spec when the config wants it.
pub fn specs(inputs: &Inputs<'_>) -> Vec<(Alarm, Option<Spec>)> {
    let spec = |alarm: Alarm,
                description: String,
                namespace: &str,
                metric: &str,
                dimension: (&str, &str),
                statistic: &str,
                period_s: i32| Spec {
        alarm,
        name: alarm.name(inputs.stack),
        description,
        namespace: namespace.to_owned(),
        metric: metric.to_owned(),
        dimensions: BTreeMap::from([(dimension.0.to_owned(), dimension.1.to_owned())]),
        statistic: statistic.to_owned(),
        period_s,
        evaluation_periods: 1,
        threshold: 0.0,
        comparison: "GreaterThanThreshold".to_owned(),
        treat_missing_data: "notBreaching".to_owned(),
        actions: vec![inputs.topic_arn.to_owned()],
        tags: inputs.tags.clone(),
    };
    Alarm::ALL
        .into_iter()
        .map(|alarm| {
            let wanted = match alarm {
                Alarm::FailedEvents => Some(spec(
                    alarm,
                    format!("Events wait in {}: list them with `deployer failed`", inputs.queue),
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    ("QueueName", inputs.queue),
                    "Maximum",
                    300,
                )),
                Alarm::FunctionErrors => Some(spec(
                    alarm,
                    format!("Lambda function {} failed invocations (Lambda retries them, then the failed-events queue)", inputs.function),
                    "AWS/Lambda",
                    "Errors",
                    ("FunctionName", inputs.function),
                    "Sum",
                    300,
                )),
                Alarm::FunctionThrottles => Some(spec(
                    alarm,
                    format!("Lambda function {} was throttled (raise its reserved concurrency or the account limit)", inputs.function),
                    "AWS/Lambda",
                    "Throttles",
                    ("FunctionName", inputs.function),
                    "Sum",
                    300,
                )),
                Alarm::RejectedRatio => inputs.rejected_ratio.map(|ratio| {
                    spec(
                        alarm,
                        format!("More than {ratio} of the records of an hour were rejected (RejectedExcess = Rejected - {ratio} x RecordsIn, summed over the hour)"),
                        FUNCTION_NAMESPACE,
                        "RejectedExcess",
                        ("FunctionName", inputs.function),
                        "Sum",
                        3600,
                    )
                }),
            };
            (alarm, wanted)
        })
        .collect()
}

/// An alarm as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub arn: String,
    pub description: Option<String>,
    pub namespace: Option<String>,
    pub metric: Option<String>,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: Option<String>,
    pub period_s: Option<i32>,
    pub evaluation_periods: Option<i32>,
    pub threshold: Option<f64>,
    pub comparison: Option<String>,
    pub treat_missing_data: Option<String>,
    pub alarm_actions: Vec<String>,
    pub ok_actions: Vec<String>,
    pub tags: Tags,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`, as CloudWatch reports it.
    pub state: Option<String>,
    pub state_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Create,
    /// One property differs; every `Property` change is made by the same `PutMetricAlarm`.
    Property {
        name: &'static str,
        old: Option<String>,
        new: String,
    },
    Tags {
        observed: Tags,
        set: Tags,
    },
    /// The config no longer wants it (alerts off, or no `rejected_ratio`).
    Delete,
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match self {
            Change::Create => PropertyChange::set("exists", "true"),
            Change::Property { name, old, new } => {
                PropertyChange::replace(*name, old.clone(), new.clone())
            }
            Change::Tags { observed, set } => describe_tags(observed, set),
            Change::Delete => PropertyChange::remove("exists", "true"),
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, Change::Create)
    }

    fn is_delete(&self) -> bool {
        matches!(self, Change::Delete)
    }
}

fn show_dimensions(d: &BTreeMap<String, String>) -> String {
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn diff(spec: Option<&Spec>, observed: Option<&Observed>) -> Vec<Change> {
    let (spec, o) = match (spec, observed) {
        (None, None) => return Vec::new(),
        (None, Some(_)) => return vec![Change::Delete],
        (Some(_), None) => return vec![Change::Create],
        (Some(spec), Some(o)) => (spec, o),
    };
    let mut changes = Vec::new();
    let mut property = |name: &'static str, old: Option<String>, new: String| {
        if old.as_deref() != Some(new.as_str()) {
            changes.push(Change::Property { name, old, new });
        }
    };
    property(
        "description",
        o.description.clone(),
        spec.description.clone(),
    );
    property(
        "metric",
        o.namespace
            .as_ref()
            .zip(o.metric.as_ref())
            .map(|(n, m)| format!("{n} {m}")),
        format!("{} {}", spec.namespace, spec.metric),
    );
    property(
        "dimensions",
        Some(show_dimensions(&o.dimensions)).filter(|d| !d.is_empty()),
        show_dimensions(&spec.dimensions),
    );
    property("statistic", o.statistic.clone(), spec.statistic.clone());
    property(
        "period_s",
        o.period_s.map(|p| p.to_string()),
        spec.period_s.to_string(),
    );
    property(
        "evaluation_periods",
        o.evaluation_periods.map(|p| p.to_string()),
        spec.evaluation_periods.to_string(),
    );
    property(
        "threshold",
        o.threshold
            .map(|t| format!("{} {t}", o.comparison.as_deref().unwrap_or("?"))),
        format!("{} {}", spec.comparison, spec.threshold),
    );
    property(
        "treat_missing_data",
        o.treat_missing_data.clone(),
        spec.treat_missing_data.clone(),
    );
    property(
        "alarm_actions",
        Some(o.alarm_actions.join(",")).filter(|a| !a.is_empty()),
        spec.actions.join(","),
    );
    property(
        "ok_actions",
        Some(o.ok_actions.join(",")).filter(|a| !a.is_empty()),
        spec.actions.join(","),
    );
    let set = missing_tags(&spec.tags, &o.tags);
    if !set.is_empty() {
        changes.push(Change::Tags {
            observed: o.tags.clone(),
            set,
        });
    }
    changes
}

/// Every alarm of the stack that exists, by name (one `DescribeAlarms`, tags per alarm).
pub async fn read(aws: &Aws, names: &[String]) -> Result<BTreeMap<String, Observed>> {
    let alarms = aws
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(sdk_error)
        .context("reading cloudwatch alarms (DescribeAlarms)")?;
    let mut out = BTreeMap::new();
    for alarm in alarms.iter().flat_map(|page| page.metric_alarms()) {
        let (Some(name), Some(arn)) = (alarm.alarm_name(), alarm.alarm_arn()) else {
            continue;
        };
        let tags = aws
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("reading cloudwatch alarm {name} (ListTagsForResource)"))?
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| Some((t.key?, t.value?)))
            .collect();
        out.insert(
            name.to_owned(),
            Observed {
                arn: arn.to_owned(),
                description: alarm.alarm_description().map(str::to_owned),
                namespace: alarm.namespace().map(str::to_owned),
                metric: alarm.metric_name().map(str::to_owned),
                dimensions: alarm
                    .dimensions()
                    .iter()
                    .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
                    .collect(),
                statistic: alarm.statistic().map(|s| s.as_str().to_owned()),
                period_s: alarm.period(),
                evaluation_periods: alarm.evaluation_periods(),
                threshold: alarm.threshold(),
                comparison: alarm.comparison_operator().map(|c| c.as_str().to_owned()),
                treat_missing_data: alarm.treat_missing_data().map(str::to_owned),
                alarm_actions: alarm.alarm_actions().to_vec(),
                ok_actions: alarm.ok_actions().to_vec(),
                tags,
                state: alarm.state_value().map(|s| s.as_str().to_owned()),
                state_reason: alarm.state_reason().map(str::to_owned),
            },
        );
    }
    Ok(out)
}

/// `PutMetricAlarm` with every property of `spec`; the tags apply only when it creates.
async fn put(aws: &Aws, spec: &Spec) -> Result<()> {
    let dimensions = spec
        .dimensions
        .iter()
        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
        .collect();
    let tags: Vec<Tag> = spec
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    aws.cloudwatch
        .put_metric_alarm()
        .alarm_name(&spec.name)
        .alarm_description(&spec.description)
        .namespace(&spec.namespace)
        .metric_name(&spec.metric)
        .set_dimensions(Some(dimensions))
        .statistic(Statistic::from(spec.statistic.as_str()))
        .period(spec.period_s)
        .evaluation_periods(spec.evaluation_periods)
        .threshold(spec.threshold)
        .comparison_operator(ComparisonOperator::from(spec.comparison.as_str()))
        .treat_missing_data(&spec.treat_missing_data)
        .set_alarm_actions(Some(spec.actions.clone()))
        .set_ok_actions(Some(spec.actions.clone()))
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("PutMetricAlarm on cloudwatch alarm {}", spec.name))?;
    Ok(())
}

pub async fn apply(
    aws: &Aws,
    name: &str,
    spec: Option<&Spec>,
    observed: Option<&Observed>,
    changes: &[Change],
) -> Result<()> {
    let put_needed = changes
        .iter()
        .any(|c| matches!(c, Change::Create | Change::Property { .. }));
    if let (true, Some(spec)) = (put_needed, spec) {
        put(aws, spec).await?;
    }
    for change in changes {
        match change {
            Change::Tags { set, .. } => {
                let arn = observed.map(|o| o.arn.as_str()).unwrap_or_default();
                let tags: Vec<Tag> = set
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect();
                aws.cloudwatch
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| format!("TagResource on cloudwatch alarm {name}"))?;
            }
            Change::Delete => remove(aws, name).await?,
            Change::Create | Change::Property { .. } => {}
        }
    }
    Ok(())
}

async fn remove(aws: &Aws, name: &str) -> Result<()> {
    aws.cloudwatch
        .delete_alarms()
        .alarm_names(name)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("deleting cloudwatch alarm {name} (DeleteAlarms)"))?;
    Ok(())
}

/// Deletes the alarm if it exists and is ours.
pub async fn delete(
    aws: &Aws,
    name: &str,
    observed: Option<&Observed>,
    stack: &str,
) -> Result<Deletion> {
    let Some(observed) = observed else {
        return Ok(Deletion::Absent);
    };
    if let Some(problem) = ownership_problem(&observed.tags, stack) {
        return Ok(Deletion::Kept(problem));
    }
    remove(aws, name).await?;
    Ok(Deletion::Deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OWNERSHIP_TAG;

    fn inputs(ratio: Option<Ratio>) -> (Tags, Option<Ratio>) {
        (
            [(OWNERSHIP_TAG.to_owned(), "demo".to_owned())].into(),
            ratio,
        )
    }

    fn all(ratio: Option<Ratio>) -> Vec<(Alarm, Option<Spec>)> {
        let (tags, ratio) = inputs(ratio);
        specs(&Inputs {
            stack: "demo",
            topic_arn: "arn:aws:sns:us-east-1:0:demo-alerts",
            queue: "demo-failed-events",
            function: "demo",
            rejected_ratio: ratio,
            tags: &tags,
        })
    }

    /// Which metric, dimension, statistic, period and threshold each alarm watches.
    #[test]
    fn each_alarm_watches_the_right_metric() {
        type Watched<'a> = (&'a str, &'a str, &'a str, (&'a str, &'a str), &'a str, i32);
        let want: [Watched; 4] = [
            (
                "demo-failed-events",
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                ("QueueName", "demo-failed-events"),
                "Maximum",
                300,
            ),
            (
                "demo-function-errors",
                "AWS/Lambda",
                "Errors",
                ("FunctionName", "demo"),
                "Sum",
                300,
            ),
            (
                "demo-function-throttles",
                "AWS/Lambda",
                "Throttles",
                ("FunctionName", "demo"),
                "Sum",
                300,
            ),
            (
                "demo-rejected-ratio",
                "CsvIngest",
                "RejectedExcess",
                ("FunctionName", "demo"),
                "Sum",
                3600,
            ),
        ];
        let ratio = crate::config::Config::parse(
            std::path::Path::new("c.toml"),
            "stack = \"demo\"\n[target]\nregion = \"us-east-1\"\n[function]\narchitecture = \"arm64\"\nartifact = \"x.zip\"\n[alerts]\nrejected_ratio = 0.2",
            None,
        )
        .unwrap()
        .alerts
        .rejected_ratio;
        let specs = all(ratio);
        assert_eq!(specs.len(), 4);
        for ((alarm, spec), (name, namespace, metric, dim, statistic, period)) in
            specs.iter().zip(want)
        {
            let spec = spec.as_ref().unwrap_or_else(|| panic!("{alarm:?} wanted"));
            assert_eq!(spec.name, name);
            assert_eq!(
                (spec.namespace.as_str(), spec.metric.as_str()),
                (namespace, metric)
            );
            assert_eq!(
                spec.dimensions,
                BTreeMap::from([(dim.0.to_owned(), dim.1.to_owned())])
            );
            assert_eq!(
                (spec.statistic.as_str(), spec.period_s),
                (statistic, period)
            );
            assert_eq!(
                (spec.comparison.as_str(), spec.threshold),
                ("GreaterThanThreshold", 0.0)
            );
            assert_eq!(spec.treat_missing_data, "notBreaching");
            assert_eq!(spec.actions, ["arn:aws:sns:us-east-1:0:demo-alerts"]);
        }
        assert!(specs[3].1.as_ref().unwrap().description.contains("0.2"));
        // Without a ratio, no rejected-share alarm.
        assert!(all(None)[3].1.is_none());
    }

    fn converged(spec: &Spec) -> Observed {
        Observed {
            arn: "arn:aws:cloudwatch:us-east-1:0:alarm:x".into(),
            description: Some(spec.description.clone()),
            namespace: Some(spec.namespace.clone()),
            metric: Some(spec.metric.clone()),
            dimensions: spec.dimensions.clone(),
            statistic: Some(spec.statistic.clone()),
            period_s: Some(spec.period_s),
            evaluation_periods: Some(spec.evaluation_periods),
            threshold: Some(spec.threshold),
            comparison: Some(spec.comparison.clone()),
            treat_missing_data: Some(spec.treat_missing_data.clone()),
            alarm_actions: spec.actions.clone(),
            ok_actions: spec.actions.clone(),
            tags: spec.tags.clone(),
            state: Some("OK".into()),
            state_reason: None,
        }
    }

    #[test]
    fn each_property_is_checked_independently() {
        let spec = all(None)[1].1.clone().unwrap();
        assert_eq!(diff(Some(&spec), Some(&converged(&spec))), vec![]);
        assert_eq!(diff(Some(&spec), None), vec![Change::Create]);
        assert_eq!(diff(None, Some(&converged(&spec))), vec![Change::Delete]);
        type Drift = fn(&mut Observed);
        let drifts: Vec<(&str, Drift)> = vec![
            ("description", |o| o.description = None),
            ("metric", |o| o.metric = Some("Invocations".into())),
            ("dimensions", |o| o.dimensions.clear()),
            ("statistic", |o| o.statistic = Some("Average".into())),
            ("period_s", |o| o.period_s = Some(60)),
            ("evaluation_periods", |o| o.evaluation_periods = Some(3)),
            ("threshold", |o| o.threshold = Some(5.0)),
            ("treat_missing_data", |o| {
                o.treat_missing_data = Some("missing".into())
            }),
            ("alarm_actions", |o| o.alarm_actions.clear()),
            ("ok_actions", |o| o.ok_actions = vec!["arn:other".into()]),
            ("tags", |o| o.tags.clear()),
        ];
        for (property, drift) in drifts {
            let mut o = converged(&spec);
            drift(&mut o);
            let changes = diff(Some(&spec), Some(&o));
            assert_eq!(changes.len(), 1, "{property}: {changes:?}");
            assert_eq!(changes[0].describe().property, property);
        }
    }
}
