//! berth's default seccomp profile.
//!
//! Every container runs under a syscall allowlist unless its entry says otherwise. The list is
//! the intersection of Docker's (moby `profiles/seccomp`) and podman's (containers-common
//! `pkg/seccomp`) defaults, so it is at least as strict as either: a syscall is allowed only if
//! both allow it for the same capabilities. As in Docker's profile, privileged syscalls are
//! allowed only when the container holds the capability the kernel would check anyway
//! (`mount` needs CAP_SYS_ADMIN, `reboot` CAP_SYS_BOOT, …), so adding a capability to an entry
//! also opens the syscalls that go with it.
//!
//! Refusals use two errnos, as podman does. Syscalls we know and refuse return EPERM, which is
//! what the kernel itself answers an unprivileged caller. Everything else — new syscalls, ones
//! this profile has not vetted, `clone3` without CAP_SYS_ADMIN, io_uring — returns ENOSYS, so
//! libc and programs take their "old kernel" path (glibc falls back from `clone3` to `clone`,
//! whose namespace flags are checked) instead of failing on a permission error.
//!
//! The profile is in the OCI runtime spec's operand order, the one runc and crun read: an
//! external runtime gets it as is in `config.json`, and for the embedded engine berth compiles it
//! itself (`seccomp_bpf::compile_cached` at create) and loads the program in the container's
//! process (`sys::load_seccomp_program`, at start and at exec). libcontainer never sees it: it
//! reads the operands of a masked comparison the other way round (see [`masked_eq`]). runc and
//! berth's compiler skip syscall names the installed libseccomp does not know, so the tables may
//! name syscalls newer than the host's libseccomp; today every name is known to Debian 12's 2.5.4.

use std::collections::BTreeSet;

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall,
};

/// Syscalls allowed to every container, whatever its capabilities.
const ALLOWED: &[&str] = &[
    // Processes, threads and scheduling. `clone` and `clone3` are handled by `clone_rules`.
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "get_robust_list",
    "getcpu",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrlimit",
    "getrusage",
    "getsid",
    "gettid",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "membarrier",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "process_mrelease",
    "restart_syscall",
    "rseq",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "set_robust_list",
    "set_tid_address",
    "setpgid",
    "setpriority",
    "setrlimit",
    "setsid",
    "tgkill",
    "times",
    "tkill",
    "ugetrlimit",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    // User and group ids (the kernel checks CAP_SETUID/CAP_SETGID itself).
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getuid",
    "getuid32",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setuid",
    "setuid32",
    // Signals.
    "alarm",
    "pause",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    // Memory.
    "brk",
    "madvise",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
    // File descriptors and file data.
    "_llseek",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "flock",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "ioctl",
    "lseek",
    "open",
    "openat",
    "openat2",
    "pipe",
    "pipe2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readv",
    "sendfile",
    "sendfile64",
    "splice",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "truncate",
    "truncate64",
    "write",
    "writev",
    // File metadata and extended attributes.
    "access",
    "chmod",
    "chown",
    "chown32",
    "faccessat",
    "faccessat2",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fgetxattr",
    "flistxattr",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "futimesat",
    "getxattr",
    "lchown",
    "lchown32",
    "lgetxattr",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lsetxattr",
    "lstat",
    "lstat64",
    "name_to_handle_at",
    "newfstatat",
    "removexattr",
    "setxattr",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "umask",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    // Directories and links.
    "chdir",
    "fchdir",
    "getcwd",
    "getdents",
    "getdents64",
    "link",
    "linkat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "readlink",
    "readlinkat",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    // Waiting for events.
    "_newselect",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "fanotify_mark",
    "futex",
    "futex_time64",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_setup",
    "io_submit",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
    // Clocks and timers (setting the clock needs CAP_SYS_TIME, see CAPABILITY_GATED).
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "getitimer",
    "gettimeofday",
    "nanosleep",
    "setitimer",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    // System V and POSIX IPC (namespaced by the container's IPC namespace).
    "ipc",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    // Sockets. `socket` itself is filtered by address family in `socket_rules`; 32-bit x86
    // programs can still reach every family through `socketcall`, as under Docker and podman.
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "send",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketcall",
    "socketpair",
    // System information.
    "getrandom",
    "sysinfo",
    "uname",
];

/// Architecture-specific syscalls that both Docker and podman allow.
const ALLOWED_ON_ARCH: &[&str] = if cfg!(target_arch = "x86_64") {
    // TLS and LDT setup, used by libc and by 32-bit and Wine programs.
    &[
        "arch_prctl",
        "get_thread_area",
        "modify_ldt",
        "set_thread_area",
    ]
} else if cfg!(target_arch = "aarch64") {
    // The 32-bit ARM calling conventions' variants and cache maintenance.
    &[
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "breakpoint",
        "cacheflush",
        "set_tls",
        "sync_file_range2",
    ]
} else {
    &[]
};

/// Syscalls allowed only with a capability, as in Docker's profile: the kernel would refuse
/// most of them without it anyway, and refusing them here also removes their kernel code paths
/// from an unprivileged container's reach. A name may need any one of several capabilities.
const CAPABILITY_GATED: &[(Capability, &[&str])] = &[
    (
        // Mounts, namespaces, host names, quotas and other system administration.
        Capability::SysAdmin,
        &[
            "bpf",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
    (Capability::Syslog, &["syslog"]),
    (
        // Reading or changing other processes. Docker allows ptrace to everyone on kernels
        // >= 4.8; berth keeps it behind CAP_SYS_PTRACE, as Docker did before.
        Capability::SysPtrace,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["delete_module", "finit_module", "init_module"],
    ),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysPacct, &["acct"]),
    (Capability::SysRawio, &["ioperm", "iopl"]),
    (
        Capability::SysTime,
        &["clock_settime", "clock_settime64", "settimeofday", "stime"],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        // NUMA memory policy.
        Capability::SysNice,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
];

/// Syscalls refused with EPERM whatever the capabilities.
const REFUSED: &[&str] = &[
    // The host kernel, its memory and its devices.
    "_sysctl",
    "create_module",
    "get_kernel_syms",
    "kexec_file_load",
    "kexec_load",
    "nfsservctl",
    "pciconfig_iobase",
    "pciconfig_read",
    "pciconfig_write",
    "pivot_root",
    "query_module",
    "swapoff",
    "swapon",
    // The kernel keyring is not namespaced: keys would be shared with the host and other
    // containers.
    "add_key",
    "keyctl",
    "request_key",
    // Moving other processes' pages between NUMA nodes.
    "migrate_pages",
    "move_pages",
    // Common building blocks of kernel exploits with little legitimate use in a container.
    "userfaultfd",
    "vmsplice",
    // Obsolete interfaces.
    "bdflush",
    "nice",
    "oldfstat",
    "oldlstat",
    "oldolduname",
    "oldstat",
    "olduname",
    "sgetmask",
    "ssetmask",
    "syscall",
    "sysfs",
    "uselib",
    "ustat",
    "vm86",
    "vm86old",
];

/// The `personality(2)` values Docker and podman allow: Linux, 32-bit Linux, the 2.6 uname
/// emulation, both together, and the query 0xffffffff.
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// The `clone(2)` flags that create namespaces.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;
const EINVAL: u32 = libc::EINVAL as u32;
const EAFNOSUPPORT: u32 = libc::EAFNOSUPPORT as u32;

/// The default profile for a container whose effective capability set is `caps` (the same set
/// that goes into the spec's `process.capabilities.effective`).
pub(crate) fn default_profile(caps: &Capabilities) -> LinuxSeccomp {
    let mut allowed: BTreeSet<&str> = ALLOWED.iter().chain(ALLOWED_ON_ARCH).copied().collect();
    let mut gated = BTreeSet::new();
    for (cap, names) in CAPABILITY_GATED {
        if caps.contains(cap) {
            allowed.extend(names.iter());
        } else {
            gated.extend(names.iter());
        }
    }
    let refused: BTreeSet<&str> = gated.difference(&allowed).chain(REFUSED).copied().collect();

    let sys_admin = caps.contains(&Capability::SysAdmin);
    if sys_admin {
        allowed.extend(["clone", "clone3"]);
    }

    let mut rules = vec![
        syscall(&allowed, LinuxSeccompAction::ScmpActAllow, None, Vec::new()),
        syscall(
            &refused,
            LinuxSeccompAction::ScmpActErrno,
            Some(EPERM),
            Vec::new(),
        ),
    ];
    if !sys_admin {
        rules.extend(clone_rules());
    }
    rules.extend(personality_rules());
    rules.extend(socket_rules(caps.contains(&Capability::AuditWrite)));

    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(LinuxSeccompAction::ScmpActErrno)
        .set_default_errno_ret(Some(ENOSYS))
        .set_architectures(architectures())
        .set_syscalls(Some(rules));
    profile
}

/// The native architecture and the compat ones its kernel also runs, so that a 32-bit program
/// cannot go around the filter. `None` means the native one only.
fn architectures() -> Option<Vec<Arch>> {
    if cfg!(target_arch = "x86_64") {
        Some(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
    } else if cfg!(target_arch = "aarch64") {
        Some(vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm])
    } else {
        None
    }
}

/// `clone` without namespace flags, for a container without CAP_SYS_ADMIN; namespace flags get
/// EPERM as from the kernel. `clone3` passes its flags in memory, which seccomp cannot read, so
/// it is left to the ENOSYS default and glibc falls back to `clone`.
fn clone_rules() -> Vec<LinuxSyscall> {
    let all_flags = NAMESPACE_FLAGS
        .iter()
        .fold(0, |all, flag| all | *flag as u64);
    // s390 passes the flags second; berth does not build for it.
    let mut rules = vec![syscall(
        ["clone"],
        LinuxSeccompAction::ScmpActAllow,
        None,
        vec![masked_eq(0, all_flags, 0)],
    )];
    // Rules are alternatives, so one rule per flag refuses a call with any of them set.
    rules.extend(NAMESPACE_FLAGS.iter().map(|flag| {
        syscall(
            ["clone"],
            LinuxSeccompAction::ScmpActErrno,
            Some(EPERM),
            vec![masked_eq(0, *flag as u64, *flag as u64)],
        )
    }));
    rules
}

/// `personality` only with the values in PERSONALITIES: the others turn off address space
/// randomisation or select foreign execution domains.
fn personality_rules() -> Vec<LinuxSyscall> {
    PERSONALITIES
        .iter()
        .map(|value| {
            syscall(
                ["personality"],
                LinuxSeccompAction::ScmpActAllow,
                None,
                vec![arg(0, LinuxSeccompOperator::ScmpCmpEq, *value)],
            )
        })
        .collect()
}

/// `socket` for every address family except AF_ALG (the kernel crypto API) and AF_VSOCK (talks to
/// the hypervisor), which fail as if the kernel did not have them, as in Docker's profile.
/// Without CAP_AUDIT_WRITE, audit netlink sockets fail with EINVAL, as under podman: libaudit
/// then treats audit as absent instead of making `su`, `sudo` or `login` fail when the kernel
/// refuses their audit messages.
fn socket_rules(audit_write: bool) -> Vec<LinuxSyscall> {
    let family = |op, value: libc::c_int| arg(0, op, value as u64);
    let allow = |args| syscall(["socket"], LinuxSeccompAction::ScmpActAllow, None, args);
    let refuse = |errno, args| {
        syscall(
            ["socket"],
            LinuxSeccompAction::ScmpActErrno,
            Some(errno),
            args,
        )
    };
    use LinuxSeccompOperator::{
        ScmpCmpEq as Eq, ScmpCmpGt as Gt, ScmpCmpLt as Lt, ScmpCmpNe as Ne,
    };

    let mut rules = vec![
        refuse(EAFNOSUPPORT, vec![family(Eq, libc::AF_ALG)]),
        // AF_NFC, the only family between AF_ALG and AF_VSOCK.
        allow(vec![family(Eq, libc::AF_ALG + 1)]),
        refuse(EAFNOSUPPORT, vec![family(Eq, libc::AF_VSOCK)]),
        allow(vec![family(Gt, libc::AF_VSOCK)]),
    ];
    if audit_write {
        rules.push(allow(vec![family(Lt, libc::AF_ALG)]));
        return rules;
    }
    let protocol = |op, value: libc::c_int| arg(2, op, value as u64);
    rules.extend([
        allow(vec![family(Lt, libc::AF_NETLINK)]),
        allow(vec![
            family(Eq, libc::AF_NETLINK),
            protocol(Ne, libc::NETLINK_AUDIT),
        ]),
        refuse(
            EINVAL,
            vec![
                family(Eq, libc::AF_NETLINK),
                protocol(Eq, libc::NETLINK_AUDIT),
            ],
        ),
    ]);
    // A rule compares each argument at most once, so the families between AF_NETLINK and
    // AF_ALG cannot be one range and are listed one by one.
    rules.extend((libc::AF_NETLINK + 1..libc::AF_ALG).map(|f| allow(vec![family(Eq, f)])));
    rules
}

fn syscall(
    names: impl IntoIterator<Item = impl ToString>,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.into_iter().map(|n| n.to_string()).collect())
        .set_action(action)
        .set_errno_ret(errno)
        .set_args((!args.is_empty()).then_some(args));
    rule
}

fn arg(index: usize, op: LinuxSeccompOperator, value: u64) -> LinuxSeccompArg {
    arg_with_two(index, op, value, None)
}

/// `(argument & mask) == datum`, in the OCI spec's operand order as runc and crun read it:
/// `value` is the mask (libseccomp's `datum_a`) and `valueTwo` the datum, as in Docker's profile.
/// libcontainer 0.7 reads them the other way round; a misreading opens the rule completely
/// (libseccomp drops a comparison whose mask is 0 as always true), which is why the embedded
/// engine loads the program `seccomp_bpf` compiles instead of handing the profile to it.
fn masked_eq(index: usize, mask: u64, datum: u64) -> LinuxSeccompArg {
    arg_with_two(
        index,
        LinuxSeccompOperator::ScmpCmpMaskedEq,
        mask,
        Some(datum),
    )
}

fn arg_with_two(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    let builder = match value_two {
        Some(two) => builder.value_two(two),
        None => builder,
    };
    // The builder only fails for a missing field without a default, and every field has one.
    builder
        .build()
        .expect("all LinuxSeccompArg fields have defaults")
}

#[cfg(test)]
#[allow(
    unsafe_code,
    reason = "forks children that load filters and make raw syscalls"
)]
mod tests {
    use std::collections::BTreeMap;

    use nix::errno::Errno;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::ForkResult;

    use super::*;

    /// podman's and berth's default set.
    fn default_caps() -> Capabilities {
        [
            Capability::Chown,
            Capability::DacOverride,
            Capability::Fowner,
            Capability::Fsetid,
            Capability::Kill,
            Capability::NetBindService,
            Capability::Setfcap,
            Capability::Setgid,
            Capability::Setpcap,
            Capability::Setuid,
            Capability::SysChroot,
        ]
        .into()
    }

    fn with(mut caps: Capabilities, extra: &[Capability]) -> Capabilities {
        caps.extend(extra);
        caps
    }

    fn rules(profile: &LinuxSeccomp) -> &[LinuxSyscall] {
        profile.syscalls().as_deref().unwrap_or_default()
    }

    /// Names in argument-free rules, by action and errno.
    fn unconditional(
        profile: &LinuxSeccomp,
    ) -> BTreeMap<String, Vec<(LinuxSeccompAction, Option<u32>)>> {
        let mut map: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for rule in rules(profile).iter().filter(|r| r.args().is_none()) {
            for name in rule.names() {
                map.entry(name.clone())
                    .or_default()
                    .push((rule.action(), rule.errno_ret()));
            }
        }
        map
    }

    fn is_allowed(profile: &LinuxSeccomp, name: &str) -> bool {
        unconditional(profile)
            .get(name)
            .is_some_and(|a| a == &[(LinuxSeccompAction::ScmpActAllow, None)])
    }

    fn is_refused_with_eperm(profile: &LinuxSeccomp, name: &str) -> bool {
        unconditional(profile)
            .get(name)
            .is_some_and(|a| a == &[(LinuxSeccompAction::ScmpActErrno, Some(EPERM))])
    }

    fn every_table_name() -> Vec<&'static str> {
        ALLOWED
            .iter()
            .chain(ALLOWED_ON_ARCH)
            .chain(REFUSED)
            .chain(CAPABILITY_GATED.iter().flat_map(|(_, names)| names.iter()))
            .chain(&["clone", "clone3", "personality", "socket"])
            .copied()
            .collect()
    }

    #[test]
    fn unknown_syscalls_get_enosys() {
        let profile = default_profile(&default_caps());
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(ENOSYS));
    }

    #[test]
    fn everyday_syscalls_are_allowed() {
        let profile = default_profile(&Capabilities::new());
        for name in [
            "read",
            "write",
            "openat",
            "close",
            "execve",
            "futex",
            "epoll_wait",
            "epoll_pwait",
            "mmap",
            "brk",
            "exit_group",
            "rt_sigreturn",
            "wait4",
            "getpid",
            "accept4",
            "statx",
            "getdents64",
            "setresuid",
        ] {
            assert!(is_allowed(&profile, name), "{name} should be allowed");
        }
    }

    #[test]
    fn dangerous_syscalls_get_eperm_without_capabilities() {
        for caps in [Capabilities::new(), default_caps()] {
            let profile = default_profile(&caps);
            for name in [
                "mount",
                "umount2",
                "reboot",
                "kexec_load",
                "init_module",
                "finit_module",
                "bpf",
                "ptrace",
                "process_vm_readv",
                "add_key",
                "keyctl",
                "request_key",
                "open_by_handle_at",
                "pivot_root",
                "swapon",
                "setns",
                "unshare",
                "sethostname",
                "settimeofday",
                "clock_settime",
                "iopl",
                "acct",
                "vhangup",
                "syslog",
                "perf_event_open",
                "userfaultfd",
            ] {
                assert!(
                    is_refused_with_eperm(&profile, name),
                    "{name} should get EPERM"
                );
            }
        }
    }

    #[test]
    fn capabilities_open_their_syscalls() {
        let admin = default_profile(&with(default_caps(), &[Capability::SysAdmin]));
        for name in ["mount", "umount2", "unshare", "setns", "clone", "clone3"] {
            assert!(is_allowed(&admin, name), "{name} with CAP_SYS_ADMIN");
        }
        assert!(is_refused_with_eperm(&admin, "pivot_root"));
        assert!(is_refused_with_eperm(&admin, "reboot"));

        let cases: &[(Capability, &[&str])] = &[
            (Capability::SysPtrace, &["ptrace", "process_vm_writev"]),
            (Capability::SysBoot, &["reboot"]),
            (Capability::SysModule, &["init_module", "delete_module"]),
            (Capability::SysTime, &["settimeofday", "clock_settime"]),
            (Capability::SysRawio, &["iopl", "ioperm"]),
            (Capability::SysPacct, &["acct"]),
            (Capability::SysTtyConfig, &["vhangup"]),
            (Capability::SysNice, &["mbind", "set_mempolicy"]),
            (Capability::Bpf, &["bpf"]),
            (Capability::Perfmon, &["perf_event_open"]),
            (Capability::Syslog, &["syslog"]),
            (Capability::DacReadSearch, &["open_by_handle_at"]),
        ];
        for (cap, names) in cases {
            let profile = default_profile(&with(default_caps(), &[*cap]));
            for name in *names {
                assert!(is_allowed(&profile, name), "{name} with {cap}");
            }
            assert!(is_refused_with_eperm(&profile, "mount"), "mount with {cap}");
        }
        // CAP_SYS_CHROOT is in the default set.
        assert!(is_allowed(&default_profile(&default_caps()), "chroot"));
        assert!(is_refused_with_eperm(
            &default_profile(&Capabilities::new()),
            "chroot"
        ));
    }

    #[test]
    fn clone_is_filtered_by_namespace_flags_without_sys_admin() {
        let profile = default_profile(&default_caps());
        let unconditional = unconditional(&profile);
        assert!(!unconditional.contains_key("clone"));
        // clone3 falls to the ENOSYS default.
        assert!(
            !rules(&profile)
                .iter()
                .any(|r| r.names().contains(&"clone3".into()))
        );

        let clone_rules: Vec<_> = rules(&profile)
            .iter()
            .filter(|r| r.names() == &["clone"])
            .collect();
        // The OCI spec's operand order, as in Docker's profile: the mask in `value`, the datum
        // in `valueTwo`.
        let masked: Vec<_> = clone_rules
            .iter()
            .map(|r| {
                let args = r.args().as_deref().unwrap_or_default();
                assert_eq!(args.len(), 1, "{r:?}");
                assert_eq!(args[0].index(), 0);
                assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
                (
                    r.action(),
                    r.errno_ret(),
                    args[0].value(),
                    args[0].value_two(),
                )
            })
            .collect();
        let mut expected = vec![(LinuxSeccompAction::ScmpActAllow, None, 0x7e02_0000, Some(0))];
        expected.extend(NAMESPACE_FLAGS.iter().map(|flag| {
            let flag = *flag as u64;
            (
                LinuxSeccompAction::ScmpActErrno,
                Some(EPERM),
                flag,
                Some(flag),
            )
        }));
        assert_eq!(masked, expected);
    }

    #[test]
    fn personality_is_limited_to_safe_values() {
        let profile = default_profile(&default_caps());
        let mut values: Vec<u64> = rules(&profile)
            .iter()
            .filter(|r| r.names() == &["personality"])
            .map(|r| {
                assert_eq!(r.action(), LinuxSeccompAction::ScmpActAllow);
                let args = r.args().as_deref().unwrap_or_default();
                assert_eq!(args.len(), 1);
                assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpEq);
                args[0].value()
            })
            .collect();
        values.sort_unstable();
        assert_eq!(values, [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff]);
    }

    #[test]
    fn conditional_rules_never_compare_an_argument_twice() {
        // runc would split such a rule into alternatives, one per comparison, allowing far
        // more than the one rule `seccomp_bpf` compiles for the embedded engine.
        for caps in [Capabilities::new(), default_caps()] {
            for rule in rules(&default_profile(&caps)) {
                let indexes: Vec<_> = rule.args().iter().flatten().map(|a| a.index()).collect();
                let unique: BTreeSet<_> = indexes.iter().collect();
                assert_eq!(indexes.len(), unique.len(), "{rule:?}");
            }
        }
    }

    #[test]
    fn no_syscall_has_two_unconditional_rules() {
        let all: Capabilities = CAPABILITY_GATED.iter().map(|(cap, _)| *cap).collect();
        for caps in [Capabilities::new(), default_caps(), all] {
            let profile = default_profile(&caps);
            let unconditional = unconditional(&profile);
            for (name, actions) in &unconditional {
                assert_eq!(actions.len(), 1, "{name} has {actions:?}");
            }
            for rule in rules(&profile).iter().filter(|r| r.args().is_some()) {
                for name in rule.names() {
                    assert!(
                        !unconditional.contains_key(name),
                        "{name} is also unconditional"
                    );
                }
            }
        }
    }

    #[test]
    fn tables_have_no_duplicates() {
        let mut seen = BTreeSet::new();
        for name in ALLOWED.iter().chain(ALLOWED_ON_ARCH).chain(REFUSED) {
            assert!(seen.insert(name), "{name} is listed twice");
        }
        for (cap, names) in CAPABILITY_GATED {
            let unique: BTreeSet<_> = names.iter().collect();
            assert_eq!(unique.len(), names.len(), "{cap} lists a name twice");
            for name in *names {
                assert!(!seen.contains(name), "{name} is both gated and not");
            }
        }
    }

    #[test]
    fn libseccomp_knows_every_name() {
        for name in every_table_name() {
            assert!(
                libseccomp::ScmpSyscall::from_name(name).is_ok(),
                "libseccomp does not know {name}"
            );
        }
    }

    #[test]
    fn x86_64_filters_its_compat_architectures() {
        if cfg!(target_arch = "x86_64") {
            let profile = default_profile(&default_caps());
            let arches = profile.architectures().as_deref().unwrap_or_default();
            assert_eq!(
                arches,
                [Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
            );
        }
    }

    /// A syscall with integer arguments only; the kernel or the filter refuses them all, or they
    /// are harmless in the test's child process.
    fn raw(nr: libc::c_long, args: [u64; 5]) -> Result<libc::c_long, Errno> {
        // SAFETY: callers pass no pointers the kernel could write through (only null or
        // integers), so memory safety does not depend on what the syscall does.
        let ret = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
        if ret == -1 {
            Err(Errno::last())
        } else {
            Ok(ret)
        }
    }

    fn socket(family: libc::c_int, kind: libc::c_int, protocol: libc::c_int) -> Result<(), Errno> {
        let args = [family as u64, kind as u64, protocol as u64, 0, 0];
        raw(libc::SYS_socket, args).map(|_| ())
    }

    type Check = (&'static str, fn() -> bool);

    /// The program the embedded engine loads for `profile`: compiled by the function
    /// `Runtime::create` calls, with the same cache key (the profile's JSON), into a cache of
    /// this test's own.
    fn shipped_program(profile: &LinuxSeccomp) -> Vec<u8> {
        let cache = tempfile::tempdir().expect("tempdir");
        let json = serde_json::to_vec_pretty(profile).expect("json");
        crate::runtime::seccomp_bpf::compile_cached(profile, &json, cache.path()).expect("compile")
    }

    /// Compiles `profile` as berth does at create, loads the program into a forked child as the
    /// embedded engine's executor does at start and at exec, runs `checks` there and returns
    /// the name of the first that failed (or why the child could not run them).
    fn run_in_child(profile: &LinuxSeccomp, checks: &[Check]) -> Result<(), String> {
        let bpf = shipped_program(profile);
        // SAFETY: the child only loads the program with raw syscalls, runs the checks and
        // leaves with _exit without returning into the test harness; what it allocates, glibc's
        // fork handlers make safe in a threaded parent.
        match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
            ForkResult::Child => {
                let code = child(&bpf, checks);
                // SAFETY: _exit ends the child at once, skipping the parent's atexit handlers.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(WaitStatus::Exited(_, 1)) => Err("loading the program failed".into()),
                Ok(WaitStatus::Exited(_, code)) => Err(checks
                    .get(code as usize - 2)
                    .map_or("unknown check".into(), |c| format!("check failed: {}", c.0))),
                other => Err(format!("child ended with {other:?}")),
            },
        }
    }

    fn child(bpf: &[u8], checks: &[Check]) -> i32 {
        // no_new_privs as libcontainer sets it from the spec before the executor runs; then
        // the executor's own call.
        if crate::sys::set_no_new_privs().is_err() || crate::sys::load_seccomp_program(bpf).is_err()
        {
            return 1;
        }
        match checks.iter().position(|(_, check)| !check()) {
            Some(i) => i32::try_from(i).map_or(i32::MAX, |i| i.saturating_add(2)),
            None => 0,
        }
    }

    fn forks() -> bool {
        // SAFETY: the grandchild only calls _exit.
        match unsafe { nix::unistd::fork() } {
            // SAFETY: ends the grandchild without running the test's destructors.
            Ok(ForkResult::Child) => unsafe { libc::_exit(0) },
            Ok(ForkResult::Parent { child }) => {
                matches!(waitpid(child, None), Ok(WaitStatus::Exited(_, 0)))
            }
            Err(_) => false,
        }
    }

    fn clone_with(flag: libc::c_int) -> Result<libc::c_long, Errno> {
        let flags = (flag | libc::SIGCHLD) as u64;
        let ret = raw(libc::SYS_clone, [flags, 0, 0, 0, 0]);
        if ret == Ok(0) {
            // SAFETY: the filter let a namespaced child through; end it at once.
            unsafe { libc::_exit(0) }
        }
        ret
    }

    fn mount_nothing() -> Result<(), Errno> {
        nix::mount::mount(
            None::<&str>,
            "/nonexistent-berth-seccomp-test",
            None::<&str>,
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
    }

    const ADDR_NO_RANDOMIZE: u64 = 0x0040000;

    #[test]
    fn loaded_profile_refuses_privileged_syscalls() {
        // Both directions of a misread masked comparison show here: "fork" fails if the
        // allowing clone rule never matches, a namespace flag passes if it always does.
        let checks: &[Check] = &[
            ("getpid", || {
                rustix::process::getpid().as_raw_nonzero().get() > 0
            }),
            ("fork", forks),
            ("mount", || mount_nothing() == Err(Errno::EPERM)),
            ("umount2", || {
                nix::mount::umount("/nonexistent-berth-seccomp-test") == Err(Errno::EPERM)
            }),
            ("unshare", || {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS) == Err(Errno::EPERM)
            }),
            ("setns", || {
                raw(libc::SYS_setns, [u64::MAX, 0, 0, 0, 0]) == Err(Errno::EPERM)
            }),
            ("clone with CLONE_NEWUTS", || {
                clone_with(libc::CLONE_NEWUTS) == Err(Errno::EPERM)
            }),
            ("clone with each namespace flag", || {
                NAMESPACE_FLAGS
                    .iter()
                    .all(|flag| clone_with(*flag) == Err(Errno::EPERM))
            }),
            ("clone3", || {
                raw(libc::SYS_clone3, [0; 5]) == Err(Errno::ENOSYS)
            }),
            ("reboot", || {
                raw(libc::SYS_reboot, [0; 5]) == Err(Errno::EPERM)
            }),
            ("kexec_load", || {
                raw(libc::SYS_kexec_load, [0; 5]) == Err(Errno::EPERM)
            }),
            ("keyctl", || {
                raw(libc::SYS_keyctl, [0; 5]) == Err(Errno::EPERM)
            }),
            ("ptrace", || {
                raw(libc::SYS_ptrace, [2, 1, 0, 0, 0]) == Err(Errno::EPERM)
            }),
            ("io_uring_setup", || {
                raw(libc::SYS_io_uring_setup, [0; 5]) == Err(Errno::ENOSYS)
            }),
            ("personality query", || {
                raw(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0]).is_ok()
            }),
            ("personality ADDR_NO_RANDOMIZE", || {
                raw(libc::SYS_personality, [ADDR_NO_RANDOMIZE, 0, 0, 0, 0]) == Err(Errno::ENOSYS)
            }),
            ("AF_INET", || {
                socket(libc::AF_INET, libc::SOCK_STREAM, 0).is_ok()
            }),
            ("AF_UNIX", || {
                socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).is_ok()
            }),
            ("AF_PACKET", || {
                socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0).is_ok()
            }),
            ("NETLINK_ROUTE", || {
                socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE).is_ok()
            }),
            ("NETLINK_AUDIT", || {
                socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT) == Err(Errno::EINVAL)
            }),
            ("AF_ALG", || {
                socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) == Err(Errno::EAFNOSUPPORT)
            }),
            ("AF_VSOCK", || {
                socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) == Err(Errno::EAFNOSUPPORT)
            }),
        ];
        run_in_child(&default_profile(&default_caps()), checks).unwrap();
    }

    #[test]
    fn loaded_profile_passes_privileged_syscalls_with_capabilities() {
        // The test runs as root, so the kernel answers now, with something other than what the
        // filter would have answered.
        let checks: &[Check] = &[
            ("fork", forks),
            ("mount", || mount_nothing() == Err(Errno::ENOENT)),
            ("setns", || {
                raw(libc::SYS_setns, [u64::MAX, 0, 0, 0, 0]) == Err(Errno::EBADF)
            }),
            ("unshare", || {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS).is_ok()
            }),
            ("clone3", || {
                !matches!(
                    raw(libc::SYS_clone3, [0; 5]),
                    Err(Errno::ENOSYS | Errno::EPERM)
                )
            }),
            ("NETLINK_AUDIT", || {
                socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT).is_ok()
            }),
        ];
        let caps = with(
            default_caps(),
            &[Capability::SysAdmin, Capability::AuditWrite],
        );
        run_in_child(&default_profile(&caps), checks).unwrap();
    }

    /// The compiler (`seccomp_bpf`) on the profile that ships, and its cache.
    #[test]
    fn compiles_and_caches_the_default_profile() {
        let profile = default_profile(&default_caps());
        let bpf = crate::runtime::seccomp_bpf::compile(&profile).expect("compile");
        assert!(bpf.len() > 800, "{} bytes", bpf.len());
        let cache = tempfile::tempdir().expect("tempdir");
        let json = serde_json::to_vec(&profile).expect("json");
        assert_eq!(
            crate::runtime::seccomp_bpf::compile_cached(&profile, &json, cache.path())
                .expect("cached"),
            bpf
        );
        assert_eq!(std::fs::read_dir(cache.path()).expect("list").count(), 1);
        assert_eq!(
            crate::runtime::seccomp_bpf::compile_cached(&profile, &json, cache.path())
                .expect("again"),
            bpf
        );
    }
}
