//! The dependency direction of berth's modules, checked on the source: every `crate::`
//! path (comments and string literals aside) of every file under `src/` is an edge from the
//! file's top-level module to the one it names. The test fails on an edge the table below
//! does not allow, and on two sibling files of one module that import each other.
//!
//! ```text
//! cli (binary) → api → reconcile → wiring → drivers (health, image, network, runtime, volume)
//!                                   → state → spec → base (sha256, digest, fsutil, failpoint,
//!                                                          sys, units)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const BASE: &[&str] = &["sha256", "digest", "fsutil", "failpoint", "sys", "units"];
const DRIVERS: &[&str] = &["health", "image", "network", "runtime", "volume"];

/// The layer of a top-level module; a module may import modules of lower layers only (and
/// base modules each other).
fn layer(module: &str) -> Option<u8> {
    if BASE.contains(&module) {
        return Some(0);
    }
    match module {
        "spec" => Some(1),
        // import reads the spec's value types to write only what berth accepts.
        "state" | "import" => Some(2),
        m if DRIVERS.contains(&m) => Some(3),
        // preflight probes what the drivers need of the host (cgroup hierarchies, tini).
        "wiring" | "preflight" => Some(4),
        "reconcile" => Some(5),
        // the agent's API serves what the reconciler and the drivers know.
        "api" => Some(6),
        _ => None,
    }
}

fn allowed(from: &str, to: &str) -> bool {
    match (layer(from), layer(to)) {
        (Some(0), Some(0)) => true,
        (Some(f), Some(t)) => t < f,
        _ => false,
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library source file with its top-level module (the binary's `cli/`, `main.rs` and
/// `bin/` sit above everything and are not checked).
fn library_files() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![src_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src_dir()).expect("under src");
            let first = rel
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .expect("utf-8")
                .trim_end_matches(".rs")
                .to_string();
            if ["cli", "main", "bin", "lib"].contains(&first.as_str()) {
                continue;
            }
            out.push((first, path));
        }
    }
    out.sort();
    out
}

/// The source without comments, string and char literals (replaced by spaces), so that a
/// path named in prose is not taken for an import.
fn code_only(source: &str) -> String {
    let b = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // Raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            j += 1;
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push(' ');
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3;
            out.push(' ');
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(code: &str, at: usize) -> &str {
    let rest = &code[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The first segment of every path that starts with `prefix` (`crate::`, `super::`),
/// braces included: `crate::{a, b::c}` names `a` and `b`.
fn named_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let starts: Vec<usize> = if prefix.is_empty() {
        vec![0]
    } else {
        code.match_indices(prefix).map(|(at, _)| at).collect()
    };
    for at in starts {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let at = at + prefix.len();
        if code[at..].starts_with('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (k, c) in code[at..].char_indices() {
                match c {
                    '{' => {
                        depth += 1;
                        item_start = depth == 1;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 1 => {
                        let name = ident_at(code, at + k);
                        if !name.is_empty() {
                            out.insert(name.to_string());
                        }
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(code, at);
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// The module path of a source file: `src/runtime/start.rs` is `runtime::start`,
/// `src/runtime/mod.rs` is `runtime`.
fn module_path(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src_dir()).unwrap_or(path);
    let mut parts: Vec<String> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .map(|c| c.trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level modules that `super::` chains climbing to the crate root name: from
/// `runtime::start`, `super::super::network::…` names `network`.
fn reached_through_super(code: &str, module: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("super::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut rest = &code[at..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        if ups < module.len() {
            continue; // still inside the file's own top-level module
        }
        out.extend(named_after(rest, ""));
    }
    out
}

fn top_level_edges() -> BTreeMap<(String, String), Vec<PathBuf>> {
    let mut edges: BTreeMap<(String, String), Vec<PathBuf>> = BTreeMap::new();
    for (module, path) in library_files() {
        let code = code_only(&std::fs::read_to_string(&path).expect("read"));
        let mut named = named_after(&code, "crate::");
        named.extend(reached_through_super(&code, &module_path(&path)));
        for target in named {
            if target != module && (layer(&target).is_some() || target == "cli") {
                edges
                    .entry((module.clone(), target))
                    .or_default()
                    .push(path.clone());
            }
        }
    }
    edges
}

#[test]
fn every_import_goes_down_the_layers() {
    let edges = top_level_edges();
    let modules: BTreeSet<String> = library_files().into_iter().map(|(m, _)| m).collect();
    for m in &modules {
        assert!(
            layer(m).is_some(),
            "src/{m} is in no layer: add it to tests/it/layering.rs (and ARCHITECTURE.md)"
        );
    }
    let forbidden: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| !allowed(from, to))
        .map(|((from, to), files)| {
            let files: Vec<String> = files
                .iter()
                .map(|f| f.strip_prefix(src_dir()).unwrap_or(f).display().to_string())
                .collect();
            format!("{from} → {to} (in {})", files.join(", "))
        })
        .collect();
    let graph: Vec<String> = edges.keys().map(|(f, t)| format!("{f} → {t}")).collect();
    assert!(
        forbidden.is_empty(),
        "imports against the dependency direction:\n  {}\nall edges:\n  {}",
        forbidden.join("\n  "),
        graph.join("\n  ")
    );
    // The drivers are wired together in one place only.
    for driver in DRIVERS {
        for other in DRIVERS {
            assert!(!edges.contains_key(&(driver.to_string(), other.to_string())));
        }
    }
}

/// Sibling files of one module never import each other (a cycle that makes neither
/// understandable alone). A module's `mod.rs` and its children may: that is Rust's nesting.
#[test]
fn no_two_sibling_files_import_each_other() {
    let mut uses: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (_, path) in library_files() {
        let Some(dir) = path.parent() else { continue };
        if path.file_name().is_some_and(|n| n == "mod.rs") {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&path).expect("read"));
        for sibling in named_after(&code, "super::") {
            let file = dir.join(format!("{sibling}.rs"));
            let nested = dir.join(&sibling).join("mod.rs");
            for target in [file, nested] {
                if target.exists() && target != path {
                    uses.entry(path.clone()).or_default().insert(target);
                }
            }
        }
        // `crate::module::sibling` reaches a sibling too.
        let rel = dir.strip_prefix(src_dir()).unwrap_or(dir);
        let prefix = format!("crate::{}::", rel.display().to_string().replace('/', "::"));
        if rel.as_os_str().is_empty() {
            continue;
        }
        for sibling in named_after(&code, &prefix) {
            let target = dir.join(format!("{sibling}.rs"));
            if target.exists() && target != path {
                uses.entry(path.clone()).or_default().insert(target);
            }
        }
    }
    let mut cycles = Vec::new();
    for (a, targets) in &uses {
        for b in targets {
            if a < b && uses.get(b).is_some_and(|t| t.contains(a)) {
                cycles.push(format!("{} ⇄ {}", a.display(), b.display()));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "sibling files that import each other:\n  {}",
        cycles.join("\n  ")
    );
}

#[test]
fn the_scanner_sees_paths_in_code_only() {
    let code = code_only(
        "use crate::{spec::x, state::{a, b}};\n// crate::network in prose\n\
         let s = \"crate::runtime\"; /* crate::image */ crate::sys::f(); r#\"crate::volume\"#;",
    );
    let named = named_after(&code, "crate::");
    let expect: BTreeSet<String> = ["spec", "state", "sys"].map(String::from).into();
    assert_eq!(named, expect);
    // `super::` chains that climb out of the top-level module count too; a file's own
    // module's siblings do not.
    let module = ["runtime".to_string(), "start".to_string()];
    let code = code_only(
        "use super::super::network::Networks; use super::stop; let _ = super::super::{state::x, sys::y};",
    );
    let expect: BTreeSet<String> = ["network", "state", "sys"].map(String::from).into();
    assert_eq!(reached_through_super(&code, &module), expect);
    let root = ["state".to_string()];
    let code = code_only("use super::runtime::RuntimeError;");
    assert_eq!(
        reached_through_super(&code, &root),
        BTreeSet::from(["runtime".to_string()])
    );
    assert_eq!(
        module_path(&src_dir().join("runtime/logfile/mod.rs")),
        ["runtime", "logfile"]
    );
    assert!(allowed("runtime", "state"));
    assert!(!allowed("runtime", "network"));
    assert!(!allowed("spec", "state"));
    assert!(allowed("reconcile", "wiring"));
    assert!(!allowed("state", "runtime"));
}
