//! The deployer under faults, against a real emulator (ministack): `up` through a proxy that
//! throttles and drops connections still converges (SDK standard retries, bounded attempts);
//! losing the answer to each create (the emulator did it, the SDK retries it) is harmless;
//! `up` killed after its first creates converges when run again; in strict mode (AWS's
//! refusals the emulator does not make: IAM propagation, updates in progress, names deleted
//! moments ago) `up`, `down` and `up` again converge. Run by `make test`
//! (scripts/e2e.sh) with `--ignored`; `FAULT_PROXY_SEED` replays a run with another seed. The
//! proxy's own tests (protocol, dice, wire behaviour) need no emulator.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output as ProcessOutput, Stdio};
use std::time::{Duration, Instant};

use deployer::artifact::Artifact;
use deployer::aws::{CallCounts, MAX_ATTEMPTS};
use deployer::config::Config;
use deployer::plan::Plan;
use support::fault_proxy::{Decider, FaultProxy, Faults, Protocol, RequestInfo, XorShift};
use support::strict::{Strict, rule};

/// The proxy's seed: `FAULT_PROXY_SEED` when set (to replay a run), else a fixed one.
fn seed() -> u64 {
    std::env::var("FAULT_PROXY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_CAFE)
}

/// The same config, talking to `endpoint` instead.
fn with_endpoint(config: &Config, endpoint: &str) -> Config {
    let mut config = config.clone();
    config.target.endpoint = Some(endpoint.to_owned());
    config
}

fn retries(calls: &CallCounts) -> u64 {
    calls.attempts.saturating_sub(calls.total)
}

fn figures(what: &str, calls: &CallCounts, elapsed: Duration) -> String {
    format!(
        "{what}: {} calls ({} mutating), {} attempts, {} retries, {:.2} s",
        calls.total,
        calls.mutating,
        calls.attempts,
        retries(calls),
        elapsed.as_secs_f64()
    )
}

/// A stack of its own whose config points at a fault proxy in front of the emulator.
struct Proxied {
    test: &'static str,
    endpoint: String,
    proxy: FaultProxy,
    config: Config,
    artifact: Artifact,
}

impl Proxied {
    async fn new(test: &'static str, faults: Faults) -> Proxied {
        let endpoint = support::endpoint();
        let proxy = FaultProxy::start(&endpoint, faults.clone()).await.unwrap();
        let (config, artifact) = support::config(&support::stack_name(test), proxy.url(), "");
        eprintln!(
            "[{test}] stack {} through fault proxy {} → {endpoint}: {faults:?}",
            config.stack,
            proxy.url()
        );
        Proxied {
            test,
            endpoint,
            proxy,
            config,
            artifact,
        }
    }

    /// `up` through the proxy, timed and reported.
    async fn up(&self) -> anyhow::Result<(Plan, CallCounts)> {
        let started = Instant::now();
        let aws = support::client(&self.config).await;
        let applied = support::up_on(&aws, &self.config, &self.artifact).await;
        let calls = aws.calls.snapshot();
        let result = applied
            .map(|plan| (plan, calls.clone()))
            .map_err(|e| e.context(format!("calls so far: {calls:?}")));
        self.report("up", &result, started.elapsed());
        result
    }

    /// `plan` through the proxy, timed and reported.
    async fn plan(&self) -> anyhow::Result<(Plan, CallCounts)> {
        let started = Instant::now();
        let result = support::plan(&self.config, &self.artifact).await;
        self.report("plan", &result, started.elapsed());
        result
    }

    fn report(&self, what: &str, result: &anyhow::Result<(Plan, CallCounts)>, took: Duration) {
        let test = self.test;
        match result {
            Ok((_, calls)) => eprintln!("[{test}] {}", figures(what, calls, took)),
            Err(e) => eprintln!("[{test}] {what} FAILED after {took:.2?}: {e:#}"),
        }
        eprintln!("[{test}] proxy so far: {}", self.proxy.counts());
    }

    /// `down --purge` straight to the emulator.
    async fn cleanup(&self) {
        support::down(&with_endpoint(&self.config, &self.endpoint), true)
            .await
            .unwrap();
    }
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn up_down_and_up_again_converge_through_aws_strict_refusals() {
    let endpoint = support::endpoint();
    // Two seconds of each "not yet"; the invoke config comes a few seconds after the role
    // policy (the function waits for the role first), and the notification after the invoke
    // config, so their windows are longer.
    let rules = Strict {
        destination_refused_after_role_policy: Some(Duration::from_secs(6)),
        notification_waits_for_permission: Some(Duration::from_secs(9)),
        ..Strict::all(Duration::from_secs(2))
    };
    let proxy = FaultProxy::start_strict(&endpoint, Faults::none(), rules)
        .await
        .unwrap();
    let (config, artifact) = support::config(&support::stack_name("strict"), proxy.url(), "");
    let started = Instant::now();
    let say = |what: &str| {
        eprintln!(
            "[strict] {what} at {:.1} s; refusals so far: {:?}",
            started.elapsed().as_secs_f64(),
            proxy.strict_counts()
        )
    };
    let result = async {
        support::up(&config, &artifact).await?;
        say("fresh up done");
        let (plan, _) = support::plan(&config, &artifact).await?;
        assert!(plan.is_empty(), "plan after the fresh up: {plan}");
        let removed = support::down(&config, false).await?;
        assert!(
            removed
                .iter()
                .all(|r| r.deletion == deployer::resources::Deletion::Deleted),
            "{removed:?}"
        );
        say("down done");
        support::up(&config, &artifact).await?;
        say("second up done");
        // An update of memory and code: Lambda refuses the second while the first runs.
        let mut changed = config.clone();
        changed.function.memory_mb = 512;
        let dir = config.source.parent().unwrap().to_owned();
        let zip = support::fake_artifact_of(&dir, "/bin/false");
        let other = Artifact::inspect(&zip, deployer::artifact::Architecture::X86_64).unwrap();
        changed.function.artifact = zip;
        support::up(&changed, &other).await?;
        say("update done");
        let (plan, _) = support::plan(&changed, &other).await?;
        assert!(plan.is_empty(), "plan after the update: {plan}");
        anyhow::Ok(())
    }
    .await;
    let counts = proxy.strict_counts();
    eprintln!("[strict] rule: (requests examined, refused)");
    for (rule, (examined, refused)) in &counts {
        eprintln!("[strict]   {rule}: ({examined}, {refused})");
    }
    support::down(&with_endpoint(&config, &endpoint), true)
        .await
        .unwrap();
    result.unwrap();
    for rule in [
        rule::NOTIFICATION,
        rule::ROLE,
        rule::CONFLICT,
        rule::DESTINATION,
        rule::QUEUE,
        rule::BUCKET_ABORTED,
        rule::BUCKET_NOT_YET,
    ] {
        let (_, refused) = counts.get(rule).copied().unwrap_or_default();
        assert!(
            refused > 0,
            "{rule}: never refused, so never exercised: {counts:?}"
        );
    }
    // The deployer sends no tags with CreateBucket: examined, never refused.
    assert_eq!(
        counts
            .get(rule::BUCKET_TAGS)
            .map(|(examined, refused)| (*examined > 0, *refused)),
        Some((true, 0)),
        "{counts:?}"
    );
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn a_bucket_name_in_another_region_is_named_with_its_region() {
    let endpoint = support::endpoint();
    let stack = support::stack_name("region");
    let rules = Strict {
        bucket_regions: [(format!("{stack}-raw"), "eu-central-1".to_owned())].into(),
        ..Strict::default()
    };
    let proxy = FaultProxy::start_strict(&endpoint, Faults::none(), rules)
        .await
        .unwrap();
    let (config, artifact) = support::config(&stack, proxy.url(), "");
    let err = support::plan(&config, &artifact).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!(
            "s3 bucket {stack}-raw exists in region eu-central-1 (this config targets region us-east-1)"
        )),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn up_converges_through_throttling_and_dropped_connections() {
    // A quarter of all requests faulted, no call faulted more than 3 times: with
    // MAX_ATTEMPTS (6) attempts each, every call can still succeed, whatever the dice say.
    let max_faults_per_call = 3;
    assert!(max_faults_per_call < MAX_ATTEMPTS);
    let s = Proxied::new("faults", Faults::mixed(seed(), 25, max_faults_per_call)).await;
    let started = Instant::now();
    let applied = s.up().await;
    let planned = s.plan().await;
    let took = started.elapsed();
    let counts = s.proxy.counts();
    eprintln!(
        "[faults] answers lost after forwarding: {:?}; the retries were answered: {:?}",
        counts.lost_answers, counts.retried_after_lost_answer
    );
    // Cleanup first, so a failed assertion leaves nothing behind.
    s.cleanup().await;

    let (applied, up_calls) =
        applied.unwrap_or_else(|e| panic!("up through the fault proxy failed: {e:#}"));
    assert!(!applied.is_empty(), "up from empty had nothing to do");
    let (after, plan_calls) =
        planned.unwrap_or_else(|e| panic!("plan through the fault proxy failed: {e:#}"));
    assert!(after.is_empty(), "plan after up is not empty:\n{after}");
    assert!(
        counts.kinds_missing().is_empty(),
        "fault kinds never injected: {:?} ({counts})",
        counts.kinds_missing()
    );
    assert!(
        up_calls.attempts > up_calls.total,
        "up saw no retry: {up_calls:?}"
    );
    assert_eq!(counts.upstream_errors, 0, "{counts}");
    eprintln!(
        "[faults] FIGURES seed {:#x}: {} requests, {} faults ({} SlowDown, {} ThrottlingException, \
         {} Throttling, {} dropped before, {} dropped after), retries {} by up + {} by plan, \
         up + plan {:.2} s",
        seed(),
        counts.requests,
        counts.faults(),
        counts.s3_slow_down,
        counts.json_throttling,
        counts.query_throttling,
        counts.dropped_before,
        counts.dropped_after,
        retries(&up_calls),
        retries(&plan_calls),
        took.as_secs_f64()
    );
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn up_converges_when_the_first_answer_to_every_mutating_call_is_lost() {
    // Every create and put is executed by the emulator, its answer lost, then retried by the
    // SDK: each must tolerate finding its own work already done. A call that does not makes
    // `up` fail; `up` is then run again (the proxy loses each call's answer once only) to go
    // on to the next calls, so one run names every call that does not tolerate it.
    let faults = Faults {
        lose_first_answer_of_each_mutating_call: true,
        max_faults_per_call: 1,
        ..Faults::none()
    };
    let s = Proxied::new("lostanswers", faults).await;
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut retried = 0;
    let mut converged = false;
    for _ in 0..8 {
        match s.up().await {
            Ok((_, calls)) => {
                retried += retries(&calls);
                converged = true;
                break;
            }
            // Without the "calls so far" context: the failed call and its error.
            Err(e) => failures.push(
                e.chain()
                    .skip(1)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(": "),
            ),
        }
    }
    let planned = s.plan().await;
    let took = started.elapsed();
    let counts = s.proxy.counts();
    eprintln!(
        "[lostanswers] answers lost after forwarding ({}): {:?}",
        counts.dropped_after, counts.lost_answers
    );
    eprintln!(
        "[lostanswers] FIGURES: {} requests, {} answers lost, {} failed up runs, {:.2} s",
        counts.requests,
        counts.dropped_after,
        failures.len(),
        took.as_secs_f64()
    );
    eprintln!(
        "[lostanswers] the emulator's answer to each retry after a lost answer: {:?}",
        counts.retried_after_lost_answer
    );
    s.cleanup().await;

    // Lost calls whose retry never came: cancelled when a concurrent call failed first.
    let unverified: Vec<&String> = counts
        .lost_answers
        .keys()
        .filter(|op| !counts.retried_after_lost_answer.contains_key(*op))
        .collect();
    assert!(
        failures.is_empty(),
        "up failed when the answer to a mutating call was lost (the emulator had executed it, \
         the SDK retried it): the deployer does not tolerate its own work being already done:\n  \
         {}\nthe retries the emulator refused (each must be tolerated): {:?}\n\
         not verified in this run (retry cancelled by another failure): {unverified:?}",
        failures.join("\n  "),
        counts.refused_retries()
    );
    assert!(converged);
    let (after, _) = planned.unwrap_or_else(|e| panic!("plan failed: {e:#}"));
    assert!(after.is_empty(), "plan after up is not empty:\n{after}");
    for operation in ["CreateRole", "CreateLogGroup", "CreateQueue"] {
        assert!(
            counts.lost_answers.contains_key(operation),
            "the answer to {operation} was never lost: {:?}",
            counts.lost_answers
        );
    }
    for shape in ["POST /2015-03-31/functions", "/policy"] {
        assert!(
            counts.lost_answers.keys().any(|k| k.ends_with(shape)),
            "no lost answer to `{shape}`: {:?}",
            counts.lost_answers
        );
    }
    // One retry per lost answer, no more.
    assert_eq!(retried, counts.dropped_after);
}

/// The deployer binary with `args`, on a config file (its endpoint, not the environment's).
fn deployer(config: &Path, args: &[&str]) -> Command {
    let mut command = support::deployer_command();
    command.arg("--config").arg(config).args(args);
    command
}

fn run(config: &Path, args: &[&str]) -> (ProcessOutput, Duration) {
    let started = Instant::now();
    let out = deployer(config, args).output().unwrap();
    (out, started.elapsed())
}

fn text(out: &ProcessOutput) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `plan --output json`: the exit code and the (kind, name, action) of every resource.
fn plan_json(config: &Path) -> (Option<i32>, Vec<(String, String, String)>) {
    let (out, _) = run(config, &["--output", "json", "plan"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("plan printed no JSON ({e}):\n{}", text(&out)));
    let resources = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (field("kind"), field("name"), field("action"))
        })
        .collect();
    (out.status.code(), resources)
}

#[test]
#[ignore = "needs ministack: run by `make test`"]
fn up_killed_after_its_first_mutating_calls_converges_on_rerun() {
    let endpoint = support::endpoint();
    let (config, _) = support::config(&support::stack_name("killed"), &endpoint, "");
    let file = config.source.clone();
    eprintln!("[killed] stack {} against {endpoint}", config.stack);

    // 1. `up`, killed (SIGKILL) as soon as it reports its first created resource.
    let started = Instant::now();
    let mut child = deployer(&file, &["up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let killed = loop {
        match lines.next() {
            Some(Ok(line)) => {
                let created = line.contains("+ created");
                seen.push(line);
                if created {
                    child.kill().unwrap();
                    break true;
                }
            }
            Some(Err(_)) | None => break false,
        }
    };
    let status = child.wait().unwrap();
    let killed_after = started.elapsed();
    assert!(
        killed,
        "up ended ({status}) before reporting a created resource:\n{}",
        seen.join("\n")
    );
    eprintln!(
        "[killed] up killed after {:.2} s, at: {}",
        killed_after.as_secs_f64(),
        seen.last().unwrap()
    );

    // 2. Partially deployed: some resources exist, the plan is not empty (exit 2).
    let (code, resources) = plan_json(&file);
    let pending: Vec<String> = resources
        .iter()
        .filter(|(_, _, action)| action != "unchanged")
        .map(|(kind, name, action)| format!("{action} {kind} {name}"))
        .collect();
    eprintln!(
        "[killed] plan after the kill: {} of {} resources pending: {pending:?}",
        pending.len(),
        resources.len()
    );
    assert_eq!(code, Some(2), "plan after a killed up should have changes");
    assert!(
        resources.iter().all(|(_, _, action)| action != "conflict"),
        "a resource left by the killed up is not recognised as ours: {resources:?}"
    );
    assert!(
        pending.len() < resources.len(),
        "nothing was left by the killed up: {pending:?}"
    );

    // 3. `up` again, to completion; then `plan` is empty and a further `up` makes no write.
    let (out, rerun_time) = run(&file, &["up"]);
    assert!(
        out.status.success(),
        "up after the kill failed:\n{}",
        text(&out)
    );
    eprintln!(
        "[killed] re-run up: {:.2} s:\n{}",
        rerun_time.as_secs_f64(),
        String::from_utf8_lossy(&out.stdout).trim_end()
    );
    let (code, resources) = plan_json(&file);
    assert_eq!(code, Some(0), "plan after the re-run: {resources:?}");
    let (out, _) = run(&file, &["--output", "json", "up"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["mutating_calls"].as_u64(),
        Some(0),
        "a further up made writes: {}",
        json["calls"]
    );
    eprintln!("[killed] further up: 0 mutating calls ({})", json["calls"]);

    let (out, _) = run(&file, &["down", "--purge"]);
    assert!(out.status.success(), "{}", text(&out));
    let (_, resources) = plan_json(&file);
    assert!(
        resources.iter().all(|(_, _, action)| action == "create"),
        "left after down: {resources:?}"
    );
}

// The proxy's own logic, without an emulator.

#[test]
fn the_proxy_tells_the_protocol_from_the_request() {
    use hyper::header::{HeaderMap, HeaderValue};
    let auth = |service: &str| {
        let mut h = HeaderMap::new();
        let value = format!(
            "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
        );
        h.insert("authorization", HeaderValue::from_str(&value).unwrap());
        h
    };
    let mut logs = auth("logs");
    logs.insert(
        "x-amz-target",
        HeaderValue::from_static("Logs_20140328.CreateLogGroup"),
    );
    assert_eq!(Protocol::of("/", &logs, b"{}"), Protocol::AwsJson);
    let mut iam = auth("iam");
    iam.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    assert_eq!(
        Protocol::of("/", &iam, b"Action=CreateRole&Version=2010-05-08"),
        Protocol::Query
    );
    assert_eq!(
        Protocol::of("/2015-03-31/functions/f/policy", &auth("lambda"), b""),
        Protocol::RestJson
    );
    // Unsigned, told by the path alone.
    assert_eq!(
        Protocol::of(
            "/2019-09-25/functions/f/event-invoke-config",
            &HeaderMap::new(),
            b""
        ),
        Protocol::RestJson
    );
    assert_eq!(Protocol::of("/my-bucket", &auth("s3"), b""), Protocol::S3);
    assert_eq!(
        Protocol::of("/2015-bucket", &HeaderMap::new(), b""),
        Protocol::S3
    );
    assert_eq!(
        Protocol::of("/2015-03-31/key", &auth("s3"), b""),
        Protocol::S3
    );
    assert_eq!(
        Protocol::of("/2015-03-31", &HeaderMap::new(), b""),
        Protocol::S3
    );

    let request = RequestInfo::of(
        &hyper::Method::PUT,
        "/my-bucket",
        "tagging",
        &auth("s3"),
        b"",
    );
    assert_eq!(request.call_key, "PUT /my-bucket?tagging");
    assert!(request.mutating);
    let request = RequestInfo::of(&hyper::Method::POST, "/", "", &iam, b"Action=GetRole");
    assert_eq!(
        (request.operation.as_str(), request.mutating),
        ("GetRole", false)
    );
}

#[test]
fn the_proxy_faults_a_seeded_share_and_never_one_call_too_often() {
    let request = |n: u32| {
        let mut headers = hyper::header::HeaderMap::new();
        headers.insert(
            "amz-sdk-invocation-id",
            hyper::header::HeaderValue::from_str(&format!("call-{}", n / 6)).unwrap(),
        );
        RequestInfo::of(&hyper::Method::GET, "/bucket", "", &headers, b"")
    };
    let decisions = |seed| {
        let mut decider = Decider::new(Faults::mixed(seed, 25, 3));
        (0..6000)
            .map(|n| decider.decide(&request(n)))
            .collect::<Vec<_>>()
    };
    let first = decisions(7);
    assert_eq!(
        first,
        decisions(7),
        "the same seed must give the same faults"
    );
    assert_ne!(first, decisions(8));
    // The first S3 request is always throttled.
    assert_eq!(
        first[0],
        support::fault_proxy::Action::Throttle(Protocol::S3)
    );
    let faulted = first
        .iter()
        .filter(|a| **a != support::fault_proxy::Action::Forward)
        .count();
    assert!((1200..1800).contains(&faulted), "{faulted} of 6000 faulted");
    for call in first.chunks(6) {
        let faults = call
            .iter()
            .filter(|a| **a != support::fault_proxy::Action::Forward)
            .count();
        assert!(faults <= 3, "{call:?}");
    }
    let mut rng = XorShift::new(0);
    assert_ne!(rng.next_u64(), rng.next_u64());
}

/// One raw HTTP/1.1 request to `url`; everything the server sent before closing.
async fn raw_request(url: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn the_proxy_throttles_forwards_and_drops_on_the_wire() {
    let always = |throttle, before, after| Faults {
        throttle_percent: throttle,
        drop_before_percent: before,
        drop_after_percent: after,
        ..Faults::none()
    };
    // A proxy that throttles everything stands in for the emulator.
    let upstream = FaultProxy::start("http://127.0.0.1:9", always(100, 0, 0))
        .await
        .unwrap();
    let s3 = "GET /bucket?tagging HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let query = "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 21\r\n\r\n\
                 Action=GetCallerIdent";
    let json = "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                X-Amz-Target: Logs_20140328.CreateLogGroup\r\nContent-Length: 2\r\n\r\n{}";

    let answer = raw_request(upstream.url(), s3).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("<Code>SlowDown</Code>"), "{answer}");
    let answer = raw_request(upstream.url(), query).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>Throttling</Code>"), "{answer}");
    let answer = raw_request(upstream.url(), json).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-amzn-errortype: throttlingexception"),
        "{answer}"
    );

    // Forwarded: the upstream's answer comes back.
    let clean = FaultProxy::start(upstream.url(), Faults::none())
        .await
        .unwrap();
    let answer = raw_request(clean.url(), s3).await;
    assert!(answer.contains("<Code>SlowDown</Code>"), "{answer}");
    // Dropped before: no answer, and the upstream never saw it.
    let seen = upstream.counts().requests;
    let before = FaultProxy::start(upstream.url(), always(0, 100, 0))
        .await
        .unwrap();
    assert_eq!(raw_request(before.url(), s3).await, "");
    assert_eq!(upstream.counts().requests, seen);
    // Dropped after: no answer, but the upstream did get the request.
    let after = FaultProxy::start(upstream.url(), always(0, 0, 100))
        .await
        .unwrap();
    assert_eq!(raw_request(after.url(), s3).await, "");
    assert_eq!(upstream.counts().requests, seen + 1);

    let counts = (clean.counts(), before.counts(), after.counts());
    assert_eq!(
        (
            counts.0.forwarded,
            counts.1.dropped_before,
            counts.2.dropped_after
        ),
        (1, 1, 1),
        "{counts:?}"
    );
    assert_eq!(
        counts.2.lost_answers.keys().collect::<Vec<_>>(),
        ["GET /bucket?tagging"]
    );
}
