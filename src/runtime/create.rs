//! `Runtime::create`: a new container's directory (bundle, runtime spec, records), built
//! under a temporary name and renamed into place; and the sweep of directories that an
//! interrupted create or remove left.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;

use super::{Runtime, RuntimeError, bundle, disk, engine, kernel_keys, seccomp_bpf};
use crate::fsutil::{self, io_err};
use crate::spec::engine::Engine as EngineChoice;
use crate::spec::model::{Container, ContainerNetwork};
use crate::spec::mount::Mount;
use crate::spec::signal::Signal;
use crate::state::events::Action;
use crate::state::image::ImageRecord;
use crate::state::layout;
use crate::state::record::{self, ContainerRecord, EngineRecord, Seed};
use crate::sys::ProcessId;

/// Everything `create` needs: the entry, its hash, the image, and prepared volumes.
pub(crate) struct CreateRequest<'a> {
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
    /// The contents of the entry's `files`, in their order.
    pub files: &'a [super::files::ContainerFile<'a>],
    /// The values of the entry's `secret_env`.
    pub secret_env: &'a [super::secret_env::SecretEnvValue<'a>],
}

impl Runtime {
    /// Write the bundle and the records of a new container; nothing runs yet. The directory
    /// is built under a temporary name and renamed, so a container exists completely or not
    /// at all for every reader. Nothing waits for the disk: a container does not outlive a
    /// power loss as a process anyway, and one whose files a power loss damaged is refused
    /// at start (unreadable record or spec, seccomp program not the recorded one) and
    /// replaced from the desired state.
    pub(crate) fn create(&self, req: &CreateRequest) -> Result<ContainerRecord, RuntimeError> {
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
        let built = self
            .write_files(&id, req.files)
            .and_then(|()| self.write_secret_env(&id, req.secret_env))
            .and_then(|()| self.build_container_dir(req, &id, engine, &tmp));
        let record = match built {
            Ok(record) => record,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                let _ = self.remove_files(&id);
                return Err(e);
            }
        };
        crate::failpoint::hit("create-before-rename");
        let final_dir = self.layout.container(&id).dir;
        std::fs::rename(&tmp, &final_dir).map_err(io_err("renaming", &tmp))?;
        crate::failpoint::hit("create-after-rename");
        self.record_event(self.container_event(&record, Action::Create));
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
        let own_network = c.network.is_own();
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
        kernel_keys::apply(&mut spec, &c.kernel, &kernel_keys::host_facts(&c.kernel)?)?;
        let spec_err = |e: &dyn std::fmt::Display| RuntimeError::Spec {
            id: id.to_string(),
            message: e.to_string(),
        };
        // Secrets and configs last: their targets may lie inside another mount.
        let files_dir = self.layout.container_files(id);
        for (i, f) in c.files.iter().enumerate() {
            let mount = oci_spec::runtime::MountBuilder::default()
                .destination(&f.target)
                .typ("bind")
                .source(super::files::host_path(&files_dir, i))
                .options(vec![
                    "rbind".to_string(),
                    "rprivate".to_string(),
                    "ro".to_string(),
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    "noexec".to_string(),
                ])
                .build()
                .map_err(|e| spec_err(&e))?;
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            mounts.push(mount);
            spec.set_mounts(Some(mounts));
        }
        // Env-passed secrets by name only: their values are added at each start.
        let secret_vars: Vec<&str> = c.secret_env.iter().map(|s| s.env.as_str()).collect();
        super::secret_env::annotate(&mut spec, &secret_vars);
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
            stop_timeout_ms: crate::units::millis(c.stop_timeout.0),
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
            dns: c.dns.clone(),
            joins: c
                .joins()
                .into_iter()
                .map(|(kind, owner)| (kind, owner.to_string()))
                .collect(),
        };
        fsutil::write_new_file(
            &tmp_paths.record(),
            &record::encode(&tmp_paths.record(), &record)?,
        )?;
        Ok(record)
    }

    /// Directories left by a `create` or `remove` that crashed midway (never one in
    /// progress), and secrets and configs of containers that no longer exist.
    pub(crate) fn sweep_leftovers(&self) {
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
        // After the abandoned creates, whose files it then finds without a container.
        self.sweep_files();
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
