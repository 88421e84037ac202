//! `berth ps [-a] [--json]`: the containers berth made and what they are doing, from their
//! records confirmed against the kernel.

use std::path::Path;
use std::process::ExitCode;

use berth::api::views::containers;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also list containers that are not running.
    #[arg(long, short = 'a')]
    all: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Print only the containers' ids, one per line (for `berth stop $(berth ps -q)`).
    #[arg(long, short = 'q', conflicts_with = "json")]
    quiet: bool,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = berth::wiring::runtime(root)?;
    let listing = containers::list(&runtime, args.all)?;
    for w in &listing.warnings {
        eprintln!("berth: warning: {w}");
    }
    let rows = listing.rows;
    if args.quiet {
        for r in &rows {
            println!("{}", r.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<20} {:<9} {:<34} {:>8}  IMAGE",
        "ID", "NAME", "STATE", "STATUS", "RESTARTS"
    );
    for r in &rows {
        println!(
            "{:<28} {:<20} {:<9} {:<34} {:>8}  {}",
            r.id, r.name, r.state, r.status, r.restarts, r.image
        );
    }
    Ok(ExitCode::SUCCESS)
}
