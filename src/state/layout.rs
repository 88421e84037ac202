//! Where the runtime keeps things. One place computes every path, so the monitor, the CLI
//! and the reconciler can never disagree.
//!
//! ```text
//! <state root>/containers/<id>/container.json   what was asked for (written before start)
//!                             /config.json      the OCI runtime spec (this dir is the bundle)
//!                             /rootfs/          overlay mount point (mounted in the monitor's
//!                                               private mount namespace only)
//!                             /upper/ /work/    the container's writable layer
//!                             /etc/             generated hostname, hosts, resolv.conf
//!                             /logs/            container.log and its rotations
//!                             /monitor.json     monitor and init identities (written at start)
//!                             /exit.json        how the container ended (written by the monitor)
//!                             /monitor.log      the monitor's own messages
//! <run root>/c/<id>/                            the engine's state (tmpfs)
//! <run root>/files/<id>/                        its secrets and configs (always a tmpfs)
//! ```
//!
//! The run root is `/run/berth` for the default state root and `/run/berth-<hash>` for any
//! other, and cgroups live under `/berth` or `/berth-<hash>` likewise, so two state roots
//! (tests, a second instance) never see each other's containers.

use std::path::{Path, PathBuf};

const DEFAULT_STATE_ROOT: &str = "/var/lib/berth";

#[derive(Debug, Clone)]
pub struct Layout {
    pub state_root: PathBuf,
    pub run_root: PathBuf,
    /// First component of every cgroup path and prefix of every kernel object berth names.
    pub scope: String,
}

impl Layout {
    pub fn new(state_root: &Path) -> Layout {
        let scope = if state_root == Path::new(DEFAULT_STATE_ROOT) {
            "berth".to_string()
        } else {
            let hash = crate::sha256::hex_digest(state_root.as_os_str().as_encoded_bytes());
            format!("berth-{}", &hash[..12])
        };
        Layout {
            state_root: state_root.to_path_buf(),
            run_root: Path::new("/run").join(&scope),
            scope,
        }
    }

    pub(crate) fn containers(&self) -> PathBuf {
        self.state_root.join("containers")
    }

    pub fn container(&self, id: &str) -> ContainerPaths {
        ContainerPaths {
            dir: self.containers().join(id),
        }
    }

    /// Where the engine keeps its per-container state. Short on purpose: the engine puts a
    /// unix socket in it, and socket paths are limited to 108 bytes.
    pub fn engine_root(&self) -> PathBuf {
        self.run_root.join("c")
    }

    /// Secrets and configs given to containers: a tmpfs, root-only (`runtime/files.rs`).
    pub fn files_root(&self) -> PathBuf {
        self.run_root.join("files")
    }

    pub fn container_files(&self, id: &str) -> PathBuf {
        self.files_root().join(id)
    }

    pub fn cgroup_path(&self, id: &str) -> String {
        format!("/{}/{id}", self.scope)
    }
}

/// Whether `id` is a container id berth makes: `NAME-` and 8 hex digits, NAME a DNS label.
/// Ids become paths and cgroup names; nothing else may.
pub(crate) fn valid_id(id: &str) -> bool {
    let Some((name, suffix)) = id.rsplit_once('-') else {
        return false;
    };
    suffix.len() == 8
        && suffix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[derive(Debug, Clone)]
pub struct ContainerPaths {
    pub dir: PathBuf,
}

impl ContainerPaths {
    pub fn record(&self) -> PathBuf {
        self.dir.join("container.json")
    }
    pub(crate) fn bundle(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub(crate) fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub(crate) fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub(crate) fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn monitor(&self) -> PathBuf {
        self.dir.join("monitor.json")
    }
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    /// The `[container.*]` entry it was made from, as resolved (for `plan`'s field diff).
    pub fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }
    /// The health check's verdict about the current run.
    pub fn health(&self) -> PathBuf {
        self.dir.join("health.json")
    }
    pub(crate) fn restarts(&self) -> PathBuf {
        self.dir.join("restarts.json")
    }
    pub(crate) fn monitor_log(&self) -> PathBuf {
        self.dir.join("monitor.log")
    }
    /// The writable layer's own filesystem (`disk`), an ext4 image.
    pub fn disk_image(&self) -> PathBuf {
        self.dir.join("disk.img")
    }
    /// Where the monitor mounts it; `upper/` and `work/` are then inside it.
    pub(crate) fn disk(&self) -> PathBuf {
        self.dir.join("disk")
    }
    /// Lower directory for an image without layers (overlayfs needs at least one).
    pub(crate) fn empty_lower(&self) -> PathBuf {
        self.dir.join("empty")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_they_become_paths() {
        for ok in ["web-0123abcd", "a-b-c-ffffffff", "x1-00000000"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "web",
            "web-0123abc",
            "web-0123ABCD",
            "../x-0123abcd",
            "-x-0123abcd",
            "a/b-0123abcd",
            "web--0123abcd",
            "",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_non_default_root_gets_its_own_scope() {
        let default = Layout::new(Path::new(DEFAULT_STATE_ROOT));
        assert_eq!(
            (default.scope.as_str(), default.run_root.as_path()),
            ("berth", Path::new("/run/berth"))
        );
        let other = Layout::new(Path::new("/srv/berth"));
        assert!(other.scope.starts_with("berth-") && other.scope.len() == 18);
        assert_eq!(
            other.cgroup_path("web-0123abcd"),
            format!("/{}/web-0123abcd", other.scope)
        );
    }
}
