//! `stop` and `rm`: a container by name (its newest instance) or id.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use berth::runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Container names or ids.
    #[arg(required = true)]
    containers: Vec<String>,
    /// Seconds to wait after the stop signal before SIGKILL (default: the entry's
    /// stop_timeout).
    #[arg(long, short = 't', value_name = "SECONDS")]
    time: Option<u64>,
}

pub fn stop(root: &Path, args: &StopArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(root)?;
    for name in &args.containers {
        let record = runtime.resolve(name)?;
        match runtime.stop(&record.id, args.time.map(Duration::from_secs))? {
            Some(exit) => println!("{}: {}", record.id, exit.describe()),
            None => println!("{}: was not started", record.id),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Container names or ids. A name removes every container made for it.
    #[arg(required = true)]
    containers: Vec<String>,
    /// Stop running containers first (SIGKILL, no grace period).
    #[arg(long, short = 'f')]
    force: bool,
}

pub fn rm(root: &Path, args: &RmArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(root)?;
    for name in &args.containers {
        let mut ids: Vec<String> = runtime.find(name)?.into_iter().map(|r| r.id).collect();
        if ids.is_empty() {
            // An id, possibly of a container whose record a power loss damaged.
            if runtime.unreadable()?.iter().any(|id| id == name) {
                ids.push(name.clone());
            } else {
                ids.push(runtime.resolve(name)?.id);
            }
        }
        for id in ids {
            runtime.remove(&id, args.force)?;
            println!("{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
