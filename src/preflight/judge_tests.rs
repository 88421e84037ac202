use std::path::PathBuf;

use super::*;

fn v1(controllers: &[&str]) -> Hierarchy {
    Hierarchy {
        mount_point: PathBuf::from(format!("/sys/fs/cgroup/{}", controllers.join(","))),
        unified: false,
        controllers: controllers.iter().map(|c| c.to_string()).collect(),
    }
}

fn unified() -> Hierarchy {
    Hierarchy {
        mount_point: PathBuf::from("/sys/fs/cgroup"),
        unified: true,
        controllers: Vec::new(),
    }
}

#[test]
fn proc_filesystems_lines_are_matched_by_name() {
    let text = "nodev\tsysfs\nnodev\ttmpfs\n\text3\n\text4\nnodev\toverlay\n";
    assert!(lists_filesystem(text, "overlay"));
    assert!(lists_filesystem(text, "ext4"));
    assert!(!lists_filesystem(text, "over"));
    assert!(!lists_filesystem(text, "nodev"));
    assert!(!lists_filesystem("nodev\tsysfs\n", "overlay"));
    assert!(!lists_filesystem("", "overlay"));
}

#[test]
fn cgroup_v1_hybrid_needs_cpu_devices_memory_and_pids() {
    let all = [
        v1(&["cpu", "cpuacct"]),
        v1(&["devices"]),
        v1(&["memory"]),
        v1(&["pids"]),
        v1(&[]),
        unified(),
    ];
    let check = cgroups(&all, None, None);
    assert_eq!(check.verdict, Verdict::Ok, "{check:?}");
    assert_eq!(
        check.found,
        "v1 (hybrid); controllers cpu, devices, memory, pids"
    );
    assert_eq!(
        cgroups(&all[..4], None, None).found,
        "v1; controllers cpu, devices, memory, pids"
    );

    let no_memory = [v1(&["cpu"]), v1(&["devices"]), v1(&["pids"]), unified()];
    let check = cgroups(&no_memory, None, None);
    assert_eq!(check.verdict, Verdict::Fail);
    assert_eq!(
        check.found,
        "v1 (hybrid); no hierarchy has the memory controller"
    );
    assert!(
        check
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("-o memory")),
        "{check:?}"
    );

    let check = cgroups(&[v1(&["cpu"])], None, None);
    assert_eq!(
        check.found,
        "v1; no hierarchy has the devices, memory, pids controllers"
    );
}

#[test]
fn cgroup_v2_needs_the_controllers_available_and_delegated() {
    let h = [unified()];
    let check = cgroups(
        &h,
        Some("cpuset cpu io memory hugetlb pids rdma\n"),
        Some("cpu io memory pids\n"),
    );
    assert_eq!(check.verdict, Verdict::Ok);
    assert_eq!(check.found, "v2 (unified); cpu, memory, pids delegated");

    let check = cgroups(&h, Some("cpu io memory pids"), Some("memory\n"));
    assert_eq!(check.verdict, Verdict::Warn);
    assert_eq!(
        check.found,
        "v2 (unified); cpu, pids not in the root's cgroup.subtree_control"
    );
    assert!(check.fix.as_deref().is_some_and(|f| {
        f.starts_with("echo '+cpu +pids' > /sys/fs/cgroup/cgroup.subtree_control")
    }));

    let check = cgroups(&h, Some("cpu io pids"), Some("cpu io pids"));
    assert_eq!(check.verdict, Verdict::Fail);
    assert_eq!(
        check.found,
        "v2 (unified); the memory controller is not available"
    );
    let check = cgroups(&h, None, None);
    assert_eq!(
        check.found,
        "v2 (unified); the cpu, memory, pids controllers are not available"
    );
}

#[test]
fn no_cgroup_filesystem_fails() {
    let check = cgroups(&[], None, None);
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(
        check
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("mount -t cgroup2"))
    );
}

#[test]
fn sysctl_flags_are_zero_or_one() {
    assert!(!sysctl_flag("x", "0\n").expect("0"));
    assert!(sysctl_flag("x", "1\n").expect("1"));
    assert!(sysctl_flag("x", " 1 ").expect("1"));
    for bad in ["", "2", "yes", "0 1", "-1"] {
        assert!(sysctl_flag("x", bad).is_err(), "{bad:?}");
    }
    let err = sysctl_flag("net.ipv4.ip_forward", "2\n").expect_err("2");
    assert_eq!(err.to_string(), "net.ipv4.ip_forward: unexpected \"2\"");
}

#[test]
fn ip_forward_off_is_a_warning_unless_berth_cannot_turn_it_on() {
    assert_eq!(ip_forward(true, true).verdict, Verdict::Ok);
    assert_eq!(ip_forward(true, false).verdict, Verdict::Ok);
    assert_eq!(ip_forward(true, false).fix, None);
    let warn = ip_forward(false, true);
    assert_eq!(warn.verdict, Verdict::Warn);
    assert!(
        warn.fix
            .as_deref()
            .is_some_and(|f| f.contains("net.ipv4.ip_forward=1"))
    );
    let fail = ip_forward(false, false);
    assert_eq!(fail.verdict, Verdict::Fail);
    assert!(fail.found.contains("read-only"));
}

#[test]
fn statfs_magic_names_and_verdicts() {
    let table: &[(u64, Option<&str>, Option<Verdict>)] = &[
        (0xEF53, Some("ext2/3/4"), None),
        (0x5846_5342, Some("xfs"), None),
        (0x9123_683E, Some("btrfs"), None),
        (0x2FC1_2FC1, Some("zfs"), None),
        (0x0102_1994, Some("tmpfs"), Some(Verdict::Warn)),
        (0x8584_58F6, Some("ramfs"), Some(Verdict::Warn)),
        (0x794C_7630, Some("overlayfs"), Some(Verdict::Fail)),
        (0x6969, Some("nfs"), Some(Verdict::Fail)),
        (0xFF53_4D42, Some("cifs"), Some(Verdict::Fail)),
        (0xFE53_4D42, Some("smb2"), Some(Verdict::Fail)),
        (0x6573_5546, Some("fuse"), Some(Verdict::Fail)),
        (0xF15F, Some("ecryptfs"), Some(Verdict::Fail)),
        (0x7371_7368, Some("squashfs"), Some(Verdict::Fail)),
        (0x1234, None, None),
    ];
    for (magic, name, verdict) in table {
        assert_eq!(filesystem_name(*magic), *name, "{magic:#x}");
        assert_eq!(
            filesystem_problem(*magic).map(|(v, _)| v),
            *verdict,
            "{magic:#x}"
        );
    }
}

#[test]
fn trial_answers_are_parsed_strictly() {
    assert_eq!(
        parse_trial("kernel=ok root=ok").expect("ok"),
        (Attempt::Mounted, Attempt::Mounted)
    );
    assert_eq!(
        parse_trial("kernel=tmpfs:1 root=mount:22\n").expect("failed"),
        (
            Attempt::Failed {
                step: "tmpfs".into(),
                errno: 1
            },
            Attempt::Failed {
                step: "mount".into(),
                errno: 22
            }
        )
    );
    assert_eq!(
        parse_trial("kernel=namespace:1 root=mkdir:30")
            .expect("failed")
            .1,
        Attempt::Failed {
            step: "mkdir".into(),
            errno: 30
        }
    );
    for bad in [
        "",
        "panic",
        "kernel=ok",
        "root=ok kernel=ok",
        "kernel=ok root=ok extra",
        "kernel=mount root=ok",
        "kernel=mount:x root=ok",
        "kernel=umount:1 root=ok",
        "kernel:ok root=ok",
        "kernelx=ok root=ok",
    ] {
        assert!(parse_trial(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn overlayfs_verdicts() {
    let failed = Attempt::Failed {
        step: "mount".into(),
        errno: 19,
    };
    let not_tried = Attempt::NotTried("not root".into());
    // Mounted: the module loads on demand even when not listed yet.
    assert_eq!(overlayfs(true, &Attempt::Mounted).verdict, Verdict::Ok);
    assert_eq!(overlayfs(false, &Attempt::Mounted).verdict, Verdict::Ok);
    let check = overlayfs(true, &failed);
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(
        check.found.contains("failed at mount: No such device"),
        "{check:?}"
    );
    assert!(check.fix.as_deref().is_some_and(|f| f.contains("dmesg")));
    let check = overlayfs(false, &failed);
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(
        check
            .fix
            .as_deref()
            .is_some_and(|f| f.starts_with("modprobe overlay"))
    );
    assert_eq!(overlayfs(true, &not_tried).verdict, Verdict::Warn);
    assert_eq!(overlayfs(false, &not_tried).verdict, Verdict::Fail);
}

fn facts(magic: u64) -> RootFacts {
    RootFacts {
        examined: PathBuf::from("/var/lib/berth"),
        exists: true,
        magic,
        free_bytes: 20 << 30,
        d_type: Some(true),
        trial: Attempt::Mounted,
    }
}

#[test]
fn a_good_state_root_is_ok() {
    let check = state_root(&facts(0xEF53));
    assert_eq!(check.verdict, Verdict::Ok);
    assert_eq!(
        check.found,
        "/var/lib/berth: ext2/3/4, 20GiB free; entries carry d_type; an overlay with its \
         upper dir here mounted"
    );
    assert_eq!(check.fix, None);
    let absent = RootFacts {
        exists: false,
        magic: 0x4242,
        ..facts(0)
    };
    let check = state_root(&absent);
    assert_eq!(check.verdict, Verdict::Ok);
    assert!(check.found.starts_with(
        "/var/lib/berth (the state root does not exist yet): filesystem magic 0x4242"
    ));
}

#[test]
fn an_overlayfs_state_root_fails_with_one_fix() {
    let check = state_root(&RootFacts {
        trial: Attempt::Failed {
            step: "mount".into(),
            errno: 22,
        },
        ..facts(0x794C_7630)
    });
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(check.found.contains("overlayfs"));
    assert!(
        check
            .found
            .contains("an overlay with its upper dir here failed at mount")
    );
    let fix = check.fix.expect("fix");
    assert!(
        fix.starts_with("an overlayfs cannot hold an overlay upper dir"),
        "{fix}"
    );
    assert!(!fix.contains("; "), "one fix: {fix}");
}

#[test]
fn state_root_problems_combine_into_the_worst_verdict() {
    let unknown_fs_refusing = RootFacts {
        trial: Attempt::Failed {
            step: "mount".into(),
            errno: 22,
        },
        ..facts(0x4242)
    };
    let check = state_root(&unknown_fs_refusing);
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(check.fix.is_some_and(|f| f.contains("--root DIR")));

    let read_only = RootFacts {
        trial: Attempt::Failed {
            step: "mkdir".into(),
            errno: 30,
        },
        d_type: None,
        ..facts(0xEF53)
    };
    let check = state_root(&read_only);
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(check.found.contains("Read-only file system"), "{check:?}");
    assert!(check.found.contains("d_type not checked"));
    assert!(check.fix.is_some_and(|f| f.contains("writable")));

    let no_d_type = RootFacts {
        d_type: Some(false),
        ..facts(0x5846_5342)
    };
    let check = state_root(&no_d_type);
    assert_eq!(check.verdict, Verdict::Fail);
    assert!(check.fix.is_some_and(|f| f.contains("ftype=1")));

    let tmpfs_low = RootFacts {
        free_bytes: FREE_WARN - 1,
        ..facts(0x0102_1994)
    };
    let check = state_root(&tmpfs_low);
    assert_eq!(check.verdict, Verdict::Warn);
    let fix = check.fix.expect("fix");
    assert!(
        fix.contains("lost at reboot") && fix.contains("free space"),
        "{fix}"
    );

    let full = RootFacts {
        free_bytes: FREE_FAIL - 1,
        ..facts(0xEF53)
    };
    assert_eq!(state_root(&full).verdict, Verdict::Fail);
    let enough = RootFacts {
        free_bytes: FREE_WARN,
        ..facts(0xEF53)
    };
    assert_eq!(state_root(&enough).verdict, Verdict::Ok);

    let not_tried = RootFacts {
        trial: Attempt::NotTried("not root".into()),
        ..facts(0xEF53)
    };
    let check = state_root(&not_tried);
    assert_eq!(check.verdict, Verdict::Warn);
    assert!(
        check.found.contains("no trial overlay (not root)"),
        "{check:?}"
    );
}

#[test]
fn libseccomp_versions() {
    assert_eq!(libseccomp(Some((2, 5, 4))).verdict, Verdict::Ok);
    assert_eq!(libseccomp(Some((2, 5, 4))).found, "2.5.4");
    assert_eq!(libseccomp(Some((3, 0, 0))).verdict, Verdict::Ok);
    assert_eq!(libseccomp(Some((2, 4, 9))).verdict, Verdict::Warn);
    assert_eq!(libseccomp(Some((1, 9, 0))).verdict, Verdict::Warn);
    assert_eq!(libseccomp(None).verdict, Verdict::Fail);
}

#[test]
fn forward_drops_are_other_tables_base_chains_with_policy_drop() {
    let json = r#"{"nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 1,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD",
                   "handle": 2, "type": "filter", "hook": "forward", "prio": 10,
                   "policy": "accept"}},
        {"chain": {"family": "inet", "table": "fw", "name": "in", "handle": 3,
                   "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "ip", "table": "berth", "name": "forward", "handle": 4,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "ip", "table": "filter", "name": "DOCKER", "handle": 5}}
    ]}"#;
    assert_eq!(forward_drops(json).expect("parse"), ["ip filter FORWARD"]);
    assert_eq!(
        forward_drops(r#"{"nftables": [{"metainfo": {}}]}"#).expect("empty"),
        Vec::<String>::new()
    );
    assert!(forward_drops("").is_err());
    assert!(forward_drops("{}").is_err());
    assert!(forward_drops(r#"{"nftables": 1}"#).is_err());
}

#[test]
fn forward_policy_names_the_chains_and_how_to_let_bridges_through() {
    assert_eq!(forward_policy(&[]).verdict, Verdict::Ok);
    let check = forward_policy(&["ip filter FORWARD".into()]);
    assert_eq!(check.verdict, Verdict::Warn);
    assert!(
        check
            .found
            .contains("forward chain with policy drop: ip filter FORWARD")
    );
    assert!(check.fix.is_some_and(|f| {
        f.starts_with("nft insert rule ip filter FORWARD iifname \"berth*\" accept")
    }));
    let two = forward_policy(&["ip filter FORWARD".into(), "inet fw fwd".into()]);
    assert!(
        two.found
            .contains("forward chains with policy drop: ip filter FORWARD, inet fw fwd")
    );
}
