//! The runtime on real containers (root): isolation, identity, limits, security defaults,
//! volumes, logs, exec, stop, and containers outliving whoever started them.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use berth::runtime::State;

use crate::support::images::{
    BUSYBOX_PATH, ImageBuilder, LayerBuilder, busybox_layer, ready_made::busybox_image,
};
use crate::support::sandbox::Sandbox;

/// A sandbox with the busybox image written as `image`.
fn sandbox() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    (sb, image)
}

fn container(sb: &Sandbox, image: &str, name: &str, extra: &str) {
    sb.write(
        &format!("{name}.toml"),
        &format!("[container.{name}]\nimage = \"{image}\"\n{extra}\n"),
    );
}

#[test]
fn isolation_identity_and_security_defaults() {
    let (sb, image) = sandbox();
    let state_root = sb.root();
    container(
        &sb,
        &image,
        "probe",
        r#"command = ["sh", "-c", "echo pid=$$; hostname; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; ls /proc/self/fd | tr '\n' ' '; echo; ulimit -n; cat /proc/self/mounts; echo ok > /written-by-container"]"#,
    );
    let (code, out, err) = sb.run_keep("probe");
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1", "{out}");
    assert_eq!(lines[1], "probe", "hostname defaults to the name: {out}");
    // podman's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL NET_BIND_SERVICE SETFCAP
    // SETGID SETPCAP SETUID SYS_CHROOT.
    assert!(out.contains("CapEff:\t00000000800405fb"), "{out}");
    assert!(out.contains("CapBnd:\t00000000800405fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "seccomp filter mode: {out}");
    // Only stdio is inherited; `ls` itself opens one more descriptor for the directory.
    let fds: BTreeSet<u32> = lines[6]
        .split_whitespace()
        .map(|f| f.parse().expect("fd number"))
        .collect();
    assert!(
        fds.is_subset(&BTreeSet::from([0, 1, 2, 3])),
        "leaked fds: {fds:?}"
    );
    let host_hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .expect("finite hard limit");
    assert_eq!(
        lines[7],
        host_hard.min(1 << 20).to_string(),
        "RLIMIT_NOFILE: {out}"
    );
    // The host's mounts are invisible: only the container's own mount points exist.
    let mounts = &lines[8..];
    assert!(
        mounts.iter().any(|m| m.starts_with("overlay / overlay")),
        "{out}"
    );
    for m in mounts {
        let point = m.split_whitespace().nth(1).expect("mount point");
        let expected = point == "/"
            || ["/proc", "/dev", "/sys"]
                .iter()
                .any(|p| point == *p || point.starts_with(&format!("{p}/")))
            || ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"].contains(&point);
        assert!(expected, "unexpected mount {m:?} in:\n{out}");
    }

    // The write landed in the container's upper directory, nowhere else.
    let record = sb
        .runtime
        .find("probe")
        .expect("find")
        .pop()
        .expect("record");
    let upper = sb.runtime.layout().container(&record.id).upper();
    assert_eq!(
        std::fs::read_to_string(upper.join("written-by-container")).expect("upper"),
        "ok\n"
    );
    for layer in &record.layers {
        assert!(!layer.join("written-by-container").exists());
    }
    // The overlay was never visible on the host.
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!host_mounts.contains(state_root.to_str().expect("utf-8")));
}

#[test]
fn arguments_environment_workdir_and_user_from_image_and_entry() {
    let sb = Sandbox::new();
    let image = ImageBuilder::new("amd64")
        .layer(busybox_layer())
        .env("PATH", BUSYBOX_PATH)
        .env("FROM_IMAGE", "image")
        .env("OVERRIDDEN", "image")
        .entrypoint(&[
            "sh",
            "-c",
            "echo \"$0 $* env=$FROM_IMAGE,$OVERRIDDEN,$FROM_ENTRY home=$HOME cwd=$(pwd) $(id)\"",
            "ep",
        ])
        .cmd(&["from-image-cmd"])
        .workdir("/home/app")
        .user("app")
        .oci();
    let image = sb.image("custom", &image);
    container(&sb, &image, "defaults", "");
    container(
        &sb,
        &image,
        "entry",
        r#"command = ["from-entry"]
env = { OVERRIDDEN = "entry", FROM_ENTRY = "yes" }
workdir = "/tmp"
user = "0:1000"
groups = ["65534"]"#,
    );
    container(
        &sb,
        &image,
        "entrypoint",
        r#"entrypoint = ["echo", "replaced"]"#,
    );
    let (code, out, err) = sb.run("defaults");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "ep from-image-cmd env=image,image, home=/home/app cwd=/home/app uid=1000(app) gid=1000(app) groups=1000(app)"
    );
    let (code, out, err) = sb.run("entry");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "ep from-entry env=image,entry,yes home=/root cwd=/tmp uid=0(root) gid=1000(app) groups=1000(app),65534(nogroup)"
    );
    // An entry's entrypoint also drops the image's CMD, as Docker does.
    let (code, out, _) = sb.run("entrypoint");
    assert_eq!((code, out.trim()), (0, "replaced"));
}

#[test]
fn an_unknown_user_fails_to_start_with_a_clear_error() {
    let (sb, image) = sandbox();
    container(
        &sb,
        &image,
        "ghost",
        r#"user = "nosuchuser"
command = ["true"]"#,
    );
    let (code, _, err) = sb.run("ghost");
    assert_ne!(code, 0);
    assert!(err.contains("no user `nosuchuser`"), "{err}");
}

#[test]
fn memory_limit_is_enforced_and_an_oom_kill_is_recorded() {
    let (sb, image) = sandbox();
    container(
        &sb,
        &image,
        "hog",
        r#"memory = "16MiB"
restart = "never"
command = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]"#,
    );
    container(
        &sb,
        &image,
        "limits",
        r#"memory = "32MiB"
cpus = 0.5
pids = 16
command = ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; true"]"#,
    );
    let record = sb.start("hog");
    let exit = sb.wait_exit(&record.id, Duration::from_secs(20));
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert!(exit.describe().contains("OOM"));

    let (code, out, err) = sb.run("limits");
    assert_eq!(code, 0, "{err}");
    let values: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(values.len(), 3, "{out}");
    assert!(values[0] == "33554432", "memory limit: {out}");
    assert!(
        values[1] == "50000" || values[1] == "50000 100000",
        "cpu quota: {out}"
    );
    assert_eq!(values[2], "16", "pids limit: {out}");
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let (sb, image) = sandbox();
    container(
        &sb,
        &image,
        "forks",
        // A failed fork ends a non-interactive shell: an inner shell forks, the outer stays.
        r#"pids = 8
command = ["sh", "-c", "sh -c 'for i in $(seq 20); do sleep 300 & done'; exec sleep 300"]"#,
    );
    let record = sb.start("forks");
    let current = Path::new("/sys/fs/cgroup/pids")
        .join(record.cgroup_path.trim_start_matches('/'))
        .join("pids.current");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sb.logs(&record.id).contains("fork") {
        assert!(
            Instant::now() < deadline,
            "no fork failure: {}",
            sb.logs(&record.id)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let count: u32 = std::fs::read_to_string(&current)
        .expect("pids.current")
        .trim()
        .parse()
        .expect("number");
    assert!(
        (7..=8).contains(&count),
        "processes under pids = 8: {count}"
    );
}

#[test]
fn seccomp_blocks_what_capabilities_alone_would_allow() {
    let (sb, image) = sandbox();
    // Creating a user namespace needs no capability, so only the seccomp profile stops it.
    container(
        &sb,
        &image,
        "userns",
        r#"command = ["sh", "-c", "unshare -U true && echo allowed || echo refused"]"#,
    );
    let (code, out, err) = sb.run("userns");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "refused", "{out} {err}");
}

#[test]
fn read_only_root_with_a_writable_tmpfs() {
    let (sb, image) = sandbox();
    container(
        &sb,
        &image,
        "ro",
        r#"read_only = true
mounts = ["tmpfs:/scratch"]
command = ["sh", "-c", "touch /nope 2>/dev/null && echo root-writable; touch /scratch/yes && echo tmpfs-writable"]"#,
    );
    let (code, out, err) = sb.run("ro");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "tmpfs-writable");
}

#[test]
fn volumes_are_seeded_once_and_survive_replacement() {
    let sb = Sandbox::new();
    let image = ImageBuilder::new("amd64")
        .layer(busybox_layer())
        .layer(
            LayerBuilder::new()
                .dir("srv", 0o755)
                .dir("srv/data", 0o750)
                .owner(1000, 1000)
                .file("srv/data/seed.txt", "from the image\n", 0o644)
                .build(crate::support::images::Compression::Gzip),
        )
        .env("PATH", BUSYBOX_PATH)
        .oci();
    let image = sb.image("seeded", &image);
    sb.write("volume.toml", "[volume.data]\n");
    container(
        &sb,
        &image,
        "writer",
        r#"mounts = ["data:/srv/data"]
command = ["sh", "-c", "stat -c '%u:%g %a' /srv/data; cat /srv/data/seed.txt; echo written > /srv/data/new.txt"]"#,
    );
    let (code, out, err) = sb.run("writer");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1000:1000 750\nfrom the image\n");
    // A new container (the writer was removed by --rm) finds the data, and the image's
    // content is not copied again over what the user changed.
    let (code, out, err) = sb.run("writer");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1000:1000 750\nfrom the image\n");
    let data = sb.root().join("volumes/data/_data");
    assert_eq!(
        std::fs::read_to_string(data.join("new.txt")).expect("volume data"),
        "written\n"
    );
    std::fs::remove_file(data.join("seed.txt")).expect("rm");
    let (_, out, _) = sb.run("writer");
    assert_eq!(out, "1000:1000 750\n", "seeding happens once: {out}");
}

#[test]
fn logs_are_captured_rotated_and_tailed() {
    let (sb, image) = sandbox();
    container(
        &sb,
        &image,
        "chatty",
        r#"log = { max_size = "4KiB", max_files = 3 }
command = ["sh", "-c", "for i in $(seq 1 400); do echo line-$i; done; echo to-stderr >&2"]"#,
    );
    let record = sb.start("chatty");
    let exit = sb.wait_exit(&record.id, Duration::from_secs(20));
    assert_eq!(exit.code, Some(0));
    let logs = sb.runtime.layout().container(&record.id).logs();
    let mut files: Vec<String> = std::fs::read_dir(&logs)
        .expect("logs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["container.log", "container.log.1", "container.log.2"]
    );
    for f in &files {
        let size = std::fs::metadata(logs.join(f)).expect("stat").len();
        assert!(size <= 4096, "{f} is {size} bytes");
    }
    let out = sb.berth(&["logs", "--tail", "3", &record.id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line-399\nline-400\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-stderr\n");
    // Rotation dropped the oldest lines, and kept the rest in order.
    let all = sb.logs(&record.id);
    let numbers: Vec<u32> = all
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.parse().ok())
        .collect();
    assert!(
        numbers.first().copied().unwrap_or(1) > 1,
        "nothing was rotated away"
    );
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or disorder"
    );
    assert_eq!(numbers.last(), Some(&400));
}

#[test]
fn exec_joins_the_container_and_returns_its_status() {
    let (sb, image) = sandbox();
    container(&sb, &image, "svc", r#"command = ["sleep", "300"]"#);
    let record = sb.start("svc");
    let out = sb.berth(&[
        "exec",
        "svc",
        "--",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; hostname; grep Seccomp: /proc/self/status; exit 7",
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sleep 300 svc\nSeccomp:\t2\n"
    );
    // The process ran in the container's cgroup: it counted in pids.current meanwhile, and
    // the container is still running afterwards.
    let State::Running(monitor) = sb.state(&record.id) else {
        panic!("not running after exec");
    };
    // While the container runs, its monitor is the small second-stage image.
    let exe = std::fs::read_link(format!("/proc/{}/exe", monitor.monitor.pid)).expect("exe");
    assert_eq!(
        exe.file_name().and_then(|n| n.to_str()),
        Some("berth-monitor")
    );

    // With a terminal.
    let out = exec_with_pty(&sb, &["exec", "-t", "svc", "--", "tty"]);
    assert!(out.contains("/dev/pts/"), "{out:?}");
}

/// Run berth with a pty as its terminal; everything it printed.
fn exec_with_pty(sb: &Sandbox, args: &[&str]) -> String {
    use std::io::Read;
    let master =
        rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY)
            .expect("openpt");
    rustix::pty::grantpt(&master).expect("grantpt");
    rustix::pty::unlockpt(&master).expect("unlockpt");
    let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().expect("utf-8"))
        .expect("open slave");
    let mut child = sb
        .command(args)
        .stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave)
        .spawn()
        .expect("spawn");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    // Everything written is buffered in the pty; read without blocking.
    rustix::io::ioctl_fionbio(&master, true).expect("nonblocking");
    let mut out = Vec::new();
    let _ = std::fs::File::from(master).read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn stop_uses_the_stop_signal_then_escalates_to_sigkill() {
    let (sb, image) = sandbox();
    // As pid 1 without a handler, sleep ignores SIGTERM: only SIGKILL ends it.
    container(
        &sb,
        &image,
        "stubborn",
        r#"stop_timeout = "1s"
command = ["sleep", "300"]"#,
    );
    container(
        &sb,
        &image,
        "polite",
        r#"stop_signal = "SIGUSR1"
command = ["sh", "-c", "trap 'echo got-usr1; exit 0' USR1; while true; do sleep 0.1; done"]"#,
    );
    let stubborn = sb.start("stubborn");
    let polite = sb.start("polite");
    let t = Instant::now();
    let out = sb.berth(&["stop", "stubborn"]);
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let State::Exited(exit) = sb.state(&stubborn.id) else {
        panic!("not exited");
    };
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert!(
        took >= Duration::from_secs(1),
        "stopped after {took:?}, before the timeout"
    );
    assert!(took < Duration::from_secs(8), "stop took {took:?}");

    let t = Instant::now();
    let out = sb.berth(&["stop", "polite"]);
    assert!(out.status.success());
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let State::Exited(exit) = sb.state(&polite.id) else {
        panic!("not exited");
    };
    assert_eq!((exit.code, exit.signal), (Some(0), None), "{exit:?}");
    assert!(sb.logs(&polite.id).contains("got-usr1"));
}

#[test]
fn the_container_outlives_a_killed_starter_and_its_exit_is_still_recorded() {
    let (sb, image) = sandbox();
    container(
        &sb,
        &image,
        "survivor",
        r#"command = ["sh", "-c", "echo started; sleep 2; echo finishing; exit 42"]"#,
    );
    let desired = sb.desired();
    let mut starter = sb
        .command(&["run", desired.to_str().expect("utf-8"), "survivor"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn berth run");
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        if let Some(r) = sb.runtime.find("survivor").expect("find").pop()
            && matches!(sb.state(&r.id), State::Running(_))
        {
            break r;
        }
        assert!(Instant::now() < deadline, "the container did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    starter.kill().expect("SIGKILL the starter");
    starter.wait().expect("reap the starter");
    assert!(
        matches!(sb.state(&record.id), State::Running(_)),
        "died with its starter"
    );
    let exit = sb.wait_exit(&record.id, Duration::from_secs(15));
    assert_eq!(exit.code, Some(42), "{exit:?}");
    assert_eq!(sb.logs(&record.id), "started\nfinishing\n");
}

/// `stop` and `rm` go through every name as `docker rm a b c` does: each failure is
/// `NAME: error` on stderr and makes the status 1, and the other names are still handled.
#[test]
fn stop_and_rm_handle_every_name_and_report_each_failure() {
    let (sb, image) = sandbox();
    container(&sb, &image, "busy", r#"command = ["sleep", "300"]"#);
    container(&sb, &image, "done", r#"command = ["true"]"#);
    let busy = sb.start("busy");
    let done = sb.start("done");
    sb.wait_exit(&done.id, Duration::from_secs(15));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let lines_starting =
        |stderr: &str, prefix: &str| stderr.lines().filter(|l| l.starts_with(prefix)).count();

    // The missing name first, a running one refused without -f, an exited one removed.
    let out = sb.berth(&["rm", "ghost", "busy", "done"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(stdout.trim(), done.id, "stderr: {stderr}");
    assert_eq!(lines_starting(&stderr, "ghost: "), 1, "{stderr}");
    assert_eq!(lines_starting(&stderr, "busy: "), 1, "{stderr}");
    assert!(stderr.contains("stop it first"), "{stderr}");
    assert!(!sb.runtime.layout().container(&done.id).dir.exists());
    assert!(matches!(sb.state(&busy.id), State::Running(_)));

    let out = sb.berth(&["stop", "-t", "1", "ghost", "busy"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.starts_with(&format!("{}: ", busy.id)), "{stdout}");
    assert_eq!(lines_starting(&stderr, "ghost: "), 1, "{stderr}");
    assert!(matches!(sb.state(&busy.id), State::Exited(_)));

    // [nonexistent, existing]: the existing one is removed, the missing one named.
    let out = sb.berth(&["rm", "ghost", "busy"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(stdout.trim(), busy.id, "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("ghost: "), "{stderr}");
    assert!(!sb.runtime.layout().container(&busy.id).dir.exists());

    // Nothing failing: status 0.
    container(&sb, &image, "last", r#"command = ["true"]"#);
    let last = sb.start("last");
    sb.wait_exit(&last.id, Duration::from_secs(15));
    let out = sb.berth(&["rm", "last"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn removal_is_refused_while_running_and_leaves_nothing_behind() {
    let (sb, image) = sandbox();
    container(
        &sb,
        &image,
        "short",
        r#"memory = "64MiB"
command = ["sleep", "300"]"#,
    );
    let record = sb.start("short");
    let cgroup =
        Path::new("/sys/fs/cgroup/memory").join(record.cgroup_path.trim_start_matches('/'));
    assert!(cgroup.exists(), "{}", cgroup.display());
    let out = sb.berth(&["rm", "short"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it first"));
    let out = sb.berth(&["rm", "-f", "short"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!sb.runtime.layout().container(&record.id).dir.exists());
    assert!(!cgroup.exists(), "cgroup left behind");
    for dir in sb.cgroup_dirs() {
        assert!(
            !dir.join(&record.id).exists(),
            "{} left behind",
            dir.join(&record.id).display()
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(sb.root().join("containers"))
        .expect("containers dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    let engine_state = sb
        .runtime
        .layout()
        .engine_root()
        .join("embedded")
        .join(&record.id);
    assert!(!engine_state.exists(), "engine state left behind");
}

#[test]
fn stats_reads_the_cgroup() {
    let (sb, image) = sandbox();
    container(
        &sb,
        &image,
        "busy",
        r#"memory = "64MiB"
pids = 32
command = ["sh", "-c", "while true; do :; done"]"#,
    );
    sb.start("busy");
    let out = sb.berth(&["stats", "--json", "busy"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let row = &rows[0];
    assert_eq!(row["name"], "busy");
    assert_eq!(row["memory_limit"], 64 << 20);
    assert_eq!(row["pids_limit"], 32);
    assert!(row["pids"].as_u64().expect("pids") >= 1);
    assert!(row["memory_usage"].as_u64().expect("memory") > 0);
    assert!(row["cpu_percent"].as_f64().expect("cpu") > 10.0, "{row}");
}

#[test]
fn runc_runs_the_same_bundle() {
    let (sb, image) = sandbox();
    container(
        &sb,
        &image,
        "viarunc",
        r#"runtime = "runc"
memory = "32MiB"
command = ["sh", "-c", "echo pid=$$; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; exit 5"]"#,
    );
    let (code, out, err) = sb.run("viarunc");
    assert_eq!(code, 5, "{out} {err}");
    assert!(out.contains("pid=1"), "{out}");
    assert!(out.contains("CapEff:\t00000000800405fb"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");

    container(
        &sb,
        &image,
        "runcsvc",
        r#"runtime = "runc"
command = ["sleep", "300"]"#,
    );
    let record = sb.start("runcsvc");
    let out = sb.berth(&["exec", "runcsvc", "--", "cat", "/proc/1/cmdline"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sleep\u{0}300\u{0}");
    let out = sb.berth(&["stop", "-t", "0", "runcsvc"]);
    assert!(out.status.success());
    assert!(matches!(sb.state(&record.id), State::Exited(_)));
}

#[test]
fn a_container_whose_monitor_was_killed_is_reported_lost_and_cleaned_up() {
    let (sb, image) = sandbox();
    container(&sb, &image, "orphan", r#"command = ["sleep", "300"]"#);
    let record = sb.start("orphan");
    let State::Running(monitor) = sb.state(&record.id) else {
        panic!("not running");
    };
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitor.monitor.pid).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill the monitor");
    let deadline = Instant::now() + Duration::from_secs(5);
    let init = loop {
        match sb.state(&record.id) {
            State::Lost {
                init: Some(init), ..
            } => break init,
            State::Running(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            other => panic!("unexpected state {other:?}"),
        }
    };
    assert!(
        init.is_alive().expect("check"),
        "the container must outlive its monitor"
    );
    let cgroup = Path::new("/sys/fs/cgroup/pids").join(record.cgroup_path.trim_start_matches('/'));
    assert!(cgroup.exists());
    let out = sb.berth(&["stop", "orphan"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let State::Exited(exit) = sb.state(&record.id) else {
        panic!("not exited");
    };
    assert_eq!(exit.signal, Some(9));
    assert!(
        exit.error
            .as_deref()
            .is_some_and(|e| e.contains("monitor was lost")),
        "{exit:?}"
    );
    assert!(!init.is_alive().expect("check"));
    assert!(!cgroup.exists(), "cgroup left behind");
}

#[test]
fn a_created_container_whose_init_runs_without_a_monitor_can_be_removed() {
    // The monitor and its starter died between the engine's create and the monitor
    // record: the container looks created, not running, while its init is in its cgroup.
    let (sb, image) = sandbox();
    container(&sb, &image, "stray", r#"command = ["sleep", "300"]"#);
    let record = sb.start("stray");
    let State::Running(monitor) = sb.state(&record.id) else {
        panic!("not running");
    };
    let fd = monitor
        .monitor
        .open()
        .expect("pidfd")
        .expect("the monitor runs");
    berth::sys::send_signal(&fd, libc::SIGKILL).expect("kill the monitor");
    assert!(berth::sys::wait_readable(&fd, Some(Duration::from_secs(5))).expect("wait"));
    let paths = sb.runtime.layout().container(&record.id);
    std::fs::remove_file(paths.monitor()).expect("rm monitor.json");
    assert_eq!(sb.state(&record.id), State::Created);
    assert!(monitor.init.is_alive().expect("check"), "the init runs on");

    sb.runtime
        .remove(&record.id, false)
        .expect("removed, its init killed");
    assert!(!monitor.init.is_alive().expect("check"));
    assert!(!paths.dir.exists());
    assert!(
        !sb.runtime
            .layout()
            .engine_root()
            .join("embedded")
            .join(&record.id)
            .exists()
    );
    for hierarchy in sb.cgroup_dirs() {
        assert!(
            !hierarchy.join(&record.id).exists(),
            "{}",
            hierarchy.display()
        );
    }
}

#[test]
fn prune_keeps_the_images_of_existing_containers() {
    let (sb, image) = sandbox();
    container(&sb, &image, "keeper", r#"command = ["sleep", "300"]"#);
    let record = sb.start("keeper");
    // The desired state no longer names the container or its image.
    std::fs::remove_file(sb.desired().join("keeper.toml")).expect("rm");
    sb.write("other.toml", "[volume.unrelated]\n");
    let desired = sb.desired();
    let listed = |sb: &Sandbox| -> usize {
        let out = sb.berth(&["images", "--json"]);
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .expect("images json")
            .len()
    };
    let out = sb.berth(&["prune", "images", desired.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listed(&sb), 1, "the running container's image was pruned");
    let out = sb.berth(&["rm", "-f", &record.id]);
    assert!(out.status.success());
    let out = sb.berth(&["prune", "images", desired.to_str().expect("utf-8")]);
    assert!(out.status.success());
    assert_eq!(listed(&sb), 0);
}

#[test]
fn exec_runs_in_the_containers_cgroup() {
    let (sb, image) = sandbox();
    container(&sb, &image, "grouped", r#"command = ["sleep", "300"]"#);
    let record = sb.start("grouped");
    let out = sb.berth(&["exec", "grouped", "--", "cat", "/proc/self/cgroup"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // In its cgroup namespace the container's cgroup is the root: the exec'd process shows
    // "/" on every hierarchy, not a host path.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let relevant: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(":memory:") || l.contains(":pids:"))
        .collect();
    assert_eq!(relevant.len(), 2, "{text}");
    for line in relevant {
        assert!(line.ends_with(":/"), "{line} in {text}");
    }
    // And from the host: the cgroup holds the exec'd process while it runs.
    let procs = Path::new("/sys/fs/cgroup/pids")
        .join(record.cgroup_path.trim_start_matches('/'))
        .join("cgroup.procs");
    let mut child = sb
        .command(&["exec", "grouped", "--", "sleep", "5"])
        .spawn()
        .expect("exec sleep");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members = std::fs::read_to_string(&procs).expect("cgroup.procs");
        if members.lines().count() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the exec'd process never joined: {members}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_fifo_as_etc_passwd_fails_the_start_instead_of_hanging_it() {
    let sb = Sandbox::new();
    let image = ImageBuilder::new("amd64")
        .layer(busybox_layer())
        .layer(
            LayerBuilder::new()
                .whiteout("etc/passwd")
                .build(crate::support::images::Compression::Gzip),
        )
        .env("PATH", BUSYBOX_PATH)
        .oci();
    let reference = sb.image("fifo", &image);
    let out = sb.berth(&["pull", &reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A hostile layer could ship a FIFO (the unpacker keeps them): put one where the
    // whiteout is.
    let mut planted = false;
    for layer in std::fs::read_dir(sb.root().join("layers/sha256"))
        .expect("layers")
        .flatten()
    {
        let passwd = layer.path().join("etc/passwd");
        let is_whiteout = std::fs::symlink_metadata(&passwd)
            .map(|m| std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()))
            .unwrap_or(false);
        if is_whiteout {
            std::fs::remove_file(&passwd).expect("rm whiteout");
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &passwd,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .expect("mkfifo");
            planted = true;
        }
    }
    assert!(planted, "no whiteout to replace");
    container(&sb, &reference, "fifo", r#"command = ["true"]"#);
    let t = Instant::now();
    let (code, _, err) = sb.run("fifo");
    assert_ne!(code, 0);
    assert!(
        err.contains("/etc/passwd in the container is not a regular file"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn the_monitor_keeps_no_descriptor_of_its_starter() {
    let (sb, image) = sandbox();
    container(&sb, &image, "clean", r#"command = ["sleep", "300"]"#);
    // A descriptor the starter leaves open without close-on-exec.
    let leak_path = sb.dir.path().join("leaked-file");
    let leak = std::fs::File::create(&leak_path).expect("create");
    rustix::io::fcntl_setfd(&leak, rustix::io::FdFlags::empty()).expect("clear cloexec");
    let desired = sb.desired();
    let out = sb
        .command(&["run", "-d", desired.to_str().expect("utf-8"), "clean"])
        .output()
        .expect("run");
    drop(leak);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let State::Running(monitor) = sb.state(&id) else {
        panic!("not running");
    };
    let fds: Vec<_> = std::fs::read_dir(format!("/proc/{}/fd", monitor.monitor.pid))
        .expect("fds")
        .flatten()
        .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
        .collect();
    assert!(
        !fds.contains(&leak_path),
        "the monitor holds the starter's file: {fds:?}"
    );
}

#[test]
fn state_directories_are_private_to_root() {
    use std::os::unix::fs::PermissionsExt;
    let (sb, image) = sandbox();
    sb.write("volume.toml", "[volume.data]\n");
    container(
        &sb,
        &image,
        "private",
        // Not root inside: root-only state and run roots must not get in a container's way.
        r#"mounts = ["data:/data"]
user = "1000:1000"
command = ["sh", "-c", "test $(id -u) = 1000 && ls /data"]"#,
    );
    let (code, _, err) = sb.run("private");
    assert_eq!(code, 0, "{err}");
    let run_root = &sb.runtime.layout().run_root;
    let dirs = [
        "containers",
        "volumes",
        "layers",
        "content",
        "images",
        "tmp",
    ]
    .map(|d| sb.root().join(d))
    .into_iter()
    .chain([sb.root()])
    .chain(["", "c", "c/embedded", "seccomp"].map(|d| run_root.join(d)));
    for dir in dirs {
        let mode = std::fs::metadata(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    }
}

#[test]
fn prune_keeps_the_layers_of_a_container_whose_image_moved_on() {
    let sb = Sandbox::new();
    let first = ImageBuilder::new("amd64")
        .layer(busybox_layer())
        .env("PATH", BUSYBOX_PATH)
        .oci();
    let reference = sb.image("moving", &first);
    container(&sb, &reference, "old", r#"command = ["sleep", "300"]"#);
    let record = sb.start("old");
    // The same reference now names another image: pull it, then prune.
    let second = ImageBuilder::new("amd64")
        .layer(
            LayerBuilder::new()
                .dir("bin", 0o755)
                .file("bin/other", "x", 0o755)
                .build(crate::support::images::Compression::Gzip),
        )
        .oci();
    sb.image("moving", &second);
    let out = sb.berth(&["pull", &reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sb.berth(&["prune", "images", sb.desired().to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for layer in &record.layers {
        assert!(
            layer.exists(),
            "{} was pruned under a running container",
            layer.display()
        );
    }
    let out = sb.berth(&["exec", "old", "--", "sh", "-c", "echo alive"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "alive\n");
}

#[test]
fn exec_relays_stdio_through_pipes_of_its_own() {
    use std::io::Write;
    let (sb, image) = sandbox();
    container(&sb, &image, "io", r#"command = ["sleep", "300"]"#);
    sb.start("io");
    // Without -i the process reads the container's /dev/null; its output is a pipe of
    // berth's, never the caller's own descriptor.
    let out = sb.berth(&[
        "exec",
        "io",
        "--",
        "sh",
        "-c",
        "readlink /proc/self/fd/0; readlink /proc/self/fd/1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() == 2 && lines[0] == "/dev/null" && lines[1].starts_with("pipe:"),
        "{text}"
    );
    // Input reaches it and the output comes back, stderr apart.
    let mut child = sb
        .command(&[
            "exec",
            "-i",
            "io",
            "--",
            "sh",
            "-c",
            "tr a-z A-Z; echo done >&2",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("exec");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hello through pipes\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "HELLO THROUGH PIPES\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "done\n");
}

#[test]
fn a_volume_is_removed_only_when_asked_and_never_while_in_use() {
    let (sb, image) = sandbox();
    sb.write("volume.toml", "[volume.keep]\n");
    container(
        &sb,
        &image,
        "user",
        r#"mounts = ["keep:/data"]
command = ["sh", "-c", "echo precious > /data/file"]"#,
    );
    let record = sb.start("user");
    sb.wait_exit(&record.id, Duration::from_secs(10));
    let out = sb.berth(&["volume", "rm", "keep"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&record.id));
    assert!(sb.root().join("volumes/keep/_data/file").exists());
    let out = sb.berth(&["rm", &record.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Removing the container kept the volume.
    let out = sb.berth(&["volume", "ls", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed[0]["name"], "keep");
    let out = sb.berth(&["volume", "rm", "keep"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!sb.root().join("volumes/keep").exists());
}

#[test]
fn exec_forwards_termination_signals_to_the_process() {
    let (sb, image) = sandbox();
    container(&sb, &image, "sig", r#"command = ["sleep", "300"]"#);
    sb.start("sig");
    let mut child = sb
        .command(&[
            "exec",
            "sig",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("exec");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&seen).contains("ready") {
        assert!(Instant::now() < deadline, "the command never started");
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(&mut stdout, &mut buf).expect("read");
        seen.extend_from_slice(&buf[..n]);
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM berth exec");
    let status = child.wait().expect("wait");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read");
    assert_eq!(status.code(), Some(3), "{rest}");
    assert!(rest.contains("got-term"), "{rest}");
}

#[test]
fn an_exec_signalled_while_it_is_set_up_leaves_nothing_running() {
    // What a health check's timeout does to `berth exec --own-group`, at every moment of the
    // setup: the signal waits until there is a process, then its group goes.
    let (sb, image) = sandbox();
    container(&sb, &image, "early", r#"command = ["sleep", "300"]"#);
    sb.start("early");
    for i in 0..24u64 {
        let mut child = sb
            .command(&[
                "exec",
                "--own-group",
                "early",
                "--",
                "sh",
                "-c",
                "sleep 1000 & sleep 1000",
            ])
            .spawn()
            .expect("exec");
        std::thread::sleep(Duration::from_millis(2 + 3 * i));
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
            rustix::process::Signal::TERM,
        )
        .expect("SIGTERM berth exec");
        child.wait().expect("wait");
    }
    let (alive, listing) = sb.left_running("early");
    assert!(alive.is_empty(), "left running: {alive:?}\n{listing}");
}

#[test]
fn ps_lists_running_and_with_all_the_ended_containers() {
    let (sb, image) = sandbox();
    container(&sb, &image, "listed", r#"command = ["sleep", "300"]"#);
    let record = sb.start("listed");
    let rows = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["ps", "--json"];
        all.extend_from_slice(args);
        let out = sb.berth(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let running = rows(&[]);
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["id"], record.id.as_str());
    assert_eq!(running[0]["state"], "running");
    assert!(running[0]["pid"].as_i64().is_some_and(|p| p > 1));
    let out = sb.berth(&["stop", "-t", "0", "listed"]);
    assert!(out.status.success());
    assert!(
        rows(&[]).is_empty(),
        "a stopped container is not listed without -a"
    );
    let all = rows(&["-a"]);
    assert_eq!(all[0]["state"], "exited");
    assert_eq!(all[0]["exit_code"], 137);
    assert_eq!(all[0]["spec_hash"], record.spec_hash.as_str());
}

#[test]
fn damaged_records_leave_the_container_listable_and_removable() {
    let (sb, image) = sandbox();
    container(&sb, &image, "hurt", r#"command = ["sleep", "300"]"#);
    let running = sb.start("hurt");
    let done = {
        container(&sb, &image, "done", r#"command = ["true"]"#);
        let r = sb.start("done");
        sb.wait_exit(&r.id, Duration::from_secs(10));
        r
    };
    // A power loss can leave any of these torn; truncate one of each kind.
    let paths = |id: &str| sb.runtime.layout().container(id);
    std::fs::write(paths(&done.id).exit(), b"{\"code\":").expect("truncate exit.json");
    std::fs::write(paths(&running.id).record(), b"").expect("truncate container.json");
    let out = sb.berth(&["ps", "-a", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    let state = |id: &str| {
        rows.iter()
            .find(|r| r["id"] == id)
            .map(|r| r["state"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(state(&done.id).as_deref(), Some("lost"), "{rows:?}");
    assert_eq!(state(&running.id).as_deref(), Some("damaged"), "{rows:?}");
    for id in [&done.id, &running.id] {
        let out = sb.berth(&["rm", "-f", id]);
        assert!(
            out.status.success(),
            "rm {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!paths(id).dir.exists());
    }
    // The running one's processes and cgroup went with it.
    let cgroup = Path::new("/sys/fs/cgroup/pids").join(running.cgroup_path.trim_start_matches('/'));
    assert!(!cgroup.exists(), "cgroup left behind");
}

#[test]
fn exec_refuses_a_container_whose_seccomp_program_is_not_the_recorded_one() {
    let (sb, image) = sandbox();
    container(&sb, &image, "guarded", r#"command = ["sleep", "300"]"#);
    let record = sb.start("guarded");
    let paths = sb.runtime.layout().container(&record.id);
    // Tampered program.
    let bpf = paths.dir.join("seccomp.bpf");
    let original = std::fs::read(&bpf).expect("bpf");
    let mut tampered = original.clone();
    tampered.truncate(tampered.len() - 8);
    std::fs::write(&bpf, &tampered).expect("tamper");
    let out = sb.berth(&["exec", "guarded", "--", "true"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not the program recorded"));
    std::fs::write(&bpf, &original).expect("restore");
    // A record that names no program while the bundle has one (an older berth's).
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(paths.record()).expect("record")).expect("json");
    json.as_object_mut()
        .expect("object")
        .remove("seccomp_sha256");
    std::fs::write(paths.record(), serde_json::to_vec(&json).expect("encode")).expect("write");
    let out = sb.berth(&["exec", "guarded", "--", "true"]);
    assert!(!out.status.success(), "ran without the seccomp program");
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no seccomp program"));
}

#[test]
fn exec_keeps_relaying_after_the_process_closes_its_output() {
    let (sb, image) = sandbox();
    container(&sb, &image, "quiet", r#"command = ["sleep", "300"]"#);
    sb.start("quiet");
    // All the input arrives although the process closed stdout and stderr first.
    let input = vec![b'x'; 512 * 1024];
    let mut child = sb
        .command(&[
            "exec",
            "-i",
            "quiet",
            "--",
            "sh",
            "-c",
            "exec >/dev/null 2>&1; cat > /tmp/in",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("exec");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&input).expect("write");
    }
    assert!(child.wait().expect("wait").success());
    let out = sb.berth(&["exec", "quiet", "--", "wc", "-c", "/tmp/in"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next(),
        Some("524288")
    );
    // Without -i the caller's input is not consumed: the next reader still gets it.
    let script = format!(
        "printf 'one\\ntwo\\n' | while read x; do echo $x; {} --root {} exec quiet -- true; done",
        crate::support::sandbox::BERTH,
        sb.root().display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");
}
