//! `GET /containers/{id}/stats`: dockerd's stats JSON from the container's cgroup (v1 or v2),
//! the host's /proc/stat and the container's network namespace. `stream=true` (the default)
//! sends one object a second, each with the previous one's CPU counters in `precpu_stats`,
//! as dockerd's collector does; `stream=false` waits for a second sample so that the docker
//! CLI's CPU % has two points (`docker stats --no-stream`); `one-shot=true` answers at once,
//! `precpu_stats` empty. A container that is not running gets one object of zeros.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use libcgroups::stats::{BlkioDeviceStat, Stats};
use serde::Serialize;
use tokio::sync::mpsc;

use super::Call;
use super::target::{self, Found};
use crate::api::{Body, error, streamed};
use crate::runtime::stats::{Probe, Sample, StatsError, host_memory};
use crate::runtime::{Runtime, State};

/// dockerd's collector interval.
const INTERVAL: Duration = Duration::from_secs(1);
/// USER_HZ: the unit of /proc/stat and of cgroup v1's cpuacct.stat, 100 on every Linux ABI
/// (dockerd assumes the same).
const TICKS_PER_SECOND: u64 = 100;
const NANOS_PER_TICK: u64 = 1_000_000_000 / TICKS_PER_SECOND;
/// A v1 limit this large is "none" (the page counter's maximum).
const NO_LIMIT_FROM: u64 = 1 << 62;

#[derive(Debug, Default, Serialize)]
struct StatsJson {
    read: String,
    preread: String,
    pids_stats: PidsStats,
    blkio_stats: BlkioStats,
    num_procs: u32,
    storage_stats: StorageStats,
    cpu_stats: CpuStats,
    precpu_stats: CpuStats,
    memory_stats: MemoryStats,
    name: String,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    networks: Option<BTreeMap<String, NetworkStats>>,
}

#[derive(Debug, Default, Serialize)]
struct StorageStats {}

#[derive(Debug, Default, Serialize)]
struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    limit: u64,
}

#[derive(Debug, Default, Serialize)]
struct BlkioStats {
    io_service_bytes_recursive: Option<Vec<BlkioEntry>>,
    io_serviced_recursive: Option<Vec<BlkioEntry>>,
    io_queue_recursive: Option<Vec<BlkioEntry>>,
    io_service_time_recursive: Option<Vec<BlkioEntry>>,
    io_wait_time_recursive: Option<Vec<BlkioEntry>>,
    io_merged_recursive: Option<Vec<BlkioEntry>>,
    io_time_recursive: Option<Vec<BlkioEntry>>,
    sectors_recursive: Option<Vec<BlkioEntry>>,
}

#[derive(Debug, Clone, Serialize)]
struct BlkioEntry {
    major: u64,
    minor: u64,
    op: String,
    value: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
struct CpuStats {
    cpu_usage: CpuUsage,
    #[serde(skip_serializing_if = "is_zero")]
    system_cpu_usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    online_cpus: u64,
    throttling_data: Throttling,
}

#[derive(Debug, Default, Clone, Serialize)]
struct CpuUsage {
    total_usage: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    percpu_usage: Vec<u64>,
    usage_in_kernelmode: u64,
    usage_in_usermode: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
struct Throttling {
    periods: u64,
    throttled_periods: u64,
    throttled_time: u64,
}

#[derive(Debug, Default, Serialize)]
struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    max_usage: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    stats: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    failcnt: u64,
    #[serde(skip_serializing_if = "is_zero")]
    limit: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
struct NetworkStats {
    rx_bytes: u64,
    rx_packets: u64,
    rx_errors: u64,
    rx_dropped: u64,
    tx_bytes: u64,
    tx_packets: u64,
    tx_errors: u64,
    tx_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// One object a second until the container stops or the client goes.
    Stream,
    /// One object, with a previous sample a second before.
    Once,
    /// One object, at once.
    OneShot,
}

pub async fn stats(call: Call) -> Response<Body> {
    let Some(name) = call.segments.get(1) else {
        return error(StatusCode::NOT_FOUND, "no container named");
    };
    let query = target::query(&call.request);
    // `stream` defaults to true: only an explicit false turns it off.
    let stream =
        query.get("stream").is_none_or(|v| v.trim().is_empty()) || target::flag(&query, "stream");
    let mode = match (stream, target::flag(&query, "one-shot")) {
        (true, true) => {
            return error(
                StatusCode::BAD_REQUEST,
                "cannot have stream=true and one-shot=true",
            );
        }
        (true, false) => Mode::Stream,
        (false, false) => Mode::Once,
        (false, true) => Mode::OneShot,
    };
    let found = match target::container(&call.context, name).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let runtime = call.context.machine.runtime.clone();
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = produce(&runtime, &found, mode, &tx) {
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    let mut response = Response::new(streamed(rx));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

type Tx = mpsc::Sender<Result<Bytes, io::Error>>;

/// Sends the objects `mode` asks for; Ok when done or when the client went away.
fn produce(runtime: &Runtime, found: &Found, mode: Mode, tx: &Tx) -> Result<(), StatsError> {
    let record = &found.record;
    let base = StatsJson {
        name: format!("/{}", record.name),
        id: found.docker_id.clone(),
        read: go_time(None),
        preread: go_time(None),
        ..StatsJson::default()
    };
    let init = match runtime.state(&record.id) {
        Ok(State::Running(monitor)) => monitor.init.pid,
        _ => return send(tx, &base).map_or(Ok(()), |_| Ok(())),
    };
    let probe = match Probe::open(Path::new(&record.cgroup_path)) {
        Ok(probe) => probe,
        Err(StatsError::NotFound { .. }) => return send(tx, &base).map_or(Ok(()), |_| Ok(())),
        Err(e) => return Err(e),
    };
    let host = Host::read();
    let mut previous: Option<Reading> = None;
    if mode == Mode::Once {
        previous = Some(Reading::take(&probe, init, &host)?);
        std::thread::sleep(INTERVAL);
    }
    loop {
        let reading = match Reading::take(&probe, init, &host) {
            Ok(reading) => reading,
            // Stopped between two objects: the stream ends, as dockerd's does.
            Err(StatsError::NotFound { .. }) if previous.is_some() => return Ok(()),
            Err(StatsError::NotFound { .. }) => {
                return send(tx, &base).map_or(Ok(()), |_| Ok(()));
            }
            Err(e) => return Err(e),
        };
        let json = reading.json(&base, previous.as_ref());
        if send(tx, &json).is_err() || mode != Mode::Stream {
            return Ok(());
        }
        previous = Some(reading);
        std::thread::sleep(INTERVAL);
    }
}

/// The client went away.
struct Gone;

fn send(tx: &Tx, json: &StatsJson) -> Result<(), Gone> {
    let mut line = serde_json::to_vec(json).map_err(|_| Gone)?;
    line.push(b'\n');
    tx.blocking_send(Ok(Bytes::from(line))).map_err(|_| Gone)
}

/// What is read of the host once per request.
struct Host {
    memory: Option<u64>,
    online_cpus: u64,
    /// The agent's network namespace: a container in it has no networks of its own.
    netns: Option<u64>,
}

impl Host {
    fn read() -> Host {
        Host {
            memory: host_memory().ok(),
            online_cpus: std::fs::read_to_string("/sys/devices/system/cpu/online")
                .ok()
                .and_then(|text| count_cpus(&text))
                .unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
                }),
            netns: netns_inode("/proc/self/ns/net"),
        }
    }
}

fn netns_inode(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// CPUs in a kernel list such as `0-3,6,8-9`.
fn count_cpus(text: &str) -> Option<u64> {
    let mut count = 0u64;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
        count += last.checked_sub(first)? + 1;
    }
    (count > 0).then_some(count)
}

/// One sample of everything an object shows.
struct Reading {
    at: SystemTime,
    cpu: CpuStats,
    memory: MemoryStats,
    pids: PidsStats,
    blkio: BlkioStats,
    networks: Option<BTreeMap<String, NetworkStats>>,
}

impl Reading {
    fn take(probe: &Probe, init: i32, host: &Host) -> Result<Reading, StatsError> {
        let at = SystemTime::now();
        let mut reading = match probe.counters() {
            Ok(stats) => Reading::from_counters(&stats, probe.unified(), host, at),
            Err(StatsError::NotFound { path }) => return Err(StatsError::NotFound { path }),
            // libcgroups could not read the cgroup as a whole (a v2 file it wants is
            // missing): the fewer numbers berth reads by hand.
            Err(_) => Reading::from_sample(&probe.sample()?, host, at),
        };
        reading.cpu.system_cpu_usage = system_cpu_usage().unwrap_or(0);
        reading.cpu.online_cpus = host.online_cpus;
        let own_netns = netns_inode(&format!("/proc/{init}/ns/net"));
        if own_netns.is_some() && own_netns != host.netns {
            reading.networks = std::fs::read_to_string(format!("/proc/{init}/net/dev"))
                .ok()
                .map(|text| parse_net_dev(&text));
        }
        Ok(reading)
    }

    fn from_counters(stats: &Stats, unified: bool, host: &Host, at: SystemTime) -> Reading {
        let usage = &stats.cpu.usage;
        // v1 counts CPU time in nanoseconds (user and system in ticks), v2 in microseconds.
        let (scale, tick_scale) = if unified {
            (1_000, 1_000)
        } else {
            (1, NANOS_PER_TICK)
        };
        let cpu = CpuStats {
            cpu_usage: CpuUsage {
                total_usage: usage.usage_total.saturating_mul(scale),
                percpu_usage: usage
                    .per_core_usage_total
                    .iter()
                    .map(|n| n.saturating_mul(scale))
                    .collect(),
                usage_in_kernelmode: usage.usage_kernel.saturating_mul(tick_scale),
                usage_in_usermode: usage.usage_user.saturating_mul(tick_scale),
            },
            throttling_data: Throttling {
                periods: stats.cpu.throttling.periods,
                throttled_periods: stats.cpu.throttling.throttled_periods,
                throttled_time: stats.cpu.throttling.throttled_time.saturating_mul(scale),
            },
            ..CpuStats::default()
        };
        let memory = &stats.memory.memory;
        let mut memory = MemoryStats {
            usage: memory.usage,
            max_usage: memory.max_usage,
            stats: stats.memory.stats.clone().into_iter().collect(),
            failcnt: memory.fail_count,
            limit: limit_or_host(memory.limit, host),
        };
        if unified {
            // dockerd shows neither for v2.
            memory.max_usage = 0;
            memory.failcnt = 0;
        }
        let entries = |list: &[BlkioDeviceStat]| -> Option<Vec<BlkioEntry>> {
            (!list.is_empty()).then(|| {
                list.iter()
                    .map(|s| BlkioEntry {
                        major: s.major,
                        minor: s.minor,
                        op: s.op_type.clone().unwrap_or_default(),
                        value: s.value,
                    })
                    .collect()
            })
        };
        let blkio = &stats.blkio;
        Reading {
            at,
            cpu,
            memory,
            pids: PidsStats {
                current: stats.pids.current,
                limit: stats.pids.limit,
            },
            blkio: BlkioStats {
                io_service_bytes_recursive: entries(&blkio.service_bytes),
                io_serviced_recursive: entries(&blkio.serviced),
                io_queue_recursive: entries(&blkio.queued),
                io_service_time_recursive: entries(&blkio.service_time),
                io_wait_time_recursive: entries(&blkio.wait_time),
                io_merged_recursive: entries(&blkio.merged),
                io_time_recursive: entries(&blkio.time),
                sectors_recursive: entries(&blkio.sectors),
            },
            networks: None,
        }
    }

    fn from_sample(sample: &Sample, host: &Host, at: SystemTime) -> Reading {
        let entry = |op: &str, value| BlkioEntry {
            major: 0,
            minor: 0,
            op: op.into(),
            value,
        };
        Reading {
            at,
            cpu: CpuStats {
                cpu_usage: CpuUsage {
                    total_usage: sample.cpu_usage_ns,
                    ..CpuUsage::default()
                },
                ..CpuStats::default()
            },
            memory: MemoryStats {
                usage: sample.memory_usage,
                limit: limit_or_host(sample.memory_limit.unwrap_or(u64::MAX), host),
                ..MemoryStats::default()
            },
            pids: PidsStats {
                current: sample.pids,
                limit: sample.pids_limit.unwrap_or(0),
            },
            blkio: BlkioStats {
                io_service_bytes_recursive: Some(vec![
                    entry("read", sample.io_read),
                    entry("write", sample.io_write),
                ]),
                ..BlkioStats::default()
            },
            networks: None,
        }
    }

    fn json(&self, base: &StatsJson, previous: Option<&Reading>) -> StatsJson {
        StatsJson {
            read: go_time(Some(self.at)),
            preread: go_time(previous.map(|p| p.at)),
            pids_stats: PidsStats { ..self.pids },
            blkio_stats: BlkioStats {
                io_service_bytes_recursive: self.blkio.io_service_bytes_recursive.clone(),
                io_serviced_recursive: self.blkio.io_serviced_recursive.clone(),
                io_queue_recursive: self.blkio.io_queue_recursive.clone(),
                io_service_time_recursive: self.blkio.io_service_time_recursive.clone(),
                io_wait_time_recursive: self.blkio.io_wait_time_recursive.clone(),
                io_merged_recursive: self.blkio.io_merged_recursive.clone(),
                io_time_recursive: self.blkio.io_time_recursive.clone(),
                sectors_recursive: self.blkio.sectors_recursive.clone(),
            },
            num_procs: 0,
            storage_stats: StorageStats {},
            cpu_stats: self.cpu.clone(),
            precpu_stats: previous.map(|p| p.cpu.clone()).unwrap_or_default(),
            memory_stats: MemoryStats {
                stats: self.memory.stats.clone(),
                ..self.memory
            },
            name: base.name.clone(),
            id: base.id.clone(),
            networks: self.networks.clone(),
        }
    }
}

/// dockerd shows the host's memory as the limit of a container without one.
fn limit_or_host(limit: u64, host: &Host) -> u64 {
    match host.memory {
        Some(memory) if limit >= NO_LIMIT_FROM || limit > memory => memory,
        _ if limit >= NO_LIMIT_FROM => 0,
        _ => limit,
    }
}

/// The host's CPU time in nanoseconds, as dockerd counts it: the first seven fields of the
/// `cpu` line of /proc/stat (user … softirq), in ticks.
fn system_cpu_usage() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    system_cpu_usage_of(&text)
}

fn system_cpu_usage_of(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let mut ticks = 0u64;
    for field in line.split_whitespace().skip(1).take(7) {
        ticks = ticks.saturating_add(field.parse().ok()?);
    }
    Some(ticks.saturating_mul(NANOS_PER_TICK))
}

/// Interfaces of a network namespace from its /proc/net/dev, loopback left out as dockerd
/// does.
fn parse_net_dev(text: &str) -> BTreeMap<String, NetworkStats> {
    let mut networks = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let n: Vec<u64> = counters
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        if name == "lo" || n.len() < 12 {
            continue;
        }
        networks.insert(
            name.to_string(),
            NetworkStats {
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            },
        );
    }
    networks
}

/// A time as Go's `time.Time` marshals to JSON (RFC 3339, trailing zeros of the fraction
/// cut); None is Go's zero time.
fn go_time(time: Option<SystemTime>) -> String {
    let Some(time) = time.filter(|t| *t > UNIX_EPOCH) else {
        return "0001-01-01T00:00:00Z".into();
    };
    let text = humantime::format_rfc3339_nanos(time).to_string();
    match text.strip_suffix('Z').and_then(|t| t.split_once('.')) {
        Some((seconds, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                format!("{seconds}Z")
            } else {
                format!("{seconds}.{fraction}Z")
            }
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpus("0-1\n"), Some(2));
        assert_eq!(count_cpus("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpus("0"), Some(1));
        assert_eq!(count_cpus(""), None);
        assert_eq!(count_cpus("3-1"), None);
    }

    #[test]
    fn system_cpu_usage_sums_seven_fields_in_nanoseconds() {
        let text = "cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 1 1 1 1 1 1 1 1 1\n";
        assert_eq!(system_cpu_usage_of(text), Some(28 * NANOS_PER_TICK));
        assert_eq!(system_cpu_usage_of("intr 1 2\n"), None);
    }

    #[test]
    fn net_dev_gives_interfaces_without_loopback() {
        let text = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    1500      12    1    2    0     0          0         0      900       7    3    4    0     0       0          0
";
        let networks = parse_net_dev(text);
        assert_eq!(networks.len(), 1);
        assert_eq!(
            networks["eth0"],
            NetworkStats {
                rx_bytes: 1500,
                rx_packets: 12,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 900,
                tx_packets: 7,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
    }

    #[test]
    fn times_are_written_as_go_writes_them() {
        assert_eq!(go_time(None), "0001-01-01T00:00:00Z");
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(go_time(Some(at)), "2023-11-14T22:13:20.12Z");
        let whole = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(go_time(Some(whole)), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn a_missing_limit_is_the_host_memory() {
        let host = Host {
            memory: Some(8 << 30),
            online_cpus: 2,
            netns: None,
        };
        assert_eq!(limit_or_host(u64::MAX, &host), 8 << 30);
        assert_eq!(limit_or_host(0x7FFF_FFFF_FFFF_F000, &host), 8 << 30);
        assert_eq!(limit_or_host(256 << 20, &host), 256 << 20);
        let unknown = Host {
            memory: None,
            ..host
        };
        assert_eq!(limit_or_host(u64::MAX, &unknown), 0);
    }
}
