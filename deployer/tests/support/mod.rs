//! Test support: a fake or the real function zip, configs for unique stacks, the emulator
//! endpoint, and `plan`, `up` and `down` through the library (free functions, and `Stack`).

#![allow(dead_code)]

pub mod fault_proxy;
pub mod replay;
pub mod strict;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcessOutput, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use deployer::artifact::{Architecture, Artifact};
use deployer::aws::{Aws, CallCounts};
use deployer::config::Config;
use deployer::plan::{Action, Plan, ResourcePlan};
use deployer::report::{Output, Reporter};
use deployer::stack::{self, Desired, Names, Observed, Removed};

/// A directory of its own for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "deployer-test-{}-{name}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Each resource the plan would touch: kind, name, action and the properties that differ.
pub fn changed(plan: &Plan) -> Vec<(String, String, Action, Vec<String>)> {
    plan.resources
        .iter()
        .filter(|r| r.action != Action::Unchanged)
        .map(|r| {
            (
                r.kind.to_owned(),
                r.name.clone(),
                r.action,
                r.changes.iter().map(|c| c.property.clone()).collect(),
            )
        })
        .collect()
}

/// The deployer binary as a user runs it, without the environment's endpoint override (so the
/// config's endpoint, or none, is the one used) and with no stdin.
pub fn deployer_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_deployer"));
    command.env_remove("AWS_ENDPOINT_URL").stdin(Stdio::null());
    command
}

/// Runs the deployer binary with `args` to its end, output captured.
pub fn run_deployer(args: &[&str]) -> ProcessOutput {
    deployer_command().args(args).output().unwrap()
}

/// A zip holding the host's `true` as an executable x86_64 `bootstrap`: enough for the
/// control plane, never invoked by these tests.
pub fn fake_artifact(dir: &Path) -> PathBuf {
    fake_artifact_of(dir, "/bin/true")
}

/// A zip holding the host's `program` as an executable x86_64 `bootstrap` (`/bin/false` makes
/// a second artifact with another `CodeSha256`).
pub fn fake_artifact_of(dir: &Path, program: &str) -> PathBuf {
    let path = dir.join(format!(
        "bootstrap-{}.zip",
        Path::new(program)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
    ));
    let binary = std::fs::read(program).unwrap();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    zip.start_file("bootstrap", options).unwrap();
    zip.write_all(&binary).unwrap();
    zip.finish().unwrap();
    path
}

/// The emulator endpoint the live tests run against (`make test` sets it).
pub fn endpoint() -> String {
    std::env::var("CSV_INGEST_TEST_ENDPOINT").expect(
        "CSV_INGEST_TEST_ENDPOINT is not set: these tests need a running ministack; run them with `make test` (scripts/e2e.sh)",
    )
}

/// A config for a stack of its own against `endpoint`, with a fake artifact.
pub fn config(stack: &str, endpoint: &str, extra: &str) -> (Config, Artifact) {
    let dir = scratch_dir(stack);
    let zip = fake_artifact(&dir);
    let config = write_config(&dir, stack, endpoint, &zip, extra);
    let artifact = Artifact::inspect(&zip, Architecture::X86_64).unwrap();
    (config, artifact)
}

/// Writes and loads `dir/config.toml`: a stack of its own against `endpoint` deploying `zip`.
/// `extra` goes at the end of the `[function]` table, so it may set function keys and then open
/// further tables (`[notification]`).
fn write_config(dir: &Path, stack: &str, endpoint: &str, zip: &Path, extra: &str) -> Config {
    let text = format!(
        r#"
stack = "{stack}"
[target]
region = "us-east-1"
endpoint = "{endpoint}"
credentials = "emulator"
[function]
architecture = "x86_64"
artifact = "{}"
memory_mb = 256
{extra}
"#,
        zip.display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, &text).unwrap();
    Config::load(&path, None).unwrap()
}

/// A stack name unique to this test run.
pub fn stack_name(test: &str) -> String {
    format!("t{}-{test}", std::process::id() % 100_000)
}

/// The real function zip (`scripts/build-lambda.sh x86_64`), from `CSV_INGEST_TEST_ARTIFACT`.
pub fn real_artifact_path() -> PathBuf {
    let path = std::env::var_os("CSV_INGEST_TEST_ARTIFACT")
        .map(PathBuf::from)
        .expect(
            "CSV_INGEST_TEST_ARTIFACT is not set: these tests run the real function; build it with \
         `scripts/build-lambda.sh x86_64` and set CSV_INGEST_TEST_ARTIFACT to \
         target/lambda-x86_64/bootstrap/bootstrap.zip (absolute path), or run `make test`",
        );
    assert!(
        path.is_file(),
        "CSV_INGEST_TEST_ARTIFACT={} is not a file: build it with `scripts/build-lambda.sh x86_64`",
        path.display()
    );
    path
}

/// A config for a stack of its own against `endpoint` that deploys the real function
/// (`real_artifact_path`). `extra` as for `write_config`.
pub fn real_config(stack: &str, endpoint: &str, extra: &str) -> (Config, Artifact) {
    let dir = scratch_dir(stack);
    let zip = real_artifact_path();
    let config = write_config(&dir, stack, endpoint, &zip, extra);
    let artifact = Artifact::inspect(&zip, Architecture::X86_64).unwrap_or_else(|e| {
        panic!(
            "CSV_INGEST_TEST_ARTIFACT={} is not a usable x86_64 function zip: {e}",
            zip.display()
        )
    });
    (config, artifact)
}

// ---------------------------------------------------------------------------------------------
// `plan`, `up` and `down` through the library, as the commands run them.

/// A fresh client for the stack of `config`, so its call counts start at zero.
pub async fn client(config: &Config) -> Aws {
    Aws::connect(&config.target).await
}

/// What `config` and `artifact` want deployed, in the account `aws` talks to.
pub async fn desired(aws: &Aws, config: &Config, artifact: &Artifact) -> anyhow::Result<Desired> {
    let identity = aws.identity().await?;
    Ok(Desired::new(config, &identity, artifact))
}

/// What the stack wants, and what `aws` finds of it.
async fn read(
    aws: &Aws,
    config: &Config,
    artifact: &Artifact,
) -> anyhow::Result<(Desired, Observed)> {
    let desired = desired(aws, config, artifact).await?;
    let observed = stack::read(aws, &desired).await?;
    Ok((desired, observed))
}

/// `up` on `aws`: the plan it applied (the calls are `aws.calls`).
pub async fn up_on(aws: &Aws, config: &Config, artifact: &Artifact) -> anyhow::Result<Plan> {
    let (desired, observed) = read(aws, config, artifact).await?;
    let (changes, plan) = stack::diff(&desired, &observed);
    stack::apply(
        aws,
        &desired,
        &observed,
        &changes,
        &plan,
        &Reporter::new(Output::Json),
    )
    .await?;
    Ok(plan)
}

/// `plan` with a fresh client: the plan and the calls it took.
pub async fn plan(config: &Config, artifact: &Artifact) -> anyhow::Result<(Plan, CallCounts)> {
    let aws = client(config).await;
    let (desired, observed) = read(&aws, config, artifact).await?;
    Ok((stack::diff(&desired, &observed).1, aws.calls.snapshot()))
}

/// `up` with a fresh client: the plan it applied and the calls it made.
pub async fn up(config: &Config, artifact: &Artifact) -> anyhow::Result<(Plan, CallCounts)> {
    let aws = client(config).await;
    let plan = up_on(&aws, config, artifact).await?;
    Ok((plan, aws.calls.snapshot()))
}

/// `down` (`--purge` when `purge`) with a fresh client: what it did to each resource.
pub async fn down(config: &Config, purge: bool) -> anyhow::Result<Vec<Removed>> {
    let aws = client(config).await;
    let identity = aws.identity().await?;
    stack::down(
        &aws,
        &Names::new(config),
        &identity,
        purge,
        &Reporter::new(Output::Json),
    )
    .await
}

/// A stack of its own for one test: its config and artifact, and a client of its own for
/// looking at and changing its resources by hand. `plan`, `up` and `down` each use a fresh
/// client, so their call counts are theirs alone. A test file adds its own helpers with an
/// `impl Stack` block of its own.
pub struct Stack {
    pub config: Config,
    pub artifact: Artifact,
    pub aws: Aws,
}

impl Stack {
    /// A stack named after `test` on the emulator, with a fake artifact; `extra` as for
    /// `write_config`.
    pub async fn new(test: &str, extra: &str) -> Stack {
        Stack::of(config(&stack_name(test), &endpoint(), extra)).await
    }

    /// A stack named after `test` on the emulator that deploys the real function.
    pub async fn real(test: &str, extra: &str) -> Stack {
        Stack::of(real_config(&stack_name(test), &endpoint(), extra)).await
    }

    async fn of((config, artifact): (Config, Artifact)) -> Stack {
        let aws = client(&config).await;
        Stack {
            config,
            artifact,
            aws,
        }
    }

    /// What the stack wants deployed.
    pub async fn desired(&self) -> Desired {
        desired(&self.aws, &self.config, &self.artifact)
            .await
            .unwrap()
    }

    /// `plan`: the plan.
    pub async fn plan(&self) -> Plan {
        plan(&self.config, &self.artifact).await.unwrap().0
    }

    /// `up`: the plan it applied and the calls it made.
    pub async fn up(&self) -> anyhow::Result<(Plan, CallCounts)> {
        up(&self.config, &self.artifact).await
    }

    /// `down`, `--purge` when `purge`: what it did to each resource.
    pub async fn down(&self, purge: bool) -> Vec<Removed> {
        down(&self.config, purge).await.unwrap()
    }

    /// Converged: the plan is empty, and `up` finds nothing to do and makes no write.
    pub async fn assert_converged(&self) {
        let after = self.plan().await;
        assert!(after.is_empty(), "{after}");
        let (noop, calls) = self.up().await.unwrap();
        assert!(noop.is_empty());
        assert_eq!(
            calls.mutating, 0,
            "a no-op up made mutating calls: {calls:?}"
        );
    }

    /// `up` makes one write, `operation`, and nothing else; the plan is empty after it.
    pub async fn assert_repaired_by(&self, operation: &str) {
        let (_, calls) = self.up().await.unwrap();
        assert_eq!(
            calls.mutating_operations.into_iter().collect::<Vec<_>>(),
            vec![(operation.to_owned(), 1)]
        );
        assert!(self.plan().await.is_empty());
    }
}

/// The first resource of `plan` whose action is `action`.
pub fn first_with(plan: &Plan, action: Action) -> &ResourcePlan {
    plan.resources
        .iter()
        .find(|r| r.action == action)
        .unwrap_or_else(|| panic!("no {action:?} in the plan:\n{plan}"))
}
