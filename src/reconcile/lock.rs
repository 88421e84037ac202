//! One reconciler per state root: `berth agent` and `berth apply` take an exclusive flock
//! on `<root>/reconcile/lock` for their whole life, and write their pid into it so a
//! second one can say who holds it. The kernel drops the lock when the holder dies, so a
//! crashed agent never blocks the next one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::{FsError, io_err};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(
        "another berth reconciler (pid {holder}) already manages {}; stop it first (`systemctl stop berth`), or use `berth plan` and `berth status`, which need no lock",
        root.display()
    )]
    Held { root: PathBuf, holder: String },
}

pub struct ReconcileLock {
    _file: File,
}

impl ReconcileLock {
    pub fn acquire(state_root: &Path) -> Result<ReconcileLock, LockError> {
        let dir = state_root.join("reconcile");
        crate::fsutil::private_dir(&dir)?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Held {
                root: state_root.to_path_buf(),
                holder: if holder.is_empty() {
                    "unknown".into()
                } else {
                    holder.into()
                },
            });
        }
        file.set_len(0).map_err(io_err("truncating", &path))?;
        file.rewind().map_err(io_err("rewinding", &path))?;
        write!(file, "{}", std::process::id()).map_err(io_err("writing", &path))?;
        Ok(ReconcileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let root = tempfile::tempdir().unwrap();
        let first = ReconcileLock::acquire(root.path()).unwrap();
        // flock locks belong to the open file description: a second open conflicts even
        // within one process, as a second agent would.
        match ReconcileLock::acquire(root.path()) {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder, std::process::id().to_string())
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("a second lock was granted"),
        }
        drop(first);
        ReconcileLock::acquire(root.path()).unwrap();
    }
}
