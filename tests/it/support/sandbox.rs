//! A berth installation of its own for one test: a temporary state root, a desired-state
//! directory, test images as OCI layouts, and the berth binary. Dropping it stops and
//! removes every container it made and deletes the cgroups and run directory of its scope,
//! even when the test failed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth::runtime::{Runtime, State};
use berth::state::record::ContainerRecord;

use super::images::TestImage;
use super::layout::write_layout;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub runtime: Runtime,
    /// `BERTH_DEFAULT_SUBNET` of every berth this sandbox runs: a /24 of its own
    /// (10.212.N.0/24), so default networks of tests running side by side never overlap.
    pub default_subnet: String,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("berth-it-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("desired")).expect("desired dir");
        let runtime =
            berth::wiring::runtime_with_monitor(&dir.path().join("root"), Path::new(BERTH));
        static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Sandbox {
            dir,
            runtime,
            default_subnet: format!("10.212.{n}.0/24"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn desired(&self) -> PathBuf {
        self.dir.path().join("desired")
    }

    /// Write `image` as an OCI layout and return its `oci:` reference.
    pub fn image(&self, name: &str, image: &TestImage) -> String {
        let layout = self.dir.path().join("images").join(name);
        write_layout(&layout, &[("latest", image)], &[]);
        format!("oci:{}:latest", layout.display())
    }

    /// Write one desired-state file.
    pub fn write(&self, file: &str, toml: &str) {
        std::fs::write(self.desired().join(file), toml).expect("write desired file");
    }

    /// `berth --root ROOT ARGS…`, waiting for it.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run berth")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BERTH);
        cmd.arg("--root")
            .arg(self.root())
            .args(args)
            .env("BERTH_DEFAULT_SUBNET", &self.default_subnet);
        cmd
    }

    /// `berth run --rm DIR NAME`: (exit code, stdout, stderr).
    pub fn run(&self, name: &str) -> (i32, String, String) {
        self.run_with(&["--rm"], name)
    }

    /// `berth run DIR NAME`, keeping the container afterwards.
    pub fn run_keep(&self, name: &str) -> (i32, String, String) {
        self.run_with(&[], name)
    }

    fn run_with(&self, flags: &[&str], name: &str) -> (i32, String, String) {
        let desired = self.desired();
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend([desired.to_str().expect("utf-8"), name]);
        let out = self.berth(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `berth run -d DIR NAME`: the new container's record.
    pub fn start(&self, name: &str) -> ContainerRecord {
        let desired = self.desired();
        let out = self.berth(&["run", "-d", desired.to_str().expect("utf-8"), name]);
        assert!(
            out.status.success(),
            "berth run -d {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.runtime
            .record(&id)
            .expect("record of the new container")
    }

    pub fn state(&self, id: &str) -> State {
        self.runtime.state(id).expect("state")
    }

    /// Wait until the container has exited; its exit record.
    pub fn wait_exit(&self, id: &str, timeout: Duration) -> berth::state::record::ExitRecord {
        let deadline = Instant::now() + timeout;
        loop {
            match self.state(id) {
                State::Exited(exit) => return exit,
                other if Instant::now() > deadline => {
                    panic!("{id} did not exit within {timeout:?}: {other:?}")
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The container's log output (stdout and stderr records, content only).
    pub fn logs(&self, id: &str) -> String {
        let out = self.berth(&["logs", id]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The cgroup directories of this sandbox's scope on every mounted hierarchy.
    /// What runs in container `name` besides its init and the shell looking, as
    /// "PID (COMM) STATE" lines; orphans the init does not reap stay as zombies and are left
    /// out. Also the whole listing, for messages.
    pub fn left_running(&self, name: &str) -> (Vec<String>, String) {
        let out = self.berth(&[
            "exec",
            name,
            "--",
            "sh",
            "-c",
            "for p in /proc/[0-9]*; do read -r l < $p/stat 2>/dev/null && set -- $l && echo \"$1 $2 $3\"; done",
        ]);
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let alive = listing
            .lines()
            .filter(|l| !l.ends_with(" Z"))
            .filter(|l| !l.starts_with("1 ") && !l.contains("(sh)"))
            .map(str::to_string)
            .collect();
        (alive, listing)
    }

    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let scope = &self.runtime.layout().scope;
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for entry in entries.flatten() {
                let dir = entry.path().join(scope);
                if dir.exists() {
                    out.push(dir);
                }
            }
        }
        let unified = Path::new("/sys/fs/cgroup").join(scope);
        if unified.exists() {
            out.push(unified);
        }
        out
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let mut problems = Vec::new();
        let mut ids: Vec<String> = self
            .runtime
            .list()
            .map(|l| l.into_iter().map(|r| r.id).collect())
            .unwrap_or_default();
        ids.extend(self.runtime.unreadable().unwrap_or_default());
        for id in ids {
            if let Err(e) = self.runtime.remove(&id, true) {
                problems.push(format!("removing {id}: {e}"));
            }
        }
        // Removing the containers removed their cgroups; only the empty scope directories
        // may remain. Anything else is a leak: clean it up, then fail the test.
        for dir in self.cgroup_dirs() {
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in children.flatten().filter(|c| c.path().is_dir()) {
                    problems.push(format!("cgroup left behind: {}", child.path().display()));
                    let _ = std::fs::remove_dir(child.path());
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
        // Networks: removed through berth, then anything of this scope still in the kernel
        // (a bridge or veth named with its alias, its nftables table) is a leak.
        let networks = berth::network::Networks::new(self.runtime.layout());
        for record in networks.records().unwrap_or_default() {
            if let Err(e) = networks.remove(&record.name) {
                problems.push(format!("removing network {}: {e}", record.name));
            }
        }
        problems.extend(super::net::remove_leftovers(&self.runtime.layout().scope));
        // Secrets' and configs' tmpfs, mounted by berth when /run is not one.
        let files = self.runtime.layout().files_root();
        let _ = rustix::mount::unmount(&files, rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir_all(&self.runtime.layout().run_root);
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("sandbox cleanup found leaks:\n{}", problems.join("\n"));
        }
    }
}
