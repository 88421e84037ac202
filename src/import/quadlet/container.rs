//! A `.container` unit's [Container] section as a `[container.NAME]` table (its [Unit],
//! [Service] and [Install] sections are `service`'s). Each key either becomes berth keys
//! (with a note where the spelling differs) or a reported [`super::Dropped`].

use std::path::Path;

use super::super::toml_out::{Table, Value};
use super::super::values;
use super::unit::{At, Split};
use super::{Info, Parsed, Tx, berth_name, boolean, from, mounts, networks, renamed, service};

const S: &str = "Container";

pub(crate) fn name(tx: &mut Tx<'_>, u: &Parsed) {
    let Some(name) = berth_name(&u.stem) else {
        tx.drop(
            u,
            "",
            At::START,
            "the unit's name cannot be made a berth name; the container was not imported",
        );
        return;
    };
    let job = u
        .unit
        .section("Service")
        .and_then(|s| s.last("Type"))
        .is_some_and(|t| t.value == "oneshot");
    let healthy = u
        .unit
        .section(S)
        .and_then(|s| s.last("Notify"))
        .is_some_and(|n| n.value.eq_ignore_ascii_case("healthy"));
    tx.services
        .insert(format!("{}.service", u.names.service), u.file_name.clone());
    tx.containers.insert(
        u.file_name.clone(),
        Info {
            name,
            shown: u.shown.clone(),
            job,
            healthy,
        },
    );
}

/// The berth name and table of a `.container` unit; None (reported) without a usable image.
pub(crate) fn translate(tx: &mut Tx<'_>, u: &Parsed) -> Option<(String, Table)> {
    let name = tx.containers.get(&u.file_name)?.name.clone();
    let mut t = Table::new("container", &name);
    t.comments = renamed(&u.stem, &name);
    let Some(section) = u.unit.section(S) else {
        tx.drop(
            u,
            "",
            At::START,
            "no [Container] section; the container was not imported",
        );
        return None;
    };
    if let Some(d) = u.unit.section("Unit").and_then(|s| s.last("Description")) {
        t.comments.push(d.value);
    }
    let keys: Vec<(String, At)> = section
        .keys()
        .into_iter()
        .map(|(k, at)| (k.to_string(), at))
        .collect();
    let mut mounts: Vec<Value> = Vec::new();
    let mut mount_notes: Vec<String> = Vec::new();
    let mut health: Vec<(String, Value)> = Vec::new();
    let mut health_notes: Vec<String> = Vec::new();
    let mut env: Vec<(String, Value)> = Vec::new();
    let mut read_only_tmpfs = false;
    let mut health_disabled = false;
    for (k, at) in &keys {
        let (k, at) = (k.as_str(), *at);
        match k {
            "Image" => image(tx, u, &name, &mut t),
            "Exec" => {
                // Only the last Exec counts (Quadlet reads it as ExecStart does).
                if let Some(e) = section.last("Exec")
                    && let Some(words) = tx.split(u, k, e.at, &e.value, Split::Exec)
                {
                    let words: Option<Vec<String>> =
                        words.iter().map(|w| tx.expand(u, k, e.at, w)).collect();
                    if let Some(w) = words {
                        t.set_noted("command", Value::strings(w), from("Exec"));
                    }
                }
            }
            "Entrypoint" => {
                if let Some((v, at)) = tx.one(u, S, k) {
                    entrypoint(tx, u, at, &v, &mut t);
                }
            }
            "Environment" => {
                for (word, at) in tx.words(u, S, k, Split::Exec) {
                    match word.split_once('=') {
                        Some((key, value)) => {
                            env.retain(|(k, _)| k != key);
                            env.push((key.to_string(), Value::str(value)));
                        }
                        None => tx.drop(
                            u,
                            k,
                            at,
                            format!(
                                "`{word}` without a value is taken from podman's own \
                                 environment, which the importer does not know: \
                                 write `{word}=VALUE`"
                            ),
                        ),
                    }
                }
            }
            "EnvironmentFile" => {
                let files: Vec<String> = tx
                    .words(u, S, k, Split::Exec)
                    .into_iter()
                    .map(|(f, _)| tx.relative_out(u, &f))
                    .collect();
                let notes = vec![
                    "translated from EnvironmentFile: paths relative to this file (Quadlet's \
                     were relative to the unit)"
                        .into(),
                ];
                match files.len() {
                    0 => {}
                    1 => t.set_noted("env_file", Value::str(files[0].clone()), notes),
                    _ => t.set_noted("env_file", Value::strings(files), notes),
                }
            }
            "PublishPort" => {
                let mut ports = Vec::new();
                for (p, at) in tx.each(u, S, k) {
                    if let Some(p) = publish_port(tx, u, at, p.trim()) {
                        ports.push(p);
                    }
                }
                if !ports.is_empty() {
                    t.set_noted("ports", Value::strings(ports), from("PublishPort"));
                }
            }
            "Volume" => {
                for (v, at) in tx.each(u, S, k) {
                    if let Some(m) = mounts::volume(tx, u, at, &v, &mut mount_notes) {
                        mounts.push(m);
                    }
                }
            }
            "Mount" => {
                for (v, at) in tx.words(u, S, k, Split::Exec) {
                    if let Some(m) = mounts::mount(tx, u, at, &v, &mut mount_notes) {
                        mounts.push(m);
                    }
                }
            }
            "Tmpfs" => {
                for (v, at) in tx.each(u, S, k) {
                    if let Some(m) = mounts::tmpfs(tx, u, at, &v) {
                        mount_notes.push(format!("{}: translated from Tmpfs={v}", m));
                        mounts.push(Value::Str(m));
                    }
                }
            }
            "VolatileTmp" => {
                if tx.one(u, S, k).and_then(|(v, _)| boolean(&v)) == Some(true) {
                    mount_notes.push("tmpfs:/tmp: translated from VolatileTmp=true".into());
                    mounts.push(Value::str("tmpfs:/tmp:mode=1777"));
                }
            }
            "Network" | "IP" | "NetworkAlias" | "ContainerName" => {}
            "Label" => {
                let mut labels: Vec<(String, Value)> = Vec::new();
                for (word, at) in tx.words(u, S, k, Split::Exec) {
                    let (key, value) = word.split_once('=').unwrap_or((word.as_str(), ""));
                    if key.starts_with("io.berth.") {
                        tx.drop(
                            u,
                            k,
                            at,
                            format!(
                                "`{key}`: labels under io.berth. are berth's \
                                 own"
                            ),
                        );
                        continue;
                    }
                    labels.retain(|(k, _)| k != key);
                    labels.push((key.to_string(), Value::str(value)));
                }
                if !labels.is_empty() {
                    t.set_noted("labels", Value::Inline(labels), from("Label"));
                }
            }
            "User" => {
                let user = tx.one(u, S, "User");
                let group = tx.one(u, S, "Group");
                match (user, group) {
                    (Some((user, _)), Some((group, _))) => t.set_noted(
                        "user",
                        Value::Str(format!("{user}:{group}")),
                        from("User and Group"),
                    ),
                    (Some((user, _)), None) => t.set_noted("user", Value::Str(user), from("User")),
                    (None, _) => {}
                }
            }
            "Group" => {
                if section.last("User").is_none() && section.last("Group").is_some() {
                    tx.drop(
                        u,
                        k,
                        at,
                        "Group needs User (Quadlet refuses it alone): set User too",
                    );
                }
            }
            "GroupAdd" => {
                let groups: Vec<String> = tx.each(u, S, k).into_iter().map(|(g, _)| g).collect();
                if !groups.is_empty() {
                    t.set_noted("groups", Value::strings(groups), from("GroupAdd"));
                }
            }
            "WorkingDir" => {
                if let Some((dir, _)) = tx.one(u, S, k) {
                    t.set_noted("workdir", Value::Str(dir), from("WorkingDir"));
                }
            }
            "HostName" => {
                if let Some((h, _)) = tx.one(u, S, k) {
                    t.set_noted("hostname", Value::Str(h), from("HostName"));
                }
            }
            "ReadOnly" => {
                if let Some(ro) = flag(tx, u, k) {
                    t.set_noted("read_only", Value::Bool(ro), from("ReadOnly"));
                    read_only_tmpfs = ro
                        && section
                            .last("ReadOnlyTmpfs")
                            .and_then(|e| boolean(&e.value))
                            .unwrap_or(true);
                }
            }
            "ReadOnlyTmpfs" => {
                flag(tx, u, k);
            }
            "AddCapability" | "DropCapability" => {
                let berth = if k == "AddCapability" {
                    "cap_add"
                } else {
                    "cap_drop"
                };
                let mut caps = Vec::new();
                for (c, at) in tx.words(u, S, k, Split::Words) {
                    match c.parse::<crate::spec::capability::Capability>() {
                        Ok(cap) => caps.push(cap.to_string()),
                        Err(e) => tx.drop(u, k, at, e.to_string()),
                    }
                }
                if !caps.is_empty() {
                    t.set_noted(berth, Value::strings(caps), from(k));
                }
            }
            "NoNewPrivileges" => {
                flag(tx, u, k);
                t.comments
                    .push("NoNewPrivileges: berth always sets no_new_privs".into());
            }
            "AddDevice" => devices(tx, u, &mut t),
            "Sysctl" => {
                let mut sysctls = Vec::new();
                for (w, at) in tx.words(u, S, k, Split::Words) {
                    match w.split_once('=') {
                        Some((key, value)) => sysctls.push((key.to_string(), Value::str(value))),
                        None => tx.drop(u, k, at, format!("`{w}`: expected NAME=VALUE")),
                    }
                }
                if !sysctls.is_empty() {
                    t.set_noted("sysctls", Value::Inline(sysctls), from("Sysctl"));
                }
            }
            "Ulimit" => ulimits(tx, u, &mut t),
            "ShmSize" | "Memory" => {
                let berth = if k == "ShmSize" { "shm_size" } else { "memory" };
                if let Some((v, at)) = tx.one(u, S, k) {
                    match values::size(&v) {
                        Some(size) => t.set_noted(
                            berth,
                            Value::Str(size),
                            vec![format!(
                                "translated from {k}={v} (podman's units are binary)"
                            )],
                        ),
                        None => tx.drop(u, k, at, format!("`{v}` is not a size such as 64m")),
                    }
                }
            }
            "PidsLimit" => {
                if let Some((v, at)) = tx.one(u, S, k) {
                    match v.parse::<i64>() {
                        Ok(n) if n > 0 => t.set_noted("pids", Value::Int(n), from("PidsLimit")),
                        _ => tx.drop(
                            u,
                            k,
                            at,
                            "expected a positive number (berth has no \
                             unlimited pids)",
                        ),
                    }
                }
            }
            "RunInit" => {
                if let Some(b) = flag(tx, u, k) {
                    t.set_noted("init", Value::Bool(b), from("RunInit"));
                }
            }
            "SeccompProfile" => {
                if let Some((v, at)) = tx.one(u, S, k) {
                    if v == "unconfined" || v.starts_with('/') {
                        t.set_noted("seccomp", Value::Str(v), from("SeccompProfile"));
                    } else {
                        tx.drop(
                            u,
                            k,
                            at,
                            "podman resolves a relative profile path against the \
                             service's working directory: write an absolute path",
                        );
                    }
                }
            }
            "Secret" => secrets(tx, u, &mut t),
            "HealthCmd" => {
                if let Some((cmd, at)) = tx.one(u, S, k) {
                    match health_cmd(&cmd) {
                        Ok(Some((exec, note))) => {
                            health.insert(0, ("exec".into(), Value::strings(exec)));
                            health_notes.push(note);
                        }
                        Ok(None) => health_disabled = true,
                        Err(reason) => tx.drop(u, k, at, reason),
                    }
                }
            }
            "HealthInterval" | "HealthTimeout" | "HealthStartPeriod" => {
                let berth = match k {
                    "HealthInterval" => "interval",
                    "HealthTimeout" => "timeout",
                    _ => "start_period",
                };
                if let Some((v, at)) = tx.one(u, S, k) {
                    match values::duration(&v) {
                        Some(d) => health.push((berth.into(), Value::Str(d))),
                        None if v == "disable" => tx.drop(
                            u,
                            k,
                            at,
                            "berth checks on an interval; without one, leave the health check out",
                        ),
                        None => tx.drop(u, k, at, format!("`{v}` is not a duration such as 30s")),
                    }
                }
            }
            "HealthRetries" => {
                if let Some((v, at)) = tx.one(u, S, k) {
                    match v.parse::<i64>() {
                        Ok(n) => health.push(("retries".into(), Value::Int(n))),
                        Err(_) => tx.drop(u, k, at, "expected a number"),
                    }
                }
            }
            "StopSignal" => {
                if let Some((v, at)) = tx.one(u, S, k) {
                    match v.parse::<crate::spec::signal::Signal>() {
                        Ok(_) => t.set_noted("stop_signal", Value::Str(v), from("StopSignal")),
                        Err(e) => tx.drop(u, k, at, e.to_string()),
                    }
                }
            }
            "StopTimeout" => {
                if let Some((v, at)) = tx.one(u, S, k) {
                    match v.parse::<u64>() {
                        Ok(secs) => t.set_noted(
                            "stop_timeout",
                            Value::Str(format!("{secs}s")),
                            from("StopTimeout (seconds)"),
                        ),
                        Err(_) => tx.drop(u, k, at, "expected a number of seconds"),
                    }
                }
            }
            "Pull" => {}
            "DNS" | "DNSSearch" | "DNSOption" => {
                let berth = match k {
                    "DNS" => "dns",
                    "DNSSearch" => "dns_search",
                    _ => "dns_options",
                };
                let list: Vec<String> = tx.each(u, S, k).into_iter().map(|(v, _)| v).collect();
                if list.iter().any(|v| v == "none") {
                    tx.drop(u, k, at, "`none` (no resolv.conf) has no berth equivalent");
                } else if !list.is_empty() {
                    t.set_noted(berth, Value::strings(list), from(k));
                }
            }
            "AddHost" => {
                let list: Vec<String> = tx.each(u, S, k).into_iter().map(|(v, _)| v).collect();
                if !list.is_empty() {
                    t.set_noted("extra_hosts", Value::strings(list), from("AddHost"));
                }
            }
            "ExposeHostPort" => t.comments.push(
                "ExposeHostPort: nothing to carry: containers on a network reach each \
                 other's ports"
                    .into(),
            ),
            "Notify" => {
                if let Some((v, at)) = tx.one(u, S, k)
                    && !v.eq_ignore_ascii_case("healthy")
                    && boolean(&v) == Some(true)
                {
                    tx.drop(
                        u,
                        k,
                        at,
                        "berth does not pass a notify socket into containers; it \
                         starts dependents when the container runs (or is healthy: Notify=healthy)",
                    );
                }
            }
            "ServiceName" | "StartWithPod" => {}
            "PodmanArgs" | "GlobalArgs" => tx.drop(
                u,
                k,
                at,
                "raw podman arguments are not translated: write the berth keys they stand for",
            ),
            "Pod" => tx.drop(
                u,
                k,
                at,
                "berth has no pods: the container runs on its own; put the pod's containers on \
                 a common network",
            ),
            "AutoUpdate" => tx.drop(
                u,
                k,
                at,
                "podman auto-update has no direct equivalent: to follow the tag, give the \
                 image an [image.NAME] with pull = \"always\" (berth replaces the container \
                 when the digest changes)",
            ),
            "LogDriver" | "LogOpt" => tx.drop(
                u,
                k,
                at,
                "berth writes rotated log files itself (`log = { max_size, max_files }`)",
            ),
            "SecurityLabelDisable"
            | "SecurityLabelFileType"
            | "SecurityLabelLevel"
            | "SecurityLabelNested"
            | "SecurityLabelType" => tx.drop(u, k, at, "berth does not set SELinux labels"),
            "UserNS" | "UIDMap" | "GIDMap" | "SubUIDMap" | "SubGIDMap" | "RemapUsers"
            | "RemapUid" | "RemapGid" | "RemapUidSize" => {
                tx.drop(u, k, at, "berth runs containers without a user namespace")
            }
            "Rootfs" => tx.drop(u, k, at, "berth runs images, not host directories as roots"),
            "Mask" | "Unmask" => tx.drop(u, k, at, "berth's masked paths are fixed"),
            _ => tx.drop(u, k, at, "no berth equivalent"),
        }
    }
    if !env.is_empty() {
        t.set_noted("env", Value::Inline(env), from("Environment"));
    }
    if !health.is_empty() && !health_disabled {
        if health.iter().any(|(k, _)| k == "exec") {
            t.set_noted("health", Value::Inline(health), health_notes);
        } else if let Some((_, at)) = keys.iter().find(|(k, _)| k.starts_with("Health")) {
            tx.drop(
                u,
                "HealthCmd",
                *at,
                "health settings without HealthCmd: berth does not run the image's \
                 HEALTHCHECK; write one",
            );
        }
    }
    networks::translate(tx, u, &name, &mut t);
    if read_only_tmpfs {
        // podman mounts these on a read-only container unless something else is there.
        let taken: Vec<String> = mounts.iter().filter_map(mounts::target).collect();
        let dirs: Vec<&str> = ["/run", "/tmp", "/var/tmp"]
            .into_iter()
            .filter(|d| !taken.iter().any(|t| t == d))
            .collect();
        if !dirs.is_empty() {
            mounts.extend(dirs.iter().map(|d| Value::Str(format!("tmpfs:{d}"))));
            mount_notes.push(format!(
                "tmpfs {}: podman's ReadOnlyTmpfs (on by default) mounts them on a read-only \
                 container",
                dirs.join(", ")
            ));
        }
    }
    if !mounts.is_empty() {
        t.set_noted("mounts", Value::Array(mounts), mount_notes);
    }
    service::translate(tx, u, &mut t);
    if !t.lines.iter().any(|(k, _, _)| k == "image") {
        if section.last("Image").is_none() {
            tx.drop(
                u,
                "Image",
                section.at,
                "a container needs an Image; the container was not imported",
            );
        }
        return None;
    }
    t.lines.sort_by_key(|(k, _, _)| k != "image");
    Some((name, t))
}

fn flag(tx: &mut Tx<'_>, u: &Parsed, key: &str) -> Option<bool> {
    let (v, at) = tx.one(u, S, key)?;
    let b = boolean(&v);
    if b.is_none() {
        tx.drop(u, key, at, format!("`{v}` is not a boolean"));
    }
    b
}

fn image(tx: &mut Tx<'_>, u: &Parsed, name: &str, t: &mut Table) {
    let Some((image, at)) = tx.one(u, S, "Image") else {
        return;
    };
    if image.ends_with(".image") || image.ends_with(".build") {
        tx.drop(
            u,
            "Image",
            at,
            format!(
                "`{image}` names a Quadlet image unit, which is not imported: write the \
                 image reference"
            ),
        );
        return;
    }
    let src = match image.parse::<crate::spec::image_ref::ImageSource>() {
        Ok(s) => s,
        Err(e) => {
            tx.drop(u, "Image", at, e.to_string());
            return;
        }
    };
    let canonical = src.to_string();
    let mut notes = if canonical == image {
        Vec::new()
    } else {
        vec![format!(
            "translated from `{image}` (podman resolves short names through registries.conf; \
             docker.io assumed)"
        )]
    };
    let pull = tx.one(u, S, "Pull");
    let policy = match pull.as_ref().map(|(p, _)| p.as_str()) {
        None | Some("missing") => None,
        Some("always") => Some(("always", "Pull=always")),
        Some("newer") => Some((
            "always",
            "Pull=newer (berth re-resolves the tag on every pass)",
        )),
        Some("never") => Some(("never", "Pull=never")),
        Some(other) => {
            let at = pull.as_ref().map_or(at, |(_, at)| *at);
            tx.drop(u, "Pull", at, format!("`{other}` is not a pull policy"));
            None
        }
    };
    match policy {
        None => t.set_noted("image", Value::Str(canonical), notes),
        Some((policy, note)) => {
            let mut image_table = Table::new("image", name);
            image_table.comments = vec![format!("the image of {}", u.shown)];
            image_table.set_noted("reference", Value::Str(canonical), notes.clone());
            image_table.set_noted("pull", Value::str(policy), from(note));
            tx.images.push(image_table);
            notes = vec![format!(
                "the [image.{name}] table in 00-images.toml (for its Pull policy)"
            )];
            t.set_noted("image", Value::str(name), notes);
        }
    }
}

/// podman's `--entrypoint`: a JSON array, or one program whose name is the whole string.
fn entrypoint(tx: &mut Tx<'_>, u: &Parsed, at: At, v: &str, t: &mut Table) {
    if v.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<String>>(v) {
            Ok(words) => t.set_noted("entrypoint", Value::strings(words), from("Entrypoint")),
            Err(e) => tx.drop(
                u,
                "Entrypoint",
                at,
                format!("not a JSON array of strings: {e}"),
            ),
        }
    } else {
        t.set_noted(
            "entrypoint",
            Value::strings([v]),
            vec![
                "translated from Entrypoint (podman takes the whole value as the program; a \
                 JSON array gives arguments)"
                    .into(),
            ],
        );
    }
}

/// `HealthCmd` as podman reads it: a JSON array runs directly, a string through /bin/sh -c,
/// `CMD args…` directly, `none` disables. Ok(None): no check.
type Health = Option<(Vec<String>, String)>;

pub(crate) fn health_cmd(cmd: &str) -> Result<Health, String> {
    let shell = |c: &str| {
        Some((
            vec!["/bin/sh".to_string(), "-c".to_string(), c.to_string()],
            "translated from HealthCmd (a string runs through /bin/sh -c)".to_string(),
        ))
    };
    if let Ok(arr) = serde_json::from_str::<Vec<String>>(cmd) {
        return Ok(
            match arr.first().map(|s| s.to_ascii_uppercase()).as_deref() {
                None => return Err("an empty command".into()),
                Some("NONE") => None,
                Some("CMD") => Some((arr[1..].to_vec(), "translated from HealthCmd".into())),
                Some("CMD-SHELL") => shell(&arr[1..].join(" ")),
                _ if arr.len() > 1 => Some((arr, "translated from HealthCmd".into())),
                _ => shell(&arr[0]),
            },
        );
    }
    let first = cmd
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    Ok(match first.as_str() {
        "NONE" => None,
        "CMD" => Some((
            cmd.split_whitespace().skip(1).map(String::from).collect(),
            "translated from HealthCmd".into(),
        )),
        "CMD-SHELL" => shell(cmd.split_once(' ').map_or("", |(_, c)| c)),
        _ => shell(cmd),
    })
}

fn publish_port(tx: &mut Tx<'_>, u: &Parsed, at: At, p: &str) -> Option<String> {
    let body = p.split('/').next().unwrap_or_default();
    let host_port = if let Some(rest) = body.strip_prefix('[') {
        // [IPv6]:HOST:CONTAINER
        rest.split_once("]:")
            .and_then(|(_, r)| r.split_once(':'))
            .map(|(h, _)| h)
            .unwrap_or("")
    } else {
        let parts: Vec<&str> = body.rsplitn(3, ':').collect();
        parts.get(1).copied().unwrap_or_default()
    };
    if host_port.is_empty() {
        tx.drop(
            u,
            "PublishPort",
            at,
            format!(
                "`{p}` publishes on a random host port; berth needs a fixed one (HOST:CONTAINER)"
            ),
        );
        return None;
    }
    match p.parse::<crate::spec::port::PortRange>() {
        Ok(_) => Some(p.to_string()),
        Err(e) => {
            tx.drop(u, "PublishPort", at, e.to_string());
            None
        }
    }
}

fn devices(tx: &mut Tx<'_>, u: &Parsed, t: &mut Table) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (d, at) in tx.words(u, S, "AddDevice", Split::Words) {
        let (optional, d) = match d.strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, d),
        };
        let host = d.split(':').next().unwrap_or_default();
        if optional {
            if !Path::new(host).exists() {
                notes.push(format!(
                    "{d}: optional (`-`) and absent on this host at import \
                     time: left out, as Quadlet does"
                ));
                continue;
            }
            notes.push(format!(
                "{d}: optional (`-`) and present on this host at import time"
            ));
        }
        match d.parse::<crate::spec::device::DeviceMapping>() {
            Ok(_) => out.push(d),
            Err(e) => tx.drop(u, "AddDevice", at, e.to_string()),
        }
    }
    if !out.is_empty() || !notes.is_empty() {
        notes.insert(0, "translated from AddDevice".into());
        t.set_noted("devices", Value::strings(out), notes);
    }
}

fn ulimits(tx: &mut Tx<'_>, u: &Parsed, t: &mut Table) {
    let mut out: Vec<(String, Value)> = Vec::new();
    for (v, at) in tx.each(u, S, "Ulimit") {
        let Some((name, limits)) = v.split_once('=') else {
            tx.drop(
                u,
                "Ulimit",
                at,
                format!("`{v}`: expected NAME=SOFT[:HARD] (`host` has no berth equivalent)"),
            );
            continue;
        };
        let parse = |s: &str| s.parse::<i64>().ok();
        let value = match limits.split_once(':') {
            None => parse(limits).map(Value::Int),
            Some((soft, hard)) => match (parse(soft), parse(hard)) {
                (Some(s), Some(h)) => Some(Value::Inline(vec![
                    ("soft".into(), Value::Int(s)),
                    ("hard".into(), Value::Int(h)),
                ])),
                _ => None,
            },
        };
        match value {
            Some(value) => {
                out.retain(|(k, _)| k != name);
                out.push((name.to_string(), value));
            }
            None => tx.drop(
                u,
                "Ulimit",
                at,
                format!("`{limits}` is not SOFT[:HARD] numbers"),
            ),
        }
    }
    if !out.is_empty() {
        t.set_noted("ulimits", Value::Inline(out), from("Ulimit"));
    }
}

fn secrets(tx: &mut Tx<'_>, u: &Parsed, t: &mut Table) {
    let mut out = Vec::new();
    for (spec, at) in tx.words(u, S, "Secret", Split::Exec) {
        let mut fields = spec.split(',');
        let source = fields.next().unwrap_or_default().to_string();
        let mut target = None;
        let mut table: Vec<(String, Value)> = Vec::new();
        let mut env = false;
        for f in fields {
            match f.split_once('=') {
                Some(("type", "mount")) => {}
                Some(("type", "env")) => env = true,
                Some(("target", p)) => target = Some(p.to_string()),
                Some(("uid" | "gid", n)) => match n.parse::<i64>() {
                    Ok(id) => table.push((f[..3].to_string(), Value::Int(id))),
                    Err(_) => tx.drop(u, "Secret", at, format!("`{f}`: expected a number")),
                },
                Some(("mode", m)) => match values::octal_mode(m) {
                    Some(mode) => table.push(("mode".into(), Value::Str(mode))),
                    None => tx.drop(u, "Secret", at, format!("`{f}`: expected an octal mode")),
                },
                _ => tx.drop(
                    u,
                    "Secret",
                    at,
                    format!("secret option `{f}` has no berth equivalent"),
                ),
            }
        }
        let Some(name) = berth_name(&source) else {
            tx.drop(
                u,
                "Secret",
                at,
                format!("`{source}` cannot be made a berth name"),
            );
            continue;
        };
        tx.secrets
            .entry(source.clone())
            .or_insert_with(|| (name.clone(), u.file_of(at), at));
        if env {
            // podman's type=env: `target` names the variable (default: the secret's name).
            if !table.is_empty() {
                tx.drop(
                    u,
                    "Secret",
                    at,
                    "uid, gid and mode apply to a secret file, not to an environment variable",
                );
            }
            let var = target.unwrap_or_else(|| source.clone());
            out.push(Value::Inline(vec![
                ("name".into(), Value::Str(name)),
                ("env".into(), Value::Str(var)),
            ]));
            continue;
        }
        let target = match target {
            Some(p) if p.starts_with('/') => p,
            Some(p) => format!("/run/secrets/{p}"),
            None => format!("/run/secrets/{source}"),
        };
        table.insert(0, ("name".into(), Value::Str(name.clone())));
        if target != format!("/run/secrets/{name}") {
            table.insert(1, ("target".into(), Value::Str(target)));
        }
        out.push(if table.len() == 1 {
            Value::Str(name)
        } else {
            Value::Inline(table)
        });
    }
    if !out.is_empty() {
        t.set_noted("secrets", Value::Array(out), from("Secret"));
    }
}
