//! The streaming parts of the Docker API (`logs`, `stats`, `exec` with attach and tty) on a
//! real `berth agent`'s docker.sock, driven by the stock docker CLI of Debian's docker.io
//! (extracted by scripts/install-deps, never installed: no dockerd runs) and by Debian's
//! python3-docker SDK for what the CLI does not show (demuxed exec output, stats fields,
//! following logs and hanging up).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::Digest;

use crate::agent::{Agent, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::Sandbox;

/// Debian's docker CLI, as scripts/install-deps extracts it.
const DOCKER: &str = "/opt/berth-test/docker.io/usr/bin/docker";
/// Debian's python, which has python3-docker (not a pyenv one on PATH).
const PYTHON: &str = "/usr/bin/python3";
/// How long any one docker command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A sandbox with an agent serving the API and one running container `app` that writes
/// three lines to stdout and two to stderr, then waits for /tmp/stop and says `bye`.
struct Fixture {
    // Dropped in this order: the agent stops before the sandbox removes what it made.
    agent: Agent,
    sb: Sandbox,
    socket: PathBuf,
    config: PathBuf,
    secret: &'static str,
}

impl Fixture {
    fn new() -> Fixture {
        let sb = Sandbox::new();
        let image = sb.image("busybox", &busybox_image());
        let secret = "stream-SECRET-7f3a";
        let secret_file = sb.dir.path().join("tok");
        std::fs::write(&secret_file, secret).expect("write the secret");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the secret");
        sb.write(
            "app.toml",
            &format!(
                r#"[secret.tok]
file = "{secret_file}"

[container.app]
image = "{image}"
command = ["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2; echo out3; trap 'exit 0' TERM; while [ ! -e /tmp/stop ]; do sleep 1; done; echo bye"]
env = {{ PLAIN = "p" }}
secrets = [{{ name = "tok", env = "API_TOKEN" }}]
networks = ["default"]
restart = "never"
stop_timeout = "2s"
"#,
                secret_file = secret_file.display(),
            ),
        );
        let agent = Agent::start(&sb, &sb.desired());
        let socket = berth::api::socket_paths(sb.runtime.layout()).1;
        wait_for(Duration::from_secs(60), "app running", || {
            let running = crate::agent::running(&sb, "app");
            (!running.is_empty()).then_some(())
        });
        wait_for(Duration::from_secs(10), "docker.sock", || {
            socket.exists().then_some(())
        });
        let config = sb.dir.path().join("docker-config");
        std::fs::create_dir_all(&config).expect("docker config dir");
        let fixture = Fixture {
            sb,
            agent,
            socket,
            config,
            secret,
        };
        // The first lines are in the log before any test reads it.
        wait_for(Duration::from_secs(10), "app's first lines", || {
            let logs = fixture.sb.logs(&fixture.app_id());
            (logs.contains("out3") && logs.contains("err2")).then_some(())
        });
        fixture
    }

    fn app_id(&self) -> String {
        crate::agent::running(&self.sb, "app")
            .first()
            .map(|r| r.id.clone())
            .or_else(|| {
                crate::agent::containers(&self.sb, "app")
                    .last()
                    .map(|r| r.id.clone())
            })
            .expect("app exists")
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .args(args);
        cmd
    }

    /// Runs a docker command to its end (at most [`COMMAND_TIMEOUT`]).
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_input(args, None)
    }

    fn run_with_input(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        let mut cmd = self.docker(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run docker");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(input).expect("write stdin");
        }
        finish(child, args)
    }

    /// `docker ARGS` that must succeed: its stdout and stderr.
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let (stdout, stderr) = texts(&out);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\n{stdout}{stderr}\nagent log:\n{}",
            out.status,
            self.agent.log()
        );
        (stdout, stderr)
    }

    /// The last `n` lines of app's log as berth wrote them: (stdout, stderr).
    fn last_lines(&self, n: usize) -> (String, String) {
        let dir = self.sb.runtime.layout().container(&self.app_id()).logs();
        let (records, _) = berth::runtime::logfile::tail(&dir, Some(n)).expect("read the log");
        let mut texts = (String::new(), String::new());
        for record in records {
            let text = match record.stream {
                berth::runtime::logfile::Stream::Stdout => &mut texts.0,
                berth::runtime::logfile::Stream::Stderr => &mut texts.1,
            };
            text.push_str(&String::from_utf8_lossy(&record.content));
            text.push('\n');
        }
        assert_eq!(texts.0.lines().count() + texts.1.lines().count(), n);
        texts
    }

    /// How many descriptors the agent holds on app's log files.
    fn agent_log_fds(&self) -> usize {
        let logs = self.sb.runtime.layout().container(&self.app_id()).logs();
        let pid = self.agent.pid();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| {
                        std::fs::read_link(e.path()).is_ok_and(|target| target.starts_with(&logs))
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits for `child` at most [`COMMAND_TIMEOUT`], reading its output meanwhile.
fn finish(mut child: std::process::Child, what: &[&str]) -> Output {
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what:?} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

#[test]
fn docker_logs_separates_streams_and_follows_until_the_stop() {
    let f = Fixture::new();
    // Plain: each stream on its own side, in order.
    let (stdout, stderr) = f.ok(&["logs", "app"]);
    assert_eq!(stdout, "out1\nout2\nout3\n");
    assert_eq!(stderr, "err1\nerr2\n");
    // --tail counts lines of both streams, in the order the monitor wrote them.
    let (stdout, stderr) = f.ok(&["logs", "--tail", "2", "app"]);
    assert_eq!((stdout, stderr), f.last_lines(2));
    let (stdout, stderr) = f.ok(&["logs", "--tail", "all", "app"]);
    assert_eq!((stdout.lines().count(), stderr.lines().count()), (3, 2));
    // --timestamps: RFC 3339 with nine digits, then the line.
    let (stdout, _) = f.ok(&["logs", "--timestamps", "app"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, want) in lines.iter().zip(["out1", "out2", "out3"]) {
        let (stamp, text) = line.split_once(' ').expect("a stamped line");
        assert_eq!(text, want);
        assert_eq!(
            stamp.len(),
            "2026-12-07T23:17:48.123456789Z".len(),
            "{line}"
        );
        assert!(
            humantime::parse_rfc3339(stamp).is_ok() && stamp.ends_with('Z'),
            "{line}"
        );
    }
    // --since: only what came after.
    std::thread::sleep(Duration::from_millis(1100));
    let since = format!("{:.3}", unix_now());
    std::thread::sleep(Duration::from_millis(100));
    f.ok(&["exec", "app", "sh", "-c", "echo late >/proc/1/fd/1"]);
    wait_for(Duration::from_secs(10), "the late line", || {
        f.sb.logs(&f.app_id()).contains("late").then_some(())
    });
    let (stdout, stderr) = f.ok(&["logs", "--since", &since, "app"]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("late\n", ""));
    // --until: only what came before.
    let (stdout, stderr) = f.ok(&["logs", "--until", &since, "app"]);
    assert_eq!(
        (stdout.as_str(), stderr.as_str()),
        ("out1\nout2\nout3\n", "err1\nerr2\n")
    );

    // -f: the lines so far, new ones as they come, and an end when the container stops.
    let mut follower = f
        .docker(&["logs", "-f", "app"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker logs -f");
    let mut out = follower.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(seen.clone());
        }
        seen
    });
    let wait_text = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
            if seen.contains(want) {
                return;
            }
            assert!(Instant::now() < deadline, "logs -f never showed {want:?}");
        }
    };
    wait_text("late\n");
    f.ok(&["exec", "app", "sh", "-c", "echo live >/proc/1/fd/1"]);
    wait_text("live\n");
    f.ok(&["exec", "app", "touch", "/tmp/stop"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = follower.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = follower.kill();
            panic!("docker logs -f did not return after the container stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "docker logs -f: {status}");
    let seen = reader.join().expect("reader");
    assert_eq!(seen, "out1\nout2\nout3\nlate\nlive\nbye\n");
    // A stopped container runs nothing more.
    let out = f.run(&["exec", "app", "true"]);
    assert!(!out.status.success());
    assert!(
        texts(&out).1.contains("is not running"),
        "{:?}",
        texts(&out)
    );
}

#[test]
fn docker_exec_runs_with_exit_codes_input_and_a_tty() {
    let f = Fixture::new();
    let (stdout, stderr) = f.ok(&["exec", "app", "echo", "hi"]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("hi\n", ""));
    let (stdout, stderr) = f.ok(&["exec", "app", "sh", "-c", "echo o; echo e >&2"]);
    assert_eq!((stdout.as_str(), stderr.as_str()), ("o\n", "e\n"));
    let out = f.run(&["exec", "app", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{:?}", texts(&out));
    // The container's environment, its env secret, and -e, -w, -u as asked.
    let (stdout, _) = f.ok(&[
        "exec",
        "-e",
        "EXTRA=x",
        "-w",
        "/tmp",
        "-u",
        "1000:1001",
        "app",
        "sh",
        "-c",
        "echo $PLAIN $API_TOKEN $EXTRA $(pwd) $(id -u) $(id -g)",
    ]);
    assert_eq!(stdout, format!("p {} x /tmp 1000 1001\n", f.secret));
    // A user by name, from the container's own /etc/passwd; one it lacks is refused.
    let (stdout, _) = f.ok(&[
        "exec",
        "-u",
        "app",
        "app",
        "sh",
        "-c",
        "echo $(id -u) $(id -g)",
    ]);
    assert_eq!(stdout, "1000 1000\n");
    let out = f.run(&["exec", "-u", "nosuch", "app", "true"]);
    assert!(!out.status.success());
    assert!(
        texts(&out).1.contains("unable to find user nosuch"),
        "{:?}",
        texts(&out)
    );
    // -i: stdin piped through, and its end reaches the process.
    let out = f.run_with_input(
        &["exec", "-i", "app", "sh", "-c", "cat; echo done"],
        Some(b"input\nmore\n"),
    );
    assert_eq!(texts(&out).0, "input\nmore\ndone\n", "{:?}", texts(&out));
    assert!(out.status.success());
    // Without -i the process reads nothing.
    let out = f.run_with_input(&["exec", "app", "cat"], Some(b"ignored\n"));
    assert_eq!(texts(&out).0, "");
    // A container that is not there.
    let out = f.run(&["exec", "nosuch", "true"]);
    assert!(!out.status.success());
    assert!(
        texts(&out).1.contains("No such container"),
        "{:?}",
        texts(&out)
    );

    // A client that goes away hangs its process up: nothing is left running.
    let mut ticker = f
        .docker(&[
            "exec",
            "app",
            "sh",
            "-c",
            "echo started; while true; do echo tick-7c1e; sleep 1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker exec");
    let mut first = [0u8; 8];
    ticker
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("the first line");
    assert_eq!(&first, b"started\n");
    assert!(processes_with("tick-7c1e") > 0, "the loop runs");
    ticker.kill().expect("kill docker exec");
    let _ = ticker.wait();
    wait_for(Duration::from_secs(15), "the loop to be hung up", || {
        (processes_with("tick-7c1e") == 0).then_some(())
    });

    // -it under a real terminal: a tty inside, its size, a resize, the exit status.
    let script = r#"
import fcntl, os, re, select, struct, subprocess, sys, termios, time
docker, sock, config, name = sys.argv[1:5]
master, slave = os.openpty()
def size(rows, cols):
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
size(30, 100)
env = dict(os.environ, DOCKER_HOST="unix://" + sock, DOCKER_CONFIG=config)
proc = subprocess.Popen([docker, "exec", "-it", name, "sh"], stdin=slave, stdout=slave,
    stderr=slave, env=env, start_new_session=True,
    preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
os.close(slave)
seen = b""
def expect(pattern, timeout=20):
    global seen
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, seen)
        if m:
            seen = seen[m.end():]
            return m.group(0).decode()
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
    raise SystemExit("never saw %r in %r" % (pattern, seen))
def send(text):
    os.write(master, text.encode())
results = {}
time.sleep(1)
send("tty\r")
results["tty"] = expect(rb"/dev/pts/\d+")
send("stty size\r")
results["size"] = expect(rb"\d+ \d+")
size(40, 120)
time.sleep(1.5)
send("stty size\r")
results["resized"] = expect(rb"\d+ \d+")
send("exit 7\r")
results["status"] = proc.wait(timeout=20)
import json
print(json.dumps(results))
"#;
    let child = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .arg(DOCKER)
        .arg(&f.socket)
        .arg(&f.config)
        .arg("app")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = finish(child, &["exec -it"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stdout}{stderr}\n{}", f.agent.log());
    let results: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    let tty = results["tty"].as_str().expect("tty");
    assert!(tty.starts_with("/dev/pts/"), "{results}");
    assert_eq!(results["size"], "30 100", "{results}");
    assert_eq!(results["resized"], "40 120", "{results}");
    assert_eq!(results["status"], 7, "{results}");
}

#[test]
fn docker_stats_no_stream_shows_sane_numbers() {
    let f = Fixture::new();
    let (stdout, _) = f.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}",
        "app",
    ]);
    let fields: Vec<&str> = stdout.trim().split('|').collect();
    assert_eq!(fields.len(), 7, "{stdout}");
    assert_eq!(fields[0], "app", "{stdout}");
    let cpu: f64 = fields[1].trim_end_matches('%').parse().expect("CPU %");
    assert!((0.0..=200.0).contains(&cpu), "{stdout}");
    let (usage, limit) = fields[2].split_once(" / ").expect("MEM USAGE / LIMIT");
    let (usage, limit) = (bytes(usage), bytes(limit));
    assert!(usage > 0.0 && usage < limit, "{stdout}");
    let mem: f64 = fields[3].trim_end_matches('%').parse().expect("MEM %");
    assert!((0.0..100.0).contains(&mem), "{stdout}");
    assert!(fields[4].contains(" / "), "NET I/O {stdout}");
    assert!(fields[5].contains(" / "), "BLOCK I/O {stdout}");
    let pids: u64 = fields[6].parse().expect("PIDS");
    assert!(pids >= 1, "{stdout}");
    // The table as people see it.
    let (table, _) = f.ok(&["stats", "--no-stream", "app"]);
    let mut lines = table.lines();
    let header = lines.next().expect("a header");
    for column in ["CPU %", "MEM USAGE / LIMIT", "NET I/O", "BLOCK I/O", "PIDS"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        lines.next().is_some_and(|row| row.contains("app")),
        "{table}"
    );
    // Every running container, as `docker stats --no-stream` shows them by default.
    let (all, _) = f.ok(&["stats", "--no-stream", "--format", "{{.Name}}"]);
    assert_eq!(all, "app\n");
}

/// How many processes on the host have `marker` in their command line.
fn processes_with(marker: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .count()
}

/// `12.5MiB`, `1.2GiB`, `512KiB`, `100B` (docker's units) in bytes.
fn bytes(text: &str) -> f64 {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().expect("a number");
    let scale = match unit {
        "B" => 1.0,
        "KiB" | "kB" => 1024.0,
        "MiB" | "MB" => 1024.0 * 1024.0,
        "GiB" | "GB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0_f64.powi(4),
        other => panic!("unknown unit {other:?} in {text:?}"),
    };
    number * scale
}

const SDK_SCRIPT: &str = r#"
import json, sys, time
import docker
sock, name = sys.argv[1:3]
c = docker.APIClient(base_url="unix://" + sock, version="1.41", timeout=60)
out = {}
# exec with stdout and stderr apart, and its exit code.
e = c.exec_create(name, ["sh", "-c", "echo out; echo err >&2; exit 4"])
o, r = c.exec_start(e["Id"], demux=True)
out["demux"] = [o.decode(), r.decode()]
out["exec_id"] = e["Id"]
i = c.exec_inspect(e["Id"])
out["inspect"] = {k: i[k] for k in ("ExitCode", "Running", "ContainerID")}
out["process"] = i["ProcessConfig"]
e = c.exec_create(name, ["sh", "-c", "echo $API_TOKEN"])
out["secret"] = c.exec_start(e["Id"]).decode()
try:
    c.exec_create(name, ["true"], privileged=True)
    out["privileged"] = "allowed"
except docker.errors.APIError as err:
    out["privileged"] = err.status_code
try:
    c.exec_inspect("0" * 64)
    out["unknown_exec"] = "found"
except docker.errors.NotFound:
    out["unknown_exec"] = 404
# A client that does not hijack: the output, framed, is the answer's body.
e = c.exec_create(name, ["echo", "plain"])
res = c._post_json(c._url("/exec/{0}/start", e["Id"]), data={"Detach": False, "Tty": False})
c._raise_for_status(res)
out["unhijacked"] = {"type": res.headers.get("Content-Type"), "body": list(res.content)}
# A command the container does not have.
e = c.exec_create(name, ["nosuch-command"])
o, r = c.exec_start(e["Id"], demux=True)
out["missing"] = {"stderr": (r or b"").decode(), "exit": c.exec_inspect(e["Id"])["ExitCode"]}
# Detached: nothing streamed, the exit code there once it ends.
e = c.exec_create(name, ["sh", "-c", "sleep 1; exit 5"])
out["detached_answer"] = c.exec_start(e["Id"], detach=True)
out["detached_running"] = c.exec_inspect(e["Id"])["Running"]
for _ in range(100):
    i = c.exec_inspect(e["Id"])
    if not i["Running"]:
        break
    time.sleep(0.1)
out["detached_exit"] = i["ExitCode"]
# stats, streamed: each object has the previous one's CPU counters.
stream = c.stats(name, decode=True)
streamed = [next(stream), next(stream)]
out["streamed"] = [s["precpu_stats"]["cpu_usage"]["total_usage"] for s in streamed] + \
    [streamed[0]["cpu_stats"]["cpu_usage"]["total_usage"]]
stream.close()
# stats, once.
out["stats"] = c.stats(name, stream=False)
# python3-docker 5 has no one_shot argument: the same call by hand.
url = c._url("/containers/{0}/stats", name)
out["one_shot"] = c._result(c._get(url, params={"stream": False, "one-shot": True}), True)
# logs, followed, then hung up on. The SDK's `logs` inspects the container first (for its
# tty), which is another endpoint: the same request by hand, demuxed by the SDK's helper.
res = c._get(c._url("/containers/{0}/logs", name),
             params={"stdout": 1, "stderr": 1, "follow": 1, "tail": "all"}, stream=True)
c._raise_for_status(res)
seen = b""
for chunk in c._multiplexed_response_stream_helper(res):
    seen += chunk
    if b"out3" in seen and b"err2" in seen:
        break
out["followed"] = seen.decode()
print(json.dumps(out), flush=True)
# Keep the followed stream open until told, so the agent's side can be looked at.
sys.stdin.readline()
res.close()
print("closed", flush=True)
sys.stdin.readline()
"#;

#[test]
fn python_sdk_sees_demuxed_exec_stats_fields_and_followed_logs() {
    let f = Fixture::new();
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(SDK_SCRIPT)
        .arg(&f.socket)
        .arg("app")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = lines.next().and_then(Result::ok);
    let Some(first) = first else {
        let _ = child.kill();
        let mut err = String::new();
        let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
        panic!("the SDK script printed nothing: {err}\n{}", f.agent.log());
    };
    let out: serde_json::Value = serde_json::from_str(&first).expect("JSON");
    // While the SDK follows, the agent reads the log; once it hangs up, it stops.
    assert!(f.agent_log_fds() >= 1, "the follower reads app's log");
    stdin.write_all(b"close\n").expect("tell the script");
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("closed"));
    wait_for(Duration::from_secs(5), "the follower to stop", || {
        (f.agent_log_fds() == 0).then_some(())
    });
    drop(stdin);
    let _ = child.wait();

    assert_eq!(out["demux"], serde_json::json!(["out\n", "err\n"]), "{out}");
    assert_eq!(out["inspect"]["ExitCode"], 4, "{out}");
    assert_eq!(out["inspect"]["Running"], false, "{out}");
    // The id clients are shown: berth's, or the Docker form the container endpoints give it
    // (sha256 of berth's), the same in every answer.
    let shown = out["inspect"]["ContainerID"].as_str().expect("an id");
    let app = f.app_id();
    let hashed: String = sha2::Sha256::digest(app.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(shown == app || shown == hashed, "{out}");
    assert_eq!(out["stats"]["id"], shown, "{out}");
    assert_eq!(out["process"]["entrypoint"], "sh", "{out}");
    assert_eq!(
        out["process"]["arguments"],
        serde_json::json!(["-c", "echo out; echo err >&2; exit 4"])
    );
    assert_eq!(out["secret"], format!("{}\n", f.secret));
    assert_eq!(out["privileged"], 403, "{out}");
    assert_eq!(out["unknown_exec"], 404, "{out}");
    // The monitor reads stdout and stderr apart: each stream in order, the two interleaved
    // as they were read.
    let followed = out["followed"].as_str().expect("text");
    let of = |prefix: &str| -> Vec<&str> {
        followed.lines().filter(|l| l.starts_with(prefix)).collect()
    };
    assert_eq!(of("out"), ["out1", "out2", "out3"], "{followed}");
    assert_eq!(of("err"), ["err1", "err2"], "{followed}");
    assert_eq!(followed.lines().count(), 5, "{followed}");

    // The exec's start and end are in the state root's event log, with its exit code.
    let exec_id = out["exec_id"].as_str().expect("an exec id");
    let log = std::fs::read_to_string(f.sb.root().join("events/events.log")).expect("events");
    let exec_events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["attributes"]["exec_id"] == exec_id)
        .collect();
    let summary: Vec<(String, String, String)> = exec_events
        .iter()
        .map(|e| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&e["action"]),
                text(&e["attributes"]["name"]),
                text(&e["attributes"]["exit_code"]),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("exec_start".into(), "app".into(), String::new()),
            ("exec_die".into(), "app".into(), "4".into())
        ],
        "{log}"
    );
    assert!(exec_events.iter().all(|e| e["id"] == app), "{log}");
    // berth exec's own failure: its one error line on stderr, no log noise, a failed status.
    assert_ne!(out["missing"]["exit"], 0, "{out}");
    let missing = out["missing"]["stderr"].as_str().expect("text");
    assert!(
        missing.starts_with("berth: error: ")
            && missing.contains("nosuch-command")
            && missing.lines().count() == 1,
        "{out}"
    );
    assert_eq!(
        out["unhijacked"]["type"], "application/vnd.docker.raw-stream",
        "{out}"
    );
    assert_eq!(
        out["unhijacked"]["body"],
        serde_json::json!(b"\x01\0\0\0\0\0\0\x06plain\n".to_vec()),
        "{out}"
    );
    assert_eq!(out["detached_answer"], "", "{out}");
    assert_eq!(out["detached_running"], true, "{out}");
    assert_eq!(out["detached_exit"], 5, "{out}");
    // The first streamed object has no previous sample, the second the first's.
    assert_eq!(out["streamed"][0], 0, "{out}");
    assert_eq!(out["streamed"][1], out["streamed"][2], "{out}");

    let stats = &out["stats"];
    assert_eq!(stats["name"], "/app");
    let number = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let memory = &stats["memory_stats"];
    assert!(
        number(&memory["usage"]) > 0 && number(&memory["usage"]) < number(&memory["limit"]),
        "{stats}"
    );
    assert!(
        memory["stats"].as_object().is_some_and(|m| !m.is_empty()),
        "{stats}"
    );
    assert!(number(&stats["pids_stats"]["current"]) >= 1, "{stats}");
    let cpu = &stats["cpu_stats"];
    let precpu = &stats["precpu_stats"];
    assert!(number(&cpu["cpu_usage"]["total_usage"]) > 0, "{stats}");
    assert!(
        number(&cpu["cpu_usage"]["total_usage"]) >= number(&precpu["cpu_usage"]["total_usage"])
            && number(&precpu["cpu_usage"]["total_usage"]) > 0,
        "stream=false has a previous sample: {stats}"
    );
    assert!(
        number(&cpu["system_cpu_usage"]) > number(&precpu["system_cpu_usage"]),
        "{stats}"
    );
    assert!(number(&cpu["online_cpus"]) >= 1, "{stats}");
    assert!(cpu["throttling_data"].is_object(), "{stats}");
    assert!(stats["blkio_stats"].is_object(), "{stats}");
    assert!(
        stats["read"].as_str().is_some_and(|t| t.starts_with("20")),
        "{stats}"
    );
    assert!(
        stats["preread"]
            .as_str()
            .is_some_and(|t| t.starts_with("20")),
        "{stats}"
    );
    let eth0 = &stats["networks"]["eth0"];
    assert!(
        eth0["rx_bytes"].is_u64() && eth0["tx_packets"].is_u64(),
        "{stats}"
    );
    assert!(stats["networks"].get("lo").is_none(), "{stats}");
    // one-shot: at once, without a previous sample.
    let one_shot = &out["one_shot"];
    assert_eq!(one_shot["preread"], "0001-01-01T00:00:00Z", "{one_shot}");
    assert!(number(&one_shot["cpu_stats"]["cpu_usage"]["total_usage"]) > 0);
}
