//! `berth logs NAME [-f] [--tail N] [--timestamps]`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use berth::runtime::{Runtime, State, logfile};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name (its newest instance) or id.
    container: String,
    /// Keep printing new output until the container stops.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Prefix every line with its time (RFC 3339).
    #[arg(long, short = 't')]
    timestamps: bool,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(root)?;
    let record = runtime.resolve(&args.container)?;
    let dir = runtime.layout().container(&record.id).logs();
    let (records, mut cursor) = logfile::tail(&dir, args.tail)?;
    let mut render = logfile::Render::new(args.timestamps);
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut emit = |r: &logfile::Record| -> std::io::Result<()> {
        match r.stream {
            logfile::Stream::Stdout => render.render(r, &mut stdout.lock()),
            logfile::Stream::Stderr => render.render(r, &mut stderr.lock()),
        }
    };
    for r in &records {
        emit(r)?;
    }
    if args.follow {
        let id = record.id.clone();
        logfile::follow(
            &mut cursor,
            Duration::from_millis(100),
            || {
                !matches!(
                    runtime.state(&id),
                    Ok(State::Running(_)) | Ok(State::Created)
                )
            },
            &mut emit,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
