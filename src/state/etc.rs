//! The files berth writes for a container's /etc: hostname, hosts and resolv.conf. They live
//! in the container's directory and are bind-mounted, so the image is never modified.

use std::net::IpAddr;
use std::path::Path;

use crate::fsutil::{self, FsError};
use crate::spec::dns::{DnsSettings, ExtraHost};

const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of real upstream servers, used when /etc/resolv.conf points at
/// its stub on 127.0.0.53, which a container with its own network cannot reach.
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// Peers' `hosts` lines: (address, names).
pub(crate) type HostEntries = Vec<(IpAddr, Vec<String>)>;

/// Write hostname, hosts and resolv.conf into `dir`.
pub(crate) fn write(
    dir: &Path,
    hostname: &str,
    own_network: bool,
    peers: &HostEntries,
    dns: &DnsSettings,
) -> Result<(), FsError> {
    std::fs::create_dir_all(dir).map_err(fsutil::io_err("creating", dir))?;
    fsutil::write_replace(&dir.join("hostname"), format!("{hostname}\n").as_bytes())?;
    let host_hosts = if own_network {
        None
    } else {
        std::fs::read_to_string("/etc/hosts").ok()
    };
    fsutil::write_replace(
        &dir.join("hosts"),
        hosts(hostname, host_hosts.as_deref(), peers, &dns.extra_hosts).as_bytes(),
    )?;
    fsutil::write_replace(
        &dir.join("resolv.conf"),
        resolv_conf(own_network, None, dns).as_bytes(),
    )?;
    Ok(())
}

/// The container's resolv.conf: the host's (with a network of its own, minus loopback
/// servers), then its `dns` settings. With `resolver` (berth's, on its network's gateway)
/// and no `dns` servers of its own: that resolver first, the host's servers after it (tried
/// only when it does not answer).
pub(crate) fn resolv_conf(
    own_network: bool,
    resolver: Option<IpAddr>,
    dns: &DnsSettings,
) -> String {
    let host = std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
    if !own_network {
        return host;
    }
    let upstream = std::fs::read_to_string(RESOLVED_UPSTREAM).ok();
    let base = resolv_conf_for_own_network(&host, upstream.as_deref());
    with_settings(&base, resolver, dns)
}

/// `base` with its servers, search domains and options replaced where `dns` or `resolver`
/// say so; unchanged when neither does.
fn with_settings(base: &str, resolver: Option<IpAddr>, dns: &DnsSettings) -> String {
    if resolver.is_none()
        && dns.servers.is_empty()
        && dns.search.is_empty()
        && dns.options.is_empty()
    {
        return base.to_string();
    }
    let directive = |line: &str| line.split_whitespace().next().map(str::to_string);
    let values = |name: &str| -> Vec<String> {
        base.lines()
            .filter(|l| directive(l).as_deref() == Some(name))
            .flat_map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let servers: Vec<String> = if dns.servers.is_empty() {
        resolver
            .map(|r| r.to_string())
            .into_iter()
            .chain(values("nameserver"))
            .take(crate::spec::dns::MAX_SERVERS)
            .collect()
    } else {
        dns.servers.iter().map(IpAddr::to_string).collect()
    };
    let search = match (dns.search.is_empty(), values("search")) {
        (false, _) => dns.search.clone(),
        (true, s) if s.is_empty() => values("domain"),
        (true, s) => s,
    };
    let options = if dns.options.is_empty() {
        values("options")
    } else {
        dns.options.clone()
    };
    let mut out: String = base
        .lines()
        .filter(|l| {
            !matches!(
                directive(l).as_deref(),
                Some("nameserver" | "search" | "domain" | "options")
            )
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// With the host's network, the host's own hosts file; otherwise loopback names, the
/// hostname (or the peers' entries, which name it); then `extra_hosts`.
pub(crate) fn hosts(
    hostname: &str,
    host_hosts: Option<&str>,
    peers: &HostEntries,
    extra: &[ExtraHost],
) -> String {
    let mut out = match host_hosts {
        Some(host) => host.to_string(),
        None => {
            let mut out = String::from(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
                 fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
                 ff02::2\tip6-allrouters\n",
            );
            if peers.is_empty() {
                out.push_str(&format!("127.0.1.1\t{hostname}\n"));
            }
            for (addr, names) in peers {
                out.push_str(&format!("{addr}\t{}\n", names.join(" ")));
            }
            out
        }
    };
    if !extra.is_empty() && !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for e in extra {
        out.push_str(&format!("{}\t{}\n", e.ip, e.host));
    }
    out
}

/// The host's resolver settings minus loopback name servers, which would mean the
/// container's own loopback. If that leaves none and systemd-resolved's upstream list
/// exists, use that list instead.
fn resolv_conf_for_own_network(host: &str, resolved_upstream: Option<&str>) -> String {
    let filtered = without_loopback_servers(host);
    if has_nameserver(&filtered) {
        return filtered;
    }
    if let Some(upstream) = resolved_upstream {
        let upstream = without_loopback_servers(upstream);
        if has_nameserver(&upstream) {
            return upstream;
        }
    }
    filtered
}

fn without_loopback_servers(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(addr)) => !addr
                    .split('%')
                    .next()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .is_some_and(|a| a.is_loopback()),
                _ => true,
            }
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn has_nameserver(text: &str) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().next() == Some("nameserver"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_are_dropped_and_the_rest_kept() {
        let host = "# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n";
        assert_eq!(
            resolv_conf_for_own_network(host, None),
            "# generated\nsearch example.org\nnameserver 10.0.0.2\noptions edns0\n"
        );
    }

    #[test]
    fn systemd_resolved_stub_is_replaced_by_its_upstream_list() {
        let host = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        let upstream = "nameserver 192.168.1.1\nnameserver ::1\nsearch lan\n";
        assert_eq!(
            resolv_conf_for_own_network(host, Some(upstream)),
            "nameserver 192.168.1.1\nsearch lan\n"
        );
        assert_eq!(
            resolv_conf_for_own_network(host, None),
            "options edns0 trust-ad\nsearch lan\n"
        );
    }

    #[test]
    fn hosts_maps_the_hostname_and_extra_entries() {
        let own = hosts("web", None, &Vec::new(), &[]);
        assert!(own.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(own.ends_with("127.0.1.1\tweb\n"), "{own}");
        let extra = vec![(
            "10.89.0.5".parse().expect("ip"),
            vec!["web".to_string(), "www".to_string()],
        )];
        let with = hosts("web", None, &extra, &[]);
        assert!(with.ends_with("10.89.0.5\tweb www\n"), "{with}");
        assert!(!with.contains("127.0.1.1"));
        assert_eq!(
            hosts("web", Some("1.2.3.4 h\n"), &extra, &[]),
            "1.2.3.4 h\n"
        );
        let added = [ExtraHost {
            host: "db.local".into(),
            ip: "10.0.0.5".parse().expect("ip"),
        }];
        let own = hosts("web", None, &Vec::new(), &added);
        assert!(
            own.ends_with("127.0.1.1\tweb\n10.0.0.5\tdb.local\n"),
            "{own}"
        );
        assert_eq!(
            hosts("web", Some("1.2.3.4 h"), &extra, &added),
            "1.2.3.4 h\n10.0.0.5\tdb.local\n"
        );
    }

    #[test]
    fn resolver_first_then_host_servers_and_settings_replace() {
        let base = "# host\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\nsearch lan\noptions edns0\n";
        let none = DnsSettings::default();
        assert_eq!(with_settings(base, None, &none), base);
        let gw: IpAddr = "10.89.1.1".parse().expect("ip");
        assert_eq!(
            with_settings(base, Some(gw), &none),
            "# host\nnameserver 10.89.1.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch lan\noptions edns0\n"
        );
        let own = DnsSettings {
            servers: vec!["192.0.2.53".parse().expect("ip")],
            search: vec!["example.com".into(), "corp".into()],
            options: vec!["ndots:2".into()],
            extra_hosts: vec![],
        };
        assert_eq!(
            with_settings(base, Some(gw), &own),
            "# host\nnameserver 192.0.2.53\nsearch example.com corp\noptions ndots:2\n"
        );
    }
}
