//! `GET /images/json`, `GET /images/{name}/json`, and `DELETE /images/{name}`, which is
//! refused: berth keeps the images its desired state needs and prunes the others itself.
//! An image's Docker id is its config digest; its tags are the references that resolved
//! to it.

use std::collections::BTreeMap;

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{Call, text};
use crate::api::{Body, error};
use crate::reconcile::apply::Machine;
use crate::state::image::ImageRecord;

/// The config digest ("sha256:…") of every recorded reference.
pub(super) fn config_digests(machine: &Machine) -> BTreeMap<String, String> {
    machine
        .images
        .list()
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.source.clone(), r.config.to_string()))
        .collect()
}

/// The image config of a recorded reference.
pub(super) fn config_of(
    machine: &Machine,
    source: &str,
) -> Option<oci_spec::image::ImageConfiguration> {
    let record = machine
        .images
        .list()
        .ok()?
        .into_iter()
        .find(|r| r.source == source)?;
    machine.images.config(&record).ok()
}

/// One Docker image: the records sharing a config digest.
struct Image {
    id: String,
    records: Vec<ImageRecord>,
    config: Value,
}

fn images(machine: &Machine) -> Result<Vec<Image>, (StatusCode, String)> {
    let records = machine
        .images
        .list()
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut by_id: BTreeMap<String, Vec<ImageRecord>> = BTreeMap::new();
    for r in records {
        if machine.images.is_complete(&r) {
            by_id.entry(r.config.to_string()).or_default().push(r);
        }
    }
    Ok(by_id
        .into_iter()
        .map(|(id, records)| {
            let config = machine
                .images
                .config(&records[0])
                .ok()
                .and_then(|c| serde_json::to_value(c).ok())
                .unwrap_or(Value::Null);
            Image {
                id,
                records,
                config,
            }
        })
        .collect())
}

impl Image {
    fn tags(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|r| text::familiar(&r.source))
            .collect()
    }
    fn digests(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|r| text::repo_digest(&r.source, &r.manifest.to_string()))
            .collect()
    }
    fn size(&self) -> u64 {
        self.records[0].size()
    }
    fn created(&self) -> String {
        self.config
            .get("created")
            .and_then(Value::as_str)
            .unwrap_or(text::ZERO_TIME)
            .to_string()
    }
    fn labels(&self) -> Value {
        self.config
            .pointer("/config/Labels")
            .cloned()
            .unwrap_or(Value::Null)
    }
}

pub(super) async fn list(call: Call) -> Response<Body> {
    let context = call.context.clone();
    super::blocking(move || {
        let images = match images(&context.machine) {
            Ok(i) => i,
            Err((status, message)) => return error(status, &message),
        };
        let list: Vec<Value> = images
            .iter()
            .map(|i| {
                json!({
                    "Id": i.id,
                    "ParentId": "",
                    "RepoTags": i.tags(),
                    "RepoDigests": i.digests(),
                    "Created": text::unix_seconds(&i.created()),
                    "Size": i.size(),
                    "SharedSize": -1,
                    "VirtualSize": i.size(),
                    "Labels": i.labels(),
                    "Containers": -1,
                })
            })
            .collect();
        crate::api::json(StatusCode::OK, &list)
    })
    .await
}

/// The image `asked` names: a tag (Docker's short form or berth's), an id or id prefix.
fn find(images: Vec<Image>, asked: &str) -> Option<Image> {
    let bare = asked.strip_prefix("sha256:").unwrap_or(asked);
    let matches = |i: &Image| {
        i.records.iter().any(|r| {
            let familiar = text::familiar(&r.source);
            r.source == asked || familiar == asked || familiar == format!("{asked}:latest")
        }) || (bare.len() >= 4 && i.id.trim_start_matches("sha256:").starts_with(bare))
    };
    images.into_iter().find(matches)
}

pub(super) async fn inspect(call: Call, asked: String) -> Response<Body> {
    let context = call.context.clone();
    super::blocking(move || {
        let images = match images(&context.machine) {
            Ok(i) => i,
            Err((status, message)) => return error(status, &message),
        };
        let Some(image) = find(images, &asked) else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("No such image: {asked}"),
            );
        };
        let c = &image.config;
        let field = |p: &str| c.pointer(p).cloned().unwrap_or(Value::Null);
        let layers: Vec<String> = image.records[0]
            .layers
            .iter()
            .map(|l| l.diff_id.to_string())
            .collect();
        let body = json!({
            "Id": image.id,
            "RepoTags": image.tags(),
            "RepoDigests": image.digests(),
            "Parent": "",
            "Comment": "",
            "Created": text::rfc3339_nanos(&image.created()),
            "Container": "",
            "ContainerConfig": {},
            "DockerVersion": "",
            "Author": c.get("author").and_then(Value::as_str).unwrap_or_default(),
            "Config": {
                "Hostname": "",
                "Domainname": "",
                "User": c.pointer("/config/User").and_then(Value::as_str).unwrap_or_default(),
                "ExposedPorts": field("/config/ExposedPorts"),
                "Env": field("/config/Env"),
                "Cmd": field("/config/Cmd"),
                "Entrypoint": field("/config/Entrypoint"),
                "WorkingDir": c.pointer("/config/WorkingDir").and_then(Value::as_str).unwrap_or_default(),
                "Labels": image.labels(),
                "Volumes": field("/config/Volumes"),
                "StopSignal": field("/config/StopSignal"),
                "OnBuild": null,
            },
            "Architecture": c.get("architecture").cloned().unwrap_or(Value::Null),
            "Variant": c.get("variant").cloned().unwrap_or(Value::Null),
            "Os": c.get("os").cloned().unwrap_or(Value::Null),
            "Size": image.size(),
            "VirtualSize": image.size(),
            "GraphDriver": { "Name": "overlay2", "Data": null },
            "RootFS": { "Type": "layers", "Layers": layers },
            "Metadata": { "LastTagTime": text::ZERO_TIME },
        });
        crate::api::json(StatusCode::OK, &body)
    })
    .await
}

/// Refused: in use, it is named by the desired state (or a `berth run` container); not in
/// use, `berth prune images` removes it with the store's garbage collection.
pub(super) async fn remove(call: Call, asked: String) -> Response<Body> {
    let context = call.context.clone();
    super::blocking(move || {
        let images = match images(&context.machine) {
            Ok(i) => i,
            Err((status, message)) => return error(status, &message),
        };
        let Some(image) = find(images, &asked) else {
            return error(StatusCode::NOT_FOUND, &format!("No such image: {asked}"));
        };
        let users: Vec<String> = context
            .machine
            .runtime
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| image.records.iter().any(|r| r.source == c.image))
            .map(|c| c.id)
            .collect();
        let message = if users.is_empty() {
            format!(
                "berth does not remove images through the Docker API: `berth prune images` removes {asked} and every other image no container uses"
            )
        } else {
            format!(
                "conflict: unable to remove {asked}: it is used by container {}; berth runs what the desired files describe: edit them to stop using it, then `berth prune images`",
                users.join(", ")
            )
        };
        error(StatusCode::CONFLICT, &message)
    })
    .await
}
