//! The files berth writes for a container's /etc: hostname, hosts and resolv.conf. They live
//! in the container's directory and are bind-mounted, so the image is never modified.

use std::net::IpAddr;
use std::path::Path;

use crate::fsutil::{self, FsError};

const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of real upstream servers, used when /etc/resolv.conf points at
/// its stub on 127.0.0.53, which a container with its own network cannot reach.
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// Extra `hosts` lines: (address, names).
pub(crate) type HostEntries = Vec<(IpAddr, Vec<String>)>;

/// Write hostname, hosts and resolv.conf into `dir`.
pub(crate) fn write(
    dir: &Path,
    hostname: &str,
    own_network: bool,
    extra_hosts: &HostEntries,
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
        hosts(hostname, host_hosts.as_deref(), extra_hosts).as_bytes(),
    )?;
    let host = std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
    let resolv = if own_network {
        let upstream = std::fs::read_to_string(RESOLVED_UPSTREAM).ok();
        resolv_conf_for_own_network(&host, upstream.as_deref())
    } else {
        host
    };
    fsutil::write_replace(&dir.join("resolv.conf"), resolv.as_bytes())?;
    Ok(())
}

/// With the host's network, the host's own hosts file; otherwise loopback names, the
/// hostname, then any extra entries.
pub(crate) fn hosts(hostname: &str, host_hosts: Option<&str>, extra: &HostEntries) -> String {
    if let Some(host) = host_hosts {
        return host.to_string();
    }
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    if extra.is_empty() {
        out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    }
    for (addr, names) in extra {
        out.push_str(&format!("{addr}\t{}\n", names.join(" ")));
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
        let own = hosts("web", None, &Vec::new());
        assert!(own.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(own.ends_with("127.0.1.1\tweb\n"), "{own}");
        let extra = vec![(
            "10.89.0.5".parse().expect("ip"),
            vec!["web".to_string(), "www".to_string()],
        )];
        let with = hosts("web", None, &extra);
        assert!(with.ends_with("10.89.0.5\tweb www\n"), "{with}");
        assert!(!with.contains("127.0.1.1"));
        assert_eq!(hosts("web", Some("1.2.3.4 h\n"), &extra), "1.2.3.4 h\n");
    }
}
