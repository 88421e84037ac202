//! Bridges and network records: a network is a record under `networks/<name>/` and a
//! `berth<N>` bridge carrying its gateway address. Creating, updating in place, repairing
//! and removing them, and what the reconciler observes of them.

use std::collections::{BTreeMap, BTreeSet};

use super::link::{self, Link, LinkError, Netlink};
use super::record::{Lease, NetworkPaths, NetworkRecord};
use super::{BRIDGE_PREFIX, MAX_BRIDGES, NetworkError, Networks, lease};
use crate::fsutil::{self, io_err};
use crate::spec::model::Network;
use crate::state::network::ObservedNetwork;

/// The record of network `name`, if berth made it.
pub(super) fn load(
    paths: &NetworkPaths,
    name: &str,
) -> Result<Option<NetworkRecord>, NetworkError> {
    Ok(crate::state::record::load(&paths.record(name))?)
}

/// Every record under `paths`, by name.
pub(super) fn load_all(paths: &NetworkPaths) -> Result<Vec<NetworkRecord>, NetworkError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&paths.root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err("listing", &paths.root)(e).into()),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("listing", &paths.root))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Some(record) = load(paths, &name)? {
            out.push(record);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn save(paths: &NetworkPaths, record: &NetworkRecord) -> Result<(), NetworkError> {
    let path = paths.record(&record.name);
    fsutil::write_atomic(&path, &crate::state::record::encode(&path, record)?)?;
    Ok(())
}

fn is_interrupted_removal(name: &str) -> bool {
    name.starts_with('.') && name.contains(".removing.")
}

/// Whether a removal was interrupted: its directory is renamed away, not yet deleted.
pub(super) fn interrupted_removals(paths: &NetworkPaths) -> bool {
    std::fs::read_dir(&paths.root).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| is_interrupted_removal(&e.file_name().to_string_lossy()))
    })
}

/// Directories of removals a crash interrupted: under the lock, none is in progress.
pub(super) fn sweep_interrupted_removals(paths: &NetworkPaths) {
    let Ok(entries) = std::fs::read_dir(&paths.root) else {
        return;
    };
    for entry in entries.flatten() {
        if is_interrupted_removal(&entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The body of [`Networks::ensure`].
pub(super) fn ensure(
    networks: &Networks,
    name: &str,
    spec: &Network,
    spec_hash: &str,
) -> Result<NetworkRecord, NetworkError> {
    let _lock = networks.lock()?;
    sweep_interrupted_removals(&networks.paths);
    let netlink = Netlink::open()?;
    let existing = networks.record(name)?;
    let mut record = record_for(name, spec, spec_hash, existing.as_ref());
    if existing.as_ref().is_none_or(|r| r.subnet != spec.subnet) {
        check_subnet_free(networks, &netlink, name, spec.subnet, existing.as_ref())?;
    }
    fsutil::private_dir(&networks.paths.dir(name))?;
    lease::sweep_stale(networks, name)?;
    if record.bridge.is_empty() {
        record.bridge = new_bridge(networks, &netlink, &record)?;
    } else {
        save(&networks.paths, &record)?;
        match plug_bridge(networks, &netlink, &record) {
            Ok(()) => {}
            // The recorded name was never ours (a crash before the bridge was made, and
            // another state root took the name) or is someone else's by now: a new one.
            Err(NetworkError::Link(LinkError::NotOurs { .. })) => {
                record.bridge = new_bridge(networks, &netlink, &record)?;
            }
            Err(e) => return Err(e),
        }
    }
    networks.sync_locked(&netlink, &networks.snapshot()?)?;
    Ok(record)
}

/// The record of network `name` as `spec` wants it: an existing one keeps its bridge
/// (none yet for a new one) and its creation time.
fn record_for(
    name: &str,
    spec: &Network,
    spec_hash: &str,
    existing: Option<&NetworkRecord>,
) -> NetworkRecord {
    NetworkRecord {
        name: name.to_string(),
        spec_hash: spec_hash.to_string(),
        bridge: existing.map(|r| r.bridge.clone()).unwrap_or_default(),
        subnet: spec.subnet,
        gateway: spec.gateway,
        internal: spec.internal,
        created_at: existing.map_or_else(
            || humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            |r| r.created_at.clone(),
        ),
    }
}

/// A new subnet must not overlap a route of the host (another network of the machine, a
/// VPN, another state root's bridge): its connected route would take that traffic. The
/// network's own bridge (a subnet change in place) does not count.
fn check_subnet_free(
    networks: &Networks,
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
                l.name == r.bridge && l.alias.as_deref() == Some(&networks.bridge_alias(name))
            })
            .map(|l| l.index)
    });
    match overlapping_route(subnet, &netlink.routes()?, own) {
        None => Ok(()),
        Some((route, oif)) => Err(NetworkError::SubnetInUse {
            network: name.to_string(),
            subnet,
            route,
            via: oif.and_then(|i| links.iter().find(|l| l.index == i).map(|l| l.name.clone())),
        }),
    }
}

/// The first route overlapping `subnet`, routes out of interface `own` aside.
fn overlapping_route(
    subnet: ipnet::Ipv4Net,
    routes: &[(ipnet::Ipv4Net, Option<u32>)],
    own: Option<u32>,
) -> Option<(ipnet::Ipv4Net, Option<u32>)> {
    routes
        .iter()
        .filter(|(_, oif)| !(oif.is_some() && *oif == own))
        .find(|(route, _)| route.contains(&subnet.network()) || subnet.contains(&route.network()))
        .copied()
}

/// Pick the lowest free `berth<N>`, record it before creating it (a crash in between
/// leaves a record the next `ensure` completes), and create it. A name another state
/// root takes at the same moment is skipped.
fn new_bridge(
    networks: &Networks,
    netlink: &Netlink,
    record: &NetworkRecord,
) -> Result<String, NetworkError> {
    let taken: BTreeSet<String> = netlink.links()?.into_iter().map(|l| l.name).collect();
    let ours: BTreeSet<String> = networks.records()?.into_iter().map(|r| r.bridge).collect();
    for n in 0..MAX_BRIDGES {
        let bridge = format!("{BRIDGE_PREFIX}{n}");
        if taken.contains(&bridge) || ours.contains(&bridge) {
            continue;
        }
        let mut candidate = record.clone();
        candidate.bridge = bridge.clone();
        save(&networks.paths, &candidate)?;
        crate::failpoint::hit("network-create-after-record");
        match plug(networks, netlink, &candidate, false) {
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
pub(super) fn plug_bridge(
    networks: &Networks,
    netlink: &Netlink,
    record: &NetworkRecord,
) -> Result<(), NetworkError> {
    plug(networks, netlink, record, true)
}

/// `plug_bridge`; `adopt_unnamed`: whether an unnamed bridge of the record's name is ours
/// (left by a crash) or another state root's (when the name was just picked).
fn plug(
    networks: &Networks,
    netlink: &Netlink,
    record: &NetworkRecord,
    adopt_unnamed: bool,
) -> Result<(), NetworkError> {
    let created = netlink.ensure_bridge(
        &record.bridge,
        &networks.bridge_alias(&record.name),
        record.gateway,
        record.subnet.prefix_len(),
        adopt_unnamed,
    )?;
    if created {
        let live = networks.live_veths(netlink)?;
        for lease in networks.leases(&record.name)? {
            let veth = networks.host_veth(&lease.container, &record.name);
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

/// The body of [`Networks::remove`].
pub(super) fn remove(networks: &Networks, name: &str) -> Result<(), NetworkError> {
    let _lock = networks.lock()?;
    sweep_interrupted_removals(&networks.paths);
    let netlink = Netlink::open()?;
    let Some(record) = networks.record(name)? else {
        return Ok(());
    };
    let users: Vec<String> = networks
        .leases(name)?
        .into_iter()
        .filter(|l| networks.exists(&l.container))
        .map(|l| l.container)
        .collect();
    if !users.is_empty() {
        return Err(NetworkError::InUse {
            network: name.to_string(),
            containers: users,
        });
    }
    match netlink.link(&record.bridge)? {
        Some(l) if l.alias.as_deref() == Some(networks.bridge_alias(name).as_str()) => {
            netlink.delete(&record.bridge)?
        }
        // Someone else's by now (ours was deleted by hand and the name reused): not touched.
        _ => {}
    }
    let dir = networks.paths.dir(name);
    let doomed = dir.with_file_name(fsutil::doomed_name(name));
    std::fs::rename(&dir, &doomed).map_err(io_err("renaming", &dir))?;
    crate::failpoint::hit("network-remove-after-rename");
    // Rules first, then the directory: while a `.removing` directory exists the table may
    // still name the network, and `observe` says so.
    networks.sync_locked(&netlink, &networks.snapshot()?)?;
    std::fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))?;
    Ok(())
}

/// Each network as the reconciler sees it: whether its bridge is there and berth's, and
/// which existing containers hold an address on it.
pub(super) fn observed(
    networks: &Networks,
    records: &[NetworkRecord],
    links: &BTreeMap<String, Link>,
    leases: &[Lease],
) -> BTreeMap<String, ObservedNetwork> {
    let mut out = BTreeMap::new();
    for record in records {
        let bridge_ok = links.get(&record.bridge).is_some_and(|l| {
            l.alias.as_deref() == Some(networks.bridge_alias(&record.name).as_str())
        });
        let holders = leases
            .iter()
            .filter(|l| l.network == record.name)
            .filter(|l| networks.exists(&l.container))
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> ipnet::Ipv4Net {
        s.parse().expect("subnet")
    }

    #[test]
    fn a_subnet_may_not_overlap_a_route_but_its_own_bridge() {
        // As the kernel lists them: default routes left out.
        let routes = [
            (net("192.168.1.0/24"), Some(2)),
            (net("10.89.0.0/16"), Some(7)),
        ];
        let connected = &routes[..];
        assert_eq!(
            overlapping_route(net("10.90.0.0/24"), connected, None),
            None
        );
        assert_eq!(
            overlapping_route(net("10.89.1.0/24"), connected, None),
            Some((net("10.89.0.0/16"), Some(7)))
        );
        assert_eq!(
            overlapping_route(net("192.0.0.0/8"), connected, Some(7)),
            Some((net("192.168.1.0/24"), Some(2)))
        );
        // The network's own bridge (a subnet change in place) does not count.
        assert_eq!(
            overlapping_route(net("10.89.1.0/24"), connected, Some(7)),
            None
        );
    }

    #[test]
    fn an_existing_network_keeps_its_bridge_and_creation_time() {
        let spec = Network {
            origin: crate::spec::model::Origin {
                file: "berth.toml".into(),
                line: 1,
            },
            subnet: net("10.89.2.0/24"),
            gateway: "10.89.2.1".parse().expect("gateway"),
            internal: true,
            labels: BTreeMap::new(),
        };
        let new = record_for("front", &spec, "h1", None);
        assert_eq!(new.bridge, "");
        assert!(!new.created_at.is_empty());
        let old = NetworkRecord {
            bridge: "berth3".into(),
            created_at: "then".into(),
            subnet: net("10.89.1.0/24"),
            ..new.clone()
        };
        let moved = record_for("front", &spec, "h2", Some(&old));
        assert_eq!(
            (moved.bridge.as_str(), moved.created_at.as_str()),
            ("berth3", "then")
        );
        assert_eq!(
            (moved.subnet, moved.spec_hash.as_str()),
            (spec.subnet, "h2")
        );
        assert!(moved.internal);
    }
}
