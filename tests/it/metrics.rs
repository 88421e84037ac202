//! The agent's Prometheus metrics, scraped as Prometheus would: over TCP
//! (`--metrics-listen`) and on `berth.sock`, checked by Debian's `promtool`, with values
//! that follow real containers (two running, memory in use, passes, a restart after the
//! init was killed).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth::runtime::State;

use crate::agent::{sole_running, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::net::free_port;
use crate::support::sandbox::{BERTH, Sandbox};

/// `berth agent` with `--metrics-listen`; killed when dropped.
struct MetricsAgent {
    child: Child,
    log: std::path::PathBuf,
}

impl MetricsAgent {
    fn start(sb: &Sandbox, listen: &str) -> MetricsAgent {
        let log = sb.dir.path().join("agent.log");
        let file = std::fs::File::create(&log).expect("agent log");
        let child = Command::new(BERTH)
            .arg("--root")
            .arg(sb.root())
            .arg("agent")
            .arg(sb.desired())
            .args(["--resync", "1s", "--metrics-listen", listen])
            .env("BERTH_LOG", "info,libcgroups=error")
            .env("BERTH_DEFAULT_SUBNET", &sb.default_subnet)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the agent");
        let agent = MetricsAgent { child, log };
        wait_for(Duration::from_secs(10), "the agent to start", || {
            agent.log().contains("agent started").then_some(())
        });
        agent
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MetricsAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sleeper(name: &str, image: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\nstop_timeout = \"2s\"\nbackoff = {{ initial = \"100ms\" }}\n"
    )
}

/// `GET /metrics` over TCP: (content type, body).
fn scrape_tcp(port: u16, accept: Option<&str>) -> (String, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut request = client.get(format!("http://127.0.0.1:{port}/metrics"));
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.send().expect("scrape over TCP");
    assert!(response.status().is_success(), "{}", response.status());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (content_type, response.text().expect("body"))
}

/// `curl --unix-socket berth.sock http://localhost/metrics`: (headers, body).
fn scrape_socket(socket: &Path) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "--unix-socket"])
        .arg(socket)
        .arg("http://localhost/metrics")
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    (head.to_string(), body.to_string())
}

/// `promtool check metrics` on `text`: it must find nothing to say.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test installs it)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}\non:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the series `name` whose labels include every one of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, number) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
            .then(|| number.trim().parse().ok())?
    })
}

/// The sum over every series of `name`.
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let number = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            number.trim().parse::<f64>().ok()
        })
        .sum()
}

#[test]
fn metrics_over_tcp_and_the_api_socket() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write("web.toml", &sleeper("web", &image));
    sb.write("worker.toml", &sleeper("worker", &image));
    let port = free_port();
    let agent = MetricsAgent::start(&sb, &format!("127.0.0.1:{port}"));
    let web = sole_running(&sb, "web", Duration::from_secs(30));
    sole_running(&sb, "worker", Duration::from_secs(30));

    let (content_type, text) = wait_for(Duration::from_secs(10), "two running", || {
        let (content_type, text) = scrape_tcp(port, None);
        (value(&text, "berth_containers", &[("state", "running")]) == Some(2.0))
            .then_some((content_type, text))
    });
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"), "0.0.4 has no EOF marker:\n{text}");
    promtool_check(&text);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&text, "berth_build_info", &[("version", version)]),
        Some(1.0),
        "{text}"
    );
    assert!(
        total(&text, "berth_reconcile_passes_total") >= 1.0,
        "no pass counted:\n{text}"
    );
    assert!(
        value(
            &text,
            "berth_reconcile_steps_total",
            &[("kind", "run"), ("result", "done")]
        ) >= Some(2.0),
        "{text}"
    );
    let web_labels = [("name", "web"), ("id", web.id.as_str()), ("image", &image)];
    let memory = value(&text, "container_memory_working_set_bytes", &web_labels);
    assert!(
        memory.is_some_and(|m| m > 0.0),
        "web's memory: {memory:?}\n{text}"
    );
    assert!(
        value(&text, "container_threads", &web_labels).is_some_and(|t| t >= 2.0),
        "sh and sleep in web:\n{text}"
    );
    assert_eq!(
        value(&text, "berth_container_restarts_total", &web_labels),
        Some(0.0),
        "{text}"
    );

    // The starts as the runtime recorded them in the event log.
    wait_for(Duration::from_secs(10), "both starts timed", || {
        let (_, text) = scrape_tcp(port, None);
        let starts = value(&text, "berth_container_start_duration_seconds_count", &[]);
        (starts >= Some(2.0)).then_some(())
    });

    // The same on berth.sock.
    let layout = berth::state::layout::Layout::new(&sb.root());
    let (berth_socket, _) = berth::api::socket_paths(&layout);
    let (head, text) = scrape_socket(&berth_socket);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    promtool_check(&text);
    assert_eq!(
        value(&text, "berth_containers", &[("state", "running")]),
        Some(2.0)
    );

    // OpenMetrics only when asked for, as Prometheus asks.
    let (content_type, open) = scrape_tcp(
        port,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(open.ends_with("# EOF\n"), "{open}");

    // Prometheus itself (which asks for OpenMetrics) scrapes and stores the same values.
    prometheus_sees(&sb, port, web_labels[1].1);

    // What the agent follows in the event log is counted: a pull recorded by whoever made
    // it (here, by hand) adds its bytes.
    let (_, before) = scrape_tcp(port, None);
    let pulled = value(&before, "berth_image_pulled_bytes_total", &[]).unwrap_or(0.0);
    berth::state::events::EventLog::new(&layout).append(
        &berth::state::events::Event::now(
            berth::state::events::Subject::Image,
            berth::state::events::Action::Pull,
            "registry.example/app:1",
        )
        .with("name", "registry.example/app:1")
        .with("bytes", 1_048_576)
        .with("duration_ms", 1500),
    );
    wait_for(Duration::from_secs(10), "the pull counted", || {
        let (_, text) = scrape_tcp(port, None);
        (value(&text, "berth_image_pulled_bytes_total", &[]) == Some(pulled + 1_048_576.0))
            .then_some(())
    });

    // The init killed: the agent restarts web in place, and the counter says so.
    let State::Running(monitor) = sb.state(&web.id) else {
        panic!("web is not running")
    };
    let pid = rustix::process::Pid::from_raw(monitor.init.pid).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL");
    let text = wait_for(Duration::from_secs(30), "web's restart counted", || {
        let (_, text) = scrape_tcp(port, None);
        (value(&text, "berth_container_restarts_total", &web_labels) == Some(1.0)).then_some(text)
    });
    promtool_check(&text);
    // Back to two running once the restarted web is up again.
    wait_for(Duration::from_secs(30), "web running again", || {
        let (_, text) = scrape_tcp(port, None);
        (value(&text, "berth_containers", &[("state", "running")]) == Some(2.0)).then_some(())
    });
    drop(agent);
}

/// A Prometheus server of the test's own (own config, port and storage) scraping the
/// agent every second: the target is up and the stored values match.
fn prometheus_sees(sb: &Sandbox, target_port: u16, web_id: &str) {
    let dir = sb.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: berth\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        ),
    )
    .expect("config");
    let port = free_port();
    let server = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's prometheus package)");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(server);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let query = |q: &str| -> Option<f64> {
        let answer: serde_json::Value = client
            .get(format!("http://127.0.0.1:{port}/api/v1/query"))
            .query(&[("query", q)])
            .send()
            .ok()?
            .json()
            .ok()?;
        answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    };
    wait_for(
        Duration::from_secs(30),
        "Prometheus to scrape the agent",
        || (query("up{job=\"berth\"}") == Some(1.0)).then_some(()),
    );
    wait_for(Duration::from_secs(10), "the stored values", || {
        let running = query("berth_containers{state=\"running\"}");
        let memory = query(&format!(
            "container_memory_working_set_bytes{{name=\"web\",id=\"{web_id}\"}}"
        ));
        (running == Some(2.0) && memory.is_some_and(|m| m > 0.0)).then_some(())
    });
}
