//! Running one check. `tcp` and `http` connect from inside the container's network namespace
//! (a socket made by a thread that entered it, then driven by tokio), so they test what its
//! clients reach and work whatever its network mode; `exec` runs `berth exec`, a process of
//! its own, because the engine's exec must not run in the multi-threaded agent.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;

use super::verdict::{CheckResult, OUTPUT_LIMIT, truncate};
use crate::spec::model::{HealthCheck, Probe};
use crate::state::record::now_ms;
use crate::sys::ProcessId;

/// How long `berth exec` gets to end its command after SIGTERM, once a check timed out.
const EXEC_GRACE: Duration = Duration::from_secs(2);

/// The container a check runs against.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub id: String,
    /// Its init: the checks enter its network namespace.
    pub init: ProcessId,
    /// Its address on its first bridge network (tcp checks), if it has one.
    pub address: Option<Ipv4Addr>,
    /// The berth binary and state root, for `exec` checks.
    pub berth: PathBuf,
    pub root: PathBuf,
}

/// Run one check, at most its timeout.
pub(crate) async fn run(target: &Target, check: &HealthCheck) -> CheckResult {
    let at_ms = now_ms();
    let started = Instant::now();
    let timeout = check.timeout.0;
    let outcome = match &check.probe {
        Probe::Exec(command) => exec(target, command, timeout).await,
        Probe::Tcp(port) => {
            let ip = target.address.unwrap_or(Ipv4Addr::LOCALHOST);
            let addr = SocketAddr::new(IpAddr::V4(ip), *port);
            match tokio::time::timeout(timeout, connect_inside(target.init, addr)).await {
                Ok(Ok(_)) => Ok(format!("connected to {addr}")),
                Ok(Err(e)) => Err(format!("{addr}: {e}")),
                Err(_) => Err(format!("{addr}: no connection within {timeout:?}")),
            }
        }
        Probe::Http(url) => match tokio::time::timeout(timeout, http_get(target.init, url)).await {
            Ok(result) => result,
            Err(_) => Err(format!("{url}: no answer within {timeout:?}")),
        },
    };
    let (ok, output) = match outcome {
        Ok(text) => (true, text),
        Err(text) => (false, text),
    };
    CheckResult {
        at_ms,
        ok,
        duration_ms: crate::units::millis(started.elapsed()),
        output,
    }
}

/// A TCP connection made inside the network namespace of `init`.
async fn connect_inside(
    init: ProcessId,
    addr: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let fd = tokio::task::spawn_blocking(move || socket_inside(init))
        .await
        .map_err(std::io::Error::other)??;
    tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd))
        .connect(addr)
        .await
}

/// A non-blocking TCP socket of the namespace of `init`. A socket belongs to the namespace
/// it was made in; the thread that entered the namespace ends right after, so no pooled
/// thread is ever left in a container's namespace.
fn socket_inside(init: ProcessId) -> std::io::Result<OwnedFd> {
    let pidfd = init
        .open()?
        .ok_or_else(|| std::io::Error::other("the container is not running"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&pidfd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                rustix::net::socket_with(
                    rustix::net::AddressFamily::INET,
                    rustix::net::SocketType::STREAM,
                    rustix::net::SocketFlags::NONBLOCK | rustix::net::SocketFlags::CLOEXEC,
                    None,
                )
                .map_err(std::io::Error::from)
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the namespace worker panicked")))
    })
}

/// GET `url` inside the container's namespace: 2xx and 3xx are healthy.
async fn http_get(init: ProcessId, url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        // The loader allows no other name: names would be resolved by the agent, not inside.
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr = SocketAddr::new(ip, port);
    if addr.is_ipv6() {
        return Err(format!("{url}: IPv6 health checks are not supported"));
    }
    let stream = connect_inside(init, addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
    let driver = tokio::spawn(connection);
    let mut path = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path.push('?');
        path.push_str(q);
    }
    let host = match parsed.port() {
        Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or("127.0.0.1")),
        None => parsed.host_str().unwrap_or("127.0.0.1").to_string(),
    };
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::USER_AGENT,
            concat!("berth-health/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let result = sender.send_request(request).await;
    driver.abort();
    let response = result.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let line = format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if status.is_success() || status.is_redirection() {
        Ok(line)
    } else {
        Err(line)
    }
}

/// The first `OUTPUT_LIMIT` bytes of a pipe, the rest read and dropped (so the writer never
/// blocks on it).
async fn head_of(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = (&mut pipe)
            .take(OUTPUT_LIMIT as u64)
            .read_to_end(&mut head)
            .await;
        let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
    }
    head
}

/// `berth exec --own-group ID -- COMMAND`: exit 0 is healthy. A command still running at the
/// timeout is killed with everything it started: SIGTERM makes `berth exec` kill the
/// command's process group (SIGKILL to `berth exec` itself if it does not end).
async fn exec(target: &Target, command: &[String], timeout: Duration) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(&target.berth);
    crate::sys::terminate_with_parent(&mut cmd);
    let mut child = cmd
        .arg("--root")
        .arg(&target.root)
        .arg("exec")
        .arg("--own-group")
        .arg(&target.id)
        .arg("--")
        .args(command)
        // Only berth's own errors, never its progress lines, among the command's output.
        .env("BERTH_LOG", "error")
        .env_remove("BERTH_LOG_FORMAT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("running {}: {e}", target.berth.display()))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    // Both pipes at once: a command filling one while the other is read would block.
    let output = tokio::spawn(async move {
        let (out, err) = tokio::join!(head_of(stdout), head_of(stderr));
        let mut text = String::from_utf8_lossy(&[out, err].concat())
            .trim()
            .to_string();
        truncate(&mut text, OUTPUT_LIMIT);
        text
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(|e| format!("waiting for berth exec: {e}"))?,
        Err(_) => {
            if let Some(pid) = child
                .id()
                .and_then(|p| rustix::process::Pid::from_raw(p as i32))
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            if tokio::time::timeout(EXEC_GRACE, child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
            output.abort();
            return Err(format!("{command:?} did not finish within {timeout:?}"));
        }
    };
    let text = output.await.unwrap_or_default();
    match status.code() {
        Some(0) => Ok(text),
        Some(code) => Err(if text.is_empty() {
            format!("exit code {code}")
        } else {
            format!("exit code {code}: {text}")
        }),
        None => Err(format!("{command:?} was killed ({status})")),
    }
}
