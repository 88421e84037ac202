//! `ports`: published ports need a bridge network to forward into (the default network
//! when none is named), an IPv4 host address, a network that takes traffic from outside,
//! and one mapping per host port. Ranges are expanded here, one mapping per port.

use std::collections::BTreeMap;

use crate::spec::diag::{Code, Location};
use crate::spec::model::{ContainerNetwork, Network};
use crate::spec::name::Name;
use crate::spec::port::PortMapping;
use crate::spec::raw::{NetworkMode, RawContainer};
use crate::spec::resolve::span;

use super::report::Report;

/// The published ports, sorted. Reads `ports`, and `network` and `networks` as written;
/// `network` is what they resolved to.
pub(super) fn resolve_ports(
    raw: &RawContainer,
    network: &ContainerNetwork,
    networks: &BTreeMap<Name, Network>,
    report: &mut Report,
) -> Vec<PortMapping> {
    let what = report.what();
    let mut ports: Vec<PortMapping> = raw
        .ports
        .iter()
        .flat_map(|p| p.get_ref().mappings())
        .collect();
    if !raw.ports.is_empty()
        && raw.networks.is_empty()
        && !matches!(network, ContainerNetwork::Bridge(_))
    {
        let hint = match raw.network.as_ref().map(|m| m.get_ref()) {
            Some(NetworkMode::Container(_)) => {
                "it shares another container's network: publish the ports on that container, which serves them for both"
            }
            Some(NetworkMode::Host) => {
                "with `network = \"host\"` the container binds host ports itself: remove `ports`"
            }
            Some(NetworkMode::None) => {
                "remove `network = \"none\"` (a container that publishes ports joins the network `default`), or join a network (`networks = [\"NAME\"]`)"
            }
            None => {
                "join a network (`networks = [\"NAME\"]`) so the port can be forwarded to the container"
            }
        };
        report.push(
            report
                .diag(
                    Code::Conflict,
                    span(&raw.ports[0]),
                    format!("{what} publishes ports but is on no bridge network"),
                )
                .with_help(hint),
        );
    }
    for p in &raw.ports {
        if matches!(p.get_ref().host_ip, Some(std::net::IpAddr::V6(_))) {
            report.push(
                report.diag(
                    Code::InvalidValue,
                    span(p),
                    format!("{what}: IPv6 host address in `{}`", p.get_ref()),
                )
                .with_help("bridge networks are IPv4 only, so an IPv6 address cannot be forwarded into them; publish on an IPv4 address (\"127.0.0.1:8080:80\") or on every address (\"8080:80\")"),
            );
        }
    }
    if !raw.ports.is_empty()
        && let ContainerNetwork::Bridge(attachments) = network
        && !attachments.is_empty()
        && attachments
            .iter()
            .all(|a| networks.get(&a.network).is_some_and(|n| n.internal))
    {
        report.push(
            report.diag(
                Code::Conflict,
                span(&raw.ports[0]),
                format!("{what} publishes ports but joins only internal networks"),
            )
            .with_help("internal networks have no traffic from outside; join a network without `internal = true` as well, or remove `ports`"),
        );
    }
    for (i, p) in raw.ports.iter().enumerate() {
        if let Some((q, port)) = raw.ports[..i]
            .iter()
            .find_map(|q| Some((q, q.get_ref().first_collision(p.get_ref())?)))
        {
            report.push(
                report
                    .diag(
                        Code::PortConflict,
                        span(p),
                        format!(
                            "{what} publishes host port {port}/{} twice",
                            p.get_ref().protocol
                        ),
                    )
                    .with_help("publish each host port once")
                    .with_related(
                        Location::new(report.source(), span(q)),
                        "also published here",
                    ),
            );
        }
    }
    ports.sort();
    ports
}
