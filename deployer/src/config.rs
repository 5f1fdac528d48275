//! The deployment config: a raw TOML shape, checked into a `Config` that cannot be half-valid.
//!
//! Everything a file can get wrong is refused here, before any AWS call, with one line naming
//! the file, the field and the rule.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::artifact::Architecture;

/// The tag key that marks a resource as belonging to a stack; its value is the stack name.
pub const OWNERSHIP_TAG: &str = "csv-ingest:stack";

/// Log retention values CloudWatch Logs accepts.
const LOG_RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// A config the deployer can act on: every name valid, every bound respected, no loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from, for messages.
    pub source: PathBuf,
    pub stack: String,
    pub target: Target,
    pub buckets: Buckets,
    pub role_name: String,
    pub function: FunctionSettings,
    pub notification: NotificationFilter,
    pub catalog: CatalogSettings,
    pub outputs: Outputs,
    pub alerts: Alerts,
    /// Extra tags for every resource; never contains the ownership tag.
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub region: String,
    /// `None` means the real AWS endpoints.
    pub endpoint: Option<String>,
    pub credentials: Credentials,
}

/// Where credentials come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// The default AWS chain: environment, `AWS_PROFILE`, SSO, instance roles.
    DefaultChain,
    /// Fixed dummy credentials (`test`/`test`) for a local emulator; only with an endpoint.
    Emulator,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buckets {
    pub ingest: String,
    pub raw: String,
    pub refined: String,
    /// Days a replaced or deleted version of an ingest object is kept (the function reads
    /// the version each event names; an event is retried for up to 6 hours).
    pub ingest_noncurrent_days: i32,
    /// Days a replaced version of a raw copy is kept (the audit trail of re-sent files).
    pub raw_noncurrent_days: i32,
}

/// Noncurrent-version expiry defaults (days).
pub const DEFAULT_INGEST_NONCURRENT_DAYS: i32 = 7;
pub const DEFAULT_RAW_NONCURRENT_DAYS: i32 = 90;

impl Buckets {
    /// The three buckets with the role each plays.
    pub fn all(&self) -> [(BucketRole, &str); 3] {
        [
            (BucketRole::Ingest, &self.ingest),
            (BucketRole::Raw, &self.raw),
            (BucketRole::Refined, &self.refined),
        ]
    }

    /// How long noncurrent versions of a versioned bucket are kept; `None` for the refined
    /// bucket, which is not versioned (its outputs are rewritten in place).
    pub fn noncurrent_days(&self, role: BucketRole) -> Option<i32> {
        match role {
            BucketRole::Ingest => Some(self.ingest_noncurrent_days),
            BucketRole::Raw => Some(self.raw_noncurrent_days),
            BucketRole::Refined => None,
        }
    }
}

/// What a bucket is for; decides its extra settings (ingest and raw are versioned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BucketRole {
    Ingest,
    Raw,
    Refined,
}

impl fmt::Display for BucketRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BucketRole::Ingest => "ingest",
            BucketRole::Raw => "raw",
            BucketRole::Refined => "refined",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSettings {
    pub name: String,
    pub memory_mb: i32,
    pub timeout_s: i32,
    pub architecture: Architecture,
    /// The zip to upload, resolved against the config file's directory; inspected by
    /// `artifact::Artifact::inspect` before `plan`/`up` make any call.
    pub artifact: PathBuf,
    pub log_retention_days: i32,
    /// Reserved concurrency; `None` leaves the function in the account's shared pool.
    pub reserved_concurrency: Option<i32>,
}

/// Which ingest keys trigger the function; empty strings are not allowed (use `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// The Glue database and Athena workgroup that make the Parquet outputs queryable.
///
/// The catalog is deployed whether or not the function writes Parquet: it costs nothing while
/// empty, and switching `outputs.parquet` back on then needs no catalog change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogSettings {
    /// Glue database name: lowercase letters, digits and underscores (Athena's rule).
    pub database: String,
    /// Athena workgroup name.
    pub workgroup: String,
    /// The first day partition projection enumerates, `YYYY-MM-DD`.
    pub projection_start: String,
}

/// Which outputs the function writes besides the CSV contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outputs {
    /// Parquet copies of the clean and rejected rows under `curated/` in the refined bucket.
    pub parquet: bool,
}

/// Who is told when a file fails or the function errs: an SNS topic and CloudWatch alarms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alerts {
    /// `false` removes the topic and the alarms.
    pub enabled: bool,
    /// Email subscriptions of the topic (each confirms by email before it receives anything).
    pub email: Vec<String>,
    /// Alarm when the rejected share of the records of an hour exceeds this.
    pub rejected_ratio: Option<Ratio>,
}

/// A number strictly between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio(f64);

// Only finite values in (0, 1) are ever built, so equality is total.
impl Eq for Ratio {}

impl Ratio {
    pub fn value(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The partition projection start when the config names none.
pub const DEFAULT_PROJECTION_START: &str = "2025-01-01";

/// A config file that cannot be used, with the field and the rule it breaks.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: `{field}` {rule}", path.display())]
    Field {
        path: PathBuf,
        field: String,
        rule: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    stack: String,
    target: RawTarget,
    #[serde(default)]
    buckets: RawBuckets,
    #[serde(default)]
    role: RawRole,
    function: RawFunction,
    #[serde(default)]
    notification: RawNotification,
    #[serde(default)]
    catalog: RawCatalog,
    #[serde(default)]
    outputs: RawOutputs,
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    region: String,
    endpoint: Option<String>,
    #[serde(default)]
    credentials: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuckets {
    ingest: Option<String>,
    raw: Option<String>,
    refined: Option<String>,
    ingest_noncurrent_days: Option<i64>,
    raw_noncurrent_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    name: Option<String>,
    #[serde(default = "default_memory")]
    memory_mb: i64,
    #[serde(default = "default_timeout")]
    timeout_s: i64,
    architecture: String,
    artifact: PathBuf,
    #[serde(default = "default_retention")]
    log_retention_days: i64,
    reserved_concurrency: Option<i64>,
}

fn default_memory() -> i64 {
    256
}
fn default_timeout() -> i64 {
    300
}
fn default_retention() -> i64 {
    14
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotification {
    prefix: Option<String>,
    suffix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    database: Option<String>,
    workgroup: Option<String>,
    projection_start: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default)]
    email: Vec<String>,
    rejected_ratio: Option<f64>,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            enabled: true,
            email: Vec::new(),
            rejected_ratio: None,
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutputs {
    #[serde(default = "default_parquet")]
    parquet: bool,
}

impl Default for RawOutputs {
    fn default() -> Self {
        RawOutputs {
            parquet: default_parquet(),
        }
    }
}

fn default_parquet() -> bool {
    true
}

impl Config {
    /// Reads and checks a config file. `endpoint_override` is `AWS_ENDPOINT_URL` from the
    /// environment, which wins over the file's endpoint.
    pub fn load(path: &Path, endpoint_override: Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text, endpoint_override)
    }

    /// Checks config text; `path` is used for messages and to resolve the artifact path.
    pub fn parse(
        path: &Path,
        text: &str,
        endpoint_override: Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1)),
            message: e.message().trim().replace('\n', " "),
        })?;
        Checker { path }.check(raw, endpoint_override)
    }

    /// The tags every owned resource carries: the extra tags plus the ownership tag.
    pub fn resource_tags(&self) -> BTreeMap<String, String> {
        let mut tags = self.tags.clone();
        tags.insert(OWNERSHIP_TAG.to_owned(), self.stack.clone());
        tags
    }
}

struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn err(&self, field: &str, rule: impl Into<String>) -> ConfigError {
        ConfigError::Field {
            path: self.path.to_owned(),
            field: field.to_owned(),
            rule: rule.into(),
        }
    }

    fn check(
        &self,
        raw: RawConfig,
        endpoint_override: Option<String>,
    ) -> Result<Config, ConfigError> {
        let stack = raw.stack;
        if !is_stack_name(&stack) {
            return Err(self.err(
                "stack",
                format!("is {stack:?}: use 1-40 lowercase letters, digits and hyphens, starting with a letter"),
            ));
        }
        let target = self.target(raw.target, endpoint_override)?;
        let buckets = self.buckets(raw.buckets, &stack)?;
        let role_name = raw.role.name.unwrap_or_else(|| format!("{stack}-function"));
        if !is_role_name(&role_name) {
            return Err(self.err(
                "role.name",
                format!("is {role_name:?}: IAM role names are 1-64 characters of letters, digits and +=,.@_-"),
            ));
        }
        let function = self.function(raw.function, &stack)?;
        let notification = NotificationFilter {
            prefix: self.filter_part("notification.prefix", raw.notification.prefix)?,
            suffix: self.filter_part("notification.suffix", raw.notification.suffix)?,
        };
        for (key, value) in &raw.tags {
            if key == OWNERSHIP_TAG {
                return Err(self.err(
                    &format!("tags.{key}"),
                    "is set by the deployer itself: remove it",
                ));
            }
            if key.is_empty() || key.chars().count() > 128 || key.starts_with("aws:") {
                return Err(self.err(
                    &format!("tags.{key}"),
                    "tag keys are 1-128 characters and may not start with `aws:`",
                ));
            }
            if value.chars().count() > 256 {
                return Err(self.err(
                    &format!("tags.{key}"),
                    "tag values are at most 256 characters",
                ));
            }
        }
        if raw.tags.len() > 40 {
            return Err(self.err("tags", "has more than 40 entries; S3 allows 50 tags per bucket and the deployer needs some"));
        }
        let catalog = self.catalog(raw.catalog, &stack)?;
        let alerts = self.alerts(raw.alerts)?;
        Ok(Config {
            source: self.path.to_owned(),
            stack,
            target,
            buckets,
            role_name,
            function,
            notification,
            catalog,
            alerts,
            outputs: Outputs {
                parquet: raw.outputs.parquet,
            },
            tags: raw.tags,
        })
    }

    /// The three names (S3's rules, no loop, raw apart from refined) and the version expiries.
    fn buckets(&self, raw: RawBuckets, stack: &str) -> Result<Buckets, ConfigError> {
        let days = |field: &str, value: Option<i64>, default: i32| match value {
            None => Ok(default),
            Some(d) if (1..=36_500).contains(&d) => Ok(d as i32),
            Some(d) => Err(self.err(
                field,
                format!("is {d}: noncurrent versions are kept 1-36500 days"),
            )),
        };
        let buckets = Buckets {
            ingest: self.bucket("buckets.ingest", raw.ingest, stack, "ingest")?,
            raw: self.bucket("buckets.raw", raw.raw, stack, "raw")?,
            refined: self.bucket("buckets.refined", raw.refined, stack, "refined")?,
            ingest_noncurrent_days: days(
                "buckets.ingest_noncurrent_days",
                raw.ingest_noncurrent_days,
                DEFAULT_INGEST_NONCURRENT_DAYS,
            )?,
            raw_noncurrent_days: days(
                "buckets.raw_noncurrent_days",
                raw.raw_noncurrent_days,
                DEFAULT_RAW_NONCURRENT_DAYS,
            )?,
        };
        for (field, other) in [
            ("buckets.raw", &buckets.raw),
            ("buckets.refined", &buckets.refined),
        ] {
            if *other == buckets.ingest {
                return Err(self.err(
                    "buckets.ingest",
                    format!(
                        "equals {field} ({other:?}): the function would trigger itself (an S3→Lambda→S3 loop); use a different bucket"
                    ),
                ));
            }
        }
        if buckets.raw == buckets.refined {
            return Err(self.err(
                "buckets.raw",
                format!("equals buckets.refined ({:?}): raw copies and refined outputs need separate buckets", buckets.raw),
            ));
        }
        Ok(buckets)
    }

    fn alerts(&self, raw: RawAlerts) -> Result<Alerts, ConfigError> {
        let mut email = Vec::new();
        for (i, address) in raw.email.into_iter().enumerate() {
            let field = format!("alerts.email[{i}]");
            let trimmed = address.trim();
            let ok = trimmed.len() <= 254
                && !trimmed.contains(char::is_whitespace)
                && trimmed
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
            if !ok {
                return Err(self.err(
                    &field,
                    format!("is {address:?}: expected an email address like oncall@example.com"),
                ));
            }
            if email
                .iter()
                .any(|e: &String| e.eq_ignore_ascii_case(trimmed))
            {
                return Err(self.err(
                    &field,
                    format!("is {address:?} again: list each address once"),
                ));
            }
            email.push(trimmed.to_owned());
        }
        let rejected_ratio = match raw.rejected_ratio {
            None => None,
            Some(r) if r.is_finite() && r > 0.0 && r < 1.0 => Some(Ratio(r)),
            Some(r) => {
                return Err(self.err(
                    "alerts.rejected_ratio",
                    format!("is {r}: a share of the records between 0 and 1, like 0.2; leave it out for no such alarm"),
                ));
            }
        };
        if !raw.enabled && (!email.is_empty() || rejected_ratio.is_some()) {
            return Err(self.err(
                "alerts.enabled",
                "is false but alerts.email or alerts.rejected_ratio is set: remove them, or enable alerts",
            ));
        }
        Ok(Alerts {
            enabled: raw.enabled,
            email,
            rejected_ratio,
        })
    }

    fn catalog(&self, raw: RawCatalog, stack: &str) -> Result<CatalogSettings, ConfigError> {
        // Glue and Athena want lowercase letters, digits and underscores: `-` becomes `_`.
        let database = raw.database.unwrap_or_else(|| stack.replace('-', "_"));
        if !is_glue_database_name(&database) {
            return Err(self.err(
                "catalog.database",
                format!("is {database:?}: Glue database names for Athena are 1-255 lowercase letters, digits and underscores, starting with a letter"),
            ));
        }
        let workgroup = raw.workgroup.unwrap_or_else(|| stack.to_owned());
        if !is_workgroup_name(&workgroup) {
            return Err(self.err(
                "catalog.workgroup",
                format!("is {workgroup:?}: Athena workgroup names are 1-128 letters, digits, periods, hyphens and underscores"),
            ));
        }
        let projection_start = raw
            .projection_start
            .unwrap_or_else(|| DEFAULT_PROJECTION_START.to_owned());
        if !is_calendar_date(&projection_start) {
            return Err(self.err(
                "catalog.projection_start",
                format!("is {projection_start:?}: expected a calendar date as YYYY-MM-DD, like \"{DEFAULT_PROJECTION_START}\""),
            ));
        }
        Ok(CatalogSettings {
            database,
            workgroup,
            projection_start,
        })
    }

    fn target(
        &self,
        raw: RawTarget,
        endpoint_override: Option<String>,
    ) -> Result<Target, ConfigError> {
        if !is_region(&raw.region) {
            return Err(self.err(
                "target.region",
                format!("is {:?}: expected a region like `us-east-1`", raw.region),
            ));
        }
        let endpoint = match endpoint_override.filter(|e| !e.is_empty()) {
            Some(env) => Some(self.endpoint("AWS_ENDPOINT_URL (environment)", env)?),
            None => raw
                .endpoint
                .map(|e| self.endpoint("target.endpoint", e))
                .transpose()?,
        };
        let credentials = match raw.credentials.as_deref() {
            None | Some("default") => Credentials::DefaultChain,
            Some("emulator") => {
                if endpoint.is_none() {
                    return Err(self.err(
                        "target.credentials",
                        "is \"emulator\" but no endpoint is set: dummy credentials only make sense against a local emulator",
                    ));
                }
                Credentials::Emulator
            }
            Some(other) => {
                return Err(self.err(
                    "target.credentials",
                    format!("is {other:?}: expected \"default\" (the AWS credential chain) or \"emulator\""),
                ));
            }
        };
        Ok(Target {
            region: raw.region,
            endpoint,
            credentials,
        })
    }

    fn endpoint(&self, field: &str, endpoint: String) -> Result<String, ConfigError> {
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
                Ok(endpoint.trim_end_matches('/').to_owned())
            }
            _ => Err(self.err(
                field,
                format!("is {endpoint:?}: expected an http:// or https:// URL"),
            )),
        }
    }

    fn bucket(
        &self,
        field: &str,
        name: Option<String>,
        stack: &str,
        role: &str,
    ) -> Result<String, ConfigError> {
        let name = name.unwrap_or_else(|| format!("{stack}-{role}"));
        match bucket_name_problem(&name) {
            None => Ok(name),
            Some(rule) => Err(self.err(field, format!("is {name:?}: {rule}"))),
        }
    }

    fn function(&self, raw: RawFunction, stack: &str) -> Result<FunctionSettings, ConfigError> {
        let name = raw.name.unwrap_or_else(|| stack.to_owned());
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(self.err(
                "function.name",
                format!("is {name:?}: Lambda function names are 1-64 letters, digits, hyphens and underscores"),
            ));
        }
        if !(128..=10240).contains(&raw.memory_mb) {
            return Err(self.err(
                "function.memory_mb",
                format!("is {}: must be 128-10240", raw.memory_mb),
            ));
        }
        if !(1..=900).contains(&raw.timeout_s) {
            return Err(self.err(
                "function.timeout_s",
                format!("is {}: must be 1-900 seconds", raw.timeout_s),
            ));
        }
        let architecture = match raw.architecture.as_str() {
            "arm64" => Architecture::Arm64,
            "x86_64" => Architecture::X86_64,
            other => {
                return Err(self.err(
                    "function.architecture",
                    format!("is {other:?}: expected \"arm64\" or \"x86_64\""),
                ));
            }
        };
        let retention = u32::try_from(raw.log_retention_days)
            .ok()
            .filter(|d| LOG_RETENTION_DAYS.contains(d));
        let Some(log_retention_days) = retention else {
            return Err(self.err(
                "function.log_retention_days",
                format!(
                    "is {}: CloudWatch accepts one of {LOG_RETENTION_DAYS:?}",
                    raw.log_retention_days
                ),
            ));
        };
        let reserved_concurrency = match raw.reserved_concurrency {
            None => None,
            Some(n) if (0..=10_000).contains(&n) => Some(n as i32),
            Some(n) => {
                return Err(self.err(
                    "function.reserved_concurrency",
                    format!("is {n}: must be 0-10000 (0 stops all invocations); leave it out for unreserved"),
                ));
            }
        };
        let artifact = if raw.artifact.is_absolute() {
            raw.artifact
        } else {
            self.path
                .parent()
                .unwrap_or(Path::new("."))
                .join(raw.artifact)
        };
        Ok(FunctionSettings {
            name,
            // Both bounds were checked above, so these conversions cannot truncate.
            memory_mb: raw.memory_mb as i32,
            timeout_s: raw.timeout_s as i32,
            architecture,
            artifact,
            log_retention_days: log_retention_days as i32,
            reserved_concurrency,
        })
    }

    fn filter_part(
        &self,
        field: &str,
        value: Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        match value {
            Some(v) if v.is_empty() => {
                Err(self.err(field, "is empty: leave it out to match every key"))
            }
            Some(v) if v.len() > 1024 => {
                Err(self.err(field, "is longer than an S3 key (1024 bytes)"))
            }
            other => Ok(other),
        }
    }
}

fn is_stack_name(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_role_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn is_glue_database_name(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_workgroup_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `YYYY-MM-DD` naming a day that exists (leap years included).
fn is_calendar_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let number = |range: std::ops::Range<usize>| {
        let part = &s[range];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse::<u32>().ok()
        } else {
            None
        }
    };
    let (Some(year), Some(month), Some(day)) = (number(0..4), number(5..7), number(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    year >= 1 && (1..=days).contains(&day)
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// The S3 general-purpose bucket naming rules; `None` when `name` follows them all.
pub fn bucket_name_problem(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if !(3..=63).contains(&bytes.len()) {
        return Some("bucket names are 3-63 characters long");
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Some("bucket names use only lowercase letters, digits, dots and hyphens");
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Some("bucket names begin and end with a letter or digit");
    }
    if name.contains("..") {
        return Some("bucket names may not contain two adjacent dots");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Some("bucket names may not look like an IP address");
    }
    if ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return Some("bucket names may not start with `xn--`, `sthree-` or `amzn-s3-demo-`");
    }
    if ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        return Some(
            "bucket names may not end with `-s3alias`, `--ol-s3`, `.mrap`, `--x-s3` or `--table-s3`",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
stack = "demo"
[target]
region = "us-east-1"
endpoint = "http://127.0.0.1:4566"
credentials = "emulator"
[function]
architecture = "x86_64"
artifact = "../target/lambda-x86_64/bootstrap/bootstrap.zip"
"#;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("config/test.toml"), text, None).map_err(|e| e.to_string())
    }

    fn with(extra: &str) -> Result<Config, String> {
        parse(&format!("{MINIMAL}\n{extra}"))
    }

    #[test]
    fn minimal_config_gets_stack_derived_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.buckets.ingest, "demo-ingest");
        assert_eq!(c.buckets.raw, "demo-raw");
        assert_eq!(c.buckets.refined, "demo-refined");
        assert_eq!(c.buckets.noncurrent_days(BucketRole::Ingest), Some(7));
        assert_eq!(c.buckets.noncurrent_days(BucketRole::Raw), Some(90));
        assert_eq!(c.buckets.noncurrent_days(BucketRole::Refined), None);
        assert_eq!(c.role_name, "demo-function");
        assert_eq!(c.function.name, "demo");
        assert_eq!(c.function.memory_mb, 256);
        assert_eq!(c.function.timeout_s, 300);
        assert_eq!(c.function.log_retention_days, 14);
        assert_eq!(c.function.architecture, Architecture::X86_64);
        assert_eq!(
            c.function.artifact,
            Path::new("config/../target/lambda-x86_64/bootstrap/bootstrap.zip")
        );
        assert_eq!(c.target.credentials, Credentials::Emulator);
        assert_eq!(c.target.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(
            c.resource_tags().get(OWNERSHIP_TAG).map(String::as_str),
            Some("demo")
        );
        assert_eq!(
            c.catalog,
            CatalogSettings {
                database: "demo".into(),
                workgroup: "demo".into(),
                projection_start: DEFAULT_PROJECTION_START.into(),
            }
        );
        assert!(c.outputs.parquet);
        assert_eq!(
            c.alerts,
            Alerts {
                enabled: true,
                email: vec![],
                rejected_ratio: None
            }
        );
    }

    #[test]
    fn alerts_can_be_set() {
        let c = with("[alerts]\nemail = [\"oncall@example.com\", \"data@example.org\"]\nrejected_ratio = 0.25").unwrap();
        assert_eq!(c.alerts.email, ["oncall@example.com", "data@example.org"]);
        assert_eq!(c.alerts.rejected_ratio.map(Ratio::value), Some(0.25));
        let off = with("[alerts]\nenabled = false").unwrap();
        assert!(!off.alerts.enabled);
    }

    #[test]
    fn catalog_names_derive_from_the_stack_with_underscores() {
        let c = parse(&MINIMAL.replace("\"demo\"", "\"csv-ingest-2\"")).unwrap();
        assert_eq!(c.catalog.database, "csv_ingest_2");
        assert_eq!(c.catalog.workgroup, "csv-ingest-2");
    }

    #[test]
    fn catalog_and_outputs_can_be_set() {
        let c = with(
            "[catalog]\ndatabase = \"lake_users\"\nworkgroup = \"Analysts.1\"\nprojection_start = \"2024-02-29\"\n[outputs]\nparquet = false",
        )
        .unwrap();
        assert_eq!(c.catalog.database, "lake_users");
        assert_eq!(c.catalog.workgroup, "Analysts.1");
        assert_eq!(c.catalog.projection_start, "2024-02-29");
        assert!(!c.outputs.parquet);
    }

    #[test]
    fn calendar_dates_are_checked() {
        for good in ["2025-01-01", "2024-02-29", "2000-02-29", "1999-12-31"] {
            assert!(is_calendar_date(good), "{good}");
        }
        for bad in [
            "2025-1-01",
            "2025/01/01",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "2023-02-29",
            "1900-02-29",
            "2025-01-0a",
            "+025-01-01",
            "2025-01-01T00",
            "",
        ] {
            assert!(!is_calendar_date(bad), "{bad}");
        }
    }

    #[test]
    fn environment_endpoint_wins_over_the_file() {
        let c = Config::parse(
            Path::new("c.toml"),
            MINIMAL,
            Some("http://localhost:9999/".into()),
        )
        .unwrap();
        assert_eq!(c.target.endpoint.as_deref(), Some("http://localhost:9999"));
    }

    #[test]
    fn shipped_configs_parse() {
        for file in ["local.toml", "aws.example.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../config")
                .join(file);
            let c = Config::load(&path, None).unwrap_or_else(|e| panic!("{e}"));
            assert!(!c.stack.is_empty());
        }
    }

    /// Each bad config gives one line naming the file, the field and the rule.
    #[test]
    fn bad_configs_are_refused_with_the_field_and_rule() {
        let cases: &[(&str, &str)] = &[
            (
                "[buckets]\ningest = \"demo-raw\"",
                "config/test.toml: `buckets.ingest` equals buckets.raw",
            ),
            ("[buckets]\ningest = \"demo-refined\"", "S3→Lambda→S3 loop"),
            (
                "[buckets]\nraw = \"demo-refined\"",
                "`buckets.raw` equals buckets.refined",
            ),
            (
                "[buckets]\ningest = \"Demo\"",
                "`buckets.ingest` is \"Demo\": bucket names use only lowercase",
            ),
            ("[buckets]\nraw = \"ab\"", "3-63 characters"),
            (
                "[buckets]\nraw = \"-abc\"",
                "begin and end with a letter or digit",
            ),
            ("[buckets]\nraw = \"a..b\"", "two adjacent dots"),
            ("[buckets]\nraw = \"192.168.1.1\"", "IP address"),
            ("[buckets]\nraw = \"xn--abc\"", "may not start with"),
            ("[buckets]\nraw = \"abc-s3alias\"", "may not end with"),
            ("[role]\nname = \"bad name\"", "`role.name`"),
            (
                "[buckets]\ningest_noncurrent_days = 0",
                "`buckets.ingest_noncurrent_days` is 0: noncurrent versions are kept 1-36500 days",
            ),
            (
                "[buckets]\nraw_noncurrent_days = 40000",
                "`buckets.raw_noncurrent_days` is 40000",
            ),
            (
                "[notification]\nprefix = \"\"",
                "`notification.prefix` is empty",
            ),
            (
                "[tags]\n\"csv-ingest:stack\" = \"x\"",
                "set by the deployer",
            ),
            ("[tags]\n\"aws:foo\" = \"x\"", "may not start with `aws:`"),
            (
                "[catalog]\ndatabase = \"Users\"",
                "config/test.toml: `catalog.database` is \"Users\": Glue database names",
            ),
            (
                "[catalog]\ndatabase = \"my-db\"",
                "`catalog.database` is \"my-db\"",
            ),
            ("[catalog]\ndatabase = \"_db\"", "starting with a letter"),
            ("[catalog]\ndatabase = \"\"", "`catalog.database` is \"\""),
            (
                "[catalog]\nworkgroup = \"has space\"",
                "`catalog.workgroup` is \"has space\": Athena workgroup names",
            ),
            (
                "[catalog]\nprojection_start = \"2025-02-30\"",
                "`catalog.projection_start` is \"2025-02-30\": expected a calendar date as YYYY-MM-DD",
            ),
            (
                "[catalog]\nprojection_start = \"01/01/2025\"",
                "`catalog.projection_start`",
            ),
            ("[catalog]\nbucket = \"x\"", "unknown field `bucket`"),
            ("[outputs]\nparquet = \"yes\"", "config/test.toml:12:"),
            ("[outputs]\norc = true", "unknown field `orc`"),
            (
                "[alerts]\nemail = [\"not an address\"]",
                "`alerts.email[0]` is \"not an address\": expected an email address",
            ),
            (
                "[alerts]\nemail = [\"a@b.io\", \"A@B.io\"]",
                "`alerts.email[1]` is \"A@B.io\" again",
            ),
            (
                "[alerts]\nrejected_ratio = 1.5",
                "`alerts.rejected_ratio` is 1.5",
            ),
            (
                "[alerts]\nrejected_ratio = 0",
                "`alerts.rejected_ratio` is 0",
            ),
            (
                "[alerts]\nenabled = false\nemail = [\"a@b.io\"]",
                "`alerts.enabled` is false but",
            ),
            ("[alerts]\npager = true", "unknown field `pager`"),
            (
                "[bogus]\nx = 1",
                "config/test.toml:11: unknown field `bogus`",
            ),
        ];
        for (extra, expected) in cases {
            let err = with(extra).expect_err(extra);
            assert!(
                err.contains(expected),
                "{extra:?}: got {err:?}, want {expected:?}"
            );
            assert!(!err.contains('\n'), "{extra:?}: not one line: {err:?}");
        }
    }

    #[test]
    fn function_bounds_are_enforced() {
        let base = &MINIMAL[..MINIMAL.find("[function]").unwrap()];
        let cases: &[(&str, Option<&str>)] = &[
            (
                "memory_mb = 127",
                Some("`function.memory_mb` is 127: must be 128-10240"),
            ),
            ("memory_mb = 128", None),
            ("memory_mb = 10240", None),
            ("memory_mb = 10241", Some("must be 128-10240")),
            (
                "timeout_s = 0",
                Some("`function.timeout_s` is 0: must be 1-900"),
            ),
            ("timeout_s = 900", None),
            ("timeout_s = 901", Some("must be 1-900")),
            (
                "log_retention_days = 13",
                Some("`function.log_retention_days` is 13"),
            ),
            ("log_retention_days = 3653", None),
            ("name = \"has space\"", Some("`function.name`")),
            ("reserved_concurrency = 5", None),
            (
                "reserved_concurrency = -1",
                Some("`function.reserved_concurrency` is -1"),
            ),
            ("speed = 3", Some("unknown field `speed`")),
        ];
        for (line, expected) in cases {
            let text = format!(
                "{base}\n[function]\narchitecture = \"arm64\"\nartifact = \"x.zip\"\n{line}\n"
            );
            match (parse(&text), expected) {
                (Ok(_), None) => {}
                (Err(e), Some(want)) => assert!(e.contains(want), "{line}: got {e:?}"),
                (got, want) => panic!("{line}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn architecture_and_credentials_are_checked() {
        let text = MINIMAL.replace("\"x86_64\"", "\"amd64\"");
        assert!(
            parse(&text)
                .unwrap_err()
                .contains("`function.architecture` is \"amd64\"")
        );
        let text = MINIMAL.replace("endpoint = \"http://127.0.0.1:4566\"\n", "");
        assert!(parse(&text).unwrap_err().contains("no endpoint is set"));
        let text = MINIMAL.replace("\"emulator\"", "\"root\"");
        assert!(
            parse(&text)
                .unwrap_err()
                .contains("`target.credentials` is \"root\"")
        );
        let text = MINIMAL.replace("us-east-1", "mars");
        assert!(
            parse(&text)
                .unwrap_err()
                .contains("`target.region` is \"mars\"")
        );
        let text = MINIMAL.replace("http://127.0.0.1:4566", "127.0.0.1:4566");
        assert!(parse(&text).unwrap_err().contains("`target.endpoint`"));
    }

    #[test]
    fn missing_required_field_is_named() {
        let text = MINIMAL.replace("stack = \"demo\"\n", "");
        let err = parse(&text).unwrap_err();
        assert!(err.contains("missing field `stack`"), "{err}");
    }

    #[test]
    fn valid_bucket_names_pass() {
        for name in ["abc", "my.bucket-1", "a1b2c3", &"a".repeat(63)] {
            assert_eq!(bucket_name_problem(name), None, "{name}");
        }
    }
}
