//! `berth agent DIR`: keep the machine equal to DIR until stopped (the systemd service).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

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
    /// A file being written (modified and not yet closed) is waited for, so it is never
    /// read half-written; a writer holding a file open longer than this is not.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    write_timeout: Duration,
    /// Remove a container only once its entry has been missing this long (a file being
    /// rewritten must not prune what it is about to describe again).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    prune_delay: Duration,
    /// Let an empty directory remove every container (by default an empty directory is
    /// taken for a mount that is not there yet, and nothing is pruned).
    #[arg(long)]
    allow_empty: bool,
    /// Re-resolve `pull = "always"` images at most this often, besides on every change of
    /// the directory and on SIGHUP (registries rate-limit manifest requests).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pull_interval: Duration,
    /// Registry credentials (Docker's config.json format).
    #[arg(long, env = "BERTH_AUTH_FILE")]
    auth_file: Option<PathBuf>,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    super::async_runtime()?.block_on(agent::run(
        root,
        AgentOptions {
            dir,
            resync: args.resync,
            parallel: args.parallel,
            write_timeout: args.write_timeout,
            prune_delay: args.prune_delay,
            allow_empty: args.allow_empty,
            pull_interval: args.pull_interval,
            auth_file: args.auth_file.clone(),
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}
