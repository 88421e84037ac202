//! The agent's API: HTTP/1.1 on unix sockets in the run root, served while `berth agent`
//! runs. `berth.sock` carries berth's own JSON API and `/metrics`; `docker.sock` carries a
//! Docker Engine API subset for the tools operators already run (the `docker` CLI, Traefik,
//! Prometheus' `docker_sd_configs`). Both are root-only unless `--api-group` names a group.
//!
//! This module is the transport: binding a socket with its access, the accept loop, and the
//! response helpers every handler uses. What each API answers lives in its own module.

pub mod berth;
pub mod client;
pub mod docker;
pub mod metrics;
pub mod server;
pub mod views;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Response, StatusCode, header};

pub use server::{Handler, SocketAccess, bind, serve};

/// A response body: whole, or streamed (logs and events that follow).
pub type Body = BoxBody<Bytes, std::io::Error>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{path}: another process serves this socket (is a second agent running on this root?)")]
    InUse { path: std::path::PathBuf },
    #[error("{path}: {source}")]
    Socket {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("group {name:?} does not exist (--api-group)")]
    NoSuchGroup { name: String },
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// `value` as JSON with `status`.
pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, "application/json", body),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("encoding the answer: {e}"),
        ),
    }
}

/// An error as both APIs spell it: `{"message": "..."}`, Docker's shape, which its CLI prints.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "message": message }).to_string();
    with_type(status, "application/json", body)
}

/// A body of `content_type` with `status`.
pub fn with_type(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// JSON lines streamed from a channel (`application/x-ndjson`).
pub fn ndjson(rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Response<Body> {
    let mut response = Response::new(streamed(rx));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    response
}

/// A body streamed from a channel: each item is sent as it arrives; the body ends when every
/// sender is dropped. The producer stops when the client goes away (its sends fail).
pub fn streamed(rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map(hyper::body::Frame::data), rx))
    });
    http_body_util::StreamBody::new(stream).boxed()
}

/// What every handler may use: the machine the agent reconciles and the link to its loop.
pub struct Context {
    pub root: std::path::PathBuf,
    /// The desired-state directory the agent watches.
    pub dir: std::path::PathBuf,
    pub machine: crate::reconcile::apply::Machine,
    /// Asks the agent for a pass (`apply`).
    pub requests: tokio::sync::mpsc::Sender<crate::reconcile::agent::PassRequest>,
    /// Every pass report as it ends.
    pub passes: tokio::sync::broadcast::Sender<std::sync::Arc<crate::reconcile::PassReport>>,
    /// When the agent started.
    pub started: std::time::SystemTime,
    /// The agent lets an empty directory prune everything.
    pub allow_empty: bool,
}

/// How the agent serves its API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub access: SocketAccess,
    /// `/metrics` also on this TCP address.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// The sockets' paths for a state root: in its run root, beside the containers' runtime state.
pub fn socket_paths(
    layout: &crate::state::layout::Layout,
) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        layout.run_root.join("berth.sock"),
        layout.run_root.join("docker.sock"),
    )
}

/// Binds both sockets and serves them on tasks of the current runtime until those are
/// dropped. The run root is made traversable (0711, never listable) only when a group is
/// given access; everything in it stays root-only.
pub fn start(
    context: std::sync::Arc<Context>,
    options: &ApiOptions,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ApiError> {
    let layout = context.machine.runtime.layout().clone();
    let (berth_path, docker_path) = socket_paths(&layout);
    crate::fsutil::private_dir(&layout.run_root).map_err(|e| ApiError::Socket {
        path: layout.run_root.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let run_root_mode = match options.access {
        SocketAccess::RootOnly => 0o700,
        SocketAccess::Group { .. } => 0o711,
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        &layout.run_root,
        std::fs::Permissions::from_mode(run_root_mode),
    )
    .map_err(|source| ApiError::Socket {
        path: layout.run_root.clone(),
        source,
    })?;
    let berth_listener = bind(&berth_path, options.access)?;
    let docker_listener = bind(&docker_path, options.access)?;
    let mut tasks = vec![
        tokio::spawn(serve(
            berth_listener,
            std::sync::Arc::new(berth::BerthApi::new(context.clone())),
        )),
        tokio::spawn(serve(
            docker_listener,
            std::sync::Arc::new(docker::DockerApi::new(context.clone())),
        )),
    ];
    tasks.extend(metrics::start(context, options.metrics_listen)?);
    Ok(tasks)
}
