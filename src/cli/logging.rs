//! berth's own log: where it goes and how it looks.
//!
//! - Under systemd, stderr is the journal (`JOURNAL_STREAM` names stderr's device and inode):
//!   events go to journald natively, with their priority and their fields (`CONTAINER`,
//!   `ENTRY`, `STEP`, `TRIGGER`, …) as journal fields, so `journalctl -u berth
//!   CONTAINER=web-…` and `-p warning` work.
//! - Otherwise plain text on stderr, coloured only on a terminal; or JSON lines on request.
//!
//! The agent logs at `info` (passes, steps, switches), other commands at `warn`; `BERTH_LOG`
//! replaces either filter.

use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// `--log-format` / `BERTH_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
    /// Native journald entries (needs /run/systemd/journal/socket).
    Journald,
}

/// libcgroups warns about every controller this kernel lacks, on every open.
const QUIET: &str = "libcgroups=error";

pub fn init(format: Option<LogFormat>, agent: bool) {
    let filter = || {
        EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| {
            EnvFilter::new(format!("{},{QUIET}", if agent { "info" } else { "warn" }))
        })
    };
    let format = format.unwrap_or_else(|| {
        if stderr_is_journal() {
            LogFormat::Journald
        } else {
            LogFormat::Text
        }
    });
    if format == LogFormat::Journald {
        match journald() {
            Ok(layer) => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return;
            }
            // The journal's socket is gone (journald restarting): text on stderr still
            // reaches it through the stream.
            Err(e) => eprintln!("berth: cannot log to journald ({e}); logging text to stderr"),
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    if format == LogFormat::Json {
        builder.json().with_ansi(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose stderr is the journal; a
/// child whose stderr was redirected inherits the variable but not the stream.
fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    journal_stream_matches(&value.to_string_lossy(), stderr.dev(), stderr.ino())
}

fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    value
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// Fields keep their own names (`container` → `CONTAINER`); levels map to syslog
/// priorities as journalctl reads them: info is 6, so `-p info` shows the agent's passes.
fn journald() -> std::io::Result<tracing_journald::Layer> {
    use tracing_journald::{Priority, PriorityMappings};
    Ok(tracing_journald::layer()?
        .with_field_prefix(None)
        .with_syslog_identifier("berth".into())
        .with_priority_mappings(PriorityMappings {
            error: Priority::Error,
            warn: Priority::Warning,
            info: Priority::Informational,
            debug: Priority::Debug,
            trace: Priority::Debug,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_device_and_inode() {
        assert!(journal_stream_matches("2049:1234", 2049, 1234));
        assert!(!journal_stream_matches("2049:1234", 2049, 1235));
        assert!(!journal_stream_matches("2049", 2049, 1234));
        assert!(!journal_stream_matches("x:1234", 2049, 1234));
    }
}
