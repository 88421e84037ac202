//! Diagnostics for desired-state files: every problem carries file, line, column, the
//! offending text and what to do about it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// The class of a problem; stable identifiers that scripts and tests can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    Io,
    Syntax,
    UnknownSection,
    UnknownKey,
    MissingKey,
    InvalidType,
    InvalidValue,
    InvalidName,
    DuplicateName,
    UnknownReference,
    DependencyCycle,
    PortConflict,
    SubnetOverlap,
    AddressConflict,
    MountConflict,
    Conflict,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "io",
            Code::Syntax => "syntax",
            Code::UnknownSection => "unknown-section",
            Code::UnknownKey => "unknown-key",
            Code::MissingKey => "missing-key",
            Code::InvalidType => "invalid-type",
            Code::InvalidValue => "invalid-value",
            Code::InvalidName => "invalid-name",
            Code::DuplicateName => "duplicate-name",
            Code::UnknownReference => "unknown-reference",
            Code::DependencyCycle => "dependency-cycle",
            Code::PortConflict => "port-conflict",
            Code::SubnetOverlap => "subnet-overlap",
            Code::AddressConflict => "address-conflict",
            Code::MountConflict => "mount-conflict",
            Code::Conflict => "conflict",
        }
    }
}

/// A loaded source file, shared by every diagnostic and origin that points into it.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub(crate) fn new(path: PathBuf, text: String) -> Arc<Self> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Arc::new(SourceFile {
            path,
            text,
            line_starts,
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, column)
    }

    /// The offending text of a span: its first line, shortened for display.
    fn snippet(&self, span: &Range<usize>) -> String {
        let start = span.start.min(self.text.len());
        let end = span.end.clamp(start, self.text.len());
        let text = self.text.get(start..end).unwrap_or("");
        let first_line = text.lines().next().unwrap_or("");
        const MAX: usize = 80;
        if first_line.chars().count() > MAX {
            let cut: String = first_line.chars().take(MAX).collect();
            format!("{cut}…")
        } else if first_line.len() < text.trim_end().len() {
            format!("{first_line} …")
        } else {
            first_line.to_string()
        }
    }
}

/// A place in a desired-state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    #[serde(skip)]
    pub span: Range<usize>,
}

impl Location {
    pub(crate) fn new(source: &SourceFile, span: Range<usize>) -> Self {
        let (line, column) = source.line_column(span.start);
        Location {
            file: source.path.clone(),
            line,
            column,
            span,
        }
    }

    /// A whole file, for problems that have no better place (I/O errors).
    fn file(path: &Path) -> Self {
        Location {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            span: 0..0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A second place that explains the first (e.g. where a duplicate name was first defined).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    #[serde(flatten)]
    pub location: Location,
    pub message: String,
}

/// One problem in the desired state.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    #[serde(flatten)]
    pub location: Location,
    pub message: String,
    /// The offending text, as written in the file.
    pub text: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
    #[serde(skip)]
    source: Option<Arc<SourceFile>>,
}

impl PartialEq for Diagnostic {
    fn eq(&self, other: &Self) -> bool {
        (
            self.code,
            &self.location,
            &self.message,
            &self.text,
            &self.help,
            &self.related,
        ) == (
            other.code,
            &other.location,
            &other.message,
            &other.text,
            &other.help,
            &other.related,
        )
    }
}

impl Eq for Diagnostic {}

impl Diagnostic {
    pub(crate) fn new(
        code: Code,
        source: &Arc<SourceFile>,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            text: source.snippet(&span),
            location: Location::new(source, span),
            message: message.into(),
            help: None,
            related: Vec::new(),
            source: Some(Arc::clone(source)),
        }
    }

    /// A problem with a whole file that has no text to point at.
    pub(crate) fn for_file(code: Code, path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            location: Location::file(path),
            message: message.into(),
            text: String::new(),
            help: None,
            related: Vec::new(),
            source: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn with_related(mut self, location: Location, message: impl Into<String>) -> Self {
        self.related.push(Related {
            location,
            message: message.into(),
        });
        self
    }

    /// Order used for reports: by file, then position, then code.
    pub(crate) fn sort_key(&self) -> (&Path, usize, Code, &str) {
        (
            &self.location.file,
            self.location.span.start,
            self.code,
            &self.message,
        )
    }

    /// One line for logs and status: location, code, message and help.
    pub fn one_line(&self) -> String {
        let mut line = format!(
            "{}: error[{}]: {}",
            self.location,
            self.code.as_str(),
            self.message
        );
        if let Some(help) = &self.help {
            line.push_str(" (help: ");
            line.push_str(help);
            line.push(')');
        }
        line
    }

    /// A rich rendering with the source line underlined (for terminals).
    pub fn render_fancy(&self) -> String {
        let Some(source) = &self.source else {
            return self.to_string();
        };
        let report = FancyReport {
            diagnostic: self,
            named: miette::NamedSource::new(source.path.display().to_string(), source.text.clone()),
        };
        let mut out = String::new();
        let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode());
        if handler.render_report(&mut out, &report).is_err() {
            return self.to_string();
        }
        out
    }
}

/// Plain, one problem per paragraph; the first line is grep- and editor-friendly.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: error[{}]: {}",
            self.location,
            self.code.as_str(),
            self.message
        )?;
        if !self.text.is_empty() {
            write!(f, "\n    | {}", self.text)?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n    = help: {help}")?;
        }
        for related in &self.related {
            write!(f, "\n    = note: {}: {}", related.location, related.message)?;
        }
        Ok(())
    }
}

struct FancyReport<'a> {
    diagnostic: &'a Diagnostic,
    named: miette::NamedSource<String>,
}

impl fmt::Debug for FancyReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diagnostic, f)
    }
}

impl fmt::Display for FancyReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.diagnostic.location, self.diagnostic.message
        )
    }
}

impl std::error::Error for FancyReport<'_> {}

impl miette::Diagnostic for FancyReport<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code.as_str()))
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        let mut help = self.diagnostic.help.clone().unwrap_or_default();
        for related in &self.diagnostic.related {
            if !help.is_empty() {
                help.push('\n');
            }
            help.push_str(&format!("{}: {}", related.location, related.message));
        }
        (!help.is_empty()).then(|| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.named)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = &self.diagnostic.location.span;
        let label = miette::LabeledSpan::new_with_span(
            Some("here".to_string()),
            (span.start, span.end.saturating_sub(span.start)),
        );
        Some(Box::new(std::iter::once(label)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = SourceFile::new("a.toml".into(), "ab\nçd = 1\n\nx".into());
        assert_eq!(src.line_column(0), (1, 1));
        assert_eq!(src.line_column(1), (1, 2));
        assert_eq!(src.line_column(3), (2, 1));
        // 'ç' is two bytes but one column
        assert_eq!(src.line_column(5), (2, 2));
        assert_eq!(src.line_column(12), (4, 1));
        assert_eq!(src.line_column(999), (4, 2));
    }

    #[test]
    fn snippet_shows_first_line_only() {
        let src = SourceFile::new("a.toml".into(), "key = [\n 1,\n 2]\n".into());
        assert_eq!(src.snippet(&(6..16)), "[ …");
        assert_eq!(src.snippet(&(0..3)), "key");
    }

    #[test]
    fn display_has_file_line_column_code_text_and_help() {
        let src = SourceFile::new("d/web.toml".into(), "[container.web]\nimag = 1\n".into());
        let d = Diagnostic::new(Code::UnknownKey, &src, 16..20, "unknown key `imag`")
            .with_help("did you mean `image`?");
        assert_eq!(
            d.to_string(),
            "d/web.toml:2:1: error[unknown-key]: unknown key `imag`\n    | imag\n    = help: did you mean `image`?"
        );
        assert!(d.render_fancy().contains("imag"));
    }
}
