//! Lambda entry point: wires the S3-backed store into the event handler.

use aws_lambda_events::event::s3::S3Event;
use function::metrics::MetricsSink;
use function::s3::S3Store;
use function::{Config, Handler};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    function::logging::init();
    // A missing bucket variable is an init error naming the variable (logged as JSON, and
    // as the process's exit message).
    let config = Config::from_env().map_err(|e| {
        tracing::error!(error = %e, "cannot start");
        e.to_string()
    })?;
    let store = S3Store::from_env().await;
    let handler = Handler::new(store, config, MetricsSink::Stdout);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        handler
            .handle(&event.payload, &event.context.request_id)
            .await
    }))
    .await
}
