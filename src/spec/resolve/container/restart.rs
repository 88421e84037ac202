//! `backoff`: the delays between restarts.

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::model::Backoff;
use crate::spec::raw::RawBackoff;
use crate::spec::resolve::span;

use super::report::Report;

/// The backoff written, its missing parts from the default; the first delay must be more
/// than zero and at most the largest.
pub(super) fn resolve_backoff(
    backoff: Option<&Spanned<RawBackoff>>,
    report: &mut Report,
) -> Backoff {
    let what = report.what();
    match backoff {
        None => Backoff::default(),
        Some(b) => {
            let d = Backoff::default();
            let backoff = Backoff {
                initial: b.get_ref().initial.unwrap_or(d.initial),
                max: b.get_ref().max.unwrap_or(d.max),
                reset_after: b.get_ref().reset_after.unwrap_or(d.reset_after),
            };
            if backoff.initial.is_zero() || backoff.max < backoff.initial {
                report.push(
                    report.diag(Code::InvalidValue, span(b), format!("{what}: backoff needs 0 < initial ({}) <= max ({})", backoff.initial, backoff.max))
                        .with_help("e.g. backoff = { initial = \"1s\", max = \"5m\", reset_after = \"10m\" }"),
                );
            }
            backoff
        }
    }
}
