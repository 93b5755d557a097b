//! Object storage for video files: one interface over a local directory (the
//! default, which needs no set-up, [`local`]) and S3-compatible storage (when
//! a bucket is configured, [`s3`], spoken over [`exchange`]).
//!
//! Uploads are sent in parts of `--upload-part-bytes` as they fill, so an
//! upload holds a bounded amount of memory whatever the file's size: the part
//! being filled (at most `part_bytes` plus one piece of the request body) and,
//! for S3, at most `UPLOAD_CONCURRENCY` parts in flight. Nothing is visible
//! under the object's key until the upload completes: S3 shows an object only
//! after CompleteMultipartUpload, and the local backend writes a staging file
//! that is renamed into place at the end. An upload that is aborted removes
//! its parts (`Upload::abort`); one that is dropped without finishing (its
//! request cancelled, a panic, the shutdown deadline) is handed to
//! [`abort_abandoned`], which aborts it on the worker's runtime, or, at
//! shutdown, on the main thread once the workers have stopped. Only a crash
//! leaves an S3 multipart upload open (a bucket lifecycle rule takes those:
//! docs/endpoints.md, "Videos") or a local staging file behind (under
//! `.uploads/` in the video directory, which `sweep-videos` clears).

pub mod exchange;
pub mod local;
pub mod s3;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use swiftlet_protocol::range::ByteRange;

use self::local::{LocalDir, Staging};
use self::s3::{MultipartUpload, S3Bucket};

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

impl std::fmt::Display for ObjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectError::NotFound => "no such object",
            ObjectError::Full => "the disk is full",
            ObjectError::Unwritable => "the directory refused the write",
            ObjectError::Failed => "the object store failed (see the log)",
        })
    }
}

impl ObjectError {
    /// What a local file operation's error means for the client.
    pub fn from_io(e: &std::io::Error) -> ObjectError {
        match e.kind() {
            std::io::ErrorKind::NotFound => ObjectError::NotFound,
            std::io::ErrorKind::StorageFull => ObjectError::Full,
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => ObjectError::Unwritable,
            _ => ObjectError::Failed,
        }
    }
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

#[derive(Clone)]
enum Backend {
    Local(Arc<LocalDir>),
    S3(Arc<S3Bucket>),
}

/// Where a deployment's objects live.
#[derive(Clone)]
pub struct ObjectStorage {
    backend: Backend,
    part_bytes: usize,
    /// "local" or "s3", for logs.
    pub kind: &'static str,
}

/// A stored object's bytes, as a stream of chunks, and how many there are.
pub struct ObjectBody {
    pub chunks: BoxStream<'static, std::io::Result<Bytes>>,
    pub len: u64,
}

impl ObjectBody {
    /// No bytes, announcing `len` (the answer to a HEAD).
    pub fn empty(len: u64) -> ObjectBody {
        ObjectBody { chunks: futures_util::stream::empty().boxed(), len }
    }
}

/// One listed object: its key and when it was last written.
pub type Listed = (String, SystemTime);

impl ObjectStorage {
    /// The store the settings name: S3 when a bucket is given, the local
    /// directory otherwise (created if missing).
    pub fn connect(settings: &ObjectSettings<'_>) -> Result<ObjectStorage, String> {
        let part_bytes = settings.part_bytes;
        if settings.s3_bucket.is_some() {
            if part_bytes < 5 << 20 {
                return Err("S3 storage: --upload-part-bytes must be at least 5 MiB (S3's smallest part)".into());
            }
            let bucket = S3Bucket::new(settings).map_err(|e| format!("S3 storage: {e}"))?;
            return Ok(ObjectStorage { backend: Backend::S3(Arc::new(bucket)), part_bytes, kind: "s3" });
        }
        let dir = LocalDir::open(settings.video_dir)?;
        Ok(ObjectStorage { backend: Backend::Local(Arc::new(dir)), part_bytes, kind: "local" })
    }

    /// Starts an upload to `key`; nothing is visible there until [`Upload::finish`].
    pub async fn upload(&self, key: &str) -> Result<Upload, ObjectError> {
        // Boxed, here and below: a store call's future (a connect, a TLS
        // handshake, a response head's parse) is several KiB, and unboxed it
        // would be inlined into every connection's task, idle ones included
        // (see server::connection's module comment on the task's size).
        let target = match &self.backend {
            Backend::Local(dir) => Target::Local(Box::pin(dir.stage(key)).await?),
            Backend::S3(bucket) => Target::S3(Box::pin(MultipartUpload::start(bucket.clone(), key)).await?),
        };
        Ok(Upload {
            target: Some(target),
            part: BytesMut::new(),
            part_bytes: self.part_bytes,
            key: key.to_string(),
            written: 0,
        })
    }

    /// The bytes `range` selects of the object at `key`, which is `len` long.
    pub async fn open(&self, key: &str, range: ByteRange, len: u64) -> Result<ObjectBody, ObjectError> {
        let (start, want) = match range {
            ByteRange::Full | ByteRange::Unsatisfiable => (0, len),
            ByteRange::Partial { start, end } => (start, end + 1 - start),
        };
        let chunks = match &self.backend {
            Backend::Local(dir) => Box::pin(dir.read(key, start, want, len)).await?,
            Backend::S3(bucket) => Box::pin(bucket.read(key, range, want)).await?,
        };
        Ok(ObjectBody { chunks, len: want })
    }

    /// Every object whose key starts with `prefix`, with when it was last written.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<Listed, ObjectError>> {
        match &self.backend {
            Backend::Local(dir) => dir.list(prefix),
            Backend::S3(bucket) => bucket.clone().list(prefix),
        }
    }

    /// Removes the object at `key`; one that is not there counts as removed.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let deleted = match &self.backend {
            Backend::Local(dir) => Box::pin(dir.delete(key)).await,
            Backend::S3(bucket) => Box::pin(bucket.delete(key)).await,
        };
        match deleted {
            Ok(()) | Err(ObjectError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Where an upload's parts go.
enum Target {
    Local(Staging),
    S3(MultipartUpload),
}

impl Target {
    async fn put(&mut self, part: Bytes) -> Result<(), ObjectError> {
        match self {
            Target::Local(staging) => staging.write(part).await,
            Target::S3(upload) => Box::pin(upload.put(part)).await,
        }
    }

    async fn abort(self, key: &str) {
        match self {
            Target::Local(staging) => staging.abort().await,
            Target::S3(upload) => Box::pin(upload.abort()).await,
        }
        tracing::debug!(key, "aborted an upload");
    }
}

/// An upload in progress. `abort` it if it will not be finished; dropped
/// unfinished, it is aborted in the background.
pub struct Upload {
    /// `None` once finished or aborted.
    target: Option<Target>,
    /// The part being filled: less than `part_bytes` between writes.
    part: BytesMut,
    part_bytes: usize,
    key: String,
    written: u64,
}

impl Upload {
    /// Adds `bytes`, sending each part as it fills (and waiting while too
    /// many are in flight).
    pub async fn write(&mut self, mut bytes: Bytes) -> Result<(), ObjectError> {
        let target = self.target.as_mut().ok_or(ObjectError::Failed)?;
        self.written += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = self.part_bytes - self.part.len();
            if self.part.is_empty() && bytes.len() >= room {
                // A whole part in one piece: sent without a copy.
                target.put(bytes.split_to(room)).await?;
                continue;
            }
            if self.part.capacity() == 0 {
                self.part.reserve(self.part_bytes);
            }
            let take = room.min(bytes.len());
            self.part.extend_from_slice(&bytes.split_to(take));
            if self.part.len() == self.part_bytes {
                target.put(self.part.split().freeze()).await?;
            }
        }
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Completes the upload: the object becomes visible under its key.
    pub async fn finish(mut self) -> Result<(), ObjectError> {
        let mut target = self.target.take().ok_or(ObjectError::Failed)?;
        let last = self.part.split().freeze();
        let done = async {
            // S3 needs at least one part, even an empty one.
            if !last.is_empty() || self.written == 0 {
                target.put(last).await?;
            }
            Ok::<_, ObjectError>(())
        }
        .await;
        let done = match done {
            Ok(()) => match target {
                Target::Local(staging) => staging.finish().await,
                Target::S3(upload) => Box::pin(upload.finish()).await,
            },
            Err(e) => {
                target.abort(&self.key).await;
                Err(e)
            }
        };
        if done.is_err() {
            tracing::error!(key = %self.key, "object storage could not complete an upload");
        }
        done
    }

    /// Gives the upload up and removes what was sent of it.
    pub async fn abort(mut self) {
        if let Some(target) = self.target.take() {
            target.abort(&self.key).await;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(target) = self.target.take() {
            tracing::debug!(key = %self.key, "an upload was dropped unfinished; aborting it");
            ABANDONED.lock().unwrap_or_else(|p| p.into_inner()).push((std::mem::take(&mut self.key), target));
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
/// progress, so bounded by the connection cap; each holds no part bytes
/// (the part being filled is dropped with its `Upload`).
static ABANDONED: std::sync::Mutex<Vec<(String, Target)>> = std::sync::Mutex::new(Vec::new());

/// Aborts the uploads dropped unfinished, removing their parts.
pub async fn abort_abandoned() {
    loop {
        let next = ABANDONED.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some((key, target)) = next else { return };
        target.abort(&key).await;
        tracing::info!(key, "aborted an upload dropped unfinished");
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

/// Whether `key` is one this store may hold: relative, `/`-separated, with
/// no empty, `.` or `..` segment (so a local key stays inside the directory).
fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.split('/').all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_store() {
        assert!(valid_key("videos/1.webm"));
        for bad in ["", "/etc/passwd", "videos/../x", "videos//x", "./x", "videos/.", "a\0b"] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn parts_are_cut_at_the_part_size_and_the_rest_goes_at_finish() {
        let dir = std::env::temp_dir().join(format!("swiftlet-objects-unit-{}", std::process::id()));
        let settings = ObjectSettings {
            video_dir: &dir,
            part_bytes: 10,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: "us-east-1",
            s3_access_key_id: None,
            s3_secret_access_key: None,
        };
        let store = ObjectStorage::connect(&settings).unwrap();
        let mut upload = store.upload("videos/a.bin").await.unwrap();
        for piece in [&b"abc"[..], b"defghijklmnopqrstuvw", b"", b"xyz0123456789"] {
            upload.write(Bytes::copy_from_slice(piece)).await.unwrap();
            assert!(upload.part.len() < 10);
        }
        assert_eq!(upload.written(), 36);
        // Not visible before it is finished.
        assert_eq!(store.open("videos/a.bin", ByteRange::Full, 36).await.err(), Some(ObjectError::NotFound));
        upload.finish().await.unwrap();
        let body = store.open("videos/a.bin", ByteRange::Partial { start: 2, end: 30 }, 36).await.unwrap();
        let got: Vec<u8> = body.chunks.map(|c| c.unwrap().to_vec()).concat().await;
        assert_eq!(got, b"cdefghijklmnopqrstuvwxyz01234");
        // A row that says another length is a failure, not a short answer.
        assert_eq!(store.open("videos/a.bin", ByteRange::Full, 37).await.err(), Some(ObjectError::Failed));
        let listed: Vec<_> = store.list("videos/").collect().await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].as_ref().unwrap().0, "videos/a.bin");
        store.delete("videos/a.bin").await.unwrap();
        store.delete("videos/a.bin").await.unwrap();
        assert!(store.list("videos/").collect::<Vec<_>>().await.is_empty());
        // An aborted upload leaves nothing, staging file included.
        let mut upload = store.upload("videos/b.bin").await.unwrap();
        upload.write(Bytes::from_static(b"0123456789abc")).await.unwrap();
        upload.abort().await;
        assert!(store.list("").collect::<Vec<_>>().await.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
