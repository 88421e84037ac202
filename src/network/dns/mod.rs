//! Name resolution through DNS: one small resolver process per state root, listening on
//! port 53 (UDP and TCP) of every network's gateway address. It answers the names and
//! aliases of the containers on the network a query arrives on (and on the other networks
//! of the asking container), forwards other names to the host's resolvers, and refuses
//! them on internal networks. See docs/design/dns.md.
//!
//! The process is the berth binary re-executed (`berth dns-resolver`, hidden), detached
//! like a monitor (own session, re-parented to init), so it outlives the agent and the
//! command that started it. It holds `networks/.dns.lock` for its whole life: the lock says
//! whether one runs, so a second is never started, and a crashed one is restarted by the
//! next container start or agent pass. It watches the state's network directory and
//! reloads names when leases or records change, and exits when no network remains.

mod serve;
mod zone;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::Networks;
use super::record::{NetworkPaths, NetworkRecord};
use crate::fsutil::{FsError, io_err};

/// The hidden subcommand that runs the resolver.
pub const COMMAND: &str = "dns-resolver";
/// Upstream servers to forward to instead of the host's /etc/resolv.conf's, as
/// comma-separated addresses (`IP` or `IP:PORT`, `[IPv6]:PORT`).
pub const UPSTREAMS_ENV: &str = "BERTH_DNS_UPSTREAMS";
/// How long a start waits for a new resolver to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
const READY: &str = "ready";
/// How long a start waits for a running resolver to listen on a new network's gateway.
const BIND_WAIT: Duration = Duration::from_secs(2);
/// How long the removal of the last network waits for the resolver to exit.
const EXIT_WAIT: Duration = Duration::from_secs(3);
/// How long a starting resolver retries the lock: a `running()` probe holds it for an
/// instant, and must not make the resolver starting then believe another one runs.
const LOCK_WAIT: Duration = Duration::from_secs(1);
/// The resolver's log is cut when a resolver starts and it is larger than this.
const LOG_LIMIT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("starting the resolver {}: {source}", binary.display())]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("the resolver did not start listening within {}s; see {}", READY_TIMEOUT.as_secs(), log.display())]
    NotReady { log: PathBuf },
    #[error("resolver: {0}")]
    Serve(String),
}

/// The resolver's files under `<state root>/networks`.
#[derive(Debug, Clone)]
pub(crate) struct DnsPaths {
    /// Held by the running resolver.
    pub lock: PathBuf,
    /// The gateway addresses it listens on, one a line, rewritten at every change.
    pub bound: PathBuf,
    pub log: PathBuf,
    pub networks: NetworkPaths,
}

impl DnsPaths {
    pub(crate) fn new(networks: &NetworkPaths) -> DnsPaths {
        DnsPaths {
            lock: networks.root.join(".dns.lock"),
            bound: networks.root.join(".dns.bound"),
            log: networks.root.join(".dns.log"),
            networks: networks.clone(),
        }
    }

    /// The open lock file, and whether a resolver holds it.
    fn probe(&self) -> Result<(std::fs::File, bool), DnsError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(io_err("opening", &self.lock))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok((file, false)),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok((file, true)),
            Err(e) => Err(io_err("locking", &self.lock)(e.into()).into()),
        }
    }

    /// The lock for a resolver about to serve, retried for `wait`; `None` if another
    /// resolver holds it all that time.
    fn acquire(&self, wait: Duration) -> Result<Option<std::fs::File>, DnsError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match self.probe()? {
                (file, false) => return Ok(Some(file)),
                (_, true) if std::time::Instant::now() >= deadline => return Ok(None),
                (_, true) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Whether a resolver runs for this state root.
    pub(crate) fn running(&self) -> Result<bool, DnsError> {
        Ok(self.probe()?.1)
    }

    /// The gateways a resolver listens on now (none if it does not run).
    pub(crate) fn bound(&self) -> Vec<IpAddr> {
        if !self.running().unwrap_or(false) {
            return Vec::new();
        }
        std::fs::read_to_string(&self.bound)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

/// Start the resolver of this state root unless one runs, and wait until it listens.
/// Called under the network lock, so two starts never race to spawn one each.
pub(crate) fn ensure_running(paths: &DnsPaths, state_root: &Path) -> Result<(), DnsError> {
    if paths.running()? {
        return Ok(());
    }
    let binary = std::env::current_exe().map_err(|source| DnsError::Spawn {
        binary: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let spawn_err = |source| DnsError::Spawn {
        binary: binary.clone(),
        source,
    };
    if std::fs::metadata(&paths.log).is_ok_and(|m| m.len() > LOG_LIMIT) {
        let _ = std::fs::remove_file(&paths.log);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(io_err("opening", &paths.log))?;
    let mut command = Command::new(&binary);
    command
        .arg("--root")
        .arg(state_root)
        .arg(COMMAND)
        // It lives on its own: nothing of its starter's environment but what it reads.
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    // Started by a monitor: not in its private mount namespace, whose container mounts it
    // would keep alive.
    crate::sys::in_original_mount_namespace(&mut command);
    for var in ["BERTH_LOG", UPSTREAMS_ENV] {
        if let Some(v) = std::env::var_os(var) {
            command.env(var, v);
        }
    }
    let mut child = command.spawn().map_err(spawn_err)?;
    let Some(out) = child.stdout.take() else {
        return Err(spawn_err(std::io::Error::other("no pipe to the resolver")));
    };
    // The first process forks the resolver and exits; the resolver says when it listens.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(READY_TIMEOUT).unwrap_or_default();
    child.wait().map_err(spawn_err)?;
    if line.trim() == READY {
        Ok(())
    } else {
        Err(DnsError::NotReady {
            log: paths.log.clone(),
        })
    }
}

/// After a container is plugged in (under the network lock): a resolver runs, and the
/// container's resolv.conf names it (on the gateway of its first network) unless its
/// `dns` servers replace it. A resolver that cannot start costs only the DNS names: the
/// hosts file has them, and the host's servers follow in resolv.conf.
pub(super) fn configure_container(networks: &Networks, id: &str, first: &NetworkRecord) {
    let paths = DnsPaths::new(&networks.paths);
    if let Err(e) = ensure_running(&paths, &networks.layout.state_root) {
        tracing::warn!("container {id}: no DNS resolver: {e}");
    }
    let settings = networks.container_dns(id);
    let gateway = IpAddr::V4(first.gateway);
    // A running resolver picks a new network up from the change the lease made.
    let deadline = std::time::Instant::now() + BIND_WAIT;
    let mut bound = paths.bound().contains(&gateway);
    while !bound && std::time::Instant::now() < deadline && paths.running().unwrap_or(false) {
        std::thread::sleep(Duration::from_millis(10));
        bound = paths.bound().contains(&gateway);
    }
    if !bound {
        tracing::warn!(
            "container {id}: no DNS resolver on {gateway}; names resolve through /etc/hosts"
        );
    }
    let text = crate::state::etc::resolv_conf(true, bound.then_some(gateway), &settings);
    let path = networks.layout.container(id).etc().join("resolv.conf");
    if let Err(e) = super::hosts::rewrite_in_place(&path, &text) {
        tracing::warn!("container {id}: rewriting {}: {e}", path.display());
    }
}

/// Whether the resolver runs where it should: wherever a container holds an address, once
/// one was started in this state root (its lock file exists). Containers of a release
/// without it (an upgrade) name no resolver in their resolv.conf and need none: the first
/// container started by this one starts it.
pub(super) fn in_place(networks: &Networks, leases: &[crate::network::record::Lease]) -> bool {
    let paths = DnsPaths::new(&networks.paths);
    !paths.lock.exists()
        || !leases.iter().any(|l| networks.exists(&l.container))
        || paths.running().unwrap_or(true)
}

/// Start the resolver again if it should run and does not (under the network lock).
pub(super) fn repair(networks: &Networks, leases: &[crate::network::record::Lease]) {
    if !in_place(networks, leases)
        && let Err(e) = ensure_running(&DnsPaths::new(&networks.paths), &networks.layout.state_root)
    {
        tracing::warn!("no DNS resolver: {e}");
    }
}

/// After the last network is gone (under the network lock): the resolver, which exits by
/// itself when it sees no network, is waited for, and its files are removed, so nothing of
/// berth's is left under `networks/`. No start can spawn another meanwhile: starts hold the
/// network lock.
pub(super) fn clean_up_after_the_last_network(networks: &Networks) {
    if !networks.records().is_ok_and(|r| r.is_empty()) {
        return;
    }
    let paths = DnsPaths::new(&networks.paths);
    if !paths.lock.exists() {
        return;
    }
    let deadline = std::time::Instant::now() + EXIT_WAIT;
    loop {
        match paths.probe() {
            Ok((_held, false)) => {
                for f in [&paths.bound, &paths.log, &paths.lock] {
                    let _ = std::fs::remove_file(f);
                }
                return;
            }
            Ok((_, true)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok((_, true)) => {
                tracing::warn!(
                    "the DNS resolver still runs {}s after the last network went",
                    EXIT_WAIT.as_secs()
                );
                return;
            }
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        }
    }
}

/// Entry point of `berth dns-resolver`. Runs before anything could start a thread.
pub fn main(state_root: &Path) -> i32 {
    // Whatever the starter left open (a monitor's descriptors) must not stay pinned.
    crate::sys::close_inherited_fds(false);
    let _ = rustix::process::setsid();
    match crate::sys::fork_single_threaded() {
        Ok(crate::sys::Forked::Parent { .. }) => return 0,
        Ok(crate::sys::Forked::Child) => {}
        Err(e) => {
            eprintln!("berth dns-resolver: forking: {e}");
            return 1;
        }
    }
    let paths = DnsPaths::new(&NetworkPaths::new(state_root));
    let lock = match paths.acquire(LOCK_WAIT) {
        Ok(Some(file)) => file,
        // Another one runs (started between the check and this): it serves.
        Ok(None) => {
            println!("{READY}");
            return 0;
        }
        Err(e) => {
            eprintln!("berth dns-resolver: {e}");
            return 1;
        }
    };
    if let Err(e) = drop_privileges() {
        eprintln!("berth dns-resolver: dropping privileges: {e}");
        return 1;
    }
    match serve::run(&paths, lock) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth dns-resolver: {e}");
            1
        }
    }
}

/// All the capabilities but binding port 53, here and for anything it could execute, and
/// no way to gain any back (no_new_privs). It runs as uid 0 and owns every file it reads
/// and writes, so it needs no DAC override. Before any thread starts: threads inherit it.
fn drop_privileges() -> std::io::Result<()> {
    use rustix::thread::{CapabilitySet, CapabilitySets};
    let keep = CapabilitySet::NET_BIND_SERVICE;
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
    for cap in CapabilitySet::all().iter().filter(|c| *c != keep) {
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            // A capability this kernel does not know.
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(e.into()),
        }
    }
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        },
    )?;
    Ok(rustix::thread::set_no_new_privs(true)?)
}

/// Where names that are not containers' go: `BERTH_DNS_UPSTREAMS`, else the name servers
/// of the host's /etc/resolv.conf (loopback ones included: the resolver runs in the host's
/// network namespace). Read at every reload: the host's servers change (DHCP, VPN).
fn upstreams() -> Vec<SocketAddr> {
    upstreams_in(
        std::env::var(UPSTREAMS_ENV).ok().as_deref(),
        Path::new("/etc/resolv.conf"),
    )
}

fn upstreams_in(env: Option<&str>, resolv_conf: &Path) -> Vec<SocketAddr> {
    if let Some(list) = env {
        return list
            .split(',')
            .filter_map(|s| parse_upstream(s.trim()))
            .collect();
    }
    let text = std::fs::read_to_string(resolv_conf).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(a)) => parse_upstream(a),
                _ => None,
            }
        })
        .collect()
}

fn parse_upstream(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_follow_the_file_unless_the_variable_names_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("resolv.conf");
        std::fs::write(&conf, "search example\nnameserver 10.0.0.2\n").expect("write");
        assert_eq!(
            upstreams_in(None, &conf),
            ["10.0.0.2:53".parse::<SocketAddr>().expect("addr")]
        );
        std::fs::write(&conf, "nameserver 10.0.0.3\nnameserver 127.0.0.53\n").expect("write");
        assert_eq!(
            upstreams_in(None, &conf),
            [
                "10.0.0.3:53".parse::<SocketAddr>().expect("addr"),
                "127.0.0.53:53".parse().expect("addr")
            ]
        );
        assert_eq!(
            upstreams_in(Some("192.0.2.1, 127.0.0.1:5353"), &conf),
            [
                "192.0.2.1:53".parse::<SocketAddr>().expect("addr"),
                "127.0.0.1:5353".parse().expect("addr")
            ]
        );
    }

    #[test]
    fn a_probe_does_not_make_a_starting_resolver_quit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = DnsPaths::new(&NetworkPaths::new(dir.path()));
        std::fs::create_dir_all(&paths.networks.root).expect("mkdir");
        // A probe holding the lock for a moment, as `running()` does.
        let (probe, held) = paths.probe().expect("probe");
        assert!(!held);
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(probe);
        });
        let lock = paths.acquire(LOCK_WAIT).expect("acquire");
        assert!(lock.is_some());
        releaser.join().expect("join");
        // While it is held, a second resolver gives up after the wait.
        let started = std::time::Instant::now();
        assert!(
            paths
                .acquire(Duration::from_millis(50))
                .expect("acquire")
                .is_none()
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(paths.running().expect("running"));
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(
            parse_upstream("10.0.0.2"),
            Some("10.0.0.2:53".parse().expect("addr"))
        );
        assert_eq!(
            parse_upstream("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().expect("addr"))
        );
        assert_eq!(
            parse_upstream("[fd00::1]:53"),
            Some("[fd00::1]:53".parse().expect("addr"))
        );
        assert_eq!(
            parse_upstream("fd00::1"),
            Some("[fd00::1]:53".parse().expect("addr"))
        );
        assert_eq!(parse_upstream("resolver.example"), None);
    }
}
