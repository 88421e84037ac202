//! The content store: blobs addressed by sha256 and layers unpacked by diff id.
//!
//! ```text
//! <state root>/content/blobs/sha256/<hex>    verified blobs, read-only (0400)
//! <state root>/content/ingest/<hex>.lock     one lock per digest being fetched
//! <state root>/content/ingest/<hex>.<pid>.partial
//! <state root>/layers/sha256/<hex>/          unpacked layers (overlayfs lower dirs)
//! <state root>/layers/tmp/                   layers being unpacked
//! ```
//!
//! Every directory here is 0700 (root only): image configs carry whatever ENV their authors
//! baked in, and layers carry setuid files.
//!
//! A blob becomes visible only by `rename` after its digest and size were verified and the
//! file fsynced; a layer directory only by `rename` after the unpack finished, its diff id
//! matched and the filesystem was synced. Whoever holds a digest's lock writes it; everyone
//! else waits and then finds it present, so concurrent pulls of one blob (threads or
//! processes) fetch it once. Partial files left by a crash are removed when no one holds
//! their lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use super::unpack::{self, Limits, Target, UnpackError};
use crate::digest::Digest;
use crate::fsutil::{self, FsError, io_err};
use crate::sha256::Sha256;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("blob {expected} failed verification: its content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is longer than the {expected} bytes its descriptor says")]
    LongerThanDescriptor { digest: Digest, expected: u64 },
    #[error("blob {digest} is not in the content store")]
    Missing { digest: Digest },
    #[error("blob {digest} is larger than {limit} bytes")]
    TooLarge { digest: Digest, limit: u64 },
    #[error("unpacking layer {diff_id}: {source}")]
    Unpack {
        diff_id: Digest,
        source: UnpackError,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
    layers: PathBuf,
    layers_tmp: PathBuf,
}

impl ContentStore {
    /// Open (creating) the store under a state root, and clear partial files left by a crash.
    pub(crate) fn open(state_root: &Path) -> Result<Self, StoreError> {
        let store = ContentStore {
            blobs: state_root.join("content/blobs/sha256"),
            ingest: state_root.join("content/ingest"),
            layers: state_root.join("layers/sha256"),
            layers_tmp: state_root.join("layers/tmp"),
        };
        // Root only, each made so from its mkdir on (and tightened when an older berth made
        // it 0755): blobs hold images' configs with the secrets baked into their ENV, and
        // unpacked layers keep the images' setuid files. Parents first, so each is checked.
        for dir in [
            &state_root.join("content"),
            &state_root.join("content/blobs"),
            &store.blobs,
            &store.ingest,
            &state_root.join("layers"),
            &store.layers,
            &store.layers_tmp,
        ] {
            fsutil::private_dir(dir)?;
        }
        store.remove_abandoned()?;
        Ok(store)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    pub(crate) fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub(crate) fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::Missing {
                digest: digest.clone(),
            },
            _ => io_err("open blob", &path)(e).into(),
        })
    }

    /// Read a small blob (manifest, config, index) whole, verifying it again: these are
    /// parsed and trusted, and re-hashing a few kilobytes is cheap insurance against a
    /// damaged disk.
    pub(crate) fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read blob", &self.blob_path(digest)))?;
        if bytes.len() as u64 > limit {
            return Err(StoreError::TooLarge {
                digest: digest.clone(),
                limit,
            });
        }
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Store bytes already in memory; returns their digest.
    pub(crate) fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if let Ingest::Write(mut writer) = self.ingest(&digest, Some(bytes.len() as u64))? {
            writer
                .write_all(bytes)
                .map_err(io_err("write blob", &writer.partial))?;
            writer.commit()?;
        }
        Ok(digest)
    }

    /// Start writing a blob, or learn that it is already present. Blocks while another
    /// writer (thread or process) holds the same digest; when it finishes, the blob is
    /// present and nothing is fetched twice.
    pub(crate) fn ingest(&self, digest: &Digest, size: Option<u64>) -> Result<Ingest, StoreError> {
        if self.has_blob(digest) {
            return Ok(Ingest::Present);
        }
        let lock_path = self.ingest.join(format!("{}.lock", digest.hex()));
        let lock = lock_file(&lock_path, FlockOperation::LockExclusive)?;
        if self.has_blob(digest) {
            return Ok(Ingest::Present);
        }
        let partial = self
            .ingest
            .join(format!("{}.{}.partial", digest.hex(), std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io_err("create", &partial))?;
        Ok(Ingest::Write(Box::new(BlobWriter {
            // Network chunks are small; batch them into large writes.
            file: io::BufWriter::with_capacity(1 << 20, file),
            partial,
            target: self.blob_path(digest),
            blobs_dir: self.blobs.clone(),
            digest: digest.clone(),
            size,
            written: 0,
            hasher: Sha256::new(),
            committed: false,
            _lock: lock,
        })))
    }

    fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.layers.join(diff_id.hex())
    }

    /// The unpacked directory of a layer, unpacking its blob first if needed.
    pub(crate) fn ensure_layer(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        limits: &Limits,
    ) -> Result<PathBuf, StoreError> {
        let dir = self.layer_path(diff_id);
        if dir.is_dir() {
            return Ok(dir);
        }
        let lock_path = self.layers_tmp.join(format!("{}.lock", diff_id.hex()));
        let _lock = lock_file(&lock_path, FlockOperation::LockExclusive)?;
        if dir.is_dir() {
            return Ok(dir);
        }
        let scratch = self
            .layers_tmp
            .join(format!("{}.{}", diff_id.hex(), std::process::id()));
        if scratch.exists() {
            remove_tree(&scratch)?;
        }
        fs::create_dir(&scratch).map_err(io_err("create", &scratch))?;
        let result = (|| {
            let file = self.open_blob(blob)?;
            unpack::unpack_layer(
                io::BufReader::with_capacity(1 << 20, file),
                &scratch,
                Target::Layer,
                limits,
                Some(diff_id),
            )
            .map_err(|source| StoreError::Unpack {
                diff_id: diff_id.clone(),
                source,
            })?;
            fs::set_permissions(&scratch, fs::Permissions::from_mode(0o755))
                .map_err(io_err("chmod", &scratch))?;
            // One syncfs makes every file of the layer durable before it becomes visible.
            let fd = File::open(&scratch).map_err(io_err("open", &scratch))?;
            rustix::fs::syncfs(&fd).map_err(|e| io_err("sync filesystem", &scratch)(e.into()))?;
            fs::rename(&scratch, &dir).map_err(io_err("rename into place", &dir))?;
            tracing::debug!(%diff_id, "layer unpacked");
            fsutil::sync_dir(&self.layers)?;
            Ok(dir.clone())
        })();
        if result.is_err() {
            let _ = remove_tree(&scratch);
        }
        result
    }

    /// Held (shared) by every pull and (exclusive) by a sweep, so a sweep never removes a
    /// blob that a pull has fetched but not yet recorded.
    pub(crate) fn gc_lock(&self, exclusive: bool) -> Result<File, StoreError> {
        let path = self.ingest.join("gc.lock");
        lock_file(
            &path,
            if exclusive {
                FlockOperation::LockExclusive
            } else {
                FlockOperation::LockShared
            },
        )
    }

    /// Remove every blob not in `live`; returns how many and their bytes. Takes the GC lock.
    pub(crate) fn sweep_blobs(
        &self,
        live: &std::collections::BTreeSet<Digest>,
    ) -> Result<(usize, u64), StoreError> {
        let _gc = self.gc_lock(true)?;
        let (mut count, mut bytes) = (0, 0);
        for entry in fs::read_dir(&self.blobs).map_err(io_err("list", &self.blobs))? {
            let entry = entry.map_err(io_err("list", &self.blobs))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep = format!("sha256:{name}")
                .parse::<Digest>()
                .is_ok_and(|d| live.contains(&d));
            if !keep {
                let path = entry.path();
                bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
                count += 1;
            }
        }
        fsutil::sync_dir(&self.blobs)?;
        Ok((count, bytes))
    }

    /// Remove every unpacked layer whose diff id is not in `live`. Takes the GC lock.
    pub(crate) fn sweep_layers(
        &self,
        live: &std::collections::BTreeSet<Digest>,
    ) -> Result<usize, StoreError> {
        let _gc = self.gc_lock(true)?;
        let mut count = 0;
        for entry in fs::read_dir(&self.layers).map_err(io_err("list", &self.layers))? {
            let entry = entry.map_err(io_err("list", &self.layers))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !format!("sha256:{name}")
                .parse::<Digest>()
                .is_ok_and(|d| live.contains(&d))
            {
                remove_tree(&entry.path())?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Remove partial blobs and scratch layers whose writer is gone (crashed or killed).
    fn remove_abandoned(&self) -> Result<(), StoreError> {
        for (dir, suffix) in [(&self.ingest, ".partial"), (&self.layers_tmp, "")] {
            let entries = fs::read_dir(dir).map_err(io_err("list", dir))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".lock") || !name.ends_with(suffix) {
                    continue;
                }
                let hex = name.split('.').next().unwrap_or_default();
                let lock_path = dir.join(format!("{hex}.lock"));
                // Held by a live writer: not abandoned.
                if lock_file(&lock_path, FlockOperation::NonBlockingLockExclusive).is_ok() {
                    let path = entry.path();
                    // Committed or cleared by someone else since the listing: nothing to do.
                    let result = if path.is_dir() {
                        remove_tree(&path)
                    } else {
                        fs::remove_file(&path)
                            .or_else(|e| {
                                if e.kind() == io::ErrorKind::NotFound {
                                    Ok(())
                                } else {
                                    Err(e)
                                }
                            })
                            .map_err(|e| io_err("remove", &path)(e).into())
                    };
                    result?;
                }
            }
        }
        Ok(())
    }
}

fn lock_file(path: &Path, op: FlockOperation) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err("open lock", path))?;
    rustix::fs::flock(&file, op).map_err(|e| io_err("lock", path)(e.into()))?;
    Ok(file)
}

fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or_default();
    let dir = File::open(parent).map_err(io_err("open", parent))?;
    unpack::remove_any(&dir, name).map_err(|e| io_err("remove", path)(e.into()))?;
    Ok(())
}

/// What [`ContentStore::ingest`] found.
pub(crate) enum Ingest {
    Present,
    Write(Box<BlobWriter>),
}

/// Writes a blob while hashing it; [`BlobWriter::commit`] verifies and publishes it. Dropped
/// without commit, it removes its partial file.
pub(crate) struct BlobWriter {
    file: io::BufWriter<File>,
    partial: PathBuf,
    target: PathBuf,
    blobs_dir: PathBuf,
    digest: Digest,
    size: Option<u64>,
    written: u64,
    hasher: Sha256,
    committed: bool,
    _lock: File,
}

impl BlobWriter {
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Start over (a resumed download answered with the whole blob).
    pub(crate) fn reset(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().set_len(0)?;
        io::Seek::seek(&mut self.file, io::SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.written = 0;
        Ok(())
    }

    /// Verify digest and size, make durable, and publish under the digest.
    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        let actual = Digest::from_hex(std::mem::take(&mut self.hasher).finish_hex());
        if actual != self.digest {
            return Err(StoreError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        if let Some(expected) = self.size
            && expected != self.written
        {
            return Err(StoreError::SizeMismatch {
                digest: self.digest.clone(),
                expected,
                actual: self.written,
            });
        }
        self.file.flush().map_err(io_err("write", &self.partial))?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(io_err("sync", &self.partial))?;
        fs::set_permissions(&self.partial, fs::Permissions::from_mode(0o400))
            .map_err(io_err("chmod", &self.partial))?;
        fs::rename(&self.partial, &self.target)
            .map_err(io_err("rename into place", &self.target))?;
        self.committed = true;
        fsutil::sync_dir(&self.blobs_dir)?;
        Ok(())
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(size) = self.size
            && self.written + buf.len() as u64 > size
        {
            return Err(io::Error::other(StoreError::LongerThanDescriptor {
                digest: self.digest.clone(),
                expected: size,
            }));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
