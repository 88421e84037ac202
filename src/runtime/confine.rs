//! What the monitor makes sure of between the engine's create and start, whatever the
//! engine: cgroupfs and every read-only bind are read-only all the way down — not just the
//! top mount, which is all a plain `MS_RDONLY` remount changes (a `:ro` bind of `/` still holds
//! a writable /proc, /sys, cgroupfs and /dev/shm) — procfs reached through such a bind follows
//! no magic links (/proc/PID/root of a host process would lead to its writable mounts), and
//! the init's own mount table is read back to prove it before the container runs a single
//! instruction of its own.

use oci_spec::runtime::Spec;

use super::bundle::{has_option, is_bind};
use super::mountinfo::{MountLine, parse};
use crate::sys::{self, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY, MountAttrChange, SealStep};

/// Where the engine mounts the cgroup filesystem. libcontainer mounts the v1 hierarchies
/// writable whatever the spec says, which let a container raise its own limits.
const CGROUPFS: &str = "/sys/fs/cgroup";

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfineError {
    #[error(
        "making {target} read-only inside the container needs {needs}, Linux {version} or later (this kernel is {kernel}); berth refuses to start a container it cannot confine"
    )]
    Unsupported {
        target: String,
        needs: &'static str,
        version: &'static str,
        kernel: String,
    },
    #[error(
        "the mount target {target} leads through a symbolic link inside the container; name the real path in the entry"
    )]
    ThroughSymlink { target: String },
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
        "{mount_point} inside the container is still writable below the read-only {target}; refusing to start it"
    )]
    StillWritable { target: String, mount_point: String },
    #[error(
        "{mount_point} inside the container (a procfs below the read-only {target}) still follows magic links; refusing to start it"
    )]
    FollowsLinks { target: String, mount_point: String },
    #[error("{target} is not in the container's mount table after it was changed")]
    Missing { target: String },
}

/// Which mounts of a spec the seal changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Targets {
    /// Read-only with everything below them: cgroupfs and every bind the spec asks to be
    /// read-only (`:ro` binds and volumes, a read-only container's /etc files).
    pub read_only: Vec<String>,
    /// Writable mounts of the spec below one of those (`/srv:/srv:ro` with `data:/srv/data`):
    /// made writable again after the recursive change, as the entry asked.
    pub writable_inside: Vec<String>,
}

impl Targets {
    fn is_empty(&self) -> bool {
        self.read_only.is_empty()
    }
}

pub(crate) fn targets(spec: &Spec) -> Targets {
    let mut read_only: Vec<String> = Vec::new();
    let mut writable: Vec<String> = Vec::new();
    // `privileged = true` asks for a writable cgroupfs, as Docker's --privileged gives.
    let privileged = super::kernel_keys::is_privileged(spec);
    for m in spec.mounts().iter().flatten() {
        let destination = m.destination().to_string_lossy().into_owned();
        let ro = has_option(m, "ro");
        if (destination == CGROUPFS && !privileged) || (is_bind(m) && ro) {
            if !read_only.contains(&destination) {
                read_only.push(destination);
            }
        } else if !ro {
            writable.push(destination);
        }
    }
    let writable_inside = writable
        .into_iter()
        .filter(|w| read_only.iter().any(|t| strictly_below(w, t)))
        .collect();
    Targets {
        read_only,
        writable_inside,
    }
}

fn strictly_below(path: &str, ancestor: &str) -> bool {
    let ancestor = ancestor.trim_end_matches('/');
    path.len() > ancestor.len()
        && path.starts_with(ancestor)
        && path.as_bytes().get(ancestor.len()) == Some(&b'/')
}

fn depth(path: &str) -> usize {
    path.split('/').filter(|c| !c.is_empty()).count()
}

/// The changes that make `targets` so, shallowest first: a read-only target, then the
/// writable mounts inside it, then read-only targets inside those.
fn changes(targets: &Targets) -> Vec<MountAttrChange> {
    let mut changes: Vec<MountAttrChange> = targets
        .read_only
        .iter()
        .map(|path| MountAttrChange {
            path: path.clone(),
            set: MOUNT_ATTR_RDONLY,
            clear: 0,
            recursive: true,
        })
        .chain(targets.writable_inside.iter().map(|path| MountAttrChange {
            path: path.clone(),
            set: 0,
            clear: MOUNT_ATTR_RDONLY,
            recursive: true,
        }))
        .collect();
    changes.sort_by_key(|c| depth(&c.path));
    changes
}

/// Make `targets` so inside the created (not yet started) container whose init is `pid`,
/// then check the init's mount table: every mount below a read-only target (and not below a
/// writable mount inside it) is read-only, and every procfs there follows no magic links.
pub(crate) fn seal(pid: i32, targets: &Targets) -> Result<(), ConfineError> {
    if targets.is_empty() {
        return Ok(());
    }
    let first = changes(targets);
    let ids = apply(pid, &first)?;
    let mountinfo = read_mountinfo(pid)?;
    let roles = roles(&first, &ids);
    let mounts = parse(&mountinfo);
    let procfs: Vec<MountAttrChange> = mounts
        .iter()
        .filter(|m| {
            m.fstype == "proc" && matches!(role_of(&mounts, m.id, &roles), Some(Role::ReadOnly(_)))
        })
        .map(|m| MountAttrChange {
            path: m.mount_point.clone(),
            set: MOUNT_ATTR_NOSYMFOLLOW,
            clear: 0,
            recursive: true,
        })
        .collect();
    let mountinfo = if procfs.is_empty() {
        mountinfo
    } else {
        apply(pid, &procfs)?;
        read_mountinfo(pid)?
    };
    check(&mountinfo, &roles)
}

fn read_mountinfo(pid: i32) -> Result<String, ConfineError> {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map_err(|source| ConfineError::MountTable { source })
}

fn apply(pid: i32, changes: &[MountAttrChange]) -> Result<Vec<u64>, ConfineError> {
    match sys::set_mount_attrs_in(pid, changes) {
        Ok(Ok(ids)) => Ok(ids),
        Ok(Err(failure)) => {
            let source = std::io::Error::from_raw_os_error(failure.errno);
            let target = changes
                .get(failure.index)
                .map(|c| c.path.clone())
                .unwrap_or_default();
            Err(match (failure.step, failure.errno) {
                (SealStep::Join, _) => ConfineError::Namespace { source },
                (SealStep::Resolve, libc::ENOSYS) => ConfineError::Unsupported {
                    target,
                    needs: "openat2(2)",
                    version: "5.6",
                    kernel: kernel_release(),
                },
                (SealStep::Resolve, libc::ELOOP) => ConfineError::ThroughSymlink { target },
                (SealStep::SetAttr, libc::ENOSYS) => ConfineError::Unsupported {
                    target,
                    needs: "mount_setattr(2)",
                    version: "5.12",
                    kernel: kernel_release(),
                },
                (SealStep::MountId, libc::EINVAL) => ConfineError::Unsupported {
                    target,
                    needs: "statx(2) with STATX_MNT_ID",
                    version: "5.8",
                    kernel: kernel_release(),
                },
                _ => ConfineError::Seal { target, source },
            })
        }
        Err(source) => Err(ConfineError::Namespace { source }),
    }
}

/// What a changed mount is to the mounts below it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// Read-only, with the target's path for messages.
    ReadOnly(String),
    /// Writable as the entry asked.
    Writable,
}

fn roles(changes: &[MountAttrChange], ids: &[u64]) -> Vec<(u64, Role)> {
    changes
        .iter()
        .zip(ids)
        .map(|(c, &id)| {
            let role = if c.set & MOUNT_ATTR_RDONLY != 0 {
                Role::ReadOnly(c.path.clone())
            } else {
                Role::Writable
            };
            (id, role)
        })
        .collect()
}

/// The role of the nearest changed mount at or above `id` (found by mount id, so a target the
/// engine reached any way at all is still found), if any.
fn role_of<'a>(mounts: &[MountLine], id: u64, roles: &'a [(u64, Role)]) -> Option<&'a Role> {
    let mut cursor = Some(id);
    // Bounded, although a parent chain cannot loop.
    for _ in 0..=mounts.len() {
        let current = cursor?;
        // The last change of a mount is the one in force.
        if let Some((_, role)) = roles.iter().rev().find(|(rid, _)| *rid == current) {
            return Some(role);
        }
        cursor = mounts
            .iter()
            .find(|m| m.id == current)
            .map(|m| m.parent)
            .filter(|&p| p != current);
    }
    None
}

fn check(mountinfo: &str, roles: &[(u64, Role)]) -> Result<(), ConfineError> {
    let mounts = parse(mountinfo);
    for (id, role) in roles {
        if !mounts.iter().any(|m| m.id == *id) {
            let target = match role {
                Role::ReadOnly(target) => target.clone(),
                Role::Writable => format!("mount {id}"),
            };
            return Err(ConfineError::Missing { target });
        }
    }
    for mount in &mounts {
        if let Some(Role::ReadOnly(target)) = role_of(&mounts, mount.id, roles) {
            if !mount.has_option("ro") {
                return Err(ConfineError::StillWritable {
                    target: target.clone(),
                    mount_point: mount.mount_point.clone(),
                });
            }
            if mount.fstype == "proc" && !mount.has_option("nosymfollow") {
                return Err(ConfineError::FollowsLinks {
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
106 105 0:5 / /host/proc ro,nosymfollow,relatime - proc proc rw
107 106 0:6 / /host/proc/sys/fs/binfmt_misc ro,relatime - binfmt_misc binfmt rw
108 105 0:7 / /host/dev/shm rw,relatime - tmpfs tmpfs rw
109 100 8:1 /data /data rw,relatime - ext4 /dev/vda rw
110 105 0:8 / /host/srv\\040x ro,relatime - proc proc rw
";

    fn ro(id: u64, target: &str) -> (u64, Role) {
        (id, Role::ReadOnly(target.into()))
    }

    #[test]
    fn every_mount_below_a_read_only_target_must_be_read_only() {
        check(TABLE, &[ro(103, CGROUPFS)]).expect("cgroupfs and its hierarchies are read-only");
        match check(TABLE, &[ro(105, "/host"), (110, Role::Writable)]) {
            Err(ConfineError::StillWritable { mount_point, .. }) => {
                assert_eq!(mount_point, "/host/dev/shm")
            }
            other => panic!("a writable submount must be found: {other:?}"),
        }
        // Writable as the entry asked: /host/dev/shm below a writable mount inside /host.
        check(
            TABLE,
            &[
                ro(105, "/host"),
                (108, Role::Writable),
                (110, Role::Writable),
            ],
        )
        .expect("exempt below a writable mount");
        // A writable mount beside the target is none of its business.
        check(TABLE, &[ro(106, "/host/proc")]).expect("only below the target");
        match check(TABLE, &[ro(999, CGROUPFS)]) {
            Err(ConfineError::Missing { target }) => assert_eq!(target, CGROUPFS),
            other => panic!("{other:?}"),
        }
        // The root's parent is outside the table: the walk ends there.
        match check(TABLE, &[ro(100, "/")]) {
            Err(ConfineError::StillWritable { mount_point, .. }) => assert_eq!(mount_point, "/"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn procfs_below_a_read_only_target_must_not_follow_links() {
        // 106 follows none; 110 (a second procfs, mount point with a space) still does.
        match check(TABLE, &[ro(105, "/host"), (108, Role::Writable)]) {
            Err(ConfineError::FollowsLinks { mount_point, .. }) => {
                assert_eq!(mount_point, "/host/srv x")
            }
            other => panic!("{other:?}"),
        }
        // The container's own /proc is below no target.
        check(TABLE, &[ro(103, CGROUPFS)]).expect("own /proc untouched");
    }

    #[test]
    fn the_table_is_read_with_each_mounts_own_options() {
        let lines = parse(TABLE);
        assert_eq!(lines.len(), 11);
        // The per-mount options (ro), not the superblock's (rw).
        assert!(lines[4].has_option("ro") && lines[4].fstype == "cgroup");
        assert!(lines[6].has_option("nosymfollow") && lines[6].fstype == "proc");
        assert_eq!(lines[10].mount_point, "/host/srv x");
    }

    fn mount(dest: &str, typ: &str, options: &[&str]) -> oci_spec::runtime::Mount {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source("/x")
            .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
            .build()
            .expect("mount")
    }

    #[test]
    fn targets_are_cgroupfs_read_only_binds_and_the_writable_mounts_inside_them() {
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
                mount("/host/data", "bind", &["rbind"]),
                mount("/host/data/conf", "bind", &["rbind", "ro"]),
                mount("/hostile", "tmpfs", &[]),
                mount("/opt/cache", "tmpfs", &[]),
            ])
            .build()
            .expect("spec");
        let t = targets(&spec);
        assert_eq!(t.read_only, [CGROUPFS, "/host", "/opt", "/host/data/conf"]);
        // `/hostile` is beside `/host`, not below it.
        assert_eq!(t.writable_inside, ["/host/data", "/opt/cache"]);
        let order: Vec<(String, u64, u64)> = changes(&t)
            .into_iter()
            .map(|c| (c.path, c.set, c.clear))
            .collect();
        assert_eq!(
            order,
            [
                ("/host".to_string(), MOUNT_ATTR_RDONLY, 0),
                ("/opt".to_string(), MOUNT_ATTR_RDONLY, 0),
                ("/host/data".to_string(), 0, MOUNT_ATTR_RDONLY),
                ("/opt/cache".to_string(), 0, MOUNT_ATTR_RDONLY),
                (CGROUPFS.to_string(), MOUNT_ATTR_RDONLY, 0),
                ("/host/data/conf".to_string(), MOUNT_ATTR_RDONLY, 0),
            ]
        );
        assert!(strictly_below("/a/b", "/a") && !strictly_below("/ab", "/a"));
        assert!(!strictly_below("/a", "/a"));
    }
}
