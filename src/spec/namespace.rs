//! The namespace keys as written: `network = "host" | "none" | "container:NAME"`, and
//! `pid` / `ipc = "container:NAME"` (joining another container's namespace, as a sidecar
//! does in a pod). Which container may be joined is checked later, against the others.

use std::fmt;
use std::str::FromStr;

use super::value::{Hint, string_value};

const CONTAINER_PREFIX: &str = "container:";

/// `network` as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum NetworkMode {
    Host,
    None,
    /// The network namespace of the named container of the desired state.
    Container(String),
}

/// `pid` or `ipc` as written: only another container's namespace can be joined.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct JoinedNamespace(pub String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NamespaceError {
    #[error("unknown network mode `{0}`")]
    UnknownNetwork(String),
    #[error("`{0}` names no container")]
    NoContainer(String),
    #[error("sharing the host's {0} namespace is not supported")]
    Host(&'static str),
    #[error("unknown {kind} namespace mode `{text}`")]
    Unknown { kind: &'static str, text: String },
}

impl Hint for NamespaceError {
    fn help(&self) -> Option<String> {
        Some(match self {
            NamespaceError::UnknownNetwork(_) => "write \"host\", \"none\" or \"container:NAME\" (another container's network), or join bridge networks with `networks = [\"NAME\"]`".into(),
            NamespaceError::NoContainer(_) => "write \"container:NAME\" with the name of a `[container.NAME]` entry".into(),
            NamespaceError::Host(kind) => format!(
                "in the host's {kind} namespace a container could {}; leave `{kind}` out for a namespace of its own, or write \"container:NAME\" to share another container's",
                if *kind == "pid" {
                    "see and signal the host's processes"
                } else {
                    "read and change the host's shared memory, semaphores and message queues"
                }
            ),
            NamespaceError::Unknown { .. } => "write \"container:NAME\" to share another container's namespace, or leave the key out for a namespace of its own".into(),
        })
    }
}

fn container_name(text: &str) -> Option<Result<String, NamespaceError>> {
    let name = text.strip_prefix(CONTAINER_PREFIX)?;
    Some(if name.is_empty() {
        Err(NamespaceError::NoContainer(text.into()))
    } else {
        Ok(name.to_string())
    })
}

impl FromStr for NetworkMode {
    type Err = NamespaceError;
    fn from_str(s: &str) -> Result<NetworkMode, NamespaceError> {
        match s {
            "host" => Ok(NetworkMode::Host),
            "none" => Ok(NetworkMode::None),
            _ => match container_name(s) {
                Some(name) => name.map(NetworkMode::Container),
                None => Err(NamespaceError::UnknownNetwork(s.into())),
            },
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Container(name) => write!(f, "{CONTAINER_PREFIX}{name}"),
        }
    }
}

impl JoinedNamespace {
    /// Parse `pid` or `ipc` (`kind`).
    pub(crate) fn parse(kind: &'static str, s: &str) -> Result<JoinedNamespace, NamespaceError> {
        match container_name(s) {
            Some(name) => name.map(JoinedNamespace),
            None if s == "host" => Err(NamespaceError::Host(kind)),
            None => Err(NamespaceError::Unknown {
                kind,
                text: s.into(),
            }),
        }
    }
}

impl fmt::Display for JoinedNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{CONTAINER_PREFIX}{}", self.0)
    }
}

string_value!(
    NetworkMode,
    expecting = "\"host\", \"none\" or \"container:NAME\"",
    schema = "\"host\" (the host's network namespace), \"none\" (only loopback) or \"container:NAME\" (the network namespace of container NAME: same addresses, ports and loopback, as a sidecar in a pod)",
    pattern = "^(host|none|container:.+)$"
);

/// `pid = "container:NAME"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidMode(pub JoinedNamespace);
/// `ipc = "container:NAME"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IpcMode(pub JoinedNamespace);

impl FromStr for PidMode {
    type Err = NamespaceError;
    fn from_str(s: &str) -> Result<PidMode, NamespaceError> {
        JoinedNamespace::parse("pid", s).map(PidMode)
    }
}
impl FromStr for IpcMode {
    type Err = NamespaceError;
    fn from_str(s: &str) -> Result<IpcMode, NamespaceError> {
        JoinedNamespace::parse("ipc", s).map(IpcMode)
    }
}
impl fmt::Display for PidMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for IpcMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_value!(
    PidMode,
    expecting = "\"container:NAME\"",
    schema = "\"container:NAME\": share the process namespace of container NAME (its processes see each other; the namespace ends with NAME's init)",
    pattern = "^container:.+$"
);
string_value!(
    IpcMode,
    expecting = "\"container:NAME\"",
    schema = "\"container:NAME\": share the IPC namespace of container NAME (System V shared memory, semaphores, message queues, POSIX message queues)",
    pattern = "^container:.+$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_parse_and_print_back() {
        for text in ["host", "none", "container:web", "container:a-b_c"] {
            let mode: NetworkMode = text.parse().expect(text);
            assert_eq!(mode.to_string(), text);
        }
        assert_eq!(
            "container:web".parse::<NetworkMode>(),
            Ok(NetworkMode::Container("web".into()))
        );
    }

    #[test]
    fn network_mode_errors_say_what_to_write() {
        let e = "bridge".parse::<NetworkMode>().expect_err("bridge");
        assert_eq!(e.to_string(), "unknown network mode `bridge`");
        assert!(e.help().is_some_and(|h| h.contains("networks = [")));
        let e = "container:".parse::<NetworkMode>().expect_err("empty");
        assert_eq!(e, NamespaceError::NoContainer("container:".into()));
        assert!("Host".parse::<NetworkMode>().is_err());
        assert!("service:web".parse::<NetworkMode>().is_err());
    }

    #[test]
    fn pid_and_ipc_join_containers_only() {
        assert_eq!(
            "container:web".parse::<PidMode>(),
            Ok(PidMode(JoinedNamespace("web".into())))
        );
        assert_eq!(
            "container:db".parse::<IpcMode>().map(|m| m.to_string()),
            Ok("container:db".into())
        );
        let e = "host".parse::<PidMode>().expect_err("host");
        assert_eq!(e, NamespaceError::Host("pid"));
        assert!(e.help().is_some_and(|h| h.contains("processes")));
        let e = "host".parse::<IpcMode>().expect_err("host");
        assert!(e.help().is_some_and(|h| h.contains("shared memory")));
        for bad in ["private", "shareable", "container:", ""] {
            assert!(bad.parse::<IpcMode>().is_err(), "{bad}");
            assert!(bad.parse::<PidMode>().is_err(), "{bad}");
        }
    }
}
