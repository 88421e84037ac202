//! A health check's verdict over time, pure: Docker's semantics (consecutive failures make a
//! container unhealthy, one success makes it healthy, failures in the start period do not
//! count), with one addition: during the start period checks run every second (or every
//! interval, if shorter), so a container that becomes ready is seen healthy within a second
//! rather than an interval — what a start-first update waits for.

use serde::{Deserialize, Serialize};

use crate::spec::model::HealthCheck;
use crate::sys::ProcessId;

/// How often checks run during the start period, at most.
const START_PERIOD_STEP_MS: u64 = 1000;
/// Output of a check kept in the record (exec output, HTTP status line, connect error).
pub(crate) const OUTPUT_LIMIT: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No check has passed yet (and not enough have failed).
    Starting,
    Healthy,
    Unhealthy,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        })
    }
}

/// `<container>/health.json`: the verdict about one run of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// The run it is about (the container's init): a restart starts a new verdict.
    pub init: ProcessId,
    /// When that run started (ms since the epoch).
    pub started_at_ms: u64,
    pub status: Health,
    /// When `status` took its value.
    pub since_ms: u64,
    /// Consecutive failures that counted.
    pub failing_streak: u32,
    /// Checks run so far in this run.
    pub checks: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<CheckResult>,
}

impl crate::state::format::Record for HealthRecord {
    const KIND: &'static str = "health record";
    const FORMAT: u64 = 1;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub at_ms: u64,
    pub ok: bool,
    pub duration_ms: u64,
    /// What the check said, shortened to `OUTPUT_LIMIT` bytes.
    pub output: String,
}

impl HealthRecord {
    /// The verdict before any check of a run.
    pub(crate) fn new(init: ProcessId, started_at_ms: u64) -> HealthRecord {
        HealthRecord {
            init,
            started_at_ms,
            status: Health::Starting,
            since_ms: started_at_ms,
            failing_streak: 0,
            checks: 0,
            last: None,
        }
    }

    fn in_start_period(&self, check: &HealthCheck, now_ms: u64) -> bool {
        self.status == Health::Starting
            && now_ms < self.started_at_ms + crate::units::millis(check.start_period.0)
    }

    /// When the next check is due.
    pub(crate) fn next_due_ms(&self, check: &HealthCheck) -> u64 {
        let interval = crate::units::millis(check.interval.0);
        let from = self.last.as_ref().map_or(self.started_at_ms, |l| l.at_ms);
        let step = if self.in_start_period(check, from) {
            interval.min(START_PERIOD_STEP_MS)
        } else {
            interval
        };
        from.saturating_add(step.max(1))
    }

    /// The verdict after one more check; true if the status changed.
    pub(crate) fn record(&mut self, check: &HealthCheck, mut result: CheckResult) -> bool {
        result.output = printable(&result.output);
        truncate(&mut result.output, OUTPUT_LIMIT);
        let before = self.status;
        self.checks += 1;
        if result.ok {
            self.failing_streak = 0;
            self.status = Health::Healthy;
        } else if !self.in_start_period(check, result.at_ms) {
            self.failing_streak = self.failing_streak.saturating_add(1);
            if self.failing_streak >= check.retries.max(1) {
                self.status = Health::Unhealthy;
            }
        }
        let changed = self.status != before;
        if changed {
            // When the check that decided it ended: what waiters could react to.
            self.since_ms = result.at_ms + result.duration_ms;
        }
        self.last = Some(result);
        changed
    }

    /// One line for `ps`/`status`: "healthy", "unhealthy (3 failed: connection refused)".
    pub(crate) fn describe(&self) -> String {
        match (&self.status, &self.last) {
            (Health::Unhealthy, Some(last)) => format!(
                "unhealthy ({} failed: {})",
                self.failing_streak,
                first_line(&last.output)
            ),
            (status, _) => status.to_string(),
        }
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() { "no output" } else { line }
}

/// The container's text made safe for a terminal: control characters (escape sequences
/// among them) written as escapes, lines and tabs kept.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Cut at a character boundary at most `limit` bytes in.
pub(crate) fn truncate(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut at = limit;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::duration::Duration;
    use crate::spec::model::Probe;

    fn check(interval_ms: u64, retries: u32, start_period_ms: u64) -> HealthCheck {
        HealthCheck {
            probe: Probe::Tcp(80),
            interval: Duration(std::time::Duration::from_millis(interval_ms)),
            timeout: Duration::from_secs(1),
            retries,
            start_period: Duration(std::time::Duration::from_millis(start_period_ms)),
        }
    }

    fn result(at_ms: u64, ok: bool) -> CheckResult {
        CheckResult {
            at_ms,
            ok,
            duration_ms: 1,
            output: if ok {
                "ok".into()
            } else {
                "connection refused".into()
            },
        }
    }

    fn record() -> HealthRecord {
        HealthRecord::new(
            ProcessId {
                pid: 10,
                start_time: 20,
            },
            1_000,
        )
    }

    #[test]
    fn consecutive_failures_make_unhealthy_and_one_success_heals() {
        let c = check(10_000, 3, 0);
        let mut r = record();
        assert!(!r.record(&c, result(11_000, false)));
        assert!(!r.record(&c, result(21_000, false)));
        assert_eq!(r.status, Health::Starting);
        assert!(r.record(&c, result(31_000, false)));
        assert_eq!(
            (r.status, r.failing_streak, r.since_ms),
            (Health::Unhealthy, 3, 31_001)
        );
        assert_eq!(r.describe(), "unhealthy (3 failed: connection refused)");
        assert!(r.record(&c, result(41_000, true)));
        assert_eq!(
            (r.status, r.failing_streak, r.checks),
            (Health::Healthy, 0, 4)
        );
    }

    #[test]
    fn a_success_in_between_resets_the_streak() {
        let c = check(1_000, 2, 0);
        let mut r = record();
        r.record(&c, result(2_000, true));
        r.record(&c, result(3_000, false));
        assert!(!r.record(&c, result(4_000, true)));
        assert!(!r.record(&c, result(5_000, false)));
        assert_eq!(r.status, Health::Healthy);
        assert!(r.record(&c, result(6_000, false)));
        assert_eq!(r.status, Health::Unhealthy);
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let c = check(10_000, 1, 5_000);
        let mut r = record();
        for at in [2_000, 3_000, 4_000, 5_999] {
            assert!(!r.record(&c, result(at, false)));
        }
        assert_eq!((r.status, r.failing_streak), (Health::Starting, 0));
        // Over: the first failure counts (retries = 1).
        assert!(r.record(&c, result(6_000, false)));
        assert_eq!(r.status, Health::Unhealthy);
    }

    #[test]
    fn a_healthy_container_is_past_its_start_period() {
        let c = check(10_000, 1, 60_000);
        let mut r = record();
        r.record(&c, result(2_000, true));
        assert!(r.record(&c, result(12_000, false)));
        assert_eq!(r.status, Health::Unhealthy);
    }

    #[test]
    fn checks_are_fast_in_the_start_period_then_every_interval() {
        let c = check(10_000, 3, 5_000);
        let mut r = record();
        assert_eq!(r.next_due_ms(&c), 2_000);
        r.record(&c, result(2_000, false));
        assert_eq!(r.next_due_ms(&c), 3_000);
        r.record(&c, result(3_000, true));
        assert_eq!(r.next_due_ms(&c), 13_000);
        // Without a start period: every interval from the start.
        let c = check(10_000, 3, 0);
        assert_eq!(record().next_due_ms(&c), 11_000);
        // An interval shorter than the fast step stays as it is.
        let c = check(300, 3, 5_000);
        assert_eq!(record().next_due_ms(&c), 1_300);
    }

    #[test]
    fn output_is_bounded_at_a_character_boundary() {
        let c = check(1_000, 1, 0);
        let mut r = record();
        let mut long = result(2_000, false);
        long.output = "é".repeat(OUTPUT_LIMIT);
        r.record(&c, long);
        let kept = &r.last.as_ref().expect("last").output;
        assert!(kept.len() <= OUTPUT_LIMIT && kept.chars().all(|ch| ch == 'é'));
    }

    #[test]
    fn escape_sequences_never_reach_a_terminal() {
        let c = check(1_000, 1, 0);
        let mut r = record();
        let mut evil = result(2_000, false);
        evil.output = "\u{1b}]0;PWNED\u{7}\u{1b}[2Jred\nline two\ttab".into();
        r.record(&c, evil);
        let kept = &r.last.as_ref().expect("last").output;
        assert!(
            !kept
                .chars()
                .any(|ch| ch.is_control() && ch != '\n' && ch != '\t'),
            "{kept:?}"
        );
        assert!(
            kept.contains("\\u{1b}]0;PWNED") && kept.contains("line two\ttab"),
            "{kept:?}"
        );
        assert!(!r.describe().contains('\u{1b}'));
    }

    #[test]
    fn the_record_round_trips() {
        let c = check(1_000, 1, 0);
        let mut r = record();
        r.record(&c, result(2_000, true));
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(
            serde_json::from_str::<HealthRecord>(&json).expect("back"),
            r
        );
        assert!(json.contains("\"status\":\"healthy\""), "{json}");
    }
}
