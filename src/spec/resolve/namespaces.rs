//! Shared namespaces between containers: a container may join the namespaces of one that
//! joins none itself (no chains: each sharer rejoins its owner directly whenever the owner
//! starts again, which a chain would make a cascade of restarts).

use std::collections::BTreeMap;
use std::ops::Range;

use crate::spec::diag::Code;
use crate::spec::loader::{Entry, Kind};
use crate::spec::model::{Condition, Container, ContainerNetwork, NamespaceKind, UpdateStrategy};
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
                let what = kind.key();
                let problem = if let Some((their_kind, further)) = o.joins().first() {
                    Some((
                        format!(
                            "container `{name}` joins the {what} namespace of `{owner}`, which itself joins `{further}`'s {} namespace",
                            their_kind.key()
                        ),
                        if *their_kind == kind {
                            format!(
                                "write `{key} = \"container:{further}\"` to join the owner directly (namespaces are shared with one owner, not along a chain)"
                            )
                        } else {
                            format!(
                                "a container whose namespaces are joined joins none itself: make `{further}` the owner of both, or give `{owner}` namespaces of its own"
                            )
                        },
                    ))
                } else if kind == NamespaceKind::Net && o.network == ContainerNetwork::Host {
                    Some((
                        format!(
                            "container `{name}` joins the network namespace of `{owner}`, which is the host's"
                        ),
                        "write `network = \"host\"` if it is to share the host's network"
                            .to_string(),
                    ))
                } else if o.update.strategy == UpdateStrategy::StartFirst {
                    Some((
                        format!(
                            "container `{name}` joins the {what} namespace of `{owner}`, which is updated start-first"
                        ),
                        format!(
                            "during a start-first update the old and the new `{owner}` run side by side and `{name}` could be in only one of them, so the switch would not be without a gap: use update = \"stop-first\" on `{owner}`, or give `{name}` namespaces of its own"
                        ),
                    ))
                } else if c.depends_on.get(owner) == Some(&Condition::Completed) {
                    Some((
                        format!(
                            "container `{name}` waits for `{owner}` to complete, but joins its {what} namespace, which ends with it"
                        ),
                        format!("use `{owner}` = \"started\" or \"healthy\""),
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
