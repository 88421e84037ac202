//! The reconciler end to end, as root, on real containers: `berth agent` reacting to its
//! directory, to exits and to drift; `berth apply` and `berth plan` for config management;
//! and crash safety — the reconciler SIGKILLed at every failpoint, then converging with no
//! duplicate container and no leaked process, cgroup or directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::runtime::State;
use berth::state::record::ContainerRecord;

use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::{BERTH, Sandbox};

/// A running `berth agent` on the sandbox's desired directory; killed when dropped.
pub(crate) struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    pub(crate) fn start(sb: &Sandbox, dir: &Path) -> Agent {
        Self::start_with_env(sb, dir, &[])
    }

    pub(crate) fn start_with_env(sb: &Sandbox, dir: &Path, env: &[(&str, &str)]) -> Agent {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = sb.dir.path().join(format!("agent-{n}.log"));
        let file = std::fs::File::create(&log).expect("agent log");
        let child = Command::new(BERTH)
            .arg("--root")
            .arg(sb.root())
            .arg("agent")
            .arg(dir)
            .args(["--resync", "1s"])
            .env(
                "BERTH_LOG",
                "info,libcgroups=error,berth::network::rules=debug",
            )
            .env("BERTH_DEFAULT_SUBNET", &sb.default_subnet)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the agent");
        let mut agent = Agent { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.log().contains("agent started") {
            let exited = agent.child.try_wait().expect("wait");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "the agent did not start ({}):\n{}",
                exited.map_or("still running after 10s".to_string(), |s| s.to_string()),
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        agent
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait: the agent's exit status.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let status = wait_child(&mut self.child, Duration::from_secs(30));
        std::mem::forget(self);
        status
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll `check` until it returns Some, at most `timeout`.
pub(crate) fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn setup() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    (sb, image)
}

/// A long-running container that prints `$V` first.
fn server(name: &str, image: &str, v: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"echo v=$V; trap 'exit 0' TERM; while true; do sleep 1; done\"]\nenv = {{ V = \"{v}\" }}\nstop_timeout = \"2s\"\n"
    )
}

pub(crate) fn containers(sb: &Sandbox, name: &str) -> Vec<ContainerRecord> {
    sb.runtime.find(name).expect("list")
}

pub(crate) fn running(sb: &Sandbox, name: &str) -> Vec<ContainerRecord> {
    containers(sb, name)
        .into_iter()
        .filter(|r| matches!(sb.state(&r.id), State::Running(_)))
        .collect()
}

/// The single running container of `name`, once there is exactly one and it is the only
/// container of that name.
pub(crate) fn sole_running(sb: &Sandbox, name: &str, timeout: Duration) -> ContainerRecord {
    wait_for(timeout, &format!("exactly one running {name}"), || {
        let all = containers(sb, name);
        let up = running(sb, name);
        (all.len() == 1 && up.len() == 1).then(|| up[0].clone())
    })
}

/// The single running container of `name` once it is no longer `old` (replaced), and
/// `output` in its log.
fn replaced(sb: &Sandbox, name: &str, old: &str, output: &str) -> ContainerRecord {
    let new = wait_for(Duration::from_secs(30), &format!("{name} replaced"), || {
        let all = containers(sb, name);
        let up = running(sb, name);
        (all.len() == 1 && up.len() == 1 && up[0].id != old).then(|| up[0].clone())
    });
    wait_for(Duration::from_secs(5), output, || {
        sb.logs(&new.id).contains(output).then_some(())
    });
    new
}

pub(crate) fn status_json(sb: &Sandbox) -> serde_json::Value {
    let out = sb.berth(&["status", "--json"]);
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

#[test]
fn agent_follows_the_directory() {
    let (sb, image) = setup();
    let agent = Agent::start(&sb, &sb.desired());

    // A new file: its container runs.
    sb.write("web.toml", &server("web", &image, "1"));
    sb.write("other.toml", &server("other", &image, "1"));
    let first = sole_running(&sb, "web", Duration::from_secs(30));
    let other = sole_running(&sb, "other", Duration::from_secs(30));
    wait_for(Duration::from_secs(5), "web's output", || {
        sb.logs(&first.id).contains("v=1").then_some(())
    });

    // Reformatted, reordered, commented, same meaning: nothing happens over several passes.
    sb.write(
        "web.toml",
        &format!(
            "# the web server\n[container.web]\nstop_timeout = \"2s\"\nenv = {{ V = \"1\" }}\n\ncommand = [ \"sh\", \"-c\", \"echo v=$V; trap 'exit 0' TERM; while true; do sleep 1; done\" ]\nimage = \"{image}\"\n"
        ),
    );
    std::thread::sleep(Duration::from_millis(2500));
    let ids: Vec<String> = containers(&sb, "web").into_iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        vec![first.id.clone()],
        "a reformat must change nothing"
    );

    // A changed env, written atomically (a new file renamed over the old one, as git and
    // Ansible do): replaced exactly once, and the new one sees the new value.
    std::fs::write(
        sb.desired().join(".web.toml.tmp"),
        server("web", &image, "2"),
    )
    .expect("write");
    std::fs::rename(
        sb.desired().join(".web.toml.tmp"),
        sb.desired().join("web.toml"),
    )
    .expect("rename");
    let second = replaced(&sb, "web", &first.id, "v=2");
    std::thread::sleep(Duration::from_millis(2500));
    let ids: Vec<String> = containers(&sb, "web").into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![second.id.clone()], "replaced more than once");
    assert!(!sb.root().join("containers").join(&first.id).exists());

    // A broken file: an error in status, and nothing pruned (its container stays).
    sb.write("other.toml", "[container.other]\nimage = \n");
    let problems = wait_for(Duration::from_secs(10), "the problem in status", || {
        let s = status_json(&sb);
        let p = s["problems"].as_array().cloned().unwrap_or_default();
        (!p.is_empty()).then_some(p)
    });
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains("other.toml:2:"))),
        "{problems:?}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        running(&sb, "other")
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        vec![other.id.clone()],
        "a broken file must not prune its container"
    );
    let log = agent.log();
    assert!(log.contains("nothing pruned on this pass"), "{log}");

    // The file deleted: its container is pruned, the other stays.
    std::fs::remove_file(sb.desired().join("other.toml")).expect("rm");
    wait_for(Duration::from_secs(30), "other pruned", || {
        containers(&sb, "other").is_empty().then_some(())
    });
    assert_eq!(running(&sb, "web")[0].id, second.id);

    // SIGTERM: the agent exits, the container keeps running; a new agent adopts it.
    let status = agent.terminate();
    assert!(status.success(), "agent exit: {status:?}");
    assert!(matches!(sb.state(&second.id), State::Running(_)));
    let again = Agent::start(&sb, &sb.desired());
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        sole_running(&sb, "web", Duration::from_secs(5)).id,
        second.id
    );
    drop(again);
}

#[test]
fn a_killed_container_is_restarted_with_backoff() {
    let (sb, image) = setup();
    sb.write(
        "w.toml",
        &format!(
            "{}restart = \"always\"\nbackoff = {{ initial = \"1s\", max = \"8s\", reset_after = \"1m\" }}\n",
            server("w", &image, "1")
        ),
    );
    let _agent = Agent::start(&sb, &sb.desired());
    let c = sole_running(&sb, "w", Duration::from_secs(30));
    let kill_init = || {
        let State::Running(m) = sb.state(&c.id) else {
            panic!("not running")
        };
        let fd = m.init.open().expect("pidfd").expect("alive");
        berth::sys::send_signal(&fd, 9).expect("SIGKILL");
        Instant::now()
    };
    let started_ms = |sb: &Sandbox| match sb.state(&c.id) {
        State::Running(m) => Some(m.started_at_ms),
        _ => None,
    };
    let before = started_ms(&sb).expect("running");
    let killed = kill_init();
    // Restarted in place (same id), after about the initial delay.
    let restarted = wait_for(Duration::from_secs(15), "restart", || {
        started_ms(&sb).filter(|s| *s != before)
    });
    let first_gap = killed.elapsed();
    let r = sb.runtime.restarts(&c.id).expect("restart record");
    assert_eq!(r.count, 1);
    assert_eq!(r.last_exit.as_ref().and_then(|e| e.signal), Some(9));
    assert!(
        first_gap >= Duration::from_millis(900),
        "restarted too early: {first_gap:?}"
    );
    // Killed again right away: the delay doubles.
    let killed = kill_init();
    wait_for(Duration::from_secs(15), "second restart", || {
        started_ms(&sb).filter(|s| *s != restarted)
    });
    let second_gap = killed.elapsed();
    assert!(
        second_gap >= Duration::from_millis(1900),
        "backoff did not grow: {second_gap:?}"
    );
    assert_eq!(sb.runtime.restarts(&c.id).expect("record").count, 2);
    assert_eq!(
        containers(&sb, "w").len(),
        1,
        "a restart must not create a container"
    );
    let s = status_json(&sb);
    assert_eq!(s["containers"][0]["restarts"], 2, "{s}");

    // Removed by hand: recreated on the next pass (drift repair).
    let out = sb.berth(&["rm", "-f", &c.id]);
    assert!(out.status.success());
    let back = sole_running(&sb, "w", Duration::from_secs(10));
    assert_ne!(back.id, c.id);
}

#[test]
fn apply_twice_plans_nothing_the_second_time() {
    let (sb, image) = setup();
    sb.write("a.toml", &server("a", &image, "1"));
    sb.write(
        "b.toml",
        &format!(
            "{}depends_on = {{ a = \"started\" }}\n",
            server("b", &image, "1")
        ),
    );
    let dir = sb.desired();
    let dir = dir.to_str().expect("utf-8");
    let plan = sb.berth(&["plan", dir, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("+ run      container a") && text.contains("Plan: 1 to pull, 2 to run."),
        "{text}"
    );
    let apply = sb.berth(&["apply", dir]);
    assert!(
        apply.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&apply.stdout),
        String::from_utf8_lossy(&apply.stderr)
    );
    let a = sole_running(&sb, "a", Duration::from_secs(1));
    let b = sole_running(&sb, "b", Duration::from_secs(1));
    // b was started after a.
    let started = |id: &str| match sb.state(id) {
        State::Running(m) => m.started_at_ms,
        other => panic!("{other:?}"),
    };
    assert!(started(&a.id) <= started(&b.id));

    let plan = sb.berth(&["plan", dir, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let apply = sb.berth(&["apply", dir, "--json"]);
    assert!(apply.status.success());
    let report: serde_json::Value = serde_json::from_slice(&apply.stdout).expect("json");
    assert_eq!(
        report["plan"]["steps"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert_eq!(sole_running(&sb, "a", Duration::from_secs(1)).id, a.id);

    // A change shows in plan with the field that changed, and --wait converges.
    sb.write("a.toml", &server("a", &image, "2"));
    let plan = sb.berth(&["plan", dir]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("replace  container a")
            && text.contains("env.V: (value changed)")
            && !text.contains("\"2\""),
        "{text}"
    );
    let apply = sb.berth(&["apply", dir, "--wait", "--timeout", "60s"]);
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stdout)
    );
    assert_ne!(sole_running(&sb, "a", Duration::from_secs(1)).id, a.id);

    // A second agent on the same root is refused while one holds it (`apply` asks the
    // agent instead: tests/it/api.rs).
    let agent = Agent::start(&sb, &sb.desired());
    let second = sb.berth(&["agent", dir]);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another berth reconciler"), "{err}");
    // Its sockets are the first agent's, still answering.
    let status = sb.berth(&["apply", dir]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    drop(agent);
}

#[test]
fn a_swapped_symlink_directory_is_followed() {
    let (sb, image) = setup();
    let base = sb.dir.path();
    for (rev, v) in [("rev1", "1"), ("rev2", "2")] {
        std::fs::create_dir_all(base.join(rev)).expect("mkdir");
        std::fs::write(base.join(rev).join("web.toml"), server("web", &image, v)).expect("write");
    }
    let link = base.join("current");
    std::os::unix::fs::symlink("rev1", &link).expect("symlink");
    let _agent = Agent::start(&sb, &link);
    let first = sole_running(&sb, "web", Duration::from_secs(30));
    // git-sync's swap: a new symlink renamed over the old one.
    std::os::unix::fs::symlink("rev2", base.join("current.tmp")).expect("symlink");
    std::fs::rename(base.join("current.tmp"), &link).expect("rename");
    let second = replaced(&sb, "web", &first.id, "v=2");
    // And a change inside the new target is seen too.
    std::fs::write(
        base.join("rev2").join("web.toml"),
        server("web", &image, "3"),
    )
    .expect("write");
    replaced(&sb, "web", &second.id, "v=3");
}

#[test]
fn a_config_map_swap_is_followed() {
    // A Kubernetes config map volume: files are symlinks through `..data`, which is swapped
    // by renaming a new symlink over it.
    let (sb, image) = setup();
    let dir = sb.desired();
    let link = |target: &str, at: &str| {
        std::os::unix::fs::symlink(target, dir.join(at)).expect("symlink");
    };
    for (rev, v) in [("..2026_11_28_01", "1"), ("..2026_11_28_02", "2")] {
        std::fs::create_dir_all(dir.join(rev)).expect("mkdir");
        std::fs::write(dir.join(rev).join("web.toml"), server("web", &image, v)).expect("write");
    }
    link("..2026_11_28_01", "..data");
    link("..data/web.toml", "web.toml");
    let _agent = Agent::start(&sb, &dir);
    let first = sole_running(&sb, "web", Duration::from_secs(30));
    link("..2026_11_28_02", "..data_tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("rename");
    replaced(&sb, "web", &first.id, "v=2");
}

/// Processes whose command line names this sandbox's state root: monitors (and agents).
fn monitors_of(sb: &Sandbox) -> usize {
    let root = sb.root();
    let root = root.to_string_lossy();
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let ours = args.iter().any(|a| a == root.as_ref());
        let is_monitor = args.iter().any(|a| a == "monitor")
            || args.first().is_some_and(|a| a.ends_with("berth-monitor"));
        if ours && is_monitor {
            n += 1;
        }
    }
    n
}

/// `berth apply` killed at `failpoint` in the scenario that reaches it, then `apply --wait`
/// without it: one running container per entry, nothing leaked.
fn crash_and_converge(failpoint: &str) {
    let (sb, image) = setup();
    let dir = sb.desired();
    let dir_s = dir.to_str().expect("utf-8").to_string();
    let apply = |failpoints: &str| {
        Command::new(BERTH)
            .arg("--root")
            .arg(sb.root())
            .args(["apply", &dir_s])
            .env("BERTH_FAILPOINTS", failpoints)
            .env("BERTH_LOG", "error")
            .output()
            .expect("apply")
    };
    // Every scenario runs on a bridge network, so leases, veths and rules go through it too.
    let (subnet, _) = crate::network::subnet();
    let on_front = |v: &str| format!("{}networks = [\"front\"]\n", server("web", &image, v));
    sb.write(
        "net.toml",
        &format!("[network.front]\nsubnet = \"{subnet}\"\n"),
    );
    sb.write("web.toml", &on_front("1"));
    let mut names = vec!["web"];
    match failpoint {
        "replace-after-create" | "replace-after-stop" | "replace-after-remove" => {
            assert!(apply("").status.success());
            sb.write("web.toml", &on_front("2"));
        }
        "network-remove-after-rename" => {
            let (old_subnet, _) = crate::network::subnet();
            sb.write(
                "gone.toml",
                &format!(
                    "[network.old]\nsubnet = \"{old_subnet}\"\n\n{}networks = [\"old\"]\n",
                    server("gone", &image, "1")
                ),
            );
            assert!(apply("").status.success());
            std::fs::remove_file(dir.join("gone.toml")).expect("rm");
        }
        "prune-after-stop" | "remove-after-rename" => {
            sb.write("gone.toml", &server("gone", &image, "1"));
            assert!(apply("").status.success());
            std::fs::remove_file(dir.join("gone.toml")).expect("rm");
        }
        "restart-after-clear" => {
            sb.write(
                "job.toml",
                &format!("[container.job]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"sleep 0.2; exit 1\"]\nrestart = \"on-failure\"\nbackoff = {{ initial = \"100ms\" }}\n"),
            );
            assert!(apply("").status.success());
            let job = containers(&sb, "job")[0].id.clone();
            sb.wait_exit(&job, Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(200));
        }
        _ => {}
    }
    let crashed = apply(failpoint);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        crashed.status.signal(),
        Some(9),
        "{failpoint} was not reached: {:?}\n{}",
        crashed.status,
        String::from_utf8_lossy(&crashed.stderr)
    );
    let done = Command::new(BERTH)
        .arg("--root")
        .arg(sb.root())
        .args([
            "apply",
            &dir_s,
            "--wait",
            "--timeout",
            if failpoint == "restart-after-clear" {
                "3s"
            } else {
                "60s"
            },
        ])
        .output()
        .expect("apply");
    if failpoint == "restart-after-clear" {
        // The job keeps failing by design: it is restarted, never converged.
        names.push("job");
        let all = containers(&sb, "job");
        assert_eq!(all.len(), 1, "{failpoint}: duplicate job: {all:?}");
    } else {
        assert!(
            done.status.success(),
            "{failpoint}: did not converge:\n{}\n{}",
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let web = sole_running(&sb, "web", Duration::from_secs(5));
    assert!(
        containers(&sb, "gone").is_empty(),
        "{failpoint}: gone not pruned"
    );
    // No leftovers: every directory is a container, every monitor a running container's.
    let leftovers: Vec<String> = std::fs::read_dir(sb.root().join("containers"))
        .expect("containers dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{failpoint}: leftovers {leftovers:?}");
    // Networks: only `front`, its bridge and one veth per running container on it; no
    // half-removed network directory.
    let net_leftovers: Vec<String> = std::fs::read_dir(sb.root().join("networks"))
        .expect("networks dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // The resolver's lock, log and address files live beside the networks it serves.
        .filter(|n| n != ".lock" && !n.starts_with(".dns."))
        .collect();
    assert_eq!(net_leftovers, vec!["front".to_string()], "{failpoint}");
    let links = crate::support::net::links_of(&sb.runtime.layout().scope);
    let bridges = links
        .iter()
        .filter(|(_, a)| !a.contains(" container "))
        .count();
    let veths = links
        .iter()
        .filter(|(_, a)| a.contains(" container "))
        .count();
    assert_eq!(bridges, 1, "{failpoint}: {links:?}");
    assert_eq!(veths, running(&sb, "web").len(), "{failpoint}: {links:?}");
    let expected_monitors: usize = names.iter().map(|n| running(&sb, n).len()).sum();
    wait_for(
        Duration::from_secs(5),
        &format!("{failpoint}: one monitor per running container"),
        || (monitors_of(&sb) == expected_monitors).then_some(()),
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let root = sb.root();
    assert!(
        !mounts.contains(root.to_string_lossy().as_ref()),
        "{failpoint}: a mount under the state root leaked into the host"
    );
    let v = if failpoint.starts_with("replace") {
        "v=2"
    } else {
        "v=1"
    };
    wait_for(Duration::from_secs(5), v, || {
        sb.logs(&web.id).contains(v).then_some(())
    });
    let ids: BTreeSet<String> = sb
        .runtime
        .list()
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(ids.contains(&web.id));
}

macro_rules! crash_tests {
    ($($test:ident => $point:literal,)*) => {$(
        #[test]
        fn $test() {
            crash_and_converge($point);
        }
    )*};
}

crash_tests! {
    crash_after_pull => "apply-after-pull",
    crash_before_create_rename => "create-before-rename",
    crash_after_create_rename => "create-after-rename",
    crash_after_monitor_spawn => "start-after-spawn",
    crash_after_replacement_created => "replace-after-create",
    crash_after_old_stopped => "replace-after-stop",
    crash_after_old_removed => "replace-after-remove",
    crash_after_restart_cleared => "restart-after-clear",
    crash_after_pruned_container_stopped => "prune-after-stop",
    crash_during_removal => "remove-after-rename",
    crash_after_network_recorded => "network-create-after-record",
    crash_during_network_removal => "network-remove-after-rename",
}

#[test]
fn every_failpoint_is_exercised() {
    let source = [include_str!("agent.rs"), include_str!("update.rs")].concat();
    for point in berth::failpoint::POINTS {
        assert!(
            source.contains(&format!("=> \"{point}\"")),
            "failpoint {point} has no crash test"
        );
    }
}

#[test]
fn the_agent_reports_to_systemd() {
    let (sb, image) = setup();
    let socket_path = sb.dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    sb.write("web.toml", &server("web", &image, "1"));
    let socket_env = socket_path.to_str().expect("utf-8");
    let _agent = Agent::start_with_env(
        &sb,
        &sb.desired(),
        &[("NOTIFY_SOCKET", socket_env), ("WATCHDOG_USEC", "400000")],
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let wanted = |seen: &[String]| {
        seen.iter().any(|m| m.contains("READY=1"))
            && seen
                .iter()
                .any(|m| m.contains("STATUS=") && m.contains("step(s), 0 failed"))
            && seen.iter().any(|m| m.contains("WATCHDOG=1"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wanted(&seen) {
        assert!(Instant::now() < deadline, "missing messages; got {seen:?}");
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no message ({e}); got {seen:?}"));
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    sole_running(&sb, "web", Duration::from_secs(10));
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/berth.service"
    ))
    .expect("unit");
    assert!(
        unit.contains("Type=notify")
            && unit.contains("KillMode=process")
            && unit.contains("Delegate=yes")
            && unit.contains("Restart=always")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("berth.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/berth", BERTH)).expect("write");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.lines().any(|l| l.contains("berth.service")),
        "{err}"
    );
}

#[test]
fn manual_containers_and_an_empty_directory_are_left_alone() {
    let (sb, image) = setup();
    sb.write("web.toml", &server("web", &image, "1"));
    let agent = Agent::start(&sb, &sb.desired());
    let web = sole_running(&sb, "web", Duration::from_secs(30));
    // A container started by hand from another directory: not the agent's to prune.
    let other = sb.dir.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("job.toml"), server("job", &image, "1")).expect("write");
    let out = sb.berth(&["run", "-d", other.to_str().expect("utf-8"), "job"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The directory emptied (a mount not there yet): nothing is pruned.
    std::fs::remove_file(sb.desired().join("web.toml")).expect("rm");
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        matches!(sb.state(&job), State::Running(_)),
        "a manual container was touched"
    );
    assert!(
        matches!(sb.state(&web.id), State::Running(_)),
        "an empty directory pruned"
    );
    let log = agent.log();
    assert!(log.contains("holds no desired files"), "{log}");
}

#[test]
fn a_file_being_written_is_not_read_half_written() {
    use std::io::Write;
    let (sb, image) = setup();
    let both = format!("{}{}", server("a", &image, "1"), server("b", &image, "1"));
    sb.write("ab.toml", &both);
    let _agent = Agent::start(&sb, &sb.desired());
    let a = sole_running(&sb, "a", Duration::from_secs(30));
    let b = sole_running(&sb, "b", Duration::from_secs(30));
    // Rewritten in place by a slow writer: the first half (a valid file without `b`), a
    // pause longer than the prune delay with the file still open, then the rest.
    let mut file = std::fs::File::create(sb.desired().join("ab.toml")).expect("open");
    file.write_all(server("a", &image, "1").as_bytes())
        .expect("write");
    file.flush().expect("flush");
    std::thread::sleep(Duration::from_secs(4));
    file.write_all(server("b", &image, "1").as_bytes())
        .expect("write");
    drop(file);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sole_running(&sb, "a", Duration::from_secs(1)).id, a.id);
    assert_eq!(
        sole_running(&sb, "b", Duration::from_secs(1)).id,
        b.id,
        "b was pruned or replaced while its file was being written"
    );
}

#[test]
fn a_new_digest_behind_a_tag_replaces_the_container() {
    use crate::support::images::{BUSYBOX_PATH, ImageBuilder, busybox_layer};
    use crate::support::registry::TestRegistry;
    let sb = Sandbox::new();
    let registry = TestRegistry::start();
    let build = |n: &str| {
        ImageBuilder::new("amd64")
            .layer(busybox_layer())
            .env("PATH", BUSYBOX_PATH)
            .env("BUILD", n)
            .cmd(&["/bin/sh"])
            .oci()
    };
    registry.push_image("app", "latest", &build("1"));
    sb.write(
        "app.toml",
        &format!(
            "[image.app]\nreference = \"{}/app:latest\"\npull = \"always\"\n\n[container.app]\nimage = \"app\"\ncommand = [\"sh\", \"-c\", \"echo build=$BUILD; trap 'exit 0' TERM; while true; do sleep 1; done\"]\nstop_timeout = \"2s\"\n",
            registry.host()
        ),
    );
    let dir = sb.desired();
    let dir = dir.to_str().expect("utf-8");
    let apply = || {
        let out = sb.berth(&["apply", dir]);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    apply();
    let first = sole_running(&sb, "app", Duration::from_secs(5));
    wait_for(Duration::from_secs(5), "build=1", || {
        sb.logs(&first.id).contains("build=1").then_some(())
    });
    // The same tag, new content: the next apply re-resolves it and replaces the container.
    registry.push_image("app", "latest", &build("2"));
    let out = apply();
    assert!(out.contains("its image changed"), "{out}");
    let second = sole_running(&sb, "app", Duration::from_secs(5));
    assert_ne!(second.id, first.id);
    assert_ne!(second.image_digest, first.image_digest);
    wait_for(Duration::from_secs(5), "build=2", || {
        sb.logs(&second.id).contains("build=2").then_some(())
    });
    // Unchanged tag: nothing to do.
    let out = apply();
    assert!(out.contains("No changes"), "{out}");
    assert_eq!(
        sole_running(&sb, "app", Duration::from_secs(1)).id,
        second.id
    );
}
