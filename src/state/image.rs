//! What berth records of a pulled image (`<state root>/images/<hash>.json`): the manifest a
//! reference resolved to, its config and layers. The image store (`image::record`) reads and
//! writes these; the runtime reads the layers a container is made of.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as stored (compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar, from the image config.
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The canonical image source (`spec::image_ref::ImageSource` text).
    pub source: String,
    /// The image manifest the source resolved to: what "the image's digest" means.
    pub manifest: Digest,
    /// The index or manifest list it was selected from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
    pub config: Digest,
    /// "os/architecture[/variant]".
    pub platform: String,
    pub layers: Vec<LayerRecord>,
    /// When the source was last resolved (RFC 3339).
    pub resolved_at: String,
}

impl crate::state::format::Record for ImageRecord {
    const KIND: &'static str = "image record";
    const FORMAT: u64 = 1;
}

impl ImageRecord {
    /// Compressed size of the image (config and layers).
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}
