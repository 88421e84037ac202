//! `GET /containers/json`: the listing `docker ps` prints and Traefik and Prometheus'
//! `docker_sd_configs` discover from.

use std::collections::BTreeMap;

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::gather::Seen;
use super::text::{self, Phase};
use super::{Call, filters};
use crate::api::{Body, error};
use crate::spec::port::PortMapping;

const FILTERS: &[&str] = &[
    "label", "name", "status", "id", "ancestor", "network", "health", "exited",
];

pub(super) async fn list(call: Call) -> Response<Body> {
    let filters = match filters::parse(call.query("filters").as_deref(), FILTERS) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let all = call.flag("all");
    let limit: Option<usize> = call.query("limit").and_then(|l| l.parse().ok());
    let context = call.context.clone();
    super::blocking(move || {
        let seen = match super::gather::all(&context.machine) {
            Ok(seen) => seen,
            Err((status, message)) => return error(status, &message),
        };
        let images = super::images::config_digests(&context.machine);
        let now = text::now_ms();
        // Newest first, as dockerd lists; only running ones unless `all` (or a status filter).
        let mut shown: Vec<Value> = seen
            .iter()
            .rev()
            .filter(|s| all || filters.contains_key("status") || s.phase.state() == "running")
            .filter(|s| matches(s, &filters))
            .map(|s| summary(s, &images, &context.machine.volumes, now))
            .collect();
        if let Some(limit) = limit.filter(|l| *l > 0) {
            shown.truncate(limit);
        }
        crate::api::json(StatusCode::OK, &shown)
    })
    .await
}

fn matches(s: &Seen, f: &filters::Filters) -> bool {
    let labels = s.labels();
    f.get("label")
        .is_none_or(|w| filters::labels_match(w, &labels))
        && filters::any(f, "name", |p| filters::name_matches(p, &s.name))
        && filters::any(f, "status", |st| st == s.phase.state())
        && filters::any(f, "id", |id| {
            s.docker_id.starts_with(id) || s.record.id == id
        })
        && filters::any(f, "ancestor", |a| {
            let familiar = text::familiar(&s.record.image);
            s.record.image == a
                || familiar == a
                || familiar.strip_suffix(":latest") == Some(a)
                || s.record.image_digest.contains(a)
        })
        && filters::any(f, "network", |n| {
            s.record
                .networks
                .iter()
                .any(|a| a.network == n || super::ids::docker_id(&a.network).starts_with(n))
        })
        && filters::any(f, "health", |h| match &s.phase {
            Phase::Running { health, .. } => health.as_deref().unwrap_or("none") == h,
            _ => h == "none",
        })
        && filters::any(f, "exited", |code| match &s.phase {
            Phase::Exited { code: c, .. } => code.parse() == Ok(*c),
            _ => false,
        })
}

/// One container as `containers/json` lists it.
pub(super) fn summary(
    s: &Seen,
    images: &BTreeMap<String, String>,
    volumes: &crate::volume::Volumes,
    now_ms: u64,
) -> Value {
    let running = matches!(s.phase, Phase::Running { .. });
    let ports: Vec<Value> = if running {
        s.record.ports.iter().flat_map(port_entries).collect()
    } else {
        Vec::new()
    };
    json!({
        "Id": s.docker_id,
        "Names": [format!("/{}", s.name)],
        "Image": text::familiar(&s.record.image),
        "ImageID": images.get(&s.record.image).cloned().unwrap_or_default(),
        "Command": s.args().join(" "),
        "Created": text::unix_seconds(&s.record.created_at),
        "Ports": ports,
        "Labels": s.labels(),
        "State": s.phase.state(),
        "Status": s.phase.status(now_ms),
        "HostConfig": { "NetworkMode": s.network_mode() },
        "NetworkSettings": { "Networks": super::inspect::endpoints(s, running) },
        "Mounts": super::inspect::mounts(s, volumes),
    })
}

/// A published port as dockerd lists it: one entry per host address family it binds
/// (an unspecified address binds IPv4 only in berth, so one entry).
fn port_entries(p: &PortMapping) -> Vec<Value> {
    let ip = p
        .host_ip
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "0.0.0.0".into());
    vec![json!({
        "IP": ip,
        "PrivatePort": p.container_port,
        "PublicPort": p.host_port,
        "Type": p.protocol.to_string(),
    })]
}
