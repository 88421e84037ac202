//! The runtime: from an image and a `[container.*]` entry to an isolated, limited, logged
//! process under its own monitor. `Runtime` is the API the CLI and the reconciler use:
//! create (bundle and records), start (spawn the monitor, wait for readiness), state (records
//! confirmed against the kernel), stop (signal, timeout, SIGKILL), remove.

pub mod bundle;
pub mod cgroupfs;
pub mod confine;
pub mod disk;
pub mod engine;
pub mod exec;
pub mod logfile;
pub mod monitor;
pub mod mountinfo;
pub mod plumbing;
pub mod rootfs;
pub mod seccomp;
pub mod seccomp_bpf;
pub mod stats;
pub mod supervise;
pub mod users;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use oci_spec::image::ImageConfiguration;

use self::monitor::Readiness;
pub use self::plumbing::Plumbing;
use crate::fsutil::{self, FsError, io_err};
use crate::spec::engine::Engine as EngineChoice;
use crate::spec::model::{Container, ContainerNetwork};
use crate::spec::mount::Mount;
use crate::spec::signal::Signal;
use crate::state::image::ImageRecord;
use crate::state::layout::{self, Layout};
use crate::state::record::{
    self, BootId, ContainerRecord, EngineRecord, ExitRecord, MonitorRecord, RestartRecord, Seed,
};
use crate::sys::{self, ProcessId};

/// How long `stop` waits for a monitor to record the exit after its container died.
const MONITOR_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a monitor may take to get its container running (mount, seed volumes, create).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an operation waits for another one on the same container to finish.
const LOCK_TIMEOUT: Duration = Duration::from_secs(150);

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

/// Serialises start, stop and remove of one container (`flock` on a file in its directory).
struct ContainerLock {
    file: std::fs::File,
}

impl ContainerLock {
    fn acquire(paths: &layout::ContainerPaths) -> Result<ContainerLock, RuntimeError> {
        if !paths.dir.is_dir() {
            return Err(RuntimeError::NotFound {
                what: paths.dir.display().to_string(),
            });
        }
        // Bounded: a monitor holds the lock until it reports (at most START_TIMEOUT after
        // its last progress), and nothing else holds it longer than a stop.
        match fsutil::lock_bounded(
            &paths.dir.join("lock"),
            LOCK_TIMEOUT,
            Duration::from_millis(10),
        )? {
            Some(file) => Ok(ContainerLock { file }),
            None => Err(RuntimeError::Busy {
                what: paths.dir.display().to_string(),
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Record(#[from] record::RecordError),
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error(transparent)]
    Seccomp(#[from] seccomp_bpf::SeccompError),
    #[error(transparent)]
    Disk(#[from] disk::DiskError),
    #[error("writing the runtime spec of {id}: {message}")]
    Spec { id: String, message: String },
    #[error("no container {what}")]
    NotFound { what: String },
    #[error("{what} is busy with another operation (a start, stop or removal) for {}s; try again", LOCK_TIMEOUT.as_secs())]
    Busy { what: String },
    #[error("container {id} is running; stop it first")]
    Running { id: String },
    #[error(
        "the OCI runtime `{name}` is not on $PATH ({path}); install it or name it by absolute path"
    )]
    NoRuntime { name: String, path: String },
    #[error("starting the monitor of {id}: {source}")]
    Spawn { id: String, source: std::io::Error },
    #[error("container {id} failed to start: {message}")]
    StartFailed { id: String, message: String },
    #[error("{op} container {id}: {source}")]
    Process {
        op: &'static str,
        id: String,
        source: std::io::Error,
    },
}

/// What a container is doing, from its records confirmed against the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Created, never started.
    Created,
    Running(MonitorRecord),
    Exited(ExitRecord),
    /// Started, but neither running nor recorded as ended: the monitor was killed, or the
    /// machine rebooted. `init` is set while the container's process still runs.
    Lost {
        reason: String,
        init: Option<ProcessId>,
    },
}

impl State {
    pub fn is_running(&self) -> bool {
        matches!(self, State::Running(_) | State::Lost { init: Some(_), .. })
    }
}

/// Everything `create` needs: the entry, its hash, the image, and prepared volumes.
pub struct CreateRequest<'a> {
    pub name: &'a str,
    pub container: &'a Container,
    pub spec_hash: &'a str,
    pub image: &'a ImageRecord,
    pub image_config: &'a ImageConfiguration,
    /// Unpacked layer directories, lowest first (`ImageService::layer_dirs`).
    pub layers: &'a [PathBuf],
    /// Volume name → its data directory (`Volumes::ensure`).
    pub volumes: &'a BTreeMap<String, PathBuf>,
    /// Made by hand (`berth run`): the reconciler leaves it alone.
    pub manual: bool,
}

#[derive(Debug, Clone)]
pub struct Runtime {
    layout: Layout,
    /// The berth binary the monitor is run from.
    monitor_binary: PathBuf,
    plumbing: Arc<dyn Plumbing>,
}

impl Runtime {
    /// The runtime of a state root; monitors are this very executable.
    pub fn new(state_root: &Path, plumbing: Arc<dyn Plumbing>) -> Result<Runtime, RuntimeError> {
        let exe = std::env::current_exe().map_err(|source| RuntimeError::Spawn {
            id: "-".into(),
            source,
        })?;
        Ok(Self::with_monitor_binary(state_root, &exe, plumbing))
    }

    /// For callers that are not the berth binary themselves (tests, embedders).
    pub fn with_monitor_binary(
        state_root: &Path,
        binary: &Path,
        plumbing: Arc<dyn Plumbing>,
    ) -> Runtime {
        Runtime {
            layout: Layout::new(state_root),
            monitor_binary: binary.to_path_buf(),
            plumbing,
        }
    }

    /// The berth binary that monitors (and health checks' `berth exec`) run.
    pub fn binary(&self) -> &Path {
        &self.monitor_binary
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Write the bundle and the records of a new container; nothing runs yet. The directory
    /// is built under a temporary name and renamed, so a container exists completely or not
    /// at all for every reader. Nothing waits for the disk: a container does not outlive a
    /// power loss as a process anyway, and one whose files a power loss damaged is refused
    /// at start (unreadable record or spec, seccomp program not the recorded one) and
    /// replaced from the desired state.
    pub fn create(&self, req: &CreateRequest) -> Result<ContainerRecord, RuntimeError> {
        // Everything that can be refused is checked before anything is written.
        let engine = engine_record(&req.container.runtime)?;
        let id = new_id(req.name);
        let containers = self.layout.containers();
        fsutil::private_dir(&containers)?;
        self.sweep_leftovers();
        // Named after its creator, so a sweep can tell an abandoned create from one in
        // progress without any window.
        let me =
            ProcessId::of(std::process::id() as i32).map_err(|source| RuntimeError::Process {
                op: "identifying the creator of",
                id: id.clone(),
                source,
            })?;
        let tmp = containers.join(format!(".{id}.creating.{}.{}", me.pid, me.start_time));
        std::fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
        let built = self.build_container_dir(req, &id, engine, &tmp);
        let record = match built {
            Ok(record) => record,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        crate::failpoint::hit("create-before-rename");
        let final_dir = self.layout.container(&id).dir;
        std::fs::rename(&tmp, &final_dir).map_err(io_err("renaming", &tmp))?;
        crate::failpoint::hit("create-after-rename");
        Ok(record)
    }

    fn build_container_dir(
        &self,
        req: &CreateRequest,
        id: &str,
        engine: EngineRecord,
        tmp: &Path,
    ) -> Result<ContainerRecord, RuntimeError> {
        let tmp_paths = layout::ContainerPaths {
            dir: tmp.to_path_buf(),
        };
        let c = req.container;
        let disk = c.resources.disk.map(|d| d.0);
        let mut dirs = vec![tmp_paths.rootfs(), tmp_paths.logs()];
        match disk {
            // upper/ and work/ live in the filesystem of its own, made now.
            Some(size) => {
                dirs.push(tmp_paths.disk());
                disk::make(&tmp_paths.disk_image(), size)?;
            }
            None => dirs.extend([tmp_paths.upper(), tmp_paths.work()]),
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        }
        let own_network = !matches!(c.network, ContainerNetwork::Host);
        let final_paths = self.layout.container(id);
        let cgroup_path = self.layout.cgroup_path(id);
        let mut spec = bundle::build(&bundle::SpecInputs {
            id,
            name: req.name,
            container: c,
            image: req.image_config,
            etc_dir: &final_paths.etc(),
            volumes: req.volumes,
            cgroup_path: &cgroup_path,
            nofile_hard: sys_nofile_hard(),
            // The creator's stack limit stands for the container's: the monitor, and so the
            // container, inherits it from whoever starts it (the same agent or CLI).
            arg_max: bundle::arg_max(
                rustix::process::getrlimit(rustix::process::Resource::Stack).current,
            ),
        })?;
        let spec_err = |e: &dyn std::fmt::Display| RuntimeError::Spec {
            id: id.to_string(),
            message: e.to_string(),
        };
        let mut seccomp_sha256 = None;
        if engine == EngineRecord::Embedded
            && let Some(linux) = spec.linux_mut()
            && let Some(profile) = linux.seccomp_mut().take()
        {
            // Compiled once per profile, loaded by the engine's executor; the spec handed to
            // libcontainer carries none, so it does not compile it again at every start.
            let json = serde_json::to_vec_pretty(&profile).map_err(|e| spec_err(&e))?;
            let bpf = seccomp_bpf::compile_cached(
                &profile,
                &json,
                &self.layout.run_root.join("seccomp"),
            )?;
            fsutil::write_new_file(&tmp_paths.dir.join(engine::SECCOMP_BPF), &bpf)?;
            seccomp_sha256 = Some(crate::sha256::hex_digest(&bpf));
            fsutil::write_new_file(&tmp_paths.dir.join("seccomp.json"), &json)?;
        }
        let entry = serde_json::to_vec_pretty(c).map_err(|e| spec_err(&e))?;
        fsutil::write_new_file(&tmp_paths.spec(), &entry)?;
        let config = serde_json::to_vec_pretty(&spec).map_err(|e| spec_err(&e))?;
        fsutil::write_new_file(&tmp_paths.config(), &config)?;

        let image_config = req.image_config.config().as_ref();
        let stop_signal = c
            .stop_signal
            .or_else(|| {
                image_config
                    .and_then(|c| c.stop_signal().as_deref())
                    .and_then(|s| s.parse::<Signal>().ok())
            })
            .unwrap_or(Signal::TERM);
        let seed = c
            .mounts
            .iter()
            .filter_map(|m| match m {
                Mount::Volume {
                    source,
                    target,
                    nocopy: false,
                    ..
                } => req.volumes.get(source).map(|data| Seed {
                    volume: source.clone(),
                    data: data.clone(),
                    target: target.clone(),
                }),
                _ => None,
            })
            .collect();
        let record = ContainerRecord {
            id: id.to_string(),
            name: req.name.to_string(),
            spec_hash: req.spec_hash.to_string(),
            image: req.image.source.clone(),
            image_digest: req.image.manifest.to_string(),
            created_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            engine,
            layers: req.layers.iter().rev().cloned().collect(),
            user: c.user.clone().or_else(|| {
                image_config
                    .and_then(|c| c.user().clone())
                    .filter(|u| !u.is_empty())
            }),
            groups: c.groups.clone(),
            seed,
            own_network,
            hostname: c.hostname.clone(),
            seccomp_sha256,
            stop_signal: stop_signal.0,
            stop_timeout_ms: c.stop_timeout.0.as_millis() as u64,
            log_max_size: c.log.max_size.0,
            log_max_files: c.log.max_files,
            cgroup_path,
            manual: req.manual,
            networks: match &c.network {
                ContainerNetwork::Bridge(attachments) => attachments
                    .iter()
                    .map(|a| crate::state::network::Attachment {
                        network: a.network.to_string(),
                        ip: a.ip,
                        aliases: a.aliases.iter().map(|n| n.to_string()).collect(),
                    })
                    .collect(),
                _ => Vec::new(),
            },
            ports: c.ports.clone(),
            // Checks are the reconciler's, which leaves containers made by hand alone.
            health: if req.manual { None } else { c.health.clone() },
            start_first: !req.manual
                && c.update.strategy == crate::spec::model::UpdateStrategy::StartFirst,
            disk,
        };
        fsutil::write_new_file(
            &tmp_paths.record(),
            &record::encode(&tmp_paths.record(), &record)?,
        )?;
        Ok(record)
    }

    /// Directories left by a `create` or `remove` that crashed midway (never one in
    /// progress).
    pub fn sweep_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(self.layout.containers()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Only leftovers are looked at further: this runs at every create.
            if !(name.starts_with('.')
                && (name.contains(".creating") || name.contains(".removing")))
            {
                continue;
            }
            // A create names its directory after itself (pid and start time) from the moment
            // it exists; a remove keeps the directory's lock across its rename.
            let abandoned = match creator_of(&name) {
                Some(creator) => !creator.is_alive().unwrap_or(true),
                // Without its lock file, a removal was interrupted inside remove_dir_all (a
                // concurrent one finishing too is harmless).
                None => std::fs::File::open(entry.path().join("lock")).map_or(true, |f| {
                    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                        .is_ok()
                }),
            };
            if abandoned {
                tracing::info!("removing {name}, left by an interrupted create or remove");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

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
        let previous = self.restarts(id).unwrap_or_default();
        // A restart that crashed after this record but before clearing the exit comes here
        // again with the same exit: it is the same restart, not another one.
        if previous.last_exit.as_ref() != Some(&exit) {
            record::save_volatile(
                &paths.restarts(),
                &RestartRecord {
                    count: previous.count.saturating_add(1),
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
        self.start_locked(id, &paths, &lock)
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

    /// When the container's current run started, from its monitor record (if readable).
    pub fn last_start_ms(&self, id: &str) -> Option<u64> {
        record::load::<MonitorRecord>(&self.paths(id).ok()?.monitor())
            .ok()
            .flatten()
            .map(|m| m.started_at_ms)
    }

    /// The restart record of a container (none if it never restarted or is unreadable).
    pub fn restarts(&self, id: &str) -> Option<RestartRecord> {
        record::load(&self.paths(id).ok()?.restarts())
            .ok()
            .flatten()
    }

    fn start_locked(
        &self,
        id: &str,
        paths: &layout::ContainerPaths,
        lock: &ContainerLock,
    ) -> Result<MonitorRecord, RuntimeError> {
        if record::load::<ContainerRecord>(&paths.record())?.is_none() {
            return Err(RuntimeError::NotFound { what: id.into() });
        }
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
            Some(Readiness::Running { .. }) => record::load::<MonitorRecord>(&paths.monitor())?
                .ok_or_else(|| RuntimeError::StartFailed {
                    id: id.into(),
                    message: "the monitor reported readiness but wrote no record".into(),
                }),
            Some(Readiness::Failed { error }) => Err(RuntimeError::StartFailed {
                id: id.into(),
                message: error,
            }),
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
            }
            State::Running(_) | State::Exited(_) => {}
        }
        Ok(())
    }

    /// The paths of a container, for a well-formed id only (ids become paths and cgroups).
    fn paths(&self, id: &str) -> Result<layout::ContainerPaths, RuntimeError> {
        if !layout::valid_id(id) {
            return Err(RuntimeError::NotFound { what: id.into() });
        }
        Ok(self.layout.container(id))
    }

    pub fn record(&self, id: &str) -> Result<ContainerRecord, RuntimeError> {
        record::load(&self.paths(id)?.record())?
            .ok_or_else(|| RuntimeError::NotFound { what: id.into() })
    }

    /// Every container berth created under this state root, oldest first.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, RuntimeError> {
        let (records, damaged) = self.scan(&mut std::collections::HashMap::new())?;
        // One damaged record (a power loss during its write) must not hide the others.
        for id in damaged {
            tracing::warn!("skipping container {id}: its record is missing or damaged");
        }
        Ok(records)
    }

    /// Every container directory in one pass: the readable records, oldest first, and the
    /// ids whose record is missing or damaged. A record never changes after its create, so
    /// `cache` (kept by the caller across scans) spares parsing it again.
    pub fn scan(
        &self,
        cache: &mut std::collections::HashMap<String, ContainerRecord>,
    ) -> Result<(Vec<ContainerRecord>, Vec<String>), RuntimeError> {
        let mut records = Vec::new();
        let mut damaged = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for entry in self.container_dirs()? {
            let id = entry.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            if let Some(r) = cache.get(&id) {
                records.push(r.clone());
                seen.insert(id);
                continue;
            }
            match record::load::<ContainerRecord>(&entry.path().join("container.json")) {
                Ok(Some(r)) => {
                    cache.insert(id.clone(), r.clone());
                    records.push(r);
                    seen.insert(id);
                }
                // Only a record that is missing or cannot be parsed (a power loss during its
                // write); a read error (EIO, permissions) is not evidence of anything.
                Ok(None) | Err(record::RecordError::Damaged { .. }) if layout::valid_id(&id) => {
                    damaged.push(id);
                }
                Ok(None) => {}
                // A newer berth's container is neither adopted nor replaced: the pass stops.
                Err(e @ record::RecordError::Newer { .. }) => return Err(e.into()),
                Err(e) => tracing::warn!("skipping {}: {e}", entry.path().display()),
            }
        }
        cache.retain(|id, _| seen.contains(id));
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        damaged.sort();
        Ok((records, damaged))
    }

    /// The containers made for a `[container.NAME]`, oldest first.
    pub fn find(&self, name: &str) -> Result<Vec<ContainerRecord>, RuntimeError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|r| r.name == name)
            .collect())
    }

    /// A container by id, or the newest one made for a name.
    pub fn resolve(&self, name_or_id: &str) -> Result<ContainerRecord, RuntimeError> {
        let all = self.list()?;
        if let Some(r) = all.iter().find(|r| r.id == name_or_id) {
            return Ok(r.clone());
        }
        all.into_iter()
            .rev()
            .find(|r| r.name == name_or_id)
            .ok_or_else(|| RuntimeError::NotFound {
                what: name_or_id.into(),
            })
    }

    pub fn state(&self, id: &str) -> Result<State, RuntimeError> {
        let paths = self.paths(id)?;
        // A damaged record (a power loss during its write) makes the container lost, not
        // the whole listing an error: it can still be stopped and removed.
        let damaged = |e: record::RecordError| match e {
            record::RecordError::Damaged { path, message } => Ok(State::Lost {
                reason: format!("its record {} is damaged: {message}", path.display()),
                init: None,
            }),
            other => Err(RuntimeError::from(other)),
        };
        match record::load::<ExitRecord>(&paths.exit()) {
            Ok(Some(exit)) => return Ok(State::Exited(exit)),
            Ok(None) => {}
            Err(e) => return damaged(e),
        }
        let monitor = match record::load::<MonitorRecord>(&paths.monitor()) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(State::Created),
            Err(e) => return damaged(e),
        };
        let this_boot = BootId::current().map_err(|source| RuntimeError::Process {
            op: "reading the boot id for",
            id: id.into(),
            source,
        })?;
        if monitor.boot_id != this_boot {
            return Ok(State::Lost {
                reason: "the machine rebooted since it started".into(),
                init: None,
            });
        }
        let alive = |p: &ProcessId| {
            p.is_alive().map_err(|source| RuntimeError::Process {
                op: "checking",
                id: id.into(),
                source,
            })
        };
        if alive(&monitor.monitor)? {
            return Ok(State::Running(monitor));
        }
        // The monitor may have just written the exit record and ended.
        if let Some(exit) = record::load::<ExitRecord>(&paths.exit())? {
            return Ok(State::Exited(exit));
        }
        let init = alive(&monitor.init)?.then_some(monitor.init);
        Ok(State::Lost {
            reason: "its monitor was killed".into(),
            init,
        })
    }

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
    pub fn stop_because(&self, id: &str, why: &str) -> Result<Option<ExitRecord>, RuntimeError> {
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

    /// A stopped container's forwards go (`release`: its addresses too). Not an error for
    /// the stop: the reconciler's next pass finds rules that differ from the state and
    /// rebuilds them.
    fn unplug(&self, id: &str, release: bool) {
        if let Err(e) = self.plumbing.unplug(id, release) {
            tracing::warn!(container = id, "unplugging from its networks: {e}");
        }
    }

    fn stop_locked(
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
        if let Some(fd) = monitor.init.open().map_err(perr("signalling"))? {
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
        match self.state(id)? {
            State::Exited(exit) => Ok(Some(exit)),
            State::Lost { init, .. } => self
                .clean_up_lost(id, &record, init, Some(monitor.started_at_ms))
                .map(Some),
            State::Created | State::Running(_) => Err(RuntimeError::Process {
                op: "stopping",
                id: id.into(),
                source: std::io::Error::other("its state did not settle"),
            }),
        }
    }

    /// A container whose monitor is gone: kill what is left, release the engine state and
    /// the cgroup, and record the end on the monitor's behalf.
    fn clean_up_lost(
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
        Ok(exit)
    }

    /// Remove a container and everything it wrote (its volumes stay). A running container
    /// is refused unless `force`, which stops it first.
    pub fn remove(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let paths = self.paths(id)?;
        let _lock = ContainerLock::acquire(&paths)?;
        let record = match self.record(id) {
            Ok(record) => record,
            Err(RuntimeError::Record(record::RecordError::Damaged { .. })) => {
                return self.remove_unreadable(id, &paths);
            }
            Err(e) => return Err(e),
        };
        if self.state(id)?.is_running() {
            if !force {
                return Err(RuntimeError::Running { id: id.into() });
            }
            self.stop_locked(id, Some(Duration::ZERO))?;
        }
        // What still runs in the cgroup of a container not seen as running (its monitor and
        // starter died between the engine's create and the monitor record: its init waits
        // in the cgroup) is killed first, or the cgroup could never be removed. Cgroups made
        // below the container's own (only a container allowed to write cgroupfs can make
        // them) would make the engine's removal fail forever.
        if let Ok(hierarchies) = cgroupfs::hierarchies() {
            kill_cgroup(id, &hierarchies, &record.cgroup_path)?;
            cgroupfs::remove(&hierarchies, &record.cgroup_path).map_err(|source| {
                RuntimeError::Process {
                    op: "removing the cgroup of",
                    id: id.into(),
                    source,
                }
            })?;
        }
        engine::for_record(&record, &self.layout.engine_root()).delete(id)?;
        self.delete_dir(id, &paths)?;
        self.unplug(id, true);
        Ok(())
    }

    /// Remove a container whose own record cannot be read: whatever of it may exist in the
    /// kernel is found by its id (its processes through the monitor record, its cgroup,
    /// either engine's state), then the directory goes. Everything under `containers/` is
    /// berth's, so nothing foreign is touched.
    fn remove_unreadable(
        &self,
        id: &str,
        paths: &layout::ContainerPaths,
    ) -> Result<(), RuntimeError> {
        if let Ok(Some(monitor)) = record::load::<MonitorRecord>(&paths.monitor()) {
            for process in [monitor.init, monitor.monitor] {
                if let Ok(Some(fd)) = process.open() {
                    let _ = sys::send_signal(&fd, Signal::KILL.0);
                    let _ = sys::wait_readable(&fd, Some(MONITOR_EXIT_TIMEOUT));
                }
            }
        }
        self.release_by_id(id)?;
        self.delete_dir(id, paths)?;
        self.unplug(id, true);
        Ok(())
    }

    /// Containers that exist in the kernel — a cgroup of berth's scope, or engine state —
    /// but have no directory under the state root (deleted by hand): nothing records or
    /// supervises them, so they are found by these marks. The kernel is read before the
    /// directories, so a container being created (directory first, then cgroup) is never
    /// taken for one.
    pub fn orphans(&self) -> Result<Vec<String>, RuntimeError> {
        let hierarchies = cgroupfs::hierarchies().map_err(|source| RuntimeError::Process {
            op: "reading the cgroup mounts for",
            id: "-".into(),
            source,
        })?;
        let mut marked: std::collections::BTreeSet<String> =
            cgroupfs::children_of_scope(&hierarchies, &format!("/{}", self.layout.scope))
                .map_err(|source| RuntimeError::Process {
                    op: "listing the cgroups of",
                    id: self.layout.scope.clone(),
                    source,
                })?
                .into_iter()
                .collect();
        for engine in ["embedded", "oci"] {
            let dir = self.layout.engine_root().join(engine);
            match std::fs::read_dir(&dir) {
                Ok(entries) => marked.extend(
                    entries
                        .flatten()
                        .filter_map(|e| e.file_name().to_str().map(String::from)),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("listing", &dir)(e).into()),
            }
        }
        marked.retain(|id| layout::valid_id(id));
        if marked.is_empty() {
            return Ok(Vec::new());
        }
        for entry in self.container_dirs()? {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `ID`, `.ID.creating.…` or `.ID.removing.…`: the container is someone's.
            let id = name
                .trim_start_matches('.')
                .split(".creating.")
                .next()
                .and_then(|n| n.split(".removing.").next())
                .unwrap_or_default();
            marked.remove(id);
        }
        Ok(marked.into_iter().collect())
    }

    /// Kill and remove what is left of an orphan (`orphans`): every process in its cgroup,
    /// the cgroup, the engine's state, its network leases. Its monitor, if it still runs,
    /// ends with the container's init. Idempotent: an id of which nothing is left is
    /// removed already. Refused if the container has a directory again.
    pub fn remove_orphan(&self, id: &str) -> Result<(), RuntimeError> {
        let paths = self.paths(id)?;
        if paths.dir.exists() {
            return Err(RuntimeError::Process {
                op: "removing the orphan",
                id: id.into(),
                source: std::io::Error::other("it has a state directory; it is not an orphan"),
            });
        }
        self.release_by_id(id)?;
        self.unplug(id, true);
        Ok(())
    }

    /// Release what a container of `id` holds in the kernel, found by its id alone: every
    /// process of its cgroup killed, then the cgroup and either engine's state removed. The
    /// engine state is removed directly, not through the engine (an external engine's
    /// binary may be anywhere, or gone): once the cgroup is empty no process is left for it
    /// to kill, and its state is only files. Idempotent: what is already gone (the
    /// container's own monitor may be removing it at the same time) is done.
    fn release_by_id(&self, id: &str) -> Result<(), RuntimeError> {
        let hierarchies = cgroupfs::hierarchies().map_err(|source| RuntimeError::Process {
            op: "reading the cgroup mounts for",
            id: id.into(),
            source,
        })?;
        let cgroup = self.layout.cgroup_path(id);
        kill_cgroup(id, &hierarchies, &cgroup)?;
        cgroupfs::remove(&hierarchies, &cgroup).map_err(|source| RuntimeError::Process {
            op: "removing the cgroup of",
            id: id.into(),
            source,
        })?;
        for engine in ["embedded", "oci"] {
            let state = self.layout.engine_root().join(engine).join(id);
            match std::fs::remove_dir_all(&state) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err("removing", &state)(e).into());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn delete_dir(&self, id: &str, paths: &layout::ContainerPaths) -> Result<(), RuntimeError> {
        let doomed = self.layout.containers().join(fsutil::doomed_name(id));
        std::fs::rename(&paths.dir, &doomed).map_err(io_err("renaming", &paths.dir))?;
        crate::failpoint::hit("remove-after-rename");
        std::fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))?;
        Ok(())
    }

    /// The entries of the containers directory (none if it does not exist yet).
    fn container_dirs(&self) -> Result<Vec<std::fs::DirEntry>, RuntimeError> {
        let dir = self.layout.containers();
        match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| io_err("listing", &dir)(e).into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("listing", &dir)(e).into()),
        }
    }

    /// Ids of container directories whose record cannot be read (`list` skips them).
    pub fn unreadable(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self.scan(&mut std::collections::HashMap::new())?.1)
    }

    /// Run a command inside a running container (joins its namespaces and cgroup). Must be
    /// called from a single-threaded process.
    pub fn exec(&self, id: &str, request: &engine::ExecRequest) -> Result<i32, RuntimeError> {
        let record = self.record(id)?;
        if !matches!(self.state(id)?, State::Running(_)) {
            return Err(RuntimeError::StartFailed {
                id: id.into(),
                message: "it is not running".into(),
            });
        }
        let bundle = self.paths(id)?;
        Ok(
            engine::for_record(&record, &self.layout.engine_root()).exec(
                id,
                bundle.bundle(),
                request,
            )?,
        )
    }
}

/// Kill every process in the cgroup `cgroup` (and below it) and wait, at most
/// `MONITOR_EXIT_TIMEOUT`, until none is left. Each process is opened as a pidfd first and
/// its membership checked after, by reading the cgroup again: the signal cannot reach a
/// process that reused the pid after leaving the cgroup. Reading `cgroup.procs` rather than
/// `/proc/PID/cgroup` works from inside a cgroup namespace too.
fn kill_cgroup(
    id: &str,
    hierarchies: &[cgroupfs::Hierarchy],
    cgroup: &str,
) -> Result<(), RuntimeError> {
    let deadline = std::time::Instant::now() + MONITOR_EXIT_TIMEOUT;
    loop {
        let pids = cgroupfs::processes(hierarchies, cgroup);
        if pids.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(RuntimeError::Process {
                op: "killing the processes of",
                id: id.into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "processes {pids:?} are still in its cgroup after {}s",
                        MONITOR_EXIT_TIMEOUT.as_secs()
                    ),
                ),
            });
        }
        let opened: Vec<(i32, std::os::fd::OwnedFd)> = pids
            .iter()
            .filter(|&&pid| pid > 0)
            .filter_map(|&pid| Some((pid, ProcessId::of(pid).ok()?.open().ok()??)))
            .collect();
        let members = cgroupfs::processes(hierarchies, cgroup);
        for (pid, fd) in &opened {
            if members.binary_search(pid).is_ok() {
                let _ = sys::send_signal(fd, Signal::KILL.0);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The creator named in a `.ID.creating.PID.START` directory.
fn creator_of(name: &str) -> Option<ProcessId> {
    let (_, owner) = name.split_once(".creating.")?;
    let (pid, start_time) = owner.split_once('.')?;
    Some(ProcessId {
        pid: pid.parse().ok()?,
        start_time: start_time.parse().ok()?,
    })
}

/// `NAME-` plus 8 hex digits: unique per creation, so an old and a new container of the
/// same name (start-first replacement) never share a directory or a cgroup.
fn new_id(name: &str) -> String {
    let mut seed = Vec::new();
    seed.extend_from_slice(name.as_bytes());
    seed.extend_from_slice(&std::process::id().to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    seed.extend_from_slice(&now.to_le_bytes());
    let mut random = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut random);
    }
    seed.extend_from_slice(&random);
    let hash = crate::sha256::hex_digest(&seed);
    format!("{name}-{}", &hash[..8])
}

fn engine_record(choice: &EngineChoice) -> Result<EngineRecord, RuntimeError> {
    match choice {
        EngineChoice::Embedded => Ok(EngineRecord::Embedded),
        EngineChoice::Oci(name) if name.starts_with('/') => Ok(EngineRecord::Oci {
            binary: PathBuf::from(name),
        }),
        EngineChoice::Oci(name) => {
            let path = std::env::var("PATH").unwrap_or_else(|_| bundle::DEFAULT_PATH.into());
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
                .map(|binary| EngineRecord::Oci { binary })
                .ok_or_else(|| RuntimeError::NoRuntime {
                    name: name.clone(),
                    path,
                })
        }
    }
}

fn sys_nofile_hard() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX)
}
