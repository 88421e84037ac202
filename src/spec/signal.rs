//! Stop signals by name ("SIGTERM", "TERM", "SIGRTMIN+3").

use std::fmt;
use std::str::FromStr;

use super::value::{Hint, string_value};

/// A Linux signal number, validated against the x86-64/aarch64 numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signal(pub i32);

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];
const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

#[derive(Debug, thiserror::Error)]
#[error("unknown signal `{text}`")]
pub struct SignalError {
    text: String,
}

impl Hint for SignalError {
    fn help(&self) -> Option<String> {
        let upper = self.text.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(s) = crate::spec::loader::suggest(name, NAMES.iter().map(|(n, _)| *n)) {
            return Some(format!("did you mean \"SIG{s}\"?"));
        }
        Some(
            "write a signal name such as \"SIGTERM\", \"SIGINT\", \"SIGQUIT\" or \"SIGRTMIN+3\", or its number as a string (\"1\" to \"31\", \"34\" to \"64\")"
                .into(),
        )
    }
}

impl Signal {
    pub(crate) const TERM: Signal = Signal(15);
    pub(crate) const KILL: Signal = Signal(9);
}

impl FromStr for Signal {
    type Err = SignalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SignalError { text: s.into() };
        let upper = s.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(&(_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
            return Ok(Signal(n));
        }
        // A number, as Docker and Compose accept ("10" for SIGUSR1).
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            return match name.parse::<i32>() {
                Ok(n) if (1..=SIGRTMAX).contains(&n) && !(32..SIGRTMIN).contains(&n) => {
                    Ok(Signal(n))
                }
                _ => Err(err()),
            };
        }
        if name == "IOT" {
            return Ok(Signal(6));
        }
        if name == "POLL" {
            return Ok(Signal(29));
        }
        // "RTMIN", "RTMIN+N", "RTMAX", "RTMAX-N": N is a small unsigned number and the
        // result must stay within SIGRTMIN..=SIGRTMAX.
        let realtime = |rest: &str, sign: char, base: i32, step: i32| -> Option<i32> {
            let offset: i32 = if rest.is_empty() {
                0
            } else {
                let digits = rest.strip_prefix(sign)?;
                if digits.is_empty()
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || digits.len() > 2
                {
                    return None;
                }
                digits.parse().ok()?
            };
            let n = base + step * offset;
            (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(n)
        };
        if let Some(rest) = name.strip_prefix("RTMIN") {
            return realtime(rest, '+', SIGRTMIN, 1).map(Signal).ok_or_else(err);
        }
        if let Some(rest) = name.strip_prefix("RTMAX") {
            return realtime(rest, '-', SIGRTMAX, -1)
                .map(Signal)
                .ok_or_else(err);
        }
        Err(err())
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match NAMES.iter().find(|(_, n)| *n == self.0) {
            Some((name, _)) => write!(f, "SIG{name}"),
            None if self.0 == SIGRTMIN => f.write_str("SIGRTMIN"),
            None => write!(f, "SIGRTMIN+{}", self.0 - SIGRTMIN),
        }
    }
}

string_value!(
    Signal,
    expecting = "a signal name such as \"SIGTERM\"",
    schema = "A signal name or number, e.g. \"SIGTERM\", \"USR1\", \"10\", \"SIGRTMIN+3\"."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_or_without_prefix() {
        assert_eq!("SIGTERM".parse::<Signal>().unwrap(), Signal(15));
        assert_eq!("term".parse::<Signal>().unwrap(), Signal(15));
        assert_eq!("SIGQUIT".parse::<Signal>().unwrap(), Signal(3));
        assert_eq!("SIGRTMIN+3".parse::<Signal>().unwrap(), Signal(37));
        assert_eq!("SIGRTMAX-1".parse::<Signal>().unwrap(), Signal(63));
        assert_eq!("USR1".parse::<Signal>().unwrap(), Signal(10));
        assert_eq!("SIGUSR1".parse::<Signal>().unwrap(), Signal(10));
    }

    #[test]
    fn parses_numbers() {
        assert_eq!("15".parse::<Signal>().unwrap(), Signal(15));
        assert_eq!("10".parse::<Signal>().unwrap(), Signal(10));
        assert_eq!("34".parse::<Signal>().unwrap(), Signal(34));
        assert_eq!("64".parse::<Signal>().unwrap(), Signal(64));
    }

    #[test]
    fn rejects_unknown() {
        for bad in [
            "SIGFOO",
            "",
            "0",
            "32",
            "33",
            "65",
            "-1",
            "+15",
            "99999999999",
            "SIGRTMIN+40",
            "SIGRTMIN+x",
            "SIGRTMIN+2147483647",
            "RTMAX--2147483648",
            "RTMAX--5",
            "RTMIN+-34",
            "RTMIN+-40",
            "RTMIN+",
            "RTMIN+007",
        ] {
            assert!(bad.parse::<Signal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn display_round_trips() {
        for n in (1..=31).chain(34..=64) {
            let s = Signal(n).to_string();
            assert_eq!(s.parse::<Signal>().unwrap(), Signal(n), "{s}");
        }
    }
}
