//! `secrets` and `configs`: declared entries given as read-only files, one per target.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::loader::Kind;
use crate::spec::model::{Desired, FileKind, FileMount};
use crate::spec::mount::parse_mode;
use crate::spec::name::Name;
use crate::spec::raw::FileRefEntry;
use crate::spec::resolve::{Names, span};

use super::report::Report;

/// Both lists resolved, sorted by target; each config's digest added to `inputs` (secrets
/// are added when keyed, see `spec::hash::key_secrets`).
pub(super) fn resolve_files(
    secrets: &[Spanned<FileRefEntry>],
    configs: &[Spanned<FileRefEntry>],
    desired: &Desired,
    names: &Names,
    inputs: &mut BTreeMap<PathBuf, String>,
    report: &mut Report,
) -> Vec<FileMount> {
    let mut out: Vec<FileMount> = Vec::new();
    for (kind, list) in [(FileKind::Secret, secrets), (FileKind::Config, configs)] {
        for entry in list {
            // Given as a variable (`secret_env`), not as a file.
            if entry.get_ref().env().is_some() {
                continue;
            }
            let at = span(entry);
            let Some(f) = one(kind, entry, names, report) else {
                continue;
            };
            if out.iter().any(|o| o.target == f.target) {
                let d = report
                    .diag(
                        Code::MountConflict,
                        at,
                        format!("{} puts two files at `{}`", report.what(), f.target),
                    )
                    .with_help("give each secret or config its own `target`");
                report.push(d);
                continue;
            }
            if kind == FileKind::Config
                && let Some(content) = desired.configs.get(&f.name)
            {
                inputs.insert(f.input_key(), content.digest.clone());
            }
            out.push(f);
        }
    }
    out.sort_by(|a, b| a.target.cmp(&b.target));
    out
}

fn one(
    kind: FileKind,
    entry: &Spanned<FileRefEntry>,
    names: &Names,
    report: &mut Report,
) -> Option<FileMount> {
    let at = span(entry);
    let what = report.what();
    let t = entry.get_ref().clone().into_table();
    let (section, default_target) = match kind {
        FileKind::Secret => (Kind::Secret, format!("/run/secrets/{}", t.name)),
        FileKind::Config => (Kind::Config, format!("/{}", t.name)),
    };
    if !report.reference(names, section, &t.name, at.clone()) {
        return None;
    }
    let name: Name = t.name.parse().ok()?;
    let bad = |report: &mut Report, message: String, help: &str| {
        let d = report
            .diag(Code::InvalidValue, at.clone(), format!("{what}: {message}"))
            .with_help(help);
        report.push(d);
    };
    let target = t.target.unwrap_or(default_target);
    let normal = crate::spec::mount::normal_target(&target);
    let target = match normal {
        Ok(t) => t,
        Err(_) => {
            bad(
                report,
                format!("target `{target}` must be an absolute path without `..`"),
                "write an absolute path such as \"/run/secrets/db\"",
            );
            return None;
        }
    };
    let id = |v: Option<i64>| {
        v.map_or(Some(0), |v| {
            u32::try_from(v).ok().filter(|v| *v != u32::MAX)
        })
    };
    let (Some(uid), Some(gid)) = (id(t.uid), id(t.gid)) else {
        bad(
            report,
            format!("uid or gid of `{}` is out of range", t.name),
            "ids are between 0 and 4294967294",
        );
        return None;
    };
    let mode = match t.mode.as_deref().map(parse_mode) {
        None => 0o444,
        Some(Ok(m)) if m <= 0o777 => m,
        Some(_) => {
            bad(
                report,
                format!("invalid mode for `{}`", t.name),
                "write permission bits as an octal string, e.g. \"0400\" (no setuid, setgid or sticky bits)",
            );
            return None;
        }
    };
    Some(FileMount {
        kind,
        name,
        target,
        uid,
        gid,
        mode,
    })
}
