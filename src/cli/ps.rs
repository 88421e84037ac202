//! `berth ps [-a] [--json]`: the containers berth made and what they are doing, from their
//! records confirmed against the kernel.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use berth::runtime::State;
use berth::state::record::ContainerRecord;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also list containers that are not running.
    #[arg(long, short = 'a')]
    all: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    name: String,
    image: String,
    image_digest: String,
    engine: String,
    /// created | running | exited | lost | orphan | damaged
    state: &'static str,
    /// What happened, e.g. "completed (exited with code 0)", "killed by signal 9".
    status: String,
    /// Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    /// Restarts in place under its restart policy.
    restarts: u32,
    /// While it runs with a health check: starting | healthy | unhealthy (checked by the
    /// reconciler; an unhealthy container is restarted per its restart policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<berth::health::Health>,
    /// The last check's output.
    #[serde(skip_serializing_if = "Option::is_none")]
    health_output: Option<String>,
    spec_hash: String,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = berth::wiring::runtime(root)?;
    let mut rows = Vec::new();
    for record in runtime.list()? {
        let state = runtime.state(&record.id)?;
        if !args.all && !state.is_running() {
            continue;
        }
        let restarts = runtime.restarts(&record.id).map_or(0, |r| r.count);
        rows.push(row(runtime.layout(), record, state, restarts));
    }
    // Running, but recorded nowhere (its directory was deleted by hand): shown so that it
    // can be seen and removed; the agent removes it on its own.
    // Not being able to look for them must not hide the containers that are recorded.
    match runtime.orphans() {
        Ok(orphans) => {
            for id in orphans {
                rows.push(bare_row(
                    id,
                    "orphan",
                    "runs without a state directory; berth rm removes it".into(),
                ));
            }
        }
        Err(e) => {
            eprintln!("berth: warning: looking for containers without a state directory: {e}")
        }
    }
    if args.all {
        for id in runtime.unreadable()? {
            rows.push(bare_row(
                id,
                "damaged",
                "its record cannot be read; berth rm removes it".into(),
            ));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<20} {:<9} {:<34} {:>8}  IMAGE",
        "ID", "NAME", "STATE", "STATUS", "RESTARTS"
    );
    for r in &rows {
        println!(
            "{:<28} {:<20} {:<9} {:<34} {:>8}  {}",
            r.id, r.name, r.state, r.status, r.restarts, r.image
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A container known only by its id (no readable record).
fn bare_row(id: String, state: &'static str, status: String) -> Row {
    Row {
        name: id
            .rsplit_once('-')
            .map(|(n, _)| n.to_string())
            .unwrap_or_default(),
        id,
        image: String::new(),
        image_digest: String::new(),
        engine: String::new(),
        state,
        status,
        started_at_ms: None,
        finished_at_ms: None,
        exit_code: None,
        pid: None,
        restarts: 0,
        spec_hash: String::new(),
        health: None,
        health_output: None,
    }
}

fn row(
    layout: &berth::state::layout::Layout,
    record: ContainerRecord,
    state: State,
    restarts: u32,
) -> Row {
    let checked = record.health.is_some();
    let mut row = Row {
        engine: match &record.engine {
            berth::state::record::EngineRecord::Embedded => "embedded".into(),
            berth::state::record::EngineRecord::Oci { binary } => binary.display().to_string(),
        },
        id: record.id,
        name: record.name,
        image: record.image,
        image_digest: record.image_digest,
        state: "created",
        status: "created, not started".into(),
        started_at_ms: None,
        finished_at_ms: None,
        exit_code: None,
        pid: None,
        restarts,
        spec_hash: record.spec_hash,
        health: None,
        health_output: None,
    };
    match state {
        State::Created => {}
        State::Running(m) => {
            row.state = "running";
            row.status = format!("up {}", ago(m.started_at_ms));
            if checked {
                let verdict = berth::health::checks::read(layout, &row.id, m.init);
                let health = verdict
                    .as_ref()
                    .map_or(berth::health::Health::Starting, |v| v.status);
                // Checks run only while an agent (or apply) runs: an old verdict says its age.
                let interval = record
                    .health
                    .as_ref()
                    .map_or(0, |h| berth::units::millis(h.interval.0));
                let last = verdict
                    .as_ref()
                    .and_then(|v| v.last.as_ref())
                    .map(|l| l.at_ms);
                row.status = match last {
                    Some(at)
                        if berth::state::record::now_ms().saturating_sub(at)
                            > 3 * interval + 1000 =>
                    {
                        format!("{} ({health}, checked {} ago)", row.status, ago(at))
                    }
                    _ => format!("{} ({health})", row.status),
                };
                row.health = Some(health);
                row.health_output = verdict.and_then(|v| v.last).map(|l| l.output);
            }
            row.started_at_ms = Some(m.started_at_ms);
            row.pid = Some(m.init.pid);
        }
        State::Exited(exit) => {
            row.state = "exited";
            let what = if berth::reconcile::job::succeeded(&exit) {
                format!("completed ({})", exit.describe())
            } else {
                exit.describe()
            };
            row.status = format!("{what} {} ago", ago(exit.finished_at_ms));
            row.started_at_ms = Some(exit.started_at_ms);
            row.finished_at_ms = Some(exit.finished_at_ms);
            row.exit_code = Some(exit.status());
        }
        State::Lost { reason, init } => {
            row.state = "lost";
            row.status = reason;
            row.pid = init.map(|p| p.pid);
        }
    }
    row
}

/// "3m", "2h 5m", rounded down to what a person reads at a glance.
fn ago(ms: u64) -> String {
    let secs = berth::state::record::now_ms().saturating_sub(ms) / 1000;
    let rounded = if secs < 120 {
        secs
    } else if secs < 7200 {
        secs / 60 * 60
    } else {
        secs / 3600 * 3600
    };
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}
