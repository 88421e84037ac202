//! Where an image comes from: a registry reference (tag and/or digest, Docker Hub
//! normalisation) or, for air-gapped hosts, a local archive or OCI layout, written with
//! skopeo's transport prefixes: `oci-archive:/path.tar[:TAG]`, `docker-archive:/path.tar[:REF]`,
//! `oci:/path/dir[:TAG]`.

use std::fmt;
use std::str::FromStr;

use oci_spec::distribution::Reference;

use super::value::{Hint, string_value};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImageSource {
    /// A registry image; `reference` is fully qualified ("docker.io/library/nginx:1.27").
    Registry(RegistryRef),
    /// An OCI image layout directory.
    OciLayout { path: String, tag: Option<String> },
    /// A tar archive of an OCI image layout.
    OciArchive { path: String, tag: Option<String> },
    /// A `docker save` archive.
    DockerArchive {
        path: String,
        reference: Option<String>,
    },
}

/// A normalised registry reference. Ordering and equality use the canonical text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistryRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl RegistryRef {
    /// The reference a registry client should resolve ("…:tag", "…@digest" or both).
    pub(crate) fn canonical(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest);
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageRefError {
    #[error("invalid image reference `{text}`: {reason}")]
    Invalid { text: String, reason: String },
    #[error("invalid digest `{digest}` in `{text}`")]
    BadDigest { text: String, digest: String },
    #[error("`{text}` needs an absolute path after `{transport}:`")]
    RelativePath {
        text: String,
        transport: &'static str,
    },
}

impl Hint for ImageRefError {
    fn help(&self) -> Option<String> {
        Some(match self {
            ImageRefError::BadDigest { .. } => "a digest is `sha256:` followed by 64 lowercase hex digits".into(),
            ImageRefError::RelativePath { transport, .. } => format!("write e.g. \"{transport}:/srv/images/app.tar\""),
            ImageRefError::Invalid { .. } => "write a registry reference such as \"docker.io/library/nginx:1.27-alpine\", \"ghcr.io/org/app@sha256:…\", or a local image as \"oci-archive:/path/app.tar\", \"oci:/path/layout:TAG\" or \"docker-archive:/path/app.tar\"".into(),
        })
    }
}

fn split_path_and_tag(rest: &str) -> (String, Option<String>) {
    match rest.split_once(':') {
        Some((path, tag)) if !tag.is_empty() => (path.to_string(), Some(tag.to_string())),
        Some((path, _)) => (path.to_string(), None),
        None => (rest.to_string(), None),
    }
}

fn local(
    text: &str,
    transport: &'static str,
    rest: &str,
) -> Result<(String, Option<String>), ImageRefError> {
    let (path, tag) = split_path_and_tag(rest);
    if !path.starts_with('/') || path.split('/').any(|p| p == "..") || path.contains('\0') {
        return Err(ImageRefError::RelativePath {
            text: text.into(),
            transport,
        });
    }
    Ok((path, tag))
}

fn valid_digest(digest: &str) -> bool {
    match digest.split_once(':') {
        Some(("sha256", hex)) => {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        Some(("sha512", hex)) => {
            hex.len() == 128 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        _ => false,
    }
}

impl FromStr for ImageSource {
    type Err = ImageRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, tag) = local(s, "oci-archive", rest)?;
            return Ok(ImageSource::OciArchive { path, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (path, reference) = local(s, "docker-archive", rest)?;
            return Ok(ImageSource::DockerArchive { path, reference });
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, tag) = local(s, "oci", rest)?;
            return Ok(ImageSource::OciLayout { path, tag });
        }
        if s.is_empty() || s.trim() != s || s.contains("://") {
            return Err(ImageRefError::Invalid {
                text: s.into(),
                reason: "expected `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`".into(),
            });
        }
        let reference: Reference =
            s.parse().map_err(
                |e: oci_spec::distribution::ParseError| ImageRefError::Invalid {
                    text: s.into(),
                    reason: e.to_string(),
                },
            )?;
        // oci-spec takes an uppercase first component ("B/o") for a Docker Hub repository;
        // Docker treats it as a host. Repositories are lowercase, so refuse it plainly.
        if reference
            .repository()
            .bytes()
            .any(|b| b.is_ascii_uppercase())
        {
            return Err(ImageRefError::Invalid {
                text: s.into(),
                reason: "repository names are lowercase".into(),
            });
        }
        if let Some(digest) = reference.digest()
            && !valid_digest(digest)
        {
            return Err(ImageRefError::BadDigest {
                text: s.into(),
                digest: digest.into(),
            });
        }
        // A digest alone pins the image; "latest" is only implied when nothing pins it.
        let tag = match (reference.tag(), reference.digest()) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(ImageSource::Registry(RegistryRef {
            registry: reference.registry().to_string(),
            repository: reference.repository().to_string(),
            tag,
            digest: reference.digest().map(str::to_string),
        }))
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_tag = |f: &mut fmt::Formatter<'_>,
                        prefix: &str,
                        path: &str,
                        tag: &Option<String>| match tag {
            Some(t) => write!(f, "{prefix}:{path}:{t}"),
            None => write!(f, "{prefix}:{path}"),
        };
        match self {
            ImageSource::Registry(r) => f.write_str(&r.canonical()),
            ImageSource::OciLayout { path, tag } => with_tag(f, "oci", path, tag),
            ImageSource::OciArchive { path, tag } => with_tag(f, "oci-archive", path, tag),
            ImageSource::DockerArchive { path, reference } => {
                with_tag(f, "docker-archive", path, reference)
            }
        }
    }
}

string_value!(
    ImageSource,
    expecting = "an image reference such as \"docker.io/library/nginx:1.27\"",
    schema = "An image: a registry reference (\"nginx:1.27-alpine\", \"ghcr.io/org/app@sha256:…\") or a local image (\"oci-archive:/path/app.tar[:TAG]\", \"oci:/path/layout[:TAG]\", \"docker-archive:/path/app.tar[:REF]\")."
);

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(s: &str) -> String {
        s.parse::<ImageSource>().unwrap().to_string()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_docker_hub() {
        assert_eq!(canonical("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            canonical("nginx:1.27-alpine"),
            "docker.io/library/nginx:1.27-alpine"
        );
        assert_eq!(
            canonical("index.docker.io/library/nginx:1"),
            "docker.io/library/nginx:1"
        );
        assert_eq!(canonical("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(canonical("ghcr.io/org/app:v1"), "ghcr.io/org/app:v1");
        assert_eq!(
            canonical("127.0.0.1:5000/test/app:v1"),
            "127.0.0.1:5000/test/app:v1"
        );
        assert_eq!(canonical("localhost:5000/app"), "localhost:5000/app:latest");
    }

    #[test]
    fn digests_pin_without_implied_latest() {
        assert_eq!(
            canonical(&format!("nginx@{D}")),
            format!("docker.io/library/nginx@{D}")
        );
        assert_eq!(
            canonical(&format!("nginx:1.27@{D}")),
            format!("docker.io/library/nginx:1.27@{D}")
        );
        assert!("nginx@sha256:abc".parse::<ImageSource>().is_err());
        let upper = format!("nginx@{}", D.to_uppercase().replace("SHA256", "sha256"));
        assert!(upper.parse::<ImageSource>().is_err());
    }

    #[test]
    fn local_transports() {
        assert_eq!(
            "oci-archive:/srv/app.tar".parse::<ImageSource>().unwrap(),
            ImageSource::OciArchive {
                path: "/srv/app.tar".into(),
                tag: None
            }
        );
        assert_eq!(
            "oci:/srv/layout:v2".parse::<ImageSource>().unwrap(),
            ImageSource::OciLayout {
                path: "/srv/layout".into(),
                tag: Some("v2".into())
            }
        );
        assert_eq!(
            canonical("docker-archive:/srv/a.tar"),
            "docker-archive:/srv/a.tar"
        );
        assert!(matches!(
            "oci-archive:app.tar".parse::<ImageSource>(),
            Err(ImageRefError::RelativePath { .. })
        ));
        assert!(matches!(
            "oci:/a/../b".parse::<ImageSource>(),
            Err(ImageRefError::RelativePath { .. })
        ));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "B/o",
            "docker.io/Library/nginx:1",
            "",
            " nginx",
            "Nginx:1",
            "nginx:",
            "https://docker.io/nginx",
            "nginx:bad tag",
            "a//b",
        ] {
            assert!(bad.parse::<ImageSource>().is_err(), "{bad}");
        }
    }
}
