//! Reconcile passes and their steps, recorded from each `PassReport` the agent publishes.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::families::{PassLabels, StepLabels, TriggerLabels, pass_histogram};
use crate::reconcile::PassReport;
use crate::reconcile::apply::Outcome;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct PassMetrics {
    passes: Family<PassLabels, Counter>,
    duration: HistogramFamily<TriggerLabels>,
    steps: Family<StepLabels, Counter>,
    problems: Gauge,
    files_with_problems: Gauge,
    files: Gauge,
    last_pass: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl PassMetrics {
    pub fn register(registry: &mut Registry) -> PassMetrics {
        let metrics = PassMetrics {
            passes: Family::default(),
            duration: Family::new_with_constructor(pass_histogram),
            steps: Family::default(),
            problems: Gauge::default(),
            files_with_problems: Gauge::default(),
            files: Gauge::default(),
            last_pass: Gauge::default(),
        };
        registry.register(
            "berth_reconcile_passes",
            "Reconcile passes by trigger and outcome (ok, failed, deferred, load_error)",
            metrics.passes.clone(),
        );
        registry.register_with_unit(
            "berth_reconcile_pass_duration",
            "Wall time of reconcile passes, load to apply",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "berth_reconcile_steps",
            "Plan steps by kind and result (done, failed, skipped)",
            metrics.steps.clone(),
        );
        registry.register(
            "berth_desired_problems",
            "Problems in the desired files at the last pass that read them",
            metrics.problems.clone(),
        );
        registry.register(
            "berth_desired_files_with_problems",
            "Desired files with at least one problem at the last pass that read them",
            metrics.files_with_problems.clone(),
        );
        registry.register(
            "berth_desired_files",
            "Desired files read at the last pass that read them",
            metrics.files.clone(),
        );
        registry.register_with_unit(
            "berth_reconcile_last_pass_timestamp",
            "When the last reconcile pass ended, as a Unix time",
            Unit::Seconds,
            metrics.last_pass.clone(),
        );
        metrics
    }

    pub fn record(&self, report: &PassReport, ended_unix_s: f64) {
        let trigger = report.trigger.clone();
        self.passes
            .get_or_create(&PassLabels {
                trigger: trigger.clone(),
                outcome: outcome(report).to_string(),
            })
            .inc();
        // Millisecond resolution is all the report keeps.
        #[allow(clippy::cast_precision_loss, reason = "a pass is far below 2^52 ms")]
        let seconds = report.duration_ms as f64 / 1000.0;
        self.duration
            .get_or_create(&TriggerLabels { trigger })
            .observe(seconds);
        for (step, result) in report.plan.steps.iter().zip(&report.outcomes) {
            self.steps
                .get_or_create(&StepLabels {
                    kind: step_kind(&step.action),
                    result: match result {
                        Outcome::Done { .. } => "done",
                        Outcome::Failed { .. } => "failed",
                        Outcome::Skipped { .. } => "skipped",
                    }
                    .to_string(),
                })
                .inc();
        }
        if report.load_error.is_none() && report.deferred.is_none() {
            let with_problems: std::collections::BTreeSet<&std::path::Path> = report
                .diagnostics
                .iter()
                .map(|d| d.location.file.as_path())
                .collect();
            self.problems.set(count(report.diagnostics.len()));
            self.files_with_problems.set(count(with_problems.len()));
            self.files.set(count(report.files.len()));
        }
        self.last_pass.set(ended_unix_s);
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The same words `berth events` gives an agent `pass`.
fn outcome(report: &PassReport) -> &'static str {
    if report.load_error.is_some() {
        "load_error"
    } else if report.deferred.is_some() {
        "deferred"
    } else if report.outcomes.iter().any(Outcome::failed) {
        "failed"
    } else {
        "ok"
    }
}

/// The action's tag as the plan's JSON spells it (`run`, `take-over`, …), so the label
/// stays in step with `berth plan --json` as actions are added.
fn step_kind(action: &crate::reconcile::plan::Action) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.get("action")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::{Action, Plan, Step};
    use crate::spec::diag::{Code, Diagnostic};

    fn report(trigger: &str, steps: Vec<(Action, Outcome)>) -> PassReport {
        let mut report = PassReport {
            trigger: trigger.into(),
            started_at: "2026-12-07T23:00:00.000Z".into(),
            duration_ms: 40,
            cpu_us: 0,
            phases: crate::reconcile::Phases::default(),
            files: Vec::new(),
            load_error: None,
            deferred: None,
            problems: Vec::new(),
            diagnostics: Vec::new(),
            refreshed: Vec::new(),
            plan: Plan::default(),
            outcomes: Vec::new(),
        };
        for (action, outcome) in steps {
            report.plan.steps.push(Step {
                action,
                after: Vec::new(),
                reason: String::new(),
                spec: None,
            });
            report.outcomes.push(outcome);
        }
        report
    }

    #[test]
    fn step_kinds_are_the_plan_json_tags() {
        let name = "web".parse().expect("name");
        assert_eq!(step_kind(&Action::Run { name }), "run");
        assert_eq!(
            step_kind(&Action::RepairNetworkRules),
            "repair-network-rules"
        );
    }

    #[test]
    fn outcomes_follow_the_report() {
        let ok = report("start", Vec::new());
        assert_eq!(outcome(&ok), "ok");
        let failed = report(
            "change",
            vec![(
                Action::RepairNetworkRules,
                Outcome::Failed { error: "x".into() },
            )],
        );
        assert_eq!(outcome(&failed), "failed");
        let mut deferred = report("change", Vec::new());
        deferred.deferred = Some("a file is being written".into());
        assert_eq!(outcome(&deferred), "deferred");
        let mut broken = report("timer", Vec::new());
        broken.load_error = Some("gone".into());
        assert_eq!(outcome(&broken), "load_error");
    }

    /// The exposition after a start pass that ran a container and pulled its image, and a
    /// change pass whose run failed and whose file has a problem; series sorted (the
    /// encoder's order within a family is a hash map's).
    #[test]
    fn exposition_after_two_passes() {
        let mut registry = Registry::default();
        let metrics = PassMetrics::register(&mut registry);
        let web: crate::spec::name::Name = "web".parse().expect("name");
        let done = || Outcome::Done {
            detail: "ok".into(),
        };
        let first = report(
            "start",
            vec![
                (
                    Action::Pull {
                        image: "busybox".into(),
                    },
                    done(),
                ),
                (Action::Run { name: web.clone() }, done()),
            ],
        );
        metrics.record(&first, 1_800_000_000.5);
        let mut second = report(
            "change",
            vec![
                (
                    Action::Run { name: web },
                    Outcome::Failed { error: "no".into() },
                ),
                (
                    Action::RepairNetworkRules,
                    Outcome::Skipped {
                        reason: "after".into(),
                    },
                ),
            ],
        );
        second.duration_ms = 1500;
        second.files = vec!["/d/a.toml".into(), "/d/b.toml".into()];
        let unknown = |key: &str| {
            Diagnostic::for_file(
                Code::UnknownKey,
                std::path::Path::new("/d/b.toml"),
                format!("unknown key `{key}`"),
            )
        };
        second.diagnostics = vec![unknown("x"), unknown("y")];
        // Not about a desired file: not counted.
        second.problems = vec!["observing: a container record is damaged".into()];
        metrics.record(&second, 1_800_000_002.0);

        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).expect("encode");
        let expected = r#"# HELP berth_reconcile_passes_total Reconcile passes by trigger and outcome (ok, failed, deferred, load_error).
# TYPE berth_reconcile_passes_total counter
berth_reconcile_passes_total{trigger="start",outcome="ok"} 1
berth_reconcile_passes_total{trigger="change",outcome="failed"} 1
# HELP berth_reconcile_pass_duration_seconds Wall time of reconcile passes, load to apply.
# TYPE berth_reconcile_pass_duration_seconds histogram
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="0.005"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="0.01"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="0.025"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="0.05"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="0.1"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="0.25"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="0.5"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="1"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="2.5"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="5"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="10"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="30"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="60"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="start",le="+Inf"} 1
berth_reconcile_pass_duration_seconds_sum{trigger="start"} 0.04
berth_reconcile_pass_duration_seconds_count{trigger="start"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="0.005"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="0.01"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="0.025"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="0.05"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="0.1"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="0.25"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="0.5"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="1"} 0
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="2.5"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="5"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="10"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="30"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="60"} 1
berth_reconcile_pass_duration_seconds_bucket{trigger="change",le="+Inf"} 1
berth_reconcile_pass_duration_seconds_sum{trigger="change"} 1.5
berth_reconcile_pass_duration_seconds_count{trigger="change"} 1
# HELP berth_reconcile_steps_total Plan steps by kind and result (done, failed, skipped).
# TYPE berth_reconcile_steps_total counter
berth_reconcile_steps_total{kind="run",result="done"} 1
berth_reconcile_steps_total{kind="run",result="failed"} 1
berth_reconcile_steps_total{kind="repair-network-rules",result="skipped"} 1
berth_reconcile_steps_total{kind="pull",result="done"} 1
# HELP berth_desired_problems Problems in the desired files at the last pass that read them.
# TYPE berth_desired_problems gauge
berth_desired_problems 2
# HELP berth_desired_files_with_problems Desired files with at least one problem at the last pass that read them.
# TYPE berth_desired_files_with_problems gauge
berth_desired_files_with_problems 1
# HELP berth_desired_files Desired files read at the last pass that read them.
# TYPE berth_desired_files gauge
berth_desired_files 2
# HELP berth_reconcile_last_pass_timestamp_seconds When the last reconcile pass ended, as a Unix time.
# TYPE berth_reconcile_last_pass_timestamp_seconds gauge
berth_reconcile_last_pass_timestamp_seconds 1800000002.0
"#;
        assert_eq!(sorted(&text), sorted(expected), "{text}");
    }

    fn sorted(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines
    }
}
