//! `devices`, `device_cgroup_rules`, `sysctls`, `ulimits`, `init`, `shm_size`, `seccomp` and
//! `privileged`: what the container may reach of the kernel, checked so that nothing here
//! reaches past the container's own namespaces or above the host's limits unless the entry
//! says so in as many words (`privileged`, `seccomp = "unconfined"`).

use std::collections::BTreeMap;

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::model::ContainerNetwork;
use crate::spec::raw::RawContainer;
use crate::spec::resolve::span;
use crate::spec::runtime_keys::{
    RawUlimit, RuntimeKeys, SysctlScope, ULIMIT_NAMES, UNLIMITED, Ulimit, sysctl_scope,
};
use crate::spec::seccomp_profile::{self, MAX_PROFILE_BYTES, Seccomp};
use crate::spec::size::ByteSize;

use super::report::Report;

/// The keys, given the network already resolved (net.* sysctls need a namespace of its own).
pub(super) fn resolve_runtime_keys(
    raw: &RawContainer,
    network: &ContainerNetwork,
    report: &mut Report,
) -> RuntimeKeys {
    let mut device_cgroup_rules: Vec<_> = raw
        .device_cgroup_rules
        .iter()
        .map(|r| r.get_ref().clone())
        .collect();
    device_cgroup_rules.sort();
    device_cgroup_rules.dedup();
    RuntimeKeys {
        devices: resolve_devices(raw, report),
        device_cgroup_rules,
        sysctls: resolve_sysctls(raw, network, report),
        ulimits: resolve_ulimits(raw, report),
        init: raw.init,
        privileged: resolve_privileged(raw, report),
        seccomp: raw
            .seccomp
            .as_ref()
            .map_or(Seccomp::Default, |s| resolve_seccomp(s, report)),
        shm_size: raw
            .shm_size
            .as_ref()
            .and_then(|s| resolve_shm_size(s, report)),
    }
}

fn resolve_shm_size(s: &Spanned<ByteSize>, report: &mut Report) -> Option<ByteSize> {
    if s.get_ref().0 > 0 {
        return Some(*s.get_ref());
    }
    let what = report.what();
    report.push(
        report
            .diag(
                Code::InvalidValue,
                span(s),
                format!("{what}: shm_size must be more than 0"),
            )
            .with_help("write a size such as \"256MiB\""),
    );
    None
}

fn resolve_devices(
    raw: &RawContainer,
    report: &mut Report,
) -> Vec<crate::spec::device::DeviceMapping> {
    let what = report.what();
    let mut devices: Vec<crate::spec::device::DeviceMapping> = Vec::new();
    for d in &raw.devices {
        let device = d.get_ref();
        if devices.iter().any(|o| o.container == device.container) {
            report.push(
                report
                    .diag(
                        Code::Conflict,
                        span(d),
                        format!(
                            "{what}: two devices appear at `{}` in the container",
                            device.container
                        ),
                    )
                    .with_help("list each container path once"),
            );
            continue;
        }
        devices.push(device.clone());
    }
    devices.sort_by(|a, b| a.container.cmp(&b.container));
    devices
}

/// `privileged`, refused beside a seccomp profile it would silently drop.
fn resolve_privileged(raw: &RawContainer, report: &mut Report) -> bool {
    if let (true, Some(s)) = (raw.privileged, &raw.seccomp)
        && s.get_ref() != "unconfined"
    {
        let what = report.what();
        report.push(
            report
                .diag(
                    Code::Conflict,
                    span(s),
                    format!("{what}: a privileged container runs without seccomp; `seccomp` would be ignored"),
                )
                .with_help("drop `seccomp`, or drop `privileged` and grant what is needed with `cap_add`, `devices` and `seccomp`"),
        );
    }
    raw.privileged
}

/// "unconfined", or the profile file named (relative to the entry's file), read and parsed.
fn resolve_seccomp(s: &Spanned<String>, report: &mut Report) -> Seccomp {
    let what = report.what();
    let value = s.get_ref();
    if value == "unconfined" {
        return Seccomp::Unconfined;
    }
    let file = report.source().path.clone();
    let dir = file
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let path = dir.join(value);
    let read = || -> Result<seccomp_profile::DockerProfile, String> {
        let relative = std::path::Path::new(value);
        if value.is_empty()
            || relative.is_absolute()
            || relative
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(
                "the path must be relative to this file's directory and stay inside it".into(),
            );
        }
        let bytes = read_confined(&dir, relative).map_err(|e| e.to_string())?;
        if bytes.len() as u64 > MAX_PROFILE_BYTES {
            return Err(format!("larger than {MAX_PROFILE_BYTES} bytes"));
        }
        seccomp_profile::parse(&bytes).map_err(|e| e.to_string())
    };
    match read() {
        Ok(profile) => Seccomp::Profile(Box::new(profile)),
        Err(reason) => {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(s),
                        format!(
                            "{what}: seccomp profile `{}`: {reason}",
                            path.display()
                        ),
                    )
                    .with_help("write \"unconfined\" or the path of a profile in Docker's JSON format, relative to this file (e.g. \"seccomp.json\")"),
            );
            Seccomp::Default
        }
    }
}

/// A regular file below `dir`, every step of the path kept inside it (links included), at
/// most one byte more than [`MAX_PROFILE_BYTES`]; never blocks on a FIFO.
fn read_confined(dir: &std::path::Path, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use rustix::fs::OFlags;
    let root = std::fs::File::open(dir)?;
    let fd = crate::fsutil::open_in_root(&root, path, OFlags::RDONLY | OFlags::NONBLOCK)?;
    let file = std::fs::File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_PROFILE_BYTES + 1),
        &mut bytes,
    )?;
    Ok(bytes)
}

/// A sysctl name as the kernel spells its /proc/sys path: dotted words.
fn well_formed_sysctl(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

fn resolve_sysctls(
    raw: &RawContainer,
    network: &ContainerNetwork,
    report: &mut Report,
) -> BTreeMap<String, String> {
    let what = report.what();
    let mut sysctls = BTreeMap::new();
    let own_netns = network.is_own();
    for (name, value) in &raw.sysctls {
        let key = name.get_ref();
        if !well_formed_sysctl(key) {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(name),
                        format!("{what}: `{key}` is not a sysctl name"),
                    )
                    .with_help("write the dotted name, e.g. \"net.core.somaxconn\""),
            );
            continue;
        }
        match sysctl_scope(key) {
            Err(reason) => {
                report.push(
                    report
                        .diag(
                            Code::InvalidValue,
                            span(name),
                            format!("{what}: sysctl `{key}` cannot be set in a container: {reason}"),
                        )
                        .with_help("containers may set net.* (with a network namespace of their own), kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and kernel.domainname; set host-wide ones on the host (/etc/sysctl.d)"),
                );
                continue;
            }
            Ok(SysctlScope::Ipc) if raw.ipc.is_some() => {
                let owner = raw
                    .ipc
                    .as_ref()
                    .map(|i| i.get_ref().0.0.clone())
                    .unwrap_or_default();
                report.push(
                    report
                        .diag(
                            Code::Conflict,
                            span(name),
                            format!(
                                "{what}: sysctl `{key}` needs the container's own IPC namespace; it shares `{owner}`'s"
                            ),
                        )
                        .with_help(format!("set it on `{owner}`, whose namespace it is")),
                );
                continue;
            }
            Ok(SysctlScope::Net) if !own_netns => {
                let d = match network {
                    ContainerNetwork::Container(owner) => report
                        .diag(
                            Code::Conflict,
                            span(name),
                            format!(
                                "{what}: sysctl `{key}` needs the container's own network namespace; it shares `{owner}`'s"
                            ),
                        )
                        .with_help(format!("set it on `{owner}`, whose namespace it is")),
                    _ => report
                        .diag(
                            Code::Conflict,
                            span(name),
                            format!(
                                "{what}: sysctl `{key}` needs the container's own network namespace; in the host's it would change the host"
                            ),
                        )
                        .with_help("drop `network = \"host\"`, or set it on the host (/etc/sysctl.d)"),
                };
                report.push(d);
                continue;
            }
            Ok(_) => {}
        }
        let text = value.get_ref().clone().into_string();
        if text.is_empty() || text.contains(['\n', '\0']) {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(value),
                        format!("{what}: sysctl `{key}` needs a value on one line"),
                    )
                    .with_help("write e.g. \"1024\""),
            );
            continue;
        }
        sysctls.insert(key.clone(), text);
    }
    sysctls
}

/// The hard limit this host puts on a resource (None: unknown name or unlimited).
fn host_hard_limit(name: &str) -> Option<u64> {
    use rustix::process::{Resource, getrlimit};
    let resource = match name {
        "as" => Resource::As,
        "core" => Resource::Core,
        "cpu" => Resource::Cpu,
        "data" => Resource::Data,
        "fsize" => Resource::Fsize,
        "locks" => Resource::Locks,
        "memlock" => Resource::Memlock,
        "msgqueue" => Resource::Msgqueue,
        "nice" => Resource::Nice,
        "nofile" => Resource::Nofile,
        "nproc" => Resource::Nproc,
        "rss" => Resource::Rss,
        "rtprio" => Resource::Rtprio,
        "rttime" => Resource::Rttime,
        "sigpending" => Resource::Sigpending,
        "stack" => Resource::Stack,
        _ => return None,
    };
    getrlimit(resource).maximum
}

fn limit_value(n: i64) -> Option<u64> {
    match n {
        -1 => Some(UNLIMITED),
        n => u64::try_from(n).ok(),
    }
}

fn show(v: u64) -> String {
    if v == UNLIMITED {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

fn resolve_ulimits(raw: &RawContainer, report: &mut Report) -> BTreeMap<String, Ulimit> {
    let what = report.what();
    let mut ulimits = BTreeMap::new();
    for (name, value) in &raw.ulimits {
        let key = name.get_ref();
        if !ULIMIT_NAMES.contains(&key.as_str()) {
            let help = match crate::spec::loader::suggest(key, ULIMIT_NAMES.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? "),
                None => String::new(),
            } + &format!("limits are {}", ULIMIT_NAMES.join(", "));
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(name),
                        format!("{what}: unknown ulimit `{key}`"),
                    )
                    .with_help(help),
            );
            continue;
        }
        let (soft, hard) = match *value.get_ref() {
            RawUlimit::Both(n) => (n, n),
            RawUlimit::Pair { soft, hard } => (soft, hard),
        };
        let (Some(soft), Some(hard)) = (limit_value(soft), limit_value(hard)) else {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(value),
                        format!(
                            "{what}: ulimit `{key}` must be a number from 0, or -1 for unlimited"
                        ),
                    )
                    .with_help(
                        "write e.g. `nofile = 1024` or `nofile = { soft = 1024, hard = 2048 }`",
                    ),
            );
            continue;
        };
        if soft > hard {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(value),
                        format!(
                            "{what}: ulimit `{key}` has a soft limit ({}) above its hard limit ({})",
                            show(soft),
                            show(hard)
                        ),
                    )
                    .with_help("the soft limit is at most the hard one"),
            );
            continue;
        }
        if let Some(host) = host_hard_limit(key)
            && hard > host
        {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(value),
                        format!(
                            "{what}: ulimit `{key}` ({}) is above this host's hard limit ({host})",
                            show(hard)
                        ),
                    )
                    .with_help(format!(
                        "write at most {host}, or raise the host's limit (the agent's LimitNOFILE= and friends in its unit)"
                    )),
            );
            continue;
        }
        ulimits.insert(key.clone(), Ulimit { soft, hard });
    }
    ulimits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_names() {
        assert!(well_formed_sysctl("net.ipv4.ip_unprivileged_port_start"));
        assert!(well_formed_sysctl("fs.mqueue.msg_max"));
        assert!(!well_formed_sysctl("net/core/somaxconn"));
        assert!(!well_formed_sysctl("net..core"));
        assert!(!well_formed_sysctl(""));
        assert!(!well_formed_sysctl("net.core.*"));
    }

    #[test]
    fn limit_values() {
        assert_eq!(limit_value(-1), Some(UNLIMITED));
        assert_eq!(limit_value(0), Some(0));
        assert_eq!(limit_value(-2), None);
        assert_eq!(show(UNLIMITED), "unlimited");
    }
}
