//! `deployer status`: what exists, whether it is ours, its key properties, when it last changed and how many failed events wait.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde::Serialize;

use crate::aws::{Aws, Identity, sdk_error};
use crate::commands::connect;
use crate::config::BucketRole;
use crate::config::Config;
use crate::report::{Output, Reporter, print_json};
use crate::resources::{
    Tags, alarms, athena, bucket, function, glue, invoke_config, log_group, notification,
    ownership_problem, permission, queue, role, topic,
};
use crate::stack::{Names, notification_label, permission_label};

/// One resource's state.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub kind: &'static str,
    pub name: String,
    /// `present`, `absent` or `not ours`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl Row {
    fn new(kind: &'static str, name: impl Into<String>) -> Row {
        Row {
            kind,
            name: name.into(),
            state: "absent",
            properties: BTreeMap::new(),
            last_modified: None,
        }
    }

    fn found(mut self, tags: &Tags, stack: &str) -> Row {
        self.state = if ownership_problem(tags, stack).is_some() {
            "not ours"
        } else {
            "present"
        };
        self
    }

    fn with(mut self, key: &'static str, value: impl ToString) -> Row {
        self.properties.insert(key, value.to_string());
        self
    }
}

fn iso(time: DateTime) -> String {
    time.fmt(Format::DateTime)
        .unwrap_or_else(|_| time.secs().to_string())
}

pub async fn run(config: &Config, output: Output) -> Result<()> {
    let report = Reporter::new(output);
    let (aws, identity) = connect(config, &report).await?;
    let rows = collect(&aws, &Names::new(config), &identity).await?;
    match output {
        Output::Json => print_json(&rows)?,
        Output::Text => {
            let kind_width = rows.iter().map(|r| r.kind.len()).max().unwrap_or(0);
            let name_width = rows
                .iter()
                .map(|r| r.name.chars().count())
                .max()
                .unwrap_or(0);
            for row in &rows {
                let props: Vec<String> = row
                    .properties
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let modified = row
                    .last_modified
                    .as_deref()
                    .map(|t| format!(" · last modified {t}"))
                    .unwrap_or_default();
                println!(
                    "  {:<kind_width$}  {:<name_width$}  {:<8}  {}",
                    row.kind,
                    row.name,
                    row.state,
                    format!("{}{modified}", props.join(" ")).trim_start_matches([' ', '·'])
                );
            }
        }
    }
    Ok(())
}

/// Reads every resource of the stack by name.
pub async fn collect(aws: &Aws, names: &Names, identity: &Identity) -> Result<Vec<Row>> {
    let stack = names.stack.as_str();
    let created: BTreeMap<String, DateTime> = aws
        .s3
        .list_buckets()
        .into_paginator()
        .send()
        .try_collect()
        .await
        .map_err(sdk_error)
        .context("listing s3 buckets (ListBuckets)")?
        .iter()
        .flat_map(|page| page.buckets())
        .filter_map(|b| Some((b.name()?.to_owned(), *b.creation_date()?)))
        .collect();
    let mut rows = Vec::new();
    let mut ingest_ours = false;
    for (role, name) in &names.buckets {
        let mut row = Row::new(bucket::KIND, format!("{name} ({role})"));
        if let Some(b) = bucket::read(aws, name, stack).await? {
            row.state = if b.ownership_problem(stack).is_some() {
                "not ours"
            } else {
                "present"
            };
            if *role == BucketRole::Ingest {
                ingest_ours = row.state == "present";
            }
            if row.state == "present" {
                row = row
                    .with("versioning", b.versioning.as_deref().unwrap_or("off"))
                    .with("encryption", b.encryption.as_deref().unwrap_or("none"))
                    .with(
                        "public_access_blocked",
                        b.public_access_block == Some([true; 4]),
                    );
            }
            row.last_modified = created.get(name).map(|t| format!("{} (created)", iso(*t)));
        }
        rows.push(row);
    }
    let mut row = Row::new(role::KIND, &names.role);
    if let Some(r) = role::read_existence(aws, &names.role).await? {
        row = row.found(&r.tags, stack);
        row.last_modified = r.created.map(|t| format!("{t} (created)"));
    }
    rows.push(row);

    let mut row = Row::new(function::KIND, &names.function);
    let mut function_ours = false;
    if let Some(f) = function::read(aws, &names.function).await? {
        row = row.found(&f.tags, stack);
        function_ours = row.state == "present";
        row = row
            .with("architecture", f.architecture.as_deref().unwrap_or("?"))
            .with("memory_mb", f.memory_mb.unwrap_or_default())
            .with("timeout_s", f.timeout_s.unwrap_or_default())
            .with("code_sha256", f.code_sha256.as_deref().unwrap_or("?"))
            .with(
                "reserved_concurrency",
                f.reserved_concurrency
                    .map_or_else(|| "unreserved".to_owned(), |n| n.to_string()),
            );
        row.last_modified = f.last_modified;
    }
    rows.push(row);

    let mut row = Row::new(invoke_config::KIND, &names.function);
    if function_ours && let Some(c) = invoke_config::read(aws, &names.function).await? {
        row.state = "present";
        row = row
            .with(
                "maximum_retry_attempts",
                c.max_retry_attempts.unwrap_or_default(),
            )
            .with(
                "maximum_event_age_seconds",
                c.max_event_age_seconds.unwrap_or_default(),
            )
            .with("on_failure", c.on_failure_arn.as_deref().unwrap_or("none"));
        row.last_modified = c.last_modified;
    }
    rows.push(row);

    let mut row = Row::new(
        permission::KIND,
        permission_label(&names.permission_statement_id, &names.function),
    );
    if function_ours
        && let Some(p) = permission::read(aws, &names.permission_spec(identity)).await?
    {
        row.state = "present";
        let condition = |operator: &str, key: &str| -> String {
            p.statement["Condition"][operator]
                .as_object()
                .and_then(|o| {
                    o.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                })
                .map_or_else(|| "none".to_owned(), |v| v.to_string().replace('"', ""))
        };
        row = row
            .with("source_arn", condition("ArnLike", "aws:SourceArn"))
            .with(
                "source_account",
                condition("StringEquals", "aws:SourceAccount"),
            );
    }
    rows.push(row);

    let mut row = Row::new(
        notification::KIND,
        notification_label(&names.notification_id, names.ingest_bucket()),
    );
    if let Some(n) = notification::read(aws, &names.notification_spec(), ingest_ours).await? {
        row.state = "present";
        let filter: Vec<String> = n
            .filter_rules
            .iter()
            .map(|(name, value)| format!("{name}:{value}"))
            .collect();
        let events: Vec<&str> = n.events.iter().map(String::as_str).collect();
        row = row
            .with("function", &n.function_arn)
            .with("events", events.join(","))
            .with(
                "filter",
                if filter.is_empty() {
                    "none".to_owned()
                } else {
                    filter.join(",")
                },
            );
    }
    rows.push(row);

    let mut row = Row::new(log_group::KIND, &names.log_group);
    if let Some(g) = log_group::read(aws, &names.log_group).await? {
        row = row.found(&g.tags, stack).with(
            "retention_days",
            g.retention_days
                .map_or_else(|| "never expire".to_owned(), |d| d.to_string()),
        );
        row.last_modified = g
            .created_ms
            .map(|ms| format!("{} (created)", iso(DateTime::from_millis(ms))));
    }
    rows.push(row);

    let mut row = Row::new(queue::KIND, &names.queue);
    if let Some(q) = queue::read(aws, &names.queue).await? {
        row = row
            .found(&q.tags, stack)
            .with("failed_events_waiting", q.depth.unwrap_or_default())
            .with("failed_events_being_read", q.in_flight.unwrap_or_default())
            .with("failed_events_delayed", q.delayed.unwrap_or_default())
            .with("sse_sqs", q.sse_enabled);
        row.last_modified = q.last_modified.map(|s| iso(DateTime::from_secs(s)));
    }
    rows.push(row);

    rows.extend(catalog_rows(aws, names, identity).await?);
    rows.extend(alert_rows(aws, names, identity).await?);
    Ok(rows)
}

/// The Glue database, its tables and the Athena workgroup.
async fn catalog_rows(aws: &Aws, names: &Names, identity: &Identity) -> Result<Vec<Row>> {
    let stack = names.stack.as_str();
    let mut rows = Vec::new();
    let database = names.database_spec(identity);
    let mut row = Row::new(glue::DATABASE_KIND, &names.database);
    // `None`: no database, so no tables to look for; `Some(ours)` otherwise.
    let mut database_ours = None;
    if let Some(d) = glue::read_database(aws, &database).await? {
        row = row.found(&d.tags, stack);
        database_ours = Some(row.state == "present");
        row.last_modified = d
            .created
            .map(|s| format!("{} (created)", iso(DateTime::from_secs(s))));
    }
    rows.push(row);
    for table in &names.tables {
        let mut row = Row::new(glue::TABLE_KIND, format!("{}.{table}", names.database));
        let found = match database_ours {
            Some(_) => glue::read_table(aws, &names.database, table).await?,
            None => None,
        };
        if let Some(t) = found {
            if database_ours == Some(true) {
                row.state = "present";
                let projection = t
                    .parameters
                    .get("projection.enabled")
                    .map_or("off", String::as_str);
                row = row
                    .with("location", t.location.as_deref().unwrap_or("none"))
                    .with("columns", t.columns.len())
                    .with("partition_projection", projection);
                row.last_modified = t.updated.map(|s| iso(DateTime::from_secs(s)));
            } else {
                // In a database that is not ours: what it holds is none of our business.
                row.state = "not ours";
            }
        }
        rows.push(row);
    }

    let mut row = Row::new(athena::KIND, &names.workgroup);
    if let Some(w) = athena::read(aws, &names.workgroup_spec(identity)).await? {
        row = row.found(&w.tags, stack);
        if row.state == "present" {
            row = row
                .with("state", w.state.as_deref().unwrap_or("?"))
                .with(
                    "output_location",
                    w.output_location.as_deref().unwrap_or("none"),
                )
                .with(
                    "enforce_configuration",
                    w.enforce_configuration.unwrap_or(false),
                );
        }
        row.last_modified = w
            .created
            .map(|s| format!("{} (created)", iso(DateTime::from_secs(s))));
    }
    rows.push(row);
    Ok(rows)
}

/// The alerts topic with its subscriptions (pending until confirmed), and the alarms with
/// their state as CloudWatch reports it.
async fn alert_rows(aws: &Aws, names: &Names, identity: &Identity) -> Result<Vec<Row>> {
    let stack = names.stack.as_str();
    let mut rows = Vec::new();
    let mut row = Row::new(topic::KIND, topic::Spec::name_for_stack(stack));
    let mut subscriptions = Vec::new();
    if let Some(t) = topic::read(aws, &names.topic_arn(identity), stack).await? {
        row = row.found(&t.tags, stack);
        if row.state == "present" {
            row = row.with("kms_master_key_id", t.kms_key.as_deref().unwrap_or("none"));
            for sub in &t.subscriptions {
                let mut sub_row = Row::new(
                    "sns subscription",
                    format!("{} {}", sub.protocol, sub.endpoint),
                );
                sub_row.state = "present";
                subscriptions.push(sub_row.with(
                    "state",
                    if sub.pending() {
                        "pending confirmation (the address must click the link SNS sent)"
                    } else {
                        "confirmed"
                    },
                ));
            }
        }
    }
    rows.push(row);
    rows.extend(subscriptions);
    let alarms = alarms::read(aws, &names.alarms).await?;
    for name in &names.alarms {
        let Some(a) = alarms.get(name) else { continue };
        let mut row = Row::new(alarms::KIND, name).found(&a.tags, stack);
        if row.state == "present" {
            row = row.with("state", a.state.as_deref().unwrap_or("?")).with(
                "metric",
                format!(
                    "{} {}",
                    a.namespace.as_deref().unwrap_or("?"),
                    a.metric.as_deref().unwrap_or("?")
                ),
            );
        }
        rows.push(row);
    }
    Ok(rows)
}
