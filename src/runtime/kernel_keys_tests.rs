use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxDeviceType, PosixRlimitType, Spec};

use super::*;
use crate::spec::runtime_keys::{UNLIMITED, Ulimit};
use crate::spec::size::ByteSize;

fn fuse() -> HostDevice {
    HostDevice {
        container: "/dev/fuse".into(),
        block: false,
        major: 10,
        minor: 229,
        mode: 0o666,
        uid: 0,
        gid: 0,
        access: "rw".into(),
    }
}

#[test]
fn nothing_set_changes_nothing() {
    let mut spec = Spec::default();
    let before = serde_json::to_string(&spec).unwrap();
    apply(&mut spec, &RuntimeKeys::default(), &HostFacts::default()).unwrap();
    assert_eq!(serde_json::to_string(&spec).unwrap(), before);
}

#[test]
fn devices_get_a_node_and_an_allow_rule_after_the_deny_all() {
    let mut spec = Spec::default();
    // bundle::build's device rules: deny everything.
    let deny_all = oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    spec.linux_mut()
        .as_mut()
        .unwrap()
        .resources_mut()
        .get_or_insert_with(Default::default)
        .set_devices(Some(vec![deny_all]));
    let keys = RuntimeKeys {
        devices: vec!["/dev/fuse:rw".parse().unwrap()],
        device_cgroup_rules: vec!["b 8:* r".parse().unwrap()],
        ..RuntimeKeys::default()
    };
    let host = HostFacts {
        devices: vec![fuse()],
        ..HostFacts::default()
    };
    apply(&mut spec, &keys, &host).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    let node = linux
        .devices()
        .iter()
        .flatten()
        .find(|d| d.path() == Path::new("/dev/fuse"))
        .expect("node");
    assert_eq!(
        (node.typ(), node.major(), node.minor(), node.file_mode()),
        (LinuxDeviceType::C, 10, 229, Some(0o666))
    );
    let rules = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .unwrap();
    // The deny-all stays first; the allow rules come after it.
    assert!(!rules[0].allow());
    let n = rules.len();
    assert_eq!(n, 3);
    let fuse_rule = &rules[n - 2];
    assert!(fuse_rule.allow());
    assert_eq!(
        (fuse_rule.typ(), fuse_rule.major(), fuse_rule.minor()),
        (Some(LinuxDeviceType::C), Some(10), Some(229))
    );
    assert_eq!(fuse_rule.access().as_deref(), Some("rw"));
    let block = &rules[n - 1];
    assert_eq!(
        (block.typ(), block.major(), block.minor()),
        (Some(LinuxDeviceType::B), Some(8), None)
    );
    assert_eq!(block.access().as_deref(), Some("r"));
}

#[test]
fn sysctls_ulimits_and_shm() {
    let mut spec = Spec::default();
    let keys = RuntimeKeys {
        sysctls: BTreeMap::from([("net.core.somaxconn".into(), "1024".into())]),
        ulimits: BTreeMap::from([
            (
                "nofile".into(),
                Ulimit {
                    soft: 100,
                    hard: 200,
                },
            ),
            (
                "core".into(),
                Ulimit {
                    soft: UNLIMITED,
                    hard: UNLIMITED,
                },
            ),
        ]),
        shm_size: Some(ByteSize(128 << 20)),
        ..RuntimeKeys::default()
    };
    apply(&mut spec, &keys, &HostFacts::default()).unwrap();
    let sysctl = spec.linux().as_ref().unwrap().sysctl().clone().unwrap();
    assert_eq!(sysctl["net.core.somaxconn"], "1024");
    let rlimits = spec.process().as_ref().unwrap().rlimits().clone().unwrap();
    let nofile: Vec<_> = rlimits
        .iter()
        .filter(|r| r.typ() == PosixRlimitType::RlimitNofile)
        .collect();
    assert_eq!(nofile.len(), 1, "the default is replaced, not doubled");
    assert_eq!((nofile[0].soft(), nofile[0].hard()), (100, 200));
    assert!(
        rlimits
            .iter()
            .any(|r| r.typ() == PosixRlimitType::RlimitCore && r.hard() == u64::MAX)
    );
    let shm = spec
        .mounts()
        .iter()
        .flatten()
        .find(|m| m.destination() == Path::new("/dev/shm"))
        .unwrap();
    let sizes: Vec<_> = shm
        .options()
        .iter()
        .flatten()
        .filter(|o| o.starts_with("size="))
        .collect();
    assert_eq!(sizes, [&format!("size={}", 128u64 << 20)]);
}

#[test]
fn a_ulimit_above_the_hosts_hard_limit_is_refused() {
    let mut spec = Spec::default();
    let keys = RuntimeKeys {
        ulimits: BTreeMap::from([(
            "nofile".into(),
            Ulimit {
                soft: 10,
                hard: 5000,
            },
        )]),
        ..RuntimeKeys::default()
    };
    let host = HostFacts {
        hard_limits: std::collections::HashMap::from([("nofile".into(), Some(4096))]),
        ..HostFacts::default()
    };
    let err = apply(&mut spec, &keys, &host).unwrap_err();
    assert!(
        matches!(
            err,
            KernelKeysError::AboveHostLimit {
                wanted: 5000,
                host: 4096,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn init_is_mounted_read_only_and_runs_the_command() {
    let mut spec = Spec::default();
    let original = spec.process().as_ref().unwrap().args().clone().unwrap();
    let keys = RuntimeKeys {
        init: true,
        ..RuntimeKeys::default()
    };
    let host = HostFacts {
        init: Some(PathBuf::from(TINI)),
        ..HostFacts::default()
    };
    apply(&mut spec, &keys, &host).unwrap();
    let args = spec.process().as_ref().unwrap().args().clone().unwrap();
    assert_eq!(&args[..2], [INIT_TARGET, "--"]);
    assert_eq!(&args[2..], &original[..]);
    let m = spec
        .mounts()
        .iter()
        .flatten()
        .find(|m| m.destination() == Path::new(INIT_TARGET))
        .expect("init mount");
    assert_eq!(m.source().as_deref(), Some(Path::new(TINI)));
    assert!(super::super::bundle::has_option(m, "ro"));
    // The seal makes it read-only all the way down, like every read-only bind.
    assert!(
        super::super::confine::targets(&spec)
            .read_only
            .contains(&INIT_TARGET.to_string())
    );
}

#[test]
fn host_facts_refuse_what_is_not_a_device() {
    let keys = RuntimeKeys {
        devices: vec!["/dev/null".parse().unwrap()],
        ..RuntimeKeys::default()
    };
    let facts = host_facts(&keys).unwrap();
    assert_eq!((facts.devices[0].major, facts.devices[0].minor), (1, 3));
    assert!(!facts.devices[0].block);
    let keys = RuntimeKeys {
        devices: vec!["/dev/shm".parse().unwrap()],
        ..RuntimeKeys::default()
    };
    assert!(matches!(
        host_facts(&keys),
        Err(KernelKeysError::NotADevice { .. })
    ));
    let keys = RuntimeKeys {
        devices: vec!["/dev/berth-no-such-device".parse().unwrap()],
        ..RuntimeKeys::default()
    };
    assert!(matches!(
        host_facts(&keys),
        Err(KernelKeysError::Device { .. })
    ));
}

#[test]
fn privileged_opens_everything_the_creator_holds() {
    let mut spec = Spec::default();
    assert!(
        super::super::confine::targets(&spec)
            .read_only
            .contains(&"/sys/fs/cgroup".to_string()),
        "sealed by default"
    );
    let keys = RuntimeKeys {
        privileged: true,
        ..RuntimeKeys::default()
    };
    // The creator lacks capability 24 (SYS_RESOURCE).
    let host = HostFacts {
        devices: vec![fuse()],
        bounding: ((1u64 << 41) - 1) & !(1 << 24),
        ..HostFacts::default()
    };
    apply(&mut spec, &keys, &host).unwrap();
    let process = spec.process().as_ref().unwrap();
    let caps = process.capabilities().as_ref().unwrap();
    let effective = caps.effective().as_ref().unwrap();
    assert_eq!(effective.len(), 40);
    assert!(!effective.contains(&oci_spec::runtime::Capability::SysResource));
    assert!(effective.contains(&oci_spec::runtime::Capability::SysAdmin));
    assert_eq!(caps.bounding(), caps.effective());
    assert_eq!(process.no_new_privileges(), Some(false));
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
    assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
    let rules = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().clone())
        .unwrap();
    let last = rules.last().unwrap();
    assert!(last.allow() && last.typ() == Some(LinuxDeviceType::A) && last.major().is_none());
    for target in ["/sys", "/sys/fs/cgroup"] {
        let m = spec
            .mounts()
            .iter()
            .flatten()
            .find(|m| m.destination() == Path::new(target))
            .unwrap();
        assert!(!super::super::bundle::has_option(m, "ro"), "{target}");
    }
    assert!(is_privileged(&spec));
    assert!(
        !super::super::confine::targets(&spec)
            .read_only
            .contains(&"/sys/fs/cgroup".to_string()),
        "cgroupfs left writable"
    );
}

#[test]
fn host_devices_are_listed_without_the_engines_own() {
    let devices = all_host_devices(Path::new("/dev")).unwrap();
    assert!(devices.iter().any(|d| d.container == "/dev/null"));
    assert!(
        devices
            .iter()
            .all(|d| !d.container.starts_with("/dev/pts/") && d.container != "/dev/ptmx")
    );
}
