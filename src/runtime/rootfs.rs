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
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RootfsError + 'a {
    move |source| RootfsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Mount the overlay at `paths.rootfs()`. `layers` is highest first. Lower directories are
/// given relative to their common parent (the monitor is single-threaded, so changing its
/// working directory is safe), which fits about 60 layers into the option page instead of 40.
pub fn mount_overlay(paths: &ContainerPaths, layers: &[PathBuf]) -> Result<(), RootfsError> {
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
        escape(&paths.upper().to_string_lossy()),
        escape(&paths.work().to_string_lossy()),
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
}
