//! The process behind a Docker exec: `berth exec` (this very binary) run as a child of the
//! agent, with pipes, or with a pty of the agent's own for a tty exec.
//!
//! Why a child rather than `Runtime::exec` in the agent: the engine forks to enter the
//! container, which is sound only in a single-threaded process, and the agent is a tokio
//! runtime. `berth exec` is the path users and health checks already run (secret env vars,
//! seccomp, the console socket and its relay): the API adds no second way into a container.
//! For a tty, `berth exec -t` relays the container's pty to its stdin/stdout in raw mode and
//! copies their window size; here those are the slave of a pty whose master the agent
//! holds, so a resize is `TIOCSWINSZ` on that master, which `berth exec` passes on.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Winsize, tcgetattr, tcsetattr, tcsetwinsize};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

/// What to run and how.
pub struct Spec<'a> {
    /// The berth binary and its state root.
    pub binary: &'a Path,
    pub root: &'a Path,
    pub container_id: &'a str,
    pub cmd: &'a [String],
    pub env: &'a [(String, String)],
    pub workdir: Option<&'a str>,
    pub user: Option<(u32, u32)>,
    pub tty: bool,
    /// The process reads what the client sends (else /dev/null).
    pub stdin: bool,
}

/// A piece of the process's output.
#[derive(Debug)]
pub enum Chunk {
    Stdout(Bytes),
    Stderr(Bytes),
    /// A tty's output: one stream, sent raw.
    Tty(Bytes),
}

/// Where the client's input goes.
pub enum Input {
    Pipe(ChildStdin),
    Terminal(Arc<Terminal>),
}

impl Input {
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Input::Pipe(stdin) => stdin.write_all(data).await,
            Input::Terminal(terminal) => terminal.write_all(data).await,
        }
    }
}

/// A running `berth exec`.
pub struct Running {
    pub child: Child,
    /// Ends (None) once all the output has been read.
    pub output: mpsc::Receiver<Chunk>,
    pub input: Option<Input>,
    pub terminal: Option<Arc<Terminal>>,
}

/// Spawns `berth exec` for `spec`. Call from a runtime worker, not a blocking thread: the
/// child is ended with the thread that spawned it (`PR_SET_PDEATHSIG`).
pub fn spawn(spec: &Spec<'_>) -> io::Result<Running> {
    let mut cmd = tokio::process::Command::new(spec.binary);
    crate::sys::terminate_with_parent(&mut cmd);
    cmd.arg("--root").arg(spec.root).arg("exec");
    if spec.tty {
        cmd.arg("-t");
    }
    if spec.stdin {
        cmd.arg("-i");
    }
    for (key, value) in spec.env {
        cmd.arg("-e").arg(format!("{key}={value}"));
    }
    if let Some(dir) = spec.workdir {
        cmd.arg("-w").arg(dir);
    }
    if let Some((uid, gid)) = spec.user {
        cmd.arg("-u").arg(format!("{uid}:{gid}"));
    }
    cmd.arg(spec.container_id)
        .arg("--")
        .args(spec.cmd)
        // Nothing of berth's logging among the process's output (the engine logs its
        // failures at error level, with colours); berth exec's own error line stays.
        .env("BERTH_LOG", "off")
        .env_remove("BERTH_LOG_FORMAT")
        .kill_on_drop(true);
    let (tx, rx) = mpsc::channel(16);
    if spec.tty {
        let (master, slave) = open_pty()?;
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        let child = cmd.spawn()?;
        // The slave's copies held by `cmd` go with it: the master reads EOF (EIO) once
        // `berth exec` and what it left are gone.
        drop(cmd);
        let terminal = Arc::new(Terminal {
            master: crate::sys::async_fd(master)?,
        });
        tokio::spawn(read_terminal(terminal.clone(), tx));
        return Ok(Running {
            child,
            output: rx,
            input: spec.stdin.then(|| Input::Terminal(terminal.clone())),
            terminal: Some(terminal),
        });
    }
    cmd.stdin(if spec.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(read_pipe(stdout, tx.clone(), Chunk::Stdout));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(read_pipe(stderr, tx, Chunk::Stderr));
    }
    let input = child.stdin.take().map(Input::Pipe);
    Ok(Running {
        child,
        output: rx,
        input,
        terminal: None,
    })
}

async fn read_pipe(
    mut pipe: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Chunk>,
    wrap: fn(Bytes) -> Chunk,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn read_terminal(terminal: Arc<Terminal>, tx: mpsc::Sender<Chunk>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match terminal.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send(Chunk::Tty(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// A new pty: the master non-blocking for the agent, the slave raw from the first byte (so
/// nothing is echoed or translated before `berth exec` sets raw mode itself).
fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let mut raw = tcgetattr(&slave)?;
    raw.make_raw();
    tcsetattr(&slave, OptionalActions::Now, &raw)?;
    rustix::io::ioctl_fionbio(&master, true)?;
    Ok((master, slave))
}

/// The agent's side of a tty exec's pty.
pub struct Terminal {
    master: AsyncFd<OwnedFd>,
}

impl Terminal {
    /// The window size, passed on by `berth exec` to the container's pty.
    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        tcsetwinsize(
            self.master.get_ref(),
            Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )?;
        Ok(())
    }

    /// Ok(0) once every slave is closed (the kernel answers EIO then).
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|fd| {
                rustix::io::read(fd.get_ref().as_fd(), &mut *buf).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard
                .try_io(|fd| rustix::io::write(fd.get_ref().as_fd(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }
}

/// The pid of the process `berth exec` (pid `berth_exec`) runs in the container: its child.
pub fn process_pid(berth_exec: u32) -> Option<u32> {
    let text =
        std::fs::read_to_string(format!("/proc/{berth_exec}/task/{berth_exec}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Docker's exit code of a process: its status, or 128 + the signal that killed it.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}
