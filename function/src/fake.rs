//! An in-memory [`ObjectStore`] for handler tests: objects, multipart uploads with S3's
//! completion rules, a call log, and fault injection by operation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::store::{ChunkStream, CompletedPart, ObjectStore, Operation, StoreError};

/// One storage call, in the order made. For a copy, `bucket`/`key` are the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub op: Operation,
    pub bucket: String,
    pub key: String,
    /// Body size for `PutObject` and `UploadPart`, else 0.
    pub size: usize,
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
}

#[derive(Debug, Default)]
struct Upload {
    bucket: String,
    key: String,
    parts: BTreeMap<i32, (String, Bytes)>,
}

#[derive(Debug)]
struct State {
    objects: BTreeMap<(String, String), Bytes>,
    uploads: BTreeMap<String, Upload>,
    next_upload: u64,
    log: Vec<Call>,
    counts: HashMap<Operation, usize>,
    faults: Vec<(Fault, usize)>,
    chunk_size: usize,
    min_part_size: usize,
    parts_in_flight: HashMap<String, usize>,
    max_parts_in_flight: usize,
}

/// The fake store; clones share state.
#[derive(Clone, Debug)]
pub struct FakeStore(Arc<Mutex<State>>);

impl Default for FakeStore {
    fn default() -> FakeStore {
        FakeStore::new()
    }
}

impl FakeStore {
    /// A store whose `GetObject` bodies come in 64 KiB chunks and that enforces S3's 5 MiB
    /// minimum for every part but the last.
    pub fn new() -> FakeStore {
        FakeStore(Arc::new(Mutex::new(State {
            objects: BTreeMap::new(),
            uploads: BTreeMap::new(),
            next_upload: 0,
            log: Vec::new(),
            counts: HashMap::new(),
            faults: Vec::new(),
            chunk_size: 64 * 1024,
            min_part_size: 5 * 1024 * 1024,
            parts_in_flight: HashMap::new(),
            max_parts_in_flight: 0,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has already failed.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn with_chunk_size(self, chunk_size: usize) -> FakeStore {
        self.state().chunk_size = chunk_size.max(1);
        self
    }

    pub fn with_min_part_size(self, min_part_size: usize) -> FakeStore {
        self.state().min_part_size = min_part_size;
        self
    }

    pub fn insert(&self, bucket: &str, key: &str, body: impl Into<Bytes>) {
        self.state()
            .objects
            .insert((bucket.to_owned(), key.to_owned()), body.into());
    }

    pub fn object(&self, bucket: &str, key: &str) -> Option<Bytes> {
        self.state()
            .objects
            .get(&(bucket.to_owned(), key.to_owned()))
            .cloned()
    }

    /// Every object of `bucket`, by key.
    pub fn objects(&self, bucket: &str) -> BTreeMap<String, Bytes> {
        self.state()
            .objects
            .iter()
            .filter(|((b, _), _)| b == bucket)
            .map(|((_, k), v)| (k.clone(), v.clone()))
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

    pub fn max_parts_in_flight(&self) -> usize {
        self.state().max_parts_in_flight
    }

    pub fn inject(&self, fault: Fault) {
        let mut s = self.state();
        let base = match &fault {
            Fault::Fail { op, .. } => s.counts.get(op).copied().unwrap_or(0),
            Fault::FailOn { op, key, .. } => s
                .log
                .iter()
                .filter(|c| c.op == *op && c.key == *key)
                .count(),
            Fault::GetMidStream { .. } => s.counts.get(&Operation::GetObject).copied().unwrap_or(0),
        };
        s.faults.push((fault, base));
    }

    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Logs the call and counts it; returns the injected failure, if this call gets one, and
    /// the mid-stream break point for a `GetObject`.
    fn enter(
        &self,
        op: Operation,
        bucket: &str,
        key: &str,
        size: usize,
    ) -> Result<Option<usize>, StoreError> {
        let mut s = self.state();
        s.log.push(Call {
            op,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size,
        });
        let n = {
            let c = s.counts.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        let on_key = s.log.iter().filter(|c| c.op == op && c.key == key).count();
        let mut hit = None;
        for (i, (fault, base)) in s.faults.iter().enumerate() {
            match fault {
                Fault::Fail { op: o, nth, code } if *o == op && base + nth == n => {
                    hit = Some((i, Err(*code)));
                    break;
                }
                Fault::FailOn {
                    op: o,
                    key: k,
                    nth,
                    code,
                } if *o == op && *k == key && base + nth == on_key => {
                    hit = Some((i, Err(*code)));
                    break;
                }
                Fault::GetMidStream { nth, after }
                    if op == Operation::GetObject && base + nth == n =>
                {
                    hit = Some((i, Ok(*after)));
                    break;
                }
                _ => {}
            }
        }
        match hit {
            None => Ok(None),
            Some((i, outcome)) => {
                s.faults.remove(i);
                match outcome {
                    Err(code) => Err(StoreError::service(op, bucket, key, code, "injected fault")
                        .with_request_id(Some(format!("fake-{n}")))),
                    Ok(after) => Ok(Some(after)),
                }
            }
        }
    }
}

/// A body served from memory in fixed-size chunks, optionally breaking part-way.
pub struct FakeBody {
    data: Bytes,
    pos: usize,
    chunk_size: usize,
    break_at: Option<usize>,
    bucket: String,
    key: String,
}

impl ChunkStream for FakeBody {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        if let Some(at) = self.break_at
            && self.pos >= at
        {
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
        if let Some(at) = self.break_at {
            end = end.min(at.max(self.pos + 1));
        }
        let chunk = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(Some(chunk))
    }
}

impl ObjectStore for FakeStore {
    type Body = FakeBody;

    async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
    ) -> Result<(), StoreError> {
        self.enter(Operation::CopyObject, dst_bucket, dst_key, 0)?;
        let body = self.object(src_bucket, src_key).ok_or_else(|| {
            StoreError::service(
                Operation::CopyObject,
                dst_bucket,
                dst_key,
                "NoSuchKey",
                "the specified key does not exist",
            )
        })?;
        self.insert(dst_bucket, dst_key, body);
        Ok(())
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<FakeBody, StoreError> {
        let break_at = self.enter(Operation::GetObject, bucket, key, 0)?;
        let data = self.object(bucket, key).ok_or_else(|| {
            StoreError::service(
                Operation::GetObject,
                bucket,
                key,
                "NoSuchKey",
                "the specified key does not exist",
            )
        })?;
        Ok(FakeBody {
            data,
            pos: 0,
            chunk_size: self.state().chunk_size,
            break_at,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    async fn put_object(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.enter(Operation::PutObject, bucket, key, body.len())?;
        self.insert(bucket, key, body);
        Ok(())
    }

    async fn create_multipart_upload(&self, bucket: &str, key: &str) -> Result<String, StoreError> {
        self.enter(Operation::CreateMultipartUpload, bucket, key, 0)?;
        let mut s = self.state();
        s.next_upload += 1;
        let id = format!("upload-{}", s.next_upload);
        s.uploads.insert(
            id.clone(),
            Upload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
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
        self.enter(Operation::UploadPart, bucket, key, body.len())?;
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
        let Some(upload) = s.uploads.get_mut(upload_id) else {
            return Err(StoreError::service(
                Operation::UploadPart,
                bucket,
                key,
                "NoSuchUpload",
                "the specified upload does not exist",
            ));
        };
        let e_tag = format!("\"{upload_id}-{part_number}-{}\"", body.len());
        upload.parts.insert(part_number, (e_tag.clone(), body));
        Ok(e_tag)
    }

    async fn complete_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StoreError> {
        self.enter(Operation::CompleteMultipartUpload, bucket, key, 0)?;
        let mut s = self.state();
        let min = s.min_part_size;
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
            if i + 1 < parts.len() && data.len() < min {
                return fail(
                    "EntityTooSmall",
                    format!("part {} is {} bytes", part.part_number, data.len()),
                );
            }
            body.extend_from_slice(data);
        }
        s.uploads.remove(upload_id);
        s.objects
            .insert((bucket.to_owned(), key.to_owned()), Bytes::from(body));
        Ok(())
    }

    async fn abort_multipart_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), StoreError> {
        self.enter(Operation::AbortMultipartUpload, bucket, key, 0)?;
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
