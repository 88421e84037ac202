//! What berth keeps about its networks under the state root:
//!
//! ```text
//! <state root>/networks/.lock                 serialises every change to networks and leases
//! <state root>/networks/<name>/network.json   the network as created (bridge, subnet, hash)
//! <state root>/networks/<name>/leases/<ip>    one address held by one container
//! ```
//!
//! A lease is taken at a container's first start and kept across its restarts, so its
//! address is stable (also across agent restarts: nothing here lives in memory); it is
//! released when the container is removed. The file name is the address, so two containers
//! can never hold one address.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::spec::port::PortMapping;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub name: String,
    /// The `[network.*]` entry's spec hash (empty for one made by hand).
    pub spec_hash: String,
    /// `berth<N>`, chosen at creation and kept.
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    /// RFC 3339.
    pub created_at: String,
}

impl crate::state::format::Record for NetworkRecord {
    const KIND: &'static str = "network record";
    const FORMAT: u64 = 1;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub network: String,
    pub ip: Ipv4Addr,
    /// The container's id.
    pub container: String,
    /// Its entry name and aliases: what the other containers of the network resolve.
    pub name: String,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Published ports forwarded to this address (one network of the container carries them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// Its claim on `ports`: of the running containers publishing a port, the one with the
    /// highest claim has it. None: started beside the container serving its ports (a
    /// start-first update), waiting to take them over.
    #[serde(default = "Claim::from_the_start")]
    pub claim: Option<Claim>,
    /// Its container was made by hand (`berth run`): the reconciler never takes its ports.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
}

impl crate::state::format::Record for Lease {
    const KIND: &'static str = "lease";
    const FORMAT: u64 = 1;
}

/// When a container took its published ports: `seq` orders claims (one sequence per state
/// root, under the network lock), `at_ms` is when (a draining predecessor's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Claim {
    pub seq: u64,
    pub at_ms: u64,
}

impl Claim {
    /// Leases written before claims existed served from their start.
    fn from_the_start() -> Option<Claim> {
        Some(Claim { seq: 0, at_ms: 0 })
    }
}

/// Every path under `<state root>/networks`.
#[derive(Debug, Clone)]
pub(crate) struct NetworkPaths {
    pub root: PathBuf,
}

impl NetworkPaths {
    pub(crate) fn new(state_root: &Path) -> NetworkPaths {
        NetworkPaths {
            root: state_root.join("networks"),
        }
    }

    pub(crate) fn lock(&self) -> PathBuf {
        self.root.join(".lock")
    }

    pub(crate) fn dir(&self, network: &str) -> PathBuf {
        self.root.join(network)
    }

    pub(crate) fn record(&self, network: &str) -> PathBuf {
        self.dir(network).join("network.json")
    }

    pub(crate) fn leases(&self, network: &str) -> PathBuf {
        self.dir(network).join("leases")
    }

    pub(crate) fn lease(&self, network: &str, ip: Ipv4Addr) -> PathBuf {
        self.leases(network).join(ip.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(claim: Option<Claim>) -> Lease {
        Lease {
            network: "front".into(),
            ip: Ipv4Addr::new(10, 89, 1, 2),
            container: "web-1".into(),
            name: "web".into(),
            hostname: "web".into(),
            aliases: vec![],
            ports: vec!["8080:80".parse().expect("port")],
            claim,
            manual: false,
        }
    }

    #[test]
    fn leases_from_before_claims_serve_from_the_start() {
        let mut v = serde_json::to_value(lease(Some(Claim {
            seq: 1,
            at_ms: 1_000,
        })))
        .expect("json");
        v.as_object_mut().expect("object").remove("claim");
        let l: Lease = serde_json::from_value(v).expect("lease");
        assert_eq!(l.claim, Some(Claim { seq: 0, at_ms: 0 }));
        // A standby lease says so explicitly.
        let standby = serde_json::to_string(&lease(None)).expect("json");
        assert!(standby.contains("\"claim\":null"), "{standby}");
        let back: Lease = serde_json::from_str(&standby).expect("back");
        assert_eq!(back.claim, None);
    }
}
