//! The container keys that reach into the kernel: devices and their cgroup rules, sysctls,
//! ulimits, the init process, the size of /dev/shm and the seccomp profile. Their resolved form sits flattened in
//! [`super::model::Container`], every key left out of the hash when unset, so containers made
//! before these keys existed keep their hash.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::device::{DeviceMapping, DeviceRule};
use super::seccomp_profile::Seccomp;
use super::size::ByteSize;

/// `RLIM_INFINITY`: what `-1` (or "unlimited") means in `ulimits`.
pub const UNLIMITED: u64 = u64::MAX;

/// The resolved keys; all empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuntimeKeys {
    /// Sorted by container path; no two share one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    /// Sorted, without duplicates: every rule allows, so order means nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<DeviceRule>,
    /// Only sysctls of the container's own namespaces (see [`sysctl_scope`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// By Compose's name ("nofile", "nproc", …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Run a minimal init (tini) as pid 1 that reaps zombies and forwards signals.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// Size of /dev/shm (default 64MiB, as Docker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<ByteSize>,
    /// The syscall filter: berth's default, none, or a profile file's content.
    #[serde(skip_serializing_if = "Seccomp::is_default")]
    pub seccomp: Seccomp,
    /// Everything the host can give (Docker's --privileged).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
}

/// A resource limit; [`UNLIMITED`] for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ulimit {
    pub soft: u64,
    pub hard: u64,
}

/// Compose's ulimit names and the `RLIMIT_*` resource each stands for.
pub const ULIMIT_NAMES: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Which namespace a sysctl belongs to, or why no container may set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlScope {
    /// The IPC namespace: every berth container has its own.
    Ipc,
    /// The UTS namespace (kernel.domainname).
    Uts,
    /// The network namespace: only for a container with its own.
    Net,
}

/// The namespace `name` belongs to (runc's and Docker's list), or the reason it is refused.
pub fn sysctl_scope(name: &str) -> Result<SysctlScope, &'static str> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&name) || name.starts_with("fs.mqueue.") {
        return Ok(SysctlScope::Ipc);
    }
    if name == "kernel.domainname" {
        return Ok(SysctlScope::Uts);
    }
    if name == "kernel.hostname" {
        return Err("the hostname is set with the `hostname` key");
    }
    if name.starts_with("net.") {
        return Ok(SysctlScope::Net);
    }
    Err("it is not namespaced: setting it would change the whole host, not just the container")
}

/// `ulimits.NAME`: a number for both limits, or a table of both.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a number (-1 for unlimited) or a table { soft = …, hard = … }"
)]
#[schemars(rename = "Ulimit")]
pub(crate) enum RawUlimit {
    /// The soft and hard limit (-1: unlimited).
    Both(i64),
    /// `{ soft = 1024, hard = 2048 }`
    Pair { soft: i64, hard: i64 },
}

/// A sysctl's value: written as a string or a number.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a string or a number")]
#[schemars(rename = "SysctlValue")]
pub(crate) enum RawSysctlValue {
    Text(String),
    Number(i64),
}

impl RawSysctlValue {
    pub(crate) fn into_string(self) -> String {
        match self {
            RawSysctlValue::Text(s) => s,
            RawSysctlValue::Number(n) => n.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_scopes() {
        assert_eq!(sysctl_scope("net.core.somaxconn"), Ok(SysctlScope::Net));
        assert_eq!(sysctl_scope("kernel.shmmax"), Ok(SysctlScope::Ipc));
        assert_eq!(sysctl_scope("fs.mqueue.msg_max"), Ok(SysctlScope::Ipc));
        assert_eq!(sysctl_scope("kernel.domainname"), Ok(SysctlScope::Uts));
        assert!(sysctl_scope("kernel.hostname").is_err());
        assert!(sysctl_scope("vm.swappiness").is_err());
        assert!(sysctl_scope("kernel.pid_max").is_err());
        assert!(sysctl_scope("fs.file-max").is_err());
    }
}
