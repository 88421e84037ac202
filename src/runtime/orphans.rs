//! Orphans: containers that exist in the kernel (a cgroup, engine state) but whose directory
//! under the state root was deleted by hand.

use std::collections::BTreeSet;

use super::{Runtime, RuntimeError, cgroupfs};
use crate::fsutil::io_err;
use crate::state::layout;

impl Runtime {
    /// Containers that exist in the kernel — a cgroup of berth's scope, or engine state —
    /// but have no directory under the state root (deleted by hand): nothing records or
    /// supervises them, so they are found by these marks. The kernel is read before the
    /// directories, so a container being created (directory first, then cgroup) is never
    /// taken for one.
    pub fn orphans(&self) -> Result<Vec<String>, RuntimeError> {
        let hierarchies = cgroupfs::hierarchies().map_err(|source| RuntimeError::Process {
            op: "reading the cgroup mounts for",
            id: "-".into(),
            source,
        })?;
        let mut marked: BTreeSet<String> =
            cgroupfs::children_of_scope(&hierarchies, &format!("/{}", self.layout.scope))
                .map_err(|source| RuntimeError::Process {
                    op: "listing the cgroups of",
                    id: self.layout.scope.clone(),
                    source,
                })?
                .into_iter()
                .collect();
        for engine in ["embedded", "oci"] {
            let dir = self.layout.engine_root().join(engine);
            match std::fs::read_dir(&dir) {
                Ok(entries) => marked.extend(
                    entries
                        .flatten()
                        .filter_map(|e| e.file_name().to_str().map(String::from)),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("listing", &dir)(e).into()),
            }
        }
        marked.retain(|id| layout::valid_id(id));
        if marked.is_empty() {
            return Ok(Vec::new());
        }
        for entry in self.container_dirs()? {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `ID`, `.ID.creating.…` or `.ID.removing.…`: the container is someone's.
            let id = name
                .trim_start_matches('.')
                .split(".creating.")
                .next()
                .and_then(|n| n.split(".removing.").next())
                .unwrap_or_default();
            marked.remove(id);
        }
        Ok(marked.into_iter().collect())
    }

    /// Kill and remove what is left of an orphan (`orphans`): every process in its cgroup,
    /// the cgroup, the engine's state, its secrets and configs, its network leases. Its
    /// monitor, if it still runs, ends with the container's init. Idempotent: an id of
    /// which nothing is left is removed already. Refused if the container has a directory
    /// again.
    pub fn remove_orphan(&self, id: &str) -> Result<(), RuntimeError> {
        let paths = self.paths(id)?;
        if paths.dir.exists() {
            return Err(RuntimeError::Process {
                op: "removing the orphan",
                id: id.into(),
                source: std::io::Error::other("it has a state directory; it is not an orphan"),
            });
        }
        self.release_by_id(id)?;
        self.remove_files(id)?;
        self.unplug(id, true);
        Ok(())
    }
}
