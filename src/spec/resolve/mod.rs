//! From raw entries to the [`Desired`] model: per-entry checks that need no other resource,
//! then references (images, networks, volumes, dependencies) and cross-resource rules (port
//! and address conflicts, overlapping subnets, dependency cycles). An entry with a problem is
//! left out of the result; so is a container whose references point at a broken entry.
//!
//! One file per kind of entry (`image`, `volume`, `network`, `container/`), and one per rule
//! between containers (`dependencies`, `conflicts`).

mod conflicts;
mod container;
mod default_network;
mod dependencies;
mod files;
mod image;
mod namespaces;
mod network;
mod volume;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use super::diag::{Code, Diagnostic, Location};
use super::loader::{Entry, Kind, RawSet, suggest};
use super::model::{Desired, Origin};
use super::name::Name;
use super::value::Hint;

pub(crate) fn resolve(set: RawSet) -> (Desired, Vec<Diagnostic>) {
    let mut r = Resolver {
        diagnostics: set.diagnostics,
        names: Names {
            declared: set.declared,
            unparsed: !set.unparsed_files.is_empty(),
            broken: BTreeSet::new(),
        },
    };
    let mut desired = Desired::default();
    // Declared but not loaded (bad name, bad value, duplicated): referring to it is no error
    // of its own, but whatever refers to it cannot be applied.
    for kind in Kind::ALL {
        let is_loaded = |name: &str| match kind {
            Kind::Image => set.images.contains_key(name),
            Kind::Container => set.containers.contains_key(name),
            Kind::Volume => set.volumes.contains_key(name),
            Kind::Network => set.networks.contains_key(name),
            Kind::Secret => set.secrets.contains_key(name),
            Kind::Config => set.configs.contains_key(name),
        };
        let unloaded: Vec<String> = r
            .names
            .declared
            .get(&kind)
            .map(|m| m.keys().filter(|n| !is_loaded(n)).cloned().collect())
            .unwrap_or_default();
        for name in unloaded {
            r.names.broken.insert((kind, name));
        }
    }

    for (name, entry) in &set.images {
        match r.image(entry) {
            Some(image) if !entry.tainted() => drop(desired.images.insert(name.clone(), image)),
            _ => r.mark_broken(Kind::Image, name),
        }
    }
    r.check_image_sources(&set.images, &mut desired);
    for (name, entry) in &set.volumes {
        match r.volume(entry) {
            Some(v) if !entry.tainted() => drop(desired.volumes.insert(name.clone(), v)),
            _ => r.mark_broken(Kind::Volume, name),
        }
    }
    for (name, entry) in &set.networks {
        match r.network(entry) {
            Some(n) if !entry.tainted() => drop(desired.networks.insert(name.clone(), n)),
            _ => r.mark_broken(Kind::Network, name),
        }
    }
    r.check_subnet_overlaps(&set.networks, &mut desired);
    let offered_default = r.offer_default_network(&mut desired);
    for (name, entry) in &set.secrets {
        match r.secret(entry) {
            Some(s) if !entry.tainted() => drop(desired.secrets.insert(name.clone(), s)),
            _ => r.mark_broken(Kind::Secret, name),
        }
    }
    for (name, entry) in &set.configs {
        match r.config(entry) {
            Some(c) if !entry.tainted() => drop(desired.configs.insert(name.clone(), c)),
            _ => r.mark_broken(Kind::Config, name),
        }
    }

    let mut containers = BTreeMap::new();
    for (name, entry) in &set.containers {
        match container::container(entry, &desired, &r.names, &mut r.diagnostics) {
            Some(c) if !entry.tainted() => drop(containers.insert(name.clone(), c)),
            _ => r.mark_broken(Kind::Container, name),
        }
    }
    if offered_default {
        r.check_default_network_overlaps(&set.networks, &mut containers, &mut desired);
    }
    r.check_shared_namespaces(&set.containers, &mut containers);
    // Dependencies may only point at containers that exist; drop transitively.
    r.check_dependencies(&set.containers, &mut containers);
    r.check_ports(&set.containers, &mut containers);
    r.check_static_addresses(&set.containers, &mut containers, &desired);
    if offered_default {
        r.drop_unused_default_network(&containers, &mut desired);
    }
    desired.containers = containers;

    let mut diagnostics = r.diagnostics;
    diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    diagnostics.dedup();
    (desired, diagnostics)
}

struct Resolver {
    diagnostics: Vec<Diagnostic>,
    names: Names,
}

/// Every name declared, per kind, and which of them cannot be used: what a reference is
/// checked against.
struct Names {
    declared: BTreeMap<Kind, BTreeMap<String, Location>>,
    /// Some file failed to parse, so an unknown name may be declared there.
    unparsed: bool,
    broken: BTreeSet<(Kind, String)>,
}

fn span<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

impl Resolver {
    fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    fn push_opt(&mut self, d: Option<Diagnostic>) {
        self.diagnostics.extend(d);
    }

    fn hinted<T: Hint>(&mut self, entry_diag: Diagnostic, e: &T) {
        self.push(with_hint(entry_diag, e));
    }

    fn mark_broken(&mut self, kind: Kind, name: &Name) {
        self.names.broken.insert((kind, name.to_string()));
    }
}

impl Names {
    /// Whether a name of this kind is declared somewhere, even if that entry is broken.
    fn is_declared(&self, kind: Kind, name: &str) -> bool {
        self.declared
            .get(&kind)
            .is_some_and(|m| m.contains_key(name))
    }

    /// Whether a declared name can be referred to: its entry loaded and resolved.
    fn is_usable(&self, kind: Kind, name: &str) -> bool {
        !self.broken.contains(&(kind, name.to_string())) && name.parse::<Name>().is_ok()
    }

    /// Advice for a reference to an undeclared name: the name rule when the name could not
    /// be declared at all, else a did-you-mean, what to declare, and whether a file that
    /// failed to parse may hold it.
    fn unknown_help(&self, kind: Kind, name: &str, declare: &str) -> String {
        if let Err(err) = name.parse::<Name>() {
            return format!(
                "`{name}` is not a valid name: {}",
                err.help().unwrap_or_default()
            );
        }
        let known: Vec<&str> = self
            .declared
            .get(&kind)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut help = match suggest(name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        help.push_str(declare);
        if self.unparsed {
            help.push_str(" (a file that failed to parse may declare it)");
        }
        help
    }
}

/// A diagnostic with the help its error carries, if any.
fn with_hint<T: Hint>(d: Diagnostic, e: &T) -> Diagnostic {
    match e.help() {
        Some(h) => d.with_help(h),
        None => d,
    }
}

/// A required key is absent: point at the entry's name. None when the key was present but
/// dropped for a bad value (already reported).
fn missing<T>(e: &Entry<T>, kind: Kind, key: &str, example: &str) -> Option<Diagnostic> {
    if e.dropped_keys.contains(key) {
        return None;
    }
    Some(missing_key(e, kind, key, example))
}

fn missing_key<T>(e: &Entry<T>, kind: Kind, key: &str, example: &str) -> Diagnostic {
    e.diag(
        Code::MissingKey,
        e.key_span.clone(),
        format!(
            "{} `{}` has no `{key}`, which is required",
            kind.section(),
            e.name
        ),
    )
    .with_help(format!(
        "add e.g. `{key} = {example}` under [{}.{}]",
        kind.section(),
        e.name
    ))
}

fn origin<T>(e: &Entry<T>) -> Origin {
    let loc = e.location();
    Origin {
        file: loc.file,
        line: loc.line,
    }
}
