//! Where a start-first entry's update stands, and what the planner does about it. Pure:
//! `classify` reads the phase once from the entry's observed containers, `transition` maps
//! the phase and the clock to the planner's moves; `plan` turns the moves into steps.
//!
//! The sequence, one step per pass, each decided from what is observed (so a crash anywhere
//! resumes it): start the successor beside the old containers; wait until it is healthy (at
//! most `update_timeout` from its start); take the ports over; let the old ones drain for
//! `drain` from the switch; remove them. A successor that turns unhealthy, is not healthy in
//! time or ends is removed instead, and the old ones serve on untouched.

use super::observe::{Health, ObservedContainer, Phase};
use crate::state::network::PortHold;

/// A start-first entry's update, classified from what is observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UpdatePhase {
    /// No old container serves and nothing waits to take the ports: the usual rules apply.
    NoUpdate,
    /// An old container runs, but who serves the ports is unknown (the networks' state cannot
    /// be read): the usual rules would stop the old container first.
    PortsUnknown,
    /// Old containers serve; the entry has no container of its current spec yet.
    StartingSuccessor,
    /// The successor was made by a pass that was cut short, never started.
    SuccessorCreated,
    /// The successor runs on standby, its health not known yet; an old container serves, or
    /// will again once restarted: the successor is held to `update_timeout` from its start.
    AwaitingHealth {
        started_at_ms: u64,
        predecessor: Predecessor,
    },
    /// The successor runs on standby, its health not known yet, and nothing else serves the
    /// ports: it takes them whenever it is healthy.
    AwaitingHealthAlone,
    /// The successor on standby is healthy: it takes the ports over.
    TakingOver,
    /// The successor failed while an old container serves (or will again): it goes.
    SuccessorFailed {
        failure: SuccessorFailure,
        predecessor: Predecessor,
    },
    /// The successor has served since `since_ms`; the old ones drain.
    Draining { since_ms: u64 },
    /// The successor runs but holds no ports (not plugged in): the old ones are simply stale.
    SuccessorUnplugged,
}

/// Who serves the ports while the successor is not serving yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Predecessor {
    /// Old containers still have them.
    Serving,
    /// The old container ended by itself and none serves: its restart policy brings it back
    /// (its claim gives it the ports again).
    Fallen,
}

/// How the successor failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SuccessorFailure {
    Unhealthy,
    /// It exited (its exit, described).
    Exited {
        exit: String,
    },
    /// It was lost (why).
    Lost {
        reason: String,
    },
}

/// Why a successor is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Abort {
    Failed(SuccessorFailure),
    /// Not healthy within `update_timeout` of its start.
    NotHealthyInTime,
}

impl Abort {
    /// Why `successor` goes, for the step and its failure record.
    pub(crate) fn why(&self, successor: &str, update_timeout: &impl std::fmt::Display) -> String {
        match self {
            Abort::Failed(SuccessorFailure::Unhealthy) => format!("{successor} is unhealthy"),
            Abort::Failed(SuccessorFailure::Exited { exit }) => format!("{successor} {exit}"),
            Abort::Failed(SuccessorFailure::Lost { reason }) => format!("{successor}: {reason}"),
            Abort::NotHealthyInTime => {
                format!("{successor} was not healthy within update_timeout {update_timeout}")
            }
        }
    }
}

/// An entry's update phase with the containers each part is played by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EntryUpdate<'o> {
    pub phase: UpdatePhase,
    /// The container of the entry's current spec, if any.
    pub successor: Option<&'o ObservedContainer>,
    /// Old containers that still have (or drain) the published ports.
    pub serving: Vec<&'o ObservedContainer>,
    /// The old container that ended by itself while the successor, not healthy, was on
    /// standby and none served: never stale while its successor has not taken over.
    pub fallen: Option<&'o ObservedContainer>,
    /// Every other container of the entry (an abandoned earlier attempt, stopped leftovers).
    pub stale: Vec<&'o ObservedContainer>,
}

impl EntryUpdate<'_> {
    fn without_parts(phase: UpdatePhase) -> Self {
        EntryUpdate {
            phase,
            successor: None,
            serving: Vec::new(),
            fallen: None,
            stale: Vec::new(),
        }
    }

    /// The old containers, for messages: those serving, else the fallen one.
    pub(crate) fn old_ids(&self) -> String {
        match self.fallen {
            Some(f) if self.serving.is_empty() => f.id.clone(),
            _ => self
                .serving
                .iter()
                .map(|o| o.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The phase of a start-first entry whose containers are `mine`, `current` the one of its
/// current spec (`plan::current_container`).
pub(crate) fn classify<'o>(
    mine: &[&'o ObservedContainer],
    current: Option<&'o ObservedContainer>,
    networks_readable: bool,
) -> EntryUpdate<'o> {
    let is_current = |o: &ObservedContainer| current.is_some_and(|cur| cur.id == o.id);
    let old: Vec<&ObservedContainer> = mine.iter().copied().filter(|o| !is_current(o)).collect();
    if !networks_readable && old.iter().any(|o| o.phase.is_running()) {
        return EntryUpdate::without_parts(UpdatePhase::PortsUnknown);
    }
    let serving: Vec<&ObservedContainer> = old
        .iter()
        .copied()
        .filter(|o| o.phase.is_running())
        .filter(|o| {
            matches!(
                o.ports,
                Some(PortHold::Serving { .. } | PortHold::Superseded { .. })
            )
        })
        .collect();
    // Waiting to take the ports: new, or an older container the entry went back to while
    // its successor served (a rollback by hand).
    let standby = current.is_some_and(|cur| {
        matches!(cur.phase, Phase::Running { .. })
            && matches!(
                cur.ports,
                Some(PortHold::Standby | PortHold::Superseded { .. })
            )
            && cur.health != Some(Health::Unhealthy)
    });
    let fallen = current
        .filter(|cur| {
            matches!(cur.phase, Phase::Running { .. })
                && cur.ports == Some(PortHold::Standby)
                && cur.health != Some(Health::Healthy)
                && serving.is_empty()
        })
        .and_then(|_| {
            old.iter()
                .copied()
                .filter(|o| matches!(o.phase, Phase::Exited { .. } | Phase::Lost { .. }))
                .filter(|o| o.ports == Some(PortHold::Down { claimed: true }))
                .max_by(|a, b| a.created_at.cmp(&b.created_at))
        });
    if serving.is_empty() && !standby && fallen.is_none() {
        return EntryUpdate::without_parts(UpdatePhase::NoUpdate);
    }
    let predecessor = if serving.is_empty() {
        fallen.map(|_| Predecessor::Fallen)
    } else {
        Some(Predecessor::Serving)
    };
    let phase = match current {
        None => UpdatePhase::StartingSuccessor,
        Some(cur) => successor_phase(cur, predecessor, !serving.is_empty()),
    };
    let stale = old
        .iter()
        .copied()
        .filter(|o| !serving.iter().any(|s| s.id == o.id) && fallen.is_none_or(|f| f.id != o.id))
        .collect();
    EntryUpdate {
        phase,
        successor: current,
        serving,
        fallen,
        stale,
    }
}

/// The phase given by the successor's state, `predecessor` who serves meanwhile (if anyone
/// does or will), `old_running` whether an old container still has the ports.
fn successor_phase(
    cur: &ObservedContainer,
    predecessor: Option<Predecessor>,
    old_running: bool,
) -> UpdatePhase {
    match (&cur.phase, cur.ports) {
        (Phase::Created, _) => UpdatePhase::SuccessorCreated,
        (
            Phase::Running { started_at_ms },
            Some(PortHold::Standby | PortHold::Superseded { .. }),
        ) => match (cur.health, predecessor) {
            (Some(Health::Healthy), _) => UpdatePhase::TakingOver,
            (Some(Health::Unhealthy), Some(predecessor)) => UpdatePhase::SuccessorFailed {
                failure: SuccessorFailure::Unhealthy,
                predecessor,
            },
            (_, None) => UpdatePhase::AwaitingHealthAlone,
            (_, Some(predecessor)) => UpdatePhase::AwaitingHealth {
                started_at_ms: *started_at_ms,
                predecessor,
            },
        },
        (Phase::Running { .. }, Some(PortHold::Serving { since_ms })) => {
            UpdatePhase::Draining { since_ms }
        }
        (Phase::Exited { exit }, _) if old_running => UpdatePhase::SuccessorFailed {
            failure: SuccessorFailure::Exited {
                exit: exit.describe(),
            },
            predecessor: Predecessor::Serving,
        },
        (Phase::Lost { reason, .. }, _) if old_running => UpdatePhase::SuccessorFailed {
            failure: SuccessorFailure::Lost {
                reason: reason.clone(),
            },
            predecessor: Predecessor::Serving,
        },
        // Running but not plugged in, or taken over by another container.
        _ => UpdatePhase::SuccessorUnplugged,
    }
}

/// What the transitions need besides the phase: the time and the entry's update policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UpdateClock {
    pub now_ms: u64,
    /// `update_timeout`.
    pub timeout_ms: u64,
    /// `drain`.
    pub drain_ms: u64,
}

/// One thing the planner does for an entry's update, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Move {
    /// Nothing is done to the entry until the networks' state can be read; its containers'
    /// images stay.
    WaitForNetworks,
    /// Remove the stale containers; every step below comes after these removals.
    RemoveStale,
    /// The update is under way: `apply` carries on, the successor's image stays.
    MarkUnderWay,
    /// Create and start the successor beside the serving ones (`Action::StartFirst`), after
    /// the removals of the undescribed containers too; under way once planned.
    StartFirst,
    /// Restart the fallen old container per its restart policy.
    RestartFallen,
    /// Start the created successor.
    StartSuccessor,
    /// Wait for the successor's health until `deadline_ms`.
    AwaitHealth { deadline_ms: u64 },
    /// Wait for the successor's health, without a deadline.
    AwaitHealthAlone,
    /// Switch the ports to the successor (`Action::TakeOver`).
    TakeOver,
    /// Remove the successor; the old ones serve on (`Action::AbortUpdate`).
    AbortUpdate(Abort),
    /// Let the old ones drain until `until_ms`.
    AwaitDrain { until_ms: u64 },
    /// Remove the old ones: drained.
    RemoveDrained,
    /// Remove the old ones: stale.
    RemoveServingAsStale,
}

/// The moves of an entry in `phase`; none for `NoUpdate` (the usual rules apply).
pub(crate) fn transition(phase: &UpdatePhase, clock: UpdateClock) -> Vec<Move> {
    let (predecessor, next) = match phase {
        UpdatePhase::NoUpdate => return vec![],
        UpdatePhase::PortsUnknown => return vec![Move::WaitForNetworks],
        UpdatePhase::StartingSuccessor => return vec![Move::RemoveStale, Move::StartFirst],
        UpdatePhase::SuccessorCreated => (None, Move::StartSuccessor),
        UpdatePhase::AwaitingHealth {
            started_at_ms,
            predecessor,
        } => {
            let deadline_ms = started_at_ms.saturating_add(clock.timeout_ms);
            let next = if clock.now_ms >= deadline_ms {
                Move::AbortUpdate(Abort::NotHealthyInTime)
            } else {
                Move::AwaitHealth { deadline_ms }
            };
            (Some(*predecessor), next)
        }
        UpdatePhase::AwaitingHealthAlone => (None, Move::AwaitHealthAlone),
        UpdatePhase::TakingOver => (None, Move::TakeOver),
        UpdatePhase::SuccessorFailed {
            failure,
            predecessor,
        } => (
            Some(*predecessor),
            Move::AbortUpdate(Abort::Failed(failure.clone())),
        ),
        UpdatePhase::Draining { since_ms } => {
            let until_ms = since_ms.saturating_add(clock.drain_ms);
            let next = if clock.now_ms < until_ms {
                Move::AwaitDrain { until_ms }
            } else {
                Move::RemoveDrained
            };
            (None, next)
        }
        UpdatePhase::SuccessorUnplugged => (None, Move::RemoveServingAsStale),
    };
    let mut moves = vec![Move::RemoveStale, Move::MarkUnderWay];
    if predecessor == Some(Predecessor::Fallen) {
        moves.push(Move::RestartFallen);
    }
    moves.push(next);
    moves
}
