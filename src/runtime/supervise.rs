//! The monitor's second stage: the idle wait. Once the container runs, the monitor execs
//! `berth-monitor` (a small binary of this crate) with four inherited descriptors — the
//! container's stdout and stderr pipes, its init's pidfd and a memfd with the `Handover`
//! (named by `HANDOVER_ENV`) —
//! so that what stays resident for the container's whole life is this loop, not the engine
//! and the agent's code. It relays output into the rotated log, reaps the init, reads the OOM
//! count, removes the cgroup and the engine's state, and records the exit.
//!
//! Messages go to stderr (the container's monitor.log) without a logging framework, for the
//! same reason.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use rustix::event::{PollFd, PollFlags, poll};

use super::cgroupfs;
use super::logfile::{LogWriter, Stream};
use crate::spec::model::LogPolicy;
use crate::spec::size::ByteSize;
use crate::state::layout::{ContainerPaths, Layout};
use crate::state::record::{self, ContainerRecord, EngineRecord, ExitRecord, MonitorRecord};
use crate::sys;

/// How long to keep reading output after the init exited (all container processes die with
/// it; this bounds a stuck reader).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) const BINARY: &str = "berth-monitor";

pub(crate) struct Supervisor {
    pub id: String,
    pub paths: ContainerPaths,
    pub record: ContainerRecord,
    pub engine_root: PathBuf,
    /// Where the exit is told (the event log).
    pub layout: crate::state::layout::Layout,
    pub init_fd: OwnedFd,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub started_at_ms: u64,
}

/// What the first stage read before it reported the container running. Handed over rather
/// than read again from the container's directory, which may be deleted by hand (the
/// container then is an orphan) the moment the start returned: a second stage that found
/// no record would end and leave the container unsupervised.
#[derive(Debug)]
pub(crate) struct Handover {
    pub record: ContainerRecord,
    pub started_at_ms: u64,
}

/// Names the handover for the second stage: `FD:STARTED_AT_MS`, the descriptor a memfd
/// holding the container record in its on-disk format. An environment variable rather than
/// an argument, so the command line is the one every release's `berth-monitor` takes: a
/// second stage of another release than its first stage (a package upgraded between the two)
/// either reads the handover or, not knowing it, the container's directory as 0.1.0 did.
pub(crate) const HANDOVER_ENV: &str = "BERTH_MONITOR_HANDOVER";

/// `berth-monitor STATE_ROOT ID STDOUT_FD STDERR_FD INIT_PIDFD`, with `HANDOVER_ENV` set by
/// a first stage that hands the records over.
pub fn main_with_args(args: &[String]) -> i32 {
    let handover = std::env::var(HANDOVER_ENV).ok();
    match supervisor_from_args(args, handover.as_deref()) {
        Ok(s) => {
            s.run();
            0
        }
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            2
        }
    }
}

fn supervisor_from_args(args: &[String], handover: Option<&str>) -> Result<Supervisor, String> {
    let [root, id, stdout, stderr, init] = args else {
        return Err("usage: berth-monitor STATE_ROOT ID STDOUT_FD STDERR_FD INIT_PIDFD (started by berth, not by hand)".into());
    };
    let fd = |text: &str| -> Result<OwnedFd, String> {
        let n: i32 = text
            .parse()
            .map_err(|_| format!("not a descriptor: {text}"))?;
        sys::inherited_fd(n).map_err(|e| format!("descriptor {n}: {e}"))
    };
    let (stdout, stderr, init_fd) = (fd(stdout)?, fd(stderr)?, fd(init)?);
    let layout = Layout::new(Path::new(root));
    let paths = layout.container(id);
    let Handover {
        record,
        started_at_ms,
    } = match handover {
        Some(handover) => {
            let (handover_fd, started) = handover
                .split_once(':')
                .ok_or_else(|| format!("{HANDOVER_ENV}={handover}: not FD:STARTED_AT_MS"))?;
            let started_at_ms = started
                .parse()
                .map_err(|_| format!("{HANDOVER_ENV}={handover}: not FD:STARTED_AT_MS"))?;
            let mut bytes = Vec::new();
            std::fs::File::from(fd(handover_fd)?)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("reading the handover: {e}"))?;
            let record = record::decode(&paths.record(), &bytes).map_err(|e| e.to_string())?;
            Handover {
                record,
                started_at_ms,
            }
        }
        // A first stage of 0.1.0: the records are in the directory it just wrote.
        None => Handover {
            record: record::load(&paths.record())
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("container {id} has no record"))?,
            started_at_ms: record::load::<MonitorRecord>(&paths.monitor())
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("container {id} has no monitor record"))?
                .started_at_ms,
        },
    };
    Ok(Supervisor {
        id: id.clone(),
        paths,
        record,
        engine_root: layout.engine_root(),
        layout: layout.clone(),
        init_fd,
        stdout: Some(stdout),
        stderr: Some(stderr),
        started_at_ms,
    })
}

/// Replace this process with `berth-monitor`, handing it the descriptors and `handover`.
/// Returns only if that failed (the caller then supervises in this process).
pub(crate) fn exec(
    binary: &Path,
    root: &Path,
    id: &str,
    stdout: &OwnedFd,
    stderr: &OwnedFd,
    init: &OwnedFd,
    handover: &Handover,
) -> std::io::Error {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let handover_fd = match handover_memfd(root, id, &handover.record) {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    for fd in [stdout, stderr, init, &handover_fd] {
        if let Err(e) = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()) {
            return e.into();
        }
    }
    let error = Command::new(binary)
        .arg(root)
        .arg(id)
        .arg(stdout.as_raw_fd().to_string())
        .arg(stderr.as_raw_fd().to_string())
        .arg(init.as_raw_fd().to_string())
        .env(
            HANDOVER_ENV,
            format!("{}:{}", handover_fd.as_raw_fd(), handover.started_at_ms),
        )
        .exec();
    for fd in [stdout, stderr, init] {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
    error
}

/// The container record as it is written on disk (its format named, so a second stage of a
/// later release migrates it), in an anonymous file read from its start by the second stage.
fn handover_memfd(root: &Path, id: &str, record: &ContainerRecord) -> std::io::Result<OwnedFd> {
    let path = Layout::new(root).container(id).record();
    let bytes = record::encode(&path, record).map_err(std::io::Error::other)?;
    let fd = rustix::fs::memfd_create("berth-handover", rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&bytes)?;
    // The offset is shared with the second stage's descriptor.
    file.rewind()?;
    Ok(file.into())
}

impl Supervisor {
    pub(crate) fn run(mut self) {
        let policy = LogPolicy {
            max_size: ByteSize(self.record.log_max_size),
            max_files: self.record.log_max_files,
        };
        let mut log = match LogWriter::open(&self.paths.logs(), policy) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!(
                    "berth-monitor {}: opening the log: {e}; output is discarded",
                    self.id
                );
                None
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut init_exited = false;
        let mut drain_deadline: Option<Instant> = None;
        while self.stdout.is_some() || self.stderr.is_some() || !init_exited {
            let timeout = drain_deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                break;
            }
            let (out_ready, err_ready, init_ready) = match self.wait(init_exited, timeout) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("berth-monitor {}: poll: {e}", self.id);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if out_ready {
                relay(&mut self.stdout, Stream::Stdout, &mut buf, &mut log);
            }
            if err_ready {
                relay(&mut self.stderr, Stream::Stderr, &mut buf, &mut log);
            }
            if init_ready && !init_exited {
                init_exited = true;
                drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
            }
        }
        if let Some(log) = &mut log
            && let Err(e) = log.finish(SystemTime::now())
        {
            eprintln!("berth-monitor {}: writing the log: {e}", self.id);
        }
        self.finish();
    }

    /// Poll the output pipes and the init's pidfd.
    fn wait(
        &self,
        init_exited: bool,
        timeout: Option<Duration>,
    ) -> std::io::Result<(bool, bool, bool)> {
        let mut fds: Vec<PollFd> = Vec::with_capacity(3);
        let mut slots = [None; 3];
        for (i, fd) in [self.stdout.as_ref(), self.stderr.as_ref()]
            .into_iter()
            .enumerate()
        {
            if let Some(fd) = fd {
                slots[i] = Some(fds.len());
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
        }
        if !init_exited {
            slots[2] = Some(fds.len());
            fds.push(PollFd::new(&self.init_fd, PollFlags::IN));
        }
        let timespec = timeout.map(|t| rustix::event::Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        match poll(&mut fds, timespec.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready = |slot: Option<usize>| slot.is_some_and(|i| !fds[i].revents().is_empty());
        Ok((ready(slots[0]), ready(slots[1]), ready(slots[2])))
    }

    fn finish(self) {
        let (code, signal) = sys::reap_pidfd(&self.init_fd).unwrap_or_else(|e| {
            eprintln!("berth-monitor {}: reaping the init: {e}", self.id);
            (None, None)
        });
        let hierarchies = cgroupfs::hierarchies().unwrap_or_else(|e| {
            eprintln!("berth-monitor {}: reading the cgroup mounts: {e}", self.id);
            Vec::new()
        });
        let oom_killed =
            cgroupfs::oom_kills(&hierarchies, &self.record.cgroup_path).is_some_and(|n| n > 0);
        let exit = ExitRecord {
            code,
            signal,
            oom_killed,
            started_at_ms: self.started_at_ms,
            finished_at_ms: record::now_ms(),
            error: None,
            stopped_because: None,
        };
        // Its init is gone, but in a pid namespace shared with another container (`pid =
        // "container:…"`) it was not that namespace's init, so nothing killed what it started:
        // those are killed here, or they would outlive the container, reparented to the owner.
        if let Err(e) = cgroupfs::kill_all(
            &hierarchies,
            &self.record.cgroup_path,
            super::MONITOR_EXIT_TIMEOUT,
        ) {
            eprintln!("berth-monitor {}: {e}", self.id);
        }
        if let Err(e) = self.clean_up(&hierarchies) {
            eprintln!("berth-monitor {}: cleaning up: {e}", self.id);
        }
        sys::reap_exited_children();
        if let Err(e) = record::save_exit(&self.paths.exit(), &exit) {
            eprintln!("berth-monitor {}: recording the exit: {e}", self.id);
        }
        let log = crate::state::events::EventLog::new(&self.layout);
        for event in crate::state::events::exit_events(&self.layout, &self.record, &exit) {
            log.append(&event);
        }
    }

    /// Forget the container in its engine: the cgroup and the engine's state directory.
    fn clean_up(&self, hierarchies: &[cgroupfs::Hierarchy]) -> Result<(), String> {
        match &self.record.engine {
            EngineRecord::Embedded => {
                cgroupfs::remove(hierarchies, &self.record.cgroup_path)
                    .map_err(|e| e.to_string())?;
                let state = self.engine_root.join("embedded").join(&self.id);
                match std::fs::remove_dir_all(&state) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(format!("removing {}: {e}", state.display()))
                    }
                    _ => Ok(()),
                }
            }
            EngineRecord::Oci { binary } => {
                let output = Command::new(binary)
                    .arg("--root")
                    .arg(self.engine_root.join("oci"))
                    .args(["delete", "--force", &self.id])
                    .output()
                    .map_err(|e| format!("{}: {e}", binary.display()))?;
                if output.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
                }
            }
        }
    }
}

fn relay(pipe: &mut Option<OwnedFd>, stream: Stream, buf: &mut [u8], log: &mut Option<LogWriter>) {
    let Some(fd) = pipe.as_ref() else { return };
    match rustix::io::read(fd.as_fd(), &mut *buf) {
        Ok(0) => *pipe = None,
        Ok(n) => {
            if let Some(log) = log
                && let Err(e) = log.write(stream, &buf[..n], SystemTime::now())
            {
                eprintln!("berth-monitor: writing the log: {e}");
            }
        }
        Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
        Err(_) => *pipe = None,
    }
}
