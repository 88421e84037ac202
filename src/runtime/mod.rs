//! The runtime: from an image and a `[container.*]` entry to an isolated, limited, logged
//! process under its own monitor. `Runtime` is the API the CLI and the reconciler use:
//! create (bundle and records), start (spawn the monitor, wait for readiness), state (records
//! confirmed against the kernel), stop (signal, timeout, SIGKILL), remove.

pub mod bundle;
pub mod cgroupfs;
pub mod engine;
pub mod etc;
pub mod exec;
pub mod layout;
pub mod logfile;
pub mod monitor;
pub mod record;
pub mod rootfs;
pub mod seccomp;
pub mod seccomp_bpf;
pub mod stats;
pub mod supervise;
pub mod sys;
pub mod users;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::image::ImageConfiguration;

use self::layout::Layout;
use self::monitor::Readiness;
use self::record::{BootId, ContainerRecord, EngineRecord, ExitRecord, MonitorRecord, Seed};
use self::sys::ProcessId;
use crate::fsutil::{self, FsError, io_err};
use crate::image::record::ImageRecord;
use crate::spec::engine::Engine as EngineChoice;
use crate::spec::model::{Container, ContainerNetwork};
use crate::spec::mount::Mount;
use crate::spec::signal::Signal;

/// How long `stop` waits for a monitor to record the exit after its container died.
const MONITOR_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

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
    #[error("writing the runtime spec of {id}: {message}")]
    Spec { id: String, message: String },
    #[error("container {name}: {what}")]
    Unsupported { name: String, what: String },
    #[error("no container {what}")]
    NotFound { what: String },
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
}

#[derive(Debug, Clone)]
pub struct Runtime {
    layout: Layout,
    /// The berth binary the monitor is run from.
    monitor_binary: PathBuf,
}

impl Runtime {
    /// The runtime of a state root; monitors are this very executable.
    pub fn new(state_root: &Path) -> Result<Runtime, RuntimeError> {
        let exe = std::env::current_exe().map_err(|source| RuntimeError::Spawn {
            id: "-".into(),
            source,
        })?;
        Ok(Self::with_monitor_binary(state_root, &exe))
    }

    /// For callers that are not the berth binary themselves (tests, embedders).
    pub fn with_monitor_binary(state_root: &Path, binary: &Path) -> Runtime {
        Runtime {
            layout: Layout::new(state_root),
            monitor_binary: binary.to_path_buf(),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Write the bundle and the records of a new container; nothing runs yet. The directory
    /// is built under a temporary name and renamed, so a container exists completely or not
    /// at all.
    pub fn create(&self, req: &CreateRequest) -> Result<ContainerRecord, RuntimeError> {
        if matches!(req.container.network, ContainerNetwork::Bridge(_)) {
            return Err(RuntimeError::Unsupported {
                name: req.name.into(),
                what: "bridge networks and published ports are not implemented in this version; \
                       use network = \"none\" (loopback only) or network = \"host\""
                    .into(),
            });
        }
        let id = new_id(req.name);
        let containers = self.layout.containers();
        std::fs::create_dir_all(&containers).map_err(io_err("creating", &containers))?;
        let tmp = containers.join(format!(".{id}.creating"));
        let tmp_paths = layout::ContainerPaths { dir: tmp.clone() };
        for dir in [
            tmp_paths.rootfs(),
            tmp_paths.upper(),
            tmp_paths.work(),
            tmp_paths.logs(),
        ] {
            std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        }
        let c = req.container;
        let own_network = !matches!(c.network, ContainerNetwork::Host);
        etc::write(&tmp_paths.etc(), &c.hostname, own_network, &Vec::new())?;
        let final_paths = self.layout.container(&id);
        let cgroup_path = self.layout.cgroup_path(&id);
        let mut spec = bundle::build(&bundle::SpecInputs {
            id: &id,
            name: req.name,
            container: c,
            image: req.image_config,
            etc_dir: &final_paths.etc(),
            volumes: req.volumes,
            cgroup_path: &cgroup_path,
            nofile_hard: sys_nofile_hard(),
        })?;
        let engine = engine_record(&c.runtime)?;
        if engine == EngineRecord::Embedded {
            // Compiled once per profile, loaded by the engine's executor; the spec handed to
            // libcontainer carries none, so it does not compile it again at every start.
            if let Some(linux) = spec.linux_mut()
                && let Some(profile) = linux.seccomp_mut().take()
            {
                let bpf =
                    seccomp_bpf::compile_cached(&profile, &self.layout.run_root.join("seccomp"))?;
                fsutil::write_replace(&tmp_paths.dir.join(engine::SECCOMP_BPF), &bpf)?;
                let json = serde_json::to_vec_pretty(&profile).map_err(|e| RuntimeError::Spec {
                    id: id.clone(),
                    message: e.to_string(),
                })?;
                fsutil::write_replace(&tmp_paths.dir.join("seccomp.json"), &json)?;
            }
        }
        spec.save(tmp_paths.config())
            .map_err(|e| RuntimeError::Spec {
                id: id.clone(),
                message: e.to_string(),
            })?;

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
            id: id.clone(),
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
            stop_signal: stop_signal.0,
            stop_timeout_ms: c.stop_timeout.0.as_millis() as u64,
            log_max_size: c.log.max_size.0,
            log_max_files: c.log.max_files,
            cgroup_path,
        };
        record::save(&tmp_paths.record(), &record)?;
        fsutil::sync_dir(&tmp)?;
        std::fs::rename(&tmp, &final_paths.dir).map_err(io_err("renaming", &tmp))?;
        fsutil::sync_dir(&containers)?;
        Ok(record)
    }

    /// Start a created container: spawn its monitor and wait until the container's process
    /// runs (or failed to).
    pub fn start(&self, id: &str) -> Result<MonitorRecord, RuntimeError> {
        let paths = self.layout.container(id);
        if record::load::<ContainerRecord>(&paths.record())?.is_none() {
            return Err(RuntimeError::NotFound { what: id.into() });
        }
        if paths.monitor().exists() || paths.exit().exists() {
            return Err(RuntimeError::StartFailed {
                id: id.into(),
                message: "it was started before; create a new container".into(),
            });
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
        let mut child = Command::new(&self.monitor_binary)
            .arg("--root")
            .arg(&self.layout.state_root)
            .arg("monitor")
            .arg(id)
            .env_remove("BERTH_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(spawn_err)?;
        let mut line = String::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut line).map_err(spawn_err)?;
        }
        child.wait().map_err(spawn_err)?;
        match serde_json::from_str::<Readiness>(line.trim()) {
            Ok(Readiness::Running { .. }) => record::load::<MonitorRecord>(&paths.monitor())?
                .ok_or_else(|| RuntimeError::StartFailed {
                    id: id.into(),
                    message: "the monitor reported readiness but wrote no record".into(),
                }),
            Ok(Readiness::Failed { error }) => Err(RuntimeError::StartFailed {
                id: id.into(),
                message: error,
            }),
            Err(_) => Err(RuntimeError::StartFailed {
                id: id.into(),
                message: format!(
                    "the monitor ended without reporting; see {}",
                    paths.monitor_log().display()
                ),
            }),
        }
    }

    pub fn record(&self, id: &str) -> Result<ContainerRecord, RuntimeError> {
        record::load(&self.layout.container(id).record())?
            .ok_or_else(|| RuntimeError::NotFound { what: id.into() })
    }

    /// Every container berth created under this state root, oldest first.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, RuntimeError> {
        let dir = self.layout.containers();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &dir)(e).into()),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if let Some(r) = record::load::<ContainerRecord>(&entry.path().join("container.json"))?
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
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
        let paths = self.layout.container(id);
        if let Some(exit) = record::load::<ExitRecord>(&paths.exit())? {
            return Ok(State::Exited(exit));
        }
        let Some(monitor) = record::load::<MonitorRecord>(&paths.monitor())? else {
            return Ok(State::Created);
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
        let record = self.record(id)?;
        let timeout = timeout.unwrap_or(Duration::from_millis(record.stop_timeout_ms));
        let perr = |op: &'static str| {
            let id = id.to_string();
            move |source| RuntimeError::Process { op, id, source }
        };
        match self.state(id)? {
            State::Created => Ok(None),
            State::Exited(exit) => Ok(Some(exit)),
            State::Running(monitor) => {
                if let Some(fd) = monitor.init.open().map_err(perr("signalling"))? {
                    sys::send_signal(&fd, record.stop_signal).map_err(perr("signalling"))?;
                    if !sys::wait_readable(&fd, Some(timeout)).map_err(perr("waiting for"))? {
                        tracing::info!(
                            container = id,
                            "did not stop within {timeout:?}; killing it"
                        );
                        sys::send_signal(&fd, Signal::KILL.0).map_err(perr("killing"))?;
                        sys::wait_readable(&fd, Some(MONITOR_EXIT_TIMEOUT))
                            .map_err(perr("waiting for"))?;
                    }
                }
                if let Some(fd) = monitor.monitor.open().map_err(perr("waiting for"))? {
                    sys::wait_readable(&fd, Some(MONITOR_EXIT_TIMEOUT))
                        .map_err(perr("waiting for"))?;
                }
                match self.state(id)? {
                    State::Exited(exit) => Ok(Some(exit)),
                    _ => self.clean_up_lost(id, &record, None).map(Some),
                }
            }
            State::Lost { init, .. } => self.clean_up_lost(id, &record, init).map(Some),
        }
    }

    /// A container whose monitor is gone: kill what is left, release the engine state and
    /// the cgroup, and record the end on the monitor's behalf.
    fn clean_up_lost(
        &self,
        id: &str,
        record: &ContainerRecord,
        init: Option<ProcessId>,
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
        engine::for_record(&record.engine, &self.layout.engine_root()).delete(id)?;
        let now = record::now_ms();
        let exit = ExitRecord {
            code: None,
            signal,
            oom_killed: false,
            started_at_ms: now,
            finished_at_ms: now,
            error: Some("its monitor was lost; berth cleaned up after it".into()),
        };
        record::save_volatile(&self.layout.container(id).exit(), &exit)?;
        Ok(exit)
    }

    /// Remove a container and everything it wrote (its volumes stay). A running container
    /// is refused unless `force`, which stops it first.
    pub fn remove(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let record = self.record(id)?;
        if self.state(id)?.is_running() {
            if !force {
                return Err(RuntimeError::Running { id: id.into() });
            }
            self.stop(id, Some(Duration::ZERO))?;
        }
        engine::for_record(&record.engine, &self.layout.engine_root()).delete(id)?;
        let dir = self.layout.container(id).dir;
        let doomed = self.layout.containers().join(format!(".{id}.removing"));
        std::fs::rename(&dir, &doomed).map_err(io_err("renaming", &dir))?;
        std::fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))?;
        Ok(())
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
        let bundle = self.layout.container(id);
        Ok(
            engine::for_record(&record.engine, &self.layout.engine_root()).exec(
                id,
                bundle.bundle(),
                request,
            )?,
        )
    }
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
