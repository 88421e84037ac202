//! Files that desired-state entries name (`env_file`, read-only binds inside the desired
//! directory): read safely, and digested so that a change to their content changes the
//! container's hash.
//!
//! Nothing but regular files is opened for reading (a FIFO would block, a device could act);
//! directories are walked without following symbolic links.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

use crate::sha256::Sha256;

/// A named file larger than this is refused: these are configuration, not data.
pub(crate) const MAX_FILE_SIZE: u64 = 8 << 20;
/// A directory tree with more entries or bytes than this is not tracked.
const MAX_TREE_ENTRIES: usize = 10_000;
const MAX_TREE_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
}

fn io(path: &Path) -> impl Fn(rustix::io::Errno) -> ReadError + '_ {
    move |e| ReadError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Symlink => "a symbolic link",
        _ => "not a regular file",
    }
}

/// The whole content of the regular file at `path` (symbolic links followed).
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_with_stat(path).map(|(bytes, _)| bytes)
}

/// `read`, with the status of the very file read (owner and mode checks).
pub(crate) fn read_with_stat(path: &Path) -> Result<(Vec<u8>, rustix::fs::Stat), ReadError> {
    // O_PATH opens nothing: no FIFO blocks and no driver runs before the type is known.
    let handle =
        rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(io(path))?;
    let stat = rustix::fs::fstat(&handle).map_err(io(path))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(ReadError::NotRegular {
            path: path.into(),
            kind: describe(kind),
        });
    }
    let file = rustix::fs::open(
        format!("/proc/self/fd/{}", handle.as_fd().as_raw_fd()),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io(path))?;
    let mut bytes = Vec::new();
    std::fs::File::from(file)
        .take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: path.into(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(ReadError::TooLarge {
            path: path.into(),
            limit: MAX_FILE_SIZE,
        });
    }
    Ok((bytes, stat))
}

/// "sha256:…" of a file's content, or of a directory tree: every entry's relative name,
/// type, permission bits and content (a link's target), in name order.
pub(crate) fn digest(path: &Path) -> Result<String, ReadError> {
    let stat = rustix::fs::stat(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        let mut budget = (MAX_TREE_ENTRIES, MAX_TREE_BYTES);
        digest_dir(path, Path::new(""), &mut hasher, &mut budget)?;
    } else {
        hasher.update(b"file\0");
        hasher.update(&read(path)?);
    }
    Ok(format!("sha256:{}", hasher.finish_hex()))
}

fn digest_dir(
    root: &Path,
    rel: &Path,
    hasher: &mut Sha256,
    budget: &mut (usize, u64),
) -> Result<(), ReadError> {
    let dir = root.join(rel);
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(&dir)
        .and_then(|it| it.map(|e| e.map(|e| e.file_name())).collect())
        .map_err(|source| ReadError::Io {
            path: dir.clone(),
            source,
        })?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        budget.0 = budget.0.checked_sub(1).ok_or(ReadError::TooLarge {
            path: root.into(),
            limit: MAX_TREE_ENTRIES as u64,
        })?;
        let stat = rustix::fs::lstat(&path).map_err(io(&path))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        hasher.update(rel.as_os_str().as_encoded_bytes());
        hasher.update(format!("\0{:o}\0", stat.st_mode).as_bytes());
        match kind {
            FileType::Directory => digest_dir(root, &rel, hasher, budget)?,
            FileType::RegularFile => {
                budget.1 =
                    budget
                        .1
                        .checked_sub(stat.st_size as u64)
                        .ok_or(ReadError::TooLarge {
                            path: root.into(),
                            limit: MAX_TREE_BYTES,
                        })?;
                let mut content = Sha256::new();
                content.update(&read(&path)?);
                hasher.update(content.finish_hex().as_bytes());
            }
            FileType::Symlink => {
                let target = std::fs::read_link(&path).map_err(|source| ReadError::Io {
                    path: path.clone(),
                    source,
                })?;
                hasher.update(target.as_os_str().as_encoded_bytes());
            }
            // FIFOs, sockets, devices: their type and mode count, they are never opened.
            _ => {}
        }
        hasher.update(b"\0");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_digest_changes_with_content_names_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("conf");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a"), "1").unwrap();
        let first = digest(&root).unwrap();
        assert_eq!(first, digest(&root).unwrap());
        std::fs::write(root.join("sub/a"), "2").unwrap();
        let second = digest(&root).unwrap();
        assert_ne!(first, second);
        std::fs::set_permissions(root.join("sub/a"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let third = digest(&root).unwrap();
        assert_ne!(second, third);
        std::fs::rename(root.join("sub/a"), root.join("sub/b")).unwrap();
        assert_ne!(third, digest(&root).unwrap());
        assert!(digest(&root.join("sub/b")).unwrap().starts_with("sha256:"));
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(matches!(read(&fifo), Err(ReadError::NotRegular { .. })));
        assert!(matches!(
            read(dir.path()),
            Err(ReadError::NotRegular { .. })
        ));
        assert!(matches!(
            read(&dir.path().join("missing")),
            Err(ReadError::Io { .. })
        ));
    }
}
