//! What a container reads from files other than its TOML file: `env_file`s, and read-only
//! binds lying inside the desired directory. Their content digests become the entry's
//! `inputs`, so editing one replaces the container (and `plan` names it).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use crate::spec::diag::{Code, Diagnostic, SourceFile};
use crate::spec::envfile;
use crate::spec::mount::{Mount, is_relative_source};
use crate::spec::raw::EnvFiles;
use crate::spec::referenced;
use crate::spec::resolve::span;

use super::report::Report;

/// The directory of the file declaring the entry: as written (for messages), and absolute.
fn base_dir(report: &Report) -> (PathBuf, PathBuf) {
    let file = &report.source().path;
    let dir = file.parent().unwrap_or(Path::new("."));
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    (dir.to_path_buf(), absolute)
}

/// `written` relative to `base` (or absolute), with `.` and `..` resolved lexically.
pub(crate) fn beside(base: &Path, written: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(written).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The variables of the entry's env files, later files winning, with each file's digest.
pub(super) fn resolve_env_files(
    env_file: Option<&Spanned<EnvFiles>>,
    inputs: &mut BTreeMap<PathBuf, String>,
    report: &mut Report,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some(files) = env_file else {
        return env;
    };
    let what = report.what();
    let (shown_base, base) = base_dir(report);
    for written in files.get_ref().paths() {
        let path = beside(&base, written);
        let shown = shown_base.join(written);
        let bytes = match referenced::read(&shown) {
            Ok(bytes) => bytes,
            Err(e) => {
                let d = report
                    .diag(Code::Io, span(files), format!("{what}: env file: {e}"))
                    .with_help("env_file paths are relative to this file (or absolute) and name regular, readable files");
                report.push(d);
                continue;
            }
        };
        inputs.insert(path.clone(), digest_of(&bytes));
        let Ok(text) = String::from_utf8(bytes) else {
            report.push(
                Diagnostic::for_file(
                    Code::Syntax,
                    &shown,
                    format!("{what}: env file is not valid UTF-8"),
                )
                .with_help("env files must be UTF-8 encoded"),
            );
            continue;
        };
        match envfile::parse(&text) {
            Ok(lines) => env.extend(lines.into_iter().map(|l| (l.key, l.value))),
            Err(e) => {
                let source = SourceFile::new(shown, envfile::redacted(&text));
                report.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        &source,
                        e.span,
                        format!("{what}: env file: {}", e.message),
                    )
                    .with_help(e.help),
                );
            }
        }
    }
    env
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::sha256::hex_digest(bytes))
}

/// Relative bind sources made absolute; read-only ones inside the desired directory digested.
pub(super) fn resolve_bind_sources(
    mounts: &mut [Mount],
    spans: &[std::ops::Range<usize>],
    inputs: &mut BTreeMap<PathBuf, String>,
    report: &mut Report,
) {
    let what = report.what();
    let (shown_base, base) = base_dir(report);
    for (m, at) in mounts.iter_mut().zip(spans) {
        let Mount::Bind {
            source, read_only, ..
        } = m
        else {
            continue;
        };
        let shown = shown_base.join(&*source);
        let relative = is_relative_source(source);
        if relative {
            *source = beside(&base, source).to_string_lossy().into_owned();
        }
        // A writable bind is the container's data: its changes must not replace it. An
        // absolute source is not tracked: 0.1.0 read such entries without their content, and
        // tracking it now would change their hash and replace them at the upgrade.
        let path = PathBuf::from(&*source);
        if !relative || !*read_only || !path.starts_with(&base) {
            continue;
        }
        match referenced::digest(&shown) {
            Ok(d) => drop(inputs.insert(path, d)),
            Err(e) => {
                let d = report
                    .diag(Code::Io, at.clone(), format!("{what}: bind source inside the desired directory: {e}"))
                    .with_help("a read-only bind inside the desired directory is part of the container's spec: it must exist and be readable (at most 10000 entries, 256MiB)");
                report.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::beside;
    use std::path::{Path, PathBuf};

    #[test]
    fn paths_are_taken_beside_the_file() {
        let base = Path::new("/etc/berth/desired");
        assert_eq!(
            beside(base, "app.env"),
            PathBuf::from("/etc/berth/desired/app.env")
        );
        assert_eq!(
            beside(base, "./conf/"),
            PathBuf::from("/etc/berth/desired/conf")
        );
        assert_eq!(
            beside(base, "../shared"),
            PathBuf::from("/etc/berth/shared")
        );
        assert_eq!(beside(base, "/abs/x"), PathBuf::from("/abs/x"));
    }
}
