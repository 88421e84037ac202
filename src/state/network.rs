//! What the rest of berth knows of networks: how a container joins one (recorded in its
//! container record) and what the reconciler observes of them. Plain data; the network
//! driver (`network`) makes and reads them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// One network a container joins, as recorded at its creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    /// A static address from the entry; otherwise one is leased at the first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// Networks as the reconciler sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedNetworks {
    pub records: BTreeMap<String, ObservedNetwork>,
    /// Per plugged-in container that publishes ports: who has them.
    pub ports: BTreeMap<String, PortHold>,
    /// berth's nftables table is what its state makes.
    pub rules_in_sync: bool,
    /// False when the networks could not be observed: no network step is planned then.
    pub readable: bool,
}

impl Default for ObservedNetworks {
    fn default() -> Self {
        ObservedNetworks {
            records: BTreeMap::new(),
            ports: BTreeMap::new(),
            rules_in_sync: true,
            readable: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedNetwork {
    pub spec_hash: String,
    pub bridge: String,
    /// The bridge exists and is berth's.
    pub bridge_ok: bool,
    /// Existing containers holding an address on it.
    pub holders: BTreeSet<String>,
}

/// Whether a plugged-in container's published ports are forwarded to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "ports", rename_all = "lowercase")]
pub enum PortHold {
    /// Started beside the container serving its ports; not forwarded to.
    Standby,
    /// Forwarded to since `since_ms` (its claim is the highest of the running containers
    /// publishing its ports).
    Serving { since_ms: u64 },
    /// Another running container took its ports over at `since_ms`: it drains.
    Superseded { since_ms: u64 },
    /// Not plugged in (stopped); `claimed`: it had its ports when it stopped, or would take
    /// them back at its next start.
    Down { claimed: bool },
}
