//! berth's own JSON API on `berth.sock`: what the CLI and scripts ask a running agent.
//!
//! | call | answer |
//! |---|---|
//! | `GET /_ping` | `OK` |
//! | `GET /v1/version` | berth's version |
//! | `GET /v1/status` | `berth status --json` |
//! | `GET /v1/plan[?target=NAME…]` | `berth plan --json` of the agent's directory |
//! | `GET /v1/containers[?all=1]` | `berth ps --json` |
//! | `GET /v1/containers/NAME` | one container: record, state, `ps` row |
//! | `GET /v1/containers/NAME/logs[?tail=N&follow=1]` | JSON lines `{time, stream, text}` |
//! | `GET /v1/containers/NAME/stats` | `berth stats --json` of one container |
//! | `GET /v1/events[?since=…&until=…&filter=KEY=VALUE…]` | JSON lines of events |
//! | `POST /v1/apply` `{dir, targets, follow}` | JSON lines: the pass's report, then with `follow` every later pass's |
//! | `GET /metrics` | Prometheus text |

mod apply;
pub use apply::ApplyRequest;
mod streams;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::{Body, Context, Handler};

pub struct BerthApi {
    context: Arc<Context>,
}

impl BerthApi {
    pub fn new(context: Arc<Context>) -> BerthApi {
        BerthApi { context }
    }
}

impl Handler for BerthApi {
    fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'static>> {
        let context = self.context.clone();
        Box::pin(route(context, request))
    }
}

async fn route(context: Arc<Context>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let query = Query::parse(request.uri().query());
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (request.method().clone(), segments.as_slice()) {
        (Method::GET | Method::HEAD, ["_ping"]) => {
            super::with_type(StatusCode::OK, "text/plain", "OK")
        }
        (Method::GET, ["v1", "version"]) => super::json(
            StatusCode::OK,
            &serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "api": "v1",
                "dir": context.dir,
                "started_at": humantime::format_rfc3339_seconds(context.started).to_string(),
            }),
        ),
        (Method::GET, ["v1", "status"]) => {
            blocking(move || {
                super::views::status::build(&context.machine, Some(&context.dir))
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
            })
            .await
        }
        (Method::GET, ["v1", "plan"]) => apply::plan(context, &query).await,
        (Method::POST, ["v1", "apply"]) => apply::apply(context, request).await,
        (Method::GET, ["v1", "containers"]) => {
            let all = query.flag("all");
            blocking(move || {
                super::views::containers::list(&context.machine.runtime, all)
                    .map(|listing| listing.rows)
                    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
            })
            .await
        }
        (Method::GET, ["v1", "containers", name]) => {
            let name = name.to_string();
            blocking(move || inspect(&context, &name)).await
        }
        (Method::GET, ["v1", "containers", name, "logs"]) => {
            streams::logs(context, name, &query).await
        }
        (Method::GET, ["v1", "containers", name, "stats"]) => {
            let name = name.to_string();
            blocking(move || stats(&context, &name)).await
        }
        (Method::GET, ["v1", "events"]) => streams::events(context, &query).await,
        (Method::GET, ["metrics"]) => {
            let accept = request.headers().get(hyper::header::ACCEPT);
            super::metrics::render(&context, accept.and_then(|v| v.to_str().ok())).await
        }
        (method, _) => super::error(
            StatusCode::NOT_FOUND,
            &format!(
                "no such call: {method} {path} (see `berth help`; the API is listed in docs/design/api.md)"
            ),
        ),
    }
}

/// The answer of a blocking computation as JSON, or its error with its status.
async fn blocking<T: serde::Serialize + Send + 'static>(
    work: impl FnOnce() -> Result<T, (StatusCode, String)> + Send + 'static,
) -> Response<Body> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => super::json(StatusCode::OK, &value),
        Ok(Err((status, message))) => super::error(status, &message),
        Err(e) => super::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn not_found_or_500(e: crate::runtime::RuntimeError) -> (StatusCode, String) {
    match e {
        crate::runtime::RuntimeError::NotFound { .. } => (StatusCode::NOT_FOUND, e.to_string()),
        other => (StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// One container: its record (what it was made from), its `ps` row (what it does now).
fn inspect(context: &Context, name: &str) -> Result<serde_json::Value, (StatusCode, String)> {
    let runtime = &context.machine.runtime;
    let record = runtime.resolve(name).map_err(not_found_or_500)?;
    let listing = super::views::containers::list(runtime, true)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let row = listing.rows.into_iter().find(|r| r.id == record.id);
    Ok(serde_json::json!({ "record": record, "status": row }))
}

fn stats(context: &Context, name: &str) -> Result<serde_json::Value, (StatusCode, String)> {
    use crate::runtime::stats;
    let runtime = &context.machine.runtime;
    let record = runtime.resolve(name).map_err(not_found_or_500)?;
    if !runtime.state(&record.id).is_ok_and(|s| s.is_running()) {
        return Err((
            StatusCode::CONFLICT,
            format!("{} is not running", record.id),
        ));
    }
    let failed = |e: stats::StatsError| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let probe = stats::Probe::open(std::path::Path::new(&record.cgroup_path)).map_err(failed)?;
    let first = probe.sample().map_err(failed)?;
    // CPU use needs two samples.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let now = probe.sample().map_err(failed)?;
    let row = stats::Row::new(&record.name, Some(&first), &now, stats::host_memory().ok());
    serde_json::to_value(row).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A request's query: `key=value` pairs, keys repeatable.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `1`, `true`, or present without a value.
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|v| matches!(v, "" | "1" | "true" | "yes"))
    }
}
