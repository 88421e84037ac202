//! Offline image builder: layers, configs, manifests and indexes built in memory, byte-exact and
//! deterministic (fixed mtimes and owners), so tests know every digest before pushing.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use super::sha256_digest;

pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header a client needs to get any of the four manifest kinds back by tag: the
/// registry refuses (or down-converts) a kind the client does not list.
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Every entry's mtime: fixed so that equal inputs give equal digests.
const MTIME: u64 = 1_700_000_000;
/// Config `created` and history timestamps, for the same reason.
const CREATED: &str = "2024-01-01T00:00:00Z";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One layer blob as a registry stores it.
#[derive(Clone, Debug)]
pub struct TestLayer {
    pub media_type: String,
    /// The (compressed) bytes pushed to the registry.
    pub blob: Vec<u8>,
    /// `sha256:` of `blob`: the manifest's layer digest.
    pub digest: String,
    /// `sha256:` of the uncompressed tar: the config's `rootfs.diff_ids` entry.
    pub diff_id: String,
    /// `blob.len()`.
    pub size: u64,
}

impl TestLayer {
    fn new(media_type: &str, blob: Vec<u8>, diff_id: String) -> TestLayer {
        TestLayer {
            media_type: media_type.to_string(),
            digest: sha256_digest(&blob),
            size: blob.len() as u64,
            blob,
            diff_id,
        }
    }

    /// The same gzip blob under the Docker schema-2 media type (for `ImageBuilder::docker`).
    pub fn into_docker(mut self) -> TestLayer {
        assert_eq!(
            self.media_type, OCI_LAYER_GZIP,
            "Docker schema 2 layers are gzip; build this one with Compression::Gzip"
        );
        self.media_type = DOCKER_LAYER_GZIP.to_string();
        self
    }

    /// The manifest descriptor of this layer.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

#[derive(Clone, Debug)]
enum EntryKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    Hardlink(String),
}

#[derive(Clone, Debug)]
struct Entry {
    path: String,
    kind: EntryKind,
    mode: u32,
    uid: u64,
    gid: u64,
}

/// Builds one layer tar from explicit entries, in the order given (order matters for
/// whiteouts and hardlinks, so it is never sorted). Paths may start with `/`; it is dropped.
#[derive(Clone, Debug, Default)]
pub struct LayerBuilder {
    entries: Vec<Entry>,
}

impl LayerBuilder {
    pub fn new() -> LayerBuilder {
        LayerBuilder::default()
    }

    fn push(mut self, path: &str, kind: EntryKind, mode: u32) -> LayerBuilder {
        self.entries.push(Entry {
            path: relative(path),
            kind,
            mode,
            uid: 0,
            gid: 0,
        });
        self
    }

    pub fn dir(self, path: &str, mode: u32) -> LayerBuilder {
        self.push(path, EntryKind::Dir, mode)
    }

    pub fn file(self, path: &str, bytes: impl AsRef<[u8]>, mode: u32) -> LayerBuilder {
        self.push(path, EntryKind::File(bytes.as_ref().to_vec()), mode)
    }

    /// `target` is stored verbatim (absolute or relative, as in real images).
    pub fn symlink(self, path: &str, target: &str) -> LayerBuilder {
        self.push(path, EntryKind::Symlink(target.to_string()), 0o777)
    }

    /// `target` is another path in the image (a leading `/` is dropped, as tar stores it).
    pub fn hardlink(self, path: &str, target: &str) -> LayerBuilder {
        self.push(path, EntryKind::Hardlink(relative(target)), 0o644)
    }

    /// Hides `path` from lower layers: writes `DIR/.wh.NAME`.
    pub fn whiteout(self, path: &str) -> LayerBuilder {
        let path = relative(path);
        let marker = match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        self.push(&marker, EntryKind::File(Vec::new()), 0o644)
    }

    /// Hides everything lower layers put in `dir`: writes `DIR/.wh..wh..opq`.
    pub fn opaque(self, dir: &str) -> LayerBuilder {
        let marker = format!("{}/.wh..wh..opq", relative(dir).trim_end_matches('/'));
        self.push(&marker, EntryKind::File(Vec::new()), 0o644)
    }

    /// Sets the owner of the entry added last (entries default to 0:0).
    pub fn owner(mut self, uid: u64, gid: u64) -> LayerBuilder {
        let last = self.entries.last_mut().expect("owner() after an entry");
        last.uid = uid;
        last.gid = gid;
        self
    }

    /// The uncompressed tar, for tests that unpack without a registry.
    pub fn tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(entry.mode);
            header.set_uid(entry.uid);
            header.set_gid(entry.gid);
            header.set_mtime(MTIME);
            header.set_size(0);
            let result = match &entry.kind {
                EntryKind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    builder.append_data(&mut header, &entry.path, std::io::empty())
                }
                EntryKind::File(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, &entry.path, data.as_slice())
                }
                EntryKind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    builder.append_link(&mut header, &entry.path, target)
                }
                EntryKind::Hardlink(target) => {
                    header.set_entry_type(tar::EntryType::Link);
                    builder.append_link(&mut header, &entry.path, target)
                }
            };
            result.unwrap_or_else(|e| panic!("tar entry {}: {e}", entry.path));
        }
        builder.into_inner().expect("finish tar")
    }

    /// The layer with OCI media types.
    pub fn build(&self, compression: Compression) -> TestLayer {
        layer_from_tar(self.tar(), compression, flate2::Compression::default())
    }

    /// A gzip layer with the Docker schema-2 media type.
    pub fn build_docker(&self) -> TestLayer {
        self.build(Compression::Gzip).into_docker()
    }
}

fn relative(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

fn layer_from_tar(tar: Vec<u8>, compression: Compression, level: flate2::Compression) -> TestLayer {
    let diff_id = sha256_digest(&tar);
    match compression {
        Compression::None => TestLayer::new(OCI_LAYER_TAR, tar, diff_id),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(&tar).expect("gzip");
            TestLayer::new(OCI_LAYER_GZIP, encoder.finish().expect("gzip"), diff_id)
        }
        Compression::Zstd => {
            let blob = zstd::encode_all(tar.as_slice(), 3).expect("zstd");
            TestLayer::new(OCI_LAYER_ZSTD, blob, diff_id)
        }
    }
}

/// `{architecture, os, variant?}` as in an index entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
}

impl Platform {
    fn to_json(&self) -> Value {
        let mut platform = json!({"architecture": self.architecture, "os": self.os});
        if let Some(variant) = &self.variant {
            platform["variant"] = json!(variant);
        }
        platform
    }
}

/// A single-platform image: what `push_image` uploads.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub config: Vec<u8>,
    pub config_digest: String,
    pub config_media_type: String,
    pub layers: Vec<TestLayer>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub platform: Platform,
}

impl TestImage {
    /// The same image with its manifest JSON changed by `edit` (digest recomputed), to make
    /// manifests a registry accepts but a careful client must refuse (wrong sizes, digests…).
    pub fn with_manifest_edit(mut self, edit: impl FnOnce(&mut Value)) -> TestImage {
        let mut manifest: Value = serde_json::from_slice(&self.manifest).expect("manifest json");
        edit(&mut manifest);
        self.manifest = serde_json::to_vec_pretty(&manifest).expect("manifest json");
        self.manifest_digest = sha256_digest(&self.manifest);
        self
    }

    /// The manifest as JSON, for assertions.
    pub fn manifest_json(&self) -> Value {
        serde_json::from_slice(&self.manifest).expect("manifest json")
    }

    /// The config as JSON, for assertions.
    pub fn config_json(&self) -> Value {
        serde_json::from_slice(&self.config).expect("config json")
    }
}

/// Builds a `TestImage` from layers and the runtime settings of its config.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    platform: Platform,
    layers: Vec<TestLayer>,
    env: Vec<String>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    workdir: Option<String>,
    user: Option<String>,
    labels: BTreeMap<String, String>,
}

impl ImageBuilder {
    /// `arch` as Go spells it: "amd64", "arm64", ...; os "linux".
    pub fn new(arch: &str) -> ImageBuilder {
        ImageBuilder {
            platform: Platform {
                architecture: arch.to_string(),
                os: "linux".to_string(),
                variant: None,
            },
            layers: Vec::new(),
            env: Vec::new(),
            entrypoint: None,
            cmd: None,
            workdir: None,
            user: None,
            labels: BTreeMap::new(),
        }
    }

    pub fn os(mut self, os: &str) -> ImageBuilder {
        self.platform.os = os.to_string();
        self
    }

    /// E.g. "v8" for arm64, "v7" for arm.
    pub fn variant(mut self, variant: &str) -> ImageBuilder {
        self.platform.variant = Some(variant.to_string());
        self
    }

    pub fn layer(mut self, layer: TestLayer) -> ImageBuilder {
        self.layers.push(layer);
        self
    }

    pub fn layers(mut self, layers: impl IntoIterator<Item = TestLayer>) -> ImageBuilder {
        self.layers.extend(layers);
        self
    }

    /// Appends `KEY=VALUE` to the config's `Env`.
    pub fn env(mut self, key: &str, value: &str) -> ImageBuilder {
        self.env.push(format!("{key}={value}"));
        self
    }

    pub fn entrypoint(mut self, args: &[&str]) -> ImageBuilder {
        self.entrypoint = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn cmd(mut self, args: &[&str]) -> ImageBuilder {
        self.cmd = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn workdir(mut self, dir: &str) -> ImageBuilder {
        self.workdir = Some(dir.to_string());
        self
    }

    /// "name", "uid", "uid:gid" or "name:group", as the config allows.
    pub fn user(mut self, user: &str) -> ImageBuilder {
        self.user = Some(user.to_string());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> ImageBuilder {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    fn config(&self) -> Vec<u8> {
        let mut runtime = serde_json::Map::new();
        if !self.env.is_empty() {
            runtime.insert("Env".into(), json!(self.env));
        }
        if let Some(entrypoint) = &self.entrypoint {
            runtime.insert("Entrypoint".into(), json!(entrypoint));
        }
        if let Some(cmd) = &self.cmd {
            runtime.insert("Cmd".into(), json!(cmd));
        }
        if let Some(workdir) = &self.workdir {
            runtime.insert("WorkingDir".into(), json!(workdir));
        }
        if let Some(user) = &self.user {
            runtime.insert("User".into(), json!(user));
        }
        if !self.labels.is_empty() {
            runtime.insert("Labels".into(), json!(self.labels));
        }
        let history: Vec<Value> = (0..self.layers.len())
            .map(|i| json!({"created": CREATED, "created_by": format!("berth test layer {i}")}))
            .collect();
        let diff_ids: Vec<&str> = self.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let mut config = json!({
            "created": CREATED,
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "config": runtime,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        if let Some(variant) = &self.platform.variant {
            config["variant"] = json!(variant);
        }
        serde_json::to_vec_pretty(&config).expect("config json")
    }

    fn build(self, manifest_media_type: &str, config_media_type: &str) -> TestImage {
        let config = self.config();
        let config_digest = sha256_digest(&config);
        let layers: Vec<Value> = self.layers.iter().map(TestLayer::descriptor).collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_media_type,
            "config": {
                "mediaType": config_media_type,
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": layers,
        });
        let manifest = serde_json::to_vec_pretty(&manifest).expect("manifest json");
        TestImage {
            config_digest,
            config,
            config_media_type: config_media_type.to_string(),
            layers: self.layers,
            manifest_digest: sha256_digest(&manifest),
            manifest,
            manifest_media_type: manifest_media_type.to_string(),
            platform: self.platform,
        }
    }

    /// An OCI image manifest with an OCI config.
    pub fn oci(self) -> TestImage {
        self.build(OCI_MANIFEST, OCI_CONFIG)
    }

    /// A Docker v2 schema 2 manifest; layers keep the media types they were built with, so use
    /// `build_docker()`/`into_docker()` layers for a faithful Docker image.
    pub fn docker(self) -> TestImage {
        self.build(DOCKER_MANIFEST, DOCKER_CONFIG)
    }
}

/// A multi-platform image: an OCI index or a Docker manifest list over `images`.
#[derive(Clone, Debug)]
pub struct TestIndex {
    pub images: Vec<TestImage>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub media_type: String,
}

impl TestIndex {
    fn build(media_type: &str, images: Vec<TestImage>) -> TestIndex {
        let manifests: Vec<Value> = images
            .iter()
            .map(|image| {
                json!({
                    "mediaType": image.manifest_media_type,
                    "digest": image.manifest_digest,
                    "size": image.manifest.len(),
                    "platform": image.platform.to_json(),
                })
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests});
        let manifest = serde_json::to_vec_pretty(&index).expect("index json");
        TestIndex {
            images,
            manifest_digest: sha256_digest(&manifest),
            manifest,
            media_type: media_type.to_string(),
        }
    }

    /// An OCI image index (application/vnd.oci.image.index.v1+json).
    pub fn oci(images: Vec<TestImage>) -> TestIndex {
        TestIndex::build(OCI_INDEX, images)
    }

    /// A Docker manifest list; give it `ImageBuilder::docker()` images.
    pub fn docker(images: Vec<TestImage>) -> TestIndex {
        TestIndex::build(DOCKER_MANIFEST_LIST, images)
    }
}

/// The busybox applets linked into every busybox layer.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ash",
    "ls",
    "cat",
    "echo",
    "env",
    "id",
    "true",
    "false",
    "pwd",
    "sleep",
    "mkdir",
    "rm",
    "rmdir",
    "cp",
    "mv",
    "ln",
    "touch",
    "chmod",
    "chown",
    "stat",
    "readlink",
    "wc",
    "head",
    "tail",
    "grep",
    "sed",
    "tr",
    "cut",
    "sort",
    "uniq",
    "printf",
    "test",
    "[",
    "find",
    "whoami",
    "hostname",
    "uname",
    "date",
    "ps",
    "kill",
    "df",
    "du",
    "nproc",
    "sha256sum",
    "timeout",
    "dd",
    "seq",
    "tty",
    "unshare",
    "nc",
    "wget",
    "httpd",
    "ip",
    "yes",
];

pub const BUSYBOX_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    app:x:1000:1000:app:/home/app:/bin/sh\n\
    nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
pub const BUSYBOX_GROUP: &str = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n";

/// PATH for images built on `busybox_layer()`.
pub const BUSYBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A runnable base layer (OCI gzip; `.into_docker()` for Docker) from the host's static busybox:
/// /bin/busybox with its applets as symlinks (`BUSYBOX_APPLETS`), /usr/bin/env, /etc/passwd and
/// /etc/group (root, `app` 1000:1000, nobody), /root (0700), /home/app (owned 1000:1000) and an
/// empty /tmp (1777). Built once per test binary, at gzip's fast level: compressing ~2 MB
/// unoptimized takes a second even so.
pub fn busybox_layer() -> TestLayer {
    static LAYER: OnceLock<TestLayer> = OnceLock::new();
    LAYER
        .get_or_init(|| {
            let tar = busybox_layer_builder().tar();
            layer_from_tar(tar, Compression::Gzip, flate2::Compression::fast())
        })
        .clone()
}

/// The entries of `busybox_layer()`, to extend or compress differently.
pub fn busybox_layer_builder() -> LayerBuilder {
    let busybox = std::fs::read("/bin/busybox").unwrap_or_else(|e| {
        panic!(
            "/bin/busybox: {e}; install busybox-static (apt-get install busybox-static; \
             scripts/test does)"
        )
    });
    let mut layer = LayerBuilder::new()
        .dir("bin", 0o755)
        .file("bin/busybox", busybox, 0o755);
    for applet in BUSYBOX_APPLETS {
        layer = layer.symlink(&format!("bin/{applet}"), "busybox");
    }
    layer
        .dir("etc", 0o755)
        .file("etc/passwd", BUSYBOX_PASSWD, 0o644)
        .file("etc/group", BUSYBOX_GROUP, 0o644)
        .dir("home", 0o755)
        .dir("home/app", 0o755)
        .owner(1000, 1000)
        .dir("root", 0o700)
        .dir("tmp", 0o1777)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .symlink("usr/bin/env", "/bin/busybox")
}

/// Deterministic incompressible bytes (xorshift64), so benchmark layers are as large
/// compressed as uncompressed, like real binaries and media, without a rand dependency.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A benchmark image of about `total_bytes` of file content split over `layers` gzip layers,
/// each holding files of at most 4 MiB of pseudo-random bytes. Gzip runs at level 0 (stored
/// blocks): deflate stores incompressible data anyway, so the blobs are what a real compressor
/// would produce in size and decode cost, without minutes of compression in debug builds.
/// Still, hashing is slow unoptimized: 80 MB takes 10-25 s in a debug build, about a second in
/// release, so benchmark with `--release`. Built once per size in a test binary.
pub fn big_image(total_bytes: usize, layers: usize) -> TestImage {
    static BUILT: Mutex<BTreeMap<(usize, usize), TestImage>> = Mutex::new(BTreeMap::new());
    assert!(layers > 0, "big_image needs at least one layer");
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let image = built.entry((total_bytes, layers)).or_insert_with(|| {
        let per_layer = total_bytes / layers;
        // One thread per layer: the work is all CPU, and unoptimized builds need the help.
        let built: Vec<TestLayer> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..layers)
                .map(|l| scope.spawn(move || big_layer(l, per_layer)))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("big layer thread"))
                .collect()
        });
        ImageBuilder::new("amd64")
            .layers(built)
            .cmd(&["/bin/true"])
            .oci()
    });
    image.clone()
}

fn big_layer(index: usize, bytes: usize) -> TestLayer {
    const FILE: usize = 4 << 20;
    let mut builder = LayerBuilder::new().dir(&format!("big/layer-{index}"), 0o755);
    let mut left = bytes;
    let mut file = 0;
    while left > 0 {
        let len = left.min(FILE);
        let seed = ((index as u64) << 32) | file as u64;
        builder = builder.file(
            &format!("big/layer-{index}/file-{file}.bin"),
            pseudo_random_bytes(seed, len),
            0o644,
        );
        left -= len;
        file += 1;
    }
    layer_from_tar(
        builder.tar(),
        Compression::Gzip,
        flate2::Compression::none(),
    )
}

/// Images with known content, for pull-and-unpack tests.
pub mod ready_made {
    use super::*;

    /// One busybox layer (`busybox_layer()`), PATH set, `CMD ["/bin/sh"]`, amd64.
    pub fn busybox_image() -> TestImage {
        ImageBuilder::new("amd64")
            .layer(busybox_layer())
            .env("PATH", BUSYBOX_PATH)
            .cmd(&["/bin/sh"])
            .oci()
    }

    /// `/etc/passwd` as the opaque /etc layer rewrites it.
    pub const NEW_PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        app:x:1000:1000:app:/home/app:/bin/sh\n\
        svc:x:2000:2000:svc:/nonexistent:/bin/false\n";
    pub const NEW_GROUP: &str = "root:x:0:\napp:x:1000:\nsvc:x:2000:\n";

    /// Regular files of `multi_layer_with_whiteouts()` after flattening, with their content
    /// (paths relative to the rootfs; busybox's own files are not listed).
    pub const MULTI_LAYER_FILES: &[(&str, &str)] = &[
        ("data/b", "bravo\n"),
        ("etc/passwd", NEW_PASSWD),
        ("etc/group", NEW_GROUP),
        ("etc/hostname", "berth-test\n"),
        ("usr/share/app/version", "1.2.3\n"),
    ];

    /// Paths that must not exist after flattening `multi_layer_with_whiteouts()`, whiteout
    /// markers included.
    pub const MULTI_LAYER_ABSENT: &[&str] =
        &["data/a", "data/.wh.a", "etc/motd", "etc/.wh..wh..opq"];

    /// Four layers, OCI manifest, amd64, PATH set, `CMD ["/bin/sh"]`, `WorkingDir /data`:
    ///
    /// 1. gzip: `busybox_layer()`.
    /// 2. gzip: adds /data/a ("alpha\n"), /data/b ("bravo\n"), /etc/motd ("welcome\n").
    /// 3. gzip: whiteout /data/.wh.a; writes a new /etc/passwd (`NEW_PASSWD`), /etc/group
    ///    (`NEW_GROUP`) and /etc/hostname ("berth-test\n"), THEN /etc/.wh..wh..opq. The marker
    ///    comes after its siblings on purpose: the OCI layer spec says a whiteout applies only
    ///    to lower layers, so the new /etc files must survive whatever the entry order.
    /// 4. zstd: adds /usr/share/app/version ("1.2.3\n").
    ///
    /// Flattened tree (dirs 0755 root:root unless said):
    /// ```text
    /// /bin/busybox (0755)   /bin/{sh,ls,cat,…} -> busybox   (BUSYBOX_APPLETS)
    /// /data/b               "bravo\n"                        (no /data/a)
    /// /etc/passwd           NEW_PASSWD                       (lower passwd hidden)
    /// /etc/group            NEW_GROUP
    /// /etc/hostname         "berth-test\n"                   (no /etc/motd)
    /// /home/app/            owned 1000:1000
    /// /root/                0700
    /// /tmp/                 1777, empty
    /// /usr/bin/env          -> /bin/busybox
    /// /usr/share/app/version "1.2.3\n"
    /// ```
    pub fn multi_layer_with_whiteouts() -> TestImage {
        let adds = LayerBuilder::new()
            .dir("data", 0o755)
            .file("data/a", "alpha\n", 0o644)
            .file("data/b", "bravo\n", 0o644)
            .dir("etc", 0o755)
            .file("etc/motd", "welcome\n", 0o644)
            .build(Compression::Gzip);
        let hides = LayerBuilder::new()
            .dir("data", 0o755)
            .whiteout("data/a")
            .dir("etc", 0o755)
            .file("etc/passwd", NEW_PASSWD, 0o644)
            .file("etc/group", NEW_GROUP, 0o644)
            .file("etc/hostname", "berth-test\n", 0o644)
            .opaque("etc")
            .build(Compression::Gzip);
        let zstd = LayerBuilder::new()
            .dir("usr", 0o755)
            .dir("usr/share", 0o755)
            .dir("usr/share/app", 0o755)
            .file("usr/share/app/version", "1.2.3\n", 0o644)
            .build(Compression::Zstd);
        ImageBuilder::new("amd64")
            .layer(busybox_layer())
            .layer(adds)
            .layer(hides)
            .layer(zstd)
            .env("PATH", BUSYBOX_PATH)
            .cmd(&["/bin/sh"])
            .workdir("/data")
            .oci()
    }
}
