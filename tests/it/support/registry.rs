//! A real registry (Debian's CNCF distribution, `docker-registry`) on 127.0.0.1, one per test,
//! with storage in a temporary directory, plus pushes through the distribution HTTP API.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::Client;

use super::images::{TestImage, TestIndex};
use super::sha256_digest;

pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;

/// A running registry; killed and its storage removed on drop.
pub struct TestRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    http: Client,
}

impl TestRegistry {
    /// Starts a registry on a free port of 127.0.0.1 and waits until `GET /v2/` answers 200.
    /// Panics (never skips) when the binary is missing, so a machine without it fails loudly.
    pub fn start() -> TestRegistry {
        assert!(
            Path::new(REGISTRY_BINARY).exists(),
            "{REGISTRY_BINARY} not found: install docker-registry (scripts/test does)"
        );
        let http = http_client();
        let mut last_log = String::new();
        // The free port is only free when we look: another process may take it before the
        // registry binds, so a bind failure is retried on a new port.
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("registry tempdir");
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(&config, config_yaml(&dir.path().join("storage"), port))
                .expect("write registry config");
            let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
            // Output goes to a file, not a pipe nobody drains, which could block the registry.
            let child = Command::new(REGISTRY_BINARY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("registry log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {REGISTRY_BINARY}: {e}"));
            let mut registry = TestRegistry {
                child,
                port,
                dir,
                http: http.clone(),
            };
            match registry.wait_ready() {
                Ok(()) => return registry,
                Err(log) if log.contains("address already in use") => last_log = log,
                Err(log) => panic!(
                    "docker-registry on 127.0.0.1:{port} did not come up within {READY_TIMEOUT:?}; \
                     its output:\n{log}"
                ),
            }
        }
        panic!("docker-registry found no free port in {START_ATTEMPTS} attempts:\n{last_log}");
    }

    /// Ok once `/v2/` answers 200; Err(output) if the process exits or the timeout passes.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let probe = Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(500))
            .build()
            .expect("http client");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("(exited: {status})\n{}", self.log()));
            }
            if let Ok(response) = probe.get(format!("{}/v2/", self.url())).send()
                && response.status() == StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.log());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// "127.0.0.1:PORT", as an image reference's registry part.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "http://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The registry's own output so far (warnings and errors), for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps its blobs and repositories.
    pub fn storage_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("storage")
    }

    /// Uploads `bytes` as a blob of `repo` in one monolithic PUT; returns its digest. A blob
    /// already there is not sent again.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let existing = self
            .http
            .head(format!("{}/v2/{repo}/blobs/{digest}", self.url()))
            .send()
            .expect("HEAD blob");
        if existing.status() == StatusCode::OK {
            return digest;
        }
        let start = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.url()))
            .send()
            .expect("POST blob upload");
        let start = self.expect_status(start, StatusCode::ACCEPTED, "start blob upload");
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload Location header")
            .to_string();
        let base = url::Url::parse(&self.url()).expect("registry url");
        let mut upload = base.join(&location).expect("upload location");
        upload.query_pairs_mut().append_pair("digest", &digest);
        let put = self
            .http
            .put(upload)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .expect("PUT blob");
        self.expect_status(put, StatusCode::CREATED, "finish blob upload");
        digest
    }

    /// Puts a manifest (image, index or list) under `reference`, a tag or its digest; returns
    /// its digest, checked against the registry's `Docker-Content-Digest`.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = sha256_digest(bytes);
        let put = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.url()))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .expect("PUT manifest");
        let put = self.expect_status(put, StatusCode::CREATED, "put manifest");
        let answered = put
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        assert_eq!(
            answered,
            Some(digest.as_str()),
            "registry digest of manifest {repo}:{reference}"
        );
        digest
    }

    /// Pushes the image's layers and config, then its manifest under `tag`.
    pub fn push_image(&self, repo: &str, tag: &str, image: &TestImage) {
        self.push_image_blobs(repo, image);
        self.push_manifest(repo, tag, &image.manifest_media_type, &image.manifest);
    }

    fn push_image_blobs(&self, repo: &str, image: &TestImage) {
        for layer in &image.layers {
            self.push_blob(repo, &layer.blob);
        }
        self.push_blob(repo, &image.config);
    }

    /// Pushes every image of the index (manifests by digest), then the index under `tag`.
    pub fn push_index(&self, repo: &str, tag: &str, index: &TestIndex) {
        for image in &index.images {
            self.push_image_blobs(repo, image);
            self.push_manifest(
                repo,
                &image.manifest_digest,
                &image.manifest_media_type,
                &image.manifest,
            );
        }
        self.push_manifest(repo, tag, &index.media_type, &index.manifest);
    }

    /// Deletes a manifest by digest (storage.delete is enabled), e.g. to make a tag dangle.
    pub fn delete_manifest(&self, repo: &str, digest: &str) {
        let response = self
            .http
            .delete(format!("{}/v2/{repo}/manifests/{digest}", self.url()))
            .send()
            .expect("DELETE manifest");
        self.expect_status(response, StatusCode::ACCEPTED, "delete manifest");
    }

    /// Deletes a blob by digest, e.g. to make a manifest reference a missing layer.
    pub fn delete_blob(&self, repo: &str, digest: &str) {
        let response = self
            .http
            .delete(format!("{}/v2/{repo}/blobs/{digest}", self.url()))
            .send()
            .expect("DELETE blob");
        self.expect_status(response, StatusCode::ACCEPTED, "delete blob");
    }

    fn expect_status(
        &self,
        response: reqwest::blocking::Response,
        want: StatusCode,
        what: &str,
    ) -> reqwest::blocking::Response {
        if response.status() == want {
            return response;
        }
        let status = response.status();
        let body = response.text().unwrap_or_default();
        panic!(
            "{what}: registry answered {status} (wanted {want}): {body}\nregistry log:\n{}",
            self.log()
        );
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking client for test traffic: no proxy from the environment, so requests to
/// 127.0.0.1 go straight there.
pub fn http_client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn config_yaml(storage: &Path, port: u16) -> String {
    format!(
        r#"version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: "{}"
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: berth-test-secret
"#,
        storage.display()
    )
}
