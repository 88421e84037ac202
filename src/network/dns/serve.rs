//! The resolver's event loop: one thread, sockets on every gateway, the zone reloaded when
//! the network directory changes, forwarding with a fresh socket per query.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::zone::{self, Verdict, Zone};
use super::{DnsError, DnsPaths, READY};
use crate::network::{bridge, lease};
use crate::state::layout::Layout;

/// How long one upstream has to answer before the next is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// A TCP client idle this long is disconnected.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// A TCP client is disconnected after this long or this many queries, whatever it does,
/// and one that does not read its answer within `TCP_WRITE`: a connection held open by a
/// slow or chatty client would keep a permit for ever.
const TCP_LIFETIME: Duration = Duration::from_secs(30);
const TCP_QUERIES: usize = 32;
const TCP_WRITE: Duration = Duration::from_secs(5);
/// Reload at least this often: a bridge whose address was not up yet is bound then.
const RESCAN: Duration = Duration::from_secs(5);
/// Bounds on concurrent forwarded queries and TCP connections: a flood costs answers,
/// never the process's descriptors.
const MAX_FORWARDS: usize = 256;
const MAX_TCP: usize = 64;
/// The share of those one network may hold: a flood from one network's containers cannot
/// starve the others.
const MAX_FORWARDS_PER_NETWORK: usize = 64;
const MAX_TCP_PER_NETWORK: usize = 16;

impl Shared {
    /// Whether `addr` is one of the host's own addresses as last read. Never "whatever can
    /// be bound": with net.ipv4.ip_nonlocal_bind=1 any address can.
    fn is_host(&self, addr: IpAddr) -> bool {
        self.host_addresses
            .read()
            .is_ok_and(|known| known.contains(&addr))
    }

    fn upstreams(&self) -> Arc<Vec<SocketAddr>> {
        self.upstreams.read().map(|u| u.clone()).unwrap_or_default()
    }
}

struct Shared {
    zone: RwLock<Arc<Zone>>,
    /// The host's own addresses, read at every reload (a query from one is the host's).
    host_addresses: RwLock<BTreeSet<IpAddr>>,
    /// Read again at every reload.
    upstreams: RwLock<Arc<Vec<SocketAddr>>>,
    forwards: Arc<Semaphore>,
    tcp: Arc<Semaphore>,
}

/// One network's share of the process-wide bounds.
#[derive(Clone)]
struct Limits {
    forwards: Arc<Semaphore>,
    tcp: Arc<Semaphore>,
}

impl Limits {
    fn new() -> Limits {
        Limits {
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS_PER_NETWORK)),
            tcp: Arc::new(Semaphore::new(MAX_TCP_PER_NETWORK)),
        }
    }
}

/// A permit from the network's share and one from the process's, or none.
fn permit(local: &Arc<Semaphore>, global: &Arc<Semaphore>) -> Option<[OwnedSemaphorePermit; 2]> {
    let local = local.clone().try_acquire_owned().ok()?;
    let global = global.clone().try_acquire_owned().ok()?;
    Some([local, global])
}

/// A network's sockets and the tasks serving them.
struct Listener {
    gateway: Ipv4Addr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(super) fn run(paths: &DnsPaths, _lock: std::fs::File) -> Result<(), DnsError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DnsError::Serve(format!("starting the runtime: {e}")))?;
    runtime.block_on(serve(paths))
}

async fn serve(paths: &DnsPaths) -> Result<(), DnsError> {
    let state_root = paths
        .networks
        .root
        .parent()
        .ok_or_else(|| DnsError::Serve("the state root has no parent".into()))?;
    let layout = Layout::new(state_root);
    let shared = Arc::new(Shared {
        zone: RwLock::new(Arc::new(Zone::default())),
        host_addresses: RwLock::new(BTreeSet::new()),
        upstreams: RwLock::new(Arc::new(Vec::new())),
        forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
        tcp: Arc::new(Semaphore::new(MAX_TCP)),
    });
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel::<()>();
    let _watcher = watch(&paths.networks.root, tx)?;
    let mut listeners: BTreeMap<String, Listener> = BTreeMap::new();
    let mut failures = BindFailures::default();
    let mut announced = false;
    let mut written: Option<String> = None;
    loop {
        match load(paths, &layout) {
            Ok(zone) if zone.networks.is_empty() => {
                // No network left: nothing to serve (the next network's first start
                // starts a resolver again).
                let _ = std::fs::remove_file(&paths.bound);
                if !announced {
                    println!("{READY}");
                }
                return Ok(());
            }
            Ok(zone) => {
                listeners.retain(|name, l| {
                    let keep = zone.networks.get(name).map(|n| n.gateway) == Some(l.gateway);
                    if !keep {
                        tracing::info!(network = %name, "no longer listening on {}", l.gateway);
                    }
                    keep
                });
                failures.forget_all_but(&zone);
                for (name, net) in &zone.networks {
                    if listeners.contains_key(name) {
                        continue;
                    }
                    match listen(name, net.gateway, &shared).await {
                        Ok(l) => {
                            tracing::info!(network = %name, "listening on {}", l.gateway);
                            failures.bound(name);
                            listeners.insert(name.clone(), l);
                        }
                        Err(e) => {
                            if failures.failed(name, net.gateway, &e.to_string()) {
                                tracing::warn!(network = %name, "not listening yet: {e}");
                            }
                        }
                    }
                }
                if let Ok(mut current) = shared.zone.write() {
                    *current = Arc::new(zone);
                }
                if let Ok(mut current) = shared.upstreams.write() {
                    *current = Arc::new(super::upstreams());
                }
                if let (Some(found), Ok(mut known)) =
                    (host_addresses(), shared.host_addresses.write())
                {
                    *known = found;
                }
            }
            // A half-written state (another process is changing it): the next change or
            // rescan reads it again; the old names are served meanwhile.
            Err(e) => tracing::warn!("reading the networks: {e}"),
        }
        let bound: String = listeners
            .values()
            .map(|l| format!("{}\n", l.gateway))
            .collect();
        if written.as_deref() != Some(&bound) {
            match crate::fsutil::write_replace(&paths.bound, bound.as_bytes()) {
                Ok(()) => written = Some(bound),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        if !announced {
            println!("{READY}");
            announced = true;
        }
        tokio::select! {
            got = changes.recv() => {
                if got.is_none() {
                    return Err(DnsError::Serve("the directory watch ended".into()));
                }
                // A start writes several files: one reload for all of them.
                tokio::time::sleep(Duration::from_millis(5)).await;
                while changes.try_recv().is_ok() {}
            }
            () = tokio::time::sleep(RESCAN) => {}
        }
    }
}

/// The gateways that could not be bound, and why: a failure is logged when it starts or
/// changes, not at every rescan (the log would grow by a line per 5 s while another program
/// holds port 53 of a gateway).
#[derive(Default)]
struct BindFailures(BTreeMap<String, (Ipv4Addr, String)>);

impl BindFailures {
    /// Whether this failure is news.
    fn failed(&mut self, network: &str, gateway: Ipv4Addr, error: &str) -> bool {
        let now = (gateway, error.to_string());
        self.0.insert(network.to_string(), now.clone()) != Some(now)
    }

    fn bound(&mut self, network: &str) {
        self.0.remove(network);
    }

    fn forget_all_but(&mut self, zone: &Zone) {
        self.0.retain(|name, _| zone.networks.contains_key(name));
    }
}

/// The addresses of the host's interfaces (the resolver runs in the host's network namespace).
fn host_addresses() -> Option<BTreeSet<IpAddr>> {
    let found = nix::ifaddrs::getifaddrs().ok()?;
    Some(
        found
            .filter_map(|i| i.address)
            .filter_map(|a| {
                a.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            })
            .collect(),
    )
}

/// The zone from the records and the current leases of containers that exist.
fn load(paths: &DnsPaths, layout: &Layout) -> Result<Zone, crate::network::NetworkError> {
    let records = bridge::load_all(&paths.networks)?;
    let mut leases = Vec::new();
    for r in &records {
        leases.extend(
            lease::read(&paths.networks, &r.name)?
                .into_iter()
                .filter(|l| layout.container(&l.container).dir.is_dir())
                .filter(|l| lease::current(&records, l)),
        );
    }
    Ok(Zone::build(&records, &leases))
}

/// Changes under the network directory, its own files aside (writing `.dns.bound` must not
/// wake it up again).
fn watch(
    root: &std::path::Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<notify::RecommendedWatcher, DnsError> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let ours = |p: &std::path::PathBuf| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".dns.") || n.starts_with("..dns."))
        };
        if let Ok(e) = event
            && !e.paths.is_empty()
            && e.paths.iter().all(ours)
        {
            return;
        }
        let _ = tx.send(());
    })
    .map_err(|e| DnsError::Serve(format!("watching {}: {e}", root.display())))?;
    watcher
        .watch(root, notify::RecursiveMode::Recursive)
        .map_err(|e| DnsError::Serve(format!("watching {}: {e}", root.display())))?;
    Ok(watcher)
}

/// Sockets on `gateway`:53 for UDP and TCP, and their tasks.
async fn listen(
    network: &str,
    gateway: Ipv4Addr,
    shared: &Arc<Shared>,
) -> std::io::Result<Listener> {
    let at = SocketAddr::new(IpAddr::V4(gateway), 53);
    let udp = Arc::new(UdpSocket::bind(at).await?);
    let tcp = tokio::net::TcpSocket::new_v4()?;
    // A restarted resolver rebinds at once, whatever connections of its predecessor linger.
    tcp.set_reuseaddr(true)?;
    tcp.bind(at)?;
    let tcp = tcp.listen(64)?;
    let limits = Limits::new();
    let tasks = vec![
        tokio::spawn(serve_udp(
            udp,
            network.to_string(),
            shared.clone(),
            limits.clone(),
        )),
        tokio::spawn(serve_tcp(tcp, network.to_string(), shared.clone(), limits)),
    ];
    Ok(Listener { gateway, tasks })
}

/// What to send back for one query, before any forwarding.
enum Handled {
    Reply(Vec<u8>),
    Forward(Message),
    Drop,
}

fn handle(shared: &Shared, network: &str, from: IpAddr, bytes: &[u8]) -> Handled {
    // Not a DNS message: nothing to answer to.
    let Ok(query) = Message::from_vec(bytes) else {
        return Handled::Drop;
    };
    let zone = match shared.zone.read() {
        Ok(z) => z.clone(),
        Err(_) => return Handled::Drop,
    };
    match zone.answer(network, from, |a| shared.is_host(a), &query) {
        Verdict::Answer(m) => m.to_vec().map_or(Handled::Drop, Handled::Reply),
        Verdict::Forward => Handled::Forward(query),
        Verdict::Ignore => Handled::Drop,
    }
}

fn servfail(query: &Message) -> Option<Vec<u8>> {
    zone::response(query, ResponseCode::ServFail).to_vec().ok()
}

async fn serve_udp(socket: Arc<UdpSocket>, network: String, shared: Arc<Shared>, limits: Limits) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let bytes = &buf[..n];
        match handle(&shared, &network, from.ip(), bytes) {
            Handled::Reply(r) => {
                let _ = socket.send_to(&r, from).await;
            }
            Handled::Drop => {}
            Handled::Forward(query) => {
                let Some(permit) = permit(&limits.forwards, &shared.forwards) else {
                    if let Some(r) = servfail(&query) {
                        let _ = socket.send_to(&r, from).await;
                    }
                    continue;
                };
                let (socket, shared, bytes) = (socket.clone(), shared.clone(), bytes.to_vec());
                tokio::spawn(async move {
                    let reply = forward_udp(&shared.upstreams(), &bytes)
                        .await
                        .or_else(|| servfail(&query));
                    if let Some(r) = reply {
                        let _ = socket.send_to(&r, from).await;
                    }
                    drop(permit);
                });
            }
        }
    }
}

async fn serve_tcp(listener: TcpListener, network: String, shared: Arc<Shared>, limits: Limits) {
    loop {
        let Ok((stream, from)) = listener.accept().await else {
            continue;
        };
        // A client that would be refused is closed at once, before it holds a permit.
        if !admitted(&shared, &network, from.ip()) {
            continue;
        }
        let Some(permit) = permit(&limits.tcp, &shared.tcp) else {
            continue; // dropped: the client retries
        };
        let (network, shared) = (network.clone(), shared.clone());
        tokio::spawn(async move {
            let _ = tcp_client(stream, from.ip(), &network, &shared).await;
            drop(permit);
        });
    }
}

fn admitted(shared: &Shared, network: &str, from: IpAddr) -> bool {
    shared
        .zone
        .read()
        .is_ok_and(|z| z.admits(network, from, |a| shared.is_host(a)))
}

/// Queries of one TCP client, until it closes, idles, has asked `TCP_QUERIES` or was
/// connected `TCP_LIFETIME`.
async fn tcp_client(
    stream: TcpStream,
    from: IpAddr,
    network: &str,
    shared: &Shared,
) -> std::io::Result<()> {
    tokio::time::timeout(TCP_LIFETIME, tcp_queries(stream, from, network, shared))
        .await
        .unwrap_or(Ok(()))
}

async fn tcp_queries(
    mut stream: TcpStream,
    from: IpAddr,
    network: &str,
    shared: &Shared,
) -> std::io::Result<()> {
    for _ in 0..TCP_QUERIES {
        let Ok(query) = tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await else {
            return Ok(());
        };
        let query = query?;
        // Refused since it connected (the zone changed): closed rather than answered.
        if !admitted(shared, network, from) {
            return Ok(());
        }
        let reply = match handle(shared, network, from, &query) {
            Handled::Reply(r) => Some(r),
            Handled::Drop => return Ok(()),
            Handled::Forward(m) => forward_tcp(&shared.upstreams(), &query)
                .await
                .or_else(|| servfail(&m)),
        };
        if let Some(r) = reply {
            tokio::time::timeout(TCP_WRITE, write_framed(&mut stream, &r))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        }
    }
    Ok(())
}

async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_framed(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    stream.write_all(&out).await
}

/// The first upstream answer with the query's id, each upstream asked from a new socket
/// (a new source port: an off-path spoofer has to guess it).
async fn forward_udp(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for up in upstreams {
        let local: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(socket) = UdpSocket::bind(local).await else {
            continue;
        };
        if socket.connect(up).await.is_err() || socket.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        let wait = async {
            loop {
                match socket.recv(&mut buf).await {
                    Ok(n) if n >= 12 && buf.get(..2) == Some(id) => return Some(n),
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
        };
        if let Ok(Some(n)) = tokio::time::timeout(UPSTREAM_TIMEOUT, wait).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

async fn forward_tcp(upstreams: &[SocketAddr], query: &[u8]) -> Option<Vec<u8>> {
    for up in upstreams {
        let exchange = async {
            let mut s = TcpStream::connect(up).await?;
            write_framed(&mut s, query).await?;
            read_framed(&mut s).await
        };
        if let Ok(Ok(reply)) = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await {
            return Some(reply);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::record::{Lease, NetworkRecord};
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RecordType};

    fn shared(host: &[&str]) -> Shared {
        let record = NetworkRecord {
            name: "front".into(),
            spec_hash: String::new(),
            bridge: "berth0".into(),
            subnet: "10.89.1.0/24".parse().expect("subnet"),
            gateway: Ipv4Addr::new(10, 89, 1, 1),
            internal: false,
            created_at: String::new(),
        };
        let lease = Lease {
            network: "front".into(),
            ip: "10.89.1.2".parse().expect("ip"),
            container: "web-1".into(),
            name: "web".into(),
            hostname: "web".into(),
            aliases: vec![],
            ports: vec![],
            claim: None,
            manual: false,
        };
        Shared {
            zone: RwLock::new(Arc::new(Zone::build(&[record], &[lease]))),
            host_addresses: RwLock::new(host.iter().map(|a| a.parse().expect("ip")).collect()),
            upstreams: RwLock::new(Arc::new(Vec::new())),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            tcp: Arc::new(Semaphore::new(MAX_TCP)),
        }
    }

    fn ask(name: &str) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii(name).expect("name"),
            RecordType::A,
        ));
        m.to_vec().expect("encode")
    }

    fn code(h: Handled) -> ResponseCode {
        match h {
            Handled::Reply(r) => Message::from_vec(&r).expect("reply").metadata.response_code,
            Handled::Forward(_) => panic!("forwarded"),
            Handled::Drop => panic!("dropped"),
        }
    }

    #[test]
    fn a_bind_failure_is_logged_when_it_starts_or_changes() {
        let mut f = BindFailures::default();
        let gw = Ipv4Addr::new(10, 89, 1, 1);
        assert!(f.failed("front", gw, "address in use"));
        assert!(!f.failed("front", gw, "address in use"));
        assert!(f.failed("front", gw, "cannot assign requested address"));
        assert!(f.failed("back", gw, "address in use"));
        f.bound("front");
        assert!(f.failed("front", gw, "cannot assign requested address"));
        f.forget_all_but(&Zone::default());
        assert!(f.failed("back", gw, "address in use"));
    }

    #[test]
    fn one_network_cannot_take_the_process_wide_permits() {
        let global = Arc::new(Semaphore::new(MAX_FORWARDS));
        let (flooding, other) = (Limits::new(), Limits::new());
        let held: Vec<_> = std::iter::from_fn(|| permit(&flooding.forwards, &global)).collect();
        assert_eq!(held.len(), MAX_FORWARDS_PER_NETWORK);
        assert!(permit(&other.forwards, &global).is_some());
        drop(held);
        assert_eq!(global.available_permits(), MAX_FORWARDS);
    }

    /// A TCP resolver for `shared` on 127.0.0.1, and its address.
    async fn tcp_server(shared: Arc<Shared>) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let at = listener.local_addr().expect("address");
        let task = tokio::spawn(serve_tcp(listener, "front".into(), shared, Limits::new()));
        (at, task)
    }

    #[tokio::test]
    async fn a_tcp_client_that_would_be_refused_is_closed_without_a_permit() {
        let s = Arc::new(shared(&[]));
        let (at, task) = tcp_server(s.clone()).await;
        let mut c = TcpStream::connect(at).await.expect("connect");
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
        // Closed (end of stream or reset) at once, not left waiting for a query.
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        assert_eq!(s.tcp.available_permits(), MAX_TCP);
        task.abort();
    }

    #[tokio::test]
    async fn a_tcp_client_is_closed_after_its_queries() {
        let s = Arc::new(shared(&["127.0.0.1"]));
        let (at, task) = tcp_server(s.clone()).await;
        let mut c = TcpStream::connect(at).await.expect("connect");
        for _ in 0..TCP_QUERIES {
            write_framed(&mut c, &ask("web")).await.expect("ask");
            let reply = read_framed(&mut c).await.expect("answer");
            let m = Message::from_vec(&reply).expect("reply");
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        }
        // One more is not answered: the connection is closed.
        let _ = write_framed(&mut c, &ask("web")).await;
        let next = tokio::time::timeout(Duration::from_secs(2), read_framed(&mut c)).await;
        assert!(matches!(next, Ok(Err(_))), "{next:?}");
        task.abort();
    }

    #[test]
    fn the_host_is_its_address_set_not_what_can_be_bound() {
        let s = shared(&["192.0.2.7"]);
        // 127.0.0.1 can be bound (as any address can with ip_nonlocal_bind=1), but it is
        // not in the host's address set: refused.
        let from: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(std::net::UdpSocket::bind(SocketAddr::new(from, 0)).is_ok());
        assert_eq!(
            code(handle(&s, "front", from, &ask("web"))),
            ResponseCode::Refused
        );
        let lan: IpAddr = "198.51.100.9".parse().expect("ip");
        assert_eq!(
            code(handle(&s, "front", lan, &ask("web"))),
            ResponseCode::Refused
        );
        // One of the host's addresses, and the network's own containers, are answered.
        let host: IpAddr = "192.0.2.7".parse().expect("ip");
        assert_eq!(
            code(handle(&s, "front", host, &ask("web"))),
            ResponseCode::NoError
        );
        let peer: IpAddr = "10.89.1.2".parse().expect("ip");
        assert_eq!(
            code(handle(&s, "front", peer, &ask("web"))),
            ResponseCode::NoError
        );
        assert!(matches!(
            handle(&s, "front", host, &ask("example.com.")),
            Handled::Forward(_)
        ));
        assert_eq!(
            code(handle(&s, "front", lan, &ask("example.com."))),
            ResponseCode::Refused
        );
    }
}
