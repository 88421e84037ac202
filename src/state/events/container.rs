//! Container events: the container's labels (its config.json annotations, berth's own
//! `io.berth.*` left out), then berth's attributes, as Docker's events carry them.

use std::collections::HashMap;

use super::{Action, Event, Subject};
use crate::state::layout::Layout;
use crate::state::record::{ContainerRecord, ExitRecord};

/// An event about `record`'s container: its labels (its config.json annotations, berth's
/// own left out) then berth's attributes, as Docker's events carry them.
pub fn container_event(layout: &Layout, record: &ContainerRecord, action: Action) -> Event {
    let mut event = Event::now(Subject::Container, action, &record.id);
    for (key, value) in labels(layout, &record.id) {
        event.attributes.insert(key, value);
    }
    let mut event = event
        .with("name", &record.name)
        .with("image", &record.image)
        .with("spec_hash", &record.spec_hash);
    if record.manual {
        event = event.with("manual", "true");
    }
    event
}

/// The `die` event of an exit, and before it an `oom` event if the OOM killer struck.
pub fn exit_events(layout: &Layout, record: &ContainerRecord, exit: &ExitRecord) -> Vec<Event> {
    let mut events = Vec::new();
    if exit.oom_killed {
        events.push(container_event(layout, record, Action::Oom));
    }
    let mut die = container_event(layout, record, Action::Die)
        .with("exit_code", exit_code(exit))
        .with(
            "duration_ms",
            exit.finished_at_ms.saturating_sub(exit.started_at_ms),
        );
    if let Some(signal) = exit.signal {
        die = die.with("signal", signal);
    }
    if exit.oom_killed {
        die = die.with("oom", "true");
    }
    if let Some(error) = &exit.error {
        die = die.with("error", error);
    }
    events.push(die);
    events
}

/// Docker's exit code: the status, or 128 + the signal.
fn exit_code(exit: &ExitRecord) -> i32 {
    match (exit.code, exit.signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

/// The entry's labels: the spec's annotations that are not berth's own.
fn labels(layout: &Layout, id: &str) -> HashMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: HashMap<String, String>,
    }
    let Ok(bytes) = std::fs::read(layout.container(id).config()) else {
        return HashMap::new();
    };
    serde_json::from_slice::<Annotated>(&bytes)
        .map(|spec| {
            spec.annotations
                .into_iter()
                .filter(|(k, _)| !k.starts_with("io.berth."))
                .collect()
        })
        .unwrap_or_default()
}
