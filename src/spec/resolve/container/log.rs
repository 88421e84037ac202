//! `log`: the rotation of the container's log file.

use crate::spec::diag::Code;
use crate::spec::model::LogPolicy;
use crate::spec::raw::RawLog;
use crate::spec::resolve::span;

use super::report::Report;

const MIN_LOG_SIZE: u64 = 4 << 10;

/// The log policy, its missing parts from the default.
pub(super) fn resolve_log(log: Option<&RawLog>, report: &mut Report) -> LogPolicy {
    let what = report.what();
    let mut policy = LogPolicy::default();
    let Some(l) = log else {
        return policy;
    };
    if let Some(s) = &l.max_size {
        if s.get_ref().0 < MIN_LOG_SIZE {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(s),
                        format!("{what}: log max_size {} is below 4KiB", s.get_ref()),
                    )
                    .with_help("e.g. max_size = \"10MiB\""),
            );
        }
        policy.max_size = *s.get_ref();
    }
    if let Some(n) = &l.max_files {
        match u32::try_from(*n.get_ref()) {
            Ok(v) if (1..=1000).contains(&v) => policy.max_files = v,
            _ => report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(n),
                        format!("{what}: log max_files = {} is out of range", n.get_ref()),
                    )
                    .with_help("keep between 1 and 1000 files"),
            ),
        }
    }
    policy
}
