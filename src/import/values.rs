//! Compose's value spellings turned into berth's: sizes, durations, command strings, names,
//! paths relative to the output directory.

use std::path::{Component, Path, PathBuf};

/// Docker's size spelling ("512m", "1gb", "64k", bytes) as berth's binary units: Docker's
/// `m` is MiB, which berth makes explicit.
pub(crate) fn size(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(end);
    let number: u64 = number.parse().ok()?;
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    let bytes = number.checked_mul(1u64 << shift)?;
    for (unit, s) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes % (1u64 << s) == 0 {
            return Some(format!("{}{unit}", bytes >> s));
        }
    }
    Some(bytes.to_string())
}

/// A Compose duration ("1m30s", "10s", "500ms") in berth's canonical spelling.
pub(crate) fn duration(text: &str) -> Option<String> {
    text.parse::<crate::spec::duration::Duration>()
        .ok()
        .map(|d| d.to_string())
}

/// A Compose name ("my_app", "Cache.1") as a berth name (DNS label): lowercase, `_` and `.`
/// as `-`. None when nothing usable is left.
pub(crate) fn name(compose: &str) -> Option<String> {
    let mapped: String = compose
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '_' | '.' => '-',
            c => c,
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    trimmed
        .parse::<crate::spec::name::Name>()
        .ok()
        .map(|n| n.as_str().to_string())
}

/// A command given as one string, split as Compose does (shell words, no shell).
pub(crate) fn shell_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// `path` made lexically normal (no `.`, `..` folded) without touching the filesystem.
pub(crate) fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `target` (absolute) relative to `from` (an absolute directory), e.g. "../data".
pub(crate) fn relative(from: &Path, target: &Path) -> PathBuf {
    let (from, target) = (normal(from), normal(target));
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// A file mode as Compose writes it (octal `0440`, `0o440`, or a decimal number such as 288)
/// as berth's octal string.
pub(crate) fn mode(text: &str) -> Option<String> {
    let bits = if let Some(o) = text.strip_prefix("0o") {
        u32::from_str_radix(o, 8).ok()?
    } else if text.len() > 1 && text.starts_with('0') {
        u32::from_str_radix(text, 8).ok()?
    } else {
        text.parse::<u32>().ok()?
    };
    (bits <= 0o7777).then(|| format!("{bits:04o}"))
}

/// A tmpfs mode, octal whatever its spelling ("1777", "01777", "0o1777").
pub(crate) fn octal_mode(text: &str) -> Option<String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let bits = u32::from_str_radix(digits, 8).ok()?;
    (bits <= 0o7777).then(|| format!("{bits:04o}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(size("512m").as_deref(), Some("512MiB"));
        assert_eq!(size("1gb").as_deref(), Some("1GiB"));
        assert_eq!(size("1G").as_deref(), Some("1GiB"));
        assert_eq!(size("1536m").as_deref(), Some("1536MiB"));
        assert_eq!(size("64k").as_deref(), Some("64KiB"));
        assert_eq!(size("1073741824").as_deref(), Some("1GiB"));
        assert_eq!(size("1000").as_deref(), Some("1000"));
        assert_eq!(size("1.5g"), None);
        assert_eq!(size("lots"), None);
    }

    #[test]
    fn names_durations_modes() {
        assert_eq!(name("my_app").as_deref(), Some("my-app"));
        assert_eq!(name("Cache.1").as_deref(), Some("cache-1"));
        assert_eq!(name("___"), None);
        assert_eq!(duration("1m30s").as_deref(), Some("1m 30s"));
        assert_eq!(duration("10s").as_deref(), Some("10s"));
        assert_eq!(duration("ten"), None);
        assert_eq!(mode("0440").as_deref(), Some("0440"));
        assert_eq!(mode("0o400").as_deref(), Some("0400"));
        assert_eq!(mode("288").as_deref(), Some("0440"));
        assert_eq!(mode("99999"), None);
        assert_eq!(octal_mode("1777").as_deref(), Some("1777"));
        assert_eq!(octal_mode("0o755").as_deref(), Some("0755"));
        assert_eq!(octal_mode("9"), None);
    }

    #[test]
    fn commands_split_like_compose() {
        assert_eq!(
            shell_words(r#"sh -c 'echo "hi there"' "a\"b" c\ d"#).unwrap(),
            ["sh", "-c", "echo \"hi there\"", "a\"b", "c d"]
        );
        assert_eq!(shell_words("").unwrap(), Vec::<String>::new());
        assert_eq!(shell_words("'open"), None);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/srv/app/berth"), Path::new("/srv/app/data")),
            Path::new("../data")
        );
        assert_eq!(
            relative(
                Path::new("/srv/app"),
                Path::new("/srv/app/./conf/../nginx.conf")
            ),
            Path::new("nginx.conf")
        );
    }
}
