//! Unpacking crafted layers: normal content, every escape attempt we know of, whiteouts,
//! limits. Tests that need root (chown, mknod, trusted xattrs) say so and run as root here.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;

/// Builds tars entry by entry, writing names raw so hostile names survive.
struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

fn raw_header(kind: tar::EntryType, name: &str, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_600_000_000);
    let bytes = name.as_bytes();
    assert!(bytes.len() < 100, "test names fit the old header");
    h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
    h
}

impl Layer {
    fn new() -> Self {
        Layer {
            builder: tar::Builder::new(Vec::new()),
        }
    }
    fn put(mut self, mut h: tar::Header, data: &[u8]) -> Self {
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }
    fn dir(self, name: &str) -> Self {
        self.put(raw_header(tar::EntryType::Directory, name, 0, 0o755), &[])
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.put(
            raw_header(tar::EntryType::Regular, name, data.len() as u64, 0o644),
            data,
        )
    }
    fn file_mode(self, name: &str, data: &[u8], mode: u32) -> Self {
        self.put(
            raw_header(tar::EntryType::Regular, name, data.len() as u64, mode),
            data,
        )
    }
    fn link(self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = raw_header(kind, name, 0, 0o777);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        self.put(h, &[])
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Symlink, name, target)
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.link(tar::EntryType::Link, name, target)
    }
    fn device(self, name: &str) -> Self {
        let mut h = raw_header(tar::EntryType::Char, name, 0, 0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        self.put(h, &[])
    }
    fn with_xattrs(mut self, name: &str, xattrs: &[(&str, &[u8])]) -> Self {
        let pax: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.builder
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(name, b"x")
    }
    fn bytes(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// A scratch area: `root` is the unpack target, `outside` a sibling that must stay untouched.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("canary"), b"untouched").unwrap();
    Scratch {
        _dir: dir,
        root,
        outside,
    }
}

impl Scratch {
    fn unpack(&self, layer: &[u8], target: Target) -> Result<Stats, UnpackError> {
        unpack_layer(layer, &self.root, target, &Limits::default(), None)
    }
    fn assert_outside_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![OsString::from("canary")],
            "something was written outside the root"
        );
        assert_eq!(
            std::fs::read(self.outside.join("canary")).unwrap(),
            b"untouched"
        );
        let parent = self.root.parent().unwrap();
        let mut siblings: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        siblings.sort();
        assert_eq!(
            siblings,
            vec![OsString::from("outside"), OsString::from("root")]
        );
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn unpacks_files_dirs_links_with_metadata() {
    let s = scratch();
    let layer = Layer::new()
        .dir("etc/")
        .file("etc/hosts", b"127.0.0.1 localhost\n")
        .file_mode("usr/bin/tool", b"#!/bin/sh\n", 0o4755)
        .symlink("bin", "usr/bin")
        .hardlink("etc/hosts.bak", "etc/hosts")
        .bytes();
    let stats = s.unpack(&layer, Target::Layer).unwrap();
    assert_eq!(stats.entries, 5);
    assert_eq!(
        std::fs::read(s.root.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );
    let tool = std::fs::metadata(s.root.join("usr/bin/tool")).unwrap();
    assert_eq!(
        tool.permissions().mode() & 0o7777,
        0o4755,
        "setuid survives chown"
    );
    assert_eq!(tool.mtime(), 1_600_000_000);
    assert!(is_root(), "needs root (chown): run the tests as root");
    assert_eq!((tool.uid(), tool.gid()), (1000, 1001));
    assert_eq!(
        std::fs::read_link(s.root.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    let a = std::fs::metadata(s.root.join("etc/hosts")).unwrap();
    let b = std::fs::metadata(s.root.join("etc/hosts.bak")).unwrap();
    assert_eq!(a.ino(), b.ino());
    s.assert_outside_untouched();
}

#[test]
fn dot_dot_is_rejected() {
    let s = scratch();
    let err = s
        .unpack(
            &Layer::new().file("../outside/pwned", b"x").bytes(),
            Target::Layer,
        )
        .unwrap_err();
    assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
    let err = s
        .unpack(
            &Layer::new().file("a/../../outside/pwned", b"x").bytes(),
            Target::Layer,
        )
        .unwrap_err();
    assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
    s.assert_outside_untouched();
}

#[test]
fn absolute_paths_are_kept_inside() {
    let s = scratch();
    let outside = s.outside.to_str().unwrap().to_string();
    s.unpack(
        &Layer::new().file(&format!("{outside}/pwned"), b"x").bytes(),
        Target::Layer,
    )
    .unwrap();
    assert!(
        s.root
            .join(outside.trim_start_matches('/'))
            .join("pwned")
            .exists()
    );
    s.assert_outside_untouched();
}

#[test]
fn symlinked_parent_cannot_escape() {
    for target in [
        "/",
        "..",
        "../..",
        "../../../../../..",
        "/../outside",
        "../outside",
    ] {
        let s = scratch();
        let outside = s.outside.to_str().unwrap().to_string();
        let layer = Layer::new()
            .symlink("up", target)
            .file("up/pwned", b"x")
            .bytes();
        let result = s.unpack(&layer, Target::Layer);
        // Resolved as if root were "/": the file lands in the root itself, or (when the link
        // leads to a name missing inside the root) the entry is refused.
        if !target.ends_with("outside") {
            assert!(
                result.is_ok() && s.root.join("pwned").exists(),
                "{target}: {result:?}"
            );
        } else {
            assert!(
                result.is_err() || s.root.join("outside/pwned").exists(),
                "{target}"
            );
        }
        s.assert_outside_untouched();

        let s = scratch();
        let layer = Layer::new()
            .symlink("evil", &outside)
            .file("evil/pwned", b"x")
            .bytes();
        let result = s.unpack(&layer, Target::Layer);
        assert!(
            result.is_err()
                || s.root
                    .join(outside.trim_start_matches('/'))
                    .join("pwned")
                    .exists()
        );
        s.assert_outside_untouched();
    }
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let s = scratch();
    let canary = s.outside.join("canary");
    let canary = canary.to_str().unwrap();
    for (target, expect_escape) in [
        ("../outside/canary", true),
        (canary, false),
        ("/etc/passwd", false),
    ] {
        let err = s
            .unpack(
                &Layer::new().hardlink("stolen", target).bytes(),
                Target::Layer,
            )
            .unwrap_err();
        assert_eq!(
            matches!(err, UnpackError::Escape { .. }),
            expect_escape,
            "{target}: {err}"
        );
        assert!(!s.root.join("stolen").exists());
    }
    // Through a symlinked directory.
    let layer = Layer::new()
        .symlink("o", s.outside.to_str().unwrap())
        .hardlink("stolen", "o/canary")
        .bytes();
    assert!(s.unpack(&layer, Target::Layer).is_err());
    let layer = Layer::new()
        .symlink("p", "../outside")
        .hardlink("stolen2", "p/canary")
        .bytes();
    assert!(s.unpack(&layer, Target::Layer).is_err());
    assert!(!s.root.join("stolen2").exists());
    s.assert_outside_untouched();
}

#[test]
fn directory_replaced_by_symlink_in_a_later_layer() {
    let s = scratch();
    s.unpack(
        &Layer::new().dir("data/").file("data/a", b"1").bytes(),
        Target::Flatten,
    )
    .unwrap();
    s.unpack(
        &Layer::new()
            .symlink("data", s.outside.to_str().unwrap())
            .bytes(),
        Target::Flatten,
    )
    .unwrap();
    assert!(
        std::fs::symlink_metadata(s.root.join("data"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let _ = s.unpack(&Layer::new().file("data/b", b"2").bytes(), Target::Flatten);
    let _ = s.unpack(
        &Layer::new().file("data/canary", b"overwritten").bytes(),
        Target::Flatten,
    );
    s.assert_outside_untouched();
}

#[test]
fn later_entries_replace_earlier_ones_of_another_kind() {
    let s = scratch();
    let layer = Layer::new()
        .file("x", b"file")
        .dir("x/")
        .file("x/inner", b"i")
        .file("y/z", b"z")
        .file("y", b"now a file")
        .bytes();
    s.unpack(&layer, Target::Flatten).unwrap();
    assert!(s.root.join("x").is_dir());
    assert_eq!(std::fs::read(s.root.join("x/inner")).unwrap(), b"i");
    assert_eq!(std::fs::read(s.root.join("y")).unwrap(), b"now a file");
    // A symlink replaced by a file writes the file, not through the link.
    let layer = Layer::new()
        .symlink("l", s.outside.join("canary").to_str().unwrap())
        .file("l", b"plain")
        .bytes();
    s.unpack(&layer, Target::Flatten).unwrap();
    assert_eq!(std::fs::read(s.root.join("l")).unwrap(), b"plain");
    s.assert_outside_untouched();
}

#[test]
fn whiteouts_in_layer_form_are_overlay_whiteouts() {
    assert!(
        is_root(),
        "needs root (mknod, trusted.* xattrs): run the tests as root"
    );
    let s = scratch();
    let layer = Layer::new()
        .dir("a/")
        .file("a/.wh.gone", &[])
        .dir("b/")
        .file("b/.wh..wh..opq", &[])
        .file("b/kept", b"k")
        .bytes();
    let stats = s.unpack(&layer, Target::Layer).unwrap();
    assert_eq!(stats.whiteouts, 2);
    let gone = std::fs::symlink_metadata(s.root.join("a/gone")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &gone.file_type()
    ));
    assert_eq!(gone.rdev(), 0);
    let mut value = [0u8; 4];
    let n = rustix::fs::getxattr(s.root.join("b"), OVERLAY_OPAQUE_XATTR, &mut value).unwrap();
    assert_eq!(&value[..n], b"y");
    assert!(!s.root.join("a/.wh.gone").exists());
}

#[test]
fn whiteouts_when_flattening_delete_lower_content() {
    let s = scratch();
    s.unpack(
        &Layer::new()
            .file("a/b", b"1")
            .file("a/c", b"2")
            .file("d/old", b"3")
            .file("d/sub/deep", b"4")
            .bytes(),
        Target::Flatten,
    )
    .unwrap();
    let upper = Layer::new()
        .file("a/.wh.b", &[])
        .file("d/new", b"5")
        .file("d/.wh..wh..opq", &[])
        .bytes();
    s.unpack(&upper, Target::Flatten).unwrap();
    assert!(!s.root.join("a/b").exists());
    assert!(s.root.join("a/c").exists());
    let mut in_d: Vec<_> = std::fs::read_dir(s.root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    in_d.sort();
    assert_eq!(
        in_d,
        vec![OsString::from("new")],
        "opaque keeps only this layer's entries"
    );
}

#[test]
fn whiteouts_of_parents_and_dots_are_rejected() {
    let s = scratch();
    for name in [".wh..", "a/.wh..", ".wh.", ".wh.."] {
        let err = s
            .unpack(&Layer::new().file(name, &[]).bytes(), Target::Flatten)
            .unwrap_err();
        assert!(matches!(err, UnpackError::Invalid { .. }), "{name}: {err}");
    }
    // A whiteout through a symlinked parent stays inside the root.
    s.unpack(
        &Layer::new()
            .symlink("o", s.outside.to_str().unwrap())
            .bytes(),
        Target::Flatten,
    )
    .unwrap();
    let _ = s.unpack(
        &Layer::new().file("o/.wh.canary", &[]).bytes(),
        Target::Flatten,
    );
    let _ = s.unpack(
        &Layer::new()
            .symlink("p", "../outside")
            .file("p/.wh.canary", &[])
            .bytes(),
        Target::Flatten,
    );
    s.assert_outside_untouched();
}

#[test]
fn device_nodes_are_skipped() {
    let s = scratch();
    let stats = s
        .unpack(
            &Layer::new().device("dev/mem").file("ok", b"1").bytes(),
            Target::Layer,
        )
        .unwrap();
    assert_eq!(stats.skipped_devices, 1);
    assert!(!s.root.join("dev/mem").exists());
    assert!(s.root.join("ok").exists());
}

#[test]
fn only_safe_xattrs_are_applied() {
    assert!(
        is_root(),
        "needs root (security.capability): run the tests as root"
    );
    let s = scratch();
    let layer = Layer::new()
        .with_xattrs(
            "f",
            &[
                ("user.note", b"hi"),
                ("trusted.overlay.redirect", b"/etc"),
                ("security.selinux", b"x"),
            ],
        )
        .bytes();
    let stats = s.unpack(&layer, Target::Layer).unwrap();
    assert_eq!(stats.dropped_xattrs, 2);
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(s.root.join("f"), "user.note", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hi");
    assert!(rustix::fs::getxattr(s.root.join("f"), "trusted.overlay.redirect", &mut buf).is_err());
}

#[test]
fn decompression_bomb_stops_at_the_limit() {
    let s = scratch();
    let zeros = vec![0u8; 32 << 20];
    let tar = Layer::new().file("big", &zeros).bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 100_000, "a real bomb: {} bytes", bomb.len());
    let limits = Limits {
        max_bytes: 4 << 20,
        ..Limits::default()
    };
    let err = unpack_layer(&bomb[..], &s.root, Target::Layer, &limits, None).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooLarge { limit } if limit == 4 << 20),
        "{err}"
    );
    let written = std::fs::metadata(s.root.join("big"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(written <= 4 << 20);
}

#[test]
fn entry_count_is_bounded() {
    let s = scratch();
    let mut layer = Layer::new();
    for i in 0..20 {
        layer = layer.file(&format!("f{i}"), b"");
    }
    let limits = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let err = unpack_layer(&layer.bytes()[..], &s.root, Target::Layer, &limits, None).unwrap_err();
    assert!(matches!(err, UnpackError::TooManyEntries { limit: 10 }));
}

#[test]
fn diff_id_is_verified_over_the_uncompressed_stream() {
    let tar = Layer::new().file("a", b"content").bytes();
    let good = Digest::of(&tar);
    let compressed = zstd::encode_all(&tar[..], 3).unwrap();
    let s = scratch();
    let stats = unpack_layer(
        &compressed[..],
        &s.root,
        Target::Layer,
        &Limits::default(),
        Some(&good),
    )
    .unwrap();
    assert_eq!(stats.tar_bytes, tar.len() as u64);
    let s = scratch();
    let bad = Digest::of(b"something else");
    let err = unpack_layer(
        &compressed[..],
        &s.root,
        Target::Layer,
        &Limits::default(),
        Some(&bad),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
}

#[test]
fn garbage_is_a_tar_error() {
    let s = scratch();
    let err = s
        .unpack(&[0x1f, 0x8b, 0, 1, 2, 3], Target::Layer)
        .unwrap_err();
    assert!(matches!(err, UnpackError::Tar { .. }), "{err}");
    let mut truncated = Layer::new().file("a", &[7u8; 5000]).bytes();
    truncated.truncate(2000);
    assert!(s.unpack(&truncated, Target::Layer).is_err());
}

#[test]
fn opaque_marker_clears_lower_content_at_every_depth_but_keeps_this_layers() {
    let s = scratch();
    let lower = Layer::new()
        .file("conf/sub/lower", b"l")
        .file("conf/top", b"t")
        .file("opt/deep/lower", b"l")
        .bytes();
    s.unpack(&lower, Target::Flatten).unwrap();
    // New files first, markers after them: the markers hide only what lies below this layer.
    let upper = Layer::new()
        .dir("conf/sub/")
        .file("conf/sub/new", b"n")
        .file("opt/deep/new", b"n")
        .file("conf/.wh..wh..opq", &[])
        .file("opt/.wh..wh..opq", &[])
        .bytes();
    s.unpack(&upper, Target::Flatten).unwrap();
    let mut tree = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(&s.root, &s.root, &mut tree);
    tree.sort();
    assert_eq!(
        tree,
        [
            "conf",
            "conf/sub",
            "conf/sub/new",
            "opt",
            "opt/deep",
            "opt/deep/new"
        ]
    );
}
