//! The failed-events SQS queue: where Lambda sends events it gave up on (encrypted, 14-day retention).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sqs::operation::create_queue::CreateQueueError;
use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError;
use aws_sdk_sqs::types::QueueAttributeName;

use super::{Deletion, Tags, describe_tags, missing_tags, ownership_problem};
use crate::aws::{Aws, Patience, retry_while, sdk_error};
use crate::plan::{Describe, PropertyChange};

pub const KIND: &str = "sqs queue";
/// 14 days, the longest SQS keeps a message.
pub const RETENTION_SECONDS: i64 = 14 * 24 * 3600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub arn: String,
    pub tags: Tags,
}

impl Spec {
    pub fn name_for_stack(stack: &str) -> String {
        format!("{stack}-failed-events")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub url: String,
    pub retention_seconds: Option<i64>,
    pub sse_enabled: bool,
    /// Messages waiting (approximate, as SQS counts).
    pub depth: Option<i64>,
    /// Messages received by a reader and not yet deleted or visible again (approximate).
    pub in_flight: Option<i64>,
    /// Messages sent with a delay, not yet visible (approximate).
    pub delayed: Option<i64>,
    pub tags: Tags,
    /// Seconds since the epoch.
    pub last_modified: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Create,
    Retention { old: Option<i64> },
    Encryption,
    Tags { observed: Tags, set: Tags },
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match self {
            Change::Create => PropertyChange::set("exists", "true"),
            Change::Retention { old } => PropertyChange::replace(
                "message_retention_seconds",
                old.map(|s| s.to_string()),
                RETENTION_SECONDS.to_string(),
            ),
            Change::Encryption => PropertyChange::update("sse_sqs", "false", "true"),
            Change::Tags { observed, set } => describe_tags(observed, set),
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, Change::Create)
    }
}

pub fn diff(spec: &Spec, observed: Option<&Observed>) -> Vec<Change> {
    // CreateQueue sets attributes and tags in one call.
    let Some(o) = observed else {
        return vec![Change::Create];
    };
    let mut changes = Vec::new();
    if o.retention_seconds != Some(RETENTION_SECONDS) {
        changes.push(Change::Retention {
            old: o.retention_seconds,
        });
    }
    if !o.sse_enabled {
        changes.push(Change::Encryption);
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

fn desired_attributes() -> HashMap<QueueAttributeName, String> {
    HashMap::from([
        (
            QueueAttributeName::MessageRetentionPeriod,
            RETENTION_SECONDS.to_string(),
        ),
        (QueueAttributeName::SqsManagedSseEnabled, "true".to_owned()),
    ])
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Observed>> {
    let url = match aws.sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => out.queue_url.unwrap_or_default(),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetQueueUrlError::QueueDoesNotExist(_))
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(sdk_error(e))
                .with_context(|| format!("reading sqs queue {name} (GetQueueUrl)"));
        }
    };
    let (attributes, tags) = tokio::join!(
        aws.sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send(),
        aws.sqs.list_queue_tags().queue_url(&url).send(),
    );
    let attributes = attributes
        .map_err(sdk_error)
        .with_context(|| format!("reading sqs queue {name} (GetQueueAttributes)"))?
        .attributes
        .unwrap_or_default();
    let tags = tags
        .map_err(sdk_error)
        .with_context(|| format!("reading sqs queue {name} (ListQueueTags)"))?
        .tags
        .unwrap_or_default();
    let number = |attribute: QueueAttributeName| {
        attributes
            .get(&attribute)
            .and_then(|v| v.parse::<i64>().ok())
    };
    Ok(Some(Observed {
        retention_seconds: number(QueueAttributeName::MessageRetentionPeriod),
        sse_enabled: attributes
            .get(&QueueAttributeName::SqsManagedSseEnabled)
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        depth: number(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: number(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        delayed: number(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        last_modified: number(QueueAttributeName::LastModifiedTimestamp),
        tags: tags.into_iter().collect(),
        url,
    }))
}

pub async fn apply(
    aws: &Aws,
    spec: &Spec,
    observed_url: Option<&str>,
    changes: &[Change],
) -> Result<()> {
    let name = spec.name.as_str();
    let doing = |what: &str| format!("{what} on sqs queue {name}");
    let url = observed_url.unwrap_or_default();
    let mut attributes_set = false;
    for change in changes {
        match change {
            Change::Create => {
                // SQS refuses a name for 60 s after `DeleteQueue` (`down` then `up`).
                retry_while(
                    Patience::QUEUE_DELETED_RECENTLY,
                    || {
                        aws.sqs
                            .create_queue()
                            .queue_name(name)
                            .set_attributes(Some(desired_attributes()))
                            .set_tags(Some(spec.tags.clone().into_iter().collect()))
                            .send()
                    },
                    |e| {
                        matches!(
                            e.as_service_error(),
                            Some(CreateQueueError::QueueDeletedRecently(_))
                        )
                        .then(|| {
                            format!("sqs queue {name} was deleted less than 60 s ago; waiting to create it again")
                        })
                    },
                )
                .await
                .map_err(sdk_error)
                .with_context(|| doing("CreateQueue"))?;
            }
            Change::Retention { .. } | Change::Encryption if !attributes_set => {
                attributes_set = true;
                aws.sqs
                    .set_queue_attributes()
                    .queue_url(url)
                    .set_attributes(Some(desired_attributes()))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("SetQueueAttributes"))?;
            }
            Change::Retention { .. } | Change::Encryption => {}
            Change::Tags { set, .. } => {
                aws.sqs
                    .tag_queue()
                    .queue_url(url)
                    .set_tags(Some(set.clone().into_iter().collect()))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("TagQueue"))?;
            }
        }
    }
    Ok(())
}

/// Deletes the queue if it is ours and, unless `purge`, empty: failed events are kept.
pub async fn delete(aws: &Aws, name: &str, stack: &str, purge: bool) -> Result<Deletion> {
    let Some(observed) = read(aws, name).await? else {
        return Ok(Deletion::Absent);
    };
    if let Some(problem) = ownership_problem(&observed.tags, stack) {
        return Ok(Deletion::Kept(problem));
    }
    if !purge {
        // The counts are approximate: look twice, a little apart, and keep the queue if
        // either look sees a message anywhere (visible, being read, or delayed).
        let first = Waiting::of(&observed);
        tokio::time::sleep(SECOND_LOOK_AFTER).await;
        let second = match read(aws, name).await? {
            Some(again) => Waiting::of(&again),
            None => return Ok(Deletion::Absent),
        };
        if let Some(why) = keep_because(first, second) {
            return Ok(Deletion::Kept(why));
        }
    }
    aws.sqs
        .delete_queue()
        .queue_url(&observed.url)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("deleting sqs queue {name} (DeleteQueue)"))?;
    Ok(Deletion::Deleted)
}

/// How long `down` waits between its two looks at the queue's counts.
const SECOND_LOOK_AFTER: Duration = Duration::from_secs(1);

/// The queue's approximate message counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    pub visible: i64,
    pub in_flight: i64,
    pub delayed: i64,
}

impl Waiting {
    pub fn of(o: &Observed) -> Waiting {
        Waiting {
            visible: o.depth.unwrap_or(0),
            in_flight: o.in_flight.unwrap_or(0),
            delayed: o.delayed.unwrap_or(0),
        }
    }

    pub fn total(self) -> i64 {
        self.visible + self.in_flight + self.delayed
    }
}

/// Why `down` (without `--purge`) keeps the queue, from two looks at its counts; `None` when
/// both saw it empty.
pub fn keep_because(first: Waiting, second: Waiting) -> Option<String> {
    let w = if second.total() >= first.total() {
        second
    } else {
        first
    };
    (w.total() > 0).then(|| {
        format!(
            "it holds {} failed events ({} waiting, {} being read, {} delayed): list them with `deployer failed`, run them again with `deployer redrive --all`, or delete them with the queue with `down --purge`",
            w.total(),
            w.visible,
            w.in_flight,
            w.delayed
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OWNERSHIP_TAG;

    #[test]
    fn the_queue_is_kept_while_either_look_sees_a_message() {
        let w = |visible, in_flight, delayed| Waiting {
            visible,
            in_flight,
            delayed,
        };
        let cases = [
            (w(0, 0, 0), w(0, 0, 0), None),
            (
                w(1, 0, 0),
                w(1, 0, 0),
                Some("1 failed events (1 waiting, 0 being read, 0 delayed)"),
            ),
            (
                w(0, 1, 0),
                w(0, 0, 0),
                Some("1 failed events (0 waiting, 1 being read, 0 delayed)"),
            ),
            (
                w(0, 0, 0),
                w(0, 0, 2),
                Some("2 failed events (0 waiting, 0 being read, 2 delayed)"),
            ),
            (w(0, 0, 0), w(1, 2, 0), Some("3 failed events")),
        ];
        for (first, second, want) in cases {
            let got = keep_because(first, second);
            match want {
                None => assert_eq!(got, None, "{first:?} {second:?}"),
                Some(text) => {
                    let got = got.unwrap_or_default();
                    assert!(got.contains(text), "{got}");
                    assert!(got.contains("deployer failed"), "{got}");
                }
            }
        }
    }

    fn spec() -> Spec {
        Spec {
            name: "demo-failed-events".into(),
            arn: "arn:aws:sqs:us-east-1:0:demo-failed-events".into(),
            tags: [(OWNERSHIP_TAG.to_owned(), "demo".to_owned())].into(),
        }
    }

    #[test]
    fn each_property_is_checked_independently() {
        let s = spec();
        let ok = Observed {
            url: "http://q".into(),
            retention_seconds: Some(RETENTION_SECONDS),
            sse_enabled: true,
            depth: Some(3),
            in_flight: None,
            delayed: None,
            tags: s.tags.clone(),
            last_modified: None,
        };
        assert_eq!(diff(&s, Some(&ok)), vec![]);
        assert_eq!(diff(&s, None), vec![Change::Create]);
        let mut o = ok.clone();
        o.retention_seconds = Some(345_600);
        assert_eq!(
            diff(&s, Some(&o)),
            vec![Change::Retention { old: Some(345_600) }]
        );
        let mut o = ok.clone();
        o.sse_enabled = false;
        assert_eq!(diff(&s, Some(&o)), vec![Change::Encryption]);
        let mut o = ok;
        o.tags.clear();
        assert!(matches!(
            diff(&s, Some(&o)).as_slice(),
            [Change::Tags { .. }]
        ));
    }
}
