//! `berth run DIR NAME`: create and start one described container now, without the agent:
//! its image is fetched per its pull policy, its volumes are created, and its output is
//! followed until it exits (or, with `--detach`, not at all).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use berth::image::ImageService;
use berth::reconcile::apply::{Machine, create_container, ensure_network_exists};
use berth::runtime::{Runtime, State, logfile};
use berth::spec::model::{Desired, PullPolicy};
use berth::state::image::ImageRecord;
use berth::state::record::{ContainerRecord, ExitRecord};
use berth::sys;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The desired-state directory that describes the container.
    dir: PathBuf,
    /// The `[container.NAME]` to run.
    name: String,
    /// Start it and return at once, printing its id.
    #[arg(long, short = 'd')]
    detach: bool,
    /// Remove the container (not its volumes) once it has exited.
    #[arg(long, conflicts_with = "detach")]
    rm: bool,
}

/// The container's status; as `docker run`: 125 when berth fails, 126 when its command
/// cannot be executed, 127 when it is not found.
pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    match run_container(root, args) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("berth: error: {err:#}");
            Ok(ExitCode::from(125))
        }
    }
}

fn run_container(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let mut loaded = berth::spec::load_dir(&args.dir)?;
    if !loaded.desired.secrets.is_empty() {
        let key = berth::state::secret_key::load_or_create(root)?;
        berth::spec::hash::key_secrets(&mut loaded.desired, &key);
    }
    for d in &loaded.diagnostics {
        eprintln!("{d}\n");
    }
    let Some(container) = loaded.desired.containers.get(args.name.as_str()) else {
        bail!(
            "{} describes no valid container `{}`{}",
            args.dir.display(),
            args.name,
            if loaded.is_complete() {
                ""
            } else {
                " (see the problems above)"
            }
        );
    };
    let machine = Machine::open(root, None)?;
    ensure_image(&machine.images, &loaded.desired, &args.name)?;
    let runtime = &machine.runtime;
    // Its networks are created first if they do not exist (never changed: that is the
    // reconciler's job).
    if let berth::spec::model::ContainerNetwork::Bridge(attachments) = &container.network {
        for a in attachments {
            ensure_network_exists(&machine, &loaded.desired, a.network.as_str())
                .with_context(|| format!("network {}", a.network))?;
        }
    }
    let record = create_container(&machine, &loaded.desired, &args.name, true)?;
    let started = runtime.start(&record.id);
    if let Err(e) = started {
        if args.rm {
            let _ = runtime.remove(&record.id, true);
        }
        if let Some(cannot) = berth::runtime::CannotRun::of(&e.to_string()) {
            eprintln!("berth: error: {e}");
            return Ok(ExitCode::from(cannot.exit_code()));
        }
        return Err(e.into());
    }
    if args.detach {
        println!("{}", record.id);
        return Ok(ExitCode::SUCCESS);
    }
    let _ = container;
    let exit = follow_until_exit(runtime, &record)?;
    if args.rm {
        runtime.remove(&record.id, false)?;
    }
    if exit.error.is_some() || exit.oom_killed || exit.code.is_none() {
        eprintln!("berth: container {} {}", record.id, exit.describe());
    }
    Ok(ExitCode::from(u8::try_from(exit.status()).unwrap_or(255)))
}

/// The image a container uses, fetched unless present (or always, per its pull policy).
pub fn ensure_image(
    images: &ImageService,
    desired: &Desired,
    name: &str,
) -> anyhow::Result<ImageRecord> {
    let container = &desired.containers[name];
    let entry = desired
        .images
        .values()
        .find(|i| i.source == container.image);
    let policy = entry.map(|i| i.pull).unwrap_or(PullPolicy::Missing);
    let present = images.get(&container.image)?;
    let record = match (present, policy) {
        (Some(r), PullPolicy::Missing | PullPolicy::Never) => r,
        (None, PullPolicy::Never) => bail!(
            "image {} is not in the store and its pull policy is \"never\"; run `berth pull {}`",
            container.image,
            container.image
        ),
        (_, _) => {
            let options = berth::reconcile::apply::pull_options(desired, &container.image);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(images.pull(&container.image, &options, super::progress::for_stderr()))
                .with_context(|| format!("pulling {}", container.image))?
        }
    };
    Ok(record)
}

/// Print the container's output as it comes, until its monitor has recorded the exit.
fn follow_until_exit(runtime: &Runtime, record: &ContainerRecord) -> anyhow::Result<ExitRecord> {
    let paths = runtime.layout().container(&record.id);
    let monitor = match runtime.state(&record.id)? {
        State::Running(m) => Some(m.monitor),
        _ => None,
    };
    let monitor_fd = match monitor {
        Some(m) => m.open()?,
        None => None,
    };
    let mut cursor = logfile::Cursor::at_start(&paths.logs());
    let mut render = logfile::Render::new(false);
    loop {
        let done = match &monitor_fd {
            Some(fd) => sys::wait_readable(fd, Some(Duration::from_millis(100)))?,
            None => true,
        };
        print_records(&mut cursor, &mut render)?;
        if done {
            break;
        }
    }
    match runtime.state(&record.id)? {
        State::Exited(exit) => Ok(exit),
        other => bail!(
            "container {} ended without an exit record ({other:?})",
            record.id
        ),
    }
}

pub fn print_records(
    cursor: &mut logfile::Cursor,
    render: &mut logfile::Render,
) -> anyhow::Result<()> {
    for r in &cursor.read_new()? {
        super::logs::emit(render, r)?;
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(())
}
