//! Pulling from distribution-v2 registries through oci-client: token and basic auth,
//! manifest and index resolution with our own platform choice, blobs streamed (never held in
//! memory) into the content store with bounded parallelism, resumed with `Range` after a
//! broken transfer and retried with backoff on transient errors. Every manifest, config and
//! layer is verified against its digest before it becomes visible.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol, LayerDescriptor};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{Descriptor, ImageManifest};

use super::auth::Credentials;
use super::manifest::{self, ManifestError, Parsed, Platform};
use super::store::{ContentStore, Ingest, StoreError};
use super::unpack::Limits;
use crate::digest::Digest;
use crate::spec::image_ref::RegistryRef;
use crate::state::image::{ImageRecord, LayerRecord};

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: Platform,
    /// Allow plain HTTP and unverified TLS for a registry that is not on loopback.
    pub insecure: bool,
    /// Layers downloaded at once.
    pub concurrency: usize,
    /// Further attempts after a transient failure.
    pub retries: u32,
    /// First retry delay; doubles each time.
    pub backoff: Duration,
    /// Unpack each layer as soon as it is downloaded.
    pub unpack: bool,
    pub limits: Limits,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: Platform::host(),
            insecure: false,
            concurrency: 4,
            retries: 4,
            backoff: Duration::from_millis(250),
            unpack: true,
            limits: Limits::default(),
        }
    }
}

/// Where a pull reports what it does; the CLI draws progress bars or prints lines.
pub trait Progress: Send + Sync {
    fn blob_started(&self, digest: &Digest, size: u64);
    fn blob_advanced(&self, digest: &Digest, bytes: u64);
    /// `fetched` is false when the store already had it.
    fn blob_done(&self, digest: &Digest, fetched: bool);
    fn retrying(&self, what: &str, attempt: u32, error: &str);
}

/// Progress that reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn blob_started(&self, _: &Digest, _: u64) {}
    fn blob_advanced(&self, _: &Digest, _: u64) {}
    fn blob_done(&self, _: &Digest, _: bool) {}
    fn retrying(&self, _: &str, _: u32, _: &str) {}
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("registry {registry} refused access to {reference}")]
    Unauthorized { registry: String, reference: String },
    #[error("{reference} was not found on {registry}: {message}")]
    NotFound {
        registry: String,
        reference: String,
        message: String,
    },
    #[error("registry {registry}: {message}")]
    Registry { registry: String, message: String },
    #[error("{what} from {registry} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        registry: String,
        what: &'static str,
        expected: String,
        actual: Digest,
    },
    #[error("blob {digest} from {registry} failed verification: {message}")]
    Verification {
        registry: String,
        digest: Digest,
        message: String,
    },
    #[error("{what} is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("{reference} is not a valid reference for the registry client: {message}")]
    Reference { reference: String, message: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("background task failed: {0}")]
    Task(String),
}

impl PullError {
    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            PullError::Unauthorized { registry, .. } => Some(format!(
                "add credentials for {registry} to {} (docker config.json format) or ~/.docker/config.json, or check the repository name",
                super::auth::DEFAULT_AUTH_FILE
            )),
            PullError::NotFound { .. } => Some("check the repository and tag (berth normalises short names to docker.io/library/NAME)".into()),
            _ => None,
        }
    }
}

/// Registries reached over plain HTTP without asking: loopback only, as Docker does.
fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn client(registry: &str, plain_http: bool, accept_invalid: bool) -> Client {
    Client::new(ClientConfig {
        protocol: if plain_http {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: accept_invalid,
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(15)),
        read_timeout: Some(Duration::from_secs(120)),
        user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    })
}

/// An error with its causes ("error sending request: … connection refused"): reqwest's
/// top-level message alone hides what went wrong.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn is_transient(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        _ => false,
    }
}

struct Session<'a> {
    client: Client,
    auth: RegistryAuth,
    reference: Reference,
    registry: String,
    store: &'a ContentStore,
    options: &'a PullOptions,
    progress: Arc<dyn Progress>,
    /// Trying HTTPS on an insecure registry: fail fast, without retries.
    probing: bool,
}

/// Resolve a registry reference, fetch everything it needs into the store (unpacking layers
/// when asked) and return the record to save.
pub(crate) async fn pull(
    store: &ContentStore,
    reference: &RegistryRef,
    credentials: &Credentials,
    options: &PullOptions,
    progress: Arc<dyn Progress>,
) -> Result<ImageRecord, PullError> {
    let canonical = reference.canonical();
    let oci_ref: Reference =
        canonical
            .parse()
            .map_err(|e: oci_client::ParseError| PullError::Reference {
                reference: canonical.clone(),
                message: e.to_string(),
            })?;
    let registry = reference.registry.clone();
    let auth = match credentials.get(&registry) {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.expose().to_string()),
        None => RegistryAuth::Anonymous,
    };
    // Loopback registries speak plain HTTP (as Docker treats 127.0.0.0/8); an insecure one
    // is tried once over HTTPS (certificate unchecked), then over plain HTTP.
    let loopback = is_loopback_registry(&registry);
    let mut session = Session {
        client: client(&registry, loopback, options.insecure),
        auth,
        reference: oci_ref,
        registry,
        store,
        options,
        progress,
        probing: options.insecure && !loopback,
    };
    let top_ref = session.reference.clone();
    let first = session.fetch_manifest(&top_ref).await;
    let (bytes, top_digest) = match first {
        Err(PullError::Registry { .. }) if session.probing => {
            session.client = client(&session.registry, true, true);
            session.probing = false;
            session.fetch_manifest(&top_ref).await?
        }
        other => {
            session.probing = false;
            other?
        }
    };
    let nested_index = |digest: &Digest| -> PullError {
        ManifestError::Invalid {
            what: "manifest",
            digest: digest.to_string(),
            message: "an index points to another index".into(),
        }
        .into()
    };
    let (image_manifest, manifest_digest, index_digest) =
        match manifest::parse(&bytes, &top_digest)? {
            Parsed::Manifest(m) => (m, top_digest, None),
            Parsed::Index(index) => {
                let entry = manifest::select(&index, &options.platform, &top_digest)?;
                let child_digest = manifest::descriptor_digest(entry, "index entry")?;
                let child_ref = session
                    .reference
                    .clone_with_digest(child_digest.to_string());
                let (child_bytes, got) = session.fetch_manifest(&child_ref).await?;
                if got != child_digest {
                    return Err(PullError::DigestMismatch {
                        registry: session.registry.clone(),
                        what: "manifest",
                        expected: child_digest.to_string(),
                        actual: got,
                    });
                }
                let Parsed::Manifest(m) = manifest::parse(&child_bytes, &child_digest)? else {
                    return Err(nested_index(&child_digest));
                };
                (m, child_digest, Some(top_digest))
            }
        };
    let config_desc = image_manifest.config().clone();
    let config_digest = manifest::descriptor_digest(&config_desc, "config descriptor")?;
    if config_desc.size() > manifest::MAX_MANIFEST_SIZE {
        return Err(PullError::TooLarge {
            what: "image config",
            size: config_desc.size(),
            limit: manifest::MAX_MANIFEST_SIZE,
        });
    }
    session.fetch_blob(&config_desc, &config_digest).await?;
    let config_bytes = store.read_blob(&config_digest, manifest::MAX_MANIFEST_SIZE)?;
    let config = manifest::parse_config(&config_bytes, &config_digest)?;
    let layers = manifest::layer_records(&image_manifest, &config, &config_digest)?;
    session.fetch_layers(&image_manifest, &layers).await?;

    let platform = manifest::config_platform(&config);
    Ok(ImageRecord {
        source: canonical,
        manifest: manifest_digest,
        index: index_digest,
        config: config_digest,
        platform,
        layers,
        resolved_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    })
}

/// Why one transfer attempt failed: worth another attempt or not.
enum Failure {
    Transfer(OciDistributionError),
    Permanent(PullError),
}

impl Session<'_> {
    /// An I/O error while streaming a blob: a verification failure inside oci-client's
    /// stream or a blob longer than its descriptor is final; anything else is the transfer.
    fn classify_io(&self, digest: &Digest, e: std::io::Error) -> Failure {
        if let Some(inner) = e.get_ref() {
            if let Some(d) = inner.downcast_ref::<oci_client::errors::DigestError>() {
                return Failure::Permanent(PullError::Verification {
                    registry: self.registry.clone(),
                    digest: digest.clone(),
                    message: d.to_string(),
                });
            }
            if let Some(StoreError::LongerThanDescriptor { expected, .. }) =
                inner.downcast_ref::<StoreError>()
            {
                return Failure::Permanent(PullError::Store(StoreError::LongerThanDescriptor {
                    digest: digest.clone(),
                    expected: *expected,
                }));
            }
        }
        Failure::Transfer(OciDistributionError::IoError(e))
    }

    fn registry_error(&self, e: OciDistributionError) -> PullError {
        let registry = self.registry.clone();
        let reference = self.reference.whole();
        match e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => PullError::Unauthorized {
                registry,
                reference,
            },
            OciDistributionError::ImageManifestNotFoundError(message) => PullError::NotFound {
                registry,
                reference,
                message,
            },
            OciDistributionError::RegistryError { envelope, .. }
                if envelope
                    .errors
                    .iter()
                    .any(|e| format!("{:?}", e.code).contains("Unknown")) =>
            {
                PullError::NotFound {
                    registry,
                    reference,
                    message: envelope
                        .errors
                        .iter()
                        .map(|e| e.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            }
            other => PullError::Registry {
                registry,
                message: error_chain(&other),
            },
        }
    }

    async fn with_retries<T, F, Fut>(&self, what: &str, mut attempt_fn: F) -> Result<T, PullError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
    {
        let mut delay = self.options.backoff;
        let mut attempt = 0;
        loop {
            match attempt_fn().await {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) && attempt < self.options.retries && !self.probing => {
                    attempt += 1;
                    self.progress.retrying(what, attempt, &error_chain(&e));
                    tracing::debug!(what, attempt, error = %e, "transient registry error; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(self.registry_error(e)),
            }
        }
    }

    /// Fetch a manifest, verify it, store it; returns its bytes and digest.
    async fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> Result<(bytes::Bytes, Digest), PullError> {
        let (bytes, _) = self
            .with_retries("manifest", || {
                self.client
                    .pull_manifest_raw(reference, &self.auth, manifest::ACCEPTED)
            })
            .await?;
        if bytes.len() as u64 > manifest::MAX_MANIFEST_SIZE {
            return Err(PullError::TooLarge {
                what: "manifest",
                size: bytes.len() as u64,
                limit: manifest::MAX_MANIFEST_SIZE,
            });
        }
        // Our own check, whatever the client did: a tag resolves to exactly these bytes.
        let actual = Digest::of(&bytes);
        if let Some(expected) = reference.digest()
            && expected != actual.to_string()
        {
            return Err(PullError::DigestMismatch {
                registry: self.registry.clone(),
                what: "manifest",
                expected: expected.to_string(),
                actual,
            });
        }
        let store = self.store.clone();
        let body = bytes.clone();
        tokio::task::spawn_blocking(move || store.put_blob(&body))
            .await
            .map_err(|e| PullError::Task(e.to_string()))??;
        Ok((bytes, actual))
    }

    async fn fetch_layers(
        &self,
        manifest: &ImageManifest,
        layers: &[LayerRecord],
    ) -> Result<(), PullError> {
        futures_util::stream::iter(manifest.layers().iter().zip(layers))
            .map(|(desc, layer)| async move {
                self.fetch_blob(desc, &layer.digest).await?;
                tracing::debug!(digest = %layer.digest, "layer blob present");
                if self.options.unpack {
                    let (store, blob, diff_id, limits) = (
                        self.store.clone(),
                        layer.digest.clone(),
                        layer.diff_id.clone(),
                        self.options.limits.clone(),
                    );
                    tokio::task::spawn_blocking(move || {
                        store.ensure_layer(&blob, &diff_id, &limits)
                    })
                    .await
                    .map_err(|e| PullError::Task(e.to_string()))??;
                }
                Ok::<(), PullError>(())
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .try_collect()
            .await
    }

    /// Stream one blob into the store, resuming after a broken transfer.
    async fn fetch_blob(&self, desc: &Descriptor, digest: &Digest) -> Result<(), PullError> {
        let size = desc.size();
        let (store, d) = (self.store.clone(), digest.clone());
        let ingest = tokio::task::spawn_blocking(move || store.ingest(&d, Some(size)))
            .await
            .map_err(|e| PullError::Task(e.to_string()))??;
        let mut writer = match ingest {
            Ingest::Present => {
                self.progress.blob_done(digest, false);
                return Ok(());
            }
            Ingest::Write(w) => w,
        };
        self.progress.blob_started(digest, size);
        let digest_text = digest.to_string();
        let layer = LayerDescriptor {
            digest: &digest_text,
            urls: desc.urls(),
        };
        let mut delay = self.options.backoff;
        let mut attempt = 0;
        loop {
            let offset = writer.written();
            let outcome: Result<(), Failure> = async {
                let response = self
                    .client
                    .pull_blob_stream_partial(&self.reference, &layer, offset, None)
                    .await
                    .map_err(Failure::Transfer)?;
                let stream = match response {
                    BlobResponse::Partial(s) => s,
                    BlobResponse::Full(s) => {
                        if offset > 0 {
                            writer.reset().map_err(|e| Failure::Transfer(e.into()))?;
                            self.progress.blob_advanced(digest, 0);
                        }
                        s
                    }
                };
                let expected_now = stream.content_length;
                let mut chunks = stream.stream;
                let mut received = 0u64;
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk.map_err(|e| self.classify_io(digest, e))?;
                    std::io::Write::write_all(&mut writer, &chunk)
                        .map_err(|e| self.classify_io(digest, e))?;
                    received += chunk.len() as u64;
                    self.progress.blob_advanced(digest, chunk.len() as u64);
                }
                if writer.written() < size {
                    // The whole response arrived and is still short: the blob is smaller than
                    // its descriptor says. Retrying cannot help.
                    if expected_now.is_some_and(|len| received >= len) {
                        return Err(Failure::Permanent(PullError::Store(
                            StoreError::SizeMismatch {
                                digest: digest.clone(),
                                expected: size,
                                actual: writer.written(),
                            },
                        )));
                    }
                    return Err(Failure::Transfer(OciDistributionError::IoError(
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("transfer ended after {} of {size} bytes", writer.written()),
                        ),
                    )));
                }
                Ok(())
            }
            .await;
            match outcome {
                Ok(()) => break,
                Err(Failure::Permanent(e)) => return Err(e),
                Err(Failure::Transfer(OciDistributionError::DigestError(e))) => {
                    return Err(PullError::Verification {
                        registry: self.registry.clone(),
                        digest: digest.clone(),
                        message: e.to_string(),
                    });
                }
                Err(Failure::Transfer(e)) if is_transient(&e) && attempt < self.options.retries => {
                    attempt += 1;
                    self.progress
                        .retrying(&digest.to_string(), attempt, &error_chain(&e));
                    tracing::debug!(%digest, attempt, error = %e, "blob transfer failed; resuming");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(Failure::Transfer(e)) => return Err(self.registry_error(e)),
            }
        }
        tokio::task::spawn_blocking(move || writer.commit())
            .await
            .map_err(|e| PullError::Task(e.to_string()))??;
        self.progress.blob_done(digest, true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for yes in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.3.4.5",
        ] {
            assert!(is_loopback_registry(yes), "{yes}");
        }
        for no in [
            "docker.io",
            "10.0.0.1:5000",
            "ghcr.io",
            "localhost.example.com:5000",
            "[2001:db8::1]:5000",
        ] {
            assert!(!is_loopback_registry(no), "{no}");
        }
    }
}
