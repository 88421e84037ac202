//! The seccomp profile compiled to BPF once, not at every container start.
//!
//! libseccomp needs about 25 ms of CPU to compile the default profile (three architectures,
//! hundreds of rules): more than everything else a container start costs together. The BPF
//! program depends only on the profile and on libseccomp, so it is compiled once per
//! distinct profile, cached under the run root (tmpfs: a libseccomp upgrade takes effect
//! after a reboot at the latest, and the cache key includes libseccomp's version), copied into
//! each container's directory, and loaded by the embedded engine's executor just before
//! exec — where runc loads its filter too — with one `seccomp(2)` call.
//!
//! Operands of masked comparisons are read as the OCI runtime spec and runc read them:
//! `value` is the mask, `valueTwo` the expected result.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use crate::fsutil;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("compiling the seccomp profile: {message}")]
    Compile { message: String },
    #[error("the seccomp profile uses {what}, which berth does not support")]
    Unsupported { what: String },
    #[error("caching the compiled seccomp profile at {}: {source}", path.display())]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Changes whenever `compile` would produce a different program for the same profile.
const COMPILER: &str = "berth-seccomp-2 optimize=2";

fn compile_err(e: impl std::fmt::Display) -> SeccompError {
    SeccompError::Compile {
        message: e.to_string(),
    }
}

/// The BPF program of `profile` (native byte order, 8 bytes per instruction).
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Vec<u8>, SeccompError> {
    let errno = profile.default_errno_ret().map(|e| e as i32);
    let default = action(profile.default_action(), errno.unwrap_or(libc::EPERM))?;
    let mut filter = ScmpFilterContext::new(default).map_err(compile_err)?;
    // A binary tree over syscall numbers instead of a linear chain: every syscall the
    // container makes runs this program.
    filter.set_ctl_optimize(2).map_err(compile_err)?;
    for arch in profile.architectures().iter().flatten() {
        let arch = scmp_arch(*arch)?;
        if !filter.is_arch_present(arch).map_err(compile_err)? {
            filter.add_arch(arch).map_err(compile_err)?;
        }
    }
    for rule in profile.syscalls().iter().flatten() {
        let errno = rule
            .errno_ret()
            .map(|e| e as i32)
            .or(errno)
            .unwrap_or(libc::EPERM);
        let rule_action = action(rule.action(), errno)?;
        if rule_action == default {
            continue;
        }
        let conditions = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let op = match a.op() {
                    LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                    LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                    LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                    LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                    LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                    LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                    LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(a.value()),
                };
                let datum = match a.op() {
                    LinuxSeccompOperator::ScmpCmpMaskedEq => a.value_two().unwrap_or(0),
                    _ => a.value(),
                };
                let index = u32::try_from(a.index()).map_err(|_| SeccompError::Unsupported {
                    what: format!("argument index {}", a.index()),
                })?;
                Ok(ScmpArgCompare::new(index, op, datum))
            })
            .collect::<Result<Vec<_>, SeccompError>>()?;
        for name in rule.names() {
            // A name this libseccomp does not know cannot be called on this kernel either
            // (runc and libcontainer skip such names too).
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if conditions.is_empty() {
                filter.add_rule(rule_action, syscall).map_err(compile_err)?;
            } else {
                filter
                    .add_rule_conditional(rule_action, syscall, &conditions)
                    .map_err(compile_err)?;
            }
        }
    }
    export(&filter)
}

fn export(filter: &ScmpFilterContext) -> Result<Vec<u8>, SeccompError> {
    let memfd = rustix::fs::memfd_create("berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(compile_err)?;
    filter.export_bpf(&memfd).map_err(compile_err)?;
    let mut file = std::fs::File::from(memfd);
    file.rewind().map_err(compile_err)?;
    let mut bpf = Vec::new();
    file.read_to_end(&mut bpf).map_err(compile_err)?;
    if bpf.is_empty() || !bpf.len().is_multiple_of(8) {
        return Err(compile_err(format!(
            "libseccomp produced {} bytes",
            bpf.len()
        )));
    }
    Ok(bpf)
}

/// `compile`, through a cache directory keyed by the profile (`json`, its encoding, which
/// the caller writes beside the bundle anyway) and libseccomp's version.
pub(crate) fn compile_cached(
    profile: &LinuxSeccomp,
    json: &[u8],
    cache: &Path,
) -> Result<Vec<u8>, SeccompError> {
    let version = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut hasher = crate::sha256::Sha256::new();
    hasher.update(COMPILER.as_bytes());
    hasher.update(&[0]);
    hasher.update(version.as_bytes());
    hasher.update(&[0]);
    hasher.update(json);
    let path = cache.join(format!("{}.bpf", hasher.finish_hex()));
    if let Ok(bpf) = std::fs::read(&path)
        && !bpf.is_empty()
        && bpf.len().is_multiple_of(8)
    {
        return Ok(bpf);
    }
    let bpf = compile(profile)?;
    let cache_err = |source| SeccompError::Cache {
        path: path.clone(),
        source,
    };
    // Root only, like the rest of the run root it may be the first to make.
    fsutil::private_dir(cache).map_err(|e| cache_err(std::io::Error::other(e)))?;
    fsutil::write_atomic(&path, &bpf).map_err(|e| SeccompError::Cache {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(bpf)
}

fn action(action: LinuxSeccompAction, errno: i32) -> Result<ScmpAction, SeccompError> {
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(u16::try_from(errno).map_err(|_| SeccompError::Unsupported {
                what: format!("SCMP_ACT_TRACE with message {errno}"),
            })?)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported {
                what: "SCMP_ACT_NOTIFY".into(),
            });
        }
    })
}

fn scmp_arch(arch: Arch) -> Result<ScmpArch, SeccompError> {
    Ok(match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        other => {
            return Err(SeccompError::Unsupported {
                what: format!("architecture {other:?}"),
            });
        }
    })
}
