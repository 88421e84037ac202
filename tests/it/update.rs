//! Health checks and zero-downtime replacement, as root, with real containers behind a real
//! published port: a load generator on 127.0.0.1 counts every request through successive
//! start-first updates (none may fail), through stop-first updates (some must, or the test
//! could not tell the two apart), through an update whose new container never becomes
//! healthy, and through crashes of the reconciler at every step of the sequence.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use berth::runtime::State;

use crate::agent::{Agent, containers, running, sole_running, status_json, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::load::{Load, Report};
use crate::support::net::{free_port, http_get};
use crate::support::sandbox::{BERTH, Sandbox};

/// An HTTP server answering its `VERSION` on `/`; `/healthz` exists unless the version is
/// `broken`.
struct Web {
    image: String,
    subnet: String,
    port: u16,
    strategy: &'static str,
    drain: &'static str,
    /// Extra keys of the entry.
    extra: String,
}

impl Web {
    fn new(sb: &Sandbox, strategy: &'static str) -> Web {
        Web {
            image: sb.image("busybox", &busybox_image()),
            subnet: crate::network::subnet().0,
            port: free_port(),
            strategy,
            drain: "1s",
            extra: String::new(),
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn toml(&self, version: &str) -> String {
        format!(
            r#"[network.front]
subnet = "{subnet}"

[container.web]
image = "{image}"
env = {{ VERSION = "{version}" }}
command = ["sh", "-c", "mkdir -p /www && echo $VERSION > /www/index.html && if [ $VERSION != broken ]; then echo ok > /www/healthz; fi; exec httpd -f -p 80 -h /www"]
networks = ["front"]
ports = ["127.0.0.1:{port}:80"]
stop_timeout = "2s"
health = {{ http = "http://127.0.0.1:80/healthz", interval = "300ms", timeout = "1s", retries = 2 }}
update = "{strategy}"
drain = "{drain}"
{extra}
"#,
            subnet = self.subnet,
            image = self.image,
            port = self.port,
            strategy = self.strategy,
            drain = self.drain,
            extra = self.extra,
        )
    }

    fn write(&self, sb: &Sandbox, version: &str) {
        sb.write("web.toml", &self.toml(version));
    }

    /// The port answers `version`.
    fn wait_answers(&self, version: &str, timeout: Duration) {
        wait_for(timeout, &format!("the port to answer {version}"), || {
            (http_get(self.addr()).as_deref().map(str::trim) == Some(version)).then_some(())
        });
    }
}

/// The port answers `version`, and exactly one `web` container is left, running (the old
/// one drained and went).
fn settled(sb: &Sandbox, web: &Web, version: &str, timeout: Duration) {
    web.wait_answers(version, timeout);
    sole_running(sb, "web", timeout);
}

fn assert_no_failures(sb: &Sandbox, report: &Report, what: &str) {
    assert!(
        report.failures().is_empty(),
        "{what}: requests failed\n{}\nwhat the agents did meanwhile:\n{}",
        report.summary(),
        agent_steps(sb)
    );
}

/// The sandbox's agent logs, the lines a lost request is matched against: steps, stops,
/// exits, health verdicts and the tables applied (with where each port went).
fn agent_steps(sb: &Sandbox) -> String {
    let mut logs: Vec<std::path::PathBuf> = std::fs::read_dir(sb.dir.path())
        .map(|dir| {
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("agent-") && n.ends_with(".log"))
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    let mut out = String::new();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        out += &format!("{}:\n", log.display());
        for line in text.lines().map(without_colours).filter(|l| {
            [
                "step=",
                "killing",
                "container exited",
                "healthy",
                "applying the table",
            ]
            .iter()
            .any(|k| l.contains(k))
        }) {
            out += &format!("  {line}\n");
        }
    }
    out
}

/// Switch times the agent logged ("ports switched" … switch_ms=N).
fn switch_times(log: &str) -> Vec<u64> {
    log.lines()
        .map(without_colours)
        .filter(|l| l.contains("ports switched"))
        .filter_map(|l| {
            let (_, rest) = l.split_once("switch_ms=")?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// The line without its ANSI colour sequences (ESC [ … m).
fn without_colours(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn start_first_updates_lose_no_request() {
    let sb = Sandbox::new();
    let web = Web::new(&sb, "start-first");
    web.write(&sb, "v1");
    let agent = Agent::start(&sb, &sb.desired());
    settled(&sb, &web, "v1", Duration::from_secs(30));

    let load = Load::start(web.addr(), 4);
    let started = Instant::now();
    let versions = ["v1", "v2", "v3", "v4", "v5", "v6"];
    for v in &versions[1..] {
        web.write(&sb, v);
        settled(&sb, &web, v, Duration::from_secs(60));
    }
    let report = load.stop();
    let elapsed = started.elapsed();
    assert_no_failures(&sb, &report, "start-first");
    report
        .check_order(&versions)
        .unwrap_or_else(|e| panic!("{e}\n{}", report.summary()));
    for v in &versions[1..] {
        assert!(
            report.count_of(v) > 0,
            "{v} never answered: {}",
            report.summary()
        );
    }
    let t0 = report.samples()[0].started;
    for v in &versions {
        let times: Vec<f64> = report
            .samples()
            .iter()
            .filter(|x| x.result.as_deref() == Ok(*v))
            .map(|x| x.started.duration_since(t0).as_secs_f64())
            .collect();
        eprintln!(
            "{v}: {:.3}..{:.3}",
            times.first().unwrap_or(&0.0),
            times.last().unwrap_or(&0.0)
        );
    }
    let switches = switch_times(&agent.log());
    assert_eq!(switches.len(), 5, "one switch per update: {switches:?}");
    eprintln!(
        "start-first: 5 updates in {elapsed:?}, {}; switch after healthy (ms): {switches:?}",
        report.summary()
    );
}

#[test]
fn stop_first_updates_lose_requests() {
    let sb = Sandbox::new();
    let web = Web::new(&sb, "stop-first");
    web.write(&sb, "v1");
    let _agent = Agent::start(&sb, &sb.desired());
    settled(&sb, &web, "v1", Duration::from_secs(30));

    let load = Load::start(web.addr(), 4);
    for v in ["v2", "v3"] {
        web.write(&sb, v);
        settled(&sb, &web, v, Duration::from_secs(60));
    }
    let report = load.stop();
    eprintln!("stop-first: {}", report.summary());
    assert!(
        !report.failures().is_empty(),
        "stop-first replaced a serving container without a failed request, so the load cannot tell updates apart: {}",
        report.summary()
    );
    report
        .check_order(&["v1", "v2", "v3"])
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A start-first `web` answering v1 under the agent, whose updates must be healthy within 2s
/// and whose failures wait 30s: the entry, the agent and the serving container's id.
fn serving_v1(sb: &Sandbox) -> (Web, Agent, String) {
    let mut web = Web::new(sb, "start-first");
    web.extra = "update_timeout = \"2s\"\nbackoff = { initial = \"30s\" }\n".into();
    web.write(sb, "v1");
    let agent = Agent::start(sb, &sb.desired());
    settled(sb, &web, "v1", Duration::from_secs(30));
    let serving = sole_running(sb, "web", Duration::from_secs(5)).id;
    (web, agent, serving)
}

#[test]
fn a_new_container_never_healthy_is_rolled_back_and_not_retried_at_once() {
    let sb = Sandbox::new();
    // Failed checks do not count for 30s, so only the deadline ends the attempt; a long
    // backoff shows that the same spec is not tried again meanwhile.
    let (web, _agent, serving) = serving_v1(&sb);

    let load = Load::start(web.addr(), 4);
    sb.write(
        "web.toml",
        &web.toml("broken")
            .replace("retries = 2 }", "retries = 2, start_period = \"30s\" }"),
    );
    // The attempt: a second container appears, then goes.
    let attempt = wait_for(Duration::from_secs(20), "the new container", || {
        containers(&sb, "web")
            .into_iter()
            .find(|c| c.id != serving)
            .map(|c| c.id)
    });
    wait_for(Duration::from_secs(20), "the attempt to be removed", || {
        (containers(&sb, "web").len() == 1).then_some(())
    });
    let failed_at = Instant::now();
    // Not tried again within its backoff, and the old one serves throughout.
    let mut ids = std::collections::BTreeSet::new();
    while failed_at.elapsed() < Duration::from_secs(5) {
        ids.extend(containers(&sb, "web").into_iter().map(|c| c.id));
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = load.stop();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        vec![serving.clone()],
        "retried within its backoff"
    );
    assert_no_failures(&sb, &report, "failed update");
    assert_eq!(
        report.count_of("v1"),
        report.total(),
        "only v1 answers: {}",
        report.summary()
    );
    let status = status_json(&sb);
    let row = status["containers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "web"))
        .cloned()
        .expect("web in status");
    assert_eq!(row["id"], serving.as_str(), "{row}");
    let note = row["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("start-first update of web failed")
            && note.contains(&attempt)
            && note.contains("update_timeout"),
        "{row}"
    );
    eprintln!("failed update: {}; status note: {note}", report.summary());
}

/// `berth ps --json`, by container name (running ones).
fn ps(sb: &Sandbox) -> Vec<serde_json::Value> {
    let out = sb.berth(&["ps", "--json"]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("ps json")
}

fn health_of(sb: &Sandbox, name: &str) -> Option<String> {
    ps(sb)
        .into_iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["health"].as_str().map(String::from))
}

#[test]
fn health_checks_of_each_kind_restart_the_unhealthy_and_gate_dependents() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let (subnet, _) = crate::network::subnet();
    sb.write(
        "checks.toml",
        &format!(
            r#"[network.back]
subnet = "{subnet}"

[container.by-exec]
image = "{image}"
command = ["sh", "-c", "touch /tmp/ok; exec sleep 3600"]
health = {{ exec = ["test", "-f", "/tmp/ok"], interval = "300ms", retries = 2 }}
restart = "always"
backoff = {{ initial = "100ms" }}
stop_timeout = "1s"

[container.by-tcp]
image = "{image}"
command = ["sh", "-c", "sleep 1; exec httpd -f -p 5432 -h /"]
networks = ["back"]
health = {{ tcp = 5432, interval = "300ms", start_period = "10s" }}
stop_timeout = "1s"

[container.by-http]
image = "{image}"
command = ["sh", "-c", "mkdir -p /www && exec httpd -f -p 8080 -h /www"]
health = {{ http = "http://127.0.0.1:8080/missing", interval = "300ms", retries = 2 }}
restart = "never"
stop_timeout = "1s"

[container.after-db]
image = "{image}"
command = ["sleep", "3600"]
depends_on = {{ by-tcp = "healthy" }}
stop_timeout = "1s"
"#
        ),
    );
    let _agent = Agent::start(&sb, &sb.desired());
    wait_for(
        Duration::from_secs(30),
        "exec and tcp checks healthy",
        || {
            (health_of(&sb, "by-exec").as_deref() == Some("healthy")
                && health_of(&sb, "by-tcp").as_deref() == Some("healthy"))
            .then_some(())
        },
    );
    wait_for(Duration::from_secs(30), "the http check unhealthy", || {
        (health_of(&sb, "by-http").as_deref() == Some("unhealthy")).then_some(())
    });
    // restart = "never": an unhealthy container stays as it is, and says why.
    let http = ps(&sb)
        .into_iter()
        .find(|r| r["name"] == "by-http")
        .expect("by-http");
    assert!(
        http["health_output"]
            .as_str()
            .is_some_and(|o| o.contains("404")),
        "{http}"
    );
    assert!(
        http["status"]
            .as_str()
            .is_some_and(|s| s.contains("(unhealthy)"))
    );

    // The dependent started only once its dependency was healthy (the tcp server listens
    // after a second).
    let after = sole_running(&sb, "after-db", Duration::from_secs(30));
    let db = sole_running(&sb, "by-tcp", Duration::from_secs(5));
    let started = |id: &str| match sb.state(id) {
        State::Running(m) => m.started_at_ms,
        other => panic!("{id}: {other:?}"),
    };
    let healthy_since: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.runtime.layout().container(&db.id).health()).expect("health.json"),
    )
    .expect("json");
    let since = healthy_since["since_ms"].as_u64().expect("since_ms");
    assert!(
        started(&after.id) >= since && since >= started(&db.id) + 900,
        "after-db started at {}, by-tcp healthy since {since}, started {}",
        started(&after.id),
        started(&db.id)
    );

    // Made unhealthy: stopped and restarted in place under restart = "always".
    let exec = sole_running(&sb, "by-exec", Duration::from_secs(5));
    let out = sb.berth(&["exec", "by-exec", "--", "rm", "/tmp/ok"]);
    assert!(out.status.success());
    wait_for(
        Duration::from_secs(30),
        "by-exec restarted and healthy again",
        || {
            let row = ps(&sb).into_iter().find(|r| r["name"] == "by-exec")?;
            (row["id"] == exec.id.as_str() && row["restarts"] == 1 && row["health"] == "healthy")
                .then_some(())
        },
    );
    let status = status_json(&sb);
    let row = status["containers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "by-exec"))
        .cloned()
        .expect("by-exec");
    assert!(
        row["last_exit"]
            .as_str()
            .is_some_and(|e| e.starts_with("stopped by berth, unhealthy")),
        "{row}"
    );
}

/// `berth apply` killed at `failpoint` during a start-first update, then `apply` again: one
/// serving container, the new version (or the old one after a failed update), the port
/// answering throughout.
fn crash_during_update(failpoint: &str) {
    let sb = Sandbox::new();
    let mut web = Web::new(&sb, "start-first");
    web.extra = "update_timeout = \"3s\"\n".into();
    let dir = sb.desired();
    let dir_s = dir.to_str().expect("utf-8").to_string();
    let apply = |failpoints: &str, wait: bool| {
        let mut cmd = Command::new(BERTH);
        cmd.arg("--root")
            .arg(sb.root())
            .args(["apply", &dir_s])
            .env("BERTH_FAILPOINTS", failpoints)
            .env("BERTH_LOG", "error");
        if wait {
            cmd.args(["--wait", "--timeout", "60s"]);
        }
        cmd.output().expect("apply")
    };
    web.write(&sb, "v1");
    assert!(apply("", false).status.success());
    settled(&sb, &web, "v1", Duration::from_secs(10));
    let load = Load::start(web.addr(), 2);
    let (next, end) = if failpoint == "abort-after-stop" {
        ("broken", "v1")
    } else {
        ("v2", "v2")
    };
    web.write(&sb, next);
    let crashed = apply(failpoint, false);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        crashed.status.signal(),
        Some(9),
        "{failpoint} was not reached: {:?}\n{}",
        crashed.status,
        String::from_utf8_lossy(&crashed.stderr)
    );
    let again = apply("", end == "v2");
    if end == "v2" {
        assert!(
            again.status.success(),
            "{failpoint}: did not converge:\n{}\n{}",
            String::from_utf8_lossy(&again.stdout),
            String::from_utf8_lossy(&again.stderr)
        );
    } else {
        // The interrupted rollback is finished, and reported as the failure it is.
        assert!(!again.status.success());
        assert!(
            String::from_utf8_lossy(&again.stdout).contains("start-first update of web failed"),
            "{}",
            String::from_utf8_lossy(&again.stdout)
        );
    }
    settled(&sb, &web, end, Duration::from_secs(10));
    let report = load.stop();
    assert_no_failures(&sb, &report, failpoint);
    assert_eq!(running(&sb, "web").len(), 1);
    // The port goes to the one left, and nothing of the other remains plugged in.
    let links = crate::support::net::links_of(&sb.runtime.layout().scope);
    let veths = links
        .iter()
        .filter(|(_, a)| a.contains(" container "))
        .count();
    assert_eq!(veths, 1, "{failpoint}: {links:?}");
}

macro_rules! update_crash_tests {
    ($($test:ident => $point:literal,)*) => {$(
        #[test]
        fn $test() {
            crash_during_update($point);
        }
    )*};
}

update_crash_tests! {
    crash_after_the_new_container_is_created => "start-first-after-create",
    crash_between_the_claim_and_the_rules => "take-over-after-claim",
    crash_during_a_rollback => "abort-after-stop",
}

#[test]
fn an_agent_killed_while_the_old_container_drains_finishes_the_update() {
    let sb = Sandbox::new();
    let mut web = Web::new(&sb, "start-first");
    web.drain = "4s";
    web.write(&sb, "v1");
    let agent = Agent::start(&sb, &sb.desired());
    settled(&sb, &web, "v1", Duration::from_secs(30));
    let load = Load::start(web.addr(), 2);
    web.write(&sb, "v2");
    // Switched, old one draining: two running, v2 answering.
    wait_for(Duration::from_secs(30), "the switch", || {
        (running(&sb, "web").len() == 2
            && http_get(web.addr()).as_deref().map(str::trim) == Some("v2"))
        .then_some(())
    });
    drop(agent);
    assert_eq!(running(&sb, "web").len(), 2, "the old one still drains");
    let _agent = Agent::start(&sb, &sb.desired());
    settled(&sb, &web, "v2", Duration::from_secs(30));
    let report = load.stop();
    assert_no_failures(&sb, &report, "agent killed during drain");
    report
        .check_order(&["v1", "v2"])
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_timed_out_exec_check_leaves_no_process_running() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    // The check starts a background process and then hangs, ignoring SIGTERM.
    sb.write(
        "c.toml",
        &format!(
            r#"[container.c]
image = "{image}"
command = ["sleep", "100000"]
restart = "never"
stop_timeout = "1s"
health = {{ exec = ["sh", "-c", "sleep 1000 & trap '' TERM; sleep 1000"], interval = "300ms", timeout = "200ms", retries = 1000 }}
"#
        ),
    );
    let _agent = Agent::start(&sb, &sb.desired());
    let c = sole_running(&sb, "c", Duration::from_secs(30));
    let health = sb.runtime.layout().container(&c.id).health();
    wait_for(Duration::from_secs(30), "five timed-out checks", || {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&health).ok()?).ok()?;
        (v["checks"].as_u64()? >= 5).then_some(())
    });
    let verdict = std::fs::read_to_string(&health).expect("health.json");
    assert!(verdict.contains("did not finish within 200ms"), "{verdict}");
    // Every process in the container but its init (and the shell looking) has ended; orphans
    // the init does not reap stay as zombies, as with any exec.
    let (alive, listing) = sb.left_running("c");
    assert!(alive.is_empty(), "left running: {alive:?}\n{listing}");
}

#[test]
fn a_new_published_port_waits_for_the_health_check_too() {
    let sb = Sandbox::new();
    let (web, _agent, serving) = serving_v1(&sb);
    let other = free_port();
    let other_addr = SocketAddr::from(([127, 0, 0, 1], other));
    let on_other = |version: &str, start_period: &str| {
        web.toml(version)
            .replace(
                &format!("127.0.0.1:{}:80", web.port),
                &format!("127.0.0.1:{other}:80"),
            )
            .replace(
                "retries = 2 }",
                &format!("retries = 2, start_period = \"{start_period}\" }}"),
            )
    };
    let load = Load::start(web.addr(), 2);
    // Never healthy, on another port: the port never answers, the old one keeps serving.
    sb.write("web.toml", &on_other("broken", "30s"));
    wait_for(Duration::from_secs(20), "the attempt", || {
        (containers(&sb, "web").len() == 2).then_some(())
    });
    let mut answered = Vec::new();
    while containers(&sb, "web").len() == 2 {
        if let Some(body) = http_get(other_addr) {
            answered.push(body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = load.stop();
    assert!(answered.is_empty(), "the new port answered {answered:?}");
    assert_no_failures(&sb, &report, "a new port, never healthy");
    assert_eq!(
        report.count_of("v1"),
        report.total(),
        "{}",
        report.summary()
    );
    assert_eq!(sole_running(&sb, "web", Duration::from_secs(5)).id, serving);
    // Healthy, on another port: it takes over there, the old port goes with the old one.
    sb.write("web.toml", &on_other("v2", "0s"));
    wait_for(Duration::from_secs(30), "v2 on the new port", || {
        (http_get(other_addr).as_deref().map(str::trim) == Some("v2")).then_some(())
    });
    sole_running(&sb, "web", Duration::from_secs(30));
    assert_eq!(http_get(web.addr()), None, "the old port still answers");
}
