//! OCI image layouts and archives on disk, for local-image tests and container tests.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::images::{OCI_INDEX, TestImage, TestIndex};
use super::sha256_digest;

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub fn write_blob(layout: &Path, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let path = layout.join("blobs/sha256").join(hex_of(&digest));
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    digest
}

pub fn write_image_blobs(layout: &Path, image: &TestImage) {
    write_blob(layout, &image.manifest);
    write_blob(layout, &image.config);
    for layer in &image.layers {
        write_blob(layout, &layer.blob);
    }
}

/// An OCI image layout with `images` and `indexes` under their tags.
pub fn write_layout(layout: &Path, images: &[(&str, &TestImage)], indexes: &[(&str, &TestIndex)]) {
    fs::create_dir_all(layout.join("blobs/sha256")).expect("layout dirs");
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .expect("oci-layout");
    let mut manifests = Vec::new();
    for (tag, image) in images {
        write_image_blobs(layout, image);
        manifests.push(json!({
            "mediaType": image.manifest_media_type,
            "digest": image.manifest_digest,
            "size": image.manifest.len(),
            "annotations": {REF_NAME: tag},
        }));
    }
    for (tag, index) in indexes {
        for image in &index.images {
            write_image_blobs(layout, image);
        }
        write_blob(layout, &index.manifest);
        manifests.push(json!({
            "mediaType": index.media_type,
            "digest": index.manifest_digest,
            "size": index.manifest.len(),
            "annotations": {REF_NAME: tag},
        }));
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    fs::write(layout.join("index.json"), index.to_string()).expect("index.json");
}

/// A tar of `dir`'s content, entries relative to it (as skopeo and docker write them).
pub fn tar_dir(dir: &Path, archive: &Path) {
    fn add(builder: &mut tar::Builder<fs::File>, base: &Path, dir: &Path) {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let rel = path.strip_prefix(base).expect("inside");
            builder
                .append_path_with_name(&path, rel)
                .unwrap_or_else(|e| panic!("tar {}: {e}", path.display()));
            if path.is_dir() {
                add(builder, base, &path);
            }
        }
    }
    let mut builder = tar::Builder::new(fs::File::create(archive).expect("create archive"));
    add(&mut builder, dir, dir);
    builder.finish().expect("finish archive");
}
