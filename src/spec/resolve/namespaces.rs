//! Shared namespaces between containers: a container may join the namespaces of one that
//! joins none itself (no chains: each sharer rejoins its owner directly whenever the owner
//! starts again, which a chain would make a cascade of restarts).

use std::collections::BTreeMap;
use std::ops::Range;

use crate::spec::diag::Code;
use crate::spec::loader::{Entry, Kind};
use crate::spec::model::{Container, NamespaceKind};
use crate::spec::name::Name;
use crate::spec::raw::RawContainer;

use super::{Resolver, span};

impl Resolver {
    pub(super) fn check_shared_namespaces(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawContainer>>,
        containers: &mut BTreeMap<Name, Container>,
    ) {
        let mut refused = Vec::new();
        for (name, c) in containers.iter() {
            let e = &entries[name];
            for (kind, owner) in c.joins() {
                let Some(o) = containers.get(owner) else {
                    continue;
                };
                let at = key_span(e, kind);
                let key = kind.key();
                let problem = if let Some((_, further)) = o.joins().first() {
                    Some((
                        format!(
                            "container `{name}` joins the {} namespace of `{owner}`, which itself joins `{further}`'s",
                            kind.key()
                        ),
                        format!(
                            "write `{key} = \"container:{further}\"` to join the owner directly (namespaces are shared with one owner, not along a chain)"
                        ),
                    ))
                } else {
                    None
                };
                if let Some((message, help)) = problem {
                    self.diagnostics.push(
                        e.diag(Code::Conflict, at, message)
                            .with_help(help)
                            .with_related(
                                entries[owner].location(),
                                format!("`{owner}` is declared here"),
                            ),
                    );
                    refused.push(name.clone());
                }
            }
        }
        for name in refused {
            containers.remove(&name);
            self.mark_broken(Kind::Container, &name);
        }
    }
}

/// Where the key asking to join `kind` is written.
fn key_span(e: &Entry<RawContainer>, kind: NamespaceKind) -> Range<usize> {
    let at = match kind {
        NamespaceKind::Net => e.raw.network.as_ref().map(span),
        NamespaceKind::Pid => e.raw.pid.as_ref().map(span),
        NamespaceKind::Ipc => e.raw.ipc.as_ref().map(span),
    };
    at.unwrap_or_else(|| e.key_span.clone())
}
