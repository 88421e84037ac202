//! Habits from docker: `berth exec NAME CMD…` without `--`, and the exit codes `docker run`
//! and `docker exec` give when the command cannot run (127 not found, 126 not executable,
//! 125 berth's own failure), on both engines (but for `exec` under runc: runc's 255).

use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::Sandbox;

fn entries(image: &str, engine_line: &str) -> String {
    format!(
        "[container.box]\nimage = \"{image}\"\n{engine_line}command = [\"sleep\", \"3600\"]\nstop_timeout = \"30s\"\n\n\
         [container.missing]\nimage = \"{image}\"\n{engine_line}command = [\"no-such-command\"]\n\n\
         [container.noexec]\nimage = \"{image}\"\n{engine_line}command = [\"/etc/hostname\"]\n"
    )
}

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("an exit status")
}

/// `runc_exec`: the engine is runc, whose `runc exec` says why a command cannot run only on
/// the terminal it shares with the command and exits 255: those codes are runc's there.
fn habits(engine_line: &str, runc_exec: bool) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write("box.toml", &entries(&image, engine_line));

    // run: the command's status, or docker's codes when it cannot run.
    for (name, expected, words) in [
        ("missing", 127, "no-such-command"),
        ("noexec", 126, "/etc/hostname"),
        ("not-described", 125, "describes no valid container"),
    ] {
        let desired = sb.desired();
        let out = sb.berth(&["run", "--rm", desired.to_str().expect("utf-8"), name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), expected, "run {name}: {stderr}");
        assert!(stderr.contains(words), "run {name}: {stderr}");
    }
    assert!(
        sb.runtime.find("missing").expect("find").is_empty(),
        "--rm removed the container that could not start"
    );

    let boxed = sb.start("box");
    // -q: ids and references only, for `berth stop $(berth ps -q)`.
    let out = sb.berth(&["ps", "-q"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", boxed.id)
    );
    let out = sb.berth(&["images", "-q"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{image}\n"));
    // exec without `--`, arguments with dashes included.
    let out = sb.berth(&["exec", "box", "ls", "-d", "/etc"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/etc\n");
    // The old spelling still works.
    let out = sb.berth(&["exec", "box", "--", "sh", "-c", "echo $0", "-x"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "-x\n");
    let (not_found, not_executable) = if runc_exec { (255, 255) } else { (127, 126) };
    for (args, expected) in [
        (&["exec", "box", "sh", "-c", "exit 3"][..], 3),
        (&["exec", "box", "no-such-command"][..], not_found),
        (&["exec", "box", "/etc/hostname"][..], not_executable),
        (&["exec", "nothing-of-that-name", "true"][..], 125),
    ] {
        let out = sb.berth(args);
        assert_eq!(
            code(&out),
            expected,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // stop -t as kubectl writes it: `sleep` as pid 1 ignores SIGTERM, so the stop takes the
    // time given, not the entry's 30 s.
    let began = std::time::Instant::now();
    let out = sb.berth(&["stop", "-t", "1500ms", "box"]);
    let took = began.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took >= std::time::Duration::from_millis(1400) && took < std::time::Duration::from_secs(15),
        "stop -t 1500ms took {took:?}"
    );
    let out = sb.berth(&["stop", "-t", "soon", "box"]);
    assert_eq!(code(&out), 2, "a bad value is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected seconds (5)"));
}

#[test]
fn docker_exit_codes_and_exec_without_dashes_embedded() {
    habits("", false);
}

#[test]
fn docker_exit_codes_and_exec_without_dashes_runc() {
    habits("runtime = \"runc\"\n", true);
}
