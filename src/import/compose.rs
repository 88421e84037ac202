//! A Compose model (already interpolated) translated into berth tables: one per service,
//! network, volume, secret and config, with a note for each key translated and a
//! [`Dropped`] for each key that could not be carried over.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::Dropped;
use super::interpolate::Variables;
use super::toml_out::{Table, Value};
use super::values;
use super::yaml::{Entry, Kind, Node, Pos};

/// What the translation needs to know about its surroundings.
pub(crate) struct Context<'a> {
    /// The Compose file's directory (absolute): relative paths in the file start there.
    pub compose_dir: &'a Path,
    /// The output directory (absolute): relative paths written start there.
    pub out_dir: &'a Path,
    pub vars: &'a Variables,
    /// /24 networks for Compose networks that name no subnet are taken from here.
    pub subnet_pool: ipnet::Ipv4Net,
}

/// The translated project.
#[derive(Debug, Default)]
pub(crate) struct Project {
    /// Per service (berth name): its tables.
    pub services: BTreeMap<String, Vec<Table>>,
    pub networks: Vec<Table>,
    pub volumes: Vec<Table>,
    pub secrets: Vec<Table>,
    pub configs: Vec<Table>,
    pub dropped: Vec<Dropped>,
    pub services_total: usize,
}

struct Tx<'a> {
    cx: &'a Context<'a>,
    out: Project,
    /// Compose name → berth name, per kind; only entries that were translated.
    services: BTreeMap<String, String>,
    networks: BTreeMap<String, String>,
    volumes: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    configs: BTreeMap<String, String>,
    uses_default_network: bool,
}

impl Tx<'_> {
    fn drop(&mut self, scope: &str, key: &str, at: Pos, reason: impl Into<String>) {
        self.out.dropped.push(Dropped {
            scope: scope.to_string(),
            key: key.to_string(),
            at,
            reason: reason.into(),
            file: None,
        });
    }
}

pub(crate) fn translate(doc: &Node, cx: &Context<'_>) -> Project {
    let mut tx = Tx {
        cx,
        out: Project::default(),
        services: BTreeMap::new(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        secrets: BTreeMap::new(),
        configs: BTreeMap::new(),
        uses_default_network: false,
    };
    if !matches!(doc.kind, Kind::Map(_)) {
        tx.drop(
            "file",
            "",
            doc.at,
            "a Compose file is a mapping with `services:`",
        );
        return tx.out;
    }
    for e in doc.entries() {
        match e.key.as_str() {
            "services" | "networks" | "volumes" | "secrets" | "configs" => {}
            // Obsolete or naming only: no behaviour to carry.
            "version" | "name" => {}
            k if k.starts_with("x-") => {}
            "include" => tx.drop(
                "file",
                "include",
                e.key_at,
                "included Compose files are not read: import each one",
            ),
            k => tx.drop("file", k, e.key_at, "not a Compose top-level key"),
        }
    }
    let empty = Node {
        at: doc.at,
        kind: Kind::Map(Vec::new()),
    };
    // Names first, so that references between kinds resolve whatever the order.
    for (kind, map) in [
        ("networks", &mut tx.networks),
        ("volumes", &mut tx.volumes),
        ("secrets", &mut tx.secrets),
        ("configs", &mut tx.configs),
        ("services", &mut tx.services),
    ] {
        for e in doc.get(kind).unwrap_or(&empty).entries() {
            let sourced = match kind {
                "secrets" => e.value.get("file").is_some(),
                "configs" => {
                    e.value.get("file").is_some()
                        || e.value.get("content").is_some()
                        || e.value
                            .get("environment")
                            .and_then(Node::as_str)
                            .is_some_and(|v| cx.vars.get(v).is_some())
                }
                _ => true,
            };
            if !sourced {
                continue;
            }
            if let Some(n) = values::name(&e.key) {
                map.insert(e.key.clone(), n);
            }
        }
    }
    let services = doc.get("services").unwrap_or(&empty).entries().to_vec();
    tx.out.services_total = services.len();
    let buildable: BTreeSet<String> = services
        .iter()
        .filter(|s| s.value.get("image").is_none())
        .map(|s| s.key.clone())
        .collect();
    for name in &buildable {
        tx.services.remove(name);
    }
    for s in &services {
        service(&mut tx, s);
    }
    networks(&mut tx, doc.get("networks").unwrap_or(&empty));
    volumes(&mut tx, doc.get("volumes").unwrap_or(&empty));
    secrets(&mut tx, doc.get("secrets").unwrap_or(&empty));
    configs(&mut tx, doc.get("configs").unwrap_or(&empty));
    tx.out
}

fn renamed(compose: &str, berth: &str) -> Vec<String> {
    if compose == berth {
        Vec::new()
    } else {
        vec![format!(
            "translated from `{compose}` (berth names are lowercase letters, digits and `-`)"
        )]
    }
}

fn from(key: &str) -> Vec<String> {
    vec![format!("translated from {key}")]
}

fn strings(node: &Node) -> Option<Vec<String>> {
    match &node.kind {
        Kind::Seq(items) => items.iter().map(|i| i.as_str().map(String::from)).collect(),
        Kind::Scalar(s) => Some(vec![s.clone()]),
        Kind::Null => Some(Vec::new()),
        Kind::Map(_) => None,
    }
}

/// `KEY: value` maps and `["KEY=value"]` lists (Compose allows both for labels, env, sysctls).
fn pairs(node: &Node, sep: char) -> Option<Vec<(String, Option<String>)>> {
    match &node.kind {
        Kind::Map(entries) => Some(
            entries
                .iter()
                .map(|e| (e.key.clone(), e.value.as_str().map(String::from)))
                .collect(),
        ),
        Kind::Seq(items) => items
            .iter()
            .map(|i| {
                let s = i.as_str()?;
                Some(match s.split_once(sep) {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (s.to_string(), None),
                })
            })
            .collect(),
        Kind::Null => Some(Vec::new()),
        Kind::Scalar(_) => None,
    }
}

fn int(node: &Node) -> Option<i64> {
    node.as_str()?.parse().ok()
}

fn service(tx: &mut Tx<'_>, s: &Entry) {
    let scope = format!("service {}", s.key);
    let node = &s.value;
    if !matches!(node.kind, Kind::Map(_)) {
        tx.drop(&scope, "", node.at, "a service is a mapping");
        return;
    }
    let Some(name) = tx.services.get(&s.key).cloned() else {
        if let Some(build) = node.get("build").filter(|_| node.get("image").is_none()) {
            let at = build.at;
            tx.drop(
                &scope,
                "build",
                at,
                "building images is not yet supported and the service names no image: \
                 build and push it, then set `image`; the service was not imported",
            );
        } else if node.get("image").is_none() {
            tx.drop(
                &scope,
                "image",
                s.key_at,
                "a service needs an image; the service was not imported",
            );
        } else {
            tx.drop(&scope, "", s.key_at, "the name cannot be made a berth name");
        }
        return;
    };
    let mut t = Table::new("container", &name);
    if name != s.key {
        t.comments = renamed(&s.key, &name);
    }
    let mut networks: Option<Vec<Value>> = None;
    let mut network_mode_set = false;
    let mut restart_set = false;
    let mut aliases: Vec<String> = Vec::new();
    let mut mounts: Vec<Value> = Vec::new();
    let mut mount_notes: Vec<String> = Vec::new();
    let mut env: Vec<(String, Value)> = Vec::new();
    let mut env_notes: Vec<String> = Vec::new();
    let mut limits = Limits::default();
    for e in node.entries() {
        let (k, v, at) = (e.key.as_str(), &e.value, e.key_at);
        let bad = |tx: &mut Tx<'_>, what: &str| {
            tx.drop(&scope, k, v.at, format!("expected {what}"));
        };
        match k {
            "image" => match v
                .as_str()
                .map(str::parse::<crate::spec::image_ref::ImageSource>)
            {
                Some(Ok(src)) => {
                    let canonical = src.to_string();
                    let notes = if Some(canonical.as_str()) == v.as_str() {
                        Vec::new()
                    } else {
                        vec![format!(
                            "translated from `{}` (berth needs the full reference)",
                            v.as_str().unwrap_or_default()
                        )]
                    };
                    t.set_noted("image", Value::Str(canonical), notes);
                }
                Some(Err(e)) => tx.drop(&scope, k, v.at, e.to_string()),
                None => bad(tx, "an image reference"),
            },
            "build" => tx.drop(
                &scope,
                k,
                at,
                "building images is not yet supported; the service runs `image` as pulled",
            ),
            "command" | "entrypoint" => {
                let words = match &v.kind {
                    Kind::Scalar(s) => values::shell_words(s),
                    Kind::Null => continue,
                    _ => strings(v),
                };
                match words {
                    Some(w) => t.set(k, Value::strings(w)),
                    None => bad(tx, "a command: a list, or a string with balanced quotes"),
                }
            }
            "environment" => match pairs(v, '=') {
                Some(list) => {
                    for (key, value) in list {
                        match value {
                            Some(value) => env.push((key, Value::Str(value))),
                            None => match tx.cx.vars.get(&key) {
                                Some(value) => {
                                    env_notes.push(format!(
                                        "{key}: value taken from the environment at import time"
                                    ));
                                    env.push((key, Value::str(value)));
                                }
                                None => tx.drop(
                                    &scope,
                                    &format!("environment.{key}"),
                                    v.at,
                                    "passed through from the environment, which does not set it",
                                ),
                            },
                        }
                    }
                }
                None => bad(tx, "a mapping or a list of NAME=VALUE"),
            },
            "env_file" => env_file(tx, &scope, v, &mut t),
            "working_dir" => t.set_noted(
                "workdir",
                Value::str(v.as_str().unwrap_or("/")),
                from("working_dir"),
            ),
            "user" => match v.as_str() {
                Some(u) => t.set("user", Value::str(u)),
                None => bad(tx, "USER[:GROUP]"),
            },
            "group_add" => match strings(v) {
                Some(g) => t.set_noted("groups", Value::strings(g), from("group_add")),
                None => bad(tx, "a list of groups"),
            },
            "hostname" => match v.as_str() {
                Some(h) => t.set("hostname", Value::str(h)),
                None => bad(tx, "a hostname"),
            },
            "labels" => match pairs(v, '=') {
                Some(l) => t.set(
                    "labels",
                    Value::Inline(
                        l.into_iter()
                            .map(|(k, v)| (k, Value::Str(v.unwrap_or_default())))
                            .collect(),
                    ),
                ),
                None => bad(tx, "a mapping or a list of KEY=VALUE"),
            },
            "container_name" => match v.as_str() {
                Some(c) if values::name(c).is_some() => {
                    aliases.push(values::name(c).unwrap_or_default());
                }
                _ => tx.drop(&scope, k, v.at, "not usable as a DNS alias"),
            },
            "networks" => networks = Some(attachments(tx, &scope, v)),
            "network_mode" => {
                network_mode_set = true;
                network_mode(tx, &scope, v, &mut t, &mut networks);
            }
            "ports" => ports(tx, &scope, v, &mut t),
            "expose" => {
                t.comments.push(
                    "expose: nothing to carry: containers on a network reach each other's ports"
                        .into(),
                );
            }
            "volumes" => volume_mounts(tx, &scope, v, &mut mounts, &mut mount_notes),
            "tmpfs" => match strings(v) {
                Some(list) => {
                    for item in list {
                        let m = tmpfs(tx, &scope, v.at, &item);
                        if m.as_str() != Some(&format!("tmpfs:{item}")) {
                            mount_notes.push(format!("translated from tmpfs: {item}"));
                        }
                        mounts.push(m);
                    }
                }
                None => bad(tx, "a path or a list of paths"),
            },
            "restart" => {
                restart_set = true;
                restart(tx, &scope, v, &mut t);
            }
            "deploy" => deploy(tx, &scope, v, &mut t, &mut limits, &mut restart_set),
            "mem_limit" => limits.memory = Some((v.clone(), k.to_string())),
            "cpus" => limits.cpus = Some((v.clone(), k.to_string())),
            "pids_limit" => limits.pids = Some((v.clone(), k.to_string())),
            "stop_signal" => match v.as_str() {
                Some(sig) => t.set("stop_signal", Value::str(sig)),
                None => bad(tx, "a signal"),
            },
            "stop_grace_period" => match v.as_str().and_then(values::duration) {
                Some(d) => t.set_noted("stop_timeout", Value::Str(d), from("stop_grace_period")),
                None => bad(tx, "a duration"),
            },
            "read_only" | "init" | "privileged" => match v.as_bool() {
                Some(b) => t.set(k, Value::Bool(b)),
                None => bad(tx, "true or false"),
            },
            "cap_add" | "cap_drop" | "dns_search" | "device_cgroup_rules" | "dns" => {
                match strings(v) {
                    Some(list) => t.set(k, Value::strings(list)),
                    None => bad(tx, "a list"),
                }
            }
            "dns_opt" => match strings(v) {
                Some(list) => t.set_noted("dns_options", Value::strings(list), from("dns_opt")),
                None => bad(tx, "a list"),
            },
            "extra_hosts" => match pairs(v, '=') {
                Some(list) => {
                    let hosts = list.into_iter().map(|(k, val)| match val {
                        Some(ip) => format!("{k}:{ip}"),
                        None => k,
                    });
                    t.set("extra_hosts", Value::strings(hosts));
                }
                None => bad(tx, "a list of HOST:IP"),
            },
            "sysctls" => match pairs(v, '=') {
                Some(list) => t.set(
                    "sysctls",
                    Value::Inline(
                        list.into_iter()
                            .map(|(k, v)| (k, Value::Str(v.unwrap_or_default())))
                            .collect(),
                    ),
                ),
                None => bad(tx, "a mapping or a list of NAME=VALUE"),
            },
            "ulimits" => ulimits(tx, &scope, v, &mut t),
            "devices" => devices(tx, &scope, v, &mut t),
            "shm_size" => match v.as_str().and_then(values::size) {
                Some(size) => t.set_noted(
                    "shm_size",
                    Value::Str(size),
                    vec![format!(
                        "translated from {} (Docker's units are binary)",
                        v.as_str().unwrap_or_default()
                    )],
                ),
                None => bad(tx, "a size such as 64m"),
            },
            "security_opt" => security_opt(tx, &scope, v, &mut t),
            "pid" | "ipc" => namespace(tx, &scope, k, v, &mut t),
            "healthcheck" => healthcheck(tx, &scope, v, &mut t),
            "depends_on" => depends_on(tx, &scope, v, &mut t),
            "logging" => logging(tx, &scope, v, &mut t),
            "secrets" => secret_refs(tx, &scope, v, &mut t, true),
            "configs" => secret_refs(tx, &scope, v, &mut t, false),
            "links" => tx.drop(
                &scope,
                k,
                at,
                "containers on a shared network reach each other by name; link aliases are \
                 not carried over (add `aliases` to a network attachment)",
            ),
            "profiles" => tx.drop(
                &scope,
                k,
                at,
                "berth runs every described container; leave this file out to not run it",
            ),
            "stdin_open" | "tty" => tx.drop(&scope, k, at, "berth containers have no terminal"),
            "pull_policy" | "platform" => tx.drop(
                &scope,
                k,
                at,
                "not yet carried by the importer: write an [image.NAME] with `pull` / `platform`",
            ),
            k if k.starts_with("x-") => {}
            _ => tx.drop(&scope, k, at, "no berth equivalent"),
        }
    }
    if !env.is_empty() {
        t.set_noted("env", Value::Inline(env), env_notes);
    }
    limits.apply(tx, &scope, &mut t);
    let mut network_notes = Vec::new();
    if !network_mode_set && networks.is_none() {
        tx.uses_default_network = true;
        networks = Some(vec![Value::str("default")]);
        network_notes.push("Compose's default network".to_string());
    }
    if let Some(mut list) = networks {
        if !aliases.is_empty() {
            list = list
                .into_iter()
                .map(|a| with_aliases(a, &aliases))
                .collect();
            network_notes.push("container_name added as an alias on each network".into());
        }
        t.set_noted("networks", Value::Array(list), network_notes);
    } else if !aliases.is_empty() {
        tx.drop(
            &scope,
            "container_name",
            node.at,
            "an alias needs a network",
        );
    }
    if !mounts.is_empty() {
        t.set_noted("mounts", Value::Array(mounts), mount_notes);
    }
    if !restart_set {
        t.set_noted(
            "restart",
            Value::str("never"),
            vec!["Compose's default: no restart policy".into()],
        );
    }
    if !t.lines.iter().any(|(k, _, _)| k == "image") {
        // Its image was reported: a file without one would not load.
        tx.drop(
            &scope,
            "",
            s.key_at,
            "no usable image; the service was not imported",
        );
        return;
    }
    // `image` first: it is what a reader looks for.
    t.lines.sort_by_key(|(k, _, _)| k != "image");
    tx.out.services.insert(name, vec![t]);
}

fn with_aliases(attachment: Value, aliases: &[String]) -> Value {
    let mut entries = match attachment {
        Value::Str(name) => vec![("name".to_string(), Value::Str(name))],
        Value::Inline(e) => e,
        other => return other,
    };
    match entries.iter_mut().find(|(k, _)| k == "aliases") {
        Some((_, Value::Array(list))) => list.extend(aliases.iter().map(Value::str)),
        _ => entries.push(("aliases".into(), Value::strings(aliases.iter().cloned()))),
    }
    Value::Inline(entries)
}

fn env_file(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table) {
    let items: Vec<&Node> = match &v.kind {
        Kind::Seq(items) => items.iter().collect(),
        _ => vec![v],
    };
    let mut paths = Vec::new();
    for item in items {
        let path = match (&item.kind, item.get("path")) {
            (Kind::Scalar(p), _) => p.clone(),
            (Kind::Map(_), Some(p)) => {
                if item.get("required").and_then(Node::as_bool) == Some(false) {
                    tx.drop(
                        scope,
                        "env_file.required",
                        item.at,
                        "berth reads every env_file it names; a missing one is an error",
                    );
                }
                if item.get("format").is_some() {
                    tx.drop(
                        scope,
                        "env_file.format",
                        item.at,
                        "only Docker's env-file format is read",
                    );
                }
                p.as_str().unwrap_or_default().to_string()
            }
            _ => {
                tx.drop(scope, "env_file", item.at, "expected a path");
                continue;
            }
        };
        paths.push(tx.relative_out(&path));
    }
    if paths.is_empty() {
        return;
    }
    let notes =
        vec!["paths relative to this file (Compose's were relative to the Compose file)".into()];
    if paths.len() == 1 {
        t.set_noted("env_file", Value::Str(paths.remove(0)), notes);
    } else {
        t.set_noted("env_file", Value::strings(paths), notes);
    }
}

impl Tx<'_> {
    /// A path from the Compose file, relative to its directory, as a path relative to the
    /// output directory (absolute paths stay).
    fn relative_out(&self, path: &str) -> String {
        if path.starts_with('/') {
            return path.to_string();
        }
        let abs = values::normal(&self.cx.compose_dir.join(path));
        values::relative(self.cx.out_dir, &abs)
            .display()
            .to_string()
    }

    fn absolute(&self, path: &str) -> PathBuf {
        values::normal(&self.cx.compose_dir.join(path))
    }
}

fn attachments(tx: &mut Tx<'_>, scope: &str, v: &Node) -> Vec<Value> {
    let mut out = Vec::new();
    let list: Vec<(String, Pos, Option<&Node>)> = match &v.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(|s| (s.to_string(), i.at, None)))
            .collect(),
        Kind::Map(entries) => entries
            .iter()
            .map(|e| (e.key.clone(), e.key_at, Some(&e.value)))
            .collect(),
        _ => Vec::new(),
    };
    for (compose, at, settings) in list {
        let name = if compose == "default" {
            tx.uses_default_network = true;
            "default".to_string()
        } else if let Some(n) = tx.networks.get(&compose) {
            n.clone()
        } else {
            tx.drop(
                scope,
                &format!("networks.{compose}"),
                at,
                "not declared under top-level `networks`",
            );
            continue;
        };
        let mut entries = vec![("name".to_string(), Value::Str(name.clone()))];
        for e in settings.map(Node::entries).unwrap_or_default() {
            match e.key.as_str() {
                "ipv4_address" => {
                    if let Some(ip) = e.value.as_str() {
                        entries.push(("ip".into(), Value::str(ip)));
                    }
                }
                "aliases" => {
                    let list: Vec<String> = strings(&e.value)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|a| values::name(&a))
                        .collect();
                    entries.push(("aliases".into(), Value::strings(list)));
                }
                other => tx.drop(
                    scope,
                    &format!("networks.{compose}.{other}"),
                    e.key_at,
                    "no berth equivalent (IPv4 address and aliases are carried)",
                ),
            }
        }
        out.push(if entries.len() == 1 {
            Value::Str(name)
        } else {
            Value::Inline(entries)
        });
    }
    out
}

fn network_mode(
    tx: &mut Tx<'_>,
    scope: &str,
    v: &Node,
    t: &mut Table,
    networks: &mut Option<Vec<Value>>,
) {
    let mode = v.as_str().unwrap_or_default();
    match mode {
        "host" | "none" => t.set("network", Value::str(mode)),
        "bridge" | "default" => {
            tx.uses_default_network = true;
            networks
                .get_or_insert_with(Vec::new)
                .push(Value::str("default"));
        }
        _ if mode.starts_with("service:") || mode.starts_with("container:") => {
            if let Some(owner) = joined_service(tx, scope, "network_mode", v) {
                t.set_noted(
                    "network",
                    Value::str(format!("container:{owner}")),
                    vec![format!("translated from network_mode: {mode}")],
                );
            }
        }
        _ => tx.drop(
            scope,
            "network_mode",
            v.at,
            format!("`{mode}` is not a network mode"),
        ),
    }
}

/// The berth name of the service a `service:NAME` value joins. `container:NAME` names a
/// container outside the project, which berth cannot join.
fn joined_service(tx: &mut Tx<'_>, scope: &str, key: &str, v: &Node) -> Option<String> {
    let mode = v.as_str().unwrap_or_default();
    let Some(service) = mode.strip_prefix("service:") else {
        tx.drop(
            scope,
            key,
            v.at,
            "`container:NAME` joins a container outside this project; berth joins only its own containers: write `service:NAME` for a service of this file",
        );
        return None;
    };
    match tx.services.get(service).cloned() {
        Some(owner) => Some(owner),
        None => {
            tx.drop(
                scope,
                key,
                v.at,
                format!("service `{service}` is not imported, so its namespaces cannot be joined"),
            );
            None
        }
    }
}

fn ports(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table) {
    let Kind::Seq(items) = &v.kind else {
        tx.drop(scope, "ports", v.at, "expected a list");
        return;
    };
    let mut out = Vec::new();
    for item in items {
        let text = match &item.kind {
            Kind::Scalar(s) => s.clone(),
            Kind::Map(_) => {
                let get = |k: &str| item.get(k).and_then(Node::as_str);
                let (Some(target), Some(published)) = (get("target"), get("published")) else {
                    tx.drop(
                        scope,
                        "ports",
                        item.at,
                        "berth publishes on a fixed host port: set `published`",
                    );
                    continue;
                };
                let mut s = match get("host_ip") {
                    Some(ip) => format!("{ip}:{published}:{target}"),
                    None => format!("{published}:{target}"),
                };
                if let Some(p) = get("protocol") {
                    s.push('/');
                    s.push_str(p);
                }
                s
            }
            _ => continue,
        };
        let body = text.split('/').next().unwrap_or_default();
        let parts: Vec<&str> = body.rsplitn(3, ':').collect();
        let host_port = parts.get(1).copied().unwrap_or_default();
        if host_port.is_empty() {
            tx.drop(
                scope,
                "ports",
                item.at,
                format!("`{text}` publishes on a random host port; berth needs a fixed one (HOST:CONTAINER)"),
            );
            continue;
        }
        out.push(Value::Str(text));
    }
    if !out.is_empty() {
        t.set("ports", Value::Array(out));
    }
}

fn volume_mounts(
    tx: &mut Tx<'_>,
    scope: &str,
    v: &Node,
    mounts: &mut Vec<Value>,
    notes: &mut Vec<String>,
) {
    let Kind::Seq(items) = &v.kind else {
        tx.drop(scope, "volumes", v.at, "expected a list");
        return;
    };
    for item in items {
        let (kind, source, target, mut read_only, mut nocopy, opts) = match &item.kind {
            Kind::Scalar(s) => {
                let parts: Vec<&str> = s.splitn(3, ':').collect();
                match parts.as_slice() {
                    [_] => {
                        tx.drop(scope, "volumes", item.at, format!("`{s}` is an anonymous volume: berth volumes are named (declare one and mount it)"));
                        continue;
                    }
                    [src, dst, rest @ ..] => {
                        let opts: Vec<String> = rest
                            .first()
                            .map(|o| o.split(',').map(String::from).collect())
                            .unwrap_or_default();
                        let kind = if src.starts_with(['/', '.', '~']) {
                            "bind"
                        } else {
                            "volume"
                        };
                        (
                            kind.to_string(),
                            src.to_string(),
                            dst.to_string(),
                            false,
                            false,
                            opts,
                        )
                    }
                    [] => continue,
                }
            }
            Kind::Map(_) => {
                let get = |k: &str| {
                    item.get(k)
                        .and_then(Node::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let mut opts = Vec::new();
                for e in item.entries() {
                    match e.key.as_str() {
                        "type" | "source" | "target" | "read_only" | "consistency" => {}
                        "volume" => {
                            for o in e.value.entries() {
                                if o.key == "nocopy" && o.value.as_bool() == Some(true) {
                                    opts.push("nocopy".into());
                                } else if o.key != "nocopy" {
                                    tx.drop(
                                        scope,
                                        &format!("volumes.volume.{}", o.key),
                                        o.key_at,
                                        "no berth equivalent",
                                    );
                                }
                            }
                        }
                        "bind" => {
                            for o in e.value.entries() {
                                match o.key.as_str() {
                                    "selinux" => {
                                        opts.push(o.value.as_str().unwrap_or("z").to_string())
                                    }
                                    "propagation" => {
                                        opts.push(o.value.as_str().unwrap_or_default().to_string())
                                    }
                                    "create_host_path" => {}
                                    _ => tx.drop(
                                        scope,
                                        &format!("volumes.bind.{}", o.key),
                                        o.key_at,
                                        "no berth equivalent",
                                    ),
                                }
                            }
                        }
                        "tmpfs" => {
                            let mut s = format!("tmpfs:{}", get("target"));
                            let mut o = Vec::new();
                            if let Some(size) = e
                                .value
                                .get("size")
                                .and_then(Node::as_str)
                                .and_then(values::size)
                            {
                                o.push(format!("size={size}"));
                            }
                            if let Some(mode) = e
                                .value
                                .get("mode")
                                .and_then(Node::as_str)
                                .and_then(values::octal_mode)
                            {
                                o.push(format!("mode={mode}"));
                            }
                            if !o.is_empty() {
                                s.push(':');
                                s.push_str(&o.join(","));
                            }
                            opts.push(format!("!{s}"));
                        }
                        other => tx.drop(
                            scope,
                            &format!("volumes.{other}"),
                            e.key_at,
                            "no berth equivalent",
                        ),
                    }
                }
                let ro = item
                    .get("read_only")
                    .and_then(Node::as_bool)
                    .unwrap_or(false);
                (get("type"), get("source"), get("target"), ro, false, opts)
            }
            _ => continue,
        };
        if kind == "tmpfs" {
            let tmpfs_text = opts
                .iter()
                .find_map(|o| o.strip_prefix('!'))
                .map(String::from)
                .unwrap_or_else(|| format!("tmpfs:{target}"));
            mounts.push(Value::Str(tmpfs_text));
            continue;
        }
        for o in &opts {
            match o.as_str() {
                "ro" => read_only = true,
                "rw" => read_only = false,
                "nocopy" if kind == "volume" => nocopy = true,
                "cached" | "delegated" | "consistent" => {}
                "z" | "Z" => tx.drop(scope, "volumes", item.at, format!("`{o}` (SELinux relabelling) is refused by berth: relabel the host path yourself")),
                other => tx.drop(scope, "volumes", item.at, format!("mount option `{other}` has no berth equivalent")),
            }
        }
        let mut suffix = if read_only {
            ":ro".to_string()
        } else {
            String::new()
        };
        if nocopy {
            suffix = format!(":{},nocopy", if read_only { "ro" } else { "rw" });
        }
        match kind.as_str() {
            "volume" => match tx.volumes.get(&source) {
                Some(vol) => mounts.push(Value::Str(format!("{vol}:{target}{suffix}"))),
                None => tx.drop(
                    scope,
                    "volumes",
                    item.at,
                    format!("volume `{source}` is not declared under top-level `volumes`"),
                ),
            },
            "bind" => {
                let src = if let Some(home) = source.strip_prefix("~/") {
                    match tx.cx.vars.get("HOME") {
                        Some(h) => format!("{h}/{home}"),
                        None => {
                            tx.drop(scope, "volumes", item.at, "`~` needs HOME");
                            continue;
                        }
                    }
                } else {
                    source.clone()
                };
                let written = tx.relative_out(&src);
                if written != source {
                    notes.push(format!(
                        "{written}: translated from {source} (relative to this file)"
                    ));
                }
                mounts.push(Value::Str(format!("{written}:{target}{suffix}")));
            }
            other => tx.drop(
                scope,
                "volumes",
                item.at,
                format!("mount type `{other}` has no berth equivalent"),
            ),
        }
    }
}

fn tmpfs(tx: &mut Tx<'_>, scope: &str, at: Pos, item: &str) -> Value {
    let (path, opts) = item.split_once(':').unwrap_or((item, ""));
    let mut kept = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o.split_once('=') {
            Some(("size", s)) => match values::size(s) {
                Some(size) => kept.push(format!("size={size}")),
                None => tx.drop(scope, "tmpfs", at, format!("size `{s}` is not a size")),
            },
            Some(("mode", m)) => match values::octal_mode(m) {
                Some(mode) => kept.push(format!("mode={mode}")),
                None => tx.drop(scope, "tmpfs", at, format!("mode `{m}` is not octal")),
            },
            _ => tx.drop(
                scope,
                "tmpfs",
                at,
                format!("tmpfs option `{o}` is not carried by the importer"),
            ),
        }
    }
    if kept.is_empty() {
        Value::Str(format!("tmpfs:{path}"))
    } else {
        Value::Str(format!("tmpfs:{path}:{}", kept.join(",")))
    }
}

fn restart(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table) {
    let policy = v.as_str().unwrap_or_default();
    match policy {
        "no" | "\"no\"" => t.set_noted("restart", Value::str("never"), vec!["translated from restart: \"no\"".into()]),
        "always" => t.set("restart", Value::str("always")),
        "unless-stopped" => t.set_noted(
            "restart",
            Value::str("always"),
            vec!["translated from unless-stopped: berth restarts until the container is removed from this directory".into()],
        ),
        p if p == "on-failure" || p.starts_with("on-failure:") => {
            t.set("restart", Value::str("on-failure"));
            if p.contains(':') {
                tx.drop(scope, "restart", v.at, "a maximum retry count has no berth equivalent (restarts back off instead)");
            }
        }
        _ => tx.drop(scope, "restart", v.at, format!("unknown policy `{policy}`")),
    }
}

#[derive(Default)]
struct Limits {
    memory: Option<(Node, String)>,
    cpus: Option<(Node, String)>,
    pids: Option<(Node, String)>,
}

impl Limits {
    fn apply(self, tx: &mut Tx<'_>, scope: &str, t: &mut Table) {
        if let Some((v, key)) = self.memory {
            match v.as_str().and_then(values::size) {
                Some(size) => t.set_noted(
                    "memory",
                    Value::Str(size),
                    vec![format!(
                        "translated from {key}: {} (Docker's units are binary)",
                        v.as_str().unwrap_or_default()
                    )],
                ),
                None => tx.drop(scope, &key, v.at, "expected a size such as 512m"),
            }
        }
        if let Some((v, key)) = self.cpus {
            match v.as_str().and_then(|s| s.parse::<f64>().ok()) {
                Some(c) => t.set_noted(
                    "cpus",
                    Value::Float(c),
                    if key == "cpus" {
                        Vec::new()
                    } else {
                        from(&key)
                    },
                ),
                None => tx.drop(scope, &key, v.at, "expected a number of CPUs"),
            }
        }
        if let Some((v, key)) = self.pids {
            match int(&v) {
                Some(p) if p > 0 => t.set_noted("pids", Value::Int(p), from(&key)),
                _ => tx.drop(
                    scope,
                    &key,
                    v.at,
                    "expected a positive number (berth has no unlimited pids)",
                ),
            }
        }
    }
}

fn deploy(
    tx: &mut Tx<'_>,
    scope: &str,
    v: &Node,
    t: &mut Table,
    limits: &mut Limits,
    restart_set: &mut bool,
) {
    for e in v.entries() {
        match e.key.as_str() {
            "replicas" if int(&e.value) == Some(1) => {}
            "resources" => {
                for r in e.value.entries() {
                    if r.key != "limits" {
                        tx.drop(
                            scope,
                            &format!("deploy.resources.{}", r.key),
                            r.key_at,
                            "berth sets limits only",
                        );
                        continue;
                    }
                    for l in r.value.entries() {
                        let key = format!("deploy.resources.limits.{}", l.key);
                        match l.key.as_str() {
                            "memory" => limits.memory = Some((l.value.clone(), key)),
                            "cpus" => limits.cpus = Some((l.value.clone(), key)),
                            "pids" => limits.pids = Some((l.value.clone(), key)),
                            _ => tx.drop(scope, &key, l.key_at, "no berth equivalent"),
                        }
                    }
                }
            }
            "restart_policy" => {
                for r in e.value.entries() {
                    match (r.key.as_str(), r.value.as_str()) {
                        ("condition", Some(c)) => {
                            let policy = match c {
                                "none" => "never",
                                "on-failure" => "on-failure",
                                _ => "always",
                            };
                            *restart_set = true;
                            t.set_noted(
                                "restart",
                                Value::str(policy),
                                from(&format!("deploy.restart_policy.condition: {c}")),
                            );
                        }
                        _ => tx.drop(
                            scope,
                            &format!("deploy.restart_policy.{}", r.key),
                            r.key_at,
                            "restart delays back off exponentially (set `backoff`)",
                        ),
                    }
                }
            }
            other => tx.drop(
                scope,
                &format!("deploy.{other}"),
                e.key_at,
                "berth runs one container per entry on one host",
            ),
        }
    }
}

fn ulimits(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table) {
    let mut out = Vec::new();
    for e in v.entries() {
        let value = match (&e.value.kind, int(&e.value)) {
            (_, Some(n)) => Value::Int(n),
            (Kind::Map(_), _) => match (
                e.value.get("soft").and_then(int),
                e.value.get("hard").and_then(int),
            ) {
                (Some(soft), Some(hard)) => Value::Inline(vec![
                    ("soft".into(), Value::Int(soft)),
                    ("hard".into(), Value::Int(hard)),
                ]),
                _ => {
                    tx.drop(
                        scope,
                        &format!("ulimits.{}", e.key),
                        e.key_at,
                        "expected { soft, hard }",
                    );
                    continue;
                }
            },
            _ => {
                tx.drop(
                    scope,
                    &format!("ulimits.{}", e.key),
                    e.key_at,
                    "expected a number or { soft, hard }",
                );
                continue;
            }
        };
        out.push((e.key.clone(), value));
    }
    if !out.is_empty() {
        t.set("ulimits", Value::Inline(out));
    }
}

fn devices(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table) {
    let Kind::Seq(items) = &v.kind else {
        tx.drop(scope, "devices", v.at, "expected a list");
        return;
    };
    let mut out = Vec::new();
    for item in items {
        match &item.kind {
            Kind::Scalar(s) => out.push(s.clone()),
            Kind::Map(_) => {
                let get = |k: &str| item.get(k).and_then(Node::as_str);
                let Some(src) = get("source") else {
                    tx.drop(scope, "devices", item.at, "expected `source`");
                    continue;
                };
                let mut s = src.to_string();
                s.push(':');
                s.push_str(get("target").unwrap_or(src));
                if let Some(p) = get("permissions") {
                    s.push(':');
                    s.push_str(p);
                }
                out.push(s);
            }
            _ => tx.drop(
                scope,
                "devices",
                item.at,
                "expected HOST[:CONTAINER[:PERMS]]",
            ),
        }
    }
    t.set("devices", Value::strings(out));
}

fn security_opt(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table) {
    for opt in strings(v).unwrap_or_default() {
        let (k, val) = opt.split_once([':', '=']).unwrap_or((opt.as_str(), ""));
        match (k, val) {
            ("seccomp", "unconfined") => t.set("seccomp", Value::str("unconfined")),
            ("seccomp", path) => t.set_noted(
                "seccomp",
                Value::Str(tx.relative_out(path)),
                vec!["path relative to this file".into()],
            ),
            ("no-new-privileges", "true" | "") => {
                t.comments
                    .push("no-new-privileges: berth always sets it".into());
            }
            _ => tx.drop(
                scope,
                "security_opt",
                v.at,
                format!("`{opt}` has no berth equivalent"),
            ),
        }
    }
}

fn namespace(tx: &mut Tx<'_>, scope: &str, k: &str, v: &Node, t: &mut Table) {
    let mode = v.as_str().unwrap_or_default();
    match mode {
        "private" => {}
        "host" => tx.drop(
            scope,
            k,
            v.at,
            format!("sharing the host's {k} namespace is not offered: it exposes the host"),
        ),
        // Every berth container's IPC namespace can be joined.
        "shareable" if k == "ipc" => {}
        _ if mode.starts_with("service:") || mode.starts_with("container:") => {
            if let Some(owner) = joined_service(tx, scope, k, v) {
                t.set_noted(
                    k,
                    Value::str(format!("container:{owner}")),
                    vec![format!("translated from {k}: {mode}")],
                );
            }
        }
        _ => tx.drop(scope, k, v.at, format!("`{mode}` is not a {k} mode")),
    }
}

fn healthcheck(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table) {
    if v.get("disable").and_then(Node::as_bool) == Some(true) {
        return;
    }
    let mut health: Vec<(String, Value)> = Vec::new();
    let mut notes = Vec::new();
    for e in v.entries() {
        let key = format!("healthcheck.{}", e.key);
        match e.key.as_str() {
            "test" => {
                let words = match &e.value.kind {
                    Kind::Scalar(s) => Some(vec!["CMD-SHELL".to_string(), s.clone()]),
                    _ => strings(&e.value),
                };
                let exec = match words.as_deref() {
                    Some([first, rest @ ..]) if first == "CMD" => rest.to_vec(),
                    Some([first, cmd]) if first == "CMD-SHELL" => {
                        notes.push(
                            "translated from healthcheck.test (CMD-SHELL runs /bin/sh -c)".into(),
                        );
                        vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
                    }
                    Some([first]) if first == "NONE" => return,
                    _ => {
                        tx.drop(
                            scope,
                            &key,
                            e.value.at,
                            "expected [\"CMD\", …], [\"CMD-SHELL\", \"…\"] or a string",
                        );
                        return;
                    }
                };
                if notes.is_empty() {
                    notes.push("translated from healthcheck.test".into());
                }
                health.insert(0, ("exec".into(), Value::strings(exec)));
            }
            "interval" | "timeout" | "start_period" => {
                match e.value.as_str().and_then(values::duration) {
                    Some(d) => health.push((e.key.clone(), Value::Str(d))),
                    None => tx.drop(scope, &key, e.value.at, "expected a duration"),
                }
            }
            "retries" => match int(&e.value) {
                Some(n) => health.push(("retries".into(), Value::Int(n))),
                None => tx.drop(scope, &key, e.value.at, "expected a number"),
            },
            "start_interval" => tx.drop(
                scope,
                &key,
                e.key_at,
                "berth checks every second during start_period",
            ),
            "disable" => {}
            _ => tx.drop(scope, &key, e.key_at, "no berth equivalent"),
        }
    }
    if !health.iter().any(|(k, _)| k == "exec") {
        tx.drop(
            scope,
            "healthcheck",
            v.at,
            "no `test`: berth does not run the image's HEALTHCHECK; write one",
        );
        return;
    }
    t.set_noted("health", Value::Inline(health), notes);
}

fn depends_on(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let list: Vec<(String, Pos, Option<&Node>)> = match &v.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(|s| (s.to_string(), i.at, None)))
            .collect(),
        Kind::Map(entries) => entries
            .iter()
            .map(|e| (e.key.clone(), e.key_at, Some(&e.value)))
            .collect(),
        _ => Vec::new(),
    };
    for (dep, at, settings) in list {
        let Some(target) = tx.services.get(&dep).cloned() else {
            tx.drop(
                scope,
                &format!("depends_on.{dep}"),
                at,
                format!("service `{dep}` was not imported"),
            );
            continue;
        };
        let condition = settings
            .and_then(|s| s.get("condition"))
            .and_then(Node::as_str)
            .unwrap_or("service_started");
        let c = match condition {
            "service_started" => "started",
            "service_healthy" => "healthy",
            "service_completed_successfully" => "completed",
            other => {
                tx.drop(
                    scope,
                    &format!("depends_on.{dep}.condition"),
                    at,
                    format!("unknown condition `{other}`"),
                );
                continue;
            }
        };
        if settings.is_some() {
            notes.push(format!("{target}: translated from condition: {condition}"));
        }
        for e in settings.map(Node::entries).unwrap_or_default() {
            match (e.key.as_str(), e.value.as_bool()) {
                ("condition", _) | ("required", Some(true)) => {}
                ("restart", _) => tx.drop(
                    scope,
                    &format!("depends_on.{dep}.restart"),
                    e.key_at,
                    "berth does not restart a dependent when its dependency is replaced",
                ),
                ("required", _) => tx.drop(
                    scope,
                    &format!("depends_on.{dep}.required"),
                    e.key_at,
                    "every berth dependency is required",
                ),
                (k, _) => tx.drop(
                    scope,
                    &format!("depends_on.{dep}.{k}"),
                    e.key_at,
                    "no berth equivalent",
                ),
            }
        }
        out.push((target, Value::str(c)));
    }
    if !out.is_empty() {
        t.set_noted("depends_on", Value::Inline(out), notes);
    }
}

fn logging(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table) {
    let driver = v
        .get("driver")
        .and_then(Node::as_str)
        .unwrap_or("json-file");
    if !matches!(driver, "json-file" | "local") {
        tx.drop(
            scope,
            "logging.driver",
            v.at,
            format!("berth writes log files itself; the `{driver}` driver is not available"),
        );
        return;
    }
    let mut log = Vec::new();
    for o in v.get("options").map(Node::entries).unwrap_or_default() {
        match (o.key.as_str(), o.value.as_str()) {
            ("max-size", Some(s)) if values::size(s).is_some() => log.push((
                "max_size".to_string(),
                Value::Str(values::size(s).unwrap_or_default()),
            )),
            ("max-file", Some(n)) if n.parse::<i64>().is_ok() => {
                log.push(("max_files".to_string(), Value::Int(n.parse().unwrap_or(1))))
            }
            (k, _) => tx.drop(
                scope,
                &format!("logging.options.{k}"),
                o.key_at,
                "no berth equivalent",
            ),
        }
    }
    if !log.is_empty() {
        t.set_noted("log", Value::Inline(log), from("logging.options"));
    }
}

fn secret_refs(tx: &mut Tx<'_>, scope: &str, v: &Node, t: &mut Table, secret: bool) {
    let (kind, names) = if secret {
        ("secrets", &tx.secrets)
    } else {
        ("configs", &tx.configs)
    };
    let names = names.clone();
    let Kind::Seq(items) = &v.kind else {
        tx.drop(scope, kind, v.at, "expected a list");
        return;
    };
    let mut out = Vec::new();
    for item in items {
        let (source, fields) = match &item.kind {
            Kind::Scalar(s) => (s.clone(), Vec::new()),
            Kind::Map(entries) => (
                item.get("source")
                    .and_then(Node::as_str)
                    .unwrap_or_default()
                    .to_string(),
                entries.clone(),
            ),
            _ => continue,
        };
        let Some(name) = names.get(&source) else {
            tx.drop(
                scope,
                kind,
                item.at,
                format!("`{source}` is not declared under top-level `{kind}`, or was not imported"),
            );
            continue;
        };
        let mut table = vec![("name".to_string(), Value::Str(name.clone()))];
        let default_target = if secret {
            format!("/run/secrets/{source}")
        } else {
            format!("/{source}")
        };
        let mut target = default_target.clone();
        for f in &fields {
            let text = f.value.as_str().unwrap_or_default();
            match f.key.as_str() {
                "source" => {}
                "target" if secret && !text.starts_with('/') => {
                    target = format!("/run/secrets/{text}")
                }
                "target" => target = text.to_string(),
                "uid" | "gid" => match text.parse::<i64>() {
                    Ok(id) => table.push((f.key.clone(), Value::Int(id))),
                    Err(_) => tx.drop(
                        scope,
                        &format!("{kind}.{}", f.key),
                        f.key_at,
                        "expected a number",
                    ),
                },
                "mode" => match values::mode(text) {
                    Some(m) => table.push(("mode".into(), Value::Str(m))),
                    None => tx.drop(
                        scope,
                        &format!("{kind}.mode"),
                        f.key_at,
                        "expected an octal mode",
                    ),
                },
                other => tx.drop(
                    scope,
                    &format!("{kind}.{other}"),
                    f.key_at,
                    "no berth equivalent",
                ),
            }
        }
        let berth_default = if secret {
            format!("/run/secrets/{name}")
        } else {
            format!("/{name}")
        };
        if target != berth_default {
            table.insert(1, ("target".into(), Value::Str(target)));
        }
        out.push(if table.len() == 1 {
            Value::Str(name.clone())
        } else {
            Value::Inline(table)
        });
    }
    if !out.is_empty() {
        t.set(kind, Value::Array(out));
    }
}

fn networks(tx: &mut Tx<'_>, top: &Node) {
    let mut taken: Vec<ipnet::Ipv4Net> = top
        .entries()
        .iter()
        .filter_map(|e| ipam_subnet(&e.value))
        .filter_map(|s| s.parse().ok())
        .collect();
    let mut next = tx.cx.subnet_pool.subnets(24).into_iter().flatten().skip(1);
    let mut alloc = move |taken: &mut Vec<ipnet::Ipv4Net>| {
        let net =
            next.find(|n: &ipnet::Ipv4Net| !taken.iter().any(|t| t.contains(n) || n.contains(t)))?;
        taken.push(net);
        Some(net)
    };
    let mut entries: Vec<Entry> = top.entries().to_vec();
    if tx.uses_default_network && !entries.iter().any(|e| e.key == "default") {
        entries.insert(
            0,
            Entry {
                key: "default".into(),
                key_at: top.at,
                value: Node {
                    at: top.at,
                    kind: Kind::Null,
                },
            },
        );
    }
    for e in entries {
        let scope = format!("network {}", e.key);
        let name = if e.key == "default" {
            "default".to_string()
        } else if let Some(n) = tx.networks.get(&e.key) {
            n.clone()
        } else {
            tx.drop(&scope, "", e.key_at, "the name cannot be made a berth name");
            continue;
        };
        let mut t = Table::new("network", &name);
        t.comments = renamed(&e.key, &name);
        let subnet = match ipam_subnet(&e.value) {
            Some(s) => s,
            None => match alloc(&mut taken) {
                Some(net) => {
                    t.set_noted(
                        "subnet",
                        Value::Str(net.to_string()),
                        vec![format!(
                            "chosen by the importer from {} (Compose lets the engine choose)",
                            tx.cx.subnet_pool
                        )],
                    );
                    String::new()
                }
                None => {
                    tx.drop(&scope, "", e.key_at, "no free /24 left in the subnet pool");
                    continue;
                }
            },
        };
        if !subnet.is_empty() {
            t.set("subnet", Value::Str(subnet));
        }
        for s in e.value.entries() {
            match s.key.as_str() {
                "driver" if matches!(s.value.as_str(), Some("bridge")) => {}
                "internal" => {
                    if let Some(b) = s.value.as_bool() {
                        t.set("internal", Value::Bool(b));
                    }
                }
                "labels" => {
                    if let Some(l) = pairs(&s.value, '=') {
                        t.set(
                            "labels",
                            Value::Inline(
                                l.into_iter()
                                    .map(|(k, v)| (k, Value::Str(v.unwrap_or_default())))
                                    .collect(),
                            ),
                        );
                    }
                }
                "ipam" => {
                    for i in s.value.entries() {
                        if i.key != "config" {
                            tx.drop(
                                &scope,
                                &format!("ipam.{}", i.key),
                                i.key_at,
                                "berth allocates addresses itself",
                            );
                        }
                    }
                    let config = match &s.value.get("config").map(|c| &c.kind) {
                        Some(Kind::Seq(items)) => items.clone(),
                        _ => Vec::new(),
                    };
                    for (n, c) in config.iter().enumerate() {
                        for f in c.entries() {
                            match (n, f.key.as_str()) {
                                (0, "subnet") => {}
                                (0, "gateway") => t.set(
                                    "gateway",
                                    Value::str(f.value.as_str().unwrap_or_default()),
                                ),
                                _ => tx.drop(
                                    &scope,
                                    &format!("ipam.config.{}", f.key),
                                    f.key_at,
                                    "berth takes one IPv4 subnet and its gateway",
                                ),
                            }
                        }
                    }
                }
                "attachable" => {}
                "enable_ipv6" if s.value.as_bool() == Some(false) => {}
                "enable_ipv6" => tx.drop(
                    &scope,
                    "enable_ipv6",
                    s.key_at,
                    "berth networks are IPv4 only for now",
                ),
                "external" => tx.drop(
                    &scope,
                    "external",
                    s.key_at,
                    "berth creates its own networks; this one is created, not joined",
                ),
                "driver" => tx.drop(&scope, "driver", s.value.at, "berth networks are bridges"),
                other => tx.drop(&scope, other, s.key_at, "no berth equivalent"),
            }
        }
        tx.out.networks.push(t);
    }
}

fn ipam_subnet(network: &Node) -> Option<String> {
    match &network.get("ipam")?.get("config")?.kind {
        Kind::Seq(items) => items.first()?.get("subnet")?.as_str().map(String::from),
        _ => None,
    }
}

fn volumes(tx: &mut Tx<'_>, top: &Node) {
    for e in top.entries() {
        let scope = format!("volume {}", e.key);
        let Some(name) = tx.volumes.get(&e.key).cloned() else {
            tx.drop(&scope, "", e.key_at, "the name cannot be made a berth name");
            continue;
        };
        let mut t = Table::new("volume", &name);
        t.comments = renamed(&e.key, &name);
        for s in e.value.entries() {
            match s.key.as_str() {
                "driver" if matches!(s.value.as_str(), Some("local")) => {}
                "labels" => {
                    if let Some(l) = pairs(&s.value, '=') {
                        t.set("labels", Value::Inline(l.into_iter().map(|(k, v)| (k, Value::Str(v.unwrap_or_default()))).collect()));
                    }
                }
                "external" => tx.drop(&scope, "external", s.key_at, "berth creates and owns its volumes: an empty one is made; copy the existing data in"),
                "driver" | "driver_opts" => tx.drop(&scope, &s.key, s.key_at, "berth volumes are directories under its state root"),
                other => tx.drop(&scope, other, s.key_at, "no berth equivalent"),
            }
        }
        tx.out.volumes.push(t);
    }
}

/// The report scope and the berth table of a top-level `secrets` or `configs` entry, or None
/// (reported) when its name cannot be a berth name.
fn renamed_table(tx: &mut Tx<'_>, kind: &str, key: &str, at: Pos) -> Option<(String, Table)> {
    let scope = format!("{kind} {key}");
    let Some(name) = values::name(key) else {
        tx.drop(&scope, "", at, "the name cannot be made a berth name");
        return None;
    };
    let mut t = Table::new(kind, &name);
    t.comments = renamed(key, &name);
    Some((scope, t))
}

fn secrets(tx: &mut Tx<'_>, top: &Node) {
    for e in top.entries() {
        let Some((scope, mut t)) = renamed_table(tx, "secret", &e.key, e.key_at) else {
            continue;
        };
        let mut sourced = false;
        for s in e.value.entries() {
            match (s.key.as_str(), s.value.as_str()) {
                ("file", Some(path)) => {
                    sourced = true;
                    let abs = tx.absolute(path);
                    t.set_noted(
                        "file",
                        Value::Str(abs.display().to_string()),
                        vec![
                            format!("translated from file: {path} (made absolute: berth reads secrets from the host)"),
                            "the file must be owned by root and readable by root only (chmod 0600), or use `age`".into(),
                        ],
                    );
                }
                ("environment", _) => tx.drop(&scope, "environment", s.key_at, "its value would have to be written into the desired directory: put it in a root-only file (`file`) or an age-encrypted one (`age`)"),
                ("external", _) => tx.drop(&scope, "external", s.key_at, "berth reads secrets from a file or an age file, not from an engine's store"),
                (other, _) => tx.drop(&scope, other, s.key_at, "no berth equivalent"),
            }
        }
        if sourced {
            tx.out.secrets.push(t);
        }
    }
}

fn configs(tx: &mut Tx<'_>, top: &Node) {
    for e in top.entries() {
        let Some((scope, mut t)) = renamed_table(tx, "config", &e.key, e.key_at) else {
            continue;
        };
        let mut sourced = false;
        for s in e.value.entries() {
            match (s.key.as_str(), s.value.as_str()) {
                ("file", Some(path)) => {
                    sourced = true;
                    t.set_noted(
                        "file",
                        Value::Str(tx.relative_out(path)),
                        vec!["path relative to this file".into()],
                    );
                }
                ("content", Some(content)) => {
                    sourced = true;
                    t.set("content", Value::str(content));
                }
                ("environment", Some(var)) => match tx.cx.vars.get(var) {
                    Some(value) => {
                        sourced = true;
                        t.set_noted(
                            "content",
                            Value::str(value),
                            vec![format!(
                                "translated from environment: {var} (its value at import time)"
                            )],
                        );
                    }
                    None => tx.drop(
                        &scope,
                        "environment",
                        s.key_at,
                        format!("`{var}` is not set"),
                    ),
                },
                ("external", _) => tx.drop(
                    &scope,
                    "external",
                    s.key_at,
                    "berth reads configs from the desired directory",
                ),
                (other, _) => tx.drop(&scope, other, s.key_at, "no berth equivalent"),
            }
        }
        if sourced {
            tx.out.configs.push(t);
        }
    }
}
