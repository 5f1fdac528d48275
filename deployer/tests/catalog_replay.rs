//! With the SDK's replay HTTP client: however many properties of a Glue table or an Athena
//! workgroup drifted, repairing them sends exactly one request, carrying every managed value.

mod support;

use aws_smithy_http_client::test_util::StaticReplayClient;
use deployer::resources::{athena, glue};
use support::replay::{aws_with, ok};

fn only_request(replay: &StaticReplayClient) -> (String, String) {
    let requests: Vec<_> = replay.actual_requests().collect();
    assert_eq!(requests.len(), 1);
    let target = requests[0]
        .headers()
        .get("x-amz-target")
        .unwrap_or_default()
        .to_owned();
    let body = std::str::from_utf8(requests[0].body().bytes().unwrap())
        .unwrap()
        .to_owned();
    (target, body)
}

#[tokio::test]
async fn several_table_drifts_send_one_update_table() {
    let replay = StaticReplayClient::new(vec![ok("https://glue.us-east-1.amazonaws.com/")]);
    let aws = aws_with(&replay);
    let d = support::replay::desired("catreplay");
    let spec = &d.tables[0];
    let mut observed = glue::TableObserved {
        table_type: Some(glue::TABLE_TYPE.into()),
        location: Some("s3://elsewhere/".into()),
        columns: spec.columns.clone(),
        partition_keys: spec.partition_keys.clone(),
        input_format: Some(glue::INPUT_FORMAT.into()),
        output_format: Some(glue::OUTPUT_FORMAT.into()),
        serde: Some(glue::SERDE.into()),
        parameters: spec.parameters.clone(),
        version_id: Some("7".into()),
        ..Default::default()
    };
    observed.parameters.remove("projection.enabled");
    observed.parameters.insert("theirs".into(), "kept".into());
    observed.columns.pop();
    let changes = glue::diff_table(spec, Some(&observed));
    assert_eq!(changes.len(), 3, "{changes:?}");
    glue::apply_table(&aws, spec, Some(&observed), &changes)
        .await
        .unwrap();

    let (target, body) = only_request(&replay);
    assert_eq!(target, "AWSGlue.UpdateTable");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let input = &body["TableInput"];
    assert_eq!(body["VersionId"], "7");
    assert_eq!(input["Parameters"]["projection.enabled"], "true");
    assert_eq!(input["Parameters"]["theirs"], "kept");
    assert_eq!(
        input["StorageDescriptor"]["Location"],
        spec.location.as_str()
    );
    assert_eq!(
        input["StorageDescriptor"]["Columns"]
            .as_array()
            .unwrap()
            .len(),
        spec.columns.len()
    );
    assert_eq!(input["PartitionKeys"][0]["Name"], "date");
    assert_eq!(aws.calls.snapshot().mutating, 1);
}

#[tokio::test]
async fn several_workgroup_drifts_send_one_update_work_group() {
    let replay = StaticReplayClient::new(vec![ok("https://athena.us-east-1.amazonaws.com/")]);
    let aws = aws_with(&replay);
    let d = support::replay::desired("catreplay");
    let observed = athena::Observed {
        state: Some("DISABLED".into()),
        output_location: None,
        enforce_configuration: Some(false),
        tags: d.workgroup.tags.clone(),
        created: None,
    };
    let changes = athena::diff(&d.workgroup, Some(&observed));
    assert_eq!(changes.len(), 3, "{changes:?}");
    athena::apply(&aws, &d.workgroup, &changes).await.unwrap();

    let (target, body) = only_request(&replay);
    assert_eq!(target, "AmazonAthena.UpdateWorkGroup");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["State"], "ENABLED");
    let updates = &body["ConfigurationUpdates"];
    assert_eq!(updates["EnforceWorkGroupConfiguration"], true);
    assert_eq!(
        updates["ResultConfigurationUpdates"]["OutputLocation"],
        d.workgroup.output_location.as_str()
    );
}
