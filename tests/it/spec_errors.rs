//! The corpus of invalid desired-state directories: every case under
//! `tests/fixtures/invalid/<case>/` must produce exactly the diagnostics written in its
//! `expected.txt` (each `Display`ed, separated by a blank line, with a trailing newline).
//!
//! `BERTH_BLESS=1 cargo test --test it spec_errors` rewrites the expected files from the
//! actual output; read every change before keeping it, since a blessed wrong message is a bug.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use berth::spec::diag::Code;
use berth::spec::model::ContainerNetwork;
use berth::spec::mount::Mount;
use berth::spec::{Loaded, load_dir};

/// Relative to the crate root, which is the working directory of integration tests, so that
/// the paths inside messages do not depend on where the repository is checked out.
const INVALID: &str = "tests/fixtures/invalid";
const VALID: &str = "tests/fixtures/valid";
const EXAMPLES: &str = "examples/desired-state";

/// Every code the corpus must produce (`Io` by files that are not regular files).
const CORPUS_CODES: [Code; 16] = [
    Code::Io,
    Code::Syntax,
    Code::UnknownSection,
    Code::UnknownKey,
    Code::MissingKey,
    Code::InvalidType,
    Code::InvalidValue,
    Code::InvalidName,
    Code::DuplicateName,
    Code::UnknownReference,
    Code::DependencyCycle,
    Code::PortConflict,
    Code::SubnetOverlap,
    Code::AddressConflict,
    Code::MountConflict,
    Code::Conflict,
];

/// Exhaustive on purpose: a new `Code` variant fails to compile here until it is classified
/// (and, if the corpus must produce it, added to `CORPUS_CODES`).
fn corpus_must_produce(code: Code) -> bool {
    match code {
        Code::Io
        | Code::Syntax
        | Code::UnknownSection
        | Code::UnknownKey
        | Code::MissingKey
        | Code::InvalidType
        | Code::InvalidValue
        | Code::InvalidName
        | Code::DuplicateName
        | Code::UnknownReference
        | Code::DependencyCycle
        | Code::PortConflict
        | Code::SubnetOverlap
        | Code::AddressConflict
        | Code::MountConflict
        | Code::Conflict => true,
    }
}

/// The case directories under `root`, sorted by name.
fn cases(root: &str) -> Vec<PathBuf> {
    let entries = fs::read_dir(root).unwrap_or_else(|e| panic!("cannot list {root}: {e}"));
    let mut dirs: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot list {root}: {e}"))
                .path()
        })
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn load(dir: &Path) -> Loaded {
    load_dir(dir).unwrap_or_else(|e| panic!("cannot load {}: {e}", dir.display()))
}

/// What `expected.txt` holds: every diagnostic, separated by a blank line.
fn render(loaded: &Loaded) -> String {
    let mut out = loaded
        .diagnostics
        .iter()
        .map(|d| format!("{d}"))
        .collect::<Vec<_>>()
        .join("\n\n");
    out.push('\n');
    out
}

/// References from kept containers to resources that were left out. A container whose
/// network, volume or dependency is broken must be left out too, whatever the diagnostics say.
fn dangling_references(loaded: &Loaded) -> Vec<String> {
    let d = &loaded.desired;
    let mut out = Vec::new();
    for (name, c) in &d.containers {
        if let ContainerNetwork::Bridge(attachments) = &c.network {
            for a in attachments {
                if !d.networks.contains_key(&a.network) {
                    out.push(format!(
                        "container `{name}` joins missing network `{}`",
                        a.network
                    ));
                }
            }
        }
        for m in &c.mounts {
            if let Mount::Volume { source, .. } = m
                && !d.volumes.contains_key(source.as_str())
            {
                out.push(format!(
                    "container `{name}` mounts missing volume `{source}`"
                ));
            }
        }
        for dep in c.depends_on.keys() {
            if !d.containers.contains_key(dep) {
                out.push(format!(
                    "container `{name}` depends on missing container `{dep}`"
                ));
            }
        }
    }
    out
}

/// A line diff (longest common subsequence), `-` for expected and `+` for actual lines.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        }
    }
    out
}

#[test]
fn invalid_fixtures_produce_expected_diagnostics() {
    let bless = std::env::var_os("BERTH_BLESS").is_some_and(|v| v == "1");
    let dirs = cases(INVALID);
    assert!(!dirs.is_empty(), "no cases under {INVALID}");
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for dir in &dirs {
        let case = dir.display();
        // A panic is a bug in the loader; report it with the other failures.
        let loaded = match std::panic::catch_unwind(|| load(dir)) {
            Ok(loaded) => loaded,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                failures.push(format!("{case}: loading panicked: {why}"));
                continue;
            }
        };
        if loaded.diagnostics.is_empty() {
            failures.push(format!("{case}: no diagnostic at all"));
            continue;
        }
        if loaded.is_complete() {
            failures.push(format!("{case}: is_complete() is true despite diagnostics"));
        }
        seen.extend(loaded.diagnostics.iter().map(|d| d.code));
        for dangling in dangling_references(&loaded) {
            failures.push(format!(
                "{case}: the loaded model is not closed: {dangling}"
            ));
        }
        let actual = render(&loaded);
        let expected_path = dir.join("expected.txt");
        if bless {
            if fs::read_to_string(&expected_path).ok().as_deref() != Some(actual.as_str()) {
                fs::write(&expected_path, &actual)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", expected_path.display()));
                eprintln!("blessed {} (review it)", expected_path.display());
            }
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{case}: diagnostics differ (- expected, + actual):\n{}",
                diff(&expected, &actual)
            )),
            Err(e) => failures.push(format!(
                "{}: {e} (BERTH_BLESS=1 writes it; review it before keeping it); actual:\n{actual}",
                expected_path.display()
            )),
        }
    }
    for code in CORPUS_CODES {
        assert!(corpus_must_produce(code), "{code:?} is listed but excluded");
        if !seen.contains(&code) {
            failures.push(format!(
                "no case produces error[{}]; add one under {INVALID}",
                code.as_str()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) in {} invalid fixture cases:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

/// Valid fixtures: no diagnostic, and exactly the resources they declare.
#[test]
fn valid_fixtures_load_clean() {
    // (case, images, containers, volumes, networks)
    let expected: &[(&str, usize, usize, usize, usize)] = &[
        ("container-with-everything", 1, 3, 2, 2),
        ("host-network", 0, 1, 0, 0),
        ("local-archive-image", 3, 1, 0, 0),
        ("minimal-container", 0, 1, 0, 0),
    ];
    let dirs = cases(VALID);
    let names: Vec<String> = dirs
        .iter()
        .filter_map(|d| d.file_name()?.to_str().map(str::to_string))
        .collect();
    let listed: Vec<&str> = expected.iter().map(|e| e.0).collect();
    assert_eq!(names, listed, "every valid case needs its expected counts");
    for &(case, images, containers, volumes, networks) in expected {
        let dir = Path::new(VALID).join(case);
        let loaded = load(&dir);
        let messages: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(
            loaded.is_complete() && messages.is_empty(),
            "{case}: expected no diagnostic, got:\n{}",
            messages.join("\n\n")
        );
        assert_eq!(dangling_references(&loaded), Vec::<String>::new(), "{case}");
        let d = &loaded.desired;
        assert_eq!(
            (
                d.images.len(),
                d.containers.len(),
                d.volumes.len(),
                d.networks.len()
            ),
            (images, containers, volumes, networks),
            "{case}: (images, containers, volumes, networks)"
        );
    }
}

/// The documented example directory is valid as a whole.
#[test]
fn examples_load_clean() {
    let loaded = load(Path::new(EXAMPLES));
    let messages: Vec<String> = loaded.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        messages.is_empty(),
        "{EXAMPLES}: expected no diagnostic, got:\n{}",
        messages.join("\n\n")
    );
    assert!(loaded.is_complete());
    assert!(!loaded.files.is_empty(), "{EXAMPLES} has no *.toml file");
    assert!(
        !loaded.desired.containers.is_empty(),
        "{EXAMPLES} declares no container"
    );
    assert_eq!(dangling_references(&loaded), Vec::<String>::new());
}
