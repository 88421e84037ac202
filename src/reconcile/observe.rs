//! The actual state: berth's own records confirmed against the kernel. Only what berth
//! created is ever looked at (its container directories, image records and volume claims
//! under its state root), so nothing else on the host can become part of a plan.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::image::ImageService;
use crate::runtime::{Runtime, State};
use crate::state::record::{ExitRecord, RestartRecord};
use crate::volume::Volumes;

/// What observation keeps across passes, so a pass with nothing new reads almost nothing:
/// container records (they never change after create), and for each running container its
/// monitor record, an open pidfd of its monitor and its restart record. These three only
/// change when the monitor ends, which its pidfd shows without touching /proc.
#[derive(Default)]
pub struct RecordCache {
    records: std::collections::HashMap<String, crate::state::record::ContainerRecord>,
    live: std::collections::HashMap<String, Live>,
}

struct Live {
    monitor: crate::state::record::MonitorRecord,
    pidfd: std::os::fd::OwnedFd,
    restarts: RestartRecord,
}

impl RecordCache {
    pub fn new() -> RecordCache {
        RecordCache::default()
    }
}

/// Everything the planner knows about the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observed {
    /// Oldest first; only the reconciler's own.
    pub containers: Vec<ObservedContainer>,
    /// Images of containers made by hand (`berth run`): the reconciler leaves those
    /// containers alone and keeps their images.
    pub manual_images: BTreeSet<String>,
    /// Image source → manifest digest, for every complete image in the store.
    pub images: BTreeMap<String, String>,
    pub volumes: BTreeSet<String>,
    pub networks: crate::state::network::ObservedNetworks,
    /// Container directories whose record cannot be read (a power loss during its write).
    pub damaged: Vec<String>,
    /// Containers that exist in the kernel (a cgroup or engine state of berth's scope) with
    /// no directory: deleted by hand while they ran (`Runtime::orphans`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orphans: Vec<String>,
    /// What could not be observed. Non-empty: the view may be partial, so nothing is pruned.
    pub problems: Vec<String>,
    /// Why the containers could not be listed, if they could not: then `containers` is
    /// empty for want of knowing, and nothing may be started (it could be a twin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers_unreadable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub spec_hash: String,
    pub image: String,
    pub image_digest: String,
    /// RFC 3339.
    pub created_at: String,
    pub phase: Phase,
    pub restarts: RestartRecord,
    /// While it runs with a health check: the verdict about this run (starting until the
    /// first check says otherwise).
    pub health: Option<Health>,
    /// Whether its published ports are forwarded to it (plugged in and publishing some).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<crate::state::network::PortHold>,
    /// Its monitor while it runs: the agent waits on it to notice the exit at once.
    #[serde(skip)]
    pub monitor: Option<crate::sys::ProcessId>,
    /// Its init while it runs, and its health check: what the health checker needs.
    #[serde(skip)]
    pub init: Option<crate::sys::ProcessId>,
    #[serde(skip)]
    pub health_check: Option<crate::spec::model::HealthCheck>,
    /// Running, but no longer in the current namespaces of a container it joins (which
    /// started again, or stopped): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_join: Option<String>,
    /// The containers whose namespaces it joins (from its record).
    #[serde(skip)]
    pub joins: BTreeMap<crate::spec::model::NamespaceKind, String>,
}

/// A container's state as the planner needs it (no pids or fds: plans are pure data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Phase {
    /// Created, never started.
    Created,
    Running {
        started_at_ms: u64,
    },
    Exited {
        exit: ExitRecord,
    },
    /// Neither running under its monitor nor recorded as ended (monitor killed, reboot).
    /// `running`: its process still runs, unsupervised. `started_at_ms`: its last start.
    Lost {
        reason: String,
        running: bool,
        started_at_ms: Option<u64>,
    },
    /// Its state could not be read (an I/O error): nothing may be decided about it.
    Unknown {
        reason: String,
    },
}

pub use crate::health::Health;

impl ObservedContainer {
    fn new(
        record: crate::state::record::ContainerRecord,
        phase: Phase,
        restarts: RestartRecord,
        monitor: Option<&crate::state::record::MonitorRecord>,
        layout: &crate::state::layout::Layout,
    ) -> ObservedContainer {
        let health = match (&record.health, monitor) {
            (Some(_), Some(m)) => Some(
                crate::health::checks::read(layout, &record.id, m.init)
                    .map_or(Health::Starting, |v| v.status),
            ),
            _ => None,
        };
        ObservedContainer {
            id: record.id,
            name: record.name,
            spec_hash: record.spec_hash,
            image: record.image,
            image_digest: record.image_digest,
            created_at: record.created_at,
            phase,
            restarts,
            health,
            ports: None,
            monitor: monitor.map(|m| m.monitor),
            init: monitor.map(|m| m.init),
            health_check: record.health,
            stale_join: None,
            joins: record.joins,
        }
    }
}

impl Phase {
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            Phase::Running { .. } | Phase::Lost { running: true, .. }
        )
    }
}

impl From<State> for Phase {
    fn from(state: State) -> Phase {
        match state {
            State::Created => Phase::Created,
            State::Running(m) => Phase::Running {
                started_at_ms: m.started_at_ms,
            },
            State::Exited(exit) => Phase::Exited { exit },
            State::Lost { reason, init } => Phase::Lost {
                reason,
                running: init.is_some(),
                started_at_ms: None,
            },
        }
    }
}

/// Read the actual state. Never fails as a whole: what cannot be read becomes a problem,
/// and a pass with problems does not prune. `sweep`: also clear what an interrupted create
/// or remove left (the reconciler does; `plan` and `status` only read).
pub fn observe(
    runtime: &Runtime,
    images: &ImageService,
    volumes: &Volumes,
    sweep: bool,
    cache: &mut RecordCache,
) -> Observed {
    let mut observed = Observed::default();
    if sweep {
        runtime.sweep_leftovers();
    }
    // Before the directories are scanned, as `orphans` requires of its own reading.
    match runtime.orphans() {
        Ok(orphans) => observed.orphans = orphans,
        Err(e) => observed.problems.push(format!(
            "looking for containers without a state directory: {e}"
        )),
    }
    match runtime.scan(&mut cache.records) {
        Ok((records, damaged)) => {
            observed.damaged = damaged;
            for record in records {
                if record.manual {
                    observed.manual_images.insert(record.image.clone());
                    continue;
                }
                // A running container seen before: its monitor still runs (one poll of its
                // pidfd) — nothing else can have changed.
                if let Some(live) = cache.live.get(&record.id) {
                    if matches!(
                        crate::sys::wait_readable(&live.pidfd, Some(std::time::Duration::ZERO)),
                        Ok(false)
                    ) {
                        let phase = Phase::Running {
                            started_at_ms: live.monitor.started_at_ms,
                        };
                        observed.containers.push(ObservedContainer::new(
                            record,
                            phase,
                            live.restarts.clone(),
                            Some(&live.monitor),
                            runtime.layout(),
                        ));
                        continue;
                    }
                    cache.live.remove(&record.id);
                }
                let restarts = runtime.restarts(&record.id).unwrap_or_default();
                let (phase, monitor) = match runtime.state(&record.id) {
                    Ok(state) => {
                        let monitor = match &state {
                            State::Running(m) => {
                                if let Ok(Some(pidfd)) = m.monitor.open() {
                                    cache.live.insert(
                                        record.id.clone(),
                                        Live {
                                            monitor: *m,
                                            pidfd,
                                            restarts: restarts.clone(),
                                        },
                                    );
                                }
                                Some(*m)
                            }
                            _ => None,
                        };
                        let mut phase = Phase::from(state);
                        if let Phase::Lost { started_at_ms, .. } = &mut phase {
                            *started_at_ms = runtime.last_start_ms(&record.id);
                        }
                        (phase, monitor)
                    }
                    // Kept, as unknown: a container that is there must never look absent
                    // (that would create a second one).
                    Err(e) => {
                        observed
                            .problems
                            .push(format!("container {}: {e}", record.id));
                        (
                            Phase::Unknown {
                                reason: e.to_string(),
                            },
                            None,
                        )
                    }
                };
                observed.containers.push(ObservedContainer::new(
                    record,
                    phase,
                    restarts,
                    monitor.as_ref(),
                    runtime.layout(),
                ));
            }
        }
        Err(e) => {
            observed.problems.push(format!("listing containers: {e}"));
            observed.containers_unreadable = Some(e.to_string());
        }
    }
    cache.live.retain(|id, _| cache.records.contains_key(id));
    // After every container is read: an owner may be listed after its sharer. The owner a
    // monitor joins is the newest running container of its name made by the reconciler,
    // which are exactly the ones listed here.
    if observed.containers.iter().any(|c| !c.joins.is_empty()) {
        let mut owners: BTreeMap<String, (u64, String, crate::sys::ProcessId)> = BTreeMap::new();
        for c in &observed.containers {
            if let (Phase::Running { started_at_ms }, Some(init)) = (&c.phase, c.init)
                && owners
                    .get(&c.name)
                    .is_none_or(|(newest, _, _)| newest < started_at_ms)
            {
                owners.insert(c.name.clone(), (*started_at_ms, c.id.clone(), init));
            }
        }
        for c in &mut observed.containers {
            if let (Phase::Running { .. }, Some(init)) = (&c.phase, c.init)
                && !c.joins.is_empty()
            {
                c.stale_join = crate::runtime::joins::stale_join(&c.joins, init, |owner| {
                    owners.get(owner).map(|(_, id, init)| (id.clone(), *init))
                });
            }
        }
    }
    match images.list() {
        Ok(records) => {
            // Only complete images count: one whose blobs are gone must be pulled again.
            for record in records.into_iter().filter(|r| images.is_complete(r)) {
                observed
                    .images
                    .insert(record.source, record.manifest.to_string());
            }
        }
        Err(e) => observed.problems.push(format!("listing images: {e}")),
    }
    match volumes.list() {
        Ok(list) => observed.volumes = list.into_iter().map(|v| v.name).collect(),
        Err(e) => observed.problems.push(format!("listing volumes: {e}")),
    }
    match crate::network::Networks::new(runtime.layout()).observe() {
        Ok(networks) => {
            for c in &mut observed.containers {
                c.ports = networks.ports.get(&c.id).copied();
            }
            observed.networks = networks;
        }
        Err(e) => {
            observed.networks.readable = false;
            observed.problems.push(format!("observing networks: {e}"));
        }
    }
    observed
}
