//! `berth import compose FILE [-o DIR]` and `berth import quadlet PATH... [-o DIR]`: write
//! berth files from a Compose file or Podman Quadlet units and say what did not carry over
//! (exit 1 if anything was left out, 0 if the import is complete).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum ImportWhat {
    /// Translate a Compose file (its `.env` and `${VAR}` interpolation included) into one
    /// berth file per service plus files for networks, volumes, secrets and configs; print
    /// what could not be carried over. Exit 0 if complete, 1 if anything was left out.
    Compose(ComposeArgs),
    /// Translate Podman Quadlet units (`.container`, `.network`, `.volume` files, or
    /// directories of them such as /etc/containers/systemd) into one berth file per
    /// container plus files for images, networks, volumes and secrets; print what could not
    /// be carried over. Exit 0 if complete, 1 if anything was left out.
    Quadlet(QuadletArgs),
}

#[derive(Debug, clap::Args)]
pub struct QuadletArgs {
    /// Unit files or directories of them (read with their subdirectories).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The directory to write into (created if missing).
    #[arg(short = 'o', long = "output", default_value = ".", value_name = "DIR")]
    output: PathBuf,
    /// Replace files that already exist in DIR.
    #[arg(long)]
    force: bool,
    /// Where the secrets' files are expected (podman keeps their values in its own store):
    /// `[secret.NAME]` names DIR/NAME.
    #[arg(long, default_value = "/etc/berth/secrets", value_name = "DIR")]
    secrets_dir: PathBuf,
    /// Subnets for networks that name none are /24s taken from this range.
    #[arg(long, default_value = "10.89.0.0/16", value_name = "CIDR")]
    subnet_pool: ipnet::Ipv4Net,
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
    let args = match what {
        ImportWhat::Compose(args) => args,
        ImportWhat::Quadlet(args) => return quadlet(args),
    };
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
    Ok(verdict(&import))
}

fn quadlet(args: &QuadletArgs) -> anyhow::Result<ExitCode> {
    let options = berth::import::QuadletOptions {
        secrets_dir: args.secrets_dir.clone(),
        subnet_pool: args.subnet_pool,
    };
    let import = berth::import::quadlet(&args.paths, &args.output, &options)?;
    berth::import::write(&import, &args.output, args.force)
        .with_context(|| format!("writing into {}", args.output.display()))?;
    for (name, _) in &import.files {
        println!("wrote {}", args.output.join(name).display());
    }
    print!("{}", berth::import::quadlet_report(&import));
    Ok(verdict(&import))
}

fn verdict(import: &berth::import::Import) -> ExitCode {
    if import.dropped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
