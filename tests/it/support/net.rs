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
