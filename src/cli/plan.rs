//! `berth plan DIR` and `berth apply DIR`: the reconciler's pass for config management.
//! `plan` changes nothing and needs no lock; `apply` takes the reconciler lock (so it never
//! races a running agent), runs one pass, and with `--wait` repeats until converged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use berth::api::berth::ApplyRequest;
use berth::api::client::Client;
use berth::reconcile::apply::Machine;
use berth::reconcile::lock::ReconcileLock;
use berth::reconcile::plan::{self, Action};
use berth::reconcile::{PassReport, Reconciler, observe, render, status};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The desired-state directory.
    dir: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error (problems
    /// in the desired files included).
    #[arg(long)]
    detailed_exitcode: bool,
    /// Plan only these containers and what they need (dependencies, images, volumes);
    /// nothing else is touched, nothing is pruned. Repeatable.
    #[arg(long = "target", value_name = "CONTAINER")]
    targets: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The desired-state directory.
    dir: PathBuf,
    /// Repeat passes until nothing is left to do or wait for (restarts in backoff and
    /// dependencies included), or until --timeout.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits at most.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Steps run at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Print each pass as JSON (one object per line).
    #[arg(long)]
    json: bool,
    /// Registry credentials (Docker's config.json format).
    #[arg(long, env = "BERTH_AUTH_FILE")]
    auth_file: Option<PathBuf>,
    /// Apply only these containers and what they need (dependencies, images, volumes);
    /// nothing else is touched, nothing is pruned. Repeatable.
    #[arg(long = "target", value_name = "CONTAINER")]
    targets: Vec<String>,
    /// Let an empty directory remove every container (by default nothing is pruned when the
    /// directory holds no desired file).
    #[arg(long)]
    allow_empty: bool,
}

fn targets(list: &[String]) -> Option<std::collections::BTreeSet<String>> {
    (!list.is_empty()).then(|| list.iter().cloned().collect())
}

pub fn plan(root: &Path, args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let machine = Machine::open(root, None)?;
    let mut reconciler = Reconciler::new(machine.clone(), &args.dir);
    reconciler.targets = targets(&args.targets);
    let view = super::async_runtime()?.block_on(reconciler.plan_only());
    let report = view.report;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        eprint!("{}", render::problems_text(&report));
        if report.load_error.is_some() {
            // Nothing was read, so nothing can be said about changes: "No changes" on stdout
            // would tell a script the machine matches a directory that is not there.
            return Ok(ExitCode::from(1));
        }
        let changes = match (&view.observed, &view.desired) {
            (Some(observed), Some(desired)) => field_changes(&machine, desired, &report, observed),
            _ => BTreeMap::new(),
        };
        print!("{}", render::plan_text(&report.plan, &changes, &[]));
        if let Some(desired) = &view.desired {
            print!("{}", privileged_warnings(desired, &report.plan));
        }
        println!("{}", render::summary(&report.plan));
    }
    let error = report.load_error.is_some() || !report.problems.is_empty();
    Ok(ExitCode::from(match (error, args.detailed_exitcode) {
        (true, _) => 1,
        (false, true) if !report.plan.steps.is_empty() => 2,
        (false, _) => 0,
    }))
}

/// A loud line for every container the plan runs with `privileged = true`.
fn privileged_warnings(desired: &berth::spec::Desired, plan: &plan::Plan) -> String {
    let mut out = String::new();
    for step in &plan.steps {
        let name = match &step.action {
            Action::Run { name }
            | Action::Replace { name, .. }
            | Action::StartFirst { name, .. } => name,
            _ => continue,
        };
        if desired
            .containers
            .get(name)
            .is_some_and(|c| c.kernel.privileged)
        {
            out.push_str(&format!(
                "  ! container {name} is PRIVILEGED: every capability, every host device, no seccomp, writable /sys, /proc and cgroupfs; root inside is root on the host\n"
            ));
        }
    }
    out
}

/// For each replacement: which fields of the entry changed since the old container was
/// made (from the entry it recorded at creation).
fn field_changes(
    machine: &Machine,
    desired: &berth::spec::Desired,
    report: &PassReport,
    observed: &observe::Observed,
) -> BTreeMap<usize, Vec<String>> {
    let mut out = BTreeMap::new();
    for (i, step) in report.plan.steps.iter().enumerate() {
        let (name, old) = match &step.action {
            Action::Replace { name, old } => (name, old),
            Action::StartFirst { name, serving } => (name, serving),
            _ => continue,
        };
        let Some(newest) = old
            .iter()
            .filter_map(|id| observed.containers.iter().find(|c| &c.id == id))
            .max_by(|a, b| a.created_at.cmp(&b.created_at))
        else {
            continue;
        };
        let (Some(entry), Ok(old_json)) = (
            desired.containers.get(name),
            std::fs::read(machine.runtime.layout().container(&newest.id).spec()),
        ) else {
            continue;
        };
        let (Ok(old_value), Ok(new_value)) = (
            serde_json::from_slice::<serde_json::Value>(&old_json),
            serde_json::to_value(entry),
        ) else {
            continue;
        };
        let mut lines = render::field_changes(&old_value, &new_value);
        if newest.image_digest
            != observed
                .images
                .get(&entry.image.to_string())
                .cloned()
                .unwrap_or_default()
            && let Some(d) = observed.images.get(&entry.image.to_string())
        {
            lines.push(format!(
                "image digest: {} → {}",
                plan::short_digest(&newest.image_digest),
                plan::short_digest(d)
            ));
        }
        out.insert(i, lines);
    }
    out
}

pub fn apply(root: &Path, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let layout = berth::state::layout::Layout::new(root);
    let (socket, _) = berth::api::socket_paths(&layout);
    // An agent reconciles this root: it runs the pass, so nothing races it.
    if let Some(agent) = Client::find(&socket) {
        return apply_through(agent, &dir, args);
    }
    let _lock = ReconcileLock::acquire(root)?;
    let machine = Machine::open(root, args.auth_file.as_deref())?;
    let mut reconciler = Reconciler::new(machine, &dir);
    reconciler.parallel = args.parallel;
    reconciler.targets = targets(&args.targets);
    reconciler.allow_empty = args.allow_empty;
    let rt = super::async_runtime()?;
    let mut tally = Tally::new(args);
    loop {
        let report = rt.block_on(reconciler.pass("apply"));
        if let Err(e) = status::write(
            root,
            &status::StatusFile {
                dir: &dir,
                pid: std::process::id(),
                mode: "apply",
                last_pass: &report,
                failures: &reconciler.failures,
            },
        ) {
            eprintln!("berth: warning: writing the status file: {e}");
        }
        if let Some(code) = tally.add(&report)? {
            return Ok(code);
        }
        // Again when the earliest wait ends, or soon if something is still settling.
        let now = berth::state::record::now_ms();
        let pause = report
            .plan
            .wake_at_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now) + 10))
            .unwrap_or(Duration::from_millis(250))
            .min(Duration::from_secs(1));
        let pause = if report.updating() {
            pause
        } else {
            pause.min(
                tally
                    .deadline
                    .saturating_duration_since(std::time::Instant::now()),
            )
        };
        // Health checks run meanwhile; a change of status ends the pause.
        let changed = reconciler.health.changed();
        rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = changed.notified() => {}
            }
        });
    }
}

/// `apply` while an agent runs: the agent runs the pass in its loop and streams its report,
/// then (to see an update through, or with `--wait`) the reports of its next passes.
fn apply_through(agent: Client, dir: &Path, args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    if args.auth_file.is_some() {
        eprintln!(
            "berth: warning: --auth-file is ignored: the agent pulls with its own credentials"
        );
    }
    let request = ApplyRequest {
        dir: dir.to_path_buf(),
        targets: args.targets.clone(),
        follow: true,
        // The agent stops streaming a little after the asker gives up.
        timeout_ms: Some(berth::units::millis(args.timeout) + 5_000),
        allow_empty: args.allow_empty,
    };
    let mut tally = Tally::new(args);
    let mut outcome: anyhow::Result<Option<ExitCode>> = Ok(None);
    let streamed = super::async_runtime()?.block_on(async {
        let read = agent.post_lines("/v1/apply", &request, |report: PassReport| {
            outcome = tally.add(&report);
            matches!(outcome, Ok(None))
        });
        tokio::time::timeout(args.timeout + Duration::from_secs(1), read).await
    });
    if let Some(code) = outcome? {
        return Ok(code);
    }
    match streamed {
        Ok(Ok(())) => {
            anyhow::bail!("the agent stopped before the apply was done; see `berth status`")
        }
        Ok(Err(e)) => Err(e.into()),
        // No pass came to decide by the deadline: what the last one said stands.
        Err(_) => Ok(tally.finish()),
    }
}

/// What `apply` counts over its passes and when it stops.
struct Tally<'a> {
    args: &'a ApplyArgs,
    deadline: std::time::Instant,
    done: usize,
    failed: usize,
    skipped: usize,
    last: Option<PassReport>,
}

impl<'a> Tally<'a> {
    fn new(args: &'a ApplyArgs) -> Tally<'a> {
        Tally {
            args,
            deadline: std::time::Instant::now() + args.timeout,
            done: 0,
            failed: 0,
            skipped: 0,
            last: None,
        }
    }

    /// Prints the pass; the exit code once the apply is over.
    fn add(&mut self, report: &PassReport) -> anyhow::Result<Option<ExitCode>> {
        let args = self.args;
        self.failed += report
            .refreshed
            .iter()
            .filter(|r| r.error.is_some())
            .count();
        for o in &report.outcomes {
            match o {
                berth::reconcile::apply::Outcome::Done { .. } => self.done += 1,
                berth::reconcile::apply::Outcome::Failed { .. } => self.failed += 1,
                berth::reconcile::apply::Outcome::Skipped { .. } => self.skipped += 1,
            }
        }
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            eprint!("{}", render::problems_text(report));
            print!(
                "{}",
                render::plan_text(&report.plan, &BTreeMap::new(), &report.outcomes)
            );
        }
        self.last = Some(report.clone());
        // A start-first update is seen through (its own timeouts bound it); otherwise one
        // pass, or passes until converged with --wait.
        let updating = report.updating() && report.load_error.is_none();
        let stop = !updating
            && (!args.wait
                || report.converged()
                || report.stuck()
                || report.load_error.is_some()
                || std::time::Instant::now() >= self.deadline);
        Ok(stop.then(|| self.finish()))
    }

    fn finish(&self) -> ExitCode {
        let args = self.args;
        let Some(report) = &self.last else {
            return ExitCode::FAILURE;
        };
        let error = report.load_error.is_some()
            || !report.problems.is_empty()
            || self.failed > 0
            || !report.plan.blocked.is_empty();
        let unconverged = args.wait && !report.converged();
        if !args.json {
            println!(
                "Apply: {} done, {} failed, {} skipped{}{}{}",
                self.done,
                self.failed,
                self.skipped,
                if report.plan.waits.is_empty() {
                    String::new()
                } else {
                    format!(", {} still waiting", report.plan.waits.len())
                },
                if report.plan.blocked.is_empty() {
                    String::new()
                } else {
                    format!(", {} blocked", report.plan.blocked.len())
                },
                if unconverged {
                    format!(
                        " (not converged within {})",
                        humantime::format_duration(args.timeout)
                    )
                } else {
                    String::new()
                }
            );
        }
        if error || unconverged {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}
