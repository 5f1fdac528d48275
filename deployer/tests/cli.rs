//! The `deployer` binary as a user runs it, without AWS: `check`, and config/artifact errors
//! that must stop every command before any network call, on one line, with a non-zero exit.

mod support;

use std::path::Path;
use std::process::Output;

use shared::Processor;
use shared::output::CsvOutputs;
use support::run_deployer as deployer;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sample() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/users.csv"))
}

#[test]
fn check_writes_the_contract_outputs_and_a_summary() {
    let dir = support::scratch_dir("check");
    let out_dir = dir.join("out");
    let out = deployer(&[
        "check",
        sample().to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"records\":4,\"clean\":2,\"rejected\":2,\"reasons\":{\"invalid_email\":1,\"update_before_create\":1}}\n"
    );
    let mut expected = CsvOutputs::new();
    let mut processor = Processor::new();
    processor.feed(&std::fs::read(sample()).unwrap(), &mut expected);
    processor.finish(&mut expected);
    assert_eq!(
        std::fs::read(out_dir.join("users_cleaned.csv")).unwrap(),
        expected.clean
    );
    assert_eq!(
        std::fs::read(out_dir.join("rejected/users_rejected.csv")).unwrap(),
        expected.rejected
    );
}

#[test]
fn check_writes_only_outputs_with_rows_and_removes_stale_ones() {
    let dir = support::scratch_dir("stale");
    let file = dir.join("people.csv");
    let out_dir = dir.join("out");
    let args = [
        "check",
        file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    std::fs::write(&file, "id,name,email,create_ts,update_ts\n1,A,a@b.co,2025-01-01T00:00:00,2025-01-02T00:00:00\n2,,bad,x,y\n").unwrap();
    assert!(deployer(&args).status.success());
    assert!(out_dir.join("rejected/people_rejected.csv").exists());

    // The same name, now all clean: the old rejected output must not linger.
    std::fs::write(
        &file,
        "id,name,email,create_ts,update_ts\n1,A,a@b.co,2025-01-01T00:00:00,2025-01-02T00:00:00\n",
    )
    .unwrap();
    let out = deployer(&args);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "{}: 1 records, 1 clean, 0 rejected",
            file.display()
        )),
        "{text}"
    );
    assert!(out_dir.join("people_cleaned.csv").exists());
    assert!(!out_dir.join("rejected/people_rejected.csv").exists());
    assert!(!out_dir.join("people_cleaned.csv.partial").exists());
}

#[test]
fn check_of_an_unreadable_file_fails_on_one_line_naming_it() {
    for path in ["/nonexistent/users.csv", "/"] {
        let out = deployer(&[
            "check",
            path,
            "--out",
            support::scratch_dir("unreadable").to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{path}");
        let err = stderr(&out);
        assert!(err.starts_with("error: cannot read "), "{err}");
        assert!(err.contains(path), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// Config problems stop every AWS command before any call (the endpoint here is unreachable,
/// so any call would fail differently), on one line naming the file and the field.
#[test]
fn bad_configs_stop_every_command_before_any_call() {
    let dir = support::scratch_dir("badconfig");
    let zip = support::fake_artifact(&dir);
    let good = format!(
        "stack = \"demo\"\n[target]\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9\"\ncredentials = \"emulator\"\n[function]\narchitecture = \"x86_64\"\nartifact = \"{}\"\n",
        zip.display()
    );
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("[function]", "[buckets]\ningest = \"demo-raw\"\n[function]"),
            "`buckets.ingest` equals buckets.raw",
        ),
        (
            good.replace("[function]", "[function]\nmemory_mb = 64"),
            "`function.memory_mb` is 64: must be 128-10240",
        ),
        (
            good.replace("[function]", "[function]\ntimeout_s = 1000"),
            "`function.timeout_s` is 1000: must be 1-900",
        ),
        (
            good.replace("[function]", "[bogus]\n[function]"),
            "unknown field `bogus`",
        ),
        (
            good.replace("[function]", "[buckets]\nraw = \"Bad_Name\"\n[function]"),
            "`buckets.raw` is \"Bad_Name\"",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        for command in ["plan", "up", "down", "status", "smoke"] {
            let out = deployer(&["--config", path.to_str().unwrap(), command]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{command}: {err}");
            assert!(
                err.contains(path.to_str().unwrap()) && err.contains(want),
                "{command}: got {err:?}, want {want:?}"
            );
            assert_eq!(err.lines().count(), 1, "{command}: {err}");
        }
    }
}

#[test]
fn a_wrong_or_missing_artifact_says_to_build() {
    let dir = support::scratch_dir("artifact");
    let zip = support::fake_artifact(&dir);
    let config = |artifact: &Path, arch: &str| {
        let path = dir.join(format!("{arch}.toml"));
        std::fs::write(
            &path,
            format!(
                "stack = \"demo\"\n[target]\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9\"\ncredentials = \"emulator\"\n[function]\narchitecture = \"{arch}\"\nartifact = \"{}\"\n",
                artifact.display()
            ),
        )
        .unwrap();
        path
    };
    let wrong_arch = config(&zip, "arm64");
    let missing = config(&dir.join("nope.zip"), "x86_64");
    for (path, want) in [
        (
            &wrong_arch,
            "`bootstrap` is built for x86_64 but the config says arm64: run `make build`",
        ),
        (&missing, "is missing: run `make build`"),
    ] {
        for command in ["plan", "up"] {
            let out = deployer(&["--config", path.to_str().unwrap(), command]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains(want), "got {err:?}, want {want:?}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
    // The artifact command itself checks a zip.
    let out = deployer(&[
        "artifact",
        zip.to_str().unwrap(),
        "--architecture",
        "x86_64",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("executable x86_64 bootstrap"));
}

#[test]
fn an_unreachable_endpoint_is_one_line_with_a_hint() {
    let dir = support::scratch_dir("unreachable");
    let zip = support::fake_artifact(&dir);
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        format!(
            "stack = \"demo\"\n[target]\nregion = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9\"\ncredentials = \"emulator\"\n[function]\narchitecture = \"x86_64\"\nartifact = \"{}\"\n",
            zip.display()
        ),
    )
    .unwrap();
    let out = deployer(&["--config", path.to_str().unwrap(), "status"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("GetCallerIdentity") && err.contains("make emulator"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
