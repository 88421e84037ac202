//! Registry credentials, read from a docker-style `config.json`: berth's own file first
//! (`--authfile`, else `/etc/berth/auth.json`), then the files podman and docker use
//! (`$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`).
//! Secrets are kept in [`Secret`], whose `Debug` and `Display` never show them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

pub(crate) const DEFAULT_AUTH_FILE: &str = "/etc/berth/auth.json";

/// A string that is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read credentials file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credentials file {} is not valid JSON: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("credentials file {}: the entry for `{registry}` has an `auth` value that is not base64 of USER:PASSWORD", path.display())]
    BadAuth { path: PathBuf, registry: String },
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Credentials by registry host ("docker.io", "ghcr.io", "127.0.0.1:5000").
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_registry: BTreeMap<String, Credential>,
}

/// "https://index.docker.io/v1/" and friends → "docker.io"; "https://ghcr.io" → "ghcr.io".
fn normalize_registry(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        h => h.to_ascii_lowercase(),
    }
}

impl Credentials {
    /// The first existing file among the given one (if any) and the standard places.
    pub(crate) fn load(explicit: Option<&Path>) -> Result<Self, AuthError> {
        if let Some(path) = explicit {
            return Self::from_file(path);
        }
        let mut candidates = vec![PathBuf::from(DEFAULT_AUTH_FILE)];
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
            candidates.push(p.into());
        }
        if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
            candidates.push(Path::new(&d).join("config.json"));
        }
        if let Some(h) = std::env::var_os("HOME") {
            candidates.push(Path::new(&h).join(".docker/config.json"));
        }
        let mut merged = Credentials::default();
        // Earlier files win: berth's own file overrides the docker and podman ones.
        for path in candidates.iter().rev() {
            if path.is_file() {
                merged
                    .by_registry
                    .extend(Self::from_file(path)?.by_registry);
            }
        }
        Ok(merged)
    }

    fn from_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, AuthError> {
        // The serde error may quote input; keep only its position so no secret leaks.
        let file: ConfigFile = serde_json::from_str(text).map_err(|e| AuthError::Parse {
            path: path.into(),
            message: format!("line {} column {}", e.line(), e.column()),
        })?;
        let mut by_registry = BTreeMap::new();
        for (key, entry) in file.auths {
            let registry = normalize_registry(&key);
            let credential = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .ok_or_else(|| AuthError::BadAuth {
                            path: path.into(),
                            registry: registry.clone(),
                        })?;
                    let (user, pass) =
                        decoded.split_once(':').ok_or_else(|| AuthError::BadAuth {
                            path: path.into(),
                            registry: registry.clone(),
                        })?;
                    Credential {
                        username: user.to_string(),
                        password: Secret::new(pass),
                    }
                }
                (_, Some(username), Some(password)) => Credential {
                    username,
                    password: Secret::new(password),
                },
                // Entries managed by credential helpers carry no secret here.
                _ => continue,
            };
            by_registry.insert(registry, credential);
        }
        Ok(Credentials { by_registry })
    }

    pub(crate) fn get(&self, registry: &str) -> Option<&Credential> {
        self.by_registry.get(&normalize_registry(registry))
    }

    pub fn insert(&mut self, registry: &str, credential: Credential) {
        self.by_registry
            .insert(normalize_registry(registry), credential);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config_forms() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cr3t:with:colons");
        let text = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}, "ghcr.io": {{"username": "bob", "password": "pw"}}, "quay.io": {{}}}}, "credsStore": "desktop"}}"#
        );
        let c = Credentials::parse(Path::new("c.json"), &text).unwrap();
        let hub = c.get("docker.io").unwrap();
        assert_eq!(hub.username, "alice");
        assert_eq!(hub.password.expose(), "s3cr3t:with:colons");
        assert_eq!(c.get("ghcr.io").unwrap().username, "bob");
        assert!(c.get("quay.io").is_none());
    }

    #[test]
    fn secrets_never_print() {
        let cred = Credential {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{cred:?}").contains("hunter2"));
        assert_eq!(Secret::new("hunter2").to_string(), "<redacted>");
    }

    #[test]
    fn errors_do_not_quote_secrets() {
        let err = Credentials::parse(
            Path::new("c.json"),
            r#"{"auths": {"x": {"auth": "hunter2-not-base64!"}}}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = Credentials::parse(
            Path::new("c.json"),
            r#"{"auths": {"x": {"password": hunter2}}}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn normalizes_registry_keys() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize_registry("https://GHCR.io/"), "ghcr.io");
        assert_eq!(normalize_registry("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
