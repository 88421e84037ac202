//! A YAML document as a tree of located nodes, built from saphyr-parser's events: scalars
//! keep their source text (so `1.10` stays `1.10`, as Compose reads it), anchors and aliases
//! are expanded under a node budget, and merge keys (`<<: *base`, which Compose files use
//! with `x-` extension fields) are applied.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// 1-based line and column (in characters) of a node in the Compose file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub at: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// `~`, `null` or nothing at all.
    Null,
    /// Any other scalar, as written (after interpolation, when applied).
    Scalar(String),
    Seq(Vec<Node>),
    /// Entries in source order; keys are scalars.
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_at: Pos,
    pub value: Node,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum YamlError {
    #[error("{line}:{column}: {reason}")]
    Syntax {
        line: usize,
        column: usize,
        reason: String,
    },
}

fn err(at: Pos, reason: impl Into<String>) -> YamlError {
    YamlError::Syntax {
        line: at.line,
        column: at.column,
        reason: reason.into(),
    }
}

/// Aliases may expand to at most this many nodes in all (a "billion laughs" file stops here).
const ALIAS_BUDGET: usize = 100_000;

enum Frame {
    Seq {
        anchor: usize,
        at: Pos,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        at: Pos,
        entries: Vec<Entry>,
        key: Option<(String, Pos)>,
    },
}

/// Parse one YAML document (an empty file is `Null`).
pub(crate) fn parse(text: &str) -> Result<Node, YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    let mut budget = ALIAS_BUDGET;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            err(
                Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                e.info().to_string(),
            )
        })?;
        let at = Pos::of(&span);
        let done = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(at, "a Compose file holds one YAML document"));
                }
                continue;
            }
            Event::Scalar(text, style, anchor, _) => {
                let kind = if style == ScalarStyle::Plain
                    && matches!(&*text, "" | "~" | "null" | "Null" | "NULL")
                {
                    Kind::Null
                } else {
                    Kind::Scalar(text.into_owned())
                };
                (anchor, Node { at, kind })
            }
            Event::Alias(id) => {
                let node = anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| err(at, "alias to an unknown anchor"))?;
                let size = count(&node);
                if size > budget {
                    return Err(err(at, "aliases expand to too many nodes"));
                }
                budget -= size;
                (0, node)
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq {
                    anchor,
                    at,
                    items: Vec::new(),
                });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map {
                    anchor,
                    at,
                    entries: Vec::new(),
                    key: None,
                });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { anchor, at, items }) => (
                    anchor,
                    Node {
                        at,
                        kind: Kind::Seq(items),
                    },
                ),
                _ => return Err(err(at, "unbalanced sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map {
                    anchor,
                    at,
                    entries,
                    ..
                }) => (
                    anchor,
                    Node {
                        at,
                        kind: Kind::Map(merge_keys(entries)?),
                    },
                ),
                _ => return Err(err(at, "unbalanced mapping")),
            },
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {
                continue;
            }
        };
        let (anchor, node) = done;
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let text = match node.kind {
                        Kind::Scalar(s) => s,
                        Kind::Null => String::new(),
                        _ => return Err(err(node.at, "mapping keys must be plain text")),
                    };
                    *key = Some((text, node.at));
                }
                Some((k, key_at)) => {
                    if k != "<<" && entries.iter().any(|e| e.key == k) {
                        return Err(err(key_at, format!("duplicate key `{k}`")));
                    }
                    entries.push(Entry {
                        key: k,
                        key_at,
                        value: node,
                    });
                }
            },
        }
    }
    Ok(root.unwrap_or(Node {
        at: Pos { line: 1, column: 1 },
        kind: Kind::Null,
    }))
}

fn count(node: &Node) -> usize {
    1 + match &node.kind {
        Kind::Seq(items) => items.iter().map(count).sum(),
        Kind::Map(entries) => entries.iter().map(|e| count(&e.value)).sum(),
        _ => 0,
    }
}

/// `<<: *a` or `<<: [*a, *b]`: the merged maps' keys that the mapping does not set itself
/// (earlier maps win over later ones).
fn merge_keys(entries: Vec<Entry>) -> Result<Vec<Entry>, YamlError> {
    if !entries.iter().any(|e| e.key == "<<") {
        return Ok(entries);
    }
    let (merges, mut own): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| e.key == "<<");
    for merge in merges {
        let sources = match merge.value.kind {
            Kind::Map(m) => vec![m],
            Kind::Seq(items) => items
                .into_iter()
                .map(|n| match n.kind {
                    Kind::Map(m) => Ok(m),
                    _ => Err(err(n.at, "`<<` merges mappings only")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(err(merge.value.at, "`<<` merges mappings only")),
        };
        for source in sources {
            for entry in source {
                if !own.iter().any(|e| e.key == entry.key) {
                    own.push(entry);
                }
            }
        }
    }
    Ok(own)
}

impl Node {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        match &self.kind {
            Kind::Map(e) => e,
            _ => &[],
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.entries()
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// YAML 1.2 core booleans, plus the 1.1 spellings Compose still meets.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self.as_str()? {
            "true" | "True" | "TRUE" | "yes" | "on" => Some(true),
            "false" | "False" | "FALSE" | "no" | "off" => Some(false),
            _ => None,
        }
    }

    /// Apply `f` to every scalar that is a value (keys are left as written).
    pub(crate) fn map_scalars<E>(
        &mut self,
        f: &mut impl FnMut(&str, Pos) -> Result<String, E>,
    ) -> Result<(), E> {
        match &mut self.kind {
            Kind::Scalar(s) => *s = f(s, self.at)?,
            Kind::Seq(items) => {
                for item in items {
                    item.map_scalars(f)?;
                }
            }
            Kind::Map(entries) => {
                for e in entries {
                    e.value.map_scalars(f)?;
                }
            }
            Kind::Null => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_their_text_and_positions() {
        let doc = parse("a: 1.10\nb:\n  - x\n  - 'y'\nc: ~\n").unwrap();
        assert_eq!(doc.get("a").unwrap().as_str(), Some("1.10"));
        assert_eq!(doc.get("a").unwrap().at, Pos { line: 1, column: 4 });
        let Kind::Seq(items) = &doc.get("b").unwrap().kind else {
            panic!()
        };
        assert_eq!(items[1].as_str(), Some("y"));
        assert_eq!(items[1].at, Pos { line: 4, column: 5 });
        assert_eq!(doc.get("c").unwrap().kind, Kind::Null);
        assert_eq!(doc.entries()[2].key_at, Pos { line: 5, column: 1 });
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let doc = parse(
            "x-base: &base\n  restart: always\n  user: app\nweb:\n  <<: *base\n  user: root\n",
        )
        .unwrap();
        let web = doc.get("web").unwrap();
        assert_eq!(web.get("user").unwrap().as_str(), Some("root"));
        assert_eq!(web.get("restart").unwrap().as_str(), Some("always"));
        assert_eq!(web.entries().len(), 2);
    }

    #[test]
    fn errors_are_located() {
        assert!(matches!(
            parse("a: 1\na: 2\n"),
            Err(YamlError::Syntax {
                line: 2,
                column: 1,
                ..
            })
        ));
        assert!(parse("a: [1, 2\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert!(parse("a: *nope\n").is_err());
    }

    #[test]
    fn alias_bombs_stop() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&text).unwrap_err();
        assert!(e.to_string().contains("too many nodes"), "{e}");
    }
}
