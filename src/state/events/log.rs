//! The log on disk: appending (one `write` on `O_APPEND`), rotation, reading whole lines.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Event, EventsError};
use crate::state::layout::Layout;

/// Past this size the log is rotated.
pub const MAX_LOG_BYTES: u64 = 8 << 20;

/// A line longer than this is not an event berth wrote: skipped, never buffered whole.
const MAX_LINE_BYTES: usize = 1 << 20;

/// The log of one state root.
#[derive(Debug, Clone)]
pub struct EventLog {
    pub(super) dir: PathBuf,
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

    pub(super) fn current(&self) -> PathBuf {
        self.dir.join("events.log")
    }

    pub(super) fn previous(&self) -> PathBuf {
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

    pub(super) fn open_current(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(self.current())
    }

    pub(super) fn same_file(a: &std::fs::File, b: &std::fs::File) -> bool {
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
pub(super) struct Cursor {
    pub(super) file: std::fs::File,
    partial: Vec<u8>,
}

impl Cursor {
    pub(super) fn new(file: std::fs::File) -> Cursor {
        Cursor {
            file,
            partial: Vec::new(),
        }
    }

    pub(super) fn identity(&self) -> std::io::Result<(u64, u64)> {
        let meta = self.file.metadata()?;
        Ok((meta.ino(), meta.dev()))
    }

    pub(super) fn skip_to_end(&mut self) -> std::io::Result<()> {
        self.file.seek(SeekFrom::End(0))?;
        Ok(())
    }

    pub(super) fn read_into(&mut self, out: &mut Vec<Event>) -> std::io::Result<()> {
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
            match parse_line(&line) {
                Some(event) => out.push(event),
                None => tracing::debug!("skipping an unreadable event line"),
            }
        }
    }
}

/// One event line. A writer killed in the middle of its `write` leaves half a line, which
/// the next writer's line continues: the event after the last start of an event is read.
fn parse_line(line: &[u8]) -> Option<Event> {
    if let Ok(event) = serde_json::from_slice::<Event>(line) {
        return Some(event);
    }
    const START: &[u8] = b"{\"time_ns\":";
    let last = line.windows(START.len()).rposition(|w| w == START)?;
    (last > 0)
        .then(|| serde_json::from_slice::<Event>(&line[last..]).ok())
        .flatten()
}
