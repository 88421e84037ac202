//! Tests of the registry test support itself (registry, image builder, fault proxy), over
//! plain HTTP with reqwest and without berth, so a failure in a pull test can be trusted to be
//! berth's.

use std::io::Read as _;
use std::time::Instant;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};

use crate::support::images::{
    ACCEPT_ALL_MANIFESTS, Compression, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
    ImageBuilder, LayerBuilder, OCI_INDEX, OCI_LAYER_ZSTD, OCI_MANIFEST, TestImage, TestIndex,
    big_image, ready_made,
};
use crate::support::proxy::{Fault, FaultProxy, SecondServer, base64};
use crate::support::registry::{TestRegistry, http_client};
use crate::support::{hex, sha256_digest};

fn get_manifest(client: &Client, base: &str, repo: &str, reference: &str) -> Response {
    client
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", ACCEPT_ALL_MANIFESTS)
        .send()
        .expect("GET manifest")
}

fn get_blob(client: &Client, base: &str, repo: &str, digest: &str) -> Response {
    client
        .get(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .expect("GET blob")
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_string())
}

/// A two-layer image small enough to build in microseconds.
fn tiny_image() -> TestImage {
    let a = LayerBuilder::new()
        .dir("app", 0o755)
        .file("app/hello", "hello\n", 0o644)
        .build(Compression::Gzip);
    let b = LayerBuilder::new()
        .file("app/payload", vec![7u8; 64 * 1024], 0o644)
        .build(Compression::Gzip);
    ImageBuilder::new("amd64")
        .layer(a)
        .layer(b)
        .cmd(&["/app/hello"])
        .oci()
}

/// Entry paths of an uncompressed tar, in order.
fn tar_paths(tar: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .expect("tar entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

fn uncompress(media_type: &str, blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("gzip") {
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .expect("gunzip");
    } else if media_type.ends_with("zstd") {
        out = zstd::decode_all(blob).expect("unzstd");
    } else {
        out = blob.to_vec();
    }
    out
}

#[test]
fn registry_support_digest_helpers_are_right() {
    assert_eq!(
        sha256_digest(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"a"), "YQ==");
}

#[test]
fn registry_support_registry_answers_v2() {
    let registry = TestRegistry::start();
    assert!(registry.host().starts_with("127.0.0.1:"));
    let response = http_client()
        .get(format!("{}/v2/", registry.url()))
        .send()
        .expect("GET /v2/");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
}

#[test]
fn registry_support_layers_match_their_digests_and_entries() {
    let image = ready_made::multi_layer_with_whiteouts();
    assert_eq!(image.layers.len(), 4);
    assert_eq!(image.layers[3].media_type, OCI_LAYER_ZSTD);
    let config = image.config_json();
    for (i, layer) in image.layers.iter().enumerate() {
        assert_eq!(layer.digest, sha256_digest(&layer.blob));
        assert_eq!(layer.size, layer.blob.len() as u64);
        let tar = uncompress(&layer.media_type, &layer.blob);
        assert_eq!(layer.diff_id, sha256_digest(&tar));
        assert_eq!(config["rootfs"]["diff_ids"][i], layer.diff_id.as_str());
    }
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["WorkingDir"], "/data");
    assert_eq!(config["history"].as_array().map(Vec::len), Some(4));

    let paths = |i: usize| {
        tar_paths(&uncompress(
            &image.layers[i].media_type,
            &image.layers[i].blob,
        ))
    };
    let base = paths(0);
    for wanted in ["bin/busybox", "bin/sh", "etc/passwd", "etc/group", "tmp"] {
        assert!(base.iter().any(|p| p == wanted), "{wanted} in {base:?}");
    }
    assert_eq!(
        paths(2),
        [
            "data",
            "data/.wh.a",
            "etc",
            "etc/passwd",
            "etc/group",
            "etc/hostname",
            "etc/.wh..wh..opq"
        ]
    );

    let manifest = image.manifest_json();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(manifest["config"]["digest"], image.config_digest.as_str());
    assert_eq!(manifest["layers"][3]["mediaType"], OCI_LAYER_ZSTD);

    // Hardlinks, owners and modes land in the tar as built.
    let tar = LayerBuilder::new()
        .dir("/tmp", 0o1777)
        .file("/a", "x", 0o600)
        .owner(1000, 1001)
        .hardlink("/b", "/a")
        .tar();
    let mut archive = tar::Archive::new(tar.as_slice());
    let entries: Vec<(String, u32, u64, u64, Option<String>)> = archive
        .entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            let h = e.header();
            let link = e
                .link_name()
                .expect("link")
                .map(|l| l.display().to_string());
            let path = e.path().expect("path").display().to_string();
            let mode = h.mode().expect("mode");
            (
                path,
                mode,
                h.uid().expect("uid"),
                h.gid().expect("gid"),
                link,
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("tmp".into(), 0o1777, 0, 0, None),
            ("a".into(), 0o600, 1000, 1001, None),
            ("b".into(), 0o644, 0, 0, Some("a".into())),
        ]
    );
}

#[test]
fn registry_support_big_image_is_incompressible() {
    let image = big_image(3 << 20, 2);
    assert_eq!(image.layers.len(), 2);
    for layer in &image.layers {
        // Stored deflate: the blob is the content plus a little framing.
        assert!(layer.size > (3 << 20) / 2, "layer of {} bytes", layer.size);
    }
    assert_ne!(image.layers[0].digest, image.layers[1].digest);
    assert_eq!(big_image(3 << 20, 2).manifest_digest, image.manifest_digest);
}

#[test]
fn registry_support_push_image_then_pull_exact_bytes() {
    let registry = TestRegistry::start();
    let client = http_client();
    let image = ready_made::multi_layer_with_whiteouts();
    registry.push_image("test/multi", "v1", &image);

    for reference in ["v1", image.manifest_digest.as_str()] {
        let response = get_manifest(&client, &registry.url(), "test/multi", reference);
        assert_eq!(response.status(), StatusCode::OK, "{reference}");
        assert_eq!(
            header(&response, "docker-content-digest").as_deref(),
            Some(image.manifest_digest.as_str())
        );
        assert_eq!(
            header(&response, "content-type").as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(response.bytes().expect("manifest body"), image.manifest);
    }
    let blobs = image.layers.iter().map(|l| (&l.digest, &l.blob));
    for (digest, blob) in blobs.chain([(&image.config_digest, &image.config)]) {
        let bytes = get_blob(&client, &registry.url(), "test/multi", digest)
            .error_for_status()
            .expect("blob status")
            .bytes()
            .expect("blob body");
        assert_eq!(&sha256_digest(&bytes), digest);
        assert_eq!(bytes.as_ref(), blob.as_slice());
    }
}

#[test]
fn registry_support_docker_images_and_indexes() {
    let registry = TestRegistry::start();
    let client = http_client();
    let layer = |text: &str| LayerBuilder::new().file("arch", text, 0o644).build_docker();

    let docker = ImageBuilder::new("amd64").layer(layer("amd64")).docker();
    assert_eq!(docker.layers[0].media_type, DOCKER_LAYER_GZIP);
    registry.push_image("test/docker", "latest", &docker);
    let response = get_manifest(&client, &registry.url(), "test/docker", "latest");
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some(DOCKER_MANIFEST)
    );
    assert_eq!(response.bytes().expect("body"), docker.manifest);

    let arm = ImageBuilder::new("arm64")
        .variant("v8")
        .layer(layer("arm64"))
        .docker();
    let list = TestIndex::docker(vec![docker.clone(), arm.clone()]);
    registry.push_index("test/docker", "multi", &list);
    let response = get_manifest(&client, &registry.url(), "test/docker", "multi");
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some(DOCKER_MANIFEST_LIST)
    );
    assert_eq!(response.bytes().expect("body"), list.manifest);

    let oci_amd = tiny_image();
    let oci_arm = ImageBuilder::new("arm64")
        .variant("v8")
        .layer(
            LayerBuilder::new()
                .file("arch", "arm64", 0o644)
                .build(Compression::Zstd),
        )
        .oci();
    let index = TestIndex::oci(vec![oci_amd, oci_arm.clone()]);
    registry.push_index("test/oci", "multi", &index);
    let response = get_manifest(&client, &registry.url(), "test/oci", "multi");
    assert_eq!(
        header(&response, "docker-content-digest").as_deref(),
        Some(index.manifest_digest.as_str())
    );
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some(OCI_INDEX)
    );
    let body: serde_json::Value = response.json().expect("index json");
    assert_eq!(body["manifests"][1]["platform"]["variant"], "v8");
    assert_eq!(
        body["manifests"][1]["digest"],
        oci_arm.manifest_digest.as_str()
    );
    let child = get_manifest(
        &client,
        &registry.url(),
        "test/oci",
        &oci_arm.manifest_digest,
    );
    assert_eq!(child.bytes().expect("body"), oci_arm.manifest);
}

/// A registry with `tiny_image()` pushed as test/app:v1, behind a proxy.
fn proxied() -> (TestRegistry, FaultProxy, TestImage) {
    let registry = TestRegistry::start();
    let image = tiny_image();
    registry.push_image("test/app", "v1", &image);
    let proxy = FaultProxy::start(&registry);
    (registry, proxy, image)
}

#[test]
fn registry_support_proxy_passes_through_and_records() {
    let (_registry, proxy, image) = proxied();
    let client = http_client();
    let manifest = get_manifest(&client, &proxy.url(), "test/app", "v1");
    assert_eq!(manifest.status(), StatusCode::OK);
    assert_eq!(manifest.bytes().expect("body"), image.manifest);
    let layer = &image.layers[1];
    for _ in 0..2 {
        let bytes = get_blob(&client, &proxy.url(), "test/app", &layer.digest)
            .bytes()
            .expect("blob");
        assert_eq!(sha256_digest(&bytes), layer.digest);
    }
    assert_eq!(proxy.count(&format!("/blobs/{}", layer.digest)), 2);
    assert_eq!(proxy.count("/manifests/v1"), 1);
    let first = &proxy.requests()[0];
    assert_eq!(first.method, "GET");
    assert_eq!(first.header("Accept"), Some(ACCEPT_ALL_MANIFESTS));
    proxy.clear_requests();
    assert!(proxy.requests().is_empty());
}

#[test]
fn registry_support_proxy_corrupts_and_truncates_bodies() {
    let (_registry, proxy, image) = proxied();
    let client = http_client();
    let layer = &image.layers[1];
    let path = format!("/blobs/{}", layer.digest);

    proxy.fault_times(&path, Fault::CorruptBody, 1);
    // A HEAD has no body to spoil and must not use the one-shot fault up.
    let head = client
        .head(format!(
            "{}/v2/test/app/blobs/{}",
            proxy.url(),
            layer.digest
        ))
        .send()
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    let corrupt = get_blob(&client, &proxy.url(), "test/app", &layer.digest);
    assert_eq!(corrupt.status(), StatusCode::OK);
    let corrupt = corrupt.bytes().expect("corrupt body");
    assert_eq!(corrupt.len(), layer.blob.len());
    assert_ne!(sha256_digest(&corrupt), layer.digest);
    let differing = corrupt.iter().zip(&layer.blob).filter(|(a, b)| a != b);
    assert_eq!(differing.count(), 1);
    // The one-shot fault is used up.
    let good = get_blob(&client, &proxy.url(), "test/app", &layer.digest);
    assert_eq!(sha256_digest(&good.bytes().expect("body")), layer.digest);

    proxy.fault(&path, Fault::Truncate { after: 100 });
    for _ in 0..2 {
        let response = get_blob(&client, &proxy.url(), "test/app", &layer.digest);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.content_length(), Some(layer.size));
        let mut got = Vec::new();
        let mut response = response;
        let result = response.read_to_end(&mut got);
        assert!(result.is_err(), "a cut body must fail the read");
        assert_eq!(got.len(), 100, "bytes before the cut");
    }
    let head = client
        .head(format!(
            "{}/v2/test/app/blobs/{}",
            proxy.url(),
            layer.digest
        ))
        .send()
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    proxy.clear_faults();
    let good = get_blob(&client, &proxy.url(), "test/app", &layer.digest);
    assert_eq!(sha256_digest(&good.bytes().expect("body")), layer.digest);
}

#[test]
fn registry_support_proxy_status_then_pass_through() {
    let (_registry, proxy, image) = proxied();
    let client = http_client();
    proxy.fault(
        "/manifests/v1",
        Fault::Status {
            code: 503,
            times: 2,
        },
    );
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            get_manifest(&client, &proxy.url(), "test/app", "v1")
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    assert_eq!(proxy.count("/manifests/v1"), 3);
    let again = get_manifest(&client, &proxy.url(), "test/app", "v1");
    assert_eq!(again.bytes().expect("body"), image.manifest);
}

/// What reqwest does with `Authorization` on a redirect to another host: recorded here so the
/// report (and berth's own client choice) rests on an observation, not on docs.
#[test]
fn registry_support_redirect_to_second_host() {
    let (registry, proxy, image) = proxied();
    let second = SecondServer::start(&registry);
    assert!(second.host().starts_with("127.0.0.2:"));
    let layer = &image.layers[0];
    proxy.fault(
        "/blobs/",
        Fault::RedirectTo {
            other: second.clone(),
        },
    );

    let no_follow = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect = get_blob(&no_follow, &proxy.url(), "test/app", &layer.digest);
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        header(&redirect, "location"),
        Some(format!(
            "{}/v2/test/app/blobs/{}",
            second.url(),
            layer.digest
        ))
    );

    let follow = http_client();
    let response = follow
        .get(format!(
            "{}/v2/test/app/blobs/{}",
            proxy.url(),
            layer.digest
        ))
        .header("authorization", "Bearer secret-for-127.0.0.1-only")
        .send()
        .expect("GET with redirect");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        sha256_digest(&response.bytes().expect("body")),
        layer.digest
    );
    let at_proxy = proxy.requests();
    let sent = at_proxy.last().expect("proxy request");
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer secret-for-127.0.0.1-only")
    );
    let received = second.requests();
    assert_eq!(received.len(), 1, "the client followed to the second host");
    assert_eq!(
        received[0].path,
        format!("/v2/test/app/blobs/{}", layer.digest)
    );
    // reqwest drops Authorization (and Cookie, Proxy-Authorization) when a redirect changes
    // host, port or scheme.
    assert_eq!(received[0].header("authorization"), None);
}

#[test]
fn registry_support_proxy_bearer_and_basic_auth() {
    let (_registry, proxy, image) = proxied();
    let client = http_client();
    proxy.require_bearer("alice", "s3cret");

    let denied = get_manifest(&client, &proxy.url(), "test/app", "v1");
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&denied, "www-authenticate"),
        Some(format!(
            "Bearer realm=\"{}\",service=\"test-registry\",scope=\"repository:test/app:pull\"",
            proxy.token_url()
        ))
    );
    let base = client
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .expect("GET /v2/");
    assert_eq!(base.status(), StatusCode::UNAUTHORIZED);
    let token_url = format!(
        "{}?service=test-registry&scope=repository:test/app:pull",
        proxy.token_url()
    );
    let anonymous = client.get(&token_url).send().expect("anonymous token");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = client
        .get(&token_url)
        .basic_auth("alice", Some("wrong"))
        .send()
        .expect("wrong token");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let token: serde_json::Value = client
        .get(&token_url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .expect("token")
        .error_for_status()
        .expect("token status")
        .json()
        .expect("token json");
    assert_eq!(token["token"], token["access_token"]);
    let token = token["token"].as_str().expect("token string").to_string();
    let allowed = client
        .get(format!("{}/v2/test/app/manifests/v1", proxy.url()))
        .header("accept", ACCEPT_ALL_MANIFESTS)
        .bearer_auth(&token)
        .send()
        .expect("authorized GET");
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.bytes().expect("body"), image.manifest);
    let token_request = proxy
        .requests()
        .into_iter()
        .find(|r| r.path == "/token" && r.header("authorization").is_some())
        .expect("token request recorded");
    assert_eq!(
        token_request.query.as_deref(),
        Some("service=test-registry&scope=repository:test/app:pull")
    );

    proxy.rotate_token();
    let stale = client
        .get(format!("{}/v2/", proxy.url()))
        .bearer_auth(&token)
        .send()
        .expect("stale token");
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);

    proxy.require_anonymous_bearer();
    let anonymous = client.get(&token_url).send().expect("anonymous token");
    assert_eq!(anonymous.status(), StatusCode::OK);

    proxy.require_basic("bob", "hunter2");
    let denied = client
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .expect("GET /v2/");
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&denied, "www-authenticate").as_deref(),
        Some("Basic realm=\"test-registry\"")
    );
    let allowed = client
        .get(format!("{}/v2/", proxy.url()))
        .basic_auth("bob", Some("hunter2"))
        .send()
        .expect("GET /v2/");
    assert_eq!(allowed.status(), StatusCode::OK);

    proxy.no_auth();
    let open = client
        .get(format!("{}/v2/", proxy.url()))
        .send()
        .expect("GET /v2/");
    assert_eq!(open.status(), StatusCode::OK);
}

/// Dropping the support servers stops them: their ports refuse connections afterwards.
#[test]
fn registry_support_drop_stops_servers() {
    let started = Instant::now();
    let registry = TestRegistry::start();
    let storage = registry.storage_dir();
    let proxy = FaultProxy::start(&registry);
    let (registry_url, proxy_url) = (registry.url(), proxy.url());
    drop(proxy);
    drop(registry);
    let client = http_client();
    assert!(client.get(format!("{proxy_url}/v2/")).send().is_err());
    assert!(client.get(format!("{registry_url}/v2/")).send().is_err());
    assert!(!storage.exists());
    assert!(started.elapsed().as_secs() < 10);
}
