//! `stop` and `rm`: a container by name (its newest instance) or id.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use berth::runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Container names or ids.
    #[arg(required = true)]
    containers: Vec<String>,
    /// Seconds to wait after the stop signal before SIGKILL (default: the entry's
    /// stop_timeout).
    #[arg(long, short = 't', value_name = "SECONDS")]
    time: Option<u64>,
}

pub fn stop(root: &Path, args: &StopArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(root)?;
    let mut failures = Failures::default();
    for name in &args.containers {
        let stopped = runtime.resolve(name).and_then(|record| {
            let exit = runtime.stop(&record.id, args.time.map(Duration::from_secs))?;
            Ok((record.id, exit))
        });
        match stopped {
            Ok((id, Some(exit))) => println!("{id}: {}", exit.describe()),
            Ok((id, None)) => println!("{id}: was not started"),
            Err(err) => failures.report(name, &err.into()),
        }
    }
    Ok(failures.exit_code())
}

/// Failures of a command that goes through every container it was given, as `docker rm a b
/// c` does: each is `NAME: error` on stderr, none stops the others, any makes the status 1.
#[derive(Default)]
struct Failures {
    any: bool,
}

impl Failures {
    fn report(&mut self, name: &str, err: &anyhow::Error) {
        eprintln!("{name}: {err:#}");
        self.any = true;
    }

    fn exit_code(&self) -> ExitCode {
        if self.any {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Container names or ids. A name removes every container made for it.
    #[arg(required = true)]
    containers: Vec<String>,
    /// Stop running containers first (SIGKILL, no grace period).
    #[arg(long, short = 'f')]
    force: bool,
}

pub fn rm(root: &Path, args: &RmArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(root)?;
    let mut failures = Failures::default();
    for name in &args.containers {
        // A container still running whose state directory was deleted: known by its id only.
        match runtime.orphans() {
            Ok(orphans) if orphans.iter().any(|id| id == name) => {
                match runtime.remove_orphan(name) {
                    Ok(()) => println!("{name}"),
                    Err(err) => failures.report(name, &err.into()),
                }
                continue;
            }
            Ok(_) => {}
            Err(err) => {
                failures.report(name, &err.into());
                continue;
            }
        }
        let ids = match ids_to_remove(&runtime, name) {
            Ok(ids) => ids,
            Err(err) => {
                failures.report(name, &err);
                continue;
            }
        };
        // Every container of the name is tried, even after one failed.
        for id in ids {
            match runtime.remove(&id, args.force) {
                Ok(()) => println!("{id}"),
                Err(err) => failures.report(name, &err.into()),
            }
        }
    }
    Ok(failures.exit_code())
}

/// A name means every container made for it; otherwise it is an id.
fn ids_to_remove(runtime: &Runtime, name: &str) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = runtime.find(name)?.into_iter().map(|r| r.id).collect();
    if !ids.is_empty() {
        return Ok(ids);
    }
    // An id, possibly of a container whose record a power loss damaged.
    if runtime.unreadable()?.iter().any(|id| id == name) {
        return Ok(vec![name.to_string()]);
    }
    Ok(vec![runtime.resolve(name)?.id])
}
