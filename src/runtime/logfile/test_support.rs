//! Fixtures of the writer's and the reader's tests: each side's tests check their files
//! through the other side.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use super::{LogWriter, Record, Stream, log_path, tail};
use crate::spec::model::LogPolicy;
use crate::spec::size::ByteSize;

pub(crate) const STAMP: &str = "2026-11-28T08:15:03.123456789Z";

pub(crate) fn at() -> SystemTime {
    humantime::parse_rfc3339(STAMP).expect("test timestamp")
}

pub(crate) fn policy(max_size: u64, max_files: u32) -> LogPolicy {
    LogPolicy {
        max_size: ByteSize(max_size),
        max_files,
    }
}

/// A record of `content` is 41 bytes of framing plus the content.
pub(crate) fn content_for(record_len: usize, n: usize) -> String {
    let digits = format!("{n}");
    format!("{digits}{}", "x".repeat(record_len - 41 - digits.len()))
}

/// Contents of records r`from`…r`to`, 100 bytes each.
pub(crate) fn range(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|n| content_for(100, n)).collect()
}

pub(crate) fn file(dir: &Path, index: u32) -> String {
    fs::read_to_string(log_path(dir, index)).expect("read log file")
}

pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub(crate) fn contents(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.content).into_owned())
        .collect()
}

pub(crate) fn read_everything(dir: &Path) -> Vec<Record> {
    tail(dir, None).expect("tail").0
}

/// Join `P` pieces: the lines of one stream.
pub(crate) fn joined(records: &[Record], stream: Stream) -> Vec<Vec<u8>> {
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

pub(crate) fn write_lines(writer: &mut LogWriter, from: usize, to: usize, record_len: usize) {
    for n in from..to {
        let line = format!("{}\n", content_for(record_len, n));
        writer
            .write(Stream::Stdout, line.as_bytes(), at())
            .expect("write");
    }
}

/// Ten 100-byte records r0…r9 in files of three, two rotated files kept: r3…r9 remain.
pub(crate) fn rotated_logs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut writer = LogWriter::open(dir.path(), policy(300, 3)).expect("open");
    write_lines(&mut writer, 0, 10, 100);
    dir
}
