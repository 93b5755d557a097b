//! Objects as files under one directory: key `videos/1.webm` is the file
//! `<dir>/videos/1.webm`.
//!
//! File work runs on tokio's blocking pool, never on a worker's event loop: a
//! write of a 5 MiB part or an fsync can take milliseconds. An upload goes to a
//! staging file under `<dir>/.uploads/` and is renamed into place once it is
//! complete and durable (file and directory entry fsynced), so a reader sees a
//! whole object or none. Reads go out in chunks of [`READ_CHUNK`] bytes.
//!
//! Invariant: every key is checked by `valid_key` before it becomes a path,
//! so no key reaches outside the directory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;

use super::{valid_key, Listed, ObjectError};

/// Bytes per chunk of an object read back (one allocation each).
pub const READ_CHUNK: usize = 64 * 1024;
/// Where uploads are staged, relative to the directory. Files there are
/// partial uploads; `sweep-videos` removes those a crash left.
pub const STAGING: &str = ".uploads";

pub struct LocalDir {
    root: PathBuf,
}

/// Runs `f` on the blocking pool; a panic there is a failure, not a crash.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ObjectError> + Send + 'static,
) -> Result<T, ObjectError> {
    tokio::task::spawn_blocking(f).await.unwrap_or(Err(ObjectError::Failed))
}

/// Logs a file error (once, where it happened) and says what it means.
#[cold]
fn io_failed(what: &str, path: &Path, e: std::io::Error) -> ObjectError {
    let meaning = ObjectError::from_io(&e);
    if meaning != ObjectError::NotFound {
        tracing::error!(path = %path.display(), error = %e, "video directory: could not {what}");
    }
    meaning
}

impl LocalDir {
    /// The directory, created if missing.
    pub fn open(root: &Path) -> Result<LocalDir, String> {
        std::fs::create_dir_all(root.join(STAGING)).map_err(|e| format!("video directory {}: {e}", root.display()))?;
        Ok(LocalDir { root: root.to_path_buf() })
    }

    fn path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        if !valid_key(key) {
            tracing::error!(key, "refused an object key that is not a plain relative path");
            return Err(ObjectError::Failed);
        }
        Ok(self.root.join(key))
    }

    /// A staging file for an upload to `key`.
    pub async fn stage(&self, key: &str) -> Result<Staging, ObjectError> {
        let target = self.path(key)?;
        let name = format!("{}-{:016x}", key.replace('/', "_"), fastrand::u64(..));
        let path = self.root.join(STAGING).join(name);
        let (file, path) = blocking(move || match File::create_new(&path) {
            Ok(file) => Ok((file, path)),
            Err(e) => Err(io_failed("create a staging file", &path, e)),
        })
        .await?;
        Ok(Staging { file: Some(file), path, target })
    }

    /// `want` bytes from `start` of the object at `key`, which must be `len` long.
    pub async fn read(
        &self,
        key: &str,
        start: u64,
        want: u64,
        len: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, ObjectError> {
        let path = self.path(key)?;
        let file = blocking(move || {
            let mut file = File::open(&path).map_err(|e| io_failed("open", &path, e))?;
            let size = file.metadata().map_err(|e| io_failed("stat", &path, e))?.len();
            if size != len {
                tracing::error!(path = %path.display(), want = len, got = size, "object size differs from its row");
                return Err(ObjectError::Failed);
            }
            file.seek(SeekFrom::Start(start)).map_err(|e| io_failed("seek", &path, e))?;
            Ok(file)
        })
        .await?;
        let chunks = futures_util::stream::try_unfold((file, want), |(mut file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let (file, chunk) = tokio::task::spawn_blocking(move || {
                let mut chunk = vec![0; (left as usize).min(READ_CHUNK)];
                file.read_exact(&mut chunk).map(|()| (file, chunk))
            })
            .await
            .map_err(std::io::Error::other)??;
            let left = left - chunk.len() as u64;
            Ok(Some((Bytes::from(chunk), (file, left))))
        });
        Ok(chunks.boxed())
    }

    /// Every file under `prefix`, walked on the blocking pool.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<Listed, ObjectError>> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        let walk = blocking(move || {
            let mut found = Vec::new();
            walk(&root, &root, &prefix, &mut found).map_err(|e| io_failed("list", &root, e))?;
            found.sort();
            Ok(found)
        });
        futures_util::stream::once(walk)
            .flat_map(|listed| match listed {
                Ok(found) => futures_util::stream::iter(found.into_iter().map(Ok)).boxed(),
                Err(e) => futures_util::stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        blocking(move || std::fs::remove_file(&path).map_err(|e| io_failed("delete", &path, e))).await
    }
}

/// Appends to `found` the files under `dir` whose key starts with `prefix`.
fn walk(root: &Path, dir: &Path, prefix: &str, found: &mut Vec<Listed>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let Some(key) = path.strip_prefix(root).ok().and_then(|k| k.to_str()) else { continue };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            // Only into directories that can hold a matching key.
            if prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix) {
                walk(root, &path, prefix, found)?;
            }
        } else if kind.is_file() && key.starts_with(prefix) {
            let modified = entry.metadata()?.modified().unwrap_or_else(|_| SystemTime::now());
            found.push((key.to_owned(), modified));
        }
    }
    Ok(())
}

/// An upload being written to its staging file.
pub struct Staging {
    /// `None` while a write runs on the blocking pool (or after a failed one).
    file: Option<File>,
    path: PathBuf,
    target: PathBuf,
}

impl Staging {
    pub async fn write(&mut self, part: Bytes) -> Result<(), ObjectError> {
        let mut file = self.file.take().ok_or(ObjectError::Failed)?;
        let path = self.path.clone();
        self.file = Some(
            blocking(move || match file.write_all(&part) {
                Ok(()) => Ok(file),
                Err(e) => Err(io_failed("write", &path, e)),
            })
            .await?,
        );
        Ok(())
    }

    /// Makes the file durable and moves it to its key. A 201 promises the
    /// video is stored: the data and its directory entry are fsynced first.
    pub async fn finish(mut self) -> Result<(), ObjectError> {
        let file = self.file.take().ok_or(ObjectError::Failed)?;
        let (path, target) = (self.path.clone(), self.target.clone());
        let done = blocking(move || {
            file.sync_all().map_err(|e| io_failed("sync", &path, e))?;
            let dir = target.parent().ok_or(ObjectError::Failed)?;
            std::fs::create_dir_all(dir).map_err(|e| io_failed("create", dir, e))?;
            std::fs::rename(&path, &target).map_err(|e| io_failed("rename into place", &target, e))?;
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_failed("sync", dir, e))
        })
        .await;
        if done.is_err() {
            self.abort().await;
        }
        done
    }

    /// Removes the staging file.
    pub async fn abort(self) {
        let path = self.path;
        let _ = blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) => Err(io_failed("remove a staging file", &path, e)),
        })
        .await;
    }
}
