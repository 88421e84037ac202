//! Container log files: the CRI format kubelet writes, size-rotated, and their readers.
//!
//! ```text
//! <dir>/container.log      the current file, appended by the container's monitor
//! <dir>/container.log.1    the newest rotated file
//! <dir>/container.log.N    the oldest kept, N = max_files - 1
//! ```
//!
//! One record per line: `<RFC 3339 UTC time, 9 digits> <stdout|stderr> <F|P> <content>\n`.
//! Content longer than [`MAX_LINE`] is cut into `P` (partial) pieces ending with one `F`. The
//! format is byte-for-byte what kubelet writes, so crictl, promtail or fluent-bit can ship
//! the files unchanged.
//!
//! **Output without a final newline.** When a stream ends in the middle of a line, the rest is
//! written as an ordinary `F` record at [`LogWriter::finish`], and readers cannot tell it from
//! a line that had a newline — as with kubelet. An extra CRI tag (`F:x`) could carry it, and
//! kubelet would ignore it, but not every third-party CRI parser is that lenient, and the only
//! visible difference would be a shell prompt glued to the last line: compatibility wins.
//!
//! **Visibility.** [`LogWriter::write`] hands its records to the kernel before it returns (one
//! `write(2)` per call, more only past 64 KiB), so a follower sees output as soon as the
//! monitor has read it. No fsync: logs are not worth a disk flush per pipe read.
//!
//! **Rotation and followers.** The writer finishes every write to a file before renaming it
//! and creates the new `container.log` only after the rename. A reader that finds another
//! inode at `container.log` can therefore read the file it holds to its end, then every file
//! rotated since (found by inode among `container.log.N`), then the new one: nothing is lost
//! or repeated. The limit: a reader that falls behind by `max_files - 1` rotations or more
//! loses the files deleted meanwhile, because they are gone from disk.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::spec::model::LogPolicy;

/// Name of the file being written; rotated files add `.1`, `.2`, …
pub const CURRENT: &str = "container.log";

/// Longest content of one record; longer lines become `P` pieces (kubelet's limit).
pub const MAX_LINE: usize = 16 * 1024;

/// Past this many buffered bytes the writer writes them out even within one `write` call,
/// so a huge chunk does not grow the monitor's memory.
const FLUSH_AT: usize = 64 * 1024;

/// Logs may contain secrets: not world-readable.
const FILE_MODE: u32 = 0o640;

/// The last second humantime can format (end of year 9999).
const LAST_SECOND: u64 = 253_402_300_799;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("malformed log line ({reason}): {line:?}")]
    Malformed { reason: String, line: String },
    #[error("writing log output: {source}")]
    Output { source: io::Error },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn malformed(line: &[u8], reason: impl Into<String>) -> LogError {
    const SHOWN: usize = 120;
    LogError::Malformed {
        reason: reason.into(),
        line: String::from_utf8_lossy(&line[..line.len().min(SHOWN)]).into_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn parse(text: &[u8]) -> Option<Stream> {
        match text {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// `dir/container.log` for 0, `dir/container.log.N` otherwise.
fn log_path(dir: &Path, index: u32) -> PathBuf {
    if index == 0 {
        dir.join(CURRENT)
    } else {
        dir.join(format!("{CURRENT}.{index}"))
    }
}

/// N for a file named `container.log.N`.
fn rotated_index(name: &std::ffi::OsStr) -> Option<u32> {
    let suffix = name.to_str()?.strip_prefix(CURRENT)?.strip_prefix('.')?;
    // `parse` alone would accept "+1" and "01", which the writer never produces.
    if suffix.starts_with(['+', '0']) {
        return None;
    }
    suffix.parse().ok()
}

/// The rotated files present in `dir`, by index; none when `dir` does not exist.
fn rotated_files(dir: &Path) -> Result<Vec<u32>, LogError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        found.extend(rotated_index(&entry.file_name()));
    }
    Ok(found)
}

fn format_time(time: SystemTime, text: &mut String) {
    let last = UNIX_EPOCH + Duration::from_secs(LAST_SECOND);
    // humantime panics before 1970 and fails after 9999; a wrong clock must not cost logs.
    let time = time.clamp(UNIX_EPOCH, last);
    let _ = write!(text, "{}", humantime::format_rfc3339_nanos(time));
}

// ---------------------------------------------------------------------------------------------
// Writer

/// Writes a container's output as CRI records into size-rotated files. Single-threaded and
/// synchronous: the monitor calls [`write`](Self::write) with each chunk read from a pipe and
/// [`finish`](Self::finish) once both pipes are closed — before recording the exit, so that
/// a follower stopping at the exit (`berth run`) reads the last line too.
///
/// An error never leaves the writer unusable: the records of that call are lost, and the next
/// write first ends any record left torn in the file, so the framing survives.
pub struct LogWriter {
    sink: Sink,
    pending: [Vec<u8>; 2],
    stamp: Stamp,
}

impl LogWriter {
    /// Open `dir/container.log` for appending (creating `dir`), counting what it already
    /// holds: a restarted monitor continues the same files. A `max_files` of 0 means 1.
    pub fn open(dir: &Path, policy: LogPolicy) -> Result<LogWriter, LogError> {
        Ok(LogWriter {
            sink: Sink::open(dir, policy)?,
            pending: [Vec::new(), Vec::new()],
            stamp: Stamp::default(),
        })
    }

    /// Log `bytes` read from `stream` at `now`: every complete line becomes a record, an
    /// incomplete one waits for the next call (or is cut into `P` pieces past [`MAX_LINE`]).
    pub fn write(&mut self, stream: Stream, bytes: &[u8], now: SystemTime) -> Result<(), LogError> {
        let mut out = Emitter {
            sink: &mut self.sink,
            stamp: self.stamp.at(now),
            stream,
        };
        let pending = &mut self.pending[stream.index()];
        let split = split_lines(&mut out, pending, bytes);
        let flushed = self.sink.flush();
        split.and(flushed)
    }

    /// Write out what each stream left without a final newline, as `F` records.
    pub fn finish(&mut self, now: SystemTime) -> Result<(), LogError> {
        let stamp = self.stamp.at(now);
        let mut result = Ok(());
        for stream in [Stream::Stdout, Stream::Stderr] {
            let pending = &mut self.pending[stream.index()];
            if !pending.is_empty() {
                let mut out = Emitter {
                    sink: &mut self.sink,
                    stamp,
                    stream,
                };
                result = result.and(out.emit(b'F', pending));
                pending.clear();
            }
        }
        result.and(self.sink.flush())
    }

    /// Size of the current file, counting records not yet written out.
    pub fn current_size(&self) -> u64 {
        self.sink.size
    }
}

/// The formatted timestamp, kept while `now` does not change: a chunk of many lines is
/// formatted once.
#[derive(Default)]
struct Stamp {
    time: Option<SystemTime>,
    text: String,
}

impl Stamp {
    fn at(&mut self, now: SystemTime) -> &str {
        if self.time != Some(now) {
            self.text.clear();
            format_time(now, &mut self.text);
            self.time = Some(now);
        }
        &self.text
    }
}

/// Where one `write` call's records go.
struct Emitter<'a> {
    sink: &'a mut Sink,
    stamp: &'a str,
    stream: Stream,
}

impl Emitter<'_> {
    fn emit(&mut self, tag: u8, content: &[u8]) -> Result<(), LogError> {
        self.sink.record(self.stamp, self.stream, tag, content)
    }
}

fn split_lines(out: &mut Emitter, pending: &mut Vec<u8>, bytes: &[u8]) -> Result<(), LogError> {
    let mut rest = bytes;
    while let Some(end) = find_newline(rest) {
        push_line(out, pending, &rest[..end])?;
        rest = &rest[end + 1..];
    }
    push_fragment(out, pending, rest)
}

/// `position` a word at a time: the newline search is most of the writer's work per byte.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let mut array = [0u8; 8];
        array.copy_from_slice(word);
        let x = u64::from_ne_bytes(array) ^ NEWLINES;
        // Sets a high bit (at least) in each zero byte of `x`, that is at each newline.
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        offset += 8;
    }
    let found = bytes[offset..].iter().position(|&b| b == b'\n')?;
    Some(offset + found)
}

/// The end of a line: `pending` (the line's start) plus `line`, as `P`… `F`.
fn push_line(out: &mut Emitter, pending: &mut Vec<u8>, line: &[u8]) -> Result<(), LogError> {
    if pending.is_empty() && line.len() <= MAX_LINE {
        return out.emit(b'F', line);
    }
    push_fragment(out, pending, line)?;
    let result = out.emit(b'F', pending);
    pending.clear();
    result
}

/// More of an unfinished line. A piece becomes `P` only once more bytes are known to follow
/// it, so a line of exactly `MAX_LINE` bytes stays one `F`. Keeps `pending` within `MAX_LINE`
/// and long input pieces are written straight from `frag`, uncopied.
fn push_fragment(
    out: &mut Emitter,
    pending: &mut Vec<u8>,
    mut frag: &[u8],
) -> Result<(), LogError> {
    loop {
        let room = MAX_LINE - pending.len();
        if frag.len() <= room {
            pending.extend_from_slice(frag);
            return Ok(());
        }
        if pending.is_empty() {
            out.emit(b'P', &frag[..MAX_LINE])?;
            frag = &frag[MAX_LINE..];
        } else {
            pending.extend_from_slice(&frag[..room]);
            frag = &frag[room..];
            let result = out.emit(b'P', pending);
            pending.clear();
            result?;
        }
    }
}

/// The current file and the rotation policy.
struct Sink {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// Bytes in the current file, counting `buf`.
    size: u64,
    max_size: u64,
    max_files: u32,
    /// The highest `container.log.N` present, so rotation renames only files that exist.
    rotated: u32,
    /// A write failed: the file may end inside a record.
    torn: bool,
}

impl Sink {
    fn open(dir: &Path, policy: LogPolicy) -> Result<Sink, LogError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let path = log_path(dir, 0);
        let mut sink = Sink {
            dir: dir.to_path_buf(),
            file: open_for_append(&path)?,
            path,
            buf: Vec::with_capacity(FLUSH_AT + MAX_LINE),
            size: 0,
            max_size: policy.max_size.0,
            max_files: policy.max_files.max(1),
            rotated: 0,
            torn: false,
        };
        sink.rotated = sink.remove_surplus()?;
        // A monitor killed mid-write may have left half a record.
        sink.end_torn_record()?;
        Ok(sink)
    }

    /// Remove files past `max_files`, left by a larger policy, which would otherwise stay
    /// forever; return the highest index kept.
    fn remove_surplus(&self) -> Result<u32, LogError> {
        let mut highest = 0;
        for index in rotated_files(&self.dir)? {
            if index >= self.max_files {
                remove_if_exists(&log_path(&self.dir, index))?;
            } else {
                highest = highest.max(index);
            }
        }
        Ok(highest)
    }

    /// Make the file end with a newline, and learn its size.
    fn end_torn_record(&mut self) -> Result<(), LogError> {
        let len = self
            .file
            .metadata()
            .map_err(io_err("inspect", &self.path))?
            .len();
        self.size = len + self.buf.len() as u64;
        if len == 0 {
            return Ok(());
        }
        let mut last = [0u8];
        self.file
            .read_exact_at(&mut last, len - 1)
            .map_err(io_err("read", &self.path))?;
        if last[0] != b'\n' {
            self.file
                .write_all(b"\n")
                .map_err(io_err("write", &self.path))?;
            self.size += 1;
        }
        Ok(())
    }

    fn record(
        &mut self,
        stamp: &str,
        stream: Stream,
        tag: u8,
        content: &[u8],
    ) -> Result<(), LogError> {
        let stream = stream.as_str().as_bytes();
        // Three spaces, the tag and the newline.
        let len = (stamp.len() + stream.len() + content.len() + 5) as u64;
        if self.size > 0 && self.size + len > self.max_size {
            self.rotate()?;
        }
        let buf = &mut self.buf;
        buf.extend_from_slice(stamp.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(stream);
        buf.extend_from_slice(&[b' ', tag, b' ']);
        buf.extend_from_slice(content);
        buf.push(b'\n');
        self.size += len;
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Write out the buffer. On failure its records are dropped rather than kept: a full disk
    /// must not grow the monitor's memory.
    fn flush(&mut self) -> Result<(), LogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.write_buf();
        self.buf.clear();
        if result.is_err() {
            self.torn = true;
        }
        result
    }

    fn write_buf(&mut self) -> Result<(), LogError> {
        if self.torn {
            self.end_torn_record()?;
            self.torn = false;
        }
        self.file
            .write_all(&self.buf)
            .map_err(io_err("write", &self.path))
    }

    /// Shift the rotated files up by one, dropping the oldest, and start a new current file.
    /// Rotation goes ahead even when the last flush failed: deleting the oldest file may be
    /// what frees the disk.
    fn rotate(&mut self) -> Result<(), LogError> {
        let flushed = self.flush();
        let keep = self.max_files - 1;
        if keep == 0 {
            remove_if_exists(&self.path)?;
        } else {
            if self.rotated >= keep {
                remove_if_exists(&log_path(&self.dir, keep))?;
            }
            for index in (1..=self.rotated.min(keep - 1)).rev() {
                rename_if_exists(&log_path(&self.dir, index), &log_path(&self.dir, index + 1))?;
            }
            rename_if_exists(&self.path, &log_path(&self.dir, 1))?;
            self.rotated = (self.rotated + 1).min(keep);
        }
        // Only now, after the old file's last write and its rename, may a new one appear:
        // followers rely on this order.
        self.file = open_for_append(&self.path)?;
        self.size = 0;
        self.torn = false;
        flushed
    }
}

fn open_for_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(io_err("open", path))
}

fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// A gap left by a crash in the middle of an earlier rotation is not an error.
fn rename_if_exists(from: &Path, to: &Path) -> Result<(), LogError> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rotate", from)(e)),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Reader

/// One parsed line of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub time: SystemTime,
    pub stream: Stream,
    /// A `P` piece: the line goes on in the next record of the same stream.
    pub partial: bool,
    pub content: Vec<u8>,
}

impl Record {
    /// Parse one line, without its newline. Tags after the first (`F:x`), which the CRI
    /// reserves for extensions, are accepted and ignored, as kubelet does.
    pub fn parse(line: &[u8]) -> Result<Record, LogError> {
        let mut fields = line.splitn(4, |&b| b == b' ');
        let (Some(time), Some(stream), Some(tag), Some(content)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed(
                line,
                "expected `<time> <stream> <F|P> <content>`",
            ));
        };
        Ok(Record {
            time: parse_time(line, time)?,
            stream: Stream::parse(stream)
                .ok_or_else(|| malformed(line, "the stream is neither stdout nor stderr"))?,
            partial: parse_tag(line, tag)?,
            content: content.to_vec(),
        })
    }
}

fn parse_time(line: &[u8], time: &[u8]) -> Result<SystemTime, LogError> {
    let text =
        std::str::from_utf8(time).map_err(|_| malformed(line, "the timestamp is not text"))?;
    humantime::parse_rfc3339(text)
        .map_err(|e| malformed(line, format!("the timestamp is not RFC 3339 UTC: {e}")))
}

fn parse_tag(line: &[u8], tag: &[u8]) -> Result<bool, LogError> {
    match tag.split(|&b| b == b':').next() {
        Some(b"F") => Ok(false),
        Some(b"P") => Ok(true),
        _ => Err(malformed(line, "the tag is neither F nor P")),
    }
}

/// Device and inode: what stays the same when a file is renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

struct LogFile {
    file: File,
    id: FileId,
    path: PathBuf,
}

impl LogFile {
    /// None when there is no such file (yet, or any more).
    fn open(path: &Path) -> Result<Option<LogFile>, LogError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", path)(e)),
        };
        // fstat, not stat: the name may point elsewhere by now.
        let meta = file.metadata().map_err(io_err("inspect", path))?;
        Ok(Some(LogFile {
            file,
            id: FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            },
            path: path.to_path_buf(),
        }))
    }
}

/// The log files of `dir`, newest first, each once, stopping before the file `stop_at`.
///
/// Names are opened newest first: a rotation during the walk only moves files to higher
/// numbers, where the walk still finds them (an inode seen twice is kept once).
fn snapshot(dir: &Path, stop_at: Option<FileId>) -> Result<Vec<LogFile>, LogError> {
    let highest = rotated_files(dir)?.into_iter().max().unwrap_or(0);
    let mut files: Vec<LogFile> = Vec::new();
    let mut index = 0u32;
    loop {
        match LogFile::open(&log_path(dir, index))? {
            Some(log) if Some(log.id) == stop_at => break,
            Some(log) if !files.iter().any(|f| f.id == log.id) => files.push(log),
            Some(_) => {}
            None if index >= highest => break,
            None => {}
        }
        match index.checked_add(1) {
            Some(next) => index = next,
            None => break,
        }
    }
    Ok(files)
}

/// An open log file and the start of a line not yet complete in it.
struct Held {
    log: LogFile,
    partial: Vec<u8>,
}

impl Held {
    fn new(log: LogFile) -> Held {
        Held {
            log,
            partial: Vec::new(),
        }
    }

    /// Read to the end; return the complete lines, keeping an incomplete last one for later
    /// unless the file is `complete` (a rotated file ends where it ends).
    fn read_lines(&mut self, complete: bool) -> Result<Vec<u8>, LogError> {
        let start = self.partial.len();
        self.log
            .file
            .read_to_end(&mut self.partial)
            .map_err(io_err("read", &self.log.path))?;
        let cut = if complete {
            self.partial.len()
        } else {
            // Only the new bytes can hold a newline: `partial` had none.
            self.partial[start..]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| start + i + 1)
        };
        let rest = self.partial.split_off(cut);
        Ok(std::mem::replace(&mut self.partial, rest))
    }
}

/// Lines of `text`, without their newlines; an empty text has none.
fn lines(text: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    text.split_inclusive(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\n").unwrap_or(line))
}

/// Malformed lines are skipped and counted rather than failing the read: one torn line (a
/// crash, a full disk) must not hide the rest of a container's output.
fn parse_into(text: &[u8], out: &mut Vec<Record>, malformed: &mut u64) {
    for line in lines(text) {
        match Record::parse(line) {
            Ok(record) => out.push(record),
            Err(_) => *malformed += 1,
        }
    }
}

/// A reader's position in a container's logs: just after the last record it returned.
pub struct Cursor {
    dir: PathBuf,
    held: Option<Held>,
    malformed: u64,
}

impl Cursor {
    /// A cursor before any record: the first `read_new` returns everything on disk.
    pub fn at_start(dir: &Path) -> Cursor {
        Cursor {
            dir: dir.to_path_buf(),
            held: None,
            malformed: 0,
        }
    }

    /// How many malformed lines were skipped so far (including by `tail`).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Every record written since the last call, in order, following rotations.
    ///
    /// After an I/O error the records of that call may be lost; the cursor stays usable.
    pub fn read_new(&mut self) -> Result<Vec<Record>, LogError> {
        let mut out = Vec::new();
        let current = LogFile::open(&self.dir.join(CURRENT))?;
        let replaced = match (&self.held, &current) {
            (Some(held), Some(current)) => held.log.id != current.id,
            (None, Some(_)) => true,
            // Between a rotation's rename and the new file's creation, or no logs yet.
            (_, None) => false,
        };
        if let Some(held) = &mut self.held {
            // When `replaced`, the held file has had its last write: read it all.
            let text = held.read_lines(replaced)?;
            parse_into(&text, &mut out, &mut self.malformed);
        }
        if replaced {
            let stop_at = self.held.as_ref().map(|held| held.log.id);
            let newer = snapshot(&self.dir, stop_at)?;
            self.adopt(newer, &mut out)?;
        }
        Ok(out)
    }

    /// Read `files` (newest first, all newer than the held one) from the oldest, and hold
    /// the newest.
    fn adopt(&mut self, files: Vec<LogFile>, out: &mut Vec<Record>) -> Result<(), LogError> {
        let mut files = files.into_iter();
        let Some(newest) = files.next() else {
            return Ok(());
        };
        for log in files.rev() {
            let text = Held::new(log).read_lines(true)?;
            parse_into(&text, out, &mut self.malformed);
        }
        let mut held = Held::new(newest);
        let text = held.read_lines(false)?;
        parse_into(&text, out, &mut self.malformed);
        self.held = Some(held);
        Ok(())
    }
}

/// The last `n` lines of the logs in `dir` across rotated files (`None`: all), oldest first,
/// and a cursor just after them. A line cut into `P` pieces counts once and comes whole, so
/// the output never starts in the middle of a line; an incomplete line at the very end
/// counts as a line. A missing `dir` has no records.
pub fn tail(dir: &Path, n: Option<usize>) -> Result<(Vec<Record>, Cursor), LogError> {
    let mut cursor = Cursor::at_start(dir);
    let mut files = snapshot(dir, None)?.into_iter();
    let Some(newest) = files.next() else {
        return Ok((Vec::new(), cursor));
    };
    let mut held = Held::new(newest);
    let newest_text = held.read_lines(false)?;
    cursor.held = Some(held);
    let records = match n {
        None => all_records(files, &newest_text, &mut cursor.malformed)?,
        Some(n) => last_records(n, files, newest_text, &mut cursor.malformed)?,
    };
    Ok((records, cursor))
}

fn all_records(
    older: impl DoubleEndedIterator<Item = LogFile>,
    newest_text: &[u8],
    malformed: &mut u64,
) -> Result<Vec<Record>, LogError> {
    let mut records = Vec::new();
    for log in older.rev() {
        let text = Held::new(log).read_lines(true)?;
        parse_into(&text, &mut records, malformed);
    }
    parse_into(newest_text, &mut records, malformed);
    Ok(records)
}

/// Parses from the end and reads older files only while lines are still wanted.
fn last_records(
    n: usize,
    mut older: impl Iterator<Item = LogFile>,
    newest_text: Vec<u8>,
    malformed: &mut u64,
) -> Result<Vec<Record>, LogError> {
    let mut picker = TailPicker::new(n);
    let mut text = newest_text;
    loop {
        picker.offer_text(&text, malformed);
        if picker.done() {
            break;
        }
        match older.next() {
            Some(log) => text = Held::new(log).read_lines(true)?,
            None => break,
        }
    }
    Ok(picker.into_records())
}

/// Picks the last lines from records offered newest first. A line is a run of `P` records of
/// one stream and the `F` that ends it; the other stream's records may sit in between.
struct TailPicker {
    wanted: usize,
    lines: usize,
    /// Per stream, whether the line being walked through (backwards) is picked.
    open: [Option<bool>; 2],
    picked: Vec<Record>,
}

impl TailPicker {
    fn new(wanted: usize) -> TailPicker {
        TailPicker {
            wanted,
            lines: 0,
            open: [None, None],
            picked: Vec::new(),
        }
    }

    /// Enough lines, and no picked line still missing its first pieces.
    fn done(&self) -> bool {
        self.lines >= self.wanted && !self.open.contains(&Some(true))
    }

    fn offer_text(&mut self, text: &[u8], malformed: &mut u64) {
        for line in lines(text).rev() {
            if self.done() {
                return;
            }
            match Record::parse(line) {
                Ok(record) => self.offer(record),
                Err(_) => *malformed += 1,
            }
        }
    }

    fn offer(&mut self, record: Record) {
        let stream = record.stream.index();
        let keep = match self.open[stream] {
            Some(keep) if record.partial => keep,
            // An `F`, or trailing `P`s with no `F` yet: the end of a line.
            _ => self.start_line(),
        };
        self.open[stream] = Some(keep);
        if keep {
            self.picked.push(record);
        }
    }

    fn start_line(&mut self) -> bool {
        let keep = self.lines < self.wanted;
        if keep {
            self.lines += 1;
        }
        keep
    }

    fn into_records(mut self) -> Vec<Record> {
        self.picked.reverse();
        self.picked
    }
}

/// `logs -f`: pass every new record to `sink`, polling every `poll`, until `stop` says so;
/// then read once more, so output written before the stop condition (a container's exit)
/// is not cut off.
pub fn follow(
    cursor: &mut Cursor,
    poll: Duration,
    mut stop: impl FnMut() -> bool,
    mut sink: impl FnMut(&Record) -> io::Result<()>,
) -> Result<(), LogError> {
    loop {
        let last = stop();
        for record in cursor.read_new()? {
            sink(&record).map_err(|source| LogError::Output { source })?;
        }
        if last {
            return Ok(());
        }
        std::thread::sleep(poll);
    }
}

/// Renders records for a terminal: `P` pieces run on, `F` ends the line. With timestamps,
/// each line is prefixed by the time of its first piece.
pub struct Render {
    timestamps: bool,
    /// Per stream, whether the last record was a `P` piece.
    mid_line: [bool; 2],
    stamp: String,
}

impl Render {
    pub fn new(timestamps: bool) -> Render {
        Render {
            timestamps,
            mid_line: [false; 2],
            stamp: String::new(),
        }
    }

    pub fn render(&mut self, record: &Record, out: &mut impl Write) -> io::Result<()> {
        let stream = record.stream.index();
        if self.timestamps && !self.mid_line[stream] {
            self.stamp.clear();
            format_time(record.time, &mut self.stamp);
            self.stamp.push(' ');
            out.write_all(self.stamp.as_bytes())?;
        }
        out.write_all(&record.content)?;
        if !record.partial {
            out.write_all(b"\n")?;
        }
        self.mid_line[stream] = record.partial;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::size::ByteSize;
    use proptest::prelude::*;

    const STAMP: &str = "2026-11-28T08:15:03.123456789Z";

    fn at() -> SystemTime {
        humantime::parse_rfc3339(STAMP).expect("test timestamp")
    }

    fn policy(max_size: u64, max_files: u32) -> LogPolicy {
        LogPolicy {
            max_size: ByteSize(max_size),
            max_files,
        }
    }

    /// A record of `content` is 41 bytes of framing plus the content.
    fn content_for(record_len: usize, n: usize) -> String {
        let digits = format!("{n}");
        format!("{digits}{}", "x".repeat(record_len - 41 - digits.len()))
    }

    fn file(dir: &Path, index: u32) -> String {
        fs::read_to_string(log_path(dir, index)).expect("read log file")
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn contents(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.content).into_owned())
            .collect()
    }

    fn read_everything(dir: &Path) -> Vec<Record> {
        tail(dir, None).expect("tail").0
    }

    /// Join `P` pieces: the lines of one stream.
    fn joined(records: &[Record], stream: Stream) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        let mut line = Vec::new();
        for record in records.iter().filter(|r| r.stream == stream) {
            line.extend_from_slice(&record.content);
            if !record.partial {
                lines.push(std::mem::take(&mut line));
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }

    fn write_lines(writer: &mut LogWriter, from: usize, to: usize, record_len: usize) {
        for n in from..to {
            let line = format!("{}\n", content_for(record_len, n));
            writer
                .write(Stream::Stdout, line.as_bytes(), at())
                .expect("write");
        }
    }

    #[test]
    fn lines_split_across_writes_are_joined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), LogPolicy::default()).expect("open");
        for chunk in ["hel", "lo\nwor", "ld\n\n", "x y  z\r\n"] {
            writer
                .write(Stream::Stdout, chunk.as_bytes(), at())
                .expect("write");
        }
        assert_eq!(
            file(dir.path(), 0),
            format!(
                "{STAMP} stdout F hello\n{STAMP} stdout F world\n{STAMP} stdout F \n\
                 {STAMP} stdout F x y  z\r\n"
            )
        );
        let records = read_everything(dir.path());
        assert_eq!(contents(&records), ["hello", "world", "", "x y  z\r"]);
        assert!(records.iter().all(|r| r.time == at() && !r.partial));
    }

    #[test]
    fn long_lines_become_partial_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), LogPolicy::default()).expect("open");
        let exact = vec![b'a'; MAX_LINE];
        let double = vec![b'b'; 2 * MAX_LINE];
        let long = vec![b'c'; 2 * MAX_LINE + 5];
        for line in [&exact, &double, &long] {
            let mut bytes = line.clone();
            bytes.push(b'\n');
            writer.write(Stream::Stdout, &bytes, at()).expect("write");
        }
        let records = read_everything(dir.path());
        let shape: Vec<(bool, usize)> = records
            .iter()
            .map(|r| (r.partial, r.content.len()))
            .collect();
        assert_eq!(
            shape,
            [
                (false, MAX_LINE),
                (true, MAX_LINE),
                (false, MAX_LINE),
                (true, MAX_LINE),
                (true, MAX_LINE),
                (false, 5),
            ]
        );
        assert_eq!(joined(&records, Stream::Stdout), [exact, double, long]);
    }

    #[test]
    fn an_unfinished_line_is_cut_once_it_exceeds_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), LogPolicy::default()).expect("open");
        writer
            .write(Stream::Stderr, &vec![b'a'; MAX_LINE], at())
            .expect("write");
        assert_eq!(
            file(dir.path(), 0),
            "",
            "a full piece waits: the newline may come next"
        );
        writer.write(Stream::Stderr, b"b", at()).expect("write");
        let records = read_everything(dir.path());
        assert_eq!(records.len(), 1);
        assert!(records[0].partial);
        writer.write(Stream::Stderr, b"c\n", at()).expect("write");
        let records = read_everything(dir.path());
        assert_eq!(contents(&records[1..]), ["bc"]);
        assert!(!records[1].partial);
    }

    #[test]
    fn streams_keep_their_own_unfinished_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), LogPolicy::default()).expect("open");
        writer
            .write(Stream::Stdout, b"out 1 ", at())
            .expect("write");
        writer
            .write(Stream::Stderr, b"err 1\nerr ", at())
            .expect("write");
        writer
            .write(Stream::Stdout, b"end\nout 2\n", at())
            .expect("write");
        writer.write(Stream::Stderr, b"2\n", at()).expect("write");
        let records = read_everything(dir.path());
        let seen: Vec<(Stream, String)> = records
            .iter()
            .map(|r| (r.stream, String::from_utf8_lossy(&r.content).into_owned()))
            .collect();
        assert_eq!(
            seen,
            [
                (Stream::Stderr, "err 1".to_string()),
                (Stream::Stdout, "out 1 end".to_string()),
                (Stream::Stdout, "out 2".to_string()),
                (Stream::Stderr, "err 2".to_string()),
            ]
        );
    }

    #[test]
    fn finish_writes_what_lacks_a_final_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), LogPolicy::default()).expect("open");
        writer.write(Stream::Stdout, b"a\nb", at()).expect("write");
        writer.write(Stream::Stderr, b"c", at()).expect("write");
        writer.finish(at()).expect("finish");
        writer.finish(at()).expect("finish twice");
        let records = read_everything(dir.path());
        assert_eq!(contents(&records), ["a", "b", "c"]);
        assert!(records.iter().all(|r| !r.partial));
    }

    #[test]
    fn rotates_at_the_limit_and_drops_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), policy(300, 3)).expect("open");
        write_lines(&mut writer, 0, 3, 100);
        assert_eq!(writer.current_size(), 300, "exactly full is not over");
        assert_eq!(names(dir.path()), ["container.log"]);
        write_lines(&mut writer, 3, 10, 100);
        assert_eq!(
            names(dir.path()),
            ["container.log", "container.log.1", "container.log.2"]
        );
        let first = |index| file(dir.path(), index).lines().next().map(str::to_string);
        assert!(first(0).is_some_and(|l| l.ends_with(&content_for(100, 9))));
        assert!(first(1).is_some_and(|l| l.ends_with(&content_for(100, 6))));
        assert!(first(2).is_some_and(|l| l.ends_with(&content_for(100, 3))));
        for index in 1..=2 {
            assert_eq!(file(dir.path(), index).len(), 300);
        }
        let kept: Vec<String> = (3..10).map(|n| content_for(100, n)).collect();
        assert_eq!(contents(&read_everything(dir.path())), kept);
    }

    #[test]
    fn a_record_larger_than_the_limit_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), policy(50, 2)).expect("open");
        write_lines(&mut writer, 0, 1, 100);
        assert_eq!(
            names(dir.path()),
            ["container.log"],
            "an empty file is not rotated"
        );
        write_lines(&mut writer, 1, 3, 100);
        assert_eq!(names(dir.path()), ["container.log", "container.log.1"]);
        assert_eq!(file(dir.path(), 0).len(), 100);
        assert_eq!(file(dir.path(), 1).len(), 100);
    }

    #[test]
    fn one_file_means_rotation_starts_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), policy(250, 1)).expect("open");
        write_lines(&mut writer, 0, 5, 100);
        assert_eq!(names(dir.path()), ["container.log"]);
        assert_eq!(
            contents(&read_everything(dir.path())),
            [content_for(100, 4)]
        );
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), policy(300, 5)).expect("open");
        write_lines(&mut writer, 0, 2, 100);
        drop(writer);
        let mut writer = LogWriter::open(dir.path(), policy(300, 5)).expect("reopen");
        assert_eq!(writer.current_size(), 200);
        write_lines(&mut writer, 2, 3, 100);
        assert_eq!(names(dir.path()), ["container.log"]);
        write_lines(&mut writer, 3, 4, 100);
        assert_eq!(names(dir.path()), ["container.log", "container.log.1"]);
        let all: Vec<String> = (0..4).map(|n| content_for(100, n)).collect();
        assert_eq!(contents(&read_everything(dir.path())), all);
    }

    #[test]
    fn reopening_ends_a_torn_record_and_drops_surplus_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), policy(100, 5)).expect("open");
        write_lines(&mut writer, 0, 5, 100);
        drop(writer);
        let mut current = OpenOptions::new()
            .append(true)
            .open(log_path(dir.path(), 0))
            .expect("open");
        current.write_all(b"2026-11-2").expect("tear");
        let mut writer = LogWriter::open(dir.path(), policy(1000, 2)).expect("reopen");
        assert_eq!(names(dir.path()), ["container.log", "container.log.1"]);
        writer
            .write(Stream::Stdout, b"after\n", at())
            .expect("write");
        let (records, cursor) = tail(dir.path(), None).expect("tail");
        assert_eq!(cursor.malformed(), 1);
        assert_eq!(
            contents(&records),
            [
                content_for(100, 3),
                content_for(100, 4),
                "after".to_string()
            ]
        );
    }

    /// Ten 100-byte records r0…r9 in files of three, two rotated files kept: r3…r9 remain.
    fn rotated_logs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), policy(300, 3)).expect("open");
        write_lines(&mut writer, 0, 10, 100);
        dir
    }

    fn range(from: usize, to: usize) -> Vec<String> {
        (from..to).map(|n| content_for(100, n)).collect()
    }

    #[test]
    fn tail_counts_across_rotated_files() {
        let dir = rotated_logs();
        let last = |n| contents(&tail(dir.path(), n).expect("tail").0);
        assert_eq!(last(None), range(3, 10));
        assert_eq!(last(Some(100)), range(3, 10));
        assert_eq!(last(Some(7)), range(3, 10));
        assert_eq!(last(Some(0)), Vec::<String>::new());
        assert_eq!(last(Some(1)), range(9, 10));
        assert_eq!(last(Some(2)), range(8, 10));
        assert_eq!(last(Some(5)), range(5, 10));
    }

    #[test]
    fn tail_of_a_missing_or_empty_directory_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("never");
        let (records, mut cursor) = tail(&missing, Some(10)).expect("tail");
        assert!(records.is_empty());
        assert!(cursor.read_new().expect("read").is_empty());
        let mut writer = LogWriter::open(&missing, LogPolicy::default()).expect("open");
        writer
            .write(Stream::Stdout, b"first\n", at())
            .expect("write");
        assert_eq!(contents(&cursor.read_new().expect("read")), ["first"]);
    }

    #[test]
    fn tail_keeps_lines_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), LogPolicy::default()).expect("open");
        writer
            .write(Stream::Stdout, b"before\n", at())
            .expect("write");
        writer
            .write(Stream::Stdout, &vec![b'o'; MAX_LINE + 1], at())
            .expect("write");
        writer
            .write(Stream::Stderr, b"between\n", at())
            .expect("write");
        writer.write(Stream::Stdout, b"\n", at()).expect("write");
        writer
            .write(Stream::Stderr, &vec![b'e'; MAX_LINE + 3], at())
            .expect("write");

        let shape = |n| {
            let records = tail(dir.path(), Some(n)).expect("tail").0;
            records
                .iter()
                .map(|r| (r.stream, r.partial, r.content.len()))
                .collect::<Vec<_>>()
        };
        let unfinished = (Stream::Stderr, true, MAX_LINE);
        assert_eq!(shape(1), [unfinished]);
        let long_stdout = [(Stream::Stdout, true, MAX_LINE), (Stream::Stdout, false, 1)];
        assert_eq!(shape(2), [long_stdout[0], long_stdout[1], unfinished]);
        assert_eq!(
            shape(3),
            [
                long_stdout[0],
                (Stream::Stderr, false, 7),
                long_stdout[1],
                unfinished
            ]
        );
        assert_eq!(shape(4).len(), 5);
    }

    #[test]
    fn cursor_after_tail_returns_only_new_records() {
        let dir = rotated_logs();
        let (_, mut cursor) = tail(dir.path(), Some(0)).expect("tail");
        assert!(cursor.read_new().expect("read").is_empty());
        let mut writer = LogWriter::open(dir.path(), policy(300, 3)).expect("open");
        write_lines(&mut writer, 10, 11, 100);
        assert_eq!(contents(&cursor.read_new().expect("read")), range(10, 11));
        assert!(cursor.read_new().expect("read").is_empty());
    }

    /// Write r`from`…r`to` in 100-byte records with the given policy, then read with `cursor`.
    fn write_then_read(dir: &Path, cursor: &mut Cursor, from: usize, to: usize) -> Vec<String> {
        let mut writer = LogWriter::open(dir, policy(300, 4)).expect("open");
        write_lines(&mut writer, from, to, 100);
        contents(&cursor.read_new().expect("read"))
    }

    #[test]
    fn cursor_follows_one_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cursor = Cursor::at_start(dir.path());
        assert_eq!(write_then_read(dir.path(), &mut cursor, 0, 2), range(0, 2));
        // r2 fills the file, r3 rotates.
        assert_eq!(write_then_read(dir.path(), &mut cursor, 2, 4), range(2, 4));
        assert_eq!(write_then_read(dir.path(), &mut cursor, 4, 5), range(4, 5));
    }

    #[test]
    fn cursor_follows_several_rotations_between_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cursor = Cursor::at_start(dir.path());
        assert_eq!(write_then_read(dir.path(), &mut cursor, 0, 1), range(0, 1));
        // r3 and r6 rotate: two rotations, the held file is now .2.
        assert_eq!(write_then_read(dir.path(), &mut cursor, 1, 7), range(1, 7));
        // Three more: the held file is now .3, the oldest kept.
        assert_eq!(
            write_then_read(dir.path(), &mut cursor, 7, 16),
            range(7, 16)
        );
    }

    #[test]
    fn cursor_behind_by_more_than_the_kept_files_loses_only_the_deleted_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cursor = Cursor::at_start(dir.path());
        assert_eq!(write_then_read(dir.path(), &mut cursor, 0, 1), range(0, 1));
        // Files: r0-2, r3-5, …, r15-17, r18; four kept (r9…r18). The held one (r0-2) was
        // deleted but is still open, r3…r8 are gone.
        let expected = [range(1, 3), range(9, 19)].concat();
        assert_eq!(write_then_read(dir.path(), &mut cursor, 1, 19), expected);
    }

    #[test]
    fn cursor_waits_for_the_end_of_a_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(log_path(dir.path(), 0), "").expect("create");
        let (_, mut cursor) = tail(dir.path(), None).expect("tail");
        let mut current = OpenOptions::new()
            .append(true)
            .open(log_path(dir.path(), 0))
            .expect("open");
        current.write_all(STAMP.as_bytes()).expect("write");
        current.write_all(b" stdout F hal").expect("write");
        assert!(cursor.read_new().expect("read").is_empty());
        current.write_all(b"f\n").expect("write");
        assert_eq!(contents(&cursor.read_new().expect("read")), ["half"]);
    }

    #[test]
    fn cursor_keeps_up_with_a_concurrent_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let total = 20_000;
        let writer_dir = dir.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            let mut writer = LogWriter::open(&writer_dir, policy(4096, 10_000)).expect("open");
            for n in 0..total {
                let line = format!("line {n}\n");
                writer
                    .write(Stream::Stdout, line.as_bytes(), SystemTime::now())
                    .expect("write");
            }
        });
        let mut cursor = Cursor::at_start(dir.path());
        let mut seen = Vec::new();
        let mut done = false;
        while !done {
            done = writer.is_finished();
            seen.extend(contents(&cursor.read_new().expect("read")));
        }
        writer.join().expect("writer thread");
        let expected: Vec<String> = (0..total).map(|n| format!("line {n}")).collect();
        assert_eq!(seen.len(), expected.len());
        assert!(seen == expected, "records lost, repeated or reordered");
        assert!(names(dir.path()).len() > 10, "the writer rotated");
    }

    #[test]
    fn follow_reads_once_more_after_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), LogPolicy::default()).expect("open");
        let (_, mut cursor) = tail(dir.path(), None).expect("tail");
        let mut polls = 0;
        let mut seen = Vec::new();
        follow(
            &mut cursor,
            Duration::from_millis(1),
            || {
                polls += 1;
                let line = format!("poll {polls}\n");
                writer
                    .write(Stream::Stdout, line.as_bytes(), at())
                    .expect("write");
                polls == 3
            },
            |record| {
                seen.push(String::from_utf8_lossy(&record.content).into_owned());
                Ok(())
            },
        )
        .expect("follow");
        assert_eq!(seen, ["poll 1", "poll 2", "poll 3"]);
    }

    #[test]
    fn follow_reports_a_failing_sink() {
        let dir = rotated_logs();
        let mut cursor = Cursor::at_start(dir.path());
        let result = follow(
            &mut cursor,
            Duration::from_millis(1),
            || true,
            |_| Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        );
        assert!(
            matches!(result, Err(LogError::Output { source }) if source.kind() == io::ErrorKind::BrokenPipe)
        );
    }

    #[test]
    fn malformed_lines_are_rejected_with_a_reason() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "expected"),
            (b"2026-11-28T08:15:03.123456789Z stdout F", "expected"),
            (b"yesterday stdout F hello", "RFC 3339"),
            (
                b"2026-11-28T08:15:03.123456789+01:00 stdout F x",
                "RFC 3339",
            ),
            (b"2026-11-28T08:15:03.123456789Z stdin F hello", "stream"),
            (b"2026-11-28T08:15:03.123456789Z stdout X hello", "tag"),
            (b"\xff\xfe stdout F hello", "not text"),
        ];
        for (line, reason) in cases {
            let err = Record::parse(line).expect_err("malformed");
            let message = err.to_string();
            assert!(
                message.contains(reason),
                "{message:?} should mention {reason:?}"
            );
        }
        let ok = Record::parse(b"2026-11-28T08:15:03.123456789Z stderr P:x a b ").expect("valid");
        assert_eq!(
            ok,
            Record {
                time: at(),
                stream: Stream::Stderr,
                partial: true,
                content: b"a b ".to_vec(),
            }
        );
    }

    #[test]
    fn readers_skip_and_count_malformed_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!("garbage\n\n{STAMP} stdout F one\n{STAMP} stdout F two\n");
        fs::write(log_path(dir.path(), 0), text).expect("write");
        let (records, cursor) = tail(dir.path(), None).expect("tail");
        assert_eq!(contents(&records), ["one", "two"]);
        assert_eq!(cursor.malformed(), 2);
        // "one" is read too: "two" could have been the end of a line cut into pieces.
        let (records, cursor) = tail(dir.path(), Some(1)).expect("tail");
        assert_eq!(contents(&records), ["two"]);
        assert_eq!(cursor.malformed(), 0, "lines not needed are not parsed");
    }

    #[test]
    fn render_joins_pieces_and_stamps_lines() {
        let record = |stream, partial, content: &str| Record {
            time: at(),
            stream,
            partial,
            content: content.as_bytes().to_vec(),
        };
        let records = [
            record(Stream::Stdout, true, "a"),
            record(Stream::Stderr, false, "err"),
            record(Stream::Stdout, false, "b"),
        ];
        let mut plain = Render::new(false);
        let mut stamped = Render::new(true);
        let (mut out, mut out_stamped) = (Vec::new(), Vec::new());
        for record in &records {
            plain.render(record, &mut out).expect("render");
            stamped.render(record, &mut out_stamped).expect("render");
        }
        assert_eq!(String::from_utf8_lossy(&out), "aerr\nb\n");
        assert_eq!(
            String::from_utf8_lossy(&out_stamped),
            format!("{STAMP} a{STAMP} err\nb\n")
        );
    }

    #[test]
    fn times_outside_the_formattable_range_are_clamped() {
        let mut text = String::new();
        format_time(UNIX_EPOCH - Duration::from_secs(1), &mut text);
        assert_eq!(text, "1970-01-01T00:00:00.000000000Z");
    }

    fn stream_text() -> impl Strategy<Value = Vec<u8>> {
        let short = proptest::collection::vec(
            any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
            0..60,
        );
        let long = (MAX_LINE - 2..2 * MAX_LINE + 3).prop_map(|len| vec![b'L'; len]);
        let line = prop_oneof![8 => short, 1 => long];
        (proptest::collection::vec(line, 0..12), any::<bool>()).prop_map(|(lines, end_newline)| {
            let mut text = lines.join(&b'\n');
            if end_newline && !lines.is_empty() {
                text.push(b'\n');
            }
            text
        })
    }

    /// The lines a stream's bytes hold: what follows the last newline is one too.
    fn expected_lines(text: &[u8]) -> Vec<Vec<u8>> {
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        if text.is_empty() {
            return Vec::new();
        }
        body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn lines_survive_random_chunks_and_rotation(
            out in stream_text(),
            err in stream_text(),
            cuts in proptest::collection::vec((any::<bool>(), 1usize..5000), 1..40),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut writer = LogWriter::open(dir.path(), policy(4096, 100_000)).expect("open");
            let mut cursor = Cursor::at_start(dir.path());
            let mut followed = Vec::new();
            let mut rest = [out.as_slice(), err.as_slice()];
            let mut cuts = cuts.iter().cycle();
            while rest.iter().any(|r| !r.is_empty()) {
                let (pick_err, len) = cuts.next().copied().unwrap_or((false, 1));
                let (stream, index) = if pick_err && !rest[1].is_empty() || rest[0].is_empty() {
                    (Stream::Stderr, 1)
                } else {
                    (Stream::Stdout, 0)
                };
                let (chunk, tail_bytes) = rest[index].split_at(len.min(rest[index].len()));
                writer.write(stream, chunk, at()).expect("write");
                rest[index] = tail_bytes;
                followed.extend(cursor.read_new().expect("read"));
            }
            writer.finish(at()).expect("finish");
            followed.extend(cursor.read_new().expect("read"));
            let stored = read_everything(dir.path());
            prop_assert_eq!(&stored, &followed);
            prop_assert!(stored.iter().all(|r| r.content.len() <= MAX_LINE));
            prop_assert_eq!(joined(&stored, Stream::Stdout), expected_lines(&out));
            prop_assert_eq!(joined(&stored, Stream::Stderr), expected_lines(&err));
        }

        #[test]
        fn find_newline_agrees_with_position(
            bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..40),
        ) {
            prop_assert_eq!(find_newline(&bytes), bytes.iter().position(|&b| b == b'\n'));
        }

        #[test]
        fn parsing_never_panics(line in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Record::parse(&line);
        }
    }

    /// `cargo test --release --lib runtime::logfile -- --ignored --nocapture`
    #[test]
    #[ignore = "benchmark"]
    fn writer_throughput() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = LogWriter::open(dir.path(), LogPolicy::default()).expect("open");
        let line = [b"x".repeat(99), b"\n".to_vec()].concat();
        let chunk = line.repeat(655); // about a 64 KiB pipe read
        let total: usize = 100 << 20;
        let started = std::time::Instant::now();
        let mut written = 0;
        while written < total {
            writer
                .write(Stream::Stdout, &chunk, SystemTime::now())
                .expect("write");
            written += chunk.len();
        }
        writer.finish(SystemTime::now()).expect("finish");
        let elapsed = started.elapsed();
        let mb = written as f64 / 1e6;
        println!(
            "logfile writer: {mb:.0} MB of 100-byte lines in {elapsed:?}: {:.0} MB/s",
            mb / elapsed.as_secs_f64()
        );
    }
}
