//! Shared namespaces (`network`, `pid`, `ipc = "container:NAME"`) on real containers: the
//! sharer is in its owner's namespaces, follows the owner when it starts again (rejoined in
//! the same pass), and the owner's /dev/shm cannot be turned into a way out of it.
//!
//! Traffic goes only to 127.0.0.1 and to the sandbox's default network.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use berth::runtime::State;

use crate::support::images::ready_made::busybox_image;
use crate::support::net::{free_port, http_get};
use crate::support::sandbox::Sandbox;

fn setup() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    (sb, image)
}

/// `berth apply DIR --wait`: (success, stdout + stderr).
fn apply(sb: &Sandbox) -> (bool, String) {
    let desired = sb.desired();
    let out = sb.berth(&[
        "apply",
        desired.to_str().expect("utf-8"),
        "--wait",
        "--timeout",
        "60s",
    ]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn apply_ok(sb: &Sandbox) -> String {
    let (ok, out) = apply(sb);
    assert!(ok, "apply failed:\n{out}");
    out
}

/// `berth exec NAME -- sh -c SCRIPT`: stdout, which must succeed.
fn sh(sb: &Sandbox, name: &str, script: &str) -> String {
    let out = sb.berth(&["exec", name, "--", "sh", "-c", script]);
    assert!(
        out.status.success(),
        "exec in {name}: {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The running container of `name` made by the reconciler: (id, its init's pid).
fn running(sb: &Sandbox, name: &str) -> (String, i32) {
    let records = sb.runtime.find(name).expect("find");
    let found = records
        .iter()
        .filter(|r| !r.manual)
        .find_map(|r| match sb.state(&r.id) {
            State::Running(m) => Some((r.id.clone(), m.init.pid)),
            _ => None,
        });
    found.unwrap_or_else(|| panic!("no running container {name}"))
}

fn ns(pid: i32, kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .expect("namespace")
        .ino()
}

fn first_answer(port: u16) -> String {
    crate::agent::wait_for(Duration::from_secs(10), "the published port", || {
        http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    })
}

fn web_and_sidecar(image: &str, port: u16, version: u32) -> String {
    format!(
        r#"[container.web]
image = "{image}"
command = ["sh", "-c", "mkdir -p /www && echo web > /www/index.html && httpd -p 80 -h /www && exec sleep 3600"]
ports = ["{port}:80"]
env = {{ VERSION = "{version}" }}
stop_timeout = "1s"

[container.side]
image = "{image}"
network = "container:web"
command = ["sh", "-c", "mkdir -p /www && echo side > /www/index.html && httpd -p 8081 -h /www && exec sleep 3600"]
stop_timeout = "1s"
"#
    )
}

#[test]
fn a_sidecar_shares_its_owners_network_and_rejoins_it_when_the_owner_is_replaced() {
    let (sb, image) = setup();
    let port = free_port();
    sb.write("pod.toml", &web_and_sidecar(&image, port, 1));
    let out = apply_ok(&sb);
    let (web_at, side_at) = (
        out.find("run      container web").expect(&out),
        out.find("run      container side").expect(&out),
    );
    assert!(web_at < side_at, "the owner starts first:\n{out}");
    let (web, web_pid) = running(&sb, "web");
    let (side, side_pid) = running(&sb, "side");
    assert_eq!(ns(web_pid, "net"), ns(side_pid, "net"));
    // Only the network: processes and IPC stay its own.
    assert_ne!(ns(web_pid, "pid"), ns(side_pid, "pid"));
    assert_ne!(ns(web_pid, "ipc"), ns(side_pid, "ipc"));
    assert_eq!(first_answer(port), "web\n");
    // Each reaches the other on the shared loopback; the sidecar has the owner's address
    // and name files.
    let from_web = crate::agent::wait_for(Duration::from_secs(10), "the sidecar", || {
        let out = sb.berth(&[
            "exec",
            "web",
            "--",
            "wget",
            "-qO-",
            "http://127.0.0.1:8081/",
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert_eq!(from_web, "side\n");
    assert_eq!(sh(&sb, "side", "wget -qO- http://127.0.0.1:80/"), "web\n");
    let addr = |name| sh(&sb, name, "ip -4 -o addr show eth0");
    assert_eq!(addr("web"), addr("side"));
    assert_eq!(
        sh(&sb, "side", "cat /etc/hosts /etc/resolv.conf"),
        sh(&sb, "web", "cat /etc/hosts /etc/resolv.conf")
    );
    // They are the owner's: the sidecar cannot change them.
    assert_eq!(
        sh(
            &sb,
            "side",
            "for f in /etc/hosts /etc/resolv.conf; do echo evil >> $f && echo written; done 2>&1 | grep -c Read-only"
        ),
        "2\n"
    );
    assert!(!sh(&sb, "web", "cat /etc/hosts").contains("evil"));
    // A container of the owner's name made by hand is never the one joined.
    let elsewhere = sb.dir.path().join("by-hand");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::fs::write(
        elsewhere.join("web.toml"),
        format!("[container.web]\nimage = \"{image}\"\ncommand = [\"sleep\", \"3600\"]\nstop_timeout = \"1s\"\n"),
    )
    .expect("write");
    let manual = sb.berth(&["run", "-d", elsewhere.to_str().expect("utf-8"), "web"]);
    assert!(
        manual.status.success(),
        "{}",
        String::from_utf8_lossy(&manual.stderr)
    );
    let (ok, out) = apply(&sb);
    assert!(ok && out.contains("No changes"), "{out}");
    assert_eq!(ns(running(&sb, "web").1, "net"), ns(side_pid, "net"));

    // The owner is replaced: the sidecar is restarted in place, in the new namespace, in
    // the same pass.
    sb.write("pod.toml", &web_and_sidecar(&image, port, 2));
    let out = apply_ok(&sb);
    assert!(out.contains("replace  container web"), "{out}");
    assert!(
        out.contains(&format!(
            "restart  container side ({side}, to rejoin shared namespaces)"
        )),
        "{out}"
    );
    let (new_web, new_web_pid) = running(&sb, "web");
    let (same_side, new_side_pid) = running(&sb, "side");
    assert_ne!(new_web, web);
    assert_eq!(same_side, side, "rejoined in place, not replaced");
    assert_eq!(ns(new_web_pid, "net"), ns(new_side_pid, "net"));
    assert_eq!(first_answer(port), "web\n");
    assert_eq!(
        crate::agent::wait_for(Duration::from_secs(10), "the sidecar again", || {
            let out = sb.berth(&[
                "exec",
                "web",
                "--",
                "wget",
                "-qO-",
                "http://127.0.0.1:8081/",
            ]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }),
        "side\n"
    );
    // Nothing more to do: the rejoined sidecar is current.
    let (ok, out) = apply(&sb);
    assert!(ok && out.contains("No changes"), "{out}");

    // The owner stopped by hand: the next pass starts it, then the sidecar rejoins it.
    let stop = sb.berth(&["stop", &new_web]);
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let (ok, plan) = {
        let desired = sb.desired();
        let out = sb.berth(&["plan", desired.to_str().expect("utf-8")]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(ok, "{plan}");
    assert!(
        plan.contains("container/side: waiting for web to be started"),
        "{plan}"
    );
    let out = apply_ok(&sb);
    assert!(out.contains("restart  container web"), "{out}");
    assert!(out.contains("to rejoin shared namespaces"), "{out}");
    let (_, web_pid) = running(&sb, "web");
    let (_, side_pid) = running(&sb, "side");
    assert_eq!(ns(web_pid, "net"), ns(side_pid, "net"));
}

fn pid_ipc_pair(image: &str, engine: &str, owner_script: &str, privileged: bool) -> String {
    let runtime = if engine == "runc" {
        "runtime = \"runc\"\n"
    } else {
        ""
    };
    format!(
        r#"[container.owner]
image = "{image}"
command = ["sh", "-c", "{owner_script}"]
stop_timeout = "1s"
privileged = {privileged}
{runtime}
[container.peer]
image = "{image}"
pid = "container:owner"
ipc = "container:owner"
command = ["sleep", "3601"]
stop_timeout = "1s"
{runtime}"#
    )
}

#[test]
fn pid_and_ipc_sharers_see_their_owner_only_and_follow_it() {
    for engine in ["embedded", "runc"] {
        let (sb, image) = setup();
        let owner_script = "echo owner-shm > /dev/shm/mark && exec sleep 3600";
        sb.write(
            "pod.toml",
            &pid_ipc_pair(&image, engine, owner_script, false),
        );
        apply_ok(&sb);
        let (_, owner_pid) = running(&sb, "owner");
        let (peer, peer_pid) = running(&sb, "peer");
        for kind in ["pid", "ipc"] {
            assert_eq!(ns(owner_pid, kind), ns(peer_pid, kind), "{engine}: {kind}");
        }
        assert_ne!(ns(owner_pid, "net"), ns(peer_pid, "net"), "{engine}");
        // The owner's init is pid 1 of the shared namespace; nothing of the host is seen.
        let ps = sh(&sb, "peer", "ps -o pid,args");
        let processes: Vec<&str> = ps.lines().skip(1).map(str::trim).collect();
        assert!(
            processes
                .iter()
                .any(|p| p.starts_with("1 ") && p.contains("sleep 3600")),
            "{engine}: {ps}"
        );
        assert!(
            processes.iter().any(|p| p.contains("sleep 3601")),
            "{engine}: {ps}"
        );
        assert!(
            processes
                .iter()
                .all(|p| p.contains("sleep 36") || p.contains("ps -o") || p.contains("sh -c")),
            "{engine}: only the pod's processes: {ps}"
        );
        // POSIX shared memory is the owner's /dev/shm.
        assert_eq!(
            sh(&sb, "peer", "cat /dev/shm/mark"),
            "owner-shm\n",
            "{engine}"
        );
        assert_eq!(
            sh(&sb, "peer", "stat -f -c %T /dev/shm"),
            "tmpfs\n",
            "{engine}"
        );

        // The owner's init ends (a replacement): the kernel ends the shared pid namespace
        // and the peer with it; the same pass starts the peer again, in the new namespaces.
        sb.write(
            "pod.toml",
            &pid_ipc_pair(
                &image,
                engine,
                "echo owner-shm-2 > /dev/shm/mark && exec sleep 3600",
                false,
            ),
        );
        let out = apply_ok(&sb);
        assert!(out.contains("replace  container owner"), "{engine}: {out}");
        let (_, owner_pid) = running(&sb, "owner");
        let (same_peer, peer_pid) = running(&sb, "peer");
        assert_eq!(same_peer, peer, "{engine}");
        for kind in ["pid", "ipc"] {
            assert_eq!(ns(owner_pid, kind), ns(peer_pid, kind), "{engine}: {kind}");
        }
        assert_eq!(
            sh(&sb, "peer", "cat /dev/shm/mark"),
            "owner-shm-2\n",
            "{engine}"
        );
    }
}

#[test]
fn an_owner_cannot_turn_its_dev_shm_into_a_way_out_for_its_ipc_sharer() {
    let (sb, image) = setup();
    // Unprivileged, the owner cannot replace its /dev/shm: it is a mount point.
    let attempt = "umount /dev/shm 2>/dev/null; rm -rf /dev/shm 2>/dev/null; ln -s / /dev/shm 2>/dev/null; echo kept > /dev/shm/mark; exec sleep 3600";
    sb.write(
        "pod.toml",
        &pid_ipc_pair(&image, "embedded", attempt, false),
    );
    apply_ok(&sb);
    assert_eq!(sh(&sb, "owner", "stat -f -c %T /dev/shm"), "tmpfs\n");
    assert_eq!(sh(&sb, "peer", "stat -f -c %T /dev/shm"), "tmpfs\n");
    assert_eq!(sh(&sb, "peer", "cat /dev/shm/mark"), "kept\n");

    // Privileged, it can: the sharer's start is refused rather than binding the host's /.
    let (sb, image) = setup();
    let swap = "umount /dev/shm && rmdir /dev/shm && ln -s / /dev/shm && exec sleep 3600";
    sb.write("pod.toml", &pid_ipc_pair(&image, "embedded", swap, true));
    let (ok, out) = apply(&sb);
    assert!(!ok, "the sharer must not start:\n{out}");
    assert!(
        out.contains("cannot be shared") && out.contains("not a directory"),
        "{out}"
    );
    let (_, owner_pid) = running(&sb, "owner");
    let link = std::fs::read_link(format!("/proc/{owner_pid}/root/dev/shm")).expect("the swap");
    assert_eq!(link, std::path::Path::new("/"));
    assert!(
        sb.runtime
            .find("peer")
            .expect("find")
            .iter()
            .all(|r| !matches!(sb.state(&r.id), State::Running(_))),
        "no peer runs"
    );
}

#[test]
fn the_agent_rejoins_a_sidecar_whose_owner_it_restarted() {
    let (sb, image) = setup();
    let port = free_port();
    sb.write("pod.toml", &web_and_sidecar(&image, port, 1));
    let _agent = crate::agent::Agent::start(&sb, &sb.desired());
    let both_running = || {
        let web = sb.runtime.find("web").ok()?;
        let side = sb.runtime.find("side").ok()?;
        let pid = |records: &[berth::state::record::ContainerRecord]| {
            records.iter().find_map(|r| match sb.state(&r.id) {
                State::Running(m) => Some(m.init),
                _ => None,
            })
        };
        Some((pid(&web)?, pid(&side)?))
    };
    let (web_init, side_init) =
        crate::agent::wait_for(Duration::from_secs(30), "web and its sidecar", both_running);
    assert_eq!(ns(web_init.pid, "net"), ns(side_init.pid, "net"));
    let side_id = running(&sb, "side").0;

    // The owner's init is killed: the agent restarts it (after its backoff), then the
    // sidecar in its new namespace, without a file change.
    let fd = web_init.open().expect("pidfd").expect("alive");
    berth::sys::send_signal(&fd, 9).expect("SIGKILL");
    let (new_web, new_side) = crate::agent::wait_for(
        Duration::from_secs(30),
        "the sidecar in the restarted owner's namespace",
        || {
            let (w, s) = both_running()?;
            (w != web_init && s != side_init && ns(w.pid, "net") == ns(s.pid, "net"))
                .then_some((w, s))
        },
    );
    assert_eq!(ns(new_web.pid, "net"), ns(new_side.pid, "net"));
    assert_eq!(running(&sb, "side").0, side_id, "rejoined in place");
    let restarts = sb.runtime.restarts(&side_id).expect("restart record");
    assert_eq!(restarts.count, 1, "{restarts:?}");
    assert_eq!(
        restarts
            .last_exit
            .as_ref()
            .and_then(|e| e.stopped_because.as_deref()),
        Some("a container whose namespaces it shares started again")
    );
    assert_eq!(restarts.streak, 0, "a rejoin is not the sidecar's failure");
    assert_eq!(first_answer(port), "web\n");
}

#[test]
fn what_a_pid_sharer_started_goes_with_it() {
    for engine in ["embedded", "runc"] {
        let (sb, image) = setup();
        let runtime = if engine == "runc" {
            "runtime = \"runc\"\n"
        } else {
            ""
        };
        sb.write(
            "pod.toml",
            &format!(
                r#"[container.owner]
image = "{image}"
command = ["sleep", "3600"]
stop_timeout = "1s"
{runtime}
[container.peer]
image = "{image}"
pid = "container:owner"
command = ["sh", "-c", "sleep 999 & exec sleep 3601"]
stop_timeout = "1s"
{runtime}"#
            ),
        );
        apply_ok(&sb);
        let (peer, _) = running(&sb, "peer");
        let ps = || sh(&sb, "owner", "ps -o args");
        crate::agent::wait_for(Duration::from_secs(10), "the peer's child", || {
            ps().contains("sleep 999").then_some(())
        });
        // Its init is not the namespace's: stopping it must not leave its child behind,
        // reparented to the owner.
        let stop = sb.berth(&["stop", &peer]);
        assert!(
            stop.status.success(),
            "{engine}: {}",
            String::from_utf8_lossy(&stop.stderr)
        );
        let left = ps();
        assert!(
            !left.contains("sleep 999"),
            "{engine}: left behind:\n{left}"
        );
        assert!(!left.contains("sleep 3601"), "{engine}: {left}");
        assert!(
            sb.cgroup_dirs().iter().all(|d| !d.join(&peer).exists()),
            "{engine}: the peer's cgroup is gone"
        );
        // And it starts again in place.
        let (ok, out) = apply(&sb);
        assert!(ok, "{engine}: {out}");
        assert_eq!(running(&sb, "peer").0, peer, "{engine}");
    }
}
