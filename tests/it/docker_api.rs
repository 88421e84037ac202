//! The Docker Engine API on the agent's `docker.sock`, driven by the stock clients operators
//! run: Debian's `docker` CLI (docker.io 20.10, extracted by scripts/install-deps into
//! /opt/berth-test/docker.io; no dockerd is ever started) and Prometheus'
//! `docker_sd_configs`. Real containers, a bridge network with a published port, a volume,
//! labels, a secret variable; exact output checks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::runtime::State;

use crate::agent::{Agent, sole_running, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::registry::TestRegistry;
use crate::support::sandbox::Sandbox;

const DOCKER: &str = "/opt/berth-test/docker.io/usr/bin/docker";

/// A /24 of its own per test: 10.231.N.0/24.
fn subnet() -> (String, u8) {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (format!("10.231.{n}.0/24"), n)
}

fn free_port() -> u16 {
    crate::support::net::free_port()
}

/// The Docker id berth shows for a container: the sha256 of its berth id.
fn docker_id(berth_id: &str) -> String {
    crate::support::sha256_digest(berth_id.as_bytes())
        .trim_start_matches("sha256:")
        .to_string()
}

struct Docker {
    host: String,
}

impl Docker {
    fn of(sb: &Sandbox) -> Docker {
        let socket = sb.runtime.layout().run_root.join("docker.sock");
        Docker {
            host: format!("unix://{}", socket.display()),
        }
    }

    /// `docker ARGS…`: (status, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        assert!(
            Path::new(DOCKER).exists(),
            "{DOCKER} is missing: run scripts/install-deps docker.io-cli"
        );
        let out = Command::new(DOCKER)
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", "/nonexistent-docker-config")
            .env_remove("DOCKER_API_VERSION")
            .output()
            .expect("run docker");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `docker ARGS…` that must succeed: its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (status, out, err) = self.run(args);
        assert_eq!(status, 0, "docker {args:?}: {err}{out}");
        out
    }
}

/// The registry's busybox, the desired files (a network, a volume, a secret, two
/// containers with labels, one publishing a port), and the agent applying them.
/// Fields drop in order: the agent stops before the sandbox removes its containers.
struct Setup {
    agent: Agent,
    _registry: TestRegistry,
    sb: Sandbox,
    image: String,
    port: u16,
    subnet_n: u8,
}

fn setup() -> Setup {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let registry = TestRegistry::start();
    registry.push_image("test/busybox", "v1", &busybox_image());
    let image = format!("{}/test/busybox:v1", registry.host());
    let (subnet, subnet_n) = subnet();
    let port = free_port();
    let secret = sb.dir.path().join("token");
    std::fs::write(&secret, "s3cret-VALUE-9d1f").expect("write secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    sb.write(
        "app.toml",
        &format!(
            r#"[network.front]
subnet = "{subnet}"

[volume.data]

[secret.token]
file = "{secret}"

[container.web]
image = "{image}"
command = ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"]
stop_timeout = "1s"
restart = "never"
networks = [{{ name = "front", aliases = ["www"] }}]
ports = ["127.0.0.1:{port}:80"]
mounts = ["data:/data"]
env = {{ PLAIN = "visible" }}
secrets = [{{ name = "token", env = "API_TOKEN" }}]
labels = {{ tier = "web", "traefik.enable" = "true" }}
health = {{ tcp = 80, interval = "300ms" }}

[container.worker]
image = "{image}"
command = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
stop_timeout = "2s"
restart = "never"
networks = ["front"]
labels = {{ tier = "worker" }}
"#,
            secret = secret.display()
        ),
    );
    let agent = Agent::start(&sb, &sb.desired());
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in ["web", "worker"] {
        while crate::agent::running(&sb, name).len() != 1 {
            assert!(
                Instant::now() < deadline,
                "{name} is not running:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Setup {
        agent,
        _registry: registry,
        sb,
        image,
        port,
        subnet_n,
    }
}

/// Waits until the worker's shell has set its TERM trap (its loop sleeps): a pid 1 ignores
/// TERM without a handler, so a stop sent earlier would end in SIGKILL.
fn worker_traps_term(docker: &Docker) {
    wait_for(Duration::from_secs(20), "worker's loop", || {
        docker
            .ok(&["top", "worker"])
            .lines()
            .any(|l| l.ends_with(" sleep 1"))
            .then_some(())
    });
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Now as `docker events --since` takes it: unix seconds with nanoseconds.
fn unix_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

fn lines(text: &str) -> Vec<String> {
    let mut l: Vec<String> = text.lines().map(str::to_string).collect();
    l.sort();
    l
}

fn ip_of(sb: &Sandbox, id: &str) -> String {
    berth::network::Networks::new(sb.runtime.layout())
        .leases("front")
        .expect("leases")
        .into_iter()
        .find(|l| l.container == id)
        .map(|l| l.ip.to_string())
        .expect("a lease on front")
}

#[test]
fn the_docker_cli_lists_inspects_and_drives_berths_containers() {
    let s = setup();
    let sb = &s.sb;
    let docker = Docker::of(sb);
    let web = sole_running(sb, "web", Duration::from_secs(1));
    let worker = sole_running(sb, "worker", Duration::from_secs(1));
    let (web_id, worker_id) = (docker_id(&web.id), docker_id(&worker.id));
    let image = &s.image;

    // `ps`: ids (12 characters), names, images, ports as Docker prints them.
    let ps = docker.ok(&[
        "ps",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Names}} {{.Image}} {{.Ports}}",
    ]);
    assert_eq!(
        lines(&ps),
        lines(&format!(
            "{web_id} web {image} 127.0.0.1:{port}->80/tcp\n{worker_id} worker {image} \n",
            port = s.port
        )),
        "{ps}"
    );
    let table = docker.ok(&["ps"]);
    let header = table.lines().next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "CONTAINER",
            "ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ],
        "{table}"
    );
    let web_row = table
        .lines()
        .find(|l| l.starts_with(&web_id[..12]))
        .unwrap_or_else(|| panic!("no row for web: {table}"));
    assert!(web_row.contains(" Up "), "{web_row}");
    assert!(web_row.trim_end().ends_with(" web"), "{web_row}");
    // Its health check's verdict, as Docker shows it, and the event of its change.
    let healthy = wait_for(Duration::from_secs(30), "web healthy", || {
        let status = docker.ok(&["ps", "--filter", "name=^web$", "--format", "{{.Status}}"]);
        status.trim_end().ends_with("(healthy)").then_some(status)
    });
    assert!(healthy.starts_with("Up "), "{healthy}");
    assert_eq!(
        docker.ok(&["inspect", "--format", "{{.State.Health.Status}}", "web"]),
        "healthy\n"
    );
    let health_events = docker.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        &unix_now(),
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(health_events, "health_status: healthy web\n");
    let status = docker.ok(&[
        "ps",
        "--filter",
        "name=^web$",
        "--format",
        "{{.Status}} {{.State}}",
    ]);
    assert!(
        status.starts_with("Up ") && status.trim_end().ends_with(" running"),
        "{status}"
    );

    // Labels: the entry's and berth's own; filters by label.
    let by_label = docker.ok(&["ps", "--filter", "label=tier=web", "--format", "{{.Names}}"]);
    assert_eq!(by_label, "web\n");
    let by_key = docker.ok(&["ps", "--filter", "label=tier", "--format", "{{.Names}}"]);
    assert_eq!(lines(&by_key), ["web", "worker"]);
    let labelled = docker.ok(&[
        "ps",
        "--filter",
        "name=web",
        "--format",
        "{{.Names}} {{.Labels}}",
    ]);
    let (name, labels) = labelled.trim_end().split_once(' ').expect("two fields");
    assert_eq!(name, "web");
    let mut labels: Vec<&str> = labels.split(',').collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            format!("io.berth.id={}", web.id).as_str(),
            &format!("io.berth.image={image}"),
            "io.berth.name=web",
            &format!("io.berth.spec-hash={}", web.spec_hash),
            "tier=web",
            "traefik.enable=true",
        ]
    );

    // `inspect`: the fields tools read, exactly.
    let ip = ip_of(sb, &web.id);
    let inspected = docker.ok(&[
        "inspect",
        "--format",
        "{{.Id}} {{.Name}} {{.State.Status}} {{.State.Running}} {{.Config.Labels.tier}} \
         {{.HostConfig.NetworkMode}} {{.HostConfig.RestartPolicy.Name}} \
         {{(index .NetworkSettings.Networks \"front\").IPAddress}} \
         {{(index .NetworkSettings.Networks \"front\").Gateway}} \
         {{(index .NetworkSettings.Networks \"front\").Aliases}} \
         {{json .NetworkSettings.Ports}} {{.Config.Image}} {{.Config.Cmd}}",
        "web",
    ]);
    assert_eq!(
        inspected,
        format!(
            "{web_id} /web running true web front no {ip} 10.231.{n}.1 [web www] \
             {{\"80/tcp\":[{{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"{port}\"}}]}} {image} \
             [sh -c mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www]\n",
            n = s.subnet_n,
            port = s.port
        )
    );
    let mounts = docker.ok(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}",
        "web",
    ]);
    assert_eq!(mounts, "volume data /data true\n");
    // The secret variable is nowhere in the answer: neither its value nor its name.
    let whole = docker.ok(&["inspect", "web"]);
    assert!(!whole.contains("s3cret-VALUE"), "{whole}");
    assert!(!whole.contains("API_TOKEN"), "{whole}");
    assert!(whole.contains("\"PLAIN=visible\""), "{whole}");
    // The same container by its short id, by berth's id.
    for asked in [&web_id[..12], web.id.as_str()] {
        assert_eq!(
            docker.ok(&["inspect", "--format", "{{.Name}}", asked]),
            "/web\n"
        );
    }
    let (code, _, err) = docker.run(&["inspect", "nope"]);
    assert_eq!(code, 1);
    assert_eq!(err, "Error: No such object: nope\n");

    // `images`, `network ls`, `volume ls`.
    let images = docker.ok(&["images", "--format", "{{.Repository}} {{.Tag}}"]);
    assert_eq!(images, format!("{} v1\n", image.trim_end_matches(":v1")));
    let config_digest = crate::support::sha256_digest(&busybox_image().config);
    let image_inspect = docker.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}} {{.Os}} {{.Architecture}} {{len .RootFS.Layers}} {{.RepoTags}} {{.Config.Cmd}}",
        image,
    ]);
    assert_eq!(
        image_inspect,
        format!("{config_digest} linux amd64 1 [{image}] [/bin/sh]\n")
    );
    assert_eq!(
        docker.ok(&[
            "inspect",
            "--format",
            "{{.Image}} {{json .HostConfig.PortBindings}}",
            "web"
        ]),
        format!(
            "{config_digest} {{\"80/tcp\":[{{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"{}\"}}]}}\n",
            s.port
        )
    );
    let networks = docker.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert_eq!(networks, "front bridge local\n");
    let subnet = docker.ok(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{len .Containers}}",
        "front",
    ]);
    assert_eq!(
        subnet,
        format!("10.231.{n}.0/24 10.231.{n}.1 2\n", n = s.subnet_n)
    );
    let volumes = docker.ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert_eq!(volumes, "data local\n");

    // `top`: the container's processes only.
    let top = docker.ok(&["top", "web"]);
    let top_lines: Vec<&str> = top.lines().collect();
    assert_eq!(top_lines.len(), 2, "{top}");
    assert!(top_lines[0].starts_with("UID"), "{top}");
    assert!(top_lines[1].ends_with("httpd -f -p 80 -h /www"), "{top}");

    // `stop`, `start`, `restart`: the real container changes state.
    let t0 = unix_now();
    worker_traps_term(&docker);
    assert_eq!(docker.ok(&["stop", "worker"]), "worker\n");
    assert!(matches!(sb.state(&worker.id), State::Exited(_)));
    let exited = docker.ok(&[
        "ps",
        "-a",
        "--filter",
        "name=worker",
        "--format",
        "{{.Status}}",
    ]);
    assert!(exited.starts_with("Exited (0) "), "{exited}");
    assert_eq!(docker.ok(&["ps", "--format", "{{.Names}}"]), "web\n");
    // restart = "never": the agent leaves it stopped over its passes.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(matches!(sb.state(&worker.id), State::Exited(_)));
    assert_eq!(docker.ok(&["start", "worker"]), "worker\n");
    let State::Running(first) = sb.state(&worker.id) else {
        panic!("worker did not start: {:?}", sb.state(&worker.id));
    };
    worker_traps_term(&docker);
    assert_eq!(docker.ok(&["restart", "worker"]), "worker\n");
    let State::Running(second) = sb.state(&worker.id) else {
        panic!("worker did not restart: {:?}", sb.state(&worker.id));
    };
    assert_ne!(first.init, second.init);
    assert_eq!(
        docker.ok(&[
            "inspect",
            "--format",
            "{{.RestartCount}} {{.State.Pid}}",
            "worker"
        ]),
        format!("2 {}\n", second.init.pid)
    );
    // `kill` with a signal the shell's trap turns into exit 0; `wait` answers the status.
    worker_traps_term(&docker);
    assert_eq!(
        docker.ok(&["kill", "--signal", "TERM", "worker"]),
        "worker\n"
    );
    assert_eq!(docker.ok(&["wait", "worker"]), "0\n");

    // `events`: what happened to the worker, in order, as Docker names it.
    std::thread::sleep(Duration::from_millis(200));
    let t1 = unix_now();
    let format = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
    let past = docker.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "container=worker",
        "--format",
        format,
    ]);
    let cycle = "container kill worker\ncontainer die worker\ncontainer stop worker\n\
                 container start worker\ncontainer restart worker\n";
    assert_eq!(
        past,
        format!("{cycle}{cycle}container kill worker\ncontainer die worker\n"),
    );
    let dies = docker.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}} {{.Actor.ID}}",
    ]);
    assert_eq!(dies, format!("worker 0 {worker_id}\n").repeat(3));
    // Live: a start while `docker events` follows, until a time still to come.
    let until = format!("{}", unix_seconds() + 4);
    let follower = {
        let docker = Docker {
            host: docker.host.clone(),
        };
        let since = unix_now();
        std::thread::spawn(move || {
            docker.ok(&[
                "events",
                "--since",
                &since,
                "--until",
                &until,
                "--filter",
                "container=worker",
                "--format",
                "{{.Action}}",
            ])
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(docker.ok(&["start", "worker"]), "worker\n");
    assert_eq!(follower.join().expect("follower"), "start\nrestart\n");

    // Refusals that say what to do instead.
    let (code, _, err) = docker.run(&["rm", "-f", "web"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "Error response from daemon: berth runs what its desired files describe: {} is the container of the entry [container.web]; remove or change that entry to remove it; edit the desired files and the agent applies them\n",
            web.id
        )
    );
    assert!(matches!(sb.state(&web.id), State::Running(_)));
    let (code, _, err) = docker.run(&["create", "--name", "x", image]);
    assert_eq!(code, 1);
    assert!(
        err.contains("containers are made from [container.NAME] entries"),
        "{err}"
    );
    let (code, _, err) = docker.run(&["rmi", image]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "it is used by container {}, {}",
            web.id, worker.id
        )) || err.contains(&format!(
            "it is used by container {}, {}",
            worker.id, web.id
        )),
        "{err}"
    );

    // `version` and `info`.
    let version = docker.ok(&[
        "version",
        "--format",
        "{{.Server.Version}} {{.Server.APIVersion}} {{.Client.APIVersion}}",
    ]);
    assert_eq!(
        version,
        format!("{} 1.41 1.41\n", env!("CARGO_PKG_VERSION"))
    );
    let info = docker.ok(&[
        "info",
        "--format",
        "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}} {{.ServerVersion}} {{.OSType}} {{.CgroupDriver}} {{.Driver}}",
    ]);
    assert_eq!(
        info,
        format!(
            "2 2 0 1 {} linux cgroupfs overlay2\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let (code, plain_info, info_err) = docker.run(&["info"]);
    // The CLI's own warnings from what `info` reports: berth limits no swap and cannot
    // disable the OOM killer; bridge netfilter as the host has it.
    let mut warnings =
        "WARNING: No swap limit support\nWARNING: No oom kill disable support\n".to_string();
    for family in ["iptables", "ip6tables"] {
        let path = format!("/proc/sys/net/bridge/bridge-nf-call-{family}");
        if std::fs::read_to_string(path).unwrap_or_default().trim() != "1" {
            warnings.push_str(&format!("WARNING: bridge-nf-call-{family} is disabled\n"));
        }
    }
    assert_eq!((code, info_err), (0, warnings), "{plain_info}");
    let server = format!(
        "Server:\n Containers: 2\n  Running: 2\n  Paused: 0\n  Stopped: 0\n Images: 1\n Server Version: {}\n Storage Driver: overlay2\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(plain_info.contains(&server), "{plain_info}");
    assert!(!plain_info.to_lowercase().contains("error"), "{plain_info}");
    drop(s.agent);
}

#[test]
fn versions_are_negotiated_as_dockerd_does() {
    let s = setup();
    let docker = Docker::of(&s.sb);
    let socket = s.sb.runtime.layout().run_root.join("docker.sock");
    let get = |path: &str| -> String {
        let out = Command::new("curl")
            .args(["-s", "-i", "--unix-socket"])
            .arg(&socket)
            .arg(format!("http://docker{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    };
    let too_new = get("/v1.99/containers/json");
    assert!(too_new.starts_with("HTTP/1.1 400"), "{too_new}");
    assert!(
        too_new.ends_with(
            "{\"message\":\"client version 1.99 is too new. Maximum supported API version is 1.41\"}"
        ),
        "{too_new}"
    );
    let too_old = get("/v1.12/version");
    assert!(
        too_old.contains("client version 1.12 is too old."),
        "{too_old}"
    );
    let ping = get("/_ping");
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
    for header in [
        "api-version: 1.41",
        "ostype: linux",
        "docker-experimental: false",
        "cache-control: no-cache, no-store, must-revalidate",
    ] {
        assert!(ping.to_ascii_lowercase().contains(header), "{ping}");
    }
    assert!(ping.ends_with("\n\nOK"), "{ping}");
    let old_client =
        get("/v1.24/containers/json?all=1&filters=%7B%22label%22%3A%5B%22tier%3Dworker%22%5D%7D");
    assert!(
        old_client.contains("\"Names\":[\"/worker\"]"),
        "{old_client}"
    );
    let bad_filter = get("/containers/json?filters=%7B%22color%22%3A%5B%22red%22%5D%7D");
    assert!(bad_filter.starts_with("HTTP/1.1 400"), "{bad_filter}");
    // The CLI negotiates down to what the server serves.
    let (code, _, err) = docker.run(&["ps"]);
    assert_eq!(code, 0, "{err}");
}

/// A `prometheus` of the test's own on a loopback port; killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prometheus(sb: &Sandbox) -> Prometheus {
    let dir = sb.dir.path().join("prometheus");
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    let socket = sb.runtime.layout().run_root.join("docker.sock");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: berth\n    docker_sd_configs:\n      - host: unix://{}\n        refresh_interval: 1s\n",
            socket.display()
        ),
    )
    .expect("write config");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus (Debian's prometheus package)");
    Prometheus {
        child,
        port,
        _dir: dir,
    }
}

#[test]
fn prometheus_discovers_containers_labels_addresses_and_ports() {
    let s = setup();
    let sb = &s.sb;
    let web = sole_running(sb, "web", Duration::from_secs(1));
    let ip = ip_of(sb, &web.id);
    let prom = prometheus(sb);
    let url = format!("http://127.0.0.1:{}/api/v1/targets?state=any", prom.port);
    let client = crate::support::registry::http_client();
    let started = Instant::now();
    let target = wait_for(
        Duration::from_secs(60),
        "web among prometheus' targets",
        || {
            let body: serde_json::Value = client.get(&url).send().ok()?.json().ok()?;
            let active = body["data"]["activeTargets"].as_array()?.clone();
            active
                .into_iter()
                .find(|t| t["discoveredLabels"]["__meta_docker_container_name"] == "/web")
        },
    );
    let labels = &target["discoveredLabels"];
    let expect = [
        ("__address__", format!("{ip}:80")),
        ("__meta_docker_container_label_tier", "web".to_string()),
        (
            "__meta_docker_container_label_traefik_enable",
            "true".to_string(),
        ),
        (
            "__meta_docker_container_label_io_berth_name",
            "web".to_string(),
        ),
        ("__meta_docker_container_id", docker_id(&web.id)),
        ("__meta_docker_container_network_mode", "front".to_string()),
        ("__meta_docker_network_name", "front".to_string()),
        ("__meta_docker_network_ip", ip.clone()),
        ("__meta_docker_port_private", "80".to_string()),
        ("__meta_docker_port_public", s.port.to_string()),
        ("__meta_docker_port_public_ip", "127.0.0.1".to_string()),
    ];
    for (key, value) in expect {
        assert_eq!(
            labels[key].as_str(),
            Some(value.as_str()),
            "{key} after {:?}: {labels:#}",
            started.elapsed()
        );
    }
    // The worker publishes nothing: Prometheus' default port on its address.
    wait_for(Duration::from_secs(30), "worker among the targets", || {
        let body: serde_json::Value = client.get(&url).send().ok()?.json().ok()?;
        body["data"]["activeTargets"]
            .as_array()?
            .iter()
            .any(|t| t["discoveredLabels"]["__meta_docker_container_label_tier"] == "worker")
            .then_some(())
    });
}

#[test]
fn a_stopped_container_follows_its_entry_and_only_manual_ones_are_removed() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let sleeper = |name: &str, extra: &str| {
        format!(
            "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sleep\", \"3600\"]\nstop_timeout = \"1s\"\n{extra}\n"
        )
    };
    sb.write("app.toml", &sleeper("keeper", "restart = \"always\""));
    let agent = Agent::start(&sb, &sb.desired());
    let keeper = sole_running(&sb, "keeper", Duration::from_secs(60));
    let docker = Docker::of(&sb);
    let State::Running(before) = sb.state(&keeper.id) else {
        panic!("keeper is not running");
    };

    // `docker stop` stops it; its restart policy ("always") has the agent start it again,
    // in place (same container, a new process), as after `berth stop`.
    assert_eq!(docker.ok(&["stop", "keeper"]), "keeper\n");
    let after = wait_for(Duration::from_secs(30), "keeper started again", || match sb
        .state(&keeper.id)
    {
        State::Running(m) if m.init != before.init => Some(m),
        _ => None,
    });
    assert_ne!(after.init, before.init);
    assert_eq!(
        docker.ok(&["ps", "--format", "{{.Names}} {{.State}}"]),
        "keeper running\n"
    );

    // A container made by `berth run` (from a directory the agent does not watch) is removed
    // as `berth rm` removes it; the described one is not.
    let other = sb.dir.path().join("by-hand");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("solo.toml"), sleeper("solo", "")).expect("write");
    let out = sb.berth(&["run", "-d", other.to_str().expect("utf-8"), "solo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let solo = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let labels = docker.ok(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"io.berth.manual\"}}",
        "solo",
    ]);
    assert_eq!(labels, "true\n");
    let (code, _, err) = docker.run(&["rm", "solo"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("You cannot remove a running container"),
        "{err}"
    );
    assert_eq!(docker.ok(&["rm", "-f", "solo"]), "solo\n");
    assert!(sb.runtime.record(&solo).is_err(), "solo is still recorded");
    let (code, _, err) = docker.run(&["rm", "-f", "keeper"]);
    assert_eq!(code, 1);
    assert!(err.contains("edit the desired files"), "{err}");
    assert!(sb.state(&keeper.id).is_running());
    drop(agent);
}

/// The Docker SDK for Python (Debian's python3-docker) for the calls the CLI does not
/// make: version negotiation by `/version`, filters spelled as lists, `limit`,
/// `wait(condition="next-exit")`, numeric kill signals, events decoded as dicts.
const SDK_SCRIPT: &str = r#"
import os, sys, threading, time
import docker
image, config_digest = sys.argv[1], sys.argv[2]
c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="auto")
print(c.ping(), c.api.api_version)
print(sorted(x.name for x in c.containers.list(filters={"label": ["tier"]})))
print(len(c.containers.list(all=True, limit=1)))
w = c.containers.get("worker")
print(w.name, w.status, w.labels["tier"], w.attrs["State"]["Running"])
print(c.images.get(image).id == config_digest)
print(c.networks.get("front").attrs["IPAM"]["Config"][0]["Subnet"])
print(c.volumes.get("data").attrs["Driver"])
t0 = time.time()
result = {}
waiter = threading.Thread(target=lambda: result.update(w.wait(condition="next-exit")))
waiter.start()
time.sleep(0.5)
w.stop(timeout=2)
waiter.join(20)
print(result)
w.reload()
print(w.status)
w.start()
w.reload()
print(w.status)
# Once the trap is set, when its loop sleeps: a pid 1 ignores TERM without one.
deadline = time.time() + 20
while not any(p[-1] == "sleep 1" for p in w.top()["Processes"]) and time.time() < deadline:
    time.sleep(0.1)
w.kill(signal=15)
print(w.wait())
t1 = time.time()
dies = c.events(since=t0, until=t1, filters={"container": "worker", "event": "die"}, decode=True)
print([(e["Action"], e["Actor"]["Attributes"]["exitCode"]) for e in dies])
try:
    c.containers.run(image, "true")
except docker.errors.APIError as e:
    print(e.status_code, "edit the desired files" in e.explanation)
"#;

#[test]
fn the_python_sdk_drives_what_the_cli_does_not() {
    let s = setup();
    let docker = Docker::of(&s.sb);
    let config_digest = crate::support::sha256_digest(&busybox_image().config);
    let out = Command::new("python3")
        .args(["-c", SDK_SCRIPT, &s.image, &config_digest])
        .env("DOCKER_HOST", &docker.host)
        .output()
        .expect("python3 (Debian's python3-docker)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let subnet = format!("10.231.{}.0/24", s.subnet_n);
    assert_eq!(
        stdout,
        format!(
            "True 1.41\n['web', 'worker']\n1\nworker running worker True\nTrue\n{subnet}\nlocal\n\
             {{'Error': None, 'StatusCode': 0}}\nexited\nrunning\n{{'Error': None, 'StatusCode': 0}}\n\
             [('die', '0'), ('die', '0')]\n403 True\n"
        )
    );
}
