//! Images: where they come from (registries, local layouts and archives), the verified
//! content store they land in, the records of what each reference resolved to, unpacked
//! layers for overlayfs, and garbage collection.

pub mod auth;
pub(crate) mod compression;
mod events;
pub(crate) mod local;
pub mod manifest;
pub(crate) mod record;
pub mod registry;
pub(crate) mod store;
pub(crate) mod unpack;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::digest::Digest;
use crate::spec::image_ref::ImageSource;
use crate::state::events::{Action, Event, EventLog, Subject};
use crate::state::image::ImageRecord;
use auth::Credentials;
use record::{RecordError, Records};
use registry::{Progress, PullError, PullOptions};
use store::{ContentStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Local(#[from] local::LocalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("unpacking {source_ref} into {}: {error}", dir.display())]
    Flatten {
        source_ref: String,
        dir: PathBuf,
        error: unpack::UnpackError,
    },
    #[error("background task failed: {0}")]
    Task(String),
}

/// The image side of berth's state root.
pub struct ImageService {
    store: ContentStore,
    records: Records,
    credentials: Credentials,
    scratch: PathBuf,
    events: EventLog,
}

/// What a prune removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub images: Vec<String>,
    pub blobs: usize,
    pub layers: usize,
    pub bytes: u64,
}

impl ImageService {
    pub fn open(state_root: &Path, auth_file: Option<&Path>) -> Result<Self, ImageError> {
        let mut service = Self::open_local(state_root)?;
        service.credentials = Credentials::load(auth_file)?;
        Ok(service)
    }

    /// For work that never contacts a registry (listing, unpacking what is present,
    /// pruning): no credentials file is read, so a broken one cannot get in the way.
    pub fn open_local(state_root: &Path) -> Result<Self, ImageError> {
        let scratch = state_root.join("tmp");
        // Archives are extracted here: as private as the store they land in.
        crate::fsutil::private_dir(&scratch).map_err(StoreError::from)?;
        Ok(ImageService {
            store: ContentStore::open(state_root)?,
            records: Records::open(state_root)?,
            credentials: Credentials::default(),
            scratch,
            events: EventLog::new(&crate::state::layout::Layout::new(state_root)),
        })
    }

    pub fn credentials_mut(&mut self) -> &mut Credentials {
        &mut self.credentials
    }

    /// Resolve a source and fetch everything it needs; records the result, and the pull in
    /// the event log (bytes fetched, duration) or its failure.
    pub async fn pull(
        &self,
        source: &ImageSource,
        options: &PullOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<ImageRecord, ImageError> {
        let began = std::time::Instant::now();
        let counted = Arc::new(events::Counted::new(progress));
        let pulled = self.pull_uncounted(source, options, counted.clone()).await;
        let name = source.to_string();
        let event = match &pulled {
            Ok(record) => Event::now(Subject::Image, Action::Pull, &name)
                .with("name", &name)
                .with("digest", &record.manifest)
                .with("bytes", counted.bytes())
                .with("duration_ms", crate::units::millis(began.elapsed())),
            Err(e) => Event::now(Subject::Image, Action::PullFailed, &name)
                .with("name", &name)
                .with("error", e)
                .with("duration_ms", crate::units::millis(began.elapsed())),
        };
        self.events.append(&event);
        pulled
    }

    async fn pull_uncounted(
        &self,
        source: &ImageSource,
        options: &PullOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<ImageRecord, ImageError> {
        let text = source.to_string();
        let store = self.store.clone();
        let _gc = tokio::task::spawn_blocking(move || store.gc_lock(false))
            .await
            .map_err(|e| ImageError::Task(e.to_string()))??;
        let record = match source {
            ImageSource::Registry(r) => {
                registry::pull(&self.store, r, &self.credentials, options, progress).await?
            }
            local_source => {
                let (store, scratch, platform, src, text2) = (
                    self.store.clone(),
                    self.scratch.clone(),
                    options.platform.clone(),
                    local_source.clone(),
                    text.clone(),
                );
                let record =
                    tokio::task::spawn_blocking(move || -> Result<ImageRecord, ImageError> {
                        Ok(match &src {
                            ImageSource::OciLayout { path, tag } => local::import_layout(
                                &store,
                                Path::new(path),
                                tag.as_deref(),
                                &platform,
                                &text2,
                            )?,
                            ImageSource::OciArchive { path, tag } => local::import_oci_archive(
                                &store,
                                Path::new(path),
                                tag.as_deref(),
                                &platform,
                                &text2,
                                &scratch,
                            )?,
                            ImageSource::DockerArchive { path, reference } => {
                                local::import_docker_archive(
                                    &store,
                                    Path::new(path),
                                    reference.as_deref(),
                                    &text2,
                                    &scratch,
                                )?
                            }
                            ImageSource::Registry(_) => unreachable!("handled above"),
                        })
                    })
                    .await
                    .map_err(|e| ImageError::Task(e.to_string()))??;
                if options.unpack {
                    self.layer_dirs(&record, &options.limits)?;
                }
                record
            }
        };
        self.records.save(&record)?;
        Ok(record)
    }

    /// The record of a source, if it was pulled and every blob it needs is still present.
    pub fn get(&self, source: &ImageSource) -> Result<Option<ImageRecord>, ImageError> {
        let Some(record) = self.records.get(&source.to_string())? else {
            return Ok(None);
        };
        Ok(self.is_complete(&record).then_some(record))
    }

    /// Every blob the record needs is still in the store.
    pub(crate) fn is_complete(&self, record: &ImageRecord) -> bool {
        self.store.has_blob(&record.manifest)
            && self.store.has_blob(&record.config)
            && record.layers.iter().all(|l| self.store.has_blob(&l.digest))
    }

    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        Ok(self.records.list()?)
    }

    /// The image's config (entrypoint, env, user…), as stored.
    pub fn config(
        &self,
        record: &ImageRecord,
    ) -> Result<oci_spec::image::ImageConfiguration, ImageError> {
        let bytes = self
            .store
            .read_blob(&record.config, manifest::MAX_MANIFEST_SIZE)?;
        manifest::parse_config(&bytes, &record.config).map_err(|e| ImageError::Pull(e.into()))
    }

    /// Unpacked layer directories, lowest first (overlayfs wants them highest first).
    pub(crate) fn layer_dirs(
        &self,
        record: &ImageRecord,
        limits: &unpack::Limits,
    ) -> Result<Vec<PathBuf>, ImageError> {
        record
            .layers
            .iter()
            .map(|l| Ok(self.store.ensure_layer(&l.digest, &l.diff_id, limits)?))
            .collect()
    }

    /// Write the image's flattened root filesystem into `dir` (like `umoci unpack`).
    pub fn flatten(&self, record: &ImageRecord, dir: &Path) -> Result<(), ImageError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ImageError::Store(crate::fsutil::io_err("create", dir)(e).into()))?;
        for layer in &record.layers {
            let file = self.store.open_blob(&layer.digest)?;
            unpack::unpack_layer(
                std::io::BufReader::with_capacity(1 << 20, file),
                dir,
                unpack::Target::Flatten,
                &unpack::Limits::default(),
                Some(&layer.diff_id),
            )
            .map_err(|error| ImageError::Flatten {
                source_ref: record.source.clone(),
                dir: dir.into(),
                error,
            })?;
        }
        Ok(())
    }

    /// Remove every image record not in `keep`, then every blob and unpacked layer that no
    /// remaining record needs, keeping also the unpacked layers `keep_layers` (by diff id):
    /// the lower directories of existing containers, whose image record may since point
    /// elsewhere.
    pub(crate) fn prune_keeping(
        &self,
        keep: &BTreeSet<String>,
        keep_layers: &BTreeSet<Digest>,
    ) -> Result<PruneReport, ImageError> {
        let mut report = PruneReport::default();
        let mut live_blobs: BTreeSet<Digest> = BTreeSet::new();
        let mut live_layers: BTreeSet<Digest> = keep_layers.clone();
        for record in self.records.list()? {
            if keep.contains(&record.source) {
                live_blobs.insert(record.manifest.clone());
                live_blobs.extend(record.index.iter().cloned());
                live_blobs.insert(record.config.clone());
                for l in &record.layers {
                    live_blobs.insert(l.digest.clone());
                    live_layers.insert(l.diff_id.clone());
                }
            } else if self.records.remove(&record.source)? {
                self.events.append(
                    &Event::now(Subject::Image, Action::Delete, &record.source)
                        .with("name", &record.source)
                        .with("digest", &record.manifest),
                );
                report.images.push(record.source);
            }
        }
        let (blobs, bytes) = self.store.sweep_blobs(&live_blobs)?;
        report.blobs = blobs;
        report.bytes = bytes;
        report.layers = self.store.sweep_layers(&live_layers)?;
        Ok(report)
    }
}
