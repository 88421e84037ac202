//! `depends_on` between containers: a `healthy` condition needs a health check, a
//! `completed` one a dependency that is allowed to end (not `restart = "always"`), cycles
//! are refused, and a container whose dependency is left out is left out too.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::diag::Code;
use crate::spec::loader::{Entry, Kind};
use crate::spec::model::{Condition, Container, RestartPolicy};
use crate::spec::name::Name;
use crate::spec::raw::RawContainer;

use super::{Resolver, span};

impl Resolver {
    /// depends_on: a `healthy` condition needs a health check, a `completed` one a dependency
    /// that may end; cycles are refused; a container that depends on one left out is left
    /// out too.
    pub(super) fn check_dependencies(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawContainer>>,
        containers: &mut BTreeMap<Name, Container>,
    ) {
        for (name, c) in containers.iter() {
            for (dep, cond) in &c.depends_on {
                let Some(d) = containers.get(dep) else {
                    continue;
                };
                let (text, help) = match unmeetable(*cond, d) {
                    Some(Unmeetable::NoHealthCheck) => (
                        format!(
                            "container `{name}` waits for `{dep}` to be healthy, but `{dep}` has no health check"
                        ),
                        format!("add a `health` check to `{dep}`, or use `{dep}` = \"started\""),
                    ),
                    Some(Unmeetable::NeverEnds) => (
                        format!(
                            "container `{name}` waits for `{dep}` to complete, but `{dep}` has restart policy \"always\" (the default), so it never completes: it is started again whenever it exits"
                        ),
                        format!(
                            "set `restart = \"never\"` on `{dep}` (a one-shot job; or \"on-failure\" to retry until it exits 0), or use `{dep}` = \"started\""
                        ),
                    ),
                    None => continue,
                };
                let e = &entries[name];
                let at = e
                    .raw
                    .depends_on
                    .keys()
                    .find(|k| k.get_ref() == dep.as_str())
                    .map(span)
                    .unwrap_or(e.key_span.clone());
                self.diagnostics.push(
                    e.diag(Code::Conflict, at, text)
                        .with_help(help)
                        .with_related(entries[dep].location(), format!("`{dep}` is declared here")),
                );
            }
        }
        // Cycles: depth-first search over the full declared graph, reporting each cycle once.
        let graph: BTreeMap<&Name, Vec<&Name>> = containers
            .iter()
            .map(|(n, c)| {
                (
                    n,
                    c.depends_on
                        .keys()
                        .filter(|d| containers.contains_key(*d))
                        .collect(),
                )
            })
            .collect();
        let mut state: BTreeMap<&Name, u8> = BTreeMap::new(); // 1 = on stack, 2 = done
        let mut in_cycle: BTreeSet<Name> = BTreeSet::new();
        fn visit<'a>(
            n: &'a Name,
            graph: &BTreeMap<&'a Name, Vec<&'a Name>>,
            state: &mut BTreeMap<&'a Name, u8>,
            stack: &mut Vec<&'a Name>,
            cycles: &mut Vec<Vec<&'a Name>>,
        ) {
            state.insert(n, 1);
            stack.push(n);
            for &next in graph.get(n).map(Vec::as_slice).unwrap_or(&[]) {
                match state.get(next) {
                    Some(1) => {
                        let start = stack.iter().position(|s| *s == next).unwrap_or(0);
                        cycles.push(stack[start..].to_vec());
                    }
                    Some(_) => {}
                    None => visit(next, graph, state, stack, cycles),
                }
            }
            stack.pop();
            state.insert(n, 2);
        }
        let mut cycles = Vec::new();
        for n in graph.keys() {
            if !state.contains_key(n) {
                visit(n, &graph, &mut state, &mut Vec::new(), &mut cycles);
            }
        }
        for cycle in cycles {
            let first = cycle[0];
            let path: Vec<String> = cycle
                .iter()
                .chain(std::iter::once(&first))
                .map(|n| n.to_string())
                .collect();
            let e = &entries[first];
            let mut d = e
                .diag(
                    Code::DependencyCycle,
                    e.key_span.clone(),
                    format!("dependency cycle: {}", path.join(" → ")),
                )
                .with_help(
                    "remove one of these `depends_on` entries so the containers can start in order",
                );
            for n in &cycle[1..] {
                d = d.with_related(
                    entries[*n].location(),
                    format!("`{n}` is part of the cycle"),
                );
            }
            self.diagnostics.push(d);
            in_cycle.extend(cycle.into_iter().cloned());
        }
        for n in &in_cycle {
            containers.remove(n);
            self.mark_broken(Kind::Container, n);
        }
        // Left-out dependencies (broken, in a cycle) and unmeetable conditions take dependents along.
        loop {
            let gone: Vec<Name> = containers
                .iter()
                .filter(|(_, c)| {
                    c.depends_on.iter().any(|(d, cond)| {
                        containers
                            .get(d)
                            .is_none_or(|d| unmeetable(*cond, d).is_some())
                    })
                })
                .map(|(n, _)| n.clone())
                .collect();
            if gone.is_empty() {
                break;
            }
            for n in gone {
                containers.remove(&n);
                self.mark_broken(Kind::Container, &n);
            }
        }
    }
}

/// Why a dependency can never meet a condition, whatever happens at run time.
enum Unmeetable {
    /// `healthy` on a container without a health check.
    NoHealthCheck,
    /// `completed` on a container that is started again whenever it ends.
    NeverEnds,
}

fn unmeetable(condition: Condition, dep: &Container) -> Option<Unmeetable> {
    match condition {
        Condition::Healthy if dep.health.is_none() => Some(Unmeetable::NoHealthCheck),
        Condition::Completed if dep.restart == RestartPolicy::Always => Some(Unmeetable::NeverEnds),
        _ => None,
    }
}
