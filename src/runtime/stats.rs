//! Resource usage of a container, read from its cgroup, for `berth stats`.
//!
//! The counters come from libcgroups' `stats()`, which speaks both cgroup v1 (legacy and hybrid
//! hosts) and v2; what it lacks (the OOM kill count, the host's memory size) is read by hand, and
//! so is a v2 cgroup when libcgroups' all-or-nothing reader fails on a file berth does not need.
//! Numbers follow `docker stats` / `podman stats`: CPU 100% = one CPU, memory usage without the
//! inactive page cache the kernel can drop at once, and a limit of "none" shown as the host's
//! memory.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use libcgroups::common::{
    AnyCgroupManager, AnyManagerError, CgroupConfig, CgroupManager, CgroupSetup,
    CreateCgroupSetupError, DEFAULT_CGROUP_ROOT, GetCgroupSetupError, create_cgroup_manager,
    get_cgroup_setup,
};
use libcgroups::stats::{BlkioDeviceStat, MemoryStats, Stats};
use libcgroups::v1::ControllerType;
use libcgroups::v1::util::{V1MountPointError, get_subsystem_mount_point};
use serde::Serialize;

use crate::units::human_size;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("cgroup path `{path}` must be absolute and without `..`, like /berth/<container id>")]
    BadPath { path: PathBuf },
    #[error("cannot tell which cgroup version this host runs (is /sys/fs/cgroup mounted?)")]
    Setup {
        #[source]
        source: GetCgroupSetupError,
    },
    #[error("cannot find where the cgroup v1 `{controller}` controller is mounted")]
    MountPoint {
        controller: &'static str,
        #[source]
        source: V1MountPointError,
    },
    #[error("cgroup {path} does not exist: the container is not running")]
    NotFound { path: PathBuf },
    #[error("cannot open cgroup {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: CreateCgroupSetupError,
    },
    #[error("cannot read the resource usage of cgroup {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: AnyManagerError,
    },
    #[error("cannot read {file}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} has no `{field}` line: this kernel is too old to report it")]
    MissingField { file: PathBuf, field: &'static str },
}

/// One reading of a container's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: Instant,
    /// Total CPU time of every process in the cgroup, ever.
    pub cpu_usage_ns: u64,
    /// Bytes in use, without inactive file cache (what `docker stats` shows).
    pub memory_usage: u64,
    /// None: no limit on the cgroup itself.
    pub memory_limit: Option<u64>,
    /// Highest usage seen, cache included; None where the kernel does not track it (v2 < 5.19).
    pub memory_peak: Option<u64>,
    pub pids: u64,
    pub pids_limit: Option<u64>,
    /// Bytes read from and written to block devices.
    pub io_read: u64,
    pub io_write: u64,
}

/// Where a cgroup lives on this host, and in which version.
#[derive(Debug, Clone)]
enum Layout {
    /// The directory of the cgroup in the v1 memory hierarchy (legacy or hybrid hosts).
    V1 { memory_dir: PathBuf },
    /// The cgroup's directory in the unified hierarchy.
    V2 { dir: PathBuf },
}

impl Layout {
    fn detect(cgroup_path: &Path) -> Result<Layout, StatsError> {
        let relative = relative_cgroup_path(cgroup_path)?;
        match get_cgroup_setup().map_err(|source| StatsError::Setup { source })? {
            CgroupSetup::Legacy | CgroupSetup::Hybrid => {
                let mount =
                    get_subsystem_mount_point(&ControllerType::Memory).map_err(|source| {
                        StatsError::MountPoint {
                            controller: "memory",
                            source,
                        }
                    })?;
                Ok(Layout::V1 {
                    memory_dir: mount.join(relative),
                })
            }
            CgroupSetup::Unified => Ok(Layout::V2 {
                dir: Path::new(DEFAULT_CGROUP_ROOT).join(relative),
            }),
        }
    }

    /// A directory that exists exactly as long as the cgroup does.
    fn dir(&self) -> &Path {
        match self {
            Layout::V1 { memory_dir } => memory_dir,
            Layout::V2 { dir } => dir,
        }
    }

    fn version(&self) -> Version {
        match self {
            Layout::V1 { .. } => Version::V1,
            Layout::V2 { .. } => Version::V2,
        }
    }

    fn exists(&self) -> bool {
        self.dir().is_dir()
    }
}

/// The OCI `cgroupsPath` is absolute from the hierarchy's root; anything else would let a
/// caller read outside it.
fn relative_cgroup_path(cgroup_path: &Path) -> Result<PathBuf, StatsError> {
    let mut components = cgroup_path.components();
    let absolute = components.next() == Some(Component::RootDir);
    let relative: PathBuf = components.clone().collect();
    let clean = components.all(|c| matches!(c, Component::Normal(_)));
    if absolute && clean && !relative.as_os_str().is_empty() {
        Ok(relative)
    } else {
        Err(StatsError::BadPath {
            path: cgroup_path.into(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// A container's cgroup opened once, to be sampled again and again (`berth stats` live):
/// opening costs a scan of /proc/self/mountinfo per v1 controller.
pub struct Probe {
    path: PathBuf,
    layout: Layout,
    manager: AnyCgroupManager,
}

impl Probe {
    pub fn open(cgroup_path: &Path) -> Result<Probe, StatsError> {
        let layout = Layout::detect(cgroup_path)?;
        if !layout.exists() {
            return Err(StatsError::NotFound {
                path: cgroup_path.into(),
            });
        }
        let config = CgroupConfig {
            cgroup_path: cgroup_path.into(),
            systemd_cgroup: false,
            container_name: container_name(cgroup_path),
        };
        // libcgroups logs at info level which version it picked and warns about every v1
        // controller the host lacks (hugetlb, net_cls, … on a hybrid host): noise on every
        // `berth stats`, and a missing controller only means a missing number here.
        let manager =
            tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
                create_cgroup_manager(config)
            })
            .map_err(|source| StatsError::Open {
                path: cgroup_path.into(),
                source,
            })?;
        Ok(Probe {
            path: cgroup_path.into(),
            layout,
            manager,
        })
    }

    pub fn sample(&self) -> Result<Sample, StatsError> {
        match self.manager.stats() {
            Ok(stats) => Ok(Sample::from_stats(
                &stats,
                self.layout.version(),
                Instant::now(),
            )),
            Err(source) => match &self.layout {
                // libcgroups' v2 reader fails as a whole when any file it wants is missing:
                // pressure files on kernels booted without PSI, swap files without swap
                // accounting, cpu.stat's throttling lines without the cpu controller. The few
                // files berth shows are read by hand then.
                Layout::V2 { dir } if dir.is_dir() => {
                    read_v2(dir).map_err(|e| if dir.is_dir() { e } else { self.gone() })
                }
                _ => Err(self.gone_or(source)),
            },
        }
    }

    /// Every counter libcgroups reads (per-CPU usage, throttling, the whole memory.stat, …),
    /// for the Docker API's stats. Where libcgroups cannot read the cgroup as a whole (see
    /// `sample`), this fails and `sample` still answers.
    pub fn counters(&self) -> Result<Stats, StatsError> {
        self.manager.stats().map_err(|source| self.gone_or(source))
    }

    /// Whether the cgroup is in the unified (v2) hierarchy, which counts in other units.
    pub fn unified(&self) -> bool {
        self.layout.version() == Version::V2
    }

    fn gone(&self) -> StatsError {
        StatsError::NotFound {
            path: self.path.clone(),
        }
    }

    /// A container that exits between two samples takes its cgroup with it; that is not a
    /// read error but "not running".
    fn gone_or(&self, source: AnyManagerError) -> StatsError {
        if self.layout.exists() {
            StatsError::Read {
                path: self.path.clone(),
                source,
            }
        } else {
            self.gone()
        }
    }
}

/// Only the systemd driver uses the name; the last path component is the container id.
fn container_name(cgroup_path: &Path) -> String {
    cgroup_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
/// Reads the counters of the cgroup at `cgroup_path` (the OCI `cgroupsPath`, e.g.
/// `/berth/web`) once.
fn sample(cgroup_path: &Path) -> Result<Sample, StatsError> {
    Probe::open(cgroup_path)?.sample()
}

/// v1 and v2 memory limits that mean "none": v1 reports its page counter maximum
/// (0x7FFFFFFFFFFFF000 with 4 KiB pages, more with larger pages), libcgroups turns v2's `max`
/// into u64::MAX. No machine has 4 EiB.
const NO_LIMIT_FROM: u64 = 1 << 62;

impl Sample {
    fn from_stats(stats: &Stats, version: Version, at: Instant) -> Sample {
        let memory = &stats.memory.memory;
        Sample {
            at,
            cpu_usage_ns: match version {
                Version::V1 => stats.cpu.usage.usage_total,
                // libcgroups passes v2's cpu.stat usage_usec on in microseconds.
                Version::V2 => stats.cpu.usage.usage_total.saturating_mul(1_000),
            },
            memory_usage: working_set(&stats.memory, version),
            memory_limit: Some(memory.limit).filter(|l| *l < NO_LIMIT_FROM),
            memory_peak: Some(memory.max_usage).filter(|p| *p > 0),
            pids: stats.pids.current,
            // libcgroups reports `max` as 0.
            pids_limit: Some(stats.pids.limit).filter(|l| *l > 0),
            io_read: io_bytes(&stats.blkio.service_bytes, "read"),
            io_write: io_bytes(&stats.blkio.service_bytes, "write"),
        }
    }
}

/// A v2 sample from the files themselves; only cpu.stat is required (the kernel always has it),
/// a controller that is not enabled for the cgroup leaves its numbers at zero / no limit.
fn read_v2(dir: &Path) -> Result<Sample, StatsError> {
    let at = Instant::now();
    let cpu_file = dir.join("cpu.stat");
    let cpu_stat = read_file(&cpu_file)?;
    let usage_usec = keyed_value(&cpu_stat, "usage_usec").ok_or(StatsError::MissingField {
        file: cpu_file,
        field: "usage_usec",
    })?;
    let value = |name: &str| -> Result<Option<u64>, StatsError> {
        Ok(read_optional(&dir.join(name))?.and_then(|text| single_value(&text)))
    };
    let memory_current = value("memory.current")?.unwrap_or(0);
    let inactive_file = read_optional(&dir.join("memory.stat"))?
        .and_then(|text| keyed_value(&text, "inactive_file"));
    let (io_read, io_write) = read_optional(&dir.join("io.stat"))?
        .map(|text| io_stat_bytes(&text))
        .unwrap_or_default();
    Ok(Sample {
        at,
        cpu_usage_ns: usage_usec.saturating_mul(1_000),
        memory_usage: without_inactive(memory_current, inactive_file),
        memory_limit: value("memory.max")?.filter(|l| *l < NO_LIMIT_FROM),
        memory_peak: value("memory.peak")?,
        pids: value("pids.current")?.unwrap_or(0),
        pids_limit: value("pids.max")?,
        io_read,
        io_write,
    })
}

fn read_file(file: &Path) -> Result<String, StatsError> {
    std::fs::read_to_string(file).map_err(|source| StatsError::Io {
        file: file.into(),
        source,
    })
}

fn read_optional(file: &Path) -> Result<Option<String>, StatsError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StatsError::Io {
            file: file.into(),
            source,
        }),
    }
}

/// A one-value cgroup file; `max` (no limit) reads as None.
fn single_value(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Bytes read and written over all devices in a v2 `io.stat`
/// (`8:0 rbytes=1 wbytes=2 rios=3 …` per line).
fn io_stat_bytes(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.split_whitespace()
            .filter_map(|kv| {
                kv.strip_prefix(name)?
                    .strip_prefix('=')?
                    .parse::<u64>()
                    .ok()
            })
            .fold(0u64, u64::saturating_add)
    };
    (field("rbytes"), field("wbytes"))
}

/// Docker's and podman's memory usage: the page cache that is inactive is dropped first under
/// pressure, so counting it would make every container that reads files look full.
fn working_set(memory: &MemoryStats, version: Version) -> u64 {
    let inactive_file = match version {
        Version::V1 => "total_inactive_file",
        Version::V2 => "inactive_file",
    };
    without_inactive(
        memory.memory.usage,
        memory.stats.get(inactive_file).copied(),
    )
}

fn without_inactive(usage: u64, inactive_file: Option<u64>) -> u64 {
    match inactive_file {
        Some(inactive) if inactive < usage => usage - inactive,
        _ => usage,
    }
}

/// v1 names operations "Read"/"Write" (plus Sync, Async, Total, …), libcgroups' v2 reader
/// "read"/"write"; one line per device.
fn io_bytes(service_bytes: &[BlkioDeviceStat], op: &str) -> u64 {
    service_bytes
        .iter()
        .filter(|s| {
            s.op_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(op))
        })
        .fold(0, |sum, s| sum.saturating_add(s.value))
}

/// CPU use between two samples, 100.0 per fully used CPU (as docker and podman count).
fn cpu_percent(prev: &Sample, now: &Sample) -> f64 {
    let wall_ns = now.at.saturating_duration_since(prev.at).as_nanos();
    if wall_ns == 0 {
        return 0.0;
    }
    // A counter that went backwards belongs to a new cgroup under the same path.
    let cpu_ns = now.cpu_usage_ns.saturating_sub(prev.cpu_usage_ns);
    cpu_ns as f64 / wall_ns as f64 * 100.0
}

#[cfg(test)]
/// How many processes of the cgroup the kernel's OOM killer has killed (read where the
/// monitor reads it, `cgroupfs::oom_kills`).
fn oom_kills(cgroup_path: &Path) -> Result<u64, StatsError> {
    let layout = Layout::detect(cgroup_path)?;
    if !layout.exists() {
        return Err(StatsError::NotFound {
            path: cgroup_path.into(),
        });
    }
    let hierarchies = super::cgroupfs::hierarchies().map_err(|source| StatsError::Io {
        file: PathBuf::from("/proc/self/mountinfo"),
        source,
    })?;
    super::cgroupfs::oom_kills(&hierarchies, &cgroup_path.to_string_lossy()).ok_or(
        StatsError::MissingField {
            file: layout.dir().to_path_buf(),
            field: "oom_kill",
        },
    )
}

/// The value of `key` in a flat keyed file (`key value` per line): v1 `memory.oom_control`,
/// v2 `memory.events`, `/proc/meminfo` (`MemTotal:  123 kB`).
fn keyed_value(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let name = fields.next()?;
        (name.strip_suffix(':').unwrap_or(name) == key)
            .then(|| fields.next()?.parse().ok())
            .flatten()
    })
}

/// The host's memory, shown as the limit of a container without one (as docker and podman do).
pub fn host_memory() -> Result<u64, StatsError> {
    let file = PathBuf::from("/proc/meminfo");
    let content = std::fs::read_to_string(&file).map_err(|source| StatsError::Io {
        file: file.clone(),
        source,
    })?;
    keyed_value(&content, "MemTotal")
        .map(|kib| kib.saturating_mul(1024))
        .ok_or(StatsError::MissingField {
            file,
            field: "MemTotal",
        })
}

/// One container's line of `berth stats`, and its `--json` form.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    /// None on the first sample: a rate needs two.
    pub cpu_percent: Option<f64>,
    pub memory_usage: u64,
    /// The container's own limit; None when it has none.
    pub memory_limit: Option<u64>,
    /// Of the limit, or of the host's memory when there is no limit.
    pub memory_percent: Option<f64>,
    pub host_memory: Option<u64>,
    pub pids: u64,
    pub pids_limit: Option<u64>,
    pub io_read: u64,
    pub io_write: u64,
}

impl Row {
    pub fn new(name: &str, prev: Option<&Sample>, now: &Sample, host_memory: Option<u64>) -> Row {
        let shown_limit = now.memory_limit.or(host_memory).filter(|l| *l > 0);
        Row {
            name: name.into(),
            cpu_percent: prev.map(|p| cpu_percent(p, now)),
            memory_usage: now.memory_usage,
            memory_limit: now.memory_limit,
            memory_percent: shown_limit.map(|l| now.memory_usage as f64 / l as f64 * 100.0),
            host_memory,
            pids: now.pids,
            pids_limit: now.pids_limit,
            io_read: now.io_read,
            io_write: now.io_write,
        }
    }

    fn cells(&self) -> [String; 6] {
        let limit = match self.memory_limit.or(self.host_memory) {
            Some(l) => human_size(l),
            None => "unlimited".into(),
        };
        [
            self.name.clone(),
            percent(self.cpu_percent),
            format!("{} / {limit}", human_size(self.memory_usage)),
            percent(self.memory_percent),
            format!(
                "{} / {}",
                human_size(self.io_read),
                human_size(self.io_write)
            ),
            match self.pids_limit {
                Some(l) => format!("{} / {l}", self.pids),
                None => self.pids.to_string(),
            },
        ]
    }
}

const HEADER: [&str; 6] = [
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "BLOCK I/O",
    "PIDS",
];

/// The `berth stats` table: a header and one line per row, columns aligned, every line ending
/// in a newline.
pub fn render_table(rows: &[Row]) -> String {
    let lines: Vec<[String; 6]> = std::iter::once(HEADER.map(String::from))
        .chain(rows.iter().map(Row::cells))
        .collect();
    let mut widths = [0; 6];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (cell, width) in line.iter().zip(widths) {
            let _ = write!(text, "{cell:<width$}   ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

fn percent(value: Option<f64>) -> String {
    match value {
        Some(v) => format!("{v:.2}%"),
        None => "--".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use libcgroups::stats::{CpuUsage, MemoryData, PidStats};

    use super::*;

    fn sample_at(at: Instant, cpu_usage_ns: u64) -> Sample {
        Sample {
            at,
            cpu_usage_ns,
            memory_usage: 0,
            memory_limit: None,
            memory_peak: None,
            pids: 1,
            pids_limit: None,
            io_read: 0,
            io_write: 0,
        }
    }

    #[test]
    fn cpu_percent_counts_one_cpu_as_100() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let cases = [
            (0, 0, 0.0),
            (0, 2_000_000_000, 100.0),
            (0, 1_000_000_000, 50.0),
            (5, 4_000_000_005, 200.0),
            // The cgroup was recreated: the counter restarted.
            (4_000_000_000, 1, 0.0),
        ];
        for (before, after, want) in cases {
            let got = cpu_percent(&sample_at(t0, before), &sample_at(t1, after));
            assert!(
                (got - want).abs() < 1e-9,
                "{before}->{after}: {got} != {want}"
            );
        }
        // No time passed (or the samples are swapped): no rate, and no division by zero.
        assert_eq!(cpu_percent(&sample_at(t0, 0), &sample_at(t0, 10)), 0.0);
        assert_eq!(cpu_percent(&sample_at(t1, 0), &sample_at(t0, 10)), 0.0);
    }

    fn stats(usage_total: u64, memory: MemoryData, inactive: (&str, u64)) -> Stats {
        let mut stats = Stats::default();
        stats.cpu.usage = CpuUsage {
            usage_total,
            ..Default::default()
        };
        stats.memory.memory = memory;
        stats.memory.stats = HashMap::from([(inactive.0.to_owned(), inactive.1)]);
        stats.pids = PidStats {
            current: 3,
            limit: 0,
        };
        stats
    }

    fn io(op: &str, value: u64) -> BlkioDeviceStat {
        BlkioDeviceStat {
            major: 8,
            minor: 0,
            op_type: Some(op.into()),
            value,
        }
    }

    #[test]
    fn v1_stats_convert() {
        let memory = MemoryData {
            usage: 100 << 20,
            max_usage: 120 << 20,
            fail_count: 0,
            limit: 0x7FFF_FFFF_FFFF_F000,
        };
        let mut s = stats(7_000, memory, ("total_inactive_file", 30 << 20));
        s.pids.limit = 64;
        s.blkio.service_bytes = vec![
            io("Read", 10),
            io("Write", 20),
            io("Sync", 30),
            io("Async", 0),
            io("Discard", 0),
            io("Total", 30),
            BlkioDeviceStat {
                minor: 16,
                ..io("Read", 5)
            },
        ];
        let at = Instant::now();
        let got = Sample::from_stats(&s, Version::V1, at);
        let want = Sample {
            at,
            cpu_usage_ns: 7_000,
            memory_usage: 70 << 20,
            memory_limit: None,
            memory_peak: Some(120 << 20),
            pids: 3,
            pids_limit: Some(64),
            io_read: 15,
            io_write: 20,
        };
        assert_eq!(got, want);
    }

    #[test]
    fn v2_stats_convert() {
        let memory = MemoryData {
            usage: 50 << 20,
            max_usage: 0,
            fail_count: 0,
            limit: 256 << 20,
        };
        let mut s = stats(7, memory, ("inactive_file", 10 << 20));
        s.blkio.service_bytes = vec![io("read", 4096), io("write", 8192)];
        let got = Sample::from_stats(&s, Version::V2, Instant::now());
        assert_eq!(got.cpu_usage_ns, 7_000, "usage_usec becomes ns");
        assert_eq!(got.memory_usage, 40 << 20);
        assert_eq!(got.memory_limit, Some(256 << 20));
        assert_eq!(
            got.memory_peak, None,
            "memory.peak is absent before Linux 5.19"
        );
        assert_eq!(got.pids_limit, None);
        assert_eq!((got.io_read, got.io_write), (4096, 8192));

        let unlimited = MemoryData {
            limit: u64::MAX,
            ..Default::default()
        };
        let s = stats(0, unlimited, ("inactive_file", 0));
        assert_eq!(
            Sample::from_stats(&s, Version::V2, Instant::now()).memory_limit,
            None
        );
    }

    #[test]
    fn working_set_never_underflows() {
        let memory = MemoryData {
            usage: 10,
            ..Default::default()
        };
        let s = stats(0, memory, ("inactive_file", 50));
        assert_eq!(working_set(&s.memory, Version::V2), 10);
        // The v1 key is not the v2 one.
        assert_eq!(working_set(&s.memory, Version::V1), 10);
    }

    #[test]
    fn keyed_values() {
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(oom_control, "oom_kill"), Some(3));
        assert_eq!(keyed_value(oom_control, "oom_kill_disable"), Some(0));
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed_value(events, "oom_kill"), Some(1));
        assert_eq!(keyed_value(events, "oom"), Some(2));
        // Before Linux 4.13 v1 had no oom_kill line.
        assert_eq!(
            keyed_value("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"),
            None
        );
        assert_eq!(keyed_value("oom_kill x\n", "oom_kill"), None);
        assert_eq!(keyed_value("oom_kill\n", "oom_kill"), None);
        assert_eq!(keyed_value("", "oom_kill"), None);
        let meminfo = "MemTotal:       24684096 kB\nMemFree:        1000 kB\n";
        assert_eq!(keyed_value(meminfo, "MemTotal"), Some(24684096));
        assert_eq!(keyed_value(meminfo, "MemFree"), Some(1000));
    }

    #[test]
    fn cgroup_paths_must_be_absolute_and_plain() {
        assert_eq!(
            relative_cgroup_path(Path::new("/berth/web")).ok(),
            Some(PathBuf::from("berth/web"))
        );
        // `.` components vanish when a path is split, so they are harmless.
        assert_eq!(
            relative_cgroup_path(Path::new("/berth/./web")).ok(),
            Some(PathBuf::from("berth/web"))
        );
        for bad in ["berth/web", "/", "", "/berth/../etc", "/.."] {
            assert!(
                matches!(
                    relative_cgroup_path(Path::new(bad)),
                    Err(StatsError::BadPath { .. })
                ),
                "{bad:?}"
            );
        }
    }

    fn full_sample(at: Instant, cpu_usage_ns: u64) -> Sample {
        Sample {
            memory_usage: 12_897_484,
            memory_limit: Some(256 << 20),
            pids: 3,
            pids_limit: Some(100),
            io_read: 1536,
            io_write: 0,
            ..sample_at(at, cpu_usage_ns)
        }
    }

    #[test]
    fn rows_render_like_podman() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let web = Row::new(
            "web",
            Some(&full_sample(t0, 0)),
            &full_sample(t1, 125_000_000),
            Some(24684096 * 1024),
        );
        let first = Row::new(
            "database",
            None,
            &Sample {
                memory_usage: 1 << 30,
                ..sample_at(t1, 0)
            },
            Some(4 << 30),
        );
        let unknown_host = Row::new("x", None, &sample_at(t1, 0), None);
        let table = render_table(&[web, first, unknown_host]);
        let want = "\
NAME       CPU %    MEM USAGE / LIMIT   MEM %    BLOCK I/O     PIDS
web        12.50%   12.3MiB / 256MiB    4.80%    1.5KiB / 0B   3 / 100
database   --       1GiB / 4GiB         25.00%   0B / 0B       1
x          --       0B / unlimited      --       0B / 0B       1
";
        assert_eq!(table, want);
        assert_eq!(
            render_table(&[]),
            "NAME   CPU %   MEM USAGE / LIMIT   MEM %   BLOCK I/O   PIDS\n"
        );
    }

    #[test]
    fn rows_serialize_with_raw_numbers() {
        let t0 = Instant::now();
        let row = Row::new(
            "web",
            Some(&full_sample(t0, 0)),
            &full_sample(t0 + Duration::from_secs(1), 500_000_000),
            None,
        );
        let json = serde_json::to_value(&row).expect("a row serializes");
        let want = serde_json::json!({
            "name": "web",
            "cpu_percent": 50.0,
            "memory_usage": 12_897_484,
            "memory_limit": 268_435_456,
            "memory_percent": 12_897_484.0 / 268_435_456.0 * 100.0,
            "host_memory": null,
            "pids": 3,
            "pids_limit": 100,
            "io_read": 1536,
            "io_write": 0,
        });
        assert_eq!(json, want);
    }

    #[test]
    fn io_stat_sums_devices() {
        let text = "7:10 rbytes=18432 wbytes=16842 rios=12 wios=0 dbytes=0 dios=0\n\
                    7:9 rbytes=34629632 wbytes=274965 rios=1066 wios=319 dbytes=0 dios=0\n";
        assert_eq!(io_stat_bytes(text), (18432 + 34629632, 16842 + 274965));
        assert_eq!(io_stat_bytes(""), (0, 0));
        assert_eq!(io_stat_bytes("8:0 rbytes=x wbytes=5 xrbytes=9\n"), (0, 5));
    }

    fn v2_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temp dir");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("a fixture");
        }
        dir
    }

    #[test]
    fn v2_files_read_by_hand() {
        let dir = v2_dir(&[
            (
                "cpu.stat",
                "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
            ),
            ("memory.current", "52428800\n"),
            ("memory.max", "268435456\n"),
            ("memory.peak", "60000000\n"),
            (
                "memory.stat",
                "anon 1000\nfile 20000000\ninactive_file 10485760\n",
            ),
            ("pids.current", "4\n"),
            ("pids.max", "max\n"),
            (
                "io.stat",
                "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
            ),
        ]);
        let got = read_v2(dir.path()).expect("a sample");
        let want = Sample {
            at: got.at,
            cpu_usage_ns: 2_500_000,
            memory_usage: 40 << 20,
            memory_limit: Some(256 << 20),
            memory_peak: Some(60_000_000),
            pids: 4,
            pids_limit: None,
            io_read: 100,
            io_write: 200,
        };
        assert_eq!(got, want);
    }

    #[test]
    fn v2_by_hand_needs_only_cpu_stat() {
        let dir = v2_dir(&[("cpu.stat", "usage_usec 7\n"), ("memory.max", "max\n")]);
        let got = read_v2(dir.path()).expect("a sample");
        assert_eq!(got.cpu_usage_ns, 7_000);
        assert_eq!(
            (got.memory_usage, got.memory_limit, got.memory_peak),
            (0, None, None)
        );
        assert_eq!((got.pids, got.pids_limit, got.io_read), (0, None, 0));

        let dir = v2_dir(&[("cpu.stat", "user_usec 7\n")]);
        assert!(matches!(
            read_v2(dir.path()),
            Err(StatsError::MissingField {
                field: "usage_usec",
                ..
            })
        ));
        let dir = v2_dir(&[]);
        assert!(matches!(read_v2(dir.path()), Err(StatsError::Io { .. })));
    }

    #[test]
    fn errors_can_cross_threads() {
        fn check<T: Send + Sync + 'static>() {}
        check::<StatsError>();
    }
}

/// Against real cgroups: these need root, and skip without it.
#[cfg(test)]
#[allow(unsafe_code, reason = "forks a child that fills its memory")]
mod cgroup_tests {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::time::Duration;

    use nix::sys::signal::{Signal, kill};
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, Pid, fork, pipe};
    use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};

    use super::*;

    const MIB: usize = 1 << 20;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// A cgroup of its own per test and process, removed (with whatever still runs in it)
    /// however the test ends.
    struct TestCgroup {
        path: PathBuf,
        manager: AnyCgroupManager,
    }

    impl TestCgroup {
        fn new(name: &str) -> TestCgroup {
            // A scope of the test's own: never the default installation's `/berth`.
            let path = PathBuf::from(format!("{}/{name}", test_scope()));
            let config = CgroupConfig {
                cgroup_path: path.clone(),
                systemd_cgroup: false,
                container_name: name.into(),
            };
            let manager = create_cgroup_manager(config).expect("a cgroup manager");
            TestCgroup { path, manager }
        }
    }

    fn test_scope() -> String {
        format!("/berth-unit-stats-{}", std::process::id())
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            if let Err(e) = self.manager.remove() {
                eprintln!("cannot remove test cgroup {}: {e}", self.path.display());
            }
            // The scope goes with its last test cgroup (a sibling still in use keeps it).
            if let Ok(hierarchies) = super::super::cgroupfs::hierarchies() {
                for h in &hierarchies {
                    let _ = std::fs::remove_dir(
                        h.mount_point.join(test_scope().trim_start_matches('/')),
                    );
                }
            }
        }
    }

    /// A forked child that waits for the go byte, then fills `bytes` of memory and spins, so
    /// that it can be moved into a cgroup before it is charged anything.
    struct Hog {
        pid: Pid,
        go: Option<OwnedFd>,
        reaped: bool,
    }

    impl Hog {
        fn spawn(bytes: usize) -> Hog {
            let (wait_end, go_end) = pipe().expect("a pipe");
            // SAFETY: the test binary is multi-threaded, so the child only calls what is safe
            // after fork there: read(2), glibc's malloc (which resets its locks in the child),
            // clock_gettime and _exit; it never returns into the test harness.
            match unsafe { fork() }.expect("fork") {
                ForkResult::Child => {
                    drop(go_end);
                    hog_child(&wait_end, bytes)
                }
                ForkResult::Parent { child } => Hog {
                    pid: child,
                    go: Some(go_end),
                    reaped: false,
                },
            }
        }

        fn start(&mut self) {
            if let Some(go) = self.go.take() {
                nix::unistd::write(&go, b"g").expect("the go byte");
            }
        }

        fn wait(&mut self) -> WaitStatus {
            let status = waitpid(self.pid, None).expect("waitpid");
            self.reaped = true;
            status
        }
    }

    impl Drop for Hog {
        fn drop(&mut self) {
            // Once reaped, the pid may belong to someone else.
            if !self.reaped {
                let _ = kill(self.pid, Signal::SIGKILL);
                let _ = waitpid(self.pid, None);
            }
        }
    }

    fn hog_child(wait_end: &OwnedFd, bytes: usize) -> ! {
        let mut go = [0u8];
        if !matches!(nix::unistd::read(wait_end.as_raw_fd(), &mut go), Ok(1)) {
            exit_child(0);
        }
        let memory = vec![1u8; bytes];
        // Bounded, so that a test process killed before its guards run leaves no spinner.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            std::hint::black_box(&memory);
        }
        exit_child(0)
    }

    fn exit_child(code: i32) -> ! {
        // SAFETY: _exit ends the forked child at once, without running the parent's atexit
        // handlers or unwinding into the test harness it was copied from.
        unsafe { libc::_exit(code) }
    }

    /// Polls until `ready` holds, or gives up after 10 s with the last sample.
    fn sample_until(probe: &Probe, ready: impl Fn(&Sample) -> bool) -> Sample {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = probe.sample().expect("a sample");
            if ready(&s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn samples_a_live_cgroup() {
        assert!(
            is_root(),
            "needs root: run the tests as root (scripts/test)"
        );
        let cgroup = TestCgroup::new("stats-test");
        let mut hog = Hog::spawn(48 * MIB);
        cgroup.manager.add_task(hog.pid).expect("move the child");
        hog.start();

        let probe = Probe::open(&cgroup.path).expect("open the probe");
        let first = sample_until(&probe, |s| s.memory_usage >= (48 * MIB) as u64);
        std::thread::sleep(Duration::from_millis(300));
        let second = probe.sample().expect("a second sample");

        assert!(first.memory_usage >= (48 * MIB) as u64, "{first:?}");
        assert!(
            first.memory_peak.unwrap_or(u64::MAX) >= first.memory_usage,
            "{first:?}"
        );
        assert_eq!(first.memory_limit, None, "{first:?}");
        assert!(first.pids >= 1, "{first:?}");
        assert!(
            second.cpu_usage_ns > first.cpu_usage_ns,
            "{first:?} {second:?}"
        );
        let cpu = cpu_percent(&first, &second);
        assert!(
            cpu > 1.0 && cpu < 250.0,
            "one spinning process used {cpu}% CPU"
        );

        let once = sample(&cgroup.path).expect("a one-shot sample");
        assert!(once.pids >= 1 && once.memory_usage > 0, "{once:?}");
        assert_eq!(oom_kills(&cgroup.path).expect("the OOM count"), 0);
    }

    #[test]
    fn counts_oom_kills() {
        assert!(
            is_root(),
            "needs root: run the tests as root (scripts/test)"
        );
        let cgroup = TestCgroup::new("stats-oom-test");
        let mut hog = Hog::spawn(128 * MIB);
        cgroup.manager.add_task(hog.pid).expect("move the child");
        let memory = LinuxMemoryBuilder::default()
            .limit((32 * MIB) as i64)
            .build()
            .expect("a memory limit");
        let resources = LinuxResourcesBuilder::default()
            .memory(memory)
            .build()
            .expect("resources");
        let limits = libcgroups::common::ControllerOpt {
            resources: &resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        };
        cgroup.manager.apply(&limits).expect("apply the limit");
        let limited = sample(&cgroup.path).expect("a sample");
        assert_eq!(limited.memory_limit, Some((32 * MIB) as u64));

        hog.start();
        let status = hog.wait();
        assert_eq!(
            status,
            WaitStatus::Signaled(hog.pid, Signal::SIGKILL, false)
        );
        assert_eq!(oom_kills(&cgroup.path).expect("the OOM count"), 1);
    }

    #[test]
    fn a_missing_cgroup_is_not_running() {
        let path = PathBuf::from(format!("{}/absent", test_scope()));
        assert!(matches!(sample(&path), Err(StatsError::NotFound { .. })));
        assert!(matches!(oom_kills(&path), Err(StatsError::NotFound { .. })));
    }

    #[test]
    fn host_memory_is_known() {
        assert!(host_memory().expect("MemTotal") > 64 * MIB as u64);
    }
}
