//! `mounts`: volumes that are declared, and one mount per target.

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::loader::Kind;
use crate::spec::mount::{Mount, MountEntry};
use crate::spec::resolve::{Names, span};

use super::report::Report;

/// The mounts, sorted by target; relative bind sources made absolute beside the file, and
/// read-only binds inside the desired directory added to `inputs`.
pub(super) fn resolve_mounts(
    entries: &[Spanned<MountEntry>],
    names: &Names,
    inputs: &mut std::collections::BTreeMap<std::path::PathBuf, String>,
    report: &mut Report,
) -> Vec<Mount> {
    let what = report.what();
    let mut written: Vec<Mount> = entries.iter().map(|m| m.get_ref().0.clone()).collect();
    let spans: Vec<_> = entries.iter().map(span).collect();
    super::inputs::resolve_bind_sources(&mut written, &spans, inputs, report);
    let mut mounts: Vec<Mount> = Vec::new();
    for (m, mount) in entries.iter().zip(written) {
        if let Mount::Volume { source, .. } = &mount
            && !report.reference(names, Kind::Volume, source, span(m))
        {
            continue;
        }
        if let Some(other) = mounts.iter().find(|o| o.target() == mount.target()) {
            let other = other.to_string();
            report.push(
                report
                    .diag(
                        Code::MountConflict,
                        span(m),
                        format!("{what} mounts two things at `{}`", mount.target()),
                    )
                    .with_help(format!(
                        "each target takes one mount; `{other}` is already there"
                    )),
            );
            continue;
        }
        mounts.push(mount);
    }
    mounts.sort_by(|a, b| {
        a.target()
            .cmp(b.target())
            .then_with(|| a.to_string().cmp(&b.to_string()))
    });
    mounts
}
