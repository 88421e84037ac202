//! One-shot jobs: a container with `restart = "never"` (or "on-failure") that others wait
//! for with `depends_on = { migrate = "completed" }`. What its entry's current container
//! says about the run for the current spec: pure, shared by the planner, `status` and `ps`.
//!
//! "Completed for this spec" needs no record of its own: the entry's current container
//! (same spec hash and image digest) and its exit record are kept until the spec changes,
//! so an agent restart, a re-apply or a new observation finds the same answer.

use super::observe::{ObservedContainer, Phase};
use crate::state::record::ExitRecord;

/// A run that counts as completed: the process exited by itself with status 0 (not killed,
/// not stopped by berth, not a failed start).
pub fn succeeded(exit: &ExitRecord) -> bool {
    exit.code == Some(0) && exit.error.is_none() && exit.stopped_because.is_none()
}

/// How a failed run ended: "exit code 3", else the exit record's words ("killed by signal
/// 9", "failed to start: …").
pub fn failure(exit: &ExitRecord) -> String {
    match (exit.code, &exit.error, &exit.stopped_because) {
        (Some(code), None, None) => format!("exit code {code}"),
        _ => exit.describe(),
    }
}

/// "failed with exit code 3", "failed: killed by signal 9": for "migrate failed …".
pub fn failed(exit: &ExitRecord) -> String {
    match (exit.code, &exit.error, &exit.stopped_because) {
        (Some(code), None, None) => format!("failed with exit code {code}"),
        _ => format!("failed: {}", exit.describe()),
    }
}

/// The run of a job for its current spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobRun<'o> {
    /// No container for the current spec has ended yet (none made, created, or running).
    Pending,
    Completed,
    /// Ended without succeeding; the exit is known.
    Failed {
        id: &'o str,
        exit: &'o ExitRecord,
    },
    /// Ended (or its monitor did) without an exit record: the next pass decides what it is.
    Lost {
        id: &'o str,
    },
}

/// What the entry's current container (`plan::current_container`) says about its run.
pub(crate) fn run_of(current: Option<&ObservedContainer>) -> JobRun<'_> {
    let Some(c) = current else {
        return JobRun::Pending;
    };
    match &c.phase {
        Phase::Exited { exit } if succeeded(exit) => JobRun::Completed,
        Phase::Exited { exit } => JobRun::Failed { id: &c.id, exit },
        Phase::Lost { running: false, .. } => JobRun::Lost { id: &c.id },
        Phase::Created | Phase::Running { .. } | Phase::Lost { .. } | Phase::Unknown { .. } => {
            JobRun::Pending
        }
    }
}
