//! Bridge networks: a Linux bridge per `[network.*]` entry, a veth pair per container and
//! network, address leases under the state root, berth's nftables table (published ports,
//! masquerade, isolation) and the names in each container's /etc/hosts.
//!
//! Who calls what:
//! - the reconciler: `ensure` (create, update in place, repair a deleted bridge), `remove`,
//!   `observe`, `repair_rules` (a flushed table);
//! - the monitor, between the engine's create and start: `attach` (lease, veths, addresses,
//!   routes, rules, hosts files);
//! - the runtime's stop and remove: `detach` (rules no longer point at a stopped container)
//!   and `release` (its addresses go back).
//!
//! Every change holds one lock (`networks/.lock`) and ends by rebuilding the whole nftables
//! table from the records, the leases and the veths that exist: the table is a function of
//! that state, so any sequence of changes, crashes included, converges to the same rules.
//!
//! `Networks` is the facade; the work is in `bridge` (bridges and records), `lease`
//! (addresses), `attach` (plugging containers in and out) and `ports` (who has a published
//! port, and the rules input made of that). They import each other one way only: `attach`
//! uses the other three, `bridge` and `ports` use `lease`.

mod attach;
mod bridge;
pub mod dns;
pub(crate) mod firewall;
pub(crate) mod hosts;
pub(crate) mod ipam;
mod lease;
pub(crate) mod link;
mod ports;
pub mod record;
pub(crate) mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use self::link::{LinkError, Netlink};
use self::record::{Claim, Lease, NetworkPaths, NetworkRecord};
use crate::fsutil::{self, FsError, io_err};
use crate::spec::model::Network;
use crate::spec::port::PortMapping;
use crate::state::events::{Action, Event, EventLog, Subject};
use crate::state::layout::Layout;
use crate::state::network::{Attachment, ObservedNetworks};
use crate::state::record::RecordError;

/// Bridges are `berth0`, `berth1`, …; host-side veths `berthv` and 9 hex digits.
const BRIDGE_PREFIX: &str = "berth";
const VETH_PREFIX: &str = "berthv";
/// Bridges tried before giving up on finding a free name.
const MAX_BRIDGES: u32 = 4096;
/// How long a change waits for another one (a start's attach is a few milliseconds).
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    #[error("network {network}: {source}")]
    Ipam {
        network: String,
        source: ipam::IpamError,
    },
    #[error(
        "network {network} does not exist; declare it in a [network.{network}] entry (the agent creates it)"
    )]
    Missing { network: String },
    #[error("network {network} is used by {containers:?}; remove those containers first")]
    InUse {
        network: String,
        containers: Vec<String>,
    },
    #[error("host port {port} is already published by container {holder}")]
    PortTaken { port: String, holder: String },
    #[error("container {id} publishes no port on any network")]
    NotPublishing { id: String },
    #[error("network {network}: subnet {subnet} overlaps the host's route to {route}{}; choose a subnet nothing else on this host uses", via.as_deref().map(|v| format!(" via {v}")).unwrap_or_default())]
    SubnetInUse {
        network: String,
        subnet: ipnet::Ipv4Net,
        route: ipnet::Ipv4Net,
        via: Option<String>,
    },
    #[error("no free bridge name {BRIDGE_PREFIX}0..{BRIDGE_PREFIX}{MAX_BRIDGES}")]
    NoBridgeName,
    #[error("the network lock {} is held by another operation for {}s; try again", path.display(), LOCK_TIMEOUT.as_secs())]
    Busy { path: PathBuf },
    #[error("setting {what}: {source}")]
    Sysctl {
        what: String,
        source: std::io::Error,
    },
}

/// What `attach` needs of a container.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Joiner<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub hostname: &'a str,
    pub attachments: &'a [Attachment],
    pub ports: &'a [PortMapping],
    /// Made for a start-first update: it may start beside the running container of its name
    /// that publishes the same ports (it takes them over later, through `take_over`).
    pub start_first: bool,
    /// Made by hand (`berth run`): never a predecessor or successor of the reconciler's.
    pub manual: bool,
}

#[derive(Debug)]
pub struct Networks {
    paths: NetworkPaths,
    layout: Layout,
}

struct NetLock {
    _file: std::fs::File,
}

impl Networks {
    pub fn new(layout: &Layout) -> Networks {
        Networks {
            paths: NetworkPaths::new(&layout.state_root),
            layout: layout.clone(),
        }
    }

    /// The nftables table of this state root.
    fn table(&self) -> &str {
        &self.layout.scope
    }

    /// The host side of a container's veth on a network: derived, so that whether it exists
    /// says whether the container is plugged in.
    fn host_veth(&self, id: &str, network: &str) -> String {
        let hash =
            crate::sha256::hex_digest(format!("{}/{id}/{network}", self.layout.scope).as_bytes());
        format!("{VETH_PREFIX}{}", &hash[..9])
    }

    /// The network `name` as berth created it, if it did.
    pub fn record(&self, name: &str) -> Result<Option<NetworkRecord>, NetworkError> {
        bridge::load(&self.paths, name)
    }

    /// Every network berth made in this state root.
    pub fn records(&self) -> Result<Vec<NetworkRecord>, NetworkError> {
        bridge::load_all(&self.paths)
    }

    fn leases(&self, network: &str) -> Result<Vec<Lease>, NetworkError> {
        lease::read(&self.paths, network)
    }

    /// Create the network, or bring an existing one to `spec` (a new subnet or gateway
    /// moves the bridge's address; `internal` changes only rules), or repair it (a bridge
    /// deleted by hand comes back under its recorded name).
    pub(crate) fn ensure(
        &self,
        name: &str,
        spec: &Network,
        spec_hash: &str,
    ) -> Result<NetworkRecord, NetworkError> {
        let existed = self.record(name).ok().flatten().is_some();
        let record = bridge::ensure(self, name, spec, spec_hash)?;
        if !existed {
            self.record_event(Action::Create, &record);
        }
        Ok(record)
    }

    fn record_event(&self, action: Action, record: &NetworkRecord) {
        let event = Event::now(Subject::Network, action, &record.name)
            .with("name", &record.name)
            .with("driver", "bridge")
            .with("subnet", record.subnet)
            .with("bridge", &record.bridge);
        EventLog::new(&self.layout).append(&event);
    }

    /// Remove a network no container uses any more: its bridge, its leases, its record.
    pub fn remove(&self, name: &str) -> Result<(), NetworkError> {
        let record = self.record(name).ok().flatten();
        bridge::remove(self, name)?;
        if let Some(record) = record {
            self.record_event(Action::Destroy, &record);
        }
        let _lock = self.lock()?;
        dns::clean_up_after_the_last_network(self);
        Ok(())
    }

    /// Plug a created container into its networks: lease its addresses (kept from an earlier
    /// start), create its veths straight into its namespace, address and route them, then
    /// rebuild the rules and the hosts files of everyone on those networks. Called by the
    /// monitor while the container's init waits to be started.
    pub(crate) fn attach(
        &self,
        joiner: &Joiner,
        netns: BorrowedFd<'_>,
    ) -> Result<(), NetworkError> {
        attach::attach(self, joiner, netns)
    }

    /// Switch the published ports of container `id` to it, in one nftables transaction: new
    /// connections go to it, established ones stay where they are (conntrack keeps their
    /// translation), so its predecessor can drain. Idempotent: a container already serving
    /// keeps its claim.
    pub(crate) fn take_over(&self, id: &str) -> Result<Claim, NetworkError> {
        ports::take_over(self, id)
    }

    /// The container's address on its first network, if it has one.
    pub(crate) fn address_of(&self, id: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
        lease::address_of(self, id)
    }

    /// Unplug a stopped container: its veths go (with its namespace they usually already
    /// have) and the rules stop forwarding to it. Its leases stay for its next start.
    pub(crate) fn detach(&self, id: &str) -> Result<(), NetworkError> {
        attach::unplug(self, id, false)
    }

    /// A removed container's addresses go back; the others' hosts files forget it.
    pub(crate) fn release(&self, id: &str) -> Result<(), NetworkError> {
        attach::unplug(self, id, true)
    }

    /// What exists, for the reconciler: records, whether each bridge is intact, who holds
    /// addresses, who has the published ports, and whether the rules are what the state
    /// makes.
    pub(crate) fn observe(&self) -> Result<ObservedNetworks, NetworkError> {
        let records = self.records()?;
        if records.is_empty() {
            // Nothing of ours to look at (and no `nft` to run on every pass of a machine
            // without networks), unless a removal was interrupted: then the table may still
            // name the network, and a repair removes both.
            return Ok(ObservedNetworks {
                records: BTreeMap::new(),
                ports: BTreeMap::new(),
                rules_in_sync: !bridge::interrupted_removals(&self.paths),
                readable: true,
            });
        }
        let netlink = Netlink::open()?;
        let links: BTreeMap<String, link::Link> = netlink
            .links()?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let leases = self.all_leases(&records)?;
        let live = self.owned_veths(links.values());
        let plugged = self.plugged(&live);
        let input = ports::rules_input(self.table(), &records, &leases, &plugged);
        Ok(ObservedNetworks {
            records: bridge::observed(self, &records, &links, &leases),
            ports: ports::port_holds(&records, &leases, &plugged),
            // A resolver that died is started again by the same repair.
            rules_in_sync: rules::in_sync(&input)?
                && !bridge::interrupted_removals(&self.paths)
                && dns::in_place(self, &leases),
            readable: true,
        })
    }

    /// Rebuild the rules from the state (drift repair; also after a container stopped by
    /// itself, which leaves its forwards behind until then).
    pub(crate) fn repair_rules(&self) -> Result<(), NetworkError> {
        let _lock = self.lock()?;
        bridge::sweep_interrupted_removals(&self.paths);
        let netlink = Netlink::open()?;
        let state = self.snapshot()?;
        self.sync_locked(&netlink, &state)?;
        dns::repair(self, &state.leases);
        dns::clean_up_after_the_last_network(self);
        Ok(())
    }

    /// Every change holds it, from its first read to its rules.
    fn lock(&self) -> Result<NetLock, NetworkError> {
        fsutil::private_dir(&self.paths.root)?;
        let path = self.paths.lock();
        match fsutil::lock_bounded(&path, LOCK_TIMEOUT, Duration::from_millis(2))? {
            Some(file) => Ok(NetLock { _file: file }),
            None => Err(NetworkError::Busy { path }),
        }
    }

    /// Whether container `id` still exists (its lease is not a leftover).
    fn exists(&self, id: &str) -> bool {
        self.layout.container(id).dir.is_dir()
    }

    fn bridge_alias(&self, network: &str) -> String {
        format!("berth {} network {network}", self.layout.scope)
    }

    fn veth_alias(&self, id: &str, network: &str) -> String {
        format!(
            "berth {} container {id} network {network}",
            self.layout.scope
        )
    }

    fn live_veths(&self, netlink: &Netlink) -> Result<BTreeSet<String>, NetworkError> {
        Ok(self.owned_veths(netlink.links()?.iter()))
    }

    fn owned_veths<'l>(&self, links: impl Iterator<Item = &'l link::Link>) -> BTreeSet<String> {
        let prefix = format!("berth {} container ", self.layout.scope);
        links
            .filter(|l| l.name.starts_with(VETH_PREFIX))
            .filter(|l| l.alias.as_deref().is_some_and(|a| a.starts_with(&prefix)))
            .map(|l| l.name.clone())
            .collect()
    }

    /// Whether a lease's container is plugged in on its network: its host veth is `live`.
    fn plugged<'s>(&'s self, live: &'s BTreeSet<String>) -> impl Fn(&Lease) -> bool + 's {
        move |l| live.contains(&self.host_veth(&l.container, &l.network))
    }

    fn all_leases(&self, records: &[NetworkRecord]) -> Result<Vec<Lease>, NetworkError> {
        let mut out = Vec::new();
        for r in records {
            out.extend(self.leases(&r.name)?);
        }
        Ok(out)
    }

    fn snapshot(&self) -> Result<Snapshot, NetworkError> {
        let records = self.records()?;
        let leases = self.all_leases(&records)?;
        Ok(Snapshot { records, leases })
    }

    /// Make the kernel's table what the state says (under the lock).
    fn sync_locked(&self, netlink: &Netlink, state: &Snapshot) -> Result<(), NetworkError> {
        let live = self.live_veths(netlink)?;
        let input = ports::rules_input(
            self.table(),
            &state.records,
            &state.leases,
            &self.plugged(&live),
        );
        if input.bridges.is_empty() && input.forwards.is_empty() {
            rules::remove_table(&input.table)?;
        } else {
            rules::apply(&input)?;
        }
        Ok(())
    }

    /// Rewrite the hosts file of every container holding an address on `networks`.
    fn rewrite_hosts(&self, state: &Snapshot, networks: &[&str]) -> Result<(), NetworkError> {
        let leases: Vec<&Lease> = state
            .leases
            .iter()
            .filter(|l| self.exists(&l.container) && lease::current(&state.records, l))
            .collect();
        let affected: BTreeSet<&str> = leases
            .iter()
            .filter(|l| networks.contains(&l.network.as_str()))
            .map(|l| l.container.as_str())
            .collect();
        for id in affected {
            let Some(mine) = leases.iter().find(|l| l.container == id) else {
                continue;
            };
            let my_networks: BTreeSet<&str> = leases
                .iter()
                .filter(|l| l.container == id)
                .map(|l| l.network.as_str())
                .collect();
            let visible: Vec<Lease> = leases
                .iter()
                .filter(|l| my_networks.contains(l.network.as_str()))
                .map(|l| (*l).clone())
                .collect();
            let entries = hosts::entries_for(id, &mine.hostname, &visible);
            let extra = self.container_dns(id).extra_hosts;
            let text = crate::state::etc::hosts(&mine.hostname, None, &entries, &extra);
            let path = self.layout.container(id).etc().join("hosts");
            hosts::rewrite_in_place(&path, &text).map_err(io_err("rewriting", &path))?;
        }
        Ok(())
    }
}

impl Networks {
    /// The name settings of container `id` (none when its record is unreadable: its hosts
    /// file then lacks only its `extra_hosts` until its next start).
    fn container_dns(&self, id: &str) -> crate::spec::dns::DnsSettings {
        crate::state::record::load::<crate::state::record::ContainerRecord>(
            &self.layout.container(id).record(),
        )
        .ok()
        .flatten()
        .map(|r| r.dns)
        .unwrap_or_default()
    }
}

/// The records and leases, read once after a change, for the rules and the hosts files.
struct Snapshot {
    records: Vec<NetworkRecord>,
    leases: Vec<Lease>,
}

/// Records and leases of one network, `front` on 10.89.1.0/24, for the unit tests.
#[cfg(test)]
mod fixtures {
    use std::net::Ipv4Addr;

    use super::record::{Claim, Lease, NetworkRecord};

    pub(super) fn record() -> NetworkRecord {
        NetworkRecord {
            name: "front".into(),
            spec_hash: String::new(),
            bridge: "berth0".into(),
            subnet: "10.89.1.0/24".parse().expect("subnet"),
            gateway: Ipv4Addr::new(10, 89, 1, 1),
            internal: false,
            created_at: String::new(),
        }
    }

    /// `container`'s lease of 10.89.1.`ip`, publishing `ports`, with claim `seq` if any.
    pub(super) fn lease(container: &str, ip: u8, ports: &[&str], claim: Option<u64>) -> Lease {
        Lease {
            network: "front".into(),
            ip: Ipv4Addr::new(10, 89, 1, ip),
            container: container.into(),
            name: "web".into(),
            hostname: "web".into(),
            aliases: vec![],
            ports: ports.iter().map(|p| p.parse().expect("port")).collect(),
            claim: claim.map(|seq| Claim {
                seq,
                at_ms: 1_000 * seq,
            }),
            manual: false,
        }
    }
}
