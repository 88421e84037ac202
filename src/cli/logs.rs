//! `berth logs NAME [-f] [--tail N] [--timestamps]`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use berth::runtime::{State, logfile};

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
    let runtime = berth::wiring::runtime(root)?;
    let record = runtime.resolve(&args.container)?;
    let dir = runtime.layout().container(&record.id).logs();
    let (records, mut cursor) = logfile::tail(&dir, args.tail)?;
    let mut render = logfile::Render::new(args.timestamps);
    let mut emit = |r: &logfile::Record| emit(&mut render, r);
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

/// Print one record on the stream it came from (stdout or stderr).
pub fn emit(render: &mut logfile::Render, record: &logfile::Record) -> std::io::Result<()> {
    match record.stream {
        logfile::Stream::Stdout => render.render(record, &mut std::io::stdout().lock()),
        logfile::Stream::Stderr => render.render(record, &mut std::io::stderr().lock()),
    }
}
