//! The reconciler's own report, `<root>/reconcile/status.json`, rewritten after every pass:
//! what `berth status` adds to the live state (problems in the desired files, failed
//! steps and their retry backoff, waits, what is kept and why).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PassReport;
use super::plan::FailureBook;
use crate::fsutil::FsError;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{} is damaged: {message}", path.display())]
    Damaged { path: PathBuf, message: String },
    #[error("encoding the status: {0}")]
    Encode(crate::state::format::FormatError),
}

/// Written by the reconciler; read back as plain JSON (`serde_json::Value`) by `status`,
/// so an older or newer agent's file never breaks the command.
#[derive(Debug, Serialize)]
pub struct StatusFile<'a> {
    pub dir: &'a Path,
    pub pid: u32,
    /// "agent" or "apply".
    pub mode: &'a str,
    pub last_pass: &'a PassReport,
    pub failures: &'a FailureBook,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusSummary {
    pub dir: PathBuf,
    pub pid: u32,
    pub mode: String,
    pub last_pass: serde_json::Value,
    #[serde(default)]
    pub failures: serde_json::Value,
}

/// The status file's format. It is a report, read leniently (unknown keys ignored, the pass
/// itself kept as plain JSON), so it has no migrations.
const STATUS_FORMAT: u64 = 1;

fn path(state_root: &Path) -> PathBuf {
    state_root.join("reconcile").join("status.json")
}

pub fn write(state_root: &Path, status: &StatusFile) -> Result<(), StatusError> {
    let path = path(state_root);
    crate::fsutil::private_dir(path.parent().unwrap_or(state_root))?;
    let bytes = crate::state::format::encode_as("reconciler status", STATUS_FORMAT, status)
        .map_err(StatusError::Encode)?;
    Ok(crate::fsutil::write_replace(&path, &bytes)?)
}

pub fn read(state_root: &Path) -> Result<Option<StatusSummary>, StatusError> {
    let path = path(state_root);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::fsutil::io_err("reading", &path)(e).into()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StatusError::Damaged {
            path,
            message: e.to_string(),
        })
}
