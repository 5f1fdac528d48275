//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of the emulator: answers a seeded,
//! deterministic share of requests with throttling (in each AWS protocol's own words) or drops
//! the connection before or after forwarding, and counts what it did.
//!
//! The protocol of a request, which decides how a throttle is worded, is read from the request:
//! an `X-Amz-Target` header ⇒ awsJson (CloudWatch Logs, SQS); a form-urlencoded body with
//! `Action=` ⇒ query (IAM, STS); then the SigV4 credential scope's service (`lambda` ⇒ Lambda
//! REST-JSON, `s3` ⇒ S3); unsigned, a path starting with an API date (`/2015-03-31/functions…`)
//! ⇒ Lambda REST-JSON; anything else ⇒ S3.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::strict::{Seen, Strict, StrictMode};

/// How an AWS service words its answers, hence how a throttle must look to its SDK client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// S3's REST-XML: `503 SlowDown`.
    S3,
    /// Lambda's REST-JSON: `400`, `x-amzn-ErrorType: ThrottlingException`.
    RestJson,
    /// awsJson 1.0/1.1 (CloudWatch Logs, SQS), recognised by `X-Amz-Target`.
    AwsJson,
    /// awsQuery (IAM, STS): `400` with an `<ErrorResponse>` whose code is `Throttling`.
    Query,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::S3 => "s3",
            Protocol::RestJson => "rest-json",
            Protocol::AwsJson => "aws-json",
            Protocol::Query => "query",
        }
    }

    /// Decides the protocol from the request's method-independent parts.
    pub fn of(path: &str, headers: &HeaderMap, body: &[u8]) -> Protocol {
        if headers.contains_key("x-amz-target") {
            return Protocol::AwsJson;
        }
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form && form_value(body, "Action").is_some() {
            return Protocol::Query;
        }
        match signing_service(headers).as_deref() {
            Some("lambda") => Protocol::RestJson,
            Some("s3") => Protocol::S3,
            _ if is_lambda_path(path) => Protocol::RestJson,
            _ => Protocol::S3,
        }
    }
}

/// Lambda's REST paths are an API date and a resource: `/2015-03-31/functions…`,
/// `/2017-03-31/tags/…` (an S3 bucket named like a date is told apart by its signature).
fn is_lambda_path(path: &str) -> bool {
    let mut segments = path.strip_prefix('/').unwrap_or_default().split('/');
    let date = segments.next().unwrap_or_default().as_bytes();
    let resource = segments.next().unwrap_or_default();
    date.len() == 10
        && date.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
        && !resource.is_empty()
}

/// The service of a SigV4 `Authorization` header's credential scope
/// (`Credential=AKID/20250101/us-east-1/lambda/aws4_request`).
fn signing_service(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_owned)
}

/// A value of an `application/x-www-form-urlencoded` body (names are not decoded: AWS's aren't encoded).
pub fn form_value<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Forward,
    Throttle(Protocol),
    /// Close the connection without forwarding or answering.
    DropBefore,
    /// Forward, let the emulator execute the call, then close without answering.
    DropAfter,
}

/// Which faults to inject, and how often. Shares are percentages of requests.
#[derive(Clone, Debug)]
pub struct Faults {
    pub seed: u64,
    pub throttle_percent: u32,
    pub drop_before_percent: u32,
    pub drop_after_percent: u32,
    /// The first request of each protocol is throttled, so every throttle wording shows up
    /// whatever the dice say.
    pub throttle_first_of_each_protocol: bool,
    /// The first attempt of each distinct mutating call (same operation on the same resource)
    /// is forwarded and its answer lost: every create is then retried after it happened.
    pub lose_first_answer_of_each_mutating_call: bool,
    /// Never fault one SDK call (its `amz-sdk-invocation-id`, shared by its retries) more than
    /// this many times, so a call's bounded attempts are never all spent by chance.
    pub max_faults_per_call: u32,
}

impl Faults {
    /// No fault at all: a plain forwarder.
    pub fn none() -> Faults {
        Faults {
            seed: 1,
            throttle_percent: 0,
            drop_before_percent: 0,
            drop_after_percent: 0,
            throttle_first_of_each_protocol: false,
            lose_first_answer_of_each_mutating_call: false,
            max_faults_per_call: u32::MAX,
        }
    }

    /// `percent` of requests faulted: about half throttled, a third dropped before forwarding,
    /// the rest dropped after; every throttle wording and both drops at least once.
    pub fn mixed(seed: u64, percent: u32, max_faults_per_call: u32) -> Faults {
        let throttle = percent / 2;
        let drop_before = percent / 3;
        Faults {
            seed,
            throttle_percent: throttle,
            drop_before_percent: drop_before,
            drop_after_percent: percent - throttle - drop_before,
            throttle_first_of_each_protocol: true,
            lose_first_answer_of_each_mutating_call: false,
            max_faults_per_call,
        }
    }
}

/// What the proxy saw and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests received (every attempt of every call).
    pub requests: u64,
    /// Requests the emulator received (including those whose answer was then dropped).
    pub forwarded: u64,
    /// `503 SlowDown` answers (S3).
    pub s3_slow_down: u64,
    /// `400 ThrottlingException` answers (Lambda REST-JSON, awsJson).
    pub json_throttling: u64,
    /// `400 Throttling` answers (IAM, STS query).
    pub query_throttling: u64,
    pub dropped_before: u64,
    pub dropped_after: u64,
    /// Requests the emulator could not be reached for (answered `502`).
    pub upstream_errors: u64,
    pub by_protocol: BTreeMap<&'static str, u64>,
    /// Answers lost after forwarding, by operation (`lose_first_answer_of_each_mutating_call`
    /// and random drops alike).
    pub lost_answers: BTreeMap<String, u64>,
    /// How the emulator answered the retry of a call whose answer was lost, by operation:
    /// `200`, or the status and error code (`409 ResourceConflictException`): a call that is
    /// not idempotent shows up here with an error.
    pub retried_after_lost_answer: BTreeMap<String, String>,
}

impl FaultCounts {
    /// The retries after a lost answer that the emulator refused.
    pub fn refused_retries(&self) -> BTreeMap<&str, &str> {
        self.retried_after_lost_answer
            .iter()
            .filter(|(_, outcome)| !outcome.starts_with('2'))
            .map(|(op, outcome)| (op.as_str(), outcome.as_str()))
            .collect()
    }

    pub fn faults(&self) -> u64 {
        self.s3_slow_down
            + self.json_throttling
            + self.query_throttling
            + self.dropped_before
            + self.dropped_after
    }

    /// The fault kinds never injected.
    pub fn kinds_missing(&self) -> Vec<&'static str> {
        [
            ("s3 SlowDown", self.s3_slow_down),
            ("json ThrottlingException", self.json_throttling),
            ("query Throttling", self.query_throttling),
            ("dropped before forwarding", self.dropped_before),
            ("dropped after forwarding", self.dropped_after),
        ]
        .into_iter()
        .filter(|(_, n)| *n == 0)
        .map(|(kind, _)| kind)
        .collect()
    }
}

impl fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocols: Vec<String> = self
            .by_protocol
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        write!(
            f,
            "{} requests ({}), {} forwarded, {} faults: {} s3 SlowDown, {} json ThrottlingException, \
             {} query Throttling, {} dropped before forwarding, {} dropped after forwarding; {} upstream errors",
            self.requests,
            protocols.join(", "),
            self.forwarded,
            self.faults(),
            self.s3_slow_down,
            self.json_throttling,
            self.query_throttling,
            self.dropped_before,
            self.dropped_after,
            self.upstream_errors
        )
    }
}

/// A tiny xorshift64 generator: deterministic for a seed, good enough to pick faults.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        // Spread small seeds; zero is the one state xorshift cannot leave.
        let state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        XorShift(if state == 0 { 1 } else { state })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform enough in `0..n` for the shares used here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One request as far as the fault decision needs it.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    pub protocol: Protocol,
    /// The operation as the proxy can tell it (`AddPermission`, `PUT /bucket?tagging`, …).
    pub operation: String,
    /// Identifies the call on its resource, so "the first attempt of this call" can be told.
    pub call_key: String,
    pub mutating: bool,
    /// `amz-sdk-invocation-id`: the same for every attempt of one SDK call.
    pub invocation: Option<String>,
}

impl RequestInfo {
    pub fn of(method: &Method, path: &str, query: &str, headers: &HeaderMap, body: &[u8]) -> Self {
        let protocol = Protocol::of(path, headers, body);
        let named = |operation: &str| {
            (
                operation.to_owned(),
                !["Get", "List", "Describe", "Head", "Filter"]
                    .iter()
                    .any(|read| operation.starts_with(read)),
            )
        };
        let (operation, call_key, mutating) = match protocol {
            Protocol::AwsJson => {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let (op, mutating) = named(target.rsplit('.').next().unwrap_or(target));
                // The resource is in the body; one key per operation is fine-grained enough.
                (op, target.to_owned(), mutating)
            }
            Protocol::Query => {
                let action = form_value(body, "Action").unwrap_or_default();
                let (op, mutating) = named(action);
                let service = signing_service(headers).unwrap_or_default();
                (op, format!("{service}:{action}"), mutating)
            }
            // Smithy RPC v2 CBOR (CloudWatch): `POST /service/<Service>/operation/<Operation>`.
            Protocol::S3 | Protocol::RestJson
                if path.starts_with("/service/") && path.contains("/operation/") =>
            {
                let op = path.rsplit('/').next().unwrap_or_default();
                let (op, mutating) = named(op);
                (op, path.to_owned(), mutating)
            }
            Protocol::S3 | Protocol::RestJson => {
                let mut names: Vec<&str> = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.split('=').next().unwrap_or(p))
                    .collect();
                names.sort_unstable();
                let shape = if names.is_empty() {
                    format!("{method} {path}")
                } else {
                    format!("{method} {path}?{}", names.join("&"))
                };
                let mutating = !matches!(*method, Method::GET | Method::HEAD);
                (shape.clone(), shape, mutating)
            }
        };
        let invocation = headers
            .get("amz-sdk-invocation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        RequestInfo {
            protocol,
            operation,
            call_key,
            mutating,
            invocation,
        }
    }
}

/// The fault decisions: pure given the sequence of requests.
#[derive(Debug)]
pub struct Decider {
    faults: Faults,
    rng: XorShift,
    protocols_seen: HashSet<Protocol>,
    answers_lost: HashSet<String>,
    faults_per_call: HashMap<String, u32>,
}

impl Decider {
    pub fn new(faults: Faults) -> Decider {
        Decider {
            rng: XorShift::new(faults.seed),
            faults,
            protocols_seen: HashSet::new(),
            answers_lost: HashSet::new(),
            faults_per_call: HashMap::new(),
        }
    }

    pub fn decide(&mut self, request: &RequestInfo) -> Action {
        // Always draw, so one request's decision never shifts the dice of the next.
        let roll = self.rng.below(100) as u32;
        let first_of_protocol = self.protocols_seen.insert(request.protocol);
        let spent = request
            .invocation
            .as_ref()
            .and_then(|id| self.faults_per_call.get(id))
            .copied()
            .unwrap_or(0);
        if spent >= self.faults.max_faults_per_call {
            return Action::Forward;
        }
        let f = &self.faults;
        let action = if f.throttle_first_of_each_protocol && first_of_protocol {
            Action::Throttle(request.protocol)
        } else if f.lose_first_answer_of_each_mutating_call
            && request.mutating
            && self.answers_lost.insert(request.call_key.clone())
        {
            Action::DropAfter
        } else if roll < f.throttle_percent {
            Action::Throttle(request.protocol)
        } else if roll < f.throttle_percent + f.drop_before_percent {
            Action::DropBefore
        } else if roll < f.throttle_percent + f.drop_before_percent + f.drop_after_percent {
            Action::DropAfter
        } else {
            Action::Forward
        };
        if action != Action::Forward
            && let Some(id) = &request.invocation
        {
            *self.faults_per_call.entry(id.clone()).or_default() += 1;
        }
        action
    }
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    decider: Mutex<Decider>,
    counts: Mutex<FaultCounts>,
    /// Calls (`amz-sdk-invocation-id`) whose answer was lost, and their operation.
    lost: Mutex<HashMap<String, String>>,
    /// Strict mode: AWS's refusals the emulator does not make.
    strict: Option<Arc<StrictMode>>,
}

impl Shared {
    fn count(&self, update: impl FnOnce(&mut FaultCounts)) {
        if let Ok(mut counts) = self.counts.lock() {
            update(&mut counts);
        }
    }
}

/// The connection is closed without an answer.
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

/// A running proxy; stops (with every connection it holds) when dropped.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, faults: Faults) -> std::io::Result<FaultProxy> {
        FaultProxy::start_with(upstream, faults, None).await
    }

    /// A proxy in strict mode: `rules` on top of `faults`.
    pub async fn start_strict(
        upstream: &str,
        faults: Faults,
        rules: Strict,
    ) -> std::io::Result<FaultProxy> {
        FaultProxy::start_with(upstream, faults, Some(Arc::new(StrictMode::new(rules)))).await
    }

    async fn start_with(
        upstream: &str,
        faults: Faults,
        strict: Option<Arc<StrictMode>>,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            decider: Mutex::new(Decider::new(faults)),
            counts: Mutex::new(FaultCounts::default()),
            lost: Mutex::new(HashMap::new()),
            strict,
        });
        let accepting = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            // Dropped with the accept loop: aborts every connection task.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let shared = Arc::clone(&accepting);
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |req| {
                                let shared = Arc::clone(&shared);
                                async move { handle(&shared, req).await }
                            });
                            // An error here is a dropped connection (ours or the client's).
                            let _ = hyper::server::conn::http1::Builder::new()
                                .keep_alive(true)
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(FaultProxy { url, shared, task })
    }

    /// `http://127.0.0.1:<port>`: the endpoint to give the deployer.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Strict mode's rule → (requests examined, requests refused).
    pub fn strict_counts(&self) -> BTreeMap<&'static str, (u64, u64)> {
        self.shared
            .strict
            .as_ref()
            .map(|s| s.counts())
            .unwrap_or_default()
    }

    pub fn counts(&self) -> FaultCounts {
        self.shared
            .counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers that describe one hop, not the message: never forwarded either way.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn end_to_end(headers: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let info = RequestInfo::of(&parts.method, path, query, &parts.headers, &body);
    let seen = Seen {
        protocol: info.protocol,
        method: &parts.method,
        path,
        query,
        headers: &parts.headers,
        body: &body,
    };
    if let Some(refusal) = shared.strict.as_ref().and_then(|s| s.refuse(&seen)) {
        shared.count(|c| c.requests += 1);
        return Ok(refusal);
    }
    let action = shared
        .decider
        .lock()
        .map(|mut d| d.decide(&info))
        .unwrap_or(Action::Forward);
    shared.count(|c| {
        c.requests += 1;
        *c.by_protocol.entry(info.protocol.name()).or_default() += 1;
        match action {
            Action::Forward => {}
            Action::Throttle(Protocol::S3) => c.s3_slow_down += 1,
            Action::Throttle(Protocol::RestJson | Protocol::AwsJson) => c.json_throttling += 1,
            Action::Throttle(Protocol::Query) => c.query_throttling += 1,
            Action::DropBefore => c.dropped_before += 1,
            // Counted once the emulator has answered: see below.
            Action::DropAfter => {}
        }
    });
    match action {
        Action::Throttle(protocol) => return Ok(throttle(protocol)),
        Action::DropBefore => return Err(Dropped),
        Action::Forward | Action::DropAfter => {}
    }

    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut upstream = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path_and_query}", shared.upstream));
    // The Host header goes through as the client signed it.
    for (name, value) in end_to_end(&parts.headers) {
        upstream = upstream.header(name, value);
    }
    let Ok(upstream) = upstream.body(Full::new(body.clone())) else {
        return Ok(bad_gateway(shared, "cannot build the upstream request"));
    };
    shared.count(|c| c.forwarded += 1);
    let response = match shared.client.request(upstream).await {
        Ok(response) => response,
        Err(e) => return Ok(bad_gateway(shared, &e.to_string())),
    };
    let (parts, answer) = response.into_parts();
    if let Some(strict) = &shared.strict {
        strict.observe(&seen, parts.status.as_u16());
    }
    let body = answer;
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Ok(bad_gateway(shared, &e.to_string())),
    };
    if action == Action::DropAfter {
        shared.count(|c| {
            c.dropped_after += 1;
            *c.lost_answers.entry(info.operation.clone()).or_default() += 1;
        });
        if let (Some(id), Ok(mut lost)) = (&info.invocation, shared.lost.lock()) {
            lost.insert(id.clone(), info.operation.clone());
        }
        return Err(Dropped);
    }
    let retry_of_lost = info
        .invocation
        .as_ref()
        .and_then(|id| shared.lost.lock().ok()?.remove(id));
    if let Some(operation) = retry_of_lost {
        let outcome = match error_code(&parts.headers, &body) {
            Some(code) if !parts.status.is_success() => format!("{} {code}", parts.status.as_u16()),
            _ => parts.status.as_u16().to_string(),
        };
        shared.count(|c| {
            c.retried_after_lost_answer.insert(operation, outcome);
        });
    }
    let mut answer = Response::builder().status(parts.status);
    for (name, value) in end_to_end(&parts.headers) {
        answer = answer.header(name, value);
    }
    answer
        .body(Full::new(body))
        .or_else(|_| Ok(bad_gateway(shared, "cannot build the answer")))
}

/// The error code of an AWS error answer: `x-amzn-ErrorType`, or `<Code>` (XML), or `__type` (JSON).
fn error_code(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    if let Some(kind) = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
    {
        return Some(kind.split(':').next().unwrap_or(kind).to_owned());
    }
    let text = std::str::from_utf8(body).ok()?;
    let between = |start: &str, end: &str| {
        let from = text.find(start)? + start.len();
        let len = text[from..].find(end)?;
        Some(text[from..from + len].to_owned())
    };
    between("<Code>", "</Code>").or_else(|| {
        let after = &text[text.find("\"__type\"")? + 8..];
        let value = after
            .trim_start()
            .strip_prefix(':')?
            .trim_start()
            .strip_prefix('"')?;
        let code = &value[..value.find('"')?];
        Some(code.rsplit('#').next().unwrap_or(code).to_owned())
    })
}

fn bad_gateway(shared: &Shared, why: &str) -> Response<Full<Bytes>> {
    shared.count(|c| c.upstream_errors += 1);
    let mut response = Response::new(Full::new(Bytes::from(format!(
        "fault proxy: upstream error: {why}"
    ))));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// A throttle as the protocol's service words it.
pub fn throttle(protocol: Protocol) -> Response<Full<Bytes>> {
    let (status, content_type, error_type, body): (u16, &str, Option<&str>, &'static str) =
        match protocol {
            Protocol::S3 => (
                503,
                "application/xml",
                None,
                "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
            ),
            Protocol::RestJson => (
                400,
                "application/json",
                Some("ThrottlingException"),
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ),
            Protocol::AwsJson => (
                400,
                "application/x-amz-json-1.1",
                Some("ThrottlingException"),
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            ),
            Protocol::Query => (
                400,
                "text/xml",
                None,
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
            ),
        };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_static("fault-proxy-throttle"),
    );
    if let Some(error_type) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    }
    response
}
