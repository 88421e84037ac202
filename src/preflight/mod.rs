//! `berth check`: what this host lacks for berth, each with how to fix it. Every probe asks
//! the kernel or a tool for real and leaves nothing behind: the overlay trials run in a forked
//! child's private mount namespace (gone with it), the one directory they need in the state
//! root is removed again, and nothing else is written.
//!
//! The judging is pure (`judge`): the probes (`kernel`, `host`, `overlay`) only gather
//! text and numbers from /proc, syscalls and `nft`, and hand them over.

mod host;
mod judge;
mod kernel;
mod overlay;

use std::path::{Path, PathBuf};

use serde::Serialize;

/// How a check came out. `Warn` is something to know (berth runs); `Fail` stops berth from
/// running containers the way it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome: what was found, and for anything not ok what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub found: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn ok(name: &'static str, found: impl Into<String>) -> Check {
        Check {
            name,
            verdict: Verdict::Ok,
            found: found.into(),
            fix: None,
        }
    }

    pub(crate) fn warn(
        name: &'static str,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            verdict: Verdict::Warn,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn fail(
        name: &'static str,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            verdict: Verdict::Fail,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check's name, in the order [`run`] reports them.
pub const CHECKS: &[&str] = &[
    "openat2",
    "overlayfs",
    "mount_setattr",
    "pidfd",
    "cgroups",
    "libseccomp",
    "nftables",
    "forward-policy",
    "ip-forward",
    "state-root",
    "tini",
];

/// What a probe could not read; reported as the check's finding.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: unexpected {text:?}")]
    Parse { what: &'static str, text: String },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

pub(crate) fn read(path: &str) -> Result<String, PreflightError> {
    std::fs::read_to_string(path).map_err(|source| PreflightError::Read {
        path: path.into(),
        source,
    })
}

/// Run every check for the state root `root` (which need not exist yet). Forks for the
/// overlay trials: call it while the process is single-threaded, or those two checks say
/// they could not try.
pub fn run(root: &Path) -> Vec<Check> {
    let trial = overlay::trial(root);
    let mut checks = vec![
        kernel::openat2(),
        overlay::overlayfs(&trial),
        kernel::mount_setattr(),
        kernel::pidfd(),
        kernel::cgroups(),
        host::libseccomp(),
    ];
    let nft = host::nft_chains();
    checks.push(host::nftables(&nft));
    checks.push(host::forward_policy(&nft));
    checks.push(host::ip_forward());
    checks.push(overlay::state_root(&trial));
    checks.push(host::tini());
    debug_assert!(checks.iter().map(|c| c.name).eq(CHECKS.iter().copied()));
    checks
}
