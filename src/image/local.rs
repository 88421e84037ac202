//! Images from local files, for air-gapped hosts: an OCI image layout directory, an OCI
//! archive (a tar of a layout) or a `docker save` archive. Every blob is copied into the
//! content store through the same verifying writer as a registry pull; archives are first
//! extracted with the layer unpacker, so a hostile archive cannot write outside its scratch
//! directory either.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;
use serde::Deserialize;

use super::manifest::{self, ManifestError, Parsed, Platform};
use super::store::{ContentStore, Ingest, StoreError};
use super::unpack::{self, Limits, Target, UnpackError};
use crate::digest::Digest;
use crate::state::image::{ImageRecord, LayerRecord};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is not an OCI image layout: {reason}", path.display())]
    NotLayout { path: PathBuf, reason: String },
    #[error("{} holds several images ({tags}); name one, e.g. `{}:{first}`", path.display(), path.display())]
    Ambiguous {
        path: PathBuf,
        tags: String,
        first: String,
    },
    #[error("{} has no image tagged `{tag}` (it has: {tags})", path.display())]
    NoSuchTag {
        path: PathBuf,
        tag: String,
        tags: String,
    },
    #[error("cannot extract archive {}: {source}", path.display())]
    Extract { path: PathBuf, source: UnpackError },
    #[error("{} is not a docker archive: {reason}", path.display())]
    NotDockerArchive { path: PathBuf, reason: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.into(),
        source,
    }
}

/// Copy a file into the store, verifying it against `digest` (or computing it).
fn import_blob(
    store: &ContentStore,
    path: &Path,
    digest: Option<&Digest>,
) -> Result<Digest, LocalError> {
    let digest = match digest {
        Some(d) => d.clone(),
        None => {
            let file = File::open(path).map_err(io_at(path))?;
            crate::digest::HashingReader::new(BufReader::new(file), u64::MAX)
                .finish()
                .map_err(io_at(path))?
                .0
        }
    };
    if let Ingest::Write(mut writer) = store.ingest(&digest, None)? {
        let mut file = File::open(path).map_err(io_at(path))?;
        io::copy(&mut file, &mut writer).map_err(io_at(path))?;
        writer.commit()?;
    }
    Ok(digest)
}

/// Import an image from an OCI layout directory.
pub(crate) fn import_layout(
    store: &ContentStore,
    layout: &Path,
    tag: Option<&str>,
    platform: &Platform,
    source: &str,
) -> Result<ImageRecord, LocalError> {
    let marker = layout.join("oci-layout");
    if !marker.is_file() {
        return Err(LocalError::NotLayout {
            path: layout.into(),
            reason: "no `oci-layout` file".into(),
        });
    }
    let index_path = layout.join("index.json");
    let index_bytes = std::fs::read(&index_path).map_err(io_at(&index_path))?;
    let index = ImageIndex::from_reader(&index_bytes[..]).map_err(|e| LocalError::NotLayout {
        path: layout.into(),
        reason: format!("index.json: {e}"),
    })?;
    let tags: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|m| m.annotations().as_ref()?.get(REF_NAME).cloned())
        .collect();
    let entry = match tag {
        Some(tag) => index
            .manifests()
            .iter()
            .find(|m| {
                m.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|t| t == tag)
            })
            .ok_or_else(|| LocalError::NoSuchTag {
                path: layout.into(),
                tag: tag.into(),
                tags: tags.join(", "),
            })?,
        None => match index.manifests().as_slice() {
            [only] => only,
            [] => {
                return Err(LocalError::NotLayout {
                    path: layout.into(),
                    reason: "index.json lists no image".into(),
                });
            }
            _ => {
                return Err(LocalError::Ambiguous {
                    path: layout.into(),
                    tags: tags.join(", "),
                    first: tags.first().cloned().unwrap_or_default(),
                });
            }
        },
    };
    let blob_path = |d: &Digest| layout.join("blobs/sha256").join(d.hex());
    let top = manifest::descriptor_digest(entry, "index.json entry")?;
    import_blob(store, &blob_path(&top), Some(&top))?;
    let top_bytes = store.read_blob(&top, manifest::MAX_MANIFEST_SIZE)?;
    let (manifest_digest, index_digest, image_manifest) = match manifest::parse(&top_bytes, &top)? {
        Parsed::Manifest(m) => (top, None, m),
        Parsed::Index(inner) => {
            let child = manifest::descriptor_digest(
                manifest::select(&inner, platform, &top)?,
                "index entry",
            )?;
            import_blob(store, &blob_path(&child), Some(&child))?;
            let bytes = store.read_blob(&child, manifest::MAX_MANIFEST_SIZE)?;
            let Parsed::Manifest(m) = manifest::parse(&bytes, &child)? else {
                return Err(ManifestError::Invalid {
                    what: "manifest",
                    digest: child.to_string(),
                    message: "an index points to another index".into(),
                }
                .into());
            };
            (child, Some(top), m)
        }
    };
    let config_digest = manifest::descriptor_digest(image_manifest.config(), "config descriptor")?;
    import_blob(store, &blob_path(&config_digest), Some(&config_digest))?;
    let config = manifest::parse_config(
        &store.read_blob(&config_digest, manifest::MAX_MANIFEST_SIZE)?,
        &config_digest,
    )?;
    let layers = manifest::layer_records(&image_manifest, &config, &config_digest)?;
    for layer in &layers {
        import_blob(store, &blob_path(&layer.digest), Some(&layer.digest))?;
    }
    Ok(record(
        source,
        manifest_digest,
        index_digest,
        config_digest,
        &config,
        layers,
    ))
}

fn record(
    source: &str,
    manifest: Digest,
    index: Option<Digest>,
    config_digest: Digest,
    config: &oci_spec::image::ImageConfiguration,
    layers: Vec<LayerRecord>,
) -> ImageRecord {
    ImageRecord {
        source: source.into(),
        manifest,
        index,
        config: config_digest,
        platform: manifest::config_platform(config),
        layers,
        resolved_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    }
}

/// Extract an archive into a fresh scratch directory (removed by the guard).
fn extract(archive: &Path, scratch_parent: &Path) -> Result<ScratchDir, LocalError> {
    let dir = ScratchDir::new(scratch_parent).map_err(io_at(scratch_parent))?;
    let file = File::open(archive).map_err(io_at(archive))?;
    unpack::unpack_layer(
        BufReader::with_capacity(1 << 20, file),
        &dir.0,
        Target::Flatten,
        &Limits::default(),
        None,
    )
    .map_err(|source| LocalError::Extract {
        path: archive.into(),
        source,
    })?;
    Ok(dir)
}

struct ScratchDir(pub PathBuf);

impl ScratchDir {
    fn new(parent: &Path) -> io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        crate::fsutil::private_dir(parent).map_err(io::Error::other)?;
        let path = crate::fsutil::temp_path(&parent.join("archive"));
        // An extracted image is as private as the store it is on its way to.
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn import_oci_archive(
    store: &ContentStore,
    archive: &Path,
    tag: Option<&str>,
    platform: &Platform,
    source: &str,
    scratch: &Path,
) -> Result<ImageRecord, LocalError> {
    let dir = extract(archive, scratch)?;
    import_layout(store, &dir.0, tag, platform, source)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Import a `docker save` archive: its `manifest.json` (written by every Docker version)
/// names the config and layer files. There is no manifest blob in this format, so one is
/// synthesized from the content: the same archive always gets the same image digest.
pub(crate) fn import_docker_archive(
    store: &ContentStore,
    archive: &Path,
    reference: Option<&str>,
    source: &str,
    scratch: &Path,
) -> Result<ImageRecord, LocalError> {
    let dir = extract(archive, scratch)?;
    let root = &dir.0;
    let manifest_path = root.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|_| LocalError::NotDockerArchive {
        path: archive.into(),
        reason: "no manifest.json".into(),
    })?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&bytes).map_err(|e| LocalError::NotDockerArchive {
            path: archive.into(),
            reason: format!("manifest.json: {e}"),
        })?;
    let tags: Vec<String> = entries
        .iter()
        .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
        .collect();
    let entry = match reference {
        Some(r) => entries
            .iter()
            .find(|e| {
                e.repo_tags
                    .as_ref()
                    .is_some_and(|t| t.iter().any(|t| t == r || t.ends_with(&format!("/{r}"))))
            })
            .ok_or_else(|| LocalError::NoSuchTag {
                path: archive.into(),
                tag: r.into(),
                tags: tags.join(", "),
            })?,
        None => match entries.as_slice() {
            [only] => only,
            _ => {
                return Err(LocalError::Ambiguous {
                    path: archive.into(),
                    tags: tags.join(", "),
                    first: tags.first().cloned().unwrap_or_default(),
                });
            }
        },
    };
    let inside = |name: &str| -> Result<PathBuf, LocalError> {
        // Names come from the archive: keep them inside the extracted tree.
        if Path::new(name)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(LocalError::NotDockerArchive {
                path: archive.into(),
                reason: format!("manifest.json names `{name}` outside the archive"),
            });
        }
        Ok(root.join(name))
    };
    let config_digest = import_blob(store, &inside(&entry.config)?, None)?;
    let config_bytes = store.read_blob(&config_digest, manifest::MAX_MANIFEST_SIZE)?;
    let config = manifest::parse_config(&config_bytes, &config_digest)?;
    let mut layer_descs = Vec::new();
    for name in &entry.layers {
        let path = inside(name)?;
        let digest = import_blob(store, &path, None)?;
        let size = std::fs::metadata(&path).map_err(io_at(&path))?.len();
        let head = {
            let mut buf = [0u8; 4];
            let n = io::Read::read(&mut File::open(&path).map_err(io_at(&path))?, &mut buf)
                .map_err(io_at(&path))?;
            buf[..n].to_vec()
        };
        let media_type = match super::compression::detect(&head) {
            super::compression::Compression::Gzip => {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            }
            super::compression::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            super::compression::Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
        };
        layer_descs.push(serde_json::json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size }));
    }
    // There is no manifest in this format: synthesize one, so the image has a digest.
    let manifest_json = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config_bytes.len() },
        "layers": layer_descs,
    });
    let manifest_bytes =
        serde_json::to_vec(&manifest_json).map_err(|e| LocalError::NotDockerArchive {
            path: archive.into(),
            reason: e.to_string(),
        })?;
    let manifest_digest = store.put_blob(&manifest_bytes)?;
    let Parsed::Manifest(image_manifest) = manifest::parse(&manifest_bytes, &manifest_digest)?
    else {
        return Err(LocalError::NotDockerArchive {
            path: archive.into(),
            reason: "synthesized manifest did not parse".into(),
        });
    };
    let layers = manifest::layer_records(&image_manifest, &config, &config_digest)?;
    Ok(record(
        source,
        manifest_digest,
        None,
        config_digest,
        &config,
        layers,
    ))
}
