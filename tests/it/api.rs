//! berth's own API on `berth.sock` and the event log, against a real agent: `apply` asks the
//! agent (and is refused for another directory), the JSON calls answer what the CLI
//! prints, events come in order during a replacement (over the API while it happens, and
//! from `berth events` after), and the sockets are root-only and out of containers' reach.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::{Agent, sole_running, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::Sandbox;

fn setup() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    (sb, image)
}

/// A long-running container that prints `v=$V` then `$V` again on stderr.
fn server(name: &str, image: &str, v: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"echo v=$V; echo err=$V >&2; trap 'exit 0' TERM; while true; do sleep 1; done\"]\nenv = {{ V = \"{v}\" }}\nstop_timeout = \"2s\"\nlabels = {{ tier = \"front\" }}\n"
    )
}

/// Log text without terminal colours, whatever the log format.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn run_root(sb: &Sandbox) -> PathBuf {
    berth::state::layout::Layout::new(&sb.root()).run_root
}

fn socket(sb: &Sandbox) -> PathBuf {
    run_root(sb).join("berth.sock")
}

/// A request over a unix socket, HTTP/1.1 with `Connection: close`: (status, body), the
/// chunked encoding undone.
fn call(socket: &Path, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut stream = UnixStream::connect(socket).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

fn get_json(sb: &Sandbox, target: &str) -> serde_json::Value {
    let (status, body) = call(&socket(sb), "GET", target, "");
    assert_eq!(status, 200, "{target}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"))
}

/// Lines of a streamed answer, read as they come, until `done` says so.
fn stream_until(
    socket: &Path,
    target: &str,
    mut done: impl FnMut(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    // HTTP/1.0: the body is not chunked and ends when the server closes.
    write!(stream, "GET {target} HTTP/1.0\r\nHost: berth\r\n\r\n").expect("send");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        assert!(!line.is_empty(), "the answer ended in its head");
    }
    let mut seen = Vec::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("a line of the stream");
        assert!(n > 0, "the stream ended first; got {seen:#?}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let stop = done(&value);
        seen.push(value);
        if stop {
            return seen;
        }
    }
}

#[test]
fn apply_asks_the_running_agent_and_is_refused_for_another_directory() {
    let (sb, image) = setup();
    sb.write("web.toml", &server("web", &image, "1"));
    let agent = Agent::start(&sb, &sb.desired());
    let first = sole_running(&sb, "web", Duration::from_secs(30));
    let dir = sb.desired();
    let dir = dir.to_str().expect("utf-8");

    // The agent runs the pass: the CLI prints its report and the agent logs it.
    let out = sb.berth(&["apply", dir, "--wait", "--timeout", "30s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Apply: 0 done, 0 failed, 0 skipped"),
        "{stdout}"
    );
    // (Only the agent can have run it: it holds the reconciler's lock.)
    wait_for(Duration::from_secs(5), "the agent's apply pass", || {
        plain(&agent.log()).contains("trigger=apply").then_some(())
    });

    // JSON lines are the agent's reports, as a local apply prints them.
    let out = sb.berth(&["apply", dir, "--json"]);
    assert!(out.status.success());
    let report: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().expect("a line"))
            .expect("a pass report");
    assert_eq!(report["trigger"], "apply");
    assert_eq!(report["plan"]["steps"].as_array().map(Vec::len), Some(0));

    // Another directory would be undone by the agent: refused, nothing touched.
    let other = sb.dir.path().join("other");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("x.toml"), server("x", &image, "1")).expect("write");
    let out = sb.berth(&["apply", other.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("keeps the machine equal to") && stderr.contains("Edit "),
        "{stderr}"
    );
    // An empty directory may prune everything only through an agent that allows it.
    let out = sb.berth(&["apply", dir, "--allow-empty"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--allow-empty"), "{stderr}");
    assert!(sb.runtime.find("x").expect("find").is_empty());
    assert_eq!(
        sole_running(&sb, "web", Duration::from_secs(1)).id,
        first.id
    );

    // Once the agent is gone, apply runs the pass itself again (and the sockets are gone).
    let status = agent.terminate();
    assert!(status.success());
    assert!(!socket(&sb).exists());
    assert!(!run_root(&sb).join("docker.sock").exists());
    sb.write("web.toml", &server("web", &image, "2"));
    let out = sb.berth(&["apply", dir, "--wait", "--timeout", "30s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        sole_running(&sb, "web", Duration::from_secs(1)).id,
        first.id
    );
}

#[test]
fn the_api_answers_what_the_cli_prints() {
    let (sb, image) = setup();
    sb.write("web.toml", &server("web", &image, "1"));
    let _agent = Agent::start(&sb, &sb.desired());
    let web = sole_running(&sb, "web", Duration::from_secs(30));

    let (status, body) = call(&socket(&sb), "GET", "/_ping", "");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let version = get_json(&sb, "/v1/version");
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version["dir"], sb.desired().to_str().expect("utf-8"));

    let ps = get_json(&sb, "/v1/containers");
    let cli: serde_json::Value =
        serde_json::from_slice(&sb.berth(&["ps", "--json"]).stdout).expect("ps --json");
    assert_eq!(ps[0]["id"], web.id.as_str());
    assert_eq!(ps[0]["state"], "running");
    assert_eq!(ps[0]["id"], cli[0]["id"]);
    assert_eq!(ps[0]["spec_hash"], cli[0]["spec_hash"]);

    // The agent's first pass writes its status file as it ends.
    let status = wait_for(Duration::from_secs(10), "the agent's status", || {
        let status = get_json(&sb, "/v1/status");
        status["agent_pid"].is_u64().then_some(status)
    });
    assert_eq!(status["containers"][0]["name"], "web");
    assert_eq!(status["containers"][0]["state"], "running");

    let inspect = get_json(&sb, "/v1/containers/web");
    assert_eq!(inspect["record"]["id"], web.id.as_str());
    assert_eq!(inspect["status"]["state"], "running");
    let (status, body) = call(&socket(&sb), "GET", "/v1/containers/nope", "");
    assert_eq!(status, 404, "{body}");

    let plan = get_json(&sb, "/v1/plan");
    assert_eq!(plan["trigger"], "plan");
    assert_eq!(plan["plan"]["steps"].as_array().map(Vec::len), Some(0));

    let stats = get_json(&sb, "/v1/containers/web/stats");
    assert_eq!(stats["name"], "web");
    assert!(stats["pids"].as_u64().is_some_and(|p| p >= 1), "{stats}");
    assert!(
        stats["memory_usage"].as_u64().is_some_and(|m| m > 0),
        "{stats}"
    );

    // Logs: both streams, in order, as JSON lines.
    let lines = wait_for(Duration::from_secs(10), "the container's output", || {
        let (status, body) = call(&socket(&sb), "GET", "/v1/containers/web/logs", "");
        assert_eq!(status, 200);
        let lines: Vec<serde_json::Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).expect("a log line"))
            .collect();
        (lines.len() >= 2).then_some(lines)
    });
    assert_eq!(lines[0]["stream"], "stdout");
    assert_eq!(lines[0]["text"], "v=1");
    assert_eq!(lines[1]["stream"], "stderr");
    assert_eq!(lines[1]["text"], "err=1");
    let (_, tail) = call(&socket(&sb), "GET", "/v1/containers/web/logs?tail=1", "");
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let (status, _) = call(&socket(&sb), "GET", "/v1/containers/web/logs?tail=x", "");
    assert_eq!(status, 400);

    // Following: the stream ends when the container stops.
    let socket_path = socket(&sb);
    let follower = std::thread::spawn(move || {
        let mut stream = UnixStream::connect(&socket_path).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        write!(
            stream,
            "GET /v1/containers/web/logs?follow=1 HTTP/1.0\r\nHost: berth\r\n\r\n"
        )
        .expect("send");
        let mut all = String::new();
        stream.read_to_string(&mut all).expect("read until the end");
        all
    });
    std::thread::sleep(Duration::from_millis(300));
    let out = sb.berth(&["stop", "web"]);
    assert!(out.status.success());
    let all = follower.join().expect("follower");
    assert!(all.contains("\"text\":\"v=1\""), "{all}");

    let (status, body) = call(&socket(&sb), "GET", "/v1/nothing", "");
    assert_eq!(status, 404);
    assert!(body.contains("no such call"), "{body}");
}

#[test]
fn events_come_in_order_during_a_replacement() {
    let (sb, image) = setup();
    sb.write("web.toml", &server("web", &image, "1"));
    let _agent = Agent::start(&sb, &sb.desired());
    let old = sole_running(&sb, "web", Duration::from_secs(30));
    let since = berth::state::events::now_ns();

    // Followed over the API while the agent replaces the container.
    let socket_path = socket(&sb);
    let follower = std::thread::spawn(move || {
        stream_until(
            &socket_path,
            "/v1/events?filter=container=web&filter=type=container",
            |e| e["action"] == "replace",
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    sb.write("web.toml", &server("web", &image, "2"));
    let seen = follower.join().expect("follower");
    let new = sole_running(&sb, "web", Duration::from_secs(30));
    assert_ne!(new.id, old.id);
    let order: Vec<(String, String)> = seen
        .iter()
        .map(|e| {
            let who = if e["id"] == old.id.as_str() {
                "old"
            } else if e["id"] == new.id.as_str() {
                "new"
            } else {
                "?"
            };
            (
                e["action"].as_str().unwrap_or("").to_string(),
                who.to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("create", "new"),
        ("kill", "old"),
        ("die", "old"),
        ("stop", "old"),
        ("destroy", "old"),
        ("start", "new"),
        ("replace", "new"),
    ]
    .iter()
    .map(|(a, w)| (a.to_string(), w.to_string()))
    .collect();
    assert_eq!(order, expected, "{seen:#?}");
    let die = &seen[2];
    assert_eq!(die["attributes"]["exit_code"], "0");
    assert_eq!(die["attributes"]["tier"], "front", "labels are attributes");
    assert_eq!(seen[6]["attributes"]["old"], old.id.as_str());

    // The same from the log with the CLI, filtered by label and action, after the fact.
    let until = berth::state::events::now_ns();
    let out = sb.berth(&[
        "events",
        "--since",
        &format!("{}.{:09}", since / 1_000_000_000, since % 1_000_000_000),
        "--until",
        &format!("{}.{:09}", until / 1_000_000_000, until % 1_000_000_000),
        "--filter",
        "label=tier=front",
        "--filter",
        "event=die",
        "--filter",
        "event=start",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(&format!("container die {}", old.id)),
        "{text}"
    );
    assert!(
        lines[1].contains(&format!("container start {}", new.id)),
        "{text}"
    );
    assert!(
        lines[0].contains("exit_code=0") && lines[0].contains("name=web"),
        "{text}"
    );

    // A desired file with a problem is an event once, not on every pass.
    sb.write("bad.toml", "[container.bad]\nimage = 3\n");
    wait_for(Duration::from_secs(10), "the problem event", || {
        let out = sb.berth(&[
            "events",
            "--since",
            "1h",
            "--until",
            "0s",
            "--filter",
            "type=desired",
            "--json",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (!text.is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(2500));
    let out = sb.berth(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "type=desired",
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    let problem: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(problem["action"], "problem");
    assert!(
        problem["id"]
            .as_str()
            .is_some_and(|f| f.ends_with("bad.toml"))
    );
    assert_eq!(problem["attributes"]["line"], "2");

    // Bad input is refused with the reason.
    let out = sb.berth(&["events", "--filter", "colour=red"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown filter"));
    let out = sb.berth(&["events", "--since", "yesterday"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}

#[test]
fn the_sockets_are_root_only_and_out_of_a_containers_reach() {
    let (sb, image) = setup();
    sb.write(
        "box.toml",
        &format!(
            "[container.box]\nimage = \"{image}\"\ncommand = [\"sleep\", \"3600\"]\nstop_timeout = \"1s\"\n"
        ),
    );
    let agent = Agent::start(&sb, &sb.desired());
    sole_running(&sb, "box", Duration::from_secs(30));
    for name in ["berth.sock", "docker.sock"] {
        let meta = std::fs::metadata(run_root(&sb).join(name)).expect("socket");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{name}");
    }
    let dir_mode = std::fs::metadata(run_root(&sb))
        .expect("run root")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);

    // From inside: no socket of berth's anywhere in the container's filesystem, and the
    // host's /run is not the container's.
    let out = sb.berth(&[
        "exec",
        "box",
        "--",
        "sh",
        "-c",
        "find / -xdev -type s 2>/dev/null; ls /run; echo done",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(".sock"), "{text}");
    assert!(!text.contains("berth"), "{text}");
    drop(agent);

    // With a group: the sockets are that group's (0660), the run root only traversable.
    let group = "nogroup";
    let gid = nix::unistd::Group::from_name(group)
        .expect("group database")
        .expect("nogroup exists on Debian")
        .gid
        .as_raw();
    let child = std::process::Command::new(crate::support::sandbox::BERTH)
        .arg("--root")
        .arg(sb.root())
        .args(["agent", "--api-group", group])
        .arg(sb.desired())
        .env("BERTH_DEFAULT_SUBNET", &sb.default_subnet)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    wait_for(Duration::from_secs(10), "the group's sockets", || {
        let meta = std::fs::metadata(run_root(&sb).join("docker.sock")).ok()?;
        (meta.gid() == gid).then_some(())
    });
    for name in ["berth.sock", "docker.sock"] {
        let meta = std::fs::metadata(run_root(&sb).join(name)).expect("socket");
        assert_eq!(meta.permissions().mode() & 0o777, 0o660, "{name}");
        assert_eq!((meta.uid(), meta.gid()), (0, gid), "{name}");
    }
    let dir_mode = std::fs::metadata(run_root(&sb))
        .expect("run root")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o711);
    // What else is in the run root stays root-only.
    for entry in std::fs::read_dir(run_root(&sb)).expect("run root") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("meta");
        if meta.is_dir() {
            assert_eq!(
                meta.permissions().mode() & 0o077,
                0,
                "{}",
                entry.path().display()
            );
        }
    }
    let desired = sb.desired();
    let out = sb.berth(&[
        "agent",
        "--api-group",
        "no-such-group-here",
        desired.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("group \"no-such-group-here\" does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
