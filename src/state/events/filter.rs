//! Which events a reader wants (Docker's filters), and times as `docker events` reads them.

use super::{Action, Event, Subject};

/// Which events a reader wants, with dockerd's rules: the values of one key are
/// alternatives, different keys must all match; `container`, `network` and `volume` match an
/// event's id or `name` by prefix (whatever its type, as dockerd: `container=web` keeps only
/// events whose subject is called web…); `image` matches exactly, with or without the tag;
/// `event=health_status` matches every health event, `event=health_status: healthy` only
/// those; every `label` must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub subjects: Vec<Subject>,
    /// Actions as Docker spells them (`die`, `health_status: healthy`).
    pub events: Vec<String>,
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    pub images: Vec<String>,
    /// `KEY` (present) or `KEY=VALUE`, against the attributes (container labels are
    /// attributes).
    pub labels: Vec<String>,
}

impl EventFilter {
    pub fn is_empty(&self) -> bool {
        *self == EventFilter::default()
    }

    pub fn matches(&self, event: &Event) -> bool {
        let any = |list: &[String], test: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| test(v))
        };
        let named = |v: &str| event.id.starts_with(v) || event.name().starts_with(v);
        let action = event.docker_action();
        let image_name = match event.subject {
            Subject::Image => event.attributes.get("name"),
            _ => event.attributes.get("image"),
        };
        let image = |i: &str| {
            [Some(&event.id), image_name]
                .into_iter()
                .flatten()
                .any(|have| have == i || strip_tag(have) == i)
        };
        (self.subjects.is_empty() || self.subjects.contains(&event.subject))
            && any(&self.events, &|e| {
                if matches!(e, "health_status" | "exec_start" | "exec_die") {
                    action.starts_with(e)
                } else {
                    action == e
                }
            })
            && any(&self.containers, &named)
            && any(&self.networks, &named)
            && any(&self.volumes, &named)
            && any(&self.images, &image)
            && self.labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => event.attributes.get(k).is_some_and(|have| have == v),
                None => event.attributes.contains_key(l.as_str()),
            })
    }

    /// Adds `key=value` as `berth events --filter` and Docker's filters spell it.
    pub fn add(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "type" => {
                let subject = [
                    Subject::Container,
                    Subject::Image,
                    Subject::Network,
                    Subject::Volume,
                    Subject::Desired,
                    Subject::Agent,
                ]
                .into_iter()
                .find(|s| s.as_str() == value)
                .ok_or_else(|| {
                    format!(
                        "unknown type {value:?}: expected container, image, network, volume, desired or agent"
                    )
                })?;
                self.subjects.push(subject);
            }
            "event" => {
                let base = value.split(':').next().unwrap_or(value).trim();
                if !Action::ALL.iter().any(|a| a.as_str() == base) {
                    let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                    return Err(format!(
                        "unknown event {value:?}: expected one of {}",
                        known.join(", ")
                    ));
                }
                self.events.push(value.to_string());
            }
            "container" => self.containers.push(value.to_string()),
            "network" => self.networks.push(value.to_string()),
            "volume" => self.volumes.push(value.to_string()),
            "image" => self.images.push(value.to_string()),
            "label" => self.labels.push(value.to_string()),
            _ => {
                return Err(format!(
                    "unknown filter {key:?}: expected type, event, container, image, label, network or volume"
                ));
            }
        }
        Ok(())
    }
}

/// `name:tag` without its tag (a registry port's colon is not a tag's).
fn strip_tag(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => reference,
    }
}

/// A point in time as `docker events --since` takes it: unix seconds (with an optional
/// fraction, `1700000000.5`), RFC 3339 (`2026-12-07T10:00:00Z`), or a duration before
/// `now_ns` (`10m`, `1h30m`). Unix nanoseconds.
pub fn parse_time(text: &str, now_ns: u64) -> Result<u64, String> {
    let text = text.trim();
    if let Some((secs, frac)) = text.split_once('.').or(Some((text, "")))
        && !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
    {
        let secs: u64 = secs.parse().map_err(|_| format!("{text:?}: too large"))?;
        let nanos: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<9}").parse().unwrap_or(0)
        };
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(nanos))
            .ok_or_else(|| format!("{text:?}: too large"));
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .map_err(|_| format!("{text:?}: before 1970"));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        let ago = u64::try_from(ago.as_nanos()).unwrap_or(u64::MAX);
        return Ok(now_ns.saturating_sub(ago));
    }
    Err(format!(
        "{text:?} is not a time: expected unix seconds (1700000000), RFC 3339 \
         (2026-12-07T10:00:00Z) or a duration ago (10m)"
    ))
}
