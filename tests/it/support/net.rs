//! What the network tests look at in the kernel (through iproute2 and nft, not through berth)
//! and how they talk to containers: plain HTTP over loopback, the host's own address, or
//! addresses on bridges the test made.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

/// Links whose alias marks them as the scope's: (name, alias).
pub fn links_of(scope: &str) -> Vec<(String, String)> {
    let out = Command::new("ip")
        .args(["-j", "link", "show"])
        .output()
        .expect("ip -j link");
    let links: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let prefix = format!("berth {scope} ");
    links
        .iter()
        .filter_map(|l| {
            let name = l.get("ifname")?.as_str()?.to_string();
            let alias = l.get("ifalias")?.as_str()?.to_string();
            alias.starts_with(&prefix).then_some((name, alias))
        })
        .collect()
}

/// `nft list table ip TABLE`, if it exists.
pub fn table(table: &str) -> Option<String> {
    let out = Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .expect("nft");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Delete what the scope left in the kernel; one problem line per leftover.
pub fn remove_leftovers(scope: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, alias) in links_of(scope) {
        problems.push(format!("link left behind: {name} ({alias})"));
        let _ = Command::new("ip").args(["link", "del", &name]).status();
    }
    if table(scope).is_some() {
        problems.push(format!("nftables table left behind: ip {scope}"));
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", scope])
            .status();
    }
    problems
}

/// `GET /` on `addr`: the body, or None if nothing answered within the timeout.
pub fn http_get(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some(body.to_string())
}

/// A global IPv4 address of this host outside loopback and berth's bridges.
pub fn host_address() -> Option<Ipv4Addr> {
    let out = Command::new("ip")
        .args(["-j", "-4", "addr", "show"])
        .output()
        .ok()?;
    let ifaces: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    ifaces
        .iter()
        .filter(|i| {
            i.get("ifname")
                .and_then(|n| n.as_str())
                .is_some_and(|n| n != "lo" && !n.starts_with("berth"))
        })
        .flat_map(|i| {
            i.get("addr_info")
                .and_then(|a| a.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| a.get("local")?.as_str()?.parse::<Ipv4Addr>().ok())
        .find(|ip| !ip.is_loopback())
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Another machine on the host's network, simulated: a network namespace joined to the host
/// by a veth pair, addressed on a /30 of its own. Removed when dropped.
pub struct Neighbour {
    pub netns: String,
    host_side: String,
    pub host_ip: Ipv4Addr,
}

impl Neighbour {
    /// `n` picks the /30 (10.214.n.0/30) and the names, unique per test.
    pub fn new(n: u8) -> Neighbour {
        let netns = format!("bnbr{n}");
        let host_side = format!("bnbr{n}h");
        let peer = format!("bnbr{n}n");
        let host_ip = Ipv4Addr::new(10, 214, n, 1);
        let me = Neighbour {
            netns: netns.clone(),
            host_side: host_side.clone(),
            host_ip,
        };
        let mine = format!("10.214.{n}.2/30");
        let host = format!("{host_ip}/30");
        for args in [
            vec!["netns", "add", &netns],
            vec![
                "link", "add", &host_side, "type", "veth", "peer", "name", &peer,
            ],
            vec!["link", "set", &peer, "netns", &netns],
            vec!["addr", "add", &host, "dev", &host_side],
            vec!["link", "set", &host_side, "up"],
            vec!["-n", &netns, "addr", "add", &mine, "dev", &peer],
            vec!["-n", &netns, "link", "set", &peer, "up"],
        ] {
            let status = Command::new("ip").args(&args).status().expect("ip");
            assert!(status.success(), "ip {args:?}");
        }
        me
    }

    /// Route `prefix` to the host, as a neighbour that wants to reach it would.
    pub fn route(&self, prefix: &str) {
        let gw = self.host_ip.to_string();
        let status = Command::new("ip")
            .args(["-n", &self.netns, "route", "add", prefix, "via", &gw])
            .status()
            .expect("ip");
        assert!(status.success(), "route {prefix}");
    }

    /// `GET url` from the neighbour (busybox wget): the body, or None.
    pub fn fetch(&self, url: &str) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "timeout", "3"])
            .args(["busybox", "wget", "-q", "-O", "-", url])
            .output()
            .expect("ip netns exec");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        // Usually gone with the namespace already.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_side])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
