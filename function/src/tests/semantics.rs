//! What real S3 does that the emulator forgives, held against the handler through the fake
//! store: object versions and pinned reads, newest-version-wins under late, duplicate and
//! concurrent delivery (two invocations interleaved at every store call), S3's size, part and
//! key limits, the Lambda time budget and deadline, and which failures are retried versus
//! sent to the failed-events queue.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::fake::{Gate, Limits};
use crate::newest::Stamp;
use crate::store::ObjectStore;

const KEY: &str = "in/users.csv";
const OUTPUTS: [&str; 4] = [
    "curated/users/date=2025-06-24/hour=15/in/users.parquet",
    "curated/users_rejected/date=2025-06-24/hour=15/in/users.parquet",
    "refined/date=2025-06-24/hour=15/in/users_cleaned.csv",
    "refined/date=2025-06-24/hour=15/in/rejected/users_rejected.csv",
];

/// A store whose ingest and raw buckets are versioned, as the deployer makes them.
fn versioned() -> FakeStore {
    FakeStore::new().versioned(INGEST).versioned(RAW)
}

/// A second, different file: every output differs from `SAMPLE`'s.
fn other_file() -> Vec<u8> {
    b"id,name,email,create_ts,update_ts\n7,Ann,ann@x.io,2025-01-01T00:00:00Z,2025-01-02T00:00:00Z\n8,,bad,x,y\n".to_vec()
}

/// The four outputs `input` must leave, in `OUTPUTS` order.
fn expected(input: &[u8], upload: UploadConfig) -> [Vec<u8>; 4] {
    let (clean, rejected, _) = reference(input);
    let (pq_clean, pq_rejected) = parquet_reference(input, row_groups(upload));
    [pq_clean, pq_rejected, clean, rejected]
}

/// The outputs at `OUTPUTS` and the version id each is stamped with.
fn outputs(store: &FakeStore) -> Vec<Option<(Bytes, Option<String>)>> {
    OUTPUTS
        .iter()
        .map(|key| {
            let info = store.info(REFINED, key)?;
            let stamp = Stamp::from_metadata(&info.metadata).expect("every output is stamped");
            Some((store.object(REFINED, key)?, stamp.version_id))
        })
        .collect()
}

/// Every output exists, is `input`'s and is stamped with `version`.
fn assert_outputs_of(store: &FakeStore, input: &[u8], version: &str, upload: UploadConfig) {
    let want = expected(input, upload);
    for (i, got) in outputs(store).into_iter().enumerate() {
        let (bytes, stamp) = got.unwrap_or_else(|| panic!("{} missing", OUTPUTS[i]));
        assert!(
            bytes == want[i],
            "{} is not from version {version}",
            OUTPUTS[i]
        );
        assert_eq!(stamp.as_deref(), Some(version), "{}", OUTPUTS[i]);
    }
}

/// Two versions of `KEY` in a versioned store: (store, old version, new version, old event,
/// new event); the new one is current and its event has the larger sequencer.
fn two_versions(old: &[u8], new: &[u8]) -> (FakeStore, String, String, Value, Value) {
    let store = versioned().with_min_part_size(SMALL_PARTS.part_size);
    let (v1, _) = store.insert(INGEST, KEY, old.to_vec());
    let e1 = event_of(vec![object_record(&store, INGEST, KEY, T)]);
    let (v2, _) = store.insert(INGEST, KEY, new.to_vec());
    let e2 = event_of(vec![object_record(&store, INGEST, KEY, T)]);
    (
        store,
        v1.expect("versioned"),
        v2.expect("versioned"),
        e1,
        e2,
    )
}

#[tokio::test]
async fn an_event_copies_and_reads_the_version_it_names_not_the_current_one() {
    let (store, v1, _, e1, _) = two_versions(SAMPLE, &other_file());
    let report = run(&store, &e1).await.expect("processed");
    assert_eq!(report.files[0].version_id.as_deref(), Some(v1.as_str()));
    assert_eq!(store.object(RAW, KEY).as_deref(), Some(SAMPLE));
    assert_outputs_of(&store, SAMPLE, &v1, UploadConfig::default());
    let pins: Vec<_> = store
        .log()
        .into_iter()
        .filter(|c| c.bucket == INGEST || c.op == Operation::CopyObject)
        .map(|c| (c.op, c.pin))
        .collect();
    let pinned = Some(format!("versionId={v1}"));
    assert_eq!(
        pins,
        [
            (Operation::CopyObject, pinned.clone()),
            (Operation::GetObject, pinned)
        ]
    );
}

/// The issue's reproduction: two versions of one key, the newer version's event processed
/// first, then the older one's.
#[tokio::test]
async fn newer_event_first_then_the_older_leaves_both_raw_copies_and_the_newer_outputs() {
    let newer = other_file();
    let (store, _, v2, e1, e2) = two_versions(SAMPLE, &newer);
    run(&store, &e2).await.expect("newer");
    let before = outputs(&store);
    store.clear_log();
    let report = run(&store, &e1).await.expect("older: no error");
    assert!(report.files.is_empty());
    assert_eq!(report.superseded.len(), 1, "{report:?}");
    assert_eq!(outputs(&store), before, "the newer outputs are untouched");
    assert_outputs_of(&store, &newer, &v2, UploadConfig::default());
    assert!(
        store.writes_to(REFINED).is_empty(),
        "{:?}",
        store.writes_to(REFINED)
    );
    let raw: Vec<Bytes> = store.versions(RAW, KEY);
    assert_eq!(raw.len(), 2);
    assert!(raw.contains(&Bytes::from(newer)) && raw.contains(&Bytes::from_static(SAMPLE)));
}

#[tokio::test]
async fn older_event_first_then_the_newer_replaces_every_output() {
    let newer = other_file();
    let (store, v1, v2, e1, e2) = two_versions(SAMPLE, &newer);
    run(&store, &e1).await.expect("older");
    assert_outputs_of(&store, SAMPLE, &v1, UploadConfig::default());
    run(&store, &e2).await.expect("newer");
    assert_outputs_of(&store, &newer, &v2, UploadConfig::default());
    // A duplicate of the older event, late: nothing changes.
    let before = outputs(&store);
    let report = run(&store, &e1).await.expect("late duplicate");
    assert_eq!(report.superseded.len(), 1);
    assert_eq!(outputs(&store), before);
}

/// Runs `a` until it is held at its `k`-th store call (or done), then `b` to its end, then
/// the rest of `a`: every interleaving of two invocations at a store call is some `k`.
async fn interleaved(
    store: &FakeStore,
    upload: UploadConfig,
    a: &Value,
    b: &Value,
    k: usize,
) -> (
    Result<EventReport, HandlerError>,
    Result<EventReport, HandlerError>,
) {
    let gate = Gate::pause_after(k);
    let first = handler(&store.gated(&gate), config(upload));
    let a = a.clone();
    let task = tokio::spawn(async move { first.handle(&a, &Invocation::new("a")).await });
    while !gate.holding() && !task.is_finished() {
        tokio::task::yield_now().await;
    }
    let second = handler(store, config(upload))
        .handle(b, &Invocation::new("b"))
        .await;
    gate.open();
    let first = task.await.expect("the first invocation did not panic");
    (first, second)
}

/// Store calls one run of `ev` makes on a fresh store made by `setup`.
async fn calls_of(setup: &dyn Fn() -> (FakeStore, Value, Value), pick_old: bool) -> usize {
    let (store, e1, e2) = setup();
    let gate = Gate::default();
    let ev = if pick_old { e1 } else { e2 };
    handler(&store.gated(&gate), config(SMALL_PARTS))
        .handle(&ev, &Invocation::new("count"))
        .await
        .expect("solo run");
    gate.passed()
}

#[tokio::test]
async fn two_versions_interleaved_at_every_store_call_end_with_the_newer_outputs() {
    let big_old = generate(3_000, 5);
    let big_new = generate(3_500, 4);
    for (name, old, new) in [
        ("single puts", SAMPLE.to_vec(), other_file()),
        ("multipart", big_old, big_new),
    ] {
        let setup = || {
            let (store, _, _, e1, e2) = two_versions(&old, &new);
            (store, e1, e2)
        };
        for older_first in [true, false] {
            let n = calls_of(&setup, older_first).await;
            assert!(n > 8, "{name}: {n} calls");
            for k in 0..=n {
                let (store, e1, e2) = setup();
                let v2 = store
                    .info(INGEST, KEY)
                    .and_then(|i| i.version_id)
                    .expect("v2");
                let (a, b) = if older_first { (&e1, &e2) } else { (&e2, &e1) };
                let (ra, rb) = interleaved(&store, SMALL_PARTS, a, b, k).await;
                let case = format!(
                    "{name}, {} held at call {k} of {n}",
                    if older_first { "older" } else { "newer" }
                );
                let (newer, older) = if older_first { (rb, ra) } else { (ra, rb) };
                let newer = newer.unwrap_or_else(|e| panic!("{case}: newer failed: {e}"));
                let older = older.unwrap_or_else(|e| panic!("{case}: older failed: {e}"));
                assert_eq!(
                    newer.files.len(),
                    1,
                    "{case}: the newer is always processed"
                );
                assert_eq!(
                    older.files.len() + older.superseded.len(),
                    1,
                    "{case}: the older is processed or superseded: {older:?}"
                );
                assert_outputs_of(&store, &new, &v2, SMALL_PARTS);
                let raw = store.versions(RAW, KEY);
                assert!(
                    raw.contains(&Bytes::from(old.clone()))
                        && raw.contains(&Bytes::from(new.clone())),
                    "{case}: both raw copies"
                );
                assert_eq!(store.open_uploads(), 0, "{case}: an upload was left open");
            }
        }
    }
}

#[tokio::test]
async fn the_same_event_delivered_twice_at_once_leaves_one_set_of_outputs() {
    let input = generate(3_000, 5);
    let setup = || {
        let store = versioned().with_min_part_size(SMALL_PARTS.part_size);
        let (v, _) = store.insert(INGEST, KEY, input.clone());
        let ev = event_of(vec![object_record(&store, INGEST, KEY, T)]);
        (store, v.expect("versioned"), ev)
    };
    let (store, _, ev) = setup();
    let gate = Gate::default();
    handler(&store.gated(&gate), config(SMALL_PARTS))
        .handle(&ev, &Invocation::new("count"))
        .await
        .expect("solo");
    let n = gate.passed();
    for k in 0..=n {
        let (store, v, ev) = setup();
        let (a, b) = interleaved(&store, SMALL_PARTS, &ev, &ev, k).await;
        assert_eq!(a.expect("a").files.len(), 1, "held at {k}");
        assert_eq!(b.expect("b").files.len(), 1, "held at {k}");
        assert_outputs_of(&store, &input, &v, SMALL_PARTS);
        assert_eq!(store.open_uploads(), 0);
    }
}

#[tokio::test]
async fn a_record_without_a_sequencer_is_ordered_by_the_current_version() {
    // `deployer reprocess` builds records with no sequencer: a replay of the version the
    // outputs came from rewrites them; an older version does not win over newer outputs.
    let newer = other_file();
    let (store, v1, v2, e1, e2) = two_versions(SAMPLE, &newer);
    let without_sequencer = |ev: &Value| {
        let mut ev = ev.clone();
        ev["Records"][0]["s3"]["object"]
            .as_object_mut()
            .expect("object")
            .remove("sequencer");
        ev
    };
    run(&store, &e1).await.expect("older, real event");
    assert_outputs_of(&store, SAMPLE, &v1, UploadConfig::default());
    // A reprocess of the current (newer) version replaces outputs of an older one.
    run(&store, &without_sequencer(&e2))
        .await
        .expect("reprocess v2");
    assert_outputs_of(&store, &newer, &v2, UploadConfig::default());
    // A replay of exactly that version rewrites them.
    store.clear_log();
    let report = run(&store, &without_sequencer(&e2))
        .await
        .expect("replay v2");
    assert_eq!(report.files.len(), 1);
    assert!(!store.writes_to(REFINED).is_empty(), "a replay rewrites");
    assert_outputs_of(&store, &newer, &v2, UploadConfig::default());
    // A sequencer-less record of the older version is superseded.
    let report = run(&store, &without_sequencer(&e1))
        .await
        .expect("old reprocess");
    assert_eq!(report.superseded.len(), 1, "{report:?}");
    assert_outputs_of(&store, &newer, &v2, UploadConfig::default());
}

#[tokio::test]
async fn a_replaced_unversioned_object_or_a_deleted_version_is_gone_not_an_error() {
    // Unversioned: the event's ETag pins the bytes; a new upload before processing means the
    // version the event names is gone.
    let store = FakeStore::new();
    store.insert(INGEST, KEY, SAMPLE);
    let ev = event(&store, &[KEY]);
    store.insert(INGEST, KEY, other_file());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let report = Handler::new(
        store.clone(),
        FakeQueue::default(),
        config(UploadConfig::default()),
        MetricsSink::Memory(lines.clone()),
    )
    .handle(&ev, &Invocation::new("r"))
    .await
    .expect("gone is not an error");
    assert_eq!(report.gone.len(), 1, "{report:?}");
    assert!(report.gone[0].why.contains("ETag"), "{:?}", report.gone[0]);
    assert!(store.objects(RAW).is_empty() && store.objects(REFINED).is_empty());
    let emf: Value = serde_json::from_str(&lines.lock().expect("lock")[0]).expect("emf");
    assert_eq!(emf["VersionsGone"], 1);
    assert_eq!(emf["RecordsIn"], 0);

    // Versioned: the version was deleted (an expired noncurrent version, say).
    let (store, v1, _, e1, _) = two_versions(SAMPLE, &other_file());
    store.delete_version(INGEST, KEY, &v1);
    let report = run(&store, &e1).await.expect("gone");
    assert_eq!(report.gone.len(), 1);
    assert!(report.gone[0].why.contains(&v1));
    assert!(store.objects(REFINED).is_empty());

    // And a key that is not there at all.
    let store = versioned();
    let report = run(&store, &event_of(vec![record(INGEST, "nothing.csv", T)]))
        .await
        .expect("gone");
    assert_eq!(report.gone.len(), 1);
}

#[tokio::test]
async fn a_minimal_record_is_processed_pinned_to_the_version_it_finds() {
    let store = versioned();
    let (v, _) = store.insert(INGEST, KEY, SAMPLE);
    let v = v.expect("versioned");
    let minimal = json!({"Records": [{
        "eventTime": T,
        "s3": {"bucket": {"name": INGEST}, "object": {"key": KEY}},
    }]});
    let report = run(&store, &minimal).await.expect("processed");
    assert_eq!(report.files.len(), 1);
    assert_outputs_of(&store, SAMPLE, &v, UploadConfig::default());
    let log = store.log();
    assert_eq!(
        log[0].op,
        Operation::HeadObject,
        "it asks what is current first"
    );
    let pin = Some(format!("versionId={v}"));
    assert!(
        log.iter()
            .filter(|c| matches!(c.op, Operation::CopyObject | Operation::GetObject))
            .all(|c| c.pin == pin),
        "{log:?}"
    );
}

#[tokio::test]
async fn s3_test_events_are_skipped_and_other_payloads_go_to_the_queue_whole() {
    let store = FakeStore::new();
    let queue = FakeQueue::default();
    let h = Handler::new(
        store.clone(),
        queue.clone(),
        config(UploadConfig::default()),
        MetricsSink::Discard,
    );
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": T,
                            "Bucket": INGEST, "RequestId": "R", "HostId": "H"});
    let report = h
        .handle(&test_event, &Invocation::new("t"))
        .await
        .expect("no error");
    assert!(report.test_event);
    assert!(store.log().is_empty() && queue.messages().is_empty());

    let junk = json!({"hello": "world"});
    let report = h
        .handle(&junk, &Invocation::new("j"))
        .await
        .expect("a permanent failure is not an invocation error");
    assert_eq!(report.failed.len(), 1);
    let messages = queue.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["reason"], "unparseable_event");
    assert_eq!(messages[0]["record"], junk);
    assert_eq!(messages[0]["is_record"], false);
}

#[tokio::test]
async fn an_output_key_over_the_limit_fails_permanently_with_the_raw_copy_made() {
    let long = format!("in/{}.csv", "k".repeat(985));
    assert!(long.len() < 1024, "the source key itself is fine");
    let store = versioned();
    store.insert(INGEST, &long, SAMPLE);
    let ev = event(&store, &[long.as_str()]);
    let queue = FakeQueue::default();
    let report = Handler::new(
        store.clone(),
        queue.clone(),
        config(UploadConfig::default()),
        MetricsSink::Discard,
    )
    .handle(&ev, &Invocation::new("long"))
    .await
    .expect("permanent failures do not fail the invocation");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].reason, "output_key_too_long");
    assert_eq!(
        store.object(RAW, &long).as_deref(),
        Some(SAMPLE),
        "raw copy made"
    );
    assert!(
        store.log().iter().all(|c| c.bucket != REFINED),
        "nothing was written, or even asked, of the refined bucket"
    );
    let messages = queue.messages();
    assert_eq!(messages.len(), 1, "exactly one message");
    let m = &messages[0];
    assert_eq!(m["reason"], "output_key_too_long");
    assert_eq!(m["key"], long);
    assert!(
        m["message"]
            .as_str()
            .unwrap_or_default()
            .contains("over S3's 1024-byte limit"),
        "{m}"
    );
    assert_eq!(m["record"]["s3"]["object"]["key"], long);
    assert!(m["version_id"].is_string() && m["sequencer"].is_string());
    // The fake itself refuses such a key, so a handler that wrote it would fail this test.
    let refused = store
        .head_object(REFINED, &"x".repeat(1025), &crate::store::Pin::Current)
        .await
        .expect_err("over the key limit");
    assert_eq!(refused.code.as_deref(), Some("KeyTooLongError"));
}

#[tokio::test]
async fn permanent_errors_go_to_the_queue_and_transient_ones_fail_the_invocation() {
    for (code, permanent) in [
        ("AccessDenied", true),
        ("InvalidRequest", true),
        ("NoSuchBucket", true),
        ("SlowDown", false),
        ("InternalError", false),
        ("ServiceUnavailable", false),
    ] {
        let store = versioned();
        store.insert(INGEST, KEY, SAMPLE);
        let ev = event(&store, &[KEY]);
        store.inject(Fault::Fail {
            op: Operation::GetObject,
            nth: 1,
            code,
        });
        let queue = FakeQueue::default();
        let result = Handler::new(
            store.clone(),
            queue.clone(),
            config(UploadConfig::default()),
            MetricsSink::Discard,
        )
        .handle(&ev, &Invocation::new("c"))
        .await;
        assert!(
            store.object(RAW, KEY).is_some(),
            "{code}: the raw copy comes first"
        );
        assert!(store.objects(REFINED).is_empty(), "{code}");
        if permanent {
            let report = result.unwrap_or_else(|e| panic!("{code}: {e}"));
            assert_eq!(report.failed[0].reason, format!("s3.{code}"));
            assert_eq!(queue.messages().len(), 1, "{code}");
        } else {
            assert!(result.is_err(), "{code}: Lambda must retry it");
            assert!(queue.messages().is_empty(), "{code}");
        }
    }
    // A permanent failure that cannot reach the queue fails the invocation instead, so
    // Lambda's on-failure destination gets it.
    for unreachable in [true, false] {
        let store = versioned();
        store.insert(INGEST, KEY, SAMPLE);
        let ev = event(&store, &[KEY]);
        store.inject(Fault::Fail {
            op: Operation::GetObject,
            nth: 1,
            code: "AccessDenied",
        });
        let queue = if unreachable {
            FakeQueue::default()
        } else {
            FakeQueue::unconfigured()
        };
        if unreachable {
            queue.fail_next("AWS.SimpleQueueService.NonExistentQueue");
        }
        let err = Handler::new(
            store,
            queue,
            config(UploadConfig::default()),
            MetricsSink::Discard,
        )
        .handle(&ev, &Invocation::new("q"))
        .await
        .expect_err("the event must not be lost");
        let HandlerError::Records { first, .. } = err;
        assert!(matches!(first, FileError::Queue { .. }), "{first}");
    }
}

#[tokio::test]
async fn a_source_over_the_copy_limit_is_copied_in_parts_pinned_to_its_version() {
    const KIB: u64 = 1024;
    let old = generate(6_000, 5);
    let (store, v1, _, e1, _) = two_versions(&old, &other_file());
    let store = store.with_limits(Limits {
        max_copy_source: 256 * KIB,
        min_part: 64 * KIB,
        ..Limits::S3
    });
    let cfg = Config {
        copy: CopyConfig {
            max_single_copy: 256 * KIB,
            min_part: 64 * KIB,
            max_parts: 10_000,
            parallel: 3,
        },
        ..config(SMALL_PARTS)
    };
    handler(&store, cfg)
        .handle(&e1, &Invocation::new("big"))
        .await
        .expect("copied");
    assert_eq!(store.object(RAW, KEY).as_deref(), Some(&old[..]));
    assert_eq!(
        store.calls(Operation::CopyObject),
        0,
        "over the limit: no CopyObject"
    );
    let parts: Vec<_> = store
        .log()
        .into_iter()
        .filter(|c| c.op == Operation::UploadPartCopy)
        .collect();
    assert_eq!(parts.len() as u64, (old.len() as u64).div_ceil(64 * KIB));
    let pin = Some(format!("versionId={v1}"));
    assert!(parts.iter().all(|c| c.pin == pin), "{parts:?}");
    // The raw copy keeps the uploader's headers, as CopyObject does.
    let info = store.info(RAW, KEY).expect("raw");
    assert_eq!(info.content_type.as_deref(), Some("text/csv"));
    assert_eq!(
        info.metadata.get("uploader").map(String::as_str),
        Some("third-party")
    );

    // With a handler that tries one CopyObject anyway, the fake refuses it as S3 would, and
    // that refusal is permanent.
    let (store, _, _, e1, _) = two_versions(&old, &other_file());
    let store = store.with_limits(Limits {
        max_copy_source: 256 * KIB,
        ..Limits::S3
    });
    let report = handler(&store, config(SMALL_PARTS))
        .handle(&e1, &Invocation::new("refused"))
        .await
        .expect("permanent");
    assert_eq!(report.failed[0].reason, "s3.InvalidRequest");
}

#[tokio::test]
async fn no_output_ever_needs_more_parts_than_the_limit() {
    // Rows of five empty fields: the rejected CSV is ~17 times the input.
    let mut input = b"id,name,email,create_ts,update_ts\n".to_vec();
    while input.len() < 200_000 {
        input.extend_from_slice(b",,,,\n");
    }
    let upload = UploadConfig {
        part_size: 16 * 1024,
        max_parts_in_flight: 2,
        max_parts: 8,
    };
    let store = FakeStore::new().with_limits(Limits {
        min_part: 16 * 1024,
        max_parts: 8,
        ..Limits::S3
    });
    store.insert(INGEST, KEY, input.clone());
    run_with(&store, upload, &event(&store, &[KEY]))
        .await
        .expect("fits");
    let rejected = store.object(REFINED, OUTPUTS[3]).expect("rejected csv");
    assert_eq!(rejected.as_ref(), &reference(&input).1[..]);
    assert!(
        rejected.len() > 16 * 1024 * 8,
        "too big for 8 parts of the base size"
    );
    let mut parts: BTreeMap<String, usize> = BTreeMap::new();
    for c in store.log() {
        if c.op == Operation::UploadPart {
            *parts.entry(c.key).or_default() += 1;
        }
    }
    assert!(parts.values().all(|n| *n <= 8), "{parts:?}");
    assert!(parts.get(OUTPUTS[3]).is_some_and(|n| *n >= 2), "{parts:?}");
}

#[tokio::test]
async fn a_file_over_the_time_budget_is_refused_up_front() {
    let budgeted = |memory| Config {
        memory_mb: Some(memory),
        ..config(UploadConfig::default())
    };
    // The event says 500 MB: at 128 MB (0.07 vCPU) that is minutes of work, and 60 s are left.
    let store = versioned();
    store.insert(INGEST, KEY, SAMPLE);
    let mut ev = event(&store, &[KEY]);
    ev["Records"][0]["s3"]["object"]["size"] = json!(500_000_000u64);
    let queue = FakeQueue::default();
    let report = Handler::new(
        store.clone(),
        queue.clone(),
        budgeted(128),
        MetricsSink::Discard,
    )
    .handle(
        &ev,
        &Invocation::with_time_left("b", Duration::from_secs(60)),
    )
    .await
    .expect("permanent");
    assert_eq!(report.failed[0].reason, "over_time_budget");
    let message = queue.messages()[0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("set function.memory_mb to at least"),
        "{message}"
    );
    assert!(
        message.contains("function.timeout_s to at least"),
        "{message}"
    );
    assert!(message.contains("the raw copy was made"), "{message}");
    assert!(store.object(RAW, KEY).is_some());
    assert!(store.objects(REFINED).is_empty());
    assert_eq!(
        store.calls(Operation::GetObject),
        0,
        "refused before reading"
    );

    // 50 GB: not even the raw copy fits in 60 s.
    let store = versioned();
    store.insert(INGEST, KEY, SAMPLE);
    let mut ev = event(&store, &[KEY]);
    ev["Records"][0]["s3"]["object"]["size"] = json!(50_000_000_000u64);
    let report = handler(&store, budgeted(128))
        .handle(
            &ev,
            &Invocation::with_time_left("b", Duration::from_secs(60)),
        )
        .await
        .expect("permanent");
    assert_eq!(report.failed[0].reason, "over_time_budget");
    assert!(
        store.objects(RAW).is_empty(),
        "no copy started that cannot finish"
    );

    // The same file with enough time is processed.
    let store = versioned();
    store.insert(INGEST, KEY, SAMPLE);
    let ev = event(&store, &[KEY]);
    let report = handler(&store, budgeted(128))
        .handle(
            &ev,
            &Invocation::with_time_left("b", Duration::from_secs(60)),
        )
        .await
        .expect("fits");
    assert_eq!(report.files.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_comes_close_anyway_aborts_every_upload_first() {
    let input = generate(12_000, 3);
    for (name, fault) in [
        (
            "reading",
            Fault::GetHangs {
                nth: 1,
                after: 600_000,
            },
        ),
        (
            "committing",
            Fault::Hang {
                op: Operation::CompleteMultipartUpload,
                nth: 2,
            },
        ),
    ] {
        let store = versioned().with_min_part_size(SMALL_PARTS.part_size);
        store.insert(INGEST, KEY, input.clone());
        let ev = event(&store, &[KEY]);
        store.inject(fault);
        let started = tokio::time::Instant::now();
        let err = handler(&store, config(SMALL_PARTS))
            .handle(
                &ev,
                &Invocation::with_time_left("d", Duration::from_secs(120)),
            )
            .await
            .expect_err(name);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(115) && waited < Duration::from_secs(120),
            "{name}: stopped after {waited:?}, 5 s before the deadline"
        );
        let HandlerError::Records { first, .. } = err;
        assert!(
            matches!(first, FileError::Deadline { .. }),
            "{name}: {first}"
        );
        assert!(store.calls(Operation::AbortMultipartUpload) >= 1, "{name}");
        assert_eq!(store.open_uploads(), 0, "{name}: every upload aborted");
    }
    // A multipart raw copy left hanging is aborted too.
    let store = versioned().with_limits(Limits {
        max_copy_source: 64 * 1024,
        min_part: 16 * 1024,
        ..Limits::S3
    });
    store.insert(INGEST, KEY, input.clone());
    let ev = event(&store, &[KEY]);
    store.inject(Fault::Hang {
        op: Operation::UploadPartCopy,
        nth: 2,
    });
    let cfg = Config {
        copy: CopyConfig {
            max_single_copy: 64 * 1024,
            min_part: 16 * 1024,
            max_parts: 10_000,
            parallel: 2,
        },
        ..config(SMALL_PARTS)
    };
    let err = handler(&store, cfg)
        .handle(
            &ev,
            &Invocation::with_time_left("d", Duration::from_secs(60)),
        )
        .await
        .expect_err("deadline");
    let HandlerError::Records { first, .. } = err;
    assert!(
        matches!(
            first,
            FileError::Deadline {
                stage: "copying to the raw bucket",
                ..
            }
        ),
        "{first}"
    );
    assert_eq!(store.open_uploads(), 0);
}
