//! Durations written the humantime way: "500ms", "10s", "5m", "1h 30m".

use std::fmt;
use std::str::FromStr;

use super::value::{Hint, string_value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration `{text}`: {reason}")]
    Invalid { text: String, reason: String },
    #[error("duration `{text}` has no unit")]
    NoUnit { text: String },
}

impl Hint for DurationError {
    fn help(&self) -> Option<String> {
        Some(match self {
            DurationError::NoUnit { text } => {
                format!(
                    "write a unit, e.g. \"{text}s\" for seconds or \"{text}ms\" for milliseconds"
                )
            }
            DurationError::Invalid { .. } => {
                "write a number and a unit, e.g. \"500ms\", \"10s\", \"5m\", \"1h 30m\"".into()
            }
        })
    }
}

impl FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit()) {
            return Err(DurationError::NoUnit { text: s.into() });
        }
        humantime::parse_duration(trimmed)
            .map(Duration)
            .map_err(|e| DurationError::Invalid {
                text: s.into(),
                reason: e.to_string(),
            })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Duration {
    pub(crate) const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }
    #[cfg(test)]
    pub(crate) const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }
    pub(crate) fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

string_value!(
    Duration,
    expecting = "a duration such as \"10s\"",
    schema = "A duration: a number and a unit, e.g. \"500ms\", \"10s\", \"5m\", \"1h 30m\".",
    pattern = r"^\s*([0-9]+\s*[a-zA-Zµ]+\s*)+$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_humantime() {
        assert_eq!("10s".parse::<Duration>().unwrap(), Duration::from_secs(10));
        assert_eq!(
            "1m 30s".parse::<Duration>().unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            "250ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            " 2h ".parse::<Duration>().unwrap(),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn rejects_bare_numbers_and_garbage_with_help() {
        let e = "10".parse::<Duration>().unwrap_err();
        assert!(matches!(e, DurationError::NoUnit { .. }));
        assert!(e.help().unwrap().contains("\"10s\""));
        assert!("ten seconds".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
        assert!("-5s".parse::<Duration>().is_err());
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for text in ["90s", "1m 30s", "1500ms", "0s", "2h"] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }
        assert_eq!(Duration::from_secs(90).to_string(), "1m 30s");
    }
}
