//! The container's root filesystem: an overlay of the image's unpacked layers (shared,
//! read-only) under a private upper directory. Mounted by the monitor inside its own mount
//! namespace, so the host's mount table never holds it and it cannot leak: it disappears
//! with the monitor, whatever way the monitor ends.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::layout::ContainerPaths;

/// The kernel copies mount options into one page.
const MOUNT_DATA_MAX: usize = 4095;
/// /etc/passwd and /etc/group larger than this are not believed.
const ID_FILE_MAX: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
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
        "the working directory {path} is not a directory in the image{}; set `workdir` to a directory",
        via_link(link)
    )]
    WorkdirNotADirectory { path: String, link: Option<String> },
    #[error("mount {source_shown} on {target}: {problem}")]
    MountTarget {
        source_shown: String,
        target: String,
        problem: String,
    },
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
pub fn mount_overlay(
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
pub fn open_in_root(
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

pub fn open_root(rootfs: &Path) -> Result<OwnedFd, RootfsError> {
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
pub fn read_small_file(root: &OwnedFd, path: &str) -> Result<String, RootfsError> {
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
pub fn check_mount_targets(
    root: &OwnedFd,
    spec: &oci_spec::runtime::Spec,
) -> Result<(), RootfsError> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for (i, m) in mounts.iter().enumerate() {
        let target = m.destination().to_string_lossy().into_owned();
        let nested = mounts[..i].iter().any(|earlier| {
            let e = earlier.destination();
            e != std::path::Path::new("/") && m.destination().starts_with(e)
        });
        if nested {
            continue;
        }
        let options = m.options().as_deref().unwrap_or_default();
        let bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
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
pub fn canonical_destinations(
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
        // The deepest earlier mount this one lies in.
        let within = (0..i)
            .filter(|&j| {
                written[j] != Path::new("/")
                    && destination != &written[j]
                    && destination.starts_with(&written[j])
            })
            .max_by_key(|&j| written[j].components().count());
        let new = match within {
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

/// Make the working directory exist, as Docker and runc do: created (root, 0755) with any
/// missing parents, inside the root. A file in its place is an error naming it.
pub fn ensure_workdir(root: &OwnedFd, cwd: &str) -> Result<(), RootfsError> {
    let shown = std::path::Path::new(cwd);
    let not_a_dir = || RootfsError::WorkdirNotADirectory {
        path: cwd.to_string(),
        link: link_target(root, cwd),
    };
    match find(root, cwd).map_err(io("looking up the working directory", shown))? {
        Found::Directory => return Ok(()),
        Found::Other | Found::BlockedByFile => return Err(not_a_dir()),
        Found::Missing => {}
    }
    let mut prefix = String::new();
    for component in cwd.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let parent = if prefix.is_empty() {
            "/".to_string()
        } else {
            prefix.clone()
        };
        prefix.push('/');
        prefix.push_str(component);
        match find(root, &prefix).map_err(io("looking up", shown))? {
            Found::Directory => continue,
            Found::Other | Found::BlockedByFile => return Err(not_a_dir()),
            Found::Missing => {}
        }
        let relative = parent.trim_start_matches('/');
        let dir = crate::fsutil::open_in_root(
            root,
            if relative.is_empty() { "." } else { relative },
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .map_err(|e| io("opening", shown)(e.into()))?;
        match rustix::fs::mkdirat(&dir, component, Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            // Missing yet present: a symbolic link to nowhere. Not followed out of the root
            // by creating its target; the user says where to work instead.
            Err(rustix::io::Errno::EXIST) => {
                return Err(RootfsError::WorkdirNotADirectory {
                    path: prefix.clone(),
                    link: link_target(root, &prefix),
                });
            }
            Err(e) => return Err(io("creating the working directory", shown)(e.into())),
        }
    }
    match find(root, cwd).map_err(io("looking up the working directory", shown))? {
        Found::Directory => Ok(()),
        _ => Err(not_a_dir()),
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
        ensure_workdir(&fd, "/srv/app/data").expect("made");
        assert!(root.join("srv/app/data").is_dir());
        ensure_workdir(&fd, "/srv/app/data").expect("already there");
        ensure_workdir(&fd, "/").expect("the root");
        // A link leading out of the root is followed inside it.
        std::os::unix::fs::symlink("../../../srv", root.join("up")).expect("symlink");
        ensure_workdir(&fd, "/up/app/x").expect("made inside");
        assert!(root.join("srv/app/x").is_dir());
        // One leading nowhere is named, and nothing is made outside.
        match ensure_workdir(&fd, "/escape/x") {
            Err(e @ RootfsError::WorkdirNotADirectory { .. }) => {
                assert!(e.to_string().contains("/escape"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(!dir.path().join("outside").exists());
        match ensure_workdir(&fd, "/bin/sh") {
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
            ensure_workdir(&fd, "/bin/busybox/below"),
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
}
