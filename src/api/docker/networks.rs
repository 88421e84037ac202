//! `GET /networks` and `GET /networks/{id}`: berth's bridge networks (the built-in `default`
//! among them while a container joins it) as Docker's bridge driver shows its own. Ids are
//! the sha256 of the name.

use std::collections::BTreeMap;

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{Call, filters, ids};
use crate::api::{Body, error};
use crate::network::record::NetworkRecord;

const FILTERS: &[&str] = &["name", "id", "driver", "label", "type", "scope"];

fn describe(
    machine: &crate::reconcile::apply::Machine,
    n: &NetworkRecord,
    with_containers: bool,
) -> Value {
    let mut containers = BTreeMap::new();
    if with_containers {
        let networks = crate::network::Networks::new(machine.runtime.layout());
        for lease in networks.leases(&n.name).unwrap_or_default() {
            let running = machine
                .runtime
                .state(&lease.container)
                .is_ok_and(|s| s.is_running());
            if !running {
                continue;
            }
            let id = ids::docker_id(&lease.container);
            containers.insert(
                id,
                json!({
                    "Name": lease.container,
                    "EndpointID": ids::docker_id(&format!("{}/{}", lease.container, n.name)),
                    "MacAddress": "",
                    "IPv4Address": format!("{}/{}", lease.ip, n.subnet.prefix_len()),
                    "IPv6Address": "",
                }),
            );
        }
    }
    json!({
        "Name": n.name,
        "Id": ids::docker_id(&n.name),
        "Created": super::text::rfc3339_nanos(&n.created_at),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [{ "Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string() }],
        },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": { "com.docker.network.bridge.name": n.bridge },
        "Labels": { "io.berth.spec-hash": n.spec_hash },
    })
}

fn records(machine: &crate::reconcile::apply::Machine) -> Result<Vec<NetworkRecord>, String> {
    crate::network::Networks::new(machine.runtime.layout())
        .records()
        .map_err(|e| e.to_string())
}

pub(super) async fn list(call: Call) -> Response<Body> {
    let filters = match filters::parse(call.query("filters").as_deref(), FILTERS) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let context = call.context.clone();
    super::blocking(move || {
        let records = match records(&context.machine) {
            Ok(r) => r,
            Err(message) => return error(StatusCode::INTERNAL_SERVER_ERROR, &message),
        };
        let list: Vec<Value> = records
            .iter()
            .filter(|n| {
                filters::any(&filters, "name", |p| n.name.contains(p))
                    && filters::any(&filters, "id", |p| ids::docker_id(&n.name).starts_with(p))
                    && filters::any(&filters, "driver", |d| d == "bridge")
                    && filters::any(&filters, "type", |t| t == "custom")
                    && filters::any(&filters, "scope", |s| s == "local")
            })
            .map(|n| describe(&context.machine, n, false))
            .filter(|v| {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(v["Labels"].clone()).unwrap_or_default();
                filters
                    .get("label")
                    .is_none_or(|w| filters::labels_match(w, &labels))
            })
            .collect();
        crate::api::json(StatusCode::OK, &list)
    })
    .await
}

pub(super) async fn inspect(call: Call, asked: String) -> Response<Body> {
    let context = call.context.clone();
    super::blocking(move || {
        let records = match records(&context.machine) {
            Ok(r) => r,
            Err(message) => return error(StatusCode::INTERNAL_SERVER_ERROR, &message),
        };
        let ids: Vec<String> = records.iter().map(|n| ids::docker_id(&n.name)).collect();
        let known: Vec<ids::Known<'_>> = records
            .iter()
            .zip(&ids)
            .map(|(n, id)| ids::Known {
                docker_id: id,
                berth_id: &n.name,
                name: &n.name,
            })
            .collect();
        match ids::find(&known, &asked) {
            ids::Lookup::Found(i) => crate::api::json(
                StatusCode::OK,
                &describe(&context.machine, &records[i], true),
            ),
            ids::Lookup::Missing => {
                error(StatusCode::NOT_FOUND, &format!("network {asked} not found"))
            }
            ids::Lookup::Ambiguous => error(
                StatusCode::BAD_REQUEST,
                &format!("network {asked} is ambiguous"),
            ),
        }
    })
    .await
}
