//! Address leases: one file per address under `networks/<name>/leases/<ip>`, taken at a
//! container's first start, kept across its restarts, released when it is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use super::record::{Claim, Lease, NetworkPaths, NetworkRecord};
use super::{Joiner, NetworkError, Networks, ipam};
use crate::fsutil::{self, io_err};
use crate::spec::port::PortMapping;
use crate::state::network::Attachment;

/// The leases on `network`, by address.
pub(super) fn read(paths: &NetworkPaths, network: &str) -> Result<Vec<Lease>, NetworkError> {
    let dir = paths.leases(network);
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
            // A newer berth's lease still holds its address: fail rather than give it away.
            Err(e @ crate::state::record::RecordError::UnknownFormat { .. }) => {
                return Err(e.into());
            }
            // A lease damaged by a power loss (leases are not flushed) costs its holder
            // its address, not every network operation: the holder leases again at its
            // next start, and the damaged file is replaced or removed then.
            Err(e) => tracing::warn!(network, "ignoring a lease: {e}"),
        }
    }
    out.sort_by_key(|l| l.ip);
    Ok(out)
}

/// A lease from before a subnet change (its container not replaced yet) is not current: its
/// address is no longer on the bridge, so it is neither forwarded to nor named.
pub(super) fn current(records: &[NetworkRecord], lease: &Lease) -> bool {
    records
        .iter()
        .any(|r| r.name == lease.network && ipam::usable(r.subnet, r.gateway, lease.ip))
}

/// The container's lease on `record`, taken now if it has none. A lease with ports keeps
/// its claim on them (a restart in place serves again); otherwise it takes `claim`, none
/// on standby.
pub(super) fn take(
    networks: &Networks,
    joiner: &Joiner,
    attachment: &Attachment,
    record: &NetworkRecord,
    ports: Vec<PortMapping>,
    claim: Option<Claim>,
) -> Result<Lease, NetworkError> {
    let paths = &networks.paths;
    let leases = read(paths, &record.name)?;
    let own = own_lease(&leases, record, joiner.id, attachment.ip);
    let ip = match own {
        Some(l) => l.ip,
        None => free_address(&leases, record, joiner.id, attachment.ip, |id| {
            networks.exists(id)
        })?,
    };
    // Any other lease of this container on this network (an address from before a
    // subnet change) goes.
    for old in leases
        .iter()
        .filter(|l| l.container == joiner.id && l.ip != ip)
    {
        remove_file_if_exists(&paths.lease(&record.name, old.ip))?;
    }
    let lease = Lease {
        network: record.name.clone(),
        ip,
        container: joiner.id.to_string(),
        name: joiner.name.to_string(),
        hostname: joiner.hostname.to_string(),
        aliases: attachment.aliases.clone(),
        claim: claim_for(own, &ports, claim),
        ports,
        manual: joiner.manual,
    };
    let path = paths.lease(&record.name, ip);
    fsutil::private_dir(&paths.leases(&record.name))?;
    // Not flushed: after a power loss nothing runs, and a lost lease only means a new
    // address at the next start.
    crate::state::record::save_volatile(&path, &lease)?;
    Ok(lease)
}

/// The lease container `id` keeps: one of its own whose address is still usable on the
/// network (and the one its entry asks for, if it asks).
fn own_lease<'l>(
    leases: &'l [Lease],
    record: &NetworkRecord,
    id: &str,
    wanted: Option<Ipv4Addr>,
) -> Option<&'l Lease> {
    leases.iter().find(|l| {
        l.container == id
            && ipam::usable(record.subnet, record.gateway, l.ip)
            && wanted.is_none_or(|ip| ip == l.ip)
    })
}

/// A new address for container `id`. Leases of removed containers (a crash between removal
/// and release) are free again.
fn free_address(
    leases: &[Lease],
    record: &NetworkRecord,
    id: &str,
    wanted: Option<Ipv4Addr>,
    exists: impl Fn(&str) -> bool,
) -> Result<Ipv4Addr, NetworkError> {
    let taken: BTreeMap<Ipv4Addr, String> = leases
        .iter()
        .filter(|l| l.container != id)
        .filter(|l| exists(&l.container))
        .map(|l| (l.ip, l.container.clone()))
        .collect();
    let keys: BTreeSet<Ipv4Addr> = taken.keys().copied().collect();
    ipam::choose(record.subnet, record.gateway, &keys, wanted, |ip| {
        taken.get(&ip).cloned().unwrap_or_default()
    })
    .map_err(|source| NetworkError::Ipam {
        network: record.name.clone(),
        source,
    })
}

/// The claim of a lease carrying `ports`: the one it kept, else `claim`. No ports, no claim.
fn claim_for(own: Option<&Lease>, ports: &[PortMapping], claim: Option<Claim>) -> Option<Claim> {
    match own.and_then(|l| l.claim) {
        _ if ports.is_empty() => None,
        Some(kept) => Some(kept),
        None => claim,
    }
}

/// Every lease of container `id` on `network` goes back.
pub(super) fn release(paths: &NetworkPaths, network: &str, id: &str) -> Result<(), NetworkError> {
    for lease in read(paths, network)?.iter().filter(|l| l.container == id) {
        remove_file_if_exists(&paths.lease(network, lease.ip))?;
    }
    Ok(())
}

/// Leases of containers that no longer exist (a crash between a removal and its release).
pub(super) fn sweep_stale(networks: &Networks, network: &str) -> Result<(), NetworkError> {
    for lease in read(&networks.paths, network)? {
        if !networks.exists(&lease.container) {
            remove_file_if_exists(&networks.paths.lease(network, lease.ip))?;
        }
    }
    Ok(())
}

/// The container's address on its first network, if it has one.
pub(super) fn address_of(networks: &Networks, id: &str) -> Result<Option<Ipv4Addr>, NetworkError> {
    for record in networks.records()? {
        if let Some(l) = read(&networks.paths, &record.name)?
            .iter()
            .find(|l| l.container == id)
        {
            return Ok(Some(l.ip));
        }
    }
    Ok(None)
}

/// The networks on which container `id` holds an address.
pub(super) fn networks_of(networks: &Networks, id: &str) -> Result<Vec<String>, NetworkError> {
    let mut out = Vec::new();
    for record in networks.records()? {
        if read(&networks.paths, &record.name)?
            .iter()
            .any(|l| l.container == id)
        {
            out.push(record.name);
        }
    }
    Ok(out)
}

fn remove_file_if_exists(path: &Path) -> Result<(), NetworkError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", path)(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::fixtures::{lease, record};

    #[test]
    fn an_own_lease_is_kept_only_while_usable_and_wanted() {
        let record = record();
        let leases = [
            lease("web-1", 2, &["8080:80"], None),
            lease("web-1", 0, &["8080:80"], None),
        ];
        let kept = own_lease(&leases, &record, "web-1", None).map(|l| l.ip);
        assert_eq!(kept, Some(Ipv4Addr::new(10, 89, 1, 2)));
        assert!(own_lease(&leases, &record, "web-1", Some(Ipv4Addr::new(10, 89, 1, 9))).is_none());
        assert!(own_lease(&leases, &record, "web-2", None).is_none());
        // The network address (left from another subnet) is never kept.
        assert!(own_lease(&leases[1..], &record, "web-1", None).is_none());
    }

    #[test]
    fn addresses_of_removed_containers_are_free_again() {
        let record = record();
        let leases = [
            lease("gone", 2, &["8080:80"], None),
            lease("db-1", 3, &["8080:80"], None),
        ];
        let ip = free_address(&leases, &record, "web-1", None, |id| id != "gone");
        assert_eq!(ip.expect("free"), Ipv4Addr::new(10, 89, 1, 2));
        let taken = free_address(
            &leases,
            &record,
            "web-1",
            Some(Ipv4Addr::new(10, 89, 1, 3)),
            |_| true,
        );
        assert!(
            matches!(
                &taken,
                Err(NetworkError::Ipam {
                    source: ipam::IpamError::Taken { holder, .. },
                    ..
                }) if holder == "db-1"
            ),
            "{taken:?}"
        );
    }

    #[test]
    fn a_kept_claim_survives_a_restart_and_no_ports_means_no_claim() {
        let ports: Vec<PortMapping> = vec!["8080:80".parse().expect("port")];
        let fresh = Some(Claim { seq: 9, at_ms: 9 });
        let served = lease("web-1", 2, &["8080:80"], Some(1));
        let standby = lease("web-1", 2, &["8080:80"], None);
        assert_eq!(claim_for(Some(&served), &ports, fresh), served.claim);
        assert_eq!(claim_for(Some(&standby), &ports, fresh), fresh);
        assert_eq!(claim_for(None, &ports, None), None);
        assert_eq!(claim_for(Some(&served), &[], fresh), None);
    }
}
