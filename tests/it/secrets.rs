//! Files a container reads from the desired directory, on real containers: env files and
//! read-only binds relative to the TOML file. Their content is part of the container's spec:
//! an edit replaces the container exactly once and `plan` names the file; a broken one blocks
//! only its container and prunes nothing.

use std::time::Duration;

use crate::agent::{containers, sole_running};
use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::Sandbox;

fn setup() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    (sb, image)
}

fn ok(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn apply(sb: &Sandbox) -> String {
    let dir = sb.desired();
    ok(&sb.berth(&[
        "apply",
        dir.to_str().expect("utf-8"),
        "--wait",
        "--timeout",
        "60s",
    ]))
}

fn plan(sb: &Sandbox) -> (Option<i32>, String) {
    let dir = sb.desired();
    let out = sb.berth(&["plan", dir.to_str().expect("utf-8"), "--detailed-exitcode"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn exec(sb: &Sandbox, name: &str, script: &str) -> String {
    ok(&sb.berth(&["exec", name, "--", "sh", "-c", script]))
}

/// A long-running container of `name` with `extra` keys.
fn entry(name: &str, image: &str, extra: &str) -> String {
    format!(
        "[container.{name}]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\nstop_timeout = \"2s\"\n{extra}\n"
    )
}

#[test]
fn an_edited_env_file_replaces_the_container_once_and_plan_names_it() {
    let (sb, image) = setup();
    let d = sb.desired();
    std::fs::write(
        d.join("app.env"),
        "# app settings\nGREETING=\"hello world\"\nLEVEL=1\n",
    )
    .expect("write");
    std::fs::write(d.join("override.env"), "LEVEL=2\nONLY_FILE=x\n").expect("write");
    sb.write(
        "app.toml",
        &entry(
            "app",
            &image,
            "env_file = [\"app.env\", \"./override.env\"]\nenv = { ONLY_FILE = \"from-toml\" }",
        ),
    );
    apply(&sb);
    let first = sole_running(&sb, "app", Duration::from_secs(5));
    assert_eq!(
        exec(&sb, "app", "echo \"$GREETING|$LEVEL|$ONLY_FILE\""),
        "hello world|2|from-toml\n"
    );
    assert_eq!(plan(&sb).0, Some(0), "nothing changed yet");

    std::fs::write(d.join("override.env"), "LEVEL=3\nONLY_FILE=x\n").expect("write");
    let (code, text) = plan(&sb);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("replace  container app") && text.contains("override.env"),
        "plan names the file: {text}"
    );
    assert!(
        !text.contains("app.env:"),
        "only the changed file is named: {text}"
    );
    apply(&sb);
    let second = sole_running(&sb, "app", Duration::from_secs(5));
    assert_ne!(second.id, first.id);
    assert_eq!(exec(&sb, "app", "echo $LEVEL"), "3\n");
    // Exactly once: the next passes leave it alone.
    assert_eq!(plan(&sb).0, Some(0), "{}", plan(&sb).1);
    apply(&sb);
    assert_eq!(
        sole_running(&sb, "app", Duration::from_secs(5)).id,
        second.id
    );
}

#[test]
fn relative_read_only_binds_are_mounted_and_tracked() {
    let (sb, image) = setup();
    let d = sb.desired();
    std::fs::create_dir_all(d.join("conf/sub")).expect("mkdir");
    std::fs::write(d.join("conf/sub/app.conf"), "v1\n").expect("write");
    std::fs::create_dir_all(sb.dir.path().join("data")).expect("mkdir");
    sb.write(
        "app.toml",
        &entry(
            "app",
            &image,
            "mounts = [\"./conf:/etc/app:ro\", { type = \"bind\", source = \"../data\", target = \"/data\" }]",
        ),
    );
    apply(&sb);
    let first = sole_running(&sb, "app", Duration::from_secs(5));
    assert_eq!(exec(&sb, "app", "cat /etc/app/sub/app.conf"), "v1\n");
    // The writable bind is the container's data: what it writes does not replace it.
    exec(&sb, "app", "echo written > /data/out");
    assert_eq!(
        std::fs::read_to_string(sb.dir.path().join("data/out")).expect("read"),
        "written\n"
    );
    assert_eq!(plan(&sb).0, Some(0), "{}", plan(&sb).1);
    // The read-only one is part of the spec: an edit deep inside replaces it once.
    std::fs::write(d.join("conf/sub/app.conf"), "v2\n").expect("write");
    let (code, text) = plan(&sb);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("conf"), "plan names the directory: {text}");
    apply(&sb);
    let second = sole_running(&sb, "app", Duration::from_secs(5));
    assert_ne!(second.id, first.id);
    assert_eq!(exec(&sb, "app", "cat /etc/app/sub/app.conf"), "v2\n");
    assert_eq!(plan(&sb).0, Some(0), "{}", plan(&sb).1);
}

#[test]
fn a_broken_env_file_blocks_only_its_container_and_prunes_nothing() {
    let (sb, image) = setup();
    let d = sb.desired();
    std::fs::write(d.join("a.env"), "V=1\n").expect("write");
    sb.write("a.toml", &entry("a", &image, "env_file = \"a.env\""));
    sb.write("b.toml", &entry("b", &image, ""));
    sb.write("c.toml", &entry("c", &image, ""));
    apply(&sb);
    let a = sole_running(&sb, "a", Duration::from_secs(5));
    // a's env file breaks, c leaves the desired state, b gets a new env var.
    std::fs::write(d.join("a.env"), "V=2\nBROKEN\n").expect("write");
    std::fs::remove_file(d.join("c.toml")).expect("rm");
    sb.write("b.toml", &entry("b", &image, "env = { NEW = \"1\" }"));
    let dir = d.to_str().expect("utf-8");
    let out = sb.berth(&["apply", dir]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("a.env:2:1") && text.contains("this line has no `=`"),
        "the error points into the env file: {text}"
    );
    assert!(!text.contains("BROKEN"), "the line is not quoted: {text}");
    // a keeps running as it was, c is not pruned, b is changed.
    assert_eq!(sole_running(&sb, "a", Duration::from_secs(5)).id, a.id);
    assert_eq!(containers(&sb, "c").len(), 1, "nothing pruned: {text}");
    assert_eq!(exec(&sb, "b", "echo $NEW"), "1\n");
}

/// Every file under `dir` (not following links) whose content holds `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            out.extend(files_containing(&path, needle));
        } else if kind.is_file()
            && std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        {
            out.push(path);
        }
    }
    out
}

/// A root-only host file holding `value`.
fn host_secret(sb: &Sandbox, name: &str, value: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = sb.dir.path().join("host-secrets");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join(name);
    std::fs::write(&path, value).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

#[test]
fn secrets_and_configs_are_read_only_files_that_leave_no_trace() {
    let (sb, image) = setup();
    let d = sb.desired();
    let value = "s3cr3t-VALUE-7f1c9a";
    let secret = host_secret(&sb, "db", value);
    std::fs::write(d.join("app.conf"), "listen 8080\n").expect("write");
    sb.write(
        "app.toml",
        &format!(
            r#"[secret.db]
file = "{secret}"

[config.app]
file = "app.conf"

[config.motd]
content = "hello\n"

{entry}"#,
            secret = secret.display(),
            entry = entry(
                "app",
                &image,
                "secrets = [{ name = \"db\", uid = 1000, gid = 1000, mode = \"0400\" }]\nconfigs = [{ name = \"app\", target = \"/etc/app/app.conf\" }, \"motd\"]",
            ),
        ),
    );
    let applied = apply(&sb);
    let first = sole_running(&sb, "app", Duration::from_secs(5));
    assert_eq!(exec(&sb, "app", "cat /run/secrets/db"), value);
    assert_eq!(
        exec(
            &sb,
            "app",
            "stat -c '%u %g %a' /run/secrets/db /etc/app/app.conf /motd"
        ),
        "1000 1000 400\n0 0 444\n0 0 444\n"
    );
    assert_eq!(
        exec(&sb, "app", "cat /etc/app/app.conf /motd"),
        "listen 8080\nhello\n"
    );
    // The owner reads it; another uid, and root writing, do not get through.
    let as_user = |uid: &str| sb.berth(&["exec", "-u", uid, "app", "--", "cat", "/run/secrets/db"]);
    assert_eq!(String::from_utf8_lossy(&as_user("1000").stdout), value);
    let other = as_user("2000");
    assert!(
        !other.status.success() && !String::from_utf8_lossy(&other.stdout).contains(value),
        "uid 2000 read the secret"
    );
    let write = sb.berth(&["exec", "app", "--", "sh", "-c", "echo x > /run/secrets/db"]);
    assert!(!write.status.success(), "the secret is writable");
    assert_eq!(exec(&sb, "app", "cat /run/secrets/db"), value);

    // Not in any output, record or log; on the host only in the files tmpfs.
    let (code, plan_text) = plan(&sb);
    assert_eq!(code, Some(0), "keyed digests are stable: {plan_text}");
    let status = sb.berth(&["status", "--json"]);
    let dir = d.to_str().expect("utf-8");
    let json = sb.berth(&["apply", dir, "--json"]);
    for (what, text) in [
        ("apply", applied.as_bytes().to_vec()),
        ("plan", plan_text.into_bytes()),
        ("status", [status.stdout, status.stderr].concat()),
        ("apply --json", [json.stdout, json.stderr].concat()),
        ("logs", sb.logs(&first.id).into_bytes()),
    ] {
        assert!(
            !String::from_utf8_lossy(&text).contains(value),
            "{what} shows the secret"
        );
    }
    assert_eq!(
        files_containing(&sb.root(), value.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );
    let layout = sb.runtime.layout();
    let found = files_containing(&layout.run_root, value.as_bytes());
    // Files are numbered by target: /etc/app/app.conf, /motd, /run/secrets/db.
    assert_eq!(found, vec![layout.container_files(&first.id).join("2")]);
    let fs = rustix::fs::statfs(layout.files_root()).expect("statfs");
    assert_eq!(fs.f_type as u64, 0x0102_1994, "the files live on a tmpfs");
    let mode = std::fs::metadata(layout.container_files(&first.id)).expect("stat");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o700
    );
    let key = std::fs::metadata(sb.root().join("secret-digest.key")).expect("key");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );

    // A restart after the files vanished (a reboot empties /run) writes them again.
    exec(&sb, "app", "kill 1");
    sb.wait_exit(&first.id, Duration::from_secs(10));
    std::fs::remove_dir_all(layout.container_files(&first.id)).expect("rm");
    apply(&sb);
    let again = sole_running(&sb, "app", Duration::from_secs(10));
    assert_eq!(again.id, first.id, "restarted, not replaced");
    assert_eq!(exec(&sb, "app", "cat /run/secrets/db"), value);

    // A new value replaces the container once; plan names the secret, never the value.
    std::fs::write(&secret, "n3w-VALUE-2b8e").expect("write");
    let (code, text) = plan(&sb);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("secret:db") && !text.contains("n3w-VALUE"),
        "{text}"
    );
    apply(&sb);
    let second = sole_running(&sb, "app", Duration::from_secs(5));
    assert_ne!(second.id, first.id);
    assert_eq!(exec(&sb, "app", "cat /run/secrets/db"), "n3w-VALUE-2b8e");
    assert!(
        !layout.container_files(&first.id).exists(),
        "the old files went with it"
    );
    assert_eq!(plan(&sb).0, Some(0));
}

#[test]
fn age_secrets_are_decrypted_with_the_host_identity() {
    use age::secrecy::ExposeSecret;
    let (sb, image) = setup();
    let d = sb.desired();
    let identity = age::x25519::Identity::generate();
    let id_path = sb.dir.path().join("age-identity.txt");
    std::fs::write(
        &id_path,
        format!("{}\n", identity.to_string().expose_secret()),
    )
    .expect("write");
    let encrypted = age::encrypt(&identity.to_public(), b"age-VALUE-93d1").expect("encrypt");
    std::fs::write(d.join("api.age"), encrypted).expect("write");
    sb.write(
        "app.toml",
        &format!(
            "[secret.api]\nage = \"api.age\"\n\n{}",
            entry(
                "app",
                &image,
                "secrets = [{ name = \"api\", target = \"/run/keys/api\" }]"
            )
        ),
    );
    let dir = d.to_str().expect("utf-8");
    let run = |identity: &std::path::Path, args: &[&str]| {
        sb.command(args)
            .env("BERTH_AGE_IDENTITY", identity)
            .output()
            .expect("berth")
    };
    // Without the identity: a problem of the desired state, naming what to do.
    let missing = run(&sb.dir.path().join("none"), &["plan", dir]);
    let text = String::from_utf8_lossy(&missing.stdout).into_owned()
        + &String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && text.contains("age identity"),
        "{text}"
    );
    // An identity inside the desired directory is refused.
    std::fs::copy(&id_path, d.join("identity.txt")).expect("copy");
    let inside = run(&d.join("identity.txt"), &["plan", dir]);
    let text = String::from_utf8_lossy(&inside.stdout).into_owned()
        + &String::from_utf8_lossy(&inside.stderr);
    assert!(
        !inside.status.success() && text.contains("inside the desired directory"),
        "{text}"
    );
    std::fs::remove_file(d.join("identity.txt")).expect("rm");

    ok(&run(
        &id_path,
        &["apply", dir, "--wait", "--timeout", "60s"],
    ));
    sole_running(&sb, "app", Duration::from_secs(5));
    assert_eq!(exec(&sb, "app", "cat /run/keys/api"), "age-VALUE-93d1");
    assert_eq!(
        files_containing(&sb.root(), b"age-VALUE-93d1"),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn an_unreadable_secret_blocks_only_its_container_and_prunes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let (sb, image) = setup();
    let secret = host_secret(&sb, "db", "loose-VALUE-5e2a");
    sb.write(
        "a.toml",
        &format!(
            "[secret.db]\nfile = \"{}\"\n\n{}",
            secret.display(),
            entry("a", &image, "secrets = [\"db\"]")
        ),
    );
    sb.write("b.toml", &entry("b", &image, ""));
    sb.write("c.toml", &entry("c", &image, ""));
    apply(&sb);
    let a = sole_running(&sb, "a", Duration::from_secs(5));
    // Group-readable now, c leaves, b changes.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::remove_file(sb.desired().join("c.toml")).expect("rm");
    sb.write("b.toml", &entry("b", &image, "env = { NEW = \"1\" }"));
    let dir = sb.desired();
    let out = sb.berth(&["apply", dir.to_str().expect("utf-8")]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("a.toml:2:8") && text.contains("mode 0644") && text.contains("chmod 0600"),
        "{text}"
    );
    assert!(!text.contains("loose-VALUE"), "{text}");
    assert_eq!(sole_running(&sb, "a", Duration::from_secs(5)).id, a.id);
    assert_eq!(containers(&sb, "c").len(), 1, "nothing pruned: {text}");
    assert_eq!(exec(&sb, "b", "echo $NEW"), "1\n");
}

#[test]
fn an_agent_restart_keeps_containers_with_secrets() {
    let (sb, image) = setup();
    let secret = host_secret(&sb, "db", "agent-VALUE-41c7");
    sb.write(
        "app.toml",
        &format!(
            "[secret.db]\nfile = \"{}\"\n\n{}",
            secret.display(),
            entry(
                "app",
                &image,
                "secrets = [\"db\", { name = \"db\", env = \"DB\" }]"
            )
        ),
    );
    let agent = crate::agent::Agent::start(&sb, &sb.desired());
    let first = sole_running(&sb, "app", Duration::from_secs(30));
    assert!(agent.terminate().success());
    let agent = crate::agent::Agent::start(&sb, &sb.desired());
    // A few passes of the new agent: the same container, its secret in place.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sole_running(&sb, "app", Duration::from_secs(5)).id,
        first.id
    );
    assert_eq!(exec(&sb, "app", "cat /run/secrets/db"), "agent-VALUE-41c7");
    assert_eq!(exec(&sb, "app", "printf %s \"$DB\""), "agent-VALUE-41c7");
    assert!(
        !agent.log().contains("agent-VALUE"),
        "the agent logged the secret"
    );
    assert_eq!(
        files_containing(&sb.root(), b"agent-VALUE-41c7"),
        Vec::<std::path::PathBuf>::new()
    );
}

/// The ids with a directory under `<run root>/files`.
fn files_dirs(sb: &Sandbox) -> Vec<String> {
    let root = sb.runtime.layout().files_root();
    let mut ids: Vec<String> = std::fs::read_dir(&root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn files_without_a_container_are_removed_at_the_next_pass() {
    let (sb, image) = setup();
    let value = "crash-LEFT-9d2e4b";
    let secret = host_secret(&sb, "db", value);
    sb.write(
        "app.toml",
        &format!(
            "[secret.db]\nfile = \"{}\"\n\n{}",
            secret.display(),
            entry("app", &image, "secrets = [\"db\"]")
        ),
    );
    let dir = sb.desired();
    // Killed between writing the files and renaming the container's directory into place.
    let crashed = sb
        .command(&["apply", dir.to_str().expect("utf-8")])
        .env("BERTH_FAILPOINTS", "create-before-rename")
        .env("BERTH_LOG", "error")
        .output()
        .expect("apply");
    assert!(!crashed.status.success(), "the failpoint was not reached");
    let left = files_dirs(&sb);
    assert_eq!(left.len(), 1, "the crash left no files to sweep: {left:?}");
    assert!(containers(&sb, "app").is_empty());
    apply(&sb);
    let first = sole_running(&sb, "app", Duration::from_secs(5));
    assert_eq!(files_dirs(&sb), vec![first.id.clone()]);
    assert_eq!(exec(&sb, "app", "cat /run/secrets/db"), value);
    // A container directory deleted by hand: the orphan is killed, its files go with it.
    std::fs::remove_dir_all(sb.root().join("containers").join(&first.id)).expect("rm");
    apply(&sb);
    let second = sole_running(&sb, "app", Duration::from_secs(5));
    assert_ne!(first.id, second.id);
    assert_eq!(files_dirs(&sb), vec![second.id.clone()]);
    assert!(
        files_containing(&sb.runtime.layout().run_root, value.as_bytes())
            .iter()
            .all(|p| p.starts_with(sb.runtime.layout().container_files(&second.id))),
        "the secret is left outside the running container's files"
    );
}

#[test]
fn an_old_container_restarted_during_an_update_keeps_its_own_files() {
    let (sb, image) = setup();
    let port = crate::support::net::free_port();
    // The old spec binds config b at index 0 and ends every 2s; the new one binds a at 0 and
    // b at 1, runs on, and is never healthy within its update, so the old one is restarted
    // in place (as a fallen container) while the new one waits.
    let app = |b: &str, configs: &str, health: &str| {
        format!(
            r#"[config.a]
content = "new-a"

[config.b]
content = "{b}"

[container.app]
image = "{image}"
command = ["sh", "-c", "echo b=$(cat /b); if [ -e /a ]; then exec sleep 1000; fi; sleep 2; exit 1"]
restart = "always"
backoff = {{ initial = "100ms", max = "200ms" }}
stop_timeout = "1s"
update = "start-first"
update_timeout = "60s"
ports = ["127.0.0.1:{port}:80"]
configs = [{configs}]
{health}
"#
        )
    };
    sb.write(
        "app.toml",
        &app(
            "old-b",
            "\"b\"",
            "health = { exec = [\"test\", \"-e\", \"/b\"], interval = \"300ms\" }",
        ),
    );
    let _agent = crate::agent::Agent::start(&sb, &sb.desired());
    let old = wait_for_id(&sb, |_| true);
    let starts = |id: &str| {
        sb.logs(id)
            .lines()
            .filter(|l| l.contains("b="))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    sb.write(
        "app.toml",
        &app(
            "new-b",
            "\"a\", \"b\"",
            "health = { exec = [\"test\", \"-e\", \"/never\"], interval = \"300ms\", start_period = \"60s\" }",
        ),
    );
    let new = wait_for_id(&sb, |id| id != old);
    let before = starts(&old).len();
    crate::agent::wait_for(
        Duration::from_secs(20),
        "the old container restarted during the update",
        || (starts(&old).len() >= before + 2).then_some(()),
    );
    assert!(
        containers(&sb, "app").iter().any(|c| c.id == new),
        "the update ended before the old container was restarted"
    );
    let lines = starts(&old);
    assert!(
        lines.iter().all(|l| l.trim() == "b=old-b"),
        "the old container got other files: {lines:?}"
    );
    let old_files = sb.runtime.layout().container_files(&old);
    assert_eq!(
        std::fs::read_to_string(old_files.join("0")).expect("read"),
        "old-b"
    );
    assert!(
        !old_files.join("1").exists(),
        "a new index in the old files"
    );
    assert!(
        starts(&new).iter().all(|l| l.trim() == "b=new-b"),
        "{:?}",
        starts(&new)
    );
}

/// The id of the one `app` container `pick` accepts, once there is one.
fn wait_for_id(sb: &Sandbox, pick: impl Fn(&str) -> bool) -> String {
    crate::agent::wait_for(Duration::from_secs(20), "an app container", || {
        containers(sb, "app")
            .into_iter()
            .map(|c| c.id)
            .find(|id| pick(id))
    })
}

/// `API_TOKEN` as the container's init has it (from /proc/1/environ), and as `berth exec`
/// sees it.
fn token_of_init_and_exec(sb: &Sandbox) -> (String, String) {
    let init = exec(
        sb,
        "app",
        "tr '\\0' '\\n' < /proc/1/environ | sed -n 's/^API_TOKEN=//p'",
    );
    let exec = exec(sb, "app", "printf %s \"$API_TOKEN\"");
    (init.trim_end().to_string(), exec)
}

/// The files under the run root holding `value`, relative to the container's files
/// directory (anything outside it is kept whole).
fn run_root_holders(sb: &Sandbox, id: &str, value: &str) -> Vec<String> {
    let layout = sb.runtime.layout();
    let dir = layout.container_files(id);
    let mut found: Vec<String> = files_containing(&layout.run_root, value.as_bytes())
        .into_iter()
        .map(|p| match p.strip_prefix(&dir) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => p.display().to_string(),
        })
        .collect();
    found.sort();
    found
}

fn env_secrets_reach_the_process_and_no_disk(engine: &str) {
    let (sb, image) = setup();
    let d = sb.desired();
    let value = "envtok-VALUE-c41d9e";
    let secret = host_secret(&sb, "tok", value);
    let runtime = if engine == "runc" {
        "runtime = \"runc\"\n"
    } else {
        ""
    };
    let toml = |env: &str| {
        format!(
            "[secret.tok]\nfile = \"{}\"\n\n{}",
            secret.display(),
            entry(
                "app",
                &image,
                &format!(
                    "{runtime}env = {{ PLAIN = \"p\"{env} }}\nsecrets = [{{ name = \"tok\", env = \"API_TOKEN\" }}, \"tok\"]"
                )
            )
        )
    };
    sb.write("app.toml", &toml(""));
    let applied = apply(&sb);
    let first = sole_running(&sb, "app", Duration::from_secs(5));
    assert_eq!(
        token_of_init_and_exec(&sb),
        (value.to_string(), value.to_string())
    );
    assert_eq!(exec(&sb, "app", "echo $PLAIN"), "p\n");
    // `exec -e` wins over the container's variable, as in Docker.
    let over = sb.berth(&[
        "exec",
        "-e",
        "API_TOKEN=mine",
        "app",
        "--",
        "sh",
        "-c",
        "echo $API_TOKEN",
    ]);
    assert_eq!(String::from_utf8_lossy(&over.stdout), "mine\n");
    // Another user's process in the container cannot read it from the init's environment.
    let peek = sb.berth(&[
        "exec",
        "-u",
        "1000",
        "app",
        "--",
        "sh",
        "-c",
        "cat /proc/1/environ",
    ]);
    assert!(
        !String::from_utf8_lossy(&peek.stdout).contains(value),
        "uid 1000 read the init's environment"
    );

    // Not in any output, record or log; on the host only in the container's tmpfs directory.
    let (code, plan_text) = plan(&sb);
    assert_eq!(code, Some(0), "{plan_text}");
    let dir = d.to_str().expect("utf-8");
    let status = sb.berth(&["status", "--json"]);
    let json = sb.berth(&["apply", dir, "--json"]);
    let ps = sb.berth(&["ps", "--json"]);
    let validate = sb.berth(&["validate", dir, "--json"]);
    sb.write("app.toml", &toml(", API_TOKEN = \"clash\""));
    let clash = sb.berth(&["plan", dir]);
    assert!(!clash.status.success());
    let clash_text = String::from_utf8_lossy(&clash.stderr).into_owned()
        + &String::from_utf8_lossy(&clash.stdout);
    assert!(
        clash_text.contains("app.toml:") && clash_text.contains("is also set by `env`"),
        "{clash_text}"
    );
    sb.write("app.toml", &toml(""));
    for (what, text) in [
        ("apply", applied.as_bytes().to_vec()),
        ("plan", plan_text.into_bytes()),
        ("status", [status.stdout, status.stderr].concat()),
        ("apply --json", [json.stdout, json.stderr].concat()),
        ("ps --json", [ps.stdout, ps.stderr].concat()),
        (
            "validate --json",
            [validate.stdout, validate.stderr].concat(),
        ),
        ("a diagnostic", clash_text.into_bytes()),
        ("logs", sb.logs(&first.id).into_bytes()),
    ] {
        assert!(
            !String::from_utf8_lossy(&text).contains(value),
            "{what} shows the secret"
        );
    }
    assert_eq!(
        files_containing(&sb.root(), value.as_bytes()),
        Vec::<std::path::PathBuf>::new(),
        "the state root holds the value"
    );
    // The engines' own state lies under the run root: it holds no copy either.
    let mut expected = vec!["0".to_string(), "env/API_TOKEN".to_string()];
    if engine == "runc" {
        expected.push("bundle/config.json".into());
    }
    expected.sort();
    assert_eq!(run_root_holders(&sb, &first.id, value), expected);

    // Restarted in place after it ended, and after its tmpfs was emptied (a reboot).
    exec(&sb, "app", "kill 1");
    sb.wait_exit(&first.id, Duration::from_secs(10));
    apply(&sb);
    assert_eq!(
        sole_running(&sb, "app", Duration::from_secs(10)).id,
        first.id
    );
    assert_eq!(token_of_init_and_exec(&sb).0, value);
    exec(&sb, "app", "kill 1");
    sb.wait_exit(&first.id, Duration::from_secs(10));
    let files = sb.runtime.layout().container_files(&first.id);
    std::fs::remove_dir_all(&files).expect("rm");
    apply(&sb);
    assert_eq!(
        sole_running(&sb, "app", Duration::from_secs(10)).id,
        first.id
    );
    assert_eq!(
        token_of_init_and_exec(&sb),
        (value.to_string(), value.to_string())
    );
    assert_eq!(
        files_containing(&sb.root(), value.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );

    // A new value replaces the container once; plan names the secret, never the value.
    std::fs::write(&secret, "n3w-envtok-7a20").expect("write");
    let (code, text) = plan(&sb);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("secret:tok") && !text.contains("n3w-envtok"),
        "{text}"
    );
    apply(&sb);
    let second = sole_running(&sb, "app", Duration::from_secs(5));
    assert_ne!(second.id, first.id);
    assert_eq!(
        token_of_init_and_exec(&sb),
        ("n3w-envtok-7a20".to_string(), "n3w-envtok-7a20".to_string())
    );
    assert_eq!(plan(&sb).0, Some(0), "{}", plan(&sb).1);
    apply(&sb);
    assert_eq!(
        sole_running(&sb, "app", Duration::from_secs(5)).id,
        second.id
    );
    assert!(!files.exists(), "the old container's values went with it");
    assert_eq!(
        files_containing(&sb.root(), b"n3w-envtok-7a20"),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn env_secrets_reach_the_process_and_no_disk_embedded() {
    env_secrets_reach_the_process_and_no_disk("embedded");
}

#[test]
fn env_secrets_reach_the_process_and_no_disk_runc() {
    env_secrets_reach_the_process_and_no_disk("runc");
}
