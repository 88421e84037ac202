//! `network` and `networks`: the host's namespace, none, or attachments to bridge networks
//! with an optional static address and aliases; a container that publishes ports and names
//! no network joins the default network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::ops::Range;

use toml::Spanned;

use crate::spec::default_network;
use crate::spec::diag::Code;
use crate::spec::loader::Kind;
use crate::spec::model::{Attachment, ContainerNetwork, Network};
use crate::spec::name::Name;
use crate::spec::raw::{AttachmentEntry, NetworkMode};
use crate::spec::resolve::network::{first_host, last_host, usable_host};
use crate::spec::resolve::{Names, span};

use super::report::Report;

/// The container's network: `network` (host or none) or the `networks` it joins, not both.
/// With neither, only loopback, as in 0.1.0 — unless it publishes ports (which 0.1.0
/// refused), then the default network: see docs/design/networks.md for why the default
/// stops there.
pub(super) fn resolve_network(
    mode: Option<&Spanned<NetworkMode>>,
    attachments: &[Spanned<AttachmentEntry>],
    ports_at: Option<Range<usize>>,
    networks: &BTreeMap<Name, Network>,
    names: &Names,
    report: &mut Report,
) -> ContainerNetwork {
    let what = report.what();
    match (mode, attachments.is_empty()) {
        (Some(mode), false) => {
            report.push(
                report
                    .diag(
                        Code::Conflict,
                        span(mode),
                        format!(
                            "{what}: `network = \"{}\"` cannot be combined with `networks`",
                            mode.get_ref()
                        ),
                    )
                    .with_help("keep either `network` (host, none or container:NAME) or the list of `networks`"),
            );
            ContainerNetwork::None
        }
        (Some(mode), true) => match mode.get_ref() {
            NetworkMode::Host => ContainerNetwork::Host,
            NetworkMode::None => ContainerNetwork::None,
            NetworkMode::Container(owner) => {
                match super::namespaces::owner(owner, "network", span(mode), names, report) {
                    Some(owner) => ContainerNetwork::Container(owner),
                    None => ContainerNetwork::None,
                }
            }
        },
        (None, true) => match (default_network::NAME.parse::<Name>(), ports_at) {
            (Ok(name), Some(at))
                if networks.contains_key(&name)
                    || names.is_declared(Kind::Network, default_network::NAME)
                    || names.unparsed =>
            {
                if !networks.contains_key(&name) {
                    // A declared `[network.default]` that is broken (reported there), or
                    // none offered because a file that failed to parse may declare it: the
                    // container waits.
                    report.reference(names, Kind::Network, default_network::NAME, at);
                }
                ContainerNetwork::Bridge(vec![Attachment {
                    network: name,
                    ip: None,
                    aliases: Vec::new(),
                }])
            }
            _ => ContainerNetwork::None,
        },
        (None, false) => {
            ContainerNetwork::Bridge(resolve_attachments(attachments, networks, names, report))
        }
    }
}

/// The bridge networks joined, sorted by network: each declared, usable and joined once.
fn resolve_attachments(
    entries: &[Spanned<AttachmentEntry>],
    networks: &BTreeMap<Name, Network>,
    names: &Names,
    report: &mut Report,
) -> Vec<Attachment> {
    let what = report.what();
    let mut attachments: Vec<Attachment> = Vec::new();
    for entry in entries {
        let at = span(entry);
        let t = entry.get_ref().clone().into_table();
        // The built-in default network is offered without a declaration.
        let builtin = t.name == default_network::NAME
            && !names.is_declared(Kind::Network, &t.name)
            && networks.keys().any(|n| n.as_str() == t.name);
        if !builtin && !report.reference(names, Kind::Network, &t.name, at.clone()) {
            continue;
        }
        let Ok(net_name) = t.name.parse::<Name>() else {
            continue;
        };
        if attachments.iter().any(|a| a.network == net_name) {
            report.push(
                report
                    .diag(
                        Code::Conflict,
                        at,
                        format!("{what} joins network `{net_name}` twice"),
                    )
                    .with_help("list each network once"),
            );
            continue;
        }
        let ip = match &t.ip {
            None => None,
            Some(text) => match text.parse::<Ipv4Addr>() {
                Ok(ip) => {
                    let Some(net) = networks.get(&net_name) else {
                        continue;
                    };
                    if !usable_host(net.subnet, ip) || ip == net.gateway {
                        // Outside the subnet is a bad value; the gateway's own
                        // address is taken.
                        let code = if ip == net.gateway {
                            Code::AddressConflict
                        } else {
                            Code::InvalidValue
                        };
                        report.push(
                            report.diag(code, at.clone(), format!("{what}: address {ip} is not usable on network `{net_name}` ({})", net.subnet))
                                .with_help(format!("pick an address between {} and {} other than the gateway {}", first_host(net.subnet), last_host(net.subnet), net.gateway)),
                        );
                    }
                    Some(ip)
                }
                Err(_) => {
                    report.push(
                        report
                            .diag(
                                Code::InvalidValue,
                                at.clone(),
                                format!("{what}: invalid address `{text}`"),
                            )
                            .with_help("write an IPv4 address, e.g. \"10.89.1.10\""),
                    );
                    None
                }
            },
        };
        let aliases = resolve_aliases(&t.aliases, at, report);
        attachments.push(Attachment {
            network: net_name,
            ip,
            aliases,
        });
    }
    attachments.sort_by(|a, b| a.network.cmp(&b.network));
    attachments
}

/// An attachment's `aliases`: valid names, sorted, each once. Problems point at the
/// attachment (`at`): the aliases themselves carry no position.
fn resolve_aliases(aliases: &[String], at: Range<usize>, report: &mut Report) -> Vec<Name> {
    let what = report.what();
    let mut resolved = BTreeSet::new();
    for alias in aliases {
        match alias.parse::<Name>() {
            Ok(a) => drop(resolved.insert(a)),
            Err(err) => report.hinted(
                report.diag(
                    Code::InvalidName,
                    at.clone(),
                    format!("{what}: invalid alias `{alias}`: {err}"),
                ),
                &err,
            ),
        }
    }
    resolved.into_iter().collect()
}
