//! The command line: parsing (clap) and one module per subcommand. The only place that uses
//! `anyhow`; everything below returns typed errors.

mod agent;
mod check;
mod events;
mod exec;
mod images;
mod import;
mod lifecycle;
mod logging;
mod logs;
mod plan;
mod progress;
mod prune;
mod ps;
mod run;
mod schema;
mod stats;
mod status;
mod validate;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// berth keeps a Linux server equal to a directory of TOML files describing images,
/// containers, volumes and networks.
#[derive(Debug, Parser)]
#[command(name = "berth", version, propagate_version = true)]
pub struct Cli {
    /// State root: content store, container records, volumes.
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth",
        value_name = "DIR"
    )]
    pub root: PathBuf,

    /// The host's age identity, which decrypts `[secret.NAME] age = …` files. Never inside
    /// the desired directory.
    #[arg(
        long,
        global = true,
        env = "BERTH_AGE_IDENTITY",
        default_value = berth::spec::secret::DEFAULT_AGE_IDENTITY,
        value_name = "FILE"
    )]
    pub age_identity: PathBuf,

    /// How berth logs on stderr: text (colours only on a terminal), JSON lines, or journald
    /// entries (the default when stderr is the journal, as under systemd).
    #[arg(long, global = true, env = "BERTH_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<logging::LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a desired-state directory: exit 0 if valid, 1 if not. Changes nothing.
    Validate(validate::Args),
    /// Print the JSON Schema of the desired-state format (for editors and linters).
    Schema(schema::Args),
    /// Show what `apply` would do to make the machine equal to a desired-state directory.
    /// Changes nothing.
    Plan(plan::PlanArgs),
    /// Make the machine equal to a desired-state directory once (one pass, or until
    /// converged with --wait), then exit. Refused while an agent manages the state root.
    Apply(plan::ApplyArgs),
    /// Keep the machine equal to a desired-state directory: reconcile on every change,
    /// container exit and resync, until SIGTERM (containers keep running).
    Agent(agent::Args),
    /// Desired versus actual: each described container's state, restarts, last exit,
    /// and the reconciler's last word about it.
    Status(status::Args),
    /// Fetch an image into the content store (verifying every digest) and unpack its layers.
    Pull(images::PullArgs),
    /// List the images in the content store.
    Images(images::ImagesArgs),
    /// Write an image's flattened root filesystem into a directory, for inspection.
    Unpack(images::UnpackArgs),
    /// Remove what the desired state no longer uses.
    #[command(subcommand)]
    Prune(prune::PruneWhat),
    /// Create and start one described container now, without the agent, and follow its
    /// output until it exits (Ctrl-C stops following; the container keeps running).
    Run(run::Args),
    /// List containers: running ones, or all with -a (state, exit status, image).
    Ps(ps::Args),
    /// Stop containers: their stop signal, then SIGKILL after the stop timeout.
    Stop(lifecycle::StopArgs),
    /// Remove stopped containers (their volumes stay).
    Rm(lifecycle::RmArgs),
    /// Print a container's output.
    Logs(logs::Args),
    /// Run a command inside a running container.
    Exec(exec::Args),
    /// Resource usage of running containers (CPU, memory, block I/O, pids).
    Stats(stats::Args),
    /// What happened: container, image, network, volume and desired-file events, past
    /// (`--since`) and as they come.
    Events(events::Args),
    /// Named volumes: list them, or delete one (never done implicitly).
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Write berth files from another tool's description (a Compose file), and report
    /// what could not be carried over.
    #[command(subcommand)]
    Import(import::ImportWhat),
    /// Check this host for what berth needs (kernel features, cgroups, nftables, the state
    /// root's filesystem), each problem with its fix: exit 0 if nothing fails, 1 if something
    /// does. Changes nothing.
    Check(check::Args),
    /// Supervise one container (started by berth itself; not for interactive use).
    #[command(hide = true)]
    Monitor {
        /// The container's id.
        id: String,
    },
    /// Serve DNS on the networks' gateways (started by berth itself; not for interactive use).
    #[command(hide = true, name = "dns-resolver")]
    DnsResolver,
}

pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Monitors and engines chdir, and the run root and cgroup scope derive from the state
    // root's path: it must be absolute and spelled one way only.
    cli.root = canonical_root(&cli.root);
    berth::spec::secret::set_age_identity(
        std::path::absolute(&cli.age_identity).unwrap_or_else(|_| cli.age_identity.clone()),
    );
    logging::init(cli.log_format, matches!(cli.command, Command::Agent(_)));
    if let Command::Monitor { id } = &cli.command {
        // Before anything else: the monitor must stay single-threaded.
        let layout = berth::state::layout::Layout::new(&cli.root);
        return ExitCode::from(u8::try_from(berth::wiring::monitor_main(&layout, id)).unwrap_or(1));
    }
    if let Command::DnsResolver = &cli.command {
        // Before anything else: it forks, which needs a single thread.
        return ExitCode::from(u8::try_from(berth::network::dns::main(&cli.root)).unwrap_or(1));
    }
    if let Command::Check(args) = &cli.command {
        // Before anything else: its overlay trials fork, which needs a single thread; and it
        // must answer whatever the state root holds.
        return finish(check::run(&cli.root, args));
    }
    keep_default_subnet(&cli.root);
    // Every command that loads the directory must agree on the default network's subnet
    // (it is part of container hashes): a bad value stops all of them, not just some.
    if let Err(err) = berth::spec::default_network::subnet() {
        eprintln!("berth: error: {err}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema(args) => schema::run(&args),
        Command::Plan(args) => plan::plan(&cli.root, &args),
        Command::Apply(args) => plan::apply(&cli.root, &args),
        Command::Agent(args) => agent::run(&cli.root, &args),
        Command::Status(args) => status::run(&cli.root, &args),
        Command::Pull(args) => images::pull(&cli.root, &args),
        Command::Images(args) => images::list(&cli.root, &args),
        Command::Unpack(args) => images::unpack(&cli.root, &args),
        Command::Prune(what) => prune::run(&cli.root, &what),
        Command::Run(args) => run::run(&cli.root, &args),
        Command::Ps(args) => ps::run(&cli.root, &args),
        Command::Stop(args) => lifecycle::stop(&cli.root, &args),
        Command::Rm(args) => lifecycle::rm(&cli.root, &args),
        Command::Logs(args) => logs::run(&cli.root, &args),
        Command::Exec(args) => exec::run(&cli.root, &args),
        Command::Stats(args) => stats::run(&cli.root, &args),
        Command::Events(args) => events::run(&cli.root, &args),
        Command::Volume(command) => volume::run(&cli.root, &command),
        Command::Import(what) => import::run(&what),
        Command::Monitor { .. } | Command::DnsResolver | Command::Check(_) => {
            unreachable!("dispatched above")
        }
    };
    finish(result)
}

fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("berth: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime of the commands that pull or reconcile: two workers are enough for
/// bounded parallel transfers and steps, and stay small beside the containers.
fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The state root as one spelling: its longest existing ancestor resolved (symlinks, `..`),
/// the rest appended, so a root that does not exist yet is spelled as it will be once it does.
/// Without `BERTH_DEFAULT_SUBNET`, the `default` network keeps the subnet it was created
/// with (see `spec::default_network::keep_existing`).
fn keep_default_subnet(root: &std::path::Path) {
    use berth::spec::default_network::{NAME, SUBNET_VAR, keep_existing};
    if std::env::var_os(SUBNET_VAR).is_some_and(|v| !v.is_empty()) {
        return;
    }
    let networks = berth::network::Networks::new(&berth::state::layout::Layout::new(root));
    // Every command passes here: one file read, not every network's. No state root yet, or
    // an unreadable record: the built-in subnet (observe reports the record).
    if let Ok(Some(existing)) = networks.record(NAME) {
        keep_existing(existing.subnet);
    }
}

fn canonical_root(root: &std::path::Path) -> PathBuf {
    let absolute = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            return absolute;
        };
        rest.push(name.to_os_string());
        existing = parent;
    }
    let mut out = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    out.extend(rest.iter().rev());
    out
}
