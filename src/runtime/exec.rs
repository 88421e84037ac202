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

pub struct ConsoleSocket {
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
    pub fn bind(dir: &Path) -> io::Result<ConsoleSocket> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let path = dir.join(format!("exec-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(ConsoleSocket { path, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Receive the pty master and relay it to this process's stdin/stdout until the
    /// process in the container is done with it.
    pub fn relay(self, _pid: i32) -> io::Result<()> {
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
