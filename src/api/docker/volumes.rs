//! `GET /volumes` and `GET /volumes/{name}`: berth's named volumes as Docker's `local`
//! driver shows its own.

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{Call, filters};
use crate::api::{Body, error};
use crate::volume::VolumeRecord;

const FILTERS: &[&str] = &["name", "label", "driver"];

fn describe(machine: &crate::reconcile::apply::Machine, v: &VolumeRecord) -> Value {
    json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": machine.volumes.data(&v.name),
        "CreatedAt": super::text::rfc3339_nanos(&v.created_at),
        "Labels": v.labels,
        "Scope": "local",
        "Options": null,
    })
}

pub(super) async fn list(call: Call) -> Response<Body> {
    let filters = match filters::parse(call.query("filters").as_deref(), FILTERS) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let context = call.context.clone();
    super::blocking(move || {
        let volumes = match context.machine.volumes.list() {
            Ok(v) => v,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
        let list: Vec<Value> = volumes
            .iter()
            .filter(|v| {
                filters::any(&filters, "name", |p| v.name.contains(p))
                    && filters::any(&filters, "driver", |d| d == "local")
                    && filters
                        .get("label")
                        .is_none_or(|w| filters::labels_match(w, &v.labels))
            })
            .map(|v| describe(&context.machine, v))
            .collect();
        crate::api::json(
            StatusCode::OK,
            &json!({ "Volumes": list, "Warnings": null }),
        )
    })
    .await
}

pub(super) async fn inspect(call: Call, name: String) -> Response<Body> {
    let context = call.context.clone();
    super::blocking(move || {
        let volumes = match context.machine.volumes.list() {
            Ok(v) => v,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
        match volumes.iter().find(|v| v.name == name) {
            Some(v) => crate::api::json(StatusCode::OK, &describe(&context.machine, v)),
            None => error(
                StatusCode::NOT_FOUND,
                &format!("get {name}: no such volume"),
            ),
        }
    })
    .await
}
