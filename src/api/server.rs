//! Unix sockets served with hyper: binding with the right owner and mode from the first
//! instant, and the accept loop (one task per connection, upgrades allowed for Docker's
//! hijacked `exec` and `attach` streams).

use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use super::{ApiError, Body};

/// Who may connect besides root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketAccess {
    /// Mode 0600: root only.
    RootOnly,
    /// Mode 0660, group `gid`: members of that group (as Docker's `docker` group; being in
    /// it is being root on the host, since the API runs containers as root).
    Group { gid: u32 },
}

impl SocketAccess {
    /// `--api-group NAME` resolved through the host's group database.
    pub fn group(name: &str) -> Result<SocketAccess, ApiError> {
        match nix::unistd::Group::from_name(name) {
            Ok(Some(group)) => Ok(SocketAccess::Group {
                gid: group.gid.as_raw(),
            }),
            Ok(None) => Err(ApiError::NoSuchGroup {
                name: name.to_string(),
            }),
            Err(e) => Err(ApiError::GroupLookup {
                name: name.to_string(),
                source: e.into(),
            }),
        }
    }
}

/// What a socket answers: one call per request, on the connection's task.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + 'static>>;
}

/// Binds `path` with `access`. The socket is bound in a private (0700) staging directory,
/// given its owner and mode there, then renamed into place, so it is never reachable with
/// looser permissions than `access`, whatever the umask. A socket left by an agent that
/// died is replaced; one that answers is another agent's.
pub fn bind(path: &Path, access: SocketAccess) -> Result<UnixListener, ApiError> {
    let socket_error = |source| ApiError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ApiError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(socket_error)?;
    }
    let staging = staging_dir(path);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(socket_error)?;
    let staged = staging.join("socket");
    let placed = (|| {
        let listener = UnixListener::bind(&staged)?;
        let mode = match access {
            SocketAccess::RootOnly => 0o600,
            SocketAccess::Group { gid } => {
                std::os::unix::fs::chown(&staged, Some(0), Some(gid))?;
                0o660
            }
        };
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&staging);
    placed.map_err(socket_error)
}

fn staging_dir(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".staging-{}", std::process::id()));
    path.with_file_name(name)
}

/// Accepts connections until the task is dropped; each is served on its own task.
pub async fn serve(listener: UnixListener, handler: Arc<dyn Handler>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like: wait instead of spinning, keep serving.
                tracing::warn!("accepting an API connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = handler.handle(request);
                async move { Ok::<_, std::convert::Infallible>(answer.await) }
            });
            // The timer makes hyper's header read timeout (30 s) apply: a client that
            // connects and says nothing does not hold a task for ever.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                tracing::debug!("API connection: {e}");
            }
        });
    }
}
