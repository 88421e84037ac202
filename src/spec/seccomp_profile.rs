//! `seccomp = "unconfined"` or a profile file in Docker's JSON format (moby
//! `profiles/seccomp`): the profile is parsed when the directory is loaded and its content
//! kept in the model, so editing the file changes the container's hash.

use serde::{Deserialize, Serialize};

/// The most a profile file may hold (Docker's default profile is about 20 KiB).
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// Which syscall filter a container runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Seccomp {
    /// berth's own profile (see runtime/seccomp.rs).
    #[default]
    Default,
    /// No filter at all.
    Unconfined,
    /// A Docker-format profile, as parsed.
    Profile(Box<DockerProfile>),
}

impl Seccomp {
    pub fn is_default(&self) -> bool {
        *self == Seccomp::Default
    }
}

/// Docker's seccomp profile format; fields berth does not act on (comments) are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerProfile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    #[serde(default)]
    pub names: Vec<String>,
    /// The old single-name form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<SyscallArg>,
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallArg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// When a rule applies: the container holds one of `caps`, runs on one of `arches`, on a
/// kernel at least `min_kernel` ("4.8").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }
}

const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
];

const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("not a Docker seccomp profile: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown seccomp action `{0}`")]
    Action(String),
    #[error("unknown seccomp comparison `{0}`")]
    Op(String),
    #[error("a syscall rule names no syscall")]
    NoNames,
    #[error("argument index {0} is out of range (0 to 5)")]
    Index(u32),
    #[error("`{0}` is not supported by berth")]
    Unsupported(&'static str),
}

/// Parse and check a profile file's content.
pub fn parse(bytes: &[u8]) -> Result<DockerProfile, ProfileError> {
    let mut p: DockerProfile = serde_json::from_slice(bytes)?;
    if !p.flags.is_empty() {
        return Err(ProfileError::Unsupported("flags"));
    }
    let action = |a: &str| {
        if ACTIONS.contains(&a) {
            Ok(())
        } else {
            Err(ProfileError::Action(a.into()))
        }
    };
    action(&p.default_action)?;
    for rule in &mut p.syscalls {
        action(&rule.action)?;
        if let Some(name) = rule.name.take() {
            rule.names.push(name);
        }
        if rule.names.is_empty() {
            return Err(ProfileError::NoNames);
        }
        for a in &rule.args {
            if !OPS.contains(&a.op.as_str()) {
                return Err(ProfileError::Op(a.op.clone()));
            }
            if a.index > 5 {
                return Err(ProfileError::Index(a.index));
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_format() {
        let p = parse(
            br#"{
              "defaultAction": "SCMP_ACT_ERRNO",
              "defaultErrnoRet": 1,
              "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
              "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "io"},
                {"name": "personality", "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}
              ]
            }"#,
        )
        .unwrap();
        assert_eq!(p.syscalls[1].names, ["personality"]);
        assert_eq!(p.syscalls[2].includes.caps, ["CAP_SYS_ADMIN"]);
        assert_eq!(p.arch_map[0].sub_architectures, ["SCMP_ARCH_X86"]);
    }

    #[test]
    fn refusals() {
        assert!(matches!(parse(b"{"), Err(ProfileError::Json(_))));
        assert!(matches!(
            parse(br#"{"defaultAction": "SCMP_ACT_MAYBE"}"#),
            Err(ProfileError::Action(_))
        ));
        assert!(matches!(
            parse(br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}"#),
            Err(ProfileError::NoNames)
        ));
        assert!(matches!(
            parse(br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ODD"}]}]}"#),
            Err(ProfileError::Op(_))
        ));
    }
}
