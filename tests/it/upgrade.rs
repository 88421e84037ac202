//! The upgrade contract end to end: the previous release's binaries (built from this
//! repository's history by `scripts/build-previous-release`, the commit named in
//! `tests/fixtures/upgrade/previous-release`) make a machine's state — images, a network
//! with a published port, a volume, a health-checked start-first container, a plain one,
//! one under the external runc engine and one that ran to completion — and this berth
//! takes it over: `apply` and the agent replace nothing and restart nothing, and the
//! containers the old monitors still supervise are then driven by the new berth (exec,
//! a start-first update, removal).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth::runtime::State;
use berth::state::record::{self, MonitorRecord};

use crate::agent::{Agent, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::net::{free_port, http_get};
use crate::support::sandbox::Sandbox;

/// The previous release's `berth` (its `berth-monitor` beside it), built once per commit.
fn previous_release() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-previous-release");
    // `--separate`: this test may run while other tests use target/debug/berth.
    let out = Command::new(&script)
        .arg("--separate")
        .output()
        .expect("run scripts/build-previous-release");
    assert!(
        out.status.success(),
        "building the previous release failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let berth = dir.join("berth");
    assert!(
        berth.is_file() && dir.join("berth-monitor").is_file(),
        "{}",
        dir.display()
    );
    berth
}

/// What says a container was neither replaced nor restarted: its id, its monitor and init
/// (pid and start time), when its run started, its restart count and how it ended.
#[derive(Debug, PartialEq)]
struct Run {
    id: String,
    monitor: Option<MonitorRecord>,
    restarts: u32,
    state: String,
}

fn runs(sb: &Sandbox) -> BTreeMap<String, Run> {
    let mut out = BTreeMap::new();
    for c in sb.runtime.list().expect("list") {
        let monitor =
            record::load::<MonitorRecord>(&sb.runtime.layout().container(&c.id).monitor())
                .expect("monitor record");
        let state = match sb.runtime.state(&c.id).expect("state") {
            State::Running(_) => "running".to_string(),
            State::Exited(exit) => format!("exited: {}", exit.describe()),
            other => format!("{other:?}"),
        };
        let run = Run {
            id: c.id.clone(),
            monitor,
            restarts: sb.runtime.restarts(&c.id).map_or(0, |r| r.count),
            state,
        };
        assert!(
            out.insert(c.name.clone(), run).is_none(),
            "two containers of {}",
            c.name
        );
    }
    out
}

fn desired(sb: &Sandbox, image: &str, subnet: &str, port: u16, page: &str) {
    sb.write(
        "stack.toml",
        &format!(
            r#"
[image.busybox]
reference = "{image}"

[network.up]
subnet = "{subnet}"

[volume.up-data]

[container.web]
image = "busybox"
command = ["sh", "-c", "mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p 80 -h /www"]
networks = [{{ name = "up", aliases = ["www"] }}]
ports = ["127.0.0.1:{port}:80"]
mounts = ["up-data:/data"]
memory = "32MiB"
health = {{ http = "http://127.0.0.1:80/", interval = "1s" }}
update = "start-first"
drain = "1s"

[container.worker]
image = "busybox"
command = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]

[container.external]
image = "busybox"
command = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
runtime = "runc"

[container.once]
image = "busybox"
command = ["sh", "-c", "echo done > /tmp/done"]
restart = "never"
"#
        ),
    );
}

fn apply(berth: &Path, sb: &Sandbox) -> String {
    let out = Command::new(berth)
        .arg("--root")
        .arg(sb.root())
        .args(["apply", "--wait", "--timeout", "90s"])
        .arg(sb.desired())
        .env("BERTH_LOG", "warn,libcgroups=error")
        .output()
        .expect("run apply");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{} apply: {text}", berth.display());
    text
}

fn page(port: u16) -> Option<String> {
    http_get(([127, 0, 0, 1], port).into()).map(|body| body.trim().to_string())
}

#[test]
fn a_new_berth_adopts_the_previous_releases_containers_untouched() {
    let previous = previous_release();
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let (subnet, _) = crate::network::subnet();
    let port = free_port();
    desired(&sb, &image, &subnet, port, "v1");

    // The previous release makes the state and leaves its monitors running.
    apply(&previous, &sb);
    wait_for(Duration::from_secs(30), "v1 to be served", || {
        (page(port).as_deref() == Some("v1")).then_some(())
    });
    let before = runs(&sb);
    assert_eq!(
        before.keys().map(String::as_str).collect::<Vec<_>>(),
        ["external", "once", "web", "worker"]
    );
    for name in ["web", "worker", "external"] {
        assert_eq!(before[name].state, "running", "{name}: {:?}", before[name]);
    }
    assert_eq!(before["once"].state, "exited: exited with code 0");

    // This berth: a plan with nothing to do, an apply that changes nothing, then the agent
    // for several passes (it also takes over the health checks).
    let plan = sb.berth(&["plan", sb.desired().to_str().expect("utf-8")]);
    let plan_text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        plan.status.success() && plan_text.contains("No changes"),
        "plan after the upgrade: {plan_text}{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let health_path = sb.runtime.layout().container(&before["web"].id).health();
    let checks_before = record::load::<berth::health::verdict::HealthRecord>(&health_path)
        .expect("health")
        .expect("a verdict of the previous release")
        .checks;
    let applied = apply(Path::new(crate::support::sandbox::BERTH), &sb);
    assert!(applied.contains("No changes"), "{applied}");
    let agent = Agent::start(&sb, &sb.desired());
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(page(port).as_deref(), Some("v1"));
    let log = agent.log();
    assert!(agent.terminate().success(), "{log}");
    let after = runs(&sb);
    let replaced: Vec<&String> = before
        .iter()
        .filter(|(name, run)| after.get(*name).is_none_or(|a| a.id != run.id))
        .map(|(name, _)| name)
        .collect();
    let restarted: Vec<&String> = before
        .iter()
        .filter(|(name, run)| {
            after
                .get(*name)
                .is_some_and(|a| a.id == run.id && a != *run)
        })
        .map(|(name, _)| name)
        .collect();
    assert!(
        replaced.is_empty() && restarted.is_empty() && after.len() == before.len(),
        "replaced: {replaced:?}, restarted: {restarted:?}\nbefore: {before:#?}\nafter: {after:#?}\nagent log:\n{log}"
    );
    // The new agent took the checks over: the same verdict, carried on.
    let verdict: berth::health::verdict::HealthRecord = record::load(&health_path)
        .expect("health")
        .expect("a verdict");
    assert_eq!(verdict.status, berth::health::verdict::Health::Healthy);
    assert!(
        verdict.checks > checks_before,
        "checks went on: {checks_before} then {}",
        verdict.checks
    );

    // The old monitors' containers answer to the new berth.
    let exec = sb.berth(&["exec", "web", "--", "cat", "/www/index.html"]);
    assert!(
        exec.status.success() && String::from_utf8_lossy(&exec.stdout).trim() == "v1",
        "exec into the old container: {exec:?}"
    );
    let old_web = after["web"].id.clone();
    desired(&sb, &image, &subnet, port, "v2");
    apply(Path::new(crate::support::sandbox::BERTH), &sb);
    assert_eq!(page(port).as_deref(), Some("v2"));
    let updated = runs(&sb);
    assert_ne!(updated["web"].id, old_web, "web was updated");
    for name in ["worker", "external", "once"] {
        assert_eq!(
            updated[name], after[name],
            "{name} is untouched by web's update"
        );
    }
    let left: Vec<String> = sb
        .runtime
        .list()
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(
        !left.contains(&old_web),
        "the old web container is removed once drained: {:?}",
        sb.runtime.state(&old_web)
    );
}

/// A package upgrade can land between a monitor's two stages: the first stage of one release
/// execs the `berth-monitor` of another. Both ways round, the second stage supervises: it
/// relays the output, and it records the exit when the container is stopped.
#[test]
fn monitor_stages_of_different_releases_work_together() {
    let previous = previous_release();
    let current = PathBuf::from(crate::support::sandbox::BERTH);
    let bin_dir = |p: &Path| p.parent().expect("a directory").to_path_buf();
    for (first, second) in [(&previous, &current), (&current, &previous)] {
        let sb = Sandbox::new();
        // The first stage finds its second beside itself (`current_exe()`), so both are put
        // into one directory.
        let mixed = sb.dir.path().join("bin");
        std::fs::create_dir(&mixed).expect("mkdir");
        std::fs::copy(first, mixed.join("berth")).expect("copy the first stage");
        std::fs::copy(
            bin_dir(second).join("berth-monitor"),
            mixed.join("berth-monitor"),
        )
        .expect("copy the second stage");
        let image = sb.image("busybox", &busybox_image());
        sb.write(
            "app.toml",
            &format!(
                r#"
[image.busybox]
reference = "{image}"

[container.app]
image = "busybox"
command = ["sh", "-c", "echo up; trap 'echo bye; exit 7' TERM; while true; do sleep 1; done"]
"#
            ),
        );
        let what = format!(
            "{} with the berth-monitor of {}",
            first.display(),
            second.display()
        );
        apply(&mixed.join("berth"), &sb);
        let id = sb.runtime.list().expect("list")[0].id.clone();
        let monitor = match sb.runtime.state(&id).expect("state") {
            State::Running(m) => m.monitor,
            other => panic!("{what}: {other:?}"),
        };
        wait_for(Duration::from_secs(10), "the output relayed", || {
            sb.logs(&id).contains("up").then_some(())
        });
        let exe = std::fs::read_link(format!("/proc/{}/exe", monitor.pid)).expect("exe");
        assert_eq!(
            exe,
            mixed.join("berth-monitor"),
            "{what}: the second stage supervises"
        );
        let stop = sb.berth(&["stop", "app"]);
        assert!(stop.status.success(), "{what}: {stop:?}");
        let exit = sb.wait_exit(&id, Duration::from_secs(20));
        assert_eq!(exit.status(), 7, "{what}: {exit:?}");
        assert!(sb.logs(&id).contains("bye"), "{what}");
    }
}

/// After a downgrade, a container record of a newer berth is neither adopted nor taken for
/// damage: the pass starts nothing (a twin), removes nothing, and says why.
#[test]
fn a_newer_berths_container_is_left_alone_and_not_twinned() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write(
        "app.toml",
        &format!(
            "[image.busybox]\nreference = \"{image}\"\n\n[container.app]\nimage = \"busybox\"\ncommand = [\"sleep\", \"3600\"]\n"
        ),
    );
    apply(Path::new(crate::support::sandbox::BERTH), &sb);
    let app = sb.runtime.list().expect("list").remove(0);
    let init = match sb.runtime.state(&app.id).expect("state") {
        State::Running(m) => m.init,
        other => panic!("{other:?}"),
    };
    let path = sb.runtime.layout().container(&app.id).record();
    let original = std::fs::read(&path).expect("record");
    let mut json: serde_json::Value = serde_json::from_slice(&original).expect("json");
    json["format"] = serde_json::Value::from(99);
    std::fs::write(&path, serde_json::to_vec(&json).expect("encode")).expect("write");

    let out = sb.berth(&["apply", sb.desired().to_str().expect("utf-8")]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dirs: Vec<String> = std::fs::read_dir(sb.root().join("containers"))
        .expect("containers")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    // Put the record back first, so the sandbox can clean up whatever happened.
    std::fs::write(&path, &original).expect("restore");
    assert_eq!(
        dirs,
        std::slice::from_ref(&app.id),
        "no twin was made: {text}"
    );
    assert!(
        text.contains("newer berth") && text.contains("cannot be listed"),
        "{text}"
    );
    assert!(
        matches!(sb.runtime.state(&app.id).expect("state"), State::Running(m) if m.init == init),
        "the container runs on, untouched"
    );
}
