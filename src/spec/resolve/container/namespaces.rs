//! `network = "container:NAME"`, `pid` and `ipc`: the containers whose namespaces this one
//! joins. Each must be another declared container; whether it can be joined (it joins none
//! itself, it keeps running) is checked against the others in `resolve::namespaces`.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::spec::diag::Code;
use crate::spec::loader::Kind;
use crate::spec::model::Condition;
use crate::spec::name::Name;
use crate::spec::raw::RawContainer;
use crate::spec::resolve::{Names, span};

use super::report::Report;

/// The owner named by a `container:NAME` value of `key`, if it is another declared container.
pub(super) fn owner(
    name: &str,
    key: &str,
    at: Range<usize>,
    names: &Names,
    report: &mut Report,
) -> Option<Name> {
    if name == report.name() {
        let what = report.what();
        report.push(
            report
                .diag(
                    Code::InvalidValue,
                    at,
                    format!("{what}: `{key} = \"container:{name}\"` names the container itself"),
                )
                .with_help(format!(
                    "name another container, or leave `{key}` out for a namespace of its own"
                )),
        );
        return None;
    }
    if !report.reference(names, Kind::Container, name, at) {
        return None;
    }
    name.parse().ok()
}

/// `pid` and `ipc`: the owners of the namespaces joined.
pub(super) fn resolve_joined(
    raw: &RawContainer,
    names: &Names,
    report: &mut Report,
) -> (Option<Name>, Option<Name>) {
    let pid = raw
        .pid
        .as_ref()
        .and_then(|p| owner(&p.get_ref().0.0, "pid", span(p), names, report));
    let ipc = raw
        .ipc
        .as_ref()
        .and_then(|i| owner(&i.get_ref().0.0, "ipc", span(i), names, report));
    if let (Some(ipc), Some(size)) = (&raw.ipc, &raw.shm_size) {
        let (what, owner) = (report.what(), &ipc.get_ref().0.0);
        report.push(
            report
                .diag(
                    Code::Conflict,
                    span(size),
                    format!("{what} shares the IPC namespace and /dev/shm of `{owner}`"),
                )
                .with_help(format!("set `shm_size` on `{owner}`, whose /dev/shm it is")),
        );
    }
    (pid, ipc)
}

/// A container starts after the ones whose namespaces it joins: `started` unless
/// `depends_on` asks for more.
pub(super) fn imply_dependencies<'a>(
    owners: impl IntoIterator<Item = &'a Name>,
    depends_on: &mut BTreeMap<Name, Condition>,
) {
    for owner in owners {
        depends_on
            .entry(owner.clone())
            .or_insert(Condition::Started);
    }
}
