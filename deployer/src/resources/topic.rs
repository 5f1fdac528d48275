//! The alerts SNS topic `<stack>-alerts` (SSE with the AWS-managed key) and its email
//! subscriptions, converged to `alerts.email`: missing addresses are subscribed (each confirms
//! by email), removed ones unsubscribed. The alarms notify it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result};
use aws_sdk_sns::operation::get_topic_attributes::GetTopicAttributesError;
use aws_sdk_sns::types::Tag;

use super::{Deletion, Tags, describe_tags, missing_tags, ownership_problem};
use crate::aws::{Aws, error_code, sdk_error};
use crate::plan::{Describe, PropertyChange};

pub const KIND: &str = "sns topic";
/// SSE with the AWS-managed SNS key (CloudWatch alarms can publish to it).
pub const SSE_KEY: &str = "alias/aws/sns";
/// What SNS reports as the ARN of a subscription not yet confirmed.
pub const PENDING: &str = "PendingConfirmation";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub arn: String,
    pub tags: Tags,
    /// Email endpoints, as configured.
    pub email: BTreeSet<String>,
}

impl Spec {
    pub fn name_for_stack(stack: &str) -> String {
        format!("{stack}-alerts")
    }
}

/// One subscription of the topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub protocol: String,
    pub endpoint: String,
    /// `PendingConfirmation` until the address confirms.
    pub arn: String,
}

impl Subscription {
    pub fn pending(&self) -> bool {
        self.arn == PENDING
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub kms_key: Option<String>,
    pub tags: Tags,
    pub subscriptions: Vec<Subscription>,
}

impl Observed {
    /// Email subscriptions by address (lowercased: SNS compares addresses so).
    fn emails(&self) -> BTreeMap<String, &Subscription> {
        self.subscriptions
            .iter()
            .filter(|s| s.protocol == "email")
            .map(|s| (s.endpoint.to_ascii_lowercase(), s))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Create,
    Encryption {
        old: Option<String>,
    },
    Tags {
        observed: Tags,
        set: Tags,
    },
    Subscribe {
        email: String,
    },
    Unsubscribe {
        email: String,
        arn: String,
    },
    /// Alerts switched off: the topic (and its subscriptions) go.
    Delete,
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match self {
            Change::Create => PropertyChange::set("exists", "true"),
            Change::Encryption { old } => {
                PropertyChange::replace("kms_master_key_id", old.clone(), SSE_KEY)
            }
            Change::Tags { observed, set } => describe_tags(observed, set),
            Change::Subscribe { email } => PropertyChange::set(
                "subscription",
                format!("email {email} (pending until confirmed)"),
            ),
            Change::Unsubscribe { email, .. } => {
                PropertyChange::remove("subscription", format!("email {email}"))
            }
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

/// What must change for `observed` to match `spec` (`None`: alerts are off).
pub fn diff(spec: Option<&Spec>, observed: Option<&Observed>) -> Vec<Change> {
    let Some(spec) = spec else {
        return match observed {
            Some(_) => vec![Change::Delete],
            None => Vec::new(),
        };
    };
    let absent = Observed::default();
    let mut changes = Vec::new();
    let o = match observed {
        Some(o) => o,
        None => {
            // CreateTopic sets the key and the tags.
            changes.push(Change::Create);
            &absent
        }
    };
    if observed.is_some() {
        if o.kms_key.as_deref() != Some(SSE_KEY) {
            changes.push(Change::Encryption {
                old: o.kms_key.clone(),
            });
        }
        let set = missing_tags(&spec.tags, &o.tags);
        if !set.is_empty() {
            changes.push(Change::Tags {
                observed: o.tags.clone(),
                set,
            });
        }
    }
    let have = o.emails();
    let want: BTreeSet<String> = spec.email.iter().map(|e| e.to_ascii_lowercase()).collect();
    for email in &spec.email {
        if !have.contains_key(&email.to_ascii_lowercase()) {
            changes.push(Change::Subscribe {
                email: email.clone(),
            });
        }
    }
    for (email, sub) in have {
        // A pending subscription cannot be removed (it has no ARN yet); SNS drops it when it
        // is not confirmed within three days.
        if !want.contains(&email) && !sub.pending() {
            changes.push(Change::Unsubscribe {
                email: sub.endpoint.clone(),
                arn: sub.arn.clone(),
            });
        }
    }
    changes
}

/// The topic, its key, tags and subscriptions; `None` when it does not exist.
pub async fn read(aws: &Aws, arn: &str, stack: &str) -> Result<Option<Observed>> {
    let attributes = match aws.sns.get_topic_attributes().topic_arn(arn).send().await {
        Ok(out) => out.attributes.unwrap_or_default(),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetTopicAttributesError::NotFoundException(_))
            ) || error_code(&e) == Some("NotFound") =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(sdk_error(e))
                .with_context(|| format!("reading sns topic {arn} (GetTopicAttributes)"));
        }
    };
    let tags = aws
        .sns
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("reading sns topic {arn} (ListTagsForResource)"))?
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect::<Tags>();
    let mut observed = Observed {
        kms_key: attributes
            .get("KmsMasterKeyId")
            .cloned()
            .filter(|k| !k.is_empty()),
        tags,
        subscriptions: Vec::new(),
    };
    if ownership_problem(&observed.tags, stack).is_some() {
        return Ok(Some(observed));
    }
    observed.subscriptions = aws
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(arn)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("reading sns topic {arn} (ListSubscriptionsByTopic)"))?
        .into_iter()
        .map(|s| Subscription {
            protocol: s.protocol.unwrap_or_default(),
            endpoint: s.endpoint.unwrap_or_default(),
            arn: s.subscription_arn.unwrap_or_default(),
        })
        .collect();
    Ok(Some(observed))
}

fn sns_tags(tags: &Tags) -> Result<Vec<Tag>> {
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

pub async fn apply(aws: &Aws, spec: Option<&Spec>, arn: &str, changes: &[Change]) -> Result<()> {
    let sns = &aws.sns;
    let doing = |what: &str| format!("{what} on sns topic {arn}");
    for change in changes {
        match change {
            Change::Delete => {
                sns.delete_topic()
                    .topic_arn(arn)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("DeleteTopic"))?;
            }
            Change::Create => {
                let Some(spec) = spec else { continue };
                sns.create_topic()
                    .name(&spec.name)
                    .set_attributes(Some(HashMap::from([(
                        "KmsMasterKeyId".to_owned(),
                        SSE_KEY.to_owned(),
                    )])))
                    .set_tags(Some(sns_tags(&spec.tags)?))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("CreateTopic"))?;
            }
            Change::Encryption { .. } => {
                sns.set_topic_attributes()
                    .topic_arn(arn)
                    .attribute_name("KmsMasterKeyId")
                    .attribute_value(SSE_KEY)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("SetTopicAttributes"))?;
            }
            Change::Tags { set, .. } => {
                sns.tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(sns_tags(set)?))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("TagResource"))?;
            }
            Change::Subscribe { email } => {
                sns.subscribe()
                    .topic_arn(arn)
                    .protocol("email")
                    .endpoint(email)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("Subscribe"))?;
            }
            Change::Unsubscribe {
                arn: subscription, ..
            } => {
                sns.unsubscribe()
                    .subscription_arn(subscription)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("Unsubscribe"))?;
            }
        }
    }
    Ok(())
}

/// Deletes the topic (with its subscriptions) if it is ours.
pub async fn delete(aws: &Aws, arn: &str, stack: &str) -> Result<Deletion> {
    let Some(observed) = read(aws, arn, stack).await? else {
        return Ok(Deletion::Absent);
    };
    if let Some(problem) = ownership_problem(&observed.tags, stack) {
        return Ok(Deletion::Kept(problem));
    }
    apply(aws, None, arn, &[Change::Delete]).await?;
    Ok(Deletion::Deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OWNERSHIP_TAG;

    fn spec(email: &[&str]) -> Spec {
        Spec {
            name: "demo-alerts".into(),
            arn: "arn:aws:sns:us-east-1:0:demo-alerts".into(),
            tags: [(OWNERSHIP_TAG.to_owned(), "demo".to_owned())].into(),
            email: email.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    fn sub(email: &str, arn: &str) -> Subscription {
        Subscription {
            protocol: "email".into(),
            endpoint: email.into(),
            arn: arn.into(),
        }
    }

    #[test]
    fn subscriptions_follow_the_config_and_pending_ones_are_left_to_expire() {
        let s = spec(&["a@x.io", "b@x.io"]);
        let o = Observed {
            kms_key: Some(SSE_KEY.into()),
            tags: s.tags.clone(),
            subscriptions: vec![
                sub("A@x.io", "arn:sub:a"),
                sub("old@x.io", "arn:sub:old"),
                sub("gone@x.io", PENDING),
            ],
        };
        assert_eq!(
            diff(Some(&s), Some(&o)),
            vec![
                Change::Subscribe {
                    email: "b@x.io".into()
                },
                Change::Unsubscribe {
                    email: "old@x.io".into(),
                    arn: "arn:sub:old".into()
                },
            ]
        );
    }

    #[test]
    fn a_missing_topic_is_created_and_a_disabled_one_deleted() {
        let s = spec(&["a@x.io"]);
        assert_eq!(
            diff(Some(&s), None),
            vec![
                Change::Create,
                Change::Subscribe {
                    email: "a@x.io".into()
                }
            ]
        );
        let o = Observed {
            kms_key: None,
            tags: Tags::new(),
            subscriptions: vec![],
        };
        let changes = diff(Some(&spec(&[])), Some(&o));
        let names: Vec<String> = changes.iter().map(|c| c.describe().property).collect();
        assert_eq!(names, ["kms_master_key_id", "tags"]);
        assert_eq!(diff(None, Some(&o)), vec![Change::Delete]);
        assert!(Change::Delete.is_delete());
        assert_eq!(diff(None, None), vec![]);
    }
}
