//! `berth import compose` as a user runs it on the Compose files under
//! tests/fixtures/compose: its exit code and report, then `validate` and `plan` on what it
//! wrote.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::support::sandbox::{BERTH, Sandbox};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compose")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if entry.file_name() == "expected" {
            continue;
        }
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fixture copied into the sandbox, imported into its desired directory with no
/// variables but the fixture's `.env`.
fn import(sb: &Sandbox, name: &str, extra: &[&str]) -> (PathBuf, Output) {
    let compose = sb.dir.path().join("compose");
    if !compose.exists() {
        copy_dir(&fixture(name), &compose);
    }
    let out = std::process::Command::new(BERTH)
        .env_clear()
        .arg("import")
        .arg("compose")
        .arg(compose.join("compose.yaml"))
        .arg("-o")
        .arg(sb.desired())
        .args(extra)
        .output()
        .expect("run berth import");
    (compose, out)
}

fn expected_report(name: &str) -> String {
    std::fs::read_to_string(fixture(name).join("expected/report.txt")).expect("report")
}

fn assert_valid(sb: &Sandbox, summary: &str) {
    let dir = sb.desired();
    let out = sb.berth(&["validate", dir.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains(summary), "{}", text(&out.stdout));
}

fn plan(sb: &Sandbox) -> String {
    let dir = sb.desired();
    let out = sb.berth(&["plan", dir.to_str().expect("utf-8")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    stdout
}

fn assert_lines(plan: &str, lines: &[&str]) {
    for line in lines {
        assert!(plan.contains(line), "missing `{line}` in:\n{plan}");
    }
}

#[test]
fn a_stack_of_existing_keys_imports_completely_validates_and_plans() {
    let sb = Sandbox::new();
    let (_, out) = import(&sb, "basic", &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.ends_with(&expected_report("basic")), "{stdout}");
    assert!(stdout.contains("import complete: 4 of 4 services, every key carried over"));
    for file in [
        "00-networks.toml",
        "00-volumes.toml",
        "web.toml",
        "app.toml",
        "db.toml",
        "cache.toml",
    ] {
        assert!(
            stdout.contains(&format!("wrote {}", sb.desired().join(file).display())),
            "{stdout}"
        );
    }
    assert_valid(
        &sb,
        "valid (6 files: 0 images, 4 containers, 3 volumes, 2 networks)",
    );
    let plan = plan(&sb);
    assert_lines(
        &plan,
        &[
            "+ pull     image docker.io/library/nginx:1.27-alpine",
            "+ pull     image docker.io/library/postgres:16-alpine",
            "+ pull     image docker.io/library/redis:7",
            "+ pull     image ghcr.io/example/shop-app:2.4.1",
            "+ create   volume db-data",
            "+ create   volume cache-data",
            "+ create   volume static",
            "+ ensure   network front",
            "+ ensure   network back",
            "+ run      container db",
            "+ run      container cache",
            "+ run      container app",
            "container/web: waiting for app to be healthy",
        ],
    );

    // A second import refuses to overwrite, unless forced.
    let (_, again) = import(&sb, "basic", &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("exists: pass --force to overwrite it"),
        "{}",
        text(&again.stderr)
    );
    let (_, forced) = import(&sb, "basic", &["--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
}

/// The full stack uses the keys other parts of issue 16 add (secrets, configs, env_file,
/// `completed`, ulimits, sysctls, init, dns, port ranges…).
#[test]
fn a_full_stack_imports_completely_validates_and_plans() {
    let sb = Sandbox::new();
    let compose = sb.dir.path().join("compose");
    copy_dir(&fixture("full"), &compose);
    // berth reads secrets only from root-only files.
    for secret in ["db_password.txt", "api_token.txt"] {
        let path = compose.join("secrets").join(secret);
        std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
    }
    let (_, out) = import(&sb, "full", &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.ends_with(&expected_report("full")), "{stdout}");
    let web = std::fs::read_to_string(sb.desired().join("web.toml")).expect("web.toml");
    assert!(web.contains("env_file = \"../compose/web.env\""), "{web}");
    let secrets = std::fs::read_to_string(sb.desired().join("00-secrets.toml")).expect("secrets");
    assert!(
        secrets.contains(&format!(
            "file = \"{}\"",
            compose.join("secrets/db_password.txt").display()
        )),
        "{secrets}"
    );
    // No secret value was copied into the desired directory.
    for entry in std::fs::read_dir(sb.desired()).expect("desired") {
        let body = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        assert!(!body.contains("not-a-real-password") && !body.contains("not-a-real-token"));
    }

    assert_valid(&sb, "6 containers");
    let plan = plan(&sb);
    assert_lines(
        &plan,
        &[
            "+ pull     image docker.io/library/nginx:1.27-alpine",
            "+ pull     image docker.io/library/postgres:16-alpine",
            "+ pull     image docker.io/library/redis:7-alpine",
            "+ pull     image ghcr.io/example/shop-web:3.1.0",
            "+ pull     image quay.io/prometheus/postgres-exporter:v0.15.0",
            "+ create   volume db-data",
            "+ create   volume cache-data",
            "+ ensure   network front",
            "+ ensure   network back",
            "+ run      container db",
            "+ run      container cache",
            "container/migrate: waiting for db to be healthy",
            "container/web: waiting for migrate",
            "container/proxy: waiting for web to be healthy",
        ],
    );
}

#[test]
fn unsupported_keys_are_reported_per_service_and_exit_1() {
    let sb = Sandbox::new();
    let (_, out) = import(&sb, "unsupported", &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.ends_with(&expected_report("unsupported")),
        "{stdout}"
    );
    assert!(stdout.contains("service builder:\n  build (compose.yaml:6:7): not carried over: building images is not yet supported"));
    // The service that could not be imported has no file; the other one does.
    assert!(!sb.desired().join("builder.toml").exists());
    assert!(sb.desired().join("worker.toml").exists());
}

#[test]
fn a_missing_required_variable_is_located_and_writes_nothing() {
    let sb = Sandbox::new();
    let compose = sb.dir.path().join("compose");
    copy_dir(&fixture("basic"), &compose);
    std::fs::remove_file(compose.join(".env")).expect("rm .env");
    let (_, out) = import(&sb, "basic", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:75:9: required variable `DB_PASSWORD` is not set: set DB_PASSWORD in .env",
            compose.join("compose.yaml").display()
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(sb.desired()).expect("desired").count(), 0);
}
