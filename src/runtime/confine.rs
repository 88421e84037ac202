//! What the monitor makes sure of between the engine's create and start, whatever the
//! engine: cgroupfs and every read-only bind are read-only all the way down — not just the
//! top mount, which is all a plain `MS_RDONLY` remount changes (a `:ro` bind of `/` still holds
//! a writable /proc, /sys, cgroupfs and /dev/shm) — and the init's own mount table is read
//! back to prove it before the container runs a single instruction of its own.

use oci_spec::runtime::Spec;

use super::sys;

/// Where the engine mounts the cgroup filesystem. libcontainer mounts the v1 hierarchies
/// writable whatever the spec says, which let a container raise its own limits.
pub const CGROUPFS: &str = "/sys/fs/cgroup";

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error(
        "making {target} read-only inside the container needs mount_setattr(2), Linux 5.12 or later (this kernel is {kernel}); berth refuses to start a container it cannot confine"
    )]
    Unsupported { target: String, kernel: String },
    #[error("making {target} read-only inside the container: {source}")]
    Seal {
        target: String,
        source: std::io::Error,
    },
    #[error("entering the container's mount namespace: {source}")]
    Namespace { source: std::io::Error },
    #[error("reading the container's mount table: {source}")]
    MountTable { source: std::io::Error },
    #[error(
        "{mount_point} inside the container is still writable after {target} was made read-only; refusing to start it"
    )]
    StillWritable { target: String, mount_point: String },
    #[error("{target} is not in the container's mount table after it was made read-only")]
    Missing { target: String },
}

/// The mount points that must be read-only with everything below them: cgroupfs, and every
/// bind mount the spec asks to be read-only (`:ro` binds and volumes, the generated /etc
/// files of a read-only container).
pub fn read_only_targets(spec: &Spec) -> Vec<String> {
    let mut targets: Vec<String> = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let destination = m.destination().to_string_lossy().into_owned();
        let options = m.options().as_deref().unwrap_or_default();
        let bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        let read_only = options.iter().any(|o| o == "ro");
        let wanted = destination == CGROUPFS || (bind && read_only);
        if wanted && !targets.contains(&destination) {
            targets.push(destination);
        }
    }
    targets
}

/// Make `targets` read-only recursively inside the created (not yet started) container
/// whose init is `pid`, then check the init's mount table: every mount at or below each
/// target must be read-only.
pub fn seal(pid: i32, targets: &[String]) -> Result<(), ConfineError> {
    if targets.is_empty() {
        return Ok(());
    }
    let ids = match sys::seal_read_only_in(pid, targets) {
        Ok(Ok(ids)) => ids,
        Ok(Err(failure)) => {
            let source = std::io::Error::from_raw_os_error(failure.errno);
            let Some(target) = targets.get(failure.index) else {
                return Err(ConfineError::Namespace { source });
            };
            return Err(if failure.errno == libc::ENOSYS {
                ConfineError::Unsupported {
                    target: target.clone(),
                    kernel: kernel_release(),
                }
            } else {
                ConfineError::Seal {
                    target: target.clone(),
                    source,
                }
            });
        }
        Err(source) => return Err(ConfineError::Namespace { source }),
    };
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map_err(|source| ConfineError::MountTable { source })?;
    check(&mountinfo, targets, &ids)
}

/// One line of /proc/PID/mountinfo, the fields this module needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountLine {
    id: u64,
    parent: u64,
    mount_point: String,
    read_only: bool,
}

fn parse(mountinfo: &str) -> Vec<MountLine> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS …"
            let mut fields = line.split(' ');
            let id = fields.next()?.parse().ok()?;
            let parent = fields.next()?.parse().ok()?;
            let mount_point = fields.nth(2)?.to_string();
            let read_only = fields.next()?.split(',').any(|o| o == "ro");
            Some(MountLine {
                id,
                parent,
                mount_point,
                read_only,
            })
        })
        .collect()
}

/// Every mount at or below each target (found by mount id, so a target the engine reached
/// through a symlink is still found) must be read-only.
fn check(mountinfo: &str, targets: &[String], ids: &[u64]) -> Result<(), ConfineError> {
    let mounts = parse(mountinfo);
    let parent_of = |id: u64| mounts.iter().find(|m| m.id == id).map(|m| m.parent);
    for (target, &target_id) in targets.iter().zip(ids) {
        if !mounts.iter().any(|m| m.id == target_id) {
            return Err(ConfineError::Missing {
                target: target.clone(),
            });
        }
        for mount in &mounts {
            // Walk up to the namespace's root; a cycle cannot happen, but the walk is
            // bounded anyway.
            let mut cursor = Some(mount.id);
            let mut below = false;
            for _ in 0..=mounts.len() {
                match cursor {
                    Some(id) if id == target_id => {
                        below = true;
                        break;
                    }
                    Some(id) => cursor = parent_of(id).filter(|&p| p != id),
                    None => break,
                }
            }
            if below && !mount.read_only {
                return Err(ConfineError::StillWritable {
                    target: target.clone(),
                    mount_point: mount.mount_point.clone(),
                });
            }
        }
    }
    Ok(())
}

fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{MountBuilder, SpecBuilder};

    const TABLE: &str = "\
100 90 0:50 / / rw,relatime - overlay overlay rw
101 100 0:51 / /proc rw,nosuid - proc proc rw
102 100 0:52 / /sys ro,nosuid - sysfs sysfs ro
103 102 0:53 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro
104 103 0:30 /berth/x /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
105 100 8:1 / /host ro,relatime - ext4 /dev/vda rw
106 105 0:5 / /host/proc ro,relatime - proc proc rw
107 106 0:6 / /host/proc/sys/fs/binfmt_misc ro,relatime - binfmt_misc binfmt rw
108 105 0:7 / /host/dev/shm rw,relatime - tmpfs tmpfs rw
109 100 8:1 /data /data rw,relatime - ext4 /dev/vda rw
";

    #[test]
    fn every_mount_below_a_target_must_be_read_only() {
        let cgroup = vec![CGROUPFS.to_string()];
        check(TABLE, &cgroup, &[103]).expect("cgroupfs and its hierarchies are read-only");
        let host = vec!["/host".to_string()];
        match check(TABLE, &host, &[105]) {
            Err(ConfineError::StillWritable { mount_point, .. }) => {
                assert_eq!(mount_point, "/host/dev/shm")
            }
            other => panic!("a writable submount must be found: {other:?}"),
        }
        // A writable mount beside the target is none of its business.
        check(TABLE, &["/proc".to_string()], &[106]).expect("only below the target");
        match check(TABLE, &cgroup, &[999]) {
            Err(ConfineError::Missing { target }) => assert_eq!(target, CGROUPFS),
            other => panic!("{other:?}"),
        }
        // The root's parent is outside the table: the walk ends there.
        match check(TABLE, &["/".to_string()], &[100]) {
            Err(ConfineError::StillWritable { mount_point, .. }) => assert_eq!(mount_point, "/"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mount_lines_are_parsed_with_their_own_options() {
        let lines = parse(TABLE);
        assert_eq!(lines.len(), 10);
        assert_eq!(
            lines[4],
            MountLine {
                id: 104,
                parent: 103,
                mount_point: "/sys/fs/cgroup/memory".into(),
                // The per-mount options (ro), not the superblock's (rw).
                read_only: true,
            }
        );
        assert!(parse("garbage\n\n1 2").is_empty());
    }

    #[test]
    fn targets_are_cgroupfs_and_read_only_binds() {
        let mount = |dest: &str, typ: &str, options: &[&str]| {
            MountBuilder::default()
                .destination(dest)
                .typ(typ)
                .source("/x")
                .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
                .build()
                .expect("mount")
        };
        let spec = SpecBuilder::default()
            .mounts(vec![
                mount("/proc", "proc", &[]),
                mount("/sys", "sysfs", &["ro"]),
                mount(CGROUPFS, "cgroup", &["ro"]),
                mount("/host", "bind", &["rbind", "rprivate", "ro"]),
                mount("/rw", "bind", &["rbind", "rprivate"]),
                mount("/t", "tmpfs", &["ro"]),
                mount("/opt", "none", &["bind", "ro"]),
                mount("/host", "bind", &["rbind", "ro"]),
            ])
            .build()
            .expect("spec");
        assert_eq!(read_only_targets(&spec), [CGROUPFS, "/host", "/opt"]);
    }
}
