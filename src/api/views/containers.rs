//! `berth ps`'s view: the containers berth made and what they are doing, from their records
//! confirmed against the kernel. Shown by the CLI and served by the API.

use std::time::Duration;

use serde::Serialize;

use crate::runtime::{Runtime, RuntimeError, State};
use crate::state::record::ContainerRecord;

#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_digest: String,
    pub engine: String,
    /// created | running | exited | lost | orphan | damaged
    pub state: &'static str,
    /// What happened, e.g. "completed (exited with code 0)", "killed by signal 9".
    pub status: String,
    /// Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Restarts in place under its restart policy.
    pub restarts: u32,
    /// While it runs with a health check: starting | healthy | unhealthy (checked by the
    /// reconciler; an unhealthy container is restarted per its restart policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
    /// The last check's output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_output: Option<String>,
    pub spec_hash: String,
}

/// The rows, and what could not be looked at (it must not hide what could).
pub struct Listing {
    pub rows: Vec<Row>,
    pub warnings: Vec<String>,
}

/// Running containers, or all with `all` (damaged records included).
pub fn list(runtime: &Runtime, all: bool) -> Result<Listing, RuntimeError> {
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for record in runtime.list()? {
        let state = runtime.state(&record.id)?;
        if !all && !state.is_running() {
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
        Err(e) => warnings.push(format!(
            "looking for containers without a state directory: {e}"
        )),
    }
    if all {
        for id in runtime.unreadable()? {
            rows.push(bare_row(
                id,
                "damaged",
                "its record cannot be read; berth rm removes it".into(),
            ));
        }
    }
    Ok(Listing { rows, warnings })
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
    layout: &crate::state::layout::Layout,
    record: ContainerRecord,
    state: State,
    restarts: u32,
) -> Row {
    let checked = record.health.is_some();
    let mut row = Row {
        engine: match &record.engine {
            crate::state::record::EngineRecord::Embedded => "embedded".into(),
            crate::state::record::EngineRecord::Oci { binary } => binary.display().to_string(),
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
                let verdict = crate::health::checks::read(layout, &row.id, m.init);
                let health = verdict
                    .as_ref()
                    .map_or(crate::health::Health::Starting, |v| v.status);
                // Checks run only while an agent (or apply) runs: an old verdict says its age.
                let interval = record
                    .health
                    .as_ref()
                    .map_or(0, |h| crate::units::millis(h.interval.0));
                let last = verdict
                    .as_ref()
                    .and_then(|v| v.last.as_ref())
                    .map(|l| l.at_ms);
                row.status = match last {
                    Some(at)
                        if crate::state::record::now_ms().saturating_sub(at)
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
            let what = if crate::reconcile::job::succeeded(&exit) {
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
    let secs = crate::state::record::now_ms().saturating_sub(ms) / 1000;
    let rounded = if secs < 120 {
        secs
    } else if secs < 7200 {
        secs / 60 * 60
    } else {
        secs / 3600 * 3600
    };
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}
