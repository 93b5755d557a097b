//! Object storage for video files: one interface over a local directory (the
//! default, which needs no set-up) and S3-compatible storage (when a bucket is
//! configured), both through the `object_store` crate.
//!
//! Uploads are multipart whatever the backend: parts of `--upload-part-bytes`
//! go out as they fill, at most `UPLOAD_CONCURRENCY` at a time, so an upload
//! holds a bounded amount of memory whatever the file's size. Nothing is
//! visible under the object's key until the upload completes: S3 shows an
//! object only after CompleteMultipartUpload, and the local backend writes a
//! staging file that is renamed into place at the end. An upload that is
//! aborted removes its parts (`Upload::abort`); one that is dropped without
//! finishing (its request cancelled, a panic, the shutdown deadline) is
//! handed to [`abort_abandoned`], which aborts it on the worker's runtime, or,
//! at shutdown, on the main thread once the workers have stopped. Only a
//! crash leaves an S3 multipart upload open (a bucket lifecycle rule takes
//! those: docs/endpoints.md, "Videos").
//!
//! Each worker builds its own client: the S3 client's connection pool spawns
//! its connections on the runtime that made them, and a worker's runtime is
//! its own.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use swiftlet_protocol::range::ByteRange;

/// Parts in flight per upload, beyond the one being filled.
const UPLOAD_CONCURRENCY: usize = 2;

/// Why an object operation failed; each maps to one answer in `AppError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectError {
    /// No object under that key.
    NotFound,
    /// The local disk is full (ENOSPC).
    Full,
    /// The local directory refused the write (read-only, permissions).
    Unwritable,
    /// The store refused or failed the operation otherwise: S3 down or
    /// refusing, a network error (logged where it happened).
    Failed,
}

/// Where objects go: S3 when a bucket is named, else the local directory.
pub struct ObjectSettings<'c> {
    pub video_dir: &'c std::path::Path,
    /// Bytes per uploaded part.
    pub part_bytes: usize,
    pub s3_bucket: Option<&'c str>,
    pub s3_endpoint: Option<&'c str>,
    pub s3_region: &'c str,
    pub s3_access_key_id: Option<&'c str>,
    pub s3_secret_access_key: Option<&'c str>,
}

/// Where a deployment's objects live.
#[derive(Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    part_bytes: usize,
    /// "local" or "s3", for logs.
    pub kind: &'static str,
}

/// A stored object's bytes, as a stream of chunks, and how many there are.
pub struct ObjectBody {
    pub chunks: BoxStream<'static, Result<Bytes, object_store::Error>>,
    pub len: u64,
}

impl ObjectBody {
    /// No bytes, announcing `len` (the answer to a HEAD).
    pub fn empty(len: u64) -> ObjectBody {
        ObjectBody { chunks: futures_util::stream::empty().boxed(), len }
    }
}

impl ObjectStorage {
    /// The store the settings name: S3 when a bucket is given, the local
    /// directory otherwise (created if missing).
    pub fn connect(settings: &ObjectSettings<'_>) -> Result<ObjectStorage, String> {
        let part_bytes = settings.part_bytes;
        if let Some(bucket) = settings.s3_bucket {
            if part_bytes < 5 << 20 {
                return Err("S3 storage: --upload-part-bytes must be at least 5 MiB (S3's smallest part)".into());
            }
            let mut builder = AmazonS3Builder::new().with_bucket_name(bucket).with_region(settings.s3_region);
            if let Some(endpoint) = settings.s3_endpoint {
                builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
            }
            if let Some(id) = settings.s3_access_key_id {
                builder = builder.with_access_key_id(id);
            }
            if let Some(secret) = settings.s3_secret_access_key {
                builder = builder.with_secret_access_key(secret);
            }
            let store = builder.build().map_err(|e| format!("S3 storage: {e}"))?;
            return Ok(ObjectStorage { store: Arc::new(store), part_bytes, kind: "s3" });
        }
        let dir = settings.video_dir;
        std::fs::create_dir_all(dir).map_err(|e| format!("video directory {}: {e}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| format!("video directory {}: {e}", dir.display()))?
            .with_automatic_cleanup(true)
            // A 201 promises the video is stored: make the file and its
            // directory entry durable before the upload counts as complete.
            .with_fsync(true);
        Ok(ObjectStorage { store: Arc::new(store), part_bytes, kind: "local" })
    }

    /// Starts an upload to `key`; nothing is visible there until [`Upload::finish`].
    pub async fn upload(&self, key: &str) -> Result<Upload, ObjectError> {
        let location = Path::from(key);
        let multipart = self.store.put_multipart(&location).await.map_err(|e| failed("start an upload", key, e))?;
        Ok(Upload {
            writer: Some(WriteMultipart::new_with_chunk_size(multipart, self.part_bytes)),
            key: key.to_string(),
            written: 0,
        })
    }

    /// The bytes `range` selects of the object at `key`, which is `len` long.
    pub async fn open(&self, key: &str, range: ByteRange, len: u64) -> Result<ObjectBody, ObjectError> {
        let range = match range {
            ByteRange::Full | ByteRange::Unsatisfiable => None,
            ByteRange::Partial { start, end } => Some(GetRange::Bounded(start..end + 1)),
        };
        let options = GetOptions { range: range.clone(), ..GetOptions::default() };
        let result = self.store.get_opts(&Path::from(key), options).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => ObjectError::NotFound,
            e => failed("read", key, e),
        })?;
        let len = match range {
            Some(GetRange::Bounded(r)) => r.end - r.start,
            _ => len,
        };
        if result.range.end - result.range.start != len {
            // The stored object is not the size its metadata row says.
            tracing::error!(
                key,
                want = len,
                got = result.range.end - result.range.start,
                "object size differs from its row"
            );
            return Err(ObjectError::Failed);
        }
        Ok(ObjectBody { chunks: result.into_stream().boxed(), len })
    }

    /// Every object whose key starts with `prefix`, with when it was last written.
    pub fn list(
        &self,
        prefix: &str,
    ) -> BoxStream<'static, Result<(String, std::time::SystemTime), object_store::Error>> {
        // The whole store, filtered here: moto (the tests' S3) rejects the
        // signature of a list request with a `prefix` parameter.
        let prefix = prefix.to_owned();
        self.store
            .list(None)
            .filter_map(move |meta| {
                let item = match meta {
                    Ok(m) if m.location.as_ref().starts_with(prefix.as_str()) => {
                        Some(Ok((m.location.to_string(), m.last_modified.into())))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                };
                std::future::ready(item)
            })
            .boxed()
    }

    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed("delete", key, e)),
        }
    }
}

#[cold]
fn failed(what: &str, key: &str, e: object_store::Error) -> ObjectError {
    tracing::error!(key, error = %e, "object storage could not {what}");
    classify(&e)
}

/// What a storage error means for the client, from the OS error under it
/// (the local directory's); anything else is the store failing.
fn classify(e: &(dyn std::error::Error + 'static)) -> ObjectError {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::StorageFull => return ObjectError::Full,
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    return ObjectError::Unwritable
                }
                _ => {}
            }
        }
        cause = err.source();
    }
    ObjectError::Failed
}

/// An upload in progress. `abort` it if it will not be finished; dropped
/// unfinished, it is aborted in the background.
pub struct Upload {
    writer: Option<WriteMultipart>,
    key: String,
    written: u64,
}

impl Upload {
    /// Adds `bytes`, waiting first while too many parts are in flight.
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), ObjectError> {
        let writer = self.writer.as_mut().ok_or(ObjectError::Failed)?;
        writer.wait_for_capacity(UPLOAD_CONCURRENCY).await.map_err(|e| failed("upload a part", &self.key, e))?;
        self.written += bytes.len() as u64;
        writer.put(bytes);
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Completes the upload: the object becomes visible under its key.
    pub async fn finish(mut self) -> Result<(), ObjectError> {
        let writer = self.writer.take().ok_or(ObjectError::Failed)?;
        match writer.finish().await {
            Ok(_) => Ok(()),
            Err(e) => Err(failed("complete an upload", &self.key, e)),
        }
    }

    /// Gives the upload up and removes what was sent of it.
    pub async fn abort(mut self) {
        // The parts already written are removed with the staging file or the
        // S3 upload; the bytes still buffered are dropped with the writer.
        if let Some(writer) = self.writer.take() {
            if let Err(e) = writer.abort().await {
                tracing::warn!(key = %self.key, error = %e, "could not abort an upload");
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            tracing::debug!(key = %self.key, "an upload was dropped unfinished; aborting it");
            ABANDONED.lock().unwrap_or_else(|p| p.into_inner()).push((std::mem::take(&mut self.key), writer));
            // On a running worker: abort it now. At shutdown the spawn finds
            // the runtime closing and does nothing; `abort_abandoned` is then
            // called from the main thread.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(abort_abandoned());
            }
        }
    }
}

/// Uploads dropped unfinished and not aborted yet. At most one per upload in
/// progress (each holds its buffered part until aborted), so bounded by the
/// connection cap.
static ABANDONED: std::sync::Mutex<Vec<(String, WriteMultipart)>> = std::sync::Mutex::new(Vec::new());

/// Aborts the uploads dropped unfinished, removing their parts.
pub async fn abort_abandoned() {
    loop {
        let next = ABANDONED.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some((key, writer)) = next else { return };
        match writer.abort().await {
            Ok(()) => tracing::info!(key, "aborted an upload dropped unfinished"),
            Err(e) => tracing::warn!(key, error = %e, "could not abort an upload dropped unfinished"),
        }
    }
}

/// At shutdown, after the workers stopped: aborts what their runtimes left,
/// within `limit`.
pub fn abort_abandoned_before_exit(limit: std::time::Duration) {
    if ABANDONED.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    // The timer is made inside the runtime: it needs its clock.
    if runtime.block_on(async { tokio::time::timeout(limit, abort_abandoned()).await }).is_err() {
        tracing::warn!("shutdown: could not abort every unfinished upload in time");
    }
}
