//! A host firewall reload takes berth's nftables table with it (Debian's nftables.service
//! starts with `flush ruleset`): the agent notices through the ruleset's netlink
//! notifications and the published port answers again within a second.
//!
//! `flush ruleset` flushes every table of a network namespace, so the agent runs in a
//! namespace of the test's own (entered with nsenter, which keeps the host's mounts and
//! cgroups, unlike `ip netns exec`); traffic stays inside it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent::wait_for;
use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::{BERTH, Sandbox};

/// A network namespace of the test's own, deleted when dropped.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new() -> NetNs {
        let name = format!("berth-it-fw-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip netns add");
        assert!(ok.success());
        let ok = Command::new("ip")
            .args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"])
            .status()
            .expect("ip link");
        assert!(ok.success());
        NetNs { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// A command run in the namespace, with the host's mounts.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net={}", self.path())).arg(program);
        command
    }

    /// One HTTP GET to 127.0.0.1:port inside the namespace: the body, if it answered.
    fn get(&self, port: u16) -> Option<String> {
        let path = self.path();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).ok()?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .ok()?;
            write!(stream, "GET /hostname HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).ok()?;
            answer
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.trim().to_string())
        })
        .join()
        .ok()
        .flatten()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_flushed_ruleset_is_rebuilt_within_a_second() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let ns = NetNs::new();
    let port = crate::support::net::free_port();
    sb.write(
        "web.toml",
        &format!(
            "[container.web]\nimage = \"{image}\"\ncommand = [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/etc\"]\nports = [\"{port}:8080\"]\nstop_timeout = \"1s\"\n"
        ),
    );
    let log = sb.dir.path().join("agent.log");
    let agent = ns
        .command(BERTH)
        .arg("--root")
        .arg(sb.root())
        .arg("agent")
        .arg(sb.desired())
        .env("BERTH_LOG", "info,libcgroups=error")
        .env("BERTH_DEFAULT_SUBNET", &sb.default_subnet)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("agent");
    let agent = Kill(agent);
    let answer = wait_for(Duration::from_secs(30), "the published port", || {
        ns.get(port)
    });
    assert_eq!(answer, "web");

    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let flushed = ns
            .command("nft")
            .args(["flush", "ruleset"])
            .status()
            .expect("nft");
        assert!(flushed.success());
        let at = Instant::now();
        assert!(
            ns.get(port).is_none(),
            "the port still answered after the flush"
        );
        while ns.get(port).is_none() {
            assert!(
                at.elapsed() < Duration::from_secs(1),
                "the port did not answer again within 1s of `nft flush ruleset`:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        worst = worst.max(at.elapsed());
    }
    eprintln!("answering again at most {worst:?} after `nft flush ruleset`");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("firewall"), "{text}");

    // Cleaned up inside the namespace, where the bridges and the table are.
    drop(agent);
    let empty = sb.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = ns
        .command(BERTH)
        .arg("--root")
        .arg(sb.root())
        .args(["apply", "--allow-empty"])
        .arg(&empty)
        .env("BERTH_DEFAULT_SUBNET", &sb.default_subnet)
        .output()
        .expect("apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !Path::new(&format!("{}/containers", sb.root().display()))
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    );
}
