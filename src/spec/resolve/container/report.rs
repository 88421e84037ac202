//! Where one container's problems go. Each check reports through it, so the container can
//! tell at the end whether anything was wrong without each check returning a verdict.

use std::ops::Range;
use std::sync::Arc;

use crate::spec::diag::{Code, Diagnostic, SourceFile};
use crate::spec::loader::{Entry, Kind};
use crate::spec::raw::RawContainer;
use crate::spec::resolve::{Names, missing, with_hint};
use crate::spec::value::Hint;

pub(super) struct Report<'a> {
    entry: &'a Entry<RawContainer>,
    what: &'a str,
    diagnostics: &'a mut Vec<Diagnostic>,
    /// How many diagnostics this container added.
    reported: usize,
    /// A reference to a declared entry that cannot be used: no diagnostic of its own (the
    /// entry's are enough), but the container cannot be applied either.
    unusable_reference: bool,
}

impl<'a> Report<'a> {
    /// `what` names the container at the start of messages: "container `NAME`".
    pub(crate) fn new(
        entry: &'a Entry<RawContainer>,
        what: &'a str,
        diagnostics: &'a mut Vec<Diagnostic>,
    ) -> Self {
        Report {
            entry,
            what,
            diagnostics,
            reported: 0,
            unusable_reference: false,
        }
    }

    pub(crate) fn what(&self) -> &'a str {
        self.what
    }

    /// The container's name.
    pub(crate) fn name(&self) -> &'a str {
        self.entry.name.as_str()
    }

    /// The container's name in its file: where problems of the whole entry point.
    pub(crate) fn key_span(&self) -> Range<usize> {
        self.entry.key_span.clone()
    }

    pub(crate) fn source(&self) -> &'a Arc<SourceFile> {
        &self.entry.source
    }

    /// A diagnostic in the container's file; `push` reports it.
    pub(crate) fn diag(
        &self,
        code: Code,
        at: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.entry.diag(code, at, message)
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.reported += 1;
        self.diagnostics.push(d);
    }

    /// Report `d` with the help its error carries, if any.
    pub(crate) fn hinted<T: Hint>(&mut self, d: Diagnostic, e: &T) {
        self.push(with_hint(d, e));
    }

    /// A required key is absent (nothing when it was dropped for a bad value, already
    /// reported).
    pub(crate) fn missing(&mut self, key: &str, example: &str) {
        if let Some(d) = missing(self.entry, Kind::Container, key, example) {
            self.push(d);
        }
    }

    /// A reference the container cannot use although its target is declared.
    pub(crate) fn unusable_reference(&mut self) {
        self.unusable_reference = true;
    }

    /// Check a reference to another entry. False if it cannot be used: unknown (reported
    /// here) or broken (reported at that entry); the container is then left out.
    pub(crate) fn reference(
        &mut self,
        names: &Names,
        kind: Kind,
        name: &str,
        at: Range<usize>,
    ) -> bool {
        if names.is_declared(kind, name) {
            if names.is_usable(kind, name) {
                return true;
            }
            self.unusable_reference();
            return false;
        }
        let help = names.unknown_help(
            kind,
            name,
            &format!(
                "declare it as `[{}.{name}]` in any file of the directory",
                kind.section()
            ),
        );
        let d = self
            .diag(
                Code::UnknownReference,
                at,
                format!(
                    "{} refers to unknown {} `{name}`",
                    self.what,
                    kind.section()
                ),
            )
            .with_help(help);
        self.push(d);
        self.unusable_reference();
        false
    }

    /// Whether the container can be applied: nothing reported and every reference usable.
    pub(crate) fn is_clean(&self) -> bool {
        self.reported == 0 && !self.unusable_reference
    }
}
