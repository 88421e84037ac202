//! `depends_on`: containers declared elsewhere, and never the container itself. Rules over
//! the whole graph (cycles, health checks) are in `resolve::dependencies`.

use std::collections::BTreeMap;

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::loader::Kind;
use crate::spec::model::Condition;
use crate::spec::name::Name;
use crate::spec::resolve::{Names, span};

use super::report::Report;

/// The containers waited for, and for what. `name` is the container's own.
pub(super) fn resolve_depends_on(
    depends_on: &BTreeMap<Spanned<String>, Condition>,
    name: &Name,
    names: &Names,
    report: &mut Report,
) -> BTreeMap<Name, Condition> {
    let what = report.what();
    let mut resolved = BTreeMap::new();
    for (dep, condition) in depends_on {
        let dep_name = dep.get_ref();
        if dep_name == name.as_str() {
            report.push(
                report
                    .diag(
                        Code::DependencyCycle,
                        span(dep),
                        format!("{what} depends on itself"),
                    )
                    .with_help("remove it from its own `depends_on`"),
            );
            continue;
        }
        if !report.reference(names, Kind::Container, dep_name, span(dep)) {
            continue;
        }
        if let Ok(n) = dep_name.parse::<Name>() {
            resolved.insert(n, *condition);
        }
    }
    resolved
}
