//! Published ports: which plugged-in container has them (of the leases publishing a port,
//! the one with the highest claim), the forwards the nftables table makes of that, and the
//! takeover by which a start-first update's container gets them from its predecessor.
//!
//! Whether a lease's container is plugged in is the caller's `plugged` (its host veth
//! exists), so that everything here but `take_over` is a function of the leases.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::lease::current;
use super::link::Netlink;
use super::record::{Claim, Lease, NetworkRecord};
use super::rules::{BridgeRules, Forward, RulesInput};
use super::{Joiner, NetworkError, Networks};
use crate::state::network::PortHold;

/// The next claim: above every claim of `leases` (all of them, read under the lock).
pub(super) fn next_claim(leases: &[Lease]) -> Claim {
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

/// Who has the published ports, per container publishing some.
pub(super) fn port_holds(
    records: &[NetworkRecord],
    leases: &[Lease],
    plugged: &impl Fn(&Lease) -> bool,
) -> BTreeMap<String, PortHold> {
    let up: Vec<&Lease> = leases
        .iter()
        .filter(|l| !l.ports.is_empty() && current(records, l))
        .filter(|l| plugged(l))
        .collect();
    let winners = serving(&up);
    up.iter()
        .map(|l| {
            let hold = match l.claim {
                None => PortHold::Standby,
                Some(c) if winners.iter().any(|w| w.container == l.container) => {
                    PortHold::Serving { since_ms: c.at_ms }
                }
                Some(_) => PortHold::Superseded {
                    since_ms: up
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
                .filter(|l| !plugged(l))
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

/// What berth's nftables table `table` is made of: the bridges, and a forward per published
/// port of the serving leases.
pub(super) fn rules_input(
    table: &str,
    records: &[NetworkRecord],
    leases: &[Lease],
    plugged: &impl Fn(&Lease) -> bool,
) -> RulesInput {
    let bridges = records
        .iter()
        .map(|r| BridgeRules {
            bridge: r.bridge.clone(),
            subnet: r.subnet,
            internal: r.internal,
        })
        .collect();
    let up: Vec<&Lease> = leases
        .iter()
        .filter(|l| current(records, l))
        .filter(|l| plugged(l))
        .collect();
    let mut forwards: Vec<Forward> = serving(&up)
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
        table: table.to_string(),
        bridges,
        forwards,
    }
}

/// No plugged-in container publishes a port this one wants, except, for a start-first
/// container, the reconciler's running container of its own name. A start-first
/// container that finds such a container publishing any port (the same or others: a
/// changed port must pass the health check too) starts on standby (true).
pub(super) fn check_ports(
    joiner: &Joiner,
    plugged: &impl Fn(&Lease) -> bool,
    all: &[Lease],
) -> Result<bool, NetworkError> {
    let mut standby = false;
    for lease in all.iter().filter(|l| l.container != joiner.id) {
        if !plugged(lease) {
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

/// The body of [`Networks::take_over`]. The claim is written before the rules: a crash in
/// between leaves rules that differ from the state, which the next pass repairs.
pub(super) fn take_over(networks: &Networks, id: &str) -> Result<Claim, NetworkError> {
    let _lock = networks.lock()?;
    let netlink = Netlink::open()?;
    let records = networks.records()?;
    let leases = networks.all_leases(&records)?;
    let live = networks.live_veths(&netlink)?;
    let Some(mine) = leases
        .iter()
        .find(|l| l.container == id && !l.ports.is_empty())
    else {
        return Err(NetworkError::NotPublishing { id: id.to_string() });
    };
    if let Some(PortHold::Serving { .. }) =
        port_holds(&records, &leases, &networks.plugged(&live)).get(id)
        && let Some(claim) = mine.claim
    {
        return Ok(claim);
    }
    let claim = next_claim(&leases);
    let mut lease = mine.clone();
    lease.claim = Some(claim);
    crate::state::record::save_volatile(&networks.paths.lease(&lease.network, lease.ip), &lease)?;
    crate::failpoint::hit("take-over-after-claim");
    let state = networks.snapshot()?;
    networks.sync_locked(&netlink, &state)?;
    networks.rewrite_hosts(&state, &[lease.network.as_str()])?;
    Ok(claim)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::network::fixtures::{lease, record};
    use crate::spec::port::PortMapping;

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
        let leases = vec![
            lease("web-1", 2, &["8080:80"], Some(1)),
            lease("web-2", 3, &["8080:80"], Some(2)),
            lease("web-3", 4, &["8080:80"], None),
            // Not plugged in (its veth is gone): down, even with the highest claim.
            lease("web-4", 5, &["8080:80"], Some(3)),
            lease("web-5", 6, &["8080:80"], None),
        ];
        let plugged = |l: &Lease| ["web-1", "web-2", "web-3"].contains(&l.container.as_str());
        let holds = port_holds(&[record()], &leases, &plugged);
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
    fn only_serving_plugged_current_leases_are_forwarded_to() {
        let mut stale = lease("old-1", 2, &["7070:70"], Some(5));
        stale.ip = Ipv4Addr::new(10, 88, 0, 2); // from before a subnet change
        let leases = vec![
            lease("web-1", 3, &["8080:80"], Some(1)),
            lease("web-2", 4, &["127.0.0.1:8080:80/udp", "8080:80"], Some(2)),
            lease("db-1", 5, &["5432:5432"], Some(3)),
            stale,
        ];
        let plugged = |l: &Lease| l.container != "db-1";
        let input = rules_input("scope", &[record()], &leases, &plugged);
        assert_eq!(input.table, "scope");
        assert_eq!(input.bridges.len(), 1);
        let to: Vec<(Option<Ipv4Addr>, u16, &str)> = input
            .forwards
            .iter()
            .map(|f| (f.host_ip, f.host_port, f.container.as_str()))
            .collect();
        assert_eq!(
            to,
            [
                (None, 8080, "web-2"),
                (Some(Ipv4Addr::LOCALHOST), 8080, "web-2")
            ]
        );
    }

    #[test]
    fn a_start_first_container_waits_beside_its_predecessor_only() {
        let running = [lease("web-1", 2, &["8080:80"], Some(1))];
        let ports: Vec<PortMapping> = vec!["8080:80".parse().expect("port")];
        let joiner = Joiner {
            id: "web-2",
            name: "web",
            hostname: "web",
            attachments: &[],
            ports: &ports,
            start_first: true,
            manual: false,
        };
        let plugged = |_: &Lease| true;
        assert!(check_ports(&joiner, &plugged, &running).expect("standby"));
        // Stopped: nothing to wait for.
        assert!(!check_ports(&joiner, &|_: &Lease| false, &running).expect("free"));
        let by_hand = Joiner {
            manual: true,
            ..joiner
        };
        let taken = check_ports(&by_hand, &plugged, &running);
        assert!(
            matches!(&taken, Err(NetworkError::PortTaken { port, holder })
                if port == "8080/tcp" && holder == "web-1"),
            "{taken:?}"
        );
    }

    #[test]
    fn the_next_claim_is_above_every_claim() {
        let leases = [
            lease("web-1", 2, &["8080:80"], Some(4)),
            lease("web-2", 3, &["8080:80"], None),
        ];
        assert_eq!(next_claim(&leases).seq, 5);
        assert_eq!(next_claim(&[]).seq, 1);
    }
}
