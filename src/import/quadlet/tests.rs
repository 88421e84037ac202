//! Each key's translation, and the golden fixtures under tests/fixtures/import/quadlet
//! (rewrite the expected files with `BERTH_BLESS=1 cargo test --lib import::quadlet::tests::golden`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::super::report_counting;
use super::*;

const POOL: &str = "10.89.0.0/16";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/quadlet")
}

fn options(secrets: &Path) -> QuadletOptions {
    QuadletOptions {
        secrets_dir: secrets.to_path_buf(),
        subnet_pool: POOL.parse().unwrap(),
    }
}

#[test]
fn golden() {
    let bless = std::env::var_os("BERTH_BLESS").is_some();
    for name in ["full", "unsupported"] {
        let dir = fixtures().join(name);
        let expected = dir.join("expected");
        let import = quadlet(
            std::slice::from_ref(&dir),
            &expected,
            &options(&dir.join("secrets")),
        )
        .unwrap();
        let fixture = dir.display().to_string();
        let mut got: BTreeMap<String, String> = import
            .files
            .iter()
            .map(|(f, t)| (f.clone(), t.replace(&fixture, "$FIXTURE")))
            .collect();
        got.insert(
            "report.txt".into(),
            report_counting(&import, "containers").replace(&fixture, "$FIXTURE"),
        );
        crate::import::tests::compare_or_bless(name, &expected, &got, bless);
    }
}

/// The units written into a temporary directory and imported: each written file as TOML,
/// what was dropped, and the directory (output in `out/`, secrets expected in `secrets/`).
fn run(
    units: &[(&str, &str)],
) -> (
    BTreeMap<String, toml::Table>,
    Vec<Dropped>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("units");
    std::fs::create_dir_all(&src).unwrap();
    for (name, text) in units {
        std::fs::write(src.join(name), text).unwrap();
    }
    let import = quadlet(
        &[src],
        &dir.path().join("out"),
        &options(&dir.path().join("secrets")),
    )
    .unwrap();
    let files = import
        .files
        .iter()
        .map(|(f, t)| {
            (
                f.clone(),
                t.parse::<toml::Table>()
                    .unwrap_or_else(|e| panic!("{e}\n{t}")),
            )
        })
        .collect();
    (files, import.dropped, dir)
}

/// One container unit `c.container` (an image added unless the body sets one), its table.
fn one(body: &str) -> (toml::Table, Vec<Dropped>) {
    let body = if body.contains("Image=") {
        body.to_string()
    } else {
        format!("Image=docker.io/library/busybox:1\n{body}")
    };
    let (files, dropped, _dir) = run(&[
        ("c.container", &format!("[Container]\n{body}")),
        ("net.network", "[Network]\nSubnet=10.89.5.0/24\n"),
        ("data.volume", "[Volume]\n"),
    ]);
    let c = files["c.toml"]["container"]["c"]
        .as_table()
        .unwrap()
        .clone();
    (c, dropped)
}

fn keys(dropped: &[Dropped]) -> Vec<&str> {
    dropped.iter().map(|d| d.key.as_str()).collect()
}

fn strs(v: &toml::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn images_and_pull_policies() {
    let (c, d) = one("Image=redis:7\n");
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(c["image"].as_str(), Some("docker.io/library/redis:7"));
    let (files, d, _dir) = run(&[(
        "c.container",
        "[Container]\nImage=ghcr.io/a/b:1\nPull=always\n",
    )]);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(
        files["c.toml"]["container"]["c"]["image"].as_str(),
        Some("c")
    );
    let img = &files["00-images.toml"]["image"]["c"];
    assert_eq!(img["reference"].as_str(), Some("ghcr.io/a/b:1"));
    assert_eq!(img["pull"].as_str(), Some("always"));
    let (files, d, _dir) = run(&[("c.container", "[Container]\nImage=x.image\n")]);
    assert!(!files.contains_key("c.toml"));
    assert_eq!(keys(&d), ["Image"]);
    let (_, d) = one("Pull=sometimes\n");
    assert_eq!(keys(&d), ["Pull"]);
    // No image: the container is left out and reported.
    let (files, d, _dir) = run(&[("c.container", "[Container]\nExec=true\n")]);
    assert!(!files.contains_key("c.toml"));
    assert_eq!(keys(&d), ["Image"]);
}

#[test]
fn commands_split_as_systemd_does() {
    let (c, d) = one("Exec=first\nExec=sh -c \"echo 'a b'\" \\\n  tab\\there x\\x41\n");
    assert!(d.is_empty(), "{d:?}");
    // Only the last Exec counts.
    assert_eq!(
        strs(&c["command"]),
        ["sh", "-c", "echo 'a b'", "tab\there", "xA"]
    );
    let (c, _) = one("Entrypoint=/docker-entrypoint.sh\n");
    assert_eq!(strs(&c["entrypoint"]), ["/docker-entrypoint.sh"]);
    let (c, _) = one("Entrypoint=[\"/bin/sh\", \"-c\"]\n");
    assert_eq!(strs(&c["entrypoint"]), ["/bin/sh", "-c"]);
    let (_, d) = one("Exec=a\\qb\n");
    assert_eq!(keys(&d), ["Exec"]);
    assert!(d[0].reason.contains("`\\q`"), "{}", d[0].reason);
    let (_, d) = one("Exec=echo $HOME\n");
    assert!(d[0].reason.contains("`$HOME`"), "{}", d[0].reason);
    let (c, d) = one("Exec=sh -c \"echo $HOME\"\n");
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(strs(&c["command"]), ["sh", "-c", "echo $HOME"]);
    let (c, _) = one("Exec=echo $$HOME %%\n");
    assert_eq!(strs(&c["command"]), ["echo", "$HOME", "%"]);
}

#[test]
fn environment_labels_and_env_files() {
    let (c, d) = one(
        "Environment=A=1 \"B=two words\"\nEnvironment=C=%N\nLabel=x=1 \"y=a b\"\nEnvironmentFile=app.env\nEnvironmentFile=/etc/app.env\n",
    );
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(c["env"]["A"].as_str(), Some("1"));
    assert_eq!(c["env"]["B"].as_str(), Some("two words"));
    assert_eq!(c["env"]["C"].as_str(), Some("c"));
    assert_eq!(c["labels"]["y"].as_str(), Some("a b"));
    // Relative to the unit's directory, written relative to the output directory.
    assert_eq!(strs(&c["env_file"]), ["../units/app.env", "/etc/app.env"]);
    // An empty assignment resets the list.
    let (c, _) = one("Environment=A=1\nEnvironment=\nEnvironment=B=2\n");
    assert!(c["env"].get("A").is_none());
    let (_, d) = one("Environment=FROM_HOST\nLabel=io.berth.x=1\n");
    assert_eq!(keys(&d), ["Environment", "Label"]);
}

#[test]
fn ports() {
    let (c, d) = one(
        "PublishPort=8080:80\nPublishPort=127.0.0.1:5353:53/udp\nPublishPort=[::1]:9000:9000\nPublishPort=8000-8001:8000-8001\n",
    );
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(strs(&c["ports"]).len(), 4);
    let (_, d) = one("PublishPort=80\nPublishPort=127.0.0.1::80\nPublishPort=a:b\n");
    assert_eq!(keys(&d), ["PublishPort", "PublishPort", "PublishPort"]);
}

#[test]
fn volumes_mounts_and_tmpfs() {
    let (files, d, _dir) = run(&[
        (
            "c.container",
            "[Container]\nImage=docker.io/library/busybox:1\nVolume=data.volume:/data:ro\nVolume=/srv/conf:/conf:ro\nVolume=./rel:/rel\nVolume=cache:/cache:nocopy\nMount=type=bind,src=/srv/x,dst=/x,readonly\nMount=type=volume,source=data.volume,destination=/d2\nMount=type=tmpfs,destination=/t,tmpfs-size=1g,tmpfs-mode=700\nTmpfs=/run/a:size=10m,mode=755,nosuid,nodev,uid=1,gid=2\n",
        ),
        ("data.volume", "[Volume]\nVolumeName=app_data\nCopy=false\n"),
    ]);
    assert!(d.is_empty(), "{d:?}");
    let m = files["c.toml"]["container"]["c"]["mounts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(m[0].as_str(), Some("app-data:/data:ro,nocopy"));
    assert_eq!(m[1].as_str(), Some("/srv/conf:/conf:ro"));
    assert_eq!(m[2].as_str(), Some("../units/rel:/rel"));
    assert_eq!(m[3].as_str(), Some("cache:/cache:rw,nocopy"));
    assert_eq!(m[4]["type"].as_str(), Some("bind"));
    assert_eq!(m[4]["read_only"].as_bool(), Some(true));
    assert_eq!(m[5]["source"].as_str(), Some("app-data"));
    assert_eq!(m[5]["nocopy"].as_bool(), Some(true));
    assert_eq!(m[6].as_str(), Some("tmpfs:/t:size=1GiB,mode=0700"));
    assert_eq!(
        m[7].as_str(),
        Some("tmpfs:/run/a:size=10MiB,mode=0755,uid=1,gid=2")
    );
    // A podman volume without a unit is declared.
    let vols = files["00-volumes.toml"]["volume"].as_table().unwrap();
    assert!(vols.contains_key("cache") && vols.contains_key("app-data"));
    let (_, d) = one(
        "Volume=/x:/x:Z\nVolume=/anon\nVolume=other.volume:/o\nMount=type=image,source=x,destination=/i\nTmpfs=/t:ro\n",
    );
    assert_eq!(keys(&d), ["Volume", "Volume", "Volume", "Mount", "Tmpfs"]);
}

#[test]
fn read_only_brings_podmans_tmpfs_dirs() {
    let (c, _) = one("ReadOnly=true\n");
    assert_eq!(c["read_only"].as_bool(), Some(true));
    assert_eq!(
        strs(&c["mounts"]),
        ["tmpfs:/run", "tmpfs:/tmp", "tmpfs:/var/tmp"]
    );
    let (c, _) = one("ReadOnly=yes\nReadOnlyTmpfs=false\n");
    assert!(c.get("mounts").is_none());
    // A mount of the unit's own at one of those directories wins.
    let (c, _) = one("ReadOnly=true\nTmpfs=/tmp:size=1m\n");
    assert_eq!(
        strs(&c["mounts"]),
        ["tmpfs:/tmp:size=1MiB", "tmpfs:/run", "tmpfs:/var/tmp"]
    );
    let (_, d) = one("ReadOnly=maybe\n");
    assert_eq!(keys(&d), ["ReadOnly"]);
}

#[test]
fn networks_addresses_and_aliases() {
    let (c, d) =
        one("Network=net.network:ip=10.89.5.7,alias=www\nNetworkAlias=api\nContainerName=shop-c\n");
    assert!(d.is_empty(), "{d:?}");
    let n = &c["networks"][0];
    assert_eq!(n["name"].as_str(), Some("net"));
    assert_eq!(n["ip"].as_str(), Some("10.89.5.7"));
    assert_eq!(strs(&n["aliases"]), ["www", "api", "shop-c"]);
    let (c, _) = one("Network=net.network\nIP=10.89.5.9\n");
    assert_eq!(c["networks"][0]["ip"].as_str(), Some("10.89.5.9"));
    assert_eq!(strs(&c["networks"][0]["aliases"]), ["systemd-c"]);
    let (c, d) = one("Network=host\n");
    assert!(d.is_empty());
    assert_eq!(c["network"].as_str(), Some("host"));
    assert!(c.get("networks").is_none());
    let (c, _) = one("Network=none\n");
    assert_eq!(c["network"].as_str(), Some("none"));
    // No Network=: podman's default network.
    let (c, _) = one("PublishPort=80:80\n");
    assert_eq!(strs(&c["networks"]), ["default"]);
    let (_, d) = one("Network=container:other\nNetwork=other.container\nNetwork=elsewhere\n");
    assert_eq!(keys(&d), ["Network", "Network", "Network"]);
    let (_, d) = one("Network=host\nIP=10.0.0.1\n");
    assert_eq!(keys(&d), ["IP"]);
}

#[test]
fn users_capabilities_and_kernel_keys() {
    let (c, d) = one(
        "User=app\nGroup=app\nGroupAdd=wheel\nGroupAdd=27\nWorkingDir=/srv\nHostName=box\nAddCapability=net_admin CAP_SYS_TIME\nDropCapability=ALL\nNoNewPrivileges=true\nSysctl=net.ipv4.ip_forward=1 kernel.msgmax=65536\nUlimit=nofile=1024:4096\nUlimit=nproc=512\nShmSize=256m\nMemory=1g\nPidsLimit=100\nRunInit=true\nSeccompProfile=unconfined\nStopSignal=SIGINT\nStopTimeout=15\nDNS=10.0.0.2\nDNSOption=ndots:2\nAddHost=db.local:10.0.0.5\nAddDevice=/dev/null:/dev/mynull:rw\nAddDevice=-/dev/berth-absent-device\n",
    );
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(c["user"].as_str(), Some("app:app"));
    assert_eq!(strs(&c["groups"]), ["wheel", "27"]);
    assert_eq!(c["workdir"].as_str(), Some("/srv"));
    assert_eq!(c["hostname"].as_str(), Some("box"));
    assert_eq!(strs(&c["cap_add"]), ["CAP_NET_ADMIN", "CAP_SYS_TIME"]);
    assert_eq!(strs(&c["cap_drop"]), ["ALL"]);
    assert_eq!(c["sysctls"]["kernel.msgmax"].as_str(), Some("65536"));
    assert_eq!(c["ulimits"]["nofile"]["hard"].as_integer(), Some(4096));
    assert_eq!(c["ulimits"]["nproc"].as_integer(), Some(512));
    assert_eq!(c["shm_size"].as_str(), Some("256MiB"));
    assert_eq!(c["memory"].as_str(), Some("1GiB"));
    assert_eq!(c["pids"].as_integer(), Some(100));
    assert_eq!(c["init"].as_bool(), Some(true));
    assert_eq!(c["seccomp"].as_str(), Some("unconfined"));
    assert_eq!(c["stop_signal"].as_str(), Some("SIGINT"));
    assert_eq!(c["stop_timeout"].as_str(), Some("15s"));
    assert_eq!(strs(&c["dns"]), ["10.0.0.2"]);
    assert_eq!(strs(&c["dns_options"]), ["ndots:2"]);
    assert_eq!(strs(&c["extra_hosts"]), ["db.local:10.0.0.5"]);
    // The optional absent device is left out, as Quadlet does at generation time.
    assert_eq!(strs(&c["devices"]), ["/dev/null:/dev/mynull:rw"]);
    let (_, d) = one(
        "Group=x\nAddCapability=CAP_BOGUS\nUlimit=host\nShmSize=lots\nPidsLimit=-1\nSeccompProfile=rel.json\nStopSignal=SIGNOPE\nStopTimeout=soon\nAddDevice=/tmp/x\n",
    );
    assert_eq!(
        keys(&d),
        [
            "Group",
            "AddCapability",
            "Ulimit",
            "ShmSize",
            "PidsLimit",
            "SeccompProfile",
            "StopSignal",
            "StopTimeout",
            "AddDevice"
        ]
    );
}

#[test]
fn health_checks_as_podman_reads_them() {
    let sh = |c: &str| vec!["/bin/sh".to_string(), "-c".to_string(), c.to_string()];
    assert_eq!(
        container::health_cmd("curl -f http://localhost/")
            .unwrap()
            .unwrap()
            .0,
        sh("curl -f http://localhost/")
    );
    assert_eq!(
        container::health_cmd("[\"/bin/check\", \"-q\"]")
            .unwrap()
            .unwrap()
            .0,
        ["/bin/check", "-q"]
    );
    assert_eq!(
        container::health_cmd("[\"/bin/check\"]")
            .unwrap()
            .unwrap()
            .0,
        sh("/bin/check")
    );
    assert_eq!(
        container::health_cmd("CMD /bin/check -q")
            .unwrap()
            .unwrap()
            .0,
        ["/bin/check", "-q"]
    );
    assert_eq!(
        container::health_cmd("[\"CMD-SHELL\", \"exit 0\"]")
            .unwrap()
            .unwrap()
            .0,
        sh("exit 0")
    );
    assert_eq!(container::health_cmd("none").unwrap(), None);
    let (c, d) = one(
        "HealthCmd=/bin/check\nHealthInterval=30s\nHealthTimeout=2s\nHealthRetries=3\nHealthStartPeriod=1m\n",
    );
    assert!(d.is_empty(), "{d:?}");
    let h = &c["health"];
    assert_eq!(strs(&h["exec"]), ["/bin/sh", "-c", "/bin/check"]);
    assert_eq!(h["start_period"].as_str(), Some("1m"));
    let (c, d) = one("HealthInterval=30s\n");
    assert!(c.get("health").is_none());
    assert_eq!(keys(&d), ["HealthCmd"]);
    let (c, d) = one("HealthCmd=none\nHealthInterval=30s\n");
    assert!(c.get("health").is_none() && d.is_empty(), "{d:?}");
    let (_, d) = one("HealthCmd=x\nHealthInterval=disable\nHealthOnFailure=kill\n");
    assert_eq!(keys(&d), ["HealthInterval", "HealthOnFailure"]);
}

#[test]
fn restart_stop_and_service_keys() {
    let svc = |s: &str| one(&format!("Exec=x\n[Service]\n{s}"));
    let (c, _) = svc("");
    assert_eq!(c["restart"].as_str(), Some("never"));
    for (systemd, berth) in [
        ("always", "always"),
        ("on-failure", "on-failure"),
        ("no", "never"),
    ] {
        let (c, d) = svc(&format!("Restart={systemd}\n"));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(c["restart"].as_str(), Some(berth));
    }
    let (c, d) = svc(
        "Restart=on-watchdog\nRestartSec=5\nTimeoutStopSec=2min\nTimeoutStartSec=10\nExecStartPost=/bin/true\nKillMode=mixed\nCPUQuota=50%\n",
    );
    assert_eq!(
        keys(&d),
        [
            "Service.Restart",
            "Service.TimeoutStartSec",
            "Service.ExecStartPost",
            "Service.CPUQuota"
        ]
    );
    assert_eq!(c["restart"].as_str(), Some("never"));
    assert_eq!(c["backoff"]["initial"].as_str(), Some("5s"));
    assert_eq!(c["stop_timeout"].as_str(), Some("2m"));
    // StopTimeout is the container's own and wins.
    let (c, _) = one("StopTimeout=7\n[Service]\nTimeoutStopSec=60\n");
    assert_eq!(c["stop_timeout"].as_str(), Some("7s"));
    let (_, d) = one("[Service]\nType=simple\n[Install]\nWantedBy=default.target\n[Frob]\nX=1\n");
    assert_eq!(keys(&d), ["Service.Type", "[Frob]"]);
}

#[test]
fn dependencies_wait_as_systemd_orders() {
    let (files, d, _dir) = run(&[
        (
            "db.container",
            "[Container]\nImage=docker.io/library/postgres:16\nNotify=healthy\nHealthCmd=pg_isready\n",
        ),
        (
            "job.container",
            "[Unit]\nAfter=db.service\n[Container]\nImage=docker.io/library/busybox:1\n[Service]\nType=oneshot\n",
        ),
        (
            "cache.container",
            "[Container]\nImage=docker.io/library/redis:7\nServiceName=redis-cache\n",
        ),
        (
            "web.container",
            "[Unit]\nRequires=job.service redis-cache.service\nAfter=job.service redis-cache.service network-online.target data-volume.service\nWants=db.container\nAfter=remote.service\nBefore=x.service\n[Container]\nImage=docker.io/library/busybox:1\n",
        ),
    ]);
    let web = &files["web.toml"]["container"]["web"];
    assert_eq!(web["depends_on"]["job"].as_str(), Some("completed"));
    assert_eq!(web["depends_on"]["cache"].as_str(), Some("started"));
    assert_eq!(web["depends_on"]["db"].as_str(), Some("healthy"));
    assert_eq!(
        files["job.toml"]["container"]["job"]["depends_on"]["db"].as_str(),
        Some("healthy")
    );
    assert_eq!(keys(&d), ["Unit.After", "Unit.Before"]);
    assert!(d[0].reason.contains("remote.service"));
}

#[test]
fn networks_and_volumes_units() {
    let (files, d, _dir) = run(&[
        (
            "a.network",
            "[Network]\nSubnet=10.89.1.0/24\nGateway=10.89.1.254\nInternal=yes\nLabel=k=v\nDriver=bridge\nIPv6=false\n",
        ),
        ("b.network", "[Network]\nNetworkName=Back_Net\n"),
        (
            "c.network",
            "[Network]\nIPRange=10.0.0.0/28\nDNS=1.1.1.1\nOptions=mtu=1400\n",
        ),
        (
            "v.volume",
            "[Volume]\nVolumeName=v_data\nUser=1000\nGroup=1000\nLabel=a=b\nDriver=local\n",
        ),
        ("w.volume", "[Volume]\nUser=app\nDriver=image\nImage=x\n"),
        ("x.volume", "[Volume]\nVolumeName=v-data\n"),
    ]);
    let nets = files["00-networks.toml"]["network"].as_table().unwrap();
    assert_eq!(nets["a"]["gateway"].as_str(), Some("10.89.1.254"));
    assert_eq!(nets["a"]["internal"].as_bool(), Some(true));
    assert_eq!(nets["a"]["labels"]["k"].as_str(), Some("v"));
    // Chosen subnets skip the pool's first /24 and the ones given.
    assert_eq!(nets["back-net"]["subnet"].as_str(), Some("10.89.2.0/24"));
    assert_eq!(nets["c"]["subnet"].as_str(), Some("10.89.3.0/24"));
    let vols = files["00-volumes.toml"]["volume"].as_table().unwrap();
    assert_eq!(vols["v-data"]["uid"].as_integer(), Some(1000));
    assert_eq!(vols["v-data"]["labels"]["a"].as_str(), Some("b"));
    assert_eq!(
        keys(&d),
        [
            "IPRange",
            "DNS",
            "Options",
            "User",
            "Driver",
            "Image",
            "VolumeName"
        ]
    );
    assert!(
        d[6].reason.contains("already imported as `v-data`"),
        "{}",
        d[6].reason
    );
}

#[test]
fn secrets_are_files_the_user_provides() {
    let unit = "[Container]\nImage=docker.io/library/busybox:1\nSecret=db_pw,target=pw,mode=0440\nSecret=tok,type=env\n";
    let (files, d, dir) = run(&[("c.container", unit)]);
    let s = &files["00-secrets.toml"]["secret"]["db-pw"];
    let path = dir.path().join("secrets/db_pw");
    assert_eq!(s["file"].as_str(), Some(path.to_str().unwrap()));
    let c = &files["c.toml"]["container"]["c"]["secrets"][0];
    assert_eq!(c["target"].as_str(), Some("/run/secrets/pw"));
    assert_eq!(c["mode"].as_str(), Some("0440"));
    // type=env becomes an env-passed secret named after the secret.
    let env = &files["c.toml"]["container"]["c"]["secrets"][1];
    assert_eq!(env["name"].as_str(), Some("tok"));
    assert_eq!(env["env"].as_str(), Some("tok"));
    // Not provided yet: reported, with where they go.
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0].scope, "secret db_pw");
    assert!(d[0].reason.contains(path.to_str().unwrap()));
    assert_eq!(d[1].scope, "secret tok");
    // Once the file is there, nothing is missing.
    let dir2 = tempfile::tempdir().unwrap();
    let units = dir2.path().join("u");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("c.container"),
        "[Container]\nImage=docker.io/library/busybox:1\nSecret=db_pw\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir2.path().join("s")).unwrap();
    std::fs::write(dir2.path().join("s/db_pw"), "x").unwrap();
    let import = quadlet(
        &[units],
        &dir2.path().join("o"),
        &options(&dir2.path().join("s")),
    )
    .unwrap();
    assert!(import.dropped.is_empty(), "{:?}", import.dropped);
}

#[test]
fn specifiers_resolved_or_reported() {
    let (c, d) = one("Environment=UNIT=%n DIR=%S/%N RUN=%t\nWorkingDir=%h\n");
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(c["env"]["UNIT"].as_str(), Some("c.service"));
    assert_eq!(c["env"]["DIR"].as_str(), Some("/var/lib/c"));
    assert_eq!(c["workdir"].as_str(), Some("/root"));
    let (_, d) = one("HostName=%H\nEnvironment=M=%m\n");
    assert_eq!(keys(&d), ["HostName", "Environment"]);
    assert!(d[0].reason.contains("`%H`"));
}

#[test]
fn files_directories_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = options(&dir.path().join("s"));
    let bad = dir.path().join("bad.container");
    std::fs::write(&bad, "[Container]\nImage=x\nnot a line\n").unwrap();
    let err = quadlet(std::slice::from_ref(&bad), &dir.path().join("out"), &o).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3:1: `not a line` is not a `Key=value` line, a [Section] header or a comment",
            bad.display()
        )
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        quadlet(&[empty], &dir.path().join("out"), &o),
        Err(ImportError::NoUnits { .. })
    ));
    // Subdirectories are read; other kinds are reported.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::create_dir_all(tree.join("web.container.d")).unwrap();
    std::fs::write(
        tree.join("sub/web.container"),
        "[Container]\nImage=docker.io/library/nginx:1\n",
    )
    .unwrap();
    std::fs::write(tree.join("app.pod"), "[Pod]\n").unwrap();
    std::fs::write(tree.join("README"), "not a unit").unwrap();
    let import = quadlet(&[tree], &dir.path().join("out"), &o).unwrap();
    assert_eq!(import.services, 1);
    let scopes: Vec<&str> = import.dropped.iter().map(|d| d.scope.as_str()).collect();
    assert_eq!(scopes, ["app.pod"]);
    // A unit named on the command line is read whatever its directory.
    let import = quadlet(
        &[dir.path().join("tree/sub/web.container")],
        &dir.path().join("out"),
        &o,
    )
    .unwrap();
    assert_eq!(import.files.len(), 1);
}

/// Every key the importer translates, together, loads as valid berth (the spec's own loader
/// on the files written).
#[test]
fn everything_translated_loads_as_valid_berth() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    std::fs::create_dir_all(units.join("static")).unwrap();
    std::fs::write(units.join("app.env"), "A=1\n").unwrap();
    std::fs::write(
        units.join("app.container"),
        "[Unit]\nDescription=All keys\nAfter=job.service\n[Container]\nImage=ghcr.io/a/app:1\nPull=always\nContainerName=app-main\nExec=/app --serve\nEntrypoint=[\"/init\", \"--\"]\nEnvironment=A=1 \"B=two words\"\nEnvironmentFile=app.env\nLabel=k=v\nPublishPort=127.0.0.1:8080:80\nNetwork=net.network:ip=10.89.5.7,alias=www\nNetwork=other.network\nNetworkAlias=api\nVolume=data.volume:/data:ro\nVolume=./static:/static:ro\nVolume=scratch:/scratch\nMount=type=tmpfs,destination=/t,tmpfs-size=8m\nTmpfs=/run/app:mode=0700\nReadOnly=true\nUser=1000\nGroup=1000\nGroupAdd=27\nWorkingDir=/app\nHostName=app\nAddCapability=NET_BIND_SERVICE\nDropCapability=ALL\nNoNewPrivileges=true\nAddDevice=/dev/null:/dev/xnull:rw\nSysctl=net.core.somaxconn=512\nUlimit=nofile=1024:2048\nShmSize=64m\nMemory=512m\nPidsLimit=200\nRunInit=true\nSecret=tok,mode=0400\nHealthCmd=[\"/app\", \"--check\"]\nHealthInterval=5s\nHealthTimeout=1s\nHealthRetries=3\nHealthStartPeriod=20s\nStopSignal=SIGINT\nStopTimeout=20\nDNS=10.0.0.2\nDNSSearch=example.internal\nDNSOption=ndots:2\nAddHost=db.local:10.0.0.5\n[Service]\nRestart=on-failure\nRestartSec=2\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    std::fs::write(
        units.join("job.container"),
        "[Container]\nImage=docker.io/library/busybox:1\nExec=true\nNetwork=none\n[Service]\nType=oneshot\n",
    )
    .unwrap();
    std::fs::write(
        units.join("net.network"),
        "[Network]\nSubnet=10.89.5.0/24\nInternal=true\n",
    )
    .unwrap();
    std::fs::write(units.join("other.network"), "[Network]\nLabel=a=b\n").unwrap();
    std::fs::write(
        units.join("data.volume"),
        "[Volume]\nUser=100\nGroup=100\nCopy=false\n",
    )
    .unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let token = secrets.join("tok");
    std::fs::write(&token, "x").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = dir.path().join("out");
    let import = quadlet(&[units], &out, &options(&secrets)).unwrap();
    assert!(import.dropped.is_empty(), "{:?}", import.dropped);
    super::super::write(&import, &out, false).unwrap();
    let loaded = crate::spec::load_dir(&out).unwrap();
    let problems: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| format!("{d:?}"))
        .collect();
    // Secrets are read only from root-owned files: a test run as another user sees that one.
    let as_root = rustix::process::geteuid().is_root();
    assert!(
        problems.is_empty() || (!as_root && problems.iter().all(|p| p.contains("secret"))),
        "{problems:#?}"
    );
    assert_eq!(loaded.desired.containers.len(), 2);
}

#[test]
fn before_orders_the_unit_it_names() {
    let (files, d, _dir) = run(&[
        (
            "init.container",
            "[Unit]\nBefore=app.service other.service basic.target\n[Container]\nImage=docker.io/library/busybox:1\n[Service]\nType=oneshot\n",
        ),
        (
            "app.container",
            "[Container]\nImage=docker.io/library/busybox:1\n",
        ),
    ]);
    assert_eq!(
        files["app.toml"]["container"]["app"]["depends_on"]["init"].as_str(),
        Some("completed")
    );
    assert_eq!(keys(&d), ["Unit.Before"]);
    assert!(d[0].reason.contains("other.service"));
}

#[test]
fn drop_ins_extend_their_unit_in_quadlets_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("units");
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "sub/web-app.container",
        "[Container]\nImage=docker.io/library/nginx:1\nEnvironment=A=1\n",
    );
    // Every container, then by name prefix, then the unit's own directory.
    write(
        "container.d/10-common.conf",
        "[Container]\nLabel=tier=app\n",
    );
    write(
        "web-.container.d/20-x.conf",
        "[Container]\nLabel=from=prefix\n",
    );
    write(
        "sub/web-app.container.d/20-x.conf",
        "[Container]\nLabel=from=own\n",
    );
    write(
        "sub/web-app.container.d/30-env.conf",
        "# reset, then add\n[Container]\nEnvironment=\nEnvironment=B=2\nPodmanArgs=--x\n[Service]\nRestart=always\n",
    );
    write("sub/web-app.container.d/notes.txt", "ignored");
    let import = quadlet(
        std::slice::from_ref(&root),
        &dir.path().join("out"),
        &options(dir.path()),
    )
    .unwrap();
    let text = &import
        .files
        .iter()
        .find(|(f, _)| f == "web-app.toml")
        .unwrap()
        .1;
    let t: toml::Table = text.parse().unwrap();
    let c = &t["container"]["web-app"];
    assert_eq!(c["labels"]["tier"].as_str(), Some("app"));
    assert_eq!(c["labels"]["from"].as_str(), Some("own"));
    assert!(c["env"].get("A").is_none(), "{text}");
    assert_eq!(c["env"]["B"].as_str(), Some("2"));
    assert_eq!(c["restart"].as_str(), Some("always"));
    // What a drop-in says is reported at its own place.
    assert_eq!(import.dropped.len(), 1, "{:?}", import.dropped);
    let d = &import.dropped[0];
    assert_eq!(d.key, "PodmanArgs");
    assert_eq!(
        d.file.as_deref(),
        Some("sub/web-app.container.d/30-env.conf")
    );
    assert_eq!((d.at.line, d.at.column), (5, 1));
    // A malformed drop-in is an error located in it.
    write("container.d/99-bad.conf", "[Container]\nnonsense\n");
    let err = quadlet(
        &[dir.path().join("units")],
        &dir.path().join("out"),
        &options(dir.path()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("99-bad.conf:2:1: `nonsense`"),
        "{err}"
    );
}
