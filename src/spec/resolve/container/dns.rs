//! `dns`, `dns_search`, `dns_options` and `extra_hosts`: what the container's resolv.conf
//! and hosts file say beyond berth's own entries.

use std::net::IpAddr;

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::dns::{self, DnsSettings, ExtraHost};
use crate::spec::raw::{NetworkMode, RawContainer, RawExtraHosts};
use crate::spec::resolve::span;

use super::report::Report;

pub(super) fn resolve_dns(raw: &RawContainer, report: &mut Report) -> DnsSettings {
    let what = report.what();
    let mut out = DnsSettings::default();
    match raw.network.as_ref().map(|m| m.get_ref()) {
        Some(NetworkMode::Host) => {
            let first = raw
                .dns
                .first()
                .or(raw.dns_search.first())
                .or(raw.dns_options.first());
            if let Some(at) = first {
                report.push(
                    report
                        .diag(
                            Code::Conflict,
                            span(at),
                            format!("{what} shares the host's network and so its resolv.conf"),
                        )
                        .with_help("remove `dns`, `dns_search` and `dns_options`, or give the container a network of its own"),
                );
            }
        }
        Some(NetworkMode::Container(owner)) => {
            let first = raw
                .dns
                .first()
                .or(raw.dns_search.first())
                .or(raw.dns_options.first());
            let extra = raw.extra_hosts.as_ref().map(span);
            if let Some(at) = first.map(span).or(extra) {
                report.push(
                    report
                        .diag(
                            Code::Conflict,
                            at,
                            format!(
                                "{what} shares the network of `{owner}` and so its resolv.conf and hosts file"
                            ),
                        )
                        .with_help(format!(
                            "set `dns`, `dns_search`, `dns_options` and `extra_hosts` on `{owner}` instead"
                        )),
                );
            }
        }
        Some(NetworkMode::None) | None => {}
    }
    for s in &raw.dns {
        match s.get_ref().parse::<IpAddr>() {
            Ok(ip) => out.servers.push(ip),
            Err(_) => report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(s),
                        format!("{what}: invalid name server `{}`", s.get_ref()),
                    )
                    .with_help("write an IPv4 or IPv6 address, e.g. \"10.0.0.2\" or \"fd00::53\""),
            ),
        }
    }
    if let Some(extra) = raw.dns.get(dns::MAX_SERVERS) {
        report.push(
            report
                .diag(
                    Code::InvalidValue,
                    span(extra),
                    format!(
                        "{what}: more than {} name servers; resolvers ignore the rest",
                        dns::MAX_SERVERS
                    ),
                )
                .with_help("list at most 3 addresses in `dns`"),
        );
    }
    for s in &raw.dns_search {
        if dns::valid_domain(s.get_ref()) {
            out.search.push(s.get_ref().clone());
        } else {
            report.push(
                report
                    .diag(Code::InvalidValue, span(s), format!("{what}: invalid search domain `{}`", s.get_ref()))
                    .with_help("a domain is dot-separated labels of letters, digits, `-` and `_`, e.g. \"example.com\" (no trailing dot)"),
            );
        }
    }
    for s in &raw.dns_options {
        match dns::check_option(s.get_ref()) {
            Ok(()) => out.options.push(s.get_ref().clone()),
            Err(why) => report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(s),
                        format!("{what}: invalid resolver option `{}`: {why}", s.get_ref()),
                    )
                    .with_help(format!("resolv.conf knows {}", dns::known_options())),
            ),
        }
    }
    if let Some(extra) = &raw.extra_hosts {
        out.extra_hosts = resolve_extra_hosts(extra, report);
    }
    out
}

fn resolve_extra_hosts(extra: &Spanned<RawExtraHosts>, report: &mut Report) -> Vec<ExtraHost> {
    let what = report.what();
    let parsed: Vec<(std::ops::Range<usize>, Result<ExtraHost, String>)> = match extra.get_ref() {
        RawExtraHosts::List(items) => items
            .iter()
            .map(|s| (span(s), dns::parse_extra_host(s.get_ref())))
            .collect(),
        RawExtraHosts::Map(entries) => {
            let mut entries: Vec<_> = entries.iter().collect();
            entries.sort_by(|a, b| a.0.get_ref().cmp(b.0.get_ref()));
            entries
                .into_iter()
                .map(|(h, ip)| {
                    // Point at whichever of the two is wrong.
                    let at = if dns::valid_domain(h.get_ref()) {
                        span(ip)
                    } else {
                        span(h)
                    };
                    (at, dns::extra_host(h.get_ref(), ip.get_ref()))
                })
                .collect()
        }
    };
    let mut out = Vec::new();
    for (at, entry) in parsed {
        match entry {
            Ok(e) => out.push(e),
            Err(why) => report.push(
                report
                    .diag(Code::InvalidValue, at, format!("{what}: invalid `extra_hosts` entry: {why}"))
                    .with_help("write [\"HOST:IP\"], e.g. [\"db.local:10.0.0.5\"], or { \"db.local\" = \"10.0.0.5\" }"),
            ),
        }
    }
    out
}
