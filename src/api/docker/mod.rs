//! The Docker Engine API subset on `docker.sock`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::{Body, Context, Handler};

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
        let _context = self.context.clone();
        Box::pin(async move {
            super::error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {}", request.uri().path()),
            )
        })
    }
}
