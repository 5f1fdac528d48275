//! With the SDK's replay HTTP client: applying an empty diff sends no request at all, and a
//! real change sends exactly its call (so the harness does see requests).

mod support;

use aws_smithy_http_client::test_util::StaticReplayClient;
use deployer::report::{Output, Reporter};
use deployer::resources::{
    alarms, athena, bucket, function, glue, invoke_config, log_group, notification, permission,
    queue, role, topic,
};
use deployer::stack::{self, Changes};
use support::replay::{aws_with, ok};

#[tokio::test]
async fn no_change_sends_no_request() {
    let replay = StaticReplayClient::new(vec![]);
    let aws = aws_with(&replay);
    let d = support::replay::desired("replay");
    for spec in &d.buckets {
        bucket::apply(&aws, spec, &[]).await.unwrap();
    }
    role::apply(&aws, &d.role, &[]).await.unwrap();
    log_group::apply(&aws, &d.log_group, None, &[])
        .await
        .unwrap();
    function::apply(&aws, &d.function, &d.permission.function_arn, &[])
        .await
        .unwrap();
    permission::apply(&aws, &d.permission, &[]).await.unwrap();
    notification::apply(&aws, &d.notification, &[])
        .await
        .unwrap();
    queue::apply(&aws, &d.queue, None, &[]).await.unwrap();
    invoke_config::apply(&aws, &d.invoke_config, &[])
        .await
        .unwrap();
    glue::apply_database(&aws, &d.database, &[]).await.unwrap();
    for spec in &d.tables {
        glue::apply_table(&aws, spec, None, &[]).await.unwrap();
    }
    athena::apply(&aws, &d.workgroup, &[]).await.unwrap();
    topic::apply(&aws, d.topic.as_ref(), &d.topic_arn, &[])
        .await
        .unwrap();
    for (alarm, spec) in &d.alarms {
        alarms::apply(&aws, &alarm.name(&d.stack), spec.as_ref(), None, &[])
            .await
            .unwrap();
    }

    // The whole stack with an empty diff, as a no-op `up` runs it.
    let observed = stack::Observed {
        buckets: vec![None, None, None],
        role: None,
        log_group: None,
        function: None,
        permission: None,
        notification: None,
        queue: None,
        invoke_config: None,
        database: None,
        tables: vec![None, None],
        ..stack::Observed::default()
    };
    let changes = Changes {
        buckets: vec![vec![], vec![], vec![]],
        tables: vec![vec![], vec![]],
        alarms: vec![vec![]; d.alarms.len()],
        ..Changes::default()
    };
    let plan = deployer::plan::Plan::new(vec![]);
    stack::apply(
        &aws,
        &d,
        &observed,
        &changes,
        &plan,
        &Reporter::new(Output::Json),
    )
    .await
    .unwrap();

    assert_eq!(replay.actual_requests().count(), 0);
    assert_eq!(aws.calls.snapshot().total, 0);
}

#[tokio::test]
async fn one_change_sends_exactly_its_call() {
    let replay = StaticReplayClient::new(vec![ok("https://logs.us-east-1.amazonaws.com/")]);
    let aws = aws_with(&replay);
    let d = support::replay::desired("replay");
    let change = log_group::Change::Retention { old: None, new: 14 };
    log_group::apply(&aws, &d.log_group, None, &[change])
        .await
        .unwrap();

    let requests: Vec<_> = replay.actual_requests().collect();
    assert_eq!(requests.len(), 1);
    let body = std::str::from_utf8(requests[0].body().bytes().unwrap()).unwrap();
    assert!(body.contains("\"retentionInDays\":14"), "{body}");
    let calls = aws.calls.snapshot();
    assert_eq!(calls.mutating, 1);
    assert_eq!(
        calls
            .mutating_operations
            .get("CloudWatch Logs:PutRetentionPolicy")
            .copied(),
        Some(1),
        "{calls:?}"
    );
}
