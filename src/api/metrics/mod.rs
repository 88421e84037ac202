//! Prometheus metrics: `/metrics` on `berth.sock`, and on a TCP address when configured.
//!
//! Three sources: every `PassReport` the agent publishes (`passes`), the event log it
//! follows from its start (`events`), and what is read at scrape time (`scrape`:
//! containers, their restart records and health verdicts, their cgroups).
//! The Prometheus text format 0.0.4 is served unless the scrape asks for OpenMetrics in its
//! `Accept` header (as Prometheus itself does): `promtool check metrics` and older parsers
//! read 0.0.4 only.

mod events;
mod families;
mod listener;
mod passes;
mod scrape;

use std::sync::{Arc, Mutex, OnceLock};

use hyper::{Response, StatusCode};
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

use super::{ApiError, Body, Context};
use crate::runtime::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics-listen {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("listing containers: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("encoding the metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// The agent's metrics: created by `start`, once per agent process.
static AGENT: OnceLock<Arc<Metrics>> = OnceLock::new();

/// What the agent records between scrapes, and what a scrape reads afresh.
pub struct Metrics {
    registry: Registry,
    passes: passes::PassMetrics,
    events: events::EventMetrics,
    runtime: Runtime,
    cache: Mutex<scrape::ScrapeCache>,
}

/// The two text formats, as negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: no `# EOF`, no `_created` series.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`, when the scrape asks for it.
    OpenMetrics,
}

const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Format {
    pub fn from_accept(accept: Option<&str>) -> Format {
        // Prometheus lists OpenMetrics first with the highest weight; a client that names
        // it at all can read it. Anything else gets the format every parser reads.
        let asks = accept.is_some_and(|a| {
            a.split(',').any(|item| {
                let mut parts = item.split(';').map(str::trim);
                let is_openmetrics = parts.next() == Some("application/openmetrics-text");
                let refused = parts.any(|p| p.replace(' ', "") == "q=0");
                is_openmetrics && !refused
            })
        });
        if asks {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_TYPE,
        }
    }
}

impl Metrics {
    pub fn new(runtime: Runtime) -> Metrics {
        let mut registry = Registry::default();
        families::register_build_info(&mut registry);
        let passes = passes::PassMetrics::register(&mut registry);
        let events = events::EventMetrics::register(&mut registry);
        Metrics {
            registry,
            passes,
            events,
            runtime,
            cache: Mutex::new(scrape::ScrapeCache::default()),
        }
    }

    pub fn record_pass(&self, report: &crate::reconcile::PassReport) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.passes.record(report, now);
    }

    pub fn record_event(&self, event: &crate::state::events::Event) {
        self.events.record(event);
    }

    /// The whole exposition: what was recorded, then a fresh reading of the containers.
    /// Blocking (records and cgroup files).
    pub fn exposition(&self, format: Format) -> Result<String, MetricsError> {
        let scraped = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            scrape::collect(&self.runtime, &mut cache)?
        };
        let mut out = String::with_capacity(16 * 1024);
        match format {
            Format::Prometheus => {
                prometheus_text::encode(&mut out, &self.registry)?;
                prometheus_text::encode(&mut out, &scraped)?;
            }
            Format::OpenMetrics => {
                text::encode_registry(&mut out, &self.registry)?;
                text::encode_registry(&mut out, &scraped)?;
                text::encode_eof(&mut out)?;
            }
        }
        Ok(out)
    }

    /// `/metrics`, answered off the async workers.
    pub async fn respond(self: Arc<Self>, accept: Option<&str>) -> Response<Body> {
        let format = Format::from_accept(accept);
        let started = std::time::Instant::now();
        let scrape = move || {
            let before = thread_cpu_us();
            let body = self.exposition(format);
            body.map(|body| (body, thread_cpu_us() - before))
        };
        match tokio::task::spawn_blocking(scrape).await {
            Ok(Ok((body, cpu_us))) => {
                tracing::debug!(
                    bytes = body.len(),
                    micros = started.elapsed().as_micros(),
                    cpu_us,
                    "metrics scraped"
                );
                super::with_type(StatusCode::OK, format.content_type(), body)
            }
            Ok(Err(e)) => super::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            Err(e) => super::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the metrics task ended abnormally: {e}"),
            ),
        }
    }
}

/// CPU time of the calling thread: what a scrape costs, whatever else the machine runs.
fn thread_cpu_us() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec * 1_000_000 + t.tv_nsec / 1_000
}

/// `/metrics` on `berth.sock`: the agent's metrics, negotiated on `accept`.
pub async fn render(context: &Context, accept: Option<&str>) -> Response<Body> {
    agent_metrics(context).respond(accept).await
}

fn agent_metrics(context: &Context) -> Arc<Metrics> {
    AGENT
        .get_or_init(|| Arc::new(Metrics::new(context.machine.runtime.clone())))
        .clone()
}

/// Starts recording the agent's passes and events, and serves `/metrics` on `listen` when
/// given.
pub fn start(
    context: Arc<Context>,
    listen: Option<std::net::SocketAddr>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ApiError> {
    let metrics = agent_metrics(&context);
    let mut tasks = Vec::new();
    let mut reports = context.passes.subscribe();
    let recorder = metrics.clone();
    tasks.push(tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match reports.recv().await {
                Ok(report) => recorder.record_pass(&report),
                // Behind by more than the channel holds: those passes go uncounted.
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "metrics: reconcile passes went uncounted");
                }
                Err(RecvError::Closed) => break,
            }
        }
    }));
    // Events from now on: counters start at zero with the agent, as a process's do.
    let mut events =
        crate::state::events::EventLog::new(context.machine.runtime.layout()).follow(None);
    let recorder = metrics.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            recorder.record_event(&event);
        }
    }));
    if let Some(addr) = listen {
        let listener = listener::bind(addr)
            .map_err(|source| ApiError::from(MetricsError::Listen { addr, source }))?;
        let render = Arc::new(move |accept: Option<String>| {
            let metrics = metrics.clone();
            async move { metrics.respond(accept.as_deref()).await }
        });
        tasks.push(tokio::spawn(listener::serve(listener, render)));
        tracing::info!(%addr, "serving /metrics");
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some("text/plain;version=0.0.4")),
            Format::Prometheus
        );
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text; q=0, text/plain")),
            Format::Prometheus
        );
    }
}
