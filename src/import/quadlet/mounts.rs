//! `Volume=`, `Mount=` and `Tmpfs=` as berth `mounts`: named volumes (a `.volume` unit's, or
//! a podman volume no unit defines, declared), host paths, tmpfs with its options.

use super::super::toml_out::Value;
use super::super::values;
use super::unit::At;
use super::{Parsed, Tx, berth_name, boolean};

/// Where a mount as written goes in the container.
pub(crate) fn target(m: &Value) -> Option<String> {
    match m {
        Value::Str(s) => {
            let mut parts = s.split(':');
            parts.next()?;
            parts.next().map(String::from)
        }
        Value::Inline(entries) => entries
            .iter()
            .find(|(k, _)| k == "target")
            .and_then(|(_, v)| v.as_str().map(String::from)),
        _ => None,
    }
}

/// A named volume as berth names it: a `.volume` unit's, or one declared for a podman volume
/// no unit defines. The second value is whether the volume unit asks for no copy.
fn volume_source(
    tx: &mut Tx<'_>,
    u: &Parsed,
    key: &str,
    at: At,
    source: &str,
) -> Option<(String, bool)> {
    if source.ends_with(".volume") {
        return match tx.volumes.get(source) {
            Some(v) => Some((v.name.clone(), v.nocopy)),
            None => {
                tx.drop(
                    u,
                    key,
                    at,
                    format!("`{source}` is not among the imported units"),
                );
                None
            }
        };
    }
    let Some(name) = berth_name(source) else {
        tx.drop(
            u,
            key,
            at,
            format!("volume `{source}` cannot be made a berth name"),
        );
        return None;
    };
    tx.implicit_volumes
        .entry(name.clone())
        .or_insert_with(|| (source.to_string(), u.shown.clone(), at));
    Some((name, false))
}

pub(crate) fn volume(
    tx: &mut Tx<'_>,
    u: &Parsed,
    at: At,
    v: &str,
    notes: &mut Vec<String>,
) -> Option<Value> {
    let parts: Vec<&str> = v.splitn(3, ':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [_] => {
            tx.drop(
                u,
                "Volume",
                at,
                format!(
                    "`{v}` is an anonymous volume: berth volumes are \
                     named (declare one and mount it)"
                ),
            );
            return None;
        }
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => return None,
    };
    let bind = source.starts_with('/') || source.starts_with('.');
    let mut read_only = false;
    let mut nocopy = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "nocopy" if !bind => nocopy = true,
            "copy" if !bind => {}
            "z" | "Z" => tx.drop(
                u,
                "Volume",
                at,
                format!(
                    "`{o}` (SELinux relabelling) is \
                     refused by berth: relabel the host path yourself"
                ),
            ),
            "U" => tx.drop(
                u,
                "Volume",
                at,
                "`U` (chown to the container's user) has no berth \
                 equivalent: set the owner yourself (or the volume's uid/gid)",
            ),
            other => tx.drop(
                u,
                "Volume",
                at,
                format!(
                    "mount option `{other}` has no berth \
                     equivalent"
                ),
            ),
        }
    }
    let written_source = if bind {
        let written = tx.relative_out(u, source);
        if written != source {
            notes.push(format!(
                "{written}: translated from {source} (relative to this file)"
            ));
        }
        written
    } else {
        let (name, unit_nocopy) = volume_source(tx, u, "Volume", at, source)?;
        nocopy |= unit_nocopy;
        if name != source {
            notes.push(format!("{name}: translated from {source}"));
        }
        name
    };
    let suffix = match (read_only, nocopy) {
        (false, false) => String::new(),
        (true, false) => ":ro".into(),
        (ro, true) => format!(":{},nocopy", if ro { "ro" } else { "rw" }),
    };
    Some(Value::Str(format!("{written_source}:{target}{suffix}")))
}

/// `Mount=type=…,source=…,destination=…[,ro]…` as a berth mount table.
pub(crate) fn mount(
    tx: &mut Tx<'_>,
    u: &Parsed,
    at: At,
    v: &str,
    notes: &mut Vec<String>,
) -> Option<Value> {
    let mut kind = "volume".to_string();
    let mut source = None;
    let mut target = None;
    let mut read_only = false;
    let mut nocopy = false;
    let mut tmpfs_opts = Vec::new();
    for token in v.split(',') {
        let (k, val) = token
            .split_once('=')
            .map_or((token, None), |(k, v)| (k, Some(v)));
        match (k, val) {
            ("type", Some(t)) => kind = t.to_string(),
            ("source" | "src", Some(s)) => source = Some(s.to_string()),
            ("destination" | "dst" | "target", Some(d)) => target = Some(d.to_string()),
            ("ro" | "readonly", None) => read_only = true,
            ("ro" | "readonly", Some(b)) => read_only = boolean(b).unwrap_or(true),
            ("rw", None) => read_only = false,
            ("nocopy" | "volume-nocopy", _) => nocopy = true,
            ("tmpfs-size", Some(s)) => match values::size(s) {
                Some(size) => tmpfs_opts.push(format!("size={size}")),
                None => tx.drop(u, "Mount", at, format!("tmpfs-size `{s}` is not a size")),
            },
            ("tmpfs-mode", Some(m)) => match values::octal_mode(m) {
                Some(mode) => tmpfs_opts.push(format!("mode={mode}")),
                None => tx.drop(u, "Mount", at, format!("tmpfs-mode `{m}` is not octal")),
            },
            ("notmpcopyup" | "consistency", _) => {}
            ("relabel", _) => tx.drop(
                u,
                "Mount",
                at,
                "SELinux relabelling is refused by berth: relabel the host path yourself",
            ),
            (other, _) => tx.drop(
                u,
                "Mount",
                at,
                format!("mount option `{other}` has no berth equivalent"),
            ),
        }
    }
    let Some(target) = target else {
        tx.drop(u, "Mount", at, "no destination");
        return None;
    };
    match kind.as_str() {
        "tmpfs" => {
            let mut s = format!("tmpfs:{target}");
            if !tmpfs_opts.is_empty() {
                s.push(':');
                s.push_str(&tmpfs_opts.join(","));
            }
            Some(Value::Str(s))
        }
        "bind" | "volume" => {
            let Some(source) = source else {
                tx.drop(
                    u,
                    "Mount",
                    at,
                    "no source: berth volumes are named (declare one and mount it)",
                );
                return None;
            };
            let mut table = vec![("type".to_string(), Value::str(kind.clone()))];
            if kind == "bind" {
                let written = tx.relative_out(u, &source);
                if written != source {
                    notes.push(format!(
                        "{written}: translated from {source} (relative to this file)"
                    ));
                }
                table.push(("source".into(), Value::Str(written)));
            } else {
                let (name, unit_nocopy) = volume_source(tx, u, "Mount", at, &source)?;
                nocopy |= unit_nocopy;
                table.push(("source".into(), Value::Str(name)));
            }
            table.push(("target".into(), Value::Str(target)));
            if read_only {
                table.push(("read_only".into(), Value::Bool(true)));
            }
            if nocopy && kind == "volume" {
                table.push(("nocopy".into(), Value::Bool(true)));
            }
            Some(Value::Inline(table))
        }
        other => {
            tx.drop(
                u,
                "Mount",
                at,
                format!("mount type `{other}` has no berth equivalent"),
            );
            None
        }
    }
}

/// `Tmpfs=/path[:options]` in berth's spelling.
pub(crate) fn tmpfs(tx: &mut Tx<'_>, u: &Parsed, at: At, v: &str) -> Option<String> {
    let (path, opts) = v.split_once(':').unwrap_or((v, ""));
    let mut kept = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", s)) => match values::size(s) {
                Some(size) => kept.push(format!("size={size}")),
                None => tx.drop(u, "Tmpfs", at, format!("size `{s}` is not a size")),
            },
            Some(("mode", m)) => match values::octal_mode(m) {
                Some(mode) => kept.push(format!("mode={mode}")),
                None => tx.drop(u, "Tmpfs", at, format!("mode `{m}` is not octal")),
            },
            Some(("uid" | "gid", n)) if n.parse::<u32>().is_ok() => kept.push(o.to_string()),
            None if o == "noexec" || o == "exec" => kept.push(o.to_string()),
            // berth's tmpfs mounts are always nosuid and nodev, and writable.
            None if matches!(o, "nosuid" | "nodev" | "rw") => {}
            _ => tx.drop(
                u,
                "Tmpfs",
                at,
                format!("tmpfs option `{o}` has no berth equivalent"),
            ),
        }
    }
    if !path.starts_with('/') {
        tx.drop(u, "Tmpfs", at, format!("`{path}` is not an absolute path"));
        return None;
    }
    Some(if kept.is_empty() {
        format!("tmpfs:{path}")
    } else {
        format!("tmpfs:{path}:{}", kept.join(","))
    })
}
