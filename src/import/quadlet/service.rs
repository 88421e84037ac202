//! A `.container` unit's systemd sections: [Service] (restart, stop timeout, one-shot jobs),
//! [Unit] (ordering on other imported containers → `depends_on`), [Install] (not needed:
//! berth runs every container its directory describes).

use super::super::toml_out::{Table, Value};
use super::unit::Split;
use super::{Info, Parsed, Tx, dotted, from, timespan};

/// [Unit] keys naming units this one starts after (and needs).
const ORDERING: [&str; 5] = ["After", "Requires", "Wants", "BindsTo", "Requisite"];

pub(crate) fn translate(tx: &mut Tx<'_>, u: &Parsed, t: &mut Table) {
    for s in &u.unit.sections {
        match s.name.as_str() {
            "Container" | "Service" | "Unit" | "Quadlet" => {}
            "Install" => {
                let keys: Vec<&str> = s.keys().iter().map(|(k, _)| *k).collect();
                t.comments.push(format!(
                    "[Install] {}: not needed, berth runs every container its directory describes",
                    keys.join(", ")
                ));
            }
            other => tx.drop(
                u,
                &format!("[{other}]"),
                s.at,
                "the section is not read by Quadlet for a container",
            ),
        }
    }
    service(tx, u, t);
    unit(tx, u, t);
}

fn service(tx: &mut Tx<'_>, u: &Parsed, t: &mut Table) {
    let job = tx.containers.get(&u.file_name).is_some_and(|c| c.job);
    let keys = u.owned_keys("Service");
    let mut restart_set = false;
    for (k, at) in &keys {
        let (k, at) = (k.as_str(), *at);
        let key = dotted(u, "Service", k);
        match k {
            "Restart" => {
                let Some((policy, at)) = tx.one(u, "Service", k) else {
                    continue;
                };
                let berth = match policy.as_str() {
                    "no" => Some("never"),
                    "always" => Some("always"),
                    "on-failure" => Some("on-failure"),
                    _ => None,
                };
                match berth {
                    Some(b) => {
                        restart_set = true;
                        t.set_noted("restart", Value::str(b), from(&format!("Restart={policy}")));
                    }
                    None => tx.drop(
                        u,
                        &key,
                        at,
                        format!(
                            "`{policy}` has no berth equivalent (berth restarts always, \
                             on-failure or never)"
                        ),
                    ),
                }
            }
            "RestartSec" => {
                if let Some((v, at)) = tx.one(u, "Service", k) {
                    match timespan(&v) {
                        Some(d) => t.set_noted(
                            "backoff",
                            Value::Inline(vec![("initial".into(), Value::Str(d))]),
                            vec![format!(
                                "translated from RestartSec={v}: berth's delays grow \
                                 from it"
                            )],
                        ),
                        None => tx.drop(u, &key, at, format!("`{v}` is not a time span")),
                    }
                }
            }
            "TimeoutStopSec" => {
                let Some((v, at)) = tx.one(u, "Service", k) else {
                    continue;
                };
                if t.lines.iter().any(|(k, _, _)| k == "stop_timeout") {
                    t.comments.push(format!(
                        "TimeoutStopSec={v}: StopTimeout is the container's"
                    ));
                    continue;
                }
                match timespan(&v) {
                    Some(d) => t.set_noted(
                        "stop_timeout",
                        Value::Str(d),
                        from(&format!("TimeoutStopSec={v}")),
                    ),
                    None => tx.drop(u, &key, at, format!("`{v}` is not a finite time span")),
                }
            }
            "Type" => {
                if let Some((v, at)) = tx.one(u, "Service", k) {
                    match v.as_str() {
                        "oneshot" => t.comments.push(
                            "a one-shot job (Type=oneshot): containers ordered after it wait \
                             for it to complete"
                                .into(),
                        ),
                        "notify" => {}
                        other => tx.drop(
                            u,
                            &key,
                            at,
                            format!(
                                "`{other}`: Quadlet takes only \
                                 notify or oneshot"
                            ),
                        ),
                    }
                }
            }
            "RemainAfterExit" | "SyslogIdentifier" | "KillMode" | "Delegate" | "NotifyAccess"
            | "Environment" | "EnvironmentFile" | "WorkingDirectory" => {}
            "TimeoutStartSec" => tx.drop(
                u,
                &key,
                at,
                "berth has no start timeout: pulls and starts take as long as they take",
            ),
            "ExecStartPre" | "ExecStartPost" | "ExecStop" | "ExecStopPost" | "ExecReload"
            | "ExecCondition" => tx.drop(
                u,
                &key,
                at,
                "berth runs no host commands around a container",
            ),
            "User" | "Group" => tx.drop(
                u,
                &key,
                at,
                "a rootless podman service: berth runs containers as root's (set `user` for \
                 the process inside)",
            ),
            _ => tx.drop(
                u,
                &key,
                at,
                "a systemd service setting with no berth equivalent",
            ),
        }
    }
    if !restart_set {
        let note = if job {
            "systemd's default (Restart=no): the job runs once"
        } else {
            "systemd's default: Restart=no"
        };
        t.set_noted("restart", Value::str("never"), vec![note.into()]);
    }
}

fn unit(tx: &mut Tx<'_>, u: &Parsed, t: &mut Table) {
    let keys = u.owned_keys("Unit");
    let mut deps: Vec<(String, Value)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for (k, at) in &keys {
        let (k, at) = (k.as_str(), *at);
        let key = dotted(u, "Unit", k);
        if ORDERING.contains(&k) {
            for (dep, at) in tx.words(u, "Unit", k, Split::Words) {
                dependency(tx, u, &key, at, &dep, &mut deps, &mut notes, k);
            }
            continue;
        }
        match k {
            "Description"
            | "Documentation"
            | "DefaultDependencies"
            | "RequiresMountsFor"
            | "SourcePath" => {}
            // Read by `collect_before` for the units it names.
            "Before" => {}
            _ => tx.drop(
                u,
                &key,
                at,
                "a systemd unit setting with no berth equivalent",
            ),
        }
    }
    let me = tx.containers.get(&u.file_name).map(|c| c.name.clone());
    for (first, note) in me
        .and_then(|m| tx.before.get(&m))
        .cloned()
        .unwrap_or_default()
    {
        if !deps.iter().any(|(n, _)| *n == first.name) {
            notes.push(note);
            deps.push((first.name.clone(), Value::str(condition(&first).0)));
        }
    }
    if !deps.is_empty() {
        t.set_noted("depends_on", Value::Inline(deps), notes);
    }
}

/// What a unit ordered after `dep` waits for, as systemd did, and why.
fn condition(dep: &Info) -> (&'static str, &'static str) {
    if dep.job {
        ("completed", "a Type=oneshot job")
    } else if dep.healthy {
        ("healthy", "Notify=healthy")
    } else {
        ("started", "")
    }
}

/// The imported container a dependency names (`X.service` by its service name, or
/// `X.container`).
fn container_named(tx: &Tx<'_>, dep: &str) -> Option<Info> {
    let file = if dep.ends_with(".container") {
        Some(dep.to_string())
    } else {
        tx.services.get(dep).cloned()
    };
    file.and_then(|f| tx.containers.get(&f)).cloned()
}

/// `Before=` of every container, as dependencies of the containers it names (run after
/// every unit is named, before any is translated).
pub(crate) fn collect_before(tx: &mut Tx<'_>, u: &Parsed) {
    let Some(me) = tx.containers.get(&u.file_name).cloned() else {
        return;
    };
    let key = dotted(u, "Unit", "Before");
    for (dep, at) in tx.words(u, "Unit", "Before", Split::Words) {
        match container_named(tx, &dep) {
            Some(later) if later.name != me.name => {
                let (cond, why) = condition(&me);
                let mut note = format!("{}: translated from Before={dep} in {}", me.name, u.shown);
                if !why.is_empty() {
                    note.push_str(&format!(" ({why}: systemd waits for it to be {cond})"));
                }
                tx.before
                    .entry(later.name)
                    .or_default()
                    .push((me.clone(), note));
            }
            Some(_) => {}
            None if dep.ends_with(".target") => {}
            None => tx.drop(
                u,
                &key,
                at,
                format!("`{dep}` is not among the imported containers"),
            ),
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one dependency, its key and where the result goes"
)]
fn dependency(
    tx: &mut Tx<'_>,
    u: &Parsed,
    key: &str,
    at: super::At,
    dep: &str,
    deps: &mut Vec<(String, Value)>,
    notes: &mut Vec<String>,
    from_key: &str,
) {
    if let Some(info) = container_named(tx, dep) {
        if info.name
            == tx
                .containers
                .get(&u.file_name)
                .map(|c| c.name.clone())
                .unwrap_or_default()
        {
            return;
        }
        let (condition, why) = condition(&info);
        match deps.iter_mut().find(|(n, _)| *n == info.name) {
            Some(_) => {}
            None => {
                let mut note = format!("{}: translated from {from_key}={dep}", info.name);
                if !why.is_empty() {
                    note.push_str(&format!(" ({why}: systemd waits for it to be {condition})"));
                }
                notes.push(note);
                deps.push((info.name.clone(), Value::str(condition)));
            }
        }
        return;
    }
    // berth creates volumes and networks before the containers that use them; targets are
    // systemd's own milestones.
    let handled = [
        ".target",
        ".volume",
        ".network",
        "-volume.service",
        "-network.service",
    ];
    if handled.iter().any(|s| dep.ends_with(s)) {
        return;
    }
    tx.drop(
        u,
        key,
        at,
        format!("`{dep}` is not among the imported containers"),
    );
}
