//! The whole stack: desired state from the config, concurrent reads, the plan, ordered apply and teardown.
//!
//! Dependency order for `up`: buckets, role, log group and queue (concurrently) → function,
//! and concurrently the Glue catalog (database → tables) and Athena workgroup, which only need
//! the refined bucket → invoke permission and invoke config → bucket notification. `down`
//! walks it backwards.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;

use anyhow::{Result, bail};
use futures_util::future::try_join_all;
use serde::Serialize;

use crate::artifact::Artifact;
use crate::aws::{Aws, Identity};
use crate::config::{BucketRole, Config};
use crate::plan::{Describe, Plan, ResourcePlan};
use crate::report::Reporter;
use crate::resources::{
    Deletion, alarms, athena, bucket, function, glue, invoke_config, log_group, notification,
    permission, queue, role, topic,
};

/// Every resource as the config wants it.
#[derive(Clone, Debug)]
pub struct Desired {
    pub stack: String,
    pub buckets: Vec<bucket::Spec>,
    pub role: role::Spec,
    pub log_group: log_group::Spec,
    pub function: function::Spec,
    pub permission: permission::Spec,
    pub notification: notification::Spec,
    pub queue: queue::Spec,
    pub invoke_config: invoke_config::Spec,
    pub database: glue::DatabaseSpec,
    /// `users` then `users_rejected` (`glue::TABLES`).
    pub tables: Vec<glue::TableSpec>,
    pub workgroup: athena::Spec,
    /// The alerts topic's ARN, wanted or not (read so that switching alerts off removes it).
    pub topic_arn: String,
    /// The alerts topic; `None` when `alerts.enabled = false`.
    pub topic: Option<topic::Spec>,
    /// Every alarm the stack can have (`alarms::Alarm::ALL`), each wanted or not.
    pub alarms: Vec<(alarms::Alarm, Option<alarms::Spec>)>,
}

/// Names of every resource, derived from the config alone (what `down` and `status` need).
#[derive(Clone, Debug)]
pub struct Names {
    pub stack: String,
    pub buckets: Vec<(BucketRole, String)>,
    pub role: String,
    pub function: String,
    pub log_group: String,
    pub permission_statement_id: String,
    pub notification_id: String,
    pub queue: String,
    pub region: String,
    pub database: String,
    /// `glue::TABLES`.
    pub tables: Vec<String>,
    pub workgroup: String,
    /// Every alarm name the stack can have.
    pub alarms: Vec<String>,
}

impl Names {
    pub fn new(config: &Config) -> Names {
        Names {
            stack: config.stack.clone(),
            buckets: config
                .buckets
                .all()
                .map(|(role, name)| (role, name.to_owned()))
                .to_vec(),
            role: config.role_name.clone(),
            function: config.function.name.clone(),
            log_group: log_group::Spec::name_for_function(&config.function.name),
            permission_statement_id: format!("{}-s3-invoke", config.stack),
            notification_id: format!("{}-ingest-to-lambda", config.stack),
            queue: queue::Spec::name_for_stack(&config.stack),
            region: config.target.region.clone(),
            database: config.catalog.database.clone(),
            tables: glue::TABLES.iter().map(|t| (*t).to_owned()).collect(),
            workgroup: config.catalog.workgroup.clone(),
            alarms: alarms::Alarm::ALL
                .iter()
                .map(|a| a.name(&config.stack))
                .collect(),
        }
    }

    /// The alerts topic's ARN (whether or not alerts are on: `down` removes it either way).
    pub fn topic_arn(&self, identity: &Identity) -> String {
        format!(
            "arn:{}:sns:{}:{}:{}",
            identity.partition,
            self.region,
            identity.account,
            topic::Spec::name_for_stack(&self.stack)
        )
    }

    /// The ingest bucket's name (the one carrying our notification entry).
    pub fn ingest_bucket(&self) -> &str {
        self.buckets
            .iter()
            .find(|(role, _)| *role == BucketRole::Ingest)
            .map_or("", |(_, name)| name)
    }

    /// The invoke permission's spec for reading and deleting it (statement id and function).
    pub fn permission_spec(&self, identity: &Identity) -> permission::Spec {
        permission::Spec {
            function_name: self.function.clone(),
            function_arn: String::new(),
            statement_id: self.permission_statement_id.clone(),
            source_bucket_arn: String::new(),
            source_account: identity.account.clone(),
        }
    }

    /// Our notification entry's spec for reading it (bucket and id).
    pub fn notification_spec(&self) -> notification::Spec {
        notification::Spec {
            bucket: self.ingest_bucket().to_owned(),
            id: self.notification_id.clone(),
            function_arn: String::new(),
            prefix: None,
            suffix: None,
        }
    }

    /// The database's spec for reading and deleting it (tags are not needed for that).
    pub fn database_spec(&self, identity: &Identity) -> glue::DatabaseSpec {
        glue::DatabaseSpec {
            name: self.database.clone(),
            arn: glue::database_arn(
                &identity.partition,
                &self.region,
                &identity.account,
                &self.database,
            ),
            tags: Default::default(),
        }
    }

    /// The workgroup's spec for reading and deleting it (tags and location are not needed).
    pub fn workgroup_spec(&self, identity: &Identity) -> athena::Spec {
        athena::Spec {
            name: self.workgroup.clone(),
            arn: athena::workgroup_arn(
                &identity.partition,
                &self.region,
                &identity.account,
                &self.workgroup,
            ),
            output_location: String::new(),
            tags: Default::default(),
        }
    }
}

/// How a bucket is named in plans and progress lines.
fn bucket_label(name: &str, role: BucketRole) -> String {
    format!("{name} ({role})")
}

/// How the invoke permission (a statement on the function) is named in plans.
pub fn permission_label(statement_id: &str, function: &str) -> String {
    format!("{statement_id} on {function}")
}

/// How our notification entry (one of the bucket's entries) is named in plans.
pub fn notification_label(id: &str, bucket: &str) -> String {
    format!("{id} on {bucket}")
}

impl Desired {
    fn permission_label(&self) -> String {
        permission_label(&self.permission.statement_id, &self.function.name)
    }

    fn notification_label(&self) -> String {
        notification_label(&self.notification.id, &self.notification.bucket)
    }

    pub fn new(config: &Config, identity: &Identity, artifact: &Artifact) -> Desired {
        let names = Names::new(config);
        let partition = identity.partition.as_str();
        let tags = config.resource_tags();
        let buckets = config
            .buckets
            .all()
            .map(|(role, name)| bucket::Spec {
                role,
                name: name.to_owned(),
                region: config.target.region.clone(),
                partition: partition.to_owned(),
                stack: config.stack.clone(),
                tags: tags.clone(),
                versioned: matches!(role, BucketRole::Ingest | BucketRole::Raw),
                noncurrent_days: config.buckets.noncurrent_days(role),
            })
            .to_vec();
        let queue = queue::Spec {
            arn: format!(
                "arn:{partition}:sqs:{}:{}:{}",
                config.target.region, identity.account, names.queue
            ),
            name: names.queue.clone(),
            tags: tags.clone(),
        };
        let role = role::Spec {
            name: names.role.clone(),
            partition: partition.to_owned(),
            account: identity.account.clone(),
            tags: tags.clone(),
            trust: role::lambda_trust_policy(),
            managed_policy_arns: vec![role::Spec::basic_execution_policy_arn(partition)],
            inline_policy_name: format!("{}-pipeline", config.stack),
            inline_policy: role::function_policy(&role::Grants {
                partition: partition.to_owned(),
                ingest_bucket: config.buckets.ingest.clone(),
                raw_bucket: config.buckets.raw.clone(),
                refined_bucket: config.buckets.refined.clone(),
                failed_events_queue_arn: Some(queue.arn.clone()),
            }),
        };
        let function_arn = format!(
            "arn:{partition}:lambda:{}:{}:function:{}",
            config.target.region, identity.account, config.function.name
        );
        let function = function::Spec {
            name: config.function.name.clone(),
            role_arn: role.arn(),
            memory_mb: config.function.memory_mb,
            timeout_s: config.function.timeout_s,
            architecture: artifact.architecture,
            environment: BTreeMap::from([
                ("RAW_BUCKET".to_owned(), config.buckets.raw.clone()),
                (FAILED_EVENTS_QUEUE_ENV.to_owned(), queue.arn.clone()),
                ("REFINED_BUCKET".to_owned(), config.buckets.refined.clone()),
                (
                    PARQUET_OUTPUT_ENV.to_owned(),
                    if config.outputs.parquet { "on" } else { "off" }.to_owned(),
                ),
            ])
            .into_iter()
            .chain(
                config
                    .alerts
                    .rejected_ratio
                    .filter(|_| config.alerts.enabled)
                    .map(|r| (alarms::REJECTED_RATIO_ENV.to_owned(), r.to_string())),
            )
            .collect(),
            tags: tags.clone(),
            code_sha256: artifact.code_sha256.clone(),
            zip_path: artifact.path.clone(),
            reserved_concurrency: config.function.reserved_concurrency,
        };
        let permission = permission::Spec {
            function_name: config.function.name.clone(),
            function_arn: function_arn.clone(),
            statement_id: names.permission_statement_id.clone(),
            source_bucket_arn: format!("arn:{partition}:s3:::{}", config.buckets.ingest),
            source_account: identity.account.clone(),
        };
        let notification = notification::Spec {
            bucket: config.buckets.ingest.clone(),
            id: names.notification_id.clone(),
            function_arn,
            prefix: config.notification.prefix.clone(),
            suffix: config.notification.suffix.clone(),
        };
        let invoke_config = invoke_config::Spec {
            function_name: config.function.name.clone(),
            on_failure_arn: queue.arn.clone(),
        };
        // The catalog is deployed whether or not the function writes Parquet (`outputs.parquet`):
        // empty tables cost nothing, and turning Parquet back on needs no catalog change.
        let database = glue::DatabaseSpec {
            arn: names.database_spec(identity).arn,
            name: names.database.clone(),
            tags: tags.clone(),
        };
        let catalog = &config.catalog;
        let tables = vec![
            glue::TableSpec::users(
                &catalog.database,
                &config.buckets.refined,
                &catalog.projection_start,
            ),
            glue::TableSpec::users_rejected(
                &catalog.database,
                &config.buckets.refined,
                &catalog.projection_start,
            ),
        ];
        let workgroup = athena::Spec {
            output_location: athena::output_location(&config.buckets.refined),
            tags: tags.clone(),
            ..names.workgroup_spec(identity)
        };
        let topic_arn = names.topic_arn(identity);
        let topic = config.alerts.enabled.then(|| topic::Spec {
            name: topic::Spec::name_for_stack(&config.stack),
            arn: topic_arn.clone(),
            tags: tags.clone(),
            email: config.alerts.email.iter().cloned().collect(),
        });
        let alarms = alarms::specs(&alarms::Inputs {
            stack: &config.stack,
            topic_arn: &topic_arn,
            queue: &names.queue,
            function: &config.function.name,
            rejected_ratio: config.alerts.rejected_ratio,
            tags: &tags,
        })
        .into_iter()
        .map(|(alarm, spec)| (alarm, spec.filter(|_| config.alerts.enabled)))
        .collect();
        let log_group = log_group::Spec {
            name: names.log_group.clone(),
            retention_days: config.function.log_retention_days,
            tags,
        };
        Desired {
            stack: config.stack.clone(),
            buckets,
            role,
            log_group,
            function,
            permission,
            notification,
            queue,
            invoke_config,
            database,
            tables,
            workgroup,
            topic_arn,
            topic,
            alarms,
        }
    }
}

/// The function's environment variable that switches its Parquet output: `on` or `off`.
pub const PARQUET_OUTPUT_ENV: &str = "PARQUET_OUTPUT";
/// The function's environment variable naming the failed-events queue (its ARN), where it
/// puts the events it will never be able to process.
pub const FAILED_EVENTS_QUEUE_ENV: &str = "FAILED_EVENTS_QUEUE";

/// Every resource as it is.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub buckets: Vec<Option<bucket::Observed>>,
    pub role: Option<role::Observed>,
    pub log_group: Option<log_group::Observed>,
    pub function: Option<function::Observed>,
    pub permission: Option<permission::Observed>,
    pub notification: Option<notification::Observed>,
    pub queue: Option<queue::Observed>,
    pub invoke_config: Option<invoke_config::Observed>,
    pub database: Option<glue::DatabaseObserved>,
    /// One per `Desired::tables`; not read (so `None`) unless the database is ours.
    pub tables: Vec<Option<glue::TableObserved>>,
    pub workgroup: Option<athena::Observed>,
    pub topic: Option<topic::Observed>,
    /// By alarm name, those that exist.
    pub alarms: BTreeMap<String, alarms::Observed>,
}

/// Reads everything concurrently.
pub async fn read(aws: &Aws, desired: &Desired) -> Result<Observed> {
    let stack = desired.stack.as_str();
    let buckets = try_join_all(
        desired
            .buckets
            .iter()
            .map(|b| bucket::read(aws, &b.name, stack)),
    );
    let ingest_and_notification = async {
        let ingest = bucket::read_existence(aws, &desired.notification.bucket).await?;
        let ours = ingest
            .as_ref()
            .is_some_and(|b| b.ownership_problem(stack).is_none());
        notification::read(aws, &desired.notification, ours).await
    };
    let function_and_permission = async {
        let function = function::read(aws, &desired.function.name).await?;
        let (permission, invoke_config) = match &function {
            Some(f) if crate::resources::ownership_problem(&f.tags, stack).is_none() => {
                tokio::try_join!(
                    permission::read(aws, &desired.permission),
                    invoke_config::read(aws, &desired.function.name),
                )?
            }
            _ => (None, None),
        };
        Ok::<_, anyhow::Error>((function, permission, invoke_config))
    };
    let catalog = async {
        let database = glue::read_database(aws, &desired.database).await?;
        let tables = match &database {
            Some(d) if crate::resources::ownership_problem(&d.tags, stack).is_none() => {
                try_join_all(
                    desired
                        .tables
                        .iter()
                        .map(|t| glue::read_table(aws, &t.database, &t.name)),
                )
                .await?
            }
            _ => vec![None; desired.tables.len()],
        };
        Ok::<_, anyhow::Error>((database, tables))
    };
    let (
        buckets,
        role,
        log_group,
        queue,
        (function, permission, invoke_config),
        notification,
        (database, tables),
        workgroup,
    ) = tokio::try_join!(
        buckets,
        role::read(aws, &desired.role, stack),
        log_group::read(aws, &desired.log_group.name),
        queue::read(aws, &desired.queue.name),
        function_and_permission,
        ingest_and_notification,
        // Boxed: SDK futures are large, and the whole read must fit a test thread's stack.
        Box::pin(catalog),
        Box::pin(athena::read(aws, &desired.workgroup)),
    )?;
    let topic_arn = desired.topic_arn.clone();
    let alarm_names: Vec<String> = desired.alarms.iter().map(|(a, _)| a.name(stack)).collect();
    let (topic, alarms) = tokio::try_join!(
        Box::pin(topic::read(aws, &topic_arn, stack)),
        Box::pin(alarms::read(aws, &alarm_names)),
    )?;
    Ok(Observed {
        buckets,
        role,
        log_group,
        function,
        permission,
        notification,
        queue,
        invoke_config,
        database,
        tables,
        workgroup,
        topic,
        alarms,
    })
}

/// The typed changes per resource; a resource in conflict has none.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub buckets: Vec<Vec<bucket::Change>>,
    pub role: Vec<role::Change>,
    pub log_group: Vec<log_group::Change>,
    pub function: Vec<function::Change>,
    pub permission: Vec<permission::Change>,
    pub notification: Vec<notification::Change>,
    pub queue: Vec<queue::Change>,
    pub invoke_config: Vec<invoke_config::Change>,
    pub database: Vec<glue::DatabaseChange>,
    /// One per `Desired::tables`.
    pub tables: Vec<Vec<glue::TableChange>>,
    pub workgroup: Vec<athena::Change>,
    pub topic: Vec<topic::Change>,
    /// One per `Desired::alarms`.
    pub alarms: Vec<Vec<alarms::Change>>,
}

/// Diffs every resource; returns the typed changes and the plan to show.
pub fn diff(desired: &Desired, observed: &Observed) -> (Changes, Plan) {
    let stack = desired.stack.as_str();
    let mut changes = Changes::default();
    let mut plans = Vec::new();
    let interrupted = interrupted_up(observed, stack);
    for (spec, o) in desired.buckets.iter().zip(&observed.buckets) {
        let name = bucket_label(&spec.name, spec.role);
        let adopt = interrupted && o.as_ref().is_some_and(|o| o.pristine);
        match o.as_ref().and_then(|o| o.ownership_problem(stack)) {
            Some(problem) if !adopt => {
                plans.push(ResourcePlan::conflict(bucket::KIND, name, problem));
                changes.buckets.push(Vec::new());
            }
            _ => {
                let c = bucket::diff(spec, o.as_ref());
                let mut plan = ResourcePlan::from_changes(bucket::KIND, name, &c);
                if adopt {
                    plan.note = Some(
                        "adopted: empty, untagged and unconfigured, as an interrupted `up` of this stack leaves it"
                            .to_owned(),
                    );
                }
                plans.push(plan);
                changes.buckets.push(c);
            }
        }
    }
    changes.role = owned_diff(
        &mut plans,
        role::KIND,
        &desired.role.name,
        stack,
        observed.role.as_ref(),
        |o| &o.tags,
        |o| role::diff(&desired.role, o),
    );
    changes.log_group = owned_diff(
        &mut plans,
        log_group::KIND,
        &desired.log_group.name,
        stack,
        observed.log_group.as_ref(),
        |o| &o.tags,
        |o| log_group::diff(&desired.log_group, o),
    );
    changes.queue = owned_diff(
        &mut plans,
        queue::KIND,
        &desired.queue.name,
        stack,
        observed.queue.as_ref(),
        |o| &o.tags,
        |o| queue::diff(&desired.queue, o),
    );
    changes.function = owned_diff(
        &mut plans,
        function::KIND,
        &desired.function.name,
        stack,
        observed.function.as_ref(),
        |o| &o.tags,
        |o| function::diff(&desired.function, o),
    );
    changes.permission = permission::diff(&desired.permission, observed.permission.as_ref());
    plans.push(ResourcePlan::from_changes(
        permission::KIND,
        desired.permission_label(),
        &changes.permission,
    ));
    changes.invoke_config =
        invoke_config::diff(&desired.invoke_config, observed.invoke_config.as_ref());
    plans.push(ResourcePlan::from_changes(
        invoke_config::KIND,
        desired.function.name.clone(),
        &changes.invoke_config,
    ));
    changes.notification =
        notification::diff(&desired.notification, observed.notification.as_ref());
    plans.push(ResourcePlan::from_changes(
        notification::KIND,
        desired.notification_label(),
        &changes.notification,
    ));
    changes.database = owned_diff(
        &mut plans,
        glue::DATABASE_KIND,
        &desired.database.name,
        stack,
        observed.database.as_ref(),
        |o| &o.tags,
        |o| glue::diff_database(&desired.database, o),
    );
    for (i, spec) in desired.tables.iter().enumerate() {
        let o = observed.tables.get(i).and_then(Option::as_ref);
        let c = glue::diff_table(spec, o);
        plans.push(ResourcePlan::from_changes(
            glue::TABLE_KIND,
            spec.qualified_name(),
            &c,
        ));
        changes.tables.push(c);
    }
    changes.workgroup = owned_diff(
        &mut plans,
        athena::KIND,
        &desired.workgroup.name,
        stack,
        observed.workgroup.as_ref(),
        |o| &o.tags,
        |o| athena::diff(&desired.workgroup, o),
    );
    // The topic and alarms appear in the plan only when wanted or there (alerts off and
    // nothing left to remove: nothing to say).
    if desired.topic.is_some() || observed.topic.is_some() {
        changes.topic = owned_diff(
            &mut plans,
            topic::KIND,
            &topic::Spec::name_for_stack(stack),
            stack,
            observed.topic.as_ref(),
            |o| &o.tags,
            |o| topic::diff(desired.topic.as_ref(), o),
        );
    }
    for (alarm, spec) in &desired.alarms {
        let name = alarm.name(stack);
        let there = observed.alarms.get(&name);
        let c = if spec.is_some() || there.is_some() {
            owned_diff(
                &mut plans,
                alarms::KIND,
                &name,
                stack,
                there,
                |o| &o.tags,
                |o| alarms::diff(spec.as_ref(), o),
            )
        } else {
            Vec::new()
        };
        changes.alarms.push(c);
    }
    (changes, Plan::new(plans))
}

/// Whether an earlier `up` of this stack got somewhere: some resource carries our ownership
/// tag. Only then is an untagged, pristine bucket of the configured name taken to be one that
/// `up` created and was stopped before tagging; otherwise it is somebody else's (a conflict).
fn interrupted_up(observed: &Observed, stack: &str) -> bool {
    let ours =
        |tags: &crate::resources::Tags| crate::resources::ownership_problem(tags, stack).is_none();
    observed
        .buckets
        .iter()
        .flatten()
        .any(|b| !b.other_account && ours(&b.tags))
        || observed.role.as_ref().is_some_and(|r| ours(&r.tags))
        || observed.log_group.as_ref().is_some_and(|l| ours(&l.tags))
        || observed.queue.as_ref().is_some_and(|q| ours(&q.tags))
        || observed.function.as_ref().is_some_and(|f| ours(&f.tags))
        || observed.database.as_ref().is_some_and(|d| ours(&d.tags))
        || observed.workgroup.as_ref().is_some_and(|w| ours(&w.tags))
}

/// Diffs a tagged resource, or records a conflict when it exists without our ownership tag.
fn owned_diff<O, C: Describe>(
    plans: &mut Vec<ResourcePlan>,
    kind: &'static str,
    name: &str,
    stack: &str,
    observed: Option<&O>,
    tags: impl Fn(&O) -> &crate::resources::Tags,
    diff: impl FnOnce(Option<&O>) -> Vec<C>,
) -> Vec<C> {
    if let Some(problem) =
        observed.and_then(|o| crate::resources::ownership_problem(tags(o), stack))
    {
        plans.push(ResourcePlan::conflict(kind, name, problem));
        return Vec::new();
    }
    let changes = diff(observed);
    plans.push(ResourcePlan::from_changes(kind, name, &changes));
    changes
}

/// Applies `changes` in dependency order; resources without changes make no call.
pub async fn apply(
    aws: &Aws,
    desired: &Desired,
    observed: &Observed,
    changes: &Changes,
    plan: &Plan,
    report: &Reporter,
) -> Result<()> {
    if plan.has_conflicts() {
        let names: Vec<String> = plan
            .resources
            .iter()
            .filter(|r| r.action == crate::plan::Action::Conflict)
            .map(|r| {
                format!(
                    "{} {}: {}",
                    r.kind,
                    r.name,
                    r.note.as_deref().unwrap_or_default()
                )
            })
            .collect();
        bail!("refusing to deploy, {}", names.join("; "));
    }
    // Phase 1: buckets, role, log group and queue, concurrently.
    let bucket_work = desired
        .buckets
        .iter()
        .zip(&changes.buckets)
        .map(|(spec, c)| {
            timed(
                report,
                ResourcePlan::from_changes(bucket::KIND, bucket_label(&spec.name, spec.role), c),
                async move { bucket::apply(aws, spec, c).await },
            )
        });
    let log_group_arn = observed.log_group.as_ref().map(|o| o.arn.clone());
    let queue_url = observed.queue.as_ref().map(|o| o.url.clone());
    tokio::try_join!(
        try_join_all(bucket_work),
        timed(
            report,
            ResourcePlan::from_changes(role::KIND, desired.role.name.clone(), &changes.role),
            async { role::apply(aws, &desired.role, &changes.role).await }
        ),
        timed(
            report,
            ResourcePlan::from_changes(
                log_group::KIND,
                desired.log_group.name.clone(),
                &changes.log_group
            ),
            async {
                log_group::apply(
                    aws,
                    &desired.log_group,
                    log_group_arn.as_deref(),
                    &changes.log_group,
                )
                .await
            }
        ),
        timed(
            report,
            ResourcePlan::from_changes(queue::KIND, desired.queue.name.clone(), &changes.queue),
            async { queue::apply(aws, &desired.queue, queue_url.as_deref(), &changes.queue).await }
        ),
    )?;
    // Phase 2: the function, once its role exists; the catalog and the workgroup, once the
    // refined bucket exists (concurrently with the function).
    tokio::try_join!(
        timed(
            report,
            ResourcePlan::from_changes(
                function::KIND,
                desired.function.name.clone(),
                &changes.function,
            ),
            function::apply(
                aws,
                &desired.function,
                &desired.permission.function_arn,
                &changes.function,
            ),
        ),
        // Boxed: SDK futures are large, and the whole apply must fit a test thread's stack.
        Box::pin(apply_catalog(aws, desired, observed, changes, report)),
        Box::pin(timed(
            report,
            ResourcePlan::from_changes(
                athena::KIND,
                desired.workgroup.name.clone(),
                &changes.workgroup
            ),
            athena::apply(aws, &desired.workgroup, &changes.workgroup),
        )),
    )?;
    // Phase 3: S3 may invoke it, and failures are routed. Phase 4: S3 does invoke it.
    tokio::try_join!(
        timed(
            report,
            ResourcePlan::from_changes(
                permission::KIND,
                desired.permission_label(),
                &changes.permission,
            ),
            permission::apply(aws, &desired.permission, &changes.permission),
        ),
        timed(
            report,
            ResourcePlan::from_changes(
                invoke_config::KIND,
                desired.function.name.clone(),
                &changes.invoke_config,
            ),
            invoke_config::apply(aws, &desired.invoke_config, &changes.invoke_config),
        ),
    )?;
    timed(
        report,
        ResourcePlan::from_changes(
            notification::KIND,
            desired.notification_label(),
            &changes.notification,
        ),
        notification::apply(aws, &desired.notification, &changes.notification),
    )
    .await?;
    // Phase 5: who is told. The topic first (the alarms notify it), then the alarms.
    apply_alerts(aws, desired, observed, changes, report).await
}

/// The alerts topic, then the alarms (concurrently); removals in the other order.
async fn apply_alerts(
    aws: &Aws,
    desired: &Desired,
    observed: &Observed,
    changes: &Changes,
    report: &Reporter,
) -> Result<()> {
    let topic_name = topic::Spec::name_for_stack(&desired.stack);
    let topic = timed(
        report,
        ResourcePlan::from_changes(topic::KIND, topic_name.clone(), &changes.topic),
        topic::apply(
            aws,
            desired.topic.as_ref(),
            &desired.topic_arn,
            &changes.topic,
        ),
    );
    let alarms = desired
        .alarms
        .iter()
        .zip(&changes.alarms)
        .map(|((alarm, spec), c)| {
            let name = alarm.name(&desired.stack);
            let there = observed.alarms.get(&name);
            async move {
                timed(
                    report,
                    ResourcePlan::from_changes(alarms::KIND, name.clone(), c),
                    alarms::apply(aws, &name, spec.as_ref(), there, c),
                )
                .await
            }
        });
    if desired.topic.is_some() {
        topic.await?;
        try_join_all(alarms).await?;
    } else {
        try_join_all(alarms).await?;
        topic.await?;
    }
    Ok(())
}

/// The Glue database, then its tables (concurrently).
async fn apply_catalog(
    aws: &Aws,
    desired: &Desired,
    observed: &Observed,
    changes: &Changes,
    report: &Reporter,
) -> Result<()> {
    timed(
        report,
        ResourcePlan::from_changes(
            glue::DATABASE_KIND,
            desired.database.name.clone(),
            &changes.database,
        ),
        glue::apply_database(aws, &desired.database, &changes.database),
    )
    .await?;
    let tables = desired
        .tables
        .iter()
        .zip(&changes.tables)
        .enumerate()
        .map(|(i, (spec, c))| {
            let o = observed.tables.get(i).and_then(Option::as_ref);
            timed(
                report,
                ResourcePlan::from_changes(glue::TABLE_KIND, spec.qualified_name(), c),
                glue::apply_table(aws, spec, o, c),
            )
        });
    try_join_all(tables).await?;
    Ok(())
}

/// Runs one resource's apply, reporting it when it had something to do.
async fn timed(
    report: &Reporter,
    plan: ResourcePlan,
    work: impl Future<Output = Result<()>>,
) -> Result<()> {
    if plan.action == crate::plan::Action::Unchanged {
        return Ok(());
    }
    let started = Instant::now();
    work.await?;
    report.applied(&plan, started.elapsed());
    Ok(())
}

/// What `down` did with each resource.
#[derive(Clone, Debug, Serialize)]
pub struct Removed {
    pub kind: &'static str,
    pub name: String,
    #[serde(flatten)]
    pub deletion: Deletion,
}

/// Deletes everything ours in reverse dependency order; foreign resources are reported and kept.
pub async fn down(
    aws: &Aws,
    names: &Names,
    identity: &Identity,
    purge: bool,
    report: &Reporter,
) -> Result<Vec<Removed>> {
    let stack = names.stack.as_str();
    let mut removed = Vec::new();
    let mut record = |kind: &'static str, name: String, deletion: Deletion| {
        report.removed(kind, &name, &deletion);
        removed.push(Removed {
            kind,
            name,
            deletion,
        });
    };
    // Who is told goes first: the alarms, then the topic they notify.
    let alarms_there = alarms::read(aws, &names.alarms).await?;
    for name in &names.alarms {
        let deletion = alarms::delete(aws, name, alarms_there.get(name), stack).await?;
        if deletion != Deletion::Absent {
            record(alarms::KIND, name.clone(), deletion);
        }
    }
    let deletion = topic::delete(aws, &names.topic_arn(identity), stack).await?;
    record(topic::KIND, topic::Spec::name_for_stack(stack), deletion);
    let ingest = names.ingest_bucket();
    let ingest_exists = bucket::read_existence(aws, ingest)
        .await?
        .is_some_and(|b| !b.other_account);
    let deletion = if ingest_exists {
        notification::delete(aws, ingest, &names.notification_id).await?
    } else {
        Deletion::Absent
    };
    record(
        notification::KIND,
        notification_label(&names.notification_id, ingest),
        deletion,
    );

    let function = function::read(aws, &names.function).await?;
    let function_ours = function
        .as_ref()
        .is_some_and(|f| crate::resources::ownership_problem(&f.tags, stack).is_none());
    let deletion = if function_ours {
        permission::delete(aws, &names.permission_spec(identity)).await?
    } else {
        Deletion::Absent
    };
    record(
        permission::KIND,
        permission_label(&names.permission_statement_id, &names.function),
        deletion,
    );
    let deletion = if function_ours {
        invoke_config::delete(aws, &names.function).await?
    } else {
        Deletion::Absent
    };
    record(invoke_config::KIND, names.function.clone(), deletion);
    let workgroup = names.workgroup_spec(identity);
    let (function, (tables, database), workgroup) = tokio::try_join!(
        function::delete(aws, &names.function, stack),
        Box::pin(delete_catalog(aws, names, identity)),
        Box::pin(athena::delete(aws, &workgroup, stack)),
    )?;
    record(function::KIND, names.function.clone(), function);
    for (table, deletion) in names.tables.iter().zip(tables) {
        record(
            glue::TABLE_KIND,
            format!("{}.{table}", names.database),
            deletion,
        );
    }
    record(glue::DATABASE_KIND, names.database.clone(), database);
    record(athena::KIND, names.workgroup.clone(), workgroup);

    let buckets = try_join_all(
        names
            .buckets
            .iter()
            .map(|(_, name)| bucket::delete(aws, name, stack, purge)),
    );
    let (log_group, role, queue, buckets) = tokio::try_join!(
        log_group::delete(aws, &names.log_group, stack),
        role::delete(aws, &names.role, stack),
        queue::delete(aws, &names.queue, stack, purge),
        buckets,
    )?;
    record(log_group::KIND, names.log_group.clone(), log_group);
    record(role::KIND, names.role.clone(), role);
    record(queue::KIND, names.queue.clone(), queue);
    for ((role, name), deletion) in names.buckets.iter().zip(buckets) {
        record(bucket::KIND, bucket_label(name, *role), deletion);
    }
    Ok(removed)
}

/// The tables, then the database, when the database is ours; otherwise everything is kept.
async fn delete_catalog(
    aws: &Aws,
    names: &Names,
    identity: &Identity,
) -> Result<(Vec<Deletion>, Deletion)> {
    let spec = names.database_spec(identity);
    let Some(database) = glue::read_database(aws, &spec).await? else {
        return Ok((vec![Deletion::Absent; names.tables.len()], Deletion::Absent));
    };
    if let Some(problem) = crate::resources::ownership_problem(&database.tags, &names.stack) {
        let kept = Deletion::Kept(format!(
            "it is in glue database {}, which is not ours",
            names.database
        ));
        return Ok((vec![kept; names.tables.len()], Deletion::Kept(problem)));
    }
    let tables = try_join_all(
        names
            .tables
            .iter()
            .map(|t| glue::delete_table(aws, &names.database, t)),
    )
    .await?;
    let database = glue::delete_database(aws, &spec, &names.stack).await?;
    Ok((tables, database))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::artifact::Architecture;

    fn desired(extra: &str) -> Desired {
        let text = format!(
            "stack = \"demo-1\"\n[target]\nregion = \"eu-west-1\"\n[function]\narchitecture = \"arm64\"\nartifact = \"x.zip\"\n{extra}"
        );
        let config = Config::parse(Path::new("c.toml"), &text, None).unwrap();
        let identity = Identity {
            account: "123456789012".into(),
            partition: "aws".into(),
            arn: "arn:aws:iam::123456789012:root".into(),
        };
        let artifact = Artifact {
            path: PathBuf::from("x.zip"),
            architecture: Architecture::Arm64,
            code_sha256: "sha".into(),
            size: 1,
        };
        Desired::new(&config, &identity, &artifact)
    }

    /// An untagged bucket exactly as `CreateBucket` leaves it is adopted only when another
    /// resource shows that an `up` of this stack ran (it was stopped before tagging).
    #[test]
    fn a_pristine_untagged_bucket_is_adopted_only_after_an_interrupted_up() {
        let d = desired("");
        let pristine = bucket::Observed {
            pristine: true,
            ..bucket::Observed::default()
        };
        let configured = bucket::Observed {
            policy: Some(serde_json::json!({"Statement": []})),
            ..bucket::Observed::default()
        };
        let action = |observed: &Observed| diff(&d, observed).1.resources[0].action;
        let fresh = Observed {
            buckets: vec![Some(pristine.clone()), None, None],
            tables: vec![None, None],
            ..Observed::default()
        };
        assert_eq!(
            action(&fresh),
            crate::plan::Action::Conflict,
            "nothing of ours exists"
        );
        let interrupted = Observed {
            queue: Some(queue::Observed {
                tags: d.queue.tags.clone(),
                ..queue::Observed::default()
            }),
            ..fresh.clone()
        };
        assert_eq!(action(&interrupted), crate::plan::Action::Update);
        let (changes, plan) = diff(&d, &interrupted);
        assert!(
            plan.resources[0]
                .note
                .as_deref()
                .unwrap_or_default()
                .contains("adopted")
        );
        assert!(
            changes.buckets[0]
                .iter()
                .any(|c| matches!(c, bucket::Change::Tags { .. })),
            "it gets our tag"
        );
        let not_pristine = Observed {
            buckets: vec![Some(configured), None, None],
            ..interrupted
        };
        assert_eq!(
            action(&not_pristine),
            crate::plan::Action::Conflict,
            "a bucket someone configured is never adopted"
        );
    }

    #[test]
    fn the_catalog_is_deployed_whether_parquet_is_on_or_off() {
        for (extra, switch) in [("", "on"), ("[outputs]\nparquet = false", "off")] {
            let d = desired(extra);
            assert_eq!(
                d.function
                    .environment
                    .get(PARQUET_OUTPUT_ENV)
                    .map(String::as_str),
                Some(switch)
            );
            assert_eq!(d.database.name, "demo_1");
            assert_eq!(
                d.database.arn,
                "arn:aws:glue:eu-west-1:123456789012:database/demo_1"
            );
            let tables: Vec<String> = d.tables.iter().map(|t| t.qualified_name()).collect();
            assert_eq!(tables, ["demo_1.users", "demo_1.users_rejected"]);
            assert_eq!(d.workgroup.name, "demo-1");
            assert_eq!(
                d.workgroup.arn,
                "arn:aws:athena:eu-west-1:123456789012:workgroup/demo-1"
            );
            assert_eq!(
                d.workgroup.output_location,
                "s3://demo-1-refined/athena-results/"
            );
            assert_eq!(d.database.tags, d.workgroup.tags);
        }
    }

    #[test]
    fn tables_follow_the_refined_bucket_and_the_projection_start() {
        let d = desired(
            "[buckets]\nrefined = \"lake-refined\"\n[catalog]\ndatabase = \"lake\"\nprojection_start = \"2024-06-01\"",
        );
        let users = &d.tables[0];
        assert_eq!(users.location, "s3://lake-refined/curated/users/");
        assert_eq!(users.database, "lake");
        assert_eq!(
            users
                .parameters
                .get("projection.date.range")
                .map(String::as_str),
            Some("2024-06-01,NOW")
        );
        let names = Names::new(&Config::parse(
            Path::new("c.toml"),
            "stack = \"demo-1\"\n[target]\nregion = \"eu-west-1\"\n[function]\narchitecture = \"arm64\"\nartifact = \"x.zip\"\n[catalog]\ndatabase = \"lake\"",
            None,
        )
        .unwrap());
        assert_eq!(names.database, "lake");
        assert_eq!(names.tables, ["users", "users_rejected"]);
    }
}
