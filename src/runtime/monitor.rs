//! The monitor: one small process per container, the container init's parent. It is the
//! berth binary re-executed (`berth monitor ID`, hidden), single-threaded, detached from
//! whoever started it (own session, re-parented to init by a double fork), so containers
//! outlive the agent.
//!
//! It mounts the root filesystem in a private mount namespace, resolves the user, seeds
//! volumes, has the engine create and start the container, and reports readiness on its
//! stdout (one JSON line, then stdout is closed). Then it execs its second stage,
//! `berth-monitor` (`supervise`): same process, same pid, a much smaller image, which relays
//! the container's output into rotated log files until the init exits, records how it ended
//! and cleans up (cgroup, engine state; the mounts vanish with the namespace).

use std::io::Write;
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use super::engine::{self, Engine, StdioFds};
use super::plumbing::Plumbing;
use super::{bundle, confine, rootfs, supervise, users};
use crate::state::layout::{ContainerPaths, Layout};
use crate::state::record::{self, BootId, ContainerRecord, ExitRecord, MonitorRecord};
use crate::sys::{self, Forked, ProcessId};

/// The readiness line the monitor writes to its starter.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Readiness {
    /// First line: the monitor exists (so a starter that gives up can kill it).
    Forked {
        monitor: ProcessId,
    },
    /// Progress: copying the image's content into a first-use volume (can take long).
    Seeding {
        volume: String,
    },
    Running {
        monitor: ProcessId,
        init: ProcessId,
    },
    Failed {
        error: String,
    },
}

/// Set by the starter when it passes the container's lock as `sys::START_LOCK_FD`.
pub(crate) const START_LOCK_ENV: &str = "BERTH_START_LOCK";

/// Entry point of `berth monitor`. Runs before anything could start a thread.
pub(crate) fn main(layout: &Layout, id: &str, plumbing: &dyn Plumbing) -> i32 {
    // Whatever the starter left open without close-on-exec must not stay pinned for the
    // container's whole life.
    let has_lock = std::env::var_os(START_LOCK_ENV).is_some();
    sys::close_inherited_fds(has_lock);
    // Held until this monitor has reported (dropped before the hand-over exec): a start
    // that lost its starter still excludes any other start of this container.
    let start_lock = has_lock
        .then(|| sys::inherited_fd(sys::START_LOCK_FD).ok())
        .flatten();
    if !crate::state::layout::valid_id(id) {
        report(&Readiness::Failed {
            error: format!("`{id}` is not a container id"),
        });
        return 1;
    }
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
    if let Ok(me) = ProcessId::of(std::process::id() as i32) {
        report(&Readiness::Forked { monitor: me });
    }
    let paths = layout.container(id);
    match Monitor::prepare(layout, &paths, id, plumbing) {
        Ok(monitor) => {
            let ready = Readiness::Running {
                monitor: monitor.me,
                init: monitor.init,
            };
            report(&ready);
            drop(start_lock);
            close_stdout();
            monitor.hand_over(layout);
            0
        }
        Err(error) => {
            tracing::error!(container = id, "{error}");
            let exit = ExitRecord::never_ran(error.clone());
            if let Err(e) = record::save_volatile(&paths.exit(), &exit) {
                tracing::error!(container = id, "recording the failure: {e}");
            }
            report(&Readiness::Failed { error });
            drop(start_lock);
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
    me: ProcessId,
    init: ProcessId,
    init_fd: OwnedFd,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    started_at_ms: u64,
}

impl Monitor {
    fn prepare(
        layout: &Layout,
        paths: &ContainerPaths,
        id: &str,
        plumbing: &dyn Plumbing,
    ) -> Result<Monitor, String> {
        let record: ContainerRecord = record::load(&paths.record())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("container {id} has no record"))?;
        let me = ProcessId::of(std::process::id() as i32)
            .map_err(|e| format!("reading the monitor's own identity: {e}"))?;
        sys::become_subreaper().map_err(|e| format!("becoming a subreaper: {e}"))?;
        sys::private_mount_namespace()
            .map_err(|e| format!("unsharing the mount namespace: {e}"))?;
        let writable = match record.disk {
            Some(_) => super::disk::mount(paths).map_err(|e| e.to_string())?,
            None => paths.dir.clone(),
        };
        rootfs::mount_overlay(paths, &record.layers, &writable).map_err(|e| e.to_string())?;

        // Generated at every start (not kept from creation): always whole, and current.
        crate::state::etc::write(
            &paths.etc(),
            &record.hostname,
            record.own_network,
            &Vec::new(),
            &record.dns,
        )
        .map_err(|e| e.to_string())?;
        let root = rootfs::open_root(&paths.rootfs()).map_err(|e| e.to_string())?;
        let passwd = rootfs::read_small_file(&root, "/etc/passwd").map_err(|e| e.to_string())?;
        let group = rootfs::read_small_file(&root, "/etc/group").map_err(|e| e.to_string())?;
        let user = users::resolve(record.user.as_deref(), &record.groups, &passwd, &group)
            .map_err(|e| format!("container {}: {e}", record.name))?;
        for seed in &record.seed {
            let copying = || {
                report(&Readiness::Seeding {
                    volume: seed.volume.clone(),
                })
            };
            plumbing.seed_volume(seed, &root, &copying)?;
        }

        let config = paths.config();
        let mut spec = oci_spec::runtime::Spec::load(&config)
            .map_err(|e| format!("reading {}: {e}", config.display()))?;
        // Before the mount checks: joining a network or IPC namespace changes mount sources.
        let joined =
            super::joins::prepare(layout, &record, &mut spec).map_err(|e| e.to_string())?;
        // What the engine would only fail on with "failed to prepare rootfs" or "failed to
        // unix syscall" is found here, in words that name the mount or the directory.
        rootfs::check_mount_targets(&root, &spec).map_err(|e| e.to_string())?;
        // The engine follows symbolic links in mount targets; the seal follows none, so
        // both act on the same path whatever changes in between.
        rootfs::canonical_destinations(&root, &paths.rootfs(), &mut spec)
            .map_err(|e| e.to_string())?;
        if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd().clone()) {
            let cwd =
                rootfs::canonical_workdir(&root, &paths.rootfs(), &spec, &cwd.to_string_lossy())
                    .map_err(|e| e.to_string())?;
            rootfs::ensure_workdir(&root, &spec, &cwd).map_err(|e| e.to_string())?;
        }
        drop(root);
        bundle::apply_user(&mut spec, &user).map_err(|e| e.to_string())?;
        let bytes = serde_json::to_vec_pretty(&spec)
            .map_err(|e| format!("encoding {}: {e}", config.display()))?;
        crate::fsutil::write_replace(&config, &bytes).map_err(|e| e.to_string())?;
        let secrets = super::secret_env::for_start(&layout.container_files(id), &spec)
            .map_err(|e| e.to_string())?;

        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let (exec_failure_r, exec_failure_w) =
            sys::exec_failure_channel().map_err(|e| format!("socketpair: {e}"))?;
        let stdin =
            std::fs::File::open("/dev/null").map_err(|e| format!("opening /dev/null: {e}"))?;
        let engine = engine::for_record(&record, &layout.engine_root());
        let pid = engine
            .create(
                id,
                paths.bundle(),
                StdioFds {
                    stdin: stdin.into(),
                    stdout: stdout_w,
                    stderr: stderr_w,
                    exec_failure: Some(exec_failure_w),
                },
                &secrets,
            )
            .map_err(|e| e.to_string())?;
        let fail = |engine: &dyn Engine, message: String| {
            let _ = engine.delete(id);
            message
        };
        // Before the container runs anything of its own: whatever the engine mounted,
        // cgroupfs and read-only binds become read-only all the way down, checked in the
        // init's own mount table.
        if let Err(e) = super::joins::verify(pid, &joined) {
            return Err(fail(engine.as_ref(), e.to_string()));
        }
        if !joined.is_empty() {
            let mut kept = spec.clone();
            let written = super::joins::forget_paths(&mut kept, &joined)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    serde_json::to_vec_pretty(&kept)
                        .map_err(|e| format!("encoding {}: {e}", config.display()))
                })
                .and_then(|bytes| {
                    crate::fsutil::write_replace(&config, &bytes).map_err(|e| e.to_string())
                });
            if let Err(e) = written {
                return Err(fail(engine.as_ref(), e));
            }
        }
        drop(joined);
        if let Err(e) = confine::seal(pid, &confine::targets(&spec)) {
            return Err(fail(engine.as_ref(), e.to_string()));
        }
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
        if !record.networks.is_empty()
            && let Err(e) = plug_in(plumbing, &record, pid)
        {
            return Err(fail(engine.as_ref(), e));
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
        if let Some(why) = exec_failure(&exec_failure_r) {
            let command = spec
                .process()
                .as_ref()
                .and_then(|p| p.args().as_ref())
                .and_then(|a| a.first().cloned())
                .unwrap_or_default();
            return Err(fail(engine.as_ref(), format!("running {command:?}: {why}")));
        }
        Ok(Monitor {
            id: id.to_string(),
            paths: paths.clone(),
            record,
            me,
            init,
            init_fd,
            stdout: Some(stdout_r),
            stderr: Some(stderr_r),
            started_at_ms,
        })
    }

    /// Hand over to the second stage (`supervise`), in a fresh small image if possible.
    fn hand_over(self, layout: &Layout) {
        let (Some(stdout), Some(stderr)) = (self.stdout, self.stderr) else {
            return;
        };
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join(supervise::BINARY)));
        if let Some(binary) = binary.filter(|b| b.is_file()) {
            let error = supervise::exec(
                &binary,
                &layout.state_root,
                &self.id,
                &stdout,
                &stderr,
                &self.init_fd,
                &supervise::Handover {
                    record: self.record.clone(),
                    started_at_ms: self.started_at_ms,
                },
            );
            tracing::warn!(
                container = self.id,
                "running {}: {error}; supervising here",
                binary.display()
            );
        }
        supervise::Supervisor {
            id: self.id,
            paths: self.paths,
            record: self.record,
            engine_root: layout.engine_root(),
            layout: layout.clone(),
            init_fd: self.init_fd,
            stdout: Some(stdout),
            stderr: Some(stderr),
            started_at_ms: self.started_at_ms,
        }
        .run();
    }
}

/// Plug the created container into its bridge networks while its init waits to be started.
fn plug_in(plumbing: &dyn Plumbing, record: &ContainerRecord, init: i32) -> Result<(), String> {
    let path = format!("/proc/{init}/ns/net");
    let netns = std::fs::File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
    plumbing.plug_in(record, std::os::fd::AsFd::as_fd(&netns))
}

/// How long the started init may take to reach its exec (nothing runs in between but
/// libcontainer's last steps).
const EXEC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the container's init could not exec its program, if it could not: the socket closes
/// unread when the exec succeeds (close-on-exec) or the init dies.
fn exec_failure(pipe: &OwnedFd) -> Option<String> {
    let mut message = Vec::new();
    let mut buf = [0u8; 1024];
    while message.len() < 64 * 1024 {
        match sys::wait_readable(pipe, Some(EXEC_TIMEOUT)) {
            Ok(true) => {}
            // Still not exec'd: not a failure to report here; the exit will tell.
            Ok(false) | Err(_) => break,
        }
        match rustix::io::read(pipe, &mut buf) {
            Ok(0) => break,
            Ok(n) => message.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&message).trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))
}
