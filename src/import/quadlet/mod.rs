//! `berth import quadlet`: Podman Quadlet units (`.container`, `.network`, `.volume`, as
//! read from files or directories such as /etc/containers/systemd) turned into berth's
//! desired-state files, with the same comments, report and exit code as the Compose import.
//! `unit` reads systemd's syntax, `specifier` what systemd substitutes afterwards,
//! `container` the [Container] keys (with `mounts` and `networks`), `service` the
//! [Unit]/[Service]/[Install] ones, `resources` networks, volumes and secrets.

mod container;
mod mounts;
mod networks;
mod resources;
mod service;
mod specifier;
mod unit;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::toml_out::{self, Table};
use super::{Dropped, Import, ImportError, values};
use specifier::UnitNames;
use unit::{At, Split, UnitFile};

pub use unit::UnitError;

#[derive(Debug, Clone)]
pub struct QuadletOptions {
    /// Where the `[secret.NAME]` files are expected: podman keeps secret values in its own
    /// store, which the importer does not read.
    pub secrets_dir: PathBuf,
    /// Subnets for networks that name none are /24s taken from this range.
    pub subnet_pool: ipnet::Ipv4Net,
}

/// The kinds of unit translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Container,
    Network,
    Volume,
}

impl Kind {
    fn of(file_name: &str) -> Option<Kind> {
        match Path::new(file_name).extension()?.to_str()? {
            "container" => Some(Kind::Container),
            "network" => Some(Kind::Network),
            "volume" => Some(Kind::Volume),
            _ => None,
        }
    }

    /// The unit's own section.
    pub(crate) fn section(self) -> &'static str {
        match self {
            Kind::Container => "Container",
            Kind::Network => "Network",
            Kind::Volume => "Volume",
        }
    }
}

/// One unit file, read and parsed.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    /// As shown in the report and comments: relative to the directory argument it was found
    /// in, or as given.
    pub shown: String,
    /// Absolute: relative paths in the unit start at its directory.
    pub path: PathBuf,
    /// "web.container".
    pub file_name: String,
    /// "web".
    pub stem: String,
    pub kind: Kind,
    pub unit: UnitFile,
    /// The files its entries come from, as shown: the unit, then its drop-ins (`At::file`).
    pub sources: Vec<String>,
    /// For specifiers: the generated service's name.
    pub names: UnitNames,
}

/// A translated container, for the units that name it.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    pub name: String,
    pub shown: String,
    /// `Type=oneshot`: a job; units ordered after it wait for it to finish.
    pub job: bool,
    /// `Notify=healthy`: units ordered after it wait for it to be healthy.
    pub healthy: bool,
}

impl Parsed {
    /// The keys of `section` with where each is, owned: the translations borrow the unit
    /// again (and the `Tx`) while they walk them.
    pub(crate) fn owned_keys(&self, section: &str) -> Vec<(String, At)> {
        self.unit
            .section(section)
            .map(|s| {
                s.keys()
                    .into_iter()
                    .map(|(k, at)| (k.to_string(), at))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The file (as shown) an entry is in: the unit or one of its drop-ins.
    pub(crate) fn file_of(&self, at: At) -> String {
        self.sources
            .get(at.file)
            .cloned()
            .unwrap_or_else(|| self.shown.clone())
    }
}

/// Units found but not translated (another Quadlet kind, a template, drop-ins): reported.
struct Skipped {
    shown: String,
    reason: String,
}

pub(crate) struct Tx<'a> {
    pub out_dir: &'a Path,
    pub options: &'a QuadletOptions,
    pub dropped: Vec<Dropped>,
    /// "web.container" → its berth container.
    pub containers: BTreeMap<String, Info>,
    /// "web.service" → "web.container".
    pub services: BTreeMap<String, String>,
    /// "back.network" → berth network name.
    pub networks: BTreeMap<String, String>,
    /// "data.volume" → berth volume name and whether mounts of it copy the image's content.
    pub volumes: BTreeMap<String, resources::VolumeInfo>,
    /// podman volumes named in `Volume=`/`Mount=` without a `.volume` unit: berth name →
    /// podman name, where first named.
    pub implicit_volumes: BTreeMap<String, (String, String, At)>,
    /// podman secret name → berth name, where first named.
    pub secrets: BTreeMap<String, (String, String, At)>,
    pub images: Vec<Table>,
    /// berth container name → containers whose `Before=` names it, with a note each.
    pub before: BTreeMap<String, Vec<(Info, String)>>,
    /// Subnets written so far (given or chosen), so that chosen ones do not overlap.
    taken: Vec<ipnet::Ipv4Net>,
}

impl Tx<'_> {
    /// A free /24 of the pool (its first one skipped, as podman leaves it to its default
    /// network).
    pub(crate) fn next_subnet(&mut self) -> Option<ipnet::Ipv4Net> {
        let net = self
            .options
            .subnet_pool
            .subnets(24)
            .ok()?
            .skip(1)
            .find(|n| !self.taken.iter().any(|t| t.contains(n) || n.contains(t)))?;
        self.taken.push(net);
        Some(net)
    }

    pub(crate) fn drop(&mut self, u: &Parsed, key: &str, at: At, reason: impl Into<String>) {
        self.dropped.push(Dropped {
            scope: u.shown.clone(),
            key: key.to_string(),
            at: at.pos(),
            reason: reason.into(),
            file: Some(u.file_of(at)),
        });
    }

    /// `value` after systemd's substitutions, or None (reported).
    pub(crate) fn expand(&mut self, u: &Parsed, key: &str, at: At, value: &str) -> Option<String> {
        match specifier::expand(value, &u.names) {
            Ok(v) => Some(v),
            Err(e) => {
                self.drop(u, key, at, e.to_string());
                None
            }
        }
    }

    /// The last value of a one-value key, substituted.
    pub(crate) fn one(&mut self, u: &Parsed, section: &str, key: &str) -> Option<(String, At)> {
        let e = u.unit.section(section)?.last(key)?;
        let shown = dotted(u, section, key);
        self.expand(u, &shown, e.at, &e.value).map(|v| (v, e.at))
    }

    /// Every value of a list key (since its last reset), each substituted.
    pub(crate) fn each(&mut self, u: &Parsed, section: &str, key: &str) -> Vec<(String, At)> {
        let entries: Vec<unit::Entry> = u
            .unit
            .section(section)
            .map(|s| s.all(key).into_iter().cloned().collect())
            .unwrap_or_default();
        let shown = dotted(u, section, key);
        entries
            .into_iter()
            .filter_map(|e| self.expand(u, &shown, e.at, &e.value).map(|v| (v, e.at)))
            .collect()
    }

    /// Every word of every value of a list key, each substituted.
    pub(crate) fn words(
        &mut self,
        u: &Parsed,
        section: &str,
        key: &str,
        how: Split,
    ) -> Vec<(String, At)> {
        let entries: Vec<unit::Entry> = u
            .unit
            .section(section)
            .map(|s| s.all(key).into_iter().cloned().collect())
            .unwrap_or_default();
        let shown = dotted(u, section, key);
        let mut out = Vec::new();
        for e in entries {
            for w in self
                .split(u, &shown, e.at, &e.value, how)
                .unwrap_or_default()
            {
                if let Some(v) = self.expand(u, &shown, e.at, &w) {
                    out.push((v, e.at));
                }
            }
        }
        out
    }

    /// `value` cut into words, or None (reported).
    pub(crate) fn split(
        &mut self,
        u: &Parsed,
        key: &str,
        at: At,
        value: &str,
        how: Split,
    ) -> Option<Vec<String>> {
        match unit::split(value, how) {
            Ok(w) => Some(w),
            Err(e) => {
                self.drop(u, key, at, e.to_string());
                None
            }
        }
    }

    /// A path from the unit (relative to its directory) as written: relative to the output
    /// directory, absolute ones kept.
    pub(crate) fn relative_out(&self, u: &Parsed, path: &str) -> String {
        if path.starts_with('/') {
            return path.to_string();
        }
        let dir = u.path.parent().unwrap_or(Path::new("/"));
        let abs = values::normal(&dir.join(path));
        values::relative(self.out_dir, &abs).display().to_string()
    }
}

/// A key as reported: bare for the unit's own section, `Section.Key` otherwise.
pub(crate) fn dotted(u: &Parsed, section: &str, key: &str) -> String {
    if section == u.kind.section() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

fn read(path: &Path) -> Result<String, ImportError> {
    std::fs::read_to_string(path).map_err(|error| ImportError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// The unit files under `dir` (subdirectories included, as Quadlet searches them), sorted;
/// `shown` relative to `dir`.
fn walk(
    dir: &Path,
    rel: &Path,
    depth: usize,
    found: &mut Vec<(PathBuf, String)>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), ImportError> {
    let read_err = |error| ImportError::Read {
        path: dir.to_path_buf(),
        error,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let shown = rel.join(&name).display().to_string();
        if path.is_dir() {
            // Drop-in directories are read with the units they extend.
            if !name.ends_with(".d") && depth < 8 {
                walk(&path, &rel.join(&name), depth + 1, found, skipped)?;
            }
            continue;
        }
        let ext = Path::new(&name)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        match ext {
            "container" | "network" | "volume" => found.push((path, shown)),
            "kube" | "pod" | "image" | "build" => skipped.push(Skipped {
                shown,
                reason: format!(
                    "`.{ext}` units are not imported (containers, networks and volumes are)"
                ),
            }),
            _ => {}
        }
    }
    Ok(())
}

/// A unit's drop-ins (`*.conf`) as Quadlet finds them: in `KIND.d/` (every unit of the
/// kind), `PREFIX-.KIND.d/` for each `-`-separated prefix of its name, then `NAME.KIND.d/`,
/// under the directory argument and the unit's own directory; a file name seen again in a
/// more specific place replaces the earlier one; applied in file-name order.
fn dropins(
    unit: &Path,
    root: Option<&Path>,
    file_name: &str,
) -> Result<Vec<(PathBuf, String)>, ImportError> {
    let Some((stem, ext)) = file_name.rsplit_once('.') else {
        return Ok(Vec::new());
    };
    let mut names = vec![format!("{ext}.d")];
    let parts: Vec<&str> = stem.split('-').collect();
    for i in 1..parts.len() {
        names.push(format!("{}-.{ext}.d", parts[..i].join("-")));
    }
    names.push(format!("{file_name}.d"));
    let own = unit.parent().unwrap_or(Path::new("."));
    let mut dirs: Vec<&Path> = root.into_iter().collect();
    if !dirs.contains(&own) {
        dirs.push(own);
    }
    let mut chosen: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    for dir in dirs {
        for name in &names {
            let d = dir.join(name);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries {
                let entry = entry.map_err(|error| ImportError::Read {
                    path: d.clone(),
                    error,
                })?;
                let conf = entry.file_name().to_string_lossy().into_owned();
                if !conf.ends_with(".conf") || !entry.path().is_file() {
                    continue;
                }
                let path = entry.path();
                let shown = match root {
                    Some(r) => path.strip_prefix(r).unwrap_or(&path).display().to_string(),
                    None => path.display().to_string(),
                };
                chosen.insert(conf, (path, shown));
            }
        }
    }
    Ok(chosen.into_values().collect())
}

/// Read the units at `paths` (files or directories) and translate them; `out_dir` is where
/// the files will be written (paths in them are relative to it).
pub fn quadlet(
    paths: &[PathBuf],
    out_dir: &Path,
    options: &QuadletOptions,
) -> Result<Import, ImportError> {
    let absolute = |p: &Path| values::normal(&std::path::absolute(p).unwrap_or_else(|_| p.into()));
    let out_dir = absolute(out_dir);
    // Each unit with the directory argument it was found under (drop-ins are searched
    // there too), or none for a unit named on its own.
    let mut found: Vec<(PathBuf, String, Option<PathBuf>)> = Vec::new();
    let mut skipped = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut here = Vec::new();
            walk(p, Path::new(""), 0, &mut here, &mut skipped)?;
            found.extend(here.into_iter().map(|(f, s)| (f, s, Some(p.clone()))));
        } else {
            found.push((p.clone(), p.display().to_string(), None));
        }
    }
    let mut units: Vec<Parsed> = Vec::new();
    for (path, shown, root) in found {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(kind) = Kind::of(&file_name) else {
            skipped.push(Skipped {
                shown,
                reason: "not a .container, .network or .volume unit".into(),
            });
            continue;
        };
        if units.iter().any(|u| u.file_name == file_name) {
            skipped.push(Skipped {
                shown,
                reason: format!(
                    "a unit named {file_name} was already read (Quadlet uses the first)"
                ),
            });
            continue;
        }
        let stem = file_name
            .rsplit_once('.')
            .map_or(file_name.as_str(), |(s, _)| s)
            .to_string();
        if stem.contains('@') {
            skipped.push(Skipped {
                shown,
                reason: "template units are instantiated by systemd: import a copy per instance"
                    .into(),
            });
            continue;
        }
        let text = read(&path)?;
        let mut unit = unit::parse(&text).map_err(|(at, error)| ImportError::Unit {
            path: path.clone(),
            at: at.pos(),
            error,
        })?;
        let mut sources = vec![shown.clone()];
        for (dropin, dropin_shown) in dropins(&path, root.as_deref(), &file_name)? {
            let text = read(&dropin)?;
            let parsed = unit::parse(&text).map_err(|(at, error)| ImportError::Unit {
                path: dropin.clone(),
                at: at.pos(),
                error,
            })?;
            unit.merge(parsed, sources.len());
            sources.push(dropin_shown);
        }
        let service = unit
            .section(kind.section())
            .and_then(|s| s.last("ServiceName"))
            .map(|e| e.value)
            .unwrap_or_else(|| match kind {
                Kind::Container => stem.clone(),
                Kind::Network => format!("{stem}-network"),
                Kind::Volume => format!("{stem}-volume"),
            });
        units.push(Parsed {
            shown,
            path: absolute(&path),
            file_name,
            stem,
            kind,
            unit,
            sources,
            names: UnitNames { service },
        });
    }
    if units.is_empty() && skipped.is_empty() {
        return Err(ImportError::NoUnits {
            paths: paths.iter().map(|p| p.display().to_string()).collect(),
        });
    }
    let mut tx = Tx {
        out_dir: &out_dir,
        options,
        dropped: Vec::new(),
        containers: BTreeMap::new(),
        services: BTreeMap::new(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        implicit_volumes: BTreeMap::new(),
        secrets: BTreeMap::new(),
        images: Vec::new(),
        before: BTreeMap::new(),
        taken: units
            .iter()
            .filter(|u| u.kind == Kind::Network)
            .filter_map(|u| u.unit.section("Network"))
            .flat_map(|s| s.all("Subnet"))
            .filter_map(|e| e.value.parse().ok())
            .collect(),
    };
    for s in &skipped {
        tx.dropped.push(Dropped {
            scope: s.shown.clone(),
            key: String::new(),
            at: At::START.pos(),
            reason: s.reason.clone(),
            file: Some(s.shown.clone()),
        });
    }
    // Names first, so that references resolve whatever the order of the files.
    for u in &units {
        match u.kind {
            Kind::Network => resources::name_network(&mut tx, u),
            Kind::Volume => resources::name_volume(&mut tx, u),
            Kind::Container => container::name(&mut tx, u),
        }
    }
    for u in units.iter().filter(|u| u.kind == Kind::Container) {
        service::collect_before(&mut tx, u);
    }
    let mut network_tables = Vec::new();
    let mut volume_tables = Vec::new();
    let mut container_tables: Vec<(String, Table)> = Vec::new();
    for u in &units {
        match u.kind {
            Kind::Network => network_tables.extend(resources::network(&mut tx, u)),
            Kind::Volume => volume_tables.extend(resources::volume(&mut tx, u)),
            Kind::Container => {
                if let Some(t) = container::translate(&mut tx, u) {
                    container_tables.push(t);
                }
            }
        }
    }
    volume_tables.extend(resources::implicit_volumes(&tx));
    let secret_tables = resources::secrets(&mut tx);
    let header = |what: &str, from: &str| {
        vec![
            format!("{what}, imported from {from} by `berth import quadlet`."),
            "Lines marked \"translated from\" differ from the Quadlet spelling.".to_string(),
        ]
    };
    let mut files = Vec::new();
    let images = std::mem::take(&mut tx.images);
    for (kind, tables) in [
        ("images", &images),
        ("networks", &network_tables),
        ("volumes", &volume_tables),
        ("secrets", &secret_tables),
    ] {
        if !tables.is_empty() {
            files.push((
                format!("00-{kind}.toml"),
                toml_out::file(&header(&format!("The {kind}"), "the Quadlet units"), tables),
            ));
        }
    }
    let total = units.iter().filter(|u| u.kind == Kind::Container).count();
    let imported = container_tables.len();
    for (name, table) in container_tables {
        let file = format!("{name}.toml");
        if files.iter().any(|(f, _)| *f == file) {
            return Err(ImportError::UnitClash {
                kind: "container",
                name,
                file,
            });
        }
        let from = tx
            .containers
            .values()
            .find(|c| c.name == name)
            .map(|c| c.shown.clone())
            .unwrap_or_default();
        files.push((
            file,
            toml_out::file(&header(&format!("Container {name}"), &from), &[table]),
        ));
    }
    let mut dropped = tx.dropped;
    dropped.sort_by(|a, b| a.scope.cmp(&b.scope).then(a.at.cmp(&b.at)));
    let source = paths.first().cloned().unwrap_or_default();
    Ok(Import {
        source,
        files,
        dropped,
        services: imported,
        services_total: total,
    })
}

/// A boolean as systemd reads one.
pub(crate) fn boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// A systemd time span ("90", "1min 30s", "500ms") in berth's spelling; a bare number is
/// seconds.
pub(crate) fn timespan(text: &str) -> Option<String> {
    let t = text.trim();
    let t = if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        format!("{t}s")
    } else {
        t.to_string()
    };
    values::duration(&t)
}

/// A name usable for berth, or None (reported by the caller).
pub(crate) fn berth_name(text: &str) -> Option<String> {
    values::name(text)
}

/// Things several translations share.
pub(crate) fn renamed(from: &str, to: &str) -> Vec<String> {
    if from == to {
        Vec::new()
    } else {
        vec![format!(
            "translated from `{from}` (berth names are lowercase letters, digits and `-`)"
        )]
    }
}

pub(crate) fn from(key: &str) -> Vec<String> {
    vec![format!("translated from {key}")]
}
