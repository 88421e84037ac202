//! Joining another container's namespaces (`network`, `pid` or `ipc = "container:NAME"`).
//!
//! The owner is found at every start, not at create: it may have been restarted or replaced
//! since (a new init, new namespaces). The newest running container of the owner's name is
//! joined through `/proc/INIT/ns/KIND`, and after the engine created the sharer's init its
//! namespaces are compared with the owner's by inode, so a pid reused in between can never
//! put the sharer somewhere else. A sharer whose owner started again since is found by
//! [`Runtime::stale_join`] (the reconciler restarts it into the new namespaces).
//!
//! Sharing a network also shares the owner's name files (hosts, resolv.conf: rewritten in
//! place by the network driver, so the binds stay current); sharing IPC also shares the
//! owner's /dev/shm, as Docker's and podman's `--ipc container:` do, since POSIX shared
//! memory lives there.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Mount, MountBuilder, Spec};

use crate::spec::model::NamespaceKind;
use crate::state::layout::Layout;
use crate::state::record::{self, BootId, ContainerRecord, ExitRecord, MonitorRecord};
use crate::sys::ProcessId;

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("it joins the {kind} namespace of `{owner}`, which is not running")]
    OwnerNotRunning { kind: &'static str, owner: String },
    #[error("reading the {kind} namespace of `{owner}` ({id}): {source}")]
    Namespace {
        kind: &'static str,
        owner: String,
        id: String,
        source: std::io::Error,
    },
    #[error(
        "`{owner}` ({id}) started again while this container joined its {kind} namespace; the next pass starts it in the new one"
    )]
    OwnerChanged {
        kind: &'static str,
        owner: String,
        id: String,
    },
    #[error("the /dev/shm of `{owner}` ({id}) cannot be shared: {why}")]
    Shm {
        owner: String,
        id: String,
        why: String,
    },
    #[error("listing containers to find `{owner}`: {source}")]
    List {
        owner: String,
        source: std::io::Error,
    },
    #[error("building the spec: {0}")]
    Spec(String),
}

/// A namespace joined at this start, held open until the sharer's init is in it: a held
/// namespace cannot be freed, so its inode cannot name another namespace meanwhile.
#[derive(Debug)]
pub(crate) struct Joined {
    kind: NamespaceKind,
    owner: String,
    owner_id: String,
    namespace: std::fs::File,
}

/// The newest running container named `name` under `layout` and its monitor record. Made
/// by the reconciler only: a container of the same name made by hand (`berth run`) is never
/// joined, as the reconciler never counts it as the entry's.
pub(crate) fn running_owner(
    layout: &Layout,
    name: &str,
) -> Result<Option<(String, MonitorRecord)>, JoinError> {
    let list_err = |source| JoinError::List {
        owner: name.into(),
        source,
    };
    let dir = layout.containers();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(list_err(e)),
    };
    let boot = BootId::current().map_err(list_err)?;
    let mut newest: Option<(String, MonitorRecord)> = None;
    for entry in entries {
        let entry = entry.map_err(list_err)?;
        let id = entry.file_name().to_string_lossy().into_owned();
        if id.starts_with('.') {
            continue;
        }
        let paths = layout.container(&id);
        let Ok(Some(r)) = record::load::<ContainerRecord>(&paths.record()) else {
            continue;
        };
        if r.name != name
            || r.manual
            || matches!(record::load::<ExitRecord>(&paths.exit()), Ok(Some(_)))
        {
            continue;
        }
        let Ok(Some(monitor)) = record::load::<MonitorRecord>(&paths.monitor()) else {
            continue;
        };
        if monitor.boot_id != boot || !monitor.init.is_alive().unwrap_or(false) {
            continue;
        }
        if newest
            .as_ref()
            .is_none_or(|(_, m)| m.started_at_ms < monitor.started_at_ms)
        {
            newest = Some((id, monitor));
        }
    }
    Ok(newest)
}

/// The inode of a process's namespace of `kind`: equal inodes, same namespace.
pub(crate) fn namespace_inode(pid: i32, kind: NamespaceKind) -> std::io::Result<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/{}", kind.proc_name())).map(|m| m.ino())
}

/// Point the spec at the owners' current namespaces (and name files, and /dev/shm). Called
/// by the monitor before the engine creates the container; `verify` after. The engine is
/// given `/proc/MONITOR/fd/N` of a namespace the monitor holds, never `/proc/INIT/ns/KIND`,
/// which a reused pid could make another process's between now and the engine's open.
pub(crate) fn prepare(
    layout: &Layout,
    record: &ContainerRecord,
    spec: &mut Spec,
) -> Result<Vec<Joined>, JoinError> {
    let me = std::process::id();
    // Each owner looked up once: the namespaces of one start all come from one container.
    let mut owners: BTreeMap<&str, (String, MonitorRecord)> = BTreeMap::new();
    let mut joined = Vec::new();
    for (kind, owner) in &record.joins {
        let kind = *kind;
        let (owner_id, monitor) = match owners.get(owner.as_str()) {
            Some(found) => found.clone(),
            None => {
                let Some(found) = running_owner(layout, owner)? else {
                    return Err(JoinError::OwnerNotRunning {
                        kind: kind.key(),
                        owner: owner.clone(),
                    });
                };
                owners.insert(owner, found.clone());
                found
            }
        };
        let pid = monitor.init.pid;
        let ns_err = |source| JoinError::Namespace {
            kind: kind.key(),
            owner: owner.clone(),
            id: owner_id.clone(),
            source,
        };
        let namespace =
            std::fs::File::open(format!("/proc/{pid}/ns/{}", kind.proc_name())).map_err(ns_err)?;
        // Opened through a pid that may have been reused: still the owner's init afterwards.
        if !monitor.init.is_alive().map_err(ns_err)? {
            return Err(JoinError::OwnerChanged {
                kind: kind.key(),
                owner: owner.clone(),
                id: owner_id,
            });
        }
        set_namespace_path(
            spec,
            kind,
            Some(&format!(
                "/proc/{me}/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&namespace)
            )),
        )?;
        match kind {
            NamespaceKind::Net => {
                // Read-only whatever the sharer's `read_only`: the files are the owner's.
                let etc = layout.container(&owner_id).etc();
                for file in ["hosts", "resolv.conf"] {
                    bind_owners_file(spec, &format!("/etc/{file}"), &etc.join(file));
                }
            }
            NamespaceKind::Ipc => share_shm(
                spec,
                monitor.init,
                owner,
                &owner_id,
                &layout.container(&record.id).dir.join("shm"),
            )?,
            NamespaceKind::Pid => {}
        }
        joined.push(Joined {
            kind,
            owner: owner.clone(),
            owner_id,
            namespace,
        });
    }
    Ok(joined)
}

/// After the engine created the sharer's init `pid`: it is in the namespaces held.
pub(crate) fn verify(pid: i32, joined: &[Joined]) -> Result<(), JoinError> {
    for j in joined {
        let ns_err = |source| JoinError::Namespace {
            kind: j.kind.key(),
            owner: j.owner.clone(),
            id: j.owner_id.clone(),
            source,
        };
        let theirs = j.namespace.metadata().map_err(ns_err)?;
        let mine =
            std::fs::metadata(format!("/proc/{pid}/ns/{}", j.kind.proc_name())).map_err(ns_err)?;
        if (mine.dev(), mine.ino()) != (theirs.dev(), theirs.ino()) {
            return Err(JoinError::OwnerChanged {
                kind: j.kind.key(),
                owner: j.owner.clone(),
                id: j.owner_id.clone(),
            });
        }
    }
    Ok(())
}

/// The spec as kept on disk once the container exists: no path into this monitor's
/// descriptors, which mean nothing after it, to mislead a later reader (an older berth that
/// does not know `joins` would start the container in namespaces of its own).
pub(crate) fn forget_paths(spec: &mut Spec, joined: &[Joined]) -> Result<(), JoinError> {
    for j in joined {
        set_namespace_path(spec, j.kind, None)?;
    }
    Ok(())
}

fn set_namespace_path(
    spec: &mut Spec,
    kind: NamespaceKind,
    path: Option<&str>,
) -> Result<(), JoinError> {
    let typ = match kind {
        NamespaceKind::Net => LinuxNamespaceType::Network,
        NamespaceKind::Pid => LinuxNamespaceType::Pid,
        NamespaceKind::Ipc => LinuxNamespaceType::Ipc,
    };
    let linux = spec
        .linux_mut()
        .as_mut()
        .ok_or_else(|| JoinError::Spec("the spec has no linux section".into()))?;
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|n| n.typ() != typ);
    let mut namespace = oci_spec::runtime::LinuxNamespaceBuilder::default().typ(typ);
    if let Some(path) = path {
        namespace = namespace.path(PathBuf::from(path));
    }
    namespaces.push(
        namespace
            .build()
            .map_err(|e| JoinError::Spec(e.to_string()))?,
    );
    linux.set_namespaces(Some(namespaces));
    Ok(())
}

fn bind_owners_file(spec: &mut Spec, destination: &str, source: &Path) {
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts
            .iter_mut()
            .filter(|m| m.destination() == Path::new(destination))
        {
            m.set_source(Some(source.to_path_buf()));
            let mut options = m.options().clone().unwrap_or_default();
            options.retain(|o| o != "rw");
            if !options.iter().any(|o| o == "ro") {
                options.push("ro".into());
            }
            m.set_options(Some(options));
        }
    }
}

/// Replace the sharer's own /dev/shm with the owner's. A mount of another mount namespace
/// cannot be bound by path (a path through /proc/PID/root is canonicalized by the engine,
/// which would then bind the host's /dev/shm), so the monitor enters the owner's mount
/// namespace, where "/" is the owner's root and no link can lead out of it, clones the
/// mount there (open_tree), comes back and attaches the clone at `staging` in its own
/// private mount namespace, which the engine then binds. It must be a tmpfs directory: an
/// owner that swapped it for a link (only a privileged one can unmount it) is refused.
fn share_shm(
    spec: &mut Spec,
    owner_init: ProcessId,
    owner: &str,
    owner_id: &str,
    staging: &Path,
) -> Result<(), JoinError> {
    use rustix::mount::{MoveMountFlags, OpenTreeFlags};
    use rustix::thread::LinkNameSpaceType;
    let shm_err = |why: String| JoinError::Shm {
        owner: owner.into(),
        id: owner_id.into(),
        why,
    };
    let mine = std::fs::File::open("/proc/self/ns/mnt")
        .map_err(|e| shm_err(format!("opening the monitor's mount namespace: {e}")))?;
    let theirs = std::fs::File::open(format!("/proc/{}/ns/mnt", owner_init.pid))
        .map_err(|e| shm_err(format!("opening its mount namespace: {e}")))?;
    if !owner_init.is_alive().unwrap_or(false) {
        return Err(JoinError::OwnerChanged {
            kind: "ipc",
            owner: owner.into(),
            id: owner_id.into(),
        });
    }
    // The monitor is single-threaded here, as setns into a mount namespace requires.
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&theirs),
        Some(LinkNameSpaceType::Mount),
    )
    .map_err(|e| shm_err(format!("entering its mount namespace: {e}")))?;
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        "/dev/shm",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
    );
    // Back before anything else, whatever open_tree said. A monitor that cannot come back
    // must not go on: every path it writes would land in the owner's root.
    if let Err(e) = rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&mine),
        Some(LinkNameSpaceType::Mount),
    ) {
        eprintln!("berth monitor: returning to its own mount namespace: {e}; aborting");
        std::process::abort();
    }
    let tree = tree.map_err(|e| shm_err(format!("cloning its /dev/shm: {e}")))?;
    let stat = rustix::fs::fstat(&tree).map_err(|e| shm_err(format!("stat: {e}")))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Directory {
        return Err(shm_err("it is not a directory (a symbolic link?)".into()));
    }
    let fs = rustix::fs::fstatfs(&tree).map_err(|e| shm_err(format!("statfs: {e}")))?;
    // TMPFS_MAGIC
    if fs.f_type != 0x0102_1994 {
        return Err(shm_err("it is not a tmpfs".into()));
    }
    std::fs::create_dir_all(staging)
        .map_err(|e| shm_err(format!("creating {}: {e}", staging.display())))?;
    rustix::mount::move_mount(
        &tree,
        "",
        rustix::fs::CWD,
        staging,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| shm_err(format!("attaching it at {}: {e}", staging.display())))?;
    let bind = MountBuilder::default()
        .destination("/dev/shm")
        .typ("bind")
        .source(staging)
        .options(
            ["rbind", "rprivate", "nosuid", "nodev", "noexec"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .map_err(|e| JoinError::Spec(e.to_string()))?;
    let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
    mounts.retain(|m| m.destination() != Path::new("/dev/shm"));
    mounts.push(bind);
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// Why a running sharer no longer shares its owners' current namespaces, if it does not: an
/// owner that started again since (a restart, a replacement) has new ones, and one that
/// stopped has none to share. `init`: the sharer's running init; `current_owner`: the
/// container the monitor would join now for an owner's name (its id and init), taken by
/// the caller from what it already read (`observe`), so this reads only namespace links.
pub fn stale_join(
    joins: &BTreeMap<NamespaceKind, String>,
    init: ProcessId,
    current_owner: impl Fn(&str) -> Option<(String, ProcessId)>,
) -> Option<String> {
    for (kind, owner) in joins {
        let kind = *kind;
        let Ok(mine) = namespace_inode(init.pid, kind) else {
            // Ended meanwhile: its exit tells.
            return None;
        };
        let Some((owner_id, owner_init)) = current_owner(owner) else {
            return Some(format!(
                "`{owner}`, whose {} namespace it shares, is not running",
                kind.key()
            ));
        };
        match namespace_inode(owner_init.pid, kind) {
            Ok(theirs) if theirs == mine => {}
            Ok(_) => {
                return Some(format!(
                    "`{owner}` started again ({owner_id}), with a new {} namespace",
                    kind.key()
                ));
            }
            Err(_) => return None,
        }
    }
    None
}
