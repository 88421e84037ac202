//! `berth agent DIR`: reconcile on every change of the directory, on every container exit,
//! when a backoff delay ends, on a periodic resync (drift repair) and on SIGHUP; exit on
//! SIGTERM or SIGINT, leaving every container running under its own monitor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::apply::{ApplyError, Machine};
use super::lock::{LockError, ReconcileLock};
use super::observe::Observed;
use super::watch::{DirEvent, DirWatch, WatchError};
use super::{PassReport, Reconciler, status};
use crate::sys::ProcessId;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("installing the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub dir: PathBuf,
    /// A full pass at least this often, changes or not (drift repair).
    pub resync: Duration,
    /// Steps run at once.
    pub parallel: usize,
    /// How long a file may stay open for writing before the directory is read anyway.
    pub write_timeout: Duration,
    /// How long a container's entry must stay missing before the container is pruned.
    pub prune_delay: Duration,
    /// An empty directory prunes everything.
    pub allow_empty: bool,
    /// How often `pull = "always"` images are re-resolved besides on changes and SIGHUP.
    pub pull_interval: Duration,
}

/// What the layer above (the API) exchanges with a running agent: every pass report as it
/// ends, and passes asked for (`berth apply` while the agent runs).
pub struct AgentLink {
    pub passes: broadcast::Sender<Arc<PassReport>>,
    pub requests: mpsc::Receiver<PassRequest>,
}

/// A pass asked for from outside: run as soon as the pass in flight ends, with `targets`
/// for that one pass only; the report is the answer.
pub struct PassRequest {
    pub targets: Option<std::collections::BTreeSet<String>>,
    pub reply: oneshot::Sender<Arc<PassReport>>,
}

impl AgentLink {
    /// A link and the two ends the API keeps: a sender of requests and a publisher of
    /// reports to subscribe to.
    pub fn new() -> (AgentLink, mpsc::Sender<PassRequest>) {
        let (passes, _) = broadcast::channel(64);
        let (tx, requests) = mpsc::channel(16);
        (AgentLink { passes, requests }, tx)
    }
}

/// Why a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Start,
    Change,
    Exit,
    Timer,
    Signal,
    /// A container's health status changed.
    Health,
    /// Right after a pass that changed something.
    Followup,
    /// Asked for through the API (`berth apply` while the agent runs).
    Request,
    /// The host's nftables ruleset changed (a firewall reload may have taken berth's table).
    Firewall,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Change => "change",
            Trigger::Exit => "exit",
            Trigger::Timer => "timer",
            Trigger::Signal => "signal",
            Trigger::Health => "health",
            Trigger::Followup => "followup",
            Trigger::Request => "apply",
            Trigger::Firewall => "firewall",
        }
    }
}

/// Runs the agent on `machine` (opened on `root`) while `_lock` is held: the caller takes the
/// lock first, so nothing it serves beside the agent (the API) starts for a second agent.
pub async fn run(
    root: &Path,
    _lock: ReconcileLock,
    machine: Machine,
    options: AgentOptions,
    link: AgentLink,
) -> Result<(), AgentError> {
    let mut reconciler = Reconciler::new(machine, &options.dir);
    reconciler.parallel = options.parallel;
    reconciler.write_timeout = options.write_timeout;
    reconciler.prune_grace = options.prune_delay;
    reconciler.allow_empty = options.allow_empty;
    reconciler.refresh_interval = options.pull_interval;
    let stop = reconciler.stop.clone();
    let health_changed = reconciler.health.changed();

    let (dir_tx, mut dir_rx) = unbounded_channel();
    let mut watch = DirWatch::new(&options.dir, dir_tx)?;
    reconciler.writers = Some(watch.writers.clone());
    let (exit_tx, mut exit_rx) = unbounded_channel();
    let mut exits = ExitWatch::new(exit_tx);
    let sig = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| AgentError::Signal {
            signal: name,
            source,
        })
    };
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = sig(SignalKind::hangup(), "SIGHUP")?;
    if let Some(period) = sd_notify::watchdog_enabled() {
        // Pinged from the runtime itself: a wedged runtime stops the pings and systemd
        // restarts the agent (containers keep running).
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 2);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            }
        });
    }
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status("first pass")]);
    tracing::info!(dir = %options.dir.display(), root = %root.display(), "agent started");

    let AgentLink {
        passes,
        mut requests,
    } = link;
    let mut asked: Option<PassRequest> = None;
    let mut firewall = match crate::network::firewall::RulesetWatch::open() {
        Ok(watch) => Some(watch),
        Err(e) => {
            tracing::warn!(
                "cannot watch the nftables ruleset ({e}); a firewall reload that drops berth's table is repaired by the next resync"
            );
            None
        }
    };
    let mut pending = Some(Trigger::Start);
    let mut wake_at: Option<tokio::time::Instant> = None;
    let mut shutting_down = false;
    loop {
        if let Some(trigger) = pending.take() {
            // Whatever the directory did until now is covered by this pass; a swap of the
            // directory still moves the watch.
            while let Ok(event) = dir_rx.try_recv() {
                if event == DirEvent::Replaced {
                    watch.rewatch();
                }
            }
            if trigger == Trigger::Request {
                reconciler.targets = asked.as_ref().and_then(|r| r.targets.clone());
            }
            let report = {
                let pass = reconciler.pass(trigger.as_str());
                tokio::pin!(pass);
                loop {
                    tokio::select! {
                        report = &mut pass => break report,
                        _ = term.recv() => { stop.store(true, Ordering::Relaxed); shutting_down = true; }
                        _ = int.recv() => { stop.store(true, Ordering::Relaxed); shutting_down = true; }
                    }
                }
            };
            reconciler.targets = None;
            log_pass(&report);
            let report = Arc::new(report);
            if let Some(request) = asked.take() {
                let _ = request.reply.send(report.clone());
            }
            let _ = passes.send(report.clone());
            if let Err(e) = status::write(
                root,
                &status::StatusFile {
                    dir: &options.dir,
                    pid: std::process::id(),
                    mode: "agent",
                    last_pass: &report,
                    failures: &reconciler.failures,
                },
            ) {
                tracing::warn!("writing the status file (`berth status` shows an older pass): {e}");
            }
            let _ = sd_notify::notify(&[NotifyState::Status(&status_line(&report))]);
            if shutting_down {
                break;
            }
            wake_at = None;
            if !report.outcomes.is_empty() {
                // The machine changed under this pass's plan (containers started, some may
                // already have exited): plan again from what is there now. That pass has
                // nothing to do unless something happened, and it sets the exit watch and
                // the next wake-up from an up-to-date view.
                pending = Some(Trigger::Followup);
                continue;
            }
            if let Some(observed) = reconciler.last_observed.take() {
                exits.track(&observed);
            }
            wake_at = report.plan.wake_at_ms.map(|at| {
                let now = crate::state::record::now_ms();
                tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(now) + 10)
            });
        }
        let resync_at = tokio::time::Instant::now() + options.resync;
        let deadline = wake_at.map_or(resync_at, |w| w.min(resync_at));
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            Some(request) = requests.recv() => {
                asked = Some(request);
                pending = Some(Trigger::Request);
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reconciling now");
                pending = Some(Trigger::Signal);
            }
            Some(event) = dir_rx.recv() => {
                if event == DirEvent::Replaced {
                    tracing::info!(dir = %options.dir.display(), "the directory was replaced; watching its new target");
                    watch.rewatch();
                }
                pending = Some(Trigger::Change);
            }
            Some(id) = exit_rx.recv() => {
                tracing::info!(container = %id, "container exited");
                // Exits arriving together make one pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while exit_rx.try_recv().is_ok() {}
                pending = Some(Trigger::Exit);
            }
            _ = health_changed.notified() => {
                pending = Some(Trigger::Health);
            }
            changed = ruleset_changed(&mut firewall) => {
                match changed {
                    Ok(()) => {
                        // A reload is many changes in a row: one pass after they settle.
                        tokio::time::sleep(FIREWALL_SETTLE).await;
                        pending = Some(Trigger::Firewall);
                    }
                    Err(e) => {
                        tracing::warn!("watching the nftables ruleset: {e}; relying on the resync");
                        firewall = None;
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                pending = Some(Trigger::Timer);
                wake_at = None;
            }
        }
    }
    let _ = sd_notify::notify(&[
        NotifyState::Stopping,
        NotifyState::Status("stopped; containers keep running"),
    ]);
    tracing::info!("agent stopping; containers keep running under their monitors");
    Ok(())
}

/// How long a burst of ruleset changes (a firewall reload) is let settle before the pass.
const FIREWALL_SETTLE: Duration = Duration::from_millis(100);

/// The next change of the host's ruleset; never, without a watch.
async fn ruleset_changed(
    watch: &mut Option<crate::network::firewall::RulesetWatch>,
) -> std::io::Result<()> {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

fn status_line(report: &PassReport) -> String {
    if let Some(e) = &report.load_error {
        return format!("cannot read the desired state: {e}");
    }
    if let Some(why) = &report.deferred {
        return format!("waiting: {why}");
    }
    let failed = report.failed();
    format!(
        "{} step(s), {failed} failed, {} waiting, {} problem(s) in the desired files",
        report.plan.steps.len(),
        report.plan.waits.len(),
        report.problems.len()
    )
}

fn log_pass(report: &PassReport) {
    for p in &report.problems {
        tracing::error!("{p}");
    }
    if let Some(e) = &report.load_error {
        tracing::error!("cannot read the desired state: {e}");
    }
    if let Some(why) = &report.plan.prune_blocked {
        tracing::warn!("nothing pruned on this pass: {why}");
    }
    tracing::info!(
        trigger = %report.trigger,
        steps = report.plan.steps.len(),
        failed = report.failed(),
        waits = report.plan.waits.len(),
        duration_ms = report.duration_ms,
        cpu_us = report.cpu_us,
        "pass done"
    );
}

/// One task per running container's monitor, waiting on its pidfd: the monitor ends
/// right after recording its container's exit.
struct ExitWatch {
    tx: UnboundedSender<String>,
    tracked: HashMap<String, (ProcessId, tokio::task::JoinHandle<()>)>,
}

impl ExitWatch {
    fn new(tx: UnboundedSender<String>) -> ExitWatch {
        ExitWatch {
            tx,
            tracked: HashMap::new(),
        }
    }

    fn track(&mut self, observed: &Observed) {
        let mut live: HashMap<&str, ProcessId> = HashMap::new();
        for c in &observed.containers {
            if let Some(m) = c.monitor {
                live.insert(&c.id, m);
            }
        }
        self.tracked.retain(|id, (pid, task)| {
            let keep = live.get(id.as_str()) == Some(pid) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, monitor) in live {
            if self.tracked.contains_key(id) {
                continue;
            }
            let tx = self.tx.clone();
            let name = id.to_string();
            let task = match monitor.open() {
                Ok(Some(fd)) => match crate::sys::async_pidfd(fd) {
                    Ok(fd) => tokio::spawn(async move {
                        // A pidfd becomes readable when the process exits.
                        let _ = fd.readable().await;
                        let _ = tx.send(name);
                    }),
                    Err(e) => {
                        tracing::warn!(container = id, "cannot wait on its monitor: {e}");
                        continue;
                    }
                },
                // Already gone: reconcile now.
                Ok(None) | Err(_) => tokio::spawn(async move {
                    let _ = tx.send(name);
                }),
            };
            self.tracked.insert(id.to_string(), (monitor, task));
        }
    }
}
