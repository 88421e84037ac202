//! `[secret.NAME]` and `[config.NAME]` entries: exactly one source each, read now, so that
//! a secret that cannot be read is a problem of the desired state (nothing is pruned).

use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::loader::Entry;
use crate::spec::raw::{RawConfig, RawSecret};
use crate::spec::referenced;
use crate::spec::secret::{self, ConfigContent, Secret};

use super::container::beside;
use super::{Resolver, span};

/// The written path beside the entry's file, as the directory was named (for reading and
/// messages), and that file's directory, absolute.
fn locate<T>(e: &Entry<T>, written: &str) -> (PathBuf, PathBuf) {
    let dir = e.source.path.parent().unwrap_or(Path::new("."));
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let shown = if written.starts_with('/') {
        beside(&absolute, written)
    } else {
        dir.join(written)
    };
    (shown, absolute)
}

impl Resolver {
    /// Exactly one of two keys; reports and returns None otherwise.
    fn one_of<'a, T>(
        &mut self,
        e: &Entry<T>,
        what: &str,
        a: (&str, Option<&'a Spanned<String>>),
        b: (&str, Option<&'a Spanned<String>>),
    ) -> Option<(bool, &'a Spanned<String>)> {
        match (a.1, b.1) {
            (Some(v), None) => Some((true, v)),
            (None, Some(v)) => Some((false, v)),
            (Some(_), Some(v)) => {
                self.push(
                    e.diag(
                        Code::Conflict,
                        span(v),
                        format!("{what} `{}` sets both `{}` and `{}`", e.name, a.0, b.0),
                    )
                    .with_help(format!("keep one of `{}` and `{}`", a.0, b.0)),
                );
                None
            }
            (None, None) => {
                if !e.dropped_keys.contains(a.0) && !e.dropped_keys.contains(b.0) {
                    self.push(
                        e.diag(
                            Code::MissingKey,
                            e.key_span.clone(),
                            format!("{what} `{}` has neither `{}` nor `{}`", e.name, a.0, b.0),
                        )
                        .with_help(format!("set exactly one of `{}` and `{}`", a.0, b.0)),
                    );
                }
                None
            }
        }
    }

    pub(super) fn secret(&mut self, e: &Entry<RawSecret>) -> Option<Secret> {
        let raw = &e.raw;
        let (is_file, v) = self.one_of(
            e,
            "secret",
            ("file", raw.file.as_ref()),
            ("age", raw.age.as_ref()),
        )?;
        let written = v.get_ref();
        let result = if is_file {
            if !written.starts_with('/') {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(v),
                        format!("secret `{}`: `file` must be an absolute host path", e.name),
                    )
                    .with_help("a plain secret lives outside the desired directory, e.g. file = \"/etc/berth/secrets/db\" (root-owned, 0600); to keep it beside the TOML, encrypt it and use `age`"),
                );
                return None;
            }
            secret::read_host_file(Path::new(written))
        } else {
            let (path, dir) = locate(e, written);
            secret::decrypt_age_file(&path, &dir)
        };
        match result {
            Ok(s) => Some(s),
            Err(err) => {
                let d = e.diag(Code::Io, span(v), format!("secret `{}`: {err}", e.name));
                self.hinted(d, &err);
                None
            }
        }
    }

    pub(super) fn config(&mut self, e: &Entry<RawConfig>) -> Option<ConfigContent> {
        let raw = &e.raw;
        let (is_content, v) = self.one_of(
            e,
            "config",
            ("content", raw.content.as_ref()),
            ("file", raw.file.as_ref()),
        )?;
        if is_content {
            return Some(ConfigContent::new(v.get_ref().clone().into_bytes()));
        }
        let (path, _) = locate(e, v.get_ref());
        match referenced::read(&path) {
            Ok(bytes) => Some(ConfigContent::new(bytes)),
            Err(err) => {
                self.push(
                    e.diag(Code::Io, span(v), format!("config `{}`: {err}", e.name))
                        .with_help("`file` is relative to this file (or absolute) and names a regular, readable file"),
                );
                None
            }
        }
    }
}
