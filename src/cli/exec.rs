//! `berth exec NAME [-t] CMD…`: run a command inside a running container.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use berth::runtime::CannotRun;
use berth::runtime::engine::ExecRequest;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container name (its newest instance) or id.
    container: String,
    /// Give the command a terminal (use with -i for an interactive shell).
    #[arg(long, short = 't')]
    tty: bool,
    /// Pass standard input to the command (otherwise it reads /dev/null).
    #[arg(long, short = 'i')]
    interactive: bool,
    /// Extra environment, KEY=VALUE (repeatable).
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(long, short = 'w', value_name = "DIR")]
    workdir: Option<String>,
    /// Numeric UID[:GID] to run as (default: the container's user).
    #[arg(long, short = 'u', value_name = "UID[:GID]")]
    user: Option<String>,
    /// Run the command in a process group of its own; when it exits, or when berth exec gets
    /// SIGINT/SIGTERM/SIGHUP/SIGQUIT, everything in its process group is killed (what health
    /// checks use: nothing they start outlives them). Not with -t.
    #[arg(long, conflicts_with = "tty")]
    own_group: bool,
    /// The command and its arguments (after `--` when an argument starts with `-` before
    /// the command, as with docker).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The command's status; as `docker exec`: 125 when berth fails, 126 when the command
/// cannot be executed, 127 when it is not found.
pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    match exec(root, args) {
        Ok(code) => Ok(code),
        Err(err) => {
            eprintln!("berth: error: {err:#}");
            Ok(ExitCode::from(125))
        }
    }
}

fn exec(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = berth::wiring::runtime(root)?;
    let record = runtime.resolve(&args.container)?;
    let mut env = Vec::new();
    for item in &args.env {
        let Some((k, v)) = item.split_once('=') else {
            bail!("--env takes KEY=VALUE, got `{item}`");
        };
        env.push((k.to_string(), v.to_string()));
    }
    let user = match &args.user {
        None => None,
        Some(text) => {
            let (uid, gid) = text.split_once(':').unwrap_or((text, text));
            match (uid.parse::<u32>(), gid.parse::<u32>()) {
                (Ok(u), Ok(g)) => Some((u, g)),
                _ => bail!("--user takes numeric UID[:GID], got `{text}`"),
            }
        }
    };
    let request = ExecRequest {
        args: args.command.clone(),
        env,
        cwd: args.workdir.clone(),
        user,
        tty: args.tty,
        interactive: args.interactive || args.tty,
        own_group: args.own_group,
        ..ExecRequest::default()
    };
    let status = match runtime.exec(&record.id, &request) {
        Ok(status) => status,
        Err(e) => match CannotRun::of(&e.to_string()) {
            Some(cannot) => {
                eprintln!("berth: error: {e}");
                return Ok(ExitCode::from(cannot.exit_code()));
            }
            None => return Err(e.into()),
        },
    };
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(255)))
}
