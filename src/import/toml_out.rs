//! The TOML that the importer writes: tables of `key = value` lines, each key optionally
//! preceded by a comment saying what it was translated from.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Value>),
    Inline(Vec<(String, Value)>),
}

impl Value {
    pub(crate) fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub(crate) fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
        Value::Array(items.into_iter().map(|s| Value::Str(s.into())).collect())
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn render(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(&toml::Value::String(s.clone()).to_string()),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&toml::Value::Float(*f).to_string()),
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Value::Inline(entries) => {
                if entries.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push_str("{ ");
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&key(k));
                    out.push_str(" = ");
                    v.render(out);
                }
                out.push_str(" }");
            }
        }
    }
}

/// A key as TOML needs it: bare when it can be, quoted otherwise.
pub(crate) fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

/// One `[kind.name]` table.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub header: String,
    pub comments: Vec<String>,
    pub lines: Vec<(String, Value, Vec<String>)>,
}

impl Table {
    pub(crate) fn new(kind: &str, name: &str) -> Table {
        Table {
            header: format!("[{kind}.{}]", key(name)),
            comments: Vec::new(),
            lines: Vec::new(),
        }
    }

    pub(crate) fn set(&mut self, k: &str, v: Value) {
        self.set_noted(k, v, Vec::new());
    }

    /// A key with comment lines above it.
    pub(crate) fn set_noted(&mut self, k: &str, v: Value, notes: Vec<String>) {
        self.lines.retain(|(old, _, _)| old != k);
        self.lines.push((k.to_string(), v, notes));
    }

    pub(crate) fn render(&self, out: &mut String) {
        for c in &self.comments {
            let _ = writeln!(out, "# {c}");
        }
        let _ = writeln!(out, "{}", self.header);
        for (k, v, notes) in &self.lines {
            for n in notes {
                let _ = writeln!(out, "# {n}");
            }
            out.push_str(&key(k));
            out.push_str(" = ");
            v.render(out);
            out.push('\n');
        }
    }
}

/// A whole file: a header comment, then tables separated by blank lines.
pub(crate) fn file(header: &[String], tables: &[Table]) -> String {
    let mut out = String::new();
    for h in header {
        let _ = writeln!(out, "# {h}");
    }
    for t in tables {
        out.push('\n');
        t.render(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_toml_with_comments() {
        let mut t = Table::new("container", "web");
        t.set("image", Value::str("docker.io/library/nginx:1"));
        t.set_noted(
            "workdir",
            Value::str("/app"),
            vec!["translated from working_dir".into()],
        );
        t.set(
            "env",
            Value::Inline(vec![
                ("A".into(), Value::str("quote \" and \\")),
                ("B.C".into(), Value::str("x")),
            ]),
        );
        t.set("cpus", Value::Float(0.5));
        t.set("read_only", Value::Bool(true));
        t.set("ports", Value::strings(["80:80"]));
        let text = file(&["header".into()], &[t]);
        assert!(
            text.contains("# translated from working_dir\nworkdir = \"/app\"\n"),
            "{text}"
        );
        let parsed: toml::Table = text.parse().unwrap();
        let web = &parsed["container"]["web"];
        assert_eq!(web["env"]["A"].as_str(), Some("quote \" and \\"));
        assert_eq!(web["env"]["B.C"].as_str(), Some("x"));
        assert_eq!(web["cpus"].as_float(), Some(0.5));
    }
}
