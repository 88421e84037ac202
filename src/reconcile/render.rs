//! Plans for people: a diff in the manner of `terraform plan`, one line per step with its
//! reason, then what waits and what is kept. JSON output is the serde form of the same data.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

use super::PassReport;
use super::apply::Outcome;
use super::plan::{Action, Plan};

/// The symbol and verb of a step, as in terraform: + create, ~ change, - destroy.
fn verb(action: &Action) -> (&'static str, String) {
    match action {
        Action::Pull { image } => ("+", format!("pull     image {image}")),
        Action::CreateVolume { name } => ("+", format!("create   volume {name}")),
        Action::EnsureNetwork { name } => ("+", format!("ensure   network {name}")),
        Action::RemoveNetwork { name } => ("-", format!("remove   network {name}")),
        Action::RepairNetworkRules => ("~", "repair   network rules".to_string()),
        Action::Run { name } => ("+", format!("run      container {name}")),
        Action::Start { name, id } => ("~", format!("start    container {name} ({id})")),
        Action::Restart { name, id, .. } => ("~", format!("restart  container {name} ({id})")),
        Action::Replace { name, .. } => ("±", format!("replace  container {name}")),
        Action::StartFirst { name, serving } => (
            "±",
            format!(
                "update   container {name} (start-first, beside {})",
                serving.join(", ")
            ),
        ),
        Action::TakeOver { name, id, .. } => {
            ("~", format!("switch   container {name} ports to {id}"))
        }
        Action::AbortUpdate { name, id, .. } => {
            ("-", format!("abort    container {name} update ({id})"))
        }
        Action::StopUnhealthy { name, id } => {
            ("~", format!("stop     container {name} ({id}, unhealthy)"))
        }
        Action::Rejoin { name, id, .. } => (
            "~",
            format!("restart  container {name} ({id}, to rejoin shared namespaces)"),
        ),
        Action::Stop { name, id } => ("~", format!("stop     container {name} ({id})")),
        Action::Remove { name, id } if name.is_empty() => ("-", format!("remove   container {id}")),
        Action::Remove { name, id } => ("-", format!("remove   container {name} ({id})")),
        Action::RemoveOrphan { id } => ("-", format!("kill     orphaned container {id}")),
        Action::PruneImages { images } => ("-", format!("prune    image(s) {}", images.join(", "))),
    }
}

/// `changes`: for replace steps (by index), the fields that differ from the old container.
pub fn plan_text(
    plan: &Plan,
    changes: &BTreeMap<usize, Vec<String>>,
    outcomes: &[Outcome],
) -> String {
    let mut out = String::new();
    if plan.steps.is_empty() && plan.waits.is_empty() && plan.blocked.is_empty() {
        out.push_str("No changes: the machine matches the desired state.\n");
    } else if plan.steps.is_empty() {
        out.push_str("Nothing to do now.\n");
    }
    for (i, step) in plan.steps.iter().enumerate() {
        let (symbol, what) = verb(&step.action);
        let _ = write!(out, "  {symbol} {what}: {}", step.reason);
        match outcomes.get(i) {
            Some(Outcome::Done { detail }) => {
                let _ = write!(out, "  [done: {detail}]");
            }
            Some(Outcome::Failed { error }) => {
                let _ = write!(out, "  [FAILED: {error}]");
            }
            Some(Outcome::Skipped { reason }) => {
                let _ = write!(out, "  [skipped: {reason}]");
            }
            None => {}
        }
        out.push('\n');
        for change in changes.get(&i).into_iter().flatten() {
            let _ = writeln!(out, "        {change}");
        }
    }
    if !plan.waits.is_empty() {
        out.push_str("Waiting:\n");
        for w in &plan.waits {
            let _ = writeln!(out, "  … {}: {}", w.key, w.reason);
        }
    }
    if !plan.blocked.is_empty() {
        out.push_str("Blocked (until the desired state changes):\n");
        for b in &plan.blocked {
            let _ = writeln!(out, "  ✗ {}: {}", b.key, b.reason);
        }
    }
    if !plan.kept.is_empty() {
        out.push_str("Kept:\n");
        for k in &plan.kept {
            let _ = writeln!(out, "  = {}: {}", k.key, k.reason);
        }
    }
    if let Some(why) = &plan.prune_blocked {
        let _ = writeln!(out, "Nothing is pruned on this pass: {why}.");
    }
    out
}

/// "Plan: 1 to pull, 2 to run, 1 to replace, 1 to remove."
pub fn summary(plan: &Plan) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for step in &plan.steps {
        let key = match step.action {
            Action::Pull { .. } => "to pull",
            Action::CreateVolume { .. } => "volume(s) to create",
            Action::EnsureNetwork { .. } => "network(s) to create or update",
            Action::RemoveNetwork { .. } => "network(s) to remove",
            Action::RepairNetworkRules => "rule repair",
            Action::Run { .. } => "to run",
            Action::Start { .. } => "to start",
            Action::Restart { .. } | Action::Rejoin { .. } => "to restart",
            Action::Replace { .. } | Action::StartFirst { .. } => "to replace",
            Action::TakeOver { .. } => "port switch(es)",
            Action::AbortUpdate { .. } => "update(s) to abort",
            Action::StopUnhealthy { .. } => "unhealthy to stop",
            Action::Stop { .. } => "to stop",
            Action::Remove { .. } => "to remove",
            Action::RemoveOrphan { .. } => "orphan(s) to kill",
            Action::PruneImages { .. } => "image prune",
        };
        *counts.entry(key).or_default() += 1;
    }
    if counts.is_empty() {
        return "Plan: no changes.".into();
    }
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    format!("Plan: {}.", parts.join(", "))
}

/// Problems of the desired files, one per line.
pub fn problems_text(report: &PassReport) -> String {
    let mut out = String::new();
    if let Some(e) = &report.load_error {
        let _ = writeln!(out, "error: {e}");
    }
    for p in &report.problems {
        let _ = writeln!(out, "{p}");
    }
    for r in &report.refreshed {
        if let Some(e) = &r.error {
            let _ = writeln!(out, "refreshing image {}: {e}", r.image);
        }
    }
    out
}

/// What differs between two specs (serde JSON of `model::Container`), one line per leaf:
/// `env.LEVEL: "1" → "2"`, `memory: (unset) → 268435456`.
pub fn field_changes(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("", old, new, &mut out);
    out
}

fn diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    &sub,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        // Environment values are often secrets, and a digest of an env file is a way to
        // guess one offline: say that they changed, not what to.
        _ if path.starts_with("env.") || path.starts_with("inputs.") => out.push(format!(
            "{path}: {}",
            match (old, new) {
                (Value::Null, _) => "(added)",
                (_, Value::Null) => "(removed)",
                _ => "(value changed)",
            }
        )),
        _ => out.push(format!("{path}: {} → {}", show(old), show(new))),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "(unset)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_changes_name_each_leaf() {
        let old = json!({"env": {"A": "1", "B": "2"}, "memory": null, "command": ["a"]});
        let new = json!({"env": {"A": "9", "B": "2", "C": "3"}, "memory": 5, "command": ["a"]});
        assert_eq!(
            field_changes(&old, &new),
            vec![
                "env.A: (value changed)".to_string(),
                "env.C: (added)".to_string(),
                "memory: (unset) → 5".to_string(),
            ]
        );
        assert!(field_changes(&old, &old).is_empty());
    }

    #[test]
    fn file_digests_are_named_never_shown() {
        let old = json!({"inputs": {"/d/app.env": "sha256:aa", "secret:db": "hmac-sha256:bb"}});
        let new = json!({"inputs": {"/d/app.env": "sha256:cc", "secret:db": "hmac-sha256:dd"}});
        let lines = field_changes(&old, &new);
        assert_eq!(
            lines,
            [
                "inputs./d/app.env: (value changed)",
                "inputs.secret:db: (value changed)"
            ]
        );
    }
}
