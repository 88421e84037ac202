//! Watching the desired-state directory. The directory itself is watched (its files
//! changing, being replaced by rename, Kubernetes' `..data` symlink being swapped inside
//! it), and so is its parent, for the case where the directory is itself a symlink that
//! git-sync or a deploy tool swaps: then the watch is moved to the new target.
//!
//! Events are debounced (notify-debouncer-full merges the burst of one save or one swap), and
//! files being written are tracked (`Writers`) so that a pass never reads one half-written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
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
pub(crate) enum DirEvent {
    /// Something inside the directory changed.
    Changed,
    /// The directory (or the symlink naming it) was created, replaced or removed.
    Replaced,
}

pub(crate) struct DirWatch {
    debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    dir: PathBuf,
    pub writers: Writers,
}

/// Quiet time that ends a burst of events (one save, one swap).
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Files of the directory that are being written: seen created or modified and not yet
/// closed (inotify's IN_CLOSE_WRITE) or renamed. A pass waits until there are none, so a
/// file written in place in several writes is never read half-written, while a file moved
/// into place whole (git, Ansible, config maps) is read at once.
#[derive(Debug, Clone, Default)]
pub struct Writers {
    open: Arc<Mutex<HashMap<PathBuf, Instant>>>,
}

impl Writers {
    /// A file being written, if any, and for how long; a writer that has kept a file open
    /// longer than `give_up` is not waited for any more.
    pub(crate) fn busy(&self, give_up: Duration) -> Option<(PathBuf, Duration)> {
        let mut open = self.open.lock().ok()?;
        open.retain(|_, since| since.elapsed() < give_up);
        open.iter()
            .map(|(p, since)| (p.clone(), since.elapsed()))
            .min_by_key(|(_, age)| *age)
    }

    fn note(&self, event: &notify::Event) {
        let Ok(mut open) = self.open.lock() else {
            return;
        };
        match event.kind {
            EventKind::Create(CreateKind::File | CreateKind::Any)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
                // Only a regular file is written in place and closed. A FIFO, socket or device
                // never reports a close, and a FIFO written to reports a modification each
                // time: tracked, it would hold every pass back. (lstat: nothing is opened.)
                for p in event
                    .paths
                    .iter()
                    .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file()))
                {
                    open.entry(p.clone()).or_insert_with(Instant::now);
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(_))
            | EventKind::Remove(_) => {
                for p in &event.paths {
                    open.remove(p);
                }
            }
            _ => {}
        }
    }
}

impl DirWatch {
    pub(crate) fn new(
        dir: &Path,
        events: UnboundedSender<DirEvent>,
    ) -> Result<DirWatch, WatchError> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = dir.file_name().map(|n| n.to_os_string());
        let watched = dir.to_path_buf();
        let writers = Writers::default();
        let noted = writers.clone();
        let handler = move |result: DebounceEventResult| {
            let Ok(batch) = result else {
                // Overflowed or failed: treat as a change (a pass is always safe).
                let _ = events.send(DirEvent::Changed);
                return;
            };
            let mut replaced = false;
            let mut changed = false;
            for event in &batch {
                if event.paths.iter().any(|p| p.starts_with(&watched)) {
                    noted.note(event);
                }
                // Reading the files (the loader itself) shows up as access events; and
                // the parent reports every open of the directory. Neither is a change; a
                // writer closing its file is (a pass may have waited for it).
                let closed = matches!(
                    event.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                );
                if !closed && matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
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
            writers,
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
    pub(crate) fn rewatch(&mut self) {
        let _ = self.debouncer.unwatch(&self.dir);
        if let Err(e) = self.debouncer.watch(&self.dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %self.dir.display(), "cannot watch the desired-state directory: {e}; changes will be seen at the next resync");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(path: &Path) -> notify::Event {
        notify::Event::new(EventKind::Create(CreateKind::File)).add_path(path.to_path_buf())
    }

    #[test]
    fn only_regular_files_are_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writers = Writers::default();
        let fifo = dir.path().join("fifo.toml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .expect("mkfifo");
        let socket = dir.path().join("sock.toml");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink("elsewhere.toml", &link).expect("symlink");
        for p in [&fifo, &socket, &link] {
            writers.note(&created(p));
            writers.note(
                &notify::Event::new(EventKind::Modify(ModifyKind::Data(
                    notify::event::DataChange::Any,
                )))
                .add_path(p.clone()),
            );
        }
        assert_eq!(writers.busy(Duration::from_secs(60)), None);
        // A regular file is waited for until its writer closes it.
        let file = dir.path().join("web.toml");
        std::fs::write(&file, "").expect("write");
        writers.note(&created(&file));
        assert_eq!(
            writers.busy(Duration::from_secs(60)).map(|(p, _)| p),
            Some(file.clone())
        );
        writers.note(
            &notify::Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)))
                .add_path(file),
        );
        assert_eq!(writers.busy(Duration::from_secs(60)), None);
    }
}
