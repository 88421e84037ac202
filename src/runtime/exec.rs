//! `berth exec -t`: the process gets a new pty inside the container; the engine sends the
//! pty's master to a unix socket (the OCI "console socket"), and this module relays it to the
//! caller's terminal in raw mode, window size included, until the process closes it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr, tcsetwinsize};

pub(crate) struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ConsoleSocket {
    /// A socket in `dir`, which is made root-only first: nobody else can even reach it to
    /// hand us a terminal of their own.
    pub(crate) fn bind(dir: &Path) -> io::Result<ConsoleSocket> {
        crate::fsutil::private_dir(dir).map_err(io::Error::other)?;
        let path = dir.join(format!("exec-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(ConsoleSocket { path, listener })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Receive the pty master and relay it to this process's stdin/stdout until the
    /// process in the container is done with it.
    pub(crate) fn relay(self) -> io::Result<()> {
        let master = self.receive_master()?;
        let stdin = rustix::stdio::stdin();
        let _raw = RawMode::enter(stdin)?;
        copy_window_size(stdin, &master);
        relay(&master)
    }

    fn receive_master(&self) -> io::Result<OwnedFd> {
        let (stream, _) = self.listener.accept()?;
        let peer = rustix::net::sockopt::socket_peercred(&stream)?;
        if peer.uid != rustix::process::geteuid() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "a process of uid {} connected to the console socket",
                    peer.uid.as_raw()
                ),
            ));
        }
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; 256];
        recvmsg(
            &stream,
            &mut [io::IoSliceMut::new(&mut buf)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for message in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message
                && let Some(fd) = fds.next()
            {
                return Ok(fd);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the engine sent no terminal",
        ))
    }
}

/// Puts the terminal in raw mode (keys go to the container's shell as typed, ^C included)
/// and restores it on drop. Does nothing when stdin is not a terminal.
struct RawMode<'a> {
    fd: std::os::fd::BorrowedFd<'a>,
    saved: Option<Termios>,
}

impl<'a> RawMode<'a> {
    fn enter(fd: std::os::fd::BorrowedFd<'a>) -> io::Result<RawMode<'a>> {
        let Ok(saved) = tcgetattr(fd) else {
            return Ok(RawMode { fd, saved: None });
        };
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(fd, OptionalActions::Now, &raw)?;
        Ok(RawMode {
            fd,
            saved: Some(saved),
        })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(self.fd, OptionalActions::Now, saved);
        }
    }
}

fn copy_window_size(from: impl AsFd, to: &impl AsFd) {
    if let Ok(size) = tcgetwinsize(from) {
        let _ = tcsetwinsize(to, size);
    }
}

fn relay(master: &OwnedFd) -> io::Result<()> {
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let mut stdin_open = true;
    let mut buf = vec![0u8; 32 * 1024];
    let mut size = tcgetwinsize(stdin).ok().map(|w| (w.ws_row, w.ws_col));
    // Window size changes are picked up by polling: no signal handler needed.
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    loop {
        let mut fds = vec![PollFd::new(master, PollFlags::IN)];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        match poll(&mut fds, Some(&tick)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let master_ready = !fds[0].revents().is_empty();
        let stdin_ready = stdin_open && !fds[1].revents().is_empty();
        drop(fds);
        if master_ready {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => return Ok(()),
                Ok(n) => write_all(&stdout, &buf[..n])?,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if stdin_ready {
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) => stdin_open = false,
                Ok(n) => write_all(master, &buf[..n])?,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
        let now = tcgetwinsize(stdin).ok().map(|w| (w.ws_row, w.ws_col));
        if now.is_some() && now != size {
            copy_window_size(stdin, master);
            size = now;
        }
    }
}

fn write_all(fd: &impl AsFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `berth exec` without a terminal: the process gets pipes, not this process's own
/// descriptors, so nothing left running in the container after the command returns keeps a
/// handle on the caller's terminal or files. Stdin is relayed only when asked (`-i`, as
/// docker does): otherwise the process reads /dev/null and the caller's input is left for
/// whoever reads it next. The relay runs until the process exits — not until it closes
/// its output — and then drains what is already in the pipes.
pub(crate) struct PipeRelay {
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// The termination signals, blocked from before the process is made: one that arrives
    /// while the engine is still setting it up waits here, and is passed on (or its group
    /// killed) as soon as there is a process. Left to their default action, they ended
    /// `berth exec` mid-setup and left the engine's half-made processes, and whatever they
    /// went on to start, running in the container. The container's process does not
    /// inherit the mask: the executor clears it before exec.
    signals: nix::sys::signalfd::SignalFd,
}

/// The container's ends of the pipes, for the engine.
pub(crate) struct ChildPipes {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl PipeRelay {
    pub(crate) fn new(interactive: bool) -> io::Result<(PipeRelay, ChildPipes)> {
        use rustix::pipe::{PipeFlags, pipe_with};
        let (out_r, out_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let (stdin, child_stdin) = if interactive {
            let (in_r, in_w) = pipe_with(PipeFlags::CLOEXEC)?;
            rustix::io::ioctl_fionbio(&in_w, true)?;
            (Some(in_w), in_r)
        } else {
            (None, OwnedFd::from(std::fs::File::open("/dev/null")?))
        };
        Ok((
            PipeRelay {
                stdin,
                stdout: Some(out_r),
                stderr: Some(err_r),
                signals: forwarded_signals()?,
            },
            ChildPipes {
                stdin: child_stdin,
                stdout: out_w,
                stderr: err_w,
            },
        ))
    }

    /// Relay until the child `pid` exits, forwarding termination signals to it (with
    /// `kill_group`: killing its whole process group instead), then drain its output. Always
    /// returns after the child exited (a broken pipe on our side only stops copying that
    /// stream).
    pub(crate) fn run(mut self, pid: i32, kill_group: bool) -> io::Result<()> {
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?,
            rustix::process::PidfdFlags::empty(),
        )?;
        let signals = self.signals;
        let our_stdin = rustix::stdio::stdin();
        let (our_stdout, our_stderr) = (rustix::stdio::stdout(), rustix::stdio::stderr());
        let mut stdin_open = self.stdin.is_some();
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let want_stdin = stdin_open && pending.is_empty();
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(6);
            fn slot<'a>(
                fds: &mut Vec<PollFd<'a>>,
                fd: Option<&'a OwnedFd>,
                flags: PollFlags,
            ) -> Option<usize> {
                fd.map(|fd| {
                    fds.push(PollFd::new(fd, flags));
                    fds.len() - 1
                })
            }
            let out_slot = slot(&mut fds, self.stdout.as_ref(), PollFlags::IN);
            let err_slot = slot(&mut fds, self.stderr.as_ref(), PollFlags::IN);
            fds.push(PollFd::new(&signals, PollFlags::IN));
            let signal_slot = Some(fds.len() - 1);
            fds.push(PollFd::new(&pidfd, PollFlags::IN));
            let exit_slot = Some(fds.len() - 1);
            let in_slot = if want_stdin {
                fds.push(PollFd::new(&our_stdin, PollFlags::IN));
                Some(fds.len() - 1)
            } else {
                None
            };
            let feed_slot = if pending.is_empty() {
                None
            } else {
                slot(&mut fds, self.stdin.as_ref(), PollFlags::OUT)
            };
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            let ready = |s: Option<usize>| s.is_some_and(|i| !fds[i].revents().is_empty());
            let (out_ready, err_ready, signalled, exited, in_ready, feed_ready) = (
                ready(out_slot),
                ready(err_slot),
                ready(signal_slot),
                ready(exit_slot),
                ready(in_slot),
                ready(feed_slot),
            );
            drop(fds);
            if signalled {
                if kill_group {
                    while let Ok(Some(_)) = signals.read_signal() {}
                    crate::sys::kill_group(pid);
                } else {
                    forward_pending_signals(&signals, &pidfd);
                }
            }
            if out_ready {
                copy_out(&mut self.stdout, &our_stdout, &mut buf);
            }
            if err_ready {
                copy_out(&mut self.stderr, &our_stderr, &mut buf);
            }
            if in_ready {
                match rustix::io::read(our_stdin, &mut buf) {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        // EOF reaches the process once what is pending is written.
                        if pending.is_empty() {
                            self.stdin = None;
                        }
                    }
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            }
            if feed_ready && let Some(w) = &self.stdin {
                match rustix::io::write(w, &pending) {
                    Ok(n) => {
                        pending.drain(..n);
                        if pending.is_empty() && !stdin_open {
                            self.stdin = None;
                        }
                    }
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                    // The process closed its stdin: what it will never read is dropped.
                    Err(_) => {
                        pending.clear();
                        stdin_open = false;
                        self.stdin = None;
                    }
                }
            }
            if exited {
                break;
            }
        }
        // The process is gone: take what is already in the pipes, but do not wait for
        // writers it may have left behind in the container.
        for (pipe, to) in [
            (&mut self.stdout, &our_stdout),
            (&mut self.stderr, &our_stderr),
        ] {
            if let Some(fd) = pipe.as_ref() {
                let _ = rustix::io::ioctl_fionbio(fd, true);
            }
            while pipe.is_some() {
                if !copy_out(pipe, to, &mut buf) {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Copy one read's worth from `pipe` to `to`; closes the pipe at EOF or on error (a broken
/// pipe on our side too: nobody reads that stream any more). Returns whether it copied.
fn copy_out(pipe: &mut Option<OwnedFd>, to: &impl AsFd, buf: &mut [u8]) -> bool {
    let Some(fd) = pipe.as_ref() else {
        return false;
    };
    match rustix::io::read(fd, &mut *buf) {
        Ok(0) => {
            *pipe = None;
            false
        }
        Ok(n) => {
            if write_all(to, &buf[..n]).is_err() {
                *pipe = None;
                return false;
            }
            true
        }
        Err(rustix::io::Errno::INTR) => true,
        Err(_) => {
            // AGAIN after the exit means drained; anything else ends this stream.
            *pipe = None;
            false
        }
    }
}

/// Signals `berth exec` passes on to the process it runs (^C, kill, a closed terminal),
/// received through a signalfd so the relay loop polls them like any descriptor.
fn forwarded_signals() -> io::Result<nix::sys::signalfd::SignalFd> {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(signal);
    }
    set.thread_block().map_err(io::Error::from)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(io::Error::from)
}

fn forward_pending_signals(signals: &nix::sys::signalfd::SignalFd, pidfd: &OwnedFd) {
    while let Ok(Some(info)) = signals.read_signal() {
        let _ = crate::sys::send_signal(pidfd, info.ssi_signo as i32);
    }
}
