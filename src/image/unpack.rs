//! Unpacking image layers without ever writing outside the target directory.
//!
//! Every path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`: symlinks — absolute
//! or relative, from this layer or planted earlier — resolve as if the target directory were
//! `/`, so neither a symlinked parent, `..` inside a link, nor a hardlink to `/etc/shadow` can
//! reach outside it. Entry names with `..` are rejected outright (a layer carrying them is
//! malformed or hostile); leading `/` is stripped, as tar does. Each filesystem operation then
//! acts on a single name relative to an already-opened parent directory.
//!
//! Two targets:
//! - [`Target::Layer`]: a layer on its own, for use as an overlayfs lower directory. OCI
//!   whiteouts become overlayfs whiteouts (a 0/0 character device; `trusted.overlay.opaque=y`
//!   on opaque directories).
//! - [`Target::Flatten`]: layers applied in order onto one directory (`berth unpack`):
//!   whiteouts delete what earlier layers wrote.
//!
//! Device nodes are skipped (a container gets its devices from the runtime, never from an
//! image); xattrs other than `user.*` and `security.capability` are dropped (a layer must not
//! set `trusted.overlay.*` or SELinux labels).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::compression;
use crate::digest::{Digest, HashingReader, is_limit_error};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// One layer into its own directory, whiteouts in overlayfs form.
    Layer,
    /// Apply onto a directory holding the layers below, whiteouts applied.
    Flatten,
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Uncompressed bytes a layer may expand to.
    pub max_bytes: u64,
    /// Entries a layer may hold.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Stats {
    pub entries: u64,
    /// Uncompressed size of the tar stream.
    pub tar_bytes: u64,
    pub skipped_devices: u64,
    pub dropped_xattrs: u64,
    pub whiteouts: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open unpack target {}: {source}", path.display())]
    Root { path: PathBuf, source: io::Error },
    #[error("layer entry `{}` climbs out of the layer with `..`", path.display())]
    Escape { path: PathBuf },
    #[error("layer entry `{}`: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("layer entry `{}`: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("layer is not a valid tar stream: {source}")]
    Tar { source: io::Error },
    #[error("layer expands to more than {limit} bytes (decompression bomb?)")]
    TooLarge { limit: u64 },
    #[error("layer has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("layer content does not match its diff id: expected {expected}, got {actual}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
}

fn entry_io(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| match is_limit_error(&source) {
        Some(limit) => UnpackError::TooLarge { limit },
        None => UnpackError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

fn errno_io(path: &Path) -> impl FnOnce(Errno) -> UnpackError + '_ {
    move |e| UnpackError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Unpack one (possibly compressed) layer stream into `root`, which must exist. When
/// `diff_id` is given, the uncompressed stream must hash to it; the caller unpacks into a
/// scratch directory and renames it into place only on success, so a partial or mismatching
/// layer is never used.
pub(crate) fn unpack_layer<R: Read>(
    layer: R,
    root: &Path,
    target: Target,
    limits: &Limits,
    diff_id: Option<&Digest>,
) -> Result<Stats, UnpackError> {
    let (_, tar_stream) =
        compression::decompress(layer).map_err(|source| UnpackError::Tar { source })?;
    let mut hashing = HashingReader::new(tar_stream, limits.max_bytes);
    let stats = {
        let mut unpacker = Unpacker::new(root, target)?;
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive
            .entries()
            .map_err(|source| UnpackError::Tar { source })?;
        for entry in entries {
            let entry = entry.map_err(tar_error)?;
            unpacker.stats.entries += 1;
            if unpacker.stats.entries > limits.max_entries {
                return Err(UnpackError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            unpacker.entry(entry)?;
        }
        unpacker.stats
    };
    let (actual, tar_bytes) = hashing.finish().map_err(tar_error)?;
    if let Some(expected) = diff_id
        && *expected != actual
    {
        return Err(UnpackError::DiffIdMismatch {
            expected: expected.clone(),
            actual,
        });
    }
    Ok(Stats { tar_bytes, ..stats })
}

fn tar_error(source: io::Error) -> UnpackError {
    match is_limit_error(&source) {
        Some(limit) => UnpackError::TooLarge { limit },
        None => UnpackError::Tar { source },
    }
}

/// A cleaned entry path: normal components only, never empty names, never `..`.
fn clean(raw: &Path) -> Result<Vec<OsString>, UnpackError> {
    let mut parts = Vec::new();
    for component in raw.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(UnpackError::Escape { path: raw.into() }),
            Component::Normal(part) => {
                if part.as_bytes().contains(&0) {
                    return Err(UnpackError::Invalid {
                        path: raw.into(),
                        reason: "name contains NUL".into(),
                    });
                }
                parts.push(part.to_os_string());
            }
        }
    }
    Ok(parts)
}

fn join(parts: &[OsString]) -> PathBuf {
    if parts.is_empty() {
        PathBuf::from(".")
    } else {
        parts.iter().collect()
    }
}

struct Unpacker {
    root: OwnedFd,
    target: Target,
    chown: bool,
    /// Paths written by this layer (Flatten only): an opaque marker keeps them.
    written: HashSet<Vec<OsString>>,
    /// Every directory above a written path: kept by an opaque marker, but searched.
    written_ancestors: HashSet<Vec<OsString>>,
    stats: Stats,
}

impl Unpacker {
    fn new(root: &Path, target: Target) -> Result<Self, UnpackError> {
        let fd = rustix::fs::open(
            root,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| UnpackError::Root {
            path: root.into(),
            source: e.into(),
        })?;
        Ok(Unpacker {
            root: fd,
            target,
            chown: rustix::process::geteuid().is_root(),
            written: HashSet::new(),
            written_ancestors: HashSet::new(),
            stats: Stats::default(),
        })
    }

    /// Open a directory below the root, the kernel keeping every step inside it.
    fn open_dir(&self, parts: &[OsString]) -> Result<OwnedFd, Errno> {
        crate::fsutil::open_in_root(&self.root, join(parts), OFlags::DIRECTORY | OFlags::RDONLY)
    }

    /// Open (creating as needed) the parent directory of an entry.
    fn parent(&self, path: &Path, parts: &[OsString]) -> Result<OwnedFd, UnpackError> {
        match self.open_dir(parts) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(Errno::NOTDIR) => {
                return Err(UnpackError::Invalid {
                    path: path.into(),
                    reason: "a parent is not a directory".into(),
                });
            }
            Err(e) => return Err(errno_io(path)(e)),
        }
        let mut dir = self.open_dir(&[]).map_err(errno_io(path))?;
        for i in 0..parts.len() {
            match self.open_dir(&parts[..=i]) {
                Ok(fd) => dir = fd,
                Err(Errno::NOENT) => {
                    // The name may be a dangling symlink: creating "through" it is refused
                    // rather than followed (mkdirat never follows a final symlink).
                    rustix::fs::mkdirat(&dir, parts[i].as_os_str(), Mode::from_raw_mode(0o755))
                        .map_err(errno_io(path))?;
                    dir = self.open_dir(&parts[..=i]).map_err(errno_io(path))?;
                }
                Err(Errno::NOTDIR) => {
                    return Err(UnpackError::Invalid {
                        path: path.into(),
                        reason: "a parent is not a directory".into(),
                    });
                }
                Err(e) => return Err(errno_io(path)(e)),
            }
        }
        Ok(dir)
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw_path = entry
            .path()
            .map_err(|source| UnpackError::Tar { source })?
            .into_owned();
        let parts = clean(&raw_path)?;
        let header = entry.header();
        let kind = header.entry_type();
        let Some((name, parent_parts)) = parts.split_last() else {
            // "./" itself: the root directory; its metadata is the target's, leave it.
            return Ok(());
        };
        let name = name.clone();
        let parent_parts = parent_parts.to_vec();
        // Numeric fields left empty (some tools write them so) read as 0, as Go's archive/tar
        // and therefore Docker read them.
        let mode = header.mode().unwrap_or(0) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let mtime = header.mtime().unwrap_or(0);
        let link_name = entry
            .link_name()
            .map_err(|source| UnpackError::Tar { source })?
            .map(|l| l.into_owned());
        let name_str = name.to_string_lossy();

        // Whiteouts.
        if name_str == OPAQUE_MARKER {
            let dir = self.parent(&raw_path, &parent_parts)?;
            self.stats.whiteouts += 1;
            return match self.target {
                Target::Layer => rustix::fs::fsetxattr(
                    &dir,
                    OVERLAY_OPAQUE_XATTR,
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(errno_io(&raw_path)),
                Target::Flatten => self.clear_lower_children(&dir, &parent_parts, &raw_path),
            };
        }
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(UnpackError::Invalid {
                    path: raw_path,
                    reason: "whiteout of an invalid name".into(),
                });
            }
            let hidden =
                OsStr::from_bytes(&name.as_bytes()[WHITEOUT_PREFIX.len()..]).to_os_string();
            let dir = self.parent(&raw_path, &parent_parts)?;
            self.stats.whiteouts += 1;
            remove_any(&dir, &hidden).map_err(errno_io(&raw_path))?;
            if self.target == Target::Layer {
                rustix::fs::mknodat(&dir, &hidden, FileType::CharacterDevice, Mode::empty(), 0)
                    .map_err(errno_io(&raw_path))?;
            }
            return Ok(());
        }

        let dir = self.parent(&raw_path, &parent_parts)?;
        if self.target == Target::Flatten {
            for depth in 1..parts.len() {
                self.written_ancestors.insert(parts[..depth].to_vec());
            }
            self.written.insert(parts.clone());
        }
        let existing = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir = existing
            .as_ref()
            .is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);

        match kind {
            tar::EntryType::Directory => {
                if existing.is_some() && !existing_is_dir {
                    remove_any(&dir, &name).map_err(errno_io(&raw_path))?;
                }
                if !existing_is_dir {
                    rustix::fs::mkdirat(&dir, &name, Mode::from_raw_mode(0o700))
                        .map_err(errno_io(&raw_path))?;
                }
                let fd = rustix::fs::openat(
                    &dir,
                    &name,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno_io(&raw_path))?;
                self.own(&fd, uid, gid, &raw_path)?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno_io(&raw_path))?;
                self.xattrs(&mut entry, &fd, &raw_path)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                if existing.is_some() {
                    remove_any(&dir, &name).map_err(errno_io(&raw_path))?;
                }
                let fd = rustix::fs::openat(
                    &dir,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno_io(&raw_path))?;
                let mut file = File::from(fd);
                copy_large(&mut entry, &mut file).map_err(entry_io(&raw_path))?;
                self.own(&file, uid, gid, &raw_path)?;
                // After chown, which clears setuid/setgid.
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                    .map_err(errno_io(&raw_path))?;
                self.xattrs(&mut entry, &file, &raw_path)?;
                let t = timestamps(mtime);
                rustix::fs::futimens(&file, &t).map_err(errno_io(&raw_path))?;
            }
            tar::EntryType::Symlink => {
                let Some(target) = link_name else {
                    return Err(UnpackError::Invalid {
                        path: raw_path,
                        reason: "symlink without a target".into(),
                    });
                };
                if existing.is_some() {
                    remove_any(&dir, &name).map_err(errno_io(&raw_path))?;
                }
                // The target is data: it is resolved later, inside the container's root or
                // with RESOLVE_IN_ROOT here, never against the host.
                rustix::fs::symlinkat(target.as_os_str(), &dir, &name)
                    .map_err(errno_io(&raw_path))?;
                self.own_at(&dir, &name, uid, gid, &raw_path)?;
                rustix::fs::utimensat(&dir, &name, &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno_io(&raw_path))?;
            }
            tar::EntryType::Link => {
                let Some(target) = link_name else {
                    return Err(UnpackError::Invalid {
                        path: raw_path,
                        reason: "hardlink without a target".into(),
                    });
                };
                let target_parts = clean(&target)?;
                let Some((target_name, target_parent)) = target_parts.split_last() else {
                    return Err(UnpackError::Invalid {
                        path: raw_path,
                        reason: "hardlink to the root directory".into(),
                    });
                };
                let target_dir = match self.open_dir(target_parent) {
                    Ok(fd) => fd,
                    Err(_) => {
                        return Err(UnpackError::Invalid {
                            path: raw_path,
                            reason: format!(
                                "hardlink target `{}` is not in this layer",
                                target.display()
                            ),
                        });
                    }
                };
                if existing.is_some() {
                    remove_any(&dir, &name).map_err(errno_io(&raw_path))?;
                }
                // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
                rustix::fs::linkat(&target_dir, target_name, &dir, &name, AtFlags::empty())
                    .map_err(|e| match e {
                        Errno::NOENT => UnpackError::Invalid {
                            path: raw_path.clone(),
                            reason: format!(
                                "hardlink target `{}` is not in this layer",
                                target.display()
                            ),
                        },
                        Errno::PERM => UnpackError::Invalid {
                            path: raw_path.clone(),
                            reason: format!(
                                "hardlink target `{}` is a directory",
                                target.display()
                            ),
                        },
                        e => errno_io(&raw_path)(e),
                    })?;
            }
            tar::EntryType::Fifo => {
                if existing.is_some() {
                    remove_any(&dir, &name).map_err(errno_io(&raw_path))?;
                }
                rustix::fs::mknodat(&dir, &name, FileType::Fifo, Mode::from_raw_mode(mode), 0)
                    .map_err(errno_io(&raw_path))?;
                self.own_at(&dir, &name, uid, gid, &raw_path)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                self.stats.skipped_devices += 1;
            }
            // Metadata entries the tar crate folds into the next entry, and anything unknown.
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            other => {
                return Err(UnpackError::Invalid {
                    path: raw_path,
                    reason: format!("unsupported entry type {other:?}"),
                });
            }
        }
        Ok(())
    }

    /// chown a name without following it (symlinks, fifos).
    fn own_at(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        uid: u64,
        gid: u64,
        path: &Path,
    ) -> Result<(), UnpackError> {
        if !self.chown {
            return Ok(());
        }
        rustix::fs::chownat(
            dir,
            name,
            Some(uid_of(uid)),
            Some(gid_of(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno_io(path))
    }

    fn own(&self, fd: &impl AsFd, uid: u64, gid: u64, path: &Path) -> Result<(), UnpackError> {
        if !self.chown {
            return Ok(());
        }
        rustix::fs::fchown(fd, Some(uid_of(uid)), Some(gid_of(gid))).map_err(errno_io(path))
    }

    fn xattrs<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        fd: &impl AsFd,
        path: &Path,
    ) -> Result<(), UnpackError> {
        let Ok(Some(extensions)) = entry.pax_extensions() else {
            return Ok(());
        };
        let mut wanted = Vec::new();
        for ext in extensions {
            let Ok(ext) = ext else { continue };
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if name.starts_with("user.") || name == "security.capability" {
                    wanted.push((name.to_string(), ext.value_bytes().to_vec()));
                } else {
                    self.stats.dropped_xattrs += 1;
                }
            }
        }
        for (name, value) in wanted {
            rustix::fs::fsetxattr(fd, name.as_str(), &value, rustix::fs::XattrFlags::empty())
                .map_err(errno_io(path))?;
        }
        Ok(())
    }

    /// Flatten: an opaque directory hides everything lower layers put in it; keep only what
    /// this layer wrote there.
    fn clear_lower_children(
        &self,
        dir: &OwnedFd,
        parts: &[OsString],
        path: &Path,
    ) -> Result<(), UnpackError> {
        for name in list_dir(dir).map_err(errno_io(path))? {
            let mut child = parts.to_vec();
            child.push(name.clone());
            let kept = self.written.contains(&child) || self.written_ancestors.contains(&child);
            if !kept {
                remove_any(dir, &name).map_err(errno_io(path))?;
                continue;
            }
            // A directory this layer wrote or wrote into may still hold lower content.
            let is_dir = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
            if is_dir {
                let sub = rustix::fs::openat(
                    dir,
                    &name,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno_io(path))?;
                self.clear_lower_children(&sub, &child, path)?;
            }
        }
        Ok(())
    }
}

/// Copy with a large buffer: layer files are often big, and `io::copy`'s 8 KiB buffer
/// costs a syscall per 8 KiB.
fn copy_large(from: &mut impl Read, to: &mut File) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        io::Write::write_all(to, &buf[..n])?;
        total += n as u64;
    }
}

fn uid_of(id: u64) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(u32::try_from(id).unwrap_or(u32::MAX - 1))
}

fn gid_of(id: u64) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(u32::try_from(id).unwrap_or(u32::MAX - 1))
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(0),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn list_dir(dir: &OwnedFd) -> Result<Vec<OsString>, Errno> {
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

/// Remove a name in a directory whatever it is, recursively for directories, never
/// following symlinks. A missing name is not an error.
pub(crate) fn remove_any(dir: &impl AsFd, name: &OsStr) -> Result<(), Errno> {
    let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => s,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
        let child = rustix::fs::openat(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for grandchild in list_dir(&child)? {
            remove_any(&child, &grandchild)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
    }
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
