//! The artifact AWS runs, run: the arm64 `bootstrap` (what `config/aws.example.toml` deploys)
//! swapped into a stack on ministack under qemu-user, then a few files uploaded through the
//! notification; every output must equal what `deployer check` writes for the same file.
//!
//! ministack runs the zip's `bootstrap` as a host process, so the zip swapped in holds a
//! wrapper script `bootstrap` that execs `qemu-aarch64-static -L /usr/aarch64-linux-gnu
//! ./bootstrap.arm64` (Debian's `qemu-user-static` and `libc6-arm64-cross`; `make test`
//! installs them). Needs `CSV_INGEST_TEST_ARM64_ZIP` (the arm64 zip) besides the live-test
//! variables; run by `make test` (scripts/e2e.sh) unless `SKIP_ARM64` is set.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_s3::primitives::ByteStream;
use deployer::artifact::{Architecture, Artifact};
use shared::{OutputKeys, Timestamp};
use support::Stack;

const WRAPPER: &str = "#!/bin/sh\n# The arm64 function under qemu-user (the emulator runs bootstrap as a host process).\nexec qemu-aarch64-static -L /usr/aarch64-linux-gnu \"$(dirname \"$0\")/bootstrap.arm64\" \"$@\"\n";

/// The arm64 zip's `bootstrap` beside the wrapper, as a new zip in `dir`.
fn wrapper_zip(arm64_zip: &Path, dir: &Path) -> PathBuf {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(arm64_zip).unwrap()).unwrap();
    let mut binary = Vec::new();
    archive
        .by_name("bootstrap")
        .unwrap()
        .read_to_end(&mut binary)
        .unwrap();
    assert_eq!(&binary[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([binary[18], binary[19]]),
        183,
        "not an aarch64 ELF"
    );
    let path = dir.join("arm64-under-qemu.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let exec = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    zip.start_file("bootstrap", exec).unwrap();
    zip.write_all(WRAPPER.as_bytes()).unwrap();
    zip.start_file("bootstrap.arm64", exec).unwrap();
    zip.write_all(&binary).unwrap();
    zip.finish().unwrap();
    path
}

async fn get(s: &Stack, bucket: &str, key: &str, deadline: Instant) -> Vec<u8> {
    loop {
        match s.aws.s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => return out.body.collect().await.unwrap().into_bytes().to_vec(),
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "s3://{bucket}/{key} not there in time: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs ministack, the built function zips and qemu-user: run by `make test`"]
async fn the_arm64_artifact_under_qemu_processes_files_as_check_does() {
    let arm64 = std::env::var_os("CSV_INGEST_TEST_ARM64_ZIP")
        .map(PathBuf::from)
        .expect(
            "CSV_INGEST_TEST_ARM64_ZIP: the arm64 function zip (scripts/build-lambda.sh arm64)",
        );
    Artifact::inspect(&arm64, Architecture::Arm64)
        .unwrap_or_else(|e| panic!("{}: {e}", arm64.display()));
    let s = Stack::real("arm64", "[notification]\nprefix = \"in/\"\n").await;
    s.up().await.unwrap();
    let dir = support::scratch_dir("arm64");
    let zip = wrapper_zip(&arm64, &dir);
    s.aws
        .lambda
        .update_function_code()
        .function_name(&s.config.function.name)
        .zip_file(Blob::new(std::fs::read(&zip).unwrap()))
        .send()
        .await
        .unwrap();

    // A few files: the sample, a generated file with every kind of bad row, an empty one.
    let generated = std::process::Command::new(env!("CARGO"))
        .args([
            "run",
            "-q",
            "-p",
            "shared",
            "--example",
            "gen_users",
            "--",
            "20000",
        ])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("users.csv", deployer::smoke::SAMPLE.to_vec()),
        ("generated.csv", generated.stdout),
        ("empty.csv", Vec::new()),
    ];
    let (ingest, refined) = (&s.config.buckets.ingest, &s.config.buckets.refined);
    let started = Instant::now();
    let mut compared = 0;
    for (name, body) in &files {
        let key = format!("in/arm64/{name}");
        s.aws
            .s3
            .put_object()
            .bucket(ingest)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        // The event time is the object's creation time (to the second): its partition.
        let created = s
            .aws
            .s3
            .head_object()
            .bucket(ingest)
            .key(&key)
            .send()
            .await
            .unwrap()
            .last_modified()
            .map(|t| t.secs())
            .unwrap();
        let local = dir.join(name);
        std::fs::write(&local, body).unwrap();
        let out = dir.join(format!("out-{name}"));
        let check = support::run_deployer(&[
            "check",
            local.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "both",
        ]);
        assert!(check.status.success(), "{check:?}");
        let keys = OutputKeys::new(&key, Timestamp::from_unix(created, 0).unwrap());
        let stem = name.trim_end_matches(".csv");
        let deadline = Instant::now() + Duration::from_secs(120);
        for (remote, local) in [
            (&keys.cleaned, format!("{stem}_cleaned.csv")),
            (&keys.rejected, format!("rejected/{stem}_rejected.csv")),
            (&keys.parquet_cleaned, format!("{stem}.parquet")),
            (
                &keys.parquet_rejected,
                format!("rejected/{stem}_rejected.parquet"),
            ),
        ] {
            let got = get(&s, refined, remote, deadline).await;
            // `check` writes only outputs with rows; the function writes all four.
            match std::fs::read(out.join(&local)) {
                Ok(want) => {
                    assert!(got == want, "{remote} differs from check's {local}");
                    compared += 1;
                }
                Err(_) => assert!(
                    got.starts_with(b"PAR1") || got.iter().filter(|b| **b == b'\n').count() == 1,
                    "{remote}: check wrote nothing, so it must be header-only or an empty table"
                ),
            }
        }
    }
    let qemu = std::process::Command::new("pgrep")
        .args(["-f", "qemu-aarch64-static.*bootstrap.arm64"])
        .output()
        .unwrap();
    let workers = String::from_utf8_lossy(&qemu.stdout).lines().count();
    eprintln!(
        "[arm64] {} files through the arm64 function under qemu in {:.1} s: {compared} outputs byte-identical to `deployer check`; {workers} qemu worker(s) running",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        workers >= 1,
        "no qemu-aarch64 worker: was the x86_64 binary run instead?"
    );
    assert!(compared >= 6);
    s.down(true).await;
}
