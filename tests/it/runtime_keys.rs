//! The container keys that reach into the kernel — `devices`, `device_cgroup_rules`,
//! `sysctls`, `ulimits`, `init`, `shm_size`, numeric `stop_signal` — on real containers,
//! and attacks from inside showing that what they open stays exactly that wide. Every
//! write attempted is harmless even if it succeeded (a value written back unchanged, a node
//! in the container's /tmp).

use std::time::Duration;

use berth::runtime::State;

use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::Sandbox;

const ENGINES: [&str; 2] = ["embedded", "runc"];

fn engine_line(engine: &str) -> &'static str {
    match engine {
        "runc" => "runtime = \"runc\"\n",
        _ => "",
    }
}

/// A shell function `try NAME CMD…`: prints "NAME: allowed" or "NAME: <error>".
const TRY: &str = r#"try() { n=$1; shift; if err=$("$@" 2>&1); then echo "$n: allowed"; else echo "$n: ${err##*: }"; fi; }"#;

/// Run `script` in a new container with the extra keys `extra`; (sandbox, output, exit code).
fn run(engine: &str, extra: &str, script: &str) -> (Sandbox, String, i32) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write(
        "keys.toml",
        &format!(
            "[container.keys]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", {script:?}]\n{}{extra}\n",
            engine_line(engine)
        ),
    );
    let (code, out, err) = sb.run_keep("keys");
    (sb, format!("{out}{err}"), code)
}

fn outcome<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{what}: ")))
        .unwrap_or_else(|| panic!("no outcome for {what} in:\n{out}"))
}

#[test]
fn a_listed_device_is_usable_and_nothing_else_is() {
    for engine in ENGINES {
        // /dev/fuse (10:229) is listed; /dev/loop-control (10:237) and the disk 8:0 are not.
        // MKNOD is added, and making nodes is allowed (as in Docker): what the device cgroup
        // must refuse is opening them.
        let script = format!(
            r#"{TRY}
try open-listed sh -c ': < /dev/fuse'
try unlisted-in-dev ls /dev/loop-control
try open-unlisted sh -c 'mknod /tmp/lc c 10 237 && : < /tmp/lc'
try open-disk sh -c 'mknod /tmp/sda b 8 0 && : < /tmp/sda'
try rule-write sh -c 'echo "a *:* rwm" > /sys/fs/cgroup/devices/devices.allow'
echo done"#
        );
        let (_sb, out, code) = run(
            engine,
            "devices = [\"/dev/fuse:/dev/fuse:rw\"]\ncap_add = [\"MKNOD\"]\n",
            &script,
        );
        assert_eq!(code, 0, "{engine}: {out}");
        assert_eq!(outcome(&out, "open-listed"), "allowed", "{engine}: {out}");
        assert_eq!(
            outcome(&out, "unlisted-in-dev"),
            "No such file or directory",
            "{engine}: {out}"
        );
        for what in ["open-unlisted", "open-disk"] {
            assert_eq!(
                outcome(&out, what),
                "Operation not permitted",
                "{engine}: {what}\n{out}"
            );
        }
        assert_eq!(
            outcome(&out, "rule-write"),
            "Read-only file system",
            "{engine}: {out}"
        );
    }
}

#[test]
fn a_device_cgroup_rule_opens_only_what_it_names() {
    // The rule allows 10:237 (loop-control): a node made for it opens; 10:229 (fuse) does not.
    let script = format!(
        r#"{TRY}
try open-ruled sh -c 'mknod /tmp/lc c 10 237 && : < /tmp/lc'
try open-other sh -c 'mknod /tmp/fuse c 10 229 && : < /tmp/fuse'
echo done"#
    );
    let (_sb, out, code) = run(
        "embedded",
        "device_cgroup_rules = [\"c 10:237 rwm\"]\ncap_add = [\"MKNOD\"]\n",
        &script,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(outcome(&out, "open-ruled"), "allowed", "{out}");
    assert_eq!(
        outcome(&out, "open-other"),
        "Operation not permitted",
        "{out}"
    );
}

#[test]
fn sysctls_are_applied_and_the_rest_stays_read_only() {
    for engine in ENGINES {
        let host_somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .expect("host somaxconn")
            .trim()
            .to_string();
        let script = format!(
            r#"{TRY}
echo "somaxconn: $(cat /proc/sys/net/core/somaxconn)"
echo "shmmni: $(cat /proc/sys/kernel/shmmni)"
try write-listed sh -c 'cat /proc/sys/net/core/somaxconn > /proc/sys/net/core/somaxconn'
try write-other sh -c 'cat /proc/sys/kernel/pid_max > /proc/sys/kernel/pid_max'
try write-vm sh -c 'cat /proc/sys/vm/swappiness > /proc/sys/vm/swappiness'
echo done"#
        );
        let (_sb, out, code) = run(
            engine,
            "sysctls = { \"net.core.somaxconn\" = \"1234\", \"kernel.shmmni\" = 2048 }\n",
            &script,
        );
        assert_eq!(code, 0, "{engine}: {out}");
        assert_eq!(outcome(&out, "somaxconn"), "1234", "{engine}: {out}");
        assert_eq!(outcome(&out, "shmmni"), "2048", "{engine}: {out}");
        for what in ["write-listed", "write-other", "write-vm"] {
            assert_eq!(
                outcome(&out, what),
                "Read-only file system",
                "{engine}: {what}\n{out}"
            );
        }
        // The host's own value is untouched: the container's is its namespace's.
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/core/somaxconn")
                .expect("host somaxconn")
                .trim(),
            host_somaxconn
        );
    }
}

#[test]
fn a_host_wide_sysctl_is_refused_at_validate() {
    let sb = Sandbox::new();
    sb.write(
        "keys.toml",
        "[container.keys]\nimage = \"docker.io/library/busybox:1\"\nsysctls = { \"vm.swappiness\" = \"10\" }\n",
    );
    let desired = sb.desired();
    let out = sb.berth(&["validate", desired.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("keys.toml:3:13") && err.contains("sysctl `vm.swappiness` cannot be set"),
        "{err}"
    );
}

#[test]
fn ulimits_are_set_and_cannot_be_raised_from_inside() {
    let script = format!(
        r#"{TRY}
echo "nofile-soft: $(ulimit -n)"
echo "nofile-hard: $(ulimit -Hn)"
echo "nproc: $(ulimit -u)"
try raise-hard sh -c 'ulimit -Hn 4096'
echo done"#
    );
    let (_sb, out, code) = run(
        "embedded",
        "ulimits = { nofile = { soft = 1024, hard = 2048 }, nproc = 512 }\n",
        &script,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(outcome(&out, "nofile-soft"), "1024", "{out}");
    assert_eq!(outcome(&out, "nofile-hard"), "2048", "{out}");
    assert_eq!(outcome(&out, "nproc"), "512", "{out}");
    assert_ne!(outcome(&out, "raise-hard"), "allowed", "{out}");
}

#[test]
fn shm_size_sets_dev_shm() {
    let (_sb, out, code) = run(
        "embedded",
        "shm_size = \"128MiB\"\n",
        "df -k /dev/shm | tail -n 1 | awk '{print \"shm-kib: \" $2}'",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(outcome(&out, "shm-kib"), "131072", "{out}");
}

/// Zombie children of the container's pid 1, read from the host (a zombie has left its
/// cgroup, so the cgroup's process list does not show it; its parent link stays).
fn zombies(sb: &Sandbox, id: &str) -> usize {
    let State::Running(monitor) = sb.state(id) else {
        panic!("{id} is not running");
    };
    let init = monitor.init.pid.to_string();
    let mut count = 0;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "PID (COMM) STATE PPID …": the command may hold spaces, so split after ") ".
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split(' ');
        if fields.next() == Some("Z") && fields.next() == Some(init.as_str()) {
            count += 1;
        }
    }
    count
}

#[test]
fn init_reaps_orphans_and_forwards_the_stop_signal() {
    // Two orphans exit while the command (which never waits) runs on: pid 1 must reap them.
    // The stop signal, given by number (10, SIGUSR1), must reach the command through the init.
    let script = r#"(sleep 0.2 &); (sleep 0.2 &); trap 'echo got-usr1; exit 7' USR1; echo "pid1: $(tr '\0' ' ' < /proc/1/cmdline)"; while true; do sleep 0.1; done"#;
    let control = r#"(sleep 0.2 &); (sleep 0.2 &); exec sleep 60"#;
    for (init, script) in [(true, script), (false, control)] {
        let sb = Sandbox::new();
        let image = sb.image("busybox", &busybox_image());
        sb.write(
            "keys.toml",
            &format!(
                "[container.keys]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", {script:?}]\ninit = {init}\nstop_signal = \"10\"\nstop_timeout = \"20s\"\n"
            ),
        );
        let record = sb.start("keys");
        std::thread::sleep(Duration::from_secs(2));
        let found = zombies(&sb, &record.id);
        if !init {
            // Without an init the command is pid 1 and never waits: the control shows the
            // check sees zombies when there are some.
            assert_eq!(found, 2, "control: zombies under a non-reaping pid 1");
            continue;
        }
        assert_eq!(found, 0, "zombies left under the init");
        let logs = sb.logs(&record.id);
        assert!(logs.contains("pid1: /sbin/berth-init -- sh -c"), "{logs}");
        let started = std::time::Instant::now();
        let stop = sb.berth(&["stop", &record.id]);
        assert!(
            stop.status.success(),
            "{}",
            String::from_utf8_lossy(&stop.stderr)
        );
        let exit = sb.wait_exit(&record.id, Duration::from_secs(30));
        assert_eq!(exit.code, Some(7), "the command's trap ran: {exit:?}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "stopped by the signal, not the timeout"
        );
        assert!(sb.logs(&record.id).contains("got-usr1"));
    }
}

/// A Docker-format profile: everything allowed but making directories.
const NO_MKDIR_PROFILE: &str = r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "archMap": [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
  ],
  "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "comment": "no mkdir"},
    {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
  ]
}"#;

#[test]
fn a_custom_seccomp_profile_blocks_what_it_names_and_unconfined_has_none() {
    for engine in ENGINES {
        let script = format!(
            r#"{TRY}
try mkdir mkdir /tmp/dir
try touch touch /tmp/file
echo "mode: $(grep Seccomp: /proc/self/status | tr -d '\t' | cut -d: -f2)"
echo done"#
        );
        let sb = Sandbox::new();
        let image = sb.image("busybox", &busybox_image());
        std::fs::write(sb.desired().join("no-mkdir.json"), NO_MKDIR_PROFILE).expect("profile");
        sb.write(
            "keys.toml",
            &format!(
                "[container.keys]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", {script:?}]\nseccomp = \"no-mkdir.json\"\n{}",
                engine_line(engine)
            ),
        );
        let (code, out, err) = sb.run_keep("keys");
        let out = format!("{out}{err}");
        assert_eq!(code, 0, "{engine}: {out}");
        assert_eq!(
            outcome(&out, "mkdir"),
            "Operation not permitted",
            "{engine}: {out}"
        );
        assert_eq!(outcome(&out, "touch"), "allowed", "{engine}: {out}");
        assert_eq!(
            outcome(&out, "mode"),
            "2",
            "{engine}: a filter is loaded: {out}"
        );

        let (_sb, out, code) = run(engine, "seccomp = \"unconfined\"\n", &script);
        assert_eq!(code, 0, "{engine}: {out}");
        assert_eq!(outcome(&out, "mkdir"), "allowed", "{engine}: {out}");
        assert_eq!(outcome(&out, "mode"), "0", "{engine}: no filter: {out}");
    }
}

#[test]
fn a_changed_seccomp_profile_changes_the_hash() {
    let sb = Sandbox::new();
    std::fs::write(sb.desired().join("p.json"), NO_MKDIR_PROFILE).expect("profile");
    sb.write(
        "keys.toml",
        "[container.keys]\nimage = \"docker.io/library/busybox:1\"\nseccomp = \"p.json\"\n",
    );
    let hash = || {
        let loaded = berth::spec::load_dir(&sb.desired()).expect("load");
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        berth::spec::hash::all_hashes(&loaded.desired).expect("hashes")["container/keys"].clone()
    };
    let first = hash();
    std::fs::write(
        sb.desired().join("p.json"),
        NO_MKDIR_PROFILE.replace(
            "\"errnoRet\": 1, \"comment\"",
            "\"errnoRet\": 13, \"comment\"",
        ),
    )
    .expect("profile");
    assert_ne!(hash(), first);
}

#[test]
fn a_privileged_container_gets_everything_and_says_so() {
    let script = format!(
        r#"{TRY}
try mount-tmpfs sh -c 'mkdir -p /tmp/m && mount -t tmpfs none /tmp/m'
try host-device ls /dev/loop-control
try proc-sys sh -c 'cat /proc/sys/kernel/pid_max > /proc/sys/kernel/pid_max'
echo "seccomp: $(grep Seccomp: /proc/self/status | tr -d '\t' | cut -d: -f2)"
echo "capeff: $(grep CapEff: /proc/self/status | tr -d '\t' | cut -d: -f2)"
echo "capbnd: $(grep CapBnd: /proc/1/status | tr -d '\t' | cut -d: -f2)"
echo "sys: $(grep ' /sys sysfs ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1)"
echo done"#
    );
    let (_sb, out, code) = run("embedded", "privileged = true\n", &script);
    assert_eq!(code, 0, "{out}");
    for what in ["mount-tmpfs", "host-device", "proc-sys"] {
        assert_eq!(outcome(&out, what), "allowed", "{what}\n{out}");
    }
    assert_eq!(outcome(&out, "seccomp"), "0", "{out}");
    assert_eq!(outcome(&out, "sys"), "rw", "{out}");
    let capeff = outcome(&out, "capeff");
    assert_eq!(capeff, outcome(&out, "capbnd"), "{out}");
    let host_bounding = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .expect("CapBnd");
    assert_eq!(
        capeff, host_bounding,
        "every capability the host has: {out}"
    );

    // `plan` and `status` say so.
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write(
        "keys.toml",
        &format!("[container.keys]\nimage = \"{image}\"\ncommand = [\"sleep\", \"60\"]\nprivileged = true\nstop_timeout = \"1s\"\n"),
    );
    let desired = sb.desired();
    let dir = desired.to_str().expect("utf-8");
    let plan = sb.berth(&["plan", dir]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("! container keys is PRIVILEGED"), "{text}");
    let apply = sb.berth(&["apply", dir]);
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let status = sb.berth(&["status", dir]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("keys ") && l.contains("(PRIVILEGED")),
        "{text}"
    );
    let json = sb.berth(&["status", "--json", dir]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status json");
    assert_eq!(v["containers"][0]["privileged"], true, "{v}");
}

#[test]
fn tmpfs_options_hold_in_both_forms() {
    let script = format!(
        r#"{TRY}
echo "string: $(grep ' /cache ' /proc/self/mounts | cut -d' ' -f4)"
echo "table: $(grep ' /table ' /proc/self/mounts | cut -d' ' -f4)"
echo "owner: $(stat -c %u:%g /cache)"
cp /bin/busybox /cache/true && cp /bin/busybox /table/true
try exec-noexec /cache/true
try exec-table /table/true
echo done"#
    );
    let (_sb, out, code) = run(
        "embedded",
        "mounts = [\"tmpfs:/cache:noexec,uid=1000,gid=100,size=8MiB\", { type = \"tmpfs\", target = \"/table\", uid = 7, gid = 8, size = \"8MiB\" }]\n",
        &script,
    );
    assert_eq!(code, 0, "{out}");
    let string = outcome(&out, "string");
    for option in ["nosuid", "nodev", "noexec", "uid=1000", "gid=100"] {
        assert!(string.split(',').any(|o| o == option), "{option}: {out}");
    }
    let table = outcome(&out, "table");
    for option in ["nosuid", "nodev", "uid=7", "gid=8"] {
        assert!(table.split(',').any(|o| o == option), "{option}: {out}");
    }
    assert!(!table.split(',').any(|o| o == "noexec"), "{out}");
    assert_eq!(outcome(&out, "owner"), "1000:100", "{out}");
    assert_eq!(outcome(&out, "exec-noexec"), "Permission denied", "{out}");
    assert_eq!(outcome(&out, "exec-table"), "allowed", "{out}");
}

#[test]
fn a_ulimit_above_the_hosts_hard_limit_is_refused_at_validate() {
    // The hard RLIMIT_NOFILE berth validate inherits from this test.
    let limits = std::fs::read_to_string("/proc/self/limits").expect("limits");
    let hard: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok())
        .expect("a numeric hard limit on open files");
    let sb = Sandbox::new();
    sb.write(
        "keys.toml",
        &format!(
            "[container.keys]\nimage = \"docker.io/library/busybox:1\"\nulimits = {{ nofile = {{ soft = 1024, hard = {} }} }}\n",
            hard + 1
        ),
    );
    let desired = sb.desired();
    let out = sb.berth(&["validate", desired.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "ulimit `nofile` ({}) is above this host's hard limit ({hard})",
            hard + 1
        )),
        "{err}"
    );
}
