//! `/metrics` over TCP (`--metrics-listen`): plain HTTP/1.1, nothing else served there.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::api::Body;

/// Binds `addr` now (so a taken port fails the agent's start, not a later scrape).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Answers `GET /metrics` with `render(accept)` until the task is dropped.
pub async fn serve<F, R>(listener: TcpListener, render: Arc<R>)
where
    R: Fn(Option<String>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("accepting a metrics connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let answer = answer(&request, &render);
                async move { Ok::<_, std::convert::Infallible>(answer.await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

fn answer<F, R>(
    request: &Request<Incoming>,
    render: &Arc<R>,
) -> std::pin::Pin<Box<dyn Future<Output = Response<Body>> + Send>>
where
    R: Fn(Option<String>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    if request.uri().path() != "/metrics" {
        let path = request.uri().path().to_string();
        return Box::pin(async move {
            crate::api::error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {path} (only /metrics is served here)"),
            )
        });
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Box::pin(async {
            crate::api::error(StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics")
        });
    }
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Box::pin(render(accept))
}
