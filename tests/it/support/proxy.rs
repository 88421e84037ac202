//! `FaultProxy`: an HTTP/1.1 reverse proxy on 127.0.0.1 in front of a `TestRegistry` that
//! records every request and injects faults (corrupt or short bodies, error statuses,
//! cross-host redirects) and registry auth (token or basic), so pull code can be tested against
//! the failures real registries and CDNs produce. `SecondServer` is the redirect target: a
//! recording pass-through on 127.0.0.2, a different host as far as any client can tell.
//!
//! Each server runs on its own thread with its own tokio runtime, so tests stay synchronous.

use std::convert::Infallible;
use std::fmt;
use std::future::Future as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;

use super::registry::TestRegistry;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// What to do to a matching request instead of (or on top of) passing it through.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Flip one byte in the middle of the response body; length and headers unchanged.
    /// GET only.
    CorruptBody,
    /// Send the headers (with the full Content-Length) and the first `after` body bytes, then
    /// close the connection (after a 50 ms pause, so those bytes are flushed). GET only.
    Truncate { after: usize },
    /// Answer `code` (with a distribution-style JSON error) `times` times, then pass through.
    Status { code: u16, times: usize },
    /// Answer 307 to the same path and query on `other` (another host: 127.0.0.2), as a
    /// registry does to send blobs to a CDN.
    RedirectTo { other: SecondServer },
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The realm's `service` parameter in bearer challenges.
pub const TOKEN_SERVICE: &str = "test-registry";

#[derive(Clone, Debug)]
enum Auth {
    None,
    Basic {
        user: String,
        password: String,
    },
    /// `credentials` None: the token endpoint serves anyone (anonymous pulls of public images).
    Bearer {
        credentials: Option<(String, String)>,
    },
}

struct Rule {
    path: String,
    fault: Fault,
    /// None: until cleared.
    remaining: Option<usize>,
}

struct State {
    upstream: String,
    own_url: String,
    client: Client<HttpConnector, Full<Bytes>>,
    rules: Mutex<Vec<Rule>>,
    auth: Mutex<Auth>,
    requests: Mutex<Vec<RecordedRequest>>,
    token_generation: AtomicUsize,
}

impl State {
    fn token(&self) -> String {
        let generation = self.token_generation.load(Ordering::SeqCst);
        format!("berth-test-token-{generation}")
    }
}

/// A panic in one test must not turn every later lock of shared state into a second panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A listener and its runtime thread; dropping it stops both.
struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(ip: IpAddr, upstream: String) -> Server {
        // Bound before the thread starts, so the address is known and accepting on return.
        let listener = std::net::TcpListener::bind((ip, 0))
            .unwrap_or_else(|e| panic!("bind {ip}:0 for the test proxy: {e}"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State {
            upstream,
            own_url: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            rules: Mutex::new(Vec::new()),
            auth: Mutex::new(Auth::None),
            requests: Mutex::new(Vec::new()),
            token_generation: AtomicUsize::new(1),
        });
        let (shutdown, stop) = oneshot::channel();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("test-proxy-{addr}"))
            .spawn(move || serve(listener, served, stop))
            .expect("spawn proxy thread");
        Server {
            addr,
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    fn count(&self, path_contains: &str) -> usize {
        lock(&self.state.requests)
            .iter()
            .filter(|r| r.path.contains(path_contains))
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: std::net::TcpListener, state: Arc<State>, mut stop: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("proxy runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            handle(state.clone(), request)
                        });
                        // Errors here are the client going away or an injected truncation.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        }
    });
    // Open connections (keep-alive clients, stalled bodies) are cut, not waited for.
    runtime.shutdown_background();
}

/// The reverse proxy in front of a registry. Faults and auth can be changed at any time from
/// the test thread; they apply to requests that arrive afterwards.
pub struct FaultProxy {
    server: Server,
}

impl FaultProxy {
    /// A proxy on 127.0.0.1:free-port forwarding to `registry`.
    pub fn start(registry: &TestRegistry) -> FaultProxy {
        FaultProxy::in_front_of(&registry.host())
    }

    /// A proxy forwarding to `upstream` ("127.0.0.1:PORT").
    pub fn in_front_of(upstream: &str) -> FaultProxy {
        FaultProxy {
            server: Server::start(IpAddr::V4(Ipv4Addr::LOCALHOST), upstream.to_string()),
        }
    }

    /// "127.0.0.1:PORT": use it as the registry part of image references.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// "http://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        self.server.state.own_url.clone()
    }

    /// Applies `fault` to every request whose path contains `path_contains` until
    /// `clear_faults` (`Status` stops by itself after its `times`). The first matching rule
    /// wins, in the order added.
    pub fn fault(&self, path_contains: &str, fault: Fault) {
        let remaining = match fault {
            Fault::Status { times, .. } => Some(times),
            _ => None,
        };
        self.add_rule(path_contains, fault, remaining);
    }

    /// Applies `fault` to the next `times` matching requests only, e.g. one corrupt download
    /// followed by good ones, to prove a retry.
    pub fn fault_times(&self, path_contains: &str, fault: Fault, times: usize) {
        self.add_rule(path_contains, fault, Some(times));
    }

    fn add_rule(&self, path_contains: &str, fault: Fault, remaining: Option<usize>) {
        lock(&self.server.state.rules).push(Rule {
            path: path_contains.to_string(),
            fault,
            remaining,
        });
    }

    pub fn clear_faults(&self) {
        lock(&self.server.state.rules).clear();
    }

    /// Token auth as Docker Hub does it: /v2/ requests need `Authorization: Bearer <token>`,
    /// else 401 with a `WWW-Authenticate: Bearer realm=…/token,service,scope` challenge;
    /// `GET /token` with Basic `user:password` returns the token (wrong or no credentials: 401).
    pub fn require_bearer(&self, user: &str, password: &str) {
        *lock(&self.server.state.auth) = Auth::Bearer {
            credentials: Some((user.to_string(), password.to_string())),
        };
    }

    /// Token auth whose token endpoint serves anonymous requests (public images).
    pub fn require_anonymous_bearer(&self) {
        *lock(&self.server.state.auth) = Auth::Bearer { credentials: None };
    }

    /// Basic auth on every /v2/ request; 401 with `WWW-Authenticate: Basic realm=…` otherwise.
    pub fn require_basic(&self, user: &str, password: &str) {
        *lock(&self.server.state.auth) = Auth::Basic {
            user: user.to_string(),
            password: password.to_string(),
        };
    }

    pub fn no_auth(&self) {
        *lock(&self.server.state.auth) = Auth::None;
    }

    /// The bearer token currently issued and accepted.
    pub fn token(&self) -> String {
        self.server.state.token()
    }

    /// Invalidates the current token (as expiry does): holders get 401 and must fetch anew.
    pub fn rotate_token(&self) {
        self.server
            .state
            .token_generation
            .fetch_add(1, Ordering::SeqCst);
    }

    /// "http://127.0.0.1:PORT/token", the realm of bearer challenges.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url())
    }

    /// Every request received so far, in arrival order (the token endpoint's included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// How many requests had a path containing `path_contains` (any method).
    pub fn count(&self, path_contains: &str) -> usize {
        self.server.count(path_contains)
    }

    /// How many `method` requests had a path containing `path_contains`.
    pub fn count_method(&self, method: &str, path_contains: &str) -> usize {
        lock(&self.server.state.requests)
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_contains))
            .count()
    }

    pub fn clear_requests(&self) {
        lock(&self.server.state.requests).clear();
    }
}

/// A recording pass-through to the registry on 127.0.0.2 (another host for clients: same IP
/// family, different address), the target of `Fault::RedirectTo`. Cloning shares the server;
/// it stops when the last clone is dropped.
#[derive(Clone)]
pub struct SecondServer {
    server: Arc<Server>,
}

impl SecondServer {
    pub fn start(registry: &TestRegistry) -> SecondServer {
        SecondServer {
            server: Arc::new(Server::start(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                registry.host(),
            )),
        }
    }

    /// "127.0.0.2:PORT".
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    pub fn url(&self) -> String {
        self.server.state.own_url.clone()
    }

    /// Every request received, with its headers (to check what a client sent cross-host).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    pub fn count(&self, path_contains: &str) -> usize {
        self.server.count(path_contains)
    }
}

impl fmt::Debug for SecondServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecondServer({})", self.server.addr)
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    lock(&state.requests).push(RecordedRequest {
        method: request.method().to_string(),
        path: path.clone(),
        query: query.clone(),
        headers: request
            .headers()
            .iter()
            .map(|(n, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (n.as_str().to_string(), value)
            })
            .collect(),
    });

    let auth = lock(&state.auth).clone();
    if path == "/token" {
        return Ok(token_endpoint(&state, &auth, request.headers()));
    }
    if path.starts_with("/v2")
        && let Some(denied) = check_auth(&state, &auth, request.method(), &path, request.headers())
    {
        return Ok(denied);
    }

    let is_get = request.method() == hyper::Method::GET;
    let fault = take_fault(&state, &path, is_get);
    let body_fault = match fault {
        Some(Fault::Status { code, .. }) => return Ok(injected_status(code)),
        Some(Fault::RedirectTo { other }) => {
            let location = match &query {
                Some(q) => format!("{}{path}?{q}", other.url()),
                None => format!("{}{path}", other.url()),
            };
            let response = Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", location)
                .header("content-length", "0")
                .body(full(Bytes::new()))
                .expect("redirect response");
            return Ok(response);
        }
        Some(Fault::CorruptBody) => Some(BodyFault::Corrupt),
        Some(Fault::Truncate { after }) => Some(BodyFault::Truncate { left: after }),
        None => None,
    };

    let response = match forward(&state, request).await {
        Ok(response) => response,
        Err(e) => {
            let message = format!("test proxy: upstream {} failed: {e}\n", state.upstream);
            let response = Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(full(Bytes::from(message)))
                .expect("502 response");
            return Ok(response);
        }
    };
    Ok(match body_fault {
        None => response,
        Some(fault) => {
            let length = response
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            response.map(|body| {
                Faulty {
                    inner: body,
                    fault,
                    // The middle, so gzip headers and trailers stay intact and only the
                    // digest check (or the decompressor) can notice.
                    corrupt_at: length.unwrap_or(0) / 2,
                    offset: 0,
                    pause: None,
                }
                .boxed()
            })
        }
    })
}

/// The first rule matching `path` (body faults only for GET: HEAD and PUT have none to spoil),
/// counting down and retiring rules with a limit.
fn take_fault(state: &State, path: &str, is_get: bool) -> Option<Fault> {
    let mut rules = lock(&state.rules);
    let index = rules.iter().position(|rule| {
        let body_only = matches!(rule.fault, Fault::CorruptBody | Fault::Truncate { .. });
        path.contains(&rule.path) && rule.remaining != Some(0) && (is_get || !body_only)
    })?;
    let rule = &mut rules[index];
    let fault = rule.fault.clone();
    if let Some(remaining) = &mut rule.remaining {
        *remaining -= 1;
        if *remaining == 0 {
            rules.remove(index);
        }
    }
    Some(fault)
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Passes the request on (Host kept, so the registry's absolute Location URLs point back here)
/// and streams the response back.
async fn forward(
    state: &State,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, BoxError> {
    let (parts, body) = request.into_parts();
    // Requests through the proxy are small (pulls); buffering them keeps the client simple.
    let body = body.collect().await?.to_bytes();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = Request::builder()
        .method(parts.method)
        .uri(format!("http://{}{path_and_query}", state.upstream))
        .body(Full::new(body))?;
    copy_end_to_end(&parts.headers, upstream.headers_mut());
    let response = state.client.request(upstream).await?;
    let (parts, body) = response.into_parts();
    let mut out = Response::new(body.map_err(BoxError::from).boxed());
    *out.status_mut() = parts.status;
    copy_end_to_end(&parts.headers, out.headers_mut());
    Ok(out)
}

fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn json_response(status: StatusCode, body: String) -> Response<ProxyBody> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(Bytes::from(body)))
        .expect("json response")
}

fn registry_error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    json_response(status, body.to_string())
}

fn injected_status(code: u16) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(code).expect("fault status code");
    let error_code = match code {
        401 => "UNAUTHORIZED",
        403 => "DENIED",
        404 => "NAME_UNKNOWN",
        429 => "TOOMANYREQUESTS",
        _ => "UNAVAILABLE",
    };
    registry_error(status, error_code, "injected by the test proxy")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn basic_value(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// None when the request may go on, else the 401 to answer.
fn check_auth(
    state: &State,
    auth: &Auth,
    method: &hyper::Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response<ProxyBody>> {
    let given = header(headers, "authorization");
    let challenge = match auth {
        Auth::None => return None,
        Auth::Basic { user, password } => {
            if given == Some(basic_value(user, password).as_str()) {
                return None;
            }
            format!("Basic realm=\"{TOKEN_SERVICE}\"")
        }
        Auth::Bearer { .. } => {
            if given == Some(format!("Bearer {}", state.token()).as_str()) {
                return None;
            }
            let mut challenge = format!(
                "Bearer realm=\"{}/token\",service=\"{TOKEN_SERVICE}\"",
                state.own_url
            );
            if let Some(repo) = repository(path) {
                let actions = if matches!(*method, hyper::Method::GET | hyper::Method::HEAD) {
                    "pull"
                } else {
                    "pull,push"
                };
                challenge.push_str(&format!(",scope=\"repository:{repo}:{actions}\""));
            }
            challenge
        }
    };
    let mut response = registry_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    response.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_str(&challenge).expect("challenge header"),
    );
    Some(response)
}

/// `/v2/<repo>/{manifests,blobs,tags}/…` → repo (which may contain slashes).
fn repository(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|marker| rest.rfind(marker))
        .min()
        .map(|end| &rest[..end])
}

fn token_endpoint(state: &State, auth: &Auth, headers: &HeaderMap) -> Response<ProxyBody> {
    let Auth::Bearer { credentials } = auth else {
        return registry_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no token auth configured",
        );
    };
    if let Some((user, password)) = credentials
        && header(headers, "authorization") != Some(basic_value(user, password).as_str())
    {
        let mut response =
            registry_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials");
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"test-registry-token\""),
        );
        return response;
    }
    let token = state.token();
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": 300,
        "issued_at": "2024-01-01T00:00:00Z",
    });
    json_response(StatusCode::OK, body.to_string())
}

/// Standard base64 with padding (for Basic credentials; not worth a dependency).
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[derive(Clone, Copy)]
enum BodyFault {
    Corrupt,
    Truncate { left: usize },
}

/// A response body that spoils the upstream body as it streams by.
struct Faulty {
    inner: ProxyBody,
    fault: BodyFault,
    corrupt_at: u64,
    offset: u64,
    /// Truncation waits here after the last allowed bytes so hyper flushes them before the
    /// error makes it drop the connection.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Faulty {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let BodyFault::Truncate { left: 0 } = this.fault {
            let pause = this
                .pause
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(50))));
            ready!(pause.as_mut().poll(cx));
            return Poll::Ready(Some(Err("body truncated by the test proxy".into())));
        }
        let Some(frame) = ready!(Pin::new(&mut this.inner).poll_frame(cx)) else {
            return Poll::Ready(None);
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        let Ok(mut data) = frame.into_data() else {
            // Trailers: nothing to spoil.
            return Poll::Ready(None);
        };
        let start = this.offset;
        this.offset += data.len() as u64;
        match &mut this.fault {
            BodyFault::Corrupt => {
                if (start..this.offset).contains(&this.corrupt_at) {
                    let mut bytes = data.to_vec();
                    let at = usize::try_from(this.corrupt_at - start).expect("inside this chunk");
                    bytes[at] ^= 0xff;
                    data = Bytes::from(bytes);
                }
            }
            BodyFault::Truncate { left } => {
                let keep = data.len().min(*left);
                *left -= keep;
                data.truncate(keep);
            }
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn size_hint(&self) -> SizeHint {
        // The full upstream length: a truncated body still announces all of it.
        self.inner.size_hint()
    }
}
