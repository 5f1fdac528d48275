//! The whole stack: desired state from the config, concurrent reads, the plan, ordered apply and teardown.
//!
//! Dependency order for `up`: buckets, role and log group (concurrently) → function →
//! invoke permission → bucket notification. `down` walks it backwards.

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
    Deletion, bucket, function, invoke_config, log_group, notification, permission, queue, role,
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
        }
    }
}

impl Desired {
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
                versioned: role == BucketRole::Raw,
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
                ("REFINED_BUCKET".to_owned(), config.buckets.refined.clone()),
            ]),
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
        }
    }
}

/// Every resource as it is.
#[derive(Clone, Debug)]
pub struct Observed {
    pub buckets: Vec<Option<bucket::Observed>>,
    pub role: Option<role::Observed>,
    pub log_group: Option<log_group::Observed>,
    pub function: Option<function::Observed>,
    pub permission: Option<permission::Observed>,
    pub notification: Option<notification::Observed>,
    pub queue: Option<queue::Observed>,
    pub invoke_config: Option<invoke_config::Observed>,
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
    let (buckets, role, log_group, queue, (function, permission, invoke_config), notification) = tokio::try_join!(
        buckets,
        role::read(aws, &desired.role, stack),
        log_group::read(aws, &desired.log_group.name),
        queue::read(aws, &desired.queue.name),
        function_and_permission,
        ingest_and_notification,
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
}

/// Diffs every resource; returns the typed changes and the plan to show.
pub fn diff(desired: &Desired, observed: &Observed) -> (Changes, Plan) {
    let stack = desired.stack.as_str();
    let mut changes = Changes::default();
    let mut plans = Vec::new();
    for (spec, o) in desired.buckets.iter().zip(&observed.buckets) {
        let name = format!("{} ({})", spec.name, spec.role);
        match o.as_ref().and_then(|o| o.ownership_problem(stack)) {
            Some(problem) => {
                plans.push(ResourcePlan::conflict(bucket::KIND, name, problem));
                changes.buckets.push(Vec::new());
            }
            None => {
                let c = bucket::diff(spec, o.as_ref());
                plans.push(ResourcePlan::from_changes(bucket::KIND, name, &c));
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
        format!(
            "{} on {}",
            desired.permission.statement_id, desired.function.name
        ),
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
        format!(
            "{} on {}",
            desired.notification.id, desired.notification.bucket
        ),
        &changes.notification,
    ));
    (changes, Plan::new(plans))
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

/// What `up` did, for `--output json`.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub plan: Plan,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub mutating_calls: u64,
    pub seconds: f64,
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
                ResourcePlan::from_changes(
                    bucket::KIND,
                    format!("{} ({})", spec.name, spec.role),
                    c,
                ),
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
    // Phase 2: the function, once its role exists.
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
    )
    .await?;
    // Phase 3: S3 may invoke it, and failures are routed. Phase 4: S3 does invoke it.
    tokio::try_join!(
        timed(
            report,
            ResourcePlan::from_changes(
                permission::KIND,
                desired.permission.statement_id.clone(),
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
            desired.notification.id.clone(),
            &changes.notification,
        ),
        notification::apply(aws, &desired.notification, &changes.notification),
    )
    .await?;
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
    let ingest = names
        .buckets
        .iter()
        .find(|(role, _)| *role == BucketRole::Ingest)
        .map(|(_, name)| name.clone())
        .unwrap_or_default();
    let ingest_exists = bucket::read_existence(aws, &ingest)
        .await?
        .is_some_and(|b| !b.other_account);
    let deletion = if ingest_exists {
        notification::delete(aws, &ingest, &names.notification_id).await?
    } else {
        Deletion::Absent
    };
    record(
        notification::KIND,
        format!("{} on {ingest}", names.notification_id),
        deletion,
    );

    let function = function::read(aws, &names.function).await?;
    let function_ours = function
        .as_ref()
        .is_some_and(|f| crate::resources::ownership_problem(&f.tags, stack).is_none());
    let deletion = if function_ours {
        let spec = permission::Spec {
            function_name: names.function.clone(),
            function_arn: String::new(),
            statement_id: names.permission_statement_id.clone(),
            source_bucket_arn: String::new(),
            source_account: identity.account.clone(),
        };
        permission::delete(aws, &spec).await?
    } else {
        Deletion::Absent
    };
    record(
        permission::KIND,
        format!("{} on {}", names.permission_statement_id, names.function),
        deletion,
    );
    let deletion = if function_ours {
        invoke_config::delete(aws, &names.function).await?
    } else {
        Deletion::Absent
    };
    record(invoke_config::KIND, names.function.clone(), deletion);
    record(
        function::KIND,
        names.function.clone(),
        function::delete(aws, &names.function, stack).await?,
    );

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
        record(bucket::KIND, format!("{name} ({role})"), deletion);
    }
    Ok(removed)
}
