//! The state root's secret-digest key: 32 random bytes in `<state root>/secret-digest.key`
//! (0600), made on first use. Secrets count in containers' hashes as HMACs under it, so a
//! recorded digest cannot be checked against a guessed value without this file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::fsutil::{FsError, io_err};

const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("cannot generate a random key")]
    Random,
    #[error("{} is not a {KEY_LEN}-byte key", path.display())]
    Damaged { path: std::path::PathBuf },
}

/// The key, made now if the state root has none. Two processes making it at once agree:
/// the file appears whole by `link`, which never replaces one already there.
pub fn load_or_create(state_root: &Path) -> Result<Vec<u8>, SecretKeyError> {
    let path = state_root.join("secret-digest.key");
    if let Some(key) = read(&path)? {
        return Ok(key);
    }
    crate::fsutil::private_dir(state_root)?;
    let mut key = vec![0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| SecretKeyError::Random)?;
    let tmp = state_root.join(format!(".secret-digest.key.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    file.write_all(&key).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("sync", &tmp))?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or(SecretKeyError::Damaged { path })
        }
        Err(e) => Err(io_err("link", &path)(e).into()),
    }
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, SecretKeyError> {
    match std::fs::read(path) {
        Ok(key) if key.len() == KEY_LEN => {
            // Kept root-only whatever happened to it.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(io_err("chmod", path))?;
            Ok(Some(key))
        }
        Ok(_) => Err(SecretKeyError::Damaged { path: path.into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_root_only_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), KEY_LEN);
        let mode = std::fs::metadata(dir.path().join("secret-digest.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
