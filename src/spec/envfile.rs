//! `env_file`: Docker's env-file format, with Compose's quoting.
//!
//! One `KEY=VALUE` per line; blank lines and lines starting with `#` are skipped; a leading
//! `export ` is allowed. An unquoted value runs to the end of the line, without the
//! whitespace around it and without an inline comment (` #…`). A value in double quotes
//! knows the escapes `\n`, `\t`, `\\` and `\"`; one in single quotes is taken literally.
//! Both end on their own line. A bare `KEY` (Docker: copy it from the environment of whoever
//! starts the container) is refused: the agent's environment is not part of the desired state.

use std::ops::Range;

/// One variable as written: its name, value and the byte span of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvLine {
    pub key: String,
    pub value: String,
    pub span: Range<usize>,
}

/// Env files often hold credentials: an error points at the variable's name and never
/// quotes its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct EnvFileError {
    /// The byte span of the offending variable's name (of the line when it has no `=`).
    pub span: Range<usize>,
    pub message: String,
    pub help: &'static str,
}

/// Every variable of an env file, in order (a later line for the same key wins).
pub(crate) fn parse(text: &str) -> Result<Vec<EnvLine>, EnvFileError> {
    let mut out = Vec::new();
    let mut start = 0;
    for raw_line in text.split_inclusive('\n') {
        let span = start..start + raw_line.trim_end_matches(['\n', '\r']).len();
        start += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            // The line may well be `PASSWORD: value`: it is not quoted.
            return Err(EnvFileError {
                span,
                message: "this line has no `=`".to_string(),
                help: "write KEY=VALUE (KEY= for an empty value); taking a bare KEY from the agent's environment is not supported",
            });
        };
        let key = key.trim_end();
        // The name's own span (`key` is a slice of `raw_line`): where later problems point.
        let key_start = span.start + (key.as_ptr() as usize - raw_line.as_ptr() as usize);
        let key_span = key_start..key_start + key.len();
        let fail = |message: String, help| EnvFileError {
            span: key_span.clone(),
            message,
            help,
        };
        if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '\0') {
            return Err(fail(
                format!("invalid variable name `{key}`"),
                "names are non-empty and contain no whitespace, `=` or NUL",
            ));
        }
        let value = unquote(key, value.trim()).map_err(|(message, help)| fail(message, help))?;
        if value.contains('\0') {
            return Err(fail(
                format!("the value of `{key}` contains a NUL character"),
                "values cannot contain NUL: the kernel would end the variable there",
            ));
        }
        out.push(EnvLine {
            key: key.to_string(),
            value,
            span,
        });
    }
    Ok(out)
}

/// `text` with everything but the variables' names masked, byte for byte (so spans stay
/// true): what a diagnostic may show of an env file, whose values are often credentials.
pub(crate) fn redacted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        let keep = if trimmed.starts_with('#') {
            0
        } else {
            body.find('=').map_or(0, |i| i + 1)
        };
        out.push_str(&body[..keep]);
        out.extend(body[keep..].chars().map(|c| {
            if c.is_whitespace() {
                c.to_string()
            } else {
                "*".repeat(c.len_utf8())
            }
        }));
        out.push_str(&line[body.len()..]);
    }
    out
}

type Problem = (String, &'static str);

fn unquote(key: &str, value: &str) -> Result<String, Problem> {
    let unterminated = |q: char| {
        (
            format!("the value of `{key}` has no closing {q}"),
            "close the quote on the same line; values spanning lines are not supported",
        )
    };
    let trailing = |rest: &str| -> Result<(), Problem> {
        let rest = rest.trim_start();
        if rest.is_empty() || rest.starts_with('#') {
            Ok(())
        } else {
            Err((
                format!("the quoted value of `{key}` is followed by more text"),
                "only a comment (` # …`) may follow a quoted value",
            ))
        }
    };
    if let Some(body) = value.strip_prefix('\'') {
        let end = body.find('\'').ok_or_else(|| unterminated('\''))?;
        trailing(&body[end + 1..])?;
        return Ok(body[..end].to_string());
    }
    if let Some(body) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    trailing(&body[i + 1..])?;
                    return Ok(out);
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c @ ('\\' | '"' | '$')) => out.push(c),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => return Err(unterminated('"')),
                },
                c => out.push(c),
            }
        }
        return Err(unterminated('"'));
    }
    // Unquoted: an inline comment starts at a `#` after whitespace.
    let end = value
        .char_indices()
        .find(|&(i, c)| c == '#' && i > 0 && value[..i].ends_with([' ', '\t']))
        .map_or(value.len(), |(i, _)| i);
    Ok(value[..end].trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|l| (l.key, l.value))
            .collect()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn only_names_survive_redaction_and_spans_stay_true() {
        let text = "# pw: hunter2\nDB_PASSWORD=s3cr\u{e9}t\nTOKEN: abc def\n  K = \"v\"\r\n";
        let shown = redacted(text);
        assert_eq!(shown.len(), text.len());
        assert_eq!(
            shown,
            "* *** *******\nDB_PASSWORD=*******\n****** *** ***\n  K = ***\r\n"
        );
        let err = parse(text).unwrap_err();
        assert_eq!(err.message, "this line has no `=`");
        assert!(!shown[err.span].contains("abc"));
    }

    #[test]
    fn reads_docker_lines_comments_and_blanks() {
        let text =
            "# comment\n\nA=1\n  B = two words  \nC=\nexport D=4\r\nE=x#y\nF=x # note\nG==\n";
        assert_eq!(
            pairs(text),
            vec![
                p("A", "1"),
                p("B", "two words"),
                p("C", ""),
                p("D", "4"),
                p("E", "x#y"),
                p("F", "x"),
                p("G", "="),
            ]
        );
    }

    #[test]
    fn quotes_follow_compose() {
        let text = "A=\"a b\"\nB='c $d \\n'\nC=\"l1\\nl2 \\\"q\\\" \\\\\" # c\nD=\"\"\n";
        assert_eq!(
            pairs(text),
            vec![
                p("A", "a b"),
                p("B", "c $d \\n"),
                p("C", "l1\nl2 \"q\" \\"),
                p("D", ""),
            ]
        );
    }

    #[test]
    fn refuses_with_the_line() {
        for (text, line, what) in [
            ("A=1\nBARE\n", 2, "no `=`"),
            ("A=1\n\n=x\n", 3, "invalid variable name"),
            ("MY VAR=1\n", 1, "invalid variable name"),
            ("A=\"open\n", 1, "no closing"),
            ("A='x' y\n", 1, "followed by"),
            ("A=a\0b\n", 1, "NUL"),
        ] {
            let e = parse(text).unwrap_err();
            let at = text[..e.span.start].matches('\n').count() + 1;
            assert_eq!(at, line, "{text:?}: {e:?}");
            assert!(e.message.contains(what), "{text:?}: {e:?}");
            assert!(
                !text[e.span.clone()].contains(['"', '\'', '\0', '=']),
                "{text:?}: {e:?}"
            );
        }
    }
}
