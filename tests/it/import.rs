//! `berth import compose` and `berth import quadlet` as a user runs them on the files under
//! tests/fixtures/compose and tests/fixtures/import/quadlet: exit code and report, then
//! `validate` and `plan` on what they wrote.

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

fn quadlet_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import/quadlet")
        .join(name)
}

/// A Quadlet fixture copied into the sandbox (its secrets made root-only, as berth reads
/// them), imported into the desired directory with the secrets expected in `secrets`.
fn import_quadlet(sb: &Sandbox, name: &str, secrets: &Path, extra: &[&str]) -> (PathBuf, Output) {
    let units = sb.dir.path().join("units");
    if !units.exists() {
        copy_dir(&quadlet_fixture(name), &units);
        for entry in std::fs::read_dir(units.join("secrets"))
            .into_iter()
            .flatten()
        {
            let path = entry.expect("entry").path();
            std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
        }
    }
    let out = std::process::Command::new(BERTH)
        .env_clear()
        .args(["import", "quadlet"])
        .arg(&units)
        .arg("-o")
        .arg(sb.desired())
        .arg("--secrets-dir")
        .arg(secrets)
        .args(extra)
        .output()
        .expect("run berth import quadlet");
    (units, out)
}

fn expected_quadlet_report(name: &str) -> String {
    std::fs::read_to_string(quadlet_fixture(name).join("expected/report.txt")).expect("report")
}

/// web + db + cache + a migration job, two networks, two volumes, two secrets, health checks:
/// every key carried over, the result valid, and the plan waits as systemd's ordering did.
#[test]
fn quadlet_units_import_completely_validate_and_plan() {
    let sb = Sandbox::new();
    let secrets = sb.dir.path().join("units/secrets");
    let (units, out) = import_quadlet(&sb, "full", &secrets, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.ends_with(&expected_quadlet_report("full")),
        "{stdout}"
    );
    for file in [
        "00-images.toml",
        "00-networks.toml",
        "00-volumes.toml",
        "00-secrets.toml",
        "web.toml",
        "db.toml",
        "cache.toml",
        "migrate.toml",
    ] {
        assert!(
            stdout.contains(&format!("wrote {}", sb.desired().join(file).display())),
            "{stdout}"
        );
    }
    // What the importer wrote is the golden output, with the fixture's real path (files
    // with paths relative to the output directory differ: it is elsewhere here).
    for file in [
        "db.toml",
        "cache.toml",
        "00-images.toml",
        "00-networks.toml",
        "00-volumes.toml",
        "00-secrets.toml",
    ] {
        let got = std::fs::read_to_string(sb.desired().join(file)).expect("written");
        let want = std::fs::read_to_string(quadlet_fixture("full").join("expected").join(file))
            .expect("expected")
            .replace("$FIXTURE", &units.display().to_string());
        assert_eq!(got, want, "{file}");
    }
    let web = std::fs::read_to_string(sb.desired().join("web.toml")).expect("web.toml");
    assert!(web.contains("env_file = \"../units/web.env\""), "{web}");
    assert!(web.contains("\"../units/static:/app/static:ro\""), "{web}");
    // From the drop-in web.container.d/10-limits.conf.
    assert!(web.contains("memory = \"512MiB\"\n"), "{web}");
    // No secret value was copied into the desired directory.
    for entry in std::fs::read_dir(sb.desired()).expect("desired") {
        let body = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        assert!(!body.contains("not-a-real-password") && !body.contains("not-a-real-token"));
    }

    assert_valid(
        &sb,
        "valid (8 files: 1 images, 4 containers, 2 volumes, 2 networks)",
    );
    let plan = plan(&sb);
    assert_lines(
        &plan,
        &[
            "+ pull     image docker.io/library/postgres:16-alpine",
            "+ pull     image docker.io/library/redis:7-alpine",
            "+ pull     image ghcr.io/example/shop-web:3.1.0",
            "+ create   volume cache-data",
            "+ create   volume shop-db-data",
            "+ ensure   network front",
            "+ ensure   network shop-back",
            "+ run      container cache",
            "+ run      container db",
            "container/migrate: waiting for db to be healthy",
            "container/web: waiting for migrate to complete",
        ],
    );

    // A second import refuses to overwrite, unless forced.
    let (_, again) = import_quadlet(&sb, "full", &secrets, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("exists: pass --force to overwrite it"),
        "{}",
        text(&again.stderr)
    );
    let (_, forced) = import_quadlet(&sb, "full", &secrets, &["--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
}

/// Secrets live in podman's store: until their files are where `[secret.NAME]` says, the
/// import says what to provide and exits 1; `berth validate` refuses the missing file too.
#[test]
fn quadlet_secrets_not_yet_provided_are_reported_until_they_are() {
    let sb = Sandbox::new();
    let secrets = sb.dir.path().join("provided");
    let (_, out) = import_quadlet(&sb, "full", &secrets, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let path = secrets.join("db_password");
    assert!(
        stdout.contains(&format!(
            "secret db_password:\n  (whole entry) (db.container:11:1): not carried over: its value is in podman's secret store, which the importer does not read: write it to {} (owned by root, mode 0600)",
            path.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("import incomplete: 4 of 4 containers, 2 not carried over"),
        "{stdout}"
    );
    let dir = sb.desired();
    let invalid = sb.berth(&["validate", dir.to_str().expect("utf-8")]);
    assert!(!invalid.status.success(), "{}", text(&invalid.stdout));

    std::fs::create_dir_all(&secrets).expect("mkdir");
    for name in ["db_password", "api_token"] {
        let p = secrets.join(name);
        std::fs::write(&p, "provided").expect("write");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
    }
    let (_, again) = import_quadlet(&sb, "full", &secrets, &["--force"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    assert_valid(&sb, "4 containers");
}

#[test]
fn quadlet_keys_without_berth_equivalent_are_reported_and_exit_1() {
    let sb = Sandbox::new();
    let secrets = sb.dir.path().join("secrets");
    let (_, out) = import_quadlet(&sb, "unsupported", &secrets, &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    // The golden names the secrets directory as the lib tests give it.
    let shown = stdout.replace(&sb.dir.path().display().to_string(), "$FIXTURE");
    assert!(
        shown.ends_with(&expected_quadlet_report("unsupported")),
        "{stdout}"
    );
    assert!(stdout.contains(
        "worker.container:\n  Unit.After (worker.container:3:1): not carried over: `worker-helper.service` is not among the imported containers"
    ));
    // The template is not imported; what could be translated was, and is valid once the
    // secret it names (given as an environment variable) is provided.
    assert!(!sb.desired().join("job.toml").exists());
    assert!(sb.desired().join("worker.toml").exists());
    std::fs::create_dir_all(&secrets).expect("mkdir");
    let token = secrets.join("api_token");
    std::fs::write(&token, "provided").expect("write");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    assert_valid(&sb, "2 containers");
}

#[test]
fn a_malformed_quadlet_unit_is_located_and_writes_nothing() {
    let sb = Sandbox::new();
    let units = sb.dir.path().join("units");
    std::fs::create_dir_all(&units).expect("mkdir");
    std::fs::write(
        units.join("a.container"),
        "[Container]\nImage=docker.io/library/busybox:1\n",
    )
    .expect("write");
    std::fs::write(
        units.join("b.container"),
        "[Container]\n\nImage docker.io/library/busybox:1\n",
    )
    .expect("write");
    let out = std::process::Command::new(BERTH)
        .env_clear()
        .args(["import", "quadlet"])
        .arg(&units)
        .arg("-o")
        .arg(sb.desired())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3:1: `Image docker.io/library/busybox:1` is not a `Key=value` line",
            units.join("b.container").display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(sb.desired())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}
