//! `plan` and `apply` through the agent. An `apply` is a pass the agent runs for the asker,
//! in its own loop (so it never races the agent's passes), with the agent's settings; the
//! reports of that pass and, when asked to follow, of every later pass stream back as JSON
//! lines until the asker has seen enough and hangs up.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

use super::Query;
use crate::api::{Body, Context};
use crate::reconcile::Reconciler;
use crate::reconcile::agent::PassRequest;

/// What `berth apply` asks of an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// The directory the asker means: it must be the agent's, or the agent would undo the
    /// apply on its next pass.
    pub dir: PathBuf,
    #[serde(default)]
    pub targets: Vec<String>,
    /// Stream every later pass's report too, until the asker hangs up or `timeout_ms`.
    #[serde(default)]
    pub follow: bool,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The asker lets an empty directory prune everything: only an agent started with
    /// `--allow-empty` does.
    #[serde(default)]
    pub allow_empty: bool,
}

/// The largest request body read.
const MAX_REQUEST: usize = 64 << 10;

pub(super) async fn plan(context: Arc<Context>, query: &Query) -> Response<Body> {
    let targets: BTreeSet<String> = query.all("target").map(str::to_string).collect();
    let mut reconciler = Reconciler::new(context.machine.clone(), &context.dir);
    reconciler.targets = (!targets.is_empty()).then_some(targets);
    let view = reconciler.plan_only().await;
    crate::api::json(StatusCode::OK, &view.report)
}

pub(super) async fn apply(context: Arc<Context>, request: Request<Incoming>) -> Response<Body> {
    let asked = match read_request(request).await {
        Ok(asked) => asked,
        Err(response) => return response,
    };
    if let Err(message) = same_directory(&asked.dir, &context.dir) {
        return crate::api::error(StatusCode::CONFLICT, &message);
    }
    if asked.allow_empty && !context.allow_empty {
        return crate::api::error(
            StatusCode::CONFLICT,
            "the agent runs without --allow-empty, so it never prunes everything for an empty directory; restart it with --allow-empty to allow that",
        );
    }
    // Subscribed before asking: no later pass is missed.
    let mut passes = context.passes.subscribe();
    let (reply, answer) = oneshot::channel();
    let targets = (!asked.targets.is_empty()).then(|| asked.targets.iter().cloned().collect());
    if context
        .requests
        .send(PassRequest { targets, reply })
        .await
        .is_err()
    {
        return crate::api::error(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping");
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(asked.timeout_ms.unwrap_or(300_000).min(24 * 3_600_000));
    tokio::spawn(async move {
        let Ok(first) = answer.await else {
            let _ = tx
                .send(Err(std::io::Error::other(
                    "the agent stopped before the pass",
                )))
                .await;
            return;
        };
        if !send_line(&tx, &*first).await || !asked.follow {
            return;
        }
        loop {
            let next = tokio::select! {
                next = passes.recv() => next,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            };
            match next {
                // The requested pass itself came through here too.
                Ok(report) if Arc::ptr_eq(&report, &first) => {}
                Ok(report) => {
                    if !send_line(&tx, &*report).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    crate::api::ndjson(rx)
}

async fn read_request(request: Request<Incoming>) -> Result<ApplyRequest, Response<Body>> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_REQUEST);
    let bytes = limited.collect().await.map_err(|e| {
        crate::api::error(
            StatusCode::BAD_REQUEST,
            &format!("reading the request: {e}"),
        )
    })?;
    serde_json::from_slice(&bytes.to_bytes()).map_err(|e| {
        crate::api::error(
            StatusCode::BAD_REQUEST,
            &format!("the request is not an apply request: {e}"),
        )
    })
}

async fn send_line(
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    value: &impl Serialize,
) -> bool {
    let line = match serde_json::to_vec(value) {
        Ok(mut line) => {
            line.push(b'\n');
            Ok(Bytes::from(line))
        }
        Err(e) => Err(std::io::Error::other(e)),
    };
    tx.send(line).await.is_ok()
}

/// Both paths name the same directory (symlinks resolved).
fn same_directory(asked: &std::path::Path, agents: &std::path::Path) -> Result<(), String> {
    let canonical =
        |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canonical(asked) == canonical(agents) {
        return Ok(());
    }
    Err(format!(
        "the agent on this state root keeps the machine equal to {}; applying {} beside it would be undone by its next pass. Edit {} instead, or stop the agent",
        agents.display(),
        asked.display(),
        agents.display()
    ))
}
