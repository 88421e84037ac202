//! `*.toml` names in the desired directory that are not regular files — a FIFO, a unix
//! socket, a device, a link out of the directory — with the real agent running: each is a
//! problem that `validate`, `plan` and `status` report promptly (none of them is ever opened,
//! so nothing blocks), the agent keeps reconciling the valid files and prunes nothing while
//! a problem stands, and still stops promptly on SIGTERM.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth::runtime::State;

use crate::agent::{Agent, containers, running, sole_running, status_json, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::Sandbox;

/// What `validate`, `plan` and `status` must answer within: they read a directory.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The problem files and what each must be reported as.
const PROBLEMS: [(&str, &str); 4] = [
    ("fifo.toml", "is a FIFO (named pipe), not a regular file"),
    ("sock.toml", "is a socket, not a regular file"),
    ("zero.toml", "is a character device, not a regular file"),
    ("null.toml", "points outside the directory"),
];

/// A long-running container that restarts whatever ends it.
fn server(name: &str, image: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\nrestart = \"always\"\nbackoff = {{ initial = \"200ms\" }}\nstop_timeout = \"2s\"\n"
    )
}

/// Run `cmd` to completion, failing the test if it takes longer than `timeout` (the child is
/// killed then, so a hang cannot outlive the test).
fn output_within(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not return within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_names_every_problem(what: &str, out: &Output, dir: &Path) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(1), "{what}: {all}");
    for (file, message) in PROBLEMS {
        let at = format!(
            "{}:1:1: error[io]: `{file}` {message}",
            dir.join(file).display()
        );
        assert!(all.contains(&at), "{what} does not say `{at}`:\n{all}");
    }
}

#[test]
fn non_regular_desired_files_are_reported_and_block_nothing() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let dir = sb.desired();
    sb.write("keep.toml", &server("keep", &image));
    sb.write("gone.toml", &server("gone", &image));
    let agent = Agent::start(&sb, &dir);
    let keep = sole_running(&sb, "keep", Duration::from_secs(30));
    let gone = sole_running(&sb, "gone", Duration::from_secs(30));

    // The problems arrive together with a removal that must not be applied while they stand.
    std::fs::remove_file(dir.join("gone.toml")).expect("rm gone.toml");
    let mode = rustix::fs::Mode::from_raw_mode(0o644);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("fifo.toml"),
        rustix::fs::FileType::Fifo,
        mode,
        0,
    )
    .expect("mkfifo");
    let _socket = std::os::unix::net::UnixListener::bind(dir.join("sock.toml")).expect("bind");
    // /dev/zero's numbers: a device node inside the directory, and a link to one outside.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("zero.toml"),
        rustix::fs::FileType::CharacterDevice,
        mode,
        rustix::fs::makedev(1, 5),
    )
    .expect("mknod");
    std::os::unix::fs::symlink("/dev/null", dir.join("null.toml")).expect("symlink");

    let validate = output_within(
        sb.command(&["validate", dir.to_str().expect("utf-8")]),
        PROMPTLY,
    );
    assert_names_every_problem("validate", &validate, &dir);
    let plan = output_within(
        sb.command(&["plan", dir.to_str().expect("utf-8")]),
        PROMPTLY,
    );
    assert_names_every_problem("plan", &plan, &dir);
    let status = output_within(sb.command(&["status"]), PROMPTLY);
    assert!(status.status.success(), "status: {}", text(&status));
    for (file, _) in PROBLEMS {
        assert!(
            text(&status).contains(file),
            "status does not name {file}:\n{}",
            text(&status)
        );
    }

    // The agent sees the problems in a pass of its own...
    wait_for(
        Duration::from_secs(15),
        "the agent's pass to report every problem",
        || {
            let s = status_json(&sb).to_string();
            PROBLEMS
                .iter()
                .all(|(file, _)| s.contains(file))
                .then_some(())
        },
    );
    // ...keeps repairing: a container killed by hand comes back...
    let State::Running(m) = sb.state(&keep.id) else {
        panic!("keep is not running")
    };
    let before = m.started_at_ms;
    let fd = m.init.open().expect("pidfd").expect("alive");
    berth::sys::send_signal(&fd, 9).expect("SIGKILL");
    wait_for(Duration::from_secs(15), "keep restarted", || {
        match sb.state(&keep.id) {
            State::Running(m) if m.started_at_ms != before => Some(()),
            _ => None,
        }
    });
    // ...applies a new file...
    sb.write("new.toml", &server("new", &image));
    sole_running(&sb, "new", Duration::from_secs(30));
    // ...and prunes nothing, well past the prune delay (3 s) and several resyncs (1 s).
    std::thread::sleep(Duration::from_secs(5));
    let ids: Vec<String> = running(&sb, "gone").into_iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        vec![gone.id.clone()],
        "pruned while the directory had problems"
    );

    // The problems gone, the removal is applied: it was they that held it back.
    for (file, _) in PROBLEMS {
        std::fs::remove_file(dir.join(file)).expect("remove problem file");
    }
    wait_for(Duration::from_secs(30), "gone pruned", || {
        containers(&sb, "gone").is_empty().then_some(())
    });
    let validate = output_within(
        sb.command(&["validate", dir.to_str().expect("utf-8")]),
        PROMPTLY,
    );
    assert!(validate.status.success(), "validate: {}", text(&validate));

    let stopping = Instant::now();
    let exit = agent.terminate();
    assert!(exit.success(), "agent: {exit:?}");
    assert!(
        stopping.elapsed() < PROMPTLY,
        "the agent took {:?} to stop",
        stopping.elapsed()
    );
}
