//! `berth volume ls` and `berth volume rm`: named volumes are never removed implicitly, so
//! this is how they are removed.

use std::path::Path;
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
            let runtime = Runtime::new(root)?;
            let containers = runtime.list()?;
            let unreadable = runtime.unreadable()?;
            if !unreadable.is_empty() {
                bail!(
                    "the records of {} cannot be read, so whether they use a volume is unknown; remove them first (berth rm)",
                    unreadable.join(", ")
                );
            }
            for name in names {
                let users: Vec<&str> = containers
                    .iter()
                    .filter(|c| {
                        c.seed.iter().any(|s| &s.volume == name) || mounts(&runtime, &c.id, name)
                    })
                    .map(|c| c.id.as_str())
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

/// Whether a container's spec bind-mounts the volume (seeding may have been turned off).
fn mounts(runtime: &Runtime, id: &str, volume: &str) -> bool {
    let data = Volumes::new(&runtime.layout().state_root).data(volume);
    let config = runtime.layout().container(id).config();
    let Ok(spec) = oci_spec::runtime::Spec::load(config) else {
        // An unreadable spec could mount anything: count it as a user.
        return true;
    };
    spec.mounts()
        .iter()
        .flatten()
        .any(|m| m.source().as_deref() == Some(data.as_path()))
}
