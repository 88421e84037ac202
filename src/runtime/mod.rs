//! The runtime: from an image and a `[container.*]` entry to an isolated, limited, logged
//! process under its own monitor. `Runtime` is the API the CLI and the reconciler use:
//! create (bundle and records), start (spawn the monitor, wait for readiness), state (records
//! confirmed against the kernel), stop (signal, timeout, SIGKILL), remove. Each operation is
//! an `impl Runtime` block of its own file; this one holds what they share.

pub(crate) mod bundle;
pub mod cgroupfs;
pub(crate) mod confine;
pub(crate) mod disk;
pub mod engine;
pub(crate) mod events;
pub(crate) mod exec;
pub(crate) mod files;
pub(crate) mod joins;
pub(crate) mod kernel_keys;
pub mod logfile;
pub(crate) mod monitor;
pub(crate) mod mountinfo;
pub(crate) mod plumbing;
pub(crate) mod rootfs;
pub(crate) mod seccomp;
pub(crate) mod seccomp_bpf;
pub(crate) mod seccomp_docker;
pub(crate) mod secret_env;
pub mod stats;
pub mod supervise;
pub(crate) mod users;

mod create;
mod exec_op;
pub use exec_op::CannotRun;
mod list;
mod orphans;
mod remove;
mod start;
mod stop;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use self::create::CreateRequest;
pub(crate) use self::plumbing::Plumbing;
use crate::fsutil::{self, FsError, io_err};
use crate::state::layout::{self, Layout};
use crate::state::record::{self, ExitRecord, MonitorRecord};
use crate::sys::ProcessId;

/// How long `stop` waits for a monitor to record the exit after its container died.
const MONITOR_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an operation waits for another one on the same container to finish.
const LOCK_TIMEOUT: Duration = Duration::from_secs(150);

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
        // Bounded: a monitor holds the lock until it reports (at most START_TIMEOUT after its
        // last progress, in start.rs), and nothing else holds it longer than a stop.
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
    #[error(transparent)]
    KernelKeys(#[from] kernel_keys::KernelKeysError),
    #[error(transparent)]
    SecretEnv(#[from] secret_env::SecretEnvError),
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

#[derive(Debug, Clone)]
pub struct Runtime {
    layout: Layout,
    /// The berth binary the monitor is run from.
    monitor_binary: PathBuf,
    plumbing: Arc<dyn Plumbing>,
}

impl Runtime {
    /// The runtime of a state root; monitors are this very executable.
    pub(crate) fn new(
        state_root: &Path,
        plumbing: Arc<dyn Plumbing>,
    ) -> Result<Runtime, RuntimeError> {
        let exe = std::env::current_exe().map_err(|source| RuntimeError::Spawn {
            id: "-".into(),
            source,
        })?;
        Ok(Self::with_monitor_binary(state_root, &exe, plumbing))
    }

    /// For callers that are not the berth binary themselves (tests, embedders).
    pub(crate) fn with_monitor_binary(
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
    pub(crate) fn binary(&self) -> &Path {
        &self.monitor_binary
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The paths of a container, for a well-formed id only (ids become paths and cgroups).
    fn paths(&self, id: &str) -> Result<layout::ContainerPaths, RuntimeError> {
        if !layout::valid_id(id) {
            return Err(RuntimeError::NotFound { what: id.into() });
        }
        Ok(self.layout.container(id))
    }

    /// A stopped container's forwards go (`release`: its addresses too). Not an error for
    /// the stop: the reconciler's next pass finds rules that differ from the state and
    /// rebuilds them.
    fn unplug(&self, id: &str, release: bool) {
        if let Err(e) = self.plumbing.unplug(id, release) {
            tracing::warn!(container = id, "unplugging from its networks: {e}");
        }
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
}
