//! `start`, `stop`, `restart`, `kill`, `wait` and `DELETE` of a container, through the
//! runtime's own operations (and their locks). What the agent does next still follows the
//! desired state: a container whose restart policy is "always" (or "on-failure", after a
//! stop that ends it with a signal) is started again by the agent's next pass, as after
//! `berth stop`. Removal is refused for the current container of a described entry.

use std::time::Duration;

use hyper::{Response, StatusCode};
use serde_json::json;

use super::gather::Seen;
use super::{Call, empty};
use crate::api::{Body, error};
use crate::runtime::State;
use crate::spec::signal::Signal;

fn failed(e: impl std::fmt::Display) -> Response<Body> {
    error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
}

/// Looks the container up, then runs `work` with it (on the blocking pool).
async fn with_container<F>(call: &Call, asked: String, work: F) -> Response<Body>
where
    F: FnOnce(&crate::reconcile::apply::Machine, Seen) -> Response<Body> + Send + 'static,
{
    let context = call.context.clone();
    super::blocking(move || match super::gather::one(&context.machine, &asked) {
        Ok(seen) => work(&context.machine, seen),
        Err((status, message)) => error(status, &message),
    })
    .await
}

/// A container that is not its entry's newest is on its way out (the agent removes it):
/// starting it again would run two of one entry.
fn superseded(s: &Seen) -> bool {
    s.name != s.record.name
}

pub(super) async fn start(call: Call, asked: String) -> Response<Body> {
    with_container(&call, asked, |machine, s| {
        if s.state.is_running() {
            return empty(StatusCode::NOT_MODIFIED);
        }
        if superseded(&s) {
            return error(
                StatusCode::CONFLICT,
                &format!(
                    "{} is an earlier container of {}: the agent runs the newest one and removes this one",
                    s.record.id, s.record.name
                ),
            );
        }
        let started = match s.state {
            State::Created => machine.runtime.start(&s.record.id).map(|_| ()),
            _ => machine.runtime.restart(&s.record.id, 0).map(|_| ()),
        };
        match started {
            Ok(()) => empty(StatusCode::NO_CONTENT),
            Err(e) => failed(e),
        }
    })
    .await
}

fn timeout(call: &Call) -> Option<Duration> {
    call.query("t")
        .and_then(|t| t.parse::<i64>().ok())
        // dockerd: a negative timeout waits as long as it takes; berth's stop is bounded,
        // so the entry's own timeout applies.
        .and_then(|t| u64::try_from(t).ok())
        .map(Duration::from_secs)
}

pub(super) async fn stop(call: Call, asked: String) -> Response<Body> {
    let timeout = timeout(&call);
    with_container(&call, asked, move |machine, s| {
        if !s.state.is_running() {
            return empty(StatusCode::NOT_MODIFIED);
        }
        match machine.runtime.stop(&s.record.id, timeout) {
            Ok(_) => empty(StatusCode::NO_CONTENT),
            Err(e) => failed(e),
        }
    })
    .await
}

pub(super) async fn restart(call: Call, asked: String) -> Response<Body> {
    let timeout = timeout(&call);
    with_container(&call, asked, move |machine, s| {
        if superseded(&s) {
            return error(
                StatusCode::CONFLICT,
                &format!(
                    "{} is an earlier container of {}: the agent runs the newest one and removes this one",
                    s.record.id, s.record.name
                ),
            );
        }
        let id = &s.record.id;
        let result = match machine.runtime.stop(id, timeout) {
            Ok(_) => machine.runtime.restart(id, 0).map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => empty(StatusCode::NO_CONTENT),
            Err(e) => failed(e),
        }
    })
    .await
}

pub(super) async fn kill(call: Call, asked: String) -> Response<Body> {
    let signal = match call.query("signal").filter(|s| !s.is_empty()) {
        None => Signal::KILL,
        Some(text) => match text.parse::<Signal>() {
            Ok(s) => s,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        },
    };
    with_container(&call, asked, move |machine, s| {
        let init = match &s.state {
            State::Running(m) => Some(m.init),
            State::Lost { init, .. } => *init,
            _ => None,
        };
        let Some(init) = init else {
            return error(
                StatusCode::CONFLICT,
                &format!("Container {} is not running", s.docker_id),
            );
        };
        // Through a pidfd of the recorded init (pid and start time), never a recycled pid.
        match init.open() {
            Ok(Some(fd)) => match crate::sys::send_signal(&fd, signal.0) {
                Ok(()) => {
                    let event = machine
                        .runtime
                        .container_event(&s.record, crate::state::events::Action::Kill)
                        .with("signal", signal.0);
                    machine.runtime.record_event(event);
                    empty(StatusCode::NO_CONTENT)
                }
                Err(e) => failed(format!("signalling {}: {e}", s.record.id)),
            },
            Ok(None) => error(
                StatusCode::CONFLICT,
                &format!("Container {} is not running", s.docker_id),
            ),
            Err(e) => failed(format!("signalling {}: {e}", s.record.id)),
        }
    })
    .await
}

/// `POST /containers/{id}/wait`: until it is not running (`not-running`, the default), until
/// its next exit (`next-exit`) or until it is removed (`removed`); answers its exit status.
pub(super) async fn wait(call: Call, asked: String) -> Response<Body> {
    let condition = call
        .query("condition")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "not-running".into());
    if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("invalid condition: {condition:?}"),
        );
    }
    let context = call.context.clone();
    let first = {
        let context = context.clone();
        let asked = asked.clone();
        tokio::task::spawn_blocking(move || super::gather::one(&context.machine, &asked)).await
    };
    let seen = match first {
        Ok(Ok(s)) => s,
        Ok(Err((status, message))) => return error(status, &message),
        Err(e) => return failed(e),
    };
    let id = seen.record.id.clone();
    let since_ms = super::text::now_ms();
    loop {
        let probe = {
            let context = context.clone();
            let id = id.clone();
            tokio::task::spawn_blocking(move || {
                let gone = context.machine.runtime.record(&id).is_err();
                let state = context.machine.runtime.state(&id).ok();
                (gone, state)
            })
            .await
        };
        let (gone, state) = match probe {
            Ok(p) => p,
            Err(e) => return failed(e),
        };
        let code = |state: &Option<State>| match state {
            Some(State::Exited(e)) => Some(e.status()),
            _ => None,
        };
        let done = match condition.as_str() {
            "removed" => gone.then_some(code(&state).unwrap_or(0)),
            "next-exit" => match &state {
                Some(State::Exited(e)) if e.finished_at_ms >= since_ms => Some(e.status()),
                _ if gone => Some(0),
                _ => None,
            },
            _ => match &state {
                Some(s) if s.is_running() => None,
                _ => Some(code(&state).unwrap_or(0)),
            },
        };
        if let Some(status) = done {
            return crate::api::json(
                StatusCode::OK,
                &json!({ "StatusCode": status, "Error": null }),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `DELETE /containers/{id}`: a `berth run` container, or one that is no longer its entry's
/// newest, is removed as `berth rm` does (`force` stops it first); the current container
/// of a described entry is refused: its entry says it should exist.
pub(super) async fn remove(call: Call, asked: String) -> Response<Body> {
    let force = call.flag("force");
    with_container(&call, asked, move |machine, s| {
        if !s.record.manual && !superseded(&s) {
            return super::refuse::desired(&format!(
                "{} is the container of the entry [container.{}]; remove or change that entry to remove it",
                s.record.id, s.record.name
            ));
        }
        if s.state.is_running() && !force {
            return error(
                StatusCode::CONFLICT,
                &format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    s.docker_id
                ),
            );
        }
        match machine.runtime.remove(&s.record.id, force) {
            Ok(()) => empty(StatusCode::NO_CONTENT),
            Err(e) => failed(e),
        }
    })
    .await
}
