//! Kernel interfaces berth calls: confined path resolution, mount attributes, pidfds, and
//! the cgroup hierarchies.

use std::os::fd::AsFd;

use crate::runtime::cgroupfs;

use super::{Check, judge};

const NEWER_KERNEL: &str = "run a newer kernel: Debian 12's linux-image-amd64 (6.1) has \
                            everything berth uses";

/// `openat2(RESOLVE_IN_ROOT)`: `/etc` + `../..` must stay at `/etc` (unconfined it would be
/// `/`).
pub(super) fn openat2() -> Check {
    const NAME: &str = "openat2";
    use rustix::fs::{Mode, OFlags};
    let probe = || -> rustix::io::Result<bool> {
        let etc = rustix::fs::open("/etc", OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        let up = crate::fsutil::open_in_root(&etc, "../..", OFlags::PATH | OFlags::DIRECTORY)?;
        let (a, b) = (rustix::fs::fstat(etc.as_fd())?, rustix::fs::fstat(&up)?);
        Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    };
    match probe() {
        Ok(true) => Check::ok(NAME, "RESOLVE_IN_ROOT keeps `..` inside the root"),
        Ok(false) => Check::fail(
            NAME,
            "RESOLVE_IN_ROOT let `..` leave the root",
            NEWER_KERNEL,
        ),
        Err(e) if e == rustix::io::Errno::NOSYS => {
            Check::fail(NAME, "the kernel has no openat2 (Linux 5.6)", NEWER_KERNEL)
        }
        Err(e) => Check::fail(
            NAME,
            format!("openat2 failed: {}", std::io::Error::from(e)),
            "a seccomp filter or security module refuses openat2: allow it",
        ),
    }
}

pub(super) fn mount_setattr() -> Check {
    const NAME: &str = "mount_setattr";
    match crate::sys::mount_setattr_available() {
        Ok(()) => Check::ok(NAME, "available"),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Check::fail(
            NAME,
            "the kernel has no mount_setattr (Linux 5.12): mounts cannot be sealed read-only",
            NEWER_KERNEL,
        ),
        Err(e) => Check::fail(
            NAME,
            format!("mount_setattr refused: {e}"),
            "a seccomp filter or security module refuses mount_setattr: allow it",
        ),
    }
}

/// A pidfd for this very process, which must not be readable (it runs).
pub(super) fn pidfd() -> Check {
    const NAME: &str = "pidfd";
    let probe = || -> std::io::Result<bool> {
        let me = crate::sys::ProcessId::of(rustix::process::getpid().as_raw_nonzero().get())?;
        let Some(fd) = me.open()? else {
            return Ok(false);
        };
        Ok(!crate::sys::wait_readable(
            &fd,
            Some(std::time::Duration::ZERO),
        )?)
    };
    match probe() {
        Ok(true) => Check::ok(NAME, "pidfd_open and poll on a pidfd work"),
        Ok(false) => Check::fail(
            NAME,
            "a pidfd of this running process reads as exited",
            NEWER_KERNEL,
        ),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Check::fail(
            NAME,
            "the kernel has no pidfd_open (Linux 5.3)",
            NEWER_KERNEL,
        ),
        Err(e) => Check::fail(
            NAME,
            format!("pidfd_open failed: {e}"),
            "a seccomp filter or security module refuses pidfd_open: allow it",
        ),
    }
}

pub(super) fn cgroups() -> Check {
    const NAME: &str = "cgroups";
    let hierarchies = match cgroupfs::hierarchies() {
        Ok(h) => h,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("reading /proc/self/mountinfo: {e}"),
                "mount /proc",
            );
        }
    };
    let unified_only = hierarchies.iter().all(|h| h.unified);
    let root_file = |file: &str| {
        hierarchies
            .iter()
            .find(|h| h.unified)
            .filter(|_| unified_only)
            .and_then(|h| std::fs::read_to_string(h.mount_point.join(file)).ok())
    };
    judge::cgroups(
        &hierarchies,
        root_file("cgroup.controllers").as_deref(),
        root_file("cgroup.subtree_control").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::Verdict;

    #[test]
    fn this_machine_has_every_kernel_interface() {
        for check in [openat2(), mount_setattr(), pidfd(), cgroups()] {
            assert_eq!(check.verdict, Verdict::Ok, "{check:?}");
        }
    }
}
