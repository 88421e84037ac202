//! The OCI runtime spec of a container: the image config merged with its `[container.*]`
//! entry, plus berth's secure defaults. A pure function of its inputs (no I/O), so every
//! rule is unit-tested; the monitor fills in the user once the root filesystem is mounted
//! (`apply_user`), because names resolve in the container's own /etc/passwd.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability as OciCapability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use super::users::Resolved;
use crate::spec::capability::{ALL_CAPABILITIES, Capability, DEFAULT_CAPABILITIES};
use crate::spec::model::{Container, ContainerNetwork};
use crate::spec::mount::Mount as EntryMount;

pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default for RLIMIT_NOFILE; never more than the host allows (the hard limit), or
/// setrlimit fails without CAP_SYS_RESOURCE.
const NOFILE_WANTED: u64 = 1 << 20;

/// Processes (threads included) a container may have unless its entry says otherwise:
/// podman's default, so one container cannot exhaust the host's pids with a fork bomb.
const DEFAULT_PIDS_LIMIT: u32 = 2048;

/// Linux refuses any single argument or environment string longer than this, NUL included
/// (MAX_ARG_STRLEN, 32 pages).
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Beyond oci-spec's defaults: the RAPL energy counters leak what other tenants compute
/// (CVE-2020-8694), as podman masks too.
const EXTRA_MASKED_PATHS: &[&str] = &["/sys/devices/virtual/powercap", "/proc/interrupts"];

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{what}: the image has no entrypoint or command and the entry sets neither")]
    NoCommand { what: String },
    #[error("building the runtime spec: {0}")]
    Build(String),
    #[error(
        "{what}: {item} is {bytes} bytes; Linux refuses any argument or environment string over {MAX_ARG_STRLEN} bytes; pass large data as a file (a bind mount or a volume)"
    )]
    StringTooLong {
        what: String,
        item: String,
        bytes: usize,
    },
    #[error(
        "{what}: the arguments and environment (the image's included) take {bytes} bytes, more than the {limit} bytes Linux accepts at exec with this host's stack limit; pass large data as a file (a bind mount or a volume)"
    )]
    ExecTooLarge {
        what: String,
        bytes: usize,
        limit: u64,
    },
}

/// Everything the spec depends on besides the entry and the image config.
#[derive(Debug, Clone)]
pub(crate) struct SpecInputs<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub container: &'a Container,
    pub image: &'a ImageConfiguration,
    /// Generated `hostname`, `hosts`, `resolv.conf`, bind-mounted into /etc.
    pub etc_dir: &'a Path,
    /// Volume name → the directory mounted for it.
    pub volumes: &'a BTreeMap<String, PathBuf>,
    pub cgroup_path: &'a str,
    /// The host's hard RLIMIT_NOFILE.
    pub nofile_hard: u64,
    /// How many bytes of arguments and environment an exec may carry here (`arg_max`).
    pub arg_max: u64,
}

/// What fs/exec.c allows for argv + envp with a stack limit of `stack_soft` bytes: a quarter
/// of the stack, at most 6 MiB (three quarters of the 8 MiB default), at least 128 KiB.
pub(crate) fn arg_max(stack_soft: Option<u64>) -> u64 {
    const DEFAULT_STACK: u64 = 8 << 20;
    (stack_soft.unwrap_or(u64::MAX) / 4)
        .min(DEFAULT_STACK / 4 * 3)
        .max(MAX_ARG_STRLEN as u64)
}

/// Refuse at creation what the kernel would refuse at exec (E2BIG), naming the culprit.
/// Leaves a page for what the monitor adds later (HOME) and the program's path.
fn check_exec_size(
    what: &str,
    args: &[String],
    env: &[String],
    limit: u64,
) -> Result<(), BundleError> {
    for (i, arg) in args.iter().enumerate() {
        if arg.len() + 1 > MAX_ARG_STRLEN {
            return Err(BundleError::StringTooLong {
                what: what.into(),
                item: format!("argument {i}"),
                bytes: arg.len(),
            });
        }
    }
    for entry in env {
        if entry.len() + 1 > MAX_ARG_STRLEN {
            let name = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
            return Err(BundleError::StringTooLong {
                what: what.into(),
                item: format!("the environment variable {name}"),
                bytes: entry.len(),
            });
        }
    }
    let pointer = std::mem::size_of::<usize>();
    let bytes: usize = args
        .iter()
        .chain(env)
        .map(|s| s.len() + 1 + pointer)
        .sum::<usize>()
        + 4096;
    if bytes as u64 > limit {
        return Err(BundleError::ExecTooLarge {
            what: what.into(),
            bytes,
            limit,
        });
    }
    Ok(())
}

pub(crate) fn build(inputs: &SpecInputs) -> Result<Spec, BundleError> {
    let c = inputs.container;
    let config = inputs.image.config().as_ref();
    let args = arguments(
        c,
        config.and_then(|c| c.entrypoint().as_deref()),
        config.and_then(|c| c.cmd().as_deref()),
    )
    .ok_or_else(|| BundleError::NoCommand {
        what: format!("container {}", inputs.name),
    })?;
    let env = environment(
        config.and_then(|c| c.env().as_deref()).unwrap_or_default(),
        &c.env,
        &c.hostname,
    );
    check_exec_size(
        &format!("container {}", inputs.name),
        &args,
        &env,
        inputs.arg_max,
    )?;
    let cwd = c
        .workdir
        .clone()
        .or_else(|| config.and_then(|c| c.working_dir().clone()))
        .filter(|w| w.starts_with('/'))
        .unwrap_or_else(|| "/".into());
    let caps = capabilities(&c.cap_add, &c.cap_drop);
    let oci_caps: HashSet<OciCapability> = caps
        .iter()
        .filter_map(|name| name.parse::<OciCapability>().ok())
        .collect();
    let nofile = NOFILE_WANTED.min(inputs.nofile_hard);

    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(err)?,
        )
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(oci_caps.clone())
                .effective(oci_caps.clone())
                .permitted(oci_caps.clone())
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()
                .map_err(err)?,
        )
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .soft(nofile)
                .hard(nofile)
                .build()
                .map_err(err)?,
        ])
        .no_new_privileges(true)
        // The agent's unit lowers its own OOM score; containers must not inherit that.
        .oom_score_adj(0)
        .build()
        .map_err(err)?;

    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Cgroup,
    ];
    // A joined namespace (another container's) gets its path from the monitor at each start.
    if !matches!(c.network, ContainerNetwork::Host) {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| {
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(err)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut masked = oci_spec::runtime::get_default_maskedpaths();
    masked.extend(EXTRA_MASKED_PATHS.iter().map(|p| p.to_string()));

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(inputs.cgroup_path))
        .resources(resources(c)?)
        .masked_paths(masked)
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths())
        .seccomp(super::seccomp::default_profile(&oci_caps))
        .build()
        .map_err(err)?;

    // berth's own annotations are trusted later (the privileged mark among them): a label
    // never spells one, even from a record older than the loader's refusal.
    let mut annotations: std::collections::HashMap<String, String> = c
        .labels
        .iter()
        .filter(|(k, _)| !k.starts_with("io.berth."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert("io.berth.name".into(), inputs.name.into());
    annotations.insert("io.berth.id".into(), inputs.id.into());

    SpecBuilder::default()
        .version("1.0.2")
        .hostname(c.hostname.clone())
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(c.read_only)
                .build()
                .map_err(err)?,
        )
        .process(process)
        .mounts(mounts(inputs)?)
        .linux(linux)
        .annotations(annotations)
        .build()
        .map_err(err)
}

/// Docker's rules: the entry's entrypoint replaces the image's and then also drops the
/// image's CMD; the entry's command replaces the image's CMD.
fn arguments(
    c: &Container,
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
) -> Option<Vec<String>> {
    let (entrypoint, cmd): (&[String], &[String]) = match (&c.entrypoint, &c.command) {
        (Some(ep), Some(cmd)) => (ep, cmd),
        (Some(ep), None) => (ep, &[]),
        (None, Some(cmd)) => (image_entrypoint.unwrap_or_default(), cmd),
        (None, None) => (
            image_entrypoint.unwrap_or_default(),
            image_cmd.unwrap_or_default(),
        ),
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd).cloned().collect();
    (!args.is_empty()).then_some(args)
}

/// The image's environment, overridden by the entry's; PATH and HOSTNAME always present.
fn environment(
    image_env: &[String],
    entry_env: &BTreeMap<String, String>,
    hostname: &str,
) -> Vec<String> {
    // Keep the image's order and append new keys in the entry's (sorted) order, as Docker.
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |key: &str, value: &str, env: &mut Vec<(String, String)>| match env
        .iter_mut()
        .find(|(k, _)| k == key)
    {
        Some(slot) => slot.1 = value.to_string(),
        None => env.push((key.to_string(), value.to_string())),
    };
    for item in image_env {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        set(k, v, &mut env);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        set("PATH", DEFAULT_PATH, &mut env);
    }
    set("HOSTNAME", hostname, &mut env);
    for (k, v) in entry_env {
        set(k, v, &mut env);
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The capability names (without `CAP_`) the container gets: the default set, minus
/// `cap_drop`, plus `cap_add`; "ALL" means every capability.
fn capabilities(add: &BTreeSet<Capability>, drop: &BTreeSet<Capability>) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = if drop.contains(&Capability::All) {
        BTreeSet::new()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    for c in drop {
        if let Capability::Named(n) = c {
            set.remove(*n);
        }
    }
    for c in add {
        match c {
            Capability::All => set.extend(ALL_CAPABILITIES.iter().map(|c| c.to_string())),
            Capability::Named(n) => {
                set.insert(n.to_string());
            }
        }
    }
    set
}

fn resources(c: &Container) -> Result<oci_spec::runtime::LinuxResources, BundleError> {
    let mut builder = LinuxResourcesBuilder::default().devices(vec![
        // Deny everything; the engine then allows the standard devices (null, zero, full,
        // random, urandom, tty, console, ptmx, pts).
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(err)?,
    ]);
    if let Some(memory) = c.resources.memory {
        let bytes = i64::try_from(memory.0).unwrap_or(i64::MAX);
        // swap = limit: no swap beyond the memory limit, so the limit means what it says.
        builder = builder.memory(
            LinuxMemoryBuilder::default()
                .limit(bytes)
                .swap(bytes)
                .build()
                .map_err(err)?,
        );
    }
    if let Some(millicpus) = c.resources.millicpus {
        const PERIOD_US: u64 = 100_000;
        builder = builder.cpu(
            LinuxCpuBuilder::default()
                .period(PERIOD_US)
                .quota(i64::from(millicpus) * (PERIOD_US as i64) / 1000)
                .build()
                .map_err(err)?,
        );
    }
    let pids = c.resources.pids.unwrap_or(DEFAULT_PIDS_LIMIT);
    builder = builder.pids(
        LinuxPidsBuilder::default()
            .limit(i64::from(pids))
            .build()
            .map_err(err)?,
    );
    builder.build().map_err(err)
}

fn mounts(inputs: &SpecInputs) -> Result<Vec<Mount>, BundleError> {
    let c = inputs.container;
    let mut mounts = oci_spec::runtime::get_default_mounts();
    // Read-only with the root filesystem, as Docker mounts them: otherwise a read-only
    // container could still write without bound to files on the host's disk.
    for file in ["hostname", "hosts", "resolv.conf"] {
        mounts.push(bind(
            &inputs.etc_dir.join(file),
            &format!("/etc/{file}"),
            c.read_only,
        )?);
    }
    for m in &c.mounts {
        mounts.push(match m {
            EntryMount::Volume {
                source,
                target,
                read_only,
                ..
            } => {
                let dir = inputs.volumes.get(source).ok_or_else(|| {
                    BundleError::Build(format!("volume {source} was not prepared"))
                })?;
                bind(dir, target, *read_only)?
            }
            EntryMount::Bind {
                source,
                target,
                read_only,
            } => bind(Path::new(source), target, *read_only)?,
            EntryMount::Tmpfs {
                target,
                size,
                mode,
                noexec,
                uid,
                gid,
            } => {
                let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
                if *noexec {
                    options.push("noexec".into());
                }
                if let Some(size) = size {
                    options.push(format!("size={}", size.0));
                }
                options.push(format!("mode={}", mode.as_deref().unwrap_or("1777")));
                options.extend(uid.map(|u| format!("uid={u}")));
                options.extend(gid.map(|g| format!("gid={g}")));
                MountBuilder::default()
                    .destination(target)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(options)
                    .build()
                    .map_err(err)?
            }
        });
    }
    Ok(mounts)
}

/// Whether a spec mount is a bind (by type, or by option as runc reads it).
pub(crate) fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind") || has_option(m, "bind") || has_option(m, "rbind")
}

pub(crate) fn has_option(m: &Mount, option: &str) -> bool {
    m.options().iter().flatten().any(|o| o == option)
}

fn bind(source: &Path, target: &str, read_only: bool) -> Result<Mount, BundleError> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if read_only {
        options.push("ro".into());
    }
    MountBuilder::default()
        .destination(target)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .map_err(err)
}

/// Fill in the resolved user, and HOME unless the image or entry set it.
pub(crate) fn apply_user(spec: &mut Spec, user: &Resolved) -> Result<(), BundleError> {
    let Some(process) = spec.process_mut() else {
        return Err(BundleError::Build("spec has no process".into()));
    };
    // The primary group is also a supplementary one, as initgroups(3) and Docker make it.
    let mut groups: BTreeSet<u32> = user.additional_gids.iter().copied().collect();
    groups.insert(user.gid);
    let oci_user = UserBuilder::default()
        .uid(user.uid)
        .gid(user.gid)
        .additional_gids(groups.into_iter().collect::<Vec<_>>())
        .build()
        .map_err(err)?;
    process.set_user(oci_user);
    let mut env = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    process.set_env(Some(env));
    Ok(())
}

fn err(e: impl std::fmt::Display) -> BundleError {
    BundleError::Build(e.to_string())
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
