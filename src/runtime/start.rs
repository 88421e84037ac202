//! `Runtime::start` and `Runtime::restart`: spawn the container's monitor (`berth monitor ID`)
//! and wait for its readiness lines; a start without a clear answer is abandoned so that
//! nothing runs unsupervised.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::monitor::{self, Readiness};
use super::{ContainerLock, MONITOR_EXIT_TIMEOUT, Runtime, RuntimeError, State, bundle, engine};
use crate::fsutil::io_err;
use crate::spec::signal::Signal;
use crate::state::events::Action;
use crate::state::layout;
use crate::state::record::{
    self, BootId, ContainerRecord, ExitRecord, MonitorRecord, RestartRecord,
};
use crate::sys::{self, ProcessId};

/// How long a monitor may take to get its container running (mount, seed volumes, create).
const START_TIMEOUT: Duration = Duration::from_secs(120);

impl Runtime {
    /// Start a created container: spawn its monitor and wait until the container's process
    /// runs (or failed to), at most `START_TIMEOUT`.
    /// Idempotent: a container that is already running (a start that lost its caller and
    /// finished on its own) returns its monitor record.
    pub fn start(&self, id: &str) -> Result<MonitorRecord, RuntimeError> {
        let paths = self.paths(id)?;
        let lock = ContainerLock::acquire(&paths)?;
        self.start_locked(id, &paths, &lock)
    }

    /// Start an exited (or lost) container again, in place: same id, same writable layer,
    /// same logs, as Docker's restart policies do. How the previous run ended moves to its
    /// restart record with `streak` (the reconciler's backoff exponent). A created container
    /// is simply started; a running one is refused.
    pub fn restart(&self, id: &str, streak: u32) -> Result<MonitorRecord, RuntimeError> {
        let paths = self.paths(id)?;
        let lock = ContainerLock::acquire(&paths)?;
        let record = self.record(id)?;
        let exit = match self.state(id)? {
            State::Created => return self.start_locked(id, &paths, &lock),
            State::Running(_) => return Err(RuntimeError::Running { id: id.into() }),
            State::Exited(exit) => {
                // The monitor records the exit before it ends, while its private mount
                // namespace still holds the overlay and a `disk` filesystem: a new monitor
                // must not mount them a second time (ext4 mounted twice is corrupted).
                self.wait_for_previous_monitor(id, &paths)?;
                exit
            }
            State::Lost { init, .. } => self.clean_up_lost(id, &record, init, None)?,
        };
        // Unreadable (a power loss): counting starts again. Of a newer berth: left alone.
        let previous = match record::load::<RestartRecord>(&paths.restarts()) {
            Ok(r) => r.unwrap_or_default(),
            Err(e @ record::RecordError::UnknownFormat { .. }) => return Err(e.into()),
            Err(_) => RestartRecord::default(),
        };
        // A restart that crashed after this record but before clearing the exit comes here
        // again with the same exit: it is the same restart, not another one.
        let count = previous.count.saturating_add(1);
        if previous.last_exit.as_ref() != Some(&exit) {
            record::save_volatile(
                &paths.restarts(),
                &RestartRecord {
                    count,
                    streak,
                    last_exit: Some(exit),
                },
            )?;
        }
        // Exit first: a crash in between leaves a created container, which is started.
        for path in [paths.exit(), paths.monitor()] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing", &path)(e).into()),
            }
        }
        crate::failpoint::hit("restart-after-clear");
        let monitor = self.start_locked(id, &paths, &lock)?;
        self.record_event(
            self.container_event(&record, Action::Restart)
                .with("restart_count", count)
                .with("streak", streak),
        );
        Ok(monitor)
    }

    /// Wait (at most `MONITOR_EXIT_TIMEOUT`) until the monitor named in the container's
    /// monitor record has ended: its mount namespace goes before it does. Nothing to wait
    /// for without a readable record of this boot or once the process is gone.
    fn wait_for_previous_monitor(
        &self,
        id: &str,
        paths: &layout::ContainerPaths,
    ) -> Result<(), RuntimeError> {
        let monitor = match record::load::<MonitorRecord>(&paths.monitor()) {
            Ok(Some(monitor)) => monitor,
            Ok(None) => return Ok(()),
            // Damaged by a power loss: no monitor of that boot runs.
            Err(record::RecordError::Damaged { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let perr = |source| RuntimeError::Process {
            op: "waiting for the previous monitor of",
            id: id.into(),
            source,
        };
        if monitor.boot_id != BootId::current().map_err(perr)? {
            return Ok(());
        }
        let Some(fd) = monitor.monitor.open().map_err(perr)? else {
            return Ok(());
        };
        if sys::wait_readable(&fd, Some(MONITOR_EXIT_TIMEOUT)).map_err(perr)? {
            return Ok(());
        }
        Err(perr(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "it recorded its exit but has not ended within {}s (pid {}); try again",
                MONITOR_EXIT_TIMEOUT.as_secs(),
                monitor.monitor.pid
            ),
        )))
    }

    fn start_locked(
        &self,
        id: &str,
        paths: &layout::ContainerPaths,
        lock: &ContainerLock,
    ) -> Result<MonitorRecord, RuntimeError> {
        let began = std::time::Instant::now();
        let Some(container) = record::load::<ContainerRecord>(&paths.record())? else {
            return Err(RuntimeError::NotFound { what: id.into() });
        };
        match self.state(id)? {
            State::Created => {}
            State::Running(monitor) => return Ok(monitor),
            State::Exited(_) | State::Lost { .. } => {
                return Err(RuntimeError::StartFailed {
                    id: id.into(),
                    message: "it has run before; restart it".into(),
                });
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.monitor_log())
            .map_err(io_err("opening", &paths.monitor_log()))?;
        let spawn_err = |source| RuntimeError::Spawn {
            id: id.into(),
            source,
        };
        let mut command = Command::new(&self.monitor_binary);
        command
            .arg("--root")
            .arg(&self.layout.state_root)
            .arg("monitor")
            .arg(id)
            // The monitor lives as long as the container: nothing of the caller's
            // environment or working directory should stay pinned or leak into it.
            .env_clear()
            .env("PATH", bundle::DEFAULT_PATH)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(filter) = std::env::var_os("BERTH_LOG") {
            command.env("BERTH_LOG", filter);
        }
        // Read by the DNS resolver a monitor may start (its upstream servers).
        if let Some(upstreams) = std::env::var_os("BERTH_DNS_UPSTREAMS") {
            command.env("BERTH_DNS_UPSTREAMS", upstreams);
        }
        command.env(monitor::START_LOCK_ENV, "1");
        sys::pass_start_lock(&mut command, &lock.file);
        let mut child = command.spawn().map_err(spawn_err)?;
        crate::failpoint::hit("start-after-spawn");
        let Some(out) = child.stdout.take() else {
            return Err(spawn_err(std::io::Error::other("no pipe to the monitor")));
        };
        let report = read_readiness(out, START_TIMEOUT);
        child.wait().map_err(spawn_err)?;
        let (monitor, last, timed_out) = match report {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(container = id, "reading the monitor's readiness: {e}");
                (None, None, false)
            }
        };
        match last {
            Some(Readiness::Running { .. }) => {
                let monitor =
                    record::load::<MonitorRecord>(&paths.monitor())?.ok_or_else(|| {
                        RuntimeError::StartFailed {
                            id: id.into(),
                            message: "the monitor reported readiness but wrote no record".into(),
                        }
                    })?;
                self.record_event(
                    self.container_event(&container, Action::Start)
                        .with("duration_ms", crate::units::millis(began.elapsed())),
                );
                Ok(monitor)
            }
            Some(Readiness::Failed { error }) => {
                if let Ok(Some(exit)) = record::load::<ExitRecord>(&paths.exit()) {
                    for event in crate::state::events::exit_events(&self.layout, &container, &exit)
                    {
                        self.record_event(event);
                    }
                }
                Err(RuntimeError::StartFailed {
                    id: id.into(),
                    message: error,
                })
            }
            Some(Readiness::Forked { .. } | Readiness::Seeding { .. }) | None => {
                let why = if timed_out {
                    format!(
                        "the monitor did not report within {}s",
                        START_TIMEOUT.as_secs()
                    )
                } else {
                    "the monitor ended without reporting".to_string()
                };
                self.abandon_start(id, monitor, &why)?;
                Err(RuntimeError::StartFailed {
                    id: id.into(),
                    message: format!("{why}; see {}", paths.monitor_log().display()),
                })
            }
        }
    }

    /// A start that failed without a clear answer: kill the monitor, then whatever it got
    /// to (a created or even running container), and record the failure, so nothing is
    /// left running unsupervised. Called with the container's lock held.
    fn abandon_start(
        &self,
        id: &str,
        monitor: Option<ProcessId>,
        why: &str,
    ) -> Result<(), RuntimeError> {
        if let Some(monitor) = monitor
            && let Ok(Some(fd)) = monitor.open()
        {
            let _ = sys::send_signal(&fd, Signal::KILL.0);
            let _ = sys::wait_readable(&fd, Some(MONITOR_EXIT_TIMEOUT));
        }
        let record = self.record(id)?;
        match self.state(id)? {
            State::Lost { init, .. } => {
                self.clean_up_lost(id, &record, init, None)?;
            }
            State::Created => {
                engine::for_record(&record, &self.layout.engine_root()).delete(id)?;
                let exit = ExitRecord::never_ran(why);
                record::save_volatile(&self.paths(id)?.exit(), &exit)?;
                for event in crate::state::events::exit_events(&self.layout, &record, &exit) {
                    self.record_event(event);
                }
            }
            State::Running(_) | State::Exited(_) => {}
        }
        Ok(())
    }
}

/// Read the monitor's readiness lines until it closes its stdout or `timeout` passes: the
/// monitor's identity (first line) and the last line.
fn read_readiness(
    mut out: std::process::ChildStdout,
    timeout: Duration,
) -> std::io::Result<(Option<ProcessId>, Option<Readiness>, bool)> {
    // Every line is progress (the monitor reports each volume it seeds): the deadline
    // counts from the last one.
    let mut deadline = std::time::Instant::now() + timeout;
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || !sys::wait_readable(&out, Some(left))? {
            timed_out = true;
            break;
        }
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if buf[..n].contains(&b'\n') {
                    deadline = std::time::Instant::now() + timeout;
                }
                text.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let lines: Vec<Readiness> = String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let monitor = lines.iter().find_map(|r| match r {
        Readiness::Forked { monitor } | Readiness::Running { monitor, .. } => Some(*monitor),
        Readiness::Seeding { .. } | Readiness::Failed { .. } => None,
    });
    Ok((monitor, lines.into_iter().last(), timed_out))
}
