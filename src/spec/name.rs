//! Resource names. They become file names under the state root, cgroup names, DNS names on
//! networks and (hashed) interface names, so they follow the DNS label rule.

use std::fmt;
use std::str::FromStr;

use super::value::{Hint, string_value};

const MAX_NAME_LEN: usize = 63;

/// A validated resource name: 1–63 of `a-z 0-9 -`, starting and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("a name must not be empty")]
    Empty,
    #[error("name `{name}` is {len} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong { name: String, len: usize },
    #[error("name `{name}` contains `{bad}`")]
    BadCharacter { name: String, bad: char },
    #[error("name `{name}` must start and end with a letter or digit")]
    BadEdge { name: String },
}

impl Hint for NameError {
    fn help(&self) -> Option<String> {
        let rule = "names use lowercase letters, digits and `-`, start and end with a letter or digit, at most 63 characters (they become DNS names, file names and cgroup names)";
        Some(match self {
            NameError::BadCharacter { name, .. } => {
                format!("{rule}; e.g. `{}`", suggest(name))
            }
            _ => rule.to_string(),
        })
    }
}

fn suggest(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    if trimmed.is_empty() {
        "app".into()
    } else {
        trimmed.chars().take(MAX_NAME_LEN).collect()
    }
}

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        let len = s.chars().count();
        if let Some(bad) = s
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-'))
        {
            return Err(NameError::BadCharacter {
                name: s.into(),
                bad,
            });
        }
        if len > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                name: s.into(),
                len,
            });
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(NameError::BadEdge { name: s.into() });
        }
        Ok(Name(s.to_string()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

string_value!(
    Name,
    expecting = "a name such as \"web\"",
    schema = "A resource name: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters.",
    pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "web", "api-2", "0db", &"x".repeat(63)] {
            assert!(ok.parse::<Name>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else_with_a_reason() {
        assert!(matches!("".parse::<Name>(), Err(NameError::Empty)));
        assert!(matches!(
            "Web".parse::<Name>(),
            Err(NameError::BadCharacter { bad: 'W', .. })
        ));
        assert!(matches!(
            "my_db".parse::<Name>(),
            Err(NameError::BadCharacter { bad: '_', .. })
        ));
        assert!(matches!(
            "a.b".parse::<Name>(),
            Err(NameError::BadCharacter { .. })
        ));
        assert!(matches!(
            "-a".parse::<Name>(),
            Err(NameError::BadEdge { .. })
        ));
        assert!(matches!(
            "a-".parse::<Name>(),
            Err(NameError::BadEdge { .. })
        ));
        assert!(matches!(
            "x".repeat(64).parse::<Name>(),
            Err(NameError::TooLong { len: 64, .. })
        ));
        assert!(matches!(
            "é".parse::<Name>(),
            Err(NameError::BadCharacter { .. })
        ));
    }

    #[test]
    fn help_suggests_a_valid_name() {
        let e = "My_DB".parse::<Name>().unwrap_err();
        assert!(e.help().unwrap().contains("`my-db`"));
    }
}
