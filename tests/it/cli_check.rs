//! `berth check`, the host preflight, as the unit's ExecStartPre and the quick start run it:
//! this machine passes; a state root on an overlayfs and a PATH without `nft` fail with
//! their fixes; nothing is left behind.

use std::path::Path;
use std::process::{Command, Output};

use berth::preflight::CHECKS;

fn check(root: &Path, json: bool, path_var: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .arg("--root")
        .arg(root)
        .arg("check")
        .env("NO_COLOR", "1");
    if json {
        command.arg("--json");
    }
    if let Some(path_var) = path_var {
        command.env("PATH", path_var);
    }
    command.output().expect("run berth check")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The line of check `name` and the fix line after it, if any.
fn line_of(stdout: &str, name: &str) -> (String, Option<String>) {
    let mut lines = stdout.lines();
    let line = lines
        .by_ref()
        .find(|l| l.split_whitespace().nth(1) == Some(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no line for {name}: {stdout}"))
        .to_string();
    let fix = lines
        .next()
        .filter(|l| l.trim_start().starts_with("fix: "))
        .map(|l| l.trim_start().trim_start_matches("fix: ").to_string());
    (line, fix)
}

/// Mount points under `dir` in this mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// An overlay mounted at `dir/merged` for the life of the value.
struct OverlayMount(tempfile::TempDir);

impl OverlayMount {
    fn new() -> OverlayMount {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir(dir.path().join(d)).expect("mkdir");
        }
        let p = |d: &str| dir.path().join(d).display().to_string();
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                p("lower"),
                p("upper"),
                p("work")
            ))
            .arg(p("merged"))
            .status()
            .expect("mount");
        assert!(status.success(), "mount overlay");
        OverlayMount(dir)
    }

    fn merged(&self) -> std::path::PathBuf {
        self.0.path().join("merged")
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.merged()).status();
    }
}

#[test]
fn this_machine_passes_and_every_check_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let out = check(&root, false, None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for name in CHECKS {
        let (line, _) = line_of(&stdout, name);
        assert!(!line.starts_with("[FAIL]"), "{line}");
    }
    assert_eq!(
        stdout.lines().count(),
        CHECKS.len() + 1 + stdout.matches("fix: ").count()
    );
    let summary = stdout.lines().last().expect("summary");
    assert!(
        summary.starts_with(&format!("{}: ", root.display())) && summary.ends_with(", 0 failed"),
        "{summary}"
    );
    let (line, _) = line_of(&stdout, "state-root");
    assert!(
        line.contains("(the state root does not exist yet)")
            && line.contains("an overlay with its upper dir here mounted"),
        "{line}"
    );
    // Nothing left behind: no scratch directory, no mount, the root not created.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(mounts_under(dir.path()), Vec::<String>::new());
}

#[test]
fn json_lists_every_check_with_a_fix_for_each_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(dir.path(), true, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["ok"], true);
    assert_eq!(report["root"], dir.path().to_str().expect("utf-8"));
    let checks = report["checks"].as_array().expect("checks");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, CHECKS);
    for c in checks {
        let verdict = c["verdict"].as_str().expect("verdict");
        assert!(["ok", "warn"].contains(&verdict), "{c}");
        assert!(!c["found"].as_str().expect("found").is_empty(), "{c}");
        assert_eq!(c.get("fix").is_some(), verdict != "ok", "{c}");
    }
    assert!(
        std::fs::read_dir(dir.path())
            .expect("list")
            .next()
            .is_none(),
        "scratch left behind"
    );
}

#[test]
fn a_state_root_on_an_overlayfs_fails_with_the_fix() {
    let overlay = OverlayMount::new();
    let root = overlay.merged().join("berth");
    let out = check(&root, false, None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let (line, fix) = line_of(&stdout, "state-root");
    assert!(
        line.starts_with("[FAIL] state-root: ") && line.contains(": overlayfs, "),
        "{line}"
    );
    assert!(
        line.contains("an overlay with its upper dir here failed at mount"),
        "{line}"
    );
    let fix = fix.expect("fix line");
    assert!(
        fix.starts_with("an overlayfs cannot hold an overlay upper dir")
            && fix.contains("bind-mount a directory of a real filesystem"),
        "{fix}"
    );
    assert!(stdout.contains(" 1 failed"), "{stdout}");

    let out = check(&root, true, None);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["ok"], false);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(failed, ["state-root"]);
    // The overlay's own directories hold no scratch.
    let left: Vec<_> = std::fs::read_dir(overlay.merged()).expect("list").collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn without_nft_on_path_nftables_fails_with_the_package() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = tempfile::tempdir().expect("tempdir");
    let out = check(dir.path(), false, Some(empty.path()));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let (line, fix) = line_of(&stdout, "nftables");
    assert_eq!(line, "[FAIL] nftables: no `nft` on PATH");
    assert_eq!(fix.as_deref(), Some("apt-get install nftables"));
    let (line, fix) = line_of(&stdout, "forward-policy");
    assert!(
        line.starts_with("[warn] forward-policy: not checked"),
        "{line}"
    );
    assert_eq!(fix.as_deref(), Some("see the nftables check"));
}

#[test]
fn the_unit_and_the_quick_start_run_it_first() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(manifest.join("systemd/berth.service")).expect("unit");
    let root_of = |prefix: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|l| l.split("--root ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
    };
    let pre = unit
        .lines()
        .find(|l| l.starts_with("ExecStartPre="))
        .expect("ExecStartPre");
    assert!(pre.ends_with(" check"), "{pre}");
    assert_eq!(root_of("ExecStartPre="), root_of("ExecStart="));
    let quickstart =
        std::fs::read_to_string(manifest.join("scripts/quickstart")).expect("quickstart");
    let check_at = quickstart.find("\" check").expect("quickstart runs check");
    let apply_at = quickstart.find("apply \"$examples\"").expect("apply");
    assert!(check_at < apply_at);
}

#[test]
fn a_read_only_state_root_fails_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(dir.path())
        .status()
        .expect("mount");
    assert!(status.success(), "mount tmpfs");
    let out = check(dir.path(), false, None);
    let _ = Command::new("umount").arg(dir.path()).status();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let (line, fix) = line_of(&stdout, "state-root");
    assert!(
        line.starts_with("[FAIL] state-root: ")
            && line.contains("failed at mkdir: Read-only file system"),
        "{line}"
    );
    let fix = fix.expect("fix");
    assert!(
        fix.contains("lost at reboot") && fix.contains("make the directory writable by root"),
        "{fix}"
    );
    // Only the state root's own check fails: the kernel's overlay trial has its own tmpfs.
    let (line, _) = line_of(&stdout, "overlayfs");
    assert!(line.starts_with("[ok]"), "{line}");
}

/// The v2 path on this v1 (hybrid) machine: in a mount namespace of its own, berth sees only
/// a cgroup2 mount, whose controllers the v1 hierarchies still hold.
#[test]
fn a_unified_hierarchy_without_its_controllers_fails() {
    let host_memory = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .lines()
            .any(|l| l.contains(" - cgroup cgroup ") && l.split(',').any(|o| o == "memory"))
    };
    assert!(
        host_memory(),
        "this test needs a v1 (hybrid) host, as CI here is"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let script = format!(
        "umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && exec {} --root {} \
         check --json",
        env!("CARGO_BIN_EXE_berth"),
        dir.path().display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let cgroups = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "cgroups")
        .expect("cgroups check")
        .clone();
    assert_eq!(cgroups["verdict"], "fail", "{cgroups}");
    let found = cgroups["found"].as_str().expect("found");
    assert!(found.starts_with("v2 (unified); the "), "{found}");
    assert!(found.contains("memory"), "{found}");
    let fix = cgroups["fix"].as_str().expect("fix");
    assert!(fix.contains("systemd.unified_cgroup_hierarchy=1"), "{fix}");
    // The host's hierarchies are untouched.
    assert!(host_memory());
}
