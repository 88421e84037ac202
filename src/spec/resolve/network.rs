//! `[network.NAME]` entries, subnets that overlap, and the usable addresses of a subnet.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::spec::diag::Code;
use crate::spec::loader::{Entry, Kind};
use crate::spec::model::{Desired, Network};
use crate::spec::name::Name;
use crate::spec::raw::RawNetwork;

use super::{Resolver, missing, origin, span};

impl Resolver {
    pub(super) fn network(&mut self, e: &Entry<RawNetwork>) -> Option<Network> {
        let raw = &e.raw;
        let Some(subnet_text) = &raw.subnet else {
            self.push_opt(missing(e, Kind::Network, "subnet", "\"10.89.1.0/24\""));
            return None;
        };
        let text = subnet_text.get_ref();
        let subnet: Ipv4Net = match text.parse::<Ipv4Net>() {
            Ok(net) => net,
            Err(_) => {
                let help = if text.parse::<std::net::Ipv6Addr>().is_ok() || text.contains(':') {
                    "IPv6 subnets are not supported yet; write an IPv4 CIDR such as \"10.89.1.0/24\"".to_string()
                } else if text.parse::<Ipv4Addr>().is_ok() {
                    format!("add a prefix length, e.g. \"{text}/24\"")
                } else {
                    "write an IPv4 subnet in CIDR notation, e.g. \"10.89.1.0/24\"".to_string()
                };
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(subnet_text),
                        format!("network `{}`: invalid subnet `{text}`", e.name),
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        if subnet.network() != subnet.addr() {
            self.push(
                e.diag(
                    Code::InvalidValue,
                    span(subnet_text),
                    format!(
                        "network `{}`: `{text}` is an address inside a subnet, not a subnet",
                        e.name
                    ),
                )
                .with_help(format!("did you mean \"{}\"?", subnet.trunc())),
            );
            return None;
        }
        if !(8..=29).contains(&subnet.prefix_len()) {
            self.push(
                e.diag(Code::InvalidValue, span(subnet_text), format!("network `{}`: prefix /{} is out of range", e.name, subnet.prefix_len()))
                    .with_help("use a prefix between /8 and /29, e.g. \"10.89.1.0/24\" (a /29 holds the gateway and 5 containers)"),
            );
            return None;
        }
        let gateway = match &raw.gateway {
            None => first_host(subnet),
            Some(g) => {
                match g.get_ref().parse::<Ipv4Addr>() {
                    Ok(ip) if usable_host(subnet, ip) => ip,
                    Ok(ip) => {
                        self.push(
                        e.diag(Code::InvalidValue, span(g), format!("network `{}`: gateway {ip} is not a usable address of {subnet}", e.name))
                            .with_help(format!("pick an address between {} and {}, or leave `gateway` out to use {}", first_host(subnet), last_host(subnet), first_host(subnet))),
                    );
                        return None;
                    }
                    Err(_) => {
                        self.push(
                            e.diag(
                                Code::InvalidValue,
                                span(g),
                                format!(
                                    "network `{}`: invalid gateway address `{}`",
                                    e.name,
                                    g.get_ref()
                                ),
                            )
                            .with_help("write an IPv4 address, e.g. \"10.89.1.1\""),
                        );
                        return None;
                    }
                }
            }
        };
        Some(Network {
            origin: origin(e),
            subnet,
            gateway,
            internal: raw.internal,
            labels: raw.labels.clone(),
        })
    }

    pub(super) fn check_subnet_overlaps(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawNetwork>>,
        desired: &mut Desired,
    ) {
        let nets: Vec<(&Name, Ipv4Net)> = desired
            .networks
            .iter()
            .map(|(n, net)| (n, net.subnet))
            .collect();
        let mut overlapping = BTreeSet::new();
        for (i, (a, na)) in nets.iter().enumerate() {
            for (b, nb) in &nets[i + 1..] {
                if na.contains(&nb.network()) || nb.contains(&na.network()) {
                    let e = &entries[*b];
                    let at = e
                        .raw
                        .subnet
                        .as_ref()
                        .map(span)
                        .unwrap_or(e.key_span.clone());
                    let d = e
                        .diag(
                            Code::SubnetOverlap,
                            at,
                            format!("subnet {nb} of network `{b}` overlaps {na} of network `{a}`"),
                        )
                        .with_help(
                            "give every network its own subnet, e.g. 10.89.1.0/24 and 10.89.2.0/24",
                        )
                        .with_related(
                            entries[*a].location(),
                            format!("network `{a}` is declared here"),
                        );
                    self.diagnostics.push(d);
                    overlapping.insert((*a).clone());
                    overlapping.insert((*b).clone());
                }
            }
        }
        for name in overlapping {
            desired.networks.remove(&name);
            self.mark_broken(Kind::Network, &name);
        }
    }
}

pub(super) fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

pub(super) fn last_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.broadcast()) - 1)
}

/// Inside the subnet and neither its network nor its broadcast address.
pub(super) fn usable_host(net: Ipv4Net, ip: Ipv4Addr) -> bool {
    net.contains(&ip) && ip != net.network() && ip != net.broadcast()
}
