//! `GET /containers/{id}/logs`: a container's CRI log files as dockerd serves its own, in
//! the multiplexed stream (berth gives containers no tty, so there is never a raw one):
//! `stdout`, `stderr`, `since`, `until`, `tail`, `timestamps` (RFC 3339 with nine digits,
//! dockerd's fixed form), and `follow`, which ends when the container's instance stops or
//! the client goes away.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use super::Call;
use super::stdcopy::{self, Fd};
use super::target;
use crate::api::{Body, error, streamed};
use crate::runtime::logfile::{self, Record, Render, Stream};
use crate::runtime::{Runtime, State};

/// How often a follower looks for new lines and at the container's state.
const POLL: Duration = Duration::from_millis(100);
/// A chunk of the answer: frames are gathered up to this size before being sent.
const CHUNK: usize = 64 * 1024;

/// What the query asks for.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    stdout: bool,
    stderr: bool,
    follow: bool,
    timestamps: bool,
    /// None: every line.
    tail: Option<usize>,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
}

impl Options {
    fn parse(query: &HashMap<String, String>) -> Result<Options, String> {
        let options = Options {
            stdout: target::flag(query, "stdout"),
            stderr: target::flag(query, "stderr"),
            follow: target::flag(query, "follow"),
            timestamps: target::flag(query, "timestamps"),
            // dockerd reads anything but a count (`all`, nothing, garbage) as every line.
            tail: query.get("tail").and_then(|t| t.trim().parse().ok()),
            since: timestamp(query, "since")?,
            until: timestamp(query, "until")?,
        };
        if !options.stdout && !options.stderr {
            return Err("Bad parameters: you must choose at least one stream".into());
        }
        Ok(options)
    }

    fn wanted(&self, record: &Record) -> bool {
        let stream = match record.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        stream && self.since.is_none_or(|since| record.time >= since)
    }

    fn past_until(&self, record: &Record) -> bool {
        self.until.is_some_and(|until| record.time > until)
    }
}

/// A `since`/`until` value: Unix seconds with an optional fraction (`1700000000.5`), as the
/// docker CLI sends them; 0 (or nothing) means no bound.
fn timestamp(query: &HashMap<String, String>, name: &str) -> Result<Option<SystemTime>, String> {
    let Some(text) = query.get(name).map(|t| t.trim()).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let bad = || format!("invalid value for {name}: {text:?} (expected Unix seconds)");
    let (secs, fraction) = text.split_once('.').unwrap_or((text, ""));
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: u32 = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
    if secs == 0 && nanos == 0 {
        return Ok(None);
    }
    Ok(Some(UNIX_EPOCH + Duration::new(secs, nanos)))
}

pub async fn logs(call: Call) -> Response<Body> {
    let Some(name) = call.segments.get(1) else {
        return error(StatusCode::NOT_FOUND, "no container named");
    };
    let options = match Options::parse(&target::query(&call.request)) {
        Ok(options) => options,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let record = match target::container(&call.context, name).await {
        Ok(found) => found.record,
        Err(response) => return response,
    };
    let runtime = call.context.machine.runtime.clone();
    let dir = runtime.layout().container(&record.id).logs();
    let (tx, rx) = mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let mut sender = Sender::new(tx, options.timestamps);
        if let Err(e) = produce(&runtime, &record.id, dir, &options, &mut sender) {
            sender.fail(e);
        }
    });
    let mut response = Response::new(streamed(rx));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stdcopy::multiplexed_type(&call.version)),
    );
    response
}

/// Frames records and sends them in chunks; knows when the client has gone.
struct Sender {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    render: Render,
    pending: BytesMut,
    line: Vec<u8>,
}

/// The client went away: stop reading.
struct Gone;

impl Sender {
    fn new(tx: mpsc::Sender<Result<Bytes, io::Error>>, timestamps: bool) -> Sender {
        Sender {
            tx,
            render: Render::new(timestamps),
            pending: BytesMut::new(),
            line: Vec::new(),
        }
    }

    fn add(&mut self, record: &Record) -> Result<(), Gone> {
        self.line.clear();
        // Writing into a Vec cannot fail.
        let _ = self.render.render(record, &mut self.line);
        let fd = match record.stream {
            Stream::Stdout => Fd::Stdout,
            Stream::Stderr => Fd::Stderr,
        };
        stdcopy::frame_into(&mut self.pending, fd, &self.line);
        if self.pending.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Gone> {
        if self.pending.is_empty() {
            return if self.tx.is_closed() {
                Err(Gone)
            } else {
                Ok(())
            };
        }
        let chunk = self.pending.split().freeze();
        self.tx.blocking_send(Ok(chunk)).map_err(|_| Gone)
    }

    fn fail(self, message: String) {
        // Whatever was read goes first; then the body ends with the error (the client sees
        // a cut stream, as with dockerd).
        let mut sender = self;
        if sender.flush().is_ok() {
            let _ = sender.tx.blocking_send(Err(io::Error::other(message)));
        }
    }
}

/// Sends the lines asked for; with `follow`, goes on until the container stops.
fn produce(
    runtime: &Runtime,
    id: &str,
    dir: PathBuf,
    options: &Options,
    sender: &mut Sender,
) -> Result<(), String> {
    let (records, mut cursor) = logfile::tail(&dir, options.tail).map_err(|e| e.to_string())?;
    if send(&records, options, sender) != Flow::More || !options.follow {
        let _ = sender.flush();
        return Ok(());
    }
    loop {
        if sender.flush().is_err() {
            return Ok(());
        }
        // The state first, then the files: a line written just before the stop is read.
        let stopped = !matches!(runtime.state(id), Ok(State::Running(_) | State::Created));
        let records = cursor.read_new().map_err(|e| e.to_string())?;
        if send(&records, options, sender) != Flow::More || stopped {
            let _ = sender.flush();
            return Ok(());
        }
        if options.until.is_some_and(|until| SystemTime::now() > until) {
            let _ = sender.flush();
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

#[derive(Debug, PartialEq)]
enum Flow {
    More,
    Done,
}

fn send(records: &[Record], options: &Options, sender: &mut Sender) -> Flow {
    for record in records {
        if options.past_until(record) {
            return Flow::Done;
        }
        if options.wanted(record) && sender.add(record).is_err() {
            return Flow::Done;
        }
    }
    Flow::More
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_read_as_dockerd_reads_them() {
        let options = Options::parse(&query(&[
            ("stdout", "1"),
            ("tail", "2"),
            ("since", "1700000000.25"),
            ("timestamps", "true"),
        ]))
        .expect("valid");
        assert!(options.stdout && !options.stderr && options.timestamps && !options.follow);
        assert_eq!(options.tail, Some(2));
        assert_eq!(
            options.since,
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000))
        );
        let all = Options::parse(&query(&[("stderr", "1"), ("tail", "all"), ("since", "0")]))
            .expect("valid");
        assert_eq!((all.tail, all.since), (None, None));
        assert!(
            Options::parse(&query(&[("tail", "1")]))
                .expect_err("no stream")
                .contains("at least one stream")
        );
        assert!(
            Options::parse(&query(&[("stdout", "1"), ("until", "yesterday")]))
                .expect_err("bad until")
                .contains("until")
        );
        assert!(Options::parse(&query(&[("stdout", "1"), ("since", "1.1234567891")])).is_err());
    }

    #[test]
    fn records_are_framed_by_stream_with_their_newline() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut sender = Sender::new(tx, false);
        let record = |stream, text: &str| Record {
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            stream,
            partial: false,
            content: text.as_bytes().to_vec(),
        };
        let options = Options::parse(&query(&[("stdout", "1"), ("stderr", "1")])).expect("ok");
        let records = [record(Stream::Stdout, "out"), record(Stream::Stderr, "err")];
        assert_eq!(send(&records, &options, &mut sender), Flow::More);
        std::thread::spawn(move || sender.flush().is_ok())
            .join()
            .map(|sent| assert!(sent))
            .expect("flush thread");
        let chunk = rx.try_recv().expect("a chunk").expect("no error");
        assert_eq!(
            chunk.as_ref(),
            b"\x01\0\0\0\0\0\0\x04out\n\x02\0\0\0\0\0\0\x04err\n"
        );
    }
}
