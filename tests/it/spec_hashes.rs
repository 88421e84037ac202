//! The upgrade contract, first part: the spec hash of fixed entries is pinned to literal
//! values. A running container records the hash of the entry it was made from, and the
//! reconciler replaces every container whose entry no longer hashes to it; a berth that
//! encoded the same entry differently would therefore replace every container on the
//! machine when it is upgraded. A failure here means the canonical encoding changed: keep
//! it (a new optional field must be left out of the encoding while unset) or bump the
//! encoding with a migration of recorded hashes — never just update these literals.

use std::collections::BTreeMap;
use std::path::Path;

use berth::spec::hash::{SpecHashed, container_hash};

fn hashes() -> BTreeMap<String, String> {
    let loaded = berth::spec::load_dir(Path::new("tests/fixtures/hashes")).expect("load");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let d = &loaded.desired;
    let mut out = BTreeMap::new();
    for (name, c) in &d.containers {
        let hash = container_hash(d, c).expect("hash");
        out.insert(format!("container/{name}"), hash.to_string());
    }
    for (name, i) in &d.images {
        out.insert(
            format!("image/{name}"),
            i.spec_hash().expect("hash").to_string(),
        );
    }
    for (name, v) in &d.volumes {
        out.insert(
            format!("volume/{name}"),
            v.spec_hash().expect("hash").to_string(),
        );
    }
    for (name, n) in &d.networks {
        out.insert(
            format!("network/{name}"),
            n.spec_hash().expect("hash").to_string(),
        );
    }
    out
}

#[test]
fn spec_hashes_of_fixed_entries_never_change() {
    let expected: BTreeMap<String, String> = [
        (
            "container/db",
            "sha256:cf626190cd4cee12b9c70146e54abd8c59bb79590c7b0491490df139d358a0cd",
        ),
        (
            "container/minimal",
            "sha256:2947533305528e0fb02700819bbf1d0006c0a628af171aaa3a1e4ea1afe661b3",
        ),
        (
            "container/runc",
            "sha256:bfcbc453a57a9ae8abc466598d351e5a6a2e64fcb3a438c283d1180b98f24242",
        ),
        (
            "container/web",
            "sha256:f6c52616ef190cf03d0ff2e3faa5eb2035b5dafd9b144b6e28ccd1150121c04e",
        ),
        (
            "image/app",
            "sha256:d572a51d43b4ea91789f60d82726a8228621f3ebbf360bf8c23057f826672880",
        ),
        (
            "image/pinned",
            "sha256:2b136a33285f0f261e3410159a793a53729e4d61ba68db03e6cb6357332c3f56",
        ),
        (
            "network/back",
            "sha256:616d6af5edc578a3afbbea93f1d137f65c0937c456ffaf869eb3e9a00c51b0d0",
        ),
        (
            "network/front",
            "sha256:bcc89e682a1e11d717752362dff57e4796f92e0e4e59437ebbd59767083fb1e9",
        ),
        (
            "volume/cache",
            "sha256:1c3699a7df5ed6bbfdce36a12de9ea0b0a99d5dc76d1bce191fd8b71f7550310",
        ),
        (
            "volume/data",
            "sha256:90d9e4b376dd1d424efabf41a362eae5f1094ed0a5e2560cf842efce4cf0e0a3",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(hashes(), expected);
}
