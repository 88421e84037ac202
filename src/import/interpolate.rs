//! Compose's variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
//! `${VAR-default}` (unset), `${VAR:?error}` / `${VAR?error}` (required), `${VAR:+alt}` /
//! `${VAR+alt}` (set), `$$` for a literal `$`. Defaults and alternatives may themselves hold
//! interpolations, as in Compose. Also the `.env` format that supplies the variables.

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterpolateError {
    #[error("required variable `{name}` is {how}: {message}")]
    Required {
        name: String,
        how: &'static str,
        message: String,
    },
    #[error("`${{` without its closing `}}` in `{text}`")]
    Unclosed { text: String },
    #[error("invalid variable name in `{text}`")]
    BadName { text: String },
}

/// Where variables come from: the process environment over the `.env` file, as in Compose.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    values: BTreeMap<String, String>,
}

impl Variables {
    pub fn new(values: BTreeMap<String, String>) -> Variables {
        Variables { values }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// `.env` values under `environment`: a variable set in both keeps the environment's.
    pub fn with_dotenv(
        environment: BTreeMap<String, String>,
        dotenv: &str,
    ) -> Result<Variables, DotenvError> {
        let mut vars = Variables::new(environment.clone());
        for (k, v) in parse_dotenv(dotenv, &vars)? {
            if !environment.contains_key(&k) {
                vars.values.insert(k, v);
            }
        }
        Ok(vars)
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Interpolate one value.
pub fn interpolate(text: &str, vars: &Variables) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body)
                .ok_or_else(|| InterpolateError::Unclosed { text: text.into() })?;
            out.push_str(&braced(&body[..end], text, vars)?);
            rest = &body[end + 1..];
        } else if after.starts_with(is_name_start) {
            let end = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            out.push_str(vars.get(&after[..end]).unwrap_or(""));
            rest = &after[end..];
        } else {
            // A lone `$` (before a digit, a space or the end) stays, as Compose keeps it.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` that closes a `${` whose body starts `body`, nesting counted.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(body: &str, text: &str, vars: &Variables) -> Result<String, InterpolateError> {
    let end = body.find(|c| !is_name_char(c)).unwrap_or(body.len());
    let (name, op) = body.split_at(end);
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(InterpolateError::BadName { text: text.into() });
    }
    let value = vars.get(name);
    let set_nonempty = value.is_some_and(|v| !v.is_empty());
    let (choose_alt, arg, kind) = match op {
        "" => return Ok(value.unwrap_or("").to_string()),
        _ if op.starts_with(":-") => (!set_nonempty, &op[2..], '-'),
        _ if op.starts_with('-') => (value.is_none(), &op[1..], '-'),
        _ if op.starts_with(":?") => (!set_nonempty, &op[2..], '?'),
        _ if op.starts_with('?') => (value.is_none(), &op[1..], '?'),
        _ if op.starts_with(":+") => (set_nonempty, &op[2..], '+'),
        _ if op.starts_with('+') => (value.is_some(), &op[1..], '+'),
        _ => return Err(InterpolateError::BadName { text: text.into() }),
    };
    match (kind, choose_alt) {
        ('?', true) => Err(InterpolateError::Required {
            name: name.into(),
            how: if value.is_some() { "empty" } else { "not set" },
            message: interpolate(arg, vars)?,
        }),
        ('+', false) => Ok(String::new()),
        (_, true) => interpolate(arg, vars),
        (_, false) => Ok(value.unwrap_or("").to_string()),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DotenvError {
    #[error("line {line}: expected `NAME=VALUE`, found `{text}`")]
    Malformed { line: usize, text: String },
    #[error("line {line}: a quoted value is not closed")]
    Unclosed { line: usize },
    #[error("line {line}: {error}")]
    Interpolate {
        line: usize,
        error: InterpolateError,
    },
}

/// Docker Compose's `.env` format: `NAME=VALUE`, optional `export `, `#` comments, single
/// quotes literal, double quotes with `\n`-style escapes and interpolation, unquoted values
/// trimmed, cut at ` #`, and interpolated (earlier lines and `vars` visible).
pub fn parse_dotenv(text: &str, vars: &Variables) -> Result<Vec<(String, String)>, DotenvError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen = vars.clone();
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(DotenvError::Malformed {
                line,
                text: raw.into(),
            });
        };
        let name = name.trim();
        if name.is_empty()
            || !name.starts_with(is_name_start)
            || !name
                .chars()
                .all(|c| is_name_char(c) || c == '.' || c == '-')
        {
            return Err(DotenvError::Malformed {
                line,
                text: raw.into(),
            });
        }
        let value = value.trim_start();
        let interp = |v: &str, seen: &Variables| {
            interpolate(v, seen).map_err(|error| DotenvError::Interpolate { line, error })
        };
        let value = if let Some(body) = value.strip_prefix('\'') {
            let mut body = body.to_string();
            while !body.contains('\'') {
                let (_, more) = lines.next().ok_or(DotenvError::Unclosed { line })?;
                body.push('\n');
                body.push_str(more);
            }
            body[..body.find('\'').unwrap_or(body.len())].to_string()
        } else if let Some(body) = value.strip_prefix('"') {
            let mut body = body.to_string();
            while closing_quote(&body).is_none() {
                let (_, more) = lines.next().ok_or(DotenvError::Unclosed { line })?;
                body.push('\n');
                body.push_str(more);
            }
            let end = closing_quote(&body).unwrap_or(body.len());
            interp(&unescape(&body[..end]), &seen)?
        } else {
            let value = match value.find(" #") {
                Some(i) => &value[..i],
                None => value,
            };
            interp(value.trim_end(), &seen)?
        };
        seen.values.insert(name.to_string(), value.clone());
        out.retain(|(k, _)| k != name);
        out.push((name.to_string(), value));
    }
    Ok(out)
}

fn closing_quote(body: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        Variables::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn every_form() {
        let v = vars(&[("SET", "x"), ("EMPTY", "")]);
        let i = |t: &str| interpolate(t, &v).unwrap();
        assert_eq!(i("a $SET b"), "a x b");
        assert_eq!(i("${SET}y"), "xy");
        assert_eq!(i("${UNSET}"), "");
        assert_eq!(i("$UNSET-z"), "-z");
        assert_eq!(i("${UNSET:-d}"), "d");
        assert_eq!(i("${EMPTY:-d}"), "d");
        assert_eq!(i("${SET:-d}"), "x");
        assert_eq!(i("${UNSET-d}"), "d");
        assert_eq!(i("${EMPTY-d}"), "");
        assert_eq!(i("${SET:+alt}"), "alt");
        assert_eq!(i("${EMPTY:+alt}"), "");
        assert_eq!(i("${EMPTY+alt}"), "alt");
        assert_eq!(i("${UNSET+alt}"), "");
        assert_eq!(i("${SET:?boom}"), "x");
        assert_eq!(i("${EMPTY?boom}"), "");
        assert_eq!(i("$$SET and $${SET}"), "$SET and ${SET}");
        assert_eq!(i("cost: 5$"), "cost: 5$");
        assert_eq!(i("${UNSET:-${SET}-nested}"), "x-nested");
        assert_eq!(i("${UNSET:-a:b/c}"), "a:b/c");
        assert_eq!(i("${UNSET:-}"), "");
    }

    #[test]
    fn errors() {
        let v = vars(&[("EMPTY", "")]);
        assert_eq!(
            interpolate("${DB_PASSWORD:?set it in .env}", &v),
            Err(InterpolateError::Required {
                name: "DB_PASSWORD".into(),
                how: "not set",
                message: "set it in .env".into()
            })
        );
        assert!(matches!(
            interpolate("${EMPTY:?no}", &v),
            Err(InterpolateError::Required { how: "empty", .. })
        ));
        assert!(interpolate("${EMPTY?no}", &v).is_ok());
        assert!(matches!(
            interpolate("${OPEN", &v),
            Err(InterpolateError::Unclosed { .. })
        ));
        assert!(matches!(
            interpolate("${1X}", &v),
            Err(InterpolateError::BadName { .. })
        ));
        assert!(matches!(
            interpolate("${A*B}", &v),
            Err(InterpolateError::BadName { .. })
        ));
    }

    #[test]
    fn dotenv_format() {
        let text = "# comment\n\nexport A=1\nB = 'lit $A' \nC=\"q\\n$A\"\nD=plain value # note\nE=${A}2\nM=\"two\nlines\"\nA=3\n";
        let parsed = parse_dotenv(text, &Variables::default()).unwrap();
        let get = |k: &str| parsed.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("3"));
        assert_eq!(get("B"), Some("lit $A"));
        assert_eq!(get("C"), Some("q\n1"));
        assert_eq!(get("D"), Some("plain value"));
        assert_eq!(get("E"), Some("12"));
        assert_eq!(get("M"), Some("two\nlines"));
        assert!(matches!(
            parse_dotenv("JUSTANAME\n", &Variables::default()),
            Err(DotenvError::Malformed { line: 1, .. })
        ));
        assert!(matches!(
            parse_dotenv("A=\"open\n", &Variables::default()),
            Err(DotenvError::Unclosed { line: 1 })
        ));
    }

    #[test]
    fn environment_wins_over_dotenv() {
        let env = [("TAG".to_string(), "from-env".to_string())].into();
        let v = Variables::with_dotenv(env, "TAG=from-file\nOTHER=o\n").unwrap();
        assert_eq!(v.get("TAG"), Some("from-env"));
        assert_eq!(v.get("OTHER"), Some("o"));
    }
}
