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

pub mod hosts;
pub mod ipam;
pub mod link;
pub mod record;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use self::link::{LinkError, Netlink};
use self::record::{Claim, Lease, NetworkPaths, NetworkRecord};
use self::rules::{BridgeRules, Forward, RulesInput};
use crate::fsutil::{self, FsError, io_err};
use crate::spec::model::Network;
use crate::spec::port::PortMapping;
use crate::state::layout::Layout;
use crate::state::network::{Attachment, ObservedNetwork, ObservedNetworks, PortHold};
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
pub struct Joiner<'a> {
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

    /// Whether container `id` still exists (its lease is not a leftover).
    fn exists(&self, id: &str) -> bool {
        self.layout.container(id).dir.is_dir()
    }

    /// The nftables table of this state root.
    pub fn table(&self) -> &str {
        &self.layout.scope
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

    /// The host side of a container's veth on a network: derived, so that whether it exists
    /// says whether the container is plugged in.
    pub fn host_veth(&self, id: &str, network: &str) -> String {
        let hash =
            crate::sha256::hex_digest(format!("{}/{id}/{network}", self.layout.scope).as_bytes());
        format!("{VETH_PREFIX}{}", &hash[..9])
    }

    fn lock(&self) -> Result<NetLock, NetworkError> {
        fsutil::private_dir(&self.paths.root)?;
        let path = self.paths.lock();
        match fsutil::lock_bounded(&path, LOCK_TIMEOUT, Duration::from_millis(2))? {
            Some(file) => Ok(NetLock { _file: file }),
            None => Err(NetworkError::Busy { path }),
        }
    }

    /// Leases of containers that no longer exist (a crash between a removal and its release).
    fn sweep_stale_leases(&self, network: &str) -> Result<(), NetworkError> {
        for lease in self.leases(network)? {
            if !self.exists(&lease.container) {
                remove_file_if_exists(&self.paths.lease(network, lease.ip))?;
            }
        }
        Ok(())
    }

    fn interrupted_removals(&self) -> bool {
        std::fs::read_dir(&self.paths.root).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with('.') && name.contains(".removing.")
            })
        })
    }

    /// Directories of removals a crash interrupted (renamed away, not yet deleted): under the
    /// lock, none is in progress.
    fn sweep_locked(&self) {
        let Ok(entries) = std::fs::read_dir(&self.paths.root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".removing.") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    pub fn record(&self, name: &str) -> Result<Option<NetworkRecord>, NetworkError> {
        Ok(crate::state::record::load(&self.paths.record(name))?)
    }

    /// Every network berth made in this state root.
    pub fn records(&self) -> Result<Vec<NetworkRecord>, NetworkError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.paths.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("listing", &self.paths.root)(e).into()),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &self.paths.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(record) = self.record(&name)? {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn leases(&self, network: &str) -> Result<Vec<Lease>, NetworkError> {
        let dir = self.paths.leases(network);
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("listing", &dir)(e).into()),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.parse::<Ipv4Addr>().is_err() {
                continue; // a temporary file of an interrupted write
            }
            match crate::state::record::load::<Lease>(&entry.path()) {
                Ok(Some(lease)) => out.push(lease),
                Ok(None) => {}
                // A lease damaged by a power loss (leases are not flushed) costs its holder
                // its address, not every network operation: the holder leases again at its
                // next start, and the damaged file is replaced or removed then.
                Err(e) => tracing::warn!(network, "ignoring a lease: {e}"),
            }
        }
        out.sort_by_key(|l| l.ip);
        Ok(out)
    }

    fn all_leases(&self, records: &[NetworkRecord]) -> Result<Vec<Lease>, NetworkError> {
        let mut out = Vec::new();
        for r in records {
            out.extend(self.leases(&r.name)?);
        }
        Ok(out)
    }

    /// Create the network, or bring an existing one to `spec` (a new subnet or gateway
    /// moves the bridge's address; `internal` changes only rules), or repair it (a bridge
    /// deleted by hand comes back under its recorded name).
    pub fn ensure(
        &self,
        name: &str,
        spec: &Network,
        spec_hash: &str,
    ) -> Result<NetworkRecord, NetworkError> {
        let _lock = self.lock()?;
        self.sweep_locked();
        let netlink = Netlink::open()?;
        let existing = self.record(name)?;
        let mut record = NetworkRecord {
            name: name.to_string(),
            spec_hash: spec_hash.to_string(),
            bridge: existing
                .as_ref()
                .map(|r| r.bridge.clone())
                .unwrap_or_default(),
            subnet: spec.subnet,
            gateway: spec.gateway,
            internal: spec.internal,
            created_at: existing.as_ref().map_or_else(
                || humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                |r| r.created_at.clone(),
            ),
        };
        if existing.as_ref().is_none_or(|r| r.subnet != spec.subnet) {
            self.check_subnet_free(&netlink, name, spec.subnet, existing.as_ref())?;
        }
        fsutil::private_dir(&self.paths.dir(name))?;
        self.sweep_stale_leases(name)?;
        if record.bridge.is_empty() {
            record.bridge = self.new_bridge(&netlink, &record)?;
        } else {
            self.save(&record)?;
            match self.plug_bridge(&netlink, &record) {
                Ok(()) => {}
                // The recorded name was never ours (a crash before the bridge was made, and
                // another state root took the name) or is someone else's by now: a new one.
                Err(NetworkError::Link(LinkError::NotOurs { .. })) => {
                    record.bridge = self.new_bridge(&netlink, &record)?;
                }
                Err(e) => return Err(e),
            }
        }
        self.sync_locked(&netlink, &self.snapshot()?)?;
        Ok(record)
    }

    fn save(&self, record: &NetworkRecord) -> Result<(), NetworkError> {
        let path = self.paths.record(&record.name);
        fsutil::write_atomic(&path, &crate::state::record::encode(&path, record)?)?;
        Ok(())
    }

    /// A new subnet must not overlap a route of the host (another network of the machine, a
    /// VPN, another state root's bridge): its connected route would take that traffic. The
    /// network's own bridge (a subnet change in place) does not count.
    fn check_subnet_free(
        &self,
        netlink: &Netlink,
        name: &str,
        subnet: ipnet::Ipv4Net,
        existing: Option<&NetworkRecord>,
    ) -> Result<(), NetworkError> {
        let links = netlink.links()?;
        let own = existing.and_then(|r| {
            links
                .iter()
                .find(|l| {
                    l.name == r.bridge && l.alias.as_deref() == Some(&self.bridge_alias(name))
                })
                .map(|l| l.index)
        });
        for (route, oif) in netlink.routes()? {
            if oif.is_some() && oif == own {
                continue;
            }
            if route.contains(&subnet.network()) || subnet.contains(&route.network()) {
                return Err(NetworkError::SubnetInUse {
                    network: name.to_string(),
                    subnet,
                    route,
                    via: oif
                        .and_then(|i| links.iter().find(|l| l.index == i).map(|l| l.name.clone())),
                });
            }
        }
        Ok(())
    }

    /// Pick the lowest free `berth<N>`, record it before creating it (a crash in between
    /// leaves a record the next `ensure` completes), and create it. A name another state
    /// root takes at the same moment is skipped.
    fn new_bridge(
        &self,
        netlink: &Netlink,
        record: &NetworkRecord,
    ) -> Result<String, NetworkError> {
        let taken: BTreeSet<String> = netlink.links()?.into_iter().map(|l| l.name).collect();
        let ours: BTreeSet<String> = self.records()?.into_iter().map(|r| r.bridge).collect();
        for n in 0..MAX_BRIDGES {
            let bridge = format!("{BRIDGE_PREFIX}{n}");
            if taken.contains(&bridge) || ours.contains(&bridge) {
                continue;
            }
            let mut candidate = record.clone();
            candidate.bridge = bridge.clone();
            self.save(&candidate)?;
            crate::failpoint::hit("network-create-after-record");
            match self.plug_bridge(netlink, &candidate) {
                Ok(()) => return Ok(bridge),
                Err(NetworkError::Link(LinkError::NotOurs { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(NetworkError::NoBridgeName)
    }

    /// The bridge exists with its address, and the kernel settings it needs are set. A bridge
    /// made again (deleted by hand) gets the running containers' veths back: deleting a
    /// bridge sets its ports free.
    fn plug_bridge(&self, netlink: &Netlink, record: &NetworkRecord) -> Result<(), NetworkError> {
        let created = netlink.ensure_bridge(
            &record.bridge,
            &self.bridge_alias(&record.name),
            record.gateway,
            record.subnet.prefix_len(),
        )?;
        if created {
            let live = self.live_veths(netlink)?;
            for lease in self.leases(&record.name)? {
                let veth = self.host_veth(&lease.container, &record.name);
                if live.contains(&veth) {
                    netlink.enslave(&veth, &record.bridge)?;
                }
            }
        }
        // Connections to 127.0.0.1 that the output chain forwards into the bridge keep their
        // loopback source until postrouting masquerades them; without this the kernel drops
        // them as martians. The input chain drops what arrives on the bridge for 127/8.
        link::set_interface_sysctl(&record.bridge, "route_localnet", "1").map_err(|source| {
            NetworkError::Sysctl {
                what: format!("net.ipv4.conf.{}.route_localnet", record.bridge),
                source,
            }
        })?;
        if !record.internal {
            // Outbound traffic and published ports from other hosts are routed.
            link::write_sysctl("/proc/sys/net/ipv4/ip_forward", "1").map_err(|source| {
                NetworkError::Sysctl {
                    what: "net.ipv4.ip_forward".into(),
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// Remove a network no container uses any more: its bridge, its leases, its record.
    pub fn remove(&self, name: &str) -> Result<(), NetworkError> {
        let _lock = self.lock()?;
        self.sweep_locked();
        let netlink = Netlink::open()?;
        let Some(record) = self.record(name)? else {
            return Ok(());
        };
        let users: Vec<String> = self
            .leases(name)?
            .into_iter()
            .filter(|l| self.exists(&l.container))
            .map(|l| l.container)
            .collect();
        if !users.is_empty() {
            return Err(NetworkError::InUse {
                network: name.to_string(),
                containers: users,
            });
        }
        match netlink.link(&record.bridge)? {
            Some(l) if l.alias.as_deref() == Some(self.bridge_alias(name).as_str()) => {
                netlink.delete(&record.bridge)?
            }
            // Someone else's by now (ours was deleted by hand and the name reused): not touched.
            _ => {}
        }
        let dir = self.paths.dir(name);
        let doomed = dir.with_file_name(fsutil::doomed_name(name));
        std::fs::rename(&dir, &doomed).map_err(io_err("renaming", &dir))?;
        crate::failpoint::hit("network-remove-after-rename");
        // Rules first, then the directory: while a `.removing` directory exists the table may
        // still name the network, and `observe` says so.
        self.sync_locked(&netlink, &self.snapshot()?)?;
        std::fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))?;
        Ok(())
    }

    /// Plug a created container into its networks: lease its addresses (kept from an earlier
    /// start), create its veths straight into its namespace, address and route them, then
    /// rebuild the rules and the hosts files of everyone on those networks. Called by the
    /// monitor while the container's init waits to be started.
    pub fn attach(&self, joiner: &Joiner, netns: BorrowedFd<'_>) -> Result<(), NetworkError> {
        if joiner.attachments.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let netlink = Netlink::open()?;
        let mut records = Vec::new();
        for a in joiner.attachments {
            let record = self
                .record(&a.network)?
                .ok_or_else(|| NetworkError::Missing {
                    network: a.network.clone(),
                })?;
            // A bridge deleted by hand is back before anything is plugged into it.
            self.plug_bridge(&netlink, &record)?;
            records.push(record);
        }
        // Published ports go to the address on the first network with outside access.
        let port_network = records.iter().position(|r| !r.internal).unwrap_or(0);
        let links = self.live_veths(&netlink)?;
        // Every lease, read once: for the port check and the next claim.
        let all = self.all_leases(&self.records()?)?;
        let standby = !joiner.ports.is_empty() && self.check_ports(joiner, &links, &all)?;
        let claim = next_claim(&all);
        let mut interfaces = Vec::new();
        for (i, (a, record)) in joiner.attachments.iter().zip(&records).enumerate() {
            let ports = if i == port_network {
                joiner.ports.to_vec()
            } else {
                Vec::new()
            };
            let lease = self.lease(joiner, a, record, ports, (!standby).then_some(claim))?;
            let host = self.host_veth(joiner.id, &a.network);
            // A veth of an earlier start whose namespace lingers: replaced.
            netlink.delete(&host)?;
            let peer = format!("eth{i}");
            netlink.add_veth(
                &host,
                &self.veth_alias(joiner.id, &a.network),
                &record.bridge,
                &peer,
                link::mac_for(lease.ip),
                netns,
            )?;
            interfaces.push((peer, lease.ip, record.subnet.prefix_len()));
        }
        let gateway = records
            .get(port_network)
            .filter(|r| !r.internal)
            .map(|r| r.gateway);
        link::in_namespace(netns, |inside| {
            inside.configure_inside(&interfaces, gateway)
        })?;
        let state = self.snapshot()?;
        self.sync_locked(&netlink, &state)?;
        let networks: Vec<&str> = joiner
            .attachments
            .iter()
            .map(|a| a.network.as_str())
            .collect();
        self.rewrite_hosts(&state, &networks)?;
        Ok(())
    }

    /// The container's lease on `record`, taken now if it has none. A lease with ports keeps
    /// its claim on them (a restart in place serves again); otherwise it takes `claim`, none
    /// on standby.
    fn lease(
        &self,
        joiner: &Joiner,
        attachment: &Attachment,
        record: &NetworkRecord,
        ports: Vec<PortMapping>,
        claim: Option<Claim>,
    ) -> Result<Lease, NetworkError> {
        let leases = self.leases(&record.name)?;
        let own = leases.iter().find(|l| {
            l.container == joiner.id
                && ipam::usable(record.subnet, record.gateway, l.ip)
                && attachment.ip.is_none_or(|ip| ip == l.ip)
        });
        let ip = match own {
            Some(l) => l.ip,
            None => {
                // Leases of removed containers (a crash between removal and release) are
                // free again.
                let taken: BTreeMap<Ipv4Addr, String> = leases
                    .iter()
                    .filter(|l| l.container != joiner.id)
                    .filter(|l| self.exists(&l.container))
                    .map(|l| (l.ip, l.container.clone()))
                    .collect();
                let keys: BTreeSet<Ipv4Addr> = taken.keys().copied().collect();
                ipam::choose(record.subnet, record.gateway, &keys, attachment.ip, |ip| {
                    taken.get(&ip).cloned().unwrap_or_default()
                })
                .map_err(|source| NetworkError::Ipam {
                    network: record.name.clone(),
                    source,
                })?
            }
        };
        // Any other lease of this container on this network (an address from before a
        // subnet change) goes.
        for old in leases
            .iter()
            .filter(|l| l.container == joiner.id && l.ip != ip)
        {
            remove_file_if_exists(&self.paths.lease(&record.name, old.ip))?;
        }
        let claim = match own.and_then(|l| l.claim) {
            _ if ports.is_empty() => None,
            Some(kept) => Some(kept),
            None => claim,
        };
        let lease = Lease {
            network: record.name.clone(),
            ip,
            container: joiner.id.to_string(),
            name: joiner.name.to_string(),
            hostname: joiner.hostname.to_string(),
            aliases: attachment.aliases.clone(),
            ports,
            claim,
            manual: joiner.manual,
        };
        let path = self.paths.lease(&record.name, ip);
        fsutil::private_dir(&self.paths.leases(&record.name))?;
        // Not flushed: after a power loss nothing runs, and a lost lease only means a new
        // address at the next start.
        crate::state::record::save_volatile(&path, &lease)?;
        Ok(lease)
    }

    /// No running container publishes a port this one wants, except, for a start-first
    /// container, the reconciler's running container of its own name. A start-first
    /// container that finds such a container publishing any port (the same or others: a
    /// changed port must pass the health check too) starts on standby (true).
    fn check_ports(
        &self,
        joiner: &Joiner,
        live: &BTreeSet<String>,
        all: &[Lease],
    ) -> Result<bool, NetworkError> {
        let mut standby = false;
        for lease in all.iter().filter(|l| l.container != joiner.id) {
            if !live.contains(&self.host_veth(&lease.container, &lease.network)) {
                continue;
            }
            let predecessor = joiner.start_first
                && !joiner.manual
                && !lease.manual
                && lease.name == joiner.name
                && !lease.ports.is_empty();
            if predecessor {
                standby = true;
                continue;
            }
            for theirs in &lease.ports {
                if let Some(mine) = joiner.ports.iter().find(|p| p.collides_with(theirs)) {
                    return Err(NetworkError::PortTaken {
                        port: format!("{}/{}", mine.host_port, mine.protocol),
                        holder: lease.container.clone(),
                    });
                }
            }
        }
        Ok(standby)
    }

    /// Switch the published ports of container `id` to it, in one nftables transaction: new
    /// connections go to it, established ones stay where they are (conntrack keeps their
    /// translation), so its predecessor can drain. The claim is written before the rules: a
    /// crash in between leaves rules that differ from the state, which the next pass repairs.
    /// Idempotent: a container already serving keeps its claim.
    pub fn take_over(&self, id: &str) -> Result<Claim, NetworkError> {
        let _lock = self.lock()?;
        let netlink = Netlink::open()?;
        let records = self.records()?;
        let leases = self.all_leases(&records)?;
        let live = self.live_veths(&netlink)?;
        let Some(mine) = leases
            .iter()
            .find(|l| l.container == id && !l.ports.is_empty())
        else {
            return Err(NetworkError::NotPublishing { id: id.to_string() });
        };
        if let Some(PortHold::Serving { .. }) = self.port_holds(&records, &leases, &live).get(id)
            && let Some(claim) = mine.claim
        {
            return Ok(claim);
        }
        let claim = next_claim(&leases);
        let mut lease = mine.clone();
        lease.claim = Some(claim);
        crate::state::record::save_volatile(&self.paths.lease(&lease.network, lease.ip), &lease)?;
        crate::failpoint::hit("take-over-after-claim");
        let state = self.snapshot()?;
        self.sync_locked(&netlink, &state)?;
        self.rewrite_hosts(&state, &[lease.network.as_str()])?;
        Ok(claim)
    }

    /// Who has the published ports, per plugged-in container publishing some.
    fn port_holds(
        &self,
        records: &[NetworkRecord],
        leases: &[Lease],
        live: &BTreeSet<String>,
    ) -> BTreeMap<String, PortHold> {
        let plugged: Vec<&Lease> = leases
            .iter()
            .filter(|l| !l.ports.is_empty() && current(records, l))
            .filter(|l| live.contains(&self.host_veth(&l.container, &l.network)))
            .collect();
        let winners = serving(&plugged);
        plugged
            .iter()
            .map(|l| {
                let hold = match l.claim {
                    None => PortHold::Standby,
                    Some(c) if winners.iter().any(|w| w.container == l.container) => {
                        PortHold::Serving { since_ms: c.at_ms }
                    }
                    Some(_) => PortHold::Superseded {
                        since_ms: plugged
                            .iter()
                            .filter(|w| winners.iter().any(|x| x.container == w.container))
                            .filter(|w| {
                                w.ports
                                    .iter()
                                    .any(|p| l.ports.iter().any(|q| p.collides_with(q)))
                            })
                            .filter_map(|w| w.claim.map(|c| c.at_ms))
                            .max()
                            .unwrap_or(0),
                    },
                };
                (l.container.clone(), hold)
            })
            .chain(
                leases
                    .iter()
                    .filter(|l| !l.ports.is_empty() && current(records, l))
                    .filter(|l| !live.contains(&self.host_veth(&l.container, &l.network)))
                    .map(|l| {
                        (
                            l.container.clone(),
                            PortHold::Down {
                                claimed: l.claim.is_some(),
                            },
                        )
                    }),
            )
            .collect()
    }

    /// The container's address on its first network, if it has one.
    pub fn address_of(&self, id: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
        for record in self.records()? {
            if let Some(l) = self
                .leases(&record.name)?
                .iter()
                .find(|l| l.container == id)
            {
                return Ok(Some(l.ip));
            }
        }
        Ok(None)
    }

    /// The networks on which container `id` holds an address.
    fn networks_of(&self, id: &str) -> Result<Vec<String>, NetworkError> {
        let mut out = Vec::new();
        for record in self.records()? {
            if self.leases(&record.name)?.iter().any(|l| l.container == id) {
                out.push(record.name);
            }
        }
        Ok(out)
    }

    /// Unplug a stopped container: its veths go (with its namespace they usually already
    /// have) and the rules stop forwarding to it. Its leases stay for its next start.
    pub fn detach(&self, id: &str) -> Result<(), NetworkError> {
        self.unplug(id, false)
    }

    /// A removed container's addresses go back; the others' hosts files forget it.
    pub fn release(&self, id: &str) -> Result<(), NetworkError> {
        self.unplug(id, true)
    }

    fn unplug(&self, id: &str, release: bool) -> Result<(), NetworkError> {
        if self.records()?.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let networks = self.networks_of(id)?;
        if networks.is_empty() {
            return Ok(());
        }
        let netlink = Netlink::open()?;
        for network in &networks {
            netlink.delete(&self.host_veth(id, network))?;
            if release {
                for lease in self.leases(network)?.iter().filter(|l| l.container == id) {
                    remove_file_if_exists(&self.paths.lease(network, lease.ip))?;
                }
            }
        }
        let state = self.snapshot()?;
        self.sync_locked(&netlink, &state)?;
        if release {
            let names: Vec<&str> = networks.iter().map(String::as_str).collect();
            self.rewrite_hosts(&state, &names)?;
        }
        Ok(())
    }

    /// What exists, for the reconciler: records, whether each bridge is intact, who holds
    /// addresses, and whether the rules are what the state makes.
    pub fn observe(&self) -> Result<ObservedNetworks, NetworkError> {
        let records = self.records()?;
        if records.is_empty() {
            // Nothing of ours to look at (and no `nft` to run on every pass of a machine
            // without networks), unless a removal was interrupted: then the table may still
            // name the network, and a repair removes both.
            return Ok(ObservedNetworks {
                records: BTreeMap::new(),
                ports: BTreeMap::new(),
                rules_in_sync: !self.interrupted_removals(),
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
        let mut out = BTreeMap::new();
        for record in &records {
            let bridge_ok = links.get(&record.bridge).is_some_and(|l| {
                l.alias.as_deref() == Some(self.bridge_alias(&record.name).as_str())
            });
            let holders = leases
                .iter()
                .filter(|l| l.network == record.name)
                .filter(|l| self.exists(&l.container))
                .map(|l| l.container.clone())
                .collect();
            out.insert(
                record.name.clone(),
                ObservedNetwork {
                    spec_hash: record.spec_hash.clone(),
                    bridge: record.bridge.clone(),
                    bridge_ok,
                    holders,
                },
            );
        }
        let live = self.owned_veths(links.values());
        let input = self.rules_input(&records, &leases, &live);
        let ports = self.port_holds(&records, &leases, &live);
        Ok(ObservedNetworks {
            records: out,
            ports,
            rules_in_sync: rules::in_sync(&input)? && !self.interrupted_removals(),
            readable: true,
        })
    }

    /// Rebuild the rules from the state (drift repair; also after a container stopped by
    /// itself, which leaves its forwards behind until then).
    pub fn repair_rules(&self) -> Result<(), NetworkError> {
        let _lock = self.lock()?;
        self.sweep_locked();
        let netlink = Netlink::open()?;
        self.sync_locked(&netlink, &self.snapshot()?)
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

    fn rules_input(
        &self,
        records: &[NetworkRecord],
        leases: &[Lease],
        live: &BTreeSet<String>,
    ) -> RulesInput {
        let bridges = records
            .iter()
            .map(|r| BridgeRules {
                bridge: r.bridge.clone(),
                subnet: r.subnet,
                internal: r.internal,
            })
            .collect();
        let plugged: Vec<&Lease> = leases
            .iter()
            .filter(|l| current(records, l))
            .filter(|l| live.contains(&self.host_veth(&l.container, &l.network)))
            .collect();
        let mut forwards: Vec<Forward> = serving(&plugged)
            .into_iter()
            .flat_map(|l| {
                l.ports.iter().filter_map(move |p| {
                    let host_ip = match p.host_ip {
                        None => None,
                        Some(IpAddr::V4(ip)) if ip.is_unspecified() => None,
                        Some(IpAddr::V4(ip)) => Some(ip),
                        // The loader refuses IPv6 host addresses for bridge networks.
                        Some(IpAddr::V6(_)) => return None,
                    };
                    Some(Forward {
                        host_ip,
                        host_port: p.host_port,
                        protocol: p.protocol,
                        to: l.ip,
                        to_port: p.container_port,
                        container: l.container.clone(),
                    })
                })
            })
            .collect();
        forwards.sort();
        RulesInput {
            table: self.layout.scope.clone(),
            bridges,
            forwards,
        }
    }

    fn snapshot(&self) -> Result<Snapshot, NetworkError> {
        let records = self.records()?;
        let leases = self.all_leases(&records)?;
        Ok(Snapshot { records, leases })
    }

    /// Make the kernel's table what the state says (under the lock).
    fn sync_locked(&self, netlink: &Netlink, state: &Snapshot) -> Result<(), NetworkError> {
        let live = self.live_veths(netlink)?;
        let input = self.rules_input(&state.records, &state.leases, &live);
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
            .filter(|l| self.exists(&l.container) && current(&state.records, l))
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
            let text = crate::state::etc::hosts(&mine.hostname, None, &entries);
            let path = self.layout.container(id).etc().join("hosts");
            hosts::rewrite_in_place(&path, &text).map_err(io_err("rewriting", &path))?;
        }
        Ok(())
    }
}

/// The records and leases, read once after a change, for the rules and the hosts files.
struct Snapshot {
    records: Vec<NetworkRecord>,
    leases: Vec<Lease>,
}

/// The next claim: above every claim of `leases` (all of them, read under the lock).
fn next_claim(leases: &[Lease]) -> Claim {
    let seq = leases
        .iter()
        .filter_map(|l| l.claim.map(|c| c.seq))
        .max()
        .unwrap_or(0);
    Claim {
        seq: seq + 1,
        at_ms: crate::state::record::now_ms(),
    }
}

/// The leases whose ports are forwarded: highest claim first, each only if none of its
/// ports collides with a port of a lease already chosen. Standby leases (no claim) never are.
fn serving<'l>(plugged: &[&'l Lease]) -> Vec<&'l Lease> {
    let mut claimed: Vec<&Lease> = plugged
        .iter()
        .copied()
        .filter(|l| l.claim.is_some() && !l.ports.is_empty())
        .collect();
    claimed.sort_by(|a, b| {
        b.claim
            .cmp(&a.claim)
            .then_with(|| a.container.cmp(&b.container))
    });
    let mut chosen: Vec<&Lease> = Vec::new();
    for lease in claimed {
        let collides = chosen.iter().any(|c| {
            c.ports
                .iter()
                .any(|p| lease.ports.iter().any(|q| p.collides_with(q)))
        });
        if !collides {
            chosen.push(lease);
        }
    }
    chosen
}

/// A lease from before a subnet change (its container not replaced yet) is not current: its
/// address is no longer on the bridge, so it is neither forwarded to nor named.
fn current(records: &[NetworkRecord], lease: &Lease) -> bool {
    records
        .iter()
        .any(|r| r.name == lease.network && ipam::usable(r.subnet, r.gateway, lease.ip))
}

fn remove_file_if_exists(path: &std::path::Path) -> Result<(), NetworkError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", path)(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(container: &str, ip: u8, ports: &[&str], claim: Option<u64>) -> Lease {
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

    fn chosen(leases: &[Lease]) -> Vec<String> {
        let refs: Vec<&Lease> = leases.iter().collect();
        serving(&refs).iter().map(|l| l.container.clone()).collect()
    }

    #[test]
    fn the_highest_claim_has_a_port_and_standby_never_does() {
        let old = lease("web-1", 2, &["8080:80"], Some(1));
        let new = lease("web-2", 3, &["8080:80"], Some(2));
        let standby = lease("web-3", 4, &["8080:80"], None);
        assert_eq!(chosen(&[old.clone(), standby.clone()]), ["web-1"]);
        assert_eq!(
            chosen(&[old.clone(), new.clone(), standby.clone()]),
            ["web-2"]
        );
        assert_eq!(chosen(&[new.clone(), old.clone()]), ["web-2"]);
        assert!(chosen(&[standby]).is_empty());
    }

    #[test]
    fn ports_that_only_overlap_still_go_to_one_container() {
        // All addresses vs 127.0.0.1: the same port for a client on loopback.
        let old = lease("web-1", 2, &["8080:80"], Some(1));
        let new = lease("web-2", 3, &["127.0.0.1:8080:80"], Some(2));
        assert_eq!(chosen(&[old, new]), ["web-2"]);
        // Disjoint ports: both serve.
        let a = lease("a-1", 2, &["8080:80"], Some(1));
        let b = lease("b-1", 3, &["9090:80"], Some(2));
        assert_eq!(chosen(&[a, b]), ["b-1", "a-1"]);
    }

    #[test]
    fn holds_say_who_serves_who_waits_and_who_drains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let networks = Networks::new(&Layout::new(dir.path()));
        let records = vec![NetworkRecord {
            name: "front".into(),
            spec_hash: String::new(),
            bridge: "berth0".into(),
            subnet: "10.89.1.0/24".parse().expect("subnet"),
            gateway: Ipv4Addr::new(10, 89, 1, 1),
            internal: false,
            created_at: String::new(),
        }];
        let leases = vec![
            lease("web-1", 2, &["8080:80"], Some(1)),
            lease("web-2", 3, &["8080:80"], Some(2)),
            lease("web-3", 4, &["8080:80"], None),
            // Not plugged in (its veth is gone): down, even with the highest claim.
            lease("web-4", 5, &["8080:80"], Some(3)),
            lease("web-5", 6, &["8080:80"], None),
        ];
        let live: BTreeSet<String> = ["web-1", "web-2", "web-3"]
            .iter()
            .map(|id| networks.host_veth(id, "front"))
            .collect();
        let holds = networks.port_holds(&records, &leases, &live);
        assert_eq!(
            holds,
            BTreeMap::from([
                (
                    "web-1".to_string(),
                    PortHold::Superseded { since_ms: 2_000 }
                ),
                ("web-2".to_string(), PortHold::Serving { since_ms: 2_000 }),
                ("web-3".to_string(), PortHold::Standby),
                ("web-4".to_string(), PortHold::Down { claimed: true }),
                ("web-5".to_string(), PortHold::Down { claimed: false }),
            ])
        );
    }

    #[test]
    fn leases_from_before_claims_serve_from_the_start() {
        let mut v = serde_json::to_value(lease("web-1", 2, &["8080:80"], Some(1))).expect("json");
        v.as_object_mut().expect("object").remove("claim");
        let l: Lease = serde_json::from_value(v).expect("lease");
        assert_eq!(l.claim, Some(Claim { seq: 0, at_ms: 0 }));
        // A standby lease says so explicitly.
        let standby = serde_json::to_string(&lease("web-3", 4, &["8080:80"], None)).expect("json");
        assert!(standby.contains("\"claim\":null"), "{standby}");
        let back: Lease = serde_json::from_str(&standby).expect("back");
        assert_eq!(back.claim, None);
    }
}
