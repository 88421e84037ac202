//! The TOML format as written: one struct per table, unknown keys rejected, values that can
//! be checked alone parsed on the spot, spans kept where later checks need to point back.
//! Required keys are `Option`s so that an entry missing one still has its other keys
//! checked; `resolve` reports the missing key. These types are also the source of the JSON Schema (`berth schema`), so their doc comments
//! are what editors show.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::capability::Capability;
use super::duration::Duration;
use super::image_ref::ImageSource;
use super::mount::MountEntry;
use super::port::PortRange;
use super::signal::Signal;
use super::size::ByteSize;

/// A desired-state file: any number of images, containers, volumes and networks, keyed by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "berth desired state")]
#[expect(
    dead_code,
    reason = "only the schema reads it: the loader reads each table itself"
)]
pub(crate) struct RawFile {
    /// Images, by name; containers refer to them with `image = "NAME"`.
    #[serde(default)]
    pub image: BTreeMap<String, RawImage>,
    /// Containers, by name. The name is also the container's hostname and DNS name.
    #[serde(default)]
    pub container: BTreeMap<String, RawContainer>,
    /// Named volumes, by name. Their data is never deleted implicitly.
    #[serde(default)]
    pub volume: BTreeMap<String, RawVolume>,
    /// Bridge networks, by name.
    #[serde(default)]
    pub network: BTreeMap<String, RawNetwork>,
    /// Secrets, by name; containers list them in `secrets`.
    #[serde(default)]
    pub secret: BTreeMap<String, RawSecret>,
    /// Configuration files, by name; containers list them in `configs`.
    #[serde(default)]
    pub config: BTreeMap<String, RawConfig>,
}

/// `[secret.NAME]`: exactly one of `file` or `age`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Secret")]
pub(crate) struct RawSecret {
    /// An absolute host path to a file owned by root and not readable by group or others.
    #[schemars(with = "Option<String>")]
    pub file: Option<Spanned<String>>,
    /// An age-encrypted file (relative to this file, or absolute), decrypted with the host's
    /// identity (`--age-identity`, `BERTH_AGE_IDENTITY`, default /etc/berth/age-identity.txt).
    #[schemars(with = "Option<String>")]
    pub age: Option<Spanned<String>>,
}

/// `[config.NAME]`: exactly one of `content` or `file`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Config")]
pub(crate) struct RawConfig {
    /// The file's content, inline.
    #[schemars(with = "Option<String>")]
    pub content: Option<Spanned<String>>,
    /// A file to copy, relative to this file or absolute. Editing it replaces the containers
    /// using it.
    #[schemars(with = "Option<String>")]
    pub file: Option<Spanned<String>>,
}

/// A secret or config given to a container: its name, or a table.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(untagged)]
pub(crate) enum FileRefEntry {
    /// The secret's or config's name.
    Name(String),
    Table(RawFileRef),
}

/// `{ name = "db", target = "/run/secrets/db", uid = 0, gid = 0, mode = "0400" }`, or for a
/// secret `{ name = "tok", env = "API_TOKEN" }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "FileRef")]
pub(crate) struct RawFileRef {
    /// The secret's or config's name.
    pub name: String,
    /// Absolute path in the container (default: /run/secrets/NAME for a secret, /NAME for a
    /// config).
    pub target: Option<String>,
    /// Owner of the file (default 0).
    pub uid: Option<i64>,
    /// Group of the file (default 0).
    pub gid: Option<i64>,
    /// Permission bits, octal as a string (default "0444").
    pub mode: Option<String>,
    /// A secret only: give its value as this environment variable of the container's
    /// process instead of as a file (not with `target`, `uid`, `gid` or `mode`).
    pub env: Option<String>,
}

impl FileRefEntry {
    /// The variable a secret is given as, if it is given as one.
    pub(crate) fn env(&self) -> Option<&str> {
        match self {
            FileRefEntry::Name(_) => None,
            FileRefEntry::Table(t) => t.env.as_deref(),
        }
    }

    pub(crate) fn into_table(self) -> RawFileRef {
        match self {
            FileRefEntry::Name(name) => RawFileRef {
                name,
                target: None,
                uid: None,
                gid: None,
                mode: None,
                env: None,
            },
            FileRefEntry::Table(t) => t,
        }
    }
}

impl<'de> Deserialize<'de> for FileRefEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FileRefEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a name or a table { name = \"…\", target = \"…\", uid = …, gid = …, mode = \"0400\" }")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<FileRefEntry, E> {
                Ok(FileRefEntry::Name(s.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<FileRefEntry, A::Error> {
                RawFileRef::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(FileRefEntry::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[image.NAME]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Image")]
pub(crate) struct RawImage {
    /// Registry reference with a tag and/or digest ("docker.io/library/nginx:1.27-alpine",
    /// "ghcr.io/org/app@sha256:…"), or a local image: "oci-archive:/path/app.tar[:TAG]",
    /// "oci:/path/layout[:TAG]", "docker-archive:/path/app.tar[:REF]".
    #[schemars(with = "ImageSource", required)]
    pub reference: Option<Spanned<ImageSource>>,
    /// When to contact the registry: "missing" (default: only if no local copy of the tag),
    /// "always" (re-resolve the tag on every pass; a new digest replaces the containers),
    /// "never" (the image must already be present).
    #[serde(default)]
    pub pull: PullPolicy,
    /// Platform to select from a multi-platform image, "OS/ARCH[/VARIANT]" (default: this host's).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub platform: Option<Spanned<String>>,
    /// Allow plain HTTP and unverified TLS for this image's registry. Registries on 127.0.0.0/8
    /// and localhost may always use plain HTTP.
    #[serde(default)]
    pub insecure: bool,
}

#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    serde::Serialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
}

/// `[container.NAME]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Container")]
pub(crate) struct RawContainer {
    /// The image: the name of an `[image.NAME]`, or a reference with a registry, tag or digest
    /// ("docker.io/library/redis:7"). A bare word must name an `[image.*]`, so a typo never
    /// pulls an unknown image from Docker Hub.
    #[schemars(with = "String", required)]
    pub image: Option<Spanned<String>>,
    /// Replaces the image's ENTRYPOINT. Setting it also clears the image's CMD (as Docker does).
    #[schemars(with = "Option<Vec<String>>")]
    pub entrypoint: Option<Spanned<Vec<String>>>,
    /// Replaces the image's CMD (the arguments to the entrypoint).
    #[schemars(with = "Option<Vec<String>>")]
    pub command: Option<Spanned<Vec<String>>>,
    /// Environment variables, added to (and overriding) the image's.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Env files (Docker's format: KEY=VALUE lines, `#` comments), relative to this file or
    /// absolute; later files override earlier ones, and `env` overrides them all. Editing
    /// one replaces the container.
    #[schemars(with = "Option<EnvFiles>")]
    pub env_file: Option<Spanned<EnvFiles>>,
    /// Working directory (absolute; default: the image's, else "/").
    #[schemars(with = "Option<String>")]
    pub workdir: Option<Spanned<String>>,
    /// "USER[:GROUP]", names or numeric ids (default: the image's user, else root).
    #[schemars(with = "Option<String>")]
    pub user: Option<Spanned<String>>,
    /// Supplementary groups, names or numeric ids.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub groups: Vec<Spanned<String>>,
    /// Hostname inside the container (default: the container's name).
    #[schemars(with = "Option<String>")]
    pub hostname: Option<Spanned<String>>,
    /// Free-form metadata (keys under `io.berth.` are berth's own and refused).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub labels: BTreeMap<Spanned<String>, String>,
    /// "host" shares the host's network namespace; "none" gives only loopback;
    /// "container:NAME" joins container NAME's network namespace (a sidecar). Not together
    /// with `networks`. Without either, a container has only loopback, unless it publishes
    /// `ports`: then it joins the network `default`.
    #[schemars(with = "Option<NetworkMode>")]
    pub network: Option<Spanned<NetworkMode>>,
    /// "container:NAME": share container NAME's process namespace (each sees the other's
    /// processes). Without it, a process namespace of its own.
    #[schemars(with = "Option<super::namespace::PidMode>")]
    pub pid: Option<Spanned<super::namespace::PidMode>>,
    /// "container:NAME": share container NAME's IPC namespace (shared memory, semaphores,
    /// message queues). Without it, an IPC namespace of its own.
    #[schemars(with = "Option<super::namespace::IpcMode>")]
    pub ipc: Option<Spanned<super::namespace::IpcMode>>,
    /// Networks to join: names of `[network.NAME]`, or tables
    /// `{ name = "front", ip = "10.89.1.10", aliases = ["www"] }`. "default" is built in
    /// (subnet 10.231.0.0/24 or $BERTH_DEFAULT_SUBNET) unless `[network.default]` declares it.
    #[serde(default)]
    #[schemars(with = "Vec<AttachmentEntry>")]
    pub networks: Vec<Spanned<AttachmentEntry>>,
    /// Published ports: "[IP:]HOST:CONTAINER[/tcp|udp]", e.g. "8080:80", "127.0.0.1:5432:5432",
    /// or ranges of the same length, e.g. "8000-8010:8000-8010".
    #[serde(default)]
    #[schemars(with = "Vec<PortRange>")]
    pub ports: Vec<Spanned<PortRange>>,
    /// Mounts: "VOLUME:/path[:ro]", "/host/path:/path[:ro]", "tmpfs:/path[:size=64MiB]", or tables.
    #[serde(default)]
    #[schemars(with = "Vec<MountEntry>")]
    pub mounts: Vec<Spanned<MountEntry>>,
    /// "always" (default), "on-failure" (only after a non-zero exit) or "never".
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Delays between restarts: exponential from `initial`, capped at `max`, reset after the
    /// container has run for `reset_after`.
    #[schemars(with = "Option<RawBackoff>")]
    pub backoff: Option<Spanned<RawBackoff>>,
    /// Signal that asks the container to stop (default: the image's STOPSIGNAL, else SIGTERM).
    pub stop_signal: Option<Signal>,
    /// How long to wait after the stop signal before SIGKILL (default "10s").
    pub stop_timeout: Option<Duration>,
    /// Mount the root filesystem read-only.
    #[serde(default)]
    pub read_only: bool,
    /// The engine that runs the container: "embedded" (default) or an OCI runtime binary
    /// with runc's command line, e.g. "runc" or "/usr/sbin/runc".
    pub runtime: Option<super::engine::Engine>,
    /// Capabilities added to the default set.
    #[serde(default)]
    #[schemars(with = "Vec<Capability>")]
    pub cap_add: Vec<Spanned<Capability>>,
    /// Capabilities removed from the default set ("ALL" for every one).
    #[serde(default)]
    #[schemars(with = "Vec<Capability>")]
    pub cap_drop: Vec<Spanned<Capability>>,
    /// Memory limit, e.g. "256MiB" (at least 6MiB). Exceeding it OOM-kills the container.
    #[schemars(with = "Option<ByteSize>")]
    pub memory: Option<Spanned<ByteSize>>,
    /// CPU limit in cores, e.g. 0.5 or 2 (resolution 0.001).
    #[schemars(with = "Option<f64>")]
    pub cpus: Option<Spanned<f64>>,
    /// Maximum number of processes and threads (2048 when not set).
    #[schemars(with = "Option<i64>")]
    pub pids: Option<Spanned<i64>>,
    /// The most the container's writable layer (what it writes to its root filesystem) may
    /// hold, e.g. "1GiB" (at least 16MiB): a filesystem of that size of its own, so a
    /// container cannot fill the host's disk. Volumes, binds and tmpfs are not counted.
    /// Without it the writable layer is bounded only by the state root's filesystem.
    #[schemars(with = "Option<ByteSize>")]
    pub disk: Option<Spanned<ByteSize>>,
    /// Health check; exactly one of `exec`, `tcp` or `http`.
    #[schemars(with = "Option<RawHealth>")]
    pub health: Option<Spanned<RawHealth>>,
    /// How a changed container is replaced: "stop-first" (default) or "start-first" (the new
    /// one starts beside the old and takes over the published ports once healthy; needs
    /// `health`, `ports` and `networks`).
    #[schemars(with = "Option<UpdateStrategy>")]
    pub update: Option<Spanned<UpdateStrategy>>,
    /// start-first: how long the new container has to become healthy (default "2m").
    #[schemars(with = "Option<Duration>")]
    pub update_timeout: Option<Spanned<Duration>>,
    /// start-first: how long the old container keeps running after the switch so that its
    /// established connections finish (default "5s").
    pub drain: Option<Duration>,
    /// Containers that must be running ("started"), healthy ("healthy") or have exited 0
    /// ("completed", a one-shot job) before this one starts, e.g. `{ db = "healthy" }`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Condition>")]
    pub depends_on: BTreeMap<Spanned<String>, Condition>,
    /// Log file rotation.
    pub log: Option<RawLog>,
    /// Host device nodes made visible (and allowed) in the container: "/dev/HOST[:/dev/CONTAINER[:PERMS]]",
    /// e.g. "/dev/fuse" or "/dev/net/tun:/dev/net/tun:rwm".
    #[serde(default)]
    #[schemars(with = "Vec<super::device::DeviceMapping>")]
    pub devices: Vec<Spanned<super::device::DeviceMapping>>,
    /// Extra device cgroup rules, e.g. "c 10:200 rwm" (nodes still have to be made: see `devices`).
    #[serde(default)]
    #[schemars(with = "Vec<super::device::DeviceRule>")]
    pub device_cgroup_rules: Vec<Spanned<super::device::DeviceRule>>,
    /// Kernel parameters of the container's own namespaces, e.g. `{ "net.core.somaxconn" = "1024" }`:
    /// net.* (only with a network namespace of its own), kernel.shm*, kernel.msg*, kernel.sem,
    /// fs.mqueue.*, kernel.domainname. Others would change the host and are refused.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, super::runtime_keys::RawSysctlValue>")]
    pub sysctls: BTreeMap<Spanned<String>, Spanned<super::runtime_keys::RawSysctlValue>>,
    /// Resource limits by Compose's names, e.g. `{ nofile = { soft = 1024, hard = 2048 }, nproc = 512 }`;
    /// -1 is unlimited. Never above the host's hard limits.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, super::runtime_keys::RawUlimit>")]
    pub ulimits: BTreeMap<Spanned<String>, Spanned<super::runtime_keys::RawUlimit>>,
    /// Run a minimal init (tini, from the host's `tini` package) as pid 1: it reaps zombies
    /// and forwards signals to the command.
    #[serde(default)]
    pub init: bool,
    /// Size of /dev/shm, e.g. "256MiB" (default "64MiB").
    #[schemars(with = "Option<ByteSize>")]
    pub shm_size: Option<Spanned<ByteSize>>,
    /// The syscall filter: berth's default profile when not set, "unconfined" for none, or
    /// the path of a profile in Docker's JSON format (relative to this file).
    #[schemars(with = "Option<String>")]
    pub seccomp: Option<Spanned<String>>,
    /// Give the container everything, as Docker's --privileged: every capability, every host
    /// device, no seccomp filter, writable /sys, /proc and cgroupfs. Root inside is then root
    /// on the host; `plan` and `status` say so.
    #[serde(default)]
    pub privileged: bool,
    /// Secrets given as read-only files: names of `[secret.NAME]`, or tables
    /// `{ name, target, uid, gid, mode }` (default target /run/secrets/NAME, mode "0444");
    /// or as an environment variable of the process: `{ name, env = "VAR" }`.
    #[serde(default)]
    #[schemars(with = "Vec<FileRefEntry>")]
    pub secrets: Vec<Spanned<FileRefEntry>>,
    /// Configuration files given read-only: names of `[config.NAME]`, or tables
    /// `{ name, target, uid, gid, mode }` (default target /NAME, mode "0444").
    #[serde(default)]
    #[schemars(with = "Vec<FileRefEntry>")]
    pub configs: Vec<Spanned<FileRefEntry>>,
    /// Name servers for the container's /etc/resolv.conf (IPv4 or IPv6 addresses, at most
    /// 3), instead of berth's resolver on its network's gateway; peers' names still resolve
    /// through /etc/hosts.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub dns: Vec<Spanned<String>>,
    /// Search domains for the container's /etc/resolv.conf, e.g. ["example.com"].
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub dns_search: Vec<Spanned<String>>,
    /// Resolver options for the container's /etc/resolv.conf, e.g. ["ndots:2", "edns0"].
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub dns_options: Vec<Spanned<String>>,
    /// Lines added to the container's /etc/hosts: ["db.local:10.0.0.5"] or
    /// { "db.local" = "10.0.0.5" }.
    #[schemars(with = "Option<ExtraHostsSchema>")]
    pub extra_hosts: Option<Spanned<RawExtraHosts>>,
}

/// `extra_hosts` as written, each value with its span.
#[derive(Debug)]
pub(crate) enum RawExtraHosts {
    /// "HOST:IP" entries.
    List(Vec<Spanned<String>>),
    /// HOST = "IP".
    Map(Vec<(Spanned<String>, Spanned<String>)>),
}

/// The two forms of `extra_hosts`, for the schema.
#[derive(JsonSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "only the schema reads it")]
pub(crate) enum ExtraHostsSchema {
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

impl<'de> Deserialize<'de> for RawExtraHosts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawExtraHosts;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"a list of "HOST:IP" or a table of HOST = "IP""#)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element()? {
                    out.push(e);
                }
                Ok(RawExtraHosts::List(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = map.next_entry()? {
                    out.push(e);
                }
                Ok(RawExtraHosts::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `env_file`: one path or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "env_file: expected a path or a list of paths")]
pub(crate) enum EnvFiles {
    One(String),
    Many(Vec<String>),
}

impl EnvFiles {
    pub(crate) fn paths(&self) -> &[String] {
        match self {
            EnvFiles::One(p) => std::slice::from_ref(p),
            EnvFiles::Many(v) => v,
        }
    }
}

pub(crate) use super::namespace::NetworkMode;

#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    serde::Serialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    serde::Serialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateStrategy {
    #[default]
    StopFirst,
    StartFirst,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    serde::Serialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// The dependency's process is running.
    Started,
    /// The dependency's health check passes.
    Healthy,
    /// The dependency ran to completion and exited 0 (a one-shot job: `restart = "never"`
    /// or "on-failure").
    Completed,
}

/// Restart delays.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a table { initial = \"…\", max = \"…\", reset_after = \"…\" }"
)]
#[schemars(rename = "Backoff")]
pub(crate) struct RawBackoff {
    /// First delay (default "1s").
    pub initial: Option<Duration>,
    /// Largest delay (default "5m").
    pub max: Option<Duration>,
    /// Running this long resets the delay to `initial` (default "10m").
    pub reset_after: Option<Duration>,
}

/// A health check.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with one of { exec = […] }, { tcp = … }, { http = \"…\" }"
)]
#[schemars(rename = "Health")]
pub(crate) struct RawHealth {
    /// Run a command inside the container; exit 0 means healthy.
    pub exec: Option<Vec<String>>,
    /// Open a TCP connection to this port on the container's address.
    #[schemars(with = "Option<u16>")]
    pub tcp: Option<Spanned<i64>>,
    /// GET this URL from inside the container's network namespace (its host: an IPv4
    /// address or localhost); 2xx/3xx means healthy, e.g. "http://127.0.0.1:80/healthz".
    #[schemars(with = "Option<String>")]
    pub http: Option<Spanned<String>>,
    /// Time between checks (default "10s").
    pub interval: Option<Duration>,
    /// A check taking longer fails (default "5s").
    pub timeout: Option<Duration>,
    /// Consecutive failures that make the container unhealthy (default 3).
    #[schemars(with = "Option<u32>")]
    pub retries: Option<Spanned<i64>>,
    /// Failures during this time after start do not count, and checks run every second
    /// meanwhile (default "0s").
    pub start_period: Option<Duration>,
}

/// Log rotation; the monitor writes stdout and stderr to size-rotated files.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a table { max_size = \"…\", max_files = … }"
)]
#[schemars(rename = "Log")]
pub(crate) struct RawLog {
    /// Rotate when the current file reaches this size (default "10MiB", at least "4KiB").
    #[schemars(with = "Option<ByteSize>")]
    pub max_size: Option<Spanned<ByteSize>>,
    /// Files kept, the current one included (default 3).
    #[schemars(with = "Option<u32>")]
    pub max_files: Option<Spanned<i64>>,
}

/// A network attachment as written: a network name or a table.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(untagged)]
pub(crate) enum AttachmentEntry {
    /// The network's name.
    Name(String),
    Table(RawAttachment),
}

/// `{ name = "front", ip = "10.89.1.10", aliases = ["www"] }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Attachment")]
pub(crate) struct RawAttachment {
    /// The network's name.
    pub name: String,
    /// A static IPv4 address inside the network's subnet (default: allocated).
    pub ip: Option<String>,
    /// Extra DNS names for this container on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
}

impl AttachmentEntry {
    pub(crate) fn into_table(self) -> RawAttachment {
        match self {
            AttachmentEntry::Name(name) => RawAttachment {
                name,
                ip: None,
                aliases: Vec::new(),
            },
            AttachmentEntry::Table(t) => t,
        }
    }
}

impl<'de> Deserialize<'de> for AttachmentEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AttachmentEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a network name or a table { name = \"…\", ip = \"…\", aliases = […] }")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<AttachmentEntry, E> {
                Ok(AttachmentEntry::Name(s.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<AttachmentEntry, A::Error> {
                RawAttachment::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(AttachmentEntry::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[volume.NAME]`
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Volume")]
pub(crate) struct RawVolume {
    /// Owner of the volume's root directory (default: from the image's content at the first
    /// mount point, else root).
    #[schemars(with = "Option<u32>")]
    pub uid: Option<Spanned<i64>>,
    /// Group of the volume's root directory.
    #[schemars(with = "Option<u32>")]
    pub gid: Option<Spanned<i64>>,
    /// Permission bits of the volume's root directory, octal as a string, e.g. "0750".
    #[schemars(with = "Option<String>")]
    pub mode: Option<Spanned<String>>,
    /// Free-form metadata.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[network.NAME]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Network")]
pub(crate) struct RawNetwork {
    /// IPv4 subnet in CIDR notation, e.g. "10.89.1.0/24" (prefix /8 to /29). Subnets of
    /// different networks must not overlap.
    #[schemars(with = "String", required)]
    pub subnet: Option<Spanned<String>>,
    /// The bridge's address, which containers use as their gateway (default: the subnet's
    /// first address).
    #[schemars(with = "Option<String>")]
    pub gateway: Option<Spanned<String>>,
    /// No route out: containers reach each other but nothing beyond the bridge.
    #[serde(default)]
    pub internal: bool,
    /// Free-form metadata.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}
