//! `berth import compose FILE [-o DIR]`: write berth files from a Compose file and say what
//! did not carry over (exit 1 if anything was left out, 0 if the import is complete).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum ImportWhat {
    /// Translate a Compose file (its `.env` and `${VAR}` interpolation included) into one
    /// berth file per service plus files for networks, volumes, secrets and configs; print
    /// what could not be carried over. Exit 0 if complete, 1 if anything was left out.
    Compose(ComposeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ComposeArgs {
    /// The Compose file (compose.yaml, docker-compose.yml).
    file: PathBuf,
    /// The directory to write into (created if missing).
    #[arg(short = 'o', long = "output", default_value = ".", value_name = "DIR")]
    output: PathBuf,
    /// Replace files that already exist in DIR.
    #[arg(long)]
    force: bool,
    /// Variables file for interpolation (default: `.env` beside the Compose file).
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Subnets for networks that name none are /24s taken from this range.
    #[arg(long, default_value = "10.89.0.0/16", value_name = "CIDR")]
    subnet_pool: ipnet::Ipv4Net,
}

pub fn run(what: &ImportWhat) -> anyhow::Result<ExitCode> {
    let ImportWhat::Compose(args) = what;
    let options = berth::import::Options {
        environment: std::env::vars().collect(),
        env_file: args.env_file.clone(),
        subnet_pool: args.subnet_pool,
    };
    let import = berth::import::compose(&args.file, &args.output, &options)?;
    berth::import::write(&import, &args.output, args.force)
        .with_context(|| format!("writing into {}", args.output.display()))?;
    for (name, _) in &import.files {
        println!("wrote {}", args.output.join(name).display());
    }
    print!("{}", berth::import::report(&import));
    Ok(if import.dropped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
