//! Lambda entry point: wires the S3-backed store and the failed-events queue into the handler.

// The invocation future nests the SDK's futures deeply; computing its layout needs more
// than the default query depth.
#![recursion_limit = "256"]

use function::metrics::MetricsSink;
use function::s3::{S3Store, Timeouts, custom_endpoint, sdk_settings};
use function::sqs::SqsQueue;
use function::{Config, Handler, Invocation};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    function::logging::init();
    // A missing bucket variable is an init error naming the variable (logged as JSON, and
    // as the process's exit message).
    let config = Config::from_env().map_err(|e| {
        tracing::error!(error = %e, "cannot start");
        e.to_string()
    })?;
    let timeouts = Timeouts::default();
    let sdk = sdk_settings(
        aws_config::defaults(aws_config::BehaviorVersion::latest()),
        timeouts,
    )
    .load()
    .await;
    let path_style = custom_endpoint(|name| std::env::var(name).ok());
    let store = S3Store::new(S3Store::client(&sdk, path_style), timeouts);
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        std::env::var("FAILED_EVENTS_QUEUE").ok(),
    );
    if config.memory_mb.is_none() {
        tracing::warn!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not set: no time budget is applied");
    }
    let handler = Handler::new(store, queue, config, MetricsSink::Stdout);
    let handler = &handler;
    // The payload is read as plain JSON: the handler takes what it needs from it, so a
    // record without the fields it does not use, or S3's s3:TestEvent, still reaches it.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation =
            Invocation::with_deadline_ms(&event.context.request_id, event.context.deadline);
        handler.handle(&event.payload, &invocation).await
    }))
    .await
}
