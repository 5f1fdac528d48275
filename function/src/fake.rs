//! An in-memory [`ObjectStore`] for handler tests that holds the handler to S3's rules where
//! the emulator does not: object versions and `versionId` reads, ETag preconditions on reads,
//! copies and writes, the 1,024-byte key limit, the 5 GiB copy-source and single-request
//! limits, the 5 MiB minimum part (but the last) and the 10,000-part limit, all injectable so
//! tests can use small numbers. Also a call log, fault injection by operation, a gate that
//! pauses one invocation at its n-th call (to interleave two), and a failed-events queue.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::store::{
    ChunkStream, CompletedPart, Condition, FailedEvents, ObjectInfo, ObjectStore, Operation, Pin,
    QueueError, Source, StoreError, WriteOptions,
};

/// S3's limits, as the fake enforces them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_key_bytes: usize,
    /// `CopyObject` refuses a larger source.
    pub max_copy_source: u64,
    /// `PutObject` and each part (uploaded or copied).
    pub max_request_bytes: u64,
    /// Every part of a completed upload but the last.
    pub min_part: u64,
    pub max_parts: i32,
}

impl Limits {
    pub const S3: Limits = Limits {
        max_key_bytes: 1024,
        max_copy_source: 5 * 1024 * 1024 * 1024,
        max_request_bytes: 5 * 1024 * 1024 * 1024,
        min_part: 5 * 1024 * 1024,
        max_parts: 10_000,
    };
}

/// One storage call, in the order made. For a copy, `bucket`/`key` are the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub op: Operation,
    pub bucket: String,
    pub key: String,
    /// Body size for `PutObject` and `UploadPart`, range length for `UploadPartCopy`, else 0.
    pub size: u64,
    /// The version a read or copy was pinned to, or the precondition of a write.
    pub pin: Option<String>,
}

/// A failure to inject. Each fires once, on the `nth` (1-based) call of its operation counted
/// from when it was added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The call itself fails with this S3 error code.
    Fail {
        op: Operation,
        nth: usize,
        code: &'static str,
    },
    /// The `nth` call of the operation on the object `key` fails with this S3 error code.
    FailOn {
        op: Operation,
        key: &'static str,
        nth: usize,
        code: &'static str,
    },
    /// The `nth` `GetObject` succeeds but its body breaks after `after` bytes.
    GetMidStream { nth: usize, after: usize },
    /// The `nth` `GetObject` succeeds but its body stops sending after `after` bytes and never
    /// ends (a dead connection).
    GetHangs { nth: usize, after: usize },
    /// The `nth` call of the operation never answers.
    Hang { op: Operation, nth: usize },
}

#[derive(Clone, Debug)]
struct Version {
    /// `None` in an unversioned bucket (S3's "null" version).
    id: Option<String>,
    e_tag: String,
    body: Bytes,
    options: WriteOptions,
}

impl Version {
    fn info(&self) -> ObjectInfo {
        ObjectInfo {
            size: self.body.len() as u64,
            e_tag: self.e_tag.clone(),
            version_id: self.id.clone(),
            content_type: self.options.content_type.clone(),
            metadata: self.options.metadata.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct Upload {
    bucket: String,
    key: String,
    options: WriteOptions,
    parts: BTreeMap<i32, (String, Bytes)>,
}

#[derive(Debug)]
struct State {
    /// (bucket, key) → versions, oldest first; the last one is current.
    objects: BTreeMap<(String, String), Vec<Version>>,
    versioned: HashSet<String>,
    missing_buckets: HashSet<String>,
    uploads: BTreeMap<String, Upload>,
    next_upload: u64,
    next_version: u64,
    log: Vec<Call>,
    counts: HashMap<Operation, usize>,
    faults: Vec<(Fault, usize)>,
    chunk_size: usize,
    limits: Limits,
    parts_in_flight: HashMap<String, usize>,
    max_parts_in_flight: usize,
}

/// Pauses the calls of one invocation: the first `n` pass, the next ones wait until `open`.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<GateInner>);

#[derive(Debug, Default)]
struct GateInner {
    state: Mutex<GateState>,
    opened: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct GateState {
    /// `None`: every call passes.
    allowed: Option<usize>,
    passed: usize,
    waiting: usize,
}

impl Gate {
    /// A gate that lets `n` calls through, then holds every further call.
    pub fn pause_after(n: usize) -> Gate {
        let gate = Gate::default();
        gate.lock().allowed = Some(n);
        gate
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets every held and future call through.
    pub fn open(&self) {
        self.lock().allowed = None;
        self.0.opened.notify_waiters();
    }

    /// Calls that have passed so far.
    pub fn passed(&self) -> usize {
        self.lock().passed
    }

    /// Whether some call is being held.
    pub fn holding(&self) -> bool {
        self.lock().waiting > 0
    }

    async fn pass(&self) {
        loop {
            let opened = self.0.opened.notified();
            {
                let mut s = self.lock();
                if s.allowed.is_none_or(|a| s.passed < a) {
                    s.passed += 1;
                    return;
                }
                s.waiting += 1;
            }
            opened.await;
            self.lock().waiting -= 1;
        }
    }
}

/// The fake store; clones share state (a gated clone shares it too).
#[derive(Clone, Debug)]
pub struct FakeStore {
    state: Arc<Mutex<State>>,
    gate: Option<Gate>,
}

impl Default for FakeStore {
    fn default() -> FakeStore {
        FakeStore::new()
    }
}

/// A content-derived ETag (FNV-1a), so equal bytes have equal ETags as with S3's MD5.
fn e_tag_of(body: &[u8], parts: Option<usize>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in body {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    match parts {
        None => format!("\"{h:016x}\""),
        Some(n) => format!("\"{h:016x}-{n}\""),
    }
}

impl FakeStore {
    /// A store with S3's limits whose `GetObject` bodies come in 64 KiB chunks. Buckets exist
    /// when first used and are unversioned unless [`versioned`](Self::versioned).
    pub fn new() -> FakeStore {
        FakeStore {
            state: Arc::new(Mutex::new(State {
                objects: BTreeMap::new(),
                versioned: HashSet::new(),
                missing_buckets: HashSet::new(),
                uploads: BTreeMap::new(),
                next_upload: 0,
                next_version: 0,
                log: Vec::new(),
                counts: HashMap::new(),
                faults: Vec::new(),
                chunk_size: 64 * 1024,
                limits: Limits::S3,
                parts_in_flight: HashMap::new(),
                max_parts_in_flight: 0,
            })),
            gate: None,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has already failed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle on the same objects whose calls pass `gate`.
    pub fn gated(&self, gate: &Gate) -> FakeStore {
        FakeStore {
            state: Arc::clone(&self.state),
            gate: Some(gate.clone()),
        }
    }

    pub fn with_chunk_size(self, chunk_size: usize) -> FakeStore {
        self.state().chunk_size = chunk_size.max(1);
        self
    }

    pub fn with_limits(self, limits: Limits) -> FakeStore {
        self.state().limits = limits;
        self
    }

    pub fn with_min_part_size(self, min_part: usize) -> FakeStore {
        self.state().limits.min_part = min_part as u64;
        self
    }

    /// Versioning on for `bucket`: every write adds a version with an id.
    pub fn versioned(self, bucket: &str) -> FakeStore {
        self.state().versioned.insert(bucket.to_owned());
        self
    }

    /// Makes `bucket` not exist (`NoSuchBucket` on every call naming it).
    pub fn remove_bucket(&self, bucket: &str) {
        let mut s = self.state();
        s.missing_buckets.insert(bucket.to_owned());
        s.objects.retain(|(b, _), _| b != bucket);
    }

    /// Writes an object as an uploader would; returns its version id (when versioned) and ETag.
    pub fn insert(
        &self,
        bucket: &str,
        key: &str,
        body: impl Into<Bytes>,
    ) -> (Option<String>, String) {
        let mut s = self.state();
        let body = body.into();
        let e_tag = e_tag_of(&body, None);
        let v = s.write(
            bucket,
            key,
            body,
            e_tag.clone(),
            WriteOptions {
                content_type: Some("text/csv".to_owned()),
                metadata: BTreeMap::from([("uploader".to_owned(), "third-party".to_owned())]),
            },
        );
        (v, e_tag)
    }

    /// The current version's bytes.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Bytes> {
        self.state().current(bucket, key).map(|v| v.body.clone())
    }

    /// The current version's size, ETag, version and metadata.
    pub fn info(&self, bucket: &str, key: &str) -> Option<ObjectInfo> {
        self.state().current(bucket, key).map(Version::info)
    }

    /// Every version's bytes, oldest first.
    pub fn versions(&self, bucket: &str, key: &str) -> Vec<Bytes> {
        self.state()
            .objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .map(|vs| vs.iter().map(|v| v.body.clone()).collect())
            .unwrap_or_default()
    }

    /// Deletes one version (a lifecycle rule expiring it, an uploader removing it).
    pub fn delete_version(&self, bucket: &str, key: &str, version_id: &str) {
        if let Some(vs) = self
            .state()
            .objects
            .get_mut(&(bucket.to_owned(), key.to_owned()))
        {
            vs.retain(|v| v.id.as_deref() != Some(version_id));
        }
    }

    /// Every current object of `bucket`, by key.
    pub fn objects(&self, bucket: &str) -> BTreeMap<String, Bytes> {
        self.state()
            .objects
            .iter()
            .filter(|((b, _), vs)| b == bucket && !vs.is_empty())
            .filter_map(|((_, k), vs)| vs.last().map(|v| (k.clone(), v.body.clone())))
            .collect()
    }

    pub fn open_uploads(&self) -> usize {
        self.state().uploads.len()
    }

    pub fn log(&self) -> Vec<Call> {
        self.state().log.clone()
    }

    pub fn calls(&self, op: Operation) -> usize {
        self.state().log.iter().filter(|c| c.op == op).count()
    }

    /// Calls that write to `bucket` (puts, uploads, copies into it, completions).
    pub fn writes_to(&self, bucket: &str) -> Vec<Call> {
        self.state()
            .log
            .iter()
            .filter(|c| {
                c.bucket == bucket
                    && matches!(
                        c.op,
                        Operation::PutObject
                            | Operation::CopyObject
                            | Operation::CreateMultipartUpload
                            | Operation::UploadPart
                            | Operation::UploadPartCopy
                            | Operation::CompleteMultipartUpload
                    )
            })
            .cloned()
            .collect()
    }

    pub fn clear_log(&self) {
        self.state().log.clear();
    }

    pub fn max_parts_in_flight(&self) -> usize {
        self.state().max_parts_in_flight
    }

    pub fn inject(&self, fault: Fault) {
        let mut s = self.state();
        let base = match &fault {
            Fault::Fail { op, .. } | Fault::Hang { op, .. } => {
                s.counts.get(op).copied().unwrap_or(0)
            }
            Fault::FailOn { op, key, .. } => s
                .log
                .iter()
                .filter(|c| c.op == *op && c.key == *key)
                .count(),
            Fault::GetMidStream { .. } | Fault::GetHangs { .. } => {
                s.counts.get(&Operation::GetObject).copied().unwrap_or(0)
            }
        };
        s.faults.push((fault, base));
    }

    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Passes the gate, logs the call and counts it; returns the injected failure, if this
    /// call gets one, and what a `GetObject` body should do.
    async fn enter(
        &self,
        op: Operation,
        bucket: &str,
        key: &str,
        size: u64,
        pin: Option<String>,
    ) -> Result<BodyFault, StoreError> {
        if let Some(gate) = &self.gate {
            gate.pass().await;
        }
        let outcome = self.state().enter(op, bucket, key, size, pin);
        match outcome {
            Entered::Hang => std::future::pending().await,
            Entered::Fail(e) => Err(e),
            Entered::Go(body) => Ok(body),
        }
    }
}

/// What an injected fault makes a `GetObject` body do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum BodyFault {
    #[default]
    None,
    BreakAt(usize),
    HangAt(usize),
}

enum Entered {
    Go(BodyFault),
    Fail(StoreError),
    Hang,
}

impl State {
    fn enter(
        &mut self,
        op: Operation,
        bucket: &str,
        key: &str,
        size: u64,
        pin: Option<String>,
    ) -> Entered {
        self.log.push(Call {
            op,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
            pin,
        });
        let n = {
            let c = self.counts.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        let on_key = self
            .log
            .iter()
            .filter(|c| c.op == op && c.key == key)
            .count();
        let hit = self.faults.iter().position(|(fault, base)| match fault {
            Fault::Fail { op: o, nth, .. } | Fault::Hang { op: o, nth } => {
                *o == op && base + nth == n
            }
            Fault::FailOn {
                op: o, key: k, nth, ..
            } => *o == op && *k == key && base + nth == on_key,
            Fault::GetMidStream { nth, .. } | Fault::GetHangs { nth, .. } => {
                op == Operation::GetObject && base + nth == n
            }
        });
        let outcome = match hit.map(|i| self.faults.remove(i).0) {
            None => Entered::Go(BodyFault::None),
            Some(Fault::Fail { code, .. } | Fault::FailOn { code, .. }) => Entered::Fail(
                StoreError::service(op, bucket, key, code, "injected fault")
                    .with_request_id(Some(format!("fake-{n}"))),
            ),
            Some(Fault::GetMidStream { after, .. }) => Entered::Go(BodyFault::BreakAt(after)),
            Some(Fault::GetHangs { after, .. }) => Entered::Go(BodyFault::HangAt(after)),
            Some(Fault::Hang { .. }) => Entered::Hang,
        };
        if let Entered::Go(_) = outcome {
            if self.missing_buckets.contains(bucket) {
                return Entered::Fail(StoreError::service(
                    op,
                    bucket,
                    key,
                    "NoSuchBucket",
                    "the specified bucket does not exist",
                ));
            }
            if key.len() > self.limits.max_key_bytes {
                return Entered::Fail(StoreError::service(
                    op,
                    bucket,
                    key,
                    "KeyTooLongError",
                    format!(
                        "your key is too long: {} bytes (at most {})",
                        key.len(),
                        self.limits.max_key_bytes
                    ),
                ));
            }
        }
        outcome
    }

    fn current(&self, bucket: &str, key: &str) -> Option<&Version> {
        self.objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .and_then(|vs| vs.last())
    }

    /// The version `pin` names, or the error S3 answers.
    fn pinned(&self, op: Operation, source: Source<'_>) -> Result<&Version, StoreError> {
        let err = |code: &str, message: &str| {
            StoreError::service(op, source.bucket, source.key, code, message)
        };
        if self.missing_buckets.contains(source.bucket) {
            return Err(err("NoSuchBucket", "the specified bucket does not exist"));
        }
        let versions = self
            .objects
            .get(&(source.bucket.to_owned(), source.key.to_owned()))
            .filter(|vs| !vs.is_empty())
            .ok_or_else(|| err("NoSuchKey", "the specified key does not exist"))?;
        match source.pin {
            Pin::Version(id) => versions
                .iter()
                .find(|v| v.id.as_deref() == Some(id) || (v.id.is_none() && id == "null"))
                .ok_or_else(|| err("NoSuchVersion", "the specified version does not exist")),
            Pin::ETag(e_tag) => {
                let current = versions.last().ok_or_else(|| err("NoSuchKey", "gone"))?;
                if current.e_tag.trim_matches('"') == e_tag.trim_matches('"') {
                    Ok(current)
                } else {
                    Err(err(
                        "PreconditionFailed",
                        "at least one of the pre-conditions you specified did not hold",
                    ))
                }
            }
            Pin::Current => versions.last().ok_or_else(|| err("NoSuchKey", "gone")),
        }
    }

    fn check_condition(
        &self,
        op: Operation,
        bucket: &str,
        key: &str,
        condition: &Condition,
    ) -> Result<(), StoreError> {
        let current = self.current(bucket, key);
        let holds = match condition {
            Condition::None => true,
            Condition::IfAbsent => current.is_none(),
            Condition::IfMatch(e_tag) => current.is_some_and(|v| v.e_tag == *e_tag),
        };
        if holds {
            Ok(())
        } else {
            Err(StoreError::service(
                op,
                bucket,
                key,
                "PreconditionFailed",
                "at least one of the pre-conditions you specified did not hold",
            ))
        }
    }

    fn write(
        &mut self,
        bucket: &str,
        key: &str,
        body: Bytes,
        e_tag: String,
        options: WriteOptions,
    ) -> Option<String> {
        let id = if self.versioned.contains(bucket) {
            self.next_version += 1;
            Some(format!("v{:04}", self.next_version))
        } else {
            None
        };
        let versions = self
            .objects
            .entry((bucket.to_owned(), key.to_owned()))
            .or_default();
        if id.is_none() {
            versions.clear();
        }
        versions.push(Version {
            id: id.clone(),
            e_tag,
            body,
            options,
        });
        id
    }
}

/// A body served from memory in fixed-size chunks, optionally breaking or hanging part-way.
pub struct FakeBody {
    data: Bytes,
    pos: usize,
    chunk_size: usize,
    fault: BodyFault,
    bucket: String,
    key: String,
}

impl ChunkStream for FakeBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        let stop = match self.fault {
            BodyFault::None => None,
            BodyFault::BreakAt(at) | BodyFault::HangAt(at) => Some(at),
        };
        if let Some(at) = stop
            && self.pos >= at
        {
            if let BodyFault::HangAt(_) = self.fault {
                std::future::pending::<()>().await;
            }
            return Err(StoreError::transport(
                Operation::GetObject,
                &self.bucket,
                &self.key,
                "connection reset by peer (injected)",
            ));
        }
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let mut end = self
            .pos
            .saturating_add(self.chunk_size)
            .min(self.data.len());
        if let Some(at) = stop {
            end = end.min(at.max(self.pos + 1));
        }
        let chunk = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(Some(chunk))
    }
}

fn pin_text(pin: &Pin) -> String {
    match pin {
        Pin::Version(v) => format!("versionId={v}"),
        Pin::ETag(e) => format!("if-match={e}"),
        Pin::Current => "current".to_owned(),
    }
}

fn condition_text(condition: &Condition) -> Option<String> {
    match condition {
        Condition::None => None,
        Condition::IfAbsent => Some("if-none-match=*".to_owned()),
        Condition::IfMatch(e) => Some(format!("if-match={e}")),
    }
}

impl ObjectStore for FakeStore {
    type Body = FakeBody;

    async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        pin: &Pin,
    ) -> Result<Option<ObjectInfo>, StoreError> {
        self.enter(Operation::HeadObject, bucket, key, 0, Some(pin_text(pin)))
            .await?;
        let s = self.state();
        let source = Source { bucket, key, pin };
        match s.pinned(Operation::HeadObject, source) {
            Ok(v) => Ok(Some(v.info())),
            Err(e) if matches!(e.code.as_deref(), Some("NoSuchKey" | "NoSuchVersion")) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn copy_object(
        &self,
        source: Source<'_>,
        dst_bucket: &str,
        dst_key: &str,
    ) -> Result<(), StoreError> {
        self.enter(
            Operation::CopyObject,
            dst_bucket,
            dst_key,
            0,
            Some(pin_text(source.pin)),
        )
        .await?;
        let mut s = self.state();
        let v = s.pinned(Operation::CopyObject, source)?.clone();
        if v.body.len() as u64 > s.limits.max_copy_source {
            return Err(StoreError::service(
                Operation::CopyObject,
                dst_bucket,
                dst_key,
                "InvalidRequest",
                format!(
                    "The specified copy source is larger than the maximum allowable size for a copy source: {}",
                    s.limits.max_copy_source
                ),
            ));
        }
        s.write(dst_bucket, dst_key, v.body, v.e_tag, v.options);
        Ok(())
    }

    async fn get_object(&self, source: Source<'_>) -> Result<FakeBody, StoreError> {
        let fault = self
            .enter(
                Operation::GetObject,
                source.bucket,
                source.key,
                0,
                Some(pin_text(source.pin)),
            )
            .await?;
        let s = self.state();
        let data = s.pinned(Operation::GetObject, source)?.body.clone();
        Ok(FakeBody {
            data,
            pos: 0,
            chunk_size: s.chunk_size,
            fault,
            bucket: source.bucket.to_owned(),
            key: source.key.to_owned(),
        })
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &WriteOptions,
        condition: &Condition,
    ) -> Result<(), StoreError> {
        self.enter(
            Operation::PutObject,
            bucket,
            key,
            body.len() as u64,
            condition_text(condition),
        )
        .await?;
        let mut s = self.state();
        if body.len() as u64 > s.limits.max_request_bytes {
            return Err(StoreError::service(
                Operation::PutObject,
                bucket,
                key,
                "EntityTooLarge",
                "your proposed upload exceeds the maximum allowed object size",
            ));
        }
        s.check_condition(Operation::PutObject, bucket, key, condition)?;
        let e_tag = e_tag_of(&body, None);
        s.write(bucket, key, body, e_tag, options.clone());
        Ok(())
    }

    async fn create_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        options: &WriteOptions,
    ) -> Result<String, StoreError> {
        self.enter(Operation::CreateMultipartUpload, bucket, key, 0, None)
            .await?;
        let mut s = self.state();
        s.next_upload += 1;
        let id = format!("upload-{}", s.next_upload);
        s.uploads.insert(
            id.clone(),
            Upload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                options: options.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Bytes,
    ) -> Result<String, StoreError> {
        self.enter(Operation::UploadPart, bucket, key, body.len() as u64, None)
            .await?;
        {
            let mut s = self.state();
            let n = {
                let n = s.parts_in_flight.entry(upload_id.to_owned()).or_insert(0);
                *n += 1;
                *n
            };
            s.max_parts_in_flight = s.max_parts_in_flight.max(n);
        }
        // Let the handler (and other part uploads) run while this part is "on the wire".
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        let mut s = self.state();
        if let Some(n) = s.parts_in_flight.get_mut(upload_id) {
            *n -= 1;
        }
        // S3 keeps what came over the wire, not the sender's buffer: once the call returns,
        // the caller may reuse it (and the handler does).
        s.store_part(
            Operation::UploadPart,
            bucket,
            key,
            upload_id,
            part_number,
            Bytes::copy_from_slice(&body),
        )
    }

    async fn upload_part_copy(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        source: Source<'_>,
        range: Range<u64>,
    ) -> Result<String, StoreError> {
        self.enter(
            Operation::UploadPartCopy,
            bucket,
            key,
            range.end.saturating_sub(range.start),
            Some(pin_text(source.pin)),
        )
        .await?;
        tokio::task::yield_now().await;
        let mut s = self.state();
        let v = s.pinned(Operation::UploadPartCopy, source)?;
        let len = v.body.len() as u64;
        if range.start >= range.end || range.end > len {
            return Err(StoreError::service(
                Operation::UploadPartCopy,
                bucket,
                key,
                "InvalidRange",
                format!("range {range:?} is not within the source's {len} bytes"),
            ));
        }
        // Both ends are within a body held in memory, so they fit in usize.
        let body = v.body.slice(range.start as usize..range.end as usize);
        s.store_part(
            Operation::UploadPartCopy,
            bucket,
            key,
            upload_id,
            part_number,
            body,
        )
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        condition: &Condition,
    ) -> Result<(), StoreError> {
        self.enter(
            Operation::CompleteMultipartUpload,
            bucket,
            key,
            0,
            condition_text(condition),
        )
        .await?;
        let mut s = self.state();
        let limits = s.limits;
        let fail = |code: &str, message: String| {
            Err(StoreError::service(
                Operation::CompleteMultipartUpload,
                bucket,
                key,
                code,
                message,
            ))
        };
        let Some(upload) = s.uploads.get(upload_id) else {
            return fail("NoSuchUpload", "the specified upload does not exist".into());
        };
        if upload.bucket != bucket || upload.key != key {
            return fail("NoSuchUpload", "upload belongs to another object".into());
        }
        if parts.is_empty() {
            return fail("MalformedXML", "no parts".into());
        }
        let mut body = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if part.part_number != i as i32 + 1 {
                return fail(
                    "InvalidPartOrder",
                    format!("part {} out of order", part.part_number),
                );
            }
            let Some((e_tag, data)) = upload.parts.get(&part.part_number) else {
                return fail(
                    "InvalidPart",
                    format!("part {} was not uploaded", part.part_number),
                );
            };
            if *e_tag != part.e_tag {
                return fail(
                    "InvalidPart",
                    format!("part {} etag mismatch", part.part_number),
                );
            }
            if i + 1 < parts.len() && (data.len() as u64) < limits.min_part {
                return fail(
                    "EntityTooSmall",
                    format!("part {} is {} bytes", part.part_number, data.len()),
                );
            }
            body.extend_from_slice(data);
        }
        // A failed precondition leaves the upload open (it can be completed or aborted later).
        s.check_condition(Operation::CompleteMultipartUpload, bucket, key, condition)?;
        let options = s
            .uploads
            .remove(upload_id)
            .map(|u| u.options)
            .unwrap_or_default();
        let e_tag = e_tag_of(&body, Some(parts.len()));
        s.write(bucket, key, Bytes::from(body), e_tag, options);
        Ok(())
    }

    async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.enter(Operation::AbortMultipartUpload, bucket, key, 0, None)
            .await?;
        match self.state().uploads.remove(upload_id) {
            Some(_) => Ok(()),
            None => Err(StoreError::service(
                Operation::AbortMultipartUpload,
                bucket,
                key,
                "NoSuchUpload",
                "the specified upload does not exist",
            )),
        }
    }
}

impl State {
    fn store_part(
        &mut self,
        op: Operation,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Bytes,
    ) -> Result<String, StoreError> {
        let limits = self.limits;
        let err =
            |code: &str, message: String| Err(StoreError::service(op, bucket, key, code, message));
        if !(1..=limits.max_parts).contains(&part_number) {
            return err(
                "InvalidArgument",
                format!(
                    "part number must be an integer between 1 and {}, inclusive",
                    limits.max_parts
                ),
            );
        }
        if body.len() as u64 > limits.max_request_bytes {
            return err(
                "EntityTooLarge",
                format!("part {part_number} exceeds the maximum allowed size"),
            );
        }
        let Some(upload) = self.uploads.get_mut(upload_id) else {
            return err(
                "NoSuchUpload",
                "the specified upload does not exist".to_owned(),
            );
        };
        let e_tag = format!("\"{upload_id}-{part_number}-{}\"", body.len());
        upload.parts.insert(part_number, (e_tag.clone(), body));
        Ok(e_tag)
    }
}

/// An in-memory failed-events queue.
#[derive(Clone, Debug, Default)]
pub struct FakeQueue {
    messages: Arc<Mutex<Vec<String>>>,
    /// `Some(code)`: the next send fails with it.
    fail_next: Arc<Mutex<Option<&'static str>>>,
    /// No `FAILED_EVENTS_QUEUE` configured.
    pub unconfigured: bool,
}

impl FakeQueue {
    /// A handler without `FAILED_EVENTS_QUEUE`.
    pub fn unconfigured() -> FakeQueue {
        FakeQueue {
            unconfigured: true,
            ..FakeQueue::default()
        }
    }

    pub fn messages(&self) -> Vec<serde_json::Value> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|m| serde_json::from_str(m).unwrap_or(serde_json::Value::Null))
            .collect()
    }

    pub fn fail_next(&self, code: &'static str) {
        *self.fail_next.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
    }
}

impl FailedEvents for FakeQueue {
    fn configured(&self) -> bool {
        !self.unconfigured
    }

    async fn send(&self, body: String) -> Result<(), QueueError> {
        if let Some(code) = self
            .fail_next
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(QueueError {
                queue: "fake".to_owned(),
                code: Some(code.to_owned()),
                message: "injected".to_owned(),
            });
        }
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(body);
        Ok(())
    }
}
