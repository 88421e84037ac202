//! The runtime's records, one JSON file each, written atomically. They are hints and
//! ownership claims: whoever reads them confirms pids against the kernel (`ProcessId`) and
//! the boot id against this boot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::format::{self, FormatError, Record};
use crate::fsutil::{self, FsError};
use crate::sys::ProcessId;

/// What was asked for: written before the monitor starts (the intent), never changed after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// The spec hash of the `[container.*]` entry it was created from.
    pub spec_hash: String,
    /// The image source and the manifest digest it resolved to when the container was made.
    pub image: String,
    pub image_digest: String,
    /// RFC 3339.
    pub created_at: String,
    pub engine: EngineRecord,
    /// Overlay lower directories, highest layer first.
    pub layers: Vec<PathBuf>,
    /// The user as written (entry, else image), resolved in the container's own /etc files.
    pub user: Option<String>,
    pub groups: Vec<String>,
    /// Volumes to seed with the image's content at their mount target on first use.
    pub seed: Vec<Seed>,
    /// A network namespace of its own (its loopback must be brought up).
    pub own_network: bool,
    /// Written to /etc/hostname and /etc/hosts at every start.
    pub hostname: String,
    /// sha256 of the compiled seccomp program in the bundle (embedded engine): the engine
    /// refuses to start or exec without exactly that program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_sha256: Option<String>,
    pub stop_signal: i32,
    pub stop_timeout_ms: u64,
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub cgroup_path: String,
    /// Made by `berth run`, not by the reconciler: never adopted, replaced or pruned by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
    /// Bridge networks it joins, in the order of its interfaces (eth0, eth1, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<crate::state::network::Attachment>,
    /// Published ports, forwarded to its address on its first non-internal network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::spec::port::PortMapping>,
    /// Its health check, run by the reconciler while it runs (none for `berth run`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::spec::model::HealthCheck>,
    /// Made for a start-first update: it may start beside the running container of its name
    /// that publishes the same ports, and takes them over only when told to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_first: bool,
    /// The size in bytes of the writable layer's own filesystem (`disk`): `disk.img`,
    /// loop-mounted by the monitor. None: the writable layer is `upper/` on the state root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<u64>,
    /// `dns`, `dns_search`, `dns_options` and `extra_hosts`: written into its resolv.conf
    /// and hosts file at every start (and kept in the hosts file by the network's rewrites).
    #[serde(
        default,
        skip_serializing_if = "crate::spec::dns::DnsSettings::is_empty"
    )]
    pub dns: crate::spec::dns::DnsSettings,
    /// The containers (by entry name) whose namespaces it joins at every start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub joins: BTreeMap<crate::spec::model::NamespaceKind, String>,
}

impl ContainerRecord {
    /// The diff ids of the layers the container's root filesystem is made of.
    pub(crate) fn layer_diff_ids(&self) -> impl Iterator<Item = crate::digest::Digest> + '_ {
        self.layers.iter().filter_map(|dir| {
            format!("sha256:{}", dir.file_name()?.to_str()?)
                .parse()
                .ok()
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EngineRecord {
    Embedded,
    /// An external OCI runtime, resolved to an absolute path at creation.
    Oci {
        binary: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    pub volume: String,
    /// The volume directory (the mount source).
    pub data: PathBuf,
    /// Absolute path inside the container.
    pub target: String,
}

/// Written by the monitor once the container's process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorRecord {
    pub monitor: ProcessId,
    pub init: ProcessId,
    /// Unix time in milliseconds.
    pub started_at_ms: u64,
    #[serde(with = "boot_id")]
    pub boot_id: BootId,
}

/// The boot the record was written in, as 16 bytes to keep the record `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootId(pub [u8; 16]);

impl BootId {
    /// This boot's id, read once per process (it cannot change while the process runs).
    pub(crate) fn current() -> std::io::Result<BootId> {
        static CURRENT: std::sync::OnceLock<BootId> = std::sync::OnceLock::new();
        if let Some(id) = CURRENT.get() {
            return Ok(*id);
        }
        let text = crate::sys::boot_id()?;
        let id = BootId::parse(&text).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected boot id {text:?}"),
            )
        })?;
        Ok(*CURRENT.get_or_init(|| id))
    }

    fn parse(text: &str) -> Option<BootId> {
        let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
        if hex.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(BootId(out))
    }
}

mod boot_id {
    use super::BootId;
    pub(crate) fn serialize<S: serde::Serializer>(id: &BootId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::sha256::hex(&id.0))
    }
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BootId, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        BootId::parse(&text).ok_or_else(|| serde::de::Error::custom("invalid boot id"))
    }
}

/// How the container ended, written by its monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Exit status if it exited, else None.
    pub code: Option<i32>,
    /// Terminating signal if it was killed.
    pub signal: Option<i32>,
    /// Killed by the kernel's OOM killer (the cgroup counted an OOM kill).
    pub oom_killed: bool,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    /// Set when the container never ran (the engine failed to create or start it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why berth stopped it, when it was not asked to (e.g. "unhealthy").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_because: Option<String>,
}

impl ExitRecord {
    /// The record of a container that never ran: the engine or its monitor failed first.
    pub(crate) fn never_ran(error: impl Into<String>) -> ExitRecord {
        let now = now_ms();
        ExitRecord {
            code: None,
            signal: None,
            oom_killed: false,
            started_at_ms: now,
            finished_at_ms: now,
            error: Some(error.into()),
            stopped_because: None,
        }
    }

    /// Shell convention: the code, or 128 + signal.
    pub fn status(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => code,
            (None, Some(sig)) => 128 + sig,
            (None, None) => 255,
        }
    }

    pub fn describe(&self) -> String {
        if let Some(e) = &self.error {
            return format!("failed to start: {e}");
        }
        if let Some(why) = &self.stopped_because {
            let mut plain = self.clone();
            plain.stopped_because = None;
            return format!("stopped by berth, {why} ({})", plain.describe());
        }
        match (self.code, self.signal, self.oom_killed) {
            (None, Some(9), true) => "killed by the OOM killer (memory limit reached)".to_string(),
            (Some(code), _, true) => {
                format!("exited with code {code} (the OOM killer killed one of its processes)")
            }
            (Some(code), _, _) => format!("exited with code {code}"),
            (None, Some(sig), _) => format!("killed by signal {sig}"),
            (None, None, _) => "ended".to_string(),
        }
    }
}

/// The runs of a container before its current one, kept across restarts in place
/// (`Runtime::restart`). The reconciler derives the next backoff delay from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRecord {
    /// Restarts so far.
    pub count: u32,
    /// Consecutive restarts after short runs: the exponent of the next backoff delay.
    pub streak: u32,
    /// How the previous run ended.
    pub last_exit: Option<ExitRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("record {} is damaged: {message}", path.display())]
    Damaged { path: PathBuf, message: String },
    /// Whole, but of a format this berth does not know (a newer berth's, or a `format` that
    /// is not a number): neither adopted nor taken for damage, which would have it removed.
    #[error("record {}: {source}", path.display())]
    UnknownFormat { path: PathBuf, source: FormatError },
}

impl RecordError {
    fn of(path: &Path, error: FormatError) -> RecordError {
        match error {
            FormatError::Newer { .. } | FormatError::BadFormat { .. } => {
                RecordError::UnknownFormat {
                    path: path.to_path_buf(),
                    source: error,
                }
            }
            other => RecordError::Damaged {
                path: path.to_path_buf(),
                message: other.to_string(),
            },
        }
    }
}

/// Write a record that only describes this boot (monitor and exit records): readers see it
/// whole or not at all, but it is not flushed to disk, because after a power loss the boot id
/// has changed and the record means nothing anyway.
pub fn save_volatile<T: Record>(path: &Path, value: &T) -> Result<(), RecordError> {
    Ok(fsutil::write_replace(path, &encode(path, value)?)?)
}

/// The exit record of a run that ended by itself. A clean exit (status 0) is flushed to
/// disk: it is a one-shot job's result, which its dependents wait for after a power loss
/// too (without it the job would look lost, hence failed). Other exits stay volatile.
pub fn save_exit(path: &Path, exit: &ExitRecord) -> Result<(), RecordError> {
    if exit.code == Some(0) && exit.error.is_none() {
        Ok(fsutil::write_atomic(path, &encode(path, exit)?)?)
    } else {
        save_volatile(path, exit)
    }
}

/// The record's bytes in the current format.
pub fn encode<T: Record>(path: &Path, value: &T) -> Result<Vec<u8>, RecordError> {
    format::encode(value).map_err(|e| RecordError::of(path, e))
}

/// A record read from `path`, of any format this berth knows.
pub fn decode<T: Record>(path: &Path, bytes: &[u8]) -> Result<T, RecordError> {
    format::decode(bytes).map_err(|e| RecordError::of(path, e))
}

/// `Ok(None)` if the file does not exist.
pub fn load<T: Record>(path: &Path) -> Result<Option<T>, RecordError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fsutil::io_err("reading", path)(e).into()),
    };
    decode(path, &bytes).map(Some)
}

impl Record for ContainerRecord {
    const KIND: &'static str = "container record";
    const FORMAT: u64 = 1;
}

impl Record for MonitorRecord {
    const KIND: &'static str = "monitor record";
    const FORMAT: u64 = 1;
}

impl Record for ExitRecord {
    const KIND: &'static str = "exit record";
    const FORMAT: u64 = 1;
}

impl Record for RestartRecord {
    const KIND: &'static str = "restart record";
    const FORMAT: u64 = 1;
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(crate::units::millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_id_round_trips() {
        let id = BootId::parse("0b0e4d5e-34f2-4c5b-9a49-3d2d5f0f1e2a").expect("parse");
        let rec = MonitorRecord {
            monitor: ProcessId {
                pid: 1,
                start_time: 2,
            },
            init: ProcessId {
                pid: 3,
                start_time: 4,
            },
            started_at_ms: 5,
            boot_id: id,
        };
        let json = serde_json::to_string(&rec).expect("json");
        assert!(json.contains("0b0e4d5e34f24c5b9a493d2d5f0f1e2a"), "{json}");
        let back: MonitorRecord = serde_json::from_str(&json).expect("back");
        assert_eq!(back, rec);
        assert!(BootId::parse("xyz").is_none());
        assert!(BootId::current().is_ok());
    }

    #[test]
    fn exit_status_follows_the_shell_convention() {
        let mut r = ExitRecord {
            code: Some(3),
            signal: None,
            oom_killed: false,
            started_at_ms: 0,
            finished_at_ms: 0,
            error: None,
            stopped_because: None,
        };
        assert_eq!(r.status(), 3);
        r.code = None;
        r.signal = Some(9);
        assert_eq!(r.status(), 137);
        r.oom_killed = true;
        assert!(r.describe().contains("OOM"));
    }
}
