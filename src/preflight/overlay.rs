//! overlayfs and the state root that holds containers' upper dirs, tried for real: a forked
//! child in a private mount namespace mounts one overlay on a tmpfs (the kernel) and one with
//! its upper dir in the state root (the filesystem). The mounts die with the child's
//! namespace; the scratch directory in the state root is removed afterwards.

use std::path::{Path, PathBuf};

use super::judge::{self, Attempt, RootFacts};
use super::{Check, PreflightError};

/// The overlay trials' outcome and where the state root's was made.
pub(super) struct Trial {
    kernel: Attempt,
    root: Attempt,
    examined: PathBuf,
    exists: bool,
    d_type: Option<bool>,
}

const DIRS: [&str; 4] = ["lower", "upper", "work", "merged"];

pub(super) fn trial(root: &Path) -> Trial {
    let exists = root.is_dir();
    let examined = nearest_existing(root);
    let scratch = examined.join(format!(".berth-check.{}", std::process::id()));
    let made = make_scratch(&scratch);
    let d_type = made.as_ref().ok().and_then(|()| carries_d_type(&scratch));
    let root_errno = made
        .as_ref()
        .err()
        .map(|e| e.raw_os_error().unwrap_or(libc::EIO));
    // Any directory serves as the tmpfs's mount point in the child's namespace: the
    // scratch one, or without it one every Linux system has.
    let kernel_dir = if made.is_ok() {
        scratch.clone()
    } else {
        PathBuf::from("/dev")
    };
    let answer = crate::sys::answer_from_child(|| {
        if let Err(e) = crate::sys::private_mount_namespace() {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            return format!("kernel=namespace:{errno} root=namespace:{errno}");
        }
        // The state root's first: the tmpfs then covers the scratch directory.
        let root_answer = match root_errno {
            Some(errno) => format!("mkdir:{errno}"),
            None => mount_overlay_in(&scratch),
        };
        let kernel_answer = mount_tmpfs_overlay(&kernel_dir);
        format!("kernel={kernel_answer} root={root_answer}")
    });
    if made.is_ok() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let (kernel, root_attempt) = match answer
        .map_err(|source| PreflightError::Io {
            what: "forking the trial",
            source,
        })
        .and_then(|a| judge::parse_trial(&a))
    {
        Ok((k, r)) => (no_namespace(k), no_namespace(r)),
        Err(e) => (
            Attempt::NotTried(e.to_string()),
            Attempt::NotTried(e.to_string()),
        ),
    };
    Trial {
        kernel,
        root: root_attempt,
        examined,
        exists,
        d_type,
    }
}

/// Without a private mount namespace (not root) nothing was tried.
fn no_namespace(attempt: Attempt) -> Attempt {
    match attempt {
        Attempt::Failed { step, errno } if step == "namespace" => Attempt::NotTried(format!(
            "no private mount namespace: {}",
            std::io::Error::from_raw_os_error(errno)
        )),
        other => other,
    }
}

pub(super) fn overlayfs(trial: &Trial) -> Check {
    let listed = super::read("/proc/filesystems")
        .map(|text| judge::lists_filesystem(&text, "overlay"))
        .unwrap_or(false);
    judge::overlayfs(listed, &trial.kernel)
}

pub(super) fn state_root(trial: &Trial) -> Check {
    let magic = rustix::fs::statfs(&trial.examined).map(|s| s.f_type as u64);
    let free = rustix::fs::statvfs(&trial.examined).map(|s| s.f_bavail * s.f_frsize);
    let (magic, free_bytes) = match (magic, free) {
        (Ok(m), Ok(f)) => (m, f),
        (Err(e), _) | (_, Err(e)) => {
            return Check::fail(
                "state-root",
                format!(
                    "statfs {}: {}",
                    trial.examined.display(),
                    std::io::Error::from(e)
                ),
                "make the state root's parent directory readable by root",
            );
        }
    };
    judge::state_root(&RootFacts {
        examined: trial.examined.clone(),
        exists: trial.exists,
        magic,
        free_bytes,
        d_type: trial.d_type,
        trial: trial.root.clone(),
    })
}

/// `path`, or its longest existing ancestor: a state root that does not exist yet will be
/// made there.
fn nearest_existing(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

fn make_scratch(scratch: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    // A scratch directory a killed earlier run of this same pid left behind.
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::DirBuilder::new().mode(0o700).create(scratch)?;
    let inside = DIRS.iter().try_for_each(|dir| {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(scratch.join(dir))
    });
    if inside.is_err() {
        let _ = std::fs::remove_dir_all(scratch);
    }
    inside
}

/// Whether reading `dir` gives entry types (d_type) rather than DT_UNKNOWN.
fn carries_d_type(dir: &Path) -> Option<bool> {
    use rustix::fs::{Dir, FileType, Mode, OFlags};
    let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).ok()?;
    let entries = Dir::read_from(&fd).ok()?;
    let mut answer = None;
    for entry in entries.flatten() {
        if DIRS
            .iter()
            .any(|d| entry.file_name().to_bytes() == d.as_bytes())
        {
            answer = Some(entry.file_type() == FileType::Directory);
        }
    }
    answer
}

/// In the child: a tmpfs over `dir` (this namespace only), then an overlay inside it.
fn mount_tmpfs_overlay(dir: &Path) -> String {
    use rustix::mount::{MountFlags, mount};
    if let Err(e) = mount(
        "tmpfs",
        dir,
        "tmpfs",
        MountFlags::empty(),
        c"size=1m,mode=0700",
    ) {
        return format!("tmpfs:{}", e.raw_os_error());
    }
    for name in DIRS {
        if let Err(e) = std::fs::create_dir(dir.join(name)) {
            return format!("mkdir:{}", e.raw_os_error().unwrap_or(libc::EIO));
        }
    }
    mount_overlay_in(dir)
}

/// In the child: an overlay of `dir`'s lower, upper and work at merged. Relative option
/// paths (after a chdir) so that no character of the state root's path can break them.
fn mount_overlay_in(dir: &Path) -> String {
    use rustix::mount::{MountFlags, mount};
    if let Err(e) = std::env::set_current_dir(dir) {
        return format!("mkdir:{}", e.raw_os_error().unwrap_or(libc::EIO));
    }
    match mount(
        "overlay",
        "merged",
        "overlay",
        MountFlags::empty(),
        c"lowerdir=lower,upperdir=upper,workdir=work",
    ) {
        Ok(()) => "ok".into(),
        Err(e) => format!("mount:{}", e.raw_os_error()),
    }
}
