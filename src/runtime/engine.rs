//! The engines that turn a bundle into a running process. The OCI bundle is the contract;
//! both engines take the same `config.json`. Both are driven only from single-threaded
//! processes (the monitor, `berth exec`), never from the agent.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libcontainer::container::Container as LcContainer;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorValidationError, default::DefaultExecutor,
};
use oci_spec::runtime::Spec;

use super::secret_env::{SecretVar, StartSecrets};
use crate::state::record::{ContainerRecord, EngineRecord};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{op} container {id}: {message}")]
    Embedded {
        op: &'static str,
        id: String,
        message: String,
    },
    #[error("{} {op} {id}: {message}", binary.display())]
    External {
        binary: PathBuf,
        op: &'static str,
        id: String,
        message: String,
    },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The container's standard streams.
pub(crate) struct StdioFds {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The write end of `sys::exec_failure_channel`: the init sends why its exec failed
    /// into it, and a successful exec closes it (the embedded engine; others drop it).
    pub exec_failure: Option<OwnedFd>,
}

/// One container engine.
pub(crate) trait Engine {
    /// Create the container from `bundle`; its init process waits for `start`. Returns the
    /// init's pid, a child of the calling process (or re-parented to it as a subreaper).
    /// `secrets` are added to the process's environment without entering `bundle`.
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdio: StdioFds,
        secrets: &StartSecrets,
    ) -> Result<i32, EngineError>;
    fn start(&self, id: &str) -> Result<(), EngineError>;
    /// Forget the container: its cgroup and the engine's state. Kills what is left.
    fn delete(&self, id: &str) -> Result<(), EngineError>;
    /// Run `args` inside the running container, joining its namespaces and cgroup, with the
    /// caller's stdio and the container's process settings (user, capabilities, rlimits,
    /// seccomp); returns the exit status.
    fn exec(&self, id: &str, bundle: &Path, exec: &ExecRequest) -> Result<i32, EngineError>;
}

#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub user: Option<(u32, u32)>,
    /// Give the process a terminal (a new pty whose master this process relays).
    pub tty: bool,
    /// Relay this process's stdin to it (otherwise it reads /dev/null).
    pub interactive: bool,
    /// The process leads a process group of its own, and the whole group is
    /// killed when it exits or when `berth exec` is told to stop: nothing it started
    /// outlives it (health checks). Embedded engine only.
    pub own_group: bool,
    /// The container's env-passed secrets, as its process has them (`env` overrides them),
    /// for the embedded engine, which adds them in its executor. An OCI runtime reads them
    /// from the `config.json` it was started with, on the run root's tmpfs.
    pub secret_env: Vec<SecretVar>,
}

/// The engine a container's record names, with its state under `engine_root`.
pub(crate) fn for_record(record: &ContainerRecord, engine_root: &Path) -> Box<dyn Engine> {
    match &record.engine {
        EngineRecord::Embedded => Box::new(Embedded {
            root: engine_root.join("embedded"),
            consoles: engine_root.join("consoles"),
            seccomp_sha256: record.seccomp_sha256.clone(),
        }),
        EngineRecord::Oci { binary } => Box::new(External {
            binary: binary.clone(),
            root: engine_root.join("oci"),
        }),
    }
}

/// youki's libcontainer, in this process.
struct Embedded {
    root: PathBuf,
    /// Where `exec -t` binds its console socket (root only).
    consoles: PathBuf,
    /// The seccomp program the bundle must hold (sha256 of `seccomp.bpf`); without one,
    /// the container runs without a filter only if it was created without one.
    seccomp_sha256: Option<String>,
}

impl Embedded {
    fn err<'a>(
        op: &'static str,
        id: &'a str,
    ) -> impl FnOnce(libcontainer::error::LibcontainerError) -> EngineError + 'a {
        move |e| EngineError::Embedded {
            op,
            id: id.to_string(),
            message: e.to_string(),
        }
    }

    fn load(&self, id: &str) -> Result<LcContainer, EngineError> {
        LcContainer::load(self.root.join(id)).map_err(Self::err("loading", id))
    }
}

/// What runs in the container's process just before exec (init or exec'd): default signal
/// dispositions — Rust ignores SIGPIPE, and an ignored signal stays ignored across exec —
/// then the precompiled seccomp program, last, as runc loads it.
#[derive(Clone)]
struct BerthExecutor {
    seccomp_bpf: Option<Vec<u8>>,
    /// Lead a process group of its own (`ExecRequest::own_group`).
    own_group: bool,
    /// Where a failed exec is reported (`StdioFds::exec_failure`), by descriptor number:
    /// the init is a forked copy of the monitor, so the number is open there too.
    exec_failure: Option<i32>,
    /// Env-passed secrets, added to the environment only here, just before exec: the spec
    /// libcontainer reads (and the process.json of an exec) never holds them.
    secret_env: Vec<SecretVar>,
}

impl BerthExecutor {
    /// For a container whose bundle holds `seccomp.bpf` (written by `Runtime::create`):
    /// exactly the program recorded at creation, or an error — never silently none.
    fn for_bundle(bundle: &Path, expected: Option<&str>) -> Result<BerthExecutor, EngineError> {
        let path = bundle.join(SECCOMP_BPF);
        let Some(expected) = expected else {
            if path.exists() {
                // A program without a recorded digest: made by an older berth. Refuse rather
                // than guess whether to load it.
                return Err(EngineError::Io {
                    op: "verifying the seccomp program",
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the container's record names no seccomp program; recreate the container",
                    ),
                });
            }
            return Ok(BerthExecutor {
                seccomp_bpf: None,
                own_group: false,
                exec_failure: None,
                secret_env: Vec::new(),
            });
        };
        let bpf = std::fs::read(&path).map_err(|source| EngineError::Io {
            op: "reading the seccomp program",
            path: path.clone(),
            source,
        })?;
        if crate::sha256::hex_digest(&bpf) != expected {
            return Err(EngineError::Io {
                op: "verifying the seccomp program",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "it is not the program recorded when the container was created",
                ),
            });
        }
        Ok(BerthExecutor {
            seccomp_bpf: Some(bpf),
            own_group: false,
            exec_failure: None,
            secret_env: Vec::new(),
        })
    }
}

/// A failed exec in words that say what to change.
fn exec_failure_text(errno: nix::errno::Errno) -> String {
    use nix::errno::Errno;
    let advice = match errno {
        Errno::E2BIG => {
            "the arguments and environment are too large for the kernel (at most 128 KiB per string, and about a quarter of the stack limit in all); pass large data as a file (a bind mount or a volume)"
        }
        Errno::ENOEXEC => {
            "not a program this kernel can run (a script without a #! line, or a binary for another architecture)"
        }
        Errno::EACCES => {
            "permission denied: not executable for the container's user, or on a noexec mount"
        }
        Errno::ENOENT => {
            "not found, or its interpreter or dynamic loader is missing from the image"
        }
        _ => "the exec failed",
    };
    format!("{advice} ({errno})")
}

/// Where glibc's execvp(3) looks when PATH is unset (libcontainer's validation requires a
/// PATH in the spec, so this is a fallback only).
const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";

/// Run `args` with the current environment (the container's: libcontainer's `setup_envs`
/// has set it) and `secret_env` set over it, looking `program` up in PATH as execvp(3)
/// does, but never feeding a file the kernel refuses (ENOEXEC) to /bin/sh as glibc does: a
/// script without `#!` or a binary for another architecture is a failed start, as under
/// runc. Returns only on failure.
fn exec_searching_path(
    program: &std::ffi::CStr,
    args: &[std::ffi::CString],
    secret_env: &[SecretVar],
) -> nix::errno::Errno {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let env: Vec<std::ffi::CString> = std::env::vars_os()
        .filter(|(key, _)| {
            !secret_env
                .iter()
                .any(|v| key.as_bytes() == v.name.as_bytes())
        })
        .chain(secret_env.iter().map(|v| {
            (
                v.name.clone().into(),
                std::ffi::OsStr::from_bytes(v.value.expose()).to_owned(),
            )
        }))
        .filter_map(|(key, value)| {
            let mut entry = key.into_vec();
            entry.push(b'=');
            entry.extend(value.into_vec());
            std::ffi::CString::new(entry).ok()
        })
        .collect();
    let path = std::env::var_os("PATH");
    search_path(
        program.to_bytes(),
        path.as_deref().map_or(DEFAULT_PATH, |p| p.as_bytes()),
        |candidate| match nix::unistd::execve(candidate, args, &env) {
            Err(errno) => errno,
            Ok(never) => match never {},
        },
    )
}

/// execvp(3)'s search without its shell fallback: a program containing `/` is tried as is;
/// otherwise each PATH entry in turn (an empty one is the working directory), going on
/// past entries where it is missing or not executable (EACCES, remembered: "permission
/// denied" says more than "not found" if nothing else is found) and stopping at any other
/// error (ENOEXEC, E2BIG…). `exec` returns only if the exec failed.
fn search_path(
    program: &[u8],
    path: &[u8],
    mut exec: impl FnMut(&std::ffi::CStr) -> nix::errno::Errno,
) -> nix::errno::Errno {
    use nix::errno::Errno;
    if program.is_empty() {
        return Errno::ENOENT;
    }
    if program.contains(&b'/') {
        return std::ffi::CString::new(program).map_or(Errno::EINVAL, |p| exec(&p));
    }
    let mut denied = false;
    for dir in path.split(|b| *b == b':') {
        let mut candidate = dir.to_vec();
        if !candidate.is_empty() && !candidate.ends_with(b"/") {
            candidate.push(b'/');
        }
        candidate.extend_from_slice(program);
        let Ok(candidate) = std::ffi::CString::new(candidate) else {
            continue;
        };
        match exec(&candidate) {
            Errno::EACCES => denied = true,
            // Not here (glibc's list): try the next entry.
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
            other => return other,
        }
    }
    if denied { Errno::EACCES } else { Errno::ENOENT }
}

/// The compiled seccomp program in a bundle, for the embedded engine.
pub(crate) const SECCOMP_BPF: &str = "seccomp.bpf";

impl Executor for BerthExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        crate::sys::reset_signal_dispositions()
            .map_err(|e| ExecutorError::Other(format!("resetting signal dispositions: {e}")))?;
        if self.own_group {
            // A process group of its own (already one if it leads a session).
            if let Err(e) = rustix::process::setpgid(None, None)
                && rustix::process::getpgrp() != rustix::process::getpid()
            {
                return Err(ExecutorError::Other(format!(
                    "starting a process group: {e}"
                )));
            }
        }
        if let Some(bpf) = &self.seccomp_bpf {
            crate::sys::load_seccomp_program(bpf)
                .map_err(|e| ExecutorError::Other(format!("loading the seccomp profile: {e}")))?;
        }
        let args: Vec<std::ffi::CString> = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .into_iter()
            .flatten()
            .map(|a| std::ffi::CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| ExecutorError::InvalidArg)?;
        let Some(program) = args.first() else {
            return Err(ExecutorError::InvalidArg);
        };
        // Returns only if the exec failed (E2BIG, ENOEXEC, EACCES…): the monitor is told
        // why, and records a failed start rather than an exit code.
        let errno = exec_searching_path(program, &args, &self.secret_env);
        let why = exec_failure_text(errno);
        if let Some(fd) = self.exec_failure {
            crate::sys::write_to_inherited(fd, why.as_bytes());
        }
        Err(ExecutorError::Other(why))
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

impl Engine for Embedded {
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdio: StdioFds,
        secrets: &StartSecrets,
    ) -> Result<i32, EngineError> {
        // Root only, the run root too if this makes it: the engine's state holds the
        // container's spec.
        crate::fsutil::private_dir(&self.root).map_err(|e| EngineError::Io {
            op: "creating",
            path: self.root.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut executor = BerthExecutor::for_bundle(bundle, self.seccomp_sha256.as_deref())?;
        executor.exec_failure = stdio
            .exec_failure
            .as_ref()
            .map(std::os::fd::AsRawFd::as_raw_fd);
        executor.secret_env = secrets.vars.clone();
        let container = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(&self.root)
            .map_err(Self::err("creating", id))?
            .with_executor(executor)
            .with_stdin(stdio.stdin)
            .with_stdout(stdio.stdout)
            .with_stderr(stdio.stderr)
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(Self::err("creating", id))?;
        container
            .pid()
            .map(|p| p.as_raw())
            .ok_or_else(|| EngineError::Embedded {
                op: "creating",
                id: id.to_string(),
                message: "the engine reported no init process".into(),
            })
    }

    fn start(&self, id: &str) -> Result<(), EngineError> {
        self.load(id)?.start().map_err(Self::err("starting", id))
    }

    fn delete(&self, id: &str) -> Result<(), EngineError> {
        if !self.root.join(id).exists() {
            return Ok(());
        }
        self.load(id)?
            .delete(true)
            .map_err(Self::err("deleting", id))
    }

    fn exec(&self, id: &str, bundle: &Path, exec: &ExecRequest) -> Result<i32, EngineError> {
        // Fail early with the engine's own message if the container is unknown.
        self.load(id)?;
        let config = bundle.join("config.json");
        let spec = Spec::load(&config).map_err(|e| EngineError::Io {
            op: "reading",
            path: config.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        // libcontainer's exec keeps only the namespaces and cgroup of the container's spec;
        // the process settings travel in a process.json, and the executor loads the
        // container's seccomp program just before exec.
        let process = exec_process(&spec, exec)?;
        let process_file = bundle.join(format!("exec-{}.json", std::process::id()));
        let write = serde_json::to_vec(&process)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&process_file, bytes));
        write.map_err(|source| EngineError::Io {
            op: "writing",
            path: process_file.clone(),
            source,
        })?;
        let result = self.exec_with(id, &process_file, bundle, exec);
        let _ = std::fs::remove_file(&process_file);
        result
    }
}

impl Embedded {
    fn exec_with(
        &self,
        id: &str,
        process_file: &Path,
        bundle: &Path,
        exec: &ExecRequest,
    ) -> Result<i32, EngineError> {
        let console = if exec.tty {
            Some(
                super::exec::ConsoleSocket::bind(&self.consoles)
                    .map_err(|source| io_err("creating a console socket", source))?,
            )
        } else {
            None
        };
        let mut executor = BerthExecutor::for_bundle(bundle, self.seccomp_sha256.as_deref())?;
        executor.own_group = exec.own_group && !exec.tty;
        // As in the container's own process; what the exec request sets wins.
        executor.secret_env = exec
            .secret_env
            .iter()
            .filter(|v| !exec.env.iter().any(|(key, _)| *key == v.name))
            .cloned()
            .collect();
        let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(&self.root)
            .map_err(Self::err("executing in", id))?
            .with_executor(executor)
            .with_console_socket(console.as_ref().map(|c| c.path()));
        let mut relay = None;
        if console.is_none() {
            let (pipes, child) = super::exec::PipeRelay::new(exec.interactive)
                .map_err(|source| io_err("creating pipes for", source))?;
            builder = builder
                .with_stdin(child.stdin)
                .with_stdout(child.stdout)
                .with_stderr(child.stderr);
            relay = Some(pipes);
        }
        let pid = builder
            .as_tenant()
            .with_process(Some(process_file))
            .with_detach(console.is_some())
            .build()
            .map_err(Self::err("executing in", id))?
            .as_raw();
        if let Some(console) = console {
            console
                .relay()
                .map_err(|source| io_err("relaying the terminal of the process in", source))?;
        }
        // Reap the process whatever happened to the relay, so it never lingers as a zombie
        // and its status is not lost.
        let relayed = relay.map(|r| r.run(pid, executor_group(exec)));
        if executor_group(exec) {
            // What the command left running goes with it. Its group outlives it while it is
            // unreaped, so the id names nothing else yet.
            crate::sys::kill_group(pid);
        }
        let status = crate::sys::wait_child(pid)
            .map_err(|source| io_err("waiting for the process in", source))?;
        if let Some(Err(source)) = relayed {
            return Err(io_err("relaying the output of the process in", source));
        }
        Ok(status)
    }
}

fn executor_group(exec: &ExecRequest) -> bool {
    exec.own_group && !exec.tty
}

/// The container's process settings with the exec request's changes.
fn exec_process(
    spec: &Spec,
    exec: &ExecRequest,
) -> Result<oci_spec::runtime::Process, EngineError> {
    let mut process = spec.process().clone().ok_or_else(|| EngineError::Io {
        op: "reading the process of",
        path: PathBuf::from("config.json"),
        source: std::io::Error::other("the spec has no process"),
    })?;
    process.set_args(Some(exec.args.clone()));
    process.set_terminal(Some(exec.tty));
    let mut env = process.env().clone().unwrap_or_default();
    for (key, value) in &exec.env {
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key.as_str()));
        env.push(format!("{key}={value}"));
    }
    if exec.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &exec.cwd {
        process.set_cwd(PathBuf::from(cwd));
    }
    if let Some((uid, gid)) = exec.user {
        let user = oci_spec::runtime::UserBuilder::default()
            .uid(uid)
            .gid(gid)
            .build()
            .map_err(|e| io_err("building the user of", std::io::Error::other(e.to_string())))?;
        process.set_user(user);
    }
    Ok(process)
}

fn io_err(op: &'static str, source: std::io::Error) -> EngineError {
    EngineError::Io {
        op,
        path: PathBuf::from("-"),
        source,
    }
}

/// An OCI runtime binary with runc's command line.
struct External {
    binary: PathBuf,
    root: PathBuf,
}

impl External {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        cmd
    }

    fn run(&self, op: &'static str, id: &str, cmd: &mut Command) -> Result<(), EngineError> {
        let output = cmd.output().map_err(|e| EngineError::External {
            binary: self.binary.clone(),
            op,
            id: id.into(),
            message: e.to_string(),
        })?;
        if output.status.success() {
            return Ok(());
        }
        Err(EngineError::External {
            binary: self.binary.clone(),
            op,
            id: id.into(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

impl Engine for External {
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdio: StdioFds,
        secrets: &StartSecrets,
    ) -> Result<i32, EngineError> {
        // With env-passed secrets, the runtime reads a copy of the spec holding them from
        // the run root's tmpfs; it keeps that bundle's path, so its `exec` reads them too.
        let config_bundle =
            super::secret_env::config_bundle(bundle, secrets).map_err(|e| EngineError::Io {
                op: "writing the runtime spec with its secrets of",
                path: secrets.files_dir.clone(),
                source: std::io::Error::other(e),
            })?;
        let pid_file = bundle.join("init.pid");
        let log_file = bundle.join("runtime.log");
        // The runtime hands its own stdio to the container's init, so its messages go to a
        // log file of their own.
        let status = self
            .command()
            .arg("--log")
            .arg(&log_file)
            .arg("create")
            .arg("--bundle")
            .arg(config_bundle.as_deref().unwrap_or(bundle))
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .stdin(Stdio::from(stdio.stdin))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr))
            .status()
            .map_err(|e| EngineError::External {
                binary: self.binary.clone(),
                op: "create",
                id: id.into(),
                message: e.to_string(),
            })?;
        if !status.success() {
            let log = std::fs::read_to_string(&log_file).unwrap_or_default();
            return Err(EngineError::External {
                binary: self.binary.clone(),
                op: "create",
                id: id.into(),
                message: last_error_line(&log).unwrap_or_else(|| status.to_string()),
            });
        }
        let text = std::fs::read_to_string(&pid_file).map_err(|source| EngineError::Io {
            op: "reading",
            path: pid_file.clone(),
            source,
        })?;
        text.trim().parse().map_err(|_| EngineError::External {
            binary: self.binary.clone(),
            op: "create",
            id: id.into(),
            message: format!("unreadable pid file {text:?}"),
        })
    }

    fn start(&self, id: &str) -> Result<(), EngineError> {
        self.run("start", id, self.command().arg("start").arg(id))
    }

    fn delete(&self, id: &str) -> Result<(), EngineError> {
        if !self.root.join(id).exists() {
            return Ok(());
        }
        self.run("delete", id, self.command().args(["delete", "--force", id]))
    }

    fn exec(&self, id: &str, _bundle: &Path, exec: &ExecRequest) -> Result<i32, EngineError> {
        let mut cmd = self.command();
        cmd.arg("exec");
        if !exec.interactive {
            cmd.stdin(Stdio::null());
        }
        if exec.tty {
            // runc makes the pty and relays it itself in the foreground.
            cmd.arg("--tty");
        }
        for (k, v) in &exec.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        if let Some(cwd) = &exec.cwd {
            cmd.arg("--cwd").arg(cwd);
        }
        if let Some((uid, gid)) = exec.user {
            cmd.arg("--user").arg(format!("{uid}:{gid}"));
        }
        cmd.arg(id).args(&exec.args);
        let status = cmd.status().map_err(|e| EngineError::External {
            binary: self.binary.clone(),
            op: "exec",
            id: id.into(),
            message: e.to_string(),
        })?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(255))
    }
}

/// runc logs one message per line, the last error last.
fn last_error_line(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find(|l| l.contains("level=error") || l.contains("\"error\""))
        .or_else(|| log.lines().last())
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    /// The candidates `search_path` tries, each failing as `outcome` says.
    fn tries(program: &str, path: &str, outcome: impl Fn(&str) -> Errno) -> (Vec<String>, Errno) {
        let mut tried = Vec::new();
        let errno = search_path(program.as_bytes(), path.as_bytes(), |c| {
            let c = c.to_string_lossy().into_owned();
            let e = outcome(&c);
            tried.push(c);
            e
        });
        (tried, errno)
    }

    #[test]
    fn path_search_goes_on_past_missing_and_denied_but_never_to_a_shell() {
        // A path is used as is.
        let (tried, e) = tries("/bin/app", "/usr/bin:/bin", |_| Errno::ENOEXEC);
        assert_eq!((tried, e), (vec!["/bin/app".to_string()], Errno::ENOEXEC));
        let (tried, _) = tries("./app", "/bin", |_| Errno::ENOENT);
        assert_eq!(tried, ["./app"]);
        // Each entry in order; an empty one is the working directory.
        let (tried, e) = tries("app", "/usr/local/bin/::/bin", |_| Errno::ENOENT);
        assert_eq!(tried, ["/usr/local/bin/app", "app", "/bin/app"]);
        assert_eq!(e, Errno::ENOENT);
        // Not executable in one place, missing in the others: permission denied.
        let (tried, e) = tries("app", "/a:/b:/c", |c| {
            if c == "/b/app" {
                Errno::EACCES
            } else {
                Errno::ENOENT
            }
        });
        assert_eq!((tried.len(), e), (3, Errno::EACCES));
        // A file the kernel cannot run ends the search: no /bin/sh, nothing further.
        let (tried, e) = tries("app", "/a:/b:/c", |c| {
            if c == "/b/app" {
                Errno::ENOEXEC
            } else {
                Errno::ENOENT
            }
        });
        assert_eq!(
            (tried, e),
            (vec!["/a/app".into(), "/b/app".into()], Errno::ENOEXEC)
        );
        let (tried, e) = tries("", "/a", |_| Errno::ENOENT);
        assert_eq!((tried.len(), e), (0, Errno::ENOENT));
    }

    /// Set in the copy of this test binary that `a_gone_reader_costs_no_sigpipe` runs.
    const CHILD: &str = "BERTH_TEST_SIGPIPE_CHILD";

    #[test]
    fn a_gone_reader_costs_no_sigpipe() {
        use std::os::unix::process::ExitStatusExt;
        // SIGPIPE at its default (deadly) disposition, as in the init, takes a process of
        // its own: the test harness's threads share this one's.
        let exe = std::env::current_exe().expect("the test binary");
        let status = std::process::Command::new(exe)
            .args([
                "--exact",
                "runtime::engine::tests::report_into_a_closed_channel",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run the child");
        assert_eq!(
            (status.code(), status.signal()),
            (Some(0), None),
            "{status}"
        );
    }

    #[test]
    #[ignore = "run by a_gone_reader_costs_no_sigpipe"]
    fn report_into_a_closed_channel() {
        use std::os::fd::AsRawFd;
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        crate::sys::reset_signal_dispositions().expect("default dispositions");
        let (read, write) = crate::sys::exec_failure_channel().expect("socketpair");
        drop(read);
        crate::sys::write_to_inherited(write.as_raw_fd(), b"why");
    }
}
