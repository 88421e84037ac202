//! The Docker Engine API subset on `docker.sock`, for the tools operators already run
//! against Docker: the `docker` CLI, Traefik's docker provider, Prometheus'
//! `docker_sd_configs`, the Python SDK. Versions are negotiated as dockerd does: a path may
//! start with `/vX.Y`, from [`MIN_VERSION`] to [`VERSION`]; without one, [`VERSION`].
//!
//! Containers are berth's; calls that would contradict the desired state (create, remove a
//! described container, remove an image in use) are refused with a message that says to edit
//! the desired files. See docs/design/docker-api.md.

mod containers;
mod events;
mod exec;
mod exec_process;
mod filters;
mod gather;
mod ids;
mod images;
mod inspect;
mod lifecycle;
mod logs;
mod networks;
mod parsed;
mod refuse;
mod stats;
mod stdcopy;
mod system;
mod target;
mod text;
mod top;
mod version;
mod volumes;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};

use super::{Body, Context, Handler};

/// The newest API version served.
pub const VERSION: &str = "1.41";
/// The oldest API version a client may ask for.
pub const MIN_VERSION: &str = "1.24";

/// One request, its version prefix removed and its path split.
pub struct Call {
    pub context: Arc<Context>,
    pub method: Method,
    /// The path after the version prefix, split on `/` (`["containers", "ID", "json"]`).
    pub segments: Vec<String>,
    /// The version asked for (or [`VERSION`]).
    pub version: String,
    pub request: Request<Incoming>,
}

impl Call {
    /// The query parameter `name`, decoded (the last one when repeated).
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.request.uri().query()?;
        url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .last()
    }

    /// A boolean query parameter as dockerd reads one: absent, "", "0", "no", "false",
    /// "none" are false.
    pub fn flag(&self, name: &str) -> bool {
        self.query(name).is_some_and(|v| {
            !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            )
        })
    }
}

pub struct DockerApi {
    context: Arc<Context>,
}

impl DockerApi {
    pub fn new(context: Arc<Context>) -> DockerApi {
        DockerApi { context }
    }
}

impl Handler for DockerApi {
    fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'static>> {
        let context = self.context.clone();
        Box::pin(async move {
            let mut response = match split(context, request) {
                Ok(call) => route(call).await,
                Err(refusal) => super::error(StatusCode::BAD_REQUEST, &refusal),
            };
            // dockerd names itself on every answer; clients read the version from `_ping`.
            let headers = response.headers_mut();
            for (name, value) in [
                ("api-version", VERSION.to_string()),
                ("ostype", "linux".to_string()),
                (
                    "server",
                    format!("berth/{} (linux)", env!("CARGO_PKG_VERSION")),
                ),
            ] {
                if let Ok(value) = header::HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            response
        })
    }
}

/// The version prefix and the path segments; a version outside what is served is refused
/// in dockerd's words.
fn split(context: Arc<Context>, request: Request<Incoming>) -> Result<Call, String> {
    let path = request.uri().path().to_string();
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut version = VERSION.to_string();
    if let Some(first) = segments.first()
        && let Some(asked) = first.strip_prefix('v')
        && !asked.is_empty()
        && asked.split('.').all(|p| p.parse::<u32>().is_ok())
    {
        version = asked.to_string();
        segments.remove(0);
    }
    version::check(&version)?;
    Ok(Call {
        context,
        method: request.method().clone(),
        segments,
        version,
        request,
    })
}

async fn route(call: Call) -> Response<Body> {
    let segments: Vec<String> = call.segments.clone();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (call.method.as_str(), segments.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => system::ping(&call),
        ("GET", ["version"]) => system::version(call).await,
        ("GET", ["info"]) => system::info(call).await,
        ("GET", ["events"]) => events::events(call).await,
        ("GET", ["containers", "json"]) => containers::list(call).await,
        ("GET", ["containers", id, "json"]) => inspect::container(call, id.to_string()).await,
        ("GET", ["containers", id, "top"]) => top::top(call, id.to_string()).await,
        ("POST", ["containers", id, "start"]) => lifecycle::start(call, id.to_string()).await,
        ("POST", ["containers", id, "stop"]) => lifecycle::stop(call, id.to_string()).await,
        ("POST", ["containers", id, "restart"]) => lifecycle::restart(call, id.to_string()).await,
        ("POST", ["containers", id, "kill"]) => lifecycle::kill(call, id.to_string()).await,
        ("POST", ["containers", id, "wait"]) => lifecycle::wait(call, id.to_string()).await,
        ("DELETE", ["containers", id]) => lifecycle::remove(call, id.to_string()).await,
        ("POST", ["containers", "create"]) => refuse::create(),
        (
            "POST",
            [
                "containers",
                id,
                action @ ("rename" | "update" | "pause" | "unpause"),
            ],
        ) => refuse::change(id, action),
        ("POST", ["containers", "prune"]) => refuse::prune("containers"),
        ("GET", ["images", "json"]) => images::list(call).await,
        ("GET", ["images", rest @ .., "json"]) if !rest.is_empty() => {
            images::inspect(call, rest.join("/")).await
        }
        ("DELETE", ["images", rest @ ..]) if !rest.is_empty() => {
            images::remove(call, rest.join("/")).await
        }
        ("POST", ["images", "create"]) => refuse::pull(),
        ("GET", ["networks"]) => networks::list(call).await,
        ("GET", ["networks", id]) => networks::inspect(call, id.to_string()).await,
        ("POST", ["networks", "create"]) | ("DELETE", ["networks", _]) => {
            refuse::desired("networks are made and removed from [network.NAME] entries")
        }
        ("GET", ["volumes"]) => volumes::list(call).await,
        ("GET", ["volumes", name]) => volumes::inspect(call, name.to_string()).await,
        ("POST", ["volumes", "create"]) => {
            refuse::desired("volumes are made from [volume.NAME] entries")
        }
        ("GET", ["containers", _, "logs"]) => logs::logs(call).await,
        ("GET", ["containers", _, "stats"]) => stats::stats(call).await,
        ("POST", ["containers", _, "exec"]) => exec::create(call).await,
        ("POST", ["exec", _, "start"]) => exec::start(call).await,
        ("POST", ["exec", _, "resize"]) => exec::resize(call).await,
        ("GET", ["exec", _, "json"]) => exec::inspect(call).await,
        (m, p) => super::error(
            StatusCode::NOT_FOUND,
            &format!("page not found: {m} /{}", p.join("/")),
        ),
    }
}

/// `work` on the blocking pool (records, /proc and cgroup files are read synchronously).
async fn blocking<F>(work: F) -> Response<Body>
where
    F: FnOnce() -> Response<Body> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(response) => response,
        Err(e) => super::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the handler failed: {e}"),
        ),
    }
}

/// An answer with no body (dockerd's 204 and 304).
fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(super::full(bytes::Bytes::new()));
    *response.status_mut() = status;
    response
}
