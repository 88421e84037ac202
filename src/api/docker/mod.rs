//! The Docker Engine API subset on `docker.sock`, for the tools operators already run
//! against Docker: the `docker` CLI, Traefik's docker provider, Prometheus'
//! `docker_sd_configs`, the Python SDK. Versions are negotiated as dockerd does: a path may
//! start with `/vX.Y`, from [`MIN_VERSION`] to [`VERSION`]; without one, [`VERSION`].
//!
//! Containers are berth's; calls that would contradict the desired state (create, remove a
//! described container, remove an image in use) are refused with a message that says to edit
//! the desired files.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::{Body, Context, Handler};

mod exec;
mod exec_process;
mod logs;
mod stats;
mod stdcopy;
mod target;

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
            let call = match split(context, request) {
                Ok(call) => call,
                Err(response) => return response,
            };
            route(call).await
        })
    }
}

/// The version prefix and the path segments.
fn split(context: Arc<Context>, request: Request<Incoming>) -> Result<Call, Response<Body>> {
    let path = request.uri().path().to_string();
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut version = VERSION.to_string();
    if let Some(first) = segments.first()
        && let Some(asked) = first.strip_prefix('v')
        && asked.split('.').all(|p| p.parse::<u32>().is_ok())
    {
        version = asked.to_string();
        segments.remove(0);
    }
    Ok(Call {
        context,
        method: request.method().clone(),
        segments,
        version,
        request,
    })
}

async fn route(call: Call) -> Response<Body> {
    let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    match (call.method.as_str(), segments.as_slice()) {
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
