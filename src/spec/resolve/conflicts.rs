//! What two containers cannot share: a published host port, or a static address on one
//! network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use toml::Spanned;

use crate::spec::diag::{Code, Location};
use crate::spec::loader::{Entry, Kind};
use crate::spec::model::{Container, ContainerNetwork, Desired};
use crate::spec::name::Name;
use crate::spec::port::{PortMapping, PortRange};
use crate::spec::raw::RawContainer;

use super::{Resolver, span};

impl Resolver {
    /// Two containers must not publish the same host port; both are left out, since either
    /// could be the mistake.
    pub(super) fn check_ports(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawContainer>>,
        containers: &mut BTreeMap<Name, Container>,
    ) {
        // Ranges are expanded: one item per host port, with the entry it was written in.
        let mut all: Vec<(&Name, &Spanned<PortRange>, PortMapping)> = Vec::new();
        for (name, entry) in entries {
            if containers.contains_key(name) {
                all.extend(
                    entry
                        .raw
                        .ports
                        .iter()
                        .flat_map(|p| p.get_ref().mappings().map(move |m| (name, p, m))),
                );
            }
        }
        // Only mappings of the same protocol and host port can collide: compare within those
        // groups, so a thousand containers cost a sort rather than a million comparisons.
        all.sort_by_key(|(_, _, m)| (m.protocol, m.host_port));
        let mut bad = BTreeSet::new();
        // Two overlapping ranges are reported once, at their first common port.
        let mut reported = BTreeSet::new();
        for (i, (a, pa, ma)) in all.iter().enumerate() {
            let same_port = |(_, _, m): &&(&Name, &Spanned<PortRange>, PortMapping)| {
                (m.protocol, m.host_port) == (ma.protocol, ma.host_port)
            };
            for (b, pb, mb) in all[i + 1..].iter().take_while(same_port) {
                if a != b
                    && ma.collides_with(mb)
                    && reported.insert((*a, span(pa).start, *b, span(pb).start))
                {
                    let e = &entries[*b];
                    self.diagnostics.push(
                        e.diag(
                            Code::PortConflict,
                            span(pb),
                            format!(
                                "containers `{a}` and `{b}` both publish host port {}/{}",
                                mb.host_port, mb.protocol
                            ),
                        )
                        .with_help(
                            "give each container its own host port (or its own host address)",
                        )
                        .with_related(
                            Location::new(&entries[*a].source, span(pa)),
                            format!("`{a}` publishes it here"),
                        ),
                    );
                    bad.insert((*a).clone());
                    bad.insert((*b).clone());
                }
            }
        }
        for n in bad {
            containers.remove(&n);
            self.mark_broken(Kind::Container, &n);
        }
    }

    pub(super) fn check_static_addresses(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawContainer>>,
        containers: &mut BTreeMap<Name, Container>,
        desired: &Desired,
    ) {
        let mut taken: BTreeMap<(Name, Ipv4Addr), Name> = BTreeMap::new();
        let mut bad = BTreeSet::new();
        for (name, c) in containers.iter() {
            let ContainerNetwork::Bridge(attachments) = &c.network else {
                continue;
            };
            for a in attachments {
                let Some(ip) = a.ip else { continue };
                if let Some(other) = taken.get(&(a.network.clone(), ip)) {
                    let e = &entries[name];
                    let at = e
                        .raw
                        .networks
                        .iter()
                        .find(|n| n.get_ref().clone().into_table().name == a.network.as_str())
                        .map_or(e.key_span.clone(), span);
                    let subnet = desired
                        .networks
                        .get(&a.network)
                        .map(|n| n.subnet.to_string())
                        .unwrap_or_default();
                    self.diagnostics.push(
                        e.diag(Code::AddressConflict, at, format!("containers `{other}` and `{name}` both ask for {ip} on network `{}`", a.network))
                            .with_help(format!("give each container its own address in {subnet}"))
                            .with_related(entries[other].location(), format!("`{other}` is declared here")),
                    );
                    bad.insert(other.clone());
                    bad.insert(name.clone());
                } else {
                    taken.insert((a.network.clone(), ip), name.clone());
                }
            }
        }
        for n in bad {
            containers.remove(&n);
            self.mark_broken(Kind::Container, &n);
        }
    }
}
