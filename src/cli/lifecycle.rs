//! `stop` and `rm`: a container by name (its newest instance) or id.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use berth::runtime::{Runtime, RuntimeError};

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Container names or ids.
    #[arg(required = true)]
    containers: Vec<String>,
    /// How long to wait after the stop signal before SIGKILL: seconds as docker takes them
    /// (`-t 5`) or a duration as kubectl does (`-t 5s`, `-t 1m30s`); default: the entry's
    /// stop_timeout.
    #[arg(long, short = 't', value_name = "SECONDS|DURATION", value_parser = seconds_or_duration)]
    time: Option<Duration>,
}

/// `5` (seconds) or `5s`, `1m30s`, `250ms`.
fn seconds_or_duration(text: &str) -> Result<Duration, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| format!("{text}: {e}"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text}: {e}; expected seconds (5) or a duration (5s, 1m30s)"))
}

pub fn stop(root: &Path, args: &StopArgs) -> anyhow::Result<ExitCode> {
    let runtime = berth::wiring::runtime(root)?;
    let mut failures = Failures::default();
    for name in &args.containers {
        let stopped = runtime.resolve(name).and_then(|record| {
            let exit = runtime.stop(&record.id, args.time)?;
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
    let runtime = berth::wiring::runtime(root)?;
    let mut failures = Failures::default();
    // Listed once, and only if some argument names no recorded container.
    let mut orphans: Option<Vec<String>> = None;
    for name in &args.containers {
        let ids = match ids_to_remove(&runtime, name) {
            Ok(Some(ids)) => ids,
            Ok(None) => {
                // Not a name or id of a recorded container: perhaps a container still
                // running whose state directory was deleted, known by its id only.
                let orphans = orphans.get_or_insert_with(|| {
                    runtime.orphans().unwrap_or_else(|e| {
                        eprintln!(
                            "berth: warning: looking for containers without a state directory: {e}"
                        );
                        Vec::new()
                    })
                });
                if orphans.iter().any(|id| id == name) {
                    match runtime.remove_orphan(name) {
                        Ok(()) => println!("{name}"),
                        Err(err) => failures.report(name, &err.into()),
                    }
                } else {
                    let err = RuntimeError::NotFound { what: name.clone() };
                    failures.report(name, &err.into());
                }
                continue;
            }
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

/// A name means every container made for it; otherwise it is an id (possibly of a
/// container whose record a power loss damaged). None if it is neither.
fn ids_to_remove(runtime: &Runtime, name: &str) -> anyhow::Result<Option<Vec<String>>> {
    let all = runtime.list()?;
    let ids: Vec<String> = all
        .iter()
        .filter(|r| r.name == *name)
        .map(|r| r.id.clone())
        .collect();
    if !ids.is_empty() {
        return Ok(Some(ids));
    }
    if all.iter().any(|r| r.id == *name) || runtime.unreadable()?.iter().any(|id| id == name) {
        return Ok(Some(vec![name.to_string()]));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::seconds_or_duration;
    use std::time::Duration;

    #[test]
    fn stop_times_read_as_docker_and_kubectl_write_them() {
        assert_eq!(seconds_or_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(seconds_or_duration("0"), Ok(Duration::ZERO));
        assert_eq!(seconds_or_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(seconds_or_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(seconds_or_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(
            seconds_or_duration("soon")
                .unwrap_err()
                .contains("expected seconds (5)")
        );
        assert!(seconds_or_duration("").is_err());
        assert!(seconds_or_duration("-1").is_err());
    }
}
