//! A writable layer with a size (`disk = "1GiB"`): an ext4 filesystem in a sparse file of
//! that size in the container's directory, loop-mounted by the monitor in its private mount
//! namespace and holding overlayfs's `upper/` and `work/`. A container that fills it gets
//! ENOSPC; the host's disk is untouched. The loop device detaches itself when the last mount
//! of it goes (the monitor's namespace and the container's), however the monitor ends.
//!
//! Per-container project quotas (what Docker's `--storage-opt size` needs) exist only on XFS
//! or ext4 mounted with `prjquota`, which a state root rarely is; a filesystem of its own
//! works on any host, and `mkfs.ext4` (e2fsprogs, in every Debian) makes one in milliseconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::state::layout::ContainerPaths;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "making the writable layer's filesystem needs mkfs.ext4 (Debian: apt-get install e2fsprogs): {source}"
    )]
    NoMkfs { source: std::io::Error },
    #[error("mkfs.ext4 {} failed: {message}", path.display())]
    Mkfs { path: PathBuf, message: String },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DiskError + 'a {
    move |source| DiskError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Make the filesystem: a sparse file of `size` bytes, formatted ext4 without reserved
/// blocks (the container may use all of it), its root owned by root.
pub(crate) fn make(image: &Path, size: u64) -> Result<(), DiskError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(io("creating", image))?;
    file.set_len(size).map_err(io("sizing", image))?;
    drop(file);
    let out = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
            "-L",
            "berth-writable",
        ])
        .arg(image)
        .env("PATH", super::bundle::DEFAULT_PATH)
        .output()
        .map_err(|source| DiskError::NoMkfs { source })?;
    if !out.status.success() {
        return Err(DiskError::Mkfs {
            path: image.to_path_buf(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Mount the container's writable filesystem at `paths.disk()` (in the caller's mount
/// namespace: the monitor's private one) and return the directory that holds `upper/` and
/// `work/`, made on first use.
pub(crate) fn mount(paths: &ContainerPaths) -> Result<PathBuf, DiskError> {
    let image = paths.disk_image();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .map_err(io("opening", &image))?;
    let (device, device_fd) =
        crate::sys::attach_loop(&file).map_err(io("attaching a loop device to", &image))?;
    let target = paths.disk();
    std::fs::create_dir_all(&target).map_err(io("creating", &target))?;
    rustix::mount::mount(
        &device,
        &target,
        "ext4",
        rustix::mount::MountFlags::empty(),
        // What the container deletes is given back to the host: the loop device punches
        // holes in the sparse image, which would otherwise only grow.
        Some(c"discard"),
    )
    .map_err(|e| io("mounting the writable layer at", &target)(e.into()))?;
    // The mount holds the device now; with autoclear it detaches when the mount goes.
    drop(device_fd);
    for dir in ["upper", "work"] {
        let path = target.join(dir);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("creating", &path)(e)),
        }
    }
    Ok(target)
}
