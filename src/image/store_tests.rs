use std::io::Write;
use std::sync::{Arc, Barrier};

use super::*;

fn store() -> (tempfile::TempDir, ContentStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    (dir, store)
}

fn ingest_files(store: &ContentStore) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(&store.ingest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    names.sort();
    names
}

#[test]
fn verified_blob_becomes_visible_read_only() {
    let (_d, store) = store();
    let digest = store.put_blob(b"hello").unwrap();
    assert_eq!(digest, Digest::of(b"hello"));
    assert!(store.has_blob(&digest));
    assert_eq!(store.read_blob(&digest, 100).unwrap(), b"hello");
    let mode = fs::metadata(store.blob_path(&digest))
        .unwrap()
        .permissions()
        .mode();
    // Read-only, and for root alone: a config blob carries the image's ENV.
    assert_eq!(mode & 0o777, 0o400);
    assert!(matches!(
        store.ingest(&digest, None).unwrap(),
        Ingest::Present
    ));
    assert!(ingest_files(&store).is_empty());
}

#[test]
fn wrong_content_is_never_visible() {
    let (_d, store) = store();
    let claimed = Digest::of(b"the real thing");
    let Ingest::Write(mut w) = store.ingest(&claimed, None).unwrap() else {
        panic!("absent blob")
    };
    w.write_all(b"an impostor").unwrap();
    let err = w.commit().unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&claimed));
    assert!(ingest_files(&store).is_empty(), "partial file removed");
}

#[test]
fn size_is_checked_both_ways() {
    let (_d, store) = store();
    let digest = Digest::of(b"abc");
    let Ingest::Write(mut w) = store.ingest(&digest, Some(2)).unwrap() else {
        panic!()
    };
    assert!(w.write_all(b"abc").is_err(), "longer than the descriptor");
    drop(w);
    let Ingest::Write(mut w) = store.ingest(&digest, Some(4)).unwrap() else {
        panic!()
    };
    w.write_all(b"abc").unwrap();
    assert!(matches!(
        w.commit().unwrap_err(),
        StoreError::SizeMismatch {
            expected: 4,
            actual: 3,
            ..
        }
    ));
    assert!(!store.has_blob(&digest));
}

#[test]
fn truncated_download_dropped_leaves_nothing() {
    let (_d, store) = store();
    let digest = Digest::of(&[1u8; 1000]);
    let Ingest::Write(mut w) = store.ingest(&digest, Some(1000)).unwrap() else {
        panic!()
    };
    w.write_all(&[1u8; 500]).unwrap();
    drop(w);
    assert!(!store.has_blob(&digest));
    assert!(ingest_files(&store).is_empty());
}

#[test]
fn concurrent_ingest_of_one_digest_writes_once() {
    let (_d, store) = store();
    let data = vec![9u8; 1 << 20];
    let digest = Digest::of(&data);
    let threads = 4;
    let barrier = Arc::new(Barrier::new(threads));
    let writes: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (store, barrier, data, digest) = (&store, barrier.clone(), &data, &digest);
                s.spawn(move || {
                    barrier.wait();
                    match store.ingest(digest, Some(data.len() as u64)).unwrap() {
                        Ingest::Present => false,
                        Ingest::Write(mut w) => {
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            w.write_all(data).unwrap();
                            w.commit().unwrap();
                            true
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        writes.iter().filter(|w| **w).count(),
        1,
        "exactly one writer: {writes:?}"
    );
    assert_eq!(store.read_blob(&digest, 2 << 20).unwrap(), data);
}

#[test]
fn abandoned_partials_are_cleared_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let stale = store
        .ingest
        .join(format!("{}.99999.partial", Digest::of(b"x").hex()));
    fs::write(&stale, b"half").unwrap();
    let scratch = store
        .layers_tmp
        .join(format!("{}.99999", Digest::of(b"y").hex()));
    fs::create_dir_all(scratch.join("etc")).unwrap();
    ContentStore::open(dir.path()).unwrap();
    assert!(!stale.exists());
    assert!(!scratch.exists());
}

#[test]
fn a_partial_whose_writer_lives_is_kept() {
    let (d, store) = store();
    let digest = Digest::of(b"in flight");
    let Ingest::Write(mut w) = store.ingest(&digest, None).unwrap() else {
        panic!()
    };
    w.write_all(b"in ").unwrap();
    ContentStore::open(d.path()).unwrap();
    w.write_all(b"flight").unwrap();
    w.commit().unwrap();
    assert!(store.has_blob(&digest));
}

fn scratch_layers(store: &ContentStore) -> usize {
    fs::read_dir(&store.layers_tmp)
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".lock")
        })
        .count()
}

fn layer_blob(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

#[test]
fn layers_unpack_once_by_diff_id() {
    let (_d, store) = store();
    let (blob, diff_id) = layer_blob(&[("etc/motd", b"hi")]);
    let blob_digest = store.put_blob(&blob).unwrap();
    let dir = store
        .ensure_layer(&blob_digest, &diff_id, &Limits::default())
        .unwrap();
    assert_eq!(dir, store.layer_path(&diff_id));
    assert_eq!(fs::read(dir.join("etc/motd")).unwrap(), b"hi");
    fs::write(dir.join("marker"), b"").unwrap();
    let again = store
        .ensure_layer(&blob_digest, &diff_id, &Limits::default())
        .unwrap();
    assert!(
        again.join("marker").exists(),
        "an unpacked layer is reused, not redone"
    );
    assert_eq!(scratch_layers(&store), 0, "no scratch layer left behind");
}

#[test]
fn a_layer_with_the_wrong_diff_id_is_never_visible() {
    let (_d, store) = store();
    let (blob, _) = layer_blob(&[("etc/motd", b"hi")]);
    let blob_digest = store.put_blob(&blob).unwrap();
    let wrong = Digest::of(b"not this layer");
    let err = store
        .ensure_layer(&blob_digest, &wrong, &Limits::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Unpack {
                source: UnpackError::DiffIdMismatch { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(!store.layer_path(&wrong).exists());
    assert_eq!(scratch_layers(&store), 0, "no scratch layer left behind");
}

#[test]
fn missing_blob_is_a_clear_error() {
    let (_d, store) = store();
    let err = store
        .ensure_layer(&Digest::of(b"a"), &Digest::of(b"b"), &Limits::default())
        .unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("is not in the content store"));
}

/// The store's own directories (not what unpacked layers hold, which keeps the image's modes).
const STORE_DIRS: [&str; 7] = [
    "content",
    "content/blobs",
    "content/blobs/sha256",
    "content/ingest",
    "layers",
    "layers/sha256",
    "layers/tmp",
];

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn a_new_store_is_root_only_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let store = ContentStore::open(&root).unwrap();
    // A state root the store had to make is root-only too.
    assert_eq!(mode_of(&root), 0o700);
    for d in STORE_DIRS {
        assert_eq!(mode_of(&root.join(d)), 0o700, "{d}");
    }
    let digest = store.put_blob(b"ENV=SECRET").unwrap();
    let Ingest::Write(_writer) = store.ingest(&Digest::of(b"in flight"), None).unwrap() else {
        panic!("absent blob")
    };
    for entry in fs::read_dir(&store.ingest).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode_of(&path) & 0o077, 0, "{}", path.display());
    }
    assert_eq!(mode_of(&store.blob_path(&digest)), 0o400);
}

#[test]
fn opening_a_store_an_older_berth_made_tightens_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let digest = ContentStore::open(root).unwrap().put_blob(b"old").unwrap();
    // What an older berth left: world-readable directories and blob.
    for d in STORE_DIRS {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let blob = root.join("content/blobs/sha256").join(digest.hex());
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o444)).unwrap();
    let store = ContentStore::open(root).unwrap();
    for d in STORE_DIRS {
        assert_eq!(mode_of(&root.join(d)), 0o700, "{d}");
    }
    // The blob itself keeps its mode but nobody else can reach it any more; still readable.
    assert_eq!(store.read_blob(&digest, 100).unwrap(), b"old");
}
