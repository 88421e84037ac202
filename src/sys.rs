//! The syscall layer: the only module in berth with `unsafe` (the crate denies it
//! elsewhere, fork-based tests aside). Each block says why it is sound. Everything here is
//! small and does one kernel thing.
#![allow(unsafe_code)]

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};
use serde::{Deserialize, Serialize};

/// A process named so that it cannot be confused with a later one reusing its pid: the pid
/// plus its start time (clock ticks since boot, /proc/PID/stat field 22), valid within one
/// boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessId {
    /// The identity of a live process.
    pub fn of(pid: i32) -> io::Result<ProcessId> {
        Ok(ProcessId {
            pid,
            start_time: start_time(pid)?,
        })
    }

    /// A pidfd for this very process, or `None` if it is gone (or its pid now names another
    /// process). The start time is checked after the pidfd is open, so the pidfd cannot
    /// refer to a successor.
    pub fn open(&self) -> io::Result<Option<OwnedFd>> {
        let Some(pid) = Pid::from_raw(self.pid) else {
            return Ok(None);
        };
        let fd = match pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match start_time(self.pid) {
            Ok(t) if t == self.start_time => Ok(Some(fd)),
            Ok(_) => Ok(None),
            // Reaped between pidfd_open and the read: /proc/PID/stat answers ESRCH.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether this very process still runs (a zombie counts as gone).
    pub fn is_alive(&self) -> io::Result<bool> {
        match self.open()? {
            None => Ok(false),
            Some(fd) => Ok(!wait_readable(&fd, Some(Duration::ZERO))?),
        }
    }
}

/// Start time of a process in clock ticks since boot.
fn start_time(pid: i32) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat"),
        )
    })
}

/// Field 22 of /proc/PID/stat. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from its last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name come fields 3.. ; start time is field 22, the 20th of these.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// This boot's id: a record written in another boot describes nothing that runs now.
pub(crate) fn boot_id() -> io::Result<String> {
    Ok(fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_string())
}

/// Wait until `fd` is readable (a pidfd: the process exited) or `timeout` passes.
/// `None` waits forever. Returns whether it became readable.
pub fn wait_readable(fd: &impl AsFd, timeout: Option<Duration>) -> io::Result<bool> {
    let timespec = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    loop {
        match poll(&mut fds, timespec.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Send `signal` through a pidfd. Signal numbers come from validated specs (1–64).
pub fn send_signal(pidfd: &impl AsFd, signal: i32) -> io::Result<()> {
    if !(1..=64).contains(&signal) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signal} is out of range"),
        ));
    }
    // SAFETY: the number is in the kernel's signal range (checked above); rustix only asks
    // callers to vouch for that when the number is not one of its named constants.
    let signal = unsafe { rustix::process::Signal::from_raw_unchecked(signal) };
    match rustix::process::pidfd_send_signal(pidfd, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Which side of a `fork` this process is on.
pub(crate) enum Forked {
    Parent { child: i32 },
    Child,
}

/// `fork(2)`. Callers must be single-threaded: the monitor calls this first thing, before
/// anything could have started a thread.
pub(crate) fn fork_single_threaded() -> io::Result<Forked> {
    let status = fs::read_to_string("/proc/self/status")?;
    if !status
        .lines()
        .any(|l| l.split_whitespace().eq(["Threads:", "1"]))
    {
        return Err(io::Error::other(
            "refusing to fork a multi-threaded process",
        ));
    }
    // SAFETY: the caller is the monitor entry point, which runs before any thread is
    // started (no async runtime, no thread pools), so the child is a full copy of a
    // single-threaded process and may run arbitrary code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Forked::Parent {
            child: child.as_raw(),
        }),
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(io::Error::from_raw_os_error(e as i32)),
    }
}

/// The mount namespace this process had before `private_mount_namespace`.
static ORIGINAL_MOUNT_NAMESPACE: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();

/// Give this process a private mount namespace whose mounts follow the host's (slave), so
/// the container's overlay exists only here and disappears with the monitor.
pub(crate) fn private_mount_namespace() -> io::Result<()> {
    if let Ok(ns) = fs::File::open("/proc/self/ns/mnt") {
        let _ = ORIGINAL_MOUNT_NAMESPACE.set(ns.into());
    }
    // SAFETY: CLONE_NEWNS only changes which mount table the calling thread sees; it shares
    // no memory or file-descriptor state, which is what `unshare_unsafe` asks us to vouch for.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM
            | rustix::mount::MountPropagationFlags::REC,
    )?;
    Ok(())
}

/// Start `command` in the mount namespace this process had before it made a private one (if
/// it did): a process that outlives it (the DNS resolver a monitor starts) must not keep the
/// container's mounts alive.
pub(crate) fn in_original_mount_namespace(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let Some(ns) = ORIGINAL_MOUNT_NAMESPACE.get() else {
        return;
    };
    let raw = ns.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and calls only setns,
    // which is async-signal-safe; `raw` is open there (the static is never dropped, and
    // close-on-exec closes it only at the exec).
    unsafe {
        command.pre_exec(move || {
            if libc::setns(raw, libc::CLONE_NEWNS) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `IFF_UP` as the `short` of `ifreq`'s flags (libc gives it as an `int`).
#[allow(clippy::cast_possible_truncation, reason = "IFF_UP is 0x1")]
const IFF_UP: libc::c_short = libc::IFF_UP as libc::c_short;

/// Bring the loopback interface up in the network namespace of `pid`, then return to ours.
/// A new network namespace starts with `lo` down; programs expect 127.0.0.1 to work.
pub(crate) fn loopback_up_in(pid: i32) -> io::Result<()> {
    use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
    let ours = fs::File::open("/proc/self/ns/net")?;
    let theirs = fs::File::open(format!("/proc/{pid}/ns/net"))?;
    move_into_link_name_space(theirs.as_fd(), Some(LinkNameSpaceType::Network))?;
    let result = set_loopback_up();
    move_into_link_name_space(ours.as_fd(), Some(LinkNameSpaceType::Network))?;
    result
}

fn set_loopback_up() -> io::Result<()> {
    let socket: OwnedFd = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the flags into the ifreq we own, which outlives the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags member.
    unsafe { request.ifr_ifru.ifru_flags |= IFF_UP };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own, which outlives the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct mount_attr` of linux/mount.h, mount_setattr(2)'s argument.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// Symbolic links on the mount are not followed — magic links (/proc/PID/root, fd/N) neither.
pub(crate) const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// One change of mount attributes, at a path inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountAttrChange {
    /// Absolute inside the container, without symbolic links (resolving one is an error:
    /// nothing between the engine's mount and this change can redirect it).
    pub path: String,
    pub set: u64,
    pub clear: u64,
    /// The mount and every mount below it (`AT_RECURSIVE`).
    pub recursive: bool,
}

/// The step of a change that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealStep {
    /// Joining the container's mount namespace (no change index).
    Join,
    Resolve,
    SetAttr,
    MountId,
}

/// Why a change could not be made: its index in the list, the step and the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealFailure {
    pub index: usize,
    pub step: SealStep,
    pub errno: i32,
}

impl SealStep {
    fn code(self) -> u8 {
        match self {
            SealStep::Join => 0,
            SealStep::Resolve => 1,
            SealStep::SetAttr => 2,
            SealStep::MountId => 3,
        }
    }

    fn from_code(code: u8) -> Option<SealStep> {
        Some(match code {
            0 => SealStep::Join,
            1 => SealStep::Resolve,
            2 => SealStep::SetAttr,
            3 => SealStep::MountId,
            _ => return None,
        })
    }
}

/// Apply `changes`, in order, to the mounts of the container whose init is `pid` (created,
/// not started: nothing of the container's own runs yet), each with one `mount_setattr`.
/// Runs in a forked child that joins the init's mount namespace (mount_setattr only acts on
/// mounts of the caller's namespace); the monitor keeps its own. Returns the mount id of each
/// changed mount, so the caller can check the result in the init's mountinfo.
pub(crate) fn set_mount_attrs_in(
    pid: i32,
    changes: &[MountAttrChange],
) -> io::Result<Result<Vec<u64>, SealFailure>> {
    use rustix::fs::{Mode, OFlags};
    let namespace = fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    // Opened before joining: the init's root, the container's `/`, whatever the namespace's
    // own root is.
    let root = rustix::fs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let answer = answer_from_child(|| match change_in_child(&namespace, &root, changes) {
        Ok(ids) => {
            let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
            format!("ok {}", ids.join(" "))
        }
        Err(f) => format!("err {} {} {}", f.index, f.step.code(), f.errno),
    })?;
    parse_seal_answer(&answer, changes.len())
}

fn parse_seal_answer(answer: &str, changes: usize) -> io::Result<Result<Vec<u64>, SealFailure>> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer from the child changing mounts: {answer:?}"),
        )
    };
    let mut words = answer.split_ascii_whitespace();
    match words.next() {
        Some("ok") => {
            let ids = words
                .map(|w| w.parse::<u64>().map_err(|_| bad()))
                .collect::<io::Result<Vec<u64>>>()?;
            if ids.len() != changes {
                return Err(bad());
            }
            Ok(Ok(ids))
        }
        Some("err") => {
            let mut next = || words.next().ok_or_else(bad);
            let index = next()?.parse().map_err(|_| bad())?;
            let step = next()?
                .parse()
                .ok()
                .and_then(SealStep::from_code)
                .ok_or_else(bad)?;
            let errno = next()?.parse().map_err(|_| bad())?;
            Ok(Err(SealFailure { index, step, errno }))
        }
        _ => Err(bad()),
    }
}

fn change_in_child(
    namespace: &fs::File,
    root: &OwnedFd,
    changes: &[MountAttrChange],
) -> Result<Vec<u64>, SealFailure> {
    use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxFlags};
    use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
    move_into_link_name_space(namespace.as_fd(), Some(LinkNameSpaceType::Mount)).map_err(|e| {
        SealFailure {
            index: 0,
            step: SealStep::Join,
            errno: e.raw_os_error(),
        }
    })?;
    let mut ids = Vec::with_capacity(changes.len());
    for (index, change) in changes.iter().enumerate() {
        let fail = |step: SealStep, errno: i32| SealFailure { index, step, errno };
        let relative = match change.path.trim_start_matches('/') {
            "" => ".",
            r => r,
        };
        // Inside the container's root, across its mounts, and never through a symbolic
        // link: the path is the one the engine mounted on (the monitor made it canonical).
        let mut attempts = 0;
        let fd = loop {
            match rustix::fs::openat2(
                root,
                relative,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
            ) {
                Err(rustix::io::Errno::AGAIN) if attempts < 64 => attempts += 1,
                Err(e) => return Err(fail(SealStep::Resolve, e.raw_os_error())),
                Ok(fd) => break fd,
            }
        };
        let attr = MountAttr {
            attr_set: change.set,
            attr_clr: change.clear,
            propagation: 0,
            userns_fd: 0,
        };
        let flags = if change.recursive {
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE
        } else {
            libc::AT_EMPTY_PATH
        };
        // SAFETY: `fd` is an open descriptor owned here, the path is a NUL-terminated empty
        // string, and `attr` is a live `struct mount_attr` whose size is passed with it; the
        // kernel only reads from both.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd.as_raw_fd(),
                c"".as_ptr(),
                flags,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if rc != 0 {
            let errno = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            return Err(fail(SealStep::SetAttr, errno));
        }
        let stat = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
            .map_err(|e| fail(SealStep::MountId, e.raw_os_error()))?;
        ids.push(stat.stx_mnt_id);
    }
    Ok(ids)
}

/// `struct loop_info64` of linux/loop.h.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of linux/loop.h (LOOP_CONFIGURE, Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
/// The device detaches itself when its last user (the mount) goes.
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// Attach `image` (open read-write) to a free loop device that detaches itself once
/// nothing uses it; returns the device's path and an open descriptor of it (mount it, then
/// drop the descriptor). Another process may take the free device first: then the next.
pub(crate) fn attach_loop(image: &fs::File) -> io::Result<(std::path::PathBuf, OwnedFd)> {
    let control = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    let mut last = io::Error::other("no free loop device");
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let number = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if number < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = std::path::PathBuf::from(format!("/dev/loop{number}"));
        let device: OwnedFd = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)?
            .into();
        let config = LoopConfig {
            fd: image.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_AUTOCLEAR,
                lo_file_name: [0; 64],
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: `config` is a live `struct loop_config` the kernel only reads; both
        // descriptors are open for the duration of the call.
        let rc = unsafe {
            libc::ioctl(
                device.as_raw_fd(),
                LOOP_CONFIGURE,
                &config as *const LoopConfig,
            )
        };
        if rc == 0 {
            return Ok((path, device));
        }
        last = io::Error::last_os_error();
        if last.raw_os_error() != Some(libc::EBUSY) {
            return Err(last);
        }
    }
    Err(last)
}

/// The channel a container's init reports a failed exec through: a connected pair of
/// close-on-exec stream sockets (read end, write end). A socket rather than a pipe, so that
/// `write_to_inherited` can send with `MSG_NOSIGNAL`: the monitor stops reading after a
/// timeout or at hand-over, and a writer whose reader is gone must not die of SIGPIPE.
pub(crate) fn exec_failure_channel() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Send a message into the write end of an `exec_failure_channel` this process inherited by
/// number (the container's init reporting why its exec failed). Errors are ignored, as the
/// reader sees the exit anyway; a reader that is gone costs an EPIPE, never a SIGPIPE.
pub(crate) fn write_to_inherited(fd: i32, message: &[u8]) {
    use std::os::fd::BorrowedFd;
    if fd < 3 {
        return;
    }
    // SAFETY: borrowed only for this send; the number was opened by the monitor before it
    // forked this process and is closed only by this process's exec, which has not happened
    // (the exec just failed). A wrong number fails with EBADF (or ENOTSOCK) and nothing else
    // happens.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = rustix::net::send(borrowed, message, rustix::net::SendFlags::NOSIGNAL);
}

/// Restore every catchable signal to its default action. Called in the container's init
/// just before exec: dispositions set to "ignore" survive exec, and Rust ignores SIGPIPE.
pub(crate) fn reset_signal_dispositions() -> io::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator() {
        if matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code, so no async-signal-safety
        // requirement applies; the previous action is discarded.
        unsafe { sigaction(signal, &default) }
            .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    }
    SigSet::empty()
        .thread_set_mask()
        .map_err(|e| io::Error::from_raw_os_error(e as i32))
}

/// Wait for a child process; its exit code, or 128 + the signal that killed it.
pub(crate) fn wait_child(pid: i32) -> io::Result<i32> {
    use nix::sys::wait::{WaitStatus, waitpid};
    let pid = nix::unistd::Pid::from_raw(pid);
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io::Error::from_raw_os_error(e as i32)),
        }
    }
}

/// Reap every exited child without blocking (orphans re-parented to a subreaper).
pub(crate) fn reap_exited_children() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// How a child ended, read through its pidfd (which must be readable: the child exited).
pub(crate) fn reap_pidfd(pidfd: &impl AsFd) -> io::Result<(Option<i32>, Option<i32>)> {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    loop {
        match waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED) {
            Ok(Some(status)) => {
                return Ok(if status.exited() {
                    (status.exit_status(), None)
                } else {
                    (None, status.terminating_signal())
                });
            }
            Ok(None) => return Ok((None, None)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Become the reaper of orphaned descendants: an external runtime's init is re-parented
/// to the monitor when the runtime's own process exits.
pub(crate) fn become_subreaper() -> io::Result<()> {
    Ok(rustix::process::set_child_subreaper(Some(
        rustix::process::getpid(),
    ))?)
}

#[cfg(test)]
/// Forbid this process and its children from gaining privileges through exec (setuid,
/// file capabilities); required to load a seccomp filter without CAP_SYS_ADMIN.
pub(crate) fn set_no_new_privs() -> io::Result<()> {
    Ok(rustix::thread::set_no_new_privs(true)?)
}

/// Load a compiled seccomp BPF program (8-byte `sock_filter` instructions) into this thread.
/// The caller must have no_new_privs set (or CAP_SYS_ADMIN), as the container's init has.
pub(crate) fn load_seccomp_program(bpf: &[u8]) -> io::Result<()> {
    const INSTRUCTION: usize = std::mem::size_of::<libc::sock_filter>();
    if bpf.is_empty()
        || !bpf.len().is_multiple_of(INSTRUCTION)
        || bpf.len() / INSTRUCTION > usize::from(u16::MAX)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a BPF program",
        ));
    }
    let filters: Vec<libc::sock_filter> = bpf
        .chunks_exact(INSTRUCTION)
        .map(|i| libc::sock_filter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect();
    let len = u16::try_from(filters.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a BPF program"))?;
    let program = libc::sock_fprog {
        len,
        filter: filters.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `program` points at `filters`, which outlives the call; the kernel copies the
    // program and validates every instruction before installing it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &program as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Take ownership of a descriptor inherited across exec (the monitor's second stage gets its
/// container's pipes and pidfd this way), and mark it close-on-exec again.
pub(crate) fn inherited_fd(fd: i32) -> io::Result<OwnedFd> {
    use std::os::fd::{BorrowedFd, FromRawFd};
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an inherited descriptor",
        ));
    }
    // SAFETY: only borrowed for the duration of this fcntl, which fails with EBADF if
    // the number is not open, in which case nothing else happens.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::CLOEXEC)?;
    // SAFETY: the descriptor is open (checked above) and was handed to this process for it
    // to own by the exec contract of `supervise::exec`; nothing else in this process refers
    // to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Close every descriptor above stderr. Called first thing in the monitor, which must not
/// keep its starter's files, pipes or sockets open for the container's lifetime.
pub(crate) fn close_inherited_fds(keep_start_lock: bool) {
    let first: u32 = if keep_start_lock {
        START_LOCK_FD as u32 + 1
    } else {
        3
    };
    // SAFETY: close_range takes plain integers; nothing in this process holds any of these
    // descriptors yet (the monitor entry point runs before it opens anything).
    unsafe {
        libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32);
    }
}

/// The descriptor number under which a monitor receives its container's lock.
pub(crate) const START_LOCK_FD: i32 = 3;

/// Give the child `lock` as descriptor `START_LOCK_FD`: the monitor then holds the
/// container's lock until it has reported, even if its starter dies first, so no second
/// start can run beside a start in progress.
pub(crate) fn pass_start_lock(command: &mut std::process::Command, lock: &impl AsRawFd) {
    use std::os::unix::process::CommandExt;
    let raw = lock.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and calls only dup2 and
    // fcntl, which are async-signal-safe; `raw` is open in the parent (borrowed for the
    // duration of the spawn), so it is open in the child too.
    unsafe {
        command.pre_exec(move || {
            if raw == START_LOCK_FD {
                if libc::fcntl(raw, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(raw, START_LOCK_FD) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A pidfd registered with the tokio reactor, to await a process's exit without a thread.
pub(crate) fn async_pidfd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    async_readable(fd)
}

/// A descriptor (a pidfd, a netlink socket) registered with the tokio reactor for reading.
pub(crate) fn async_readable(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: `fd` is owned here and moved into the AsyncFd, so no other owner can close or
    // reuse the descriptor while it is registered; it is deregistered before it is closed
    // (AsyncFd's drop order), which is what `register` requires.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

/// The child gets SIGTERM when the thread that spawned it ends (the agent killed): a health
/// check's `berth exec` then kills its command's process group instead of running on.
/// Spawn from a long-lived thread (a runtime worker), as the death of that thread counts.
pub(crate) fn terminate_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the child between fork and exec and calls only prctl and
    // getppid, which are async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then no signal would come.
            if libc::getppid() == 1 {
                return Err(io::Error::other("the agent is gone"));
            }
            Ok(())
        });
    }
}

/// Whether the kernel has `mount_setattr(2)` (Linux 5.12): called with a size no kernel
/// accepts, so it changes nothing and answers EINVAL where it exists (ENOSYS where not, EPERM
/// under a filter that forbids it).
pub(crate) fn mount_setattr_available() -> io::Result<()> {
    // SAFETY: the descriptor is invalid and the attribute pointer NULL with size 0: the kernel
    // rejects the size before it dereferences anything or looks at the descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            0,
            std::ptr::null::<MountAttr>(),
            0usize,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL | libc::EBADF) => Ok(()),
        _ => Err(err),
    }
}

/// Run `work` in a forked copy of this process and return what it answered. The copy may
/// change its own namespaces and mounts without the caller seeing any of it. Callers must be
/// single-threaded (see [`fork_single_threaded`]).
pub(crate) fn answer_from_child(work: impl FnOnce() -> String) -> io::Result<String> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    match fork_single_threaded()? {
        Forked::Child => {
            drop(read);
            // A panic must not unwind through the caller's frames in this copy of it.
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| "panic".to_string());
            let _ = rustix::io::write(&write, answer.as_bytes());
            // SAFETY: _exit ends this forked copy at once, without running destructors or
            // atexit handlers that belong to the original process.
            unsafe { libc::_exit(0) }
        }
        Forked::Parent { child } => {
            drop(write);
            let mut answer = Vec::new();
            let mut buf = [0u8; 512];
            let read_all = loop {
                match rustix::io::read(&read, &mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => break Err(io::Error::from(e)),
                }
            };
            wait_child(child)?;
            read_all?;
            Ok(String::from_utf8_lossy(&answer).into_owned())
        }
    }
}

/// `fd` (non-blocking) registered with the current tokio runtime's reactor: the Docker API's
/// exec polls the master of a pty it owns.
pub(crate) fn async_fd(
    fd: std::os::fd::OwnedFd,
) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    // SAFETY: an OwnedFd is an open descriptor that stays open, on the same file
    // description, for as long as it is owned (here: by the AsyncFd), and its as_raw_fd is
    // always that descriptor.
    Ok(unsafe { tokio::io::unix::AsyncFd::register(fd) }?)
}

/// SIGKILL to the process group `pgid` (gone already: nothing to do).
pub(crate) fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_answers_are_parsed_strictly() {
        assert_eq!(
            parse_seal_answer("ok 31 52", 2).expect("ok"),
            Ok(vec![31, 52])
        );
        assert_eq!(
            parse_seal_answer("err 1 2 38", 2).expect("err"),
            Err(SealFailure {
                index: 1,
                step: SealStep::SetAttr,
                errno: 38
            })
        );
        for bad in [
            "",
            "ok 1",
            "ok x y",
            "err",
            "err 1 2",
            "err 1 9 38",
            "panic",
            "what",
        ] {
            assert!(parse_seal_answer(bad, 2).is_err(), "{bad}");
        }
    }

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn identity_of_self_is_alive_and_a_wrong_start_time_is_not() {
        let me = ProcessId::of(std::process::id() as i32).expect("own stat");
        assert!(me.open().expect("pidfd").is_some());
        let impostor = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(impostor.open().expect("pidfd").is_none());
    }

    #[test]
    fn this_kernel_has_mount_setattr() {
        mount_setattr_available().expect("mount_setattr (Linux 5.12)");
    }

    #[test]
    fn exited_child_is_not_alive() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let id = ProcessId::of(child.id() as i32).expect("stat");
        child.wait().expect("wait");
        assert!(!id.is_alive().expect("check"));
    }
}
