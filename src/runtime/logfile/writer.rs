//! The monitor's side: a container's stdout and stderr into size-rotated log files.
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{FULL, MAX_LINE, PARTIAL, Stream, format_time, log_path, rotated_files};
use crate::spec::model::LogPolicy;

/// Past this many buffered bytes the writer writes them out even within one `write` call,
/// so a huge chunk does not grow the monitor's memory.
const FLUSH_AT: usize = 64 * 1024;

/// Logs may contain secrets: not world-readable.
const FILE_MODE: u32 = 0o640;

#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a container's output as CRI records into size-rotated files. Single-threaded and
/// synchronous: the monitor calls [`write`](Self::write) with each chunk read from a pipe and
/// [`finish`](Self::finish) once both pipes are closed — before recording the exit, so that
/// a follower stopping at the exit (`berth run`) reads the last line too.
///
/// An error never leaves the writer unusable: the records of that call are lost, and the next
/// write first ends any record left torn in the file, so the framing survives.
pub(crate) struct LogWriter {
    sink: Sink,
    pending: [Vec<u8>; 2],
    stamp: Stamp,
}

impl LogWriter {
    /// Open `dir/container.log` for appending (creating `dir`), counting what it already
    /// holds: a restarted monitor continues the same files. A `max_files` of 0 means 1.
    pub(crate) fn open(dir: &Path, policy: LogPolicy) -> Result<LogWriter, WriteError> {
        Ok(LogWriter {
            sink: Sink::open(dir, policy)?,
            pending: [Vec::new(), Vec::new()],
            stamp: Stamp::default(),
        })
    }

    /// Log `bytes` read from `stream` at `now`: every complete line becomes a record, an
    /// incomplete one waits for the next call (or is cut into `P` pieces past [`MAX_LINE`]).
    pub(crate) fn write(
        &mut self,
        stream: Stream,
        bytes: &[u8],
        now: SystemTime,
    ) -> Result<(), WriteError> {
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
    pub(crate) fn finish(&mut self, now: SystemTime) -> Result<(), WriteError> {
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
                result = result.and(out.emit(FULL, pending));
                pending.clear();
            }
        }
        result.and(self.sink.flush())
    }

    #[cfg(test)]
    /// Size of the current file, counting records not yet written out.
    fn current_size(&self) -> u64 {
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
    fn emit(&mut self, tag: u8, content: &[u8]) -> Result<(), WriteError> {
        self.sink.record(self.stamp, self.stream, tag, content)
    }
}

fn split_lines(out: &mut Emitter, pending: &mut Vec<u8>, bytes: &[u8]) -> Result<(), WriteError> {
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
fn push_line(out: &mut Emitter, pending: &mut Vec<u8>, line: &[u8]) -> Result<(), WriteError> {
    if pending.is_empty() && line.len() <= MAX_LINE {
        return out.emit(FULL, line);
    }
    push_fragment(out, pending, line)?;
    let result = out.emit(FULL, pending);
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
) -> Result<(), WriteError> {
    loop {
        let room = MAX_LINE - pending.len();
        if frag.len() <= room {
            pending.extend_from_slice(frag);
            return Ok(());
        }
        if pending.is_empty() {
            out.emit(PARTIAL, &frag[..MAX_LINE])?;
            frag = &frag[MAX_LINE..];
        } else {
            pending.extend_from_slice(&frag[..room]);
            frag = &frag[room..];
            let result = out.emit(PARTIAL, pending);
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
    fn open(dir: &Path, policy: LogPolicy) -> Result<Sink, WriteError> {
        // The directory itself only: a container directory deleted by hand (an orphan's) must
        // not be made again by its monitor, as a twin without records.
        match fs::create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(io_err("create directory", dir)(e));
            }
            _ => {}
        }
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
    fn remove_surplus(&self) -> Result<u32, WriteError> {
        let mut highest = 0;
        for index in rotated_files(&self.dir).map_err(io_err("list", &self.dir))? {
            if index >= self.max_files {
                remove_if_exists(&log_path(&self.dir, index))?;
            } else {
                highest = highest.max(index);
            }
        }
        Ok(highest)
    }

    /// Make the file end with a newline, and learn its size.
    fn end_torn_record(&mut self) -> Result<(), WriteError> {
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
    ) -> Result<(), WriteError> {
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
    fn flush(&mut self) -> Result<(), WriteError> {
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

    fn write_buf(&mut self) -> Result<(), WriteError> {
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
    fn rotate(&mut self) -> Result<(), WriteError> {
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

fn open_for_append(path: &Path) -> Result<File, WriteError> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(io_err("open", path))
}

fn remove_if_exists(path: &Path) -> Result<(), WriteError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// A gap left by a crash in the middle of an earlier rotation is not an error.
fn rename_if_exists(from: &Path, to: &Path) -> Result<(), WriteError> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rotate", from)(e)),
        _ => Ok(()),
    }
}
#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tail;
    use super::super::test_support::{
        STAMP, at, content_for, contents, file, joined, names, policy, read_everything, write_lines,
    };
    use super::*;

    #[test]
    fn open_makes_its_directory_but_never_its_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("logs");
        LogWriter::open(&logs, LogPolicy::default()).expect("open");
        assert!(logs.is_dir());
        let orphan = dir.path().join("deleted").join("logs");
        assert!(LogWriter::open(&orphan, LogPolicy::default()).is_err());
        assert!(!dir.path().join("deleted").exists());
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn find_newline_agrees_with_position(
            bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..40),
        ) {
            prop_assert_eq!(find_newline(&bytes), bytes.iter().position(|&b| b == b'\n'));
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
