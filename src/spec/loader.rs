//! Reads a directory of `*.toml` files into raw entries: syntax, sections, names, duplicate
//! names and per-entry deserialization. Every problem becomes a [`Diagnostic`]; a broken entry
//! is left out but remembered as declared, so that [`super::resolve`] can tell "unknown" from
//! "declared but broken".

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diag::{Code, Diagnostic, Location, SourceFile};
use super::name::Name;
use super::raw::{RawConfig, RawContainer, RawImage, RawNetwork, RawSecret, RawVolume};
use super::value::{Hint, split_help};

/// Files larger than this are refused: desired state is configuration, not data.
const MAX_FILE_SIZE: u64 = 8 << 20;

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
fn is_desired_file_name(name: &str) -> bool {
    name.ends_with(".toml") && !name.starts_with('.') && name.len() > ".toml".len()
}

/// The desired-state files of a directory, sorted by name, with the problems met reading them.
///
/// The directory is opened once (it may be a symlink that git-sync swaps: this pass reads one
/// target, whole) and every file is resolved beneath it with `openat2(RESOLVE_BENEATH)`, so a
/// link may lead within the directory (config maps' `x.toml -> ..data/x.toml`) but never out
/// of it. Anything that is not a regular file — a FIFO, socket, device or directory — is a
/// problem and is never opened for reading: opening a FIFO blocks, opening a device can act.
/// Subdirectories are not descended into.
pub(crate) fn read_dir(dir: &Path) -> Result<(Vec<InputFile>, Vec<Diagnostic>), LoadError> {
    let dir_error = |e: rustix::io::Errno| LoadError::Directory {
        path: dir.into(),
        source: e.into(),
    };
    let dirfd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOTDIR => LoadError::NotADirectory { path: dir.into() },
        e => dir_error(e),
    })?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&dirfd).map_err(dir_error)? {
        let entry = entry.map_err(dir_error)?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if is_desired_file_name(name) {
            names.push(name.to_string());
        }
    }
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    let mut diagnostics = Vec::new();
    for name in names {
        let path = dir.join(&name);
        match read_file(&dirfd, &name, &path) {
            Ok(Some(text)) => files.push(InputFile { path, text }),
            Ok(None) => {}
            Err(d) => diagnostics.push(*d),
        }
    }
    Ok((files, diagnostics))
}

/// Read one listed file, `name` in `dir`, displayed as `path`. `Ok(None)`: it is gone.
fn read_file(dir: &impl AsFd, name: &str, path: &Path) -> Result<Option<String>, Box<Diagnostic>> {
    use std::io::Read;
    let io = |e: std::io::Error| {
        Box::new(
            Diagnostic::for_file(Code::Io, path, format!("cannot read file: {e}")).with_help(
                "check the file's permissions; berth needs to read every *.toml file in the directory",
            ),
        )
    };
    let not_read = |message: String, help: &str| {
        Err(Box::new(
            Diagnostic::for_file(Code::Io, path, message).with_help(help),
        ))
    };
    // O_PATH opens nothing: no FIFO blocks, no device driver runs, no permission is needed.
    let handle = match open_beneath(dir, name) {
        Ok(fd) => fd,
        // Removed between listing and reading (a writer renaming files, a config map swap),
        // or a link to nothing: not part of this pass.
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::XDEV) => {
            return not_read(
                format!(
                    "`{name}` points outside the directory (a symbolic link to an absolute path or up through `..`); it was not read"
                ),
                "copy the file into the directory, or link to a file inside it (as config maps do with `..data/NAME.toml`)",
            );
        }
        Err(rustix::io::Errno::LOOP) => {
            return not_read(
                format!(
                    "`{name}` is a symbolic link that loops or leads through /proc; it was not read"
                ),
                "make it a regular file, or a link to a regular file inside the directory",
            );
        }
        Err(e) => return Err(io(e.into())),
    };
    let stat = rustix::fs::fstat(&handle).map_err(|e| io(e.into()))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return not_read(
            format!(
                "`{name}` is {}, not a regular file; it was not read",
                describe(kind)
            ),
            "desired-state files must be regular files: remove it, replace it with a regular file, or rename it so that its name does not end in `.toml`",
        );
    }
    // Reopen that very inode (not the name again, which a writer could have swapped for a
    // FIFO meanwhile); non-blocking and without taking a terminal, should that ever fail.
    let file = rustix::fs::open(
        format!("/proc/self/fd/{}", handle.as_fd().as_raw_fd()),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    let reopened = rustix::fs::fstat(&file).map_err(|e| io(e.into()))?;
    if (reopened.st_dev, reopened.st_ino) != (stat.st_dev, stat.st_ino)
        || FileType::from_raw_mode(reopened.st_mode) != FileType::RegularFile
    {
        return Err(io(std::io::Error::other(
            "the file changed while it was opened",
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(file)
        .take(MAX_FILE_SIZE + 1)
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

/// `name` opened as a path only (`O_PATH`: nothing is read, no FIFO blocks, no driver runs),
/// resolved beneath `dir`: a symlink to an absolute path or up through `..` fails with EXDEV.
fn open_beneath(dir: &impl AsFd, name: &str) -> rustix::io::Result<OwnedFd> {
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(
            dir,
            name,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            // A rename elsewhere on the host while `..` was resolved: retry (openat2(2)).
            Err(rustix::io::Errno::AGAIN) if attempts < 64 => attempts += 1,
            result => return result,
        }
    }
}

/// What a non-regular file is, for messages.
fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Fifo => "a FIFO (named pipe)",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::RegularFile => "a regular file",
        FileType::Unknown => "of an unknown type",
    }
}

/// An entry that deserialized, with where it came from.
#[derive(Debug)]
pub(crate) struct Entry<T> {
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
    pub(crate) fn tainted(&self) -> bool {
        !self.dropped_keys.is_empty()
    }
}

impl<T> Entry<T> {
    pub(crate) fn location(&self) -> Location {
        Location::new(&self.source, self.key_span.clone())
    }

    pub(crate) fn diag(
        &self,
        code: Code,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(code, &self.source, span, message)
    }
}

/// What the loader found: good entries per kind, every name declared (good or broken), and the
/// problems.
#[derive(Debug, Default)]
pub(crate) struct RawSet {
    pub images: BTreeMap<Name, Entry<RawImage>>,
    pub containers: BTreeMap<Name, Entry<RawContainer>>,
    pub volumes: BTreeMap<Name, Entry<RawVolume>>,
    pub networks: BTreeMap<Name, Entry<RawNetwork>>,
    pub secrets: BTreeMap<Name, Entry<RawSecret>>,
    pub configs: BTreeMap<Name, Entry<RawConfig>>,
    /// Names declared per kind, including broken and duplicated entries.
    pub declared: BTreeMap<Kind, BTreeMap<String, Location>>,
    /// Files that could not be parsed at all; their names are unknown.
    pub unparsed_files: Vec<PathBuf>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Image,
    Container,
    Volume,
    Network,
    Secret,
    Config,
}

impl Kind {
    pub(crate) const ALL: [Kind; 6] = [
        Kind::Image,
        Kind::Container,
        Kind::Volume,
        Kind::Network,
        Kind::Secret,
        Kind::Config,
    ];

    pub(crate) fn section(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::Container => "container",
            Kind::Volume => "volume",
            Kind::Network => "network",
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }

    fn from_section(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.section() == s)
    }
}

/// Load files (already read) into a [`RawSet`]. Files are processed in path order so that
/// "first defined here" notes do not depend on directory listing order.
pub(crate) fn load_files(files: Vec<InputFile>) -> RawSet {
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
                Kind::Secret => drop(set.secrets.remove(name.as_str())),
                Kind::Config => drop(set.configs.remove(name.as_str())),
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
        Kind::Secret => parse_entry(site, value, set, reparse, |s| &mut s.secrets),
        Kind::Config => parse_entry(site, value, set, reparse, |s| &mut s.configs),
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
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
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

    /// `read_dir` on a thread with a deadline: a FIFO opened for reading would block it
    /// forever, which must fail the test rather than hang it.
    fn read_bounded(dir: &Path) -> (Vec<InputFile>, Vec<Diagnostic>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = dir.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(read_dir(&dir).map_err(|e| e.to_string()));
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("read_dir did not return within 10 s: it opened something that blocks")
            .expect("read_dir")
    }

    fn names(files: &[InputFile]) -> Vec<String> {
        files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    /// The one problem reported for `name`, as its plain rendering.
    fn problem(diagnostics: &[Diagnostic], name: &str) -> String {
        let found: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.location.file.file_name() == Some(name.as_ref()))
            .map(|d| d.to_string())
            .collect();
        assert_eq!(found.len(), 1, "problems for {name}: {diagnostics:#?}");
        found[0].clone()
    }

    const GOOD: &str = "[container.good]\nimage = \"oci-archive:/x.tar\"\n";

    #[test]
    fn non_regular_files_are_problems_and_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("good.toml"), GOOD).unwrap();
        let mode = Mode::from_raw_mode(0o644);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("fifo.toml"),
            FileType::Fifo,
            mode,
            0,
        )
        .unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(d.join("sock.toml")).unwrap();
        std::fs::create_dir(d.join("dir.toml")).unwrap();
        // A character device inside the directory (the same as /dev/null) needs CAP_MKNOD.
        let device = rustix::fs::mknodat(
            rustix::fs::CWD,
            d.join("null.toml"),
            FileType::CharacterDevice,
            mode,
            rustix::fs::makedev(1, 3),
        );
        let (files, diagnostics) = read_bounded(d);
        assert_eq!(names(&files), ["good.toml"]);
        for (name, what) in [
            ("fifo.toml", "is a FIFO (named pipe), not a regular file"),
            ("sock.toml", "is a socket, not a regular file"),
            ("dir.toml", "is a directory, not a regular file"),
        ] {
            let p = problem(&diagnostics, name);
            assert!(
                p.contains(&format!("{name}:1:1: error[io]: `{name}` {what}")),
                "{p}"
            );
            assert!(
                p.contains("help: desired-state files must be regular files"),
                "{p}"
            );
        }
        match device {
            Ok(()) => {
                let p = problem(&diagnostics, "null.toml");
                assert!(
                    p.contains("is a character device, not a regular file"),
                    "{p}"
                );
            }
            Err(e) => eprintln!("no device node without CAP_MKNOD ({e}); not checked"),
        }
        // A problem is a problem: nothing may be pruned, the valid file still applies.
        let loaded = crate::spec::load_dir(d).unwrap();
        assert!(!loaded.is_complete());
        assert!(loaded.desired.containers.contains_key("good"));
    }

    #[test]
    fn links_out_of_the_directory_are_refused_unread() {
        let base = tempfile::tempdir().unwrap();
        let d = base.path().join("desired");
        std::fs::create_dir(&d).unwrap();
        // Would be echoed by a syntax error if it were read.
        let secret = base.path().join("secret");
        std::fs::write(&secret, "root:SECRET-HASH:19000:0:99999:7:::\n").unwrap();
        std::os::unix::fs::symlink(&secret, d.join("absolute.toml")).unwrap();
        std::os::unix::fs::symlink("../secret", d.join("relative.toml")).unwrap();
        std::os::unix::fs::symlink("/dev/null", d.join("devnull.toml")).unwrap();
        std::os::unix::fs::symlink("loop.toml", d.join("loop.toml")).unwrap();
        let (files, diagnostics) = read_bounded(&d);
        assert!(files.is_empty(), "{:?}", names(&files));
        for name in ["absolute.toml", "relative.toml", "devnull.toml"] {
            let p = problem(&diagnostics, name);
            assert!(
                p.contains(&format!("`{name}` points outside the directory")),
                "{p}"
            );
            assert!(!p.contains("SECRET"), "{p}");
        }
        let p = problem(&diagnostics, "loop.toml");
        assert!(p.contains("is a symbolic link that loops"), "{p}");
        let loaded = crate::spec::load_dir(&d).unwrap();
        assert!(!loaded.is_complete());
        assert!(!format!("{:?}", loaded.diagnostics).contains("SECRET"));
    }

    #[test]
    fn links_within_the_directory_and_a_linked_directory_work() {
        let base = tempfile::tempdir().unwrap();
        // A Kubernetes config map: x.toml -> ..data/x.toml, ..data -> ..2024_01_01_01.
        let d = base.path().join("rev1");
        std::fs::create_dir_all(d.join("..2024_01_01_01")).unwrap();
        std::fs::write(d.join("..2024_01_01_01/good.toml"), GOOD).unwrap();
        std::os::unix::fs::symlink("..2024_01_01_01", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/good.toml", d.join("good.toml")).unwrap();
        // git-sync: the directory itself is a symlink.
        let current = base.path().join("current");
        std::os::unix::fs::symlink("rev1", &current).unwrap();
        let (files, diagnostics) = read_bounded(&current);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        assert_eq!(names(&files), ["good.toml"]);
        assert_eq!(files[0].path, current.join("good.toml"));
        assert_eq!(files[0].text, GOOD);
    }

    #[test]
    fn regular_files_keep_their_rules() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("b.toml"), GOOD).unwrap();
        std::fs::write(d.join("a.toml"), "").unwrap();
        std::fs::write(d.join(".hidden.toml"), "not toml [").unwrap();
        std::fs::write(d.join("b.toml~"), "not toml [").unwrap();
        std::fs::write(d.join("latin1.toml"), b"# caf\xe9\n").unwrap();
        let big = vec![b'#'; usize::try_from(MAX_FILE_SIZE).unwrap() + 1];
        std::fs::write(d.join("big.toml"), big).unwrap();
        let (files, diagnostics) = read_bounded(d);
        assert_eq!(names(&files), ["a.toml", "b.toml"]);
        assert_eq!(files[1].text, GOOD);
        assert!(problem(&diagnostics, "big.toml").contains("larger than 8388608 bytes"));
        assert!(problem(&diagnostics, "latin1.toml").contains("not valid UTF-8 (byte 5)"));
        assert_eq!(diagnostics.len(), 2);
    }

    #[test]
    fn the_directory_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            read_dir(&file),
            Err(LoadError::NotADirectory { .. })
        ));
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(matches!(
                read_dir(&fifo),
                Err(LoadError::NotADirectory { .. })
            ));
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .expect("hung")
        );
        assert!(matches!(
            read_dir(&dir.path().join("missing")),
            Err(LoadError::Directory { .. })
        ));
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
