//! The `validate` and `schema` commands as users and scripts run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run berth")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/desired-state")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).expect("write fixture");
    }
    dir
}

#[test]
fn examples_are_valid() {
    let out = berth(&["validate", examples().to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("valid (6 files: 4 images, 7 containers, 3 volumes, 2 networks)"),
        "{stdout}"
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn invalid_directory_exits_1_with_located_messages() {
    let dir = dir_with(&[
        ("ok.toml", "[network.front]\nsubnet = \"10.89.1.0/24\"\n"),
        (
            "web.toml",
            "[container.web]\nimage = \"docker.io/library/nginx:1\"\nnetworks = [\"frnt\"]\nmemory = \"64m\"\n",
        ),
    ]);
    let out = berth(&["validate", dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let web = dir.path().join("web.toml");
    assert!(
        stderr.contains(&format!(
            "{}:3:13: error[unknown-reference]: container `web` refers to unknown network `frnt`",
            web.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `front`?"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:10: error[invalid-value]", web.display())),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `MiB`?"), "{stderr}");
    assert!(text(&out.stdout).contains("invalid: 2 problems in 1 file; nothing was changed"));
}

#[test]
fn json_report_for_machines() {
    let out = berth(&[
        "validate",
        "--json",
        examples().to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["valid"], true);
    assert_eq!(report["files"].as_array().map(Vec::len), Some(6));
    let hash = report["resources"]["container/web"]
        .as_str()
        .expect("web hash");
    assert!(
        hash.starts_with("sha256:") && hash.len() == 7 + 64,
        "{hash}"
    );
    assert_eq!(report["diagnostics"].as_array().map(Vec::len), Some(0));

    let dir = dir_with(&[("a.toml", "[container.web]\nimage = \"web\"\n")]);
    let out = berth(&[
        "validate",
        "--json",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["valid"], false);
    let d = &report["diagnostics"][0];
    assert_eq!(d["code"], "unknown-reference");
    assert_eq!(d["line"], 2);
    assert_eq!(d["column"], 9);
    assert_eq!(d["text"], "\"web\"");
    assert!(
        d["help"]
            .as_str()
            .is_some_and(|h| h.contains("[image.web]")),
        "{d}"
    );
    assert!(d["file"].as_str().is_some_and(|f| f.ends_with("a.toml")));
}

#[test]
fn missing_directory_is_a_clear_error() {
    let out = berth(&["validate", "/nonexistent/berth-desired"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot read desired-state directory /nonexistent/berth-desired"),
        "{stderr}"
    );
}

#[test]
fn validate_changes_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let state = root.path().join("state");
    let dir = dir_with(&[("a.toml", "[container.web]\nimage = \"web\"\n")]);
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .count()
        .to_string()
        .into();
    let out = berth(&[
        "--root",
        state.to_str().expect("utf-8"),
        "validate",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!state.exists(), "validate must not create the state root");
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .count()
        .to_string()
        .into();
    assert_eq!(before, after);
}

#[test]
fn committed_schema_matches_the_format() {
    let out = berth(&["schema"]);
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("berth.schema.json"))
            .expect("berth.schema.json");
    assert!(
        text(&out.stdout) == committed,
        "berth.schema.json is stale: run `cargo run -- schema -o berth.schema.json`"
    );
}

#[test]
fn examples_conform_to_the_schema_and_bad_keys_do_not() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("berth.schema.json"))
            .expect("schema"),
    )
    .expect("json");
    let validator = jsonschema::validator_for(&schema).expect("valid JSON Schema");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples()).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let value: serde_json::Value =
                toml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("toml");
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    let bad: serde_json::Value = toml::from_str("[container.web]\nimag = \"x\"\n").expect("toml");
    assert!(
        !validator.is_valid(&bad),
        "unknown keys and missing `image` must fail the schema"
    );
}

#[test]
fn plan_of_a_missing_directory_says_so_on_stderr_only() {
    let root = tempfile::tempdir().expect("tempdir");
    let missing = root.path().join("no-such-dir");
    let out = berth(&[
        "--root",
        root.path().join("state").to_str().expect("utf-8"),
        "plan",
        missing.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot read desired-state directory {}",
            missing.display()
        )),
        "{stderr}"
    );
}
