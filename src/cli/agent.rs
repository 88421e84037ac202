//! `berth agent DIR`: keep the machine equal to DIR until stopped (the systemd service).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context as _;
use berth::api::{self, ApiOptions, SocketAccess};
use berth::reconcile::agent::{self, AgentLink, AgentOptions};
use berth::reconcile::apply::Machine;

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
    /// Let members of this group use the API sockets (`berth.sock`, `docker.sock`); by
    /// default only root may. Membership is root on the host, as with Docker's group.
    #[arg(long, value_name = "GROUP")]
    api_group: Option<String>,
    /// Also serve Prometheus metrics over TCP on this address (e.g. 127.0.0.1:9323); they
    /// are always on `berth.sock` at `/metrics`.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let access = match &args.api_group {
        Some(name) => SocketAccess::group(name)?,
        None => SocketAccess::RootOnly,
    };
    let lock = berth::reconcile::lock::ReconcileLock::acquire(root)?;
    let machine = Machine::open(root, args.auth_file.as_deref())?;
    let runtime = super::async_runtime()?;
    let _guard = runtime.enter();
    let (link, requests) = AgentLink::new();
    let context = Arc::new(api::Context {
        root: root.to_path_buf(),
        dir: dir.clone(),
        machine: machine.clone(),
        requests,
        passes: link.passes.clone(),
        started: std::time::SystemTime::now(),
        allow_empty: args.allow_empty,
    });
    let options = ApiOptions {
        access,
        metrics_listen: args.metrics_listen,
    };
    // Bound before the first pass, so a client started with the agent finds the socket.
    let layout = context.machine.runtime.layout().clone();
    let _served = api::start(context, &options).context("serving the API")?;
    let ran = runtime.block_on(agent::run(
        root,
        lock,
        machine,
        AgentOptions {
            dir,
            resync: args.resync,
            parallel: args.parallel,
            write_timeout: args.write_timeout,
            prune_delay: args.prune_delay,
            allow_empty: args.allow_empty,
            pull_interval: args.pull_interval,
        },
        link,
    ));
    // A client finding no socket knows no agent runs (a stale one would make it wait).
    let (berth_socket, docker_socket) = api::socket_paths(&layout);
    let _ = std::fs::remove_file(berth_socket);
    let _ = std::fs::remove_file(docker_socket);
    ran?;
    Ok(ExitCode::SUCCESS)
}
