//! Docker's exec: `POST /containers/{id}/exec` makes an instance, `POST /exec/{id}/start`
//! runs it (hijacking the connection: `101 Switching Protocols`, then the process's output
//! multiplexed, or raw for a tty, and the client's input to the process), `POST
//! /exec/{id}/resize` sizes its tty, `GET /exec/{id}/json` tells whether it runs and how it
//! ended. The process is `berth exec` run by the agent (see `exec_process`).
//!
//! Instances live in the agent's memory only, at most [`MAX_INSTANCES`]: when full, the
//! oldest finished ones (then the oldest never started) are forgotten. A client that goes
//! away hangs up its process: `berth exec` gets SIGTERM (passed on to the process; a tty's
//! process gets the hangup of its terminal), then SIGKILL after [`HANGUP_GRACE`]. Gone is
//! seen when its connection breaks or refuses output: the end of its input is not enough,
//! as the docker CLI half-closes at once when it sends none, so a client that leaves a
//! silent process is noticed at its next output (dockerd never hangs up at all). The exit
//! code is recorded before the stream ends, so the client's inspect right after sees it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Call;
use super::exec_process::{self, Chunk, Input, Running, Terminal};
use super::stdcopy::{self, Fd};
use super::target;
use crate::api::{Body, Context, error, json, streamed};
use crate::runtime::State;
use crate::state::events::{Action, EventLog, container_event};
use crate::state::record::ContainerRecord;

/// Exec instances kept in memory.
const MAX_INSTANCES: usize = 256;
/// From SIGTERM to SIGKILL for the `berth exec` of a client that went away.
const HANGUP_GRACE: Duration = Duration::from_secs(10);

/// The body of `POST /containers/{id}/exec`, as the docker CLI and SDKs send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct CreateBody {
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    tty: bool,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    privileged: bool,
    detach_keys: Option<String>,
}

/// The body of `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct StartBody {
    detach: bool,
    tty: bool,
}

/// One exec instance.
struct Instance {
    id: String,
    /// berth's id, for `berth exec`.
    container_id: String,
    /// What clients are shown.
    docker_id: String,
    /// The container's record, for its events.
    record: ContainerRecord,
    cmd: Vec<String>,
    env: Vec<(String, String)>,
    user: Option<(u32, u32)>,
    user_text: String,
    workdir: Option<String>,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    privileged: bool,
    detach_keys: String,
    created: Instant,
    progress: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    /// The pid of `berth exec` while it runs.
    berth_exec: Option<u32>,
    terminal: Option<Arc<Terminal>>,
}

impl Instance {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self, code: i32) {
        let mut progress = self.progress();
        progress.running = false;
        progress.exit_code = Some(code);
        progress.berth_exec = None;
        progress.terminal = None;
    }

    /// Records `exec_start` or `exec_die` (with `exit_code`) in the event log, off the
    /// runtime's workers (it reads the container's labels and appends to a file).
    async fn record_event(&self, context: &Context, action: Action, exit_code: Option<i32>) {
        let layout = context.machine.runtime.layout().clone();
        let record = self.record.clone();
        let exec_id = self.id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut event = container_event(&layout, &record, action).with("exec_id", exec_id);
            if let Some(code) = exit_code {
                event = event.with("exit_code", code);
            }
            EventLog::new(&layout).append(&event);
        })
        .await;
    }

    /// The process ended with `code`: recorded here, then in the event log.
    async fn end(&self, context: &Context, code: i32) {
        self.finish(code);
        self.record_event(context, Action::ExecDie, Some(code))
            .await;
    }
}

/// The agent's exec instances, by id. One agent serves one state root, so one table per
/// process.
static INSTANCES: LazyLock<Mutex<HashMap<String, Arc<Instance>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn instances() -> MutexGuard<'static, HashMap<String, Arc<Instance>>> {
    INSTANCES.lock().unwrap_or_else(|e| e.into_inner())
}

fn instance(id: &str) -> Option<Arc<Instance>> {
    instances().get(id).cloned()
}

/// Adds `instance`, forgetting old ones when full; false when every slot holds one that
/// runs.
fn remember(instance: Arc<Instance>) -> bool {
    remember_in(&mut instances(), instance)
}

fn remember_in(table: &mut HashMap<String, Arc<Instance>>, instance: Arc<Instance>) -> bool {
    if table.len() >= MAX_INSTANCES {
        let mut finished: Vec<(Instant, String)> = Vec::new();
        let mut unstarted: Vec<(Instant, String)> = Vec::new();
        for (id, i) in table.iter() {
            let progress = i.progress();
            if progress.exit_code.is_some() {
                finished.push((i.created, id.clone()));
            } else if !progress.started {
                unstarted.push((i.created, id.clone()));
            }
        }
        finished.sort();
        unstarted.sort();
        let excess = table.len() + 1 - MAX_INSTANCES;
        for (_, id) in finished.into_iter().chain(unstarted).take(excess) {
            table.remove(&id);
        }
        if table.len() >= MAX_INSTANCES {
            return false;
        }
    }
    table.insert(instance.id.clone(), instance);
    true
}

/// A new instance id: 32 random bytes in hex, as dockerd's.
fn new_id() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no random bytes for an exec id".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `User` as Docker reads it (`name`, `uid`, `name:group`, `uid:gid`, …), resolved in the
/// running container's own /etc/passwd and /etc/group (through /proc/INIT/root, confined to
/// it), into the ids `berth exec -u` takes. Blocking.
fn resolve_user(init: i32, text: &str) -> Result<Option<(u32, u32)>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let root =
        crate::runtime::rootfs::open_root(std::path::Path::new(&format!("/proc/{init}/root")))
            .map_err(|e| format!("User {text:?}: {e}"))?;
    let read = |path: &str| {
        crate::runtime::rootfs::read_small_file(&root, path)
            .map_err(|e| format!("User {text:?}: {e}"))
    };
    let (passwd, group) = (read("/etc/passwd")?, read("/etc/group")?);
    let resolved = crate::runtime::users::resolve(Some(text), &[], &passwd, &group)
        .map_err(|e| format!("unable to find user {text}: {e}"))?;
    Ok(Some((resolved.uid, resolved.gid)))
}

fn parse_env(entries: &[String]) -> Result<Vec<(String, String)>, String> {
    entries
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
            _ => Err(format!("Env entry {entry:?}: expected KEY=VALUE")),
        })
        .collect()
}

/// Whether the container was made privileged (its spec carries berth's annotation).
fn is_privileged(context: &Context, record: &ContainerRecord) -> bool {
    let config = context
        .machine
        .runtime
        .layout()
        .container(&record.id)
        .config();
    let Ok(text) = std::fs::read(config) else {
        return false;
    };
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return false;
    };
    spec.get("annotations")
        .and_then(|a| a.get(crate::runtime::kernel_keys::PRIVILEGED_ANNOTATION))
        .is_some_and(|v| v.as_str() == Some("true"))
}

/// The init pid of container `id` if it runs; 409 otherwise, as dockerd answers.
async fn running(context: &Context, id: &str) -> Result<i32, Response<Body>> {
    let runtime = context.machine.runtime.clone();
    let owned = id.to_string();
    let state = tokio::task::spawn_blocking(move || runtime.state(&owned)).await;
    match state {
        Ok(Ok(State::Running(monitor))) => Ok(monitor.init.pid),
        Ok(Ok(_)) => Err(error(
            StatusCode::CONFLICT,
            &format!("Container {id} is not running"),
        )),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    }
}

/// `POST /containers/{id}/exec`.
pub async fn create(call: Call) -> Response<Body> {
    let Some(name) = call.segments.get(1).cloned() else {
        return error(StatusCode::NOT_FOUND, "no container named");
    };
    let (record, docker_id) = match target::container(&call.context, &name).await {
        Ok(found) => (found.record, found.docker_id),
        Err(response) => return response,
    };
    let init = match running(&call.context, &record.id).await {
        Ok(init) => init,
        Err(response) => return response,
    };
    let context = call.context.clone();
    let body: CreateBody = match target::json_body(call.request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let cmd = body.cmd.clone().unwrap_or_default();
    if cmd.is_empty() {
        return error(StatusCode::BAD_REQUEST, "No exec command specified");
    }
    if body.privileged && !is_privileged(&context, &record) {
        return error(
            StatusCode::FORBIDDEN,
            &format!(
                "a privileged exec is refused: container {} is not privileged (set \
                 `privileged = true` on its entry in the desired files if it must be)",
                record.name
            ),
        );
    }
    let env = match parse_env(body.env.as_deref().unwrap_or_default()) {
        Ok(env) => env,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let user_text = body.user.clone().unwrap_or_default();
    let asked = user_text.clone();
    let user = match tokio::task::spawn_blocking(move || resolve_user(init, &asked)).await {
        Ok(Ok(user)) => user,
        Ok(Err(message)) => return error(StatusCode::BAD_REQUEST, &message),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let id = match new_id() {
        Ok(id) => id,
        Err(message) => return error(StatusCode::INTERNAL_SERVER_ERROR, &message),
    };
    let instance = Arc::new(Instance {
        id: id.clone(),
        container_id: record.id.clone(),
        docker_id,
        record: record.clone(),
        cmd,
        env,
        user,
        user_text,
        workdir: body.working_dir.filter(|d| !d.is_empty()),
        tty: body.tty,
        stdin: body.attach_stdin,
        stdout: body.attach_stdout,
        stderr: body.attach_stderr,
        privileged: body.privileged,
        detach_keys: body.detach_keys.unwrap_or_default(),
        created: Instant::now(),
        progress: Mutex::new(Progress::default()),
    });
    if !remember(instance) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{MAX_INSTANCES} exec instances are running: wait for one to end"),
        );
    }
    json(StatusCode::CREATED, &serde_json::json!({ "Id": id }))
}

fn no_such_exec(id: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        &format!("No such exec instance: {id}"),
    )
}

/// `POST /exec/{id}/start`.
pub async fn start(mut call: Call) -> Response<Body> {
    let Some(id) = call.segments.get(1).cloned() else {
        return error(StatusCode::NOT_FOUND, "no exec instance named");
    };
    let Some(instance) = instance(&id) else {
        return no_such_exec(&id);
    };
    let upgrade = wants_upgrade(&call).then(|| hyper::upgrade::on(&mut call.request));
    let context = call.context.clone();
    let version = call.version.clone();
    let body: StartBody = match target::json_body(call.request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if let Err(response) = running(&context, &instance.container_id).await {
        return response;
    }
    {
        let mut progress = instance.progress();
        if progress.started {
            return error(
                StatusCode::CONFLICT,
                &format!("Exec instance {id} has already been started"),
            );
        }
        progress.started = true;
    }
    // Only a hijacked connection carries input back to the process.
    let stdin = instance.stdin && upgrade.is_some() && !body.detach;
    let tty = instance.tty || body.tty;
    let spec = exec_process::Spec {
        binary: context.machine.runtime.binary(),
        root: &context.root,
        container_id: &instance.container_id,
        cmd: &instance.cmd,
        env: &instance.env,
        workdir: instance.workdir.as_deref(),
        user: instance.user,
        tty,
        stdin,
    };
    let process = match exec_process::spawn(&spec) {
        Ok(process) => process,
        Err(e) => {
            instance.finish(126);
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("starting berth exec: {e}"),
            );
        }
    };
    {
        let mut progress = instance.progress();
        progress.running = true;
        progress.berth_exec = process.child.id();
        progress.terminal = process.terminal.clone();
    }
    instance
        .record_event(&context, Action::ExecStart, None)
        .await;
    let content_type = if tty {
        stdcopy::RAW_STREAM
    } else {
        stdcopy::multiplexed_type(&version)
    };
    if body.detach {
        tokio::spawn(async move {
            let code = drive(&instance, process, None::<Hijacked>, &mut Sink::Discard).await;
            instance.end(&context, code).await;
        });
        return Response::new(crate::api::full(""));
    }
    let Some(upgrade) = upgrade else {
        // An old client, or one that does not hijack: the output as the body.
        let (tx, rx) = mpsc::channel(16);
        let mut sink = Sink::Body(tx);
        tokio::spawn(async move {
            let code = drive(&instance, process, None::<Hijacked>, &mut sink).await;
            instance.end(&context, code).await;
        });
        let mut response = Response::new(streamed(rx));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        return response;
    };
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!("exec {}: the connection was not upgraded: {e}", instance.id);
                let code = hang_up_and_wait(process).await;
                instance.end(&context, code).await;
                return;
            }
        };
        let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
        let mut sink = Sink::Conn(writer);
        let code = drive(&instance, process, Some(reader), &mut sink).await;
        // Recorded before the stream ends: the client inspects the instance right after.
        instance.finish(code);
        if let Sink::Conn(mut writer) = sink {
            let _ = writer.shutdown().await;
        }
        instance
            .record_event(&context, Action::ExecDie, Some(code))
            .await;
    });
    let mut response = Response::new(crate::api::full(""));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Whether the client asked to hijack the connection (`Upgrade: tcp`), as the docker CLI
/// and the SDKs do.
fn wants_upgrade(call: &Call) -> bool {
    call.request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

type Hijacked = tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>;

/// Where the process's output goes.
enum Sink {
    Conn(tokio::io::WriteHalf<TokioIo<hyper::upgrade::Upgraded>>),
    Body(mpsc::Sender<Result<Bytes, std::io::Error>>),
    Discard,
}

impl Sink {
    /// False once the client is gone.
    async fn send(&mut self, bytes: Bytes) -> bool {
        match self {
            Sink::Conn(writer) => {
                writer.write_all(&bytes).await.is_ok() && writer.flush().await.is_ok()
            }
            Sink::Body(tx) => tx.send(Ok(bytes)).await.is_ok(),
            Sink::Discard => true,
        }
    }
}

/// What the instance shows of a chunk: its own stream's frames, or a tty's raw bytes.
fn shown(instance: &Instance, chunk: Chunk) -> Option<Bytes> {
    match chunk {
        Chunk::Tty(bytes) => (instance.stdout || instance.stderr).then_some(bytes),
        Chunk::Stdout(bytes) => instance.stdout.then(|| stdcopy::frame(Fd::Stdout, &bytes)),
        Chunk::Stderr(bytes) => instance.stderr.then(|| stdcopy::frame(Fd::Stderr, &bytes)),
    }
}

/// Relays until the process has exited and all its output is out; returns its exit code.
/// The client's input (if it may send any) goes to the process; the end of it closes the
/// process's stdin. The client is gone when its connection breaks or takes no more output.
async fn drive(
    instance: &Instance,
    mut process: Running,
    reader: Option<impl AsyncRead + Unpin + Send + 'static>,
    sink: &mut Sink,
) -> i32 {
    let input = process.input.take();
    let mut from_client = reader.map(|reader| tokio::spawn(copy_input(reader, input)));
    let mut gone = false;
    let mut output_open = true;
    let mut status = None;
    let mut kill_at: Option<tokio::time::Instant> = None;
    while output_open || status.is_none() {
        tokio::select! {
            chunk = process.output.recv(), if output_open => match chunk {
                Some(chunk) => {
                    if !gone && let Some(bytes) = shown(instance, chunk) && !sink.send(bytes).await {
                        gone = true;
                    }
                }
                None => output_open = false,
            },
            ended = joined(&mut from_client), if from_client.is_some() => {
                from_client = None;
                // The end of the client's input is only that: the docker CLI half-closes
                // the connection at once when it attaches no stdin. A broken one is gone.
                if !matches!(ended, Ok(Ok(()))) {
                    gone = true;
                }
            },
            exited = process.child.wait(), if status.is_none() => {
                status = Some(exited.map_or(255, exec_process::exit_code));
            },
            () = sleep_until(kill_at), if kill_at.is_some() => {
                let _ = process.child.start_kill();
                kill_at = None;
            },
        }
        if gone && kill_at.is_none() && status.is_none() {
            hang_up(&process);
            kill_at = Some(tokio::time::Instant::now() + HANGUP_GRACE);
        }
    }
    if let Some(task) = from_client {
        task.abort();
    }
    status.unwrap_or(255)
}

type InputTask = tokio::task::JoinHandle<Result<(), ()>>;

async fn joined(task: &mut Option<InputTask>) -> Result<Result<(), ()>, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Copies the client's input to the process until it ends; Err when the connection broke.
async fn copy_input(
    mut reader: impl AsyncRead + Unpin,
    mut input: Option<Input>,
) -> Result<(), ()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            // The end of input: dropping it closes the process's stdin.
            Ok(0) => return Ok(()),
            Ok(n) => {
                if let Some(to) = input.as_mut()
                    && to.write_all(&buf[..n]).await.is_err()
                {
                    // The process closed its stdin: what it will never read is dropped.
                    input = None;
                }
            }
            Err(_) => return Err(()),
        }
    }
}

/// SIGTERM to `berth exec`: passed on to the process (a tty's gets its terminal's hangup).
fn hang_up(process: &Running) {
    if let Some(pid) = process
        .child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

async fn hang_up_and_wait(mut process: Running) -> i32 {
    hang_up(&process);
    match tokio::time::timeout(HANGUP_GRACE, process.child.wait()).await {
        Ok(status) => status.map_or(255, exec_process::exit_code),
        Err(_) => {
            let _ = process.child.kill().await;
            137
        }
    }
}

/// `POST /exec/{id}/resize?h=ROWS&w=COLUMNS`.
pub async fn resize(call: Call) -> Response<Body> {
    let Some(id) = call.segments.get(1) else {
        return error(StatusCode::NOT_FOUND, "no exec instance named");
    };
    let Some(instance) = instance(id) else {
        return no_such_exec(id);
    };
    let query = target::query(&call.request);
    let size = |name: &str| query.get(name).and_then(|v| v.parse::<u16>().ok());
    let (Some(rows), Some(cols)) = (size("h"), size("w")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "resize needs h (rows) and w (columns), whole numbers up to 65535",
        );
    };
    let terminal = {
        let progress = instance.progress();
        if !progress.started {
            return error(
                StatusCode::CONFLICT,
                &format!("Exec instance {id} has not been started"),
            );
        }
        // One that has already ended has nothing to size: the docker CLI resizes right
        // after the start, which a short command may not outlive.
        progress.terminal.clone()
    };
    // A process without a tty has no size: nothing to do, as with dockerd.
    if let Some(terminal) = terminal
        && let Err(e) = terminal.resize(rows, cols)
    {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("resizing the tty: {e}"),
        );
    }
    Response::new(crate::api::full(""))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InspectJson {
    #[serde(rename = "ID")]
    id: String,
    running: bool,
    exit_code: Option<i32>,
    process_config: ProcessConfig,
    open_stdin: bool,
    open_stderr: bool,
    open_stdout: bool,
    can_remove: bool,
    #[serde(rename = "ContainerID")]
    container_id: String,
    detach_keys: String,
    pid: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessConfig {
    tty: bool,
    entrypoint: String,
    arguments: Vec<String>,
    privileged: bool,
    user: String,
}

/// `GET /exec/{id}/json`.
pub async fn inspect(call: Call) -> Response<Body> {
    let Some(id) = call.segments.get(1) else {
        return error(StatusCode::NOT_FOUND, "no exec instance named");
    };
    let Some(instance) = instance(id) else {
        return no_such_exec(id);
    };
    let (running, exit_code, berth_exec) = {
        let progress = instance.progress();
        (progress.running, progress.exit_code, progress.berth_exec)
    };
    let pid = berth_exec.and_then(exec_process::process_pid).unwrap_or(0);
    let (entrypoint, arguments) = match instance.cmd.split_first() {
        Some((first, rest)) => (first.clone(), rest.to_vec()),
        None => (String::new(), Vec::new()),
    };
    json(
        StatusCode::OK,
        &InspectJson {
            id: instance.id.clone(),
            running,
            exit_code,
            process_config: ProcessConfig {
                tty: instance.tty,
                entrypoint,
                arguments,
                privileged: instance.privileged,
                user: instance.user_text.clone(),
            },
            open_stdin: instance.stdin,
            open_stderr: instance.stderr,
            open_stdout: instance.stdout,
            can_remove: false,
            container_id: instance.docker_id.clone(),
            detach_keys: instance.detach_keys.clone(),
            pid,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, started: bool, exit_code: Option<i32>) -> Arc<Instance> {
        Arc::new(Instance {
            id: format!("{n:064x}"),
            container_id: "app-1".into(),
            docker_id: "app-1".into(),
            record: serde_json::from_str(include_str!(
                "../../../tests/fixtures/records/v0.1.0/container.json"
            ))
            .expect("the fixture record"),
            cmd: vec!["true".into()],
            env: Vec::new(),
            user: None,
            user_text: String::new(),
            workdir: None,
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
            privileged: false,
            detach_keys: String::new(),
            created: Instant::now() + Duration::from_millis(n as u64),
            progress: Mutex::new(Progress {
                started,
                running: started && exit_code.is_none(),
                exit_code,
                ..Progress::default()
            }),
        })
    }

    #[test]
    fn a_full_table_forgets_the_oldest_finished_then_unstarted_never_running() {
        let mut table = HashMap::new();
        for n in 0..MAX_INSTANCES {
            let instance = match n {
                0..10 => sample(n, true, Some(0)),
                10..20 => sample(n, false, None),
                _ => sample(n, true, None),
            };
            assert!(remember_in(&mut table, instance));
        }
        assert!(remember_in(&mut table, sample(1000, false, None)));
        assert_eq!(table.len(), MAX_INSTANCES);
        assert!(
            !table.contains_key(&format!("{:064x}", 0)),
            "the oldest finished goes"
        );
        assert!(table.contains_key(&format!("{:064x}", 1)));
        for n in 1001..1010 {
            assert!(remember_in(&mut table, sample(n, false, None)));
        }
        // Finished ones 0..=9 are gone, the oldest unstarted (10) goes next.
        assert!(remember_in(&mut table, sample(2000, false, None)));
        assert!(!table.contains_key(&format!("{:064x}", 9)));
        assert!(!table.contains_key(&format!("{:064x}", 10)));
        // Only running ones left: no room.
        let mut running = HashMap::new();
        for n in 0..MAX_INSTANCES {
            assert!(remember_in(&mut running, sample(n, true, None)));
        }
        assert!(!remember_in(&mut running, sample(5000, false, None)));
        assert_eq!(running.len(), MAX_INSTANCES);
    }

    #[test]
    fn env_entries_need_a_value() {
        assert_eq!(
            parse_env(&["A=1".into(), "B=".into(), "C=x=y".into()]),
            Ok(vec![
                ("A".into(), "1".into()),
                ("B".into(), String::new()),
                ("C".into(), "x=y".into())
            ])
        );
        assert!(parse_env(&["NOVALUE".into()]).is_err());
        assert!(parse_env(&["=1".into()]).is_err());
    }

    #[test]
    fn ids_are_64_hex_digits_and_differ() {
        let (a, b) = (new_id().expect("id"), new_id().expect("id"));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
