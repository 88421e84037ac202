//! The reconciler's health checker: one task per running container that has a check, for as
//! long as that run lasts. Each check's verdict is written to the container's `health.json`
//! (what `observe`, `ps` and `status` read) and a change of status wakes the reconciler.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::probe::{self, Target};
use super::verdict::{Health, HealthRecord};
use crate::spec::model::HealthCheck;
use crate::state::events::{self, Action, EventLog};
use crate::state::layout::Layout;
use crate::state::record::{self, ContainerRecord, now_ms};
use crate::sys::ProcessId;

/// A running container to check.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub id: String,
    pub init: ProcessId,
    pub started_at_ms: u64,
    pub check: HealthCheck,
}

/// Finds a container's address on its first bridge network (given by whoever composes the
/// drivers: the health checker does not read the network driver's leases itself).
type AddressOf = Arc<dyn Fn(&str) -> Option<Ipv4Addr> + Send + Sync>;

pub struct HealthChecks {
    layout: Layout,
    berth: PathBuf,
    address_of: AddressOf,
    tasks: HashMap<String, (ProcessId, JoinHandle<()>)>,
    changed: Arc<Notify>,
}

impl HealthChecks {
    pub(crate) fn new(layout: &Layout, berth: PathBuf, address_of: AddressOf) -> HealthChecks {
        HealthChecks {
            layout: layout.clone(),
            berth,
            address_of,
            tasks: HashMap::new(),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Notified whenever a container's health status changes.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }

    /// Check exactly these runs from now on: new ones get a task, ended ones lose theirs.
    /// Must be called within a tokio runtime.
    pub(crate) fn track(&mut self, subjects: impl IntoIterator<Item = Subject>) {
        let subjects: HashMap<String, Subject> =
            subjects.into_iter().map(|s| (s.id.clone(), s)).collect();
        self.tasks.retain(|id, (init, task)| {
            let keep = subjects.get(id).is_some_and(|s| s.init == *init) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, subject) in subjects {
            if self.tasks.contains_key(&id) {
                continue;
            }
            let init = subject.init;
            let address = (self.address_of)(&id);
            let task = tokio::spawn(check_loop(
                self.layout.clone(),
                self.berth.clone(),
                subject,
                address,
                self.changed.clone(),
            ));
            self.tasks.insert(id, (init, task));
        }
    }
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for (_, task) in self.tasks.values() {
            task.abort();
        }
    }
}

/// The verdict about the current run of container `id`, if one was written for it.
pub fn read(layout: &Layout, id: &str, init: ProcessId) -> Option<HealthRecord> {
    record::load::<HealthRecord>(&layout.container(id).health())
        .ok()
        .flatten()
        .filter(|r| r.init == init)
}

async fn check_loop(
    layout: Layout,
    berth: PathBuf,
    subject: Subject,
    address: Option<Ipv4Addr>,
    changed: Arc<Notify>,
) {
    let path = layout.container(&subject.id).health();
    let container = record::load::<ContainerRecord>(&layout.container(&subject.id).record())
        .ok()
        .flatten();
    // An agent restarted during a run carries on with that run's verdict.
    let mut verdict = read(&layout, &subject.id, subject.init)
        .unwrap_or_else(|| HealthRecord::new(subject.init, subject.started_at_ms));
    let target = Target {
        id: subject.id.clone(),
        init: subject.init,
        address,
        berth,
        root: layout.state_root.clone(),
    };
    if verdict.checks == 0 {
        save(&path, &verdict).await;
    }
    loop {
        let due = verdict.next_due_ms(&subject.check);
        let wait = due.saturating_sub(now_ms());
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        let result = probe::run(&target, &subject.check).await;
        let before = verdict.status;
        let status_changed = verdict.record(&subject.check, result);
        if status_changed {
            let output = verdict
                .last
                .as_ref()
                .map(|l| l.output.as_str())
                .unwrap_or("");
            match verdict.status {
                Health::Unhealthy => {
                    tracing::warn!(container = %subject.id, from = %before, "unhealthy: {output}")
                }
                status => tracing::info!(container = %subject.id, from = %before, "{status}"),
            }
            if let Some(container) = &container {
                let event = events::container_event(&layout, container, Action::HealthStatus)
                    .with("health_status", verdict.status);
                EventLog::new(&layout).append(&event);
            }
        }
        // Written before the reconciler is woken: its pass reads the new verdict.
        save(&path, &verdict).await;
        if status_changed {
            changed.notify_one();
        }
    }
}

async fn save(path: &std::path::Path, verdict: &HealthRecord) {
    let (path, verdict) = (path.to_path_buf(), verdict.clone());
    let result = tokio::task::spawn_blocking(move || record::save_volatile(&path, &verdict)).await;
    if let Ok(Err(e)) = result {
        // The container was removed meanwhile (its task ends at the next pass), or the disk
        // refuses: the next check writes again.
        tracing::debug!("writing a health verdict: {e}");
    }
}
