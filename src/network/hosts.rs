//! Names: each container's /etc/hosts lists every container on its networks (name and
//! aliases) from the leases. The file is bind-mounted, so it is rewritten in place (a
//! rename would leave the container reading the old inode): one write of the whole text,
//! then a truncate to its length.

use std::collections::BTreeSet;
use std::io::{Seek, Write};
use std::net::IpAddr;
use std::path::Path;

use super::record::Lease;
use crate::state::etc::HostEntries;

/// The hosts entries of the container `me`: its own addresses first (with its hostname),
/// then the others', network by network; a name is listed once, at its first address. Of
/// two containers of one name (a start-first update), the one serving comes first.
pub(crate) fn entries_for(me: &str, my_hostname: &str, leases: &[Lease]) -> HostEntries {
    let mut out: HostEntries = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mine = leases.iter().filter(|l| l.container == me);
    let mut others: Vec<&Lease> = leases.iter().filter(|l| l.container != me).collect();
    others.sort_by_key(|l| std::cmp::Reverse(l.claim));
    for lease in mine.chain(others) {
        let mut names: Vec<String> = Vec::new();
        let own_hostname = (lease.container == me).then_some(my_hostname);
        let candidates = std::iter::once(lease.name.as_str())
            .chain(own_hostname)
            .chain(lease.aliases.iter().map(String::as_str));
        for name in candidates {
            if seen.insert(name.to_string()) {
                names.push(name.to_string());
            }
        }
        if !names.is_empty() {
            out.push((IpAddr::V4(lease.ip), names));
        }
    }
    out
}

/// Rewrite an existing hosts file in place; a missing one (never started) is left missing.
/// A shorter text is first written padded to the old length with a comment line, then the
/// file is truncated: a reader in between sees the new entries and a comment, never the tail
/// of the old text.
pub(crate) fn rewrite_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let old_len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
    let mut bytes = text.as_bytes().to_vec();
    if old_len > bytes.len() {
        let pad = old_len - bytes.len();
        // "#" … "\n"; a single byte of padding is a newline alone (an empty line).
        if pad >= 2 {
            bytes.push(b'#');
            bytes.extend(std::iter::repeat_n(b' ', pad - 2));
        }
        bytes.push(b'\n');
    }
    file.seek(std::io::SeekFrom::Start(0))?;
    file.write_all(&bytes)?;
    file.set_len(text.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(container: &str, name: &str, ip: &str, aliases: &[&str]) -> Lease {
        Lease {
            network: "front".into(),
            ip: ip.parse().unwrap(),
            container: container.into(),
            name: name.into(),
            hostname: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ports: vec![],
            claim: None,
            manual: false,
        }
    }

    #[test]
    fn own_entry_first_then_peers_with_aliases() {
        let leases = vec![
            lease("db-1", "db", "10.89.0.2", &["postgres"]),
            lease("web-1", "web", "10.89.0.3", &[]),
        ];
        let e = entries_for("web-1", "web", &leases);
        assert_eq!(
            e,
            vec![
                ("10.89.0.3".parse().unwrap(), vec!["web".to_string()]),
                (
                    "10.89.0.2".parse().unwrap(),
                    vec!["db".to_string(), "postgres".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn a_name_on_two_networks_is_listed_once() {
        let mut second = lease("db-1", "db", "10.90.0.2", &[]);
        second.network = "back".into();
        let leases = vec![lease("db-1", "db", "10.89.0.2", &[]), second];
        let e = entries_for("web-1", "web", &leases);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "10.89.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn own_hostname_beside_own_name() {
        let mut me = lease("web-1", "web", "10.89.0.3", &[]);
        me.hostname = "frontend".into();
        let e = entries_for("web-1", "frontend", &[me]);
        assert_eq!(e[0].1, vec!["web".to_string(), "frontend".to_string()]);
    }

    #[test]
    fn in_place_rewrite_keeps_the_inode_and_shrinks() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts");
        std::fs::write(&p, "a long first version of the file\n").unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        rewrite_in_place(&p, "short\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "short\n");
        rewrite_in_place(&p, "a longer second version\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "a longer second version\n"
        );
        rewrite_in_place(&p, "short\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "short\n");
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino);
        rewrite_in_place(&dir.path().join("missing"), "x").unwrap();
        assert!(!dir.path().join("missing").exists());
    }
}
