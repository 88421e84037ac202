//! A container's `devices`, `device_cgroup_rules`, `sysctls`, `ulimits`, `init`, `shm_size`,
//! `seccomp` and `privileged` applied to its OCI spec. What the host has to say (device
//! numbers, hard limits, whether tini is installed, the kernel, the creator's bounding set)
//! is gathered once by [`host_facts`]; [`apply`] is pure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, PosixRlimitBuilder,
    PosixRlimitType, Spec,
};

use super::seccomp_docker;
use crate::spec::device::DeviceRule;
use crate::spec::runtime_keys::RuntimeKeys;
use crate::spec::seccomp_profile::Seccomp;

/// tini, statically linked, from Debian's `tini` package: Docker's `docker-init` is tini.
/// Static, so it runs in any image, whatever its libc.
pub(crate) const TINI: &str = "/usr/bin/tini-static";
/// Where the init appears in the container (read-only), as Docker's /sbin/docker-init.
pub(crate) const INIT_TARGET: &str = "/sbin/berth-init";
/// Set on a privileged container's spec: the monitor then leaves its cgroupfs writable.
pub(crate) const PRIVILEGED_ANNOTATION: &str = "io.berth.privileged";

#[derive(Debug, thiserror::Error)]
pub enum KernelKeysError {
    #[error("device {path}: {source}")]
    Device {
        path: String,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    ReadHost {
        path: String,
        source: std::io::Error,
    },
    #[error("device {path} is not a character or block device on this host")]
    NotADevice { path: String },
    #[error(
        "`init = true` needs tini: {path} is missing; install Debian's `tini` package (apt-get install tini)"
    )]
    NoInit { path: String },
    #[error(
        "ulimit `{name}` ({wanted}) is above this host's hard limit ({host}); lower it or raise the host's"
    )]
    AboveHostLimit {
        name: String,
        wanted: u64,
        host: u64,
    },
    #[error(transparent)]
    Seccomp(#[from] seccomp_docker::DockerSeccompError),
    #[error("building the runtime spec: {0}")]
    Build(String),
}

/// A device node of the host, as the container gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostDevice {
    /// Path inside the container.
    pub container: String,
    pub block: bool,
    pub major: u32,
    pub minor: u32,
    /// Permission bits of the host's node.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub access: String,
}

/// What [`apply`] needs from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostFacts {
    /// One per `devices` entry, in the same order; for a privileged container, then every
    /// device node of the host.
    pub devices: Vec<HostDevice>,
    /// The hard limit of each `ulimits` resource (None: unlimited).
    pub hard_limits: HashMap<String, Option<u64>>,
    /// The init binary, when `init = true`.
    pub init: Option<PathBuf>,
    /// The running kernel's (major, minor): seccomp profiles' rules may need a newer one.
    pub kernel: (u32, u32),
    /// For a privileged container: the capabilities the creator may pass on (its bounding
    /// set, bit N for capability N), which the monitor inherits. A privileged container gets
    /// all of them; asking for more would fail in capset.
    pub bounding: u64,
}

/// Look up what `keys` needs on this host: fails when a device or tini is missing.
pub(crate) fn host_facts(keys: &RuntimeKeys) -> Result<HostFacts, KernelKeysError> {
    let mut facts = HostFacts {
        kernel: seccomp_docker::kernel_version(),
        ..HostFacts::default()
    };
    for d in &keys.devices {
        let st = rustix::fs::stat(d.host.as_str()).map_err(|e| KernelKeysError::Device {
            path: d.host.clone(),
            source: e.into(),
        })?;
        let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let block = match kind {
            rustix::fs::FileType::CharacterDevice => false,
            rustix::fs::FileType::BlockDevice => true,
            _ => {
                return Err(KernelKeysError::NotADevice {
                    path: d.host.clone(),
                });
            }
        };
        facts.devices.push(HostDevice {
            container: d.container.clone(),
            block,
            major: rustix::fs::major(st.st_rdev),
            minor: rustix::fs::minor(st.st_rdev),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            access: d.access.clone(),
        });
    }
    if keys.privileged {
        facts.devices.extend(all_host_devices(Path::new("/dev"))?);
        facts.bounding = own_bounding_set()?;
    }
    for name in keys.ulimits.keys() {
        if let Some((_, resource)) = resource(name) {
            facts
                .hard_limits
                .insert(name.clone(), rustix::process::getrlimit(resource).maximum);
        }
    }
    if keys.init {
        if !Path::new(TINI).is_file() {
            return Err(KernelKeysError::NoInit { path: TINI.into() });
        }
        facts.init = Some(PathBuf::from(TINI));
    }
    Ok(facts)
}

/// This process's capability bounding set, from /proc/self/status.
fn own_bounding_set() -> Result<u64, KernelKeysError> {
    let path = "/proc/self/status";
    let status = std::fs::read_to_string(path).map_err(|source| KernelKeysError::ReadHost {
        path: path.into(),
        source,
    })?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| KernelKeysError::Build(format!("no CapBnd line in {path}")))
}

/// Every character and block device below `dev`, as Docker's privileged mode lists them:
/// not in pts, shm, mqueue or fd, and not the console or ptmx (the engine makes those).
fn all_host_devices(dev: &Path) -> Result<Vec<HostDevice>, KernelKeysError> {
    const SKIPPED: &[&str] = &[
        "pts", "shm", "mqueue", "fd", "console", "ptmx", ".lxc", ".udev",
    ];
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| KernelKeysError::ReadHost { path, source }
    };
    let mut found = Vec::new();
    let mut dirs = vec![dev.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            if entry
                .file_name()
                .to_str()
                .is_none_or(|n| SKIPPED.contains(&n))
            {
                continue;
            }
            // Not following links: a device is listed at its own path once.
            let Ok(st) = rustix::fs::lstat(&path) else {
                continue;
            };
            let block = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                rustix::fs::FileType::Directory => {
                    dirs.push(path);
                    continue;
                }
                rustix::fs::FileType::CharacterDevice => false,
                rustix::fs::FileType::BlockDevice => true,
                _ => continue,
            };
            found.push(HostDevice {
                container: path.display().to_string(),
                block,
                major: rustix::fs::major(st.st_rdev),
                minor: rustix::fs::minor(st.st_rdev),
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
                access: "rwm".into(),
            });
        }
    }
    found.sort_by(|a, b| a.container.cmp(&b.container));
    Ok(found)
}

/// Apply `keys` to a spec made by `bundle::build`.
pub(crate) fn apply(
    spec: &mut Spec,
    keys: &RuntimeKeys,
    host: &HostFacts,
) -> Result<(), KernelKeysError> {
    if *keys == RuntimeKeys::default() {
        return Ok(());
    }
    apply_process(spec, keys, host)?;
    apply_linux(spec, keys, host)?;
    if let Some(size) = keys.shm_size {
        for m in spec.mounts_mut().iter_mut().flatten() {
            if m.destination() == Path::new("/dev/shm") {
                let mut options: Vec<String> = m
                    .options()
                    .iter()
                    .flatten()
                    .filter(|o| !o.starts_with("size="))
                    .cloned()
                    .collect();
                options.push(format!("size={}", size.0));
                m.set_options(Some(options));
            }
        }
    }
    if keys.privileged {
        apply_privileged(spec, host.bounding)?;
    }
    if let Some(init) = &host.init {
        let mounts = spec.mounts_mut().get_or_insert_with(Vec::new);
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(INIT_TARGET)
                .typ("bind")
                .source(init)
                .options(vec!["rbind".into(), "rprivate".into(), "ro".into()])
                .build()
                .map_err(build_err)?,
        );
    }
    Ok(())
}

fn apply_process(
    spec: &mut Spec,
    keys: &RuntimeKeys,
    host: &HostFacts,
) -> Result<(), KernelKeysError> {
    let Some(process) = spec.process_mut() else {
        return Err(KernelKeysError::Build("spec has no process".into()));
    };
    let mut rlimits = process.rlimits().clone().unwrap_or_default();
    for (name, limit) in &keys.ulimits {
        let Some((typ, _)) = resource(name) else {
            return Err(KernelKeysError::Build(format!("unknown ulimit {name}")));
        };
        if let Some(Some(host_hard)) = host.hard_limits.get(name)
            && limit.hard > *host_hard
        {
            return Err(KernelKeysError::AboveHostLimit {
                name: name.clone(),
                wanted: limit.hard,
                host: *host_hard,
            });
        }
        rlimits.retain(|r| r.typ() != typ);
        rlimits.push(
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(limit.soft)
                .hard(limit.hard)
                .build()
                .map_err(build_err)?,
        );
    }
    process.set_rlimits(Some(rlimits));
    if host.init.is_some() {
        // tini execs the command as its child, forwards every signal to it and reaps
        // whatever is re-parented to it; `--` so the command's own flags stay its own.
        let mut args = vec![INIT_TARGET.to_string(), "--".to_string()];
        args.extend(process.args().iter().flatten().cloned());
        process.set_args(Some(args));
    }
    Ok(())
}

fn apply_linux(
    spec: &mut Spec,
    keys: &RuntimeKeys,
    host: &HostFacts,
) -> Result<(), KernelKeysError> {
    // The effective capabilities, by name with CAP_, which profiles' rules test.
    let caps: Vec<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.effective().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let Some(linux) = spec.linux_mut() else {
        return Err(KernelKeysError::Build("spec has no linux section".into()));
    };
    if !keys.sysctls.is_empty() {
        let sysctl: HashMap<String, String> = keys
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        linux.set_sysctl(Some(sysctl));
    }
    match &keys.seccomp {
        Seccomp::Default => {}
        Seccomp::Unconfined => {
            linux.set_seccomp(None);
        }
        Seccomp::Profile(profile) => {
            let target = seccomp_docker::Target {
                caps: &caps,
                arch: seccomp_docker::go_arch(),
                kernel: host.kernel,
            };
            linux.set_seccomp(Some(seccomp_docker::to_oci(profile, &target)?));
        }
    }
    let mut nodes = linux.devices().clone().unwrap_or_default();
    let mut rules = Vec::new();
    for d in &host.devices {
        let typ = if d.block {
            LinuxDeviceType::B
        } else {
            LinuxDeviceType::C
        };
        nodes.push(
            LinuxDeviceBuilder::default()
                .path(&d.container)
                .typ(typ)
                .major(i64::from(d.major))
                .minor(i64::from(d.minor))
                .file_mode(d.mode)
                .uid(d.uid)
                .gid(d.gid)
                .build()
                .map_err(build_err)?,
        );
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(typ)
                .major(i64::from(d.major))
                .minor(i64::from(d.minor))
                .access(d.access.clone())
                .build()
                .map_err(build_err)?,
        );
    }
    for r in &keys.device_cgroup_rules {
        rules.push(cgroup_rule(r)?);
    }
    if !nodes.is_empty() {
        linux.set_devices(Some(nodes));
    }
    if !rules.is_empty() {
        // After the spec's deny-all: later rules win, so these open exactly what they name.
        let resources = linux.resources_mut().get_or_insert_with(Default::default);
        let mut all = resources.devices().clone().unwrap_or_default();
        all.extend(rules);
        resources.set_devices(Some(all));
    }
    Ok(())
}

/// What Docker's --privileged changes beyond the devices: every capability, no seccomp
/// filter, no_new_privs off, nothing masked or read-only in /proc, /sys and cgroupfs
/// writable, and the device cgroup open to everything.
fn apply_privileged(spec: &mut Spec, bounding: u64) -> Result<(), KernelKeysError> {
    use oci_spec::runtime::{Capability as OciCapability, LinuxCapabilitiesBuilder};
    // ALL_CAPABILITIES is in the kernel's numbering: entry N is capability N.
    let all: std::collections::HashSet<OciCapability> = crate::spec::capability::ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .filter_map(|(_, c)| c.parse::<OciCapability>().ok())
        .collect();
    let Some(process) = spec.process_mut() else {
        return Err(KernelKeysError::Build("spec has no process".into()));
    };
    process.set_capabilities(Some(
        LinuxCapabilitiesBuilder::default()
            .bounding(all.clone())
            .effective(all.clone())
            .permitted(all)
            .inheritable(std::collections::HashSet::new())
            .ambient(std::collections::HashSet::new())
            .build()
            .map_err(build_err)?,
    ));
    process.set_no_new_privileges(Some(false));
    for m in spec.mounts_mut().iter_mut().flatten() {
        if m.destination() == Path::new("/sys") || m.destination() == Path::new("/sys/fs/cgroup") {
            let options: Vec<String> = m
                .options()
                .iter()
                .flatten()
                .filter(|o| *o != "ro")
                .cloned()
                .collect();
            m.set_options(Some(options));
        }
    }
    let Some(linux) = spec.linux_mut() else {
        return Err(KernelKeysError::Build("spec has no linux section".into()));
    };
    linux.set_seccomp(None);
    linux.set_masked_paths(Some(Vec::new()));
    linux.set_readonly_paths(Some(Vec::new()));
    let resources = linux.resources_mut().get_or_insert_with(Default::default);
    let mut rules = resources.devices().clone().unwrap_or_default();
    rules.push(
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::A)
            .access("rwm")
            .build()
            .map_err(build_err)?,
    );
    resources.set_devices(Some(rules));
    spec.annotations_mut()
        .get_or_insert_with(Default::default)
        .insert(PRIVILEGED_ANNOTATION.into(), "true".into());
    Ok(())
}

/// Whether a spec is a privileged container's.
pub(crate) fn is_privileged(spec: &Spec) -> bool {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(PRIVILEGED_ANNOTATION))
        .is_some_and(|v| v == "true")
}

fn cgroup_rule(r: &DeviceRule) -> Result<oci_spec::runtime::LinuxDeviceCgroup, KernelKeysError> {
    let typ = match r.kind {
        'b' => LinuxDeviceType::B,
        'c' => LinuxDeviceType::C,
        _ => LinuxDeviceType::A,
    };
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .access(r.access.clone());
    if let Some(major) = r.major {
        b = b.major(i64::from(major));
    }
    if let Some(minor) = r.minor {
        b = b.minor(i64::from(minor));
    }
    b.build().map_err(build_err)
}

/// The OCI rlimit and the kernel resource of a Compose ulimit name.
fn resource(name: &str) -> Option<(PosixRlimitType, rustix::process::Resource)> {
    use PosixRlimitType as R;
    use rustix::process::Resource as X;
    Some(match name {
        "as" => (R::RlimitAs, X::As),
        "core" => (R::RlimitCore, X::Core),
        "cpu" => (R::RlimitCpu, X::Cpu),
        "data" => (R::RlimitData, X::Data),
        "fsize" => (R::RlimitFsize, X::Fsize),
        "locks" => (R::RlimitLocks, X::Locks),
        "memlock" => (R::RlimitMemlock, X::Memlock),
        "msgqueue" => (R::RlimitMsgqueue, X::Msgqueue),
        "nice" => (R::RlimitNice, X::Nice),
        "nofile" => (R::RlimitNofile, X::Nofile),
        "nproc" => (R::RlimitNproc, X::Nproc),
        "rss" => (R::RlimitRss, X::Rss),
        "rtprio" => (R::RlimitRtprio, X::Rtprio),
        "rttime" => (R::RlimitRttime, X::Rttime),
        "sigpending" => (R::RlimitSigpending, X::Sigpending),
        "stack" => (R::RlimitStack, X::Stack),
        _ => return None,
    })
}

fn build_err(e: impl std::fmt::Display) -> KernelKeysError {
    KernelKeysError::Build(e.to_string())
}

#[cfg(test)]
#[path = "kernel_keys_tests.rs"]
mod tests;
