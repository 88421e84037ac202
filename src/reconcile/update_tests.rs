//! Table tests for the start-first update phases (`update.rs`): the classification of an
//! entry's containers, case by case, and each phase's transition. How the planner turns
//! the moves into steps is covered by `plan_tests.rs`.

use super::observe::{Health, ObservedContainer, Phase};
use super::update::{
    Abort, EntryUpdate, Move, Predecessor, SuccessorFailure, UpdateClock, UpdatePhase, classify,
    transition,
};
use crate::state::network::PortHold;
use crate::state::record::{ExitRecord, RestartRecord};

const NOW: u64 = 1_700_000_000_000;

const STANDBY: Option<PortHold> = Some(PortHold::Standby);
const SERVING: Option<PortHold> = Some(PortHold::Serving {
    since_ms: NOW - 2_000,
});
const SUPERSEDED: Option<PortHold> = Some(PortHold::Superseded {
    since_ms: NOW - 2_000,
});
const CLAIMED: Option<PortHold> = Some(PortHold::Down { claimed: true });
const UNCLAIMED: Option<PortHold> = Some(PortHold::Down { claimed: false });

fn running() -> Phase {
    Phase::Running {
        started_at_ms: NOW - 10_000,
    }
}

fn exited() -> Phase {
    Phase::Exited {
        exit: ExitRecord {
            code: Some(1),
            signal: None,
            oom_killed: false,
            started_at_ms: NOW - 3_000,
            finished_at_ms: NOW - 1_000,
            error: None,
            stopped_because: None,
        },
    }
}

fn lost(running: bool) -> Phase {
    Phase::Lost {
        reason: "its monitor is gone".into(),
        running,
        started_at_ms: None,
    }
}

/// `web-0000000n`, made `n`th, in `phase`, holding `ports`, with `health`.
fn web(n: u32, phase: Phase, ports: Option<PortHold>, health: Option<Health>) -> ObservedContainer {
    ObservedContainer {
        id: format!("web-{n:08x}"),
        name: "web".into(),
        spec_hash: format!("spec-{n}"),
        image: "registry.example/app:1".into(),
        image_digest: "sha256:a".into(),
        created_at: format!("2024-05-01T10:{n:02}:00Z"),
        phase,
        restarts: RestartRecord::default(),
        health,
        ports,
        monitor: None,
        init: None,
        health_check: None,
        stale_join: None,
        joins: Default::default(),
    }
}

fn ids(cs: &[&ObservedContainer]) -> Vec<String> {
    cs.iter().map(|c| c.id.clone()).collect()
}

/// The phase and its parts as ids: (phase, successor, serving, fallen, stale).
type Roles = (
    UpdatePhase,
    Option<String>,
    Vec<String>,
    Option<String>,
    Vec<String>,
);

fn roles(update: &EntryUpdate) -> Roles {
    (
        update.phase.clone(),
        update.successor.map(|c| c.id.clone()),
        ids(&update.serving),
        update.fallen.map(|c| c.id.clone()),
        ids(&update.stale),
    )
}

fn id(n: u32) -> String {
    format!("web-{n:08x}")
}

struct Case {
    what: &'static str,
    containers: Vec<ObservedContainer>,
    /// The id number of the container of the current spec.
    current: Option<u32>,
    networks_readable: bool,
    phase: UpdatePhase,
    serving: Vec<u32>,
    fallen: Option<u32>,
    stale: Vec<u32>,
}

fn case(
    what: &'static str,
    containers: Vec<ObservedContainer>,
    current: Option<u32>,
    phase: UpdatePhase,
) -> Case {
    Case {
        what,
        containers,
        current,
        networks_readable: true,
        phase,
        serving: vec![],
        fallen: None,
        stale: vec![],
    }
}

impl Case {
    fn serving(mut self, ns: &[u32]) -> Case {
        self.serving = ns.to_vec();
        self
    }
    fn fallen(mut self, n: u32) -> Case {
        self.fallen = Some(n);
        self
    }
    fn stale(mut self, ns: &[u32]) -> Case {
        self.stale = ns.to_vec();
        self
    }
    fn unreadable(mut self) -> Case {
        self.networks_readable = false;
        self
    }
}

const fn awaiting(predecessor: Predecessor) -> UpdatePhase {
    UpdatePhase::AwaitingHealth {
        started_at_ms: NOW - 10_000,
        predecessor,
    }
}

const fn unhealthy(predecessor: Predecessor) -> UpdatePhase {
    UpdatePhase::SuccessorFailed {
        failure: SuccessorFailure::Unhealthy,
        predecessor,
    }
}

#[test]
fn classification_table() {
    use Predecessor::{Fallen, Serving};
    let healthy = Some(Health::Healthy);
    let starting = Some(Health::Starting);
    let sick = Some(Health::Unhealthy);
    let cases = vec![
        case("nothing yet", vec![], None, UpdatePhase::NoUpdate),
        case(
            "serving alone",
            vec![web(1, running(), SERVING, healthy)],
            Some(1),
            UpdatePhase::NoUpdate,
        ),
        case(
            "the old one stopped: stop-first is all that is left",
            vec![web(1, exited(), CLAIMED, None)],
            None,
            UpdatePhase::NoUpdate,
        ),
        case(
            "an old one runs, the networks cannot be read",
            vec![web(1, running(), None, healthy)],
            None,
            UpdatePhase::PortsUnknown,
        )
        .unreadable(),
        case(
            "a lost old one whose process runs counts as running",
            vec![
                web(1, lost(true), None, None),
                web(2, running(), STANDBY, starting),
            ],
            Some(2),
            UpdatePhase::PortsUnknown,
        )
        .unreadable(),
        case(
            "unreadable networks but no old one runs: the usual rules",
            vec![web(1, exited(), None, None)],
            None,
            UpdatePhase::NoUpdate,
        )
        .unreadable(),
        case(
            "an old one serves, no successor yet",
            vec![web(1, running(), SERVING, healthy)],
            None,
            UpdatePhase::StartingSuccessor,
        )
        .serving(&[1]),
        case(
            "a draining old one counts as serving",
            vec![web(1, running(), SUPERSEDED, healthy)],
            None,
            UpdatePhase::StartingSuccessor,
        )
        .serving(&[1]),
        case(
            "a lost old one that still runs and serves",
            vec![web(1, lost(true), SERVING, None)],
            None,
            UpdatePhase::StartingSuccessor,
        )
        .serving(&[1]),
        case(
            "an abandoned attempt beside the serving one is stale",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, running(), STANDBY, starting),
            ],
            None,
            UpdatePhase::StartingSuccessor,
        )
        .serving(&[1])
        .stale(&[2]),
        case(
            "a successor created by a pass cut short",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, Phase::Created, None, None),
            ],
            Some(2),
            UpdatePhase::SuccessorCreated,
        )
        .serving(&[1]),
        case(
            "on standby, health starting",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, running(), STANDBY, starting),
            ],
            Some(2),
            awaiting(Serving),
        )
        .serving(&[1]),
        case(
            "on standby, no verdict yet",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, running(), STANDBY, None),
            ],
            Some(2),
            awaiting(Serving),
        )
        .serving(&[1]),
        case(
            "on standby, the old one stopped and will not take the ports back",
            vec![
                web(1, exited(), UNCLAIMED, None),
                web(2, running(), STANDBY, starting),
            ],
            Some(2),
            UpdatePhase::AwaitingHealthAlone,
        )
        .stale(&[1]),
        case(
            "on standby, the old one ended holding its claim: it falls back",
            vec![
                web(1, exited(), CLAIMED, None),
                web(2, running(), STANDBY, starting),
            ],
            Some(2),
            awaiting(Fallen),
        )
        .fallen(1),
        case(
            "a lost old one with its claim falls back too",
            vec![
                web(1, lost(false), CLAIMED, None),
                web(2, running(), STANDBY, None),
            ],
            Some(2),
            awaiting(Fallen),
        )
        .fallen(1),
        case(
            "of two fallen old ones the newest falls back, the other is stale",
            vec![
                web(1, exited(), CLAIMED, None),
                web(3, exited(), CLAIMED, None),
                web(4, running(), STANDBY, starting),
            ],
            Some(4),
            awaiting(Fallen),
        )
        .fallen(3)
        .stale(&[1]),
        case(
            "a fallen old one does not count while another serves",
            vec![
                web(1, exited(), CLAIMED, None),
                web(2, running(), SERVING, healthy),
                web(3, running(), STANDBY, starting),
            ],
            Some(3),
            awaiting(Serving),
        )
        .serving(&[2])
        .stale(&[1]),
        case(
            "on standby and healthy",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, running(), STANDBY, healthy),
            ],
            Some(2),
            UpdatePhase::TakingOver,
        )
        .serving(&[1]),
        case(
            "healthy on standby with nothing serving",
            vec![web(2, running(), STANDBY, healthy)],
            Some(2),
            UpdatePhase::TakingOver,
        ),
        case(
            "healthy on standby: a fallen old one is simply stale",
            vec![
                web(1, exited(), CLAIMED, None),
                web(2, running(), STANDBY, healthy),
            ],
            Some(2),
            UpdatePhase::TakingOver,
        )
        .stale(&[1]),
        case(
            "the entry went back to a superseded one while its successor serves",
            vec![
                web(1, running(), SUPERSEDED, healthy),
                web(2, running(), SERVING, healthy),
            ],
            Some(1),
            UpdatePhase::TakingOver,
        )
        .serving(&[2]),
        case(
            "on standby, unhealthy, an old one serves",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, running(), STANDBY, sick),
            ],
            Some(2),
            unhealthy(Serving),
        )
        .serving(&[1]),
        case(
            "superseded, unhealthy, an old one serves",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, running(), SUPERSEDED, sick),
            ],
            Some(2),
            unhealthy(Serving),
        )
        .serving(&[1]),
        case(
            "on standby, unhealthy, the old one falls back",
            vec![
                web(1, exited(), CLAIMED, None),
                web(2, running(), STANDBY, sick),
            ],
            Some(2),
            unhealthy(Fallen),
        )
        .fallen(1),
        case(
            "on standby, unhealthy, nothing else: the usual rules restart it",
            vec![web(2, running(), STANDBY, sick)],
            Some(2),
            UpdatePhase::NoUpdate,
        ),
        case(
            "superseded, unhealthy, nothing else: the usual rules",
            vec![web(2, running(), SUPERSEDED, sick)],
            Some(2),
            UpdatePhase::NoUpdate,
        ),
        case(
            "a lost successor whose process runs is not on standby",
            vec![web(2, lost(true), STANDBY, None)],
            Some(2),
            UpdatePhase::NoUpdate,
        ),
        case(
            "the successor serves, the old one drains",
            vec![
                web(1, running(), SUPERSEDED, healthy),
                web(2, running(), SERVING, healthy),
            ],
            Some(2),
            UpdatePhase::Draining {
                since_ms: NOW - 2_000,
            },
        )
        .serving(&[1]),
        case(
            "the successor serves and the old one is gone: done",
            vec![
                web(1, exited(), UNCLAIMED, None),
                web(2, running(), SERVING, healthy),
            ],
            Some(2),
            UpdatePhase::NoUpdate,
        ),
        case(
            "the successor exited while an old one serves",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, exited(), UNCLAIMED, None),
            ],
            Some(2),
            UpdatePhase::SuccessorFailed {
                failure: SuccessorFailure::Exited {
                    exit: "exited with code 1".into(),
                },
                predecessor: Serving,
            },
        )
        .serving(&[1]),
        case(
            "the successor was lost while an old one serves",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, lost(false), None, None),
            ],
            Some(2),
            UpdatePhase::SuccessorFailed {
                failure: SuccessorFailure::Lost {
                    reason: "its monitor is gone".into(),
                },
                predecessor: Serving,
            },
        )
        .serving(&[1]),
        case(
            "the successor runs unplugged: the old ones are stale",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, running(), None, healthy),
            ],
            Some(2),
            UpdatePhase::SuccessorUnplugged,
        )
        .serving(&[1]),
        case(
            "the successor runs down: the old ones are stale",
            vec![
                web(1, running(), SERVING, healthy),
                web(2, running(), UNCLAIMED, healthy),
            ],
            Some(2),
            UpdatePhase::SuccessorUnplugged,
        )
        .serving(&[1]),
    ];
    for c in cases {
        let mine: Vec<&ObservedContainer> = c.containers.iter().collect();
        let current = c
            .current
            .and_then(|n| c.containers.iter().find(|o| o.id == id(n)));
        let got = classify(&mine, current, c.networks_readable);
        let has_parts = !matches!(c.phase, UpdatePhase::NoUpdate | UpdatePhase::PortsUnknown);
        let want: Roles = (
            c.phase,
            c.current.filter(|_| has_parts).map(id),
            c.serving.into_iter().map(id).collect(),
            c.fallen.map(id),
            c.stale.into_iter().map(id).collect(),
        );
        assert_eq!(roles(&got), want, "{}", c.what);
    }
}

#[test]
fn the_old_ones_are_named_by_who_serves() {
    let serving = [
        web(1, running(), SERVING, None),
        web(2, running(), SUPERSEDED, None),
    ];
    let successor = web(3, running(), STANDBY, None);
    let mine: Vec<&ObservedContainer> = serving.iter().chain([&successor]).collect();
    let update = classify(&mine, Some(&successor), true);
    assert_eq!(update.old_ids(), "web-00000001, web-00000002");
    let fallen = web(1, exited(), CLAIMED, None);
    let update = classify(&[&fallen, &successor], Some(&successor), true);
    assert_eq!(update.old_ids(), "web-00000001");
    let update = classify(&[&successor], Some(&successor), true);
    assert_eq!(update.old_ids(), "");
}

const CLOCK: UpdateClock = UpdateClock {
    now_ms: NOW,
    timeout_ms: 60_000,
    drain_ms: 5_000,
};

#[test]
fn transition_table() {
    use Move::*;
    use Predecessor::{Fallen, Serving};
    let awaiting_since = |ago: u64, predecessor| UpdatePhase::AwaitingHealth {
        started_at_ms: NOW - ago,
        predecessor,
    };
    let draining_since = |ago: u64| UpdatePhase::Draining {
        since_ms: NOW - ago,
    };
    let exited = SuccessorFailure::Exited {
        exit: "exited with code 1".into(),
    };
    let cases: Vec<(UpdatePhase, Vec<Move>)> = vec![
        (UpdatePhase::NoUpdate, vec![]),
        (UpdatePhase::PortsUnknown, vec![WaitForNetworks]),
        (
            UpdatePhase::StartingSuccessor,
            vec![RemoveStale, StartFirst],
        ),
        (
            UpdatePhase::SuccessorCreated,
            vec![RemoveStale, MarkUnderWay, StartSuccessor],
        ),
        (
            awaiting_since(10_000, Serving),
            vec![
                RemoveStale,
                MarkUnderWay,
                AwaitHealth {
                    deadline_ms: NOW + 50_000,
                },
            ],
        ),
        (
            awaiting_since(59_999, Serving),
            vec![
                RemoveStale,
                MarkUnderWay,
                AwaitHealth {
                    deadline_ms: NOW + 1,
                },
            ],
        ),
        (
            // The deadline itself is too late.
            awaiting_since(60_000, Serving),
            vec![
                RemoveStale,
                MarkUnderWay,
                AbortUpdate(Abort::NotHealthyInTime),
            ],
        ),
        (
            awaiting_since(10_000, Fallen),
            vec![
                RemoveStale,
                MarkUnderWay,
                RestartFallen,
                AwaitHealth {
                    deadline_ms: NOW + 50_000,
                },
            ],
        ),
        (
            awaiting_since(90_000, Fallen),
            vec![
                RemoveStale,
                MarkUnderWay,
                RestartFallen,
                AbortUpdate(Abort::NotHealthyInTime),
            ],
        ),
        (
            UpdatePhase::AwaitingHealthAlone,
            vec![RemoveStale, MarkUnderWay, AwaitHealthAlone],
        ),
        (
            UpdatePhase::TakingOver,
            vec![RemoveStale, MarkUnderWay, TakeOver],
        ),
        (
            unhealthy(Serving),
            vec![
                RemoveStale,
                MarkUnderWay,
                AbortUpdate(Abort::Failed(SuccessorFailure::Unhealthy)),
            ],
        ),
        (
            unhealthy(Fallen),
            vec![
                RemoveStale,
                MarkUnderWay,
                RestartFallen,
                AbortUpdate(Abort::Failed(SuccessorFailure::Unhealthy)),
            ],
        ),
        (
            UpdatePhase::SuccessorFailed {
                failure: exited.clone(),
                predecessor: Serving,
            },
            vec![
                RemoveStale,
                MarkUnderWay,
                AbortUpdate(Abort::Failed(exited)),
            ],
        ),
        (
            draining_since(2_000),
            vec![
                RemoveStale,
                MarkUnderWay,
                AwaitDrain {
                    until_ms: NOW + 3_000,
                },
            ],
        ),
        (
            // The end of the drain itself is late enough.
            draining_since(5_000),
            vec![RemoveStale, MarkUnderWay, RemoveDrained],
        ),
        (
            draining_since(60_000),
            vec![RemoveStale, MarkUnderWay, RemoveDrained],
        ),
        (
            UpdatePhase::SuccessorUnplugged,
            vec![RemoveStale, MarkUnderWay, RemoveServingAsStale],
        ),
    ];
    for (phase, want) in cases {
        assert_eq!(transition(&phase, CLOCK), want, "{phase:?}");
    }
}

#[test]
fn deadlines_far_in_the_future_saturate() {
    let phase = UpdatePhase::AwaitingHealth {
        started_at_ms: u64::MAX - 1,
        predecessor: Predecessor::Serving,
    };
    assert_eq!(
        transition(&phase, CLOCK).last(),
        Some(&Move::AwaitHealth {
            deadline_ms: u64::MAX
        })
    );
    let phase = UpdatePhase::Draining {
        since_ms: u64::MAX - 1,
    };
    assert_eq!(
        transition(&phase, CLOCK).last(),
        Some(&Move::AwaitDrain { until_ms: u64::MAX })
    );
}

#[test]
fn abort_reasons_name_the_successor() {
    let timeout = crate::spec::duration::Duration::from_secs(60);
    for (abort, want) in [
        (
            Abort::Failed(SuccessorFailure::Unhealthy),
            "web-2 is unhealthy",
        ),
        (
            Abort::Failed(SuccessorFailure::Exited {
                exit: "exited with code 1".into(),
            }),
            "web-2 exited with code 1",
        ),
        (
            Abort::Failed(SuccessorFailure::Lost {
                reason: "its monitor is gone".into(),
            }),
            "web-2: its monitor is gone",
        ),
        (
            Abort::NotHealthyInTime,
            "web-2 was not healthy within update_timeout 1m",
        ),
    ] {
        assert_eq!(abort.why("web-2", &timeout), want);
    }
}
