//! The spec generator, rule by rule, without root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccompOperator, PosixRlimitType, Spec};

use super::*;
use crate::spec::loader::InputFile;
use crate::spec::model::Container;

/// The container `c` of a desired-state file holding `body` under `[container.c]`.
fn entry(body: &str) -> Container {
    let text =
        format!("[volume.data]\n[container.c]\nimage = \"docker.io/library/busybox:1\"\n{body}\n");
    let loaded = crate::spec::load_files(&[InputFile {
        path: "c.toml".into(),
        text,
    }]);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    loaded.desired.containers["c"].clone()
}

fn image(config: serde_json::Value) -> ImageConfiguration {
    serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .expect("image config")
}

fn build_with(c: &Container, img: &ImageConfiguration, nofile_hard: u64) -> Spec {
    let volumes: BTreeMap<String, PathBuf> = [(
        "data".to_string(),
        PathBuf::from("/state/volumes/data/_data"),
    )]
    .into();
    build(&SpecInputs {
        id: "c-0123abcd",
        name: "c",
        container: c,
        image: img,
        etc_dir: Path::new("/state/containers/c-0123abcd/etc"),
        volumes: &volumes,
        cgroup_path: "/berth/c-0123abcd",
        nofile_hard,
        arg_max: arg_max(Some(8 << 20)),
    })
    .expect("spec")
}

fn spec_of(body: &str, config: serde_json::Value) -> Spec {
    build_with(&entry(body), &image(config), 20000)
}

fn args(spec: &Spec) -> Vec<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default()
}

fn env(spec: &Spec) -> Vec<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().clone())
        .unwrap_or_default()
}

#[test]
fn arguments_follow_dockers_entrypoint_and_cmd_rules() {
    let img = serde_json::json!({"Entrypoint": ["/ep", "-x"], "Cmd": ["default"]});
    let cases: &[(&str, &[&str])] = &[
        ("", &["/ep", "-x", "default"]),
        (
            r#"command = ["run", "fast"]"#,
            &["/ep", "-x", "run", "fast"],
        ),
        (r#"entrypoint = ["/other"]"#, &["/other"]),
        (
            r#"entrypoint = ["/other"]
command = ["a"]"#,
            &["/other", "a"],
        ),
    ];
    for (body, want) in cases {
        assert_eq!(args(&spec_of(body, img.clone())), *want, "{body}");
    }
    // Without an entrypoint in the image, the command alone runs.
    assert_eq!(
        args(&spec_of(
            r#"command = ["sh"]"#,
            serde_json::json!({"Cmd": ["x"]})
        )),
        ["sh"]
    );
    // Nothing to run at all is an error, not an empty process.
    let c = entry("");
    let err = build(&SpecInputs {
        id: "c-1",
        name: "c",
        container: &c,
        image: &image(serde_json::json!({})),
        etc_dir: Path::new("/e"),
        volumes: &BTreeMap::new(),
        cgroup_path: "/berth/c-1",
        nofile_hard: 1024,
        arg_max: arg_max(Some(8 << 20)),
    })
    .expect_err("no command");
    assert!(
        err.to_string().contains("no entrypoint or command"),
        "{err}"
    );
}

#[test]
fn environment_merges_image_and_entry_and_always_has_path_and_hostname() {
    let spec = spec_of(
        r#"env = { B = "entry", C = "new" }
hostname = "box""#,
        serde_json::json!({"Env": ["A=1", "B=image", "PATH=/opt/bin", "EMPTY"], "Cmd": ["x"]}),
    );
    assert_eq!(
        env(&spec),
        [
            "A=1",
            "B=entry",
            "PATH=/opt/bin",
            "EMPTY=",
            "HOSTNAME=box",
            "C=new"
        ]
    );
    let spec = spec_of("", serde_json::json!({"Cmd": ["x"]}));
    assert_eq!(
        env(&spec),
        [format!("PATH={DEFAULT_PATH}"), "HOSTNAME=c".into()]
    );
}

#[test]
fn working_directory_prefers_entry_then_image_then_root() {
    let cwd = |body: &str, config| {
        spec_of(body, config)
            .process()
            .as_ref()
            .map(|p| p.cwd().clone())
            .expect("process")
    };
    let img = serde_json::json!({"WorkingDir": "/app", "Cmd": ["x"]});
    assert_eq!(cwd(r#"workdir = "/srv""#, img.clone()), Path::new("/srv"));
    assert_eq!(cwd("", img), Path::new("/app"));
    assert_eq!(cwd("", serde_json::json!({"Cmd": ["x"]})), Path::new("/"));
}

#[test]
fn capabilities_are_the_default_set_adjusted_by_the_entry() {
    let set = |add: &[&str], drop: &[&str]| -> Vec<String> {
        let parse = |names: &[&str]| -> BTreeSet<Capability> {
            names.iter().map(|n| n.parse().expect("cap")).collect()
        };
        capabilities(&parse(add), &parse(drop))
            .into_iter()
            .collect()
    };
    assert_eq!(
        set(&[], &[]),
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert!(!set(&[], &[]).contains(&"NET_RAW".to_string()));
    let s = set(&["NET_ADMIN"], &["CHOWN"]);
    assert!(s.contains(&"NET_ADMIN".to_string()) && !s.contains(&"CHOWN".to_string()));
    assert_eq!(set(&["NET_BIND_SERVICE"], &["ALL"]), ["NET_BIND_SERVICE"]);
    assert_eq!(set(&["ALL"], &[]).len(), ALL_CAPABILITIES.len());

    let spec = spec_of(
        r#"cap_drop = ["ALL"]
cap_add = ["KILL"]"#,
        serde_json::json!({"Cmd": ["x"]}),
    );
    let caps = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().clone())
        .expect("capabilities");
    let kill: HashSet<OciCapability> = [OciCapability::Kill].into();
    assert_eq!(caps.bounding().as_ref(), Some(&kill));
    assert_eq!(caps.effective().as_ref(), Some(&kill));
    assert_eq!(caps.permitted().as_ref(), Some(&kill));
    assert_eq!(caps.inheritable().as_ref().map(|s| s.len()), Some(0));
    assert_eq!(caps.ambient().as_ref().map(|s| s.len()), Some(0));
}

#[test]
fn secure_defaults_are_always_there() {
    let spec = spec_of("", serde_json::json!({"Cmd": ["x"]}));
    let process = spec.process().as_ref().expect("process");
    assert_eq!(process.no_new_privileges(), Some(true));
    assert_eq!(process.terminal(), Some(false));
    let linux = spec.linux().as_ref().expect("linux");
    let masked = linux.masked_paths().clone().unwrap_or_default();
    for path in [
        "/proc/kcore",
        "/proc/keys",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ] {
        assert!(masked.iter().any(|m| m == path), "{path} not masked");
    }
    let readonly = linux.readonly_paths().clone().unwrap_or_default();
    assert!(readonly.iter().any(|p| p == "/proc/sys"));
    // The device cgroup starts from "deny everything".
    let devices = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .expect("devices");
    assert!(!devices[0].allow() && devices[0].access().as_deref() == Some("rwm"));
    // The seccomp profile is present, in the OCI operand order: mask in `value`.
    let seccomp = linux.seccomp().as_ref().expect("seccomp");
    let clone_rule = seccomp
        .syscalls()
        .iter()
        .flatten()
        .find(|r| r.names().iter().any(|n| n == "clone") && r.args().is_some())
        .expect("clone rule");
    let arg = &clone_rule.args().as_ref().expect("args")[0];
    assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    assert_eq!(arg.value(), 0x7E02_0000);
    assert_eq!(arg.value_two(), Some(0));
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new("/berth/c-0123abcd"))
    );
}

#[test]
fn namespaces_depend_on_the_network_mode() {
    let kinds = |spec: &Spec| -> Vec<LinuxNamespaceType> {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ())
            .collect()
    };
    let own = kinds(&spec_of("", serde_json::json!({"Cmd": ["x"]})));
    for ns in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Network,
    ] {
        assert!(own.contains(&ns), "{ns:?} missing");
    }
    assert!(!own.contains(&LinuxNamespaceType::User));
    let host = kinds(&spec_of(
        r#"network = "host""#,
        serde_json::json!({"Cmd": ["x"]}),
    ));
    assert!(!host.contains(&LinuxNamespaceType::Network));
    assert!(host.contains(&LinuxNamespaceType::Pid));
}

#[test]
fn resources_map_to_cgroup_limits() {
    let spec = spec_of(
        r#"memory = "256MiB"
cpus = 1.5
pids = 100"#,
        serde_json::json!({"Cmd": ["x"]}),
    );
    let r = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .expect("resources");
    let memory = r.memory().as_ref().expect("memory");
    assert_eq!(memory.limit(), Some(256 << 20));
    assert_eq!(memory.swap(), Some(256 << 20), "no swap beyond the limit");
    let cpu = r.cpu().as_ref().expect("cpu");
    assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
    assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(100));
    let none = spec_of("", serde_json::json!({"Cmd": ["x"]}));
    let r = none
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .expect("resources");
    assert!(r.memory().is_none() && r.cpu().is_none());
    // Never unlimited: one container must not exhaust the host's pids.
    assert_eq!(
        r.pids().as_ref().map(|p| p.limit()),
        Some(i64::from(DEFAULT_PIDS_LIMIT))
    );
}

#[test]
fn what_exec_would_refuse_is_refused_at_creation() {
    let limit = arg_max(Some(8 << 20));
    assert_eq!(limit, 2 << 20, "a quarter of the default 8 MiB stack");
    assert_eq!(
        arg_max(None),
        6 << 20,
        "unlimited stack: fs/exec.c's 6 MiB cap"
    );
    assert_eq!(arg_max(Some(64 << 10)), 128 << 10, "never below 32 pages");
    // The loader refuses this already; the image's environment can still bring the total
    // over, so the spec generator checks the final strings again.
    let mut c = entry("");
    c.env.insert("BIG".into(), "x".repeat(200_000));
    let img = image(serde_json::json!({"Cmd": ["x"]}));
    let err = build(&SpecInputs {
        id: "c-1",
        name: "c",
        container: &c,
        image: &img,
        etc_dir: Path::new("/e"),
        volumes: &BTreeMap::new(),
        cgroup_path: "/berth/c-1",
        nofile_hard: 1024,
        arg_max: limit,
    })
    .expect_err("an 200 KB variable");
    let text = err.to_string();
    assert!(
        text.contains("the environment variable BIG is 200004 bytes"),
        "{text}"
    );
    assert!(!text.contains("xxxx"), "the value is never shown: {text}");
    // Each string fits, all together do not.
    let many: Vec<String> = (0..20)
        .map(|i| format!("V{i}={}", "y".repeat(120_000)))
        .collect();
    match check_exec_size("c", &["x".into()], &many, limit) {
        Err(BundleError::ExecTooLarge { bytes, .. }) => assert!(bytes > 2 << 20),
        other => panic!("{other:?}"),
    }
    check_exec_size("c", &["x".into()], &many[..10], limit).expect("1.2 MB fits");
    match check_exec_size("c", &["a".into(), "z".repeat(131_072)], &[], limit) {
        Err(BundleError::StringTooLong { item, .. }) => assert_eq!(item, "argument 1"),
        other => panic!("{other:?}"),
    }
    check_exec_size("c", &["z".repeat(131_071)], &[], limit).expect("exactly the limit");
}

#[test]
fn rlimit_nofile_never_exceeds_the_hosts_hard_limit() {
    let c = entry("");
    let img = image(serde_json::json!({"Cmd": ["x"]}));
    for (hard, want) in [(20_000, 20_000), (u64::MAX, 1 << 20), (1024, 1024)] {
        let spec = build_with(&c, &img, hard);
        let rlimits = spec
            .process()
            .as_ref()
            .and_then(|p| p.rlimits().clone())
            .expect("rlimits");
        let nofile = rlimits
            .iter()
            .find(|r| r.typ() == PosixRlimitType::RlimitNofile)
            .expect("nofile");
        assert_eq!(
            (nofile.soft(), nofile.hard()),
            (want, want),
            "host hard {hard}"
        );
    }
}

#[test]
fn mounts_cover_etc_files_volumes_binds_and_tmpfs() {
    let spec = spec_of(
        r#"read_only = true
mounts = ["data:/var/lib/data:ro", "/srv/conf:/etc/app", "tmpfs:/tmp:size=64MiB"]"#,
        serde_json::json!({"Cmd": ["x"]}),
    );
    assert_eq!(spec.root().as_ref().map(|r| r.readonly()), Some(Some(true)));
    let mounts = spec.mounts().clone().unwrap_or_default();
    let find = |dest: &str| {
        mounts
            .iter()
            .find(|m| m.destination() == Path::new(dest))
            .unwrap_or_else(|| panic!("no mount at {dest}"))
    };
    let options = |dest: &str| find(dest).options().clone().unwrap_or_default();
    for dest in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ] {
        find(dest);
    }
    assert_eq!(
        find("/etc/resolv.conf").source().as_deref(),
        Some(Path::new("/state/containers/c-0123abcd/etc/resolv.conf"))
    );
    assert_eq!(
        find("/var/lib/data").source().as_deref(),
        Some(Path::new("/state/volumes/data/_data"))
    );
    assert!(options("/var/lib/data").contains(&"ro".to_string()));
    assert_eq!(
        find("/etc/app").source().as_deref(),
        Some(Path::new("/srv/conf"))
    );
    assert!(!options("/etc/app").contains(&"ro".to_string()));
    // A read-only container's generated files are read-only too, as Docker mounts them.
    for file in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
        assert!(options(file).contains(&"ro".to_string()), "{file}");
    }
    let writable = spec_of("", serde_json::json!({"Cmd": ["x"]}));
    let hosts = writable
        .mounts()
        .iter()
        .flatten()
        .find(|m| m.destination() == Path::new("/etc/hosts"))
        .expect("hosts");
    assert!(!hosts.options().iter().flatten().any(|o| o == "ro"));
    assert_eq!(find("/tmp").typ().as_deref(), Some("tmpfs"));
    let tmp = options("/tmp");
    assert!(tmp.contains(&format!("size={}", 64 << 20)) && tmp.contains(&"mode=1777".to_string()));
    assert!(tmp.contains(&"nosuid".to_string()) && tmp.contains(&"nodev".to_string()));
}

#[test]
fn the_resolved_user_gets_its_primary_group_and_home() {
    let mut spec = spec_of("", serde_json::json!({"Cmd": ["x"]}));
    let user = Resolved {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![27, 1000, 4],
        home: "/home/app".into(),
    };
    apply_user(&mut spec, &user).expect("apply");
    let process = spec.process().as_ref().expect("process");
    assert_eq!((process.user().uid(), process.user().gid()), (1000, 1000));
    assert_eq!(
        process.user().additional_gids().as_deref(),
        Some(&[4, 27, 1000][..])
    );
    assert!(env(&spec).contains(&"HOME=/home/app".to_string()));

    // HOME from the image or the entry wins.
    let mut spec = spec_of(
        r#"env = { HOME = "/data" }"#,
        serde_json::json!({"Cmd": ["x"]}),
    );
    apply_user(&mut spec, &user).expect("apply");
    let homes: Vec<_> = env(&spec)
        .into_iter()
        .filter(|e| e.starts_with("HOME="))
        .collect();
    assert_eq!(homes, ["HOME=/data"]);
}

#[test]
fn a_label_never_spells_berths_own_annotations() {
    // A record written before the loader refused the prefix still cannot forge the mark the
    // runtime trusts (the privileged one skips the cgroupfs seal).
    let mut c = entry("labels = { team = \"web\" }");
    c.labels.insert("io.berth.privileged".into(), "true".into());
    c.labels.insert("io.berth.id".into(), "forged".into());
    let spec = build_with(&c, &image(serde_json::json!({"Cmd": ["true"]})), 20000);
    let annotations = spec.annotations().clone().unwrap_or_default();
    assert_eq!(annotations.get("team").map(String::as_str), Some("web"));
    assert_eq!(
        annotations.get("io.berth.id").map(String::as_str),
        Some("c-0123abcd")
    );
    assert!(!annotations.contains_key("io.berth.privileged"));
    assert!(!super::super::kernel_keys::is_privileged(&spec));
}
