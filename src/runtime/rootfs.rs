//! The container's root filesystem: an overlay of the image's unpacked layers (shared,
//! read-only) under a private upper directory. Mounted by the monitor inside its own mount
//! namespace, so the host's mount table never holds it and it cannot leak: it disappears
//! with the monitor, whatever way the monitor ends.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::bundle::{has_option, is_bind};
use crate::state::layout::ContainerPaths;

/// The kernel copies mount options into one page.
const MOUNT_DATA_MAX: usize = 4095;
/// /etc/passwd and /etc/group larger than this are not believed.
const ID_FILE_MAX: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RootfsError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the image has {layers} layers: too many for one overlay mount ({length} bytes of options, the kernel takes {MOUNT_DATA_MAX}); squash the image"
    )]
    TooManyLayers { layers: usize, length: usize },
    #[error("{} in the container is larger than {ID_FILE_MAX} bytes", path)]
    TooLarge { path: String },
    #[error("{path} in the container is not a regular file")]
    NotAFile { path: String },
    #[error(
        "the working directory {path} is not a directory {}{}; set `workdir` to a directory",
        place(within),
        via_link(link)
    )]
    WorkdirNotADirectory {
        path: String,
        link: Option<String>,
        /// The target of the mount it lies in, if any (otherwise the image).
        within: Option<String>,
    },
    #[error("the working directory {path} is in the mount on {target}: {problem}")]
    WorkdirInMount {
        path: String,
        target: String,
        problem: String,
    },
    #[error("mount {source_shown} on {target}: {problem}")]
    MountTarget {
        source_shown: String,
        target: String,
        problem: String,
    },
}

fn place(within: &Option<String>) -> String {
    match within {
        Some(target) => format!("in the mount on {target}"),
        None => "in the image".into(),
    }
}

fn via_link(link: &Option<String>) -> String {
    match link {
        Some(to) => format!(" (a symbolic link to {to})"),
        None => String::new(),
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RootfsError + 'a {
    move |source| RootfsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Mount the overlay at `paths.rootfs()`, its writable layer in `writable` (`upper/` and
/// `work/`: the container's directory, or its own filesystem). `layers` is highest first.
/// Lower directories are given relative to their common parent (the monitor is
/// single-threaded, so changing its working directory is safe), which fits about 60 layers
/// into the option page instead of 40.
pub(crate) fn mount_overlay(
    paths: &ContainerPaths,
    layers: &[PathBuf],
    writable: &Path,
) -> Result<(), RootfsError> {
    let mut lowers: Vec<PathBuf> = layers.to_vec();
    if lowers.is_empty() {
        let empty = paths.empty_lower();
        std::fs::create_dir_all(&empty).map_err(io("creating", &empty))?;
        lowers.push(empty);
    }
    let parent = common_parent(&lowers);
    if let Some(parent) = &parent {
        std::env::set_current_dir(parent).map_err(io("entering", parent))?;
    }
    let lower_text: Vec<String> = lowers
        .iter()
        .map(|l| {
            let shown = match &parent {
                Some(p) => l.strip_prefix(p).unwrap_or(l),
                None => l,
            };
            escape(&shown.to_string_lossy())
        })
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={},index=off",
        lower_text.join(":"),
        escape(&writable.join("upper").to_string_lossy()),
        escape(&writable.join("work").to_string_lossy()),
    );
    if data.len() > MOUNT_DATA_MAX {
        return Err(RootfsError::TooManyLayers {
            layers: layers.len(),
            length: data.len(),
        });
    }
    let data = std::ffi::CString::new(data).map_err(|_| RootfsError::Io {
        op: "mounting",
        path: paths.rootfs(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in a path"),
    })?;
    let target = paths.rootfs();
    rustix::mount::mount(
        "overlay",
        &target,
        "overlay",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| RootfsError::Io {
        op: "mounting the overlay at",
        path: target.clone(),
        source: e.into(),
    })?;
    let _ = std::env::set_current_dir("/");
    Ok(())
}

fn common_parent(dirs: &[PathBuf]) -> Option<PathBuf> {
    let first = dirs.first()?.parent()?;
    dirs.iter()
        .all(|d| d.parent() == Some(first))
        .then(|| first.to_path_buf())
}

/// overlayfs splits options on `,` and lower dirs on `:`; both are escaped with `\`.
fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Open a path inside the container's root, the kernel keeping every step (symlinks,
/// `..`) inside it. `Ok(None)` if it does not exist.
fn open_in_root(
    root: &OwnedFd,
    path: &str,
    flags: OFlags,
) -> Result<Option<OwnedFd>, std::io::Error> {
    match crate::fsutil::open_in_root(root, path.trim_start_matches('/'), flags) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn open_root(rootfs: &Path) -> Result<OwnedFd, RootfsError> {
    rustix::fs::open(
        rootfs,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::Io {
        op: "opening",
        path: rootfs.to_path_buf(),
        source: e.into(),
    })
}

/// Read a small text file from inside the container (`/etc/passwd`); missing → empty.
pub(crate) fn read_small_file(root: &OwnedFd, path: &str) -> Result<String, RootfsError> {
    let shown = Path::new(path);
    // Non-blocking, and only a regular file: a FIFO planted by the image must not hang us.
    let Some(fd) = open_in_root(root, path, OFlags::RDONLY | OFlags::NONBLOCK)
        .map_err(io("opening", shown))?
    else {
        return Ok(String::new());
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| io("inspecting", shown)(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(RootfsError::NotAFile { path: path.into() });
    }
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    (&mut file)
        .take(ID_FILE_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io("reading", shown))?;
    if bytes.len() as u64 > ID_FILE_MAX {
        return Err(RootfsError::TooLarge { path: path.into() });
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What a path inside the root is, following symbolic links inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Missing,
    Directory,
    Other,
    /// A component before the last is not a directory.
    BlockedByFile,
}

fn find(root: &OwnedFd, path: &str) -> Result<Found, std::io::Error> {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() {
        return Ok(Found::Directory);
    }
    match crate::fsutil::open_in_root(root, relative, OFlags::PATH) {
        Ok(fd) => {
            let stat = rustix::fs::fstat(&fd)?;
            Ok(match rustix::fs::FileType::from_raw_mode(stat.st_mode) {
                rustix::fs::FileType::Directory => Found::Directory,
                _ => Found::Other,
            })
        }
        Err(rustix::io::Errno::NOENT) => Ok(Found::Missing),
        Err(rustix::io::Errno::NOTDIR) => Ok(Found::BlockedByFile),
        Err(e) => Err(e.into()),
    }
}

/// Where `path` points if its last component is a symbolic link in the image.
fn link_target(root: &OwnedFd, path: &str) -> Option<String> {
    let relative = path.trim_start_matches('/');
    let (parent, name) = match relative.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => (".", relative),
    };
    let dir = crate::fsutil::open_in_root(root, parent, OFlags::PATH | OFlags::DIRECTORY).ok()?;
    rustix::fs::readlinkat(&dir, name, Vec::new())
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}

/// The deepest existing ancestor of `path` that is not a directory (for the message).
fn blocking_file(root: &OwnedFd, path: &str) -> String {
    let mut prefix = String::new();
    for component in path.split('/').filter(|c| !c.is_empty()) {
        prefix.push('/');
        prefix.push_str(component);
        if matches!(find(root, &prefix), Ok(Found::Other)) {
            return prefix;
        }
    }
    path.to_string()
}

/// Check every mount target of the spec against the image before the engine mounts: a file
/// on a directory (or the reverse), or a target below a file, named with its mount. Targets
/// below an earlier mount (/dev/shm under /dev's tmpfs) are not in the image's tree and are
/// left to the engine.
pub(crate) fn check_mount_targets(
    root: &OwnedFd,
    spec: &oci_spec::runtime::Spec,
) -> Result<(), RootfsError> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let destinations: Vec<PathBuf> = mounts.iter().map(|m| m.destination().clone()).collect();
    for (i, m) in mounts.iter().enumerate() {
        let target = m.destination().to_string_lossy().into_owned();
        if enclosing_mount(&destinations, i).is_some() {
            continue;
        }
        let bind = is_bind(m);
        let source = m.source().clone().unwrap_or_default();
        let source_shown = if bind {
            source.display().to_string()
        } else {
            m.typ().clone().unwrap_or_default()
        };
        let problem = |problem: String| RootfsError::MountTarget {
            source_shown: source_shown.clone(),
            target: target.clone(),
            problem,
        };
        let source_is_dir = if bind {
            match std::fs::metadata(&source) {
                Ok(meta) => meta.is_dir(),
                Err(e) => {
                    return Err(problem(format!(
                        "the source cannot be used on the host: {e}"
                    )));
                }
            }
        } else {
            true
        };
        let found = find(root, &target).map_err(io("looking up", std::path::Path::new(&target)))?;
        let link = via_link(&link_target(root, &target));
        match found {
            Found::Missing => {}
            Found::BlockedByFile => {
                return Err(problem(format!(
                    "{} is a file in the image, so nothing can be mounted below it",
                    blocking_file(root, &target)
                )));
            }
            Found::Directory if !source_is_dir => {
                return Err(problem(format!(
                    "the source is a file but {target} is a directory in the image{link}; mount a directory there, or mount the file at a path below it"
                )));
            }
            Found::Other if source_is_dir => {
                return Err(problem(format!(
                    "the source is a directory but {target} is a file in the image{link}; choose another target"
                )));
            }
            Found::Directory | Found::Other => {}
        }
    }
    Ok(())
}

/// Rewrite the mount destinations of `spec` that lead through symbolic links in the image
/// to the paths they lead to, resolved inside the root as the engine would resolve them.
/// A destination below an earlier mount (/dev/shm, a bind inside a volume) keeps the part
/// inside that mount as written (it is not in the image's tree) after that mount's own
/// resolved path.
pub(crate) fn canonical_destinations(
    root: &OwnedFd,
    rootfs: &Path,
    spec: &mut oci_spec::runtime::Spec,
) -> Result<(), RootfsError> {
    let Some(mounts) = spec.mounts_mut().as_mut() else {
        return Ok(());
    };
    let written: Vec<PathBuf> = mounts.iter().map(|m| m.destination().clone()).collect();
    let mut resolved: Vec<PathBuf> = Vec::with_capacity(mounts.len());
    for (i, destination) in written.iter().enumerate() {
        let new = match enclosing_mount(&written, i) {
            Some(j) => match destination.strip_prefix(&written[j]) {
                Ok(rest) => resolved[j].join(rest),
                Err(_) => destination.clone(),
            },
            None => canonical(root, rootfs, &destination.to_string_lossy())?
                .map_or_else(|| destination.clone(), PathBuf::from),
        };
        resolved.push(new);
    }
    for (m, new) in mounts.iter_mut().zip(resolved) {
        if m.destination() != &new {
            m.set_destination(new);
        }
    }
    Ok(())
}

/// The working directory as the container will reach it: symbolic links of the image
/// followed inside the root until the path enters one of the spec's mounts (already
/// resolved by `canonical_destinations`), whose content the image does not decide.
pub(crate) fn canonical_workdir(
    root: &OwnedFd,
    rootfs: &Path,
    spec: &oci_spec::runtime::Spec,
    cwd: &str,
) -> Result<String, RootfsError> {
    let destinations: Vec<PathBuf> = spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| m.destination().clone())
        .filter(|d| d != Path::new("/"))
        .collect();
    let parts = components(cwd);
    let mut resolved = PathBuf::from("/");
    for (i, part) in parts.iter().enumerate() {
        let candidate = resolved.join(part);
        if destinations.iter().any(|d| candidate.starts_with(d)) {
            let mut out = candidate;
            for rest in &parts[i + 1..] {
                out.push(rest);
            }
            return Ok(out.to_string_lossy().into_owned());
        }
        match canonical(root, rootfs, &candidate.to_string_lossy())? {
            Some(next) => resolved = PathBuf::from(next),
            None => return Ok(cwd.to_string()),
        }
    }
    Ok(resolved.to_string_lossy().into_owned())
}

/// The path `path` leads to inside the root: its deepest existing ancestor resolved (links
/// followed inside the root), the rest appended. `None` if an ancestor is not a directory
/// (`check_mount_targets` names that).
fn canonical(root: &OwnedFd, rootfs: &Path, path: &str) -> Result<Option<String>, RootfsError> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for k in (0..=components.len()).rev() {
        let prefix = components[..k].join("/");
        let fd = match crate::fsutil::open_in_root(
            root,
            if prefix.is_empty() {
                "."
            } else {
                prefix.as_str()
            },
            OFlags::PATH,
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(rustix::io::Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(io("resolving", Path::new(path))(e.into())),
        };
        let shown = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let real = std::fs::read_link(format!("/proc/self/fd/{shown}"))
            .map_err(io("resolving", Path::new(path)))?;
        let Ok(inside) = real.strip_prefix(rootfs) else {
            return Ok(None);
        };
        let mut out = PathBuf::from("/").join(inside);
        for rest in &components[k..] {
            out.push(rest);
        }
        return Ok(Some(out.to_string_lossy().into_owned()));
    }
    Ok(None)
}

/// The deepest earlier mount of `destinations` that `destinations[i]` lies strictly below:
/// its target then exists only once that mount is made (/dev/shm under /dev's tmpfs, a
/// bind inside a volume), not in the image's tree.
fn enclosing_mount(destinations: &[PathBuf], i: usize) -> Option<usize> {
    let destination = &destinations[i];
    (0..i)
        .filter(|&j| {
            destinations[j] != Path::new("/")
                && destination != &destinations[j]
                && destination.starts_with(&destinations[j])
        })
        .max_by_key(|&j| destinations[j].components().count())
}

/// The path's components, without empty ones and `.`.
fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// The mount the container sees at `cwd` (the deepest whose target is `cwd` or one of its
/// parents, the later of equals: mounted over the other), and the rest of `cwd` below its
/// target. Compared by name, as the spec states them.
fn mount_holding<'a>(
    mounts: &'a [oci_spec::runtime::Mount],
    cwd: &str,
) -> Option<(&'a oci_spec::runtime::Mount, String)> {
    let cwd = components(cwd);
    let mut best: Option<(&oci_spec::runtime::Mount, usize)> = None;
    for m in mounts {
        let destination = m.destination().to_string_lossy();
        let target = components(&destination);
        if target.is_empty() || !cwd.starts_with(&target) {
            continue;
        }
        if best.is_none_or(|(_, depth)| target.len() >= depth) {
            best = Some((m, target.len()));
        }
    }
    best.map(|(m, depth)| (m, cwd[depth..].join("/")))
}

/// Make the working directory exist, as Docker and runc do: created (root, 0755) with any
/// missing parents. runc makes it after the mounts; here, before them, it is made where the
/// container will see it: in the image, or in the source directory of the bind or volume
/// it lies in (the image's copy would be hidden by the mount), never outside either. A
/// file in its place is an error naming it, and so is a directory inside a tmpfs (empty at
/// start) or a read-only bind that lacks it.
pub(crate) fn ensure_workdir(
    root: &OwnedFd,
    spec: &oci_spec::runtime::Spec,
    cwd: &str,
) -> Result<(), RootfsError> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let Some((mount, rest)) = mount_holding(mounts, cwd) else {
        return make_dir_in(root, cwd, cwd, None);
    };
    let target = mount.destination().to_string_lossy().into_owned();
    let in_mount = |problem: String| RootfsError::WorkdirInMount {
        path: cwd.to_string(),
        target: target.clone(),
        problem,
    };
    if !is_bind(mount) {
        if rest.is_empty() {
            // The mount point itself: the engine makes it.
            return Ok(());
        }
        if mount.typ().as_deref() == Some("tmpfs") {
            return Err(in_mount(format!(
                "a tmpfs starts empty, so nothing can be made in it in advance; choose a workdir outside {target} (made in the image if it is not there) or {target} itself"
            )));
        }
        // A kernel filesystem (/proc, /sys…): what is there is the kernel's to say.
        return Ok(());
    }
    let source = mount.source().clone().unwrap_or_default();
    let dir = match rustix::fs::open(
        &source,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => dir,
        Err(rustix::io::Errno::NOTDIR) => {
            return Err(in_mount(format!(
                "its source {} is not a directory",
                source.display()
            )));
        }
        Err(e) => return Err(io("opening", &source)(e.into())),
    };
    if has_option(mount, "ro") {
        // Writing into what the container was given read-only is not berth's to do.
        return match find(&dir, &rest).map_err(io("looking up", &source.join(&rest)))? {
            Found::Directory => Ok(()),
            Found::Missing => Err(in_mount(format!(
                "the mount is read-only and {} does not exist; create it or choose another workdir",
                source.join(&rest).display()
            ))),
            Found::Other | Found::BlockedByFile => Err(RootfsError::WorkdirNotADirectory {
                path: cwd.to_string(),
                link: link_target(&dir, &rest),
                within: Some(target),
            }),
        };
    }
    // The walk below the source is as confined as in the image: every step, symbolic links
    // and `..` included, stays below it.
    make_dir_in(&dir, &rest, cwd, Some(&target))
}

/// Make `path` (relative to `dir`, symbolic links resolved inside `dir`) a directory with
/// any missing parents; `cwd` and `within` (the target of the mount `dir` is the source
/// of) are for messages.
fn make_dir_in(
    dir: &OwnedFd,
    path: &str,
    cwd: &str,
    within: Option<&str>,
) -> Result<(), RootfsError> {
    let shown = std::path::Path::new(cwd);
    let base = within.unwrap_or("/").trim_end_matches('/');
    let not_a_dir = |at: &str| RootfsError::WorkdirNotADirectory {
        path: if at == path {
            cwd.to_string()
        } else {
            format!("{base}/{}", at.trim_start_matches('/'))
        },
        link: link_target(dir, at),
        within: within.map(str::to_string),
    };
    match find(dir, path).map_err(io("looking up the working directory", shown))? {
        Found::Directory => return Ok(()),
        Found::Other | Found::BlockedByFile => return Err(not_a_dir(path)),
        Found::Missing => {}
    }
    let mut prefix = String::new();
    for component in components(path) {
        let parent = if prefix.is_empty() {
            "/".to_string()
        } else {
            prefix.clone()
        };
        prefix.push('/');
        prefix.push_str(component);
        match find(dir, &prefix).map_err(io("looking up", shown))? {
            Found::Directory => continue,
            Found::Other | Found::BlockedByFile => return Err(not_a_dir(path)),
            Found::Missing => {}
        }
        let relative = parent.trim_start_matches('/');
        let parent_fd = crate::fsutil::open_in_root(
            dir,
            if relative.is_empty() { "." } else { relative },
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .map_err(|e| io("opening", shown)(e.into()))?;
        match rustix::fs::mkdirat(&parent_fd, component, Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            // Missing yet present: a symbolic link to nowhere. Not followed out of the root
            // by creating its target; the user says where to work instead.
            Err(rustix::io::Errno::EXIST) => return Err(not_a_dir(&prefix)),
            Err(e) => return Err(io("creating the working directory", shown)(e.into())),
        }
    }
    match find(dir, path).map_err(io("looking up the working directory", shown))? {
        Found::Directory => Ok(()),
        _ => Err(not_a_dir(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_dirs_share_a_parent_or_not() {
        let a = PathBuf::from("/s/layers/sha256/aa");
        let b = PathBuf::from("/s/layers/sha256/bb");
        assert_eq!(
            common_parent(&[a.clone(), b.clone()]),
            Some(PathBuf::from("/s/layers/sha256"))
        );
        assert_eq!(common_parent(&[a, PathBuf::from("/x/empty")]), None);
    }

    #[test]
    fn option_separators_are_escaped() {
        assert_eq!(escape("/a,b:c\\d"), "/a\\,b\\:c\\\\d");
    }

    #[test]
    fn files_are_read_inside_the_root_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::write(dir.path().join("secret"), "host secret").expect("write");
        std::os::unix::fs::symlink("../../secret", root.join("etc/passwd")).expect("symlink");
        std::fs::write(root.join("etc/group"), "root:x:0:\n").expect("write");
        let fd = open_root(&root).expect("open");
        // The escaping symlink resolves inside the root, where nothing is found.
        assert_eq!(read_small_file(&fd, "/etc/passwd").expect("read"), "");
        assert_eq!(
            read_small_file(&fd, "/etc/group").expect("read"),
            "root:x:0:\n"
        );
        assert_eq!(read_small_file(&fd, "/etc/shadow").expect("read"), "");
    }

    #[test]
    fn working_directories_are_made_inside_the_root_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("bin")).expect("mkdir");
        std::fs::write(root.join("bin/busybox"), "").expect("write");
        std::os::unix::fs::symlink("/bin/busybox", root.join("bin/sh")).expect("symlink");
        std::os::unix::fs::symlink("../../../outside", root.join("escape")).expect("symlink");
        let fd = open_root(&root).expect("open");
        let bare = spec_with(vec![]);
        ensure_workdir(&fd, &bare, "/srv/app/data").expect("made");
        assert!(root.join("srv/app/data").is_dir());
        ensure_workdir(&fd, &bare, "/srv/app/data").expect("already there");
        ensure_workdir(&fd, &bare, "/").expect("the root");
        // A link leading out of the root is followed inside it.
        std::os::unix::fs::symlink("../../../srv", root.join("up")).expect("symlink");
        ensure_workdir(&fd, &bare, "/up/app/x").expect("made inside");
        assert!(root.join("srv/app/x").is_dir());
        // One leading nowhere is named, and nothing is made outside.
        match ensure_workdir(&fd, &bare, "/escape/x") {
            Err(e @ RootfsError::WorkdirNotADirectory { .. }) => {
                assert!(e.to_string().contains("/escape"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(!dir.path().join("outside").exists());
        match ensure_workdir(&fd, &bare, "/bin/sh") {
            Err(e @ RootfsError::WorkdirNotADirectory { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("/bin/sh") && text.contains("/bin/busybox"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ensure_workdir(&fd, &bare, "/bin/busybox/below"),
            Err(RootfsError::WorkdirNotADirectory { .. })
        ));
    }

    #[test]
    fn mount_destinations_through_links_become_the_paths_they_lead_to() {
        use oci_spec::runtime::{MountBuilder, SpecBuilder};
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("run/app")).expect("mkdir");
        std::fs::create_dir_all(root.join("var")).expect("mkdir");
        std::os::unix::fs::symlink("/run", root.join("var/run")).expect("symlink");
        std::os::unix::fs::symlink("../../..", root.join("up")).expect("symlink");
        let fd = open_root(&root).expect("open");
        let bind = |dest: &str| {
            MountBuilder::default()
                .destination(dest)
                .typ("bind")
                .source("/x")
                .build()
                .expect("mount")
        };
        let mut spec = SpecBuilder::default()
            .mounts(vec![
                bind("/var/run/app"),
                bind("/var/run/new/deeper"),
                bind("/up/etc/x"),
                bind("/plain"),
                bind("/var/run/app/inner"),
            ])
            .build()
            .expect("spec");
        canonical_destinations(&fd, &root, &mut spec).expect("resolved");
        let got: Vec<String> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "/run/app",
                "/run/new/deeper",
                // `..` past the root stays at the root.
                "/etc/x",
                "/plain",
                // Below an earlier mount: that mount's resolved path, the rest as written.
                "/run/app/inner",
            ]
        );
    }

    #[test]
    fn a_working_directory_through_a_link_is_found_in_the_mount_it_leads_into() {
        use oci_spec::runtime::{MountBuilder, SpecBuilder};
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("data/app")).expect("mkdir");
        std::fs::create_dir_all(root.join("srv")).expect("mkdir");
        std::os::unix::fs::symlink("/data", root.join("link")).expect("symlink");
        // Inside the mount point the image's own links do not count: hidden by the mount.
        std::os::unix::fs::symlink("/srv", root.join("data/app/x")).expect("symlink");
        std::os::unix::fs::symlink("/srv", root.join("elsewhere")).expect("symlink");
        let fd = open_root(&root).expect("open");
        let spec = SpecBuilder::default()
            .mounts(vec![
                MountBuilder::default()
                    .destination("/data")
                    .typ("bind")
                    .source("/x")
                    .build()
                    .expect("mount"),
            ])
            .build()
            .expect("spec");
        let cwd = |path: &str| canonical_workdir(&fd, &root, &spec, path).expect("resolved");
        assert_eq!(cwd("/link/app/x/y"), "/data/app/x/y");
        assert_eq!(cwd("/elsewhere/new"), "/srv/new");
        assert_eq!(cwd("/"), "/");
        assert_eq!(cwd("/plain/dir"), "/plain/dir");
    }

    #[test]
    fn mount_targets_that_cannot_work_are_named() {
        use oci_spec::runtime::{MountBuilder, SpecBuilder};
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("bin")).expect("mkdir");
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        std::fs::write(root.join("bin/busybox"), "").expect("write");
        std::os::unix::fs::symlink("/bin/busybox", root.join("bin/env")).expect("symlink");
        let host_dir = dir.path().join("src");
        std::fs::create_dir(&host_dir).expect("mkdir");
        let host_file = dir.path().join("file");
        std::fs::write(&host_file, "x").expect("write");
        let fd = open_root(&root).expect("open");
        let check = |source: &std::path::Path, target: &str| {
            let spec = SpecBuilder::default()
                .mounts(vec![
                    MountBuilder::default()
                        .destination("/dev")
                        .typ("tmpfs")
                        .source("tmpfs")
                        .build()
                        .expect("mount"),
                    MountBuilder::default()
                        .destination(target)
                        .typ("bind")
                        .source(source)
                        .options(vec!["rbind".to_string()])
                        .build()
                        .expect("mount"),
                ])
                .build()
                .expect("spec");
            check_mount_targets(&fd, &spec).map_err(|e| e.to_string())
        };
        check(&host_dir, "/data").expect("a directory on a directory");
        check(&host_dir, "/new/dir").expect("created by the engine");
        check(&host_file, "/bin/busybox").expect("a file on a file");
        check(&host_dir, "/dev/anything").expect("below an earlier mount: the engine's");
        let e = check(&host_dir, "/bin/env").expect_err("a directory on a file");
        assert!(e.contains("/bin/env") && e.contains("/bin/busybox"), "{e}");
        assert!(e.contains(&host_dir.display().to_string()), "{e}");
        let e = check(&host_file, "/data").expect_err("a file on a directory");
        assert!(e.contains("is a directory in the image"), "{e}");
        let e = check(&host_dir, "/bin/busybox/x").expect_err("below a file");
        assert!(e.contains("/bin/busybox is a file in the image"), "{e}");
        let e = check(&dir.path().join("absent"), "/data").expect_err("no source");
        assert!(e.contains("cannot be used on the host"), "{e}");
    }

    fn spec_with(mounts: Vec<oci_spec::runtime::Mount>) -> oci_spec::runtime::Spec {
        oci_spec::runtime::SpecBuilder::default()
            .mounts(mounts)
            .build()
            .expect("spec")
    }

    fn mount(target: &str, typ: &str, source: &Path, options: &[&str]) -> oci_spec::runtime::Mount {
        oci_spec::runtime::MountBuilder::default()
            .destination(target)
            .typ(typ)
            .source(source)
            .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
            .build()
            .expect("mount")
    }

    #[test]
    fn working_directories_in_a_mount_are_made_in_its_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("data")).expect("mkdir");
        let volume = dir.path().join("volume");
        let nested = dir.path().join("nested");
        let ro = dir.path().join("ro");
        for d in [&volume, &nested, &ro] {
            std::fs::create_dir(d).expect("mkdir");
        }
        std::fs::write(volume.join("file"), "").expect("write");
        std::os::unix::fs::symlink("../../outside", volume.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("/", volume.join("slash")).expect("symlink");
        let host_file = dir.path().join("host-file");
        std::fs::write(&host_file, "").expect("write");
        let fd = open_root(&root).expect("open");
        let spec = spec_with(vec![
            mount("/proc", "proc", Path::new("proc"), &[]),
            mount("/data", "bind", &volume, &["rbind", "rprivate"]),
            mount("/data/nested/", "bind", &nested, &["rbind"]),
            mount("/scratch", "tmpfs", Path::new("tmpfs"), &["nosuid"]),
            mount("/ro", "bind", &ro, &["rbind", "ro"]),
            mount("/etc/hostname", "bind", &host_file, &["rbind"]),
        ]);
        let ensure = |cwd: &str| ensure_workdir(&fd, &spec, cwd).map_err(|e| e.to_string());

        ensure("/data/app/x").expect("made in the volume");
        assert!(volume.join("app/x").is_dir());
        assert!(
            !root.join("data/app").exists(),
            "not in the image below the mount"
        );
        ensure("/data/./app//x/").expect("already there");
        ensure("/data").expect("the mount point");
        // The deepest mount holding it.
        ensure("/data/nested/deep").expect("made in the nested source");
        assert!(nested.join("deep").is_dir() && !volume.join("nested").exists());
        // Links inside the source resolve inside it: nothing is made outside.
        ensure("/data/escape/x").expect_err("a link to nowhere");
        assert!(!dir.path().join("outside").exists());
        ensure("/data/slash/made").expect("made inside the source");
        assert!(volume.join("made").is_dir());
        let e = ensure("/data/file/x").expect_err("below a file");
        assert!(
            e.contains("/data/file/x") && e.contains("in the mount on /data"),
            "{e}"
        );

        let e = ensure("/scratch/work").expect_err("in a tmpfs");
        assert!(e.contains("/scratch") && e.contains("tmpfs"), "{e}");
        ensure("/scratch").expect("a tmpfs's mount point");
        ensure("/proc/sys").expect("the kernel's");
        assert!(!root.join("proc").exists());

        let e = ensure("/ro/app").expect_err("read-only and missing");
        assert!(e.contains("read-only") && e.contains("/ro"), "{e}");
        assert!(!ro.join("app").exists());
        std::fs::create_dir(ro.join("app")).expect("mkdir");
        ensure("/ro/app").expect("read-only and there");

        let e = ensure("/etc/hostname").expect_err("a file");
        assert!(e.contains("not a directory"), "{e}");
        // Outside every mount: the image, as before.
        ensure("/srv/app").expect("made in the image");
        assert!(root.join("srv/app").is_dir());
    }
}
