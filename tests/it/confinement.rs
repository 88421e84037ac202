//! Attacks from inside default containers (root): what a container must not be able to do
//! to its own limits, to the host or to other containers, under both engines. Every write
//! attempted here is harmless even if it succeeded (an empty write, a file in a directory
//! the test removes), so a regression fails the test without damaging the machine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth::runtime::State;

use crate::agent::{running, sole_running};
use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::Sandbox;

const ENGINES: [&str; 2] = ["embedded", "runc"];

fn engine_line(engine: &str) -> &'static str {
    match engine {
        "runc" => "runtime = \"runc\"\n",
        _ => "",
    }
}

/// Run `script` in a new container of a new sandbox; (sandbox, output, exit code).
fn attack(engine: &str, extra: &str, script: &str) -> (Sandbox, String, i32) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write(
        "attack.toml",
        &format!(
            "[container.attack]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", {script:?}]\n{}{extra}\n",
            engine_line(engine)
        ),
    );
    let (code, out, err) = sb.run_keep("attack");
    (sb, format!("{out}{err}"), code)
}

/// The host's view of a file of the container's cgroup in the hierarchy named `hierarchy`.
fn host_cgroup_file(sb: &Sandbox, id: &str, hierarchy: &str, file: &str) -> String {
    let path = Path::new("/sys/fs/cgroup")
        .join(hierarchy)
        .join(sb.runtime.layout().cgroup_path(id).trim_start_matches('/'))
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Every line "NAME: OUTCOME" the script printed, for the lines it tried.
fn outcome<'a>(out: &'a str, what: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{what}: ")))
        .unwrap_or_else(|| panic!("no outcome for {what} in:\n{out}"))
}

/// A shell function `try NAME CMD…`: prints "NAME: allowed" or "NAME: <error>".
const TRY: &str = r#"try() { n=$1; shift; if err=$("$@" 2>&1); then echo "$n: allowed"; else echo "$n: ${err##*: }"; fi; }"#;

#[test]
fn cgroupfs_is_read_only_and_limits_hold() {
    for engine in ENGINES {
        // The writes use the values the container already has: even if one were let
        // through, nothing would change; the error says whether it was. The cgroup name is
        // this run's own (mkdir answers EEXIST before EROFS).
        let escape = format!("berth-it-escape-{}-{engine}", std::process::id());
        let script = format!(
            r#"{TRY}
cd /sys/fs/cgroup
try memory-limit sh -c 'cat memory/memory.limit_in_bytes > memory/memory.limit_in_bytes'
try memsw-limit sh -c 'cat memory/memory.memsw.limit_in_bytes > memory/memory.memsw.limit_in_bytes'
try pids-max sh -c 'cat pids/pids.max > pids/pids.max'
try cfs-quota sh -c 'cat cpu/cpu.cfs_quota_us > cpu/cpu.cfs_quota_us'
for h in /sys/fs/cgroup/*/; do try "mkdir-$(basename $h)" mkdir "$h/{escape}"; done
try move-self sh -c 'echo $$ > systemd/cgroup.procs'
grep ' /sys/fs/cgroup' /proc/self/mounts | grep -vc ' ro,' | sed 's/^/writable-mounts: /'
echo done; sleep 30"#
        );
        let sb = Sandbox::new();
        let image = sb.image("busybox", &busybox_image());
        sb.write(
            "attack.toml",
            &format!(
                "[container.attack]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", {script:?}]\nmemory = \"32MiB\"\npids = 64\ncpus = 0.5\nstop_timeout = \"1s\"\n{}",
                engine_line(engine)
            ),
        );
        let record = sb.start("attack");
        let out = crate::agent::wait_for(Duration::from_secs(20), "the attack to finish", || {
            let logs = sb.logs(&record.id);
            logs.contains("done").then_some(logs)
        });
        for what in [
            "memory-limit",
            "memsw-limit",
            "pids-max",
            "cfs-quota",
            "move-self",
        ] {
            assert_eq!(
                outcome(&out, what),
                "Read-only file system",
                "{engine}: {what}\n{out}"
            );
        }
        let mkdirs: Vec<&str> = out.lines().filter(|l| l.starts_with("mkdir-")).collect();
        assert!(mkdirs.len() >= 5, "{engine}: hierarchies tried: {out}");
        for line in mkdirs {
            assert!(
                line.ends_with(": Read-only file system"),
                "{engine}: a cgroup was made: {line}\n{out}"
            );
        }
        assert_eq!(outcome(&out, "writable-mounts"), "0", "{engine}: {out}");
        // The host reads the limits the entry set.
        assert_eq!(
            host_cgroup_file(&sb, &record.id, "memory", "memory.limit_in_bytes"),
            (32u64 << 20).to_string()
        );
        assert_eq!(host_cgroup_file(&sb, &record.id, "pids", "pids.max"), "64");
        assert_eq!(
            host_cgroup_file(&sb, &record.id, "cpu", "cpu.cfs_quota_us"),
            "50000"
        );
        // Nothing was made below the container's cgroup: it is removed cleanly (the
        // sandbox's drop fails the test on any cgroup left behind).
        let rm = sb.berth(&["rm", "-f", &record.id]);
        assert!(
            rm.status.success(),
            "{engine}: {}",
            String::from_utf8_lossy(&rm.stderr)
        );
    }
}

/// A directory on the host with a tmpfs mounted below it, unmounted when dropped.
struct SubmountedDir {
    dir: tempfile::TempDir,
}

impl SubmountedDir {
    fn new() -> SubmountedDir {
        let dir = tempfile::Builder::new()
            .prefix("berth-it-submount-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        rustix::mount::mount(
            "tmpfs",
            dir.path().join("sub"),
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            Some(c"size=1m"),
        )
        .expect("mount a tmpfs below the bind source");
        SubmountedDir { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for SubmountedDir {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(
            self.dir.path().join("sub"),
            rustix::mount::UnmountFlags::DETACH,
        );
    }
}

#[test]
fn read_only_binds_are_read_only_all_the_way_down() {
    let shm_probe = format!("berth-it-probe-{}", std::process::id());
    // Removed even when the test fails (a regression would have created it).
    struct Probe(PathBuf);
    impl Drop for Probe {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _probe = Probe(Path::new("/dev/shm").join(&shm_probe));
    let submounted = SubmountedDir::new();
    for engine in ENGINES {
        // `: > FILE` opens for writing and writes nothing: harmless if it were allowed.
        let script = format!(
            r#"{TRY}
try core-pattern sh -c ': > /host/proc/sys/kernel/core_pattern'
try sysfs sh -c ': > /host/sys/kernel/profiling'
try host-cgroupfs sh -c ': > /host/sys/fs/cgroup/pids/cgroup.procs'
try host-dev-shm sh -c ': > /host/dev/shm/{shm_probe}'
try host-file sh -c ': > /host/etc/hostname'
try bind-submount sh -c ': > /data/sub/x'
try bind-top sh -c ': > /data/x'
try volume sh -c ': > /vol/x'
try writable-bind sh -c ': > /rw/x && rm /rw/x'
echo done"#
        );
        let rw = tempfile::tempdir().expect("tempdir");
        let (sb, out, code) = attack(
            engine,
            &format!(
                "mounts = [\"/:/host:ro\", \"{}:/data:ro\", \"vol:/vol:ro\", \"{}:/rw\"]\n[volume.vol]\n",
                submounted.path().display(),
                rw.path().display()
            ),
            &script,
        );
        assert_eq!(code, 0, "{engine}: {out}");
        for what in [
            "core-pattern",
            "sysfs",
            "host-cgroupfs",
            "host-dev-shm",
            "host-file",
            "bind-submount",
            "bind-top",
            "volume",
        ] {
            assert_eq!(
                outcome(&out, what),
                "Read-only file system",
                "{engine}: {what}\n{out}"
            );
        }
        assert_eq!(outcome(&out, "writable-bind"), "allowed", "{engine}: {out}");
        assert!(!Path::new("/dev/shm").join(&shm_probe).exists());
        drop(sb);
    }
}

#[test]
fn procfs_below_a_read_only_bind_leads_nowhere_and_writable_mounts_inside_stay_writable() {
    for engine in ENGINES {
        let sb = Sandbox::new();
        let image = sb.image("busybox", &busybox_image());
        // A victim with the attacker's own uid and capabilities: ptrace's access check lets
        // one reach the other's /proc/PID/root, which leads to its writable root.
        sb.write(
            "victim.toml",
            &format!(
                "[container.victim]\nimage = \"{image}\"\ncommand = [\"sleep\", \"60\"]\nstop_timeout = \"1s\"\n{}",
                engine_line(engine)
            ),
        );
        let victim = sb.start("victim");
        let State::Running(monitor) = sb.state(&victim.id) else {
            panic!("the victim is not running");
        };
        let pid = monitor.init.pid;
        let outer = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(outer.path().join("inner")).expect("mkdir");
        let inner = tempfile::tempdir().expect("tempdir");
        let script = format!(
            r#"{TRY}
try magic-link sh -c ': > /host/proc/{pid}/root/planted'
try magic-read ls /host/proc/{pid}/root/
try nested-writable sh -c 'echo x > /data/inner/x'
try nested-read-only sh -c ': > /data/y'
echo done"#
        );
        sb.write(
            "attack.toml",
            &format!(
                "[container.attack]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", {script:?}]\nmounts = [\"/:/host:ro\", \"{}:/data:ro\", \"{}:/data/inner\"]\n{}",
                outer.path().display(),
                inner.path().display(),
                engine_line(engine)
            ),
        );
        let (code, out, err) = sb.run_keep("attack");
        let out = format!("{out}{err}");
        assert_eq!(code, 0, "{engine}: {out}");
        for what in ["magic-link", "magic-read"] {
            assert_ne!(outcome(&out, what), "allowed", "{engine}: {what}\n{out}");
        }
        let victim_upper = sb.runtime.layout().container(&victim.id).upper();
        assert!(!victim_upper.join("planted").exists(), "{engine}: {out}");
        assert_eq!(
            outcome(&out, "nested-writable"),
            "allowed",
            "{engine}: {out}"
        );
        assert_eq!(
            std::fs::read_to_string(inner.path().join("x")).expect("written"),
            "x\n"
        );
        assert_eq!(
            outcome(&out, "nested-read-only"),
            "Read-only file system",
            "{engine}: {out}"
        );
        drop(sb);
    }
}

#[test]
fn a_default_container_has_a_pids_limit() {
    let (sb, out, code) = attack(
        "embedded",
        "",
        "cat /sys/fs/cgroup/pids/pids.max; echo done",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().next(), Some("2048"), "{out}");
    drop(sb);
}

#[test]
fn a_read_only_container_cannot_write_its_generated_files() {
    let script = format!(
        r#"{TRY}
for f in hosts hostname resolv.conf; do try "$f" sh -c ": > /etc/$f"; done
try root sh -c ': > /x'
try tmp sh -c ': > /tmp/x'
echo done"#
    );
    let (sb, out, code) = attack(
        "embedded",
        "read_only = true\nmounts = [\"tmpfs:/tmp\"]\n",
        &script,
    );
    assert_eq!(code, 0, "{out}");
    for what in ["hosts", "hostname", "resolv.conf", "root"] {
        assert_eq!(
            outcome(&out, what),
            "Read-only file system",
            "{what}\n{out}"
        );
    }
    assert_eq!(outcome(&out, "tmp"), "allowed", "{out}");
    drop(sb);
}

/// What only the seccomp profile refuses, tried as the container starts and again in
/// `berth exec`, under both engines: the embedded engine loads the program berth compiled at
/// create, runc compiles the profile it finds in config.json. Root needs no capability for a
/// user namespace or for personality(ADDR_NO_RANDOMIZE), so only the filter stops them, each
/// with the profile's errno: EPERM for a refused syscall, ENOSYS for arguments it does not allow.
#[test]
fn the_seccomp_profile_holds_at_start_and_in_exec() {
    let probe = format!(
        r#"{TRY}
try user-namespace unshare -U true
try no-randomize busybox linux64 -R true
try linux32 busybox linux32 true
while read key value; do if [ "$key" = Seccomp: ]; then echo "seccomp-mode: $value"; fi; done < /proc/self/status"#
    );
    let check = |engine: &str, when: &str, out: &str| {
        for (what, expected) in [
            ("user-namespace", "Operation not permitted"),
            ("no-randomize", "Function not implemented"),
            ("linux32", "allowed"),
            ("seccomp-mode", "2"),
        ] {
            assert_eq!(
                outcome(out, what),
                expected,
                "{engine} {when}: {what}\n{out}"
            );
        }
    };
    for engine in ENGINES {
        let sb = Sandbox::new();
        let image = sb.image("busybox", &busybox_image());
        let script = format!("{probe}\necho started; exec sleep 300");
        sb.write(
            "probe.toml",
            &format!(
                "[container.probe]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", {script:?}]\nstop_timeout = \"1s\"\n{}",
                engine_line(engine)
            ),
        );
        let record = sb.start("probe");
        let out = crate::agent::wait_for(Duration::from_secs(20), "the probe at start", || {
            let logs = sb.logs(&record.id);
            logs.contains("started").then_some(logs)
        });
        check(engine, "at start", &out);
        let exec = sb.berth(&["exec", "probe", "--", "sh", "-c", &probe]);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&exec.stdout),
            String::from_utf8_lossy(&exec.stderr)
        );
        assert!(exec.status.success(), "{engine} exec: {out}");
        check(engine, "in exec", &out);
        drop(sb);
    }
}

/// Those of `pids` that still run (not gone, not zombies).
fn init_and_monitor_alive(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        })
        .collect()
}

/// A running container of entry `web` under `engine` whose state directory is then deleted
/// by hand: (sandbox, desired directory, its id, its monitor's and init's pids).
fn orphaned(engine: &str) -> (Sandbox, String, String, [i32; 2]) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write(
        "web.toml",
        &format!(
            "[container.web]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\nstop_timeout = \"1s\"\n{}",
            engine_line(engine)
        ),
    );
    let dir = sb.desired().to_str().expect("utf-8").to_string();
    let apply = sb.berth(&["apply", &dir]);
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let old = sole_running(&sb, "web", Duration::from_secs(10));
    let State::Running(monitor) = sb.state(&old.id) else {
        panic!("not running");
    };
    let processes = [monitor.monitor.pid, monitor.init.pid];
    // As `rm -rf` by hand, again if something was written into it meanwhile.
    let doomed = sb.runtime.layout().container(&old.id).dir;
    let mut attempts = 0;
    while let Err(e) = std::fs::remove_dir_all(&doomed) {
        attempts += 1;
        let left = std::process::Command::new("find").arg(&doomed).output();
        assert!(attempts < 10, "rm -rf {}: {e}: {left:?}", doomed.display());
        eprintln!("rm -rf: {e}: {left:?}");
    }
    assert_eq!(init_and_monitor_alive(&processes).len(), 2, "still running");
    // Seen and named.
    let ps = sb.berth(&["ps", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&ps.stdout).expect("ps JSON");
    assert!(
        rows.as_array()
            .expect("rows")
            .iter()
            .any(|r| r["id"] == old.id.as_str() && r["state"] == "orphan"),
        "{rows}"
    );
    (sb, dir, old.id, processes)
}

/// Nothing of the orphan `id` is left: processes, engine state, cgroups.
fn orphan_gone(sb: &Sandbox, id: &str, processes: &[i32]) {
    crate::agent::wait_for(
        Duration::from_secs(10),
        "the orphan's processes to end",
        || init_and_monitor_alive(processes).is_empty().then_some(()),
    );
    let layout = sb.runtime.layout();
    for engine in ["embedded", "oci"] {
        let state = layout.engine_root().join(engine).join(id);
        assert!(!state.exists(), "{}", state.display());
    }
    for hierarchy in sb.cgroup_dirs() {
        assert!(!hierarchy.join(id).exists(), "{}", hierarchy.display());
    }
    // Removing it again (its own monitor may have raced the removal) is done already.
    sb.runtime.remove_orphan(id).expect("idempotent");
}

#[test]
fn a_state_directory_deleted_by_hand_leaves_no_twin() {
    let (sb, dir, old_id, processes) = orphaned("embedded");
    let dir = dir.as_str();
    // Planned before anything else starts.
    let plan = sb.berth(&["plan", dir]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains(&format!("kill     orphaned container {old_id}"))
            && text.contains("run      container web"),
        "{text}"
    );
    let apply = sb.berth(&["apply", dir]);
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let new = sole_running(&sb, "web", Duration::from_secs(10));
    assert_ne!(new.id, old_id);
    orphan_gone(&sb, &old_id, &processes);
    assert_eq!(running(&sb, "web").len(), 1);
    // And a second pass has nothing to do.
    let plan = sb.berth(&["plan", dir, "--detailed-exitcode"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
}

#[test]
fn an_orphan_of_an_external_engine_is_removed_without_it_on_path() {
    let (sb, dir, old_id, processes) = orphaned("runc");
    assert!(
        sb.runtime
            .layout()
            .engine_root()
            .join("oci")
            .join(&old_id)
            .exists()
    );
    // Its monitor is gone too (it would remove the engine state when the init dies), and
    // neither runc nor anything else is on $PATH: the state is removed all the same.
    let monitor = berth::sys::ProcessId::of(processes[0])
        .expect("the monitor runs")
        .open()
        .expect("pidfd")
        .expect("the monitor runs");
    berth::sys::send_signal(&monitor, libc::SIGKILL).expect("kill the monitor");
    assert!(berth::sys::wait_readable(&monitor, Some(Duration::from_secs(5))).expect("wait"));
    let rm = sb
        .command(&["rm", &old_id])
        .env("PATH", "/nonexistent")
        .output()
        .expect("run berth");
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&rm.stdout).trim(), old_id);
    orphan_gone(&sb, &old_id, &processes);
    // Not an orphan any more: the entry simply runs again.
    let plan = sb.berth(&["plan", &dir]);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        !text.contains("orphan") && text.contains("run      container web"),
        "{text}"
    );
}

#[test]
fn start_failures_name_their_cause() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let host_dir = tempfile::tempdir().expect("tempdir");
    // An executable text file without `#!`, found through PATH: execvp would hand it to
    // /bin/sh, which would run it.
    let no_shebang = sb.image("no-shebang", &image_with_a_script_without_shebang());
    sb.write(
        "e.toml",
        &format!(
            r#"[container.workdir]
image = "{image}"
command = ["pwd"]
workdir = "/srv/made/by/berth"

[container.enoexec]
image = "{image}"
command = ["ls"]
mounts = ["/etc/hostname:/bin/busybox:ro"]

[container.dironfile]
image = "{image}"
command = ["true"]
mounts = ["{host}:/usr/bin/env"]

[container.noshebang]
image = "{no_shebang}"
command = ["no-shebang"]
"#,
            host = host_dir.path().display()
        ),
    );
    // Docker's behaviour: a missing working directory is made.
    let (code, out, err) = sb.run("workdir");
    assert_eq!((code, out.trim()), (0, "/srv/made/by/berth"), "{err}");

    let failure = |name: &str| {
        let (code, out, err) = sb.run_keep(name);
        assert_ne!(code, 0, "{name}: {out}");
        let record = sb.runtime.find(name).expect("find").pop();
        let exit = record.map(|r| sb.wait_exit(&r.id, Duration::from_secs(5)));
        (err, exit)
    };
    let (err, exit) = failure("enoexec");
    assert!(err.contains("not a program this kernel can run"), "{err}");
    let exit = exit.expect("recorded");
    assert_eq!(
        exit.code, None,
        "a failed start, not an exit code: {exit:?}"
    );
    assert!(exit.describe().starts_with("failed to start"), "{exit:?}");

    let (err, _) = failure("dironfile");
    assert!(
        err.contains("/usr/bin/env") && err.contains("symbolic link to /bin/busybox"),
        "{err}"
    );

    let (err, exit) = failure("noshebang");
    assert!(
        err.contains("\"no-shebang\"") && err.contains("not a program this kernel can run"),
        "{err}"
    );
    assert!(!err.contains("ran by a shell"), "{err}");
    let exit = exit.expect("recorded");
    assert_eq!(exit.code, None, "a failed start, not sh's exit: {exit:?}");
    assert!(exit.describe().starts_with("failed to start"), "{exit:?}");
}

/// busybox with /usr/local/bin/no-shebang: mode 0755, a shell command without `#!`.
fn image_with_a_script_without_shebang() -> crate::support::images::TestImage {
    use crate::support::images::{
        BUSYBOX_PATH, Compression, ImageBuilder, LayerBuilder, busybox_layer,
    };
    let script = LayerBuilder::new()
        .dir("usr/local", 0o755)
        .dir("usr/local/bin", 0o755)
        .file("usr/local/bin/no-shebang", "echo ran by a shell\n", 0o755)
        .build(Compression::Gzip);
    ImageBuilder::new("amd64")
        .layer(busybox_layer())
        .layer(script)
        .env("PATH", BUSYBOX_PATH)
        .cmd(&["/bin/sh"])
        .oci()
}

/// Loop devices whose backing file lies below `dir`.
fn loop_devices_backed_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file"))
            && Path::new(backing.trim()).starts_with(dir)
        {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn a_disk_limit_bounds_the_writable_layer_and_survives_a_restart() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    // First run: fill the layer (100 MB into 32 MiB), keep a marker, fail; the restart in
    // place finds the marker in the same filesystem.
    let script = "if [ -f /marker ]; then echo second-run; df -k / | tail -1; sleep 30; \
                  else dd if=/dev/zero of=/fill bs=1M count=100 2>&1 | head -1; \
                  ls -l /fill; rm /fill; echo kept > /marker; exit 1; fi";
    sb.write(
        "disk.toml",
        &format!(
            "[container.disk]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", {script:?}]\ndisk = \"32MiB\"\nrestart = \"always\"\nbackoff = {{ initial = \"100ms\" }}\nstop_timeout = \"1s\"\n"
        ),
    );
    let dir = sb.desired();
    let apply = sb.berth(&[
        "apply",
        dir.to_str().expect("utf-8"),
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(
        apply.status.success(),
        "{}{}",
        String::from_utf8_lossy(&apply.stdout),
        String::from_utf8_lossy(&apply.stderr)
    );
    let record = sole_running(&sb, "disk", Duration::from_secs(20));
    let logs = crate::agent::wait_for(Duration::from_secs(20), "the second run", || {
        let logs = sb.logs(&record.id);
        logs.contains("second-run").then_some(logs)
    });
    assert!(logs.contains("No space left on device"), "{logs}");
    let written: u64 = logs
        .lines()
        .find(|l| l.starts_with('-') && l.ends_with("/fill"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size of /fill in:\n{logs}"));
    assert!(
        written < 32 << 20,
        "wrote {written} bytes into 32 MiB: {logs}"
    );
    // The host's disk holds the image file, never more than its size.
    let paths = sb.runtime.layout().container(&record.id);
    let image = std::fs::metadata(paths.disk_image()).expect("disk.img");
    assert_eq!(image.len(), 32 << 20);
    assert!(
        !paths.upper().exists(),
        "no writable layer on the state root"
    );
    assert_eq!(loop_devices_backed_in(&paths.dir).len(), 1);
    let rm = sb.berth(&["rm", "-f", &record.id]);
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    crate::agent::wait_for(Duration::from_secs(5), "the loop device to detach", || {
        loop_devices_backed_in(&sb.root()).is_empty().then_some(())
    });
}

#[test]
fn a_working_directory_inside_a_mount_is_made_where_the_container_sees_it() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write(
        "w.toml",
        &format!(
            r#"[container.involume]
image = "{image}"
command = ["sh", "-c", "pwd; touch here"]
mounts = ["data:/data"]
workdir = "/data/app/work"

[container.intmpfs]
image = "{image}"
command = ["pwd"]
mounts = ["tmpfs:/scratch"]
workdir = "/scratch/work"

[volume.data]
"#
        ),
    );
    // Made in the volume, not in the image below the mount (where the engine's chdir
    // would not find it).
    let (code, out, err) = sb.run("involume");
    assert_eq!((code, out.trim()), (0, "/data/app/work"), "{err}");
    let data = sb.root().join("volumes/data/_data/app/work");
    assert!(data.join("here").is_file(), "{}", data.display());

    // A tmpfs starts empty: named, and a failed start.
    let (code, out, err) = sb.run_keep("intmpfs");
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("/scratch/work") && err.contains("tmpfs") && err.contains("/scratch"),
        "{err}"
    );
    let record = sb.runtime.find("intmpfs").expect("find").pop();
    let exit = record
        .map(|r| sb.wait_exit(&r.id, Duration::from_secs(5)))
        .expect("recorded");
    assert!(exit.describe().starts_with("failed to start"), "{exit:?}");
}

/// Sends SIGCONT to a stopped process when dropped, test failure or not, so that it
/// finishes and the sandbox can clean up after it.
struct ContinueOnDrop(std::os::fd::OwnedFd);

impl Drop for ContinueOnDrop {
    fn drop(&mut self) {
        let _ = berth::sys::send_signal(&self.0, libc::SIGCONT);
    }
}

#[test]
fn a_restart_waits_for_the_previous_monitor_before_mounting_the_disk_again() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let script = "if [ -f /marker ]; then echo second-run; else echo kept > /marker; sync; \
                  echo first-run; fi; exec sleep 300";
    sb.write(
        "disk.toml",
        &format!(
            "[container.disk]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", {script:?}]\ndisk = \"32MiB\"\nstop_timeout = \"1s\"\n"
        ),
    );
    let record = sb.start("disk");
    let paths = sb.runtime.layout().container(&record.id);
    crate::agent::wait_for(Duration::from_secs(10), "the first run", || {
        sb.logs(&record.id).contains("first-run").then_some(())
    });
    let State::Running(monitor) = sb.state(&record.id) else {
        panic!("not running");
    };
    // The moment between the monitor's exit record and its end, held open: the monitor is
    // stopped with its mount namespace (the ext4 mounted) while the container is gone,
    // cleaned up and recorded as ended, exactly as the monitor leaves it.
    let monitor_fd = monitor
        .monitor
        .open()
        .expect("pidfd")
        .expect("the monitor runs");
    berth::sys::send_signal(&monitor_fd, libc::SIGSTOP).expect("SIGSTOP");
    let stopped = ContinueOnDrop(monitor_fd);
    let init = monitor.init.open().expect("pidfd").expect("the init runs");
    berth::sys::send_signal(&init, libc::SIGKILL).expect("SIGKILL");
    assert!(
        berth::sys::wait_readable(&init, Some(Duration::from_secs(10))).expect("wait"),
        "the init did not die"
    );
    let hierarchies = berth::runtime::cgroupfs::hierarchies().expect("cgroup mounts");
    berth::runtime::cgroupfs::remove(&hierarchies, &record.cgroup_path).expect("cgroup removed");
    let state = sb
        .runtime
        .layout()
        .engine_root()
        .join("embedded")
        .join(&record.id);
    std::fs::remove_dir_all(&state).expect("engine state removed");
    let now = berth::state::record::now_ms();
    berth::state::record::save_volatile(
        &paths.exit(),
        &berth::state::record::ExitRecord {
            code: None,
            signal: Some(libc::SIGKILL),
            oom_killed: false,
            started_at_ms: monitor.started_at_ms,
            finished_at_ms: now,
            error: None,
            stopped_because: None,
        },
    )
    .expect("exit record");
    assert!(matches!(sb.state(&record.id), State::Exited(_)));
    assert_eq!(loop_devices_backed_in(&paths.dir).len(), 1);

    let runtime = sb.runtime.clone();
    let id = record.id.clone();
    let restart = std::thread::spawn(move || runtime.restart(&id, 1));
    std::thread::sleep(Duration::from_secs(1));
    let mounted = loop_devices_backed_in(&paths.dir);
    assert!(
        !restart.is_finished() && mounted.len() == 1,
        "restarted while the previous monitor still holds the disk: loop devices {mounted:?}"
    );
    drop(stopped);
    let new = restart
        .join()
        .expect("the restart thread")
        .expect("restarted once the previous monitor ended");
    assert_ne!(new.monitor, monitor.monitor);
    let logs = crate::agent::wait_for(Duration::from_secs(10), "the second run", || {
        let logs = sb.logs(&record.id);
        logs.contains("second-run").then_some(logs)
    });
    assert!(logs.contains("first-run"), "{logs}");
    assert_eq!(loop_devices_backed_in(&paths.dir).len(), 1);

    // The filesystem was only ever mounted once at a time: it is clean.
    sb.runtime
        .stop(&record.id, Some(Duration::ZERO))
        .expect("stopped");
    crate::agent::wait_for(Duration::from_secs(5), "the loop device to detach", || {
        loop_devices_backed_in(&paths.dir).is_empty().then_some(())
    });
    let fsck = std::process::Command::new("e2fsck")
        .args(["-f", "-n"])
        .arg(paths.disk_image())
        .output()
        .expect("run e2fsck");
    assert!(
        fsck.status.success(),
        "{}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
}
