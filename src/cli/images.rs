//! `pull`, `images`, `unpack`: the image commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use berth::image::ImageService;
use berth::image::manifest::Platform;
use berth::image::registry::PullOptions;
use berth::spec::image_ref::ImageSource;
use berth::state::image::ImageRecord;
use berth::units::human_size;

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Image: "nginx:1.27", "ghcr.io/org/app@sha256:…", "oci-archive:/path/app.tar", "oci:/dir:TAG",
    /// "docker-archive:/path/app.tar".
    reference: String,
    #[command(flatten)]
    common: PullFlags,
}

#[derive(Debug, clap::Args)]
pub struct PullFlags {
    /// Platform to pick from a multi-platform image, OS/ARCH[/VARIANT] (default: this host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Allow plain HTTP and unverified TLS for a registry that is not on loopback.
    #[arg(long)]
    insecure: bool,
    /// Registry credentials in docker config.json format (default: /etc/berth/auth.json, then
    /// $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
}

impl PullFlags {
    fn options(&self) -> anyhow::Result<PullOptions> {
        let mut options = PullOptions {
            insecure: self.insecure,
            ..PullOptions::default()
        };
        if let Some(p) = &self.platform {
            let parts: Vec<&str> = p.split('/').collect();
            options.platform = match parts.as_slice() {
                [os, arch] => Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: None,
                },
                [os, arch, v] => Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(v.to_string()),
                },
                _ => bail!("--platform takes OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64/v8"),
            };
        }
        Ok(options)
    }
}

fn parse_source(text: &str) -> anyhow::Result<ImageSource> {
    text.parse::<ImageSource>().map_err(|e| {
        let help = berth::spec::value::help_of(&e);
        anyhow::anyhow!(
            "{e}{}",
            help.map(|h| format!("\n  help: {h}")).unwrap_or_default()
        )
    })
}

fn summary(record: &ImageRecord) -> String {
    format!(
        "{} {} ({}, {} layers, {})",
        record.source,
        record.manifest,
        record.platform,
        record.layers.len(),
        human_size(record.size())
    )
}

pub fn pull(root: &std::path::Path, args: &PullArgs) -> anyhow::Result<ExitCode> {
    let source = parse_source(&args.reference)?;
    let options = args.common.options()?;
    let images = ImageService::open(root, args.common.authfile.as_deref())?;
    let record = super::async_runtime()?
        .block_on(images.pull(&source, &options, super::progress::for_stderr()))
        .map_err(|e| {
            let help = match &e {
                berth::image::ImageError::Pull(p) => p.help(),
                _ => None,
            };
            anyhow::anyhow!(
                "pulling {source}: {e}{}",
                help.map(|h| format!("\n  help: {h}")).unwrap_or_default()
            )
        })?;
    println!("{}", summary(&record));
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print only the images' references, one per line (what `unpack`, `pull` and the
    /// desired files name them by).
    #[arg(long, short = 'q', conflicts_with = "json")]
    quiet: bool,
}

pub fn list(root: &std::path::Path, args: &ImagesArgs) -> anyhow::Result<ExitCode> {
    let images = ImageService::open_local(root)?;
    let records = images.list()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(ExitCode::SUCCESS);
    }
    if args.quiet {
        for r in &records {
            println!("{}", r.source);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<60} {:<19} {:<14} {:>6} {:>10}  RESOLVED",
        "IMAGE", "DIGEST", "PLATFORM", "LAYERS", "SIZE"
    );
    for r in &records {
        let digest: String = r.manifest.to_string().chars().take(19).collect();
        println!(
            "{:<60} {:<19} {:<14} {:>6} {:>10}  {}",
            r.source,
            digest,
            r.platform,
            r.layers.len(),
            human_size(r.size()),
            r.resolved_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct UnpackArgs {
    /// Image (pulled first if it is not in the store).
    reference: String,
    /// Directory to write the root filesystem into; must be empty or not exist.
    dir: PathBuf,
    #[command(flatten)]
    common: PullFlags,
}

pub fn unpack(root: &std::path::Path, args: &UnpackArgs) -> anyhow::Result<ExitCode> {
    let source = parse_source(&args.reference)?;
    if args.dir.exists()
        && std::fs::read_dir(&args.dir)
            .with_context(|| format!("reading {}", args.dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; give a new or empty directory",
            args.dir.display()
        );
    }
    let images = ImageService::open(root, args.common.authfile.as_deref())?;
    let record = match images.get(&source)? {
        Some(r) => r,
        None => {
            let options = PullOptions {
                unpack: false,
                ..args.common.options()?
            };
            super::async_runtime()?
                .block_on(images.pull(&source, &options, super::progress::for_stderr()))
                .with_context(|| format!("pulling {source}"))?
        }
    };
    images.flatten(&record, &args.dir)?;
    println!("{} unpacked into {}", record.source, args.dir.display());
    Ok(ExitCode::SUCCESS)
}
