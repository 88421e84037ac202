//! Each key's translation, and the golden fixtures under tests/fixtures/compose (rewrite the
//! expected files with `BERTH_BLESS=1 cargo test --lib import::tests::golden`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::interpolate::Variables;
use super::*;

const POOL: &str = "10.89.0.0/16";

fn project(yaml: &str, vars: &[(&str, &str)]) -> Result<compose::Project, ImportError> {
    let vars = Variables::new(
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    translate_text(
        yaml,
        Path::new("compose.yaml"),
        Path::new("/srv/shop"),
        Path::new("/srv/shop/berth"),
        &vars,
        POOL.parse().unwrap(),
    )
}

/// The one service of `yaml` (under `services: { s: … }`) as TOML, and what was dropped.
fn one(service_yaml: &str) -> (toml::Table, Vec<Dropped>) {
    let yaml = format!(
        "services:\n  s:\n    image: docker.io/library/busybox:1\n{}\nnetworks:\n  front:\n  back:\nvolumes:\n  data:\nsecrets:\n  db_password:\n    file: ./secrets/db.txt\nconfigs:\n  app:\n    content: hello\n",
        indent(service_yaml)
    );
    let p = project(&yaml, &[("HOME", "/home/me"), ("PASS", "from-env")]).unwrap();
    let text = toml_out::file(&[], &p.services["s"]);
    let parsed: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
    let table = parsed["container"]["s"].as_table().unwrap().clone();
    (table, p.dropped)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

fn keys(dropped: &[Dropped]) -> Vec<&str> {
    dropped.iter().map(|d| d.key.as_str()).collect()
}

fn rendered(p: &compose::Project, name: &str) -> String {
    toml_out::file(&[], &p.services[name])
}

#[test]
fn renamed_keys_and_plain_ones() {
    let (t, dropped) = one(
        "working_dir: /app\ngroup_add: [wheel, \"27\"]\nuser: app\nhostname: box\nread_only: true\nstop_signal: SIGQUIT\nstop_grace_period: 1m30s\ncap_add: [NET_ADMIN]\ncap_drop: [ALL]\nlabels: [a=b]\n",
    );
    assert!(dropped.is_empty(), "{dropped:?}");
    assert_eq!(t["workdir"].as_str(), Some("/app"));
    assert_eq!(t["groups"].as_array().unwrap().len(), 2);
    assert_eq!(t["user"].as_str(), Some("app"));
    assert_eq!(t["hostname"].as_str(), Some("box"));
    assert_eq!(t["read_only"].as_bool(), Some(true));
    assert_eq!(t["stop_signal"].as_str(), Some("SIGQUIT"));
    assert_eq!(t["stop_timeout"].as_str(), Some("1m 30s"));
    assert_eq!(t["labels"]["a"].as_str(), Some("b"));
    assert_eq!(t["cap_drop"][0].as_str(), Some("ALL"));
}

#[test]
fn translated_keys_say_so_in_a_comment() {
    let p = project(
        "services:\n  s:\n    image: redis:7\n    working_dir: /data\n    group_add: [\"27\"]\n",
        &[],
    )
    .unwrap();
    let text = rendered(&p, "s");
    assert!(text.contains("# translated from `redis:7` (berth needs the full reference)\nimage = \"docker.io/library/redis:7\""), "{text}");
    assert!(
        text.contains("# translated from working_dir\nworkdir = \"/data\""),
        "{text}"
    );
    assert!(
        text.contains("# translated from group_add\ngroups = [\"27\"]"),
        "{text}"
    );
}

#[test]
fn images_become_references_berth_accepts() {
    for (compose, berth) in [
        ("postgres:16", "docker.io/library/postgres:16"),
        ("postgres", "docker.io/library/postgres:latest"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("ghcr.io/org/app:v1", "ghcr.io/org/app:v1"),
    ] {
        let p = project(&format!("services:\n  s:\n    image: {compose}\n"), &[]).unwrap();
        let text = rendered(&p, "s");
        let t: toml::Table = text.parse().unwrap();
        let image = t["container"]["s"]["image"].as_str().unwrap();
        assert_eq!(image, berth);
        // What berth's own parser makes of it is the same reference.
        assert_eq!(
            image
                .parse::<crate::spec::image_ref::ImageSource>()
                .unwrap()
                .to_string(),
            berth
        );
    }
    let p = project("services:\n  s:\n    image: Bad/Name\n", &[]).unwrap();
    assert_eq!(keys(&p.dropped), ["image", ""]);
    assert!(p.services.is_empty());
    let p = project("services:\n  s:\n    user: a\n", &[]).unwrap();
    assert_eq!(keys(&p.dropped), ["image"]);
    assert!(p.services.is_empty());
}

#[test]
fn commands_environment_and_interpolation() {
    let (t, dropped) = one(
        "command: sh -c 'echo $$HOME'\nentrypoint: [\"/init\"]\nenvironment:\n  - A=1\n  - PASS\n  - MISSING\n",
    );
    assert_eq!(
        t["command"].as_array().unwrap(),
        &["sh", "-c", "echo $HOME"].map(toml::Value::from).to_vec()
    );
    assert_eq!(t["entrypoint"][0].as_str(), Some("/init"));
    assert_eq!(t["env"]["A"].as_str(), Some("1"));
    assert_eq!(t["env"]["PASS"].as_str(), Some("from-env"));
    assert_eq!(keys(&dropped), ["environment.MISSING"]);
    let e = project(
        "services:\n  s:\n    image: a:1\n    environment:\n      P: ${P:?needed}\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "compose.yaml:5:10: required variable `P` is not set: needed"
    );
}

#[test]
fn restart_policies() {
    for (compose, berth) in [
        ("always", "always"),
        ("unless-stopped", "always"),
        ("\"no\"", "never"),
        ("on-failure", "on-failure"),
    ] {
        let (t, dropped) = one(&format!("restart: {compose}\n"));
        assert_eq!(t["restart"].as_str(), Some(berth), "{compose}");
        assert!(dropped.is_empty());
    }
    let (t, dropped) = one("restart: on-failure:3\n");
    assert_eq!(t["restart"].as_str(), Some("on-failure"));
    assert_eq!(keys(&dropped), ["restart"]);
    // No policy is Compose's "no".
    let (t, _) = one("user: a\n");
    assert_eq!(t["restart"].as_str(), Some("never"));
    let (t, _) = one("deploy:\n  restart_policy:\n    condition: on-failure\n");
    assert_eq!(t["restart"].as_str(), Some("on-failure"));
    let p = project(
        "services:\n  s:\n    image: a:1\n    restart: unless-stopped\n",
        &[],
    )
    .unwrap();
    assert!(rendered(&p, "s").contains("# translated from unless-stopped"));
}

#[test]
fn healthchecks() {
    let (t, d) = one(
        "healthcheck:\n  test: [\"CMD\", \"pg_isready\"]\n  interval: 5s\n  timeout: 2s\n  retries: 4\n  start_period: 1m\n",
    );
    assert!(d.is_empty());
    let h = &t["health"];
    assert_eq!(h["exec"][0].as_str(), Some("pg_isready"));
    assert_eq!(h["interval"].as_str(), Some("5s"));
    assert_eq!(h["timeout"].as_str(), Some("2s"));
    assert_eq!(h["retries"].as_integer(), Some(4));
    assert_eq!(h["start_period"].as_str(), Some("1m"));
    for shell in [
        "test: curl -f http://x",
        "test: [\"CMD-SHELL\", \"curl -f http://x\"]",
    ] {
        let (t, _) = one(&format!("healthcheck:\n  {shell}\n"));
        assert_eq!(
            t["health"]["exec"].as_array().unwrap(),
            &["/bin/sh", "-c", "curl -f http://x"]
                .map(toml::Value::from)
                .to_vec()
        );
    }
    let (t, d) = one("healthcheck:\n  disable: true\n");
    assert!(t.get("health").is_none() && d.is_empty());
    let (t, d) = one("healthcheck:\n  interval: 5s\n");
    assert!(t.get("health").is_none());
    assert_eq!(keys(&d), ["healthcheck"]);
}

#[test]
fn dependencies_and_their_conditions() {
    let p = project(
        "services:\n  web:\n    image: a:1\n    depends_on:\n      db:\n        condition: service_healthy\n      migrate:\n        condition: service_completed_successfully\n      cache:\n        condition: service_started\n        restart: true\n  db:\n    image: a:1\n  migrate:\n    image: a:1\n  cache:\n    image: a:1\n",
        &[],
    )
    .unwrap();
    let t: toml::Table = rendered(&p, "web").parse().unwrap();
    let d = &t["container"]["web"]["depends_on"];
    assert_eq!(d["db"].as_str(), Some("healthy"));
    assert_eq!(d["migrate"].as_str(), Some("completed"));
    assert_eq!(d["cache"].as_str(), Some("started"));
    assert_eq!(keys(&p.dropped), ["depends_on.cache.restart"]);
    let (t, _) = {
        let p = project(
            "services:\n  a:\n    image: a:1\n    depends_on: [b]\n  b:\n    image: b:1\n",
            &[],
        )
        .unwrap();
        let t: toml::Table = rendered(&p, "a").parse().unwrap();
        (t, p.dropped)
    };
    assert_eq!(
        t["container"]["a"]["depends_on"]["b"].as_str(),
        Some("started")
    );
}

#[test]
fn networks_default_aliases_and_modes() {
    let (t, d) =
        one("networks:\n  front:\n    aliases: [www]\n    ipv4_address: 10.89.1.10\n  back:\n");
    assert!(d.is_empty(), "{d:?}");
    let n = t["networks"].as_array().unwrap();
    assert_eq!(n[0]["name"].as_str(), Some("front"));
    assert_eq!(n[0]["ip"].as_str(), Some("10.89.1.10"));
    assert_eq!(n[0]["aliases"][0].as_str(), Some("www"));
    assert_eq!(n[1].as_str(), Some("back"));
    let (t, _) = one("user: a\n");
    assert_eq!(t["networks"][0].as_str(), Some("default"));
    let (t, _) = one("container_name: shop-s\nnetworks: [front]\n");
    assert_eq!(t["networks"][0]["aliases"][0].as_str(), Some("shop-s"));
    let (t, _) = one("network_mode: host\n");
    assert_eq!(t["network"].as_str(), Some("host"));
    assert!(t.get("networks").is_none());
    let p = project(
        "services:\n  app:\n    image: a:1\n  side:\n    image: a:1\n    network_mode: service:app\n    pid: service:app\n    ipc: service:app\n",
        &[],
    )
    .unwrap();
    // Sharing a service's namespaces becomes berth's `container:NAME`.
    assert!(p.dropped.is_empty(), "{:?}", p.dropped);
    let t: toml::Table = rendered(&p, "side").parse().unwrap();
    let side = &t["container"]["side"];
    for key in ["network", "pid", "ipc"] {
        assert_eq!(side[key].as_str(), Some("container:app"), "{key}: {side:?}");
    }
    assert!(side.get("networks").is_none(), "{side:?}");
    // A container outside the project, or a service not imported, cannot be joined.
    let p = project(
        "services:\n  side:\n    image: a:1\n    network_mode: container:other\n    ipc: service:gone\n",
        &[],
    )
    .unwrap();
    assert_eq!(keys(&p.dropped), ["network_mode", "ipc"]);
    assert!(
        p.dropped[0].reason.contains("outside this project"),
        "{:?}",
        p.dropped[0]
    );
    assert!(
        p.dropped[1].reason.contains("not imported"),
        "{:?}",
        p.dropped[1]
    );
    let (_, d) = one("ipc: shareable\n");
    assert!(d.is_empty(), "{d:?}");
    let (_, d) = one("pid: host\n");
    assert_eq!(keys(&d), ["pid"]);
}

#[test]
fn top_level_networks_get_subnets() {
    let p = project(
        "services:\n  s:\n    image: a:1\n    networks: [a, b]\nnetworks:\n  a:\n    ipam:\n      config:\n        - subnet: 10.89.1.0/24\n          gateway: 10.89.1.254\n  b:\n    internal: true\n    driver: overlay\n",
        &[],
    )
    .unwrap();
    let text = toml_out::file(&[], &p.networks);
    let t: toml::Table = text.parse().unwrap();
    assert_eq!(t["network"]["a"]["subnet"].as_str(), Some("10.89.1.0/24"));
    assert_eq!(t["network"]["a"]["gateway"].as_str(), Some("10.89.1.254"));
    // The pool's first /24 is skipped, the taken one too.
    assert_eq!(t["network"]["b"]["subnet"].as_str(), Some("10.89.2.0/24"));
    assert_eq!(t["network"]["b"]["internal"].as_bool(), Some(true));
    assert_eq!(keys(&p.dropped), ["driver"]);
}

#[test]
fn ports() {
    let (t, d) = one(
        "ports:\n  - \"8080:80\"\n  - 127.0.0.1:5432:5432/tcp\n  - 8000-8010:8000-8010\n  - target: 53\n    published: \"5353\"\n    protocol: udp\n  - \"9000\"\n  - target: 80\n",
    );
    let ports: Vec<&str> = t["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(
        ports,
        [
            "8080:80",
            "127.0.0.1:5432:5432/tcp",
            "8000-8010:8000-8010",
            "5353:53/udp"
        ]
    );
    assert_eq!(keys(&d), ["ports", "ports"]);
}

#[test]
fn mounts() {
    let (t, d) = one(
        "volumes:\n  - data:/var/lib/data\n  - ./conf:/etc/app:ro\n  - /srv/logs:/logs\n  - ~/cache:/cache\n  - type: volume\n    source: data\n    target: /seed\n    volume:\n      nocopy: true\n  - type: tmpfs\n    target: /scratch\n    tmpfs:\n      size: 64m\n  - ./x:/x:z\n  - /anon\n  - undeclared:/u\ntmpfs:\n  - /run:size=16m,mode=1777\n  - /tmp\n",
    );
    let mounts: Vec<&str> = t["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(
        mounts,
        [
            "data:/var/lib/data",
            "../conf:/etc/app:ro",
            "/srv/logs:/logs",
            "/home/me/cache:/cache",
            "data:/seed:rw,nocopy",
            "tmpfs:/scratch:size=64MiB",
            "../x:/x",
            "tmpfs:/run:size=16MiB,mode=1777",
            "tmpfs:/tmp",
        ]
    );
    assert_eq!(keys(&d), ["volumes", "volumes", "volumes"]);
    assert!(d[0].reason.contains("SELinux"));
    assert!(d[1].reason.contains("anonymous"));
    assert!(d[2].reason.contains("undeclared"));
}

#[test]
fn limits() {
    let (t, d) = one("mem_limit: 512m\ncpus: 0.5\npids_limit: 100\n");
    assert!(d.is_empty());
    assert_eq!(t["memory"].as_str(), Some("512MiB"));
    assert_eq!(t["cpus"].as_float(), Some(0.5));
    assert_eq!(t["pids"].as_integer(), Some(100));
    let (t, d) = one(
        "deploy:\n  resources:\n    limits:\n      memory: 1g\n      cpus: \"2\"\n    reservations:\n      memory: 256m\n",
    );
    assert_eq!(t["memory"].as_str(), Some("1GiB"));
    assert_eq!(t["cpus"].as_float(), Some(2.0));
    assert_eq!(keys(&d), ["deploy.resources.reservations"]);
    let (_, d) = one("pids_limit: -1\n");
    assert_eq!(keys(&d), ["pids_limit"]);
}

#[test]
fn runtime_keys_of_the_contract() {
    let (t, d) = one(
        "devices:\n  - /dev/fuse\n  - source: /dev/net/tun\n    target: /dev/net/tun\n    permissions: rwm\ndevice_cgroup_rules: [\"c 10:200 rwm\"]\nsysctls:\n  - net.core.somaxconn=1024\nulimits:\n  nproc: 512\n  nofile:\n    soft: 1024\n    hard: 2048\ninit: true\nshm_size: 128m\nprivileged: true\nsecurity_opt:\n  - seccomp:unconfined\n  - no-new-privileges:true\nextra_hosts:\n  db.local: 10.0.0.5\ndns: 10.0.0.2\ndns_search: [example.com]\ndns_opt: [\"ndots:2\"]\n",
    );
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(t["devices"][0].as_str(), Some("/dev/fuse"));
    assert_eq!(
        t["devices"][1].as_str(),
        Some("/dev/net/tun:/dev/net/tun:rwm")
    );
    assert_eq!(t["device_cgroup_rules"][0].as_str(), Some("c 10:200 rwm"));
    assert_eq!(t["sysctls"]["net.core.somaxconn"].as_str(), Some("1024"));
    assert_eq!(t["ulimits"]["nproc"].as_integer(), Some(512));
    assert_eq!(t["ulimits"]["nofile"]["hard"].as_integer(), Some(2048));
    assert_eq!(t["init"].as_bool(), Some(true));
    assert_eq!(t["shm_size"].as_str(), Some("128MiB"));
    assert_eq!(t["privileged"].as_bool(), Some(true));
    assert_eq!(t["seccomp"].as_str(), Some("unconfined"));
    assert_eq!(t["extra_hosts"][0].as_str(), Some("db.local:10.0.0.5"));
    assert_eq!(t["dns"][0].as_str(), Some("10.0.0.2"));
    assert_eq!(t["dns_search"][0].as_str(), Some("example.com"));
    assert_eq!(t["dns_options"][0].as_str(), Some("ndots:2"));
    let (t, _) = one("security_opt: [\"seccomp=profiles/strict.json\"]\n");
    assert_eq!(t["seccomp"].as_str(), Some("../profiles/strict.json"));
    let (_, d) = one("security_opt: [\"label:disable\"]\n");
    assert_eq!(keys(&d), ["security_opt"]);
}

#[test]
fn secrets_configs_and_env_files_never_inline_a_secret() {
    let yaml = "services:\n  s:\n    image: a:1\n    env_file: [app.env, {path: opt.env, required: false}]\n    secrets:\n      - db_password\n      - source: db_password\n        target: pw\n        uid: \"1000\"\n        mode: 0400\n      - token\n    configs:\n      - app\n      - source: app\n        target: /etc/app.conf\nsecrets:\n  db_password:\n    file: ./secrets/db.txt\n  token:\n    environment: TOKEN\nconfigs:\n  app:\n    content: \"listen ${PORT:-80}\"\n";
    let p = project(yaml, &[("TOKEN", "s3cr3t-value")]).unwrap();
    let all: String = [
        rendered(&p, "s"),
        toml_out::file(&[], &p.secrets),
        toml_out::file(&[], &p.configs),
    ]
    .concat();
    assert!(!all.contains("s3cr3t-value"), "{all}");
    let t: toml::Table = all.parse().unwrap();
    let s = &t["container"]["s"];
    assert_eq!(s["env_file"][0].as_str(), Some("../app.env"));
    assert_eq!(s["env_file"][1].as_str(), Some("../opt.env"));
    assert_eq!(s["secrets"][0]["name"].as_str(), Some("db-password"));
    assert_eq!(
        s["secrets"][0]["target"].as_str(),
        Some("/run/secrets/db_password")
    );
    assert_eq!(s["secrets"][1]["target"].as_str(), Some("/run/secrets/pw"));
    assert_eq!(s["secrets"][1]["uid"].as_integer(), Some(1000));
    assert_eq!(s["secrets"][1]["mode"].as_str(), Some("0400"));
    assert_eq!(s["configs"][0].as_str(), Some("app"));
    assert_eq!(s["configs"][1]["target"].as_str(), Some("/etc/app.conf"));
    assert_eq!(
        t["secret"]["db-password"]["file"].as_str(),
        Some("/srv/shop/secrets/db.txt")
    );
    assert!(t["secret"].get("token").is_none());
    assert_eq!(t["config"]["app"]["content"].as_str(), Some("listen 80"));
    assert_eq!(
        keys(&p.dropped),
        ["env_file.required", "secrets", "environment"]
    );
}

#[test]
fn build_only_services_are_left_out_and_reported() {
    let p = project(
        "services:\n  app:\n    build: .\n  web:\n    image: nginx:1\n    build: ./web\n    depends_on: [app]\n",
        &[],
    )
    .unwrap();
    assert!(!p.services.contains_key("app"));
    assert_eq!(p.services_total, 2);
    assert_eq!(keys(&p.dropped), ["build", "build", "depends_on.app"]);
    assert!(p.dropped[0].reason.contains("not yet supported"));
}

#[test]
fn names_are_made_berth_names() {
    let p = project(
        "services:\n  My_App:\n    image: a:1\n    volumes: [app_data:/d]\nvolumes:\n  app_data:\n",
        &[],
    )
    .unwrap();
    let text = rendered(&p, "my-app");
    assert!(text.contains("# translated from `My_App`"), "{text}");
    assert!(text.contains("\"app-data:/d\""), "{text}");
}

#[test]
fn unknown_keys_are_reported_with_their_place() {
    let p = project(
        "services:\n  s:\n    image: a:1\n    frobnicate: 1\n    x-note: fine\nfoo: 1\n",
        &[],
    )
    .unwrap();
    let d: Vec<(&str, &str, usize, usize)> = p
        .dropped
        .iter()
        .map(|d| (d.scope.as_str(), d.key.as_str(), d.at.line, d.at.column))
        .collect();
    assert_eq!(
        d,
        [("file", "foo", 6, 1), ("service s", "frobnicate", 4, 5)]
    );
}

#[test]
fn writing_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let import = Import {
        source: "compose.yaml".into(),
        files: vec![("a.toml".into(), "x".into())],
        dropped: Vec::new(),
        services: 1,
        services_total: 1,
    };
    write(&import, dir.path(), false).unwrap();
    assert!(matches!(
        write(&import, dir.path(), false),
        Err(ImportError::Exists { .. })
    ));
    write(&import, dir.path(), true).unwrap();
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose")
}

/// Import each fixture as if into `<fixture>/expected` and compare with what is there
/// (absolute paths of the fixture written as `$FIXTURE`).
#[test]
fn golden() {
    let bless = std::env::var_os("BERTH_BLESS").is_some();
    for name in ["basic", "full", "unsupported"] {
        let dir = fixtures().join(name);
        let expected = dir.join("expected");
        let options = Options {
            environment: BTreeMap::new(),
            env_file: None,
            subnet_pool: POOL.parse().unwrap(),
        };
        let import = compose(&dir.join("compose.yaml"), &expected, &options).unwrap();
        let fixture = dir.display().to_string();
        let mut got: BTreeMap<String, String> = import
            .files
            .iter()
            .map(|(f, t)| (f.clone(), t.replace(&fixture, "$FIXTURE")))
            .collect();
        got.insert("report.txt".into(), report(&import));
        compare_or_bless(name, &expected, &got, bless);
    }
}

/// The files an import wrote (`got`, by name) against the golden directory `expected`, or
/// written there with `bless` (`BERTH_BLESS=1`).
pub(super) fn compare_or_bless(
    name: &str,
    expected: &std::path::Path,
    got: &BTreeMap<String, String>,
    bless: bool,
) {
    if bless {
        let _ = std::fs::remove_dir_all(expected);
        std::fs::create_dir_all(expected).unwrap();
        for (f, t) in got {
            std::fs::write(expected.join(f), t).unwrap();
        }
    }
    let mut want = BTreeMap::new();
    for entry in std::fs::read_dir(expected).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        want.insert(file, std::fs::read_to_string(&path).unwrap());
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{name}"
    );
    for (f, text) in got {
        assert_eq!(text, &want[f], "{name}/{f}");
    }
}
