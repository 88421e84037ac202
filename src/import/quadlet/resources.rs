//! `.network` and `.volume` units as `[network.NAME]` / `[volume.NAME]`, the podman volumes
//! containers name without a unit, and the secrets they use (`[secret.NAME]` files the user
//! fills: the values are in podman's secret store, which the importer does not read).

use super::super::Dropped;
use super::super::toml_out::{Table, Value};
use super::unit::At;
use super::unit::Split;
use super::{Parsed, Tx, berth_name, boolean, renamed};

#[derive(Debug, Clone)]
pub(crate) struct VolumeInfo {
    pub name: String,
    /// `Copy=false`: mounts do not seed it with the image's content.
    pub nocopy: bool,
}

/// The berth name of a `.network`/`.volume` unit: its NetworkName/VolumeName, else the unit's
/// name (without podman's `systemd-` prefix, which only keeps podman's namespaces apart).
fn resource_name(tx: &mut Tx<'_>, u: &Parsed, key: &str) -> Option<(String, String)> {
    let wanted = tx
        .one(u, u.kind.section(), key)
        .map(|(v, _)| v)
        .unwrap_or_else(|| u.stem.clone());
    match berth_name(&wanted) {
        Some(n) => Some((wanted, n)),
        None => {
            tx.drop(
                u,
                key,
                At::START,
                format!("`{wanted}` cannot be made a berth name; the unit was not imported"),
            );
            None
        }
    }
}

/// A name another unit of the kind already took: reported, the unit left out.
fn taken(tx: &mut Tx<'_>, u: &Parsed, key: &str, name: &str, used: bool) -> bool {
    if used {
        tx.drop(
            u,
            key,
            At::START,
            format!("another unit is already imported as `{name}`; the unit was not imported"),
        );
    }
    used
}

pub(crate) fn name_network(tx: &mut Tx<'_>, u: &Parsed) {
    if let Some((_, name)) = resource_name(tx, u, "NetworkName") {
        let used = tx.networks.values().any(|n| *n == name);
        if !taken(tx, u, "NetworkName", &name, used) {
            tx.networks.insert(u.file_name.clone(), name);
        }
    }
}

pub(crate) fn name_volume(tx: &mut Tx<'_>, u: &Parsed) {
    if let Some((_, name)) = resource_name(tx, u, "VolumeName") {
        let nocopy = u
            .unit
            .section("Volume")
            .and_then(|s| s.last("Copy"))
            .and_then(|c| boolean(&c.value))
            == Some(false);
        let used = tx.volumes.values().any(|v| v.name == name);
        if !taken(tx, u, "VolumeName", &name, used) {
            tx.volumes
                .insert(u.file_name.clone(), VolumeInfo { name, nocopy });
        }
    }
}

fn labels(tx: &mut Tx<'_>, u: &Parsed, t: &mut Table) {
    let mut out: Vec<(String, Value)> = Vec::new();
    for (w, _) in tx.words(u, u.kind.section(), "Label", Split::Exec) {
        let (k, v) = w.split_once('=').unwrap_or((w.as_str(), ""));
        out.retain(|(key, _)| key != k);
        out.push((k.to_string(), Value::str(v)));
    }
    if !out.is_empty() {
        t.set_noted("labels", Value::Inline(out), super::from("Label"));
    }
}

fn header(tx: &mut Tx<'_>, u: &Parsed, kind: &str, name: &str, key: &str) -> Table {
    let mut t = Table::new(kind, name);
    let wanted = tx
        .one(u, u.kind.section(), key)
        .map(|(v, _)| v)
        .unwrap_or_else(|| u.stem.clone());
    t.comments = vec![format!("from {}", u.shown)];
    t.comments.extend(renamed(&wanted, name));
    if let Some(d) = u.unit.section("Unit").and_then(|s| s.last("Description")) {
        t.comments.push(d.value);
    }
    t
}

pub(crate) fn network(tx: &mut Tx<'_>, u: &Parsed) -> Option<Table> {
    let name = tx.networks.get(&u.file_name)?.clone();
    let mut t = header(tx, u, "network", &name, "NetworkName");
    let keys = u.owned_keys("Network");
    for (k, at) in &keys {
        let (k, at) = (k.as_str(), *at);
        match k {
            "NetworkName" | "ServiceName" | "Label" => {}
            "Subnet" | "Gateway" => {
                let berth = if k == "Subnet" { "subnet" } else { "gateway" };
                let list = tx.each(u, "Network", k);
                for (i, (v, at)) in list.iter().enumerate() {
                    if v.contains(':') {
                        tx.drop(u, k, *at, "berth networks are IPv4 only for now");
                    } else if i == 0 {
                        t.set(berth, Value::str(v.clone()));
                    } else {
                        tx.drop(u, k, *at, "berth takes one IPv4 subnet and its gateway");
                    }
                }
            }
            "Internal" => {
                if let Some((v, at)) = tx.one(u, "Network", k) {
                    match boolean(&v) {
                        Some(b) => t.set("internal", Value::Bool(b)),
                        None => tx.drop(u, k, at, format!("`{v}` is not a boolean")),
                    }
                }
            }
            "Driver" => {
                if let Some((v, at)) = tx.one(u, "Network", k)
                    && v != "bridge"
                {
                    tx.drop(u, k, at, format!("berth networks are bridges, not `{v}`"));
                }
            }
            "IPv6" => {
                if let Some((v, at)) = tx.one(u, "Network", k)
                    && boolean(&v) != Some(false)
                {
                    tx.drop(u, k, at, "berth networks are IPv4 only for now");
                }
            }
            "IPRange" | "IPAMDriver" => tx.drop(
                u,
                k,
                at,
                "berth allocates addresses in the \
                 whole subnet itself",
            ),
            "DNS" | "DisableDNS" => tx.drop(
                u,
                k,
                at,
                "berth answers names on every network \
                 and forwards the rest to the host's resolvers",
            ),
            "InterfaceName" => tx.drop(u, k, at, "berth names its bridges itself"),
            "NetworkDeleteOnStop" => tx.drop(
                u,
                k,
                at,
                "berth removes a network when no file \
                 describes it any more",
            ),
            _ => tx.drop(u, k, at, "no berth equivalent"),
        }
    }
    labels(tx, u, &mut t);
    if !t.lines.iter().any(|(k, _, _)| k == "subnet") {
        let Some(section) = u.unit.section("Network") else {
            tx.drop(
                u,
                "",
                At::START,
                "no [Network] section; the network was not imported",
            );
            return None;
        };
        // Without a subnet podman picks one; berth needs it written.
        let net = tx.next_subnet();
        match net {
            Some(net) => t.set_noted(
                "subnet",
                Value::Str(net.to_string()),
                vec![format!(
                    "chosen by the importer from {} (podman chooses one when Subnet is not set)",
                    tx.options.subnet_pool
                )],
            ),
            None => {
                tx.drop(
                    u,
                    "Subnet",
                    section.at,
                    "no free /24 left in the subnet pool",
                );
                return None;
            }
        }
    }
    t.lines.sort_by_key(|(k, _, _)| k != "subnet");
    Some(t)
}

pub(crate) fn volume(tx: &mut Tx<'_>, u: &Parsed) -> Option<Table> {
    let info = tx.volumes.get(&u.file_name)?.clone();
    let mut t = header(tx, u, "volume", &info.name, "VolumeName");
    let keys = u.owned_keys("Volume");
    for (k, at) in &keys {
        let (k, at) = (k.as_str(), *at);
        match k {
            "VolumeName" | "ServiceName" | "Label" => {}
            "User" | "Group" => {
                let berth = if k == "User" { "uid" } else { "gid" };
                if let Some((v, at)) = tx.one(u, "Volume", k) {
                    match v.parse::<i64>() {
                        Ok(id) => t.set_noted(berth, Value::Int(id), super::from(k)),
                        Err(_) => tx.drop(
                            u,
                            k,
                            at,
                            format!(
                                "`{v}`: berth takes a numeric id \
                                 here"
                            ),
                        ),
                    }
                }
            }
            "Copy" => {
                if info.nocopy {
                    t.comments
                        .push("Copy=false: its mounts are marked nocopy".into());
                }
            }
            "Driver" => {
                if let Some((v, at)) = tx.one(u, "Volume", k)
                    && v != "local"
                {
                    tx.drop(
                        u,
                        k,
                        at,
                        format!(
                            "berth volumes are directories under its state \
                             root, not the `{v}` driver"
                        ),
                    );
                }
            }
            "Device" | "Type" | "Options" => tx.drop(
                u,
                k,
                at,
                "berth volumes are directories under its state root: mount the device on the \
                 host and bind-mount that path",
            ),
            "Image" => tx.drop(u, k, at, "berth volumes are not made from images"),
            _ => tx.drop(u, k, at, "no berth equivalent"),
        }
    }
    labels(tx, u, &mut t);
    Some(t)
}

/// Podman volumes that containers name without a `.volume` unit (podman creates them on
/// first use; berth needs them declared).
pub(crate) fn implicit_volumes(tx: &Tx<'_>) -> Vec<Table> {
    let declared: Vec<&String> = tx.volumes.values().map(|v| &v.name).collect();
    tx.implicit_volumes
        .iter()
        .filter(|(name, _)| !declared.contains(name))
        .map(|(name, (podman, shown, _))| {
            let mut t = Table::new("volume", name);
            t.comments = vec![format!(
                "podman volume `{podman}`, named by {shown} without a .volume unit (podman \
                 creates it on first use)"
            )];
            t
        })
        .collect()
}

/// One `[secret.NAME]` per podman secret the containers use, its file under the secrets
/// directory; a file not there yet is reported (the import is not complete without it).
pub(crate) fn secrets(tx: &mut Tx<'_>) -> Vec<Table> {
    let mut out = Vec::new();
    let list: Vec<(String, (String, String, At))> = tx
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (podman, (name, shown, at)) in list {
        let path = tx.options.secrets_dir.join(&podman);
        let mut t = Table::new("secret", &name);
        t.comments = renamed(&podman, &name);
        t.set_noted(
            "file",
            Value::Str(path.display().to_string()),
            vec![
                format!(
                    "podman secret `{podman}`: its value is in podman's store; write it \
                     here, owned by root, mode 0600:"
                ),
                format!(
                    "podman secret inspect --showsecret --format '{{{{.SecretData}}}}' \
                     {podman} > {}",
                    path.display()
                ),
            ],
        );
        if std::fs::symlink_metadata(&path).is_err() {
            tx.dropped.push(Dropped {
                scope: format!("secret {podman}"),
                key: String::new(),
                at: at.pos(),
                reason: format!(
                    "its value is in podman's secret store, which the importer does not read: \
                     write it to {} (owned by root, mode 0600), e.g. with `podman secret inspect --showsecret --format '{{{{.SecretData}}}}' {podman}`",
                    path.display()
                ),
                file: Some(shown),
            });
        }
        out.push(t);
    }
    out
}
