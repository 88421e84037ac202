//! berth's own log as the agent writes it: plain text without escape codes when stderr is
//! not a terminal, JSON lines on request, and native journald entries (priorities, fields)
//! when stderr is the journal — the journal faked by a datagram socket bound where
//! journald's would be, in a private mount namespace.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent::{sole_running, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::{BERTH, Sandbox};

fn sleeper(name: &str, image: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\nstop_timeout = \"2s\"\n"
    )
}

/// `berth agent` with the default log settings (no `BERTH_LOG`), stderr to `log`.
fn agent(sb: &Sandbox, log: &Path, args: &[&str]) -> Child {
    let file = std::fs::File::create(log).expect("agent log");
    Command::new(BERTH)
        .arg("--root")
        .arg(sb.root())
        .args(args)
        .arg("agent")
        .arg(sb.desired())
        .args(["--resync", "1s"])
        .env_remove("BERTH_LOG")
        .env_remove("BERTH_LOG_FORMAT")
        .env_remove("JOURNAL_STREAM")
        .env("BERTH_DEFAULT_SUBNET", &sb.default_subnet)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start the agent")
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_agent_logs_info_lines_without_escape_codes_and_json_on_request() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write("web.toml", &sleeper("web", &image));
    let log = sb.dir.path().join("text.log");
    let child = agent(&sb, &log, &[]);
    let web = sole_running(&sb, "web", Duration::from_secs(30));
    wait_for(Duration::from_secs(10), "the start pass logged", || {
        read(&log).contains("trigger=start").then_some(())
    });
    stop(child);
    let text = read(&log);
    assert!(
        !text.contains('\u{1b}'),
        "escape codes on a stderr that is no terminal:\n{text}"
    );
    let pass = text
        .lines()
        .find(|l| l.contains("pass done") && l.contains("trigger=start"));
    assert!(
        pass.is_some_and(|l| l.contains(" INFO ") && l.contains("steps=")),
        "no info line for the start pass:\n{text}"
    );
    let started = text.lines().find(|l| {
        l.contains(" INFO ")
            && l.contains("entry=\"web\"")
            && l.contains("step=run container web")
            && l.contains(&format!("{} running", web.id))
    });
    assert!(started.is_some(), "no info line for web's start:\n{text}");

    // JSON lines, one object each, with the same fields.
    sb.write("worker.toml", &sleeper("worker", &image));
    let log = sb.dir.path().join("json.log");
    let child = agent(&sb, &log, &["--log-format", "json"]);
    let worker = sole_running(&sb, "worker", Duration::from_secs(30));
    wait_for(Duration::from_secs(10), "the start pass logged", || {
        read(&log).contains("\"trigger\":\"start\"").then_some(())
    });
    stop(child);
    let text = read(&log);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let field =
        |line: &serde_json::Value, name: &str| line["fields"][name].as_str().map(str::to_string);
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && field(l, "message").as_deref() == Some("pass done")
            && field(l, "trigger").as_deref() == Some("start")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && field(l, "entry").as_deref() == Some("worker")
            && field(l, "step").as_deref() == Some("run container worker")
            && field(l, "message") == Some(format!("{} running", worker.id))),
        "{text}"
    );
}

/// One journal entry from its native-protocol datagram: `NAME=value\n`, or for any value
/// `NAME\n` + little-endian u64 length + value + `\n`.
fn journal_entry(mut data: &[u8]) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    while !data.is_empty() {
        let Some(end) = data.iter().position(|&b| b == b'\n') else {
            panic!(
                "a field without newline: {:?}",
                String::from_utf8_lossy(data)
            );
        };
        let line = &data[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
            data = &data[end + 1..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let rest = &data[end + 1..];
            let len = usize::try_from(u64::from_le_bytes(rest[..8].try_into().expect("length")))
                .expect("a length that fits");
            let value = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
            assert_eq!(rest[8 + len], b'\n', "field {name} not ended by a newline");
            fields.insert(name, value);
            data = &rest[8 + len + 1..];
        }
    }
    fields
}

#[test]
fn under_systemd_the_agent_logs_to_journald_with_priorities_and_fields() {
    assert!(
        Path::new("/run/systemd").is_dir(),
        "this test hides /run/systemd under a tmpfs: it must exist"
    );
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write("web.toml", &sleeper("web", &image));
    // A problem in a desired file: logged as an error.
    sb.write("bad.toml", "[container.bad]\nimage = 3\n");
    let journal = sb.dir.path().join("journal");
    std::fs::create_dir(&journal).expect("journal dir");
    let socket = UnixDatagram::bind(journal.join("socket")).expect("bind the fake journal");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");

    // systemd names the stream stderr is connected to; the agent compares it with its stderr.
    let stream = sb.dir.path().join("stream.log");
    let file = std::fs::File::create(&stream).expect("stream");
    let meta = file.metadata().expect("stat");
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/journal && \
             mount --bind \"$0\" /run/systemd/journal && exec \"$@\"",
        )
        .arg(&journal)
        .arg(BERTH)
        .arg("--root")
        .arg(sb.root())
        .arg("agent")
        .arg(sb.desired())
        .args(["--resync", "1s"])
        .env_remove("BERTH_LOG")
        .env_remove("BERTH_LOG_FORMAT")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("BERTH_DEFAULT_SUBNET", &sb.default_subnet)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("unshare (util-linux)");

    let mut entries: Vec<BTreeMap<String, String>> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    let has = |entries: &[BTreeMap<String, String>], want: &[(&str, &str)]| {
        entries.iter().any(|e| {
            want.iter()
                .all(|(k, v)| e.get(*k).is_some_and(|got| got == v))
        })
    };
    let pass = [
        ("MESSAGE", "pass done"),
        ("TRIGGER", "start"),
        ("PRIORITY", "6"),
        ("SYSLOG_IDENTIFIER", "berth"),
    ];
    let step = [
        ("ENTRY", "web"),
        ("STEP", "run container web"),
        ("PRIORITY", "6"),
    ];
    while !(has(&entries, &pass) && has(&entries, &step)) && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf)
            && n > 0
        {
            entries.push(journal_entry(&buf[..n]));
        }
    }
    stop(child);
    let web = sole_running(&sb, "web", Duration::from_secs(5));
    let shown = format!("{entries:#?}\nstderr:\n{}", read(&stream));
    assert!(has(&entries, &pass), "no pass entry: {shown}");
    assert!(has(&entries, &step), "no step entry: {shown}");
    let started = entries
        .iter()
        .find(|e| e.get("STEP").is_some_and(|s| s == "run container web"))
        .and_then(|e| e.get("MESSAGE"));
    assert_eq!(started, Some(&format!("{} running", web.id)), "{shown}");
    let problem = entries.iter().find(|e| {
        e.get("MESSAGE")
            .is_some_and(|m| m.contains("bad.toml:2:9") && m.contains("error["))
    });
    assert_eq!(
        problem.and_then(|e| e.get("PRIORITY")).map(String::as_str),
        Some("3"),
        "the desired file's problem as an error: {shown}"
    );
    assert_eq!(
        read(&stream),
        "",
        "nothing on the stream besides the journal"
    );
}
