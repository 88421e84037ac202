//! Mounts: named volumes, bind mounts and tmpfs, written as a string
//! (`"site:/usr/share/nginx/html:ro"`, `"/srv/data:/data"`, `"tmpfs:/tmp:size=64MiB"`) or as a
//! table (`{ type = "volume", source = "site", target = "/data", read_only = true }`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::size::ByteSize;
use super::value::Hint;

/// A mount as written; volume names are resolved against `[volume.*]` by the loader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Mount {
    /// A named volume from `[volume.NAME]`.
    Volume {
        /// The volume's name.
        source: String,
        /// Absolute path inside the container.
        target: String,
        #[serde(default)]
        read_only: bool,
        /// Do not seed an empty volume with the image's content at the target.
        #[serde(default)]
        nocopy: bool,
    },
    /// A host directory or file.
    Bind {
        /// Host path: absolute, or relative to the file that names it ("./conf", "conf").
        source: String,
        /// Absolute path inside the container.
        target: String,
        #[serde(default)]
        read_only: bool,
    },
    /// A memory-backed filesystem, private to the container.
    Tmpfs {
        /// Absolute path inside the container.
        target: String,
        /// Size limit, e.g. "64MiB" (default: half of the container's memory limit or of RAM).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<ByteSize>,
        /// Octal permission bits as a string, e.g. "1777".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
        /// Programs on it cannot be executed (always nosuid and nodev).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        noexec: bool,
        /// Owner of its root directory (default root).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<u32>,
        /// Group of its root directory (default root).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gid: Option<u32>,
    },
}

impl Mount {
    pub(crate) fn target(&self) -> &str {
        match self {
            Mount::Volume { target, .. }
            | Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. } => target,
        }
    }

    /// Check what can be checked without other resources; returns the normalised mount.
    fn validated(self) -> Result<Mount, MountError> {
        Ok(match self {
            Mount::Volume {
                source,
                target,
                read_only,
                nocopy,
            } => {
                if source.is_empty() {
                    return Err(MountError::EmptySource);
                }
                Mount::Volume {
                    source,
                    target: normal_target(&target)?,
                    read_only,
                    nocopy,
                }
            }
            Mount::Bind {
                source,
                target,
                read_only,
            } => Mount::Bind {
                source: bind_source(&source)?,
                target: normal_target(&target)?,
                read_only,
            },
            Mount::Tmpfs {
                target,
                size,
                mode,
                noexec,
                uid,
                gid,
            } => {
                if let Some(mode) = &mode {
                    parse_mode(mode)?;
                }
                Mount::Tmpfs {
                    target: normal_target(&target)?,
                    size,
                    mode,
                    noexec,
                    uid,
                    gid,
                }
            }
        })
    }
}

/// Octal permission bits such as "1777" or "0755".
pub(crate) fn parse_mode(mode: &str) -> Result<u32, MountError> {
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777 && !mode.is_empty())
        .ok_or_else(|| MountError::BadMode { mode: mode.into() })
}

fn normal_absolute(path: &str) -> Result<String, ()> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(());
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(()),
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// An absolute source normalised; a relative one kept as written (the resolver joins it to
/// the directory of the file naming it).
fn bind_source(source: &str) -> Result<String, MountError> {
    if source.starts_with('/') {
        return normal_absolute(source).map_err(|_| MountError::BadBindSource {
            path: source.into(),
        });
    }
    if source.is_empty() || source.contains('\0') || source.starts_with('~') {
        return Err(MountError::BadBindSource {
            path: source.into(),
        });
    }
    Ok(source.to_string())
}

/// Whether a bind source is relative to the file naming it.
pub(crate) fn is_relative_source(source: &str) -> bool {
    !source.starts_with('/')
}

/// Options Docker accepts that berth refuses, with the reason.
fn refused_option(option: &str) -> Option<&'static str> {
    Some(match option {
        "z" | "Z" => {
            "berth does not relabel files for SELinux: `z`/`Z` would change the labels of host files; label the source yourself (chcon) if the host enforces SELinux"
        }
        "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
            "berth makes every mount private to the container (`rprivate`), so that nothing the container mounts reaches the host and nothing mounted later on the host reaches the container"
        }
        _ => return None,
    })
}

pub(crate) fn normal_target(target: &str) -> Result<String, MountError> {
    match normal_absolute(target) {
        Ok(t) if t == "/" => Err(MountError::RootTarget),
        Ok(t) => Ok(t),
        Err(()) => Err(MountError::BadTarget {
            target: target.into(),
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("invalid mount `{text}`: expected `SOURCE:TARGET[:OPTIONS]`")]
    Malformed { text: String },
    #[error("mount target `{target}` must be an absolute path without `..`")]
    BadTarget { target: String },
    #[error("a mount cannot replace the container's root `/`")]
    RootTarget,
    #[error(
        "bind mount source `{path}` must be an absolute host path without `..`, or a path relative to this file"
    )]
    BadBindSource { path: String },
    #[error("mount option `{option}` is not supported")]
    RefusedOption {
        option: String,
        reason: &'static str,
    },
    #[error("a volume mount needs a volume name as its source")]
    EmptySource,
    #[error("unknown mount option `{option}` for a {kind} mount")]
    BadOption { option: String, kind: &'static str },
    #[error("invalid mode `{mode}`: expected octal permission bits such as \"1777\"")]
    BadMode { mode: String },
    #[error("invalid tmpfs size `{size}`")]
    BadSize { size: String },
}

impl Hint for MountError {
    fn help(&self) -> Option<String> {
        Some(match self {
            MountError::Malformed { .. } => "write \"VOLUME:/path[:ro]\", \"/host/path:/path[:ro]\" or \"tmpfs:/path[:size=64MiB,mode=1777]\"".into(),
            MountError::BadBindSource { .. } => "write an absolute host path (\"/srv/app/config:/etc/app:ro\") or one relative to this file (\"./config:/etc/app:ro\"); `~` is not expanded".into(),
            MountError::RefusedOption { reason, .. } => (*reason).into(),
            MountError::BadOption { kind: "volume", .. } => "volume options are `ro`, `rw` and `nocopy`".into(),
            MountError::BadOption { kind: "bind", .. } => "bind options are `ro` and `rw`".into(),
            MountError::BadOption { .. } => "tmpfs options are `size=SIZE`, `mode=OCTAL`, `uid=N`, `gid=N`, `noexec`, `exec` (nosuid and nodev always hold)".into(),
            MountError::BadMode { .. } => "write the permission bits as an octal string of up to 4 digits, e.g. \"0750\" or \"1777\"".into(),
            MountError::EmptySource => "set `source` to the name of a [volume.NAME], e.g. { type = \"volume\", source = \"data\", target = \"/data\" }".into(),
            MountError::BadSize { .. } => "write a size such as \"64MiB\"".into(),
            _ => "write an absolute path such as \"/data\"".into(),
        })
    }
}

impl FromStr for Mount {
    type Err = MountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(3, ':');
        let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
            return Err(MountError::Malformed { text: s.into() });
        };
        if source.is_empty() || target.is_empty() {
            return Err(MountError::Malformed { text: s.into() });
        }
        let options: Vec<&str> = parts
            .next()
            .map(|o| o.split(',').collect())
            .unwrap_or_default();
        let mount = if source == "tmpfs" {
            let (mut size, mut mode, mut noexec, mut uid, mut gid) =
                (None, None, false, None, None);
            let id = |option: &str, v: &str| {
                v.parse::<u32>().map_err(|_| MountError::BadOption {
                    option: option.into(),
                    kind: "tmpfs",
                })
            };
            for option in options {
                if let Some(v) = option.strip_prefix("uid=") {
                    uid = Some(id(option, v)?);
                } else if let Some(v) = option.strip_prefix("gid=") {
                    gid = Some(id(option, v)?);
                } else if matches!(option, "noexec" | "exec" | "nosuid" | "nodev") {
                    // nosuid and nodev are always set: as options they only say so.
                    noexec = match option {
                        "noexec" => true,
                        "exec" => false,
                        _ => noexec,
                    };
                } else if let Some(v) = option.strip_prefix("size=") {
                    size = Some(
                        v.parse::<ByteSize>()
                            .map_err(|_| MountError::BadSize { size: v.into() })?,
                    );
                } else if let Some(v) = option.strip_prefix("mode=") {
                    mode = Some(v.to_string());
                } else {
                    return Err(MountError::BadOption {
                        option: option.into(),
                        kind: "tmpfs",
                    });
                }
            }
            Mount::Tmpfs {
                target: target.into(),
                size,
                mode,
                noexec,
                uid,
                gid,
            }
        } else {
            // "./conf", "../shared": relative to the file; a bare word names a volume.
            let bind = source.starts_with('/') || source.starts_with('.');
            if source.starts_with('~') {
                return Err(MountError::BadBindSource {
                    path: source.into(),
                });
            }
            let kind = if bind { "bind" } else { "volume" };
            let (mut read_only, mut nocopy) = (false, false);
            for option in options {
                if let Some(reason) = refused_option(option) {
                    return Err(MountError::RefusedOption {
                        option: option.into(),
                        reason,
                    });
                }
                match option {
                    "ro" => read_only = true,
                    "rw" => read_only = false,
                    "nocopy" if !bind => nocopy = true,
                    _ => {
                        return Err(MountError::BadOption {
                            option: option.into(),
                            kind,
                        });
                    }
                }
            }
            if bind {
                Mount::Bind {
                    source: source.into(),
                    target: target.into(),
                    read_only,
                }
            } else {
                Mount::Volume {
                    source: source.into(),
                    target: target.into(),
                    read_only,
                    nocopy,
                }
            }
        };
        mount.validated()
    }
}

impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mount::Volume {
                source,
                target,
                read_only,
                nocopy,
            } => {
                write!(
                    f,
                    "{source}:{target}:{}",
                    if *read_only { "ro" } else { "rw" }
                )?;
                if *nocopy {
                    f.write_str(",nocopy")?;
                }
                Ok(())
            }
            Mount::Bind {
                source,
                target,
                read_only,
            } => {
                write!(
                    f,
                    "{source}:{target}:{}",
                    if *read_only { "ro" } else { "rw" }
                )
            }
            Mount::Tmpfs {
                target,
                size,
                mode,
                noexec,
                uid,
                gid,
            } => {
                write!(f, "tmpfs:{target}")?;
                let opts: Vec<String> = size
                    .iter()
                    .map(|s| format!("size={s}"))
                    .chain(mode.iter().map(|m| format!("mode={m}")))
                    .chain(noexec.then(|| "noexec".to_string()))
                    .chain(uid.iter().map(|u| format!("uid={u}")))
                    .chain(gid.iter().map(|g| format!("gid={g}")))
                    .collect();
                if !opts.is_empty() {
                    write!(f, ":{}", opts.join(","))?;
                }
                Ok(())
            }
        }
    }
}

/// A mount entry as written: a string or a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry(pub Mount);

impl<'de> Deserialize<'de> for MountEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MountEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mount string such as \"data:/var/lib/data\" or a mount table")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<MountEntry, E> {
                s.parse()
                    .map(MountEntry)
                    .map_err(|e| E::custom(super::value::message_with_help(&e)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<MountEntry, A::Error> {
                let mount = Mount::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                mount
                    .validated()
                    .map(MountEntry)
                    .map_err(|e| serde::de::Error::custom(super::value::message_with_help(&e)))
            }
        }
        d.deserialize_any(V)
    }
}

impl schemars::JsonSchema for MountEntry {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MountEntry".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let table = generator.subschema_for::<Mount>();
        schemars::json_schema!({
            "description": "A mount: \"VOLUME:/path[:ro|rw][,nocopy]\", \"/host/path:/path[:ro|rw]\", \"tmpfs:/path[:size=64MiB,mode=1777,noexec,uid=N,gid=N]\", or a table with `type` = volume | bind | tmpfs.",
            "anyOf": [ { "type": "string" }, table ]
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn m(s: &str) -> Mount {
        s.parse().unwrap()
    }

    #[test]
    fn parses_string_forms() {
        assert_eq!(
            m("site:/usr/share/nginx/html:ro"),
            Mount::Volume {
                source: "site".into(),
                target: "/usr/share/nginx/html".into(),
                read_only: true,
                nocopy: false
            }
        );
        assert_eq!(
            m("data:/data:rw,nocopy"),
            Mount::Volume {
                source: "data".into(),
                target: "/data".into(),
                read_only: false,
                nocopy: true
            }
        );
        assert_eq!(
            m("/srv/conf/:/etc/app//:ro"),
            Mount::Bind {
                source: "/srv/conf".into(),
                target: "/etc/app".into(),
                read_only: true
            }
        );
        assert_eq!(
            m("tmpfs:/tmp"),
            Mount::Tmpfs {
                target: "/tmp".into(),
                size: None,
                mode: None,
                noexec: false,
                uid: None,
                gid: None,
            }
        );
        assert_eq!(
            m("tmpfs:/run:size=64MiB,mode=1777"),
            Mount::Tmpfs {
                target: "/run".into(),
                size: Some(ByteSize(64 << 20)),
                mode: Some("1777".into()),
                noexec: false,
                uid: None,
                gid: None,
            }
        );
        assert_eq!(
            m("tmpfs:/cache:noexec,nosuid,nodev,uid=1000,gid=100,size=1MiB"),
            Mount::Tmpfs {
                target: "/cache".into(),
                size: Some(ByteSize(1 << 20)),
                mode: None,
                noexec: true,
                uid: Some(1000),
                gid: Some(100),
            }
        );
        assert_eq!(
            m("tmpfs:/cache:noexec,exec"),
            m("tmpfs:/cache"),
            "the last of exec/noexec wins"
        );
    }

    #[test]
    fn tmpfs_table_form() {
        let t: MountEntry = toml::from_str::<BTreeMap<String, MountEntry>>(
            "m = { type = \"tmpfs\", target = \"/x\", noexec = true, uid = 7, gid = 8 }",
        )
        .unwrap()
        .remove("m")
        .unwrap();
        assert_eq!(t.0, m("tmpfs:/x:noexec,uid=7,gid=8"));
    }

    #[test]
    fn rejects_bad_strings() {
        for (bad, what) in [
            ("data", "Malformed"),
            (":/data", "Malformed"),
            ("data:relative", "BadTarget"),
            ("data:/a/../b", "BadTarget"),
            ("data:/", "RootTarget"),
            ("~/here:/data", "BadBindSource"),
            ("/a/../b:/data", "BadBindSource"),
            ("/srv:/data:z", "RefusedOption"),
            ("/srv:/data:ro,Z", "RefusedOption"),
            ("data:/data:rshared", "RefusedOption"),
            ("/srv:/data:slave", "RefusedOption"),
            ("data:/data:rx", "BadOption"),
            ("/srv:/data:nocopy", "BadOption"),
            ("tmpfs:/tmp:ro", "BadOption"),
            ("tmpfs:/tmp:mode=999", "BadMode"),
            ("tmpfs:/tmp:size=lots", "BadSize"),
            ("tmpfs:/tmp:uid=-1", "BadOption"),
            ("tmpfs:/tmp:gid=x", "BadOption"),
            ("tmpfs:/tmp:suid", "BadOption"),
            ("tmpfs:/tmp:dev", "BadOption"),
        ] {
            let e = bad.parse::<Mount>().unwrap_err();
            assert!(format!("{e:?}").starts_with(what), "{bad}: {e:?}");
            assert!(e.help().is_some());
        }
    }

    #[test]
    fn relative_bind_sources_are_kept_for_the_resolver() {
        assert_eq!(
            m("./conf:/etc/app:ro"),
            Mount::Bind {
                source: "./conf".into(),
                target: "/etc/app".into(),
                read_only: true
            }
        );
        assert_eq!(
            m("../shared:/shared"),
            Mount::Bind {
                source: "../shared".into(),
                target: "/shared".into(),
                read_only: false
            }
        );
        assert!(is_relative_source("conf") && !is_relative_source("/conf"));
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "site:/html:ro",
            "data:/data:rw,nocopy",
            "/srv:/srv:rw",
            "tmpfs:/tmp:size=64MiB,mode=1777",
            "tmpfs:/tmp",
            "tmpfs:/tmp:size=1MiB,mode=0700,noexec,uid=1,gid=2",
        ] {
            assert_eq!(m(s).to_string(), s);
            assert_eq!(m(&m(s).to_string()), m(s));
        }
    }
}
