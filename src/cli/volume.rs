//! `berth volume ls` and `berth volume rm`: named volumes are never removed implicitly, so
//! this is how they are removed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use berth::runtime::Runtime;
use berth::volume::Volumes;

#[derive(Debug, clap::Subcommand)]
pub enum VolumeCommand {
    /// List the volumes berth created.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete volumes and their data. Refused while any container (running or not) mounts
    /// one of them.
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn run(root: &Path, command: &VolumeCommand) -> anyhow::Result<ExitCode> {
    let volumes = Volumes::new(root);
    match command {
        VolumeCommand::Ls { json } => {
            let list = volumes.list()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<32} {:<25} PATH", "NAME", "CREATED");
                for v in &list {
                    println!(
                        "{:<32} {:<25} {}",
                        v.name,
                        v.created_at,
                        volumes.data(&v.name).display()
                    );
                }
            }
        }
        VolumeCommand::Rm { names } => {
            let runtime = berth::wiring::runtime(root)?;
            let containers = runtime.list()?;
            let unreadable = runtime.unreadable()?;
            if !unreadable.is_empty() {
                bail!(
                    "the records of {} cannot be read, so whether they use a volume is unknown; remove them first (berth rm)",
                    unreadable.join(", ")
                );
            }
            // Each container's mount sources, read once whatever the number of volumes.
            let sources: Vec<(&str, Option<Vec<PathBuf>>)> = containers
                .iter()
                .map(|c| (c.id.as_str(), mount_sources(&runtime, &c.id)))
                .collect();
            for name in names {
                let data = volumes.data(name);
                let users: Vec<&str> = sources
                    .iter()
                    // An unreadable spec could mount anything: it counts as a user.
                    .filter(|(_, s)| s.as_ref().is_none_or(|s| s.contains(&data)))
                    .map(|(id, _)| *id)
                    .collect();
                if !users.is_empty() {
                    bail!(
                        "volume {name} is used by {}; remove those containers first (berth rm)",
                        users.join(", ")
                    );
                }
                if !volumes.remove(name)? {
                    bail!("no volume {name} (berth volume ls lists them)");
                }
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The sources of a container's bind mounts (volumes are bind mounts of their data
/// directory); `None` if its spec cannot be read.
fn mount_sources(runtime: &Runtime, id: &str) -> Option<Vec<PathBuf>> {
    let spec = oci_spec::runtime::Spec::load(runtime.layout().container(id).config()).ok()?;
    Some(
        spec.mounts()
            .iter()
            .flatten()
            .filter_map(|m| m.source().clone())
            .collect(),
    )
}
