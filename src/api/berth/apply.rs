//! `plan` and `apply` through the agent. An `apply` is a pass the agent runs for the asker,
//! in its own loop (so it never races the agent's passes), with the agent's settings and the
//! asker's targets; its report is the answer. `berth apply --wait` asks again until it is
//! satisfied, as it runs passes itself when no agent runs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

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
    match answer.await {
        Ok(report) => crate::api::json(StatusCode::OK, &*report),
        Err(_) => crate::api::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent stopped before the pass; see `berth status`",
        ),
    }
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
