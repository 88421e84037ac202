//! What berth knows about a pulled image: the manifest a reference resolved to, its config
//! and layers. One JSON file per reference under `<state root>/images/`, written atomically;
//! blobs and layers themselves live in the content store.

use std::fs;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::fsutil::{self, FsError, io_err};
use crate::state::image::ImageRecord;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("image {0}")]
    Record(#[from] crate::state::record::RecordError),
}

#[derive(Debug, Clone)]
pub(crate) struct Records {
    dir: PathBuf,
}

impl Records {
    pub(crate) fn open(state_root: &Path) -> Result<Self, RecordError> {
        let dir = state_root.join("images");
        // Root only (tightened if an older berth made it 0755): records name private
        // registries and references.
        fsutil::private_dir(&dir)?;
        Ok(Records { dir })
    }

    fn path(&self, source: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", Digest::of(source.as_bytes()).hex()))
    }

    /// Never over a record of a format this berth does not know (a newer berth's).
    pub(crate) fn save(&self, record: &ImageRecord) -> Result<(), RecordError> {
        let path = self.path(&record.source);
        if let Err(RecordError::Record(
            e @ crate::state::record::RecordError::UnknownFormat { .. },
        )) = self.get(&record.source)
        {
            return Err(e.into());
        }
        fsutil::write_atomic_private(&path, &crate::state::record::encode(&path, record)?)?;
        Ok(())
    }

    pub(crate) fn get(&self, source: &str) -> Result<Option<ImageRecord>, RecordError> {
        let path = self.path(source);
        match fs::read(&path) {
            Ok(bytes) => Self::parse(&path, &bytes).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e).into()),
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<ImageRecord, RecordError> {
        Ok(crate::state::record::decode(path, bytes)?)
    }

    /// Every record, sorted by source.
    pub(crate) fn list(&self) -> Result<Vec<ImageRecord>, RecordError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))? {
            let entry = entry.map_err(io_err("list", &self.dir))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && !entry.file_name().to_string_lossy().starts_with('.')
            {
                let bytes = fs::read(&path).map_err(io_err("read", &path))?;
                out.push(Self::parse(&path, &bytes)?);
            }
        }
        out.sort_by(|a, b| a.source.cmp(&b.source));
        Ok(out)
    }

    pub(crate) fn remove(&self, source: &str) -> Result<bool, RecordError> {
        let path = self.path(source);
        match fs::remove_file(&path) {
            Ok(()) => {
                fsutil::sync_dir(&self.dir)?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &path)(e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::image::LayerRecord;

    fn record(source: &str) -> ImageRecord {
        ImageRecord {
            source: source.into(),
            manifest: Digest::of(b"m"),
            index: None,
            config: Digest::of(b"c"),
            platform: "linux/amd64".into(),
            layers: vec![LayerRecord {
                digest: Digest::of(b"l"),
                diff_id: Digest::of(b"d"),
                size: 10,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }],
            resolved_at: "2026-11-28T00:00:00Z".into(),
        }
    }

    #[test]
    fn save_get_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::open(dir.path()).unwrap();
        records.save(&record("docker.io/library/b:1")).unwrap();
        records.save(&record("docker.io/library/a:1")).unwrap();
        assert_eq!(
            records.get("docker.io/library/a:1").unwrap(),
            Some(record("docker.io/library/a:1"))
        );
        let all: Vec<String> = records
            .list()
            .unwrap()
            .into_iter()
            .map(|r| r.source)
            .collect();
        assert_eq!(all, ["docker.io/library/a:1", "docker.io/library/b:1"]);
        assert!(records.remove("docker.io/library/a:1").unwrap());
        assert!(!records.remove("docker.io/library/a:1").unwrap());
        assert_eq!(records.get("docker.io/library/a:1").unwrap(), None);
    }
}
