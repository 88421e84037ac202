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

fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    super::mountinfo::parse(text)
        .into_iter()
        .filter_map(|m| {
            let unified = match m.fstype.as_str() {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            let controllers = if unified {
                Vec::new()
            } else {
                m.super_options
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o))
                    .map(String::from)
                    .collect()
            };
            Some(Hierarchy {
                mount_point: PathBuf::from(m.mount_point),
                unified,
                controllers,
            })
        })
        .collect()
}

fn dir_of(h: &Hierarchy, cgroup_path: &str) -> PathBuf {
    h.mount_point.join(cgroup_path.trim_start_matches('/'))
}

/// OOM kills counted in the container's memory cgroup (v1 `memory.oom_control`, v2
/// `memory.events`); `None` if neither can be read.
pub(crate) fn oom_kills(hierarchies: &[Hierarchy], cgroup_path: &str) -> Option<u64> {
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

/// Remove the container's cgroup from every hierarchy, with any cgroup made below it
/// (deepest first: a cgroup with children cannot be removed, which once let a container that
/// could write cgroupfs make itself unremovable). Its processes have exited (they died with
/// the init of their pid namespace); a directory still busy is reported.
pub fn remove(hierarchies: &[Hierarchy], cgroup_path: &str) -> std::io::Result<()> {
    let mut first_error = None;
    for h in hierarchies {
        let dir = dir_of(h, cgroup_path);
        if let Err(e) = remove_tree(&dir, MAX_DEPTH)
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

/// cgroupfs limits nesting far below this; the bound only keeps recursion finite.
const MAX_DEPTH: u32 = 64;

fn remove_tree(dir: &Path, depth: u32) -> std::io::Result<()> {
    if depth > 0 {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        // Gone meanwhile (removed by the container's own monitor): done.
                        match remove_tree(&entry.path(), depth - 1) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                            _ => {}
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    remove_dir_retrying(dir)
}

/// The cgroups directly below `scope` (berth's first path component) in any hierarchy: the
/// ids of the containers that exist in the kernel, whatever berth's records say.
pub(crate) fn children_of_scope(
    hierarchies: &[Hierarchy],
    scope: &str,
) -> std::io::Result<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    for h in hierarchies {
        let dir = dir_of(h, scope);
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    if entry.file_type().is_ok_and(|t| t.is_dir())
                        && let Some(name) = entry.file_name().to_str()
                    {
                        names.insert(name.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(names.into_iter().collect())
}

/// Every process in the container's cgroup or below it, in any hierarchy, sorted.
/// Kill every process in the cgroup `cgroup_path` (and below it) and wait, at most
/// `timeout`, until none is left. Each process is opened as a pidfd first and its
/// membership checked after, by reading the cgroup again: the signal cannot reach a process
/// that reused the pid after leaving the cgroup. Reading `cgroup.procs` rather than
/// `/proc/PID/cgroup` works from inside a cgroup namespace too.
pub(crate) fn kill_all(
    hierarchies: &[Hierarchy],
    cgroup_path: &str,
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let pids = processes(hierarchies, cgroup_path);
        if pids.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "processes {pids:?} are still in its cgroup after {}s",
                    timeout.as_secs()
                ),
            ));
        }
        let opened: Vec<(i32, std::os::fd::OwnedFd)> = pids
            .iter()
            .filter(|&&pid| pid > 0)
            .filter_map(|&pid| Some((pid, crate::sys::ProcessId::of(pid).ok()?.open().ok()??)))
            .collect();
        let members = processes(hierarchies, cgroup_path);
        for (pid, fd) in &opened {
            if members.binary_search(pid).is_ok() {
                let _ = crate::sys::send_signal(fd, crate::spec::signal::Signal::KILL.0);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub(crate) fn processes(hierarchies: &[Hierarchy], cgroup_path: &str) -> Vec<i32> {
    fn collect(dir: &Path, depth: u32, out: &mut std::collections::BTreeSet<i32>) {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if depth == 0 {
            return;
        }
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect(&entry.path(), depth - 1, out);
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    for h in hierarchies {
        collect(&dir_of(h, cgroup_path), MAX_DEPTH, &mut out);
    }
    out.into_iter().collect()
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
    }

    #[test]
    fn reads_this_machine() {
        let h = hierarchies().expect("mountinfo");
        assert!(!h.is_empty(), "no cgroup hierarchy mounted");
        assert_eq!(oom_kills(&h, "/berth-test-does-not-exist"), None);
        remove(&h, "/berth-test-does-not-exist").expect("absent cgroups are fine");
        assert!(
            children_of_scope(&h, "/berth-test-does-not-exist")
                .expect("absent scope")
                .is_empty()
        );
        assert!(processes(&h, "/berth-test-does-not-exist").is_empty());
    }

    #[test]
    fn a_cgroup_with_children_is_removed_deepest_first() {
        // Root, as the whole suite (it runs containers).
        let h = hierarchies().expect("mountinfo");
        let pids = h
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == "pids") || h.unified)
            .expect("a pids or unified hierarchy");
        let scope = format!("/berth-unit-{}", std::process::id());
        let deep = dir_of(pids, &format!("{scope}/c-00000000/x/y"));
        std::fs::create_dir_all(&deep).expect("made nested cgroups");
        assert_eq!(
            children_of_scope(std::slice::from_ref(pids), &scope).expect("listed"),
            ["c-00000000"]
        );
        remove(std::slice::from_ref(pids), &format!("{scope}/c-00000000")).expect("removed");
        assert!(!dir_of(pids, &format!("{scope}/c-00000000")).exists());
        std::fs::remove_dir(dir_of(pids, &scope)).expect("scope removed");
    }
}
