//! The monitor: one small process per container, the container init's parent. It is the
//! berth binary re-executed (`berth monitor ID`, hidden), single-threaded, detached from
//! whoever started it (own session, re-parented to init by a double fork), so containers
//! outlive the agent.
//!
//! It mounts the root filesystem in a private mount namespace, resolves the user, seeds
//! volumes, has the engine create and start the container, reports readiness on its stdout
//! (one JSON line, then stdout is closed), then relays the container's stdout/stderr into
//! rotated log files until the init exits, records how it ended (`exit.json`, atomically),
//! and cleans up (engine state, cgroup; the mounts vanish with its namespace).

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, SystemTime};

use rustix::event::{PollFd, PollFlags, poll};
use serde::{Deserialize, Serialize};

use super::engine::{self, Engine, StdioFds};
use super::layout::{ContainerPaths, Layout};
use super::logfile::{LogWriter, Stream};
use super::record::{self, BootId, ContainerRecord, ExitRecord, MonitorRecord};
use super::sys::{self, Forked, ProcessId};
use super::{bundle, rootfs, users};
use crate::spec::model::LogPolicy;
use crate::spec::size::ByteSize;

/// How long to keep reading output after the init exited (all container processes die with
/// it; this bounds a stuck reader).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The readiness line the monitor writes to its starter.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    Running { monitor: ProcessId, init: ProcessId },
    Failed { error: String },
}

/// Entry point of `berth monitor`. Runs before anything could start a thread.
pub fn main(layout: &Layout, id: &str) -> i32 {
    // Own session first (the parent of the fork is not a group leader, so this works), then
    // fork: the child is neither a session leader nor the starter's child.
    let _ = rustix::process::setsid();
    match sys::fork_single_threaded() {
        Ok(Forked::Parent { .. }) => return 0,
        Ok(Forked::Child) => {}
        Err(e) => {
            report(&Readiness::Failed {
                error: format!("forking the monitor: {e}"),
            });
            return 1;
        }
    }
    let paths = layout.container(id);
    match Monitor::prepare(layout, &paths, id) {
        Ok(mut monitor) => {
            let ready = Readiness::Running {
                monitor: monitor.me,
                init: monitor.init,
            };
            report(&ready);
            close_stdout();
            monitor.supervise();
            0
        }
        Err(error) => {
            tracing::error!(container = id, "{error}");
            let now = record::now_ms();
            let exit = ExitRecord {
                code: None,
                signal: None,
                oom_killed: false,
                started_at_ms: now,
                finished_at_ms: now,
                error: Some(error.clone()),
            };
            if let Err(e) = record::save_volatile(&paths.exit(), &exit) {
                tracing::error!(container = id, "recording the failure: {e}");
            }
            report(&Readiness::Failed { error });
            1
        }
    }
}

fn report(readiness: &Readiness) {
    if let Ok(mut line) = serde_json::to_vec(readiness) {
        line.push(b'\n');
        // The starter may be gone; the records say the same thing.
        let _ = std::io::stdout().write_all(&line);
        let _ = std::io::stdout().flush();
    }
}

/// Point stdout at /dev/null: the starter reads until EOF.
fn close_stdout() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
}

struct Monitor {
    id: String,
    paths: ContainerPaths,
    record: ContainerRecord,
    engine: Box<dyn Engine>,
    me: ProcessId,
    init: ProcessId,
    init_fd: OwnedFd,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    started_at_ms: u64,
}

impl Monitor {
    fn prepare(layout: &Layout, paths: &ContainerPaths, id: &str) -> Result<Monitor, String> {
        let record: ContainerRecord = record::load(&paths.record())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("container {id} has no record"))?;
        let me = ProcessId::of(std::process::id() as i32).map_err(|e| e.to_string())?;
        sys::become_subreaper().map_err(|e| format!("becoming a subreaper: {e}"))?;
        sys::private_mount_namespace()
            .map_err(|e| format!("unsharing the mount namespace: {e}"))?;
        rootfs::mount_overlay(paths, &record.layers).map_err(|e| e.to_string())?;

        let root = rootfs::open_root(&paths.rootfs()).map_err(|e| e.to_string())?;
        let passwd = rootfs::read_small_file(&root, "/etc/passwd").map_err(|e| e.to_string())?;
        let group = rootfs::read_small_file(&root, "/etc/group").map_err(|e| e.to_string())?;
        let user = users::resolve(record.user.as_deref(), &record.groups, &passwd, &group)
            .map_err(|e| format!("container {}: {e}", record.name))?;
        let volumes = crate::volume::Volumes::new(&layout.state_root);
        for seed in &record.seed {
            let marker = volumes.seed_marker(&seed.volume);
            if marker.exists() {
                continue;
            }
            crate::volume::seed_from(
                &root,
                &seed.target,
                &seed.data,
                volumes.keeps_owner(&seed.volume),
            )
            .map_err(|e| format!("volume {}: {e}", seed.volume))?;
            crate::fsutil::write_atomic(&marker, b"").map_err(|e| e.to_string())?;
        }
        drop(root);

        let mut spec = oci_spec::runtime::Spec::load(paths.config()).map_err(|e| e.to_string())?;
        bundle::apply_user(&mut spec, &user).map_err(|e| e.to_string())?;
        spec.save(paths.config()).map_err(|e| e.to_string())?;

        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let stdin = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        let engine = engine::for_record(&record.engine, &layout.engine_root());
        let pid = engine
            .create(
                id,
                paths.bundle(),
                StdioFds {
                    stdin: stdin.into(),
                    stdout: stdout_w,
                    stderr: stderr_w,
                },
            )
            .map_err(|e| e.to_string())?;
        let fail = |engine: &dyn Engine, message: String| {
            let _ = engine.delete(id);
            message
        };
        let init = match ProcessId::of(pid) {
            Ok(p) => p,
            Err(e) => {
                return Err(fail(
                    engine.as_ref(),
                    format!("the container's init {pid}: {e}"),
                ));
            }
        };
        let init_fd = match init.open() {
            Ok(Some(fd)) => fd,
            Ok(None) => {
                return Err(fail(
                    engine.as_ref(),
                    "the container's init died before it started".into(),
                ));
            }
            Err(e) => {
                return Err(fail(
                    engine.as_ref(),
                    format!("opening the init's pidfd: {e}"),
                ));
            }
        };
        if record.own_network
            && let Err(e) = sys::loopback_up_in(pid)
        {
            return Err(fail(engine.as_ref(), format!("bringing up loopback: {e}")));
        }
        let started_at_ms = record::now_ms();
        let monitor_record = MonitorRecord {
            monitor: me,
            init,
            started_at_ms,
            boot_id: BootId::current().map_err(|e| e.to_string())?,
        };
        if let Err(e) = record::save_volatile(&paths.monitor(), &monitor_record) {
            return Err(fail(engine.as_ref(), e.to_string()));
        }
        if let Err(e) = engine.start(id) {
            return Err(fail(engine.as_ref(), e.to_string()));
        }
        Ok(Monitor {
            id: id.to_string(),
            paths: paths.clone(),
            record,
            engine,
            me,
            init,
            init_fd,
            stdout: Some(stdout_r),
            stderr: Some(stderr_r),
            started_at_ms,
        })
    }

    fn supervise(&mut self) {
        let policy = LogPolicy {
            max_size: ByteSize(self.record.log_max_size),
            max_files: self.record.log_max_files,
        };
        let mut log = match LogWriter::open(&self.paths.logs(), policy) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(
                    container = self.id,
                    "opening the log: {e}; output is discarded"
                );
                None
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut init_exited = false;
        let mut drain_deadline = None;
        while self.stdout.is_some() || self.stderr.is_some() || !init_exited {
            let timeout = drain_deadline.map(|d: std::time::Instant| {
                d.saturating_duration_since(std::time::Instant::now())
            });
            if timeout == Some(Duration::ZERO) {
                break;
            }
            let (out_ready, err_ready, init_ready) = match self.wait(init_exited, timeout) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(container = self.id, "poll: {e}");
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
                drain_deadline = Some(std::time::Instant::now() + DRAIN_TIMEOUT);
            }
        }
        if let Some(log) = &mut log
            && let Err(e) = log.finish(SystemTime::now())
        {
            tracing::error!(container = self.id, "writing the log: {e}");
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

    fn finish(&mut self) {
        let (code, signal) = match sys::reap_pidfd(&self.init_fd) {
            Ok(status) => status,
            Err(e) => {
                tracing::error!(container = self.id, "reaping the init: {e}");
                (None, None)
            }
        };
        let cgroup = std::path::PathBuf::from(&self.record.cgroup_path);
        let oom_killed = super::stats::oom_kills(&cgroup).is_ok_and(|n| n > 0);
        let exit = ExitRecord {
            code,
            signal,
            oom_killed,
            started_at_ms: self.started_at_ms,
            finished_at_ms: record::now_ms(),
            error: None,
        };
        if let Err(e) = self.engine.delete(&self.id) {
            tracing::error!(container = self.id, "cleaning up: {e}");
        }
        sys::reap_exited_children();
        if let Err(e) = record::save_volatile(&self.paths.exit(), &exit) {
            tracing::error!(container = self.id, "recording the exit: {e}");
        }
        let _ = self.init;
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
                tracing::error!("writing the log: {e}");
            }
        }
        Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
        Err(_) => *pipe = None,
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))
}
