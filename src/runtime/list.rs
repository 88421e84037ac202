//! Reading containers: their records, the listing of the state root, and each one's state
//! confirmed against the kernel.

use super::{Runtime, RuntimeError, State};
use crate::state::layout;
use crate::state::record::{
    self, BootId, ContainerRecord, ExitRecord, MonitorRecord, RestartRecord,
};
use crate::sys::ProcessId;

impl Runtime {
    pub fn record(&self, id: &str) -> Result<ContainerRecord, RuntimeError> {
        record::load(&self.paths(id)?.record())?
            .ok_or_else(|| RuntimeError::NotFound { what: id.into() })
    }

    /// Every container berth created under this state root, oldest first.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, RuntimeError> {
        let (records, damaged) = self.scan(&mut std::collections::HashMap::new())?;
        // One damaged record (a power loss during its write) must not hide the others.
        for id in damaged {
            tracing::warn!("skipping container {id}: its record is missing or damaged");
        }
        Ok(records)
    }

    /// Every container directory in one pass: the readable records, oldest first, and the
    /// ids whose record is missing or damaged. A record never changes after its create, so
    /// `cache` (kept by the caller across scans) spares parsing it again.
    pub(crate) fn scan(
        &self,
        cache: &mut std::collections::HashMap<String, ContainerRecord>,
    ) -> Result<(Vec<ContainerRecord>, Vec<String>), RuntimeError> {
        let mut records = Vec::new();
        let mut damaged = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for entry in self.container_dirs()? {
            let id = entry.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            if let Some(r) = cache.get(&id) {
                records.push(r.clone());
                seen.insert(id);
                continue;
            }
            match record::load::<ContainerRecord>(&entry.path().join("container.json")) {
                Ok(Some(r)) => {
                    cache.insert(id.clone(), r.clone());
                    records.push(r);
                    seen.insert(id);
                }
                // Only a record that is missing or cannot be parsed (a power loss during its
                // write); a read error (EIO, permissions) is not evidence of anything.
                Ok(None) | Err(record::RecordError::Damaged { .. }) if layout::valid_id(&id) => {
                    damaged.push(id);
                }
                Ok(None) => {}
                // A newer berth's container is neither adopted nor replaced: the pass stops.
                Err(e @ record::RecordError::UnknownFormat { .. }) => return Err(e.into()),
                Err(e) => tracing::warn!("skipping {}: {e}", entry.path().display()),
            }
        }
        cache.retain(|id, _| seen.contains(id));
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        damaged.sort();
        Ok((records, damaged))
    }

    /// The containers made for a `[container.NAME]`, oldest first.
    pub fn find(&self, name: &str) -> Result<Vec<ContainerRecord>, RuntimeError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| r.name == name)
            .collect())
    }

    /// A container by id, or the newest one made for a name.
    pub fn resolve(&self, name_or_id: &str) -> Result<ContainerRecord, RuntimeError> {
        let all = self.list()?;
        if let Some(r) = all.iter().find(|r| r.id == name_or_id) {
            return Ok(r.clone());
        }
        all.into_iter()
            .rev()
            .find(|r| r.name == name_or_id)
            .ok_or_else(|| RuntimeError::NotFound {
                what: name_or_id.into(),
            })
    }

    /// Ids of container directories whose record cannot be read (`list` skips them).
    pub fn unreadable(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self.scan(&mut std::collections::HashMap::new())?.1)
    }

    pub fn state(&self, id: &str) -> Result<State, RuntimeError> {
        let paths = self.paths(id)?;
        // A damaged record (a power loss during its write) makes the container lost, not
        // the whole listing an error: it can still be stopped and removed.
        let damaged = |e: record::RecordError| match e {
            record::RecordError::Damaged { path, message } => Ok(State::Lost {
                reason: format!("its record {} is damaged: {message}", path.display()),
                init: None,
            }),
            other => Err(RuntimeError::from(other)),
        };
        match record::load::<ExitRecord>(&paths.exit()) {
            Ok(Some(exit)) => return Ok(State::Exited(exit)),
            Ok(None) => {}
            Err(e) => return damaged(e),
        }
        let monitor = match record::load::<MonitorRecord>(&paths.monitor()) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(State::Created),
            Err(e) => return damaged(e),
        };
        let this_boot = BootId::current().map_err(|source| RuntimeError::Process {
            op: "reading the boot id for",
            id: id.into(),
            source,
        })?;
        if monitor.boot_id != this_boot {
            return Ok(State::Lost {
                reason: "the machine rebooted since it started".into(),
                init: None,
            });
        }
        let alive = |p: &ProcessId| {
            p.is_alive().map_err(|source| RuntimeError::Process {
                op: "checking",
                id: id.into(),
                source,
            })
        };
        if alive(&monitor.monitor)? {
            return Ok(State::Running(monitor));
        }
        // The monitor may have just written the exit record and ended.
        if let Some(exit) = record::load::<ExitRecord>(&paths.exit())? {
            return Ok(State::Exited(exit));
        }
        let init = alive(&monitor.init)?.then_some(monitor.init);
        Ok(State::Lost {
            reason: "its monitor was killed".into(),
            init,
        })
    }

    /// When the container's current run started, from its monitor record (if readable).
    pub(crate) fn last_start_ms(&self, id: &str) -> Option<u64> {
        record::load::<MonitorRecord>(&self.paths(id).ok()?.monitor())
            .ok()
            .flatten()
            .map(|m| m.started_at_ms)
    }

    /// The restart record of a container (none if it never restarted or is unreadable).
    pub fn restarts(&self, id: &str) -> Option<RestartRecord> {
        record::load(&self.paths(id).ok()?.restarts())
            .ok()
            .flatten()
    }
}
