//! `GET /events`: berth's event log in Docker's message format, past (`since`) then live,
//! until `until`. Docker's names where Docker has the event (`die` with `exitCode`,
//! `health_status: healthy`); berth's own actions (`replace`, `switch`, `rollback`,
//! `prune`, `pull_failed`) keep their names. Events about desired files and the agent's
//! passes are berth's alone: sent only when a `type` filter asks for them.

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Call, filters, ids, text};
use crate::api::{Body, error};
use crate::state::events::{Event, Subject, now_ns, parse_time};

const FILTERS: &[&str] = &[
    "type",
    "event",
    "container",
    "image",
    "label",
    "network",
    "volume",
    "scope",
];

/// An event as dockerd sends it.
pub(super) fn message(event: &Event) -> Value {
    let kind = event.subject.as_str();
    let mut action = event.action.as_str().to_string();
    let mut attributes: Map<String, Value> = event
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Some(status) = event.attributes.get("health_status") {
        action = format!("health_status: {status}");
    }
    if let Some(code) = event.attributes.get("exit_code") {
        attributes.insert("exitCode".into(), Value::String(code.clone()));
    }
    let id = match event.subject {
        Subject::Container | Subject::Network => ids::docker_id(&event.id),
        Subject::Image => text::familiar(&event.id),
        _ => event.id.clone(),
    };
    if matches!(event.subject, Subject::Container | Subject::Network) {
        attributes
            .entry("name")
            .or_insert_with(|| Value::String(event.id.clone()));
    }
    if event.subject == Subject::Container {
        if let Some(Value::String(image)) = attributes.get("image") {
            let familiar = text::familiar(image);
            attributes.insert("image".into(), Value::String(familiar));
        }
        attributes.insert("io.berth.id".into(), Value::String(event.id.clone()));
    }
    let seconds = event.time_ns / 1_000_000_000;
    let mut message = json!({
        "Type": kind,
        "Action": action,
        "Actor": { "ID": id, "Attributes": attributes },
        "scope": "local",
        "time": seconds,
        "timeNano": event.time_ns,
    });
    // The fields of API versions before 1.22, which clients still read for containers.
    if event.subject == Subject::Container {
        message["status"] = json!(action);
        message["id"] = json!(id);
        message["from"] = attributes
            .get("image")
            .cloned()
            .unwrap_or(Value::String(String::new()));
    } else if event.subject == Subject::Image {
        message["status"] = json!(action);
        message["id"] = json!(id);
    }
    message
}

/// Whether a Docker message passes the filters, as dockerd's event filter decides: names
/// and ids by prefix, `event` exactly (by prefix for `health_status`), labels against the
/// attributes.
pub(super) fn accepts(f: &filters::Filters, m: &Value) -> bool {
    let kind = m["Type"].as_str().unwrap_or_default();
    let action = m["Action"].as_str().unwrap_or_default();
    let id = m["Actor"]["ID"].as_str().unwrap_or_default();
    let attributes = &m["Actor"]["Attributes"];
    let attribute = |k: &str| attributes[k].as_str().unwrap_or_default().to_string();
    let fuzzy = |key: &str| {
        filters::any(f, key, |v| {
            id.starts_with(v)
                || (!attribute("name").is_empty() && attribute("name").starts_with(v))
                || attribute("io.berth.id") == v
        })
    };
    // berth's own kinds of event only when asked for by type.
    let typed = match f.get("type") {
        Some(types) => types.iter().any(|t| t == kind),
        None => matches!(kind, "container" | "image" | "network" | "volume"),
    };
    let labels: std::collections::BTreeMap<String, String> = attributes
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    typed
        && filters::any(f, "event", |e| {
            action == e || (e.starts_with("health_status") && action.starts_with(e))
        })
        && filters::any(f, "scope", |s| s == "local")
        && fuzzy("container")
        && fuzzy("network")
        && fuzzy("volume")
        && filters::any(f, "image", |i| {
            (kind == "image" && id == i) || attribute("image") == i
        })
        && f.get("label")
            .is_none_or(|w| filters::labels_match(w, &labels))
}

pub(super) async fn events(call: Call) -> Response<Body> {
    let filters = match filters::parse(call.query("filters").as_deref(), FILTERS) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let now = now_ns();
    let time = |key: &str| {
        call.query(key)
            .filter(|t| !t.is_empty())
            .map(|t| parse_time(&t, now))
            .transpose()
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
    };
    // Past events only when `since` asks for them, as dockerd; then each one as it comes.
    let mut events = match call.context.events.between(since, until).await {
        Ok(events) => events,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = events.recv() => next,
                _ = tx.closed() => return,
            };
            let Some(event) = next else { return };
            let Some(line) = line(&filters, &event) else {
                continue;
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    crate::api::ndjson(rx)
}

/// The event as one JSON line, if the filters let it through.
fn line(filters: &filters::Filters, event: &Event) -> Option<Bytes> {
    let m = message(event);
    accepts(filters, &m).then(|| {
        let mut line = m.to_string().into_bytes();
        line.push(b'\n');
        Bytes::from(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::events::Action;

    fn die() -> Event {
        let mut e = Event::now(Subject::Container, Action::Die, "web-0000000a")
            .with("name", "web")
            .with("image", "docker.io/library/nginx:1.27")
            .with("exit_code", 137)
            .with("tier", "front");
        e.time_ns = 1_700_000_000_123_456_789;
        e
    }

    #[test]
    fn container_events_read_as_dockerd_sends_them() {
        let m = message(&die());
        let id = ids::docker_id("web-0000000a");
        assert_eq!(m["Type"], "container");
        assert_eq!(m["Action"], "die");
        assert_eq!(m["Actor"]["ID"], id.as_str());
        assert_eq!(m["Actor"]["Attributes"]["exitCode"], "137");
        assert_eq!(m["Actor"]["Attributes"]["name"], "web");
        assert_eq!(m["Actor"]["Attributes"]["image"], "nginx:1.27");
        assert_eq!(m["scope"], "local");
        assert_eq!(m["time"], 1_700_000_000u64);
        assert_eq!(m["timeNano"], 1_700_000_000_123_456_789u64);
        assert_eq!(m["status"], "die");
        assert_eq!(m["id"], id.as_str());
        assert_eq!(m["from"], "nginx:1.27");
        let health = Event::now(Subject::Container, Action::HealthStatus, "web-0000000a")
            .with("health_status", "healthy");
        assert_eq!(message(&health)["Action"], "health_status: healthy");
        let switch = Event::now(Subject::Container, Action::Switch, "web-0000000b");
        assert_eq!(message(&switch)["Action"], "switch");
    }

    #[test]
    fn filters_select_as_dockerds_do() {
        let m = message(&die());
        let f = |text: &str| filters::parse(Some(text), FILTERS).unwrap();
        assert!(accepts(&f("{}"), &m));
        assert!(accepts(&f(r#"{"container":["web"]}"#), &m));
        assert!(accepts(&f(r#"{"container":["web-0000000a"]}"#), &m));
        let id = ids::docker_id("web-0000000a");
        assert!(accepts(
            &f(&format!(r#"{{"container":["{}"]}}"#, &id[..12])),
            &m
        ));
        assert!(!accepts(&f(r#"{"container":["db"]}"#), &m));
        assert!(accepts(&f(r#"{"event":["die"],"type":["container"]}"#), &m));
        assert!(!accepts(&f(r#"{"event":["start"]}"#), &m));
        assert!(!accepts(&f(r#"{"type":["network"]}"#), &m));
        assert!(accepts(&f(r#"{"label":["tier=front"]}"#), &m));
        assert!(!accepts(&f(r#"{"label":["tier=back"]}"#), &m));
        assert!(accepts(&f(r#"{"image":["nginx:1.27"]}"#), &m));
        let health = message(
            &Event::now(Subject::Container, Action::HealthStatus, "web-0000000a")
                .with("health_status", "healthy"),
        );
        assert!(accepts(&f(r#"{"event":["health_status"]}"#), &health));
        // berth's own kinds only when asked for.
        let pass = message(&Event::now(Subject::Agent, Action::Pass, "agent"));
        assert!(!accepts(&f("{}"), &pass));
        assert!(accepts(&f(r#"{"type":["agent"]}"#), &pass));
    }
}
