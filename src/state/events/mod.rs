//! The event log: one typed stream of what happened to containers, images, networks,
//! volumes and desired files, whoever did it (the agent, the CLI, a container's monitor).
//!
//! Events are JSON lines appended to `<state root>/events/events.log` (`log`). Every
//! writer appends one line with one `write` on an `O_APPEND` descriptor, which the kernel
//! keeps whole against other appenders, so the processes that act (a monitor recording an
//! exit, `berth stop`, the agent) need no lock and no running agent. The log is bounded:
//! past [`MAX_LOG_BYTES`] it is renamed to `events.log.1` (the previous one dropped), so at
//! most two files' worth is kept. Readers read both; a follower (`follow`) watches the
//! directory with inotify, and a process with many readers (the agent's API) runs one
//! follower and fans it out (`EventHub`). Readers choose with `EventFilter` (`filter`);
//! container events carry the container's labels (`container`).
//!
//! An event is never worth failing an operation for: `append` reports problems in the log
//! and returns.

mod container;
mod filter;
mod follow;
mod log;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use container::{container_event, exit_events};
pub use filter::{EventFilter, parse_time};
pub use follow::EventHub;
pub use log::{EventLog, MAX_LOG_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("reading the event log {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an event is about (Docker's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Container,
    Image,
    Network,
    Volume,
    /// A desired-state file.
    Desired,
    /// The agent itself (its passes).
    Agent,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Container => "container",
            Subject::Image => "image",
            Subject::Network => "network",
            Subject::Volume => "volume",
            Subject::Desired => "desired",
            Subject::Agent => "agent",
        }
    }
}

/// What happened. Docker's names where Docker has the event; berth's own otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Start,
    /// The container's init exited (attributes `exit_code`, `signal`, `oom`).
    Die,
    /// The kernel's OOM killer killed a process of the container.
    Oom,
    Kill,
    Stop,
    Restart,
    Destroy,
    /// A health check's verdict changed (attribute `health_status`).
    HealthStatus,
    /// A container was replaced by a new one of its entry (attributes `old`, `new`).
    Replace,
    /// A start-first update moved the ports to the new container (`old`, `new`, `switch_ms`).
    Switch,
    /// A start-first update gave up on the new container (`reason`).
    Rollback,
    /// A container no longer described was removed (`reason`).
    Prune,
    ExecStart,
    ExecDie,
    Pull,
    PullFailed,
    Delete,
    /// A desired file has a problem (`message`, `line`, `column`, `code`).
    Problem,
    /// A reconcile pass ended (`trigger`, `steps`, `failed`, `duration_ms`, `outcome`).
    Pass,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Start => "start",
            Action::Die => "die",
            Action::Oom => "oom",
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Destroy => "destroy",
            Action::HealthStatus => "health_status",
            Action::Replace => "replace",
            Action::Switch => "switch",
            Action::Rollback => "rollback",
            Action::Prune => "prune",
            Action::ExecStart => "exec_start",
            Action::ExecDie => "exec_die",
            Action::Pull => "pull",
            Action::PullFailed => "pull_failed",
            Action::Delete => "delete",
            Action::Problem => "problem",
            Action::Pass => "pass",
        }
    }

    /// Every action, for `--filter event=` checks and help.
    pub const ALL: [Action; 20] = [
        Action::Create,
        Action::Start,
        Action::Die,
        Action::Oom,
        Action::Kill,
        Action::Stop,
        Action::Restart,
        Action::Destroy,
        Action::HealthStatus,
        Action::Replace,
        Action::Switch,
        Action::Rollback,
        Action::Prune,
        Action::ExecStart,
        Action::ExecDie,
        Action::Pull,
        Action::PullFailed,
        Action::Delete,
        Action::Problem,
        Action::Pass,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Unix time in nanoseconds.
    pub time_ns: u64,
    pub subject: Subject,
    pub action: Action,
    /// A container's id, an image's reference, a network's or volume's name, a file's path,
    /// or "agent".
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    pub fn now(subject: Subject, action: Action, id: impl Into<String>) -> Event {
        Event {
            time_ns: now_ns(),
            subject,
            action,
            id: id.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// The event with one more attribute.
    pub fn with(mut self, key: &str, value: impl ToString) -> Event {
        self.attributes.insert(key.to_string(), value.to_string());
        self
    }

    /// The name the event's subject goes by (its `name` attribute, else its id).
    pub fn name(&self) -> &str {
        self.attributes.get("name").map_or(&self.id, String::as_str)
    }

    /// The action as Docker spells it: `health_status: healthy` for a health event.
    pub fn docker_action(&self) -> String {
        match (self.action, self.attributes.get("health_status")) {
            (Action::HealthStatus, Some(status)) => format!("health_status: {status}"),
            (action, _) => action.as_str().to_string(),
        }
    }

    /// One line for people: `TIME SUBJECT ACTION ID (key=value, …)`, as `docker events`.
    pub fn to_line(&self) -> String {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(self.time_ns);
        let mut line = format!(
            "{} {} {} {}",
            humantime::format_rfc3339_nanos(time),
            self.subject.as_str(),
            self.action.as_str(),
            self.id
        );
        if !self.attributes.is_empty() {
            let attributes: Vec<String> = self
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            line.push_str(&format!(" ({})", attributes.join(", ")));
        }
        line
    }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
