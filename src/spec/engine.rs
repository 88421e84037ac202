//! `runtime = "…"`: which engine runs a container.

use std::fmt;
use std::str::FromStr;

use super::value::{Hint, string_value};

/// The embedded engine (youki's libcontainer, inside berth's monitor), or an external OCI
/// runtime binary with runc's command line (runc, crun, youki, runsc), by name on `$PATH` or
/// by absolute path.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Engine {
    #[default]
    Embedded,
    Oci(String),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid runtime `{text}`")]
pub struct EngineError {
    text: String,
}

impl Hint for EngineError {
    fn help(&self) -> Option<String> {
        Some(
            "write \"embedded\" (the default), the name of an OCI runtime on $PATH such as \
             \"runc\", or an absolute path such as \"/usr/sbin/runc\""
                .into(),
        )
    }
}

impl FromStr for Engine {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || EngineError { text: s.into() };
        if s == "embedded" {
            return Ok(Engine::Embedded);
        }
        let is_name = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
            && !s.starts_with('.');
        let is_path = s.starts_with('/')
            && s.len() <= 4096
            && !s.ends_with('/')
            && !s.split('/').any(|c| c == ".." || c == ".")
            && !s.chars().any(char::is_control);
        if is_name || is_path {
            Ok(Engine::Oci(s.to_string()))
        } else {
            Err(err())
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::Embedded => f.write_str("embedded"),
            Engine::Oci(name) => f.write_str(name),
        }
    }
}

string_value!(
    Engine,
    expecting = "\"embedded\", an OCI runtime name such as \"runc\", or an absolute path",
    schema = "The engine that runs the container: \"embedded\" (default) or an OCI runtime binary with runc's command line, by name on $PATH (\"runc\", \"crun\") or by absolute path."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_embedded_names_and_absolute_paths() {
        assert_eq!("embedded".parse::<Engine>().ok(), Some(Engine::Embedded));
        for ok in [
            "runc",
            "crun",
            "youki",
            "runsc",
            "/usr/sbin/runc",
            "/opt/rt/runc-1.2",
        ] {
            assert_eq!(
                ok.parse::<Engine>().ok(),
                Some(Engine::Oci(ok.into())),
                "{ok}"
            );
            assert_eq!(
                ok.parse::<Engine>().map(|e| e.to_string()).ok().as_deref(),
                Some(ok)
            );
        }
    }

    #[test]
    fn refuses_relative_paths_and_odd_text() {
        for bad in [
            "",
            "bin/runc",
            "./runc",
            "/usr/../runc",
            "/usr/bin/",
            "run c",
            ".hidden",
            "a\u{7}",
        ] {
            assert!(bad.parse::<Engine>().is_err(), "{bad:?}");
        }
    }
}
