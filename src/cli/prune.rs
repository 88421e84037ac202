//! `prune images DIR`: remove images that nothing in the desired state uses.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use berth::image::ImageService;
use berth::spec;

#[derive(Debug, clap::Subcommand)]
pub enum PruneWhat {
    /// Remove image records, blobs and unpacked layers that no container or image of the
    /// desired state uses. Refuses to run if any desired file has a problem.
    Images {
        /// The desired-state directory.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(root: &Path, what: &PruneWhat) -> anyhow::Result<ExitCode> {
    let PruneWhat::Images { dir, json } = what;
    let loaded = spec::load_dir(dir)?;
    if !loaded.is_complete() {
        for d in &loaded.diagnostics {
            eprintln!("{d}\n");
        }
        bail!(
            "{} has {} problem(s); nothing was pruned (a partial view of the desired state could delete images still in use)",
            dir.display(),
            loaded.diagnostics.len()
        );
    }
    // Images of containers that exist (running or not) stay too: their layers are the
    // lower directories of those containers' root filesystems.
    let machine = berth::reconcile::apply::Machine {
        runtime: berth::wiring::runtime(root)?,
        images: std::sync::Arc::new(ImageService::open_local(root)?),
        volumes: berth::volume::Volumes::new(root),
    };
    let report = berth::reconcile::apply::prune_images(&machine, &loaded.desired)?;
    if *json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for image in &report.images {
            println!("removed {image}");
        }
        println!(
            "pruned {} images, {} blobs ({}), {} unpacked layers",
            report.images.len(),
            report.blobs,
            berth::units::human_size(report.bytes),
            report.layers
        );
    }
    Ok(ExitCode::SUCCESS)
}
