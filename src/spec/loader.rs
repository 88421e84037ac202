//! Reads a directory of `*.toml` files into raw entries: syntax, sections, names, duplicate
//! names and per-entry deserialization. Every problem becomes a [`Diagnostic`]; a broken entry
//! is left out but remembered as declared, so that [`super::resolve`] can tell "unknown" from
//! "declared but broken".

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diag::{Code, Diagnostic, Location, SourceFile};
use super::name::Name;
use super::raw::{RawContainer, RawImage, RawNetwork, RawVolume};
use super::value::{Hint, split_help};

/// Files larger than this are refused: desired state is configuration, not data.
pub const MAX_FILE_SIZE: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read desired-state directory {}: {source}", path.display())]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
}

/// One desired-state file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    pub text: String,
}

/// Whether a directory entry is a desired-state file: `*.toml`, not hidden. Editor backups
/// (`x.toml~`, `#x.toml#`, `.x.toml.swp`) and hidden files (`.#x.toml` locks, git-sync's
/// `..data` links) never match.
pub fn is_desired_file_name(name: &str) -> bool {
    name.ends_with(".toml") && !name.starts_with('.') && name.len() > ".toml".len()
}

/// The desired-state files of a directory, sorted by name, with the problems met reading them.
/// Symbolic links are followed, so a directory swapped by symlink (git-sync, config maps)
/// reads as its target. Subdirectories are not descended into.
pub fn read_dir(dir: &Path) -> Result<(Vec<InputFile>, Vec<Diagnostic>), LoadError> {
    let meta = std::fs::metadata(dir).map_err(|source| LoadError::Directory {
        path: dir.into(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(LoadError::NotADirectory { path: dir.into() });
    }
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Directory {
        path: dir.into(),
        source,
    })?;
    let mut paths = Vec::new();
    let mut diagnostics = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Directory {
            path: dir.into(),
            source,
        })?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        if is_desired_file_name(name) {
            paths.push(entry.path());
        }
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        match read_file(&path) {
            Ok(Some(text)) => files.push(InputFile { path, text }),
            Ok(None) => {}
            Err(d) => diagnostics.push(*d),
        }
    }
    Ok((files, diagnostics))
}

fn read_file(path: &Path) -> Result<Option<String>, Box<Diagnostic>> {
    use std::io::Read;
    let io = |e: std::io::Error| {
        Box::new(
            Diagnostic::for_file(Code::Io, path, format!("cannot read file: {e}")).with_help(
                "check the file's permissions; berth needs to read every *.toml file in the directory",
            ),
        )
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        // Removed between listing and reading (a writer renaming files): not part of this pass.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if !file.metadata().map_err(io)?.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(Box::new(
            Diagnostic::for_file(
                Code::Io,
                path,
                format!(
                    "file is larger than {MAX_FILE_SIZE} bytes, the limit for a desired-state file"
                ),
            )
            .with_help("split the resources over several files"),
        ));
    }
    String::from_utf8(bytes).map(Some).map_err(|e| {
        Box::new(
            Diagnostic::for_file(
                Code::Syntax,
                path,
                format!(
                    "file is not valid UTF-8 (byte {})",
                    e.utf8_error().valid_up_to()
                ),
            )
            .with_help("TOML files must be UTF-8 encoded"),
        )
    })
}

/// An entry that deserialized, with where it came from.
#[derive(Debug)]
pub struct Entry<T> {
    pub name: Name,
    pub raw: T,
    pub source: Arc<SourceFile>,
    /// The span of the entry's name (the key).
    pub key_span: Range<usize>,
    /// Keys that failed to deserialize and were dropped (already reported): the rest is
    /// still checked, so every problem is reported at once, but the entry is never applied.
    pub dropped_keys: BTreeSet<String>,
}

impl<T> Entry<T> {
    /// Whether any key was dropped: such an entry is checked but never applied.
    pub fn tainted(&self) -> bool {
        !self.dropped_keys.is_empty()
    }
}

impl<T> Entry<T> {
    pub fn location(&self) -> Location {
        Location::new(&self.source, self.key_span.clone())
    }

    pub fn diag(&self, code: Code, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, &self.source, span, message)
    }
}

/// What the loader found: good entries per kind, every name declared (good or broken), and the
/// problems.
#[derive(Debug, Default)]
pub struct RawSet {
    pub images: BTreeMap<Name, Entry<RawImage>>,
    pub containers: BTreeMap<Name, Entry<RawContainer>>,
    pub volumes: BTreeMap<Name, Entry<RawVolume>>,
    pub networks: BTreeMap<Name, Entry<RawNetwork>>,
    /// Names declared per kind, including broken and duplicated entries.
    pub declared: BTreeMap<Kind, BTreeMap<String, Location>>,
    /// Files that could not be parsed at all; their names are unknown.
    pub unparsed_files: Vec<PathBuf>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Image,
    Container,
    Volume,
    Network,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Image, Kind::Container, Kind::Volume, Kind::Network];

    pub fn section(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Container => "container",
            Kind::Volume => "volume",
            Kind::Network => "network",
        }
    }

    fn from_section(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.section() == s)
    }
}

/// Load files (already read) into a [`RawSet`]. Files are processed in path order so that
/// "first defined here" notes do not depend on directory listing order.
pub fn load_files(files: Vec<InputFile>) -> RawSet {
    let mut sorted = files;
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut set = RawSet::default();
    // Names seen in more than one place are removed from the good entries after all files.
    let mut duplicated: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    for file in sorted {
        let source = SourceFile::new(file.path, file.text);
        load_file(&source, &mut set, &mut duplicated);
    }
    for (kind, names) in duplicated {
        for name in names {
            match kind {
                Kind::Image => drop(set.images.remove(name.as_str())),
                Kind::Container => drop(set.containers.remove(name.as_str())),
                Kind::Volume => drop(set.volumes.remove(name.as_str())),
                Kind::Network => drop(set.networks.remove(name.as_str())),
            }
        }
    }
    set
}

fn load_file(
    source: &Arc<SourceFile>,
    set: &mut RawSet,
    duplicated: &mut BTreeMap<Kind, Vec<String>>,
) {
    let mut reparse = Reparse {
        text: &source.text,
        root: None,
    };
    let root = match DeTable::parse(&source.text) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            set.diagnostics.push(
                Diagnostic::new(Code::Syntax, source, span, format!("TOML syntax error: {}", e.message().trim_end()))
                    .with_help("fix the TOML syntax; nothing in this file is applied until it parses, and nothing is pruned meanwhile"),
            );
            set.unparsed_files.push(source.path.clone());
            return;
        }
    };
    for (section_key, section_value) in root.into_inner() {
        let Some(kind) = Kind::from_section(section_key.get_ref()) else {
            let help = match suggest(section_key.get_ref(), Kind::ALL.iter().map(|k| k.section())) {
                Some(s) => format!(
                    "did you mean `[{s}.…]`? sections are [image.NAME], [container.NAME], [volume.NAME], [network.NAME]"
                ),
                None => {
                    "sections are [image.NAME], [container.NAME], [volume.NAME], [network.NAME]"
                        .into()
                }
            };
            set.diagnostics.push(
                Diagnostic::new(
                    Code::UnknownSection,
                    source,
                    section_key.span(),
                    format!("unknown section `{}`", section_key.get_ref()),
                )
                .with_help(help),
            );
            continue;
        };
        let section_span = section_value.span();
        let DeValue::Table(entries) = section_value.into_inner() else {
            set.diagnostics.push(
                Diagnostic::new(
                    Code::InvalidType,
                    source,
                    section_span,
                    format!(
                        "`{}` must be a table of named {}s",
                        kind.section(),
                        kind.section()
                    ),
                )
                .with_help(format!(
                    "write `[{}.NAME]` followed by its keys",
                    kind.section()
                )),
            );
            continue;
        };
        for (key, value) in entries {
            load_entry(source, kind, key, value, set, duplicated, &mut reparse);
        }
    }
}

fn load_entry<'i>(
    source: &Arc<SourceFile>,
    kind: Kind,
    key: toml::Spanned<toml::de::DeString<'i>>,
    value: toml::Spanned<DeValue<'i>>,
    set: &mut RawSet,
    duplicated: &mut BTreeMap<Kind, Vec<String>>,
    reparse: &mut Reparse<'i>,
) {
    let key_span = key.span();
    let raw_name = key.get_ref().to_string();
    let here = Location::new(source, key_span.clone());
    let declared = set.declared.entry(kind).or_default();
    if let Some(first) = declared.get(&raw_name) {
        set.diagnostics.push(
            Diagnostic::new(Code::DuplicateName, source, key_span.clone(), format!("{} `{raw_name}` is defined twice", kind.section()))
                .with_help(format!("names are global across files: keep one `[{}.{raw_name}]` and rename or remove the others; none is applied until then", kind.section()))
                .with_related(first.clone(), "first defined here"),
        );
        duplicated.entry(kind).or_default().push(raw_name);
        return;
    }
    declared.insert(raw_name.clone(), here);

    let name = match raw_name.parse::<Name>() {
        Ok(n) => n,
        Err(e) => {
            let mut d = Diagnostic::new(
                Code::InvalidName,
                source,
                key_span,
                format!("invalid {} name: {e}", kind.section()),
            );
            if let Some(h) = e.help() {
                d = d.with_help(h);
            }
            set.diagnostics.push(d);
            return;
        }
    };
    if !matches!(value.get_ref(), DeValue::Table(_)) {
        set.diagnostics.push(
            Diagnostic::new(
                Code::InvalidType,
                source,
                value.span(),
                format!(
                    "{} `{name}` must be a table, found {}",
                    kind.section(),
                    value.get_ref().type_str()
                ),
            )
            .with_help(format!(
                "write `[{}.{name}]` on its own line and the keys below it",
                kind.section()
            )),
        );
        return;
    }
    let site = Site {
        source,
        kind,
        name,
        key_span,
        entry_span: value.span(),
    };
    match kind {
        Kind::Image => parse_entry(site, value, set, reparse, |s| &mut s.images),
        Kind::Container => parse_entry(site, value, set, reparse, |s| &mut s.containers),
        Kind::Volume => parse_entry(site, value, set, reparse, |s| &mut s.volumes),
        Kind::Network => parse_entry(site, value, set, reparse, |s| &mut s.networks),
    }
}

/// Where an entry stands: its file, kind, name, and the spans of its name and body.
struct Site<'a> {
    source: &'a Arc<SourceFile>,
    kind: Kind,
    name: Name,
    key_span: Range<usize>,
    entry_span: Range<usize>,
}

/// Deserialize one entry, reporting every bad key rather than only the first: after an error
/// the offending top-level key is removed and the entry deserialized again. What remains is
/// kept as a tainted entry, checked by the resolver but never applied.
fn parse_entry<'i, T: Deserialize<'i>>(
    site: Site<'_>,
    value: toml::Spanned<DeValue<'i>>,
    set: &mut RawSet,
    reparse: &mut Reparse<'i>,
    map: impl Fn(&mut RawSet) -> &mut BTreeMap<Name, Entry<T>>,
) {
    let Site {
        source,
        kind,
        name,
        key_span,
        entry_span,
    } = site;
    // The common case, a valid entry, costs one deserialization and no copy.
    let first_error = match T::deserialize(ValueDeserializer::from(value)) {
        Ok(raw) => {
            map(set).insert(
                name.clone(),
                Entry {
                    name,
                    raw,
                    source: Arc::clone(source),
                    key_span,
                    dropped_keys: BTreeSet::new(),
                },
            );
            return;
        }
        Err(e) => e,
    };
    // Recovery needs the entry again: take a copy from a second parse of the file.
    let Some(mut table) = reparse.entry(kind, &name) else {
        set.diagnostics.push(serde_diagnostic(
            source,
            kind,
            &name,
            &first_error,
            key_span,
            None,
        ));
        return;
    };
    let mut dropped = BTreeSet::new();
    let mut pending = Some(first_error);
    // Each round removes one key, so this ends; the bound only guards against surprises.
    for _ in 0..=table.len() {
        let result = match pending.take() {
            Some(e) => Err(e),
            None => T::deserialize(ValueDeserializer::from(toml::Spanned::new(
                entry_span.clone(),
                DeValue::Table(table.clone()),
            ))),
        };
        match result {
            Ok(raw) => {
                map(set).insert(
                    name.clone(),
                    Entry {
                        name,
                        raw,
                        source: Arc::clone(source),
                        key_span,
                        dropped_keys: dropped,
                    },
                );
                return;
            }
            Err(e) => {
                // The top-level key whose value holds the error, to name it and drop it.
                let culprit = e.span().and_then(|at| {
                    table
                        .iter()
                        .find(|(k, v)| {
                            let whole =
                                k.span().start.min(v.span().start)..k.span().end.max(v.span().end);
                            whole.start <= at.start && at.end <= whole.end
                        })
                        .map(|(k, _)| k.clone())
                });
                let culprit_name = culprit.as_ref().map(|k| k.get_ref().to_string());
                set.diagnostics.push(serde_diagnostic(
                    source,
                    kind,
                    &name,
                    &e,
                    key_span.clone(),
                    culprit_name.as_deref(),
                ));
                match culprit {
                    Some(k) => {
                        dropped.insert(k.get_ref().to_string());
                        table.remove(&k);
                    }
                    None => {
                        // Nothing to drop: keep the entry as declared-but-broken.
                        return;
                    }
                }
            }
        }
    }
}

/// A second parse of a file, made only when an entry needs error recovery.
struct Reparse<'i> {
    text: &'i str,
    root: Option<Option<DeTable<'i>>>,
}

impl<'i> Reparse<'i> {
    /// A copy of an entry's table.
    fn entry(&mut self, kind: Kind, name: &Name) -> Option<DeTable<'i>> {
        let text = self.text;
        let root = self
            .root
            .get_or_insert_with(|| DeTable::parse(text).ok().map(toml::Spanned::into_inner))
            .as_ref()?;
        let (_, section) = root.iter().find(|(k, _)| k.get_ref() == kind.section())?;
        let DeValue::Table(entries) = section.get_ref() else {
            return None;
        };
        let (_, entry) = entries.iter().find(|(k, _)| k.get_ref() == name.as_str())?;
        match entry.get_ref() {
            DeValue::Table(t) => Some(t.clone()),
            _ => None,
        }
    }
}

/// Turn a serde error into a diagnostic with a precise class and advice.
fn serde_diagnostic(
    source: &Arc<SourceFile>,
    kind: Kind,
    name: &Name,
    error: &toml::de::Error,
    key_span: Range<usize>,
    culprit: Option<&str>,
) -> Diagnostic {
    let (message, help) = split_help(error.message());
    let what = format!("{} `{name}`", kind.section());
    let span = error.span().unwrap_or_else(|| key_span.clone());
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let valid: Vec<&str> = expected
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        let help = match suggest(field, valid.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? valid keys here: {}", valid.join(", ")),
            None if valid.is_empty() => "remove this key".to_string(),
            None => format!("valid keys here: {}", valid.join(", ")),
        };
        return Diagnostic::new(
            Code::UnknownKey,
            source,
            span,
            format!("unknown key `{field}` in {what}"),
        )
        .with_help(help);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        // Required keys of an entry itself are checked by the resolver; serde reports
        // only those of nested tables (a mount table, a network attachment…).
        let message = match culprit {
            Some(key) => format!("{what}: `{key}` entry has no `{field}`, which is required"),
            None => format!("{what} has no `{field}`, which is required"),
        };
        return Diagnostic::new(Code::MissingKey, source, span, message).with_help(format!(
            "add `{field} = …`; `berth schema` describes every key"
        ));
    }
    if message.starts_with("invalid type") || message.starts_with("invalid length") {
        return Diagnostic::new(
            Code::InvalidType,
            source,
            span,
            format!("{what}: {message}"),
        )
        .with_help(help.map(str::to_string).unwrap_or_else(|| {
            "see `berth schema` or examples/desired-state for the expected form".into()
        }));
    }
    let mut d = Diagnostic::new(
        Code::InvalidValue,
        source,
        span,
        format!("{what}: {message}"),
    );
    if let Some(help) = help {
        d = d.with_help(help);
    } else if message.starts_with("unknown variant") {
        d = d.with_help("use one of the values listed");
    }
    d
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3) && *d < c.len().max(word.len()))
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_file_names() {
        for ok in ["web.toml", "00-base.toml", "a b.toml"] {
            assert!(is_desired_file_name(ok), "{ok}");
        }
        for skip in [
            ".web.toml",
            ".#web.toml",
            "web.toml~",
            "#web.toml#",
            "web.toml.swp",
            ".web.toml.swp",
            "web.toml.tmp",
            "web.TOML",
            ".toml",
            "..data",
            "web.yaml",
        ] {
            assert!(!is_desired_file_name(skip), "{skip}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("imag", ["image", "command"]), Some("image"));
        assert_eq!(
            suggest("containers", ["image", "container"]),
            Some("container")
        );
        assert_eq!(suggest("zzzzzz", ["image", "command"]), None);
    }
}
