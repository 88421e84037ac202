//! `berth status`'s view: desired versus actual. Every described container with what it is
//! doing (state, restarts, last exit, health) and what the reconciler last said about it
//! (failed step, backoff, dependency wait); containers that are no longer described; the
//! problems of the desired files; the networks. Shown by the CLI and served by the API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::reconcile::apply::Machine;
use crate::reconcile::job;
use crate::reconcile::observe::{self, Phase};
use crate::reconcile::status;
use crate::spec::model::RestartPolicy;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "no reconciler has run on {} yet; name the desired-state directory: `berth status DIR`",
        root.display()
    )]
    NoDirectory { root: PathBuf },
    #[error(transparent)]
    Saved(#[from] status::StatusError),
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub dir: PathBuf,
    /// The reconciler that wrote the last pass, if it still runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_pass: Option<serde_json::Value>,
    pub problems: Vec<String>,
    pub containers: Vec<Row>,
    pub networks: Vec<NetRow>,
    /// berth's nftables table is what its state makes (else the next pass rebuilds it).
    pub rules_in_sync: bool,
}

#[derive(Debug, Serialize)]
pub struct NetRow {
    pub name: String,
    pub described: bool,
    /// missing | ok | bridge missing | changed
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    pub internal: bool,
    /// Containers holding an address on it.
    pub containers: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub described: bool,
    /// missing | created | running | exited | lost; for a one-shot job (restart "never" or
    /// "on-failure") that ended: "completed (exit 0)" or "failed (exit code 3)"
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<observe::Health>,
    /// Whether its published ports go to it (a start-first update: standby, then serving
    /// while the old one drains, superseded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<crate::state::network::PortHold>,
    /// The reconciler's last word: a failure, a wait, why it is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Made with `privileged = true`: root inside is root on the host.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
}

/// The view of `dir` (default: the one the agent or the last apply used).
pub fn build(machine: &Machine, dir: Option<&Path>) -> Result<Report, StatusError> {
    let saved = status::read(&machine.runtime.layout().state_root)?;
    let given = dir.map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf()));
    let Some(dir) = given.or_else(|| saved.as_ref().map(|s| s.dir.clone())) else {
        return Err(StatusError::NoDirectory {
            root: machine.runtime.layout().state_root.clone(),
        });
    };
    let observed = observe::observe(
        &machine.runtime,
        &machine.images,
        &machine.volumes,
        false,
        &mut observe::RecordCache::new(),
    );
    let loaded = crate::spec::load_dir(&dir);
    let (desired, mut problems) = match &loaded {
        Ok(l) => (
            Some(&l.desired),
            l.diagnostics
                .iter()
                .map(|d| d.one_line())
                .collect::<Vec<_>>(),
        ),
        Err(e) => (None, vec![e.to_string()]),
    };
    problems.extend(observed.problems.iter().cloned());
    let same_dir = saved.as_ref().is_some_and(|s| s.dir == dir);
    let notes = if same_dir {
        saved.as_ref().map(notes_of).unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    let mut rows = Vec::new();
    let mut names: Vec<String> = desired
        .map(|d| d.containers.keys().map(|n| n.to_string()).collect())
        .unwrap_or_default();
    for c in &observed.containers {
        if !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    for name in names {
        let described = desired.is_some_and(|d| d.containers.contains_key(name.as_str()));
        // The newest, preferring a running one: what serves the entry now.
        let current = observed
            .containers
            .iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| (c.phase.is_running(), c.created_at.clone()));
        let note = notes
            .get(&format!("container/{name}"))
            .cloned()
            .or_else(|| {
                (!described)
                    .then(|| "no longer described: pruned on the next complete pass".to_string())
            });
        rows.push(match current {
            None => Row {
                name,
                described,
                state: "missing".into(),
                id: None,
                restarts: 0,
                last_exit: None,
                exit_code: None,
                health: None,
                ports: None,
                note,
                privileged: false,
            },
            Some(c) => {
                let restart = desired
                    .and_then(|d| d.containers.get(name.as_str()))
                    .map(|e| e.restart);
                let mut note = note;
                let (state, exit) = match &c.phase {
                    Phase::Created => ("created".to_string(), None),
                    Phase::Running { .. } => ("running".to_string(), None),
                    // A job (another entry waits for it to complete, and it is not started
                    // again when it ends): its end is its result, not a problem. Other
                    // ended containers keep 0.1.0's `exited`, which scripts may test.
                    Phase::Exited { exit }
                        if restart.is_some_and(|r| r != RestartPolicy::Always)
                            && is_job(desired, &name) =>
                    {
                        if job::succeeded(exit) {
                            (
                                format!("completed (exit {})", exit.status()),
                                Some(exit.clone()),
                            )
                        } else {
                            if restart == Some(RestartPolicy::Never) {
                                let logs = machine.runtime.layout().container(&c.id).logs();
                                let output =
                                    format!("its output: {}", logs.join("container.log").display());
                                note = Some(match note {
                                    Some(n) => format!("{n}; {output}"),
                                    None => {
                                        format!("not run again until its spec changes; {output}")
                                    }
                                });
                            }
                            (
                                format!("failed ({})", job::failure(exit)),
                                Some(exit.clone()),
                            )
                        }
                    }
                    Phase::Exited { exit } => ("exited".to_string(), Some(exit.clone())),
                    Phase::Lost { reason, .. } => (format!("lost ({reason})"), None),
                    Phase::Unknown { reason } => (format!("unknown ({reason})"), None),
                };
                let last = exit.clone().or_else(|| c.restarts.last_exit.clone());
                Row {
                    name,
                    described,
                    state,
                    id: Some(c.id.clone()),
                    restarts: c.restarts.count,
                    last_exit: last.as_ref().map(|e| e.describe()),
                    exit_code: last.as_ref().and_then(|e| e.code),
                    health: c.health,
                    ports: c.ports,
                    note,
                    privileged: made_privileged(machine, &c.id),
                }
            }
        });
    }
    let networks = network_rows(machine, desired, &observed, &notes);
    let agent_pid = saved
        .as_ref()
        .filter(|s| s.mode == "agent" && Path::new(&format!("/proc/{}", s.pid)).exists())
        .map(|s| s.pid);
    let report = Report {
        dir,
        agent_pid,
        last_pass: saved.filter(|_| same_dir).map(|s| summary_of(&s.last_pass)),
        problems,
        containers: rows,
        networks,
        rules_in_sync: observed.networks.rules_in_sync,
    };
    Ok(report)
}

/// Whether the container was made from an entry with `privileged = true` (the entry it
/// recorded at creation says so).
fn made_privileged(machine: &Machine, id: &str) -> bool {
    std::fs::read(machine.runtime.layout().container(id).spec())
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["privileged"] == serde_json::Value::Bool(true))
}

/// Described and existing networks: the record's addressing, the bridge, who uses it.
fn network_rows(
    machine: &Machine,
    desired: Option<&crate::spec::model::Desired>,
    observed: &observe::Observed,
    notes: &BTreeMap<String, String>,
) -> Vec<NetRow> {
    let records: BTreeMap<String, crate::network::record::NetworkRecord> = machine
        .networks()
        .records()
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    let mut names: Vec<String> = desired
        .map(|d| d.networks.keys().map(|n| n.to_string()).collect())
        .unwrap_or_default();
    for name in records.keys() {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let spec = desired.and_then(|d| d.networks.get(name.as_str()));
            let seen = observed.networks.records.get(&name);
            let record = records.get(&name);
            let state = match (seen, spec) {
                (None, _) => "missing",
                (Some(o), _) if !o.bridge_ok => "bridge missing",
                (Some(o), Some(s))
                    if crate::spec::hash::SpecHashed::spec_hash(s)
                        .is_ok_and(|h| h.as_str() != o.spec_hash) =>
                {
                    "changed"
                }
                _ => "ok",
            };
            let note = notes.get(&format!("network/{name}")).cloned().or_else(|| {
                spec.is_none()
                    .then(|| "no longer described: pruned once no container uses it".to_string())
            });
            NetRow {
                described: spec.is_some(),
                state: state.into(),
                bridge: record.map(|r| r.bridge.clone()),
                subnet: record
                    .map(|r| r.subnet.to_string())
                    .or_else(|| spec.map(|s| s.subnet.to_string())),
                internal: record
                    .map(|r| r.internal)
                    .or(spec.map(|s| s.internal))
                    .unwrap_or(false),
                containers: seen.map_or(0, |o| o.holders.len()),
                note,
                name,
            }
        })
        .collect()
}

/// Per resource key: the last failure, else the last wait or keep reason.
fn notes_of(saved: &status::StatusSummary) -> BTreeMap<String, String> {
    let mut notes = BTreeMap::new();
    let plan = &saved.last_pass["plan"];
    for list in ["kept", "waits", "blocked"] {
        for item in plan[list].as_array().into_iter().flatten() {
            if let (Some(k), Some(r)) = (item["key"].as_str(), item["reason"].as_str()) {
                notes.insert(k.to_string(), r.to_string());
            }
        }
    }
    if let Some(failures) = saved.failures.as_object() {
        for (key, f) in failures {
            if let Some(e) = f["error"].as_str() {
                notes.insert(
                    key.clone(),
                    format!("failed {} time(s): {e}", f["count"].as_u64().unwrap_or(1)),
                );
            }
        }
    }
    notes
}

fn summary_of(pass: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "trigger": pass["trigger"],
        "started_at": pass["started_at"],
        "duration_ms": pass["duration_ms"],
        "cpu_us": pass["cpu_us"],
        "steps": pass["plan"]["steps"].as_array().map_or(0, |s| s.len()),
        "failed": pass["outcomes"].as_array().map_or(0, |o| o.iter().filter(|o| o["result"] == "failed").count()),
        "waits": pass["plan"]["waits"].as_array().map_or(0, |w| w.len()),
        "prune_blocked": pass["plan"]["prune_blocked"],
    })
}

/// Whether an entry of `desired` waits for `name` to complete.
fn is_job(desired: Option<&crate::spec::model::Desired>, name: &str) -> bool {
    desired.is_some_and(|d| {
        d.containers
            .values()
            .any(|e| e.depends_on.get(name) == Some(&crate::spec::model::Condition::Completed))
    })
}
