//! `berth status [DIR]`: desired versus actual (the view is `api::views::status`), as a
//! table or JSON. DIR defaults to the one the agent (or the last apply) used.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use berth::api::views::status::{self, Report};
use berth::reconcile::apply::Machine;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The desired-state directory (default: the one the agent or the last apply used).
    dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let machine = Machine::open(root, None)?;
    let report = status::build(&machine, args.dir.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &Report) {
    println!("desired state: {}", report.dir.display());
    match (&report.agent_pid, &report.last_pass) {
        (Some(pid), Some(p)) => println!(
            "agent: running (pid {pid}); last pass {} ({}, {} step(s), {} failed)",
            p["started_at"].as_str().unwrap_or("?"),
            p["trigger"].as_str().unwrap_or("?"),
            p["steps"],
            p["failed"]
        ),
        (None, Some(p)) => println!(
            "agent: not running; last pass {} ({})",
            p["started_at"].as_str().unwrap_or("?"),
            p["trigger"].as_str().unwrap_or("?")
        ),
        _ => println!("agent: not running; no pass recorded for this directory"),
    }
    if !report.problems.is_empty() {
        println!("problems (nothing is pruned while there are any):");
        for p in &report.problems {
            println!("  {p}");
        }
    }
    println!(
        "{:<20} {:<28} {:<22} {:>8}  {:<28} NOTE",
        "NAME", "STATE", "CONTAINER", "RESTARTS", "LAST EXIT"
    );
    for r in &report.containers {
        let mut marks: Vec<String> = r.health.iter().map(|h| h.to_string()).collect();
        if r.privileged {
            marks.insert(0, "PRIVILEGED".into());
        }
        match r.ports {
            Some(berth::state::network::PortHold::Standby) => marks.push("standby".into()),
            Some(berth::state::network::PortHold::Superseded { .. }) => {
                marks.push("draining".into())
            }
            _ => {}
        }
        let health = if marks.is_empty() {
            String::new()
        } else {
            format!(" ({})", marks.join(", "))
        };
        println!(
            "{:<20} {:<28} {:<22} {:>8}  {:<28} {}",
            r.name,
            format!("{}{health}", r.state),
            r.id.as_deref().unwrap_or("-"),
            r.restarts,
            r.last_exit.as_deref().unwrap_or("-"),
            r.note.as_deref().unwrap_or("")
        );
    }
    if !report.networks.is_empty() {
        println!();
        println!(
            "{:<20} {:<15} {:<10} {:<29} {:>10}  NOTE",
            "NETWORK", "STATE", "BRIDGE", "SUBNET", "CONTAINERS"
        );
        for n in &report.networks {
            println!(
                "{:<20} {:<15} {:<10} {:<29} {:>10}  {}",
                n.name,
                n.state,
                n.bridge.as_deref().unwrap_or("-"),
                format!(
                    "{}{}",
                    n.subnet.as_deref().unwrap_or("-"),
                    if n.internal { " (internal)" } else { "" }
                ),
                n.containers,
                n.note.as_deref().unwrap_or("")
            );
        }
        if !report.rules_in_sync {
            println!("nftables table: differs from the state; the next pass rebuilds it");
        }
    }
}
