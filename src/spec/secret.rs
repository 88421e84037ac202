//! Secret and config values: how they are read (a root-only host file, an age-encrypted file
//! decrypted with the host's identity), how they are held (never printed, never serialized),
//! and how a secret counts in a container's hash: an HMAC keyed per state root, so neither
//! records nor `plan` carry anything a guess could be checked against offline.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Where the host's age identity is, unless `--age-identity` or `BERTH_AGE_IDENTITY` says.
pub const DEFAULT_AGE_IDENTITY: &str = "/etc/berth/age-identity.txt";

static AGE_IDENTITY: OnceLock<PathBuf> = OnceLock::new();

/// Set once by the CLI, before anything is loaded.
pub fn set_age_identity(path: PathBuf) {
    let _ = AGE_IDENTITY.set(path);
}

pub(crate) fn age_identity() -> PathBuf {
    AGE_IDENTITY.get().cloned().unwrap_or_else(|| {
        std::env::var_os("BERTH_AGE_IDENTITY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_AGE_IDENTITY))
    })
}

/// A secret's value. Its `Debug` shows the length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.value.len())
    }
}

impl Secret {
    pub(crate) fn new(value: Vec<u8>) -> Secret {
        Secret {
            value: Arc::new(value),
        }
    }

    pub fn expose(&self) -> &[u8] {
        &self.value
    }
}

/// A name a secret may be given as (`env = "VAR"`): `[A-Za-z_][A-Za-z0-9_]*`, what every
/// shell and program takes; it also names the file the value is kept in on the run root.
pub(crate) fn portable_env_name(var: &str) -> bool {
    let mut chars = var.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A config's content and its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigContent {
    pub bytes: Arc<Vec<u8>>,
    pub digest: String,
}

impl ConfigContent {
    pub(crate) fn new(bytes: Vec<u8>) -> ConfigContent {
        ConfigContent {
            digest: format!("sha256:{}", crate::sha256::hex_digest(&bytes)),
            bytes: Arc::new(bytes),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    #[error(transparent)]
    Read(#[from] super::referenced::ReadError),
    #[error("{} is owned by uid {uid}, not root", path.display())]
    NotRootOwned { path: PathBuf, uid: u32 },
    #[error("{} has mode {mode:04o}: group or others may access it", path.display())]
    Accessible { path: PathBuf, mode: u32 },
    #[error("the age identity {} lies inside the desired directory", path.display())]
    IdentityInside { path: PathBuf },
    #[error("cannot read the age identity {}: {message}", path.display())]
    Identity { path: PathBuf, message: String },
    #[error("cannot decrypt {}: {message}", path.display())]
    Decrypt { path: PathBuf, message: String },
}

impl super::value::Hint for SecretError {
    fn help(&self) -> Option<String> {
        Some(match self {
            SecretError::Read(_) => "the file must exist and be a regular, readable file".into(),
            SecretError::NotRootOwned { .. } | SecretError::Accessible { .. } => {
                "chown root:root FILE && chmod 0600 FILE: a secret only root may read".into()
            }
            SecretError::IdentityInside { .. } => "keep the identity out of the desired directory (default /etc/berth/age-identity.txt, or --age-identity / BERTH_AGE_IDENTITY): whoever can read the directory must not get the key".into(),
            SecretError::Identity { .. } => format!("write the host's identity with `age-keygen -o {DEFAULT_AGE_IDENTITY}` (mode 0600), or name it with --age-identity / BERTH_AGE_IDENTITY"),
            SecretError::Decrypt { .. } => "encrypt it to the host's recipient: `age -r $(age-keygen -y IDENTITY) -o FILE.age FILE`".into(),
        })
    }
}

/// A `file` secret: owned by root, neither group- nor other-accessible.
pub(crate) fn read_host_file(path: &Path) -> Result<Secret, SecretError> {
    let (bytes, stat) = super::referenced::read_with_stat(path)?;
    if stat.st_uid != 0 {
        return Err(SecretError::NotRootOwned {
            path: path.into(),
            uid: stat.st_uid,
        });
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Accessible {
            path: path.into(),
            mode,
        });
    }
    Ok(Secret::new(bytes))
}

/// An `age` secret, decrypted with the host identity, which must lie outside `desired_dir`.
pub(crate) fn decrypt_age_file(path: &Path, desired_dir: &Path) -> Result<Secret, SecretError> {
    let identity = age_identity();
    let absolute = std::path::absolute(&identity).unwrap_or_else(|_| identity.clone());
    let inside = |p: &Path| {
        p.starts_with(desired_dir)
            || std::fs::canonicalize(p)
                .is_ok_and(|c| std::fs::canonicalize(desired_dir).is_ok_and(|d| c.starts_with(d)))
    };
    if inside(&absolute) {
        return Err(SecretError::IdentityInside { path: identity });
    }
    let id_err = |message: String| SecretError::Identity {
        path: identity.clone(),
        message,
    };
    let text = super::referenced::read(&identity).map_err(|e| id_err(e.to_string()))?;
    let text = String::from_utf8(text).map_err(|_| id_err("not UTF-8".into()))?;
    let identities: Vec<age::x25519::Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.parse::<age::x25519::Identity>())
        .collect::<Result<_, _>>()
        .map_err(|e| id_err(e.to_string()))?;
    if identities.is_empty() {
        return Err(id_err("no AGE-SECRET-KEY line".into()));
    }
    let encrypted = super::referenced::read(path)?;
    let decrypt_err = |message: String| SecretError::Decrypt {
        path: path.into(),
        message,
    };
    let decryptor = age::Decryptor::new(&encrypted[..]).map_err(|e| decrypt_err(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| decrypt_err(e.to_string()))?;
    let mut value = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut value).map_err(|e| decrypt_err(e.to_string()))?;
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(7 bytes)");
    }

    #[test]
    fn env_names_are_portable() {
        for good in ["A", "_", "API_TOKEN", "a1_b2"] {
            assert!(portable_env_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A=B", "A B", "../x", "Ä"] {
            assert!(!portable_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn host_files_must_be_root_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "v").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_host_file(&path).unwrap_err();
        // Tests run as root: owned by root, but group-readable.
        assert!(
            matches!(e, SecretError::Accessible { mode: 0o640, .. }),
            "{e:?}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_host_file(&path).unwrap().expose(), b"v");
        rustix::fs::chown(&path, Some(rustix::fs::Uid::from_raw(1000)), None).unwrap();
        assert!(matches!(
            read_host_file(&path),
            Err(SecretError::NotRootOwned { uid: 1000, .. })
        ));
    }
}
