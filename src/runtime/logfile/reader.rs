//! The readers' side: `berth logs` (tail, follow) and `berth run`'s follower, which read a
//! container's log files while its monitor may still be writing and rotating them.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{CURRENT, FULL, PARTIAL, Stream, format_time, log_path, rotated_files};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
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

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ReadError + 'a {
    move |source| ReadError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn malformed(line: &[u8], reason: impl Into<String>) -> ReadError {
    const SHOWN: usize = 120;
    ReadError::Malformed {
        reason: reason.into(),
        line: String::from_utf8_lossy(&line[..line.len().min(SHOWN)]).into_owned(),
    }
}

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
    fn parse(line: &[u8]) -> Result<Record, ReadError> {
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

fn parse_time(line: &[u8], time: &[u8]) -> Result<SystemTime, ReadError> {
    let text =
        std::str::from_utf8(time).map_err(|_| malformed(line, "the timestamp is not text"))?;
    humantime::parse_rfc3339(text)
        .map_err(|e| malformed(line, format!("the timestamp is not RFC 3339 UTC: {e}")))
}

fn parse_tag(line: &[u8], tag: &[u8]) -> Result<bool, ReadError> {
    match tag.split(|&b| b == b':').next() {
        Some([FULL]) => Ok(false),
        Some([PARTIAL]) => Ok(true),
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
    fn open(path: &Path) -> Result<Option<LogFile>, ReadError> {
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
fn snapshot(dir: &Path, stop_at: Option<FileId>) -> Result<Vec<LogFile>, ReadError> {
    let highest = rotated_files(dir)
        .map_err(io_err("list", dir))?
        .into_iter()
        .max()
        .unwrap_or(0);
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
    fn read_lines(&mut self, complete: bool) -> Result<Vec<u8>, ReadError> {
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

    #[cfg(test)]
    /// How many malformed lines were skipped so far (including by `tail`).
    pub(crate) fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Every record written since the last call, in order, following rotations.
    ///
    /// After an I/O error the records of that call may be lost; the cursor stays usable.
    pub fn read_new(&mut self) -> Result<Vec<Record>, ReadError> {
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
    fn adopt(&mut self, files: Vec<LogFile>, out: &mut Vec<Record>) -> Result<(), ReadError> {
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
pub fn tail(dir: &Path, n: Option<usize>) -> Result<(Vec<Record>, Cursor), ReadError> {
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
) -> Result<Vec<Record>, ReadError> {
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
) -> Result<Vec<Record>, ReadError> {
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
) -> Result<(), ReadError> {
    loop {
        let last = stop();
        for record in cursor.read_new()? {
            sink(&record).map_err(|source| ReadError::Output { source })?;
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
    use std::fs::{self, OpenOptions};

    use proptest::prelude::*;

    use super::super::test_support::{
        STAMP, at, contents, names, policy, range, rotated_logs, write_lines,
    };
    use super::super::{LogWriter, MAX_LINE};
    use super::*;
    use crate::spec::model::LogPolicy;

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
            matches!(result, Err(ReadError::Output { source }) if source.kind() == io::ErrorKind::BrokenPipe)
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn parsing_never_panics(line in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Record::parse(&line);
        }
    }
}
