//! What a pull reports to the event log: the bytes it fetched, counted on the way through
//! the caller's progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::registry::Progress;
use crate::digest::Digest;

/// The caller's progress, with the bytes received counted.
pub(crate) struct Counted {
    inner: Arc<dyn Progress>,
    bytes: AtomicU64,
}

impl Counted {
    pub(crate) fn new(inner: Arc<dyn Progress>) -> Counted {
        Counted {
            inner,
            bytes: AtomicU64::new(0),
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Progress for Counted {
    fn blob_started(&self, digest: &Digest, size: u64) {
        self.inner.blob_started(digest, size);
    }
    fn blob_advanced(&self, digest: &Digest, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.inner.blob_advanced(digest, bytes);
    }
    fn blob_done(&self, digest: &Digest, fetched: bool) {
        self.inner.blob_done(digest, fetched);
    }
    fn retrying(&self, what: &str, attempt: u32, error: &str) {
        self.inner.retrying(what, attempt, error);
    }
}
