//! The AWS layer against a real emulator (ministack): converge from empty, no-op re-runs, drift
//! repair, foreign resources left alone, teardown. Run by `make test` (scripts/e2e.sh), which
//! starts a fresh emulator and sets `CSV_INGEST_TEST_ENDPOINT`; each test owns a stack.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, LambdaFunctionConfiguration, NotificationConfiguration};
use deployer::plan::Action;
use deployer::resources::Deletion;
use deployer::stack::Names;
use support::{Stack, changed};

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn up_from_empty_creates_everything_then_nothing_changes() {
    let s = Stack::new("fresh", "").await;
    // 14 for the pipeline, then the alerts topic and its three alarms (no rejected-share
    // alarm without `alerts.rejected_ratio`).
    let before = s.plan().await;
    assert_eq!(before.counts.create, 18, "{before}");
    let (applied, calls) = s.up().await.unwrap();
    assert_eq!(applied.counts.create, 18);
    assert!(calls.mutating > 18, "{calls:?}");

    s.assert_converged().await;

    // `status` reads all 18 back as present, the permission with both confused-deputy guards.
    let identity = s.aws.identity().await.unwrap();
    let names = Names::new(&s.config);
    let rows = deployer::status::collect(&s.aws, &names, &identity)
        .await
        .unwrap();
    let states: Vec<(&str, &str)> = rows.iter().map(|r| (r.kind, r.state)).collect();
    assert_eq!(rows.len(), 18, "{states:?}");
    assert!(rows.iter().all(|r| r.state == "present"), "{states:?}");
    let permission = rows
        .iter()
        .find(|r| r.kind == deployer::resources::permission::KIND)
        .unwrap();
    assert_eq!(
        permission.properties.get("source_arn"),
        Some(&format!("arn:aws:s3:::{}", s.config.buckets.ingest))
    );
    assert_eq!(
        permission.properties.get("source_account"),
        Some(&identity.account)
    );
    let notification = rows
        .iter()
        .find(|r| r.kind == deployer::resources::notification::KIND)
        .unwrap();
    assert!(
        notification.properties["function"]
            .ends_with(&format!(":function:{}", s.config.function.name)),
        "{notification:?}"
    );

    let removed = s.down(true).await;
    assert!(
        removed.iter().all(|r| r.deletion == Deletion::Deleted),
        "{removed:?}"
    );
    assert_eq!(s.plan().await.counts.create, 18);
    let rows = deployer::status::collect(&s.aws, &names, &identity)
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.state == "absent"), "{rows:?}");
    // Twice is fine.
    assert!(
        s.down(true)
            .await
            .iter()
            .all(|r| r.deletion == Deletion::Absent)
    );
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn memory_changed_out_of_band_is_the_one_change() {
    let s = Stack::new("drift", "").await;
    s.up().await.unwrap();
    s.aws
        .lambda
        .update_function_configuration()
        .function_name(&s.config.function.name)
        .memory_size(512)
        .send()
        .await
        .unwrap();

    let plan = s.plan().await;
    assert_eq!(
        changed(&plan),
        vec![(
            "lambda function".to_owned(),
            s.config.function.name.clone(),
            Action::Update,
            vec!["memory_mb".to_owned()]
        )]
    );
    let change = &support::first_with(&plan, Action::Update).changes[0];
    assert_eq!(
        (change.old.as_deref(), change.new.as_deref()),
        (Some("512"), Some("256"))
    );

    s.assert_repaired_by("Lambda:UpdateFunctionConfiguration")
        .await;
    s.down(true).await;
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn function_deleted_by_hand_is_recreated_alone() {
    let s = Stack::new("recreate", "").await;
    s.up().await.unwrap();
    s.aws
        .lambda
        .delete_function()
        .function_name(&s.config.function.name)
        .send()
        .await
        .unwrap();

    let plan = s.plan().await;
    let kinds: Vec<(String, Action)> = changed(&plan)
        .into_iter()
        .map(|(k, _, a, _)| (k, a))
        .collect();
    // The invoke permission and event invoke config lived on the deleted function: they come back with it.
    assert_eq!(
        kinds,
        vec![
            ("lambda function".to_owned(), Action::Create),
            ("lambda permission".to_owned(), Action::Create),
            ("lambda event invoke config".to_owned(), Action::Create),
        ]
    );
    let (_, calls) = s.up().await.unwrap();
    let ops: Vec<String> = calls.mutating_operations.keys().cloned().collect();
    assert_eq!(
        ops,
        [
            "Lambda:AddPermission",
            "Lambda:CreateFunction",
            "Lambda:PutFunctionEventInvokeConfig"
        ],
        "{calls:?}"
    );
    assert!(s.plan().await.is_empty());
    s.down(true).await;
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn foreign_notification_survives_up_and_down() {
    let s = Stack::new("notify", "").await;
    s.up().await.unwrap();
    let ingest = s.config.buckets.ingest.clone();
    let theirs = LambdaFunctionConfiguration::builder()
        .id("someone-elses")
        .lambda_function_arn("arn:aws:lambda:us-east-1:000000000000:function:audit")
        .events(Event::from("s3:ObjectRemoved:*"))
        .build()
        .unwrap();
    // By hand: replace the whole configuration with only theirs (ours is gone too).
    s.aws
        .s3
        .put_bucket_notification_configuration()
        .bucket(&ingest)
        .notification_configuration(
            NotificationConfiguration::builder()
                .lambda_function_configurations(theirs)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ids = |out: &aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput| {
        let mut ids: Vec<String> = out
            .lambda_function_configurations()
            .iter()
            .filter_map(|c| c.id().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    };

    let plan = s.plan().await;
    assert_eq!(changed(&plan).len(), 1, "{plan}");
    s.up().await.unwrap();
    let out = s
        .aws
        .s3
        .get_bucket_notification_configuration()
        .bucket(&ingest)
        .send()
        .await
        .unwrap();
    let ours = Names::new(&s.config).notification_id;
    let mut want = vec![ours, "someone-elses".to_owned()];
    want.sort();
    assert_eq!(ids(&out), want);

    // Keep the bucket (an object in it, no purge) to look at its configuration after `down`.
    s.aws
        .s3
        .put_object()
        .bucket(&ingest)
        .key("keep/me.txt")
        .body(ByteStream::from_static(b"not a csv"))
        .send()
        .await
        .unwrap();
    let removed = s.down(false).await;
    let bucket = removed
        .iter()
        .find(|r| r.kind == "s3 bucket" && r.name.starts_with(&ingest))
        .unwrap();
    assert!(
        matches!(&bucket.deletion, Deletion::Kept(why) if why.contains("--purge")),
        "{bucket:?}"
    );
    let out = s
        .aws
        .s3
        .get_bucket_notification_configuration()
        .bucket(&ingest)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(&out), vec!["someone-elses".to_owned()]);
    s.down(true).await;
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn a_same_named_bucket_without_our_tag_is_refused_and_kept() {
    let s = Stack::new("foreign", "").await;
    let raw = s.config.buckets.raw.clone();
    s.aws.s3.create_bucket().bucket(&raw).send().await.unwrap();

    let plan = s.plan().await;
    let conflict = support::first_with(&plan, Action::Conflict);
    assert!(conflict.name.starts_with(&raw));
    assert!(conflict.note.as_deref().unwrap().contains("not ours"));
    let err = s.up().await.unwrap_err().to_string();
    assert!(
        err.contains("refusing to deploy") && err.contains(&raw),
        "{err}"
    );

    let removed = s.down(true).await;
    let kept = removed
        .iter()
        .find(|r| r.kind == "s3 bucket" && r.name.starts_with(&raw))
        .unwrap();
    assert!(
        matches!(&kept.deletion, Deletion::Kept(why) if why.contains("not ours")),
        "{kept:?}"
    );
    s.aws
        .s3
        .head_bucket()
        .bucket(&raw)
        .send()
        .await
        .expect("the foreign bucket must survive down");
    s.aws.s3.delete_bucket().bucket(&raw).send().await.unwrap();
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn a_same_named_role_without_our_tag_is_refused_and_kept() {
    let s = Stack::new("foreignrole", "").await;
    let role = s.config.role_name.clone();
    let trust = deployer::resources::role::lambda_trust_policy().to_string();
    s.aws
        .iam
        .create_role()
        .role_name(&role)
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();

    let plan = s.plan().await;
    let conflict = support::first_with(&plan, Action::Conflict);
    assert_eq!(
        (conflict.kind, conflict.name.as_str()),
        ("iam role", role.as_str())
    );
    assert!(s.up().await.is_err());

    let removed = s.down(true).await;
    let kept = removed.iter().find(|r| r.kind == "iam role").unwrap();
    assert!(
        matches!(&kept.deletion, Deletion::Kept(why) if why.contains("not ours")),
        "{kept:?}"
    );
    s.aws
        .iam
        .get_role()
        .role_name(&role)
        .send()
        .await
        .expect("the foreign role must survive down");
    s.aws
        .iam
        .delete_role()
        .role_name(&role)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn down_keeps_the_queue_while_a_failed_event_is_being_read() {
    let s = Stack::new("inflight", "").await;
    s.up().await.unwrap();
    let queue = deployer::stack::Names::new(&s.config).queue;
    let url = s
        .aws
        .sqs
        .get_queue_url()
        .queue_name(&queue)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    s.aws
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body("{\"failed\": true}")
        .send()
        .await
        .unwrap();
    // A reader takes it: not visible, not deleted (in flight for 120 s).
    let got = s
        .aws
        .sqs
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(120)
        .send()
        .await
        .unwrap();
    assert_eq!(got.messages().len(), 1);
    let removed = s.down(false).await;
    let kept = removed
        .iter()
        .find(|r| r.kind == "sqs queue")
        .expect("the queue is reported");
    assert!(
        matches!(&kept.deletion, Deletion::Kept(why) if why.contains("1 failed events (0 waiting, 1 being read, 0 delayed)") && why.contains("deployer failed")),
        "{kept:?}"
    );
    // Still there, with its message.
    s.aws
        .sqs
        .get_queue_url()
        .queue_name(&queue)
        .send()
        .await
        .expect("the queue survives down");
    let removed = s.down(true).await;
    assert!(
        removed
            .iter()
            .all(|r| matches!(r.deletion, Deletion::Deleted | Deletion::Absent)),
        "{removed:?}"
    );
}

#[tokio::test]
#[ignore = "needs ministack: run by `make test`"]
async fn alerts_switched_off_remove_the_topic_and_the_alarms() {
    let s = Stack::new(
        "alertsoff",
        "[alerts]\nemail = [\"oncall@example.com\"]\nrejected_ratio = 0.2\n",
    )
    .await;
    let (plan, _) = s.up().await.unwrap();
    let alerting: Vec<(String, String)> = plan
        .resources
        .iter()
        .filter(|r| r.kind == "sns topic" || r.kind == "cloudwatch alarm")
        .map(|r| (r.kind.to_owned(), r.name.clone()))
        .collect();
    assert_eq!(alerting.len(), 5, "topic and four alarms: {alerting:?}");
    s.assert_converged().await;
    let mut off = s.config.clone();
    off.alerts = deployer::config::Alerts {
        enabled: false,
        email: vec![],
        rejected_ratio: None,
    };
    let (plan, _) = support::plan(&off, &s.artifact).await.unwrap();
    let deleting: Vec<&str> = plan
        .resources
        .iter()
        .filter(|r| r.action == Action::Delete)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(deleting.len(), 5, "{plan}");
    support::up(&off, &s.artifact).await.unwrap();
    let (after, _) = support::plan(&off, &s.artifact).await.unwrap();
    assert!(after.is_empty(), "{after}");
    assert!(
        after
            .resources
            .iter()
            .all(|r| r.kind != "sns topic" && r.kind != "cloudwatch alarm"),
        "{after}"
    );
    s.down(true).await;
}
