//! `labels`: free-form, except berth's own prefix. berth marks its containers with
//! `io.berth.*` annotations (their name, id, whether they are privileged) that the runtime
//! trusts; a label spelling one would forge that mark.

use std::collections::BTreeMap;

use toml::Spanned;

use crate::spec::diag::Code;

use super::report::Report;

/// The prefix of the annotations berth sets itself.
pub(crate) const RESERVED_PREFIX: &str = "io.berth.";

pub(super) fn resolve_labels(
    labels: &BTreeMap<Spanned<String>, String>,
    report: &mut Report<'_>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in labels {
        if key.get_ref().starts_with(RESERVED_PREFIX) {
            let d = report
                .diag(
                    Code::InvalidName,
                    key.span(),
                    format!(
                        "{}: label `{}` uses the prefix `{RESERVED_PREFIX}`, which is berth's own",
                        report.what(),
                        key.get_ref()
                    ),
                )
                .with_help("choose another prefix, e.g. your organisation's reversed domain name");
            report.push(d);
            continue;
        }
        out.insert(key.get_ref().clone(), value.clone());
    }
    out
}
