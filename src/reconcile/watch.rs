//! Watching the desired-state directory. The directory itself is watched (its files
//! changing, being replaced by rename, Kubernetes' `..data` symlink being swapped inside
//! it), and so is its parent, for the case where the directory is itself a symlink that
//! git-sync or a deploy tool swaps: then the watch is moved to the new target.
//!
//! Events are debounced (notify-debouncer-full merges the burst of one save or one swap);
//! the agent then also waits until no file was modified for a moment before loading, so a
//! file written in place in several writes is not read half-written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("watching {}: {source}", path.display())]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
}

/// What the watcher reports to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirEvent {
    /// Something inside the directory changed.
    Changed,
    /// The directory (or the symlink naming it) was created, replaced or removed.
    Replaced,
}

pub struct DirWatch {
    debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    dir: PathBuf,
}

/// Quiet time that ends a burst of events.
const DEBOUNCE: Duration = Duration::from_millis(150);

impl DirWatch {
    pub fn new(dir: &Path, events: UnboundedSender<DirEvent>) -> Result<DirWatch, WatchError> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = dir.file_name().map(|n| n.to_os_string());
        let watched = dir.to_path_buf();
        let handler = move |result: DebounceEventResult| {
            let Ok(batch) = result else {
                // Overflowed or failed: treat as a change (a pass is always safe).
                let _ = events.send(DirEvent::Changed);
                return;
            };
            let mut replaced = false;
            let mut changed = false;
            for event in &batch {
                // Reading the files (the loader itself) shows up as access events; and
                // the parent reports every open of the directory. Neither is a change.
                if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
                    continue;
                }
                for path in &event.paths {
                    if path.parent() == Some(parent.as_path())
                        && path.file_name().map(|n| n.to_os_string()) == name
                    {
                        replaced = true;
                    } else if path.starts_with(&watched) {
                        changed = true;
                    }
                }
            }
            if replaced {
                let _ = events.send(DirEvent::Replaced);
            } else if changed {
                let _ = events.send(DirEvent::Changed);
            }
        };
        let debouncer =
            new_debouncer(DEBOUNCE, None, handler).map_err(|source| WatchError::Watch {
                path: dir.to_path_buf(),
                source,
            })?;
        let mut watch = DirWatch {
            debouncer,
            dir: dir.to_path_buf(),
        };
        let parent = watch.parent();
        watch
            .debouncer
            .watch(&parent, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch {
                path: parent.clone(),
                source,
            })?;
        watch.rewatch();
        Ok(watch)
    }

    fn parent(&self) -> PathBuf {
        self.dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    }

    /// Watch the directory again, following its symlink to wherever it points now. A
    /// directory that does not exist (yet) is watched through its parent only.
    pub fn rewatch(&mut self) {
        let _ = self.debouncer.unwatch(&self.dir);
        if let Err(e) = self.debouncer.watch(&self.dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %self.dir.display(), "cannot watch the desired-state directory: {e}; changes will be seen at the next resync");
        }
    }
}

/// How long ago the newest entry of `dir` was modified (files and the symlinks naming
/// them); None if it cannot be read. The agent waits until this reaches its settle time.
pub fn quiet_for(dir: &Path) -> Option<Duration> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        for meta in [entry.metadata().ok(), std::fs::metadata(entry.path()).ok()]
            .into_iter()
            .flatten()
        {
            if let Ok(m) = meta.modified() {
                newest = newest.max(Some(m));
            }
        }
    }
    let newest = newest?;
    Some(newest.elapsed().unwrap_or(Duration::ZERO))
}
