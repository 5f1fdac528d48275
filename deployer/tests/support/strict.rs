//! The fault proxy's strict mode: what AWS does and the emulator does not, each rule
//! switchable, each counting the requests it examined and the ones it refused (in AWS's own
//! words and protocol), so a test can prove it exercised the behaviour.
//!
//! - `PutBucketNotificationConfiguration` naming a function: "Unable to validate the following
//!   destination configurations" until S3 "sees" the invoke permission (`wait` after
//!   `AddPermission` for that function; never, without one).
//! - `CreateFunction`: "The role defined for the function cannot be assumed by Lambda" for
//!   `wait` after `CreateRole` of its role.
//! - `UpdateFunctionConfiguration`/`UpdateFunctionCode` right after another create or update of
//!   the same function: `ResourceConflictException` (the earlier update is in progress), once.
//! - `PutFunctionEventInvokeConfig`: the destination refused (the role may not send to it yet)
//!   for `wait` after the last `PutRolePolicy`.
//! - `CreateQueue` within `wait` of `DeleteQueue` of that name: `QueueDeletedRecently`.
//! - `CreateBucket` with tags: `AccessDenied` (no `s3:TagResource`).
//! - `CreateBucket` within `wait` of `DeleteBucket` of that name: `OperationAborted`.
//! - A bucket configuration call within `wait` of `CreateBucket`: `NoSuchBucket`, once.
//! - `HeadBucket` of a bucket listed in `bucket_regions`: `301` with `x-amz-bucket-region`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::fault_proxy::{Protocol, form_value};

/// Which rules are on (see the module docs), and how long each "for a while" lasts.
#[derive(Clone, Debug, Default)]
pub struct Strict {
    pub notification_waits_for_permission: Option<Duration>,
    pub role_not_assumable_after_create: Option<Duration>,
    pub conflict_after_update: bool,
    pub destination_refused_after_role_policy: Option<Duration>,
    pub queue_deleted_recently: Option<Duration>,
    pub refuse_create_bucket_tags: bool,
    pub bucket_operation_aborted_after_delete: Option<Duration>,
    pub no_such_bucket_after_create: Option<Duration>,
    pub bucket_regions: HashMap<String, String>,
}

/// The rules' names, as counted.
pub mod rule {
    pub const NOTIFICATION: &str =
        "PutBucketNotificationConfiguration before S3 sees the permission";
    pub const ROLE: &str = "CreateFunction before IAM propagates the role";
    pub const CONFLICT: &str = "UpdateFunction* during another update";
    pub const DESTINATION: &str =
        "PutFunctionEventInvokeConfig before IAM propagates the role policy";
    pub const QUEUE: &str = "CreateQueue within 60 s of DeleteQueue";
    pub const BUCKET_TAGS: &str = "CreateBucket with tags (no s3:TagResource)";
    pub const BUCKET_ABORTED: &str = "CreateBucket just after DeleteBucket";
    pub const BUCKET_NOT_YET: &str = "bucket configuration just after CreateBucket";
    pub const REGION: &str = "HeadBucket of a bucket in another region";
}

impl Strict {
    /// Every rule on, each "for a while" lasting `wait`.
    pub fn all(wait: Duration) -> Strict {
        Strict {
            notification_waits_for_permission: Some(wait),
            role_not_assumable_after_create: Some(wait),
            conflict_after_update: true,
            destination_refused_after_role_policy: Some(wait),
            queue_deleted_recently: Some(wait),
            refuse_create_bucket_tags: true,
            bucket_operation_aborted_after_delete: Some(wait),
            no_such_bucket_after_create: Some(Duration::from_millis(300)),
            bucket_regions: HashMap::new(),
        }
    }
}

/// One request, as the rules need it.
pub struct Seen<'a> {
    pub protocol: Protocol,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

impl Seen<'_> {
    fn text(&self) -> &str {
        std::str::from_utf8(self.body).unwrap_or_default()
    }

    /// `Action=X` of a query-protocol request.
    fn action(&self) -> Option<&str> {
        form_value(self.body, "Action")
    }

    /// The `X-Amz-Target` operation of an awsJson request (`AmazonSQS.CreateQueue` → `CreateQueue`).
    fn target(&self) -> Option<&str> {
        self.headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
    }

    /// A string field of a JSON body.
    fn json(&self, field: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(self.body).ok()?;
        v.get(field)?.as_str().map(str::to_owned)
    }

    /// The Lambda function named by a REST path `/<date>/functions/<name>/<rest>`.
    fn lambda_function(&self, rest: &str) -> Option<String> {
        let mut parts = self.path.trim_start_matches('/').split('/');
        let (_date, functions, name) = (parts.next()?, parts.next()?, parts.next()?);
        (functions == "functions" && parts.next() == Some(rest) && parts.next().is_none())
            .then(|| decode(name))
    }

    /// The bucket of a path-style S3 request on the bucket itself (no key; the SDK sends
    /// `/bucket/`).
    fn bucket(&self) -> Option<&str> {
        let p = self.path.trim_start_matches('/').trim_end_matches('/');
        (!p.is_empty() && !p.contains('/')).then_some(p)
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[derive(Debug, Default)]
struct State {
    role_created: HashMap<String, Instant>,
    permission_added: HashMap<String, Instant>,
    /// Functions with a create or update the emulator just accepted: the next update conflicts.
    updating: HashSet<String>,
    role_policy_put: Option<Instant>,
    queue_deleted: HashMap<String, Instant>,
    bucket_deleted: HashMap<String, Instant>,
    bucket_created: HashMap<String, Instant>,
    /// Buckets that already got their one `NoSuchBucket`.
    not_yet_answered: HashSet<String>,
    /// Rule → (requests examined, requests refused).
    counts: BTreeMap<&'static str, (u64, u64)>,
}

/// The strict rules and what they remember.
#[derive(Debug, Default)]
pub struct StrictMode {
    rules: Strict,
    state: Mutex<State>,
}

/// What one refusal looks like on the wire.
struct Refusal {
    status: u16,
    code: &'static str,
    message: String,
}

impl StrictMode {
    pub fn new(rules: Strict) -> StrictMode {
        StrictMode {
            rules,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rule → (requests examined, requests refused).
    pub fn counts(&self) -> BTreeMap<&'static str, (u64, u64)> {
        self.state().counts.clone()
    }

    /// The refusal for this request, if a rule refuses it.
    pub fn refuse(&self, seen: &Seen<'_>) -> Option<Response<Full<Bytes>>> {
        let examined = self.examine(seen);
        let mut s = self.state();
        let mut first = None;
        for (rule, refusal) in examined {
            let entry = s.counts.entry(rule).or_default();
            entry.0 += 1;
            if let Some(refusal) = refusal
                && first.is_none()
            {
                entry.1 += 1;
                first = Some(refusal);
            }
        }
        first.map(|refusal| answer(seen.protocol, refusal))
    }

    /// The rules that examine this request, each with its refusal if it refuses.
    fn examine(&self, seen: &Seen<'_>) -> Vec<(&'static str, Option<Refusal>)> {
        let mut out = Vec::new();
        if let Some(one) = self.examine_one(seen) {
            out.push(one);
        }
        // `CreateBucket` is examined by two rules: tags, and a name deleted moments ago.
        if seen.protocol == Protocol::S3
            && *seen.method == Method::PUT
            && seen.query.is_empty()
            && let (Some(bucket), Some(wait)) = (
                seen.bucket(),
                self.rules.bucket_operation_aborted_after_delete,
            )
        {
            let aborted = self
                .state()
                .bucket_deleted
                .get(bucket)
                .is_some_and(|t| t.elapsed() < wait);
            out.push((
                rule::BUCKET_ABORTED,
                aborted.then(|| Refusal {
                    status: 409,
                    code: "OperationAborted",
                    message: "A conflicting conditional operation is currently in progress against this resource. Please try again.".into(),
                }),
            ));
        }
        out
    }

    fn examine_one(&self, seen: &Seen<'_>) -> Option<(&'static str, Option<Refusal>)> {
        let r = &self.rules;
        let mut s = self.state();
        let young = |at: Option<&Instant>, wait: Duration| at.is_some_and(|t| t.elapsed() < wait);
        match seen.protocol {
            Protocol::S3 => {
                let bucket = seen.bucket()?.to_owned();
                let q = seen.query;
                if *seen.method == Method::HEAD && q.is_empty() {
                    let region = r.bucket_regions.get(&bucket)?;
                    return Some((
                        rule::REGION,
                        Some(Refusal {
                            status: 301,
                            code: "",
                            message: region.clone(),
                        }),
                    ));
                }
                if *seen.method == Method::PUT && q.is_empty() {
                    if !r.refuse_create_bucket_tags {
                        return None;
                    }
                    let tagged = seen.text().contains("<Tag>") || seen.text().contains("<Tags>");
                    return Some((
                        rule::BUCKET_TAGS,
                        tagged.then(|| Refusal {
                            status: 403,
                            code: "AccessDenied",
                            message: "User is not authorized to perform: s3:TagResource".into(),
                        }),
                    ));
                }
                if *seen.method == Method::PUT
                    && q.starts_with("notification")
                    && let Some(wait) = r.notification_waits_for_permission
                {
                    let text = seen.text();
                    let function = text
                        .rsplit(":function:")
                        .next()
                        .filter(|_| text.contains(":function:"))
                        .and_then(|rest| rest.split('<').next())
                        .map(str::to_owned);
                    if let Some(function) = function {
                        let seen_by_s3 = s
                            .permission_added
                            .get(&function)
                            .is_some_and(|t| t.elapsed() >= wait);
                        return Some((
                            rule::NOTIFICATION,
                            (!seen_by_s3).then(|| Refusal {
                                status: 400,
                                code: "InvalidArgument",
                                message:
                                    "Unable to validate the following destination configurations"
                                        .into(),
                            }),
                        ));
                    }
                }
                if *seen.method == Method::PUT && !q.is_empty() {
                    let wait = r.no_such_bucket_after_create?;
                    let fresh = young(s.bucket_created.get(&bucket), wait)
                        && s.not_yet_answered.insert(bucket.clone());
                    return Some((
                        rule::BUCKET_NOT_YET,
                        fresh.then(|| Refusal {
                            status: 404,
                            code: "NoSuchBucket",
                            message: "The specified bucket does not exist".into(),
                        }),
                    ));
                }
                None
            }
            Protocol::RestJson => {
                if *seen.method == Method::POST && seen.path.ends_with("/functions") {
                    let wait = r.role_not_assumable_after_create?;
                    let role = seen.json("Role")?;
                    let name = role.rsplit('/').next().unwrap_or_default().to_owned();
                    return Some((
                        rule::ROLE,
                        young(s.role_created.get(&name), wait).then(|| Refusal {
                            status: 400,
                            code: "InvalidParameterValueException",
                            message:
                                "The role defined for the function cannot be assumed by Lambda."
                                    .into(),
                        }),
                    ));
                }
                let update = seen
                    .lambda_function("configuration")
                    .or_else(|| seen.lambda_function("code"));
                if let (Some(function), true) = (update, *seen.method == Method::PUT) {
                    if !r.conflict_after_update {
                        return None;
                    }
                    let busy = s.updating.remove(&function);
                    return Some((
                        rule::CONFLICT,
                        busy.then(|| Refusal {
                            status: 409,
                            code: "ResourceConflictException",
                            message: format!("The operation cannot be performed at this time. An update is in progress for resource: {function}"),
                        }),
                    ));
                }
                if seen.lambda_function("event-invoke-config").is_some()
                    && *seen.method == Method::PUT
                {
                    let wait = r.destination_refused_after_role_policy?;
                    return Some((
                        rule::DESTINATION,
                        young(s.role_policy_put.as_ref(), wait).then(|| Refusal {
                            status: 400,
                            code: "InvalidParameterValueException",
                            message: "The function's execution role does not have permissions to call SendMessage on the destination".into(),
                        }),
                    ));
                }
                None
            }
            Protocol::AwsJson => {
                if seen.target() != Some("CreateQueue") {
                    return None;
                }
                let wait = r.queue_deleted_recently?;
                let name = seen.json("QueueName")?;
                Some((
                    rule::QUEUE,
                    young(s.queue_deleted.get(&name), wait).then(|| Refusal {
                        status: 400,
                        code: "QueueDeletedRecently",
                        message: "You must wait 60 seconds after deleting a queue before you can create another with the same name.".into(),
                    }),
                ))
            }
            Protocol::Query => None,
        }
    }

    /// The emulator accepted `seen` (`status` 2xx): remember what the rules depend on.
    pub fn observe(&self, seen: &Seen<'_>, status: u16) {
        if !(200..300).contains(&status) {
            return;
        }
        let now = Instant::now();
        let mut s = self.state();
        match seen.protocol {
            Protocol::Query => match seen.action() {
                Some("CreateRole") => {
                    if let Some(name) = form_value(seen.body, "RoleName") {
                        s.role_created.insert(decode(name), now);
                    }
                }
                Some("PutRolePolicy") => s.role_policy_put = Some(now),
                _ => {}
            },
            Protocol::RestJson => {
                if *seen.method == Method::POST && seen.path.ends_with("/functions") {
                    if let Some(name) = seen.json("FunctionName") {
                        s.updating.insert(name);
                    }
                } else if let Some(name) = seen.lambda_function("policy") {
                    s.permission_added.insert(name, now);
                } else if let Some(name) = seen
                    .lambda_function("configuration")
                    .or_else(|| seen.lambda_function("code"))
                {
                    s.updating.insert(name);
                }
            }
            Protocol::AwsJson => {
                if seen.target() == Some("DeleteQueue")
                    && let Some(url) = seen.json("QueueUrl")
                {
                    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
                    s.queue_deleted.insert(name, now);
                }
            }
            Protocol::S3 => {
                if let (Some(bucket), true) = (seen.bucket(), seen.query.is_empty()) {
                    if *seen.method == Method::PUT {
                        s.bucket_created.insert(bucket.to_owned(), now);
                        s.not_yet_answered.remove(bucket);
                    } else if *seen.method == Method::DELETE {
                        s.bucket_deleted.insert(bucket.to_owned(), now);
                    }
                }
            }
        }
    }
}

/// A refusal in the words and protocol of the service that would send it.
fn answer(protocol: Protocol, refusal: Refusal) -> Response<Full<Bytes>> {
    let mut response = match protocol {
        Protocol::S3 if refusal.status == 301 => {
            let mut r = Response::new(Full::new(Bytes::new()));
            if let Ok(region) = HeaderValue::from_str(&refusal.message) {
                r.headers_mut().insert("x-amz-bucket-region", region);
            }
            r
        }
        Protocol::S3 => {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>strict</RequestId></Error>",
                refusal.code, refusal.message
            );
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/xml"));
            r
        }
        Protocol::RestJson => {
            let body = serde_json::json!({"Type": "User", "message": refusal.message}).to_string();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            let h = r.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            if let Ok(code) = HeaderValue::from_str(refusal.code) {
                h.insert("x-amzn-errortype", code);
            }
            r
        }
        Protocol::AwsJson => {
            let body = serde_json::json!({
                "__type": format!("com.amazonaws.sqs#{}", refusal.code),
                "message": refusal.message,
            })
            .to_string();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            let h = r.headers_mut();
            h.insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.0"),
            );
            if let Ok(code) =
                HeaderValue::from_str(&format!("AWS.SimpleQueueService.{};Sender", refusal.code))
            {
                h.insert("x-amzn-query-error", code);
            }
            r
        }
        Protocol::Query => Response::new(Full::new(Bytes::new())),
    };
    *response.status_mut() =
        StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    response
        .headers_mut()
        .insert("x-amzn-requestid", HeaderValue::from_static("strict"));
    response
}
