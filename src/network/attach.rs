//! Plugging a container into its networks (leases, veths into its namespace, addresses,
//! routes) and unplugging it at its stop and removal.

use std::os::fd::BorrowedFd;

use super::link::{self, Netlink};
use super::{Joiner, NetworkError, Networks, bridge, lease, ports};

/// The body of [`Networks::attach`].
pub(super) fn attach(
    networks: &Networks,
    joiner: &Joiner,
    netns: BorrowedFd<'_>,
) -> Result<(), NetworkError> {
    if joiner.attachments.is_empty() {
        return Ok(());
    }
    let _lock = networks.lock()?;
    let netlink = Netlink::open()?;
    let mut records = Vec::new();
    for a in joiner.attachments {
        let record = networks
            .record(&a.network)?
            .ok_or_else(|| NetworkError::Missing {
                network: a.network.clone(),
            })?;
        // A bridge deleted by hand is back before anything is plugged into it.
        bridge::plug_bridge(networks, &netlink, &record)?;
        records.push(record);
    }
    // Published ports go to the address on the first network with outside access.
    let port_network = records.iter().position(|r| !r.internal).unwrap_or(0);
    let live = networks.live_veths(&netlink)?;
    // Every lease, read once: for the port check and the next claim.
    let all = networks.all_leases(&networks.records()?)?;
    let standby =
        !joiner.ports.is_empty() && ports::check_ports(joiner, &networks.plugged(&live), &all)?;
    let claim = ports::next_claim(&all);
    let mut interfaces = Vec::new();
    for (i, (a, record)) in joiner.attachments.iter().zip(&records).enumerate() {
        let ports = if i == port_network {
            joiner.ports.to_vec()
        } else {
            Vec::new()
        };
        let lease = lease::take(
            networks,
            joiner,
            a,
            record,
            ports,
            (!standby).then_some(claim),
        )?;
        let host = networks.host_veth(joiner.id, &a.network);
        // A veth of an earlier start whose namespace lingers: replaced.
        netlink.delete(&host)?;
        let peer = format!("eth{i}");
        netlink.add_veth(
            &host,
            &networks.veth_alias(joiner.id, &a.network),
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
    let state = networks.snapshot()?;
    networks.sync_locked(&netlink, &state)?;
    let names: Vec<&str> = joiner
        .attachments
        .iter()
        .map(|a| a.network.as_str())
        .collect();
    networks.rewrite_hosts(&state, &names)?;
    if let Some(first) = records.first() {
        super::dns::configure_container(networks, joiner.id, first);
    }
    Ok(())
}

/// The body of [`Networks::detach`] (`release` false) and [`Networks::release`] (true).
pub(super) fn unplug(networks: &Networks, id: &str, release: bool) -> Result<(), NetworkError> {
    if networks.records()?.is_empty() {
        return Ok(());
    }
    let _lock = networks.lock()?;
    let names = lease::networks_of(networks, id)?;
    if names.is_empty() {
        return Ok(());
    }
    let netlink = Netlink::open()?;
    for network in &names {
        netlink.delete(&networks.host_veth(id, network))?;
        if release {
            lease::release(&networks.paths, network, id)?;
        }
    }
    let state = networks.snapshot()?;
    networks.sync_locked(&netlink, &state)?;
    if release {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        networks.rewrite_hosts(&state, &names)?;
    }
    Ok(())
}
