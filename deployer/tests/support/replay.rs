//! Offline support: a client whose HTTP is the SDK's replay client, and a stack's desired
//! state without asking AWS who we are.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use deployer::aws::{Aws, Identity};
use deployer::stack::Desired;

/// A client that sends every request to `replay`.
pub fn aws_with(replay: &StaticReplayClient) -> Aws {
    let sdk = SdkConfig::builder()
        .http_client(replay.clone())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "a", "b", None, None, "test",
        )))
        .behavior_version(BehaviorVersion::latest())
        .build();
    Aws::from_sdk_config(&sdk, None)
}

/// The desired state of the stack `stack` (fake artifact, unreachable endpoint) in a made-up
/// account.
pub fn desired(stack: &str) -> Desired {
    let (config, artifact) = super::config(stack, "http://127.0.0.1:9", "");
    let identity = Identity {
        account: "000000000000".into(),
        partition: "aws".into(),
        arn: "arn:aws:iam::000000000000:root".into(),
    };
    Desired::new(&config, &identity, &artifact)
}

/// A request to `uri` answered `200 {}`.
pub fn ok(uri: &str) -> ReplayEvent {
    ReplayEvent::new(
        http::Request::builder()
            .uri(uri)
            .body(SdkBody::empty())
            .unwrap(),
        http::Response::builder()
            .status(200)
            .body(SdkBody::from("{}"))
            .unwrap(),
    )
}
