//! Per-file CloudWatch metrics as Embedded Metric Format (EMF) log lines.
//!
//! Lambda ships every stdout line to CloudWatch Logs, which turns a JSON line carrying an
//! `_aws.CloudWatchMetrics` directive into metrics: no API call, no extra permission.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;

/// The CloudWatch namespace of the function's metrics.
pub const NAMESPACE: &str = "CsvIngest";

/// What one record contributes to the metrics: a processed file its counts; a version that
/// was gone, a version superseded by a newer one, or a permanent failure a 1 in its own metric
/// (every line declares every metric, zeros included, so sums and alarms see them all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileMetrics {
    pub records_in: u64,
    pub clean: u64,
    pub rejected: u64,
    pub bytes_in: u64,
    pub duration_ms: u64,
    /// The event's version no longer existed: nothing written.
    pub versions_gone: u64,
    /// A newer version's outputs were there: raw copy made, outputs left alone.
    pub superseded: u64,
    /// Sent to the failed-events queue.
    pub permanent_failures: u64,
}

/// `Rejected − ratio × RecordsIn` of one processed file, for the rejected-share alarm
/// (`REJECTED_RATIO_ALERT`): its sum over an hour is positive exactly when more than `ratio`
/// of the hour's records were rejected.
pub fn rejected_excess(metrics: &FileMetrics, ratio: f64) -> f64 {
    metrics.rejected as f64 - ratio * metrics.records_in as f64
}

/// The EMF metric names, in the order every line declares them.
pub const METRICS: [(&str, &str); 8] = [
    ("RecordsIn", "Count"),
    ("Clean", "Count"),
    ("Rejected", "Count"),
    ("BytesIn", "Bytes"),
    ("DurationMs", "Milliseconds"),
    ("VersionsGone", "Count"),
    ("Superseded", "Count"),
    ("PermanentFailures", "Count"),
];

/// Renders one EMF line (no trailing newline) for `metrics`, with the dimension
/// `FunctionName`, plus `source` and `requestId` as searchable (non-metric) properties.
/// `timestamp_ms` is milliseconds since the Unix epoch.
pub fn render_emf(
    metrics: &FileMetrics,
    rejected_ratio: Option<f64>,
    function_name: &str,
    source: &str,
    request_id: &str,
    timestamp_ms: u64,
) -> String {
    let values = [
        metrics.records_in,
        metrics.clean,
        metrics.rejected,
        metrics.bytes_in,
        metrics.duration_ms,
        metrics.versions_gone,
        metrics.superseded,
        metrics.permanent_failures,
    ];
    let mut declared: Vec<serde_json::Value> = METRICS
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    if rejected_ratio.is_some() {
        declared.push(json!({"Name": "RejectedExcess", "Unit": "Count"}));
    }
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": declared,
            }],
        },
        "FunctionName": function_name,
        "source": source,
        "requestId": request_id,
    });
    for ((name, _), value) in METRICS.iter().zip(values) {
        line[*name] = json!(value);
    }
    if let Some(ratio) = rejected_ratio {
        line["RejectedExcess"] = json!(rejected_excess(metrics, ratio));
    }
    line.to_string()
}

/// Where EMF lines go: stdout in Lambda, nowhere or a shared buffer in tests and benchmarks.
#[derive(Clone, Debug, Default)]
pub enum MetricsSink {
    #[default]
    Stdout,
    Discard,
    Memory(Arc<Mutex<Vec<String>>>),
}

impl MetricsSink {
    pub fn emit(&self, line: String) {
        match self {
            MetricsSink::Stdout => {
                // One write of the whole line so it is never interleaved with a log line; a
                // closed stdout loses the metric, never the file's processing.
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(format!("{line}\n").as_bytes());
                let _ = out.flush();
            }
            MetricsSink::Discard => {}
            MetricsSink::Memory(lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_every_metric_with_its_unit_and_value() {
        let m = FileMetrics {
            records_in: 4,
            clean: 2,
            rejected: 2,
            bytes_in: 309,
            duration_ms: 17,
            ..FileMetrics::default()
        };
        let line = render_emf(
            &m,
            None,
            "csv-ingest",
            "in/users.csv",
            "req-1",
            1_750_777_200_000,
        );
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["_aws"]["Timestamp"], 1_750_777_200_000u64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CsvIngest");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        let declared: Vec<(String, String)> = directive["Metrics"]
            .as_array()
            .expect("metrics array")
            .iter()
            .map(|m| {
                (
                    m["Name"].as_str().unwrap_or_default().to_owned(),
                    m["Unit"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            declared,
            [
                ("RecordsIn", "Count"),
                ("Clean", "Count"),
                ("Rejected", "Count"),
                ("BytesIn", "Bytes"),
                ("DurationMs", "Milliseconds"),
                ("VersionsGone", "Count"),
                ("Superseded", "Count"),
                ("PermanentFailures", "Count"),
            ]
            .map(|(n, u)| (n.to_owned(), u.to_owned()))
        );
        // Every declared metric and dimension has a top-level value.
        assert_eq!(v["FunctionName"], "csv-ingest");
        assert_eq!(v["RecordsIn"], 4);
        assert_eq!(v["Clean"], 2);
        assert_eq!(v["Rejected"], 2);
        assert_eq!(v["BytesIn"], 309);
        assert_eq!(v["DurationMs"], 17);
        assert_eq!(v["VersionsGone"], 0);
        assert_eq!(v["PermanentFailures"], 0);
        assert_eq!(v["source"], "in/users.csv");
        assert_eq!(v["requestId"], "req-1");
    }

    #[test]
    fn the_rejected_excess_is_declared_only_with_a_ratio_and_sums_to_the_share() {
        let m = |records_in, rejected| FileMetrics {
            records_in,
            rejected,
            ..FileMetrics::default()
        };
        let line = render_emf(&m(10, 5), Some(0.2), "f", "s", "r", 0);
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["RejectedExcess"], 3.0);
        let names = v["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(names.contains("RejectedExcess"), "{names}");
        let plain: serde_json::Value =
            serde_json::from_str(&render_emf(&m(10, 5), None, "f", "s", "r", 0)).expect("json");
        assert!(plain.get("RejectedExcess").is_none());
        // An hour of files: 30 of 200 records rejected is 15%, over a 0.1 ratio, under 0.2.
        let hour = [m(100, 25), m(50, 0), m(50, 5)];
        let sum = |ratio| hour.iter().map(|f| rejected_excess(f, ratio)).sum::<f64>();
        assert!(sum(0.1) > 0.0);
        assert!(sum(0.2) < 0.0);
    }

    #[test]
    fn memory_sink_keeps_lines() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = MetricsSink::Memory(lines.clone());
        sink.emit("a".into());
        MetricsSink::Discard.emit("b".into());
        assert_eq!(*lines.lock().expect("lock"), ["a"]);
    }
}
