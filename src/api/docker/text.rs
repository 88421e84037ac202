//! How Docker words a container's state and times: "Up 3 minutes (healthy)", "Exited (0) 2
//! minutes ago", RFC 3339 with nanoseconds, the zero time for "never". Pure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a container is doing, in Docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// Made, never started.
    Created,
    /// Running since `started_ms`; `health` is "starting", "healthy" or "unhealthy".
    Running {
        started_ms: u64,
        health: Option<String>,
    },
    /// Ended at `finished_ms` with `code` (the shell's convention for a signal).
    Exited { code: i32, finished_ms: u64 },
    /// Neither running nor recorded as ended (its monitor was killed, or a reboot).
    Dead,
}

impl Phase {
    /// `State` of `containers/json` and `State.Status` of inspect.
    pub(super) fn state(&self) -> &'static str {
        match self {
            Phase::Created => "created",
            Phase::Running { .. } => "running",
            Phase::Exited { .. } => "exited",
            Phase::Dead => "dead",
        }
    }

    /// `Status` of `containers/json`, as moby's `State.String()` words it.
    pub(super) fn status(&self, now_ms: u64) -> String {
        match self {
            Phase::Created => "Created".into(),
            Phase::Running { started_ms, health } => {
                let up = human_duration(since(*started_ms, now_ms));
                match health.as_deref() {
                    Some("starting") => format!("Up {up} (health: starting)"),
                    Some(h) => format!("Up {up} ({h})"),
                    None => format!("Up {up}"),
                }
            }
            Phase::Exited { code, finished_ms } => format!(
                "Exited ({code}) {} ago",
                human_duration(since(*finished_ms, now_ms))
            ),
            Phase::Dead => "Dead".into(),
        }
    }
}

fn since(then_ms: u64, now_ms: u64) -> Duration {
    Duration::from_millis(now_ms.saturating_sub(then_ms))
}

/// go-units' `HumanDuration`, which the docker CLI and dockerd print.
pub(super) fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = (seconds + 1800) / 3600;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}

/// Go's zero time as Docker prints "never".
pub(super) const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A time in milliseconds since the epoch as RFC 3339 with nanoseconds (Docker's format).
pub(super) fn rfc3339_ms(ms: u64) -> String {
    if ms == 0 {
        return ZERO_TIME.into();
    }
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Seconds since the epoch of an RFC 3339 time (`Created` of the listings); 0 if unreadable.
pub(super) fn unix_seconds(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

/// An RFC 3339 time as Docker prints it (nanoseconds), or the zero time if unreadable.
pub(super) fn rfc3339_nanos(rfc3339: &str) -> String {
    humantime::parse_rfc3339_weak(rfc3339)
        .map(|t| humantime::format_rfc3339_nanos(t).to_string())
        .unwrap_or_else(|_| ZERO_TIME.into())
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_docker_prints_them() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(180)), "3 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(21 * 86400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86400)), "3 months");
        assert_eq!(human_duration(s(800 * 86400)), "2 years");
    }

    #[test]
    fn statuses_read_as_docker_prints_them() {
        let now = 1_000_000_000;
        let running = |health: Option<&str>| Phase::Running {
            started_ms: now - 180_000,
            health: health.map(str::to_string),
        };
        assert_eq!(running(None).status(now), "Up 3 minutes");
        assert_eq!(
            running(Some("healthy")).status(now),
            "Up 3 minutes (healthy)"
        );
        assert_eq!(
            running(Some("starting")).status(now),
            "Up 3 minutes (health: starting)"
        );
        let exited = Phase::Exited {
            code: 137,
            finished_ms: now - 120_000,
        };
        assert_eq!(exited.status(now), "Exited (137) 2 minutes ago");
        assert_eq!(exited.state(), "exited");
        assert_eq!(Phase::Created.status(now), "Created");
        assert_eq!(Phase::Dead.state(), "dead");
    }

    #[test]
    fn times_are_rfc3339_with_nanoseconds() {
        assert_eq!(
            rfc3339_ms(1_700_000_000_123),
            "2023-11-14T22:13:20.123000000Z"
        );
        assert_eq!(rfc3339_ms(0), ZERO_TIME);
        assert_eq!(unix_seconds("2023-11-14T22:13:20.123Z"), 1_700_000_000);
        assert_eq!(
            rfc3339_nanos("2023-11-14T22:13:20Z"),
            "2023-11-14T22:13:20.000000000Z"
        );
    }
}

/// An image reference as Docker shows it: Docker Hub's `docker.io/library/` and
/// `docker.io/` prefixes dropped ("nginx:1.27"); anything else as berth writes it.
pub(super) fn familiar(reference: &str) -> String {
    let short = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .unwrap_or(reference);
    short.to_string()
}

/// `REPOSITORY@DIGEST` for a reference and its manifest digest (Docker's `RepoDigests`).
pub(super) fn repo_digest(reference: &str, digest: &str) -> String {
    let familiar = familiar(reference);
    let without_digest = familiar.split('@').next().unwrap_or_default();
    // The tag is after the last `:` that follows the last `/` (a registry's port is not one).
    let slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let repository = match without_digest[slash..].rfind(':') {
        Some(colon) => &without_digest[..slash + colon],
        None => without_digest,
    };
    format!("{repository}@{digest}")
}

#[cfg(test)]
mod reference_tests {
    use super::*;

    #[test]
    fn references_read_as_docker_shows_them() {
        assert_eq!(familiar("docker.io/library/nginx:1.27"), "nginx:1.27");
        assert_eq!(
            familiar("docker.io/grafana/grafana:11"),
            "grafana/grafana:11"
        );
        assert_eq!(familiar("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app:v1");
        assert_eq!(
            repo_digest("127.0.0.1:5000/app:v1", "sha256:ab"),
            "127.0.0.1:5000/app@sha256:ab"
        );
        assert_eq!(
            repo_digest("127.0.0.1:5000/app", "sha256:ab"),
            "127.0.0.1:5000/app@sha256:ab"
        );
        assert_eq!(
            repo_digest("docker.io/library/nginx:1.27", "sha256:ab"),
            "nginx@sha256:ab"
        );
    }
}
