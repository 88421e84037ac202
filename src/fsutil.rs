//! Crash-safe file writes: a file either has its old content or its new content, never a
//! mix, even across power loss: write a temporary file beside it, fsync, rename over the
//! target, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A temporary name beside `path`, unique to this process and call.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// fsync a directory so that a rename or creation inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Open `path` below the directory `root` with the kernel keeping every step (symlinks,
/// `..`, absolute links) inside it: the one way berth opens paths in content an image
/// controls (layers being unpacked, a container's root filesystem).
pub(crate) fn open_in_root(
    root: &impl std::os::fd::AsFd,
    path: impl rustix::path::Arg,
    flags: rustix::fs::OFlags,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let path = path.into_c_str()?;
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(
            root,
            path.as_ref(),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
        ) {
            // A rename or mount anywhere on the host while a path with `..` was resolved:
            // the kernel cannot prove it stayed inside and asks for a retry (openat2(2)).
            Err(rustix::io::Errno::AGAIN) if attempts < OPENAT2_RETRIES => attempts += 1,
            result => return result,
        }
    }
}

/// openat2's EAGAIN is a lost race against renames elsewhere; a handful of retries wins it.
const OPENAT2_RETRIES: u32 = 64;

/// A name for a directory about to be deleted, unique among concurrent removals: it is
/// renamed first so that the removal is atomic for readers.
pub(crate) fn doomed_name(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(".{name}.removing.{nanos}")
}

/// Open (creating it) `path` and take an exclusive `flock` on it, polling every `poll` until
/// `timeout`: `Ok(None)` if another holder kept it that long. Bounded, so a caller that cannot
/// get a lock fails (and is retried) instead of hanging.
pub(crate) fn lock_bounded(
    path: &Path,
    timeout: std::time::Duration,
    poll: std::time::Duration,
) -> Result<Option<fs::File>, FsError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("opening", path))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(file)),
            Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(poll);
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(io_err("locking", path)(e.into())),
        }
    }
}

/// Create `dir` root-only from the start: it and every missing parent are made by `mkdir`
/// with mode 0700, so there is no moment in which another user could open one (a descriptor
/// opened then would outlive a later chmod). If `dir` already exists it is tightened to
/// 0700: how a directory an older berth made 0755 is migrated. Existing parents are left
/// alone (a state root may sit in a directory the administrator chose).
pub(crate) fn private_dir(dir: &Path) -> Result<(), FsError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create directory", dir))?;
    let mode = fs::metadata(dir)
        .map_err(io_err("stat", dir))?
        .permissions()
        .mode();
    if mode & 0o7777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", dir))?;
    }
    Ok(())
}

/// Write a new file inside a directory that is being built and will appear by rename:
/// readers never see it half-written, and nothing waits for the disk.
pub(crate) fn write_new_file(path: &Path, contents: &[u8]) -> Result<(), FsError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("create", path))?;
    file.write_all(contents).map_err(io_err("write", path))
}

/// Replace `path` with `contents` atomically and durably.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), FsError> {
    write_via_rename(path, contents, true, 0o666)
}

/// `write_atomic` for a file only root may read (mode 0600 from creation on).
pub(crate) fn write_atomic_private(path: &Path, contents: &[u8]) -> Result<(), FsError> {
    write_via_rename(path, contents, true, 0o600)
}

/// Replace `path` with `contents` atomically for readers, without waiting for the disk: for
/// files whose loss in a power failure is harmless (state that a reboot invalidates anyway,
/// files regenerated from a durable record).
pub(crate) fn write_replace(path: &Path, contents: &[u8]) -> Result<(), FsError> {
    write_via_rename(path, contents, false, 0o666)
}

/// `mode` is the creation mode (before the umask); 0o666 is `OpenOptions`' default.
fn write_via_rename(path: &Path, contents: &[u8], durable: bool, mode: u32) -> Result<(), FsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        file.write_all(contents).map_err(io_err("write", &tmp))?;
        if durable {
            file.sync_all().map_err(io_err("sync", &tmp))?;
        }
        fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
        if durable {
            sync_dir(path.parent().unwrap_or(Path::new(".")))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("record.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn private_dirs_are_made_root_only_and_old_ones_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let leaf = dir.path().join("a/b/c");
        private_dir(&leaf).unwrap();
        for p in [dir.path().join("a"), dir.path().join("a/b"), leaf.clone()] {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
        }
        // An existing parent is not this function's to change.
        assert_eq!(mode(dir.path()), 0o755);
        let old = dir.path().join("old");
        fs::create_dir(&old).unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&old).unwrap();
        assert_eq!(mode(&old), 0o700);
    }

    #[test]
    fn private_writes_are_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("record.json");
        write_atomic_private(&p, b"secret").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read(&p).unwrap(), b"secret");
    }

    #[test]
    fn failure_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("x");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
    }
}

#[cfg(test)]
mod confined_open_tests {
    use super::*;

    /// Renames anywhere on the host make openat2 answer EAGAIN for paths with `..`; a
    /// confined open must ride that out rather than fail (seen as a flaky start when another
    /// container was being created).
    #[test]
    fn confined_opens_survive_concurrent_renames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc/sub")).expect("mkdir");
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").expect("write");
        std::os::unix::fs::symlink("../passwd", root.join("etc/sub/link")).expect("symlink");
        let fd = rustix::fs::open(
            &root,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .expect("open root");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renamer = {
            let (stop, a, b) = (stop.clone(), dir.path().join("a"), dir.path().join("b"));
            std::fs::write(&a, "x").expect("write");
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::rename(&a, &b);
                    let _ = std::fs::rename(&b, &a);
                }
            })
        };
        let mut failures = 0;
        for _ in 0..20_000 {
            if open_in_root(&fd, "/etc/sub/link", rustix::fs::OFlags::RDONLY).is_err() {
                failures += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        renamer.join().expect("renamer");
        assert_eq!(failures, 0);
    }
}
