//! The quick start's image build (`examples/images/build-busybox.sh`), run as root: it must
//! never write through a directory or name another user could have prepared.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn build(out: &Path) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/images/build-busybox.sh"))
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .expect("run build-busybox.sh")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Refused with status 1 and a message naming `why`.
fn assert_refused(out: &Output, why: &str) {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(out));
    assert!(
        stderr(out).contains("refusing to write") && stderr(out).contains(why),
        "{}",
        stderr(out)
    );
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_example_image_is_written_only_into_a_safe_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");

    // Absent: created 0755 and root's, the archive renamed into place, no temporary left.
    let fresh = tmp.path().join("berth-examples");
    let out = build(&fresh.join("busybox.tar"));
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let meta = fs::symlink_metadata(&fresh).expect("created");
    assert!(meta.is_dir());
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o755, 0));
    assert_eq!(names_in(&fresh), ["busybox.tar"]);
    assert!(
        fs::symlink_metadata(fresh.join("busybox.tar"))
            .expect("archive")
            .is_file()
    );

    // Another user's directory (they could swap the archive or plant a link in it).
    let theirs = tmp.path().join("theirs");
    fs::create_dir(&theirs).expect("mkdir");
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown");
    assert_refused(&build(&theirs.join("busybox.tar")), "owned by uid 65534");
    assert!(names_in(&theirs).is_empty(), "{:?}", names_in(&theirs));

    // A directory that is a symlink: nothing lands where it points.
    let target = tmp.path().join("target");
    fs::create_dir(&target).expect("mkdir");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    assert_refused(&build(&link.join("busybox.tar")), "is a symlink");
    assert!(names_in(&target).is_empty(), "{:?}", names_in(&target));

    // A directory others may write to.
    let shared = tmp.path().join("shared");
    fs::create_dir(&shared).expect("mkdir");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod");
    assert_refused(
        &build(&shared.join("busybox.tar")),
        "writable by group or others",
    );
    assert!(names_in(&shared).is_empty(), "{:?}", names_in(&shared));

    // The archive's name a symlink to a file root owns: the file is left alone.
    let victim = tmp.path().join("victim");
    fs::write(&victim, "precious").expect("write");
    std::os::unix::fs::symlink(&victim, fresh.join("evil.tar")).expect("symlink");
    assert_refused(&build(&fresh.join("evil.tar")), "is a symlink");
    assert_eq!(fs::read_to_string(&victim).expect("read"), "precious");
    assert_eq!(names_in(&fresh), ["busybox.tar", "evil.tar"]);
}
