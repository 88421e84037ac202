//! Container log files: the CRI format kubelet writes, size-rotated. The container's monitor
//! writes them (`LogWriter`, in `writer`), `berth logs` and `berth run` read them
//! ([`tail`], [`Cursor`], in `reader`); this module holds the on-disk format both sides agree
//! on, so neither side needs the other's code.
//!
//! ```text
//! <dir>/container.log      the current file, appended by the container's monitor
//! <dir>/container.log.1    the newest rotated file
//! <dir>/container.log.N    the oldest kept, N = max_files - 1
//! ```
//!
//! One record per line: `<RFC 3339 UTC time, 9 digits> <stdout|stderr> <F|P> <content>\n`.
//! Content longer than `MAX_LINE` is cut into `P` (partial) pieces ending with one `F`. The
//! format is byte-for-byte what kubelet writes, so crictl, promtail or fluent-bit can ship
//! the files unchanged.
//!
//! **Rotation and followers.** The writer finishes every write to a file before renaming it
//! and creates the new `container.log` only after the rename. A reader that finds another
//! inode at `container.log` can therefore read the file it holds to its end, then every file
//! rotated since (found by inode among `container.log.N`), then the new one: nothing is lost
//! or repeated. The limit: a reader that falls behind by `max_files - 1` rotations or more
//! loses the files deleted meanwhile, because they are gone from disk.

mod reader;
mod writer;

#[cfg(test)]
mod test_support;

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use reader::{Cursor, ReadError, Record, Render, follow, tail};
pub(crate) use writer::LogWriter;

/// Name of the file being written; rotated files add `.1`, `.2`, …
const CURRENT: &str = "container.log";

/// Longest content of one record; longer lines become `P` pieces (kubelet's limit).
const MAX_LINE: usize = 16 * 1024;

/// Tag of a record that ends its line.
const FULL: u8 = b'F';

/// Tag of a piece that the stream's next record continues.
const PARTIAL: u8 = b'P';

/// The last second humantime can format (end of year 9999).
const LAST_SECOND: u64 = 253_402_300_799;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
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

/// The rotated files present in `dir`, by index; none when `dir` does not exist. Each side
/// wraps the error in its own type, with `dir` for context.
fn rotated_files(dir: &Path) -> io::Result<Vec<u32>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        found.extend(rotated_index(&entry?.file_name()));
    }
    Ok(found)
}

/// The record timestamp, also the prefix of `berth logs --timestamps`.
fn format_time(time: SystemTime, text: &mut String) {
    let last = UNIX_EPOCH + Duration::from_secs(LAST_SECOND);
    // humantime panics before 1970 and fails after 9999; a wrong clock must not cost logs.
    let time = time.clamp(UNIX_EPOCH, last);
    let _ = write!(text, "{}", humantime::format_rfc3339_nanos(time));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::test_support::{at, joined, policy, read_everything};
    use super::*;

    #[test]
    fn times_outside_the_formattable_range_are_clamped() {
        let mut text = String::new();
        format_time(UNIX_EPOCH - Duration::from_secs(1), &mut text);
        assert_eq!(text, "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn rotated_names_are_recognised_exactly() {
        let index = |name: &str| rotated_index(std::ffi::OsStr::new(name));
        assert_eq!(index("container.log.1"), Some(1));
        assert_eq!(index("container.log.12"), Some(12));
        for other in [
            "container.log",
            "container.log.",
            "container.log.0",
            "container.log.01",
            "container.log.+1",
            "container.log.x",
            "container.log1",
            "other.log.1",
        ] {
            assert_eq!(index(other), None, "{other}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["container.log", "container.log.2", "container.log.07"] {
            fs::write(dir.path().join(name), "").expect("create");
        }
        assert_eq!(rotated_files(dir.path()).expect("list"), [2]);
        let missing = dir.path().join("never");
        assert!(rotated_files(&missing).expect("list").is_empty());
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

        /// The contract between the sides: what the writer writes, a follower reads back
        /// whole and in order, across rotations.
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
    }
}
