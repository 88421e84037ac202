//! Container files that never change once written (a container's `config.json` and
//! `spec.json`) parsed once, not on every listing: each is checked by size and
//! modification time, so a file rewritten in place (a joiner's `config.json` at its start)
//! is parsed again.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Parsed files by path.
pub(super) struct Parsed<T> {
    entries: Mutex<HashMap<PathBuf, Entry<T>>>,
}

struct Entry<T> {
    size: u64,
    mtime_ns: i128,
    value: Arc<T>,
}

impl<T: serde::de::DeserializeOwned> Parsed<T> {
    pub(super) fn new() -> Parsed<T> {
        Parsed {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The file parsed, from the cache while it is unchanged; None if unreadable.
    pub(super) fn get(&self, path: &Path) -> Option<Arc<T>> {
        let meta = std::fs::metadata(path).ok()?;
        let (size, mtime_ns) = (
            meta.size(),
            i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        );
        if let Ok(entries) = self.entries.lock()
            && let Some(entry) = entries.get(path)
            && entry.size == size
            && entry.mtime_ns == mtime_ns
        {
            return Some(entry.value.clone());
        }
        let value: Arc<T> = Arc::new(serde_json::from_slice(&std::fs::read(path).ok()?).ok()?);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                path.to_path_buf(),
                Entry {
                    size,
                    mtime_ns,
                    value: value.clone(),
                },
            );
        }
        Some(value)
    }

    /// Forgets the files `keep` says no longer matter (removed containers).
    pub(super) fn retain(&self, keep: impl Fn(&Path) -> bool) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|path, _| keep(path));
        }
    }
}
