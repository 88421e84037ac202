//! systemd's unit-file syntax as Quadlet reads it: `[Section]` headers, `Key=value` lines,
//! `#`/`;` comments, a trailing backslash continuing a line (comment lines inside a
//! continuation skipped), repeated sections merged, every entry located. What a value means
//! (one value, a list that an empty assignment resets, words) is asked per key. A drop-in is
//! parsed alone and merged into its unit.

use super::super::Pos;

/// Where an entry is: line and column (1-based), and in which file of the unit (0: the unit
/// itself, then its drop-ins in the order they were applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct At {
    pub line: usize,
    pub column: usize,
    pub file: usize,
}

impl At {
    /// The whole file.
    pub(crate) const START: At = At {
        line: 1,
        column: 1,
        file: 0,
    };

    pub(crate) fn pos(self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error(
        "a key before the first [Section] header: put it under [Container], [Network] or [Volume]"
    )]
    NoSection,
    #[error("`{line}` is not a `Key=value` line, a [Section] header or a comment")]
    Malformed { line: String },
    #[error("`[{name}]` is not a section name")]
    BadSection { name: String },
}

/// One `Key=value`, its value with surrounding whitespace removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub at: At,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub name: String,
    pub at: At,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnitFile {
    pub sections: Vec<Section>,
}

impl UnitFile {
    pub(crate) fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// A drop-in's sections added after the unit's own, its entries marked as from `file`.
    pub(crate) fn merge(&mut self, dropin: UnitFile, file: usize) {
        for mut section in dropin.sections {
            for e in &mut section.entries {
                e.at.file = file;
            }
            section.at.file = file;
            match self.sections.iter_mut().find(|s| s.name == section.name) {
                Some(s) => s.entries.extend(section.entries),
                None => self.sections.push(section),
            }
        }
    }
}

impl Section {
    /// Each key once, where it first appears, in file order.
    pub(crate) fn keys(&self) -> Vec<(&str, At)> {
        let mut out: Vec<(&str, At)> = Vec::new();
        for e in &self.entries {
            if !out.iter().any(|(k, _)| *k == e.key) {
                out.push((&e.key, e.at));
            }
        }
        out
    }

    /// The last assignment of a one-value key, a pair of double quotes around it removed
    /// (as Quadlet reads them); None when absent or last assigned empty.
    pub(crate) fn last(&self, key: &str) -> Option<Entry> {
        let e = self.entries.iter().rev().find(|e| e.key == key)?;
        let v = e.value.as_str();
        let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
            &v[1..v.len() - 1]
        } else {
            v
        };
        (!v.is_empty()).then(|| Entry {
            key: e.key.clone(),
            value: v.to_string(),
            at: e.at,
        })
    }

    /// Every assignment of a list key since the last empty one (which resets the list).
    pub(crate) fn all(&self, key: &str) -> Vec<&Entry> {
        let mut out = Vec::new();
        for e in self.entries.iter().filter(|e| e.key == key) {
            if e.value.is_empty() {
                out.clear();
            } else {
                out.push(e);
            }
        }
        out
    }
}

fn is_comment(line: &str) -> bool {
    line.is_empty() || line.starts_with('#') || line.starts_with(';')
}

/// Parse a unit file's text. A header or key line continued over several physical lines is
/// located at its first.
pub(crate) fn parse(text: &str) -> Result<UnitFile, (At, UnitError)> {
    let mut file = UnitFile::default();
    let mut current: Option<usize> = None;
    let mut pending = String::new();
    let mut start = At::default();
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect();
    for (n, raw) in lines.iter().enumerate() {
        let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
        let line = raw.trim();
        if is_comment(line) {
            continue;
        }
        if pending.is_empty() {
            start = At {
                line: n + 1,
                column: indent + 1,
                file: 0,
            };
        }
        let mut line = line.to_string();
        if let Some(cut) = line.strip_suffix('\\') {
            if n + 1 != lines.len() {
                pending.push_str(cut);
                continue;
            }
            line = cut.to_string();
        }
        if !pending.is_empty() {
            line = std::mem::take(&mut pending) + &line;
        }
        if let Some(rest) = line.strip_prefix('[')
            && let Some(end) = rest.find(']')
            && rest[end + 1..].chars().all(|c| c == ' ' || c == '\t')
        {
            let name = &rest[..end];
            if name.is_empty() || name.chars().any(|c| c == '[' || c.is_control()) {
                return Err((
                    start,
                    UnitError::BadSection {
                        name: name.to_string(),
                    },
                ));
            }
            current = Some(match file.sections.iter().position(|s| s.name == name) {
                Some(i) => i,
                None => {
                    file.sections.push(Section {
                        name: name.to_string(),
                        at: start,
                        entries: Vec::new(),
                    });
                    file.sections.len() - 1
                }
            });
            continue;
        }
        let Some((key, value)) = line.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err((start, UnitError::Malformed { line }));
        };
        let Some(i) = current else {
            return Err((start, UnitError::NoSection));
        };
        file.sections[i].entries.push(Entry {
            key: key.trim_end().to_string(),
            value: value.trim().to_string(),
            at: start,
        });
    }
    // A continuation left open by a last line that is a comment is dropped, as Quadlet does.
    Ok(file)
}

/// How a value is cut into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// Command lines and `KEY=value` lists (`Exec`, `Environment`, `Secret`, `Mount`…):
    /// quotes removed, C escapes (`\n`, `\t`, `\x41`, `\s`…) applied, an unclosed quote ends
    /// the last word.
    Exec,
    /// Plain lists (`AddCapability`, `Sysctl`, `After`…): quotes removed, backslashes kept.
    Words,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("`\\{escape}` is not an escape systemd knows (write `\\\\` for a backslash)")]
    Escape { escape: String },
    #[error("a quote is not closed")]
    Quote,
}

/// Split as systemd's `extract_first_word` with Quadlet's flags; `""` is an empty word.
pub(crate) fn split(text: &str, how: Split) -> Result<Vec<String>, SplitError> {
    let chars: Vec<char> = text.chars().collect();
    let sep = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let escapes = how == Split::Exec;
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && sep(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' && escapes {
                let Some((len, ch)) = unescape(&chars[i + 1..]) else {
                    if i + 1 == chars.len() {
                        // A trailing backslash is dropped (relaxed mode).
                        i += 1;
                        break;
                    }
                    return Err(SplitError::Escape {
                        escape: chars[i + 1..].iter().take(1).collect(),
                    });
                };
                word.push(ch);
                i += 1 + len;
                continue;
            }
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => word.push(c),
                None if c == '\'' || c == '"' => quote = Some(c),
                None if sep(c) => break,
                None => word.push(c),
            }
            i += 1;
        }
        if quote.is_some() && !escapes {
            return Err(SplitError::Quote);
        }
        words.push(word);
    }
}

/// One C escape after a backslash: (characters consumed, the character).
fn unescape(rest: &[char]) -> Option<(usize, char)> {
    let hex = |n: usize| -> Option<u32> {
        let digits: String = rest.get(1..=n)?.iter().collect();
        if digits.chars().all(|c| c.is_ascii_hexdigit()) {
            u32::from_str_radix(&digits, 16).ok()
        } else {
            None
        }
    };
    let simple = match *rest.first()? {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        '\\' => Some('\\'),
        '"' => Some('"'),
        '\'' => Some('\''),
        's' => Some(' '),
        _ => None,
    };
    if let Some(c) = simple {
        return Some((1, c));
    }
    let (len, code) = match rest[0] {
        'x' => (3, hex(2)?),
        'u' => (5, hex(4)?),
        'U' => (9, hex(8)?),
        '0'..='7' => {
            let digits: String = rest.get(..3)?.iter().collect();
            if !digits.chars().all(|c| ('0'..='7').contains(&c)) {
                return None;
            }
            (
                3,
                u32::from_str_radix(&digits, 8).ok().filter(|v| *v <= 255)?,
            )
        }
        _ => return None,
    };
    // NUL is refused, as systemd does.
    (code != 0).then_some(())?;
    Some((len, char::from_u32(code)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> At {
        At {
            line,
            column,
            file: 0,
        }
    }

    #[test]
    fn sections_keys_comments_and_positions() {
        let f = parse(
            "# comment\n; other\n\n[Unit]\nDescription = Web  \n[Container]\n  Image=nginx\n[Unit]\nAfter=db.service\n",
        )
        .unwrap();
        assert_eq!(f.sections.len(), 2);
        let unit = f.section("Unit").unwrap();
        assert_eq!(unit.at, at(4, 1));
        assert_eq!(
            unit.entries[0],
            Entry {
                key: "Description".into(),
                value: "Web".into(),
                at: at(5, 1)
            }
        );
        // The second [Unit] is merged into the first.
        assert_eq!(unit.entries[1].key, "After");
        assert_eq!(f.section("Container").unwrap().entries[0].at, at(7, 3));
    }

    #[test]
    fn continuations_join_lines_and_skip_comments_inside() {
        let f = parse("[Container]\nExec=/bin/app \\\n  --a \\\n# skipped\n  --b\nImage=x\\\n")
            .unwrap();
        let c = f.section("Container").unwrap();
        assert_eq!(c.entries[0].value, "/bin/app --a --b");
        assert_eq!(c.entries[0].at, at(2, 1));
        // A backslash on the last line is dropped.
        assert_eq!(c.entries[1].value, "x");
        // Without a space before the backslash the lines join directly (as Quadlet reads them).
        let f = parse("[Container]\nImage=docker.io/\\\nlibrary/nginx\n").unwrap();
        assert_eq!(
            f.section("Container").unwrap().entries[0].value,
            "docker.io/library/nginx"
        );
    }

    #[test]
    fn errors_are_located() {
        assert_eq!(
            parse("Image=x\n").unwrap_err(),
            (at(1, 1), UnitError::NoSection)
        );
        assert_eq!(
            parse("[Container]\n\njust words\n").unwrap_err(),
            (
                at(3, 1),
                UnitError::Malformed {
                    line: "just words".into()
                }
            )
        );
        assert_eq!(parse("[Container]\n=value\n").unwrap_err().0, at(2, 1));
        assert!(matches!(
            parse("[]\n").unwrap_err().1,
            UnitError::BadSection { .. }
        ));
        assert!(matches!(
            parse("[Container] x\n").unwrap_err().1,
            UnitError::Malformed { .. }
        ));
    }

    #[test]
    fn last_and_all() {
        let f = parse(
            "[Container]\nImage=a\nImage=\"b c\"\nVolume=/a:/a\nVolume=\nVolume=/b:/b\nVolume=/c:/c\nUser=x\nUser=\n",
        )
        .unwrap();
        let c = f.section("Container").unwrap();
        assert_eq!(c.last("Image").unwrap().value, "b c");
        assert_eq!(c.last("Image").unwrap().at, at(3, 1));
        let vols: Vec<&str> = c.all("Volume").iter().map(|e| e.value.as_str()).collect();
        assert_eq!(vols, ["/b:/b", "/c:/c"]);
        // An empty last assignment unsets a one-value key.
        assert_eq!(c.last("User"), None);
        assert_eq!(c.last("Nothing"), None);
        let keys: Vec<&str> = c.keys().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["Image", "Volume", "User"]);
    }

    #[test]
    fn exec_words_unquote_and_unescape() {
        let w = |s: &str| split(s, Split::Exec).unwrap();
        assert_eq!(
            w(r#"/bin/sh -c "echo 'hi there'" 'a b'"#),
            ["/bin/sh", "-c", "echo 'hi there'", "a b"]
        );
        assert_eq!(w(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(
            w(r#"tab\there \x41\101\u00e9 nl\n q\" s\s"#),
            ["tab\there", "AAé", "nl\n", "q\"", "s "]
        );
        assert_eq!(w(r#""" x"#), ["", "x"]);
        assert_eq!(w("  spaced   out  "), ["spaced", "out"]);
        assert_eq!(w(""), Vec::<String>::new());
        // An unclosed quote ends the word; a trailing backslash is dropped.
        assert_eq!(w(r#"a "b c"#), ["a", "b c"]);
        assert_eq!(w("a\\"), ["a"]);
        assert_eq!(
            split(r"a\qb", Split::Exec),
            Err(SplitError::Escape { escape: "q".into() })
        );
        assert!(split(r"\x00", Split::Exec).is_err());
        assert!(split(r"\777", Split::Exec).is_err());
    }

    #[test]
    fn plain_words_keep_backslashes() {
        let w = |s: &str| split(s, Split::Words).unwrap();
        assert_eq!(
            w(r#"CAP_NET_ADMIN "CAP_SYS_TIME"  a\b"#),
            ["CAP_NET_ADMIN", "CAP_SYS_TIME", r"a\b"]
        );
        assert_eq!(split("'open", Split::Words), Err(SplitError::Quote));
    }
}
