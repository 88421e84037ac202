//! Counters and timings derived from the event log the agent follows: OOM kills, start and
//! stop durations, image pulls, update switches and rollbacks, and every event by kind.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::families::{NameLabels, container_histogram, pull_histogram};
use crate::state::events::{Action, Event};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    subject: String,
    action: String,
}

pub struct EventMetrics {
    events: Family<EventLabels, Counter>,
    oom_kills: Family<NameLabels, Counter>,
    start_duration: Histogram,
    stop_duration: Histogram,
    pull_duration: Histogram,
    pulled_bytes: Counter,
    pull_failures: Counter,
    switch_duration: Histogram,
    rollbacks: Family<NameLabels, Counter>,
}

impl EventMetrics {
    pub fn register(registry: &mut Registry) -> EventMetrics {
        let metrics = EventMetrics {
            events: Family::default(),
            oom_kills: Family::default(),
            start_duration: container_histogram(),
            stop_duration: container_histogram(),
            pull_duration: pull_histogram(),
            pulled_bytes: Counter::default(),
            pull_failures: Counter::default(),
            switch_duration: container_histogram(),
            rollbacks: Family::default(),
        };
        registry.register(
            "berth_events",
            "Events recorded since the agent started, by subject and action (as berth events shows them)",
            metrics.events.clone(),
        );
        registry.register(
            "berth_container_oom_kills",
            "Container runs in which the kernel's OOM killer killed a process, by entry",
            metrics.oom_kills.clone(),
        );
        registry.register_with_unit(
            "berth_container_start_duration",
            "How long container starts took, until the init runs",
            Unit::Seconds,
            metrics.start_duration.clone(),
        );
        registry.register_with_unit(
            "berth_container_stop_duration",
            "How long container stops took, signal to exit",
            Unit::Seconds,
            metrics.stop_duration.clone(),
        );
        registry.register_with_unit(
            "berth_image_pull_duration",
            "How long successful image pulls took",
            Unit::Seconds,
            metrics.pull_duration.clone(),
        );
        registry.register_with_unit(
            "berth_image_pulled",
            "Bytes downloaded by image pulls",
            Unit::Bytes,
            metrics.pulled_bytes.clone(),
        );
        registry.register(
            "berth_image_pull_failures",
            "Image pulls that failed",
            metrics.pull_failures.clone(),
        );
        registry.register_with_unit(
            "berth_update_switch_duration",
            "Start-first updates: from the new container healthy to the ports switched to it",
            Unit::Seconds,
            metrics.switch_duration.clone(),
        );
        registry.register(
            "berth_update_rollbacks",
            "Start-first updates given up (the new container removed, the old one kept)",
            metrics.rollbacks.clone(),
        );
        metrics
    }

    pub fn record(&self, event: &Event) {
        self.events
            .get_or_create(&EventLabels {
                subject: event.subject.as_str().to_string(),
                action: event.action.as_str().to_string(),
            })
            .inc();
        let name = || NameLabels {
            name: event.name().to_string(),
        };
        match event.action {
            Action::Oom => {
                self.oom_kills.get_or_create(&name()).inc();
            }
            Action::Start => observe_ms(&self.start_duration, event, "duration_ms"),
            Action::Stop => observe_ms(&self.stop_duration, event, "duration_ms"),
            Action::Pull => {
                observe_ms(&self.pull_duration, event, "duration_ms");
                if let Some(bytes) = number(event, "bytes") {
                    self.pulled_bytes.inc_by(bytes);
                }
            }
            Action::PullFailed => {
                self.pull_failures.inc();
            }
            Action::Switch => observe_ms(&self.switch_duration, event, "switch_ms"),
            Action::Rollback => {
                self.rollbacks.get_or_create(&name()).inc();
            }
            _ => {}
        }
    }
}

fn number(event: &Event, key: &str) -> Option<u64> {
    event.attributes.get(key)?.parse().ok()
}

/// An event without the attribute (an older writer's) is counted, but not timed.
fn observe_ms(histogram: &Histogram, event: &Event, key: &str) {
    if let Some(ms) = number(event, key) {
        #[allow(
            clippy::cast_precision_loss,
            reason = "durations are far below 2^52 ms"
        )]
        histogram.observe(ms as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::events::Subject;

    fn event(subject: Subject, action: Action, id: &str, attributes: &[(&str, &str)]) -> Event {
        let mut event = Event::now(subject, action, id);
        for (k, v) in attributes {
            event = event.with(k, v);
        }
        event
    }

    /// The exposition after one event of each kind the metrics read; series sorted (the
    /// encoder's order within a family is a hash map's).
    #[test]
    fn exposition_after_a_sequence_of_events() {
        let mut registry = Registry::default();
        let metrics = EventMetrics::register(&mut registry);
        let c = Subject::Container;
        let sequence = [
            event(
                Subject::Image,
                Action::Pull,
                "busybox",
                &[
                    ("name", "busybox"),
                    ("bytes", "2097152"),
                    ("duration_ms", "1500"),
                ],
            ),
            event(
                Subject::Image,
                Action::PullFailed,
                "nginx",
                &[("name", "nginx"), ("error", "denied")],
            ),
            event(c, Action::Create, "web-1", &[("name", "web")]),
            event(
                c,
                Action::Start,
                "web-1",
                &[("name", "web"), ("duration_ms", "80")],
            ),
            event(c, Action::Oom, "web-1", &[("name", "web")]),
            event(
                c,
                Action::Die,
                "web-1",
                &[("name", "web"), ("exit_code", "137"), ("oom", "true")],
            ),
            event(
                c,
                Action::Stop,
                "web-1",
                &[("name", "web"), ("duration_ms", "2000")],
            ),
            event(
                c,
                Action::Switch,
                "web-2",
                &[
                    ("name", "web"),
                    ("old", "web-1"),
                    ("new", "web-2"),
                    ("switch_ms", "30"),
                ],
            ),
            event(
                c,
                Action::Rollback,
                "web-3",
                &[("name", "web"), ("reason", "unhealthy")],
            ),
            // Without its timing: counted, not timed.
            event(c, Action::Start, "db-1", &[("name", "db")]),
        ];
        for e in &sequence {
            metrics.record(e);
        }
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).expect("encode");
        let expected = r#"# HELP berth_events_total Events recorded since the agent started, by subject and action (as berth events shows them).
# TYPE berth_events_total counter
berth_events_total{subject="container",action="stop"} 1
berth_events_total{subject="container",action="start"} 2
berth_events_total{subject="image",action="pull_failed"} 1
berth_events_total{subject="container",action="rollback"} 1
berth_events_total{subject="image",action="pull"} 1
berth_events_total{subject="container",action="switch"} 1
berth_events_total{subject="container",action="die"} 1
berth_events_total{subject="container",action="oom"} 1
berth_events_total{subject="container",action="create"} 1
# HELP berth_container_oom_kills_total Container runs in which the kernel's OOM killer killed a process, by entry.
# TYPE berth_container_oom_kills_total counter
berth_container_oom_kills_total{name="web"} 1
# HELP berth_container_start_duration_seconds How long container starts took, until the init runs.
# TYPE berth_container_start_duration_seconds histogram
berth_container_start_duration_seconds_bucket{le="0.01"} 0
berth_container_start_duration_seconds_bucket{le="0.025"} 0
berth_container_start_duration_seconds_bucket{le="0.05"} 0
berth_container_start_duration_seconds_bucket{le="0.1"} 1
berth_container_start_duration_seconds_bucket{le="0.25"} 1
berth_container_start_duration_seconds_bucket{le="0.5"} 1
berth_container_start_duration_seconds_bucket{le="1"} 1
berth_container_start_duration_seconds_bucket{le="2.5"} 1
berth_container_start_duration_seconds_bucket{le="5"} 1
berth_container_start_duration_seconds_bucket{le="10"} 1
berth_container_start_duration_seconds_bucket{le="30"} 1
berth_container_start_duration_seconds_bucket{le="+Inf"} 1
berth_container_start_duration_seconds_sum 0.08
berth_container_start_duration_seconds_count 1
# HELP berth_container_stop_duration_seconds How long container stops took, signal to exit.
# TYPE berth_container_stop_duration_seconds histogram
berth_container_stop_duration_seconds_bucket{le="0.01"} 0
berth_container_stop_duration_seconds_bucket{le="0.025"} 0
berth_container_stop_duration_seconds_bucket{le="0.05"} 0
berth_container_stop_duration_seconds_bucket{le="0.1"} 0
berth_container_stop_duration_seconds_bucket{le="0.25"} 0
berth_container_stop_duration_seconds_bucket{le="0.5"} 0
berth_container_stop_duration_seconds_bucket{le="1"} 0
berth_container_stop_duration_seconds_bucket{le="2.5"} 1
berth_container_stop_duration_seconds_bucket{le="5"} 1
berth_container_stop_duration_seconds_bucket{le="10"} 1
berth_container_stop_duration_seconds_bucket{le="30"} 1
berth_container_stop_duration_seconds_bucket{le="+Inf"} 1
berth_container_stop_duration_seconds_sum 2.0
berth_container_stop_duration_seconds_count 1
# HELP berth_image_pull_duration_seconds How long successful image pulls took.
# TYPE berth_image_pull_duration_seconds histogram
berth_image_pull_duration_seconds_bucket{le="0.1"} 0
berth_image_pull_duration_seconds_bucket{le="0.5"} 0
berth_image_pull_duration_seconds_bucket{le="1"} 0
berth_image_pull_duration_seconds_bucket{le="2.5"} 1
berth_image_pull_duration_seconds_bucket{le="5"} 1
berth_image_pull_duration_seconds_bucket{le="10"} 1
berth_image_pull_duration_seconds_bucket{le="30"} 1
berth_image_pull_duration_seconds_bucket{le="60"} 1
berth_image_pull_duration_seconds_bucket{le="120"} 1
berth_image_pull_duration_seconds_bucket{le="300"} 1
berth_image_pull_duration_seconds_bucket{le="+Inf"} 1
berth_image_pull_duration_seconds_sum 1.5
berth_image_pull_duration_seconds_count 1
# HELP berth_image_pulled_bytes_total Bytes downloaded by image pulls.
# TYPE berth_image_pulled_bytes_total counter
berth_image_pulled_bytes_total 2097152
# HELP berth_image_pull_failures_total Image pulls that failed.
# TYPE berth_image_pull_failures_total counter
berth_image_pull_failures_total 1
# HELP berth_update_switch_duration_seconds Start-first updates: from the new container healthy to the ports switched to it.
# TYPE berth_update_switch_duration_seconds histogram
berth_update_switch_duration_seconds_bucket{le="0.01"} 0
berth_update_switch_duration_seconds_bucket{le="0.025"} 0
berth_update_switch_duration_seconds_bucket{le="0.05"} 1
berth_update_switch_duration_seconds_bucket{le="0.1"} 1
berth_update_switch_duration_seconds_bucket{le="0.25"} 1
berth_update_switch_duration_seconds_bucket{le="0.5"} 1
berth_update_switch_duration_seconds_bucket{le="1"} 1
berth_update_switch_duration_seconds_bucket{le="2.5"} 1
berth_update_switch_duration_seconds_bucket{le="5"} 1
berth_update_switch_duration_seconds_bucket{le="10"} 1
berth_update_switch_duration_seconds_bucket{le="30"} 1
berth_update_switch_duration_seconds_bucket{le="+Inf"} 1
berth_update_switch_duration_seconds_sum 0.03
berth_update_switch_duration_seconds_count 1
# HELP berth_update_rollbacks_total Start-first updates given up (the new container removed, the old one kept).
# TYPE berth_update_rollbacks_total counter
berth_update_rollbacks_total{name="web"} 1
"#;
        assert_eq!(sorted(&text), sorted(expected), "{text}");
    }

    fn sorted(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines
    }
}
