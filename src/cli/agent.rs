//! `berth agent DIR`: keep the machine equal to DIR until stopped (the systemd service).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use berth::reconcile::agent::{self, AgentOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The desired-state directory to watch (it may be a symlink that gets swapped).
    dir: PathBuf,
    /// A full pass at least this often, even without changes: repairs drift (a container
    /// removed or killed by hand).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// Steps run at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// After a change, wait until no file was modified for this long before reading.
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Registry credentials (Docker's config.json format).
    #[arg(long, env = "BERTH_AUTH_FILE")]
    auth_file: Option<PathBuf>,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(agent::run(
        root,
        AgentOptions {
            dir,
            resync: args.resync,
            parallel: args.parallel,
            settle: args.settle,
            auth_file: args.auth_file.clone(),
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}
