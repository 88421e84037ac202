//! Manifests, indexes and configs: parsing, platform selection, and turning a manifest plus
//! its config into the layer list berth records.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::{Digest, DigestError};
use crate::state::image::LayerRecord;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// What berth asks registries for, best first.
pub(crate) const ACCEPTED: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// Manifests and configs are small; anything bigger is refused before parsing.
pub(crate) const MAX_MANIFEST_SIZE: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{what} {digest} is not valid: {message}")]
    Invalid {
        what: &'static str,
        digest: String,
        message: String,
    },
    #[error(
        "manifest {digest} uses Docker schema 1, which is obsolete and unverifiable; rebuild or re-push the image"
    )]
    SchemaOne { digest: String },
    #[error("no image for platform {wanted} in index {digest} (it has: {available})")]
    NoPlatform {
        wanted: String,
        digest: String,
        available: String,
    },
    #[error(
        "image config {digest} lists {diff_ids} layer diff ids but the manifest has {layers} layers"
    )]
    LayerCount {
        digest: String,
        diff_ids: usize,
        layers: usize,
    },
    #[error("bad digest in {what}: {source}")]
    Digest {
        what: &'static str,
        source: DigestError,
    },
}

pub(crate) enum Parsed {
    Index(Box<ImageIndex>),
    Manifest(Box<ImageManifest>),
}

/// Parse manifest bytes whose digest was already verified.
pub(crate) fn parse(bytes: &[u8], digest: &Digest) -> Result<Parsed, ManifestError> {
    let invalid = |message: String| ManifestError::Invalid {
        what: "manifest",
        digest: digest.to_string(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(ManifestError::SchemaOne {
            digest: digest.to_string(),
        });
    }
    if value.get("manifests").is_some() {
        ImageIndex::from_reader(bytes)
            .map(|i| Parsed::Index(Box::new(i)))
            .map_err(|e| invalid(e.to_string()))
    } else if value.get("layers").is_some() {
        ImageManifest::from_reader(bytes)
            .map(|m| Parsed::Manifest(Box::new(m)))
            .map_err(|e| invalid(e.to_string()))
    } else {
        Err(invalid("neither an image manifest nor an index".into()))
    }
}

/// A platform as "os/architecture[/variant]".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform, named as Go (and therefore every registry) names it.
    pub(crate) fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl From<&crate::spec::model::Platform> for Platform {
    fn from(p: &crate::spec::model::Platform) -> Self {
        Platform {
            os: p.os.clone(),
            architecture: p.architecture.clone(),
            variant: p.variant.clone(),
        }
    }
}

/// The index entry for a platform. Without a wanted variant, an entry without a variant (or
/// arm64's default v8) is preferred; attestation entries ("unknown/unknown") never match.
pub(crate) fn select<'a>(
    index: &'a ImageIndex,
    wanted: &Platform,
    index_digest: &Digest,
) -> Result<&'a Descriptor, ManifestError> {
    let mut best: Option<(&Descriptor, u8)> = None;
    for entry in index.manifests() {
        let Some(p) = entry.platform() else { continue };
        if p.os().to_string() != wanted.os || p.architecture().to_string() != wanted.architecture {
            continue;
        }
        let variant = p.variant().as_deref();
        let score = match (&wanted.variant, variant) {
            (Some(w), Some(v)) if w == v => 3,
            (Some(_), _) => continue,
            (None, None) => 2,
            (None, Some("v8")) if wanted.architecture == "arm64" => 2,
            (None, Some(_)) => 1,
        };
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((entry, score));
        }
    }
    best.map(|(d, _)| d).ok_or_else(|| {
        let available: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(|m| m.platform().as_ref())
            .map(|p| match p.variant() {
                Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
                None => format!("{}/{}", p.os(), p.architecture()),
            })
            .collect();
        ManifestError::NoPlatform {
            wanted: wanted.to_string(),
            digest: index_digest.to_string(),
            available: available.join(", "),
        }
    })
}

pub(crate) fn descriptor_digest(
    d: &Descriptor,
    what: &'static str,
) -> Result<Digest, ManifestError> {
    d.digest()
        .to_string()
        .parse()
        .map_err(|source| ManifestError::Digest { what, source })
}

/// "os/architecture[/variant]" of an image config, as records show it.
pub(crate) fn config_platform(config: &ImageConfiguration) -> String {
    match config.variant() {
        Some(v) => format!("{}/{}/{v}", config.os(), config.architecture()),
        None => format!("{}/{}", config.os(), config.architecture()),
    }
}

pub(crate) fn parse_config(
    bytes: &[u8],
    digest: &Digest,
) -> Result<ImageConfiguration, ManifestError> {
    ImageConfiguration::from_reader(bytes).map_err(|e| ManifestError::Invalid {
        what: "image config",
        digest: digest.to_string(),
        message: e.to_string(),
    })
}

/// The manifest's layers paired with the config's diff ids.
pub(crate) fn layer_records(
    manifest: &ImageManifest,
    config: &ImageConfiguration,
    config_digest: &Digest,
) -> Result<Vec<LayerRecord>, ManifestError> {
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(ManifestError::LayerCount {
            digest: config_digest.to_string(),
            diff_ids: diff_ids.len(),
            layers: manifest.layers().len(),
        });
    }
    manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            Ok(LayerRecord {
                digest: descriptor_digest(layer, "layer descriptor")?,
                diff_id: diff_id.parse().map_err(|source| ManifestError::Digest {
                    what: "image config diff_ids",
                    source,
                })?,
                size: layer.size(),
                media_type: layer.media_type().to_string(),
            })
        })
        .collect()
}
