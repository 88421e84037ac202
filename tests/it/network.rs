//! Bridge networks end to end, as root: names between containers, isolation between
//! networks, published ports from 127.0.0.1 and from the host's own address, internal
//! networks, stable addresses, drift repair and pruning that leaves nothing behind.
//!
//! Traffic goes only to 127.0.0.1, to the host's own address, and to addresses on bridges
//! these tests create. Every test takes its own subnets, so tests running side by side never
//! share a route.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::agent::{Agent, sole_running, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::net::{free_port, host_address, http_get, links_of, table};
use crate::support::sandbox::Sandbox;

/// A /24 no other test of this run uses: 10.213.N.0/24.
pub(crate) fn subnet() -> (String, u8) {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (format!("10.213.{n}.0/24"), n)
}

fn setup() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    (sb, image)
}

/// An HTTP server answering `body` on port 80.
fn http_server(name: &str, image: &str, body: &str, extra: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www\"]\nstop_timeout = \"1s\"\n{extra}\n"
    )
}

fn sleeper(name: &str, image: &str, extra: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sleep\", \"3600\"]\nstop_timeout = \"1s\"\n{extra}\n"
    )
}

fn apply(sb: &Sandbox) {
    let desired = sb.desired();
    let out = sb.berth(&[
        "apply",
        desired.to_str().expect("utf-8"),
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(
        out.status.success(),
        "apply failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `berth exec NAME -- ARGS…`: (success, stdout).
fn exec(sb: &Sandbox, name: &str, args: &[&str]) -> (bool, String) {
    let mut full = vec!["exec", name, "--"];
    full.extend_from_slice(args);
    let out = sb.berth(&full);
    if !out.status.success() {
        eprintln!(
            "berth exec {name} -- {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `wget` from inside `from`: the body, or None if it could not connect.
fn fetch_from(sb: &Sandbox, from: &str, url: &str) -> Option<String> {
    let (ok, out) = exec(sb, from, &["timeout", "3", "wget", "-q", "-O", "-", url]);
    ok.then(|| out.trim().to_string())
}

/// The container's IPv4 address on its interface `eth0`.
fn address_of(sb: &Sandbox, name: &str) -> Ipv4Addr {
    let (ok, out) = exec(sb, name, &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(ok, "ip addr in {name}");
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no address on eth0 of {name}: {out}"))
}

fn scope(sb: &Sandbox) -> String {
    sb.runtime.layout().scope.clone()
}

/// The name of the bridge berth made for `network`.
fn bridge_of(sb: &Sandbox, network: &str) -> String {
    let suffix = format!(" network {network}");
    links_of(&scope(sb))
        .into_iter()
        .find(|(_, alias)| alias.ends_with(&suffix) && !alias.contains(" container "))
        .map(|(name, _)| name)
        .unwrap_or_else(|| panic!("no bridge for network {network}"))
}

#[test]
fn containers_reach_each_other_by_name_and_published_ports_answer() {
    let (sb, image) = setup();
    let (front, _) = subnet();
    let (other, _) = subnet();
    let port = free_port();
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{front}\"\n\n[network.other]\nsubnet = \"{other}\"\n\n{}{}{}",
            http_server(
                "web",
                &image,
                "hello-web",
                &format!(
                    "networks = [{{ name = \"front\", aliases = [\"www\"] }}]\nports = [\"{port}:80\"]"
                )
            ),
            sleeper("client", &image, "networks = [\"front\"]"),
            sleeper("outsider", &image, "networks = [\"other\"]"),
        ),
    );
    apply(&sb);

    // By name and by alias, on the shared network.
    assert_eq!(
        fetch_from(&sb, "client", "http://web/").as_deref(),
        Some("hello-web")
    );
    assert_eq!(
        fetch_from(&sb, "client", "http://www/").as_deref(),
        Some("hello-web")
    );
    // Not from another network, not even by address.
    let web_ip = address_of(&sb, "web");
    assert_eq!(
        fetch_from(&sb, "outsider", &format!("http://{web_ip}/")),
        None
    );
    // (Not by name: an unknown name would be asked of the host's resolver, outside this
    // machine; the hosts file of `outsider` does not list `web`.)
    let (_, hosts) = exec(&sb, "outsider", &["cat", "/etc/hosts"]);
    assert!(!hosts.contains("web"), "{hosts}");

    // The published port, from the host: loopback and the host's own address.
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    assert_eq!(http_get(loopback).as_deref(), Some("hello-web\n"));
    let host = host_address().expect("the host has a non-loopback IPv4 address");
    assert_eq!(
        http_get(SocketAddr::from((host, port))).as_deref(),
        Some("hello-web\n")
    );

    // Stopped: the port no longer forwards (and nothing else answers on it).
    let out = sb.berth(&["stop", "web"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(http_get(loopback), None);
    let rules = table(&scope(&sb)).expect("berth's table");
    assert!(
        !rules.contains(&format!("dport {port}")),
        "a stopped container is still forwarded to:\n{rules}"
    );
}

#[test]
fn an_internal_network_has_no_way_out() {
    let (sb, image) = setup();
    let (inside, _) = subnet();
    let (outside, _) = subnet();
    sb.write(
        "net.toml",
        &format!(
            "[network.back]\nsubnet = \"{inside}\"\ninternal = true\n\n[network.front]\nsubnet = \"{outside}\"\n\n{}{}",
            sleeper("db", &image, "networks = [\"back\"]"),
            sleeper("api", &image, "networks = [\"front\"]"),
        ),
    );
    apply(&sb);
    let back = bridge_of(&sb, "back");
    let front = bridge_of(&sb, "front");
    let rules = table(&scope(&sb)).expect("berth's table");
    assert!(
        rules.contains(&format!(
            "ip saddr {outside} oifname != \"{front}\" masquerade"
        )),
        "the non-internal network is masqueraded:\n{rules}"
    );
    assert!(
        !rules.contains(&format!(
            "ip saddr {inside} oifname != \"{back}\" masquerade"
        )),
        "an internal network must not be masqueraded:\n{rules}"
    );
    assert!(
        rules.contains(&format!("iifname \"{back}\" oifname != \"{back}\" drop")),
        "an internal network's traffic stays on its bridge:\n{rules}"
    );
    // No default route inside: only the network's own subnet is reachable.
    let (ok, routes) = exec(&sb, "db", &["ip", "route"]);
    assert!(ok);
    assert!(!routes.contains("default"), "{routes}");
    let (ok, routes) = exec(&sb, "api", &["ip", "route"]);
    assert!(ok);
    assert!(routes.contains("default via"), "{routes}");
}

#[test]
fn addresses_survive_an_agent_restart_and_a_restart_in_place() {
    let (sb, image) = setup();
    let (net, _) = subnet();
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{net}\"\n\n{}{}",
            sleeper(
                "first",
                &image,
                "networks = [\"front\"]\nrestart = \"always\""
            ),
            sleeper(
                "second",
                &image,
                "networks = [\"front\"]\nrestart = \"always\""
            ),
        ),
    );
    let agent = Agent::start(&sb, &sb.desired());
    let first = sole_running(&sb, "first", Duration::from_secs(30));
    let second = sole_running(&sb, "second", Duration::from_secs(30));
    let before = (address_of(&sb, "first"), address_of(&sb, "second"));
    assert_ne!(before.0, before.1);
    assert!(agent.terminate().success());

    // While no agent runs, one container dies; the next agent restarts it in place.
    let out = sb.berth(&["stop", &second.id]);
    assert!(out.status.success());
    let _agent = Agent::start(&sb, &sb.desired());
    wait_for(Duration::from_secs(30), "second to run again", || {
        matches!(sb.state(&second.id), berth::runtime::State::Running(_)).then_some(())
    });
    assert_eq!(
        sole_running(&sb, "first", Duration::from_secs(5)).id,
        first.id
    );
    assert_eq!(
        (address_of(&sb, "first"), address_of(&sb, "second")),
        before,
        "addresses changed"
    );
    // And the other one still finds it by name at that address.
    let (ok, hosts) = exec(&sb, "first", &["cat", "/etc/hosts"]);
    assert!(ok);
    assert!(hosts.contains(&format!("{}\tsecond", before.1)), "{hosts}");
}

#[test]
fn a_deleted_bridge_and_flushed_rules_are_repaired() {
    let (sb, image) = setup();
    let (net, _) = subnet();
    let port = free_port();
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{net}\"\n\n{}{}",
            http_server(
                "web",
                &image,
                "repaired",
                &format!("networks = [\"front\"]\nports = [\"{port}:80\"]")
            ),
            sleeper("client", &image, "networks = [\"front\"]"),
        ),
    );
    let _agent = Agent::start(&sb, &sb.desired());
    sole_running(&sb, "web", Duration::from_secs(30));
    sole_running(&sb, "client", Duration::from_secs(30));
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_for(Duration::from_secs(10), "the port", || http_get(loopback));

    let bridge = bridge_of(&sb, "front");
    assert!(
        Command::new("ip")
            .args(["link", "del", &bridge])
            .status()
            .expect("ip")
            .success()
    );
    assert!(
        Command::new("nft")
            .args(["flush", "table", "ip", &scope(&sb)])
            .status()
            .expect("nft")
            .success()
    );
    assert_eq!(http_get(loopback), None, "the drift took the port away");
    // The agent's resync (1 s in tests) finds both and repairs them; the containers keep
    // running and are plugged into the new bridge.
    let body = wait_for(Duration::from_secs(20), "the port to answer again", || {
        http_get(loopback)
    });
    assert_eq!(body, "repaired\n");
    wait_for(Duration::from_secs(10), "names to work again", || {
        fetch_from(&sb, "client", "http://web/").filter(|b| b == "repaired")
    });
    // Under its recorded name, unless another state root (a test running beside this one)
    // took that name meanwhile: then under a new one, leaving the other's alone.
    let now = bridge_of(&sb, "front");
    if now != bridge {
        let other = Command::new("ip")
            .args(["-j", "link", "show", &bridge])
            .output()
            .expect("ip");
        let text = String::from_utf8_lossy(&other.stdout);
        assert!(
            other.status.success() && !text.contains(&format!("berth {} ", scope(&sb))),
            "moved from {bridge} to {now} although {bridge} was free: {text}"
        );
    }
}

#[test]
fn pruning_a_network_leaves_nothing_behind() {
    let (sb, image) = setup();
    let (net, _) = subnet();
    let port = free_port();
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{net}\"\n\n{}",
            http_server(
                "web",
                &image,
                "x",
                &format!("networks = [\"front\"]\nports = [\"{port}:80\"]")
            ),
        ),
    );
    apply(&sb);
    assert!(!links_of(&scope(&sb)).is_empty());
    assert!(table(&scope(&sb)).is_some());
    let leases = sb.root().join("networks/front/leases");
    assert_eq!(std::fs::read_dir(&leases).expect("leases").count(), 1);

    std::fs::remove_file(sb.desired().join("net.toml")).expect("rm");
    let desired = sb.desired();
    let out = sb.berth(&["apply", desired.to_str().expect("utf-8"), "--allow-empty"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("remove   network front"), "{text}");
    assert_eq!(links_of(&scope(&sb)), Vec::<(String, String)>::new());
    assert_eq!(table(&scope(&sb)), None);
    assert!(!sb.root().join("networks/front").exists());
    assert_eq!(
        http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        None
    );
}

#[test]
fn run_rm_on_a_network_gives_its_address_back() {
    let (sb, image) = setup();
    let (net, n) = subnet();
    let port = free_port();
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{net}\"\n\n[container.once]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"ip -4 -o addr show eth0; cat /etc/hosts\"]\nnetworks = [\"front\"]\nports = [\"{port}:80\"]\n"
        ),
    );
    let (code, out, err) = sb.run("once");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("inet 10.213.{n}.2/24")), "{out}");
    assert!(out.contains(&format!("10.213.{n}.2\tonce")), "{out}");
    let leases = sb.root().join("networks/front/leases");
    assert_eq!(std::fs::read_dir(&leases).expect("leases").count(), 0);
    let veths: Vec<_> = links_of(&scope(&sb))
        .into_iter()
        .filter(|(_, alias)| alias.contains(" container "))
        .collect();
    assert!(veths.is_empty(), "{veths:?}");
    let rules = table(&scope(&sb)).expect("the network stays, so does its table");
    assert!(!rules.contains(&format!("dport {port}")), "{rules}");
}

#[test]
fn a_neighbour_reaches_only_published_ports() {
    let (sb, image) = setup();
    let (net, n) = subnet();
    let (public_port, loopback_port) = (free_port(), free_port());
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{net}\"\n\n{}{}",
            http_server(
                "web",
                &image,
                "published",
                &format!(
                    "networks = [\"front\"]\nports = [\"{public_port}:80\", \"127.0.0.1:{loopback_port}:80\"]"
                )
            ),
            http_server("private", &image, "unpublished", "networks = [\"front\"]"),
        ),
    );
    apply(&sb);
    let neighbour = crate::support::net::Neighbour::new(n);
    neighbour.route("127.0.0.0/8");
    neighbour.route(&net);
    let host = neighbour.host_ip;
    // The published port answers the neighbour on the host's address.
    assert_eq!(
        neighbour
            .fetch(&format!("http://{host}:{public_port}/"))
            .as_deref(),
        Some("published")
    );
    // A port published on 127.0.0.1 only does not, even to a neighbour routing 127/8 here.
    assert_eq!(
        neighbour.fetch(&format!("http://127.0.0.1:{loopback_port}/")),
        None
    );
    // Nor do the containers themselves, by address, when the neighbour routes their subnet
    // here: only published ports enter a network.
    let private = address_of(&sb, "private");
    let web = address_of(&sb, "web");
    assert_eq!(neighbour.fetch(&format!("http://{private}/")), None);
    assert_eq!(neighbour.fetch(&format!("http://{web}/")), None);
    // While from the host itself, the loopback port answers.
    assert_eq!(
        http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, loopback_port))).as_deref(),
        Some("published\n")
    );
}

#[test]
fn an_internal_network_cannot_leave_through_a_published_port() {
    let (sb, image) = setup();
    let (inside, n) = subnet();
    let (outside, _) = subnet();
    let port = free_port();
    sb.write(
        "net.toml",
        &format!(
            "[network.back]\nsubnet = \"{inside}\"\ninternal = true\n\n[network.front]\nsubnet = \"{outside}\"\n\n{}{}",
            http_server("web", &image, "front-web", &format!("networks = [\"front\"]\nports = [\"{port}:80\"]")),
            sleeper("db", &image, "networks = [\"back\"]"),
        ),
    );
    apply(&sb);
    // The internal network's gateway is a host address: the published port's DNAT would
    // carry the connection to another network.
    let gateway = format!("10.213.{n}.1");
    assert_eq!(
        fetch_from(&sb, "db", &format!("http://{gateway}:{port}/")),
        None
    );
    assert_eq!(
        http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).as_deref(),
        Some("front-web\n")
    );
}

#[test]
fn networks_of_two_state_roots_are_isolated() {
    let (a, image_a) = setup();
    let (b, image_b) = setup();
    let (net_a, _) = subnet();
    let (net_b, _) = subnet();
    a.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{net_a}\"\n\n{}",
            sleeper("client", &image_a, "networks = [\"front\"]")
        ),
    );
    b.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{net_b}\"\n\n{}",
            http_server("web", &image_b, "other-root", "networks = [\"front\"]")
        ),
    );
    apply(&a);
    apply(&b);
    assert_ne!(bridge_of(&a, "front"), bridge_of(&b, "front"));
    let web = address_of(&b, "web");
    assert_eq!(fetch_from(&a, "client", &format!("http://{web}/")), None);
}

#[test]
fn an_interrupted_removal_of_the_last_network_is_finished() {
    let (sb, image) = setup();
    let (net, _) = subnet();
    sb.write(
        "net.toml",
        &format!(
            "[network.solo]\nsubnet = \"{net}\"\n\n{}",
            sleeper("only", &image, "networks = [\"solo\"]")
        ),
    );
    apply(&sb);
    std::fs::remove_file(sb.desired().join("net.toml")).expect("rm");
    let desired = sb.desired();
    let dir = desired.to_str().expect("utf-8");
    let crashed = sb
        .command(&["apply", dir, "--allow-empty"])
        .env("BERTH_FAILPOINTS", "network-remove-after-rename")
        .output()
        .expect("apply");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        crashed.status.signal(),
        Some(9),
        "the failpoint was not reached"
    );
    assert!(table(&scope(&sb)).is_some(), "the crash left the table");
    let out = sb.berth(&["apply", dir, "--allow-empty"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("repair   network rules"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(table(&scope(&sb)), None);
    let left: Vec<String> = std::fs::read_dir(sb.root().join("networks"))
        .expect("networks dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(links_of(&scope(&sb)), Vec::<(String, String)>::new());
}

#[test]
fn a_recorded_bridge_name_taken_by_someone_else_is_replaced() {
    let (sb, image) = setup();
    let (net, _) = subnet();
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{net}\"\n\n{}",
            sleeper("one", &image, "networks = [\"front\"]")
        ),
    );
    let desired = sb.desired();
    let dir = desired.to_str().expect("utf-8");
    // Crash after the bridge's name is recorded, before it exists; then something else takes
    // that name.
    let crashed = sb
        .command(&["apply", dir])
        .env("BERTH_FAILPOINTS", "network-create-after-record")
        .output()
        .expect("apply");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(crashed.status.signal(), Some(9));
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.root().join("networks/front/network.json")).expect("record"),
    )
    .expect("json");
    let taken = record["bridge"].as_str().expect("bridge").to_string();
    struct Foreign(String);
    impl Drop for Foreign {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    let foreign = Foreign(taken.clone());
    let made = Command::new("ip")
        .args(["link", "add", &taken, "type", "bridge"])
        .status()
        .expect("ip");
    assert!(made.success());
    let named = Command::new("ip")
        .args(["link", "set", &taken, "alias", "somebody else's"])
        .status()
        .expect("ip");
    assert!(named.success());

    apply(&sb);
    let bridge = bridge_of(&sb, "front");
    assert_ne!(bridge, taken, "berth must not use a bridge it does not own");
    let (ok, routes) = exec(&sb, "one", &["ip", "route"]);
    assert!(ok && routes.contains("default via"), "{routes}");
    // The foreign bridge is untouched.
    let alias = Command::new("ip")
        .args(["-j", "link", "show", &taken])
        .output()
        .expect("ip");
    assert!(String::from_utf8_lossy(&alias.stdout).contains("somebody else's"));
    drop(foreign);
}

#[test]
fn a_container_on_two_networks_with_a_static_address() {
    let (sb, image) = setup();
    let (a, na) = subnet();
    let (b, nb) = subnet();
    sb.write(
        "net.toml",
        &format!(
            "[network.alpha]\nsubnet = \"{a}\"\n\n[network.beta]\nsubnet = \"{b}\"\n\n{}{}{}",
            sleeper(
                "bridge-both",
                &image,
                &format!("networks = [\"alpha\", {{ name = \"beta\", ip = \"10.213.{nb}.77\" }}]")
            ),
            http_server("on-alpha", &image, "alpha-side", "networks = [\"alpha\"]"),
            http_server("on-beta", &image, "beta-side", "networks = [\"beta\"]"),
        ),
    );
    apply(&sb);
    let (ok, addrs) = exec(&sb, "bridge-both", &["ip", "-4", "-o", "addr"]);
    assert!(ok);
    assert!(
        addrs
            .lines()
            .any(|l| l.contains("eth0") && l.contains(&format!("10.213.{na}."))),
        "{addrs}"
    );
    assert!(
        addrs
            .lines()
            .any(|l| l.contains("eth1") && l.contains(&format!("10.213.{nb}.77/24"))),
        "{addrs}"
    );
    assert_eq!(
        fetch_from(&sb, "bridge-both", "http://on-alpha/").as_deref(),
        Some("alpha-side")
    );
    assert_eq!(
        fetch_from(&sb, "bridge-both", "http://on-beta/").as_deref(),
        Some("beta-side")
    );
    // The two single-network containers still cannot reach each other.
    let beta = address_of(&sb, "on-beta");
    assert_eq!(
        fetch_from(&sb, "on-alpha", &format!("http://{beta}/")),
        None
    );
}

#[test]
fn a_subnet_the_host_already_routes_is_refused() {
    let (sb, image) = setup();
    let (_, n) = subnet();
    // The host routes 10.214.n.0/30 to a neighbour: a network on 10.214.n.0/24 would take
    // that traffic.
    let _neighbour = crate::support::net::Neighbour::new(n);
    sb.write(
        "net.toml",
        &format!(
            "[network.clash]\nsubnet = \"10.214.{n}.0/24\"\n\n{}",
            sleeper("one", &image, "networks = [\"clash\"]")
        ),
    );
    let desired = sb.desired();
    let out = sb.berth(&["apply", desired.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "subnet 10.214.{n}.0/24 overlaps the host's route to 10.214.{n}.0/30 via bnbr{n}h"
        )),
        "{text}"
    );
    assert_eq!(links_of(&scope(&sb)), Vec::<(String, String)>::new());
    assert!(sb.runtime.list().expect("list").is_empty());
}

#[test]
fn a_replaced_container_is_reachable_at_once() {
    let (sb, image) = setup();
    let (net, _) = subnet();
    let port = free_port();
    let web = |v: &str| {
        http_server(
            "web",
            &image,
            v,
            &format!("networks = [\"front\"]\nports = [\"{port}:80\"]"),
        )
    };
    let client = sleeper("client", &image, "networks = [\"front\"]");
    let net_toml = format!("[network.front]\nsubnet = \"{net}\"\n\n");
    sb.write("net.toml", &format!("{net_toml}{}{client}", web("one")));
    apply(&sb);
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Both the host and a peer talk to it, so both cache its hardware address.
    assert_eq!(http_get(loopback).as_deref(), Some("one\n"));
    assert_eq!(
        fetch_from(&sb, "client", "http://web/").as_deref(),
        Some("one")
    );
    let before = address_of(&sb, "web");

    sb.write("net.toml", &format!("{net_toml}{}{client}", web("two")));
    apply(&sb);
    assert_eq!(address_of(&sb, "web"), before, "the address is reused");
    // The replacement answers within a few seconds, not after the neighbour caches expire
    // (half a minute or more if its hardware address had changed).
    let from_host = wait_for(Duration::from_secs(5), "the host to reach it", || {
        http_get(loopback).filter(|b| b == "two\n")
    });
    assert_eq!(from_host, "two\n");
    wait_for(Duration::from_secs(5), "the peer to reach it", || {
        fetch_from(&sb, "client", "http://web/").filter(|b| b == "two")
    });
}

#[test]
fn berth_run_does_not_change_an_existing_network() {
    let (sb, image) = setup();
    let (net, _) = subnet();
    let (other, _) = subnet();
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{net}\"\n\n{}",
            sleeper("kept", &image, "networks = [\"front\"]")
        ),
    );
    apply(&sb);
    sb.write(
        "net.toml",
        &format!(
            "[network.front]\nsubnet = \"{other}\"\n\n{}{}",
            sleeper("kept", &image, "networks = [\"front\"]"),
            sleeper("manual", &image, "networks = [\"front\"]")
        ),
    );
    let desired = sb.desired();
    let out = sb.berth(&["run", "-d", desired.to_str().expect("utf-8"), "manual"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("network front exists as {net}")),
        "{err}"
    );
    // The running container still has its address on the unchanged network.
    let (ok, routes) = exec(&sb, "kept", &["ip", "route"]);
    assert!(ok && routes.contains(&net), "{routes}");
}
