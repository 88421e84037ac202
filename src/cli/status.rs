//! `berth status [DIR]`: desired versus actual. Every described container with what it is
//! doing (state, restarts, last exit, health) and what the reconciler last said about it
//! (failed step, backoff, dependency wait); containers that are no longer described; the
//! problems of the desired files. DIR defaults to the one the agent (or the last apply)
//! used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use berth::reconcile::apply::Machine;
use berth::reconcile::job;
use berth::reconcile::observe::{self, Phase};
use berth::reconcile::status;
use berth::spec::model::RestartPolicy;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The desired-state directory (default: the one the agent or the last apply used).
    dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    dir: PathBuf,
    /// The reconciler that wrote the last pass, if it still runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_pass: Option<serde_json::Value>,
    problems: Vec<String>,
    containers: Vec<Row>,
    networks: Vec<NetRow>,
    /// berth's nftables table is what its state makes (else the next pass rebuilds it).
    rules_in_sync: bool,
}

#[derive(Debug, Serialize)]
struct NetRow {
    name: String,
    described: bool,
    /// missing | ok | bridge missing | changed
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bridge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subnet: Option<String>,
    internal: bool,
    /// Containers holding an address on it.
    containers: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    described: bool,
    /// missing | created | running | exited | lost; for a one-shot job (restart "never" or
    /// "on-failure") that ended: "completed (exit 0)" or "failed (exit code 3)"
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_exit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<observe::Health>,
    /// Whether its published ports go to it (a start-first update: standby, then serving
    /// while the old one drains, superseded).
    #[serde(skip_serializing_if = "Option::is_none")]
    ports: Option<berth::state::network::PortHold>,
    /// The reconciler's last word: a failure, a wait, why it is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// Made with `privileged = true`: root inside is root on the host.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    privileged: bool,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let saved = status::read(root)?;
    let given = args
        .dir
        .as_ref()
        .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()));
    let Some(dir) = given.or_else(|| saved.as_ref().map(|s| s.dir.clone())) else {
        bail!(
            "no reconciler has run on {} yet; name the desired-state directory: `berth status DIR`",
            root.display()
        );
    };
    let machine = Machine::open(root, None)?;
    let observed = observe::observe(
        &machine.runtime,
        &machine.images,
        &machine.volumes,
        false,
        &mut observe::RecordCache::new(),
    );
    let loaded = berth::spec::load_dir(&dir);
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
                    privileged: made_privileged(&machine, &c.id),
                }
            }
        });
    }
    let networks = network_rows(&machine, desired, &observed, &notes);
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
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
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
    desired: Option<&berth::spec::model::Desired>,
    observed: &observe::Observed,
    notes: &BTreeMap<String, String>,
) -> Vec<NetRow> {
    let records: BTreeMap<String, berth::network::record::NetworkRecord> = machine
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
                    if berth::spec::hash::SpecHashed::spec_hash(s)
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

fn print_text(report: &Report) {
    println!("desired state: {}", report.dir.display());
    match (&report.agent_pid, &report.last_pass) {
        (Some(pid), Some(p)) => println!(
            "agent: running (pid {pid}); last pass {} ({}, {} step(s), {} failed)",
            p["started_at"].as_str().unwrap_or("?"),
            p["trigger"].as_str().unwrap_or("?"),
            p["steps"],
            p["failed"]
        ),
        (None, Some(p)) => println!(
            "agent: not running; last pass {} ({})",
            p["started_at"].as_str().unwrap_or("?"),
            p["trigger"].as_str().unwrap_or("?")
        ),
        _ => println!("agent: not running; no pass recorded for this directory"),
    }
    if !report.problems.is_empty() {
        println!("problems (nothing is pruned while there are any):");
        for p in &report.problems {
            println!("  {p}");
        }
    }
    println!(
        "{:<20} {:<28} {:<22} {:>8}  {:<28} NOTE",
        "NAME", "STATE", "CONTAINER", "RESTARTS", "LAST EXIT"
    );
    for r in &report.containers {
        let mut marks: Vec<String> = r.health.iter().map(|h| h.to_string()).collect();
        if r.privileged {
            marks.insert(0, "PRIVILEGED".into());
        }
        match r.ports {
            Some(berth::state::network::PortHold::Standby) => marks.push("standby".into()),
            Some(berth::state::network::PortHold::Superseded { .. }) => {
                marks.push("draining".into())
            }
            _ => {}
        }
        let health = if marks.is_empty() {
            String::new()
        } else {
            format!(" ({})", marks.join(", "))
        };
        println!(
            "{:<20} {:<28} {:<22} {:>8}  {:<28} {}",
            r.name,
            format!("{}{health}", r.state),
            r.id.as_deref().unwrap_or("-"),
            r.restarts,
            r.last_exit.as_deref().unwrap_or("-"),
            r.note.as_deref().unwrap_or("")
        );
    }
    if !report.networks.is_empty() {
        println!();
        println!(
            "{:<20} {:<15} {:<10} {:<29} {:>10}  NOTE",
            "NETWORK", "STATE", "BRIDGE", "SUBNET", "CONTAINERS"
        );
        for n in &report.networks {
            println!(
                "{:<20} {:<15} {:<10} {:<29} {:>10}  {}",
                n.name,
                n.state,
                n.bridge.as_deref().unwrap_or("-"),
                format!(
                    "{}{}",
                    n.subnet.as_deref().unwrap_or("-"),
                    if n.internal { " (internal)" } else { "" }
                ),
                n.containers,
                n.note.as_deref().unwrap_or("")
            );
        }
        if !report.rules_in_sync {
            println!("nftables table: differs from the state; the next pass rebuilds it");
        }
    }
}

/// Whether an entry of `desired` waits for `name` to complete.
fn is_job(desired: Option<&berth::spec::model::Desired>, name: &str) -> bool {
    desired.is_some_and(|d| {
        d.containers
            .values()
            .any(|e| e.depends_on.get(name) == Some(&berth::spec::model::Condition::Completed))
    })
}
