//! Who the process runs as (`user`, `groups`) and the name it sees (`hostname`).

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::name::Name;
use crate::spec::resolve::span;

use super::report::Report;

/// `user`: "USER[:GROUP]", names or numeric ids.
pub(super) fn resolve_user(user: Option<&Spanned<String>>, report: &mut Report) -> Option<String> {
    let what = report.what();
    user.and_then(|u| {
        let text = u.get_ref();
        if valid_user(text) {
            Some(text.clone())
        } else {
            report.push(
                report.diag(Code::InvalidValue, span(u), format!("{what}: invalid user `{text}`"))
                    .with_help("write \"USER\", \"USER:GROUP\", \"UID\" or \"UID:GID\", e.g. \"nginx\" or \"1000:1000\""),
            );
            None
        }
    })
}

/// `groups`: the valid ones, in the order written.
pub(super) fn resolve_groups(groups: &[Spanned<String>], report: &mut Report) -> Vec<String> {
    let what = report.what();
    let mut resolved = Vec::new();
    for g in groups {
        if valid_user_part(g.get_ref()) {
            resolved.push(g.get_ref().clone());
        } else {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(g),
                        format!("{what}: invalid group `{}`", g.get_ref()),
                    )
                    .with_help("write a group name or numeric id"),
            );
        }
    }
    resolved
}

/// `hostname`, by default the container's name.
pub(super) fn resolve_hostname(
    hostname: Option<&Spanned<String>>,
    name: &Name,
    report: &mut Report,
) -> String {
    let what = report.what();
    match hostname {
        None => name.to_string(),
        Some(h) => {
            if !valid_hostname(h.get_ref()) {
                report.push(
                    report.diag(Code::InvalidValue, span(h), format!("{what}: invalid hostname `{}`", h.get_ref()))
                        .with_help("a hostname is at most 64 characters of letters, digits, `-` and `.`, each label starting and ending with a letter or digit"),
                );
            }
            h.get_ref().clone()
        }
    }
}

fn valid_user_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
}

fn valid_user(s: &str) -> bool {
    match s.split_once(':') {
        Some((u, g)) => valid_user_part(u) && valid_user_part(g),
        None => valid_user_part(s),
    }
}

fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}
