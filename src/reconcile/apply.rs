//! Carrying out a plan: independent steps run in parallel (bounded), a step waits for the
//! steps it comes after, and a failed step skips only what depends on it. Every step is
//! idempotent against the state it finds, because the next pass plans from scratch anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio::task::JoinSet;

use super::plan::{Action, Plan};
use crate::image::ImageService;
use crate::image::registry::{PullOptions, Silent};
use crate::image::unpack::Limits;
use crate::runtime::{CreateRequest, Runtime};
use crate::spec::image_ref::ImageSource;
use crate::spec::model::Desired;
use crate::spec::mount::Mount;
use crate::state::events::{Action as EventAction, EventLog};
use crate::state::image::ImageRecord;
use crate::state::record::ContainerRecord;
use crate::volume::Volumes;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error(transparent)]
    Hash(#[from] crate::spec::hash::HashError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error("network {name} exists as {subnet}{} and this directory describes it differently; change it with `berth apply` (or let the agent), which replaces the containers on it", if *internal { ", internal" } else { "" })]
    NetworkDiffers {
        name: String,
        subnet: String,
        internal: bool,
    },
    #[error("{kind} {name} is not described")]
    Undescribed { kind: &'static str, name: String },
    #[error("image {image} is not in the store")]
    NotInStore { image: String },
    #[error("`{image}` is not an image reference: {message}")]
    BadSource { image: String, message: String },
    #[error(
        "container {id} was made from an earlier spec of its entry and its secrets and configs are gone ({} is missing; a reboot empties them): it is not started with the entry's current ones; its update or a replacement takes its place",
        path.display()
    )]
    FilesGone { id: String, path: PathBuf },
    #[error("a step's task failed: {0}")]
    Task(String),
    #[error(
        "start-first update of {name} failed: {why}; the new container was removed, the old one serves on"
    )]
    UpdateFailed { name: String, why: String },
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    Done {
        detail: String,
    },
    Failed {
        error: String,
    },
    /// Not attempted: a step it comes after failed, or the agent is shutting down.
    Skipped {
        reason: String,
    },
}

impl Outcome {
    pub(crate) fn failed(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }
}

/// What steps work with; cheap to clone into blocking tasks.
#[derive(Clone)]
pub struct Machine {
    pub runtime: Runtime,
    pub images: Arc<ImageService>,
    pub volumes: Volumes,
}

impl Machine {
    pub fn open(
        root: &std::path::Path,
        auth_file: Option<&std::path::Path>,
    ) -> Result<Machine, ApplyError> {
        Ok(Machine {
            runtime: crate::wiring::runtime(root)?,
            images: Arc::new(ImageService::open(root, auth_file)?),
            volumes: Volumes::new(root),
        })
    }

    pub fn networks(&self) -> crate::network::Networks {
        crate::network::Networks::new(self.runtime.layout())
    }
}

/// Run every step of `plan`, at most `parallel` at once. `stop` ends the run between steps.
pub(crate) async fn execute(
    machine: &Machine,
    desired: &Arc<Desired>,
    plan: &Plan,
    parallel: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<Outcome> {
    let n = plan.steps.len();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut started = vec![false; n];
    let mut running: JoinSet<(usize, Outcome)> = JoinSet::new();
    loop {
        // Start whatever is ready, up to the limit.
        for i in 0..n {
            if started[i] || running.len() >= parallel.max(1) {
                continue;
            }
            let step = &plan.steps[i];
            let mut ready = true;
            for &a in &step.after {
                match outcomes.get(a).and_then(Option::as_ref) {
                    Some(Outcome::Done { .. }) => {}
                    Some(Outcome::Failed { .. } | Outcome::Skipped { .. }) => {
                        started[i] = true;
                        outcomes[i] = Some(Outcome::Skipped {
                            reason: format!(
                                "it comes after `{}`, which did not succeed",
                                describe(&plan.steps[a].action)
                            ),
                        });
                        ready = false;
                        break;
                    }
                    None => ready = false,
                }
            }
            if !ready || started[i] {
                continue;
            }
            started[i] = true;
            if stop.load(Ordering::Relaxed) {
                outcomes[i] = Some(Outcome::Skipped {
                    reason: "berth is shutting down".into(),
                });
                continue;
            }
            let (machine, desired, action) =
                (machine.clone(), desired.clone(), step.action.clone());
            running.spawn(async move {
                let outcome = match run_action(&machine, &desired, &action).await {
                    Ok(detail) => Outcome::Done { detail },
                    Err(e) => Outcome::Failed {
                        error: crate::image::registry::error_chain(&e),
                    },
                };
                (i, outcome)
            });
        }
        match running.join_next().await {
            Some(Ok((i, outcome))) => {
                let action = &plan.steps[i].action;
                let (entry, container) = subject(action);
                match &outcome {
                    Outcome::Failed { error } => {
                        tracing::warn!(step = %describe(action), entry, container, "failed: {error}")
                    }
                    Outcome::Done { detail } => {
                        tracing::info!(step = %describe(action), entry, container, "{detail}")
                    }
                    Outcome::Skipped { .. } => {}
                }
                outcomes[i] = Some(outcome);
            }
            Some(Err(e)) => {
                // A panicking step: its index is lost with it; mark every started, unfinished
                // step as failed so nothing waits forever.
                for (outcome, started) in outcomes.iter_mut().zip(&started) {
                    if *started && outcome.is_none() {
                        *outcome = Some(Outcome::Failed {
                            error: format!("the step's task ended abnormally: {e}"),
                        });
                    }
                }
                running.abort_all();
            }
            None => {
                if started.iter().all(|s| *s) {
                    break;
                }
                // Nothing running and nothing could start: unmet orderings (cannot happen
                // with planner output, whose `after` indices point backwards).
                for outcome in outcomes.iter_mut().filter(|o| o.is_none()) {
                    *outcome = Some(Outcome::Skipped {
                        reason: "its ordering could not be satisfied".into(),
                    });
                }
                break;
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(Outcome::Skipped {
                reason: "not reached".into(),
            })
        })
        .collect()
}

/// One line for logs and summaries: "run container web".
fn describe(action: &Action) -> String {
    match action {
        Action::Pull { image } => format!("pull image {image}"),
        Action::CreateVolume { name } => format!("create volume {name}"),
        Action::EnsureNetwork { name } => format!("ensure network {name}"),
        Action::RemoveNetwork { name } => format!("remove network {name}"),
        Action::RepairNetworkRules => "repair network rules".into(),
        Action::Run { name } => format!("run container {name}"),
        Action::Start { name, id } => format!("start container {name} ({id})"),
        Action::Restart { name, id, .. } => format!("restart container {name} ({id})"),
        Action::Replace { name, old } => format!("replace container {name} ({})", old.join(", ")),
        Action::StartFirst { name, serving } => {
            format!("start container {name} beside {}", serving.join(", "))
        }
        Action::TakeOver { name, id, .. } => format!("switch ports of {name} to {id}"),
        Action::AbortUpdate { name, id, .. } => format!("abort update of {name} ({id})"),
        Action::StopUnhealthy { name, id } => format!("stop unhealthy container {name} ({id})"),
        Action::Rejoin { name, id, .. } => format!("rejoin container {name} ({id})"),
        Action::Stop { name, id } => format!("stop container {name} ({id})"),
        Action::Remove { id, .. } => format!("remove container {id}"),
        Action::RemoveOrphan { id } => format!("kill orphaned container {id}"),
        Action::PruneImages { images } => format!("prune {} image(s)", images.len()),
    }
}

/// The entry and the container a step is about, as log fields (`entry=`, `container=`).
fn subject(action: &Action) -> (Option<&str>, Option<&str>) {
    match action {
        Action::Run { name } | Action::Replace { name, .. } | Action::StartFirst { name, .. } => {
            (Some(name.as_str()), None)
        }
        Action::Start { name, id }
        | Action::Restart { name, id, .. }
        | Action::TakeOver { name, id, .. }
        | Action::AbortUpdate { name, id, .. }
        | Action::StopUnhealthy { name, id }
        | Action::Rejoin { name, id, .. }
        | Action::Stop { name, id } => (Some(name.as_str()), Some(id)),
        Action::Remove { name, id } => (Some(name), Some(id)),
        Action::RemoveOrphan { id } => (None, Some(id)),
        Action::Pull { .. }
        | Action::CreateVolume { .. }
        | Action::EnsureNetwork { .. }
        | Action::RemoveNetwork { .. }
        | Action::RepairNetworkRules
        | Action::PruneImages { .. } => (None, None),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApplyError> + Send + 'static,
) -> Result<T, ApplyError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApplyError::Task(e.to_string()))?
}

async fn run_action(
    machine: &Machine,
    desired: &Arc<Desired>,
    action: &Action,
) -> Result<String, ApplyError> {
    match action.clone() {
        Action::Pull { image } => {
            let record = pull(machine, desired, &image).await?;
            crate::failpoint::hit("apply-after-pull");
            Ok(format!("pulled {}", record.manifest))
        }
        Action::CreateVolume { name } => {
            let (m, d) = (machine.clone(), desired.clone());
            blocking(move || {
                let spec = d
                    .volumes
                    .get(&name)
                    .ok_or_else(|| ApplyError::Undescribed {
                        kind: "volume",
                        name: name.to_string(),
                    })?;
                m.volumes.ensure(name.as_str(), spec)?;
                Ok("created".into())
            })
            .await
        }
        Action::EnsureNetwork { name } => {
            let (m, d) = (machine.clone(), desired.clone());
            blocking(move || {
                let record = ensure_network(&m, &d, name.as_str())?;
                Ok(format!("bridge {} up", record.bridge))
            })
            .await
        }
        Action::RemoveNetwork { name } => {
            let m = machine.clone();
            blocking(move || {
                m.networks().remove(&name)?;
                Ok("removed".into())
            })
            .await
        }
        Action::RepairNetworkRules => {
            let m = machine.clone();
            blocking(move || {
                m.networks().repair_rules()?;
                Ok("rebuilt".into())
            })
            .await
        }
        Action::Run { name } => {
            let (m, d) = (machine.clone(), desired.clone());
            blocking(move || {
                let record = create_container(&m, &d, name.as_str(), false)?;
                m.runtime.start(&record.id)?;
                Ok(format!("{} running", record.id))
            })
            .await
        }
        Action::Start { name, id } => {
            let (m, d) = (machine.clone(), desired.clone());
            blocking(move || {
                rewrite_files(&m, &d, name.as_str(), &id)?;
                m.runtime.start(&id)?;
                Ok(format!("{id} running"))
            })
            .await
        }
        Action::Restart { name, id, streak } => {
            let (m, d) = (machine.clone(), desired.clone());
            blocking(move || {
                rewrite_files(&m, &d, name.as_str(), &id)?;
                m.runtime.restart(&id, streak)?;
                Ok(format!("{id} running again"))
            })
            .await
        }
        Action::Replace { name, old } => {
            let (m, d) = (machine.clone(), desired.clone());
            blocking(move || {
                // The new container is prepared while the old one still serves; a crash from
                // here on leaves a stale and a current container, and the next plan finishes.
                let record = create_container(&m, &d, name.as_str(), false)?;
                crate::failpoint::hit("replace-after-create");
                for id in &old {
                    m.runtime.stop(id, None).map(|_| ()).or_else(gone_is_done)?;
                    crate::failpoint::hit("replace-after-stop");
                    m.runtime.remove(id, true).or_else(gone_is_done)?;
                    crate::failpoint::hit("replace-after-remove");
                }
                m.runtime.start(&record.id)?;
                record_event(
                    &m,
                    &record,
                    EventAction::Replace,
                    &[("old", old.join(",")), ("new", record.id.clone())],
                );
                Ok(format!(
                    "{} running, replaced {}",
                    record.id,
                    old.join(", ")
                ))
            })
            .await
        }
        Action::StartFirst { name, serving } => {
            let (m, d) = (machine.clone(), desired.clone());
            blocking(move || {
                let record = create_container(&m, &d, name.as_str(), false)?;
                crate::failpoint::hit("start-first-after-create");
                m.runtime.start(&record.id)?;
                Ok(format!(
                    "{} running beside {}; it takes over the ports once healthy",
                    record.id,
                    serving.join(", ")
                ))
            })
            .await
        }
        Action::TakeOver { id, from, .. } => {
            let m = machine.clone();
            blocking(move || take_over(&m, &id, &from)).await
        }
        Action::AbortUpdate { name, id, why } => {
            let m = machine.clone();
            blocking(move || {
                if let Ok(record) = m.runtime.record(&id) {
                    record_event(
                        &m,
                        &record,
                        EventAction::Rollback,
                        &[("reason", why.clone())],
                    );
                }
                m.runtime
                    .stop(&id, None)
                    .map(|_| ())
                    .or_else(gone_is_done)?;
                crate::failpoint::hit("abort-after-stop");
                m.runtime.remove(&id, true).or_else(gone_is_done)?;
                Err(ApplyError::UpdateFailed {
                    name: name.to_string(),
                    why,
                })
            })
            .await
        }
        Action::Rejoin { name, id, streak } => {
            let (m, d) = (machine.clone(), desired.clone());
            blocking(move || {
                m.runtime
                    .stop_because(&id, "a container whose namespaces it shares started again")?;
                rewrite_files(&m, &d, name.as_str(), &id)?;
                m.runtime.restart(&id, streak)?;
                Ok(format!("{id} running again, in the current namespaces"))
            })
            .await
        }
        Action::StopUnhealthy { id, .. } => {
            let m = machine.clone();
            blocking(move || {
                let why = running_verdict(&m, &id)?
                    .map(|v| v.describe())
                    .unwrap_or_else(|| "unhealthy".into());
                let exit = m.runtime.stop_because(&id, &why)?;
                Ok(match exit {
                    Some(e) => format!("{id} {}", e.describe()),
                    None => format!("{id} stopped"),
                })
            })
            .await
        }
        Action::Stop { id, .. } => {
            let m = machine.clone();
            blocking(move || {
                let exit = m.runtime.stop(&id, None)?;
                Ok(match exit {
                    Some(e) => format!("{id} {}", e.describe()),
                    None => format!("{id} stopped"),
                })
            })
            .await
        }
        Action::Remove { id, .. } => {
            let m = machine.clone();
            blocking(move || {
                let record = m.runtime.record(&id).ok();
                m.runtime
                    .stop(&id, None)
                    .map(|_| ())
                    .or_else(ignore_damaged)
                    .or_else(gone_is_done)?;
                crate::failpoint::hit("prune-after-stop");
                m.runtime.remove(&id, true).or_else(gone_is_done)?;
                if let Some(record) = record {
                    record_event(&m, &record, EventAction::Prune, &[]);
                }
                Ok("removed".into())
            })
            .await
        }
        Action::RemoveOrphan { id } => {
            let m = machine.clone();
            blocking(move || {
                m.runtime.remove_orphan(&id)?;
                Ok("killed; its cgroup and engine state removed".into())
            })
            .await
        }
        Action::PruneImages { .. } => {
            let (m, d) = (machine.clone(), desired.clone());
            blocking(move || {
                let report = prune_images(&m, &d)?;
                Ok(format!(
                    "removed {} image(s), {} blob(s), {} layer(s)",
                    report.images.len(),
                    report.blobs,
                    report.layers
                ))
            })
            .await
        }
    }
}

/// The health verdict about the current run of `id`, if it runs and has one.
fn running_verdict(
    machine: &Machine,
    id: &str,
) -> Result<Option<crate::health::HealthRecord>, ApplyError> {
    Ok(match machine.runtime.state(id)? {
        crate::runtime::State::Running(monitor) => {
            crate::health::checks::read(machine.runtime.layout(), id, monitor.init)
        }
        _ => None,
    })
}

/// Switch the published ports to `id`, and say how long after it became healthy.
fn take_over(machine: &Machine, id: &str, from: &[String]) -> Result<String, ApplyError> {
    let healthy_since = running_verdict(machine, id)?
        .filter(|v| v.status == crate::health::Health::Healthy)
        .map(|v| v.since_ms);
    let claim = machine.networks().take_over(id)?;
    let now = crate::state::record::now_ms();
    let after = healthy_since.map(|since| now.saturating_sub(since));
    if let Some(ms) = after {
        tracing::info!(container = id, switch_ms = ms, "ports switched");
    }
    if let Ok(record) = machine.runtime.record(id) {
        let mut extra = vec![("old", from.join(",")), ("new", id.to_string())];
        if let Some(ms) = after {
            extra.push(("switch_ms", ms.to_string()));
        }
        // From the new container's creation: how long the whole update took to switch.
        if let Ok(created) = humantime::parse_rfc3339_weak(&record.created_at) {
            let created_ms = created
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, crate::units::millis);
            extra.push(("update_ms", now.saturating_sub(created_ms).to_string()));
        }
        record_event(machine, &record, EventAction::Switch, &extra);
    }
    Ok(format!(
        "ports now go to {id} (claim {}){}{}",
        claim.seq,
        after
            .map(|ms| format!(", {ms} ms after it became healthy"))
            .unwrap_or_default(),
        if from.is_empty() {
            String::new()
        } else {
            format!("; draining: {}", from.join(", "))
        }
    ))
}

/// A reconciler's event about a container (its labels, berth's attributes, `extra`).
fn record_event(
    machine: &Machine,
    record: &crate::state::record::ContainerRecord,
    action: EventAction,
    extra: &[(&str, String)],
) {
    let layout = machine.runtime.layout();
    let mut event = crate::state::events::container_event(layout, record, action);
    for (key, value) in extra {
        event = event.with(key, value);
    }
    EventLog::new(layout).append(&event);
}

/// `stop` on a container whose record is damaged fails; `remove` handles those itself.
fn ignore_damaged(e: crate::runtime::RuntimeError) -> Result<(), crate::runtime::RuntimeError> {
    match e {
        crate::runtime::RuntimeError::Record(crate::state::record::RecordError::Damaged {
            ..
        }) => Ok(()),
        other => Err(other),
    }
}

/// Removing or stopping a container that someone else removed in the meantime is done.
fn gone_is_done(e: crate::runtime::RuntimeError) -> Result<(), crate::runtime::RuntimeError> {
    match e {
        crate::runtime::RuntimeError::NotFound { .. } => Ok(()),
        other => Err(other),
    }
}

/// Pull options from the `[image.*]` entry naming this source, if any.
pub fn pull_options(desired: &Desired, source: &ImageSource) -> PullOptions {
    let mut options = PullOptions::default();
    if let Some(entry) = desired.images.values().find(|i| &i.source == source) {
        options.insecure = entry.insecure;
        if let Some(p) = &entry.platform {
            options.platform = crate::image::manifest::Platform {
                os: p.os.clone(),
                architecture: p.architecture.clone(),
                variant: p.variant.clone(),
            };
        }
    }
    options
}

/// Pull on a thread of its own: the registry client's futures are not `Send`-friendly
/// enough for the multi-threaded scheduler, and a pull is long and rare enough for a
/// dedicated single-threaded runtime to cost nothing that matters.
pub(crate) async fn pull(
    machine: &Machine,
    desired: &Desired,
    image: &str,
) -> Result<ImageRecord, ApplyError> {
    let source: ImageSource =
        image
            .parse()
            .map_err(
                |e: crate::spec::image_ref::ImageRefError| ApplyError::BadSource {
                    image: image.into(),
                    message: e.to_string(),
                },
            )?;
    let options = pull_options(desired, &source);
    let images = machine.images.clone();
    blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ApplyError::Task(format!("starting a runtime for the pull: {e}")))?;
        Ok(rt.block_on(images.pull(&source, &options, Arc::new(Silent)))?)
    })
    .await
}

/// Create (not start) a container for `[container.NAME]`: its volumes, unpacked layers,
/// bundle and records. The image must be in the store. `manual`: made by hand (`berth run`),
/// so the reconciler leaves it alone.
pub fn create_container(
    machine: &Machine,
    desired: &Desired,
    name: &str,
    manual: bool,
) -> Result<ContainerRecord, ApplyError> {
    let container = desired
        .containers
        .get(name)
        .ok_or_else(|| ApplyError::Undescribed {
            kind: "container",
            name: name.into(),
        })?;
    let image = machine
        .images
        .get(&container.image)?
        .ok_or_else(|| ApplyError::NotInStore {
            image: container.image.to_string(),
        })?;
    let mut prepared = BTreeMap::new();
    for m in &container.mounts {
        if let Mount::Volume { source, .. } = m {
            let spec =
                desired
                    .volumes
                    .get(source.as_str())
                    .ok_or_else(|| ApplyError::Undescribed {
                        kind: "volume",
                        name: source.to_string(),
                    })?;
            prepared.insert(source.to_string(), machine.volumes.ensure(source, spec)?);
        }
    }
    let layers: Vec<PathBuf> = machine.images.layer_dirs(&image, &Limits::default())?;
    let config = machine.images.config(&image)?;
    let hash = crate::spec::hash::container_hash(desired, container)?;
    let files = file_contents(desired, container)?;
    let secret_env = secret_env_values(desired, container)?;
    Ok(machine.runtime.create(&CreateRequest {
        name,
        container,
        spec_hash: hash.as_str(),
        image: &image,
        image_config: &config,
        layers: &layers,
        volumes: &prepared,
        manual,
        files: &files,
        secret_env: &secret_env,
    })?)
}

/// The value of each of the entry's env-passed secrets.
fn secret_env_values<'a>(
    desired: &'a Desired,
    container: &'a crate::spec::model::Container,
) -> Result<Vec<crate::runtime::secret_env::SecretEnvValue<'a>>, ApplyError> {
    container
        .secret_env
        .iter()
        .map(|s| {
            let secret = desired
                .secrets
                .get(&s.name)
                .ok_or_else(|| ApplyError::Undescribed {
                    kind: "secret",
                    name: s.name.to_string(),
                })?;
            Ok(crate::runtime::secret_env::SecretEnvValue {
                name: &s.env,
                bytes: secret.expose(),
            })
        })
        .collect()
}

/// The content of each of the entry's secrets and configs, in its `files` order.
fn file_contents<'a>(
    desired: &'a Desired,
    container: &'a crate::spec::model::Container,
) -> Result<Vec<crate::runtime::files::ContainerFile<'a>>, ApplyError> {
    use crate::spec::model::FileKind;
    container
        .files
        .iter()
        .map(|f| {
            let bytes = match f.kind {
                FileKind::Secret => desired.secrets.get(&f.name).map(|s| s.expose()),
                FileKind::Config => desired.configs.get(&f.name).map(|c| c.bytes.as_slice()),
            };
            let bytes = bytes.ok_or_else(|| ApplyError::Undescribed {
                kind: match f.kind {
                    FileKind::Secret => "secret",
                    FileKind::Config => "config",
                },
                name: f.name.to_string(),
            })?;
            Ok(crate::runtime::files::ContainerFile { mount: f, bytes })
        })
        .collect()
}

/// Before a start: the container's secrets and configs written again (a reboot empties
/// their tmpfs), but only into a container made from the entry as it is now. One made from
/// an earlier spec (the old container of a start-first update, restarted while its
/// successor is made) binds other files at its indexes: it keeps its own, and if they are
/// gone it is not started at all (its update or a replacement takes its place).
fn rewrite_files(
    machine: &Machine,
    desired: &Desired,
    name: &str,
    id: &str,
) -> Result<(), ApplyError> {
    let Some(container) = desired.containers.get(name) else {
        return Ok(());
    };
    let made_from = machine.runtime.record(id)?.spec_hash;
    if made_from != crate::spec::hash::container_hash(desired, container)?.as_str() {
        return match machine.runtime.missing_files(id)?.into_iter().next() {
            None => Ok(()),
            Some(path) => Err(ApplyError::FilesGone {
                id: id.into(),
                path,
            }),
        };
    }
    let files = file_contents(desired, container)?;
    machine.runtime.write_files(id, &files)?;
    let secret_env = secret_env_values(desired, container)?;
    Ok(machine.runtime.write_secret_env(id, &secret_env)?)
}

/// For `berth run`: create the network `name` if it does not exist. An existing one is used
/// as it is (a bridge deleted by hand is made again when the container is plugged in); one
/// described differently is refused rather than changed under the containers of the agent
/// or of other runs: changing a network is the reconciler's job.
pub fn ensure_network_exists(
    machine: &Machine,
    desired: &Desired,
    name: &str,
) -> Result<(), ApplyError> {
    let Some(record) = machine.networks().record(name)? else {
        return ensure_network(machine, desired, name).map(|_| ());
    };
    if let Some(spec) = desired.networks.get(name)
        && crate::spec::hash::SpecHashed::spec_hash(spec)?.as_str() != record.spec_hash
    {
        return Err(ApplyError::NetworkDiffers {
            name: name.to_string(),
            subnet: record.subnet.to_string(),
            internal: record.internal,
        });
    }
    Ok(())
}

/// Create or update the network `name` as `desired` describes it.
fn ensure_network(
    machine: &Machine,
    desired: &Desired,
    name: &str,
) -> Result<crate::network::record::NetworkRecord, ApplyError> {
    let spec = desired
        .networks
        .get(name)
        .ok_or_else(|| ApplyError::Undescribed {
            kind: "network",
            name: name.to_string(),
        })?;
    let hash = crate::spec::hash::SpecHashed::spec_hash(spec)?;
    Ok(machine.networks().ensure(name, spec, hash.as_str())?)
}

/// Remove images that neither the desired state nor any existing container uses, and the
/// blobs and layers only they needed.
pub fn prune_images(
    machine: &Machine,
    desired: &Desired,
) -> Result<crate::image::PruneReport, ApplyError> {
    let mut keep = desired.image_sources();
    let mut keep_layers = BTreeSet::new();
    // Listed now, not at planning time: a container created since keeps its image.
    for c in machine.runtime.list()? {
        keep.insert(c.image.clone());
        keep_layers.extend(c.layer_diff_ids());
    }
    Ok(machine.images.prune_keeping(&keep, &keep_layers)?)
}
