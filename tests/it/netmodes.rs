//! Network modes end to end, as root: port ranges, the default network a container joins
//! when it publishes ports without naming one, and its pruning.
//!
//! Traffic goes only to 127.0.0.1 and to addresses on bridges these tests create. Each
//! sandbox has its own default subnet (`BERTH_DEFAULT_SUBNET`, 10.212.N.0/24).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::support::images::ready_made::busybox_image;
use crate::support::net::{free_port, http_get, links_of};
use crate::support::sandbox::Sandbox;

fn setup() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    (sb, image)
}

/// `berth apply DIR --wait [EXTRA…]`, which must succeed: its output.
fn apply(sb: &Sandbox, extra: &[&str]) -> String {
    let desired = sb.desired();
    let mut args = vec![
        "apply",
        desired.to_str().expect("utf-8"),
        "--wait",
        "--timeout",
        "60s",
    ];
    args.extend_from_slice(extra);
    let out = sb.berth(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "apply failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `berth exec NAME -- ARGS…`: (success, stdout).
fn exec(sb: &Sandbox, name: &str, args: &[&str]) -> (bool, String) {
    let mut full = vec!["exec", name, "--"];
    full.extend_from_slice(args);
    let out = sb.berth(&full);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn scope(sb: &Sandbox) -> String {
    sb.runtime.layout().scope.clone()
}

/// Two consecutive TCP ports nothing listens on right now.
fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// A container serving `NAME-PORT` over HTTP on each of `ports` inside.
fn http_servers(name: &str, image: &str, ports: &[u16], extra: &str) -> String {
    let script: Vec<String> = ports
        .iter()
        .map(|p| {
            format!("mkdir -p /www{p} && echo {name}-{p} > /www{p}/index.html && httpd -p {p} -h /www{p}")
        })
        .collect();
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"{} && exec sleep 3600\"]\nstop_timeout = \"1s\"\n{extra}\n",
        script.join(" && ")
    )
}

/// The first answer on 127.0.0.1:`port`: `apply --wait` and `start` return once the process
/// runs, not once its server listens.
fn first_answer(port: u16) -> String {
    crate::agent::wait_for(Duration::from_secs(10), "the published port", || {
        http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    })
}

#[test]
fn a_published_port_without_a_network_answers_on_loopback_and_is_pruned() {
    let (sb, image) = setup();
    let port = free_port();
    sb.write(
        "web.toml",
        &http_servers("web", &image, &[80], &format!("ports = [\"{port}:80\"]")),
    );
    let out = apply(&sb, &[]);
    assert!(out.contains("network default"), "{out}");
    assert_eq!(first_answer(port), "web-80\n");
    // Its address is on this sandbox's default subnet.
    let (ok, addr) = exec(&sb, "web", &["ip", "-4", "-o", "addr", "show", "eth0"]);
    let prefix = sb.default_subnet.trim_end_matches("0/24");
    assert!(ok && addr.contains(&format!("inet {prefix}")), "{addr}");

    // Nothing uses it any more: the default network goes like any other of berth's.
    std::fs::remove_file(sb.desired().join("web.toml")).expect("rm");
    let out = apply(&sb, &["--allow-empty"]);
    assert!(out.contains("remove   network default"), "{out}");
    assert_eq!(links_of(&scope(&sb)), Vec::<(String, String)>::new());
    assert!(!sb.root().join("networks/default").exists());
    assert_eq!(
        http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        None
    );
}

#[test]
fn every_port_of_a_range_answers() {
    let (sb, image) = setup();
    let port = free_port_pair();
    sb.write(
        "web.toml",
        &http_servers(
            "web",
            &image,
            &[8080, 8081],
            &format!("ports = [\"127.0.0.1:{port}-{}:8080-8081\"]", port + 1),
        ),
    );
    apply(&sb, &[]);
    for (host, inside) in [(port, 8080), (port + 1, 8081)] {
        assert_eq!(
            first_answer(host),
            format!("web-{inside}\n"),
            "host port {host}"
        );
    }
}

/// What the default network must not widen: a container without `ports` or `networks`
/// keeps 0.1.0's meaning (loopback only), and the default network is isolated from a
/// declared one like any two networks.
#[test]
fn the_default_network_widens_nothing_else() {
    let (sb, image) = setup();
    let (other, _) = crate::network::subnet();
    let port = free_port();
    sb.write(
        "net.toml",
        &format!(
            "[network.other]\nsubnet = \"{other}\"\n\n{}{}{}",
            http_servers("web", &image, &[80], &format!("ports = [\"{port}:80\"]")),
            http_servers("private", &image, &[80], "networks = [\"other\"]"),
            http_servers("quiet", &image, &[80], ""),
        ),
    );
    apply(&sb, &[]);
    let address = |name: &str| {
        let (ok, out) = exec(&sb, name, &["ip", "-4", "-o", "addr", "show", "eth0"]);
        assert!(ok, "{name}: {out}");
        out.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|cidr| cidr.split('/').next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no address on eth0 of {name}: {out}"))
    };
    let fetch =
        |from: &str, url: &str| exec(&sb, from, &["timeout", "3", "wget", "-q", "-O", "-", url]);

    // `quiet` (no ports, no networks): loopback only, as in 0.1.0.
    let (ok, links) = exec(&sb, "quiet", &["ip", "-o", "link", "show"]);
    assert!(ok, "{links}");
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(str::trim))
        .collect();
    assert_eq!(names, ["lo"], "{links}");
    let web = address("web");
    assert!(!fetch("quiet", &format!("http://{web}/")).0);

    // The default network and a declared one do not reach each other (while each
    // container's own server answers it, so the probe itself works).
    assert_eq!(
        fetch("private", "http://127.0.0.1/"),
        (true, "private-80\n".to_string())
    );
    let private = address("private");
    assert!(!fetch("web", &format!("http://{private}/")).0);
    assert!(!fetch("private", &format!("http://{web}/")).0);
    let (_, hosts) = exec(&sb, "web", &["cat", "/etc/hosts"]);
    assert!(
        !hosts.contains("private") && !hosts.contains("quiet"),
        "{hosts}"
    );

    // While the published port still answers from the host.
    assert_eq!(
        http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).as_deref(),
        Some("web-80\n")
    );
}

/// `web.toml`: one server publishing port 80 on a free port of 127.0.0.1, no network named.
fn write_published_web(sb: &Sandbox, image: &str) -> u16 {
    let port = free_port();
    sb.write(
        "web.toml",
        &http_servers(
            "web",
            image,
            &[80],
            &format!("ports = [\"127.0.0.1:{port}:80\"]"),
        ),
    );
    port
}

/// `berth run` creates the default network as it creates a declared one.
#[test]
fn run_publishes_a_port_on_the_default_network() {
    let (sb, image) = setup();
    let port = write_published_web(&sb, &image);
    let record = sb.start("web");
    assert_eq!(record.networks.len(), 1, "{:?}", record.networks);
    assert_eq!(record.networks[0].network, "default");
    assert_eq!(first_answer(port), "web-80\n");
}

/// A command run without `BERTH_DEFAULT_SUBNET` (a shell that forgot what the agent's unit
/// sets) keeps the subnet the `default` network has, instead of re-addressing it and
/// replacing every container on it.
#[test]
fn a_forgotten_subnet_variable_moves_nothing() {
    let (sb, image) = setup();
    write_published_web(&sb, &image);
    apply(&sb, &[]);
    let desired = sb.desired();
    let plan = sb
        .command(&["plan", desired.to_str().expect("utf-8")])
        .env_remove("BERTH_DEFAULT_SUBNET")
        .output()
        .expect("plan");
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.status.success() && text.contains("No changes"),
        "{text}{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    // Naming another subnet still moves it, on purpose.
    let moved = sb
        .command(&["plan", desired.to_str().expect("utf-8")])
        .env("BERTH_DEFAULT_SUBNET", "10.231.0.0/24")
        .output()
        .expect("plan");
    let text = String::from_utf8_lossy(&moved.stdout);
    assert!(text.contains("network default"), "{text}");
}
