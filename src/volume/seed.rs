//! Seeding: the first time an empty volume is mounted, the image's content at the mount
//! point is copied into it (Docker's behaviour, which images such as databases rely on for
//! their initial layout and ownership).
//!
//! The source is the container's root filesystem, which the image controls: every path is
//! opened relative to a directory fd, one component at a time, without following symlinks
//! (symlinks are copied as symlinks), and the starting directory is resolved with
//! `openat2(RESOLVE_IN_ROOT)`, so nothing outside the container's root is ever read.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

const MAX_DEPTH: usize = 128;

#[derive(Debug, thiserror::Error)]
pub(crate) enum SeedError {
    #[error("seeding a volume from {path} in the image: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("seeding a volume from {} in the image: deeper than {MAX_DEPTH} directories", path.display())]
    TooDeep { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(rustix::io::Errno) -> SeedError + '_ {
    move |e| SeedError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Copy `target` (a directory inside the container root `root`) into `data`, which must be
/// empty, else nothing happens. With `keep_owner`, `data` keeps its own owner and mode;
/// otherwise it takes the source directory's. Returns the number of entries copied.
pub(crate) fn seed_from(
    root: &OwnedFd,
    target: &str,
    data: &Path,
    keep_owner: bool,
) -> Result<u64, SeedError> {
    let source_path = PathBuf::from(target);
    let source = match crate::fsutil::open_in_root(
        root,
        target.trim_start_matches('/'),
        OFlags::DIRECTORY | OFlags::RDONLY,
    ) {
        Ok(fd) => fd,
        // Nothing (or not a directory) at the mount point: nothing to seed.
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(0),
        Err(e) => return Err(io(&source_path)(e)),
    };
    let dest = rustix::fs::open(
        data,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io(data))?;
    if !list(&dest).map_err(io(data))?.is_empty() {
        return Ok(0);
    }
    if !keep_owner {
        let stat = rustix::fs::fstat(&source).map_err(io(&source_path))?;
        copy_owner_and_mode(&dest, &stat).map_err(io(data))?;
    }
    let mut copied = 0;
    copy_dir(&source, &dest, &source_path, 0, &mut copied)?;
    Ok(copied)
}

fn copy_dir(
    from: &OwnedFd,
    to: &OwnedFd,
    path: &Path,
    depth: usize,
    copied: &mut u64,
) -> Result<(), SeedError> {
    if depth > MAX_DEPTH {
        return Err(SeedError::TooDeep { path: path.into() });
    }
    for name in list(from).map_err(io(path))? {
        let child = path.join(&name);
        let stat =
            rustix::fs::statat(from, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(io(&child))?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(to, &name, Mode::from_raw_mode(0o700)).map_err(io(&child))?;
                let src = open_child(from, &name, OFlags::DIRECTORY).map_err(io(&child))?;
                let dst = open_child(to, &name, OFlags::DIRECTORY).map_err(io(&child))?;
                copy_dir(&src, &dst, &child, depth + 1, copied)?;
                copy_owner_and_mode(&dst, &stat).map_err(io(&child))?;
            }
            FileType::RegularFile => {
                let src = open_child(from, &name, OFlags::RDONLY).map_err(io(&child))?;
                let dst = rustix::fs::openat(
                    to,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io(&child))?;
                let (mut src, mut dst) = (File::from(src), File::from(dst));
                std::io::copy(&mut src, &mut dst).map_err(|source| SeedError::Io {
                    path: child.clone(),
                    source,
                })?;
                copy_owner_and_mode(&dst, &stat).map_err(io(&child))?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(from, &name, Vec::new()).map_err(io(&child))?;
                rustix::fs::symlinkat(target.as_c_str(), to, &name).map_err(io(&child))?;
                rustix::fs::chownat(
                    to,
                    &name,
                    Some(rustix::fs::Uid::from_raw(stat.st_uid)),
                    Some(rustix::fs::Gid::from_raw(stat.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(io(&child))?;
            }
            // Devices, fifos and sockets do not belong in a data volume.
            _ => continue,
        }
        *copied += 1;
    }
    Ok(())
}

fn open_child(dir: &OwnedFd, name: &OsString, flags: OFlags) -> Result<OwnedFd, rustix::io::Errno> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn copy_owner_and_mode(fd: &impl AsFd, stat: &rustix::fs::Stat) -> Result<(), rustix::io::Errno> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(stat.st_uid)),
        Some(rustix::fs::Gid::from_raw(stat.st_gid)),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(stat.st_mode & 0o7777))
}

fn list(dir: &OwnedFd) -> Result<Vec<OsString>, rustix::io::Errno> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from(std::ffi::OsStr::from_bytes(name)));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn open(path: &Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).expect("open")
    }

    #[test]
    fn copies_tree_with_owner_mode_and_symlinks_without_escaping() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let src = root.join("var/lib/app");
        std::fs::create_dir_all(src.join("sub")).expect("mkdir");
        std::fs::write(src.join("sub/file"), "hello").expect("write");
        std::fs::set_permissions(src.join("sub/file"), std::fs::Permissions::from_mode(0o640))
            .expect("chmod");
        std::os::unix::fs::chown(src.join("sub/file"), Some(999), Some(998)).expect("chown");
        std::os::unix::fs::chown(&src, Some(70), Some(70)).expect("chown");
        symlink("/etc/shadow", src.join("link")).expect("symlink");
        let data = tmp.path().join("data");
        std::fs::create_dir(&data).expect("mkdir");

        let n = seed_from(&open(&root), "/var/lib/app", &data, false).expect("seed");
        assert_eq!(n, 3);
        assert_eq!(
            std::fs::read_to_string(data.join("sub/file")).expect("read"),
            "hello"
        );
        let meta = std::fs::metadata(data.join("sub/file")).expect("stat");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (999, 998, 0o640)
        );
        assert_eq!(std::fs::metadata(&data).expect("stat").uid(), 70);
        assert_eq!(
            std::fs::read_link(data.join("link")).expect("link"),
            Path::new("/etc/shadow")
        );

        // A second seeding finds the volume non-empty and does nothing.
        std::fs::write(src.join("new"), "x").expect("write");
        assert_eq!(
            seed_from(&open(&root), "/var/lib/app", &data, false).expect("again"),
            0
        );
        assert!(!data.join("new").exists());
    }

    #[test]
    fn a_symlinked_mount_point_cannot_lead_outside_the_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("secret"), "no").expect("write");
        symlink("../../outside", root.join("data/vol")).expect("symlink");
        let data = tmp.path().join("volume");
        std::fs::create_dir(&data).expect("mkdir");
        let n = seed_from(&open(&root), "/data/vol", &data, false).expect("seed");
        assert_eq!(n, 0);
        assert!(!data.join("secret").exists());
    }

    #[test]
    fn missing_mount_point_seeds_nothing_and_keep_owner_is_respected() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("app")).expect("mkdir");
        std::os::unix::fs::chown(root.join("app"), Some(5), Some(5)).expect("chown");
        std::fs::write(root.join("app/f"), "x").expect("write");
        let data = tmp.path().join("volume");
        std::fs::create_dir(&data).expect("mkdir");
        assert_eq!(
            seed_from(&open(&root), "/nothing/here", &data, false).expect("seed"),
            0
        );
        assert_eq!(
            seed_from(&open(&root), "/app", &data, true).expect("seed"),
            1
        );
        assert_eq!(std::fs::metadata(&data).expect("stat").uid(), 0);
    }
}
