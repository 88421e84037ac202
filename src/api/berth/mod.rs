//! berth's own JSON API on `berth.sock`: what the CLI asks a running agent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

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
        let _context = self.context.clone();
        Box::pin(async move {
            if request.uri().path() == "/metrics" {
                let accept = request.headers().get(hyper::header::ACCEPT);
                return super::metrics::render(&_context, accept.and_then(|v| v.to_str().ok()))
                    .await;
            }
            super::error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {}", request.uri().path()),
            )
        })
    }
}
