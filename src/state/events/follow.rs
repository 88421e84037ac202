//! Following the log: past events from a time, then each event as it is appended, across
//! rotations; and `EventHub`, one follower fanned out to every reader of a process.

use std::collections::HashSet;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::Event;
use super::log::{Cursor, EventLog};

impl EventLog {
    /// Past events from `since_ns` (none when `None`), then every event appended after this
    /// call, until the receiver is dropped. The log is opened before this returns; the
    /// reading runs on a thread of the current tokio runtime's blocking pool.
    pub fn follow(&self, since_ns: Option<u64>) -> tokio::sync::mpsc::Receiver<Event> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let opened = self.open_for_follow(since_ns);
        let log = self.clone();
        match opened {
            Ok((watch, cursor, past)) => {
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = log.follow_into(watch, cursor, past, &tx) {
                        tracing::warn!("following the event log in {}: {e}", log.dir.display());
                    }
                });
            }
            Err(e) => tracing::warn!("following the event log in {}: {e}", self.dir.display()),
        }
        rx
    }

    /// The watch, a cursor on the current file, and the past events asked for. The
    /// current file is opened before the past is read, so nothing appended in between is
    /// missed or sent twice: the past comes from this descriptor too.
    fn open_for_follow(
        &self,
        since_ns: Option<u64>,
    ) -> std::io::Result<(Watch, Cursor, Vec<Event>)> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let watch = Watch::new(&self.dir)?;
        let mut cursor = Cursor::new(self.open_current()?);
        let mut past = Vec::new();
        match since_ns {
            Some(since) => {
                if let Ok(previous) = std::fs::File::open(self.previous())
                    && !Self::same_file(&previous, &cursor.file)
                {
                    Cursor::new(previous).read_into(&mut past)?;
                }
                cursor.read_into(&mut past)?;
                past.retain(|e| e.time_ns >= since);
                past.sort_by_key(|e| e.time_ns);
            }
            None => cursor.skip_to_end()?,
        }
        Ok((watch, cursor, past))
    }

    fn follow_into(
        &self,
        watch: Watch,
        mut cursor: Cursor,
        mut batch: Vec<Event>,
        tx: &tokio::sync::mpsc::Sender<Event>,
    ) -> std::io::Result<()> {
        loop {
            for event in batch.drain(..) {
                if tx.blocking_send(event).is_err() {
                    return Ok(());
                }
            }
            cursor.read_into(&mut batch)?;
            if !batch.is_empty() {
                continue;
            }
            // Rotated: finish the old file (a writer may have just appended), go on in
            // the new one from its start.
            if let Ok(now) = std::fs::metadata(self.current())
                && (now.ino(), now.dev()) != cursor.identity()?
            {
                cursor.read_into(&mut batch)?;
                cursor = Cursor::new(self.open_current()?);
                continue;
            }
            if tx.is_closed() {
                return Ok(());
            }
            watch.wait(std::time::Duration::from_secs(1))?;
        }
    }
}

/// inotify on the log's directory: wakes a follower when a line is appended or the log is
/// rotated.
struct Watch {
    fd: rustix::fd::OwnedFd,
}

impl Watch {
    fn new(dir: &Path) -> std::io::Result<Watch> {
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::MODIFY
                | inotify::WatchFlags::CREATE
                | inotify::WatchFlags::MOVED_TO
                | inotify::WatchFlags::MOVED_FROM,
        )?;
        Ok(Watch { fd })
    }

    /// Until something changes in the directory, or `timeout`.
    fn wait(&self, timeout: std::time::Duration) -> std::io::Result<()> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let timeout = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(1),
            tv_nsec: 0,
        };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 4096];
        // Drained: only the wake-up matters.
        while let Ok(n) = rustix::io::read(&self.fd, &mut buf) {
            if n == 0 {
                break;
            }
        }
        Ok(())
    }
}

/// One follower of the log fanned out to every reader of a process (the agent's API: each
/// `docker events`, each `/v1/events`, the metrics): one thread and one inotify instance
/// however many readers, where the kernel limits root's inotify instances host-wide.
#[derive(Clone)]
pub struct EventHub {
    log: EventLog,
    live: broadcast::Sender<Arc<Event>>,
    /// The follower starts with the first reader: a reader of the past alone (`--until` in
    /// the past) leaves the log as it found it.
    started: Arc<std::sync::Once>,
}

/// Events a slow reader may fall behind by before it misses some (and is told in the log).
const HUB_BACKLOG: usize = 4096;

impl EventHub {
    /// A hub of `log`; it follows the log, on the current tokio runtime, from its first
    /// reader on.
    pub fn start(log: EventLog) -> EventHub {
        let (live, _) = broadcast::channel(HUB_BACKLOG);
        EventHub {
            log,
            live,
            started: Arc::new(std::sync::Once::new()),
        }
    }

    fn ensure_following(&self) {
        self.started.call_once(|| {
            let mut events = self.log.follow(None);
            let sender = self.live.clone();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    // No reader right now is not an error.
                    let _ = sender.send(Arc::new(event));
                }
            });
        });
    }

    /// What `EventLog::follow` gives, from the hub: the past from `since_ns` (none when
    /// `None`), then every event as it comes, until the receiver is dropped.
    pub fn follow(&self, since_ns: Option<u64>) -> mpsc::Receiver<Event> {
        // Subscribed before the past is read: an event appended meanwhile is in both, and
        // sent once.
        let mut live = self.live.subscribe();
        self.ensure_following();
        let (tx, rx) = mpsc::channel(256);
        let log = self.log.clone();
        tokio::spawn(async move {
            let mut recent: HashSet<Event> = HashSet::new();
            if let Some(since) = since_ns {
                let past = tokio::task::spawn_blocking(move || log.read(Some(since), None)).await;
                let past = match past {
                    Ok(Ok(past)) => past,
                    Ok(Err(e)) => {
                        tracing::warn!("reading past events: {e}");
                        Vec::new()
                    }
                    Err(e) => {
                        tracing::warn!("reading past events: {e}");
                        Vec::new()
                    }
                };
                // What the live stream may repeat: events near the end of the past read.
                let newest = past.last().map_or(0, |e| e.time_ns);
                for event in past {
                    if event.time_ns + DUPLICATE_WINDOW_NS >= newest {
                        recent.insert(event.clone());
                    }
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
            loop {
                let event = tokio::select! {
                    event = live.recv() => event,
                    _ = tx.closed() => return,
                };
                match event {
                    Ok(event) => {
                        if !recent.is_empty() && recent.remove(&*event) {
                            continue;
                        }
                        if tx.send((*event).clone()).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!("an event reader fell behind and missed {missed} event(s)");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        rx
    }
}

impl EventHub {
    /// Events from `since_ns` to `until_ns`, as `docker events --since --until` gives them:
    /// when `until_ns` has passed, the past read whole from the log (a deadline already gone
    /// would race the live stream); otherwise the past, then the live stream until
    /// `until_ns` (for ever without one). The receiver ends with the window.
    pub async fn between(
        &self,
        since_ns: Option<u64>,
        until_ns: Option<u64>,
    ) -> Result<mpsc::Receiver<Event>, super::EventsError> {
        let now = super::now_ns();
        let (tx, rx) = mpsc::channel(256);
        if let Some(until) = until_ns.filter(|u| *u <= now) {
            let log = self.log.clone();
            let past = tokio::task::spawn_blocking(move || log.read(since_ns, Some(until)))
                .await
                .map_err(|e| super::EventsError::Read {
                    path: self.log.dir.clone(),
                    source: std::io::Error::other(e),
                })??;
            tokio::spawn(async move {
                for event in past {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            });
            return Ok(rx);
        }
        let mut events = self.follow(since_ns);
        let Some(until) = until_ns else {
            return Ok(events);
        };
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_nanos(until.saturating_sub(now));
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    biased;
                    next = events.recv() => next,
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = tx.closed() => return,
                };
                let Some(event) = next.filter(|e| e.time_ns <= until) else {
                    return;
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// How far back an event read from the past may come again live (the hub's follower lags
/// the file by a moment).
const DUPLICATE_WINDOW_NS: u64 = 2_000_000_000;
