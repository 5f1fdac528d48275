//! Test support: a fake or the real function zip, configs for unique stacks, and the emulator endpoint.

#![allow(dead_code)]

pub mod fault_proxy;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use deployer::artifact::{Architecture, Artifact};
use deployer::config::Config;

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

/// A zip holding the host's `true` as an executable x86_64 `bootstrap`: enough for the
/// control plane, never invoked by these tests.
pub fn fake_artifact(dir: &Path) -> PathBuf {
    let path = dir.join("bootstrap.zip");
    let binary = std::fs::read("/bin/true").unwrap();
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
    let config = Config::load(&path, None).unwrap();
    let artifact = Artifact::inspect(&zip, Architecture::X86_64).unwrap();
    (config, artifact)
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
/// (`real_artifact_path`). `extra` goes at the end of the `[function]` table, so it may set
/// function keys and then open further tables (`[notification]`).
pub fn real_config(stack: &str, endpoint: &str, extra: &str) -> (Config, Artifact) {
    let dir = scratch_dir(stack);
    let zip = real_artifact_path();
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
    let config = Config::load(&path, None).unwrap();
    let artifact = Artifact::inspect(&zip, Architecture::X86_64).unwrap_or_else(|e| {
        panic!(
            "CSV_INGEST_TEST_ARTIFACT={} is not a usable x86_64 function zip: {e}",
            zip.display()
        )
    });
    (config, artifact)
}
