//! Bounded-memory writing of one output object: one `PutObject` while it stays small, a
//! multipart upload (at most `max_parts_in_flight` parts uploading at once) once it outgrows a
//! part, committed only at the very end (conditionally: see `newest`) and aborted on any
//! failure, so no partial object is ever visible.

use std::collections::VecDeque;

use bytes::Bytes;
use shared::bounds::{Output, max_output_bytes};
use tokio::task::JoinHandle;

use crate::store::{CompletedPart, Condition, ObjectStore, Operation, StoreError, WriteOptions};

/// 5 MiB, S3's minimum part size: four outputs streaming at once stay well inside 128 MB of
/// Lambda memory for every file the time budget admits at that size.
pub const DEFAULT_PART_SIZE: usize = 5 * 1024 * 1024;
/// S3's limit on the parts of one upload.
pub const MAX_PARTS: i32 = 10_000;

/// How outputs are cut into parts and how many part uploads may overlap processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// The smallest part size (at least 5 MiB against real S3). An output is handed off as a
    /// part once its buffer holds at least its part size (`part_size_for`: this, or more for
    /// a large input), so parts are slightly larger than that, except the last.
    pub part_size: usize,
    /// Part uploads of one output that may run while processing goes on (at least 1). Memory
    /// per output is about `(max_parts_in_flight + 1) * part size`.
    pub max_parts_in_flight: usize,
    /// The most parts one upload may have (S3: 10,000).
    pub max_parts: i32,
}

impl Default for UploadConfig {
    fn default() -> UploadConfig {
        UploadConfig {
            part_size: DEFAULT_PART_SIZE,
            max_parts_in_flight: 2,
            max_parts: MAX_PARTS,
        }
    }
}

impl UploadConfig {
    /// The part size of `output` for an input of `input_size` bytes: the smallest multiple of
    /// `part_size` with which the largest that output can get (`shared::bounds`) fits in
    /// `max_parts` parts (parts are handed off once they reach it, so they are never smaller).
    pub fn part_size_for(&self, output: Output, input_size: u64) -> usize {
        let base = u64::try_from(self.part_size.max(1)).unwrap_or(u64::MAX);
        let parts = u64::try_from(self.max_parts.max(1)).unwrap_or(1);
        let needed = max_output_bytes(output, input_size).div_ceil(parts);
        let rounded = needed.div_ceil(base).saturating_mul(base).max(base);
        usize::try_from(rounded).unwrap_or(usize::MAX)
    }

    /// A fresh output buffer for parts of `part_size`: room for one part plus the output of a
    /// few feeds past it, so filling it rarely reallocates (untouched capacity costs no
    /// resident memory).
    pub fn new_buffer(part_size: usize) -> Vec<u8> {
        Vec::with_capacity(part_size + part_size / 4)
    }
}

/// An unfinished multipart upload. Dropping it cancels the part uploads still running (the
/// upload itself is discarded by [`OutputUpload::abort`], or by the bucket's lifecycle rule).
struct Multipart {
    upload_id: String,
    next_part: i32,
    done: Vec<CompletedPart>,
    in_flight: VecDeque<JoinHandle<Result<SentPart, StoreError>>>,
}

/// A part the store has taken, and a handle on its bytes: once the store has let go of them
/// too, the buffer is reused for a later part instead of a fresh one.
struct SentPart {
    part: CompletedPart,
    body: Bytes,
}

impl Drop for Multipart {
    fn drop(&mut self) {
        for task in &self.in_flight {
            task.abort();
        }
    }
}

/// Waits for one part upload task. A panic inside it is re-raised here (a bug, not an S3
/// failure); a cancelled task only happens while tearing down, and reads as a failed part.
async fn join_part(
    task: JoinHandle<Result<SentPart, StoreError>>,
    bucket: &str,
    key: &str,
) -> Result<SentPart, StoreError> {
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(StoreError::transport(
            Operation::UploadPart,
            bucket,
            key,
            "part upload task was cancelled",
        )),
    }
}

/// One output object being written.
pub struct OutputUpload<S> {
    store: S,
    bucket: String,
    key: String,
    /// Parts are handed off at this size.
    part_size: usize,
    max_parts_in_flight: usize,
    max_parts: i32,
    options: WriteOptions,
    multipart: Option<Multipart>,
    /// Set by `prepare` when the object goes out as one `PutObject`.
    single: Option<Bytes>,
    /// Bytes handed to parts or to the single put so far.
    size: u64,
    /// Buffers of finished parts, emptied, for the next ones (at most `max_parts_in_flight`):
    /// their pages are already the process's, where a fresh buffer's first touch of each page
    /// is a page fault and a page cleared by the kernel.
    spare: Vec<Vec<u8>>,
    /// Buffers allocated (not reused) so far.
    buffers_made: usize,
}

impl<S> OutputUpload<S>
where
    S: ObjectStore + Clone + 'static,
{
    /// An upload of `bucket/key` in parts of `part_size`, with these headers.
    pub fn new(
        store: S,
        bucket: &str,
        key: &str,
        config: UploadConfig,
        part_size: usize,
        options: WriteOptions,
    ) -> OutputUpload<S> {
        OutputUpload {
            store,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            part_size: part_size.max(1),
            max_parts_in_flight: config.max_parts_in_flight.max(1),
            max_parts: config.max_parts.max(1),
            options,
            multipart: None,
            single: None,
            size: 0,
            spare: Vec::new(),
            buffers_made: 0,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The size at which a buffer is handed off as a part.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// An empty buffer for this output: a finished part's, or a fresh one.
    pub fn new_buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| {
            self.buffers_made += 1;
            UploadConfig::new_buffer(self.part_size)
        })
    }

    /// Buffers [`new_buffer`](Self::new_buffer) has allocated rather than reused.
    pub fn buffers_made(&self) -> usize {
        self.buffers_made
    }

    /// Records a finished part and keeps its buffer for reuse when nothing else holds it (a
    /// store that kept the bytes, or an SDK still holding a clone, just means a fresh buffer
    /// next time).
    fn finished(&mut self, sent: SentPart) {
        if let Some(mp) = self.multipart.as_mut() {
            mp.done.push(sent.part);
        }
        if self.spare.len() < self.max_parts_in_flight
            && let Ok(body) = sent.body.try_into_mut()
        {
            let mut buffer = Vec::from(body);
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    /// The object's size so far (its final size once prepared).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hands `buffer` off as a part once it has reached the part size (starting the multipart
    /// upload on the first one), leaving it empty; a smaller buffer is left to grow. Also
    /// surfaces the failure of any part upload that has already finished.
    pub async fn offer(&mut self, buffer: &mut Vec<u8>) -> Result<(), StoreError> {
        self.collect_finished().await?;
        if buffer.len() < self.part_size {
            return Ok(());
        }
        // The part limit first (a bug in the part sizing, reported as such rather than after a
        // wait), then room, so the buffer of the part that made room is the one taken next.
        self.check_part_limit()?;
        self.wait_for_room().await?;
        let part = std::mem::replace(buffer, self.new_buffer());
        self.send_part(Bytes::from(part)).await
    }

    /// Ends the output with `rest` (what is left in its buffer): uploads it as the last part
    /// and waits for every part, or keeps it for a single `PutObject`, with `empty` as the
    /// whole object when nothing at all was written (a CSV header line, say). After this, only
    /// [`commit`](Self::commit) remains, and it moves no data.
    pub async fn prepare(&mut self, rest: Vec<u8>, empty: &[u8]) -> Result<(), StoreError> {
        if self.multipart.is_none() {
            let body = if rest.is_empty() {
                Bytes::copy_from_slice(empty)
            } else {
                Bytes::from(rest)
            };
            self.size = body.len() as u64;
            self.single = Some(body);
            return Ok(());
        }
        if !rest.is_empty() {
            self.send_part(Bytes::from(rest)).await?;
        }
        while let Some(task) = self.next_finished(true) {
            let sent = join_part(task, &self.bucket, &self.key).await?;
            self.finished(sent);
        }
        self.spare = Vec::new();
        Ok(())
    }

    /// Makes the prepared object visible (`PutObject` or `CompleteMultipartUpload`) if
    /// `condition` holds. A `PreconditionFailed` leaves it prepared, so it can be committed
    /// again with another condition (or aborted).
    pub async fn commit(&mut self, condition: &Condition) -> Result<(), StoreError> {
        if let Some(body) = &self.single {
            self.store
                .put_object(
                    &self.bucket,
                    &self.key,
                    body.clone(),
                    &self.options,
                    condition,
                )
                .await?;
            self.single = None;
            return Ok(());
        }
        if let Some(mp) = self.multipart.as_ref() {
            self.store
                .complete_multipart_upload(
                    &self.bucket,
                    &self.key,
                    &mp.upload_id,
                    &mp.done,
                    condition,
                )
                .await?;
            // Completed: nothing left to abort.
            self.multipart = None;
        }
        Ok(())
    }

    /// Cancels the part uploads still running, at once (before any `AbortMultipartUpload` of
    /// this file is sent, so none of its parts starts after one).
    pub fn cancel_parts(&mut self) {
        if let Some(mp) = &self.multipart {
            for task in &mp.in_flight {
                task.abort();
            }
        }
    }

    /// Discards an unfinished multipart upload: cancels running part uploads, waits for them
    /// to stop, then `AbortMultipartUpload`. Best effort: a failure is logged (the bucket's
    /// lifecycle rule removes what is left) and the original error stays the one reported.
    pub async fn abort(&mut self) {
        self.single = None;
        let Some(mut mp) = self.multipart.take() else {
            return;
        };
        for task in &mp.in_flight {
            task.abort();
        }
        while let Some(task) = mp.in_flight.pop_front() {
            let _ = task.await;
        }
        if let Err(e) = self
            .store
            .abort_multipart_upload(&self.bucket, &self.key, &mp.upload_id)
            .await
        {
            tracing::warn!(
                operation = %e.operation,
                code = e.code.as_deref().unwrap_or(""),
                bucket = %e.bucket,
                key = %e.key,
                s3_request_id = e.request_id.as_deref().unwrap_or(""),
                upload_id = %mp.upload_id,
                error = %e,
                "could not abort multipart upload",
            );
        }
    }

    /// The oldest part upload if it has finished, or (`wait`) whether or not it has.
    fn next_finished(&mut self, wait: bool) -> Option<JoinHandle<Result<SentPart, StoreError>>> {
        let mp = self.multipart.as_mut()?;
        let oldest = mp.in_flight.front()?;
        if wait || oldest.is_finished() {
            mp.in_flight.pop_front()
        } else {
            None
        }
    }

    /// S3's limit on the parts of one upload, checked before a part is started.
    fn check_part_limit(&self) -> Result<(), StoreError> {
        match &self.multipart {
            Some(mp) if mp.next_part > self.max_parts => Err(StoreError::refused(
                Operation::UploadPart,
                &self.bucket,
                &self.key,
                "TooManyParts",
                format!(
                    "the output needs more than {} parts of {} bytes (S3's limit); this is a bug in the part sizing",
                    self.max_parts, self.part_size
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Bounded overlap: waits for the oldest parts until one more may start.
    async fn wait_for_room(&mut self) -> Result<(), StoreError> {
        while self
            .multipart
            .as_ref()
            .is_some_and(|mp| mp.in_flight.len() >= self.max_parts_in_flight)
        {
            if let Some(task) = self.next_finished(true) {
                let sent = join_part(task, &self.bucket, &self.key).await?;
                self.finished(sent);
            }
        }
        Ok(())
    }

    async fn collect_finished(&mut self) -> Result<(), StoreError> {
        while let Some(task) = self.next_finished(false) {
            let sent = join_part(task, &self.bucket, &self.key).await?;
            self.finished(sent);
        }
        Ok(())
    }

    async fn send_part(&mut self, body: Bytes) -> Result<(), StoreError> {
        if self.multipart.is_none() {
            let upload_id = self
                .store
                .create_multipart_upload(&self.bucket, &self.key, &self.options)
                .await?;
            self.multipart = Some(Multipart {
                upload_id,
                next_part: 1,
                done: Vec::new(),
                in_flight: VecDeque::new(),
            });
        }
        self.wait_for_room().await?;
        self.check_part_limit()?;
        let Some(mp) = self.multipart.as_mut() else {
            return Ok(());
        };
        let part_number = mp.next_part;
        mp.next_part += 1;
        self.size += body.len() as u64;
        let store = self.store.clone();
        let bucket = self.bucket.clone();
        let key = self.key.clone();
        let upload_id = mp.upload_id.clone();
        mp.in_flight.push_back(tokio::spawn(async move {
            let kept = body.clone();
            let e_tag = store
                .upload_part(&bucket, &key, &upload_id, part_number, body)
                .await?;
            Ok(SentPart {
                part: CompletedPart { part_number, e_tag },
                body: kept,
            })
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeStore;

    /// Writes `parts` parts of `part` bytes (part `i` all `i`) and a short tail through one
    /// upload with at most 2 parts in flight: the buffers it made, and the object.
    async fn write_in_parts(store: &FakeStore, parts: u8, part: usize) -> (usize, Bytes) {
        let config = UploadConfig {
            part_size: part,
            max_parts_in_flight: 2,
            max_parts: MAX_PARTS,
        };
        let options = WriteOptions::default();
        let mut upload = OutputUpload::new(store.clone(), "out", "k", config, part, options);
        let mut buffer = upload.new_buffer();
        for i in 0..parts {
            buffer.resize(part, i);
            upload.offer(&mut buffer).await.expect("offer");
            assert!(buffer.is_empty(), "a reused buffer comes back empty");
        }
        buffer.extend_from_slice(b"tail");
        upload.prepare(buffer, b"").await.expect("prepare");
        upload.commit(&Condition::None).await.expect("commit");
        let object = store.object("out", "k").expect("the object was written");
        (upload.buffers_made(), object)
    }

    #[tokio::test]
    async fn a_part_past_the_limit_is_refused_before_it_is_sent() {
        let store = FakeStore::new().with_min_part_size(1);
        let config = UploadConfig {
            part_size: 100,
            max_parts_in_flight: 2,
            max_parts: 3,
        };
        let options = WriteOptions::default();
        let mut upload = OutputUpload::new(store.clone(), "out", "k", config, 100, options);
        let mut buffer = upload.new_buffer();
        for _ in 0..3 {
            buffer.resize(100, b'x');
            upload.offer(&mut buffer).await.expect("within the limit");
        }
        buffer.resize(100, b'x');
        let err = upload.offer(&mut buffer).await.expect_err("a fourth part");
        assert_eq!(err.code.as_deref(), Some("TooManyParts"), "{err}");
        assert!(!err.retryable, "a sizing bug, not a transient failure");
        assert_eq!(upload.size(), 300, "the fourth part was not started");
    }

    #[tokio::test]
    async fn part_buffers_are_reused_once_the_store_has_let_go_of_them() {
        let store = FakeStore::new().with_min_part_size(1);
        let (made, object) = write_in_parts(&store, 12, 1000).await;
        let mut expected: Vec<u8> = (0..12u8).flat_map(|i| vec![i; 1000]).collect();
        expected.extend_from_slice(b"tail");
        assert_eq!(
            object, expected,
            "the parts' bytes, in order, not a reused buffer's"
        );
        // One being filled, at most two uploading: 12 parts in 3 buffers, not 13.
        assert!(made <= 3, "{made} buffers made for 12 parts");
    }

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn parts_grow_with_the_input_so_no_output_needs_more_than_the_limit() {
        let c = UploadConfig::default();
        let all = [
            Output::CleanCsv,
            Output::RejectedCsv,
            Output::CleanParquet,
            Output::RejectedParquet,
        ];
        // Up to ~1.9 GB of input, every output keeps S3's minimum part.
        for output in all {
            assert_eq!(
                c.part_size_for(output, 1_900_000_000),
                DEFAULT_PART_SIZE,
                "{output:?}"
            );
        }
        for input in [0, MIB, GIB, 10 * GIB, 100 * GIB, 1024 * GIB] {
            for output in all {
                let part = c.part_size_for(output, input) as u64;
                assert_eq!(part % DEFAULT_PART_SIZE as u64, 0);
                assert!(
                    part * u64::from(MAX_PARTS.unsigned_abs()) >= max_output_bytes(output, input),
                    "{output:?} of a {input}-byte input does not fit 10,000 parts of {part}"
                );
            }
        }
        // The largest file a 10,240 MB / 900 s function takes still has parts S3 accepts.
        let largest = shared::budget::max_file_bytes(10_240, 900, true);
        let part = c.part_size_for(Output::RejectedParquet, largest) as u64;
        assert!(part <= 5 * GIB, "{part}");
    }
}
