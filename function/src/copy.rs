//! The raw copy: one server-side `CopyObject` up to S3's 5 GiB copy-source limit, a multipart
//! `UploadPartCopy` (parts in parallel, every part pinned to the same version) above it.

use tokio::task::JoinSet;

use crate::store::{
    CompletedPart, Condition, ObjectInfo, ObjectStore, Operation, Pin, Source, StoreError,
    WriteOptions,
};

/// How the raw copy is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyConfig {
    /// The largest source `CopyObject` takes (S3: 5 GiB).
    pub max_single_copy: u64,
    /// The smallest part of a multipart copy (larger when the object needs it to fit
    /// `max_parts`).
    pub min_part: u64,
    pub max_parts: i32,
    /// Part copies running at once.
    pub parallel: usize,
}

impl Default for CopyConfig {
    fn default() -> CopyConfig {
        CopyConfig {
            max_single_copy: 5 * 1024 * 1024 * 1024,
            min_part: 512 * 1024 * 1024,
            max_parts: crate::upload::MAX_PARTS,
            parallel: 8,
        }
    }
}

impl CopyConfig {
    /// The part size for an object of `size` bytes: the smallest multiple of `min_part` that
    /// fits the object in `max_parts` parts.
    pub fn part_size(&self, size: u64) -> u64 {
        let base = self.min_part.max(1);
        let parts = u64::try_from(self.max_parts.max(1)).unwrap_or(1);
        size.div_ceil(parts)
            .div_ceil(base)
            .saturating_mul(base)
            .max(base)
    }
}

/// The copy of one source version into the raw bucket. If it is abandoned (the deadline came
/// close), [`RawCopy::abort`] discards its multipart upload.
pub struct RawCopy<S> {
    store: S,
    config: CopyConfig,
    upload: Option<(String, String, String)>,
}

impl<S: ObjectStore + Clone + 'static> RawCopy<S> {
    pub fn new(store: S, config: CopyConfig) -> RawCopy<S> {
        RawCopy {
            store,
            config,
            upload: None,
        }
    }

    /// Copies `source` (whose `HeadObject` is `info`) to `dst_bucket/dst_key`, byte for byte,
    /// with its content type and user metadata.
    pub async fn run(
        &mut self,
        source: Source<'_>,
        info: &ObjectInfo,
        dst_bucket: &str,
        dst_key: &str,
    ) -> Result<(), StoreError> {
        if info.size <= self.config.max_single_copy {
            return self.store.copy_object(source, dst_bucket, dst_key).await;
        }
        let options = WriteOptions {
            content_type: info.content_type.clone(),
            metadata: info.metadata.clone(),
        };
        let upload_id = self
            .store
            .create_multipart_upload(dst_bucket, dst_key, &options)
            .await?;
        self.upload = Some((dst_bucket.to_owned(), dst_key.to_owned(), upload_id.clone()));
        let part = self.config.part_size(info.size);
        let ranges: Vec<(i32, u64, u64)> = (0..info.size.div_ceil(part))
            .map(|i| {
                let start = i * part;
                (
                    i32::try_from(i + 1).unwrap_or(i32::MAX),
                    start,
                    (start + part).min(info.size),
                )
            })
            .collect();
        if ranges.len() > usize::try_from(self.config.max_parts).unwrap_or(0) {
            return Err(StoreError::refused(
                Operation::UploadPartCopy,
                dst_bucket,
                dst_key,
                "TooManyParts",
                format!(
                    "a {} byte object needs more than {} parts",
                    info.size, self.config.max_parts
                ),
            ));
        }
        let mut done: Vec<CompletedPart> = Vec::with_capacity(ranges.len());
        let mut running = JoinSet::new();
        let mut pending = ranges.into_iter();
        loop {
            while running.len() < self.config.parallel.max(1) {
                let Some((number, start, end)) = pending.next() else {
                    break;
                };
                let store = self.store.clone();
                let (bucket, key, id) =
                    (dst_bucket.to_owned(), dst_key.to_owned(), upload_id.clone());
                let (src_bucket, src_key, pin) = (
                    source.bucket.to_owned(),
                    source.key.to_owned(),
                    source.pin.clone(),
                );
                running.spawn(async move {
                    let source = Source {
                        bucket: &src_bucket,
                        key: &src_key,
                        pin: &pin,
                    };
                    store
                        .upload_part_copy(&bucket, &key, &id, number, source, start..end)
                        .await
                        .map(|e_tag| CompletedPart {
                            part_number: number,
                            e_tag,
                        })
                });
            }
            match running.join_next().await {
                None => break,
                Some(Ok(Ok(part))) => done.push(part),
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Some(Err(_)) => {
                    return Err(StoreError::transport(
                        Operation::UploadPartCopy,
                        dst_bucket,
                        dst_key,
                        "part copy task was cancelled",
                    ));
                }
            }
        }
        done.sort_by_key(|p| p.part_number);
        self.store
            .complete_multipart_upload(dst_bucket, dst_key, &upload_id, &done, &Condition::None)
            .await?;
        self.upload = None;
        Ok(())
    }

    /// Discards the multipart upload of an unfinished copy (best effort: the bucket's
    /// lifecycle rule removes what is left).
    pub async fn abort(&mut self) {
        if let Some((bucket, key, id)) = self.upload.take()
            && let Err(e) = self.store.abort_multipart_upload(&bucket, &key, &id).await
        {
            tracing::warn!(error = %e, upload_id = %id, "could not abort the raw copy's multipart upload");
        }
    }
}

/// The pin to read and copy with once the object's current version is known: an event naming
/// no version is pinned to what `HeadObject` found, so every read sees the same bytes.
pub fn pin_for(info: &ObjectInfo) -> Pin {
    match &info.version_id {
        Some(v) => Pin::Version(v.clone()),
        None => Pin::ETag(crate::newest::bare_etag(&info.e_tag).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_parts_grow_so_the_object_fits_the_part_limit() {
        let c = CopyConfig::default();
        const GIB: u64 = 1024 * 1024 * 1024;
        assert_eq!(c.part_size(6 * GIB), 512 * 1024 * 1024);
        let five_tib = 5 * 1024 * GIB;
        let part = c.part_size(five_tib);
        assert!(five_tib.div_ceil(part) <= 10_000);
        assert!(part <= 5 * GIB, "an S3 part is at most 5 GiB");
        assert_eq!(part % c.min_part, 0);
    }
}
