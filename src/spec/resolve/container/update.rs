//! `update`, `update_timeout` and `drain`: how a changed container is replaced, and what
//! start-first needs to hand traffic over.

use crate::spec::diag::Code;
use crate::spec::model::{UpdatePolicy, UpdateStrategy};
use crate::spec::raw::RawContainer;
use crate::spec::resolve::span;

use super::report::Report;

/// The update policy, its missing parts from the default. Reads `update`,
/// `update_timeout` and `drain`, and for start-first whether `health`, `ports` and
/// `networks` are written.
pub(super) fn resolve_update(raw: &RawContainer, report: &mut Report) -> UpdatePolicy {
    let what = report.what();
    let mut update = UpdatePolicy::default();
    if let Some(s) = &raw.update {
        update.strategy = *s.get_ref();
    }
    update.timeout = raw
        .update_timeout
        .as_ref()
        .map_or(update.timeout, |t| *t.get_ref());
    update.drain = raw.drain.unwrap_or(update.drain);
    if let Some(s) = &raw.update
        && update.strategy == UpdateStrategy::StartFirst
    {
        let mut missing = Vec::new();
        if raw.health.is_none() {
            missing.push("a `health` check (to know when the new container is ready)");
        }
        if raw.ports.is_empty() {
            missing.push("published `ports` (the traffic to switch)");
        }
        // Without `network` nor `networks`, ports put it on the default network.
        if raw.networks.is_empty() && raw.network.is_some() {
            missing.push(
                "a bridge network in `networks` (two containers cannot share host ports otherwise)",
            );
        }
        if !missing.is_empty() {
            report.push(
                report
                    .diag(
                        Code::Conflict,
                        span(s),
                        format!(
                            "{what}: update = \"start-first\" needs {}",
                            missing.join(", ")
                        ),
                    )
                    .with_help("add what is missing, or use update = \"stop-first\""),
            );
        }
        if update.timeout.is_zero() {
            let at = raw.update_timeout.as_ref().map_or_else(|| span(s), span);
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        at,
                        format!("{what}: update_timeout must be more than 0s"),
                    )
                    .with_help("e.g. update_timeout = \"2m\""),
            );
        }
    }
    update
}
