//! A Docker-format seccomp profile turned into the OCI form for one container, as moby's
//! `profiles/seccomp` does: a rule applies only if the container holds one of its
//! `includes.caps`, runs on one of its `includes.arches`, on a kernel at least its
//! `includes.minKernel`, and none of its `excludes` matches; `archMap` gives the native
//! architecture and the compat ones it carries.
//! (A rule's `includes.caps` needs every cap listed, as in moby.)

use oci_spec::runtime::LinuxSeccomp;
use serde_json::{Value, json};

use crate::spec::seccomp_profile::{DockerProfile, Filter};

#[derive(Debug, thiserror::Error)]
pub enum DockerSeccompError {
    #[error("the seccomp profile cannot be used: {0}")]
    Convert(String),
}

/// What a rule's filters are checked against.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    /// Capability names with `CAP_`, the container's effective set.
    pub caps: &'a [String],
    /// Go's name of this architecture ("amd64", "arm64"), which profiles use.
    pub arch: &'a str,
    /// The kernel's (major, minor).
    pub kernel: (u32, u32),
}

/// This machine's architecture, for [`Target::arch`].
pub(crate) fn go_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        std::env::consts::ARCH
    }
}

/// The running kernel's (major, minor), for [`Target::kernel`].
pub(crate) fn kernel_version() -> (u32, u32) {
    let uname = rustix::system::uname();
    parse_version(&uname.release().to_string_lossy()).unwrap_or((0, 0))
}

fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// The libseccomp name of the native architecture ("SCMP_ARCH_X86_64").
fn native_scmp_arch(go_arch: &str) -> &'static str {
    match go_arch {
        "amd64" => "SCMP_ARCH_X86_64",
        "arm64" => "SCMP_ARCH_AARCH64",
        "386" => "SCMP_ARCH_X86",
        "arm" => "SCMP_ARCH_ARM",
        _ => "SCMP_ARCH_NATIVE",
    }
}

/// moby's rule: excluded by any listed arch or cap; included only with every listed cap,
/// one of the listed arches and at least the listed kernel.
fn applies(includes: &Filter, excludes: &Filter, t: &Target) -> bool {
    let held = |c: &String| t.caps.contains(c);
    if excludes.arches.iter().any(|a| a == t.arch) || excludes.caps.iter().any(held) {
        return false;
    }
    if !includes.arches.is_empty() && !includes.arches.iter().any(|a| a == t.arch) {
        return false;
    }
    if !includes.caps.iter().all(held) {
        return false;
    }
    match includes.min_kernel.as_deref() {
        None => true,
        Some(min) => parse_version(min).is_some_and(|min| t.kernel >= min),
    }
}

/// The OCI profile of `profile` for a container described by `t`.
pub(crate) fn to_oci(
    profile: &DockerProfile,
    t: &Target,
) -> Result<LinuxSeccomp, DockerSeccompError> {
    let mut architectures: Vec<String> = profile.architectures.clone();
    let native = native_scmp_arch(t.arch);
    for m in &profile.arch_map {
        if m.architecture == native {
            architectures.push(m.architecture.clone());
            architectures.extend(m.sub_architectures.iter().cloned());
        }
    }
    let syscalls: Vec<Value> = profile
        .syscalls
        .iter()
        .filter(|r| applies(&r.includes, &r.excludes, t))
        .map(|r| {
            let mut rule = json!({ "names": r.names, "action": r.action });
            if let Some(errno) = r.errno_ret {
                rule["errnoRet"] = json!(errno);
            }
            if !r.args.is_empty() {
                rule["args"] = r
                    .args
                    .iter()
                    .map(|a| {
                        json!({ "index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op })
                    })
                    .collect();
            }
            rule
        })
        .collect();
    let mut oci = json!({
        "defaultAction": profile.default_action,
        "syscalls": syscalls,
    });
    if let Some(errno) = profile.default_errno_ret {
        oci["defaultErrnoRet"] = json!(errno);
    }
    if !architectures.is_empty() {
        oci["architectures"] = json!(architectures);
    }
    serde_json::from_value(oci).map_err(|e| DockerSeccompError::Convert(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::seccomp_profile::parse;

    const PROFILE: &[u8] = br#"{
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 1,
      "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
      ],
      "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        {"names": ["new_call"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "9.1"}},
        {"names": ["chown"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
      ]
    }"#;

    fn names(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn rules_follow_caps_arch_and_kernel() {
        let profile = parse(PROFILE).unwrap();
        let caps = vec!["CAP_CHOWN".to_string()];
        let t = Target {
            caps: &caps,
            arch: "amd64",
            kernel: (6, 1),
        };
        let oci = to_oci(&profile, &t).unwrap();
        assert_eq!(names(&oci), ["read", "arch_prctl", "personality"]);
        let arches: Vec<String> = oci
            .architectures()
            .iter()
            .flatten()
            .map(|a| {
                serde_json::to_value(a)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            arches,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        assert_eq!(oci.default_errno_ret(), Some(1));

        let caps = vec!["CAP_SYS_ADMIN".to_string()];
        let t = Target {
            caps: &caps,
            arch: "arm64",
            kernel: (9, 2),
        };
        let oci = to_oci(&profile, &t).unwrap();
        assert_eq!(
            names(&oci),
            ["read", "mount", "new_call", "chown", "personality"]
        );
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_version("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_version("5.10"), Some((5, 10)));
        assert_eq!(parse_version("4"), Some((4, 0)));
        assert_eq!(parse_version("x"), None);
    }
}
