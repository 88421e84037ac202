use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth::spec::{self, hash};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The desired-state directory.
    dir: PathBuf,
    /// Print a JSON report on standard output instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let loaded = spec::load_dir(&args.dir)?;
    let valid = loaded.is_complete();
    if args.json {
        let report = serde_json::json!({
            "valid": valid,
            "directory": args.dir,
            "files": loaded.files,
            "resources": hash::all_hashes(&loaded.desired)?,
            "diagnostics": loaded.diagnostics,
        });
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let stderr = std::io::stderr();
        let fancy = stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let mut err = stderr.lock();
        for d in &loaded.diagnostics {
            if fancy {
                write!(err, "{}", d.render_fancy())?;
            } else {
                writeln!(err, "{d}\n")?;
            }
        }
        let d = &loaded.desired;
        if valid {
            println!(
                "{}: valid ({} files: {} images, {} containers, {} volumes, {} networks)",
                args.dir.display(),
                loaded.files.len(),
                d.images.len(),
                d.containers.len(),
                d.volumes.len(),
                d.networks.len()
            );
        } else {
            let files: BTreeSet<_> = loaded
                .diagnostics
                .iter()
                .map(|d| &d.location.file)
                .collect();
            let n = loaded.diagnostics.len();
            println!(
                "{}: invalid: {n} problem{} in {} file{}; nothing was changed",
                args.dir.display(),
                if n == 1 { "" } else { "s" },
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            );
        }
    }
    std::io::stdout()
        .flush()
        .context("writing to standard output")?;
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
