//! Linux capability names, as written in `cap_add` / `cap_drop`.

use std::fmt;
use std::str::FromStr;

use super::value::{Hint, string_value};

/// Every capability Linux defines (linux/capability.h, up to CAP_CHECKPOINT_RESTORE).
pub(crate) const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The default set (podman's: Docker's minus NET_RAW, MKNOD and AUDIT_WRITE).
pub(crate) const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// A capability name without the `CAP_` prefix, or `ALL`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    All,
    Named(&'static str),
}

#[derive(Debug, thiserror::Error)]
#[error("unknown capability `{text}`")]
pub struct CapabilityError {
    text: String,
}

impl Hint for CapabilityError {
    fn help(&self) -> Option<String> {
        let upper = self.text.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if let Some(s) = crate::spec::loader::suggest(name, ALL_CAPABILITIES.iter().copied()) {
            return Some(format!("did you mean \"{s}\"?"));
        }
        Some(format!(
            "write a Linux capability name such as \"NET_ADMIN\" or \"CAP_SYS_TIME\", or \"ALL\"; known: {}",
            ALL_CAPABILITIES.join(", ")
        ))
    }
}

impl FromStr for Capability {
    type Err = CapabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if name == "ALL" {
            return Ok(Capability::All);
        }
        ALL_CAPABILITIES
            .iter()
            .find(|c| **c == name)
            .map(|c| Capability::Named(c))
            .ok_or_else(|| CapabilityError { text: s.into() })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::All => f.write_str("ALL"),
            Capability::Named(n) => write!(f, "CAP_{n}"),
        }
    }
}

string_value!(
    Capability,
    expecting = "a capability name such as \"NET_ADMIN\"",
    schema = "A Linux capability name, with or without the CAP_ prefix (\"NET_ADMIN\", \"CAP_SYS_TIME\"), or \"ALL\"."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_prefix_and_case_variants() {
        assert_eq!(
            "NET_ADMIN".parse::<Capability>().unwrap(),
            Capability::Named("NET_ADMIN")
        );
        assert_eq!(
            "cap_net_admin".parse::<Capability>().unwrap(),
            Capability::Named("NET_ADMIN")
        );
        assert_eq!("all".parse::<Capability>().unwrap(), Capability::All);
        assert_eq!(Capability::Named("KILL").to_string(), "CAP_KILL");
    }

    #[test]
    fn rejects_unknown() {
        assert!("NET_FOO".parse::<Capability>().is_err());
        assert!("".parse::<Capability>().is_err());
    }

    #[test]
    fn default_set_is_a_subset_of_all() {
        for c in DEFAULT_CAPABILITIES {
            assert!(ALL_CAPABILITIES.contains(c));
        }
        assert_eq!(DEFAULT_CAPABILITIES.len(), 11);
    }
}
