//! Docker's `filters` query parameter: a JSON map from a filter's name to its values, written
//! `{"label":{"a=b":true}}` (the CLI's spelling) or `{"label":["a=b"]}` (older clients').
//! Values of one name are alternatives; names must all match. Pure.

use std::collections::BTreeMap;

pub(super) type Filters = BTreeMap<String, Vec<String>>;

/// Parses `filters`, refusing a name not in `known` as dockerd does.
pub(super) fn parse(text: Option<&str>, known: &[&str]) -> Result<Filters, String> {
    let mut out = Filters::new();
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(out);
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid filter: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("invalid filter: expected a JSON object".into());
    };
    for (name, values) in map {
        if !known.contains(&name.as_str()) {
            return Err(format!("invalid filter '{name}'"));
        }
        let values: Vec<String> = match values {
            serde_json::Value::Object(set) => set
                .into_iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(false))
                .map(|(v, _)| v)
                .collect(),
            serde_json::Value::Array(list) => list
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::String(one) => vec![one],
            _ => return Err(format!("invalid filter '{name}': expected a map or a list")),
        };
        if !values.is_empty() {
            out.insert(name, values);
        }
    }
    Ok(out)
}

/// Whether `labels` match every `label` value: `KEY` (present) or `KEY=VALUE`.
pub(super) fn labels_match(wanted: &[String], labels: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(w.as_str()),
    })
}

/// dockerd matches names with a regular expression; the anchors `^` and `$` and plain
/// substrings cover what people write (`name=web`, `name=^web$`).
pub(super) fn name_matches(pattern: &str, name: &str) -> bool {
    let name = name.strip_prefix('/').unwrap_or(name);
    let pattern = pattern.strip_prefix('/').unwrap_or(pattern);
    let (start, pattern) = match pattern.strip_prefix('^') {
        Some(rest) => (true, rest.strip_prefix('/').unwrap_or(rest)),
        None => (false, pattern),
    };
    let (end, pattern) = match pattern.strip_suffix('$') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    match (start, end) {
        (true, true) => name == pattern,
        (true, false) => name.starts_with(pattern),
        (false, true) => name.ends_with(pattern),
        (false, false) => name.contains(pattern),
    }
}

/// Whether any value of `name` accepts the object (`true` when the filter is absent).
pub(super) fn any(filters: &Filters, name: &str, accepts: impl Fn(&str) -> bool) -> bool {
    filters
        .get(name)
        .is_none_or(|values| values.iter().any(|v| accepts(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse() {
        let known = ["label", "name"];
        let f = parse(
            Some(r#"{"label":{"a=b":true,"c":true,"off":false}}"#),
            &known,
        )
        .unwrap();
        assert_eq!(f["label"], vec!["a=b".to_string(), "c".to_string()]);
        let f = parse(Some(r#"{"label":["a=b"],"name":["web"]}"#), &known).unwrap();
        assert_eq!(f["name"], vec!["web".to_string()]);
        assert!(parse(None, &known).unwrap().is_empty());
        assert!(parse(Some(""), &known).unwrap().is_empty());
        assert_eq!(
            parse(Some(r#"{"color":["red"]}"#), &known).unwrap_err(),
            "invalid filter 'color'"
        );
        assert!(parse(Some("[1]"), &known).is_err());
    }

    #[test]
    fn labels_match_by_key_or_pair() {
        let labels: BTreeMap<String, String> = [("tier".to_string(), "web".to_string())].into();
        assert!(labels_match(&["tier".into()], &labels));
        assert!(labels_match(&["tier=web".into()], &labels));
        assert!(!labels_match(&["tier=db".into()], &labels));
        assert!(!labels_match(&["tier=web".into(), "x".into()], &labels));
    }

    #[test]
    fn names_match_substrings_and_anchors() {
        assert!(name_matches("web", "/frontend-web"));
        assert!(name_matches("^web$", "/web"));
        assert!(!name_matches("^web$", "/web2"));
        assert!(name_matches("^/web", "/web2"));
        assert!(!name_matches("^web", "/frontend-web"));
        assert!(name_matches("web$", "/frontend-web"));
    }
}
