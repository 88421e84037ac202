//! `Load`: an HTTP load generator for zero-downtime tests. Worker threads send `GET /` over a
//! new connection each time (no keep-alive, so every request goes through connection setup and
//! whatever forwarding the kernel does for it), and record every answer or error with its
//! times. The `Report` then says whether anything failed and whether versions only moved
//! forward. All traffic stays on 127.0.0.1. A refused connection also records what conntrack
//! held for the port at that moment, and the report gives the wall-clock time of its first
//! request, so that a failure can be matched against the agent's log.

use std::collections::HashMap;
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Between a worker's requests, so a 2-core machine still has room for the server under test.
const PAUSE: Duration = Duration::from_millis(2);
/// Refused connections whose conntrack entries a worker records (reading the table costs).
const CONNTRACK_SNAPSHOTS: usize = 5;
/// Entries kept per snapshot.
const CONNTRACK_LINES: usize = 20;
const REQUEST: &[u8] = b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// One request: when it started (before connecting) and finished, and its trimmed body or
/// what went wrong; for a refused connection, the port's conntrack entries right after.
#[derive(Clone, Debug)]
pub struct Sample {
    pub started: Instant,
    pub finished: Instant,
    pub result: Result<String, String>,
    pub conntrack: Option<String>,
}

/// Worker threads hammering one address until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Sample>>>,
    clock: Clock,
}

impl Load {
    pub fn start(addr: SocketAddr, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut samples = Vec::new();
                    let mut snapshots = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let result = request(addr);
                        let finished = Instant::now();
                        let refused = result.as_ref().is_err_and(|e| e.contains("refused"));
                        let conntrack = (refused && snapshots < CONNTRACK_SNAPSHOTS).then(|| {
                            snapshots += 1;
                            conntrack_of(addr.port())
                        });
                        samples.push(Sample {
                            started,
                            finished,
                            result,
                            conntrack,
                        });
                        thread::sleep(PAUSE);
                    }
                    samples
                })
            })
            .collect();
        Load {
            stop,
            workers,
            clock: Clock::now(),
        }
    }

    /// Stop the workers (each finishes its current request) and collect their samples.
    pub fn stop(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let samples = std::mem::take(&mut self.workers)
            .into_iter()
            .flat_map(|w| w.join().expect("load worker"))
            .collect();
        Report::new(samples, self.clock)
    }
}

impl Drop for Load {
    /// A test that panics before `stop` must not leave workers hammering for the rest of the
    /// test binary's life.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `GET /` on a new connection: the trimmed body of a 200, or a readable error.
fn request(addr: SocketAddr) -> Result<String, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| failed("connect", &e))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| failed("set timeouts", &e))?;
    stream.write_all(REQUEST).map_err(|e| failed("write", &e))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| failed("read", &e))?;
    if response.is_empty() {
        return Err("empty response: closed without a status line".to_string());
    }
    let response = String::from_utf8_lossy(&response);
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return Err(format!("incomplete response: {response:?}"));
    };
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        return Err(format!("non-200 answer: {status}"));
    }
    // A server killed mid-answer closes after its headers: a failure, not an empty body.
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    if let Some(length) = length
        && body.len() != length
    {
        return Err(format!(
            "truncated answer: {} of {length} body bytes",
            body.len()
        ));
    }
    Ok(body.trim().to_string())
}

/// The host's conntrack entries naming `port` (at most `CONNTRACK_LINES`), TIME_WAIT ones
/// aside: after a refused connection, whether the port's connections were translated and
/// to where.
fn conntrack_of(port: u16) -> String {
    let table = match std::fs::read_to_string("/proc/net/nf_conntrack") {
        Ok(table) => table,
        Err(e) => return format!("/proc/net/nf_conntrack: {e}"),
    };
    let port = format!("port={port} ");
    let lines: Vec<&str> = table
        .lines()
        .filter(|l| l.contains(&port) && !l.contains("TIME_WAIT"))
        .collect();
    let mut out = lines
        .iter()
        .take(CONNTRACK_LINES)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n");
    if lines.len() > CONNTRACK_LINES {
        out += &format!("\n... and {} more", lines.len() - CONNTRACK_LINES);
    }
    out
}

/// An instant and the wall-clock time it was, to give instants as times of day.
#[derive(Clone, Copy, Debug)]
struct Clock {
    instant: Instant,
    wall: SystemTime,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// `at` as UTC with milliseconds, e.g. `2026-12-07T19:53:01.123Z`.
    fn wall_time(&self, at: Instant) -> String {
        let wall = match at.checked_duration_since(self.instant) {
            Some(after) => self.wall + after,
            None => self.wall - self.instant.duration_since(at),
        };
        humantime::format_rfc3339_millis(wall).to_string()
    }
}

/// `stage: error`, with socket timeouts (EAGAIN from a timed-out read) called what they are.
fn failed(stage: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!("{stage}: timed out"),
        _ => format!("{stage}: {e}"),
    }
}

/// Every sample of a run, in order of start.
#[derive(Debug)]
pub struct Report {
    samples: Vec<Sample>,
    clock: Clock,
}

impl Report {
    fn new(mut samples: Vec<Sample>, clock: Clock) -> Report {
        samples.sort_by_key(|s| s.started);
        Report { samples, clock }
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn total(&self) -> usize {
        self.samples.len()
    }

    pub fn failures(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.result.is_err()).collect()
    }

    /// How many requests were answered with `body` (trimmed).
    pub fn count_of(&self, body: &str) -> usize {
        self.samples
            .iter()
            .filter(|s| s.result.as_deref() == Ok(body))
            .count()
    }

    /// Whether answers moved only forward through `versions`: once a request has been answered
    /// by version k, every request started after that answer is answered by version k or
    /// later. Requests that overlap may be answered in any order (either may have been
    /// accepted first); failures are ignored; a body not in `versions` is an error.
    pub fn check_order(&self, versions: &[&str]) -> Result<(), String> {
        let mut answered = Vec::new();
        for s in &self.samples {
            if let Ok(body) = &s.result {
                let Some(v) = versions.iter().position(|v| v == body) else {
                    return Err(format!(
                        "request {} answered {body:?}, not one of {versions:?}",
                        self.span(s)
                    ));
                };
                answered.push((s, v));
            }
        }
        let mut by_finish: Vec<&(&Sample, usize)> = answered.iter().collect();
        by_finish.sort_by_key(|(s, _)| s.finished);
        let mut finished = by_finish.into_iter().peekable();
        // Among requests finished before the current one started: the first with the newest
        // version.
        let mut newest: Option<&(&Sample, usize)> = None;
        for (b, vb) in &answered {
            while let Some(a) = finished.next_if(|(a, _)| a.finished < b.started) {
                if newest.is_none_or(|n| a.1 > n.1) {
                    newest = Some(a);
                }
            }
            if let Some((a, va)) = newest
                && vb < va
            {
                return Err(format!(
                    "out of order: request {} answered {:?}, but request {} had already been \
                     answered {:?} before it started",
                    self.span(b),
                    versions[*vb],
                    self.span(a),
                    versions[*va]
                ));
            }
        }
        Ok(())
    }

    /// Totals, the first failures (with the conntrack entries of a refused one), and answers
    /// per body in order of first appearance; spans count from the first request, whose
    /// wall-clock time is given.
    pub fn summary(&self) -> String {
        let failures = self.failures();
        let mut out = format!("{} requests, {} failed", self.total(), failures.len());
        if let Some(first) = self.samples.first() {
            out += &format!(
                " (first request at {})",
                self.clock.wall_time(first.started)
            );
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut bodies = Vec::new();
        for body in self.samples.iter().filter_map(|s| s.result.as_deref().ok()) {
            let n = counts.entry(body).or_default();
            if *n == 0 {
                bodies.push(body);
            }
            *n += 1;
        }
        for body in bodies {
            out += &format!("; {body:?}: {}", counts[body]);
        }
        for s in failures.iter().take(5) {
            if let Err(e) = &s.result {
                out += &format!("\n  failed {}: {e}", self.span(s));
            }
            if let Some(conntrack) = &s.conntrack {
                out += "\n    conntrack entries of the port right after:";
                for line in conntrack.lines() {
                    out += &format!("\n      {line}");
                }
            }
        }
        if failures.len() > 5 {
            out += &format!("\n  ... and {} more failures", failures.len() - 5);
        }
        out
    }

    /// `+1.234s..+1.240s`, relative to the first request's start.
    fn span(&self, s: &Sample) -> String {
        let origin = self.samples.first().map_or(s.started, |f| f.started);
        let at = |t: Instant| format!("+{:.3}s", t.saturating_duration_since(origin).as_secs_f64());
        format!("{}..{}", at(s.started), at(s.finished))
    }
}

/// A sequential HTTP/1.0 server on 127.0.0.1: each connection gets `answers[mode]`, where
/// `None` closes it without answering. Being sequential and reading `mode` per connection, it
/// switches versions exactly as a strictly ordered replacement would.
struct TestServer {
    addr: SocketAddr,
    mode: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(answers: &'static [Option<&'static str>]) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mode = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (mode, stop) = (mode.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut conn) = conn else { continue };
                    let answer = answers[mode.load(Ordering::SeqCst)];
                    // Read the whole request first: closing with unread input sends a reset,
                    // and the "no answer" case should be a clean close.
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut request = Vec::new();
                    let mut buf = [0; 512];
                    while !request.ends_with(b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    if let Some(body) = answer {
                        let _ = write!(
                            conn,
                            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}\n",
                            body.len() + 1
                        );
                    }
                }
            })
        };
        TestServer {
            addr,
            mode,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, mode: usize) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn load_sees_a_version_switch_without_failures_and_in_order() {
    let server = TestServer::start(&[Some("v1"), Some("v2")]);
    let load = Load::start(server.addr, 4);
    thread::sleep(Duration::from_millis(300));
    server.set(1);
    thread::sleep(Duration::from_millis(300));
    let report = load.stop();
    let summary = report.summary();
    assert!(report.failures().is_empty(), "{summary}");
    assert!(
        report.count_of("v1") > 0 && report.count_of("v2") > 0,
        "{summary}"
    );
    assert_eq!(
        report.count_of("v1") + report.count_of("v2"),
        report.total(),
        "{summary}"
    );
    assert!(
        report.samples().is_sorted_by_key(|s| s.started),
        "samples in order of start"
    );
    report.check_order(&["v1", "v2"]).expect("v1 then v2");
    let err = report
        .check_order(&["v2", "v1"])
        .expect_err("v1 after v2 is backwards");
    assert!(err.starts_with("out of order"), "{err}");
    let err = report.check_order(&["v1"]).expect_err("v2 is unknown");
    assert!(err.contains(r#"answered "v2", not one of ["v1"]"#), "{err}");
}

/// Hand-built samples: (start ms, finish ms, body or error).
fn report_of(samples: &[(u64, u64, Result<&str, &str>)]) -> Report {
    let clock = Clock::now();
    let base = clock.instant;
    Report::new(
        samples
            .iter()
            .map(|&(started, finished, result)| Sample {
                started: base + Duration::from_millis(started),
                finished: base + Duration::from_millis(finished),
                result: result.map(str::to_string).map_err(str::to_string),
                conntrack: None,
            })
            .collect(),
        clock,
    )
}

#[test]
fn check_order_rejects_an_old_version_after_a_new_answer_only() {
    let versions = ["v1", "v2", "v3"];
    // v2 answered at 10 ms; a request started at 20 ms got v1.
    let err = report_of(&[(0, 10, Ok("v2")), (20, 30, Ok("v1"))])
        .check_order(&versions)
        .expect_err("v1 after v2's answer");
    assert_eq!(
        err,
        r#"out of order: request +0.020s..+0.030s answered "v1", but request +0.000s..+0.010s had already been answered "v2" before it started"#
    );
    // Overlapping requests may be answered in either order, a start exactly at the other's
    // finish counts as overlapping, and failures are ignored.
    let overlapping = report_of(&[
        (0, 30, Ok("v3")),
        (5, 12, Err("connect: Connection refused (os error 111)")),
        (10, 40, Ok("v1")),
        (30, 50, Ok("v2")),
    ]);
    assert_eq!(overlapping.check_order(&versions), Ok(()));
    // The newest earlier answer counts, not the latest-finished one: v3 finished at 10, then v2
    // at 20; a request started at 25 must not get v2.
    let err = report_of(&[(0, 10, Ok("v3")), (5, 20, Ok("v2")), (25, 30, Ok("v2"))])
        .check_order(&versions)
        .expect_err("v2 after v3's answer");
    assert!(err.contains(r#"+0.025s..+0.030s answered "v2""#), "{err}");
    assert!(
        err.contains(r#"+0.000s..+0.010s had already been answered "v3""#),
        "{err}"
    );

    // Against the definition, pair by pair, on pseudo-random runs that mostly move forward.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut outcomes = [0; 2];
    for _ in 0..300 {
        let run: Vec<(u64, u64, Result<&str, &str>)> = (0..40)
            .map(|_| {
                let started = next(1000);
                let v = if next(60) == 0 {
                    next(3)
                } else {
                    started / 334
                };
                (
                    started,
                    started + next(60),
                    Ok(versions[usize::try_from(v).expect("below 3")]),
                )
            })
            .collect();
        let report = report_of(&run);
        let index = |s: &Sample| versions.iter().position(|v| s.result.as_deref() == Ok(v));
        let backwards = report.samples().iter().any(|a| {
            report
                .samples()
                .iter()
                .any(|b| b.started > a.finished && index(b) < index(a))
        });
        assert_eq!(report.check_order(&versions).is_err(), backwards, "{run:?}");
        outcomes[usize::from(backwards)] += 1;
    }
    assert!(
        outcomes.iter().all(|&n| n > 0),
        "both outcomes: {outcomes:?}"
    );
}

#[test]
fn load_records_connections_closed_without_an_answer() {
    let server = TestServer::start(&[Some("v1"), None]);
    let load = Load::start(server.addr, 2);
    thread::sleep(Duration::from_millis(200));
    let dropped = Instant::now();
    server.set(1);
    thread::sleep(Duration::from_millis(200));
    server.set(0);
    let restored = Instant::now();
    thread::sleep(Duration::from_millis(200));
    let report = load.stop();
    let summary = report.summary();
    let failures = report.failures();
    assert!(!failures.is_empty(), "{summary}");
    assert_eq!(
        report.count_of("v1") + failures.len(),
        report.total(),
        "{summary}"
    );
    for f in &failures {
        assert_eq!(
            f.result.as_ref().err().map(String::as_str),
            Some("empty response: closed without a status line"),
            "{summary}"
        );
        assert!(
            f.finished > dropped && f.started < restored,
            "failure outside the outage: {summary}"
        );
    }
    assert!(
        report
            .samples()
            .iter()
            .any(|s| s.started > restored && s.result.is_ok()),
        "answers again after the outage: {summary}"
    );
    assert!(
        summary.contains("failed +") && summary.contains(": empty response"),
        "{summary}"
    );
    report.check_order(&["v1"]).expect("one version");
}

#[test]
fn a_refused_connection_keeps_the_ports_conntrack_entries_and_the_report_its_time() {
    // Nothing listens there: every connection is refused.
    let port = crate::support::net::free_port();
    let load = Load::start(SocketAddr::from(([127, 0, 0, 1], port)), 1);
    thread::sleep(Duration::from_millis(100));
    let report = load.stop();
    let failures = report.failures();
    let summary = report.summary();
    assert!(failures.len() > CONNTRACK_SNAPSHOTS, "{summary}");
    assert!(
        failures
            .iter()
            .all(|f| f.result.as_ref().is_err_and(|e| e.contains("refused"))),
        "{summary}"
    );
    // Only the first few refusals read the table.
    assert_eq!(
        failures.iter().filter(|f| f.conntrack.is_some()).count(),
        CONNTRACK_SNAPSHOTS,
        "{summary}"
    );
    assert!(
        summary.contains("conntrack entries of the port right after:"),
        "{summary}"
    );
    let (_, rest) = summary
        .split_once("(first request at ")
        .expect("the first request's time");
    let at = humantime::parse_rfc3339(rest.split(')').next().expect("time")).expect("rfc 3339");
    let ago = SystemTime::now().duration_since(at).expect("in the past");
    assert!(ago < Duration::from_secs(10), "{ago:?}: {summary}");
}
