//! The event log: one typed stream of what happened to containers, images, networks,
//! volumes and desired files, whoever did it (the agent, the CLI, a container's monitor).
//!
//! Events are JSON lines appended to `<state root>/events/events.log`. Every writer appends
//! one line with one `write` on an `O_APPEND` descriptor, which the kernel keeps whole
//! against other appenders, so the processes that act (a monitor recording an exit, `berth
//! stop`, the agent) need no lock and no running agent. The log is bounded: past
//! [`MAX_LOG_BYTES`] it is renamed to `events.log.1` (the previous one dropped), so at most
//! two files' worth is kept. Readers read both; a follower watches the directory with
//! inotify and so costs nothing while nothing happens.
//!
//! An event is never worth failing an operation for: `append` reports problems in the log
//! and returns.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::Layout;
use super::record::{ContainerRecord, ExitRecord};

/// Past this size the log is rotated.
pub const MAX_LOG_BYTES: u64 = 8 << 20;

/// A line longer than this is not an event berth wrote: skipped, never buffered whole.
const MAX_LINE_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("reading the event log {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an event is about (Docker's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    Container,
    Image,
    Network,
    Volume,
    /// A desired-state file.
    Desired,
    /// The agent itself (its passes).
    Agent,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Container => "container",
            Subject::Image => "image",
            Subject::Network => "network",
            Subject::Volume => "volume",
            Subject::Desired => "desired",
            Subject::Agent => "agent",
        }
    }
}

/// What happened. Docker's names where Docker has the event; berth's own otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Start,
    /// The container's init exited (attributes `exit_code`, `signal`, `oom`).
    Die,
    /// The kernel's OOM killer killed a process of the container.
    Oom,
    Kill,
    Stop,
    Restart,
    Destroy,
    /// A health check's verdict changed (attribute `health_status`).
    HealthStatus,
    /// A container was replaced by a new one of its entry (attributes `old`, `new`).
    Replace,
    /// A start-first update moved the ports to the new container (`old`, `new`, `switch_ms`).
    Switch,
    /// A start-first update gave up on the new container (`reason`).
    Rollback,
    /// A container no longer described was removed (`reason`).
    Prune,
    ExecStart,
    ExecDie,
    Pull,
    PullFailed,
    Delete,
    /// A desired file has a problem (`message`, `line`, `column`, `code`).
    Problem,
    /// A reconcile pass ended (`trigger`, `steps`, `failed`, `duration_ms`, `outcome`).
    Pass,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Start => "start",
            Action::Die => "die",
            Action::Oom => "oom",
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Destroy => "destroy",
            Action::HealthStatus => "health_status",
            Action::Replace => "replace",
            Action::Switch => "switch",
            Action::Rollback => "rollback",
            Action::Prune => "prune",
            Action::ExecStart => "exec_start",
            Action::ExecDie => "exec_die",
            Action::Pull => "pull",
            Action::PullFailed => "pull_failed",
            Action::Delete => "delete",
            Action::Problem => "problem",
            Action::Pass => "pass",
        }
    }

    /// Every action, for `--filter event=` checks and help.
    pub const ALL: [Action; 20] = [
        Action::Create,
        Action::Start,
        Action::Die,
        Action::Oom,
        Action::Kill,
        Action::Stop,
        Action::Restart,
        Action::Destroy,
        Action::HealthStatus,
        Action::Replace,
        Action::Switch,
        Action::Rollback,
        Action::Prune,
        Action::ExecStart,
        Action::ExecDie,
        Action::Pull,
        Action::PullFailed,
        Action::Delete,
        Action::Problem,
        Action::Pass,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix time in nanoseconds.
    pub time_ns: u64,
    pub subject: Subject,
    pub action: Action,
    /// A container's id, an image's reference, a network's or volume's name, a file's path,
    /// or "agent".
    pub id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    pub fn now(subject: Subject, action: Action, id: impl Into<String>) -> Event {
        Event {
            time_ns: now_ns(),
            subject,
            action,
            id: id.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// The event with one more attribute.
    pub fn with(mut self, key: &str, value: impl ToString) -> Event {
        self.attributes.insert(key.to_string(), value.to_string());
        self
    }

    /// The name the event's subject goes by (its `name` attribute, else its id).
    pub fn name(&self) -> &str {
        self.attributes.get("name").map_or(&self.id, String::as_str)
    }

    /// One line for people: `TIME SUBJECT ACTION ID (key=value, …)`, as `docker events`.
    pub fn to_line(&self) -> String {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(self.time_ns);
        let mut line = format!(
            "{} {} {} {}",
            humantime::format_rfc3339_nanos(time),
            self.subject.as_str(),
            self.action.as_str(),
            self.id
        );
        if !self.attributes.is_empty() {
            let attributes: Vec<String> = self
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            line.push_str(&format!(" ({})", attributes.join(", ")));
        }
        line
    }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Which events a reader wants; empty lists match everything, values within one list are
/// alternatives, lists are all required (Docker's filter semantics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub subjects: Vec<Subject>,
    pub actions: Vec<Action>,
    /// Matches the id, or a prefix of it, or the `name` attribute.
    pub names: Vec<String>,
    /// Matches the `image` attribute (containers) or the id (images).
    pub images: Vec<String>,
    /// `KEY` (present) or `KEY=VALUE`, against the attributes (container labels are
    /// attributes).
    pub labels: Vec<String>,
}

impl EventFilter {
    pub fn is_empty(&self) -> bool {
        *self == EventFilter::default()
    }

    pub fn matches(&self, event: &Event) -> bool {
        let any = |list: &[String], test: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| test(v))
        };
        (self.subjects.is_empty() || self.subjects.contains(&event.subject))
            && (self.actions.is_empty() || self.actions.contains(&event.action))
            && any(&self.names, &|n| {
                event.id == n || event.name() == n || (n.len() >= 4 && event.id.starts_with(n))
            })
            && any(&self.images, &|i| {
                event.attributes.get("image").is_some_and(|v| v == i)
                    || (event.subject == Subject::Image && event.id == i)
            })
            && self.labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => event.attributes.get(k).is_some_and(|have| have == v),
                None => event.attributes.contains_key(l.as_str()),
            })
    }

    /// Adds `key=value` as `berth events --filter` and Docker's filters spell it.
    pub fn add(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "type" => {
                let subject = [
                    Subject::Container,
                    Subject::Image,
                    Subject::Network,
                    Subject::Volume,
                    Subject::Desired,
                    Subject::Agent,
                ]
                .into_iter()
                .find(|s| s.as_str() == value)
                .ok_or_else(|| {
                    format!(
                        "unknown type {value:?}: expected container, image, network, volume, desired or agent"
                    )
                })?;
                self.subjects.push(subject);
            }
            "event" | "action" => {
                // Docker spells health events "health_status: healthy".
                let base = value.split(':').next().unwrap_or(value).trim();
                let action = Action::ALL
                    .into_iter()
                    .find(|a| a.as_str() == base)
                    .ok_or_else(|| format!("unknown event {value:?}"))?;
                self.actions.push(action);
            }
            "container" | "name" | "id" | "network" | "volume" => {
                self.names.push(value.to_string())
            }
            "image" => self.images.push(value.to_string()),
            "label" => self.labels.push(value.to_string()),
            _ => {
                return Err(format!(
                    "unknown filter {key:?}: expected type, event, container, image, label, network or volume"
                ));
            }
        }
        Ok(())
    }
}

/// The log of one state root.
#[derive(Debug, Clone)]
pub struct EventLog {
    dir: PathBuf,
}

impl EventLog {
    pub fn new(layout: &Layout) -> EventLog {
        EventLog::at(&layout.state_root.join("events"))
    }

    /// A log in `dir` (tests).
    pub fn at(dir: &Path) -> EventLog {
        EventLog {
            dir: dir.to_path_buf(),
        }
    }

    fn current(&self) -> PathBuf {
        self.dir.join("events.log")
    }

    fn previous(&self) -> PathBuf {
        self.dir.join("events.log.1")
    }

    /// Appends `event`; a failure is logged, never returned.
    pub fn append(&self, event: &Event) {
        if let Err(e) = self.try_append(event) {
            tracing::warn!(
                "recording the event {} {} {} in {}: {e}",
                event.subject.as_str(),
                event.action.as_str(),
                event.id,
                self.dir.display()
            );
        }
    }

    fn try_append(&self, event: &Event) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let open = || {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(self.current())
        };
        let mut file = match open() {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.dir)?;
                open()?
            }
            Err(e) => return Err(e),
        };
        file.write_all(&line)?;
        if file.metadata()?.len() > MAX_LOG_BYTES {
            self.rotate(&file)?;
        }
        Ok(())
    }

    /// Renames the full log away, once: whoever finds the path still naming the file it
    /// wrote to does it; the others find a new file there.
    fn rotate(&self, written: &std::fs::File) -> std::io::Result<()> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .open(self.dir.join("lock"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let mine = written.metadata()?;
        match std::fs::metadata(self.current()) {
            Ok(now) if now.ino() == mine.ino() && now.dev() == mine.dev() => {
                std::fs::rename(self.current(), self.previous())
            }
            _ => Ok(()),
        }
    }

    /// The events from `since_ns` (inclusive) until `until_ns` (inclusive), oldest first.
    pub fn read(
        &self,
        since_ns: Option<u64>,
        until_ns: Option<u64>,
    ) -> Result<Vec<Event>, EventsError> {
        let mut events = Vec::new();
        for path in [self.previous(), self.current()] {
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(EventsError::Read { path, source }),
            };
            let mut cursor = Cursor::new(file);
            cursor
                .read_into(&mut events)
                .map_err(|source| EventsError::Read {
                    path: path.clone(),
                    source,
                })?;
        }
        events.retain(|e| in_window(e, since_ns, until_ns));
        // Appenders race by microseconds; readers see time order.
        events.sort_by_key(|e| e.time_ns);
        Ok(events)
    }

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

    fn open_current(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(self.current())
    }

    fn same_file(a: &std::fs::File, b: &std::fs::File) -> bool {
        match (a.metadata(), b.metadata()) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        }
    }
}

fn in_window(event: &Event, since_ns: Option<u64>, until_ns: Option<u64>) -> bool {
    since_ns.is_none_or(|s| event.time_ns >= s) && until_ns.is_none_or(|u| event.time_ns <= u)
}

/// Reads whole lines from where it stopped; a partial last line waits for its end.
struct Cursor {
    file: std::fs::File,
    partial: Vec<u8>,
}

impl Cursor {
    fn new(file: std::fs::File) -> Cursor {
        Cursor {
            file,
            partial: Vec::new(),
        }
    }

    fn identity(&self) -> std::io::Result<(u64, u64)> {
        let meta = self.file.metadata()?;
        Ok((meta.ino(), meta.dev()))
    }

    fn skip_to_end(&mut self) -> std::io::Result<()> {
        self.file.seek(SeekFrom::End(0))?;
        Ok(())
    }

    fn read_into(&mut self, out: &mut Vec<Event>) -> std::io::Result<()> {
        let mut reader = BufReader::new(&self.file);
        loop {
            let mut line = std::mem::take(&mut self.partial);
            let read = reader.read_until(b'\n', &mut line)?;
            if read == 0 {
                self.partial = line;
                return Ok(());
            }
            if line.last() != Some(&b'\n') {
                // The writer's line is not all there yet: keep it for the next read, unless
                // it cannot be one of ours.
                if line.len() <= MAX_LINE_BYTES {
                    self.partial = line;
                }
                return Ok(());
            }
            match serde_json::from_slice::<Event>(&line) {
                Ok(event) => out.push(event),
                Err(e) => tracing::debug!("skipping an unreadable event line: {e}"),
            }
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

/// A point in time as `docker events --since` takes it: unix seconds (with an optional
/// fraction, `1700000000.5`), RFC 3339 (`2026-12-07T10:00:00Z`), or a duration before
/// `now_ns` (`10m`, `1h30m`). Unix nanoseconds.
pub fn parse_time(text: &str, now_ns: u64) -> Result<u64, String> {
    let text = text.trim();
    if let Some((secs, frac)) = text.split_once('.').or(Some((text, "")))
        && !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
    {
        let secs: u64 = secs.parse().map_err(|_| format!("{text:?}: too large"))?;
        let nanos: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().unwrap_or(0)
        };
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(|| format!("{text:?}: too large"));
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .map_err(|_| format!("{text:?}: before 1970"));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        let ago = u64::try_from(ago.as_nanos()).unwrap_or(u64::MAX);
        return Ok(now_ns.saturating_sub(ago));
    }
    Err(format!(
        "{text:?} is not a time: expected unix seconds (1700000000), RFC 3339 \
         (2026-12-07T10:00:00Z) or a duration ago (10m)"
    ))
}

/// An event about `record`'s container: its labels (its config.json annotations, berth's
/// own left out) then berth's attributes, as Docker's events carry them.
pub fn container_event(layout: &Layout, record: &ContainerRecord, action: Action) -> Event {
    let mut event = Event::now(Subject::Container, action, &record.id);
    for (key, value) in labels(layout, &record.id) {
        event.attributes.insert(key, value);
    }
    let mut event = event
        .with("name", &record.name)
        .with("image", &record.image)
        .with("spec_hash", &record.spec_hash);
    if record.manual {
        event = event.with("manual", "true");
    }
    event
}

/// The `die` event of an exit, and before it an `oom` event if the OOM killer struck.
pub fn exit_events(layout: &Layout, record: &ContainerRecord, exit: &ExitRecord) -> Vec<Event> {
    let mut events = Vec::new();
    if exit.oom_killed {
        events.push(container_event(layout, record, Action::Oom));
    }
    let mut die = container_event(layout, record, Action::Die)
        .with("exit_code", exit_code(exit))
        .with(
            "duration_ms",
            exit.finished_at_ms.saturating_sub(exit.started_at_ms),
        );
    if let Some(signal) = exit.signal {
        die = die.with("signal", signal);
    }
    if exit.oom_killed {
        die = die.with("oom", "true");
    }
    if let Some(error) = &exit.error {
        die = die.with("error", error);
    }
    if let Some(why) = &exit.stopped_because {
        die = die.with("stopped_because", why);
    }
    events.push(die);
    events
}

/// Docker's exit code: the status, or 128 + the signal.
fn exit_code(exit: &ExitRecord) -> i32 {
    match (exit.code, exit.signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

/// The entry's labels: the spec's annotations that are not berth's own.
fn labels(layout: &Layout, id: &str) -> HashMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: HashMap<String, String>,
    }
    let Ok(bytes) = std::fs::read(layout.container(id).config()) else {
        return HashMap::new();
    };
    serde_json::from_slice::<Annotated>(&bytes)
        .map(|spec| {
            spec.annotations
                .into_iter()
                .filter(|(k, _)| !k.starts_with("io.berth."))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
