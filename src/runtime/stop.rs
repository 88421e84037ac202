//! `Runtime::stop`: the stop signal, then SIGKILL after the timeout, then the monitor's exit
//! record; and the cleanup of a container whose monitor is lost.

use std::time::Duration;

use super::{ContainerLock, MONITOR_EXIT_TIMEOUT, Runtime, RuntimeError, State, engine};
use crate::spec::signal::Signal;
use crate::state::events::Action;
use crate::state::record::{self, ContainerRecord, ExitRecord, MonitorRecord};
use crate::sys::{self, ProcessId};

impl Runtime {
    /// Stop a container: its stop signal, then SIGKILL after `timeout` (default: the
    /// entry's stop timeout). Returns how it ended; stopping a stopped container is a no-op.
    pub fn stop(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<ExitRecord>, RuntimeError> {
        let _lock = ContainerLock::acquire(&self.paths(id)?)?;
        let exit = self.stop_locked(id, timeout)?;
        self.unplug(id, false);
        Ok(exit)
    }

    /// Stop a container for a reason of berth's own (its health check failed): the exit
    /// record says so, and its restart policy then treats the stop as a failure.
    pub(crate) fn stop_because(
        &self,
        id: &str,
        why: &str,
    ) -> Result<Option<ExitRecord>, RuntimeError> {
        let paths = self.paths(id)?;
        let _lock = ContainerLock::acquire(&paths)?;
        let running = matches!(self.state(id)?, State::Running(_));
        let exit = self.stop_locked(id, None)?;
        self.unplug(id, false);
        match exit {
            Some(mut exit) if running => {
                exit.stopped_because = Some(why.to_string());
                record::save_volatile(&paths.exit(), &exit)?;
                Ok(Some(exit))
            }
            other => Ok(other),
        }
    }

    pub(super) fn stop_locked(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<ExitRecord>, RuntimeError> {
        let record = self.record(id)?;
        let timeout = timeout.unwrap_or(Duration::from_millis(record.stop_timeout_ms));
        let perr = |op: &'static str| {
            let id = id.to_string();
            move |source| RuntimeError::Process { op, id, source }
        };
        let monitor = match self.state(id)? {
            State::Created => return Ok(None),
            State::Exited(exit) => return Ok(Some(exit)),
            State::Lost { init, .. } => {
                return self.clean_up_lost(id, &record, init, None).map(Some);
            }
            State::Running(monitor) => monitor,
        };
        let began = std::time::Instant::now();
        if let Some(fd) = monitor.init.open().map_err(perr("signalling"))? {
            self.record_event(
                self.container_event(&record, Action::Kill)
                    .with("signal", record.stop_signal),
            );
            sys::send_signal(&fd, record.stop_signal).map_err(perr("signalling"))?;
            if !sys::wait_readable(&fd, Some(timeout)).map_err(perr("waiting for"))? {
                tracing::info!(
                    container = id,
                    "did not stop within {timeout:?}; killing it"
                );
                sys::send_signal(&fd, Signal::KILL.0).map_err(perr("killing"))?;
                sys::wait_readable(&fd, Some(MONITOR_EXIT_TIMEOUT)).map_err(perr("waiting for"))?;
            }
        }
        // The monitor drains the output, cleans up and records the exit, then ends.
        if let Some(fd) = monitor.monitor.open().map_err(perr("waiting for"))?
            && !sys::wait_readable(&fd, Some(MONITOR_EXIT_TIMEOUT)).map_err(perr("waiting for"))?
        {
            return Err(RuntimeError::Process {
                op: "stopping",
                id: id.into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "its monitor (pid {}) has not finished within {}s; try again",
                        monitor.monitor.pid,
                        MONITOR_EXIT_TIMEOUT.as_secs()
                    ),
                ),
            });
        }
        let exit = match self.state(id)? {
            State::Exited(exit) => exit,
            State::Lost { init, .. } => {
                self.clean_up_lost(id, &record, init, Some(monitor.started_at_ms))?
            }
            State::Created | State::Running(_) => {
                return Err(RuntimeError::Process {
                    op: "stopping",
                    id: id.into(),
                    source: std::io::Error::other("its state did not settle"),
                });
            }
        };
        self.record_event(
            self.container_event(&record, Action::Stop)
                .with("duration_ms", crate::units::millis(began.elapsed())),
        );
        Ok(Some(exit))
    }

    /// A container whose monitor is gone: kill what is left, release the engine state and
    /// the cgroup, and record the end on the monitor's behalf.
    pub(super) fn clean_up_lost(
        &self,
        id: &str,
        record: &ContainerRecord,
        init: Option<ProcessId>,
        started_at_ms: Option<u64>,
    ) -> Result<ExitRecord, RuntimeError> {
        let mut signal = None;
        if let Some(init) = init
            && let Some(fd) = init.open().map_err(|source| RuntimeError::Process {
                op: "killing",
                id: id.into(),
                source,
            })?
        {
            let _ = sys::send_signal(&fd, Signal::KILL.0);
            let _ = sys::wait_readable(&fd, Some(MONITOR_EXIT_TIMEOUT));
            signal = Some(Signal::KILL.0);
        }
        engine::for_record(record, &self.layout.engine_root()).delete(id)?;
        let paths = self.paths(id)?;
        let started_at_ms = started_at_ms
            .or_else(|| {
                record::load::<MonitorRecord>(&paths.monitor())
                    .ok()
                    .flatten()
                    .map(|m| m.started_at_ms)
            })
            .unwrap_or_else(record::now_ms);
        let exit = ExitRecord {
            code: None,
            signal,
            oom_killed: false,
            started_at_ms,
            finished_at_ms: record::now_ms(),
            error: Some("its monitor was lost; berth cleaned up after it".into()),
            stopped_because: None,
        };
        record::save_volatile(&paths.exit(), &exit)?;
        // Its monitor never said it died: said here, as the monitor would have.
        for event in crate::state::events::exit_events(&self.layout, record, &exit) {
            self.record_event(event);
        }
        Ok(exit)
    }
}
