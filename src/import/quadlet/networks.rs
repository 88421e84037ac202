//! `Network=`, `IP=`, `NetworkAlias=` and `ContainerName=` of a container as berth's
//! `network` or `networks` attachments with addresses and aliases.

use super::super::toml_out::{Table, Value};
use super::{Parsed, Tx, berth_name, from};

const S: &str = "Container";

/// berth does not join another container's namespaces from an import: a sidecar left in a
/// replaced container's dead namespace would be worse than a reported gap.
const NAMESPACE_PATH: &str = "a network namespace given by path is not berth's: join \
     another container's with Network=NAME.container, or put both on a common network";

/// `Network=`, `IP=`, `NetworkAlias=` and `ContainerName=` together: berth's `network` or
/// `networks` with addresses and aliases.
pub(crate) fn translate(tx: &mut Tx<'_>, u: &Parsed, name: &str, t: &mut Table) {
    let mut attachments: Vec<(String, Option<String>, Vec<String>)> = Vec::new();
    // berth's `network` and the `Network=` value it comes from.
    let mut mode: Option<(String, String)> = None;
    let mut notes = Vec::new();
    let list = tx.each(u, S, "Network");
    let first_at = list.first().map(|(_, at)| *at);
    for (n, at) in &list {
        let (net, opts) = n.split_once(':').unwrap_or((n.as_str(), ""));
        match net {
            "host" | "none" => {
                mode = Some((net.to_string(), n.clone()));
                continue;
            }
            "podman" | "bridge" | "default" | "pasta" | "slirp4netns" | "private" => {
                notes.push(format!(
                    "default: translated from Network={net} (podman's default network)"
                ));
                attachments.push(("default".into(), None, Vec::new()));
                continue;
            }
            // Another unit's container: `web.container`, or its podman name.
            _ if net == "container" || net.ends_with(".container") => {
                let owner = if net == "container" {
                    tx.containers
                        .values()
                        .find(|i| i.shown == opts)
                        .map(|i| i.name.clone())
                } else {
                    tx.containers.get(net).map(|i| i.name.clone())
                };
                match owner {
                    Some(owner) => mode = Some((format!("container:{owner}"), n.clone())),
                    None => tx.drop(
                        u,
                        "Network",
                        *at,
                        format!("`{n}` is not a container of the imported units: import the unit that defines it"),
                    ),
                }
                continue;
            }
            "ns" => {
                tx.drop(u, "Network", *at, NAMESPACE_PATH);
                continue;
            }
            _ => {}
        }
        let Some(berth) = tx.networks.get(net).cloned() else {
            tx.drop(
                u,
                "Network",
                *at,
                format!(
                    "`{net}` is not an imported .network unit: import the unit that defines it"
                ),
            );
            continue;
        };
        let mut ip = None;
        let mut aliases = Vec::new();
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o.split_once('=') {
                Some(("ip", a)) => ip = Some(a.to_string()),
                Some(("alias", a)) => aliases.extend(berth_name(a)),
                _ => tx.drop(
                    u,
                    "Network",
                    *at,
                    format!("network option `{o}` has no berth equivalent"),
                ),
            }
        }
        attachments.push((berth, ip, aliases));
    }
    if let Some((m, written)) = mode {
        if !attachments.is_empty() {
            tx.drop(
                u,
                "Network",
                first_at.unwrap_or_default(),
                format!("`{written}` together with networks: berth takes one or the other"),
            );
        }
        t.set_noted(
            "network",
            Value::str(m),
            from(&format!("Network={written}")),
        );
        for k in ["IP", "NetworkAlias"] {
            if let Some(e) = u
                .unit
                .section(S)
                .and_then(|s| s.all(k).first().map(|e| e.at))
            {
                tx.drop(
                    u,
                    k,
                    e,
                    format!("no network to apply it to with Network={written}"),
                );
            }
        }
        return;
    }
    if attachments.is_empty() {
        if list.is_empty() {
            notes.push("default: podman's default network (no Network= in the unit)".into());
        }
        attachments.push(("default".into(), None, Vec::new()));
    }
    if let Some((ip, at)) = tx.one(u, S, "IP") {
        let user: Vec<usize> = (0..attachments.len())
            .filter(|i| attachments[*i].0 != "default")
            .collect();
        if user.len() == 1 {
            attachments[user[0]].1 = Some(ip);
        } else {
            tx.drop(
                u,
                "IP",
                at,
                "a static address needs exactly one .network (podman's \
                 default network is not one berth reproduces addresses on)",
            );
        }
    }
    let mut aliases: Vec<String> = Vec::new();
    for (a, at) in tx.each(u, S, "NetworkAlias") {
        match berth_name(&a) {
            Some(n) => aliases.push(n),
            None => tx.drop(
                u,
                "NetworkAlias",
                at,
                format!("`{a}` is not usable as a DNS name"),
            ),
        }
    }
    let container_name = match tx.one(u, S, "ContainerName") {
        Some((c, at)) => match berth_name(&c) {
            Some(n) => Some((n, "ContainerName".to_string())),
            None => {
                tx.drop(
                    u,
                    "ContainerName",
                    at,
                    format!("`{c}` is not usable as a DNS name"),
                );
                None
            }
        },
        None => berth_name(&format!("systemd-{}", u.names.service))
            .map(|n| (n, "Quadlet's default container name".to_string())),
    };
    let mut values = Vec::new();
    for (net, ip, mut own) in attachments {
        if net != "default" {
            own.extend(aliases.iter().cloned());
            if let Some((c, _)) = &container_name
                && c != name
            {
                own.push(c.clone());
            }
        }
        own.dedup();
        let mut entries = vec![("name".to_string(), Value::Str(net.clone()))];
        if let Some(ip) = ip {
            entries.push(("ip".into(), Value::Str(ip)));
        }
        if !own.is_empty() {
            entries.push(("aliases".into(), Value::strings(own)));
        }
        values.push(if entries.len() == 1 {
            Value::Str(net)
        } else {
            Value::Inline(entries)
        });
    }
    if let Some((c, why)) = &container_name
        && c != name
        && values.iter().any(|v| matches!(v, Value::Inline(_)))
    {
        notes.push(format!(
            "{c}: an alias on each network ({why}, the name peers resolve)"
        ));
    }
    t.set_noted("networks", Value::Array(values), notes);
}
