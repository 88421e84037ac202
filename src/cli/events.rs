//! `berth events`: what happened to containers, images, networks, volumes and desired
//! files, from the state root's event log; whoever acted (the agent, the CLI, a container's
//! monitor). Like `docker events`: past events from `--since`, then new ones as they come,
//! until `--until` or Ctrl-C.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use berth::state::events::{EventFilter, EventHub, EventLog, now_ns, parse_time};
use berth::state::layout::Layout;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show events from this time: unix seconds, RFC 3339, or a duration ago (10m).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Stop at this time (same forms); a time past ends at once after the past events.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Only matching events: type=container|image|network|volume|desired|agent,
    /// event=ACTION, container=NAME|ID, image=REF, label=KEY[=VALUE], network=NAME,
    /// volume=NAME. Repeated keys are alternatives; different keys must all match.
    #[arg(long = "filter", short = 'f', value_name = "KEY=VALUE")]
    filters: Vec<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let now = now_ns();
    let time = |text: &Option<String>, flag: &str| {
        text.as_deref()
            .map(|t| parse_time(t, now).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
            .transpose()
    };
    let since = time(&args.since, "--since")?;
    let until = time(&args.until, "--until")?;
    let mut filter = EventFilter::default();
    for f in &args.filters {
        let (key, value) = f
            .split_once('=')
            .with_context(|| format!("--filter {f:?}: expected KEY=VALUE"))?;
        filter
            .add(key, value)
            .map_err(|e| anyhow::anyhow!("--filter {f:?}: {e}"))?;
    }
    let log = EventLog::new(&Layout::new(root));
    super::async_runtime()?.block_on(async {
        let mut events = EventHub::start(log).between(since, until).await?;
        while let Some(event) = events.recv().await {
            if !filter.matches(&event) {
                continue;
            }
            if args.json {
                println!("{}", serde_json::to_string(&event)?);
            } else {
                println!("{}", event.to_line());
            }
        }
        if until.is_none() {
            anyhow::bail!("the event log could not be followed (see the warning above)");
        }
        Ok(ExitCode::SUCCESS)
    })
}
