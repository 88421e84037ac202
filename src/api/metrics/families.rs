//! The label sets and bucket layouts the metric families share, and the one registry entry
//! that never changes (build info).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    pub trigger: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassLabels {
    pub trigger: String,
    /// ok | failed | deferred | load_error
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// The plan action, as `berth plan --json` names it (run, restart, pull, …).
    pub kind: String,
    /// done | failed | skipped
    pub result: String,
}

/// A container entry's name: bounded by the desired files, unlike container ids.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabels {
    pub name: String,
}

/// One container, labelled as cAdvisor labels its `container_*` series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabels {
    pub name: String,
    pub id: String,
    pub image: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthLabels {
    pub health: String,
}

/// Reconcile passes: from a few milliseconds (nothing to do) to a minute (pulls, starts).
pub fn pass_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

/// Container starts, stops and port switches: milliseconds to the stop timeout.
pub fn container_histogram() -> Histogram {
    Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

/// Image pulls: a cached manifest to a large image on a slow link.
pub fn pull_histogram() -> Histogram {
    Histogram::new([0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0])
}

/// `berth_build_info{version}`: 1, so other series can be joined with the version.
pub fn register_build_info(registry: &mut Registry) {
    registry.register(
        "berth_build",
        "The berth agent's version",
        Info::new(vec![(
            "version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        )]),
    );
}
