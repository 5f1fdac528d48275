//! The Lambda function: configuration, code (uploaded only when its SHA-256 differs), tags, reserved concurrency.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_lambda::operation::create_function::CreateFunctionError;
use aws_sdk_lambda::operation::get_function::GetFunctionError;
use aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeError;
use aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, LastUpdateStatus, Runtime, State};

use super::{Deletion, Tags, describe_tags, missing_tags, ownership_problem, render_tags};
use crate::artifact::Architecture;
use crate::aws::{Aws, Patience, retry_while, sdk_error};
use crate::plan::{Describe, PropertyChange};

pub const KIND: &str = "lambda function";
pub const RUNTIME: &str = "provided.al2023";
pub const HANDLER: &str = "bootstrap";
/// How long a function may stay `Pending` / `InProgress` after a change.
const SETTLE_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub role_arn: String,
    pub memory_mb: i32,
    pub timeout_s: i32,
    pub architecture: Architecture,
    pub environment: BTreeMap<String, String>,
    pub tags: Tags,
    /// Base64 SHA-256 of the zip, as Lambda reports `CodeSha256`.
    pub code_sha256: String,
    pub zip_path: PathBuf,
    /// `None`: unreserved (the account's shared pool).
    pub reserved_concurrency: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub arn: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub architecture: Option<String>,
    pub memory_mb: Option<i32>,
    pub timeout_s: Option<i32>,
    pub role_arn: Option<String>,
    pub environment: BTreeMap<String, String>,
    pub code_sha256: Option<String>,
    pub tags: Tags,
    pub reserved_concurrency: Option<i32>,
    pub last_modified: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Create,
    Runtime {
        old: Option<String>,
    },
    Handler {
        old: Option<String>,
    },
    Memory {
        old: Option<i32>,
        new: i32,
    },
    Timeout {
        old: Option<i32>,
        new: i32,
    },
    Role {
        old: Option<String>,
        new: String,
    },
    Environment {
        old: BTreeMap<String, String>,
        new: BTreeMap<String, String>,
    },
    Code {
        old: Option<String>,
        new: String,
    },
    Architecture {
        old: Option<String>,
        new: Architecture,
    },
    Tags {
        observed: Tags,
        set: Tags,
    },
    ReservedConcurrency {
        old: Option<i32>,
        new: Option<i32>,
    },
}

fn opt<T: ToString>(value: &Option<T>) -> Option<String> {
    value.as_ref().map(ToString::to_string)
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match self {
            Change::Create => PropertyChange::set("exists", "true"),
            Change::Runtime { old } => PropertyChange::replace("runtime", old.clone(), RUNTIME),
            Change::Handler { old } => PropertyChange::replace("handler", old.clone(), HANDLER),
            Change::Memory { old, new } => {
                PropertyChange::replace("memory_mb", opt(old), new.to_string())
            }
            Change::Timeout { old, new } => {
                PropertyChange::replace("timeout_s", opt(old), new.to_string())
            }
            Change::Role { old, new } => PropertyChange::replace("role", old.clone(), new.clone()),
            Change::Environment { old, new } => {
                PropertyChange::update("environment", render_tags(old), render_tags(new))
            }
            Change::Code { old, new } => {
                PropertyChange::replace("code_sha256", old.clone(), new.clone())
            }
            Change::Architecture { old, new } => {
                PropertyChange::replace("architecture", old.clone(), new.to_string())
            }
            Change::Tags { observed, set } => describe_tags(observed, set),
            Change::ReservedConcurrency { old, new } => PropertyChange::update(
                "reserved_concurrency",
                old.map_or_else(|| "unreserved".to_owned(), |n| n.to_string()),
                new.map_or_else(|| "unreserved".to_owned(), |n| n.to_string()),
            ),
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, Change::Create)
    }
}

impl Change {
    /// Changes that `UpdateFunctionConfiguration` makes (all in one call).
    fn is_configuration(&self) -> bool {
        matches!(
            self,
            Change::Runtime { .. }
                | Change::Handler { .. }
                | Change::Memory { .. }
                | Change::Timeout { .. }
                | Change::Role { .. }
                | Change::Environment { .. }
        )
    }

    /// Changes that `UpdateFunctionCode` makes (code and architecture travel together).
    fn is_code(&self) -> bool {
        matches!(self, Change::Code { .. } | Change::Architecture { .. })
    }
}

pub fn diff(spec: &Spec, observed: Option<&Observed>) -> Vec<Change> {
    let Some(o) = observed else {
        // CreateFunction sets everything but reserved concurrency.
        let mut changes = vec![Change::Create];
        if spec.reserved_concurrency.is_some() {
            changes.push(Change::ReservedConcurrency {
                old: None,
                new: spec.reserved_concurrency,
            });
        }
        return changes;
    };
    let mut changes = Vec::new();
    if o.runtime.as_deref() != Some(RUNTIME) {
        changes.push(Change::Runtime {
            old: o.runtime.clone(),
        });
    }
    if o.handler.as_deref() != Some(HANDLER) {
        changes.push(Change::Handler {
            old: o.handler.clone(),
        });
    }
    if o.memory_mb != Some(spec.memory_mb) {
        changes.push(Change::Memory {
            old: o.memory_mb,
            new: spec.memory_mb,
        });
    }
    if o.timeout_s != Some(spec.timeout_s) {
        changes.push(Change::Timeout {
            old: o.timeout_s,
            new: spec.timeout_s,
        });
    }
    if o.role_arn.as_deref() != Some(spec.role_arn.as_str()) {
        changes.push(Change::Role {
            old: o.role_arn.clone(),
            new: spec.role_arn.clone(),
        });
    }
    if o.environment != spec.environment {
        changes.push(Change::Environment {
            old: o.environment.clone(),
            new: spec.environment.clone(),
        });
    }
    if o.code_sha256.as_deref() != Some(spec.code_sha256.as_str()) {
        changes.push(Change::Code {
            old: o.code_sha256.clone(),
            new: spec.code_sha256.clone(),
        });
    }
    if o.architecture.as_deref() != Some(spec.architecture.as_str()) {
        changes.push(Change::Architecture {
            old: o.architecture.clone(),
            new: spec.architecture,
        });
    }
    let set = missing_tags(&spec.tags, &o.tags);
    if !set.is_empty() {
        changes.push(Change::Tags {
            observed: o.tags.clone(),
            set,
        });
    }
    if o.reserved_concurrency != spec.reserved_concurrency {
        changes.push(Change::ReservedConcurrency {
            old: o.reserved_concurrency,
            new: spec.reserved_concurrency,
        });
    }
    changes
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Observed>> {
    let out = match aws.lambda.get_function().function_name(name).send().await {
        Ok(out) => out,
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetFunctionError::ResourceNotFoundException(_))
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(sdk_error(e))
                .with_context(|| format!("reading lambda function {name} (GetFunction)"));
        }
    };
    let Some(c) = out.configuration() else {
        return Ok(None);
    };
    Ok(Some(Observed {
        arn: c.function_arn().unwrap_or_default().to_owned(),
        runtime: c.runtime().map(|r| r.as_str().to_owned()),
        handler: c.handler().map(str::to_owned),
        // Lambda omits Architectures for functions created before arm64 existed: x86_64.
        architecture: Some(
            c.architectures()
                .first()
                .map_or("x86_64", |a| a.as_str())
                .to_owned(),
        ),
        memory_mb: c.memory_size(),
        timeout_s: c.timeout(),
        role_arn: c.role().map(str::to_owned),
        environment: c
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        code_sha256: c.code_sha256().map(str::to_owned),
        tags: out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        reserved_concurrency: out
            .concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        last_modified: c.last_modified().map(str::to_owned),
    }))
}

pub async fn apply(aws: &Aws, spec: &Spec, function_arn: &str, changes: &[Change]) -> Result<()> {
    let name = spec.name.as_str();
    let doing = |what: &str| format!("{what} on lambda function {name}");
    if changes.iter().any(|c| matches!(c, Change::Create)) {
        create(aws, spec).await?;
        wait_until_settled(aws, name).await?;
    }
    if changes.iter().any(Change::is_configuration) {
        // An earlier update (an interrupted `up`, a console edit) may still be running.
        wait_for_no_update_in_progress(aws, name).await?;
        retry_while(
            Patience::LAMBDA_UPDATE,
            || {
                retry_while_role_propagates(name, || {
                    aws.lambda
                        .update_function_configuration()
                        .function_name(name)
                        .runtime(Runtime::from(RUNTIME))
                        .handler(HANDLER)
                        .memory_size(spec.memory_mb)
                        .timeout(spec.timeout_s)
                        .role(&spec.role_arn)
                        .environment(environment(spec))
                        .send()
                })
            },
            update_in_progress(name),
        )
        .await
        .map_err(sdk_error)
        .with_context(|| doing("UpdateFunctionConfiguration"))?;
        wait_until_settled(aws, name).await?;
    }
    if changes.iter().any(Change::is_code) {
        let zip = std::fs::read(&spec.zip_path)
            .with_context(|| format!("reading function artifact {}", spec.zip_path.display()))?;
        wait_for_no_update_in_progress(aws, name).await?;
        retry_while(
            Patience::LAMBDA_UPDATE,
            || {
                aws.lambda
                    .update_function_code()
                    .function_name(name)
                    .zip_file(Blob::new(zip.clone()))
                    .architectures(aws_sdk_lambda::types::Architecture::from(
                        spec.architecture.as_str(),
                    ))
                    .send()
            },
            |e| {
                matches!(
                    e.as_service_error(),
                    Some(UpdateFunctionCodeError::ResourceConflictException(_))
                )
                .then(|| format!("lambda function {name} has an update in progress; waiting"))
            },
        )
        .await
        .map_err(sdk_error)
        .with_context(|| doing("UpdateFunctionCode"))?;
        wait_until_settled(aws, name).await?;
    }
    for change in changes {
        match change {
            Change::Tags { set, .. } => {
                aws.lambda
                    .tag_resource()
                    .resource(function_arn)
                    .set_tags(Some(set.clone().into_iter().collect()))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("TagResource"))?;
            }
            Change::ReservedConcurrency { new: Some(n), .. } => {
                aws.lambda
                    .put_function_concurrency()
                    .function_name(name)
                    .reserved_concurrent_executions(*n)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("PutFunctionConcurrency"))?;
            }
            Change::ReservedConcurrency { new: None, .. } => {
                aws.lambda
                    .delete_function_concurrency()
                    .function_name(name)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("DeleteFunctionConcurrency"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn environment(spec: &Spec) -> Environment {
    Environment::builder()
        .set_variables(Some(spec.environment.clone().into_iter().collect()))
        .build()
}

async fn create(aws: &Aws, spec: &Spec) -> Result<()> {
    let name = spec.name.as_str();
    let zip = std::fs::read(&spec.zip_path)
        .with_context(|| format!("reading function artifact {}", spec.zip_path.display()))?;
    let result = retry_while_role_propagates(name, || {
        aws.lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::from(RUNTIME))
            .handler(HANDLER)
            .role(&spec.role_arn)
            .memory_size(spec.memory_mb)
            .timeout(spec.timeout_s)
            .architectures(aws_sdk_lambda::types::Architecture::from(
                spec.architecture.as_str(),
            ))
            .environment(environment(spec))
            .set_tags(Some(spec.tags.clone().into_iter().collect()))
            .description(
                "Validates CSV files dropped into the ingest bucket (managed by the deployer)",
            )
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(zip.clone()))
                    .build(),
            )
            .send()
    })
    .await;
    result
        .map_err(sdk_error)
        .with_context(|| format!("creating lambda function {name} (CreateFunction)"))
}

/// Errors from the calls that name the role, with the one we retry recognised.
trait RoleNotAssumable {
    fn role_not_yet_assumable(&self) -> bool;
    fn already_exists(&self) -> bool {
        false
    }
}

/// Lambda reports a role that IAM has not propagated yet as `InvalidParameterValueException`
/// with this text; the model has no finer type, so the message is all there is to go on.
const ROLE_NOT_ASSUMABLE: &str = "cannot be assumed by Lambda";

impl RoleNotAssumable for CreateFunctionError {
    fn role_not_yet_assumable(&self) -> bool {
        matches!(self, CreateFunctionError::InvalidParameterValueException(e)
            if e.message().is_some_and(|m| m.contains(ROLE_NOT_ASSUMABLE)))
    }
    fn already_exists(&self) -> bool {
        matches!(self, CreateFunctionError::ResourceConflictException(_))
    }
}

impl RoleNotAssumable for UpdateFunctionConfigurationError {
    fn role_not_yet_assumable(&self) -> bool {
        matches!(self, UpdateFunctionConfigurationError::InvalidParameterValueException(e)
            if e.message().is_some_and(|m| m.contains(ROLE_NOT_ASSUMABLE)))
    }
}

/// A Lambda SDK error, as the service answered it.
type LambdaError<E> = aws_sdk_lambda::error::SdkError<E, aws_smithy_runtime_api::http::Response>;

/// What the outer retry of an update waits for: `ResourceConflictException`, an update of
/// the function still in progress.
fn update_in_progress(
    name: &str,
) -> impl FnMut(&LambdaError<UpdateFunctionConfigurationError>) -> Option<String> + '_ {
    move |e| {
        matches!(
            e.as_service_error(),
            Some(UpdateFunctionConfigurationError::ResourceConflictException(
                _
            ))
        )
        .then(|| format!("lambda function {name} has an update in progress; waiting"))
    }
}

/// Runs `call` until it succeeds, retrying with backoff (up to 2 minutes) while Lambda cannot
/// assume the freshly created role yet. A function that already exists counts as created.
async fn retry_while_role_propagates<T, E, F, Fut>(
    name: &str,
    call: F,
) -> Result<(), LambdaError<E>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, LambdaError<E>>>,
    E: RoleNotAssumable
        + aws_sdk_lambda::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    let result = retry_while(Patience::IAM, call, |e| {
        e.as_service_error()
            .is_some_and(RoleNotAssumable::role_not_yet_assumable)
            .then(|| format!("waiting for IAM to propagate the role of {name}"))
    })
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(RoleNotAssumable::already_exists) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Polls until no update of the function is in progress (whatever the last one's outcome:
/// a failed earlier update does not block the next one).
async fn wait_for_no_update_in_progress(aws: &Aws, name: &str) -> Result<()> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let c = aws
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| {
                format!("waiting for lambda function {name} (GetFunctionConfiguration)")
            })?;
        let busy = matches!(c.last_update_status(), Some(LastUpdateStatus::InProgress))
            || matches!(c.state(), Some(State::Pending));
        if !busy {
            return Ok(());
        }
        if started.elapsed() > SETTLE_DEADLINE {
            bail!(
                "lambda function {name} still has an update in progress after {SETTLE_DEADLINE:?}: wait for it (or check the console), then run `up` again"
            );
        }
        eprintln!("    lambda function {name} has an update in progress; waiting");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Polls until the function is `Active` with no update in progress.
async fn wait_until_settled(aws: &Aws, name: &str) -> Result<()> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let c = aws
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| {
                format!("waiting for lambda function {name} (GetFunctionConfiguration)")
            })?;
        let state = c.state().cloned();
        let update = c.last_update_status().cloned();
        match (&state, &update) {
            (Some(State::Failed), _) => bail!(
                "lambda function {name} failed to become active: {}",
                c.state_reason().unwrap_or("no reason given")
            ),
            (_, Some(LastUpdateStatus::Failed)) => bail!(
                "lambda function {name} update failed: {}",
                c.last_update_status_reason().unwrap_or("no reason given")
            ),
            (Some(State::Active) | None, Some(LastUpdateStatus::Successful) | None) => {
                return Ok(());
            }
            _ => {}
        }
        if started.elapsed() > SETTLE_DEADLINE {
            bail!(
                "lambda function {name} still not settled after {SETTLE_DEADLINE:?} (state {state:?}, last update {update:?})"
            );
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

pub async fn delete(aws: &Aws, name: &str, stack: &str) -> Result<Deletion> {
    let Some(observed) = read(aws, name).await? else {
        return Ok(Deletion::Absent);
    };
    if let Some(problem) = ownership_problem(&observed.tags, stack) {
        return Ok(Deletion::Kept(problem));
    }
    match aws.lambda.delete_function().function_name(name).send().await {
        Ok(_) => Ok(Deletion::Deleted),
        Err(e) if matches!(
            e.as_service_error(),
            Some(aws_sdk_lambda::operation::delete_function::DeleteFunctionError::ResourceNotFoundException(_))
        ) => Ok(Deletion::Absent),
        Err(e) => Err(sdk_error(e)).with_context(|| format!("deleting lambda function {name} (DeleteFunction)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OWNERSHIP_TAG;

    fn spec() -> Spec {
        Spec {
            name: "demo".into(),
            role_arn: "arn:aws:iam::000000000000:role/demo-function".into(),
            memory_mb: 256,
            timeout_s: 300,
            architecture: Architecture::Arm64,
            environment: [("RAW_BUCKET".to_owned(), "demo-raw".to_owned())].into(),
            tags: [(OWNERSHIP_TAG.to_owned(), "demo".to_owned())].into(),
            code_sha256: "abc=".into(),
            zip_path: "bootstrap.zip".into(),
            reserved_concurrency: None,
        }
    }

    fn converged(s: &Spec) -> Observed {
        Observed {
            arn: "arn:aws:lambda:us-east-1:000000000000:function:demo".into(),
            runtime: Some(RUNTIME.into()),
            handler: Some(HANDLER.into()),
            architecture: Some("arm64".into()),
            memory_mb: Some(s.memory_mb),
            timeout_s: Some(s.timeout_s),
            role_arn: Some(s.role_arn.clone()),
            environment: s.environment.clone(),
            code_sha256: Some(s.code_sha256.clone()),
            tags: s.tags.clone(),
            reserved_concurrency: None,
            last_modified: None,
        }
    }

    #[test]
    fn converged_function_needs_nothing_and_missing_one_is_created() {
        let s = spec();
        assert_eq!(diff(&s, Some(&converged(&s))), vec![]);
        assert_eq!(diff(&s, None), vec![Change::Create]);
        let reserved = Spec {
            reserved_concurrency: Some(5),
            ..spec()
        };
        assert_eq!(diff(&reserved, None).len(), 2);
    }

    #[test]
    fn each_property_is_checked_independently() {
        let s = spec();
        type Drift = fn(&mut Observed);
        let drifts: Vec<(&str, Drift)> = vec![
            ("runtime", |o| o.runtime = Some("provided.al2".into())),
            ("handler", |o| o.handler = Some("main".into())),
            ("memory_mb", |o| o.memory_mb = Some(512)),
            ("timeout_s", |o| o.timeout_s = Some(3)),
            ("role", |o| {
                o.role_arn = Some("arn:aws:iam::0:role/other".into())
            }),
            ("environment", |o| {
                o.environment.insert("EXTRA".into(), "1".into());
            }),
            ("code_sha256", |o| o.code_sha256 = Some("old=".into())),
            ("architecture", |o| o.architecture = Some("x86_64".into())),
            ("tags", |o| o.tags.clear()),
            ("reserved_concurrency", |o| o.reserved_concurrency = Some(2)),
        ];
        for (property, drift) in drifts {
            let mut o = converged(&s);
            drift(&mut o);
            let changes = diff(&s, Some(&o));
            assert_eq!(changes.len(), 1, "{property}: {changes:?}");
            assert_eq!(changes[0].describe().property, property);
        }
    }

    #[test]
    fn memory_change_reads_old_to_new() {
        let s = spec();
        let mut o = converged(&s);
        o.memory_mb = Some(512);
        assert_eq!(
            diff(&s, Some(&o))[0].describe(),
            PropertyChange::update("memory_mb", "512", "256")
        );
    }
}
