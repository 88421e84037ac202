//! `cap_add` and `cap_drop`: each capability listed once, and none both added and dropped.

use std::collections::BTreeSet;

use toml::Spanned;

use crate::spec::capability::Capability;
use crate::spec::diag::Code;
use crate::spec::resolve::span;

use super::report::Report;

/// The capabilities added and dropped.
pub(super) fn resolve_capabilities(
    cap_add: &[Spanned<Capability>],
    cap_drop: &[Spanned<Capability>],
    report: &mut Report,
) -> (BTreeSet<Capability>, BTreeSet<Capability>) {
    let what = report.what();
    let added = listed_once(cap_add, "cap_add", report);
    let dropped = listed_once(cap_drop, "cap_drop", report);
    for c in cap_add {
        if dropped.contains(c.get_ref()) && *c.get_ref() != Capability::All {
            report.push(
                report
                    .diag(
                        Code::Conflict,
                        span(c),
                        format!("{what}: {} is both added and dropped", c.get_ref()),
                    )
                    .with_help("keep it in only one of `cap_add` and `cap_drop`"),
            );
        }
    }
    (added, dropped)
}

/// The capabilities of one list, `key`, each reported when listed again.
fn listed_once(
    list: &[Spanned<Capability>],
    key: &str,
    report: &mut Report,
) -> BTreeSet<Capability> {
    let what = report.what();
    let mut set = BTreeSet::new();
    for c in list {
        if !set.insert(c.get_ref().clone()) {
            report.push(
                report
                    .diag(
                        Code::Conflict,
                        span(c),
                        format!("{what}: `{key}` lists {} twice", c.get_ref()),
                    )
                    .with_help("list each capability once"),
            );
        }
    }
    set
}
