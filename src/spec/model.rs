//! The desired state after loading: validated, references resolved, defaults filled in.
//! This is what the rest of berth consumes; nothing here knows about TOML or spans.
//!
//! Defaults are explicit so that writing a default value and omitting it mean the same
//! effective spec (and the same hash).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::Serialize;

use super::capability::Capability;
use super::duration::Duration;
use super::image_ref::ImageSource;
use super::mount::Mount;
use super::name::Name;
use super::port::PortMapping;
use super::signal::Signal;
use super::size::ByteSize;

pub use super::raw::{Condition, PullPolicy, RestartPolicy, UpdateStrategy};

/// Where a resource was declared; for messages only, never part of its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Desired {
    pub images: BTreeMap<Name, Image>,
    pub containers: BTreeMap<Name, Container>,
    pub volumes: BTreeMap<Name, Volume>,
    pub networks: BTreeMap<Name, Network>,
    /// Secret values, read at load: never serialized, never hashed bare.
    #[serde(skip)]
    pub secrets: BTreeMap<Name, super::secret::Secret>,
    /// Config contents, read at load.
    #[serde(skip)]
    pub configs: BTreeMap<Name, super::secret::ConfigContent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    #[serde(skip)]
    pub origin: Origin,
    pub source: ImageSource,
    pub pull: PullPolicy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    #[serde(skip)]
    pub origin: Origin,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    #[serde(skip)]
    pub origin: Origin,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    #[serde(skip)]
    pub origin: Origin,
    /// Resolved through `[image.*]` when the entry named one.
    pub image: ImageSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub groups: Vec<String>,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub network: ContainerNetwork,
    /// The container whose process namespace it joins (`pid = "container:NAME"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<Name>,
    /// The container whose IPC namespace it joins (`ipc = "container:NAME"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<Name>,
    /// Sorted; no two collide.
    pub ports: Vec<PortMapping>,
    /// Sorted by target, so a parent directory is mounted before what lies inside it.
    pub mounts: Vec<Mount>,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    /// None: the image's STOPSIGNAL, else SIGTERM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<Signal>,
    pub stop_timeout: Duration,
    pub read_only: bool,
    pub runtime: super::engine::Engine,
    pub cap_add: BTreeSet<Capability>,
    pub cap_drop: BTreeSet<Capability>,
    pub resources: Resources,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
    pub update: UpdatePolicy,
    pub depends_on: BTreeMap<Name, Condition>,
    pub log: LogPolicy,
    #[serde(skip_serializing_if = "super::dns::DnsSettings::is_empty")]
    pub dns: super::dns::DnsSettings,
    /// devices, sysctls, ulimits, init, shm_size: each left out of the hash when unset.
    #[serde(flatten)]
    pub kernel: super::runtime_keys::RuntimeKeys,
    /// Files read for this entry (its `env_file`s, read-only binds inside the desired
    /// directory), by absolute path, with the digest of their content: part of the hash, so
    /// editing one replaces the container. Left out when empty: entries using none keep
    /// their hash.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<PathBuf, String>,
    /// Secrets and configs given as read-only files, sorted by target. Their content is in
    /// `inputs`: configs by their sha256, secrets by a digest keyed per state root.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileMount>,
    /// Secrets given as environment variables of the process, sorted by variable. Their
    /// values never enter the model or the runtime spec on the state root (see
    /// `runtime::secret_env`); their digests are in `inputs` as for `files`. Left out when
    /// empty: entries using none keep their hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<SecretEnv>,
}

/// A secret given to a container as the environment variable `env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretEnv {
    pub name: Name,
    /// A portable name: `[A-Za-z_][A-Za-z0-9_]*`.
    pub env: String,
}

impl SecretEnv {
    /// The key of its value's digest in the container's `inputs` (shared with a file of the
    /// same secret: one value, one digest).
    pub fn input_key(&self) -> PathBuf {
        PathBuf::from(format!("secret:{}", self.name))
    }
}

/// A secret or config given to a container as a read-only file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileMount {
    pub kind: FileKind,
    pub name: Name,
    /// Absolute path in the container.
    pub target: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Secret,
    Config,
}

impl FileMount {
    /// The key of its content's digest in the container's `inputs`.
    pub fn input_key(&self) -> PathBuf {
        match self.kind {
            FileKind::Secret => PathBuf::from(format!("secret:{}", self.name)),
            FileKind::Config => PathBuf::from(format!("config:{}", self.name)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerNetwork {
    /// Only loopback.
    None,
    /// The host's network namespace.
    Host,
    /// Sorted by network name.
    Bridge(Vec<Attachment>),
    /// The network namespace of another container of the desired state, joined at each
    /// start (its addresses, ports, loopback and name files).
    Container(Name),
}

impl ContainerNetwork {
    /// Whether the container gets a network namespace made for it (and brings its loopback up).
    pub fn is_own(&self) -> bool {
        matches!(self, ContainerNetwork::None | ContainerNetwork::Bridge(_))
    }
}

/// `{"mode": "none"}`, `{"mode": "bridge", "attachments": [...]}`, `{"mode": "container",
/// "container": NAME}`: the first three exactly as 0.1.0 hashed them.
impl Serialize for ContainerNetwork {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mode = match self {
            ContainerNetwork::None => "none",
            ContainerNetwork::Host => "host",
            ContainerNetwork::Bridge(_) => "bridge",
            ContainerNetwork::Container(_) => "container",
        };
        let mut st = s.serialize_struct("ContainerNetwork", 2)?;
        st.serialize_field("mode", mode)?;
        match self {
            ContainerNetwork::Bridge(a) => st.serialize_field("attachments", a)?,
            ContainerNetwork::Container(owner) => st.serialize_field("container", owner)?,
            ContainerNetwork::None | ContainerNetwork::Host => {}
        }
        st.end()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub network: Name,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// Sorted, without duplicates.
    pub aliases: Vec<Name>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Thousandths of a CPU (0.5 cpus = 500), so the spec stays exact and hashable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub millicpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u32>,
    /// The size of the writable layer's own filesystem. Left out of the hash when unset, so
    /// containers made before the key existed keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Exec(Vec<String>),
    Tcp(u16),
    Http(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UpdatePolicy {
    pub strategy: UpdateStrategy,
    /// start-first: deadline for the new container to become healthy.
    pub timeout: Duration,
    /// start-first: time the old container keeps running after the switch.
    pub drain: Duration,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        UpdatePolicy {
            strategy: UpdateStrategy::StopFirst,
            timeout: Duration::from_secs(120),
            drain: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogPolicy {
    pub max_size: ByteSize,
    pub max_files: u32,
}

impl Default for LogPolicy {
    fn default() -> Self {
        LogPolicy {
            max_size: ByteSize(10 << 20),
            max_files: 3,
        }
    }
}

impl Desired {
    /// Every image source the state names: `[image.*]` entries and containers' images.
    pub(crate) fn image_sources(&self) -> BTreeSet<String> {
        self.images
            .values()
            .map(|i| i.source.to_string())
            .chain(self.containers.values().map(|c| c.image.to_string()))
            .collect()
    }
}

impl HealthCheck {
    pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    pub(crate) const DEFAULT_RETRIES: u32 = 3;
}

impl Container {
    pub(crate) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

    /// The namespaces it joins from other containers: (kind as in /proc/PID/ns, owner).
    pub fn joins(&self) -> Vec<(NamespaceKind, &Name)> {
        let mut joins = Vec::new();
        if let ContainerNetwork::Container(owner) = &self.network {
            joins.push((NamespaceKind::Net, owner));
        }
        joins.extend(self.pid.iter().map(|o| (NamespaceKind::Pid, o)));
        joins.extend(self.ipc.iter().map(|o| (NamespaceKind::Ipc, o)));
        joins
    }
}

/// A namespace one container can join from another.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    Net,
    Pid,
    Ipc,
}

impl NamespaceKind {
    /// Its name in /proc/PID/ns and in the key (`network` is `net` there).
    pub fn proc_name(self) -> &'static str {
        match self {
            NamespaceKind::Net => "net",
            NamespaceKind::Pid => "pid",
            NamespaceKind::Ipc => "ipc",
        }
    }

    /// The key that asks for it.
    pub fn key(self) -> &'static str {
        match self {
            NamespaceKind::Net => "network",
            NamespaceKind::Pid => "pid",
            NamespaceKind::Ipc => "ipc",
        }
    }
}
