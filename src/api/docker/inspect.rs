//! `GET /containers/{id}/json`: one container in the shape `docker inspect` prints, and the
//! parts the listing shares (networks, mounts). Secret variables never appear: their values
//! are not in the runtime spec on disk, and their names are left out too.

use std::collections::BTreeMap;

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::Call;
use super::gather::Seen;
use super::text::{self, Phase};
use crate::api::{Body, error};
use crate::health::verdict::HealthRecord;
use crate::spec::mount::Mount;

pub(super) async fn container(call: Call, asked: String) -> Response<Body> {
    let context = call.context.clone();
    super::blocking(move || match super::gather::one(&context.machine, &asked) {
        Ok(seen) => crate::api::json(StatusCode::OK, &inspect(&context.machine, &seen)),
        Err((status, message)) => error(status, &message),
    })
    .await
}

fn inspect(machine: &crate::reconcile::apply::Machine, s: &Seen) -> Value {
    let layout = machine.runtime.layout();
    let paths = layout.container(&s.record.id);
    let args = s.args();
    let running = matches!(s.phase, Phase::Running { .. });
    let (pid, started_ms, finished_ms, exit_code, oom, failure) = match &s.state {
        crate::runtime::State::Running(m) => (m.init.pid, m.started_at_ms, 0, 0, false, None),
        crate::runtime::State::Exited(e) => (
            0,
            e.started_at_ms,
            e.finished_at_ms,
            e.status(),
            e.oom_killed,
            e.error.clone(),
        ),
        crate::runtime::State::Lost { init, reason } => (
            init.map_or(0, |p| p.pid),
            machine.runtime.last_start_ms(&s.record.id).unwrap_or(0),
            0,
            0,
            false,
            Some(reason.clone()),
        ),
        crate::runtime::State::Created => (0, 0, 0, 0, false, None),
    };
    let mut state = json!({
        "Status": s.phase.state(),
        "Running": running,
        "Paused": false,
        "Restarting": false,
        "OOMKilled": oom,
        "Dead": s.phase == Phase::Dead,
        "Pid": pid,
        "ExitCode": exit_code,
        "Error": failure.unwrap_or_default(),
        "StartedAt": text::rfc3339_ms(started_ms),
        "FinishedAt": text::rfc3339_ms(finished_ms),
    });
    if s.record.health.is_some() {
        state["Health"] = health(&paths.health(), &s.phase);
    }
    let (entrypoint, cmd) = command(machine, s);
    let ports = port_map(s, running, false);
    let exposed: BTreeMap<String, Value> = s
        .record
        .ports
        .iter()
        .map(|p| (format!("{}/{}", p.container_port, p.protocol), json!({})))
        .collect();
    let oci = s.oci.as_ref();
    let process = oci.and_then(|o| o.process().as_ref());
    let resources = oci
        .and_then(|o| o.linux().as_ref())
        .and_then(|l| l.resources().as_ref());
    let memory = resources
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .unwrap_or(0);
    let nano_cpus = resources
        .and_then(|r| r.cpu().as_ref())
        .and_then(|c| Some((c.quota()?, c.period()?)))
        .filter(|(q, p)| *q > 0 && *p > 0)
        .map_or(0, |(q, p)| {
            i64::try_from(u128::from(q.unsigned_abs()) * 1_000_000_000 / u128::from(p))
                .unwrap_or(i64::MAX)
        });
    let pids = resources
        .and_then(|r| r.pids().as_ref())
        .map(|p| p.limit())
        .filter(|l| *l > 0);
    let labels = s.labels();
    let primary = s.leases.first();
    let primary_net = primary.and_then(|l| s.networks.get(&l.network));
    let addr = |v: Option<String>| {
        if running {
            v.unwrap_or_default()
        } else {
            String::new()
        }
    };
    let host_config = json!({
        "Binds": binds(s),
        "NetworkMode": s.network_mode(),
        "PortBindings": port_map(s, true, true),
        "RestartPolicy": {
            "Name": restart_policy(&s.entry),
            "MaximumRetryCount": 0,
        },
        "AutoRemove": false,
        "CapAdd": s.entry.get("cap_add").cloned().unwrap_or(Value::Null),
        "CapDrop": s.entry.get("cap_drop").cloned().unwrap_or(Value::Null),
        "Privileged": labels.contains_key("io.berth.privileged"),
        "ReadonlyRootfs": oci.and_then(|o| o.root().as_ref()).and_then(|r| r.readonly()).unwrap_or(false),
        "Memory": memory,
        "NanoCpus": nano_cpus,
        "PidsLimit": pids,
        "LogConfig": { "Type": "json-file", "Config": {} },
    });
    let config = json!({
        "Hostname": s.record.hostname,
        "Domainname": "",
        "User": s.record.user.clone().unwrap_or_default(),
        "AttachStdin": false,
        "AttachStdout": false,
        "AttachStderr": false,
        "ExposedPorts": if exposed.is_empty() { Value::Null } else { json!(exposed) },
        "Tty": process.and_then(|p| p.terminal()).unwrap_or(false),
        "OpenStdin": false,
        "StdinOnce": false,
        "Env": env(s),
        "Cmd": cmd,
        "Image": text::familiar(&s.record.image),
        "Volumes": null,
        "WorkingDir": process.map(|p| p.cwd().display().to_string()).unwrap_or_default(),
        "Entrypoint": entrypoint,
        "OnBuild": null,
        "Labels": labels,
        "StopSignal": crate::spec::signal::Signal(s.record.stop_signal).to_string(),
        "StopTimeout": s.record.stop_timeout_ms / 1000,
    });
    let network_settings = json!({
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": "",
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": "",
        "Gateway": addr(primary_net.map(|n| n.gateway.to_string())),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": addr(primary.map(|l| l.ip.to_string())),
        "IPPrefixLen": if running { primary_net.map_or(0, |n| n.subnet.prefix_len()) } else { 0 },
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": endpoints(s, running),
    });
    json!({
        "Id": s.docker_id,
        "Created": text::rfc3339_nanos(&s.record.created_at),
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": state,
        "Image": super::images::config_digests(machine).get(&s.record.image).cloned().unwrap_or_default(),
        "ResolvConfPath": paths.dir.join("etc/resolv.conf"),
        "HostnamePath": paths.dir.join("etc/hostname"),
        "HostsPath": paths.dir.join("etc/hosts"),
        "LogPath": paths.logs().join("container.log"),
        "Name": format!("/{}", s.name),
        "RestartCount": s.restarts,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": { "UpperDir": paths.upper() },
        },
        "Mounts": mounts(s, &machine.volumes),
        "Config": config,
        "NetworkSettings": network_settings,
    })
}

/// `NetworkSettings.Networks`: an endpoint per network, with its address while running.
pub(super) fn endpoints(s: &Seen, running: bool) -> BTreeMap<String, Value> {
    s.record
        .networks
        .iter()
        .map(|attachment| {
            let lease = s.leases.iter().find(|l| l.network == attachment.network);
            let net = s.networks.get(&attachment.network);
            let live = |v: Option<String>| {
                if running {
                    v.unwrap_or_default()
                } else {
                    String::new()
                }
            };
            let mut aliases = vec![s.record.name.clone()];
            aliases.extend(attachment.aliases.iter().cloned());
            let endpoint = json!({
                "IPAMConfig": attachment.ip.map(|ip| json!({ "IPv4Address": ip.to_string() })),
                "Links": null,
                "Aliases": aliases,
                "NetworkID": super::ids::docker_id(&attachment.network),
                "EndpointID": if running {
                    super::ids::docker_id(&format!("{}/{}", s.record.id, attachment.network))
                } else {
                    String::new()
                },
                "Gateway": live(net.map(|n| n.gateway.to_string())),
                "IPAddress": live(lease.map(|l| l.ip.to_string())),
                "IPPrefixLen": if running { net.map_or(0, |n| n.subnet.prefix_len()) } else { 0 },
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": "",
                "DriverOpts": null,
            });
            (attachment.network.clone(), endpoint)
        })
        .collect()
}

/// The entry's mounts as Docker lists them (volumes with their data directory).
pub(super) fn mounts(s: &Seen, volumes: &crate::volume::Volumes) -> Vec<Value> {
    let Some(list) = entry_mounts(s) else {
        return Vec::new();
    };
    list.iter()
        .map(|m| match m {
            Mount::Volume {
                source,
                target,
                read_only,
                ..
            } => json!({
                "Type": "volume",
                "Name": source,
                "Source": volumes.data(source),
                "Destination": target,
                "Driver": "local",
                "Mode": if *read_only { "ro" } else { "" },
                "RW": !read_only,
                "Propagation": "",
            }),
            Mount::Bind {
                source,
                target,
                read_only,
                ..
            } => json!({
                "Type": "bind",
                "Source": source,
                "Destination": target,
                "Mode": if *read_only { "ro" } else { "" },
                "RW": !read_only,
                "Propagation": "rprivate",
            }),
            Mount::Tmpfs { target, .. } => json!({
                "Type": "tmpfs",
                "Source": "",
                "Destination": target,
                "Mode": "",
                "RW": true,
                "Propagation": "",
            }),
        })
        .collect()
}

fn entry_mounts(s: &Seen) -> Option<Vec<Mount>> {
    serde_json::from_value(s.entry.get("mounts")?.clone()).ok()
}

/// `HostConfig.Binds`: volumes and binds as `-v` spells them.
fn binds(s: &Seen) -> Value {
    let list: Vec<String> = entry_mounts(s)
        .unwrap_or_default()
        .iter()
        .filter_map(|m| match m {
            Mount::Volume {
                source,
                target,
                read_only,
                ..
            }
            | Mount::Bind {
                source,
                target,
                read_only,
                ..
            } => Some(if *read_only {
                format!("{source}:{target}:ro")
            } else {
                format!("{source}:{target}")
            }),
            Mount::Tmpfs { .. } => None,
        })
        .collect();
    if list.is_empty() {
        Value::Null
    } else {
        json!(list)
    }
}

/// `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`; the bindings only while
/// running for `NetworkSettings.Ports`, as dockerd shows them. `as_written`: the host
/// address as the entry wrote it (`HostConfig.PortBindings`: "" for every address).
fn port_map(s: &Seen, bound: bool, as_written: bool) -> Value {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in &s.record.ports {
        let bindings = map
            .entry(format!("{}/{}", p.container_port, p.protocol))
            .or_default();
        if bound {
            bindings.push(json!({
                "HostIp": p.host_ip.map(|ip| ip.to_string()).unwrap_or_else(|| {
                    if as_written { String::new() } else { "0.0.0.0".into() }
                }),
                "HostPort": p.host_port.to_string(),
            }));
        }
    }
    if map.is_empty() {
        return json!({});
    }
    json!(map)
}

/// berth's restart policies in Docker's words.
fn restart_policy(entry: &Value) -> &'static str {
    match entry.get("restart").and_then(Value::as_str) {
        Some("always") => "always",
        Some("on-failure") => "on-failure",
        Some("unless-stopped") => "unless-stopped",
        _ => "no",
    }
}

/// The process's environment, without any secret variable.
fn env(s: &Seen) -> Vec<String> {
    let secret: Vec<String> = s
        .oci
        .as_ref()
        .and_then(|o| o.annotations().as_ref())
        .and_then(|a| a.get("io.berth.secret-env"))
        .map(|names| names.split(',').map(|n| n.trim().to_string()).collect())
        .unwrap_or_default();
    let secret_env: Vec<String> = s
        .entry
        .get("secret_env")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|e| e.get("env")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    s.oci
        .as_ref()
        .and_then(|o| o.process().as_ref())
        .and_then(|p| p.env().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| {
            let name = kv.split('=').next().unwrap_or_default();
            !secret.iter().chain(&secret_env).any(|s| s == name)
        })
        .collect()
}

/// `Config.Entrypoint` and `Config.Cmd` as Docker keeps them apart: the entry's, else the
/// image's (an entrypoint of the entry drops the image's command, as in Docker).
fn command(machine: &crate::reconcile::apply::Machine, s: &Seen) -> (Value, Value) {
    let strings =
        |v: Option<&Value>| -> Option<Vec<String>> { serde_json::from_value(v?.clone()).ok() };
    let entry_entrypoint = strings(s.entry.get("entrypoint"));
    let entry_command = strings(s.entry.get("command"));
    let image = super::images::config_of(machine, &s.record.image);
    let image_config = image.as_ref().and_then(|c| c.config().as_ref());
    let entrypoint = entry_entrypoint
        .clone()
        .or_else(|| image_config.and_then(|c| c.entrypoint().clone()));
    let cmd = entry_command.or_else(|| {
        if entry_entrypoint.is_some() {
            None
        } else {
            image_config.and_then(|c| c.cmd().clone())
        }
    });
    (json!(entrypoint), json!(cmd))
}

/// `State.Health`: the verdict about the current run, its last check as the log.
fn health(path: &std::path::Path, phase: &Phase) -> Value {
    let record = crate::state::record::load::<HealthRecord>(path)
        .ok()
        .flatten();
    let status = match phase {
        Phase::Running {
            health: Some(h), ..
        } => h.clone(),
        Phase::Running { .. } => "starting".into(),
        _ => "unhealthy".into(),
    };
    let log: Vec<Value> = record
        .as_ref()
        .and_then(|r| r.last.as_ref())
        .map(|c| {
            vec![json!({
                "Start": text::rfc3339_ms(c.at_ms),
                "End": text::rfc3339_ms(c.at_ms + c.duration_ms),
                "ExitCode": if c.ok { 0 } else { 1 },
                "Output": c.output,
            })]
        })
        .unwrap_or_default();
    json!({
        "Status": status,
        "FailingStreak": record.map_or(0, |r| r.failing_streak),
        "Log": log,
    })
}
