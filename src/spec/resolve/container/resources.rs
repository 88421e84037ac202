//! `memory`, `cpus`, `pids` and `disk`: limits within what the kernel, the runtimes and the
//! writable layer's filesystem can honour.

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::model::Resources;
use crate::spec::raw::RawContainer;
use crate::spec::resolve::span;
use crate::spec::size::ByteSize;

use super::report::Report;

/// The smallest memory limit accepted (the kernel and runtimes misbehave below it).
const MIN_MEMORY: u64 = 6 << 20;
/// A writable layer smaller than this leaves an ext4 filesystem no room for its journal.
const MIN_DISK: u64 = 16 << 20;
/// ext4's limit with 4 KiB blocks and no 64-bit feature.
const MAX_DISK: u64 = 16 << 40;

/// The limits; reads `memory`, `cpus`, `pids` and `disk`.
pub(super) fn resolve_resources(raw: &RawContainer, report: &mut Report) -> Resources {
    Resources {
        memory: raw.memory.as_ref().map(|m| resolve_memory(m, report)),
        millicpus: raw.cpus.as_ref().and_then(|c| resolve_cpus(c, report)),
        pids: raw.pids.as_ref().and_then(|p| resolve_pids(p, report)),
        disk: raw.disk.as_ref().and_then(|d| resolve_disk(d, report)),
    }
}

fn resolve_memory(m: &Spanned<ByteSize>, report: &mut Report) -> ByteSize {
    let what = report.what();
    if m.get_ref().0 < MIN_MEMORY {
        report.push(
            report
                .diag(
                    Code::InvalidValue,
                    span(m),
                    format!(
                        "{what}: memory limit {} is below the minimum of 6MiB",
                        m.get_ref()
                    ),
                )
                .with_help("give the container at least \"6MiB\""),
        );
    }
    *m.get_ref()
}

/// Cores, kept as thousandths so the spec stays exact.
fn resolve_cpus(c: &Spanned<f64>, report: &mut Report) -> Option<u32> {
    let what = report.what();
    let v = *c.get_ref();
    if v.is_finite() && (0.001..=1024.0).contains(&v) {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "v is in 0.001..=1024: 1..=1_024_000 thousandths"
        )]
        Some((v * 1000.0).round() as u32)
    } else {
        report.push(
            report
                .diag(
                    Code::InvalidValue,
                    span(c),
                    format!("{what}: cpus = {v} is out of range"),
                )
                .with_help("write a number of cores between 0.001 and 1024, e.g. 0.5 or 2"),
        );
        None
    }
}

fn resolve_pids(p: &Spanned<i64>, report: &mut Report) -> Option<u32> {
    let what = report.what();
    match u32::try_from(*p.get_ref()) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(p),
                        format!("{what}: pids = {} is out of range", p.get_ref()),
                    )
                    .with_help("write a positive number of processes, e.g. 256"),
            );
            None
        }
    }
}

fn resolve_disk(d: &Spanned<ByteSize>, report: &mut Report) -> Option<ByteSize> {
    let what = report.what();
    let bytes = d.get_ref().0;
    if (MIN_DISK..=MAX_DISK).contains(&bytes) {
        Some(*d.get_ref())
    } else {
        report.push(
            report.diag(
                Code::InvalidValue,
                span(d),
                format!(
                    "{what}: disk = {} is out of range (16MiB to 16TiB)",
                    d.get_ref()
                ),
            )
            .with_help("write a size such as \"1GiB\"; volumes hold data that must not be bounded this way"),
        );
        None
    }
}
