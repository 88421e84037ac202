//! The little the monitor needs from the cgroup filesystems once its container runs: where
//! the hierarchies are mounted, the OOM kill count, and removing the container's cgroup.
//! Read from /proc/self/mountinfo by hand so the idle monitor does not carry libcgroups.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// cgroup2 (unified) rather than a v1 hierarchy.
    pub unified: bool,
    /// v1 controllers (from the mount options), e.g. ["memory"].
    pub controllers: Vec<String>,
}

/// The v1 controllers (other mount options, such as `xattr` or `name=systemd`, are not).
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Every cgroup hierarchy mounted in this mount namespace.
pub fn hierarchies() -> std::io::Result<Vec<Hierarchy>> {
    Ok(parse_mountinfo(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

pub fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in text.lines() {
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTS"
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = before.split(' ').nth(4) else {
            continue;
        };
        let mut tail = after.split(' ');
        let (fstype, super_options) = (tail.next(), tail.nth(1));
        let unified = match fstype {
            Some("cgroup2") => true,
            Some("cgroup") => false,
            _ => continue,
        };
        let controllers = if unified {
            Vec::new()
        } else {
            super_options
                .unwrap_or_default()
                .split(',')
                .filter(|o| V1_CONTROLLERS.contains(o))
                .map(String::from)
                .collect()
        };
        out.push(Hierarchy {
            mount_point: PathBuf::from(unescape(mount_point)),
            unified,
            controllers,
        });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&text[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn dir_of(h: &Hierarchy, cgroup_path: &str) -> PathBuf {
    h.mount_point.join(cgroup_path.trim_start_matches('/'))
}

/// OOM kills counted in the container's memory cgroup (v1 `memory.oom_control`, v2
/// `memory.events`); `None` if neither can be read.
pub fn oom_kills(hierarchies: &[Hierarchy], cgroup_path: &str) -> Option<u64> {
    let memory_v1 = hierarchies
        .iter()
        .find(|h| !h.unified && h.controllers.iter().any(|c| c == "memory"));
    let file = match memory_v1 {
        Some(h) => dir_of(h, cgroup_path).join("memory.oom_control"),
        None => dir_of(hierarchies.iter().find(|h| h.unified)?, cgroup_path).join("memory.events"),
    };
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// Remove the container's cgroup from every hierarchy. Its processes have exited (they died
/// with the init of their pid namespace); a directory still busy is reported.
pub fn remove(hierarchies: &[Hierarchy], cgroup_path: &str) -> std::io::Result<()> {
    let mut first_error = None;
    for h in hierarchies {
        let dir = dir_of(h, cgroup_path);
        if let Err(e) = remove_dir_retrying(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            first_error.get_or_insert(std::io::Error::new(
                e.kind(),
                format!("removing {}: {e}", dir.display()),
            ));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A cgroup whose last task just exited can report EBUSY for a moment.
fn remove_dir_retrying(dir: &Path) -> std::io::Result<()> {
    let mut delay = std::time::Duration::from_millis(1);
    for _ in 0..8 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            other => return other,
        }
    }
    std::fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,memory
28 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
29 25 0:27 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
30 1 8:1 / /with\\040space rw - ext4 /dev/sda1 rw
";

    #[test]
    fn finds_v1_and_v2_hierarchies_with_their_controllers() {
        let h = parse_mountinfo(HYBRID);
        assert_eq!(h.len(), 4);
        assert!(h[0].unified && h[0].mount_point == Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h[1].controllers, ["memory"]);
        assert_eq!(h[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(h[2].mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(h[3].controllers.is_empty(), "{:?}", h[3].controllers);
        assert_eq!(unescape("/with\\040space"), "/with space");
    }

    #[test]
    fn reads_this_machine() {
        let h = hierarchies().expect("mountinfo");
        assert!(!h.is_empty(), "no cgroup hierarchy mounted");
        assert_eq!(oom_kills(&h, "/berth-test-does-not-exist"), None);
        remove(&h, "/berth-test-does-not-exist").expect("absent cgroups are fine");
    }
}
