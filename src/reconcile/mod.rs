//! The reconciler: keeps the machine equal to a desired-state directory.
//!
//! One pass = load the directory (`spec`), refresh `pull = "always"` images, observe what
//! berth created (`observe`), plan (`plan`, pure), carry the plan out (`apply`). The agent
//! (`agent`) runs passes on every change, container exit, timer and SIGHUP; `berth plan`
//! and `berth apply` run one. Every pass starts from scratch: nothing but the failure book
//! (for retry backoff) carries over from one pass to the next.

pub mod agent;
pub mod apply;
pub mod job;
pub mod lock;
pub mod observe;
pub mod plan;
#[cfg(test)]
mod plan_tests;
pub mod render;
pub mod status;
mod update;
#[cfg(test)]
mod update_tests;
pub(crate) mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::state::record::now_ms;

use serde::Serialize;

use self::apply::{Machine, Outcome};
use self::plan::{Action, Failure, FailureBook, Plan};
use crate::spec::model::PullPolicy;

/// What one pass found and did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PassReport {
    /// What started the pass ("start", "change", "exit", "timer", "signal", "apply").
    pub trigger: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    /// CPU time of the whole process during the pass (all threads), microseconds.
    pub cpu_us: u64,
    /// Wall time of each phase, microseconds.
    pub phases: Phases,
    pub files: Vec<PathBuf>,
    /// The directory could not be read at all: nothing was planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_error: Option<String>,
    /// The pass was put off (a file is still being written); `plan.wake_at_ms` says when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// Problems in desired files, one per entry ("file:line:col: message"), then what
    /// could not be observed.
    pub problems: Vec<String>,
    /// The problems in desired files as found (for events and metrics; `problems` says
    /// them in text).
    #[serde(skip)]
    pub diagnostics: Vec<crate::spec::diag::Diagnostic>,
    /// `pull = "always"` images re-resolved before planning, and how it went.
    pub refreshed: Vec<Refresh>,
    pub plan: Plan,
    /// One per plan step.
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct Phases {
    pub load_us: u64,
    pub observe_us: u64,
    pub plan_us: u64,
    pub apply_us: u64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Refresh {
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PassReport {
    fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.failed()).count()
            + self.refreshed.iter().filter(|r| r.error.is_some()).count()
    }

    /// A start-first update is under way (started, switching or draining): `apply` sees it
    /// through, with or without `--wait`.
    pub fn updating(&self) -> bool {
        !self.plan.updating.is_empty()
            || self.plan.steps.iter().zip(&self.outcomes).any(|(s, o)| {
                matches!(o, Outcome::Done { .. })
                    && matches!(
                        s.action,
                        Action::StartFirst { .. } | Action::TakeOver { .. }
                    )
            })
    }

    /// Nothing to do, nothing waiting, nothing wrong.
    pub fn converged(&self) -> bool {
        self.load_error.is_none()
            && self.deferred.is_none()
            && self.problems.is_empty()
            && self.plan.steps.is_empty()
            && self.plan.waits.is_empty()
            && self.plan.blocked.is_empty()
            && self.failed() == 0
    }

    /// Nothing to do or wait for, but entries blocked by a failed job: only a change of the
    /// desired state (or removing the failed job's container) moves them.
    pub fn stuck(&self) -> bool {
        self.load_error.is_none()
            && self.deferred.is_none()
            && self.plan.steps.is_empty()
            && self.plan.waits.is_empty()
            && !self.plan.blocked.is_empty()
    }
}

/// What `plan` shows: the pass, and the two states it was planned from (None where the
/// pass stopped before reading them).
pub struct PlanView {
    pub report: PassReport,
    pub observed: Option<observe::Observed>,
    pub desired: Option<Arc<crate::spec::Desired>>,
}

struct RunOutput {
    report: PassReport,
    observed: Option<observe::Observed>,
    missing_since: Option<BTreeMap<String, u64>>,
    desired: Option<Arc<crate::spec::Desired>>,
}

impl RunOutput {
    /// A pass that stopped before observing (deferred, or the directory unreadable).
    fn only(report: PassReport) -> RunOutput {
        RunOutput {
            report,
            observed: None,
            missing_since: None,
            desired: None,
        }
    }
}

pub struct Reconciler {
    pub machine: Machine,
    pub dir: PathBuf,
    pub failures: FailureBook,
    /// Steps run at once.
    pub parallel: usize,
    /// Set on shutdown: steps not yet started are skipped.
    pub stop: Arc<AtomicBool>,
    /// What the last pass observed (before it acted).
    pub last_observed: Option<observe::Observed>,
    /// `--target`: only these containers (and what they need) are applied.
    pub targets: Option<BTreeSet<String>>,
    /// Files being written in the directory (the agent's watch): a pass is put off while
    /// there are any, for at most `write_timeout` per file. None (`apply`): the files were
    /// written before the command ran.
    pub writers: Option<watch::Writers>,
    pub write_timeout: Duration,
    /// How long a container's entry must stay missing before the container is pruned.
    pub prune_grace: Duration,
    /// An empty directory prunes everything only when allowed (else it is probably a mount
    /// that is not there yet).
    pub allow_empty: bool,
    /// `pull = "always"` images are re-resolved at most this often on timer and exit
    /// passes (every change, signal and `apply` re-resolves them).
    pub refresh_interval: Duration,
    last_refresh: Option<Instant>,
    /// The desired files' problems the last pass found (each is an event once).
    known_problems: BTreeSet<String>,
    /// Since when each undescribed container name has been missing (ms since the epoch).
    missing_since: BTreeMap<String, u64>,
    /// Container records already read (they never change after create).
    records: Arc<std::sync::Mutex<observe::RecordCache>>,
    /// The desired files as last read, and what they loaded to.
    load_cache: Arc<std::sync::Mutex<crate::spec::LoadCache>>,
    /// The last desired state's entry hashes (hashing is most of a plan's cost).
    hashes: std::sync::Mutex<Option<(Arc<crate::spec::Desired>, Arc<plan::EntryHashes>)>>,
    /// Health checks of the running containers, as the last pass observed them.
    pub health: crate::health::HealthChecks,
}

impl Reconciler {
    pub fn new(machine: Machine, dir: &Path) -> Reconciler {
        let networks = crate::network::Networks::new(machine.runtime.layout());
        let health = crate::health::HealthChecks::new(
            machine.runtime.layout(),
            machine.runtime.binary().to_path_buf(),
            Arc::new(move |id: &str| networks.address_of(id).ok().flatten()),
        );
        Reconciler {
            health,
            machine,
            dir: dir.to_path_buf(),
            failures: FailureBook::new(),
            parallel: 4,
            stop: Arc::new(AtomicBool::new(false)),
            last_observed: None,
            targets: None,
            writers: None,
            write_timeout: Duration::from_secs(5),
            prune_grace: Duration::ZERO,
            allow_empty: false,
            refresh_interval: Duration::from_secs(300),
            last_refresh: None,
            known_problems: BTreeSet::new(),
            missing_since: BTreeMap::new(),
            records: Arc::default(),
            load_cache: Arc::default(),
            hashes: std::sync::Mutex::default(),
        }
    }

    /// Load, observe and plan, without changing anything (`berth plan`).
    pub async fn plan_only(&self) -> PlanView {
        let out = self.run(false, "plan", false).await;
        PlanView {
            report: out.report,
            observed: out.observed,
            desired: out.desired,
        }
    }

    /// One full pass.
    pub async fn pass(&mut self, trigger: &str) -> PassReport {
        let refresh = match self.last_refresh {
            None => true,
            Some(at) => {
                !matches!(trigger, "exit" | "timer" | "followup" | "firewall")
                    || at.elapsed() >= self.refresh_interval
            }
        };
        let RunOutput {
            report,
            observed,
            missing_since,
            ..
        } = self.run(true, trigger, refresh).await;
        if refresh && report.load_error.is_none() && report.deferred.is_none() {
            self.last_refresh = Some(Instant::now());
        }
        self.remember(&report);
        self.record_events(&report);
        if let Some(observed) = &observed {
            self.health.track(health_subjects(observed));
        }
        self.last_observed = observed;
        if let Some(m) = missing_since {
            self.missing_since = m;
        }
        report
    }

    async fn run(&self, act: bool, trigger: &str, refresh: bool) -> RunOutput {
        let started = Instant::now();
        let cpu_start = process_cpu_us();
        let mut report = PassReport {
            trigger: trigger.into(),
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            duration_ms: 0,
            cpu_us: 0,
            phases: Phases::default(),
            files: Vec::new(),
            load_error: None,
            deferred: None,
            problems: Vec::new(),
            diagnostics: Vec::new(),
            refreshed: Vec::new(),
            plan: Plan::default(),
            outcomes: Vec::new(),
        };
        // A file still being written is not read, whatever started the pass; its writer
        // closing it (or the poll below) brings the next pass.
        if let Some(writers) = &self.writers
            && let Some((path, age)) = writers.busy(self.write_timeout)
        {
            report.deferred = Some(format!(
                "{} is being written (for {}ms); reading the directory once it is closed",
                path.display(),
                age.as_millis()
            ));
            report.plan.wake_at_ms = Some(now_ms() + 100);
            return RunOutput::only(finish(report, started, cpu_start));
        }
        let (dir, load_cache) = (self.dir.clone(), self.load_cache.clone());
        let mark = Instant::now();
        let loaded = tokio::task::spawn_blocking(move || match load_cache.lock() {
            Ok(mut cache) => crate::spec::load_dir_cached(&dir, &mut cache),
            Err(_) => crate::spec::load_dir(&dir),
        })
        .await;
        report.phases.load_us = crate::units::micros(mark.elapsed());
        let loaded = match loaded {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                report.load_error = Some(e.to_string());
                return RunOutput::only(finish(report, started, cpu_start));
            }
            Err(e) => {
                report.load_error = Some(format!("loading task failed: {e}"));
                return RunOutput::only(finish(report, started, cpu_start));
            }
        };
        report.files = loaded.files.clone();
        report.problems = loaded.diagnostics.iter().map(|d| d.one_line()).collect();
        report.diagnostics = loaded.diagnostics.clone();
        let complete = loaded.is_complete();
        let empty = loaded.files.is_empty();
        let jobs = plan::jobs_of(&loaded.desired);
        let desired = match &self.targets {
            None => loaded.desired,
            Some(targets) => match plan::restrict(&loaded.desired, targets) {
                Ok(d) => d,
                Err(e) => {
                    report.load_error = Some(e.to_string());
                    return RunOutput::only(finish(report, started, cpu_start));
                }
            },
        };
        let mut desired = desired;
        if !desired.secrets.is_empty() {
            match crate::state::secret_key::load_or_create(
                &self.machine.runtime.layout().state_root,
            ) {
                Ok(key) => crate::spec::hash::key_secrets(&mut desired, &key),
                Err(e) => {
                    report.load_error = Some(format!("the secret digest key: {e}"));
                    return RunOutput::only(finish(report, started, cpu_start));
                }
            }
        }
        let desired = Arc::new(desired);
        if act && refresh {
            report.refreshed = self.refresh(&desired).await;
        }
        let (machine, cache) = (self.machine.clone(), self.records.clone());
        let mark = Instant::now();
        let observed = tokio::task::spawn_blocking(move || {
            let mut fresh = observe::RecordCache::new();
            let mut guard = cache.lock();
            let cache = match guard.as_mut() {
                Ok(c) => &mut **c,
                Err(_) => &mut fresh,
            };
            observe::observe(
                &machine.runtime,
                &machine.images,
                &machine.volumes,
                act,
                cache,
            )
        })
        .await
        .unwrap_or_else(|e| observe::Observed {
            problems: vec![format!("observing failed: {e}")],
            containers_unreadable: Some(format!("observing failed: {e}")),
            ..Default::default()
        });
        report.phases.observe_us = crate::units::micros(mark.elapsed());
        report
            .problems
            .extend(observed.problems.iter().map(|p| format!("observing: {p}")));
        let now = now_ms();
        let mut missing_since = BTreeMap::new();
        for c in &observed.containers {
            if !desired.containers.contains_key(c.name.as_str()) {
                let since = self.missing_since.get(&c.name).copied().unwrap_or(now);
                missing_since.insert(c.name.clone(), since);
            }
        }
        let empty_hold = format!(
            "{} holds no desired files (a mount that is not there yet?); nothing is pruned unless --allow-empty is given",
            self.dir.display()
        );
        let mark = Instant::now();
        let hashes = self.entry_hashes(&desired);
        report.plan = plan::plan(plan::Inputs {
            desired: &desired,
            desired_complete: complete,
            observed: &observed,
            failures: if act { &self.failures } else { &EMPTY_BOOK },
            now_ms: now,
            targeted: self.targets.is_some(),
            prune_hold: (empty && !self.allow_empty).then_some(empty_hold.as_str()),
            missing_since: &missing_since,
            prune_grace_ms: crate::units::millis(self.prune_grace),
            hashes: Some(&hashes),
            jobs: &jobs,
        });
        report.phases.plan_us = crate::units::micros(mark.elapsed());
        if act && !report.plan.steps.is_empty() {
            let mark = Instant::now();
            report.outcomes = apply::execute(
                &self.machine,
                &desired,
                &report.plan,
                self.parallel,
                &self.stop,
            )
            .await;
            report.phases.apply_us = crate::units::micros(mark.elapsed());
        }
        RunOutput {
            report: finish(report, started, cpu_start),
            observed: Some(observed),
            missing_since: Some(missing_since),
            desired: Some(desired),
        }
    }

    /// The entry hashes of `desired`, reused from the last pass when it is the same.
    fn entry_hashes(&self, desired: &Arc<crate::spec::Desired>) -> Arc<plan::EntryHashes> {
        let Ok(mut last) = self.hashes.lock() else {
            return Arc::new(plan::entry_hashes(desired));
        };
        if let Some((d, h)) = last.as_ref()
            && **d == **desired
        {
            return h.clone();
        }
        let hashes = Arc::new(plan::entry_hashes(desired));
        *last = Some((desired.clone(), hashes.clone()));
        hashes
    }

    /// Re-resolve every `pull = "always"` image (a new digest behind its tag is then
    /// planned as a replacement), except those in failure backoff.
    async fn refresh(&self, desired: &Arc<crate::spec::Desired>) -> Vec<Refresh> {
        let now = now_ms();
        let mut tasks = tokio::task::JoinSet::new();
        for image in desired
            .images
            .values()
            .filter(|i| i.pull == PullPolicy::Always)
        {
            let source = image.source.to_string();
            let key = Action::Pull {
                image: source.clone(),
            }
            .key();
            if let Some(f) = self.failures.get(&key)
                && now < f.last_at_ms + plan::backoff_delay_ms(&DEFAULT_RETRY, f.count)
            {
                continue;
            }
            let (machine, desired) = (self.machine.clone(), desired.clone());
            tasks.spawn(async move {
                let result = apply::pull(&machine, &desired, &source).await;
                match result {
                    Ok(record) => Refresh {
                        image: source,
                        digest: Some(record.manifest.to_string()),
                        error: None,
                    },
                    Err(e) => Refresh {
                        image: source,
                        digest: None,
                        error: Some(e.to_string()),
                    },
                }
            });
        }
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok(r) = done {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.image.cmp(&b.image));
        out
    }

    /// Failures are retried with backoff; a success forgets them, and so does a resource
    /// that no longer needs anything (it was fixed, or it is gone).
    /// A `problem` event for each problem of a desired file not there on the last pass
    /// that read the directory, and a `pass` event for a pass that did or found something.
    fn record_events(&mut self, report: &PassReport) {
        use crate::state::events::{Action, Event, EventLog, Subject};
        let log = EventLog::new(self.machine.runtime.layout());
        if report.load_error.is_none() && report.deferred.is_none() {
            let now: BTreeSet<String> = report.diagnostics.iter().map(|d| d.one_line()).collect();
            for d in &report.diagnostics {
                if self.known_problems.contains(&d.one_line()) {
                    continue;
                }
                let file = d.location.file.display().to_string();
                log.append(
                    &Event::now(Subject::Desired, Action::Problem, &file)
                        .with("file", &file)
                        .with("line", d.location.line)
                        .with("column", d.location.column)
                        .with("code", d.code.as_str())
                        .with("message", &d.message),
                );
            }
            self.known_problems = now;
        }
        let outcome = if report.load_error.is_some() {
            "load_error"
        } else if report.deferred.is_some() {
            return;
        } else if report.failed() > 0 {
            "failed"
        } else {
            "ok"
        };
        if report.plan.steps.is_empty() && outcome == "ok" {
            return;
        }
        log.append(
            &Event::now(Subject::Agent, Action::Pass, "agent")
                .with("trigger", &report.trigger)
                .with("steps", report.plan.steps.len())
                .with("failed", report.failed())
                .with("duration_ms", report.duration_ms)
                .with("outcome", outcome),
        );
    }

    fn remember(&mut self, report: &PassReport) {
        if report.load_error.is_some() || report.deferred.is_some() {
            return;
        }
        let now = now_ms();
        let mut still: BTreeSet<String> = report.plan.waits.iter().map(|w| w.key.clone()).collect();
        let record = |failures: &mut FailureBook,
                      key: String,
                      error: Option<&str>,
                      spec: Option<&String>| match error {
            None => {
                failures.remove(&key);
            }
            Some(error) => {
                let entry = failures.entry(key).or_insert(Failure {
                    count: 0,
                    last_at_ms: now,
                    error: String::new(),
                    spec: None,
                });
                if entry.spec.as_ref() != spec {
                    // Another spec's failures say nothing about this one's.
                    entry.count = 0;
                }
                entry.count += 1;
                entry.last_at_ms = now;
                entry.error = error.to_string();
                entry.spec = spec.cloned();
            }
        };
        for r in &report.refreshed {
            let key = Action::Pull {
                image: r.image.clone(),
            }
            .key();
            still.insert(key.clone());
            record(&mut self.failures, key, r.error.as_deref(), None);
        }
        for (step, outcome) in report.plan.steps.iter().zip(&report.outcomes) {
            let key = step.action.key();
            still.insert(key.clone());
            match outcome {
                Outcome::Done { .. } if step.action.settles() => {
                    record(&mut self.failures, key, None, None)
                }
                Outcome::Done { .. } => {}
                Outcome::Failed { error } => {
                    record(&mut self.failures, key, Some(error), step.spec.as_ref())
                }
                Outcome::Skipped { .. } => {}
            }
        }
        self.failures.retain(|key, _| still.contains(key));
    }
}

/// The running containers that have a health check.
fn health_subjects(observed: &observe::Observed) -> Vec<crate::health::Subject> {
    observed
        .containers
        .iter()
        .filter_map(|c| match (&c.phase, c.init, &c.health_check) {
            (observe::Phase::Running { started_at_ms }, Some(init), Some(check)) => {
                Some(crate::health::Subject {
                    id: c.id.clone(),
                    init,
                    started_at_ms: *started_at_ms,
                    check: check.clone(),
                })
            }
            _ => None,
        })
        .collect()
}

static EMPTY_BOOK: FailureBook = FailureBook::new();

const DEFAULT_RETRY: crate::spec::model::Backoff = crate::spec::model::Backoff {
    initial: crate::spec::duration::Duration::from_secs(1),
    max: crate::spec::duration::Duration::from_secs(300),
    reset_after: crate::spec::duration::Duration::from_secs(600),
};

fn finish(mut report: PassReport, started: std::time::Instant, cpu_start: u64) -> PassReport {
    report.duration_ms = crate::units::millis(started.elapsed());
    report.cpu_us = process_cpu_us().saturating_sub(cpu_start);
    report
}

/// CPU time used by this process so far (every thread), in microseconds.
fn process_cpu_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    (t.tv_sec as u64) * 1_000_000 + (t.tv_nsec as u64) / 1000
}

#[cfg(test)]
mod report_tests {
    use super::*;
    use crate::spec::name::Name;

    /// `berth apply` through an agent reads the agent's reports back: nothing may be lost
    /// on the way.
    #[test]
    fn a_pass_report_reads_back_as_written() {
        let name: Name = "web".parse().expect("name");
        let report = PassReport {
            trigger: "apply".into(),
            started_at: "2026-12-07T10:00:00.000Z".into(),
            duration_ms: 12,
            cpu_us: 345,
            phases: Phases {
                load_us: 1,
                observe_us: 2,
                plan_us: 3,
                apply_us: 4,
            },
            files: vec!["/etc/berth/desired/web.toml".into()],
            load_error: None,
            deferred: Some("a file is being written".into()),
            problems: vec!["web.toml:1:1: error[x]: y".into()],
            diagnostics: Vec::new(),
            refreshed: vec![Refresh {
                image: "busybox".into(),
                digest: Some("sha256:ab".into()),
                error: None,
            }],
            plan: Plan {
                steps: vec![
                    plan::Step {
                        action: Action::Replace {
                            name: name.clone(),
                            old: vec!["web-1".into()],
                        },
                        after: vec![],
                        reason: "its spec changed".into(),
                        spec: Some("sha256:cd".into()),
                    },
                    plan::Step {
                        action: Action::TakeOver {
                            name,
                            id: "web-2".into(),
                            from: vec!["web-1".into()],
                        },
                        after: vec![0],
                        reason: "healthy".into(),
                        spec: None,
                    },
                ],
                waits: vec![plan::Wait {
                    key: "container/db".into(),
                    reason: "backoff".into(),
                    until_ms: Some(5),
                }],
                kept: vec![],
                blocked: vec![plan::Kept {
                    key: "container/job".into(),
                    reason: "failed".into(),
                }],
                prune_blocked: Some("a problem".into()),
                wake_at_ms: Some(5),
                updating: vec!["web".into()],
            },
            outcomes: vec![
                apply::Outcome::Done {
                    detail: "web-2 running".into(),
                },
                apply::Outcome::Skipped {
                    reason: "after a failure".into(),
                },
            ],
        };
        let json = serde_json::to_string(&report).expect("encode");
        let back: PassReport = serde_json::from_str(&json).expect("decode");
        assert_eq!(serde_json::to_string(&back).expect("encode"), json);
        assert_eq!(back.plan, report.plan);
        assert_eq!(back.outcomes, report.outcomes);
    }
}
