//! The upgrade contract, record by record: what an earlier release wrote loads in this one.
//! `tests/fixtures/records/<release>/` holds records exactly as that release's binaries
//! wrote them on a real run (a web container with a network, a published port, a volume and
//! a health check; a one-shot container that exited and was restarted). Every later berth
//! must read each of them, through the same function it reads its own state with, and write
//! it back in its current format without losing a field.

use std::path::{Path, PathBuf};

use berth::health::verdict::{Health, HealthRecord};
use berth::network::record::{Lease, NetworkRecord};
use berth::state::format::{self, Record};
use berth::state::image::ImageRecord;
use berth::state::record::{
    self, ContainerRecord, EngineRecord, ExitRecord, MonitorRecord, RecordError, RestartRecord,
};
use berth::volume::VolumeRecord;

/// Every release whose records are kept as fixtures.
const RELEASES: &[&str] = &["v0.1.0"];

fn fixture(release: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/records")
        .join(release)
        .join(name)
}

/// Load through berth's own reader, then write in the current format and read that back:
/// nothing may change on the way.
fn load<T: Record + PartialEq + std::fmt::Debug>(release: &str, name: &str) -> T {
    let path = fixture(release, name);
    let loaded: T = record::load(&path)
        .unwrap_or_else(|e| panic!("{release}/{name}: {e}"))
        .unwrap_or_else(|| panic!("{release}/{name} is missing"));
    let rewritten = record::encode(&path, &loaded).expect("encode");
    let text = String::from_utf8(rewritten.clone()).expect("utf-8");
    assert!(
        text.starts_with(&format!("{{\n  \"format\": {},", T::FORMAT)),
        "{name} is written with its format first: {text}"
    );
    let again: T = record::decode(&path, &rewritten).expect("decode the rewritten record");
    assert_eq!(again, loaded, "{release}/{name} changed on a round trip");
    // Nothing of what that release wrote is dropped on the way: every key comes back with
    // its value (formats with migrations will compare after migrating).
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    let back: serde_json::Value = serde_json::from_slice(&rewritten).expect("json");
    for (key, value) in written.as_object().expect("a JSON object") {
        assert_eq!(
            back.get(key),
            Some(value),
            "{release}/{name}: `{key}` is lost or changed when written again"
        );
    }
    format::check_migrations::<T>().expect("migrations");
    loaded
}

#[test]
fn records_of_every_earlier_release_load() {
    for release in RELEASES {
        let web: ContainerRecord = load(release, "container.json");
        assert_eq!(web.name, "web");
        assert_eq!(web.engine, EngineRecord::Embedded);
        assert_eq!(web.networks.len(), 1);
        assert_eq!(web.networks[0].network, "fxnet");
        assert_eq!(web.networks[0].aliases, ["www"]);
        assert_eq!(web.ports.len(), 1);
        assert!(web.health.is_some() && web.start_first && !web.manual);
        assert_eq!(web.seed.len(), 1, "the volume is seeded on first use");
        assert!(web.seccomp_sha256.is_some());
        assert!(web.spec_hash.starts_with("sha256:") && web.spec_hash.len() == 71);

        let oneshot: ContainerRecord = load(release, "container-oneshot.json");
        assert_eq!(oneshot.name, "oneshot");
        assert!(oneshot.networks.is_empty() && oneshot.health.is_none());

        let monitor: MonitorRecord = load(release, "monitor.json");
        assert!(monitor.init.pid > 0 && monitor.monitor.pid > 0);

        let exit: ExitRecord = load(release, "exit.json");
        assert_eq!(exit.status(), 3);
        assert_eq!(exit.describe(), "exited with code 3");

        let restarts: RestartRecord = load(release, "restarts.json");
        assert_eq!(restarts.count, 3);
        assert_eq!(restarts.last_exit.map(|e| e.status()), Some(3));

        let health: HealthRecord = load(release, "health.json");
        assert_eq!(health.status, Health::Healthy);
        assert!(health.checks > 0);

        let image: ImageRecord = load(release, "image.json");
        assert!(image.source.starts_with("oci-archive:"));
        assert!(!image.layers.is_empty());

        let network: NetworkRecord = load(release, "network.json");
        assert_eq!(network.name, "fxnet");
        assert_eq!(network.subnet.to_string(), "10.231.7.0/24");

        let lease: Lease = load(release, "lease.json");
        assert_eq!(lease.container, web.id);
        assert_eq!(lease.ip.to_string(), "10.231.7.2");
        assert!(lease.claim.is_some(), "it served its ports");

        let volume: VolumeRecord = load(release, "volume.json");
        assert_eq!(volume.name, "fx-data");

        // The status report is read leniently, as `berth status` reads it.
        let status = std::fs::read(fixture(release, "status.json")).expect("status");
        let summary: berth::reconcile::status::StatusSummary =
            serde_json::from_slice(&status).expect("status summary");
        assert_eq!(summary.mode, "apply");
    }
}

/// A record from a later berth (a downgrade) is refused, and told apart from a damaged one:
/// berth must neither adopt a container it cannot read fully nor replace it as broken.
#[test]
fn a_record_of_a_newer_format_is_refused_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exit.json");
    std::fs::write(
        &path,
        br#"{ "format": 99, "code": 0, "signal": null, "oom_killed": false,
              "started_at_ms": 1, "finished_at_ms": 2 }"#,
    )
    .expect("write");
    match record::load::<ExitRecord>(&path) {
        Err(e @ RecordError::UnknownFormat { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("format 99") && text.contains("newer berth"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(
        &path,
        br#"{ "format": "2", "code": 0, "signal": null, "oom_killed": false,
              "started_at_ms": 1, "finished_at_ms": 2 }"#,
    )
    .expect("write");
    assert!(
        matches!(
            record::load::<ExitRecord>(&path),
            Err(RecordError::UnknownFormat { .. })
        ),
        "a whole record with a format that is not a number is not damage"
    );
    std::fs::write(&path, b"{ \"code\": ").expect("write");
    assert!(matches!(
        record::load::<ExitRecord>(&path),
        Err(RecordError::Damaged { .. })
    ));
}
