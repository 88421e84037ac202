//! Everything the Docker views of a container are made from, read once per request: its
//! record, its state confirmed against the kernel, its runtime spec (`config.json`: env,
//! args, labels as annotations, limits), its resolved entry (`spec.json`: mounts, restart
//! policy), its leases, health and restart count. Blocking: call it on the blocking pool.

use std::collections::BTreeMap;

use hyper::StatusCode;

use super::ids::{self, Known, Lookup};
use super::text::Phase;
use crate::health::verdict::HealthRecord;
use crate::network::record::{Lease, NetworkRecord};
use crate::runtime::State;
use crate::state::record::{self, ContainerRecord};
use std::sync::{Arc, LazyLock};

use super::parsed::Parsed;

/// One container as the Docker API shows it.
pub(super) struct Seen {
    pub record: ContainerRecord,
    pub docker_id: String,
    /// Without the leading `/`.
    pub name: String,
    pub state: State,
    pub phase: Phase,
    /// Its runtime spec, if readable.
    pub oci: Option<Arc<oci_spec::runtime::Spec>>,
    /// Its resolved entry as written at create (Null if unreadable).
    pub entry: Arc<serde_json::Value>,
    /// Its addresses, one per network, in the order of its networks.
    pub leases: Vec<Lease>,
    /// The records of the networks it joins, by name.
    pub networks: BTreeMap<String, NetworkRecord>,
    pub restarts: u32,
}

impl Seen {
    /// Its labels: the entry's (the runtime spec's annotations), berth's own marks among
    /// them, plus the spec hash and image; never the names of its secret variables.
    pub(super) fn labels(&self) -> BTreeMap<String, String> {
        let mut labels: BTreeMap<String, String> = self
            .oci
            .as_ref()
            .and_then(|s| s.annotations().clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k != "io.berth.secret-env")
            .collect();
        labels.insert("io.berth.name".into(), self.record.name.clone());
        labels.insert("io.berth.id".into(), self.record.id.clone());
        labels.insert("io.berth.spec-hash".into(), self.record.spec_hash.clone());
        labels.insert("io.berth.image".into(), self.record.image.clone());
        if self.record.manual {
            labels.insert("io.berth.manual".into(), "true".into());
        }
        labels
    }

    /// The process's arguments (the runtime spec's).
    pub(super) fn args(&self) -> Vec<String> {
        self.oci
            .as_ref()
            .and_then(|s| s.process().as_ref())
            .and_then(|p| p.args().clone())
            .unwrap_or_default()
    }

    /// `HostConfig.NetworkMode`: "host", "none", "container:ID" or its first network.
    pub(super) fn network_mode(&self) -> String {
        match self.entry.pointer("/network") {
            Some(serde_json::Value::String(mode)) => mode.clone(),
            Some(serde_json::Value::Object(m)) if m.contains_key("container") => {
                let name = m["container"].as_str().unwrap_or_default();
                format!("container:{name}")
            }
            _ => self
                .record
                .networks
                .first()
                .map(|a| a.network.clone())
                .unwrap_or_else(|| "none".into()),
        }
    }
}

/// A failure to read, as an HTTP status and dockerd-style message.
pub(super) type Failure = (StatusCode, String);

fn internal(e: impl std::fmt::Display) -> Failure {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// What every container's view shares: the networks' records and leases.
struct Networks {
    leases: BTreeMap<String, Vec<Lease>>,
    records: BTreeMap<String, NetworkRecord>,
}

fn networks(layout: &crate::state::layout::Layout) -> Result<Networks, Failure> {
    let networks = crate::network::Networks::new(layout);
    let mut leases: BTreeMap<String, Vec<Lease>> = BTreeMap::new();
    let mut records = BTreeMap::new();
    for network in networks.records().map_err(internal)? {
        for lease in networks.leases(&network.name).unwrap_or_default() {
            leases
                .entry(lease.container.clone())
                .or_default()
                .push(lease);
        }
        records.insert(network.name.clone(), network);
    }
    Ok(Networks { leases, records })
}

/// The name Docker shows for each record: the newest container of a name carries it, the
/// others their berth id.
fn names(records: &[ContainerRecord]) -> Vec<String> {
    let mut newest: BTreeMap<&str, &str> = BTreeMap::new();
    for r in records {
        newest.insert(&r.name, &r.id);
    }
    records
        .iter()
        .map(|r| {
            if newest.get(r.name.as_str()) == Some(&r.id.as_str()) {
                r.name.clone()
            } else {
                r.id.clone()
            }
        })
        .collect()
}

/// One container's view; None when its state cannot be read (logged).
fn see(
    runtime: &crate::runtime::Runtime,
    record: ContainerRecord,
    name: String,
    networks: &mut Networks,
) -> Option<Seen> {
    let state = match runtime.state(&record.id) {
        Ok(state) => state,
        Err(e) => {
            tracing::warn!(container = record.id, "docker api: {e}");
            return None;
        }
    };
    let paths = runtime.layout().container(&record.id);
    let phase = phase(&state, &paths.health(), runtime.last_start_ms(&record.id));
    let oci = OCI_SPECS.get(&paths.config());
    let entry = ENTRIES
        .get(&paths.spec())
        .unwrap_or_else(|| Arc::new(serde_json::Value::Null));
    let mut mine = networks.leases.remove(&record.id).unwrap_or_default();
    let order = |l: &Lease| {
        record
            .networks
            .iter()
            .position(|a| a.network == l.network)
            .unwrap_or(usize::MAX)
    };
    mine.sort_by_key(order);
    let joined = record
        .networks
        .iter()
        .filter_map(|a| Some((a.network.clone(), networks.records.get(&a.network)?.clone())))
        .collect();
    Some(Seen {
        networks: joined,
        docker_id: ids::docker_id(&record.id),
        name,
        restarts: runtime.restarts(&record.id).map_or(0, |r| r.count),
        record,
        state,
        phase,
        oci,
        entry,
        leases: mine,
    })
}

/// Runtime specs and entries, parsed once per container (they are big: parsing them was
/// most of a listing's cost).
static OCI_SPECS: LazyLock<Parsed<oci_spec::runtime::Spec>> = LazyLock::new(Parsed::new);
static ENTRIES: LazyLock<Parsed<serde_json::Value>> = LazyLock::new(Parsed::new);

/// Every container, oldest first.
pub(super) fn all(machine: &crate::reconcile::apply::Machine) -> Result<Vec<Seen>, Failure> {
    let runtime = &machine.runtime;
    let records = runtime.list().map_err(internal)?;
    let containers = runtime.layout().containers();
    let live = |path: &std::path::Path| {
        records
            .iter()
            .any(|r| path.parent() == Some(containers.join(&r.id).as_path()))
    };
    OCI_SPECS.retain(live);
    ENTRIES.retain(live);
    let mut networks = networks(runtime.layout())?;
    let names = names(&records);
    Ok(records
        .into_iter()
        .zip(names)
        .filter_map(|(record, name)| see(runtime, record, name, &mut networks))
        .collect())
}

/// The record of the container `asked` names (id, name, id prefix or berth id), its Docker
/// id and name: found from the records alone, as the streaming endpoints need no more.
pub(super) fn lookup(
    machine: &crate::reconcile::apply::Machine,
    asked: &str,
) -> Result<(ContainerRecord, String, String), Failure> {
    let mut records = machine.runtime.list().map_err(internal)?;
    let mut names = names(&records);
    let docker_ids: Vec<String> = records.iter().map(|r| ids::docker_id(&r.id)).collect();
    let found = {
        let known: Vec<Known<'_>> = records
            .iter()
            .zip(&names)
            .zip(&docker_ids)
            .map(|((r, name), docker_id)| Known {
                docker_id,
                berth_id: &r.id,
                name,
            })
            .collect();
        ids::find(&known, asked)
    };
    match found {
        Lookup::Found(i) => {
            let docker_id = docker_ids[i].clone();
            Ok((records.swap_remove(i), docker_id, names.swap_remove(i)))
        }
        Lookup::Missing => Err((StatusCode::NOT_FOUND, format!("No such container: {asked}"))),
        Lookup::Ambiguous => Err((
            StatusCode::BAD_REQUEST,
            format!("multiple IDs found with provided prefix: {asked}"),
        )),
    }
}

/// The container `asked` names (id, name, id prefix or berth id).
pub(super) fn one(
    machine: &crate::reconcile::apply::Machine,
    asked: &str,
) -> Result<Seen, Failure> {
    let (record, _, name) = lookup(machine, asked)?;
    let id = record.id.clone();
    let mut networks = networks(machine.runtime.layout())?;
    see(&machine.runtime, record, name, &mut networks)
        .ok_or_else(|| internal(format!("the state of container {id} cannot be read")))
}

fn phase(state: &State, health_path: &std::path::Path, last_start_ms: Option<u64>) -> Phase {
    match state {
        State::Created => Phase::Created,
        State::Running(monitor) => {
            let health = record::load::<HealthRecord>(health_path)
                .ok()
                .flatten()
                .filter(|h| h.init == monitor.init)
                .map(|h| h.status.to_string());
            Phase::Running {
                started_ms: monitor.started_at_ms,
                health,
            }
        }
        State::Lost { init: Some(_), .. } => Phase::Running {
            started_ms: last_start_ms.unwrap_or(0),
            health: None,
        },
        State::Lost { init: None, .. } => Phase::Dead,
        State::Exited(exit) => Phase::Exited {
            code: exit.status(),
            finished_ms: exit.finished_at_ms,
        },
    }
}
