//! The command line: parsing (clap) and one module per subcommand. The only place that uses
//! `anyhow`; everything below returns typed errors.

mod schema;
mod validate;

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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a desired-state directory: exit 0 if valid, 1 if not. Changes nothing.
    Validate(validate::Args),
    /// Print the JSON Schema of the desired-state format (for editors and linters).
    Schema(schema::Args),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema(args) => schema::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("berth: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
