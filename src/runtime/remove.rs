//! `Runtime::remove`: a container's processes, cgroup, engine state and directory go (its
//! volumes stay).

use std::time::Duration;

use super::{ContainerLock, MONITOR_EXIT_TIMEOUT, Runtime, RuntimeError, cgroupfs, engine};
use crate::fsutil::{self, io_err};
use crate::spec::signal::Signal;
use crate::state::layout;
use crate::state::record::{self, MonitorRecord};
use crate::sys;

impl Runtime {
    /// Remove a container and everything it wrote (its volumes stay). A running container
    /// is refused unless `force`, which stops it first.
    pub fn remove(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let paths = self.paths(id)?;
        let _lock = ContainerLock::acquire(&paths)?;
        let record = match self.record(id) {
            Ok(record) => record,
            Err(RuntimeError::Record(record::RecordError::Damaged { .. })) => {
                return self.remove_unreadable(id, &paths);
            }
            Err(e) => return Err(e),
        };
        if self.state(id)?.is_running() {
            if !force {
                return Err(RuntimeError::Running { id: id.into() });
            }
            self.stop_locked(id, Some(Duration::ZERO))?;
        }
        // What still runs in the cgroup of a container not seen as running (its monitor and
        // starter died between the engine's create and the monitor record: its init waits
        // in the cgroup) is killed first, or the cgroup could never be removed. Cgroups made
        // below the container's own (only a container allowed to write cgroupfs can make
        // them) would make the engine's removal fail forever.
        if let Ok(hierarchies) = cgroupfs::hierarchies() {
            kill_cgroup(id, &hierarchies, &record.cgroup_path)?;
            cgroupfs::remove(&hierarchies, &record.cgroup_path).map_err(|source| {
                RuntimeError::Process {
                    op: "removing the cgroup of",
                    id: id.into(),
                    source,
                }
            })?;
        }
        engine::for_record(&record, &self.layout.engine_root()).delete(id)?;
        self.remove_files(id)?;
        // Its labels are read from its spec, which is about to go.
        let destroy = self.container_event(&record, crate::state::events::Action::Destroy);
        self.delete_dir(id, &paths)?;
        self.unplug(id, true);
        self.record_event(destroy);
        Ok(())
    }

    /// Remove a container whose own record cannot be read: whatever of it may exist in the
    /// kernel is found by its id (its processes through the monitor record, its cgroup,
    /// either engine's state), then the directory goes. Everything under `containers/` is
    /// berth's, so nothing foreign is touched.
    fn remove_unreadable(
        &self,
        id: &str,
        paths: &layout::ContainerPaths,
    ) -> Result<(), RuntimeError> {
        if let Ok(Some(monitor)) = record::load::<MonitorRecord>(&paths.monitor()) {
            for process in [monitor.init, monitor.monitor] {
                if let Ok(Some(fd)) = process.open() {
                    let _ = sys::send_signal(&fd, Signal::KILL.0);
                    let _ = sys::wait_readable(&fd, Some(MONITOR_EXIT_TIMEOUT));
                }
            }
        }
        self.release_by_id(id)?;
        self.remove_files(id)?;
        self.delete_dir(id, paths)?;
        self.unplug(id, true);
        Ok(())
    }

    /// Release what a container of `id` holds in the kernel, found by its id alone: every
    /// process of its cgroup killed, then the cgroup and either engine's state removed. The
    /// engine state is removed directly, not through the engine (an external engine's
    /// binary may be anywhere, or gone): once the cgroup is empty no process is left for it
    /// to kill, and its state is only files. Idempotent: what is already gone (the
    /// container's own monitor may be removing it at the same time) is done.
    pub(super) fn release_by_id(&self, id: &str) -> Result<(), RuntimeError> {
        let hierarchies = cgroupfs::hierarchies().map_err(|source| RuntimeError::Process {
            op: "reading the cgroup mounts for",
            id: id.into(),
            source,
        })?;
        let cgroup = self.layout.cgroup_path(id);
        kill_cgroup(id, &hierarchies, &cgroup)?;
        cgroupfs::remove(&hierarchies, &cgroup).map_err(|source| RuntimeError::Process {
            op: "removing the cgroup of",
            id: id.into(),
            source,
        })?;
        for engine in ["embedded", "oci"] {
            let state = self.layout.engine_root().join(engine).join(id);
            match std::fs::remove_dir_all(&state) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err("removing", &state)(e).into());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn delete_dir(&self, id: &str, paths: &layout::ContainerPaths) -> Result<(), RuntimeError> {
        let doomed = self.layout.containers().join(fsutil::doomed_name(id));
        std::fs::rename(&paths.dir, &doomed).map_err(io_err("renaming", &paths.dir))?;
        crate::failpoint::hit("remove-after-rename");
        std::fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))?;
        Ok(())
    }
}

/// Kill every process in the cgroup `cgroup` (`cgroupfs::kill_all`).
fn kill_cgroup(
    id: &str,
    hierarchies: &[cgroupfs::Hierarchy],
    cgroup: &str,
) -> Result<(), RuntimeError> {
    cgroupfs::kill_all(hierarchies, cgroup, MONITOR_EXIT_TIMEOUT).map_err(|source| {
        RuntimeError::Process {
            op: "killing the processes of",
            id: id.into(),
            source,
        }
    })
}
