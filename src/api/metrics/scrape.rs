//! What is read at scrape time: containers by state and health, their restart counts, and
//! their cgroups' counters under cAdvisor's names. Built into a registry of its own for
//! each scrape, so a container that went leaves no series behind.
//!
//! Cost per scrape: one listing of the state root (records parsed once, then cached), each
//! container's state records, and for a running one its health record and one reading of
//! its cgroup (the cgroup is opened once and kept while the container runs).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::families::{ContainerLabels, HealthLabels, StateLabels};
use crate::health::Health;
use crate::runtime::stats::{Probe, Sample};
use crate::runtime::{Runtime, RuntimeError, State};
use crate::state::record::ContainerRecord;

type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;

/// What one scrape keeps for the next: parsed container records (they never change after
/// create) and the cgroups of running containers.
#[derive(Default)]
pub struct ScrapeCache {
    records: HashMap<String, ContainerRecord>,
    probes: HashMap<String, Probe>,
}

/// One reading of every container, ready to encode.
pub fn collect(runtime: &Runtime, cache: &mut ScrapeCache) -> Result<Registry, RuntimeError> {
    let (records, _damaged) = runtime.scan(&mut cache.records)?;
    let families = Families::default();
    for state in ["created", "running", "exited", "lost"] {
        families
            .states
            .get_or_create(&StateLabels {
                state: state.into(),
            })
            .set(0);
    }
    for health in ["starting", "healthy", "unhealthy"] {
        families
            .health
            .get_or_create(&HealthLabels {
                health: health.into(),
            })
            .set(0);
    }
    let mut running = std::collections::HashSet::new();
    for record in &records {
        let state = match runtime.state(&record.id) {
            Ok(state) => state,
            Err(e) => {
                tracing::debug!(container = %record.id, "metrics: cannot read its state: {e}");
                continue;
            }
        };
        let labels = ContainerLabels {
            name: record.name.clone(),
            id: record.id.clone(),
            image: record.image.clone(),
        };
        families
            .states
            .get_or_create(&StateLabels {
                state: state_name(&state).into(),
            })
            .inc();
        let count = runtime.restarts(&record.id).map_or(0, |r| r.count);
        families
            .restarts
            .get_or_create(&labels)
            .inc_by(u64::from(count));
        let State::Running(monitor) = &state else {
            continue;
        };
        running.insert(record.id.clone());
        #[allow(
            clippy::cast_precision_loss,
            reason = "Unix milliseconds are below 2^52"
        )]
        let started = monitor.started_at_ms as f64 / 1000.0;
        families.start_time.get_or_create(&labels).set(started);
        if let Some(verdict) =
            crate::health::checks::read(runtime.layout(), &record.id, monitor.init)
        {
            families
                .health
                .get_or_create(&HealthLabels {
                    health: health_name(verdict.status).into(),
                })
                .inc();
        }
        if let Some(sample) = sample(cache, record) {
            families.record_sample(&labels, &sample);
        }
    }
    cache.probes.retain(|id, _| running.contains(id));
    let mut registry = Registry::default();
    families.register(&mut registry);
    Ok(registry)
}

/// The container's cgroup read once; a cgroup that cannot be read is opened afresh next time.
fn sample(cache: &mut ScrapeCache, record: &ContainerRecord) -> Option<Sample> {
    let probe = match cache.probes.entry(record.id.clone()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            match Probe::open(Path::new(&record.cgroup_path)) {
                Ok(probe) => e.insert(probe),
                Err(err) => {
                    tracing::debug!(container = %record.id, "metrics: {err}");
                    return None;
                }
            }
        }
    };
    match probe.sample() {
        Ok(sample) => Some(sample),
        Err(err) => {
            tracing::debug!(container = %record.id, "metrics: {err}");
            cache.probes.remove(&record.id);
            None
        }
    }
}

fn state_name(state: &State) -> &'static str {
    match state {
        State::Created => "created",
        State::Running(_) => "running",
        State::Exited(_) => "exited",
        State::Lost { .. } => "lost",
    }
}

fn health_name(health: Health) -> &'static str {
    match health {
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

#[derive(Default)]
struct Families {
    states: Family<StateLabels, Gauge>,
    health: Family<HealthLabels, Gauge>,
    restarts: Family<ContainerLabels, Counter>,
    start_time: Family<ContainerLabels, FloatGauge>,
    cpu: Family<ContainerLabels, FloatCounter>,
    /// cAdvisor's working set: usage less the inactive file cache.
    memory: Family<ContainerLabels, Gauge>,
    memory_limit: Family<ContainerLabels, Gauge>,
    memory_peak: Family<ContainerLabels, Gauge>,
    threads: Family<ContainerLabels, Gauge>,
    threads_max: Family<ContainerLabels, Gauge>,
    io_read: Family<ContainerLabels, Counter>,
    io_write: Family<ContainerLabels, Counter>,
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Families {
    fn record_sample(&self, labels: &ContainerLabels, sample: &Sample) {
        #[allow(clippy::cast_precision_loss, reason = "CPU seconds keep 52 bits")]
        let cpu = sample.cpu_usage_ns as f64 / 1e9;
        self.cpu.get_or_create(labels).inc_by(cpu);
        let set = |family: &Family<ContainerLabels, Gauge>, value: Option<u64>| {
            if let Some(v) = value {
                family.get_or_create(labels).set(gauge_value(v));
            }
        };
        set(&self.memory, Some(sample.memory_usage));
        set(&self.memory_limit, sample.memory_limit);
        set(&self.memory_peak, sample.memory_peak);
        set(&self.threads, Some(sample.pids));
        set(&self.threads_max, sample.pids_limit);
        self.io_read.get_or_create(labels).inc_by(sample.io_read);
        self.io_write.get_or_create(labels).inc_by(sample.io_write);
    }

    fn register(self, registry: &mut Registry) {
        registry.register(
            "berth_containers",
            "Containers by state (created, running, exited, lost)",
            self.states,
        );
        registry.register(
            "berth_containers_health",
            "Running containers with a health check, by its verdict",
            self.health,
        );
        registry.register(
            "berth_container_restarts",
            "Restarts of a container in place by the agent (its restart policy)",
            self.restarts,
        );
        registry.register_with_unit(
            "container_start_time",
            "When the container's current run started, as a Unix time",
            Unit::Seconds,
            self.start_time,
        );
        registry.register_with_unit(
            "container_cpu_usage",
            "CPU time used by every process of the container",
            Unit::Seconds,
            self.cpu,
        );
        registry.register_with_unit(
            "container_memory_working_set",
            "Memory in use without the inactive file cache (as docker stats shows it)",
            Unit::Bytes,
            self.memory,
        );
        registry.register_with_unit(
            "container_spec_memory_limit",
            "The container's memory limit (absent without one)",
            Unit::Bytes,
            self.memory_limit,
        );
        registry.register_with_unit(
            "container_memory_max_usage",
            "Highest memory use seen, file cache included",
            Unit::Bytes,
            self.memory_peak,
        );
        registry.register(
            "container_threads",
            "Tasks (processes and threads) in the container's cgroup",
            self.threads,
        );
        registry.register(
            "container_threads_max",
            "The container's pids limit (absent without one)",
            self.threads_max,
        );
        registry.register_with_unit(
            "container_fs_reads",
            "Bytes read from block devices",
            Unit::Bytes,
            self.io_read,
        );
        registry.register_with_unit(
            "container_fs_writes",
            "Bytes written to block devices",
            Unit::Bytes,
            self.io_write,
        );
    }
}
