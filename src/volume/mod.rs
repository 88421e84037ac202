//! Named volumes: directories under the state root that outlive containers. Created on first
//! use with the entry's owner and mode, seeded once with the image's content at the mount
//! point (as Docker does), and removed only when asked.
//!
//! ```text
//! <state root>/volumes/<name>/volume.json   what berth created (ownership claim)
//!                            /_data/        the data, bind-mounted into containers
//!                            /seeded        present once seeding happened (or was not wanted)
//! ```

mod seed;

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError, io_err};
use crate::spec::model::Volume;
use crate::state::events::{Action, Event, EventLog, Subject};

pub(crate) use seed::seed_from;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("volume {name}: {} exists but berth did not create it (no volume.json); move it away or pick another name", path.display())]
    NotOurs { name: String, path: PathBuf },
    #[error("volume {0}")]
    Record(#[from] crate::state::record::RecordError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl crate::state::format::Record for VolumeRecord {
    const KIND: &'static str = "volume record";
    const FORMAT: u64 = 1;
}

#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
    events: EventLog,
}

impl Volumes {
    pub fn new(state_root: &Path) -> Volumes {
        Volumes {
            dir: state_root.join("volumes"),
            events: EventLog::new(&crate::state::layout::Layout::new(state_root)),
        }
    }

    pub(crate) fn dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn data(&self, name: &str) -> PathBuf {
        self.dir(name).join("_data")
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.dir(name).join("volume.json")
    }

    pub(crate) fn seed_marker(&self, name: &str) -> PathBuf {
        self.dir(name).join("seeded")
    }

    /// Create the volume if it does not exist; an existing one is left as it is (its data
    /// is the user's). Returns the data directory.
    pub(crate) fn ensure(&self, name: &str, spec: &Volume) -> Result<PathBuf, VolumeError> {
        let dir = self.dir(name);
        let data = self.data(name);
        // Data written by containers (setuid files included) must not be reachable by other
        // users of the host; also tightens a directory an older berth left open.
        fsutil::private_dir(&self.dir)?;
        if self.get(name)?.is_some() {
            return Ok(data);
        }
        if dir.exists() {
            return Err(VolumeError::NotOurs {
                name: name.into(),
                path: dir,
            });
        }
        // Build it under a temporary name and rename, so a crash never leaves a volume
        // without its record.
        let tmp = self.dir.join(format!(".{name}.creating"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io_err("removing", &tmp))?;
        }
        let tmp_data = tmp.join("_data");
        std::fs::create_dir_all(&tmp_data).map_err(io_err("creating", &tmp_data))?;
        if spec.uid.is_some() || spec.gid.is_some() {
            chown(&tmp_data, spec.uid, spec.gid).map_err(io_err("chown", &tmp_data))?;
        }
        let mode = spec.mode.unwrap_or(0o755);
        std::fs::set_permissions(&tmp_data, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &tmp_data))?;
        let explicit_owner = spec.uid.is_some() || spec.gid.is_some() || spec.mode.is_some();
        if explicit_owner {
            // The entry decided owner and mode: seeding must not take them from the image.
            std::fs::write(tmp.join("keep-owner"), b"").map_err(io_err("writing", &tmp))?;
        }
        let record = VolumeRecord {
            name: name.into(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            labels: spec.labels.clone(),
        };
        let path = tmp.join("volume.json");
        fsutil::write_atomic(&path, &crate::state::record::encode(&path, &record)?)?;
        fsutil::sync_dir(&tmp)?;
        std::fs::rename(&tmp, &dir).map_err(io_err("renaming", &tmp))?;
        fsutil::sync_dir(&self.dir)?;
        self.record_event(Action::Create, name);
        Ok(data)
    }

    fn get(&self, name: &str) -> Result<Option<VolumeRecord>, VolumeError> {
        let path = self.record_path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e).into()),
        };
        Ok(Some(crate::state::record::decode(&path, &bytes)?))
    }

    pub fn list(&self) -> Result<Vec<VolumeRecord>, VolumeError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &self.dir)(e).into()),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(record) = self.get(&name)? {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether seeding should keep the volume's own owner and mode.
    pub(crate) fn keeps_owner(&self, name: &str) -> bool {
        self.dir(name).join("keep-owner").exists()
    }

    /// Delete a volume and its data. Only for volumes berth created.
    pub fn remove(&self, name: &str) -> Result<bool, VolumeError> {
        if self.get(name)?.is_none() {
            return Ok(false);
        }
        let dir = self.dir(name);
        let doomed = self.dir.join(fsutil::doomed_name(name));
        std::fs::rename(&dir, &doomed).map_err(io_err("renaming", &dir))?;
        std::fs::remove_dir_all(&doomed).map_err(io_err("removing", &doomed))?;
        self.record_event(Action::Destroy, name);
        Ok(true)
    }

    fn record_event(&self, action: Action, name: &str) {
        let event = Event::now(Subject::Volume, action, name)
            .with("name", name)
            .with("driver", "local");
        self.events.append(&event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn spec() -> Volume {
        Volume {
            origin: crate::spec::model::Origin {
                file: "v.toml".into(),
                line: 1,
            },
            uid: Some(1234),
            gid: Some(5678),
            mode: Some(0o750),
            labels: Default::default(),
        }
    }

    #[test]
    fn ensure_creates_once_and_keeps_data() {
        let root = tempfile::tempdir().expect("tempdir");
        let volumes = Volumes::new(root.path());
        let data = volumes.ensure("db", &spec()).expect("create");
        let meta = std::fs::metadata(&data).expect("stat");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (1234, 5678, 0o750)
        );
        std::fs::write(data.join("keep"), "x").expect("write");
        assert_eq!(volumes.ensure("db", &spec()).expect("again"), data);
        assert!(data.join("keep").exists());
        assert_eq!(volumes.list().expect("list").len(), 1);
        assert!(volumes.keeps_owner("db"));
        assert!(volumes.remove("db").expect("remove"));
        assert!(!volumes.dir("db").exists());
        assert!(!volumes.remove("db").expect("again"));
    }

    #[test]
    fn a_directory_berth_did_not_create_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let volumes = Volumes::new(root.path());
        std::fs::create_dir_all(volumes.dir("x")).expect("mkdir");
        assert!(matches!(
            volumes.ensure("x", &spec()),
            Err(VolumeError::NotOurs { .. })
        ));
        assert!(volumes.list().expect("list").is_empty());
    }
}
