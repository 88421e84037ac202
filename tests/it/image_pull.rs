//! berth's pulls against a real registry (`TestRegistry`), through the fault-injecting proxy
//! where a test needs faults, auth or request counts, and from local layouts and archives.
//! Each behaviour is driven through the library (`ImageService::pull`) and, where it fits, the
//! `berth` binary, and checked on disk: records, verified blobs, unpacked layers.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use berth::image::auth::{Credential, Secret};
use berth::image::manifest::Platform;
use berth::image::registry::{PullOptions, Silent};
use berth::image::{ImageError, ImageService};
use berth::spec::image_ref::ImageSource;
use berth::state::image::ImageRecord;
use serde_json::{Value, json};

use crate::support::images::{
    BUSYBOX_APPLETS, Compression, DOCKER_LAYER_GZIP, ImageBuilder, LayerBuilder, OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD, TestImage, TestIndex, TestLayer, ready_made,
};
use crate::support::layout::{tar_dir, write_layout};
use crate::support::proxy::{Fault, FaultProxy, SecondServer, base64};
use crate::support::registry::TestRegistry;
use crate::support::sha256_digest;

// ---------------------------------------------------------------------------------------------
// Helpers: driving berth

/// An empty credentials file, so library pulls never read the machine's docker config.
fn no_auth_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image_pull-no-auth.json");
        fs::write(&path, r#"{"auths": {}}"#).expect("write empty auth file");
        path
    })
}

fn open(root: &Path) -> ImageService {
    ImageService::open(root, Some(no_auth_file()))
        .unwrap_or_else(|e| panic!("open image service at {}: {e}", root.display()))
}

fn open_with_credentials(root: &Path, registry: &str, user: &str, password: &str) -> ImageService {
    let mut service = open(root);
    service.credentials_mut().insert(
        registry,
        Credential {
            username: user.to_string(),
            password: Secret::new(password),
        },
    );
    service
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Default options with a short backoff, so retry tests stay fast.
fn fast() -> PullOptions {
    PullOptions {
        backoff: Duration::from_millis(10),
        ..PullOptions::default()
    }
}

fn source(reference: &str) -> ImageSource {
    reference
        .parse()
        .unwrap_or_else(|e| panic!("parse image reference {reference}: {e}"))
}

fn pull_with(
    service: &ImageService,
    reference: &str,
    options: &PullOptions,
) -> Result<ImageRecord, ImageError> {
    runtime().block_on(service.pull(&source(reference), options, Arc::new(Silent)))
}

fn pull_ok(service: &ImageService, reference: &str, options: &PullOptions) -> ImageRecord {
    pull_with(service, reference, options)
        .unwrap_or_else(|e| panic!("pull {reference}: {}", error_text(&e)))
}

fn pull_err(service: &ImageService, reference: &str, options: &PullOptions) -> String {
    match pull_with(service, reference, options) {
        Ok(record) => panic!("pull {reference} succeeded but should fail: {record:?}"),
        Err(e) => error_text(&e),
    }
}

/// An error with all its causes.
fn error_text(e: &dyn std::error::Error) -> String {
    berth::image::registry::error_chain(e)
}

fn berth_command(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .arg("--root")
        .arg(root)
        .args(args)
        .env("NO_COLOR", "1")
        // Hermetic: no state root, log level or credentials from the environment.
        .env_remove("BERTH_ROOT")
        .env_remove("BERTH_LOG")
        .env_remove("BERTH_LOG_FORMAT")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env("HOME", root.parent().unwrap_or(root))
        .stdin(Stdio::null());
    command
}

fn berth(root: &Path, args: &[&str]) -> Output {
    berth_command(root, args).output().expect("run berth")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn assert_failure(out: &Output, what: &str) -> String {
    assert!(
        !out.status.success(),
        "{what} succeeded but should fail:\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

// ---------------------------------------------------------------------------------------------
// Helpers: the state root on disk

fn hex_of(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"))
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    root.join("content/blobs/sha256").join(hex_of(digest))
}

fn layer_path(root: &Path, diff_id: &str) -> PathBuf {
    root.join("layers/sha256").join(hex_of(diff_id))
}

/// The blob is in the store, holds exactly `bytes`, and hashes to its name.
fn assert_blob(root: &Path, digest: &str, bytes: &[u8]) {
    let path = blob_path(root, digest);
    let stored = fs::read(&path).unwrap_or_else(|e| panic!("blob {digest} in the store: {e}"));
    assert_eq!(
        sha256_digest(&stored),
        digest,
        "{} verifies",
        path.display()
    );
    assert!(stored == bytes, "blob {digest} holds the pushed bytes");
}

fn assert_no_blob(root: &Path, digest: &str) {
    assert!(
        !blob_path(root, digest).exists(),
        "blob {digest} must not be in the store"
    );
}

/// Names of `.partial` files left in the ingest directory.
fn partials(root: &Path) -> Vec<String> {
    names_in(&root.join("content/ingest"))
        .into_iter()
        .filter(|n| n.ends_with(".partial"))
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("list {}: {e}", dir.display()),
    }
}

/// Every blob an image needs (manifest, config, layers) is in the store and verifies.
fn assert_image_blobs(root: &Path, image: &TestImage) {
    assert_blob(root, &image.manifest_digest, &image.manifest);
    assert_blob(root, &image.config_digest, &image.config);
    for layer in &image.layers {
        assert_blob(root, &layer.digest, &layer.blob);
    }
}

/// The record says exactly what was pushed.
fn assert_record(record: &ImageRecord, source: &str, image: &TestImage) {
    assert_eq!(record.source, source);
    assert_eq!(record.manifest.to_string(), image.manifest_digest);
    assert_eq!(record.config.to_string(), image.config_digest);
    let platform = match &image.platform.variant {
        Some(v) => format!("{}/{}/{v}", image.platform.os, image.platform.architecture),
        None => format!("{}/{}", image.platform.os, image.platform.architecture),
    };
    assert_eq!(record.platform, platform);
    let got: Vec<(String, String, u64, String)> = record
        .layers
        .iter()
        .map(|l| {
            (
                l.digest.to_string(),
                l.diff_id.to_string(),
                l.size,
                l.media_type.clone(),
            )
        })
        .collect();
    let want: Vec<(String, String, u64, String)> = image
        .layers
        .iter()
        .map(|l| {
            (
                l.digest.clone(),
                l.diff_id.clone(),
                l.size,
                l.media_type.clone(),
            )
        })
        .collect();
    assert_eq!(got, want, "layers of {source}");
}

fn read_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn opaque_xattr(path: &Path) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut buf[..])
        .ok()
        .map(|n| buf[..n].to_vec())
}

/// An overlayfs whiteout: a character device 0/0.
fn assert_whiteout(path: &Path) {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("whiteout {}: {e}", path.display()));
    assert!(
        meta.file_type().is_char_device(),
        "{} is a character device",
        path.display()
    );
    assert_eq!(meta.rdev(), 0, "{} is device 0/0", path.display());
}

// ---------------------------------------------------------------------------------------------
// Helpers: trees

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        content: String,
    },
    Symlink {
        target: String,
    },
    Other {
        kind: String,
    },
}

/// Small text files show their text; larger ones their digest.
fn content_key(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if bytes.len() <= 512 => format!("text:{s}"),
        _ => format!("{} bytes, {}", bytes.len(), sha256_digest(bytes)),
    }
}

/// Every entry under `root` (not `root` itself), by relative path.
fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("inside root")
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&path).expect("lstat");
            let kind = meta.file_type();
            let mode = meta.permissions().mode() & 0o7777;
            let node = if kind.is_dir() {
                walk(root, &path, out);
                Node::Dir {
                    mode,
                    uid: meta.uid(),
                    gid: meta.gid(),
                }
            } else if kind.is_file() {
                Node::File {
                    mode,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    content: content_key(&fs::read(&path).expect("read file")),
                }
            } else if kind.is_symlink() {
                Node::Symlink {
                    target: fs::read_link(&path)
                        .expect("readlink")
                        .to_string_lossy()
                        .into_owned(),
                }
            } else {
                Node::Other {
                    kind: format!("{kind:?} rdev {}", meta.rdev()),
                }
            };
            out.insert(rel, node);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn assert_tree_eq(actual: &BTreeMap<String, Node>, expected: &BTreeMap<String, Node>, what: &str) {
    let mut problems = Vec::new();
    for (path, want) in expected {
        match actual.get(path) {
            None => problems.push(format!("missing {path}: want {want:?}")),
            Some(got) if got != want => {
                problems.push(format!("wrong {path}: got {got:?}, want {want:?}"))
            }
            Some(_) => {}
        }
    }
    for (path, got) in actual {
        if !expected.contains_key(path) {
            problems.push(format!("unexpected {path}: {got:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{what} differs from the documented tree:\n  {}",
        problems.join("\n  ")
    );
}

fn dir(mode: u32) -> Node {
    Node::Dir {
        mode,
        uid: 0,
        gid: 0,
    }
}

fn file(bytes: &[u8], mode: u32) -> Node {
    Node::File {
        mode,
        uid: 0,
        gid: 0,
        content: content_key(bytes),
    }
}

fn symlink(target: &str) -> Node {
    Node::Symlink {
        target: target.to_string(),
    }
}

/// The flattened tree documented on `ready_made::multi_layer_with_whiteouts`.
fn documented_multi_layer_tree() -> BTreeMap<String, Node> {
    let busybox = fs::read("/bin/busybox").expect("/bin/busybox");
    let mut t = BTreeMap::new();
    let mut put = |path: &str, node: Node| {
        t.insert(path.to_string(), node);
    };
    put("bin", dir(0o755));
    put("bin/busybox", file(&busybox, 0o755));
    for applet in BUSYBOX_APPLETS {
        put(&format!("bin/{applet}"), symlink("busybox"));
    }
    put("data", dir(0o755));
    put("etc", dir(0o755));
    for (path, content) in ready_made::MULTI_LAYER_FILES {
        put(path, file(content.as_bytes(), 0o644));
    }
    put("home", dir(0o755));
    put(
        "home/app",
        Node::Dir {
            mode: 0o755,
            uid: 1000,
            gid: 1000,
        },
    );
    put("root", dir(0o700));
    put("tmp", dir(0o1777));
    put("usr", dir(0o755));
    put("usr/bin", dir(0o755));
    put("usr/bin/env", symlink("/bin/busybox"));
    put("usr/share", dir(0o755));
    put("usr/share/app", dir(0o755));
    t
}

fn assert_documented_multi_layer_tree(out: &Path, what: &str) {
    let actual = tree(out);
    for absent in ready_made::MULTI_LAYER_ABSENT {
        assert!(
            !actual.contains_key(*absent),
            "{what}: {absent} must be absent (whited out)"
        );
    }
    assert_tree_eq(&actual, &documented_multi_layer_tree(), what);
}

// ---------------------------------------------------------------------------------------------
// Helpers: images

fn one_file_layer(path: &str, content: &str, compression: Compression) -> TestLayer {
    LayerBuilder::new()
        .dir("app", 0o755)
        .file(&format!("app/{path}"), content, 0o644)
        .build(compression)
}

/// Two small gzip layers: a base shared by every `small_image` and one of its own.
fn small_image(name: &str) -> TestImage {
    ImageBuilder::new("amd64")
        .layer(one_file_layer("base", "shared base\n", Compression::Gzip))
        .layer(one_file_layer(
            name,
            &format!("{name}\n"),
            Compression::Gzip,
        ))
        .cmd(&["/app/run"])
        .oci()
}

/// Uncompressed-tar layers, as in `docker save` archives.
fn small_tar_image() -> TestImage {
    ImageBuilder::new("amd64")
        .layer(one_file_layer("first", "one\n", Compression::None))
        .layer(
            LayerBuilder::new()
                .dir("app", 0o755)
                .file("app/second", "two\n", 0o644)
                .whiteout("app/first")
                .build(Compression::None),
        )
        .cmd(&["/app/second"])
        .docker()
}

// ---------------------------------------------------------------------------------------------
// Registry pulls

#[test]
fn pull_by_tag_records_verifies_and_unpacks_layers_with_overlay_whiteouts() {
    let registry = TestRegistry::start();
    let image = ready_made::multi_layer_with_whiteouts();
    registry.push_image("test/multi", "v1", &image);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let service = open(&root);
    let reference = format!("{}/test/multi:v1", registry.host());

    let record = pull_ok(&service, &reference, &fast());
    assert_record(&record, &reference, &image);
    assert_eq!(record.index, None);
    assert_image_blobs(&root, &image);
    assert!(partials(&root).is_empty(), "{:?}", partials(&root));
    // Saved, complete, and the config readable through the record.
    assert_eq!(
        service.get(&source(&reference)).expect("get"),
        Some(record.clone())
    );
    let config = service.config(&record).expect("config");
    assert_eq!(
        config
            .config()
            .as_ref()
            .and_then(|c| c.working_dir().clone()),
        Some("/data".to_string())
    );

    // Every layer unpacked under its diff id.
    let layers: Vec<PathBuf> = image
        .layers
        .iter()
        .map(|l| layer_path(&root, &l.diff_id))
        .collect();
    for (layer, path) in image.layers.iter().zip(&layers) {
        assert!(
            path.is_dir(),
            "layer {} unpacked at {}",
            layer.diff_id,
            path.display()
        );
    }
    // 1: busybox.
    assert!(layers[0].join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(layers[0].join("bin/sh")).expect("bin/sh"),
        Path::new("busybox")
    );
    let home_app = fs::metadata(layers[0].join("home/app")).expect("home/app");
    assert_eq!((home_app.uid(), home_app.gid()), (1000, 1000));
    assert_eq!(
        fs::metadata(layers[0].join("tmp"))
            .expect("tmp")
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    // 2: plain additions, no opaque marker.
    assert_eq!(read_text(&layers[1].join("data/a")), "alpha\n");
    assert_eq!(read_text(&layers[1].join("data/b")), "bravo\n");
    assert_eq!(read_text(&layers[1].join("etc/motd")), "welcome\n");
    assert_eq!(opaque_xattr(&layers[1].join("etc")), None);
    // 3: the whiteout as a 0/0 char device, /etc opaque, and the files written before the
    // marker kept.
    assert_whiteout(&layers[2].join("data/a"));
    assert!(!layers[2].join("data/.wh.a").exists());
    assert_eq!(opaque_xattr(&layers[2].join("etc")), Some(b"y".to_vec()));
    assert!(fs::symlink_metadata(layers[2].join("etc/.wh..wh..opq")).is_err());
    assert_eq!(
        read_text(&layers[2].join("etc/passwd")),
        ready_made::NEW_PASSWD
    );
    assert_eq!(
        read_text(&layers[2].join("etc/group")),
        ready_made::NEW_GROUP
    );
    assert_eq!(read_text(&layers[2].join("etc/hostname")), "berth-test\n");
    assert!(fs::symlink_metadata(layers[2].join("etc/motd")).is_err());
    assert_eq!(opaque_xattr(&layers[2].join("data")), None);
    // 4: zstd.
    assert_eq!(
        read_text(&layers[3].join("usr/share/app/version")),
        "1.2.3\n"
    );
    assert!(
        names_in(&root.join("layers/tmp"))
            .iter()
            .all(|n| n.ends_with(".lock"))
    );

    // The CLI lists it.
    let out = berth(&root, &["images", "--json"]);
    assert_success(&out, "berth images --json");
    let listed: Value = serde_json::from_slice(&out.stdout).expect("images json");
    let listed = listed.as_array().expect("array of records");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["source"], reference.as_str());
    assert_eq!(listed[0]["manifest"], image.manifest_digest.as_str());
    assert_eq!(listed[0]["config"], image.config_digest.as_str());
    assert_eq!(listed[0]["layers"].as_array().map(Vec::len), Some(4));
}

#[test]
fn unpack_writes_the_documented_flattened_tree() {
    let registry = TestRegistry::start();
    let image = ready_made::multi_layer_with_whiteouts();
    registry.push_image("test/multi", "v1", &image);
    let tmp = tempfile::tempdir().expect("tempdir");
    let reference = format!("{}/test/multi:v1", registry.host());

    // Pulled first, then unpacked from the store.
    let root = tmp.path().join("pulled");
    let out = berth(&root, &["pull", &reference]);
    assert_success(&out, "berth pull");
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&reference), "{stdout}");
    assert!(stdout.contains(&image.manifest_digest), "{stdout}");
    assert!(stdout.contains("linux/amd64, 4 layers"), "{stdout}");
    let rootfs = tmp.path().join("rootfs-pulled");
    let out = berth(
        &root,
        &["unpack", &reference, rootfs.to_str().expect("utf-8")],
    );
    assert_success(&out, "berth unpack");
    assert_documented_multi_layer_tree(&rootfs, "unpack after pull");

    // Unpacked straight from the registry (pulled without unpacking layers).
    let root = tmp.path().join("direct");
    let rootfs = tmp.path().join("rootfs-direct");
    let out = berth(
        &root,
        &["unpack", &reference, rootfs.to_str().expect("utf-8")],
    );
    assert_success(&out, "berth unpack without a pull");
    assert_documented_multi_layer_tree(&rootfs, "unpack without a pull");
    assert_image_blobs(&root, &image);
}

#[test]
fn pull_by_digest_docker_schema2_and_zstd() {
    let registry = TestRegistry::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let service = open(&root);

    // By digest only: the record keeps the digest reference.
    let oci = small_image("pinned");
    registry.push_image("test/pinned", "v1", &oci);
    let by_digest = format!("{}/test/pinned@{}", registry.host(), oci.manifest_digest);
    let record = pull_ok(&service, &by_digest, &fast());
    assert_record(&record, &by_digest, &oci);
    assert_image_blobs(&root, &oci);
    assert_eq!(
        read_text(&layer_path(&root, &oci.layers[1].diff_id).join("app/pinned")),
        "pinned\n"
    );
    // Tag and digest together resolve the digest.
    let both = format!("{}/test/pinned:v1@{}", registry.host(), oci.manifest_digest);
    let out = berth(&tmp.path().join("cli"), &["pull", &both]);
    assert_success(&out, "berth pull TAG@DIGEST");
    assert!(text(&out.stdout).contains(&oci.manifest_digest));

    // A tag the registry does not have.
    let missing = format!("{}/test/pinned:missing", registry.host());
    let err = pull_err(&service, &missing, &fast());
    assert!(err.contains("was not found"), "{err}");

    // Docker schema 2 (Docker manifest, config and layer media types).
    let docker = ImageBuilder::new("amd64")
        .layer(one_file_layer("docker", "from docker\n", Compression::Gzip).into_docker())
        .docker();
    registry.push_image("test/docker", "v1", &docker);
    let reference = format!("{}/test/docker:v1", registry.host());
    let record = pull_ok(&service, &reference, &fast());
    assert_record(&record, &reference, &docker);
    assert_eq!(record.layers[0].media_type, DOCKER_LAYER_GZIP);
    assert_image_blobs(&root, &docker);
    assert_eq!(
        read_text(&layer_path(&root, &docker.layers[0].diff_id).join("app/docker")),
        "from docker\n"
    );

    // A zstd layer over a gzip one.
    let zstd = ImageBuilder::new("amd64")
        .layer(one_file_layer("gz", "gzip\n", Compression::Gzip))
        .layer(one_file_layer("zst", "zstd\n", Compression::Zstd))
        .oci();
    registry.push_image("test/zstd", "v1", &zstd);
    let reference = format!("{}/test/zstd:v1", registry.host());
    let record = pull_ok(&service, &reference, &fast());
    assert_record(&record, &reference, &zstd);
    assert_eq!(record.layers[1].media_type, OCI_LAYER_ZSTD);
    assert_eq!(record.layers[0].media_type, OCI_LAYER_GZIP);
    assert_image_blobs(&root, &zstd);
    assert_eq!(
        read_text(&layer_path(&root, &zstd.layers[1].diff_id).join("app/zst")),
        "zstd\n"
    );
    let rootfs = tmp.path().join("zstd-rootfs");
    let out = berth(
        &root,
        &["unpack", &reference, rootfs.to_str().expect("utf-8")],
    );
    assert_success(&out, "berth unpack zstd image");
    assert_eq!(read_text(&rootfs.join("app/zst")), "zstd\n");
    assert_eq!(read_text(&rootfs.join("app/gz")), "gzip\n");
}

fn arm64_v8() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "arm64".into(),
        variant: Some("v8".into()),
    }
}

#[test]
fn multi_platform_index_and_manifest_list_select_the_platform() {
    let registry = TestRegistry::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let arch_layer = |arch: &str| one_file_layer("arch", &format!("{arch}\n"), Compression::Gzip);

    let oci_amd = ImageBuilder::new("amd64").layer(arch_layer("amd64")).oci();
    let oci_arm = ImageBuilder::new("arm64")
        .variant("v8")
        .layer(arch_layer("arm64"))
        .oci();
    let index = TestIndex::oci(vec![oci_amd.clone(), oci_arm.clone()]);
    registry.push_index("test/oci", "multi", &index);
    let docker_amd = ImageBuilder::new("amd64")
        .layer(arch_layer("docker-amd64").into_docker())
        .docker();
    let docker_arm = ImageBuilder::new("arm64")
        .variant("v8")
        .layer(arch_layer("docker-arm64").into_docker())
        .docker();
    let list = TestIndex::docker(vec![docker_amd.clone(), docker_arm.clone()]);
    registry.push_index("test/docker", "multi", &list);

    let oci_ref = format!("{}/test/oci:multi", registry.host());
    let docker_ref = format!("{}/test/docker:multi", registry.host());
    let root = tmp.path().join("root");
    let service = open(&root);

    // OCI index, explicit arm64/v8.
    let options = PullOptions {
        platform: arm64_v8(),
        ..fast()
    };
    let record = pull_ok(&service, &oci_ref, &options);
    assert_record(&record, &oci_ref, &oci_arm);
    assert_eq!(
        record.index.as_ref().map(ToString::to_string),
        Some(index.manifest_digest.clone())
    );
    assert_blob(&root, &index.manifest_digest, &index.manifest);
    assert_image_blobs(&root, &oci_arm);
    assert_no_blob(&root, &oci_amd.layers[0].digest);
    assert_eq!(
        read_text(&layer_path(&root, &oci_arm.layers[0].diff_id).join("app/arch")),
        "arm64\n"
    );
    // arm64 without a variant picks v8.
    let root_arm = tmp.path().join("arm-novariant");
    let options = PullOptions {
        platform: Platform {
            variant: None,
            ..arm64_v8()
        },
        ..fast()
    };
    let record = pull_ok(&open(&root_arm), &oci_ref, &options);
    assert_eq!(record.manifest.to_string(), oci_arm.manifest_digest);
    // An explicit amd64 picks amd64.
    let root_amd = tmp.path().join("amd");
    let options = PullOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        ..fast()
    };
    let record = pull_ok(&open(&root_amd), &oci_ref, &options);
    assert_record(&record, &oci_ref, &oci_amd);

    // Absent platform: refused, naming what the index has.
    let options = PullOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: "s390x".into(),
            variant: None,
        },
        ..fast()
    };
    let root_none = tmp.path().join("none");
    let service_none = open(&root_none);
    let err = pull_err(&service_none, &oci_ref, &options);
    assert!(err.contains("linux/s390x"), "{err}");
    assert!(err.contains("linux/amd64, linux/arm64/v8"), "{err}");
    assert!(service_none.list().expect("list").is_empty());

    // Docker manifest list through the CLI.
    let out = berth(
        &root,
        &["pull", "--platform", "linux/arm64/v8", &docker_ref],
    );
    assert_success(&out, "berth pull --platform linux/arm64/v8");
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&docker_arm.manifest_digest), "{stdout}");
    assert!(stdout.contains("linux/arm64/v8"), "{stdout}");
    let record = open(&root)
        .get(&source(&docker_ref))
        .expect("get")
        .expect("docker list record");
    assert_record(&record, &docker_ref, &docker_arm);
    assert_eq!(
        record.index.as_ref().map(ToString::to_string),
        Some(list.manifest_digest.clone())
    );
    assert_eq!(
        read_text(&layer_path(&root, &docker_arm.layers[0].diff_id).join("app/arch")),
        "docker-arm64\n"
    );
    let out = berth(
        &tmp.path().join("cli-none"),
        &["pull", "--platform", "linux/s390x", &docker_ref],
    );
    let stderr = assert_failure(&out, "berth pull --platform linux/s390x");
    assert!(stderr.contains("linux/s390x"), "{stderr}");
    assert!(stderr.contains("linux/amd64, linux/arm64/v8"), "{stderr}");
}

/// GETs of one blob through the proxy.
fn blob_gets(proxy: &FaultProxy, digest: &str) -> usize {
    proxy.count_method("GET", &format!("/blobs/{digest}"))
}

fn all_blobs(image: &TestImage) -> Vec<String> {
    let mut blobs = vec![image.config_digest.clone()];
    blobs.extend(image.layers.iter().map(|l| l.digest.clone()));
    blobs
}

#[test]
fn a_second_pull_fetches_no_blob_again() {
    let registry = TestRegistry::start();
    let image = ready_made::multi_layer_with_whiteouts();
    registry.push_image("test/multi", "v1", &image);
    let proxy = FaultProxy::start(&registry);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let reference = format!("{}/test/multi:v1", proxy.host());

    pull_ok(&open(&root), &reference, &fast());
    for blob in all_blobs(&image) {
        assert_eq!(
            blob_gets(&proxy, &blob),
            1,
            "first pull fetches {blob} once"
        );
    }
    proxy.clear_requests();

    let record = pull_ok(&open(&root), &reference, &fast());
    assert_record(&record, &reference, &image);
    assert_eq!(proxy.count_method("GET", "/blobs/"), 0, "library re-pull");
    let out = berth(&root, &["pull", &reference]);
    assert_success(&out, "berth pull again");
    assert_eq!(proxy.count_method("GET", "/blobs/"), 0, "CLI re-pull");
    assert!(proxy.count("/manifests/") >= 2, "the tag is resolved again");
}

#[test]
fn concurrent_pulls_fetch_each_blob_once() {
    let registry = TestRegistry::start();
    let image = ready_made::multi_layer_with_whiteouts();
    registry.push_image("test/multi", "v1", &image);
    let tmp = tempfile::tempdir().expect("tempdir");

    // Two threads, each with its own service on the same root.
    let proxy = FaultProxy::start(&registry);
    let reference = format!("{}/test/multi:v1", proxy.host());
    let root = tmp.path().join("threads");
    fs::create_dir_all(&root).expect("root");
    let barrier = Barrier::new(2);
    let results: Vec<Result<ImageRecord, String>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let service = open(&root);
                    barrier.wait();
                    pull_with(&service, &reference, &fast()).map_err(|e| error_text(&e))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("pull thread"))
            .collect()
    });
    for result in &results {
        let record = result
            .as_ref()
            .unwrap_or_else(|e| panic!("concurrent pull: {e}"));
        assert_record(record, &reference, &image);
    }
    for blob in all_blobs(&image) {
        assert_eq!(blob_gets(&proxy, &blob), 1, "threads fetched {blob} once");
    }
    assert_image_blobs(&root, &image);
    assert!(partials(&root).is_empty());
    for layer in &image.layers {
        assert!(layer_path(&root, &layer.diff_id).is_dir());
    }

    // Two `berth pull` processes at once.
    let proxy = FaultProxy::start(&registry);
    let reference = format!("{}/test/multi:v1", proxy.host());
    let root = tmp.path().join("processes");
    let children: Vec<_> = (0..2)
        .map(|_| {
            berth_command(&root, &["pull", &reference])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn berth pull")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait berth pull");
        assert_success(&out, "concurrent berth pull");
        assert!(text(&out.stdout).contains(&image.manifest_digest));
    }
    for blob in all_blobs(&image) {
        assert_eq!(blob_gets(&proxy, &blob), 1, "processes fetched {blob} once");
    }
    assert_image_blobs(&root, &image);
    assert!(partials(&root).is_empty());
    for layer in &image.layers {
        assert!(layer_path(&root, &layer.diff_id).is_dir());
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

/// A registry with `small_image("app")` as test/app:v1, and a proxy in front.
fn proxied_small() -> (TestRegistry, FaultProxy, TestImage, String) {
    let registry = TestRegistry::start();
    let image = small_image("app");
    registry.push_image("test/app", "v1", &image);
    let proxy = FaultProxy::start(&registry);
    let reference = format!("{}/test/app:v1", proxy.host());
    (registry, proxy, image, reference)
}

#[test]
fn a_corrupted_blob_fails_verification_and_leaves_nothing() {
    let (_registry, proxy, image, reference) = proxied_small();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let service = open(&root);
    let layer = &image.layers[1];
    proxy.fault(&format!("/blobs/{}", layer.digest), Fault::CorruptBody);

    let err = pull_err(&service, &reference, &fast());
    assert!(err.contains(&layer.digest), "names the blob: {err}");
    let lower = err.to_lowercase();
    assert!(
        lower.contains("verification") || lower.contains("does not match"),
        "a digest verification error: {err}"
    );
    assert_no_blob(&root, &layer.digest);
    assert!(!layer_path(&root, &layer.diff_id).exists());
    assert!(partials(&root).is_empty(), "{:?}", partials(&root));
    assert_eq!(service.get(&source(&reference)).expect("get"), None);
    assert!(service.list().expect("list").is_empty());
}

#[test]
fn a_truncated_blob_is_resumed() {
    let registry = TestRegistry::start();
    // Large enough that a cut in the middle leaves a real remainder.
    let image = ImageBuilder::new("amd64")
        .layer(crate::support::images::busybox_layer())
        .oci();
    registry.push_image("test/busybox", "v1", &image);
    let proxy = FaultProxy::start(&registry);
    let reference = format!("{}/test/busybox:v1", proxy.host());
    let layer = &image.layers[0];
    let cut = usize::try_from(layer.size / 2).expect("size");
    let path = format!("/blobs/{}", layer.digest);
    proxy.fault_times(&path, Fault::Truncate { after: cut }, 1);

    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let record = pull_ok(&open(&root), &reference, &fast());
    assert_record(&record, &reference, &image);
    assert_image_blobs(&root, &image);
    assert!(
        layer_path(&root, &layer.diff_id)
            .join("bin/busybox")
            .is_file()
    );
    assert!(partials(&root).is_empty());

    let gets: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&path))
        .collect();
    assert_eq!(gets.len(), 2, "one cut transfer, one resumed: {gets:?}");
    let range = gets[1]
        .header("range")
        .unwrap_or_else(|| panic!("the second GET resumes with Range: {:?}", gets[1].headers));
    let offset: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("Range {range}"));
    assert!(
        offset > 0 && offset <= cut as u64,
        "resumed at {offset} of {cut}"
    );
}

#[test]
fn server_errors_are_retried_then_reported() {
    let (_registry, proxy, image, reference) = proxied_small();
    let tmp = tempfile::tempdir().expect("tempdir");

    // 503 twice on the manifest, then success.
    proxy.fault(
        "/manifests/v1",
        Fault::Status {
            code: 503,
            times: 2,
        },
    );
    let root = tmp.path().join("manifest-503");
    let record = pull_ok(&open(&root), &reference, &fast());
    assert_record(&record, &reference, &image);
    assert_eq!(proxy.count_method("GET", "/manifests/v1"), 3);

    // 503 twice on a blob, then success.
    let layer = &image.layers[1];
    proxy.clear_requests();
    proxy.fault(
        &format!("/blobs/{}", layer.digest),
        Fault::Status {
            code: 503,
            times: 2,
        },
    );
    let root = tmp.path().join("blob-503");
    let record = pull_ok(&open(&root), &reference, &fast());
    assert_record(&record, &reference, &image);
    assert_eq!(blob_gets(&proxy, &layer.digest), 3);
    assert_image_blobs(&root, &image);

    // 503 forever: the retries run out and the error says why.
    proxy.clear_faults();
    proxy.clear_requests();
    proxy.fault(
        "/manifests/v1",
        Fault::Status {
            code: 503,
            times: usize::MAX,
        },
    );
    let root = tmp.path().join("forever");
    let service = open(&root);
    let options = fast();
    let err = pull_err(&service, &reference, &options);
    assert!(err.contains("503"), "names the status: {err}");
    assert!(err.contains(&proxy.host()), "names the registry: {err}");
    assert_eq!(
        proxy.count_method("GET", "/manifests/v1"),
        options.retries as usize + 1,
        "one attempt and {} retries",
        options.retries
    );
    assert!(service.list().expect("list").is_empty());
}

#[test]
fn registry_auth_bearer_basic_and_anonymous() {
    let (_registry, proxy, image, reference) = proxied_small();
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = proxy.host();
    const PASSWORD: &str = "Pw-bearer-7c1e5a";
    const WRONG: &str = "Wrong-pw-93b2d0";

    proxy.require_bearer("alice", PASSWORD);
    // No credentials.
    let err = pull_err(&open(&tmp.path().join("anon")), &reference, &fast());
    assert!(err.contains("refused access"), "{err}");
    // Wrong credentials: refused, and neither password in the message.
    let service = open_with_credentials(&tmp.path().join("wrong"), &host, "alice", WRONG);
    let err = pull_err(&service, &reference, &fast());
    assert!(err.contains("refused access"), "{err}");
    assert!(!err.contains(WRONG) && !err.contains(PASSWORD), "{err}");
    assert!(service.list().expect("list").is_empty());
    // Right credentials: the token flow.
    proxy.clear_requests();
    let root = tmp.path().join("bearer");
    let record = pull_ok(
        &open_with_credentials(&root, &host, "alice", PASSWORD),
        &reference,
        &fast(),
    );
    assert_record(&record, &reference, &image);
    assert_image_blobs(&root, &image);
    let requests = proxy.requests();
    let basic = format!("Basic {}", base64(format!("alice:{PASSWORD}").as_bytes()));
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/token" && r.header("authorization") == Some(basic.as_str())),
        "the token was fetched with the credentials"
    );
    let bearer = format!("Bearer {}", proxy.token());
    for r in requests.iter().filter(|r| r.path.contains("/blobs/")) {
        assert_eq!(r.header("authorization"), Some(bearer.as_str()), "{r:?}");
    }

    // Anonymous token (public image): no credentials needed.
    proxy.require_anonymous_bearer();
    proxy.clear_requests();
    let root = tmp.path().join("anonymous-bearer");
    let record = pull_ok(&open(&root), &reference, &fast());
    assert_record(&record, &reference, &image);
    assert!(proxy.count("/token") >= 1, "an anonymous token was fetched");

    // Basic auth.
    proxy.require_basic("bob", PASSWORD);
    let root = tmp.path().join("basic");
    let record = pull_ok(
        &open_with_credentials(&root, &host, "bob", PASSWORD),
        &reference,
        &fast(),
    );
    assert_record(&record, &reference, &image);
    let err = pull_err(
        &open_with_credentials(&tmp.path().join("basic-wrong"), &host, "bob", WRONG),
        &reference,
        &fast(),
    );
    assert!(err.contains("refused access"), "{err}");
    assert!(!err.contains(WRONG) && !err.contains(PASSWORD), "{err}");
}

#[test]
fn redirected_blobs_reach_the_second_host_without_credentials() {
    let (registry, proxy, image, reference) = proxied_small();
    let second = SecondServer::start(&registry);
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = proxy.host();
    proxy.fault(
        "/blobs/",
        Fault::RedirectTo {
            other: second.clone(),
        },
    );

    for (mode, root) in [("bearer", "bearer"), ("basic", "basic")] {
        if mode == "bearer" {
            proxy.require_bearer("carol", "redirect-secret");
        } else {
            proxy.require_basic("carol", "redirect-secret");
        }
        proxy.clear_requests();
        let before = second.requests().len();
        let root = tmp.path().join(root);
        let record = pull_ok(
            &open_with_credentials(&root, &host, "carol", "redirect-secret"),
            &reference,
            &fast(),
        );
        assert_record(&record, &reference, &image);
        assert_image_blobs(&root, &image);
        let at_proxy: Vec<_> = proxy
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
            .collect();
        assert!(
            at_proxy.iter().all(|r| r.header("authorization").is_some()),
            "{mode}: the registry got credentials with every blob request"
        );
        let at_second: Vec<_> = second.requests().split_off(before);
        for blob in all_blobs(&image) {
            assert!(
                at_second
                    .iter()
                    .any(|r| r.path.ends_with(&format!("/blobs/{blob}"))),
                "{mode}: {blob} was fetched from the second host"
            );
        }
        for r in &at_second {
            assert_eq!(
                r.header("authorization"),
                None,
                "{mode}: credentials leaked to the second host: {r:?}"
            );
        }
    }
}

#[test]
fn a_manifest_whose_bytes_do_not_match_its_digest_fails() {
    let (_registry, proxy, image, _) = proxied_small();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let service = open(&root);
    proxy.fault(
        &format!("/manifests/{}", image.manifest_digest),
        Fault::CorruptBody,
    );
    let reference = format!("{}/test/app@{}", proxy.host(), image.manifest_digest);
    let err = pull_err(&service, &reference, &fast());
    assert!(err.to_lowercase().contains("digest"), "{err}");
    assert!(err.contains(&image.manifest_digest), "{err}");
    assert_no_blob(&root, &image.manifest_digest);
    assert_no_blob(&root, &image.config_digest);
    assert!(service.list().expect("list").is_empty());
    for blob in all_blobs(&image) {
        assert_eq!(
            blob_gets(&proxy, &blob),
            0,
            "nothing fetched past the manifest"
        );
    }
}

#[test]
fn credentials_never_appear_in_cli_output() {
    let (_registry, proxy, image, reference) = proxied_small();
    let tmp = tempfile::tempdir().expect("tempdir");
    const USER: &str = "dave";
    const PASSWORD: &str = "Cli-secret-4f9a0c2e";
    let authfile = |name: &str, password: &str| {
        let path = tmp.path().join(name);
        let auth = base64(format!("{USER}:{password}").as_bytes());
        let body = json!({"auths": {proxy.host(): {"auth": auth}}});
        fs::write(&path, body.to_string()).expect("write authfile");
        path
    };
    let good = authfile("good.json", PASSWORD);
    let secrets = [
        PASSWORD.to_string(),
        base64(format!("{USER}:{PASSWORD}").as_bytes()),
        base64(PASSWORD.as_bytes()),
    ];
    let assert_clean = |out: &Output, what: &str| {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        for secret in &secrets {
            assert!(
                !all.contains(secret.as_str()),
                "{what}: output shows {secret}:\n{all}"
            );
        }
    };

    for mode in ["bearer", "basic"] {
        if mode == "bearer" {
            proxy.require_bearer(USER, PASSWORD);
        } else {
            proxy.require_basic(USER, PASSWORD);
        }
        let root = tmp.path().join(mode);
        let out = berth_command(
            &root,
            &[
                "pull",
                "--authfile",
                good.to_str().expect("utf-8"),
                &reference,
            ],
        )
        .env("BERTH_LOG", "debug")
        .output()
        .expect("run berth");
        assert_success(&out, &format!("berth pull with {mode} auth"));
        assert!(text(&out.stdout).contains(&image.manifest_digest));
        assert!(
            !out.stderr.is_empty(),
            "debug logging is on, so there is something to check"
        );
        assert_clean(&out, mode);
    }

    // A refused pull: the error names the registry, never the (wrong) secret.
    proxy.require_bearer(USER, "the-real-one");
    let root = tmp.path().join("refused");
    let out = berth_command(
        &root,
        &[
            "pull",
            "--authfile",
            good.to_str().expect("utf-8"),
            &reference,
        ],
    )
    .env("BERTH_LOG", "debug")
    .output()
    .expect("run berth");
    let stderr = assert_failure(&out, "berth pull with wrong credentials");
    assert!(stderr.contains("refused access"), "{stderr}");
    assert_clean(&out, "refused");
}

#[test]
fn a_decompression_bomb_layer_is_refused() {
    let registry = TestRegistry::start();
    let bomb = zeros_bomb_layer(256 << 20);
    assert!(
        bomb.size < 4 << 20,
        "the bomb is small compressed: {}",
        bomb.size
    );
    let image = ImageBuilder::new("amd64").layer(bomb.clone()).oci();
    registry.push_image("test/bomb", "v1", &image);
    let reference = format!("{}/test/bomb:v1", registry.host());
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let service = open(&root);
    let mut options = fast();
    options.limits.max_bytes = 16 << 20;

    let err = pull_err(&service, &reference, &options);
    assert!(
        err.contains("decompression bomb") || err.contains(&format!("more than {}", 16 << 20)),
        "refused for its expanded size: {err}"
    );
    assert!(!layer_path(&root, &bomb.diff_id).exists());
    let leftovers: Vec<String> = names_in(&root.join("layers/tmp"))
        .into_iter()
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "scratch left: {leftovers:?}");
    assert!(service.list().expect("list").is_empty());
}

/// A gzip layer holding one file of `zeros` zero bytes, compressed by the system gzip (fast
/// natively, unlike flate2 in a debug build); its diff id by the system sha256sum.
fn zeros_bomb_layer(zeros: u64) -> TestLayer {
    assert_eq!(zeros % 512, 0);
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros.bin").expect("tar path");
    header.set_size(zeros);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let spawn = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"))
    };
    let mut gzip = spawn("gzip", &["-c", "-1", "-n"]);
    let mut sha = spawn("sha256sum", &["-b"]);
    let mut gzip_in = gzip.stdin.take().expect("gzip stdin");
    let mut sha_in = sha.stdin.take().expect("sha256sum stdin");
    let writer = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 20];
        let mut feed = |bytes: &[u8]| {
            gzip_in.write_all(bytes).expect("feed gzip");
            sha_in.write_all(bytes).expect("feed sha256sum");
        };
        feed(header.as_bytes());
        let mut left = zeros + 1024; // the content, then the two end-of-archive blocks
        while left > 0 {
            let n = usize::try_from(left).map_or(chunk.len(), |left| left.min(chunk.len()));
            feed(&chunk[..n]);
            left -= n as u64;
        }
    });
    let mut blob = Vec::new();
    gzip.stdout
        .take()
        .expect("gzip stdout")
        .read_to_end(&mut blob)
        .expect("read gzip");
    writer.join().expect("feeding thread");
    assert!(gzip.wait().expect("gzip").success());
    let out = sha.wait_with_output().expect("sha256sum");
    assert!(out.status.success());
    let hex = text(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string();
    TestLayer {
        media_type: OCI_LAYER_GZIP.to_string(),
        digest: sha256_digest(&blob),
        size: blob.len() as u64,
        blob,
        diff_id: format!("sha256:{hex}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Local images

fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[test]
fn oci_layout_and_oci_archive_import() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let image = ImageBuilder::new("amd64")
        .layer(one_file_layer(
            "layout",
            "from a layout\n",
            Compression::Gzip,
        ))
        .layer(one_file_layer(
            "zst",
            "zstd in a layout\n",
            Compression::Zstd,
        ))
        .oci();
    let arch = |a: &str| one_file_layer("arch", &format!("{a}\n"), Compression::Gzip);
    let amd = ImageBuilder::new("amd64").layer(arch("amd64")).oci();
    let arm = ImageBuilder::new("arm64")
        .variant("v8")
        .layer(arch("arm64"))
        .oci();
    let index = TestIndex::oci(vec![amd, arm.clone()]);
    let layout = tmp.path().join("layout");
    write_layout(&layout, &[("v1", &image)], &[("multi", &index)]);

    // oci:DIR:TAG through the library.
    let root = tmp.path().join("root");
    let service = open(&root);
    let reference = format!("oci:{}:v1", utf8(&layout));
    let record = pull_ok(&service, &reference, &fast());
    assert_record(&record, &reference, &image);
    assert_image_blobs(&root, &image);
    assert_eq!(
        read_text(&layer_path(&root, &image.layers[0].diff_id).join("app/layout")),
        "from a layout\n"
    );
    assert_eq!(
        read_text(&layer_path(&root, &image.layers[1].diff_id).join("app/zst")),
        "zstd in a layout\n"
    );
    // An index in the layout, with platform selection.
    let multi = format!("oci:{}:multi", utf8(&layout));
    let options = PullOptions {
        platform: arm64_v8(),
        ..fast()
    };
    let record = pull_ok(&service, &multi, &options);
    assert_record(&record, &multi, &arm);
    assert_eq!(
        record.index.as_ref().map(ToString::to_string),
        Some(index.manifest_digest.clone())
    );
    assert_eq!(
        read_text(&layer_path(&root, &arm.layers[0].diff_id).join("app/arch")),
        "arm64\n"
    );
    // A tag the layout does not have.
    let err = pull_err(&service, &format!("oci:{}:nope", utf8(&layout)), &fast());
    assert!(err.contains("nope") && err.contains("v1, multi"), "{err}");

    // oci-archive:TAR:TAG through the CLI.
    let archive = tmp.path().join("layout.tar");
    tar_dir(&layout, &archive);
    let cli_root = tmp.path().join("cli");
    let archived = format!("oci-archive:{}:v1", utf8(&archive));
    let out = berth(&cli_root, &["pull", &archived]);
    assert_success(&out, "berth pull oci-archive");
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&archived), "{stdout}");
    assert!(stdout.contains(&image.manifest_digest), "{stdout}");
    assert_image_blobs(&cli_root, &image);
    for layer in &image.layers {
        assert!(layer_path(&cli_root, &layer.diff_id).is_dir());
    }
    assert!(
        names_in(&cli_root.join("tmp")).is_empty(),
        "the extracted archive is removed: {:?}",
        names_in(&cli_root.join("tmp"))
    );
    let out = berth(&cli_root, &["images", "--json"]);
    assert_success(&out, "berth images --json");
    let listed: Value = serde_json::from_slice(&out.stdout).expect("json");
    let sources: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["source"].as_str())
        .collect();
    assert_eq!(sources, [archived.as_str()]);
}

#[test]
fn a_tampered_layout_blob_fails_verification() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let image = small_image("tampered");
    let layout = tmp.path().join("layout");
    write_layout(&layout, &[("v1", &image)], &[]);
    let layer = &image.layers[1];
    let blob = layout.join("blobs/sha256").join(hex_of(&layer.digest));
    let mut bytes = fs::read(&blob).expect("blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&blob, &bytes).expect("tamper");

    let root = tmp.path().join("root");
    let service = open(&root);
    let reference = format!("oci:{}:v1", utf8(&layout));
    let err = pull_err(&service, &reference, &fast());
    assert!(err.contains(&layer.digest), "{err}");
    assert!(err.contains("failed verification"), "{err}");
    assert_no_blob(&root, &layer.digest);
    assert!(!layer_path(&root, &layer.diff_id).exists());
    assert!(partials(&root).is_empty(), "{:?}", partials(&root));
    assert!(service.list().expect("list").is_empty());

    let out = berth(&tmp.path().join("cli"), &["pull", &reference]);
    let stderr = assert_failure(&out, "berth pull of a tampered layout");
    assert!(stderr.contains("failed verification"), "{stderr}");
}

#[test]
fn docker_archive_import() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let image = small_tar_image();
    // `docker save` layout: manifest.json, <config>.json, <id>/layer.tar.
    let saved = tmp.path().join("saved");
    fs::create_dir_all(&saved).expect("saved dir");
    let config_name = format!("{}.json", hex_of(&image.config_digest));
    fs::write(saved.join(&config_name), &image.config).expect("config");
    let mut layer_names = Vec::new();
    for layer in &image.layers {
        let id = hex_of(&layer.diff_id);
        fs::create_dir_all(saved.join(id)).expect("layer dir");
        fs::write(saved.join(id).join("layer.tar"), &layer.blob).expect("layer tar");
        fs::write(saved.join(id).join("VERSION"), "1.0").expect("VERSION");
        layer_names.push(format!("{id}/layer.tar"));
    }
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": ["berth.test/legacy:v1"],
        "Layers": layer_names,
    }]);
    fs::write(saved.join("manifest.json"), manifest.to_string()).expect("manifest.json");
    let archive = tmp.path().join("legacy.tar");
    tar_dir(&saved, &archive);

    let root = tmp.path().join("root");
    let service = open(&root);
    let reference = format!("docker-archive:{}", utf8(&archive));
    let record = pull_ok(&service, &reference, &fast());
    assert_eq!(record.source, reference);
    assert_eq!(record.config.to_string(), image.config_digest);
    assert_eq!(record.platform, "linux/amd64");
    assert_blob(&root, &image.config_digest, &image.config);
    assert_eq!(record.layers.len(), image.layers.len());
    for (got, layer) in record.layers.iter().zip(&image.layers) {
        // Uncompressed: the blob is the tar, so its digest is the diff id.
        assert_eq!(got.digest.to_string(), layer.diff_id);
        assert_eq!(got.diff_id.to_string(), layer.diff_id);
        assert_eq!(got.size, layer.size);
        assert_blob(&root, &layer.diff_id, &layer.blob);
        assert!(layer_path(&root, &layer.diff_id).is_dir());
    }
    assert_eq!(
        read_text(&layer_path(&root, &image.layers[0].diff_id).join("app/first")),
        "one\n"
    );
    assert_whiteout(&layer_path(&root, &image.layers[1].diff_id).join("app/first"));
    // The synthesized manifest is stored and names the config and layers.
    let manifest_bytes =
        fs::read(blob_path(&root, &record.manifest.to_string())).expect("manifest");
    assert_eq!(sha256_digest(&manifest_bytes), record.manifest.to_string());
    let manifest: Value = serde_json::from_slice(&manifest_bytes).expect("manifest json");
    assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
    assert_eq!(
        manifest["layers"][1]["digest"],
        image.layers[1].diff_id.as_str()
    );

    // Through the CLI, by its RepoTag: the same archive gives the same image digest.
    let cli_root = tmp.path().join("cli");
    let tagged = format!("docker-archive:{}:berth.test/legacy:v1", utf8(&archive));
    let out = berth(&cli_root, &["pull", &tagged]);
    assert_success(&out, "berth pull docker-archive");
    assert!(text(&out.stdout).contains(&record.manifest.to_string()));
    let rootfs = tmp.path().join("rootfs");
    let out = berth(&cli_root, &["unpack", &tagged, utf8(&rootfs)]);
    assert_success(&out, "berth unpack docker-archive");
    assert_eq!(read_text(&rootfs.join("app/second")), "two\n");
    assert!(!rootfs.join("app/first").exists(), "whited out");
    assert!(names_in(&cli_root.join("tmp")).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Listing and pruning

#[test]
fn images_json_and_prune_by_desired_state() {
    let registry = TestRegistry::start();
    let keep = small_image("keep");
    let drop = small_image("drop");
    assert_eq!(
        keep.layers[0].digest, drop.layers[0].digest,
        "a shared base layer"
    );
    registry.push_image("test/keep", "v1", &keep);
    registry.push_image("test/drop", "v1", &drop);
    let keep_ref = format!("{}/test/keep:v1", registry.host());
    let drop_ref = format!("{}/test/drop:v1", registry.host());
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    for reference in [&keep_ref, &drop_ref] {
        assert_success(&berth(&root, &["pull", reference]), "berth pull");
    }

    let listed = |what: &str| -> Vec<(String, String)> {
        let out = berth(&root, &["images", "--json"]);
        assert_success(&out, what);
        let value: Value = serde_json::from_slice(&out.stdout).expect("images json");
        value
            .as_array()
            .expect("array")
            .iter()
            .map(|r| {
                (
                    r["source"].as_str().expect("source").to_string(),
                    r["manifest"].as_str().expect("manifest").to_string(),
                )
            })
            .collect()
    };
    let mut want = vec![
        (keep_ref.clone(), keep.manifest_digest.clone()),
        (drop_ref.clone(), drop.manifest_digest.clone()),
    ];
    want.sort();
    assert_eq!(listed("berth images --json"), want);

    // A broken desired-state file: refused, nothing removed.
    let desired = tmp.path().join("desired");
    fs::create_dir_all(&desired).expect("desired dir");
    fs::write(
        desired.join("images.toml"),
        format!("[image.keep]\nreference = \"{keep_ref}\"\n"),
    )
    .expect("images.toml");
    fs::write(desired.join("broken.toml"), "[container.web]\nimage = 42\n").expect("broken");
    let out = berth(&root, &["prune", "images", utf8(&desired)]);
    let stderr = assert_failure(&out, "berth prune images with a broken file");
    assert!(stderr.contains("nothing was pruned"), "{stderr}");
    assert_eq!(listed("berth images --json after refused prune"), want);
    assert_image_blobs(&root, &keep);
    assert_image_blobs(&root, &drop);
    for layer in keep.layers.iter().chain(&drop.layers) {
        assert!(layer_path(&root, &layer.diff_id).is_dir());
    }

    // Fixed: only what the desired state names stays.
    fs::remove_file(desired.join("broken.toml")).expect("fix");
    let out = berth(&root, &["prune", "images", utf8(&desired), "--json"]);
    assert_success(&out, "berth prune images");
    let report: Value = serde_json::from_slice(&out.stdout).expect("prune report json");
    assert_eq!(report["images"], json!([drop_ref]));
    assert_eq!(report["blobs"], 3, "drop's manifest, config and own layer");
    assert_eq!(report["layers"], 1, "drop's own unpacked layer");
    assert_eq!(
        listed("berth images --json after prune"),
        [(keep_ref.clone(), keep.manifest_digest.clone())]
    );
    assert_image_blobs(&root, &keep);
    for layer in &keep.layers {
        assert!(layer_path(&root, &layer.diff_id).is_dir(), "kept layer");
    }
    assert_no_blob(&root, &drop.manifest_digest);
    assert_no_blob(&root, &drop.config_digest);
    assert_no_blob(&root, &drop.layers[1].digest);
    assert!(!layer_path(&root, &drop.layers[1].diff_id).exists());
    let service = open(&root);
    assert!(service.get(&source(&keep_ref)).expect("get").is_some());
    assert!(service.get(&source(&drop_ref)).expect("get").is_none());
    // The kept image still unpacks.
    let rootfs = tmp.path().join("rootfs");
    let out = berth(&root, &["unpack", &keep_ref, utf8(&rootfs)]);
    assert_success(&out, "berth unpack after prune");
    assert_eq!(read_text(&rootfs.join("app/keep")), "keep\n");
}

#[test]
fn opaque_marker_after_new_files_keeps_them_at_any_depth() {
    let registry = TestRegistry::start();
    let lower = LayerBuilder::new()
        .dir("conf", 0o755)
        .file("conf/old", "old\n", 0o644)
        .dir("conf/sub", 0o755)
        .file("conf/sub/lower", "lower\n", 0o644)
        .dir("opt", 0o755)
        .dir("opt/deep", 0o755)
        .file("opt/deep/lower", "lower\n", 0o644)
        .build(Compression::Gzip);
    // New files below the opaque directories first, the markers last (as in
    // `multi_layer_with_whiteouts`, one level deeper). /opt/deep has no entry of its own.
    let upper = LayerBuilder::new()
        .dir("conf", 0o755)
        .dir("conf/sub", 0o755)
        .file("conf/sub/new", "new\n", 0o644)
        .opaque("conf")
        .dir("opt", 0o755)
        .file("opt/deep/new", "new\n", 0o644)
        .opaque("opt")
        .build(Compression::Gzip);
    let image = ImageBuilder::new("amd64").layer(lower).layer(upper).oci();
    registry.push_image("test/opaque", "v1", &image);
    let reference = format!("{}/test/opaque:v1", registry.host());
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");

    // Layer form: the markers become the xattr, this layer's files stay (overlayfs then hides
    // every lower entry of the opaque directories, at any depth).
    pull_ok(&open(&root), &reference, &fast());
    let upper_dir = layer_path(&root, &image.layers[1].diff_id);
    for opaque in ["conf", "opt"] {
        assert_eq!(opaque_xattr(&upper_dir.join(opaque)), Some(b"y".to_vec()));
    }
    assert_eq!(read_text(&upper_dir.join("conf/sub/new")), "new\n");
    assert_eq!(read_text(&upper_dir.join("opt/deep/new")), "new\n");

    // Flattened: the opaque directories hold exactly what the upper layer wrote.
    let rootfs = tmp.path().join("rootfs");
    let out = berth(&root, &["unpack", &reference, utf8(&rootfs)]);
    assert_success(&out, "berth unpack");
    let got: BTreeMap<String, Option<String>> = tree(&rootfs)
        .into_iter()
        .map(|(path, node)| {
            let content = match node {
                Node::File { content, .. } => Some(content),
                _ => None,
            };
            (path, content)
        })
        .collect();
    let want: BTreeMap<String, Option<String>> = [
        ("conf", None),
        ("conf/sub", None),
        ("conf/sub/new", Some(content_key(b"new\n"))),
        ("opt", None),
        ("opt/deep", None),
        ("opt/deep/new", Some(content_key(b"new\n"))),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_string(), c))
    .collect();
    assert_eq!(
        got, want,
        "an opaque marker hides every lower entry below its directory and no entry of its own layer"
    );
}

#[test]
fn a_layer_whose_diff_id_lies_is_not_unpacked() {
    let registry = TestRegistry::start();
    let mut layer = one_file_layer("lie", "lie\n", Compression::Gzip);
    let honest = layer.diff_id.clone();
    layer.diff_id = sha256_digest(b"not this layer's tar");
    let image = ImageBuilder::new("amd64").layer(layer.clone()).oci();
    registry.push_image("test/lie", "v1", &image);
    let reference = format!("{}/test/lie:v1", registry.host());
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("root");
    let service = open(&root);

    let err = pull_err(&service, &reference, &fast());
    assert!(err.contains("diff id"), "{err}");
    assert!(
        err.contains(&layer.diff_id) && err.contains(&honest),
        "{err}"
    );
    assert!(!layer_path(&root, &layer.diff_id).exists());
    assert!(!layer_path(&root, &honest).exists());
    let scratch: Vec<String> = names_in(&root.join("layers/tmp"))
        .into_iter()
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(scratch.is_empty(), "{scratch:?}");
    assert!(service.list().expect("list").is_empty());
}

#[test]
fn a_layer_descriptor_with_the_wrong_size_is_refused() {
    let registry = TestRegistry::start();
    let image = small_image("sized");
    registry.push_image("test/sized", "v1", &image);
    let layer = &image.layers[1];
    let tmp = tempfile::tempdir().expect("tempdir");
    for (tag, size) in [("longer", layer.size + 100), ("shorter", layer.size - 10)] {
        let edited = image
            .clone()
            .with_manifest_edit(|m| m["layers"][1]["size"] = json!(size));
        registry.push_manifest(
            "test/sized",
            tag,
            &edited.manifest_media_type,
            &edited.manifest,
        );
        let reference = format!("{}/test/sized:{tag}", registry.host());
        let root = tmp.path().join(tag);
        let service = open(&root);
        let err = pull_err(&service, &reference, &fast());
        assert!(err.contains(&layer.digest), "{tag}: names the blob: {err}");
        assert!(
            err.contains(&size.to_string()),
            "{tag}: says the blob does not have the {size} bytes its descriptor says: {err}"
        );
        assert_no_blob(&root, &layer.digest);
        assert!(partials(&root).is_empty(), "{tag}: {:?}", partials(&root));
        assert!(service.list().expect("list").is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Who can read the store

/// Whether another user of the host (uid and gid 65534, no supplementary groups) can read
/// `path`: `cat` run as that user, so the kernel's own permission checks decide.
fn readable_by_nobody(path: &Path) -> bool {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "cat",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run setpriv (util-linux)")
        .success()
}

/// Every path below `dir` (symlinks not followed), `dir` included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let path = out[i].clone();
        i += 1;
        if fs::symlink_metadata(&path).expect("lstat").is_dir() {
            for entry in fs::read_dir(&path).expect("list") {
                out.push(entry.expect("entry").path());
            }
        }
    }
    out
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// The state root's own image directories; unpacked layers below `layers/sha256` keep the
/// modes their image gave them (a container needs them), behind `layers/`' 0700.
const PRIVATE_STORE_DIRS: [&str; 4] = ["content", "images", "tmp", "layers"];
const LAYER_STORE_DIRS: [&str; 3] = ["layers", "layers/sha256", "layers/tmp"];

/// Everything under content/, images/ and tmp/ has no group or other bits, and the layer
/// store's own directories are 0700.
fn assert_store_private(root: &Path) {
    for top in ["content", "images", "tmp"] {
        for path in walk(&root.join(top)) {
            assert_eq!(
                mode_of(&path) & 0o077,
                0,
                "{} is {:o}",
                path.display(),
                mode_of(&path)
            );
        }
    }
    for d in LAYER_STORE_DIRS {
        assert_eq!(mode_of(&root.join(d)), 0o700, "{d}");
    }
}

#[test]
fn the_image_store_is_root_only_and_an_old_one_is_tightened() {
    let registry = TestRegistry::start();
    let image = small_image("secret");
    registry.push_image("test/secret", "v1", &image);
    let tmp = tempfile::tempdir().expect("tempdir");
    // tempdir makes 0700; the state root's parent is normally /var/lib (0755).
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let control = tmp.path().join("control");
    fs::write(&control, "x").expect("write");
    fs::set_permissions(&control, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(
        readable_by_nobody(&control),
        "the probe must see a world-readable file, or it proves nothing"
    );

    let root = tmp.path().join("root");
    let service = open(&root);
    assert_eq!(mode_of(&root), 0o700, "a state root berth made");
    let reference = format!("{}/test/secret:v1", registry.host());
    let record = pull_ok(&service, &reference, &fast());
    // A local archive too, which goes through tmp/.
    let layout = tmp.path().join("layout");
    write_layout(&layout, &[("v1", &small_image("local"))], &[]);
    let archive = tmp.path().join("local.tar");
    tar_dir(&layout, &archive);
    pull_ok(
        &service,
        &format!("oci-archive:{}:v1", utf8(&archive)),
        &fast(),
    );
    assert_store_private(&root);

    // The store's own modes must protect it where the state root does not (one made by the
    // runtime, or an older berth's).
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = blob_path(&root, &image.config_digest);
    let layer_file = layer_path(&root, &image.layers[1].diff_id).join("app/secret");
    let records: Vec<PathBuf> = walk(&root.join("images"))
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let secrets: Vec<&Path> = [config.as_path(), layer_file.as_path()]
        .into_iter()
        .chain(records.iter().map(PathBuf::as_path))
        .collect();
    for path in &secrets {
        assert!(fs::read(path).is_ok(), "root reads {}", path.display());
        assert!(!readable_by_nobody(path), "{} readable", path.display());
    }

    // What an older berth left: 0755 directories, 0444 blobs, 0644 records.
    drop(service);
    for top in PRIVATE_STORE_DIRS {
        for path in walk(&root.join(top)) {
            let old = match (path.is_dir(), path.starts_with(root.join("content"))) {
                (true, _) => 0o755,
                (false, true) => 0o444,
                (false, false) => 0o644,
            };
            // Only the store's own structure: the layers' contents keep their modes.
            if !path.starts_with(root.join("layers/sha256")) || path == root.join("layers/sha256") {
                fs::set_permissions(&path, fs::Permissions::from_mode(old)).expect("chmod");
            }
        }
    }
    assert!(
        readable_by_nobody(&config),
        "the old layout leaks the config"
    );
    assert!(
        readable_by_nobody(&layer_file),
        "the old layout leaks layers"
    );
    // Any command that opens the store migrates it.
    assert_success(&berth(&root, &["images"]), "berth images");
    for d in PRIVATE_STORE_DIRS.iter().chain(&LAYER_STORE_DIRS) {
        assert_eq!(mode_of(&root.join(d)), 0o700, "{d} after the migration");
    }
    for path in &secrets {
        assert!(!readable_by_nobody(path), "{} readable", path.display());
    }
    // Still whole for root.
    assert_eq!(
        open(&root).get(&source(&reference)).expect("get"),
        Some(record)
    );
}
