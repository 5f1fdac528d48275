//! JSON log lines for CloudWatch: one object per line, event fields at the top level.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The function's log format writing to `writer`, at `level` (`info`, `debug`, ... or a full
/// `EnvFilter` directive; an unparsable one means `info`).
pub fn subscriber<W>(writer: W, level: &str) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_new(level.to_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}

/// Installs the global JSON subscriber on stdout. The level comes from `AWS_LAMBDA_LOG_LEVEL`
/// (Lambda's advanced logging controls), else `RUST_LOG`, else `info`. A second call is a
/// no-op.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let _ = tracing::subscriber::set_global_default(subscriber(std::io::stdout, &level));
}
