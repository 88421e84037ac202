//! Answers that go on: a container's log and the event log, as JSON lines, each sent as it
//! is read. A stream ends when the client goes away (its channel closes), or for logs when
//! the container stops.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;

use super::Query;
use crate::api::{Body, Context};
use crate::runtime::logfile;
use crate::state::events::{EventFilter, now_ns, parse_time};

type Lines = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// One log line as the API gives it.
#[derive(Debug, Serialize)]
struct LogLine {
    /// RFC 3339, nanoseconds.
    time: String,
    stream: &'static str,
    text: String,
    /// The line goes on in the next record of its stream (a `P` piece of a long line).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    partial: bool,
}

impl LogLine {
    fn of(record: &logfile::Record) -> LogLine {
        LogLine {
            time: humantime::format_rfc3339_nanos(record.time).to_string(),
            stream: match record.stream {
                logfile::Stream::Stdout => "stdout",
                logfile::Stream::Stderr => "stderr",
            },
            text: String::from_utf8_lossy(&record.content).into_owned(),
            partial: record.partial,
        }
    }
}

pub(super) async fn logs(context: Arc<Context>, name: &str, query: &Query) -> Response<Body> {
    let tail = match query.get("tail") {
        None | Some("all") => None,
        Some(n) => match n.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => {
                return crate::api::error(
                    StatusCode::BAD_REQUEST,
                    &format!("tail={n}: expected a number of lines or `all`"),
                );
            }
        },
    };
    let follow = query.flag("follow");
    let runtime = context.machine.runtime.clone();
    let name = name.to_string();
    let opened = tokio::task::spawn_blocking(move || {
        let record = runtime.resolve(&name)?;
        let dir = runtime.layout().container(&record.id).logs();
        let (past, cursor) = logfile::tail(&dir, tail).map_err(std::io::Error::other)?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((runtime, record.id, past, cursor))
    })
    .await;
    let (runtime, id, past, mut cursor) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(e)) => return crate::api::error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e) => return crate::api::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::task::spawn_blocking(move || {
        for record in &past {
            if !send_line(&tx, &LogLine::of(record)) {
                return;
            }
        }
        if !follow {
            return;
        }
        let stopped = || {
            tx.is_closed()
                || !matches!(
                    runtime.state(&id),
                    Ok(crate::runtime::State::Running(_) | crate::runtime::State::Created)
                )
        };
        let sent = logfile::follow(&mut cursor, Duration::from_millis(100), stopped, |r| {
            if send_line(&tx, &LogLine::of(r)) {
                Ok(())
            } else {
                Err(std::io::Error::other("the client went away"))
            }
        });
        if let Err(e) = sent {
            tracing::debug!(container = %id, "following the log: {e}");
        }
    });
    crate::api::ndjson(rx)
}

pub(super) async fn events(context: Arc<Context>, query: &Query) -> Response<Body> {
    let now = now_ns();
    let time = |key: &str| {
        query
            .get(key)
            .map(|t| parse_time(t, now).map_err(|e| format!("{key}: {e}")))
            .transpose()
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return crate::api::error(StatusCode::BAD_REQUEST, &e),
    };
    let mut filter = EventFilter::default();
    for f in query.all("filter") {
        let added = f
            .split_once('=')
            .ok_or_else(|| format!("filter {f:?}: expected KEY=VALUE"))
            .and_then(|(k, v)| filter.add(k, v));
        if let Err(e) = added {
            return crate::api::error(StatusCode::BAD_REQUEST, &e);
        }
    }
    let mut events = match context.events.between(since, until).await {
        Ok(events) => events,
        Err(e) => return crate::api::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = events.recv() => next,
                _ = tx.closed() => return,
            };
            let Some(event) = next else { return };
            if filter.matches(&event) && !send_line_async(&tx, &event).await {
                return;
            }
        }
    });
    crate::api::ndjson(rx)
}

fn line(value: &impl Serialize) -> Result<Bytes, std::io::Error> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(Bytes::from(line))
}

/// From a blocking thread; false once the client is gone.
fn send_line(tx: &Lines, value: &impl Serialize) -> bool {
    tx.blocking_send(line(value)).is_ok()
}

async fn send_line_async(tx: &Lines, value: &impl Serialize) -> bool {
    tx.send(line(value)).await.is_ok()
}
