//! Byte sizes: "256MiB", "1GiB", "500MB", or a bare integer of bytes.
//!
//! Units are exact and case-sensitive on purpose: Docker reads "256m" as MiB and "256MB" as
//! MiB too, which surprises; berth accepts only unambiguous units and says what to write.

use std::fmt;
use std::str::FromStr;

use super::value::Hint;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size `{text}`: expected a whole number followed by a unit")]
    Malformed { text: String },
    #[error("unknown size unit `{unit}` in `{text}`")]
    UnknownUnit { text: String, unit: String },
    #[error("size `{text}` is too large")]
    Overflow { text: String },
    #[error("size must not be negative, got {value}")]
    Negative { value: i64 },
}

impl Hint for SizeError {
    fn help(&self) -> Option<String> {
        let units = "B, KiB, MiB, GiB, TiB (powers of 1024) or kB, MB, GB, TB (powers of 1000)";
        Some(match self {
            SizeError::UnknownUnit { unit, .. } => match suggest_unit(unit) {
                Some(s) => format!("did you mean `{s}`? units are {units}"),
                None => format!("units are {units}"),
            },
            _ => format!("write e.g. \"256MiB\" or \"1GiB\"; units are {units}"),
        })
    }
}

fn suggest_unit(unit: &str) -> Option<&'static str> {
    match unit.to_ascii_lowercase().as_str() {
        "k" | "kb" | "kib" => Some("KiB"),
        "m" | "mb" | "mib" => Some("MiB"),
        "g" | "gb" | "gib" => Some("GiB"),
        "t" | "tb" | "tib" => Some("TiB"),
        "b" | "bytes" => Some("B"),
        _ => None,
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits_end);
        if number.is_empty() {
            return Err(SizeError::Malformed { text: s.into() });
        }
        let unit = unit.trim_start();
        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, m)| *m)
                .ok_or_else(|| {
                    if unit.starts_with('.') {
                        SizeError::Malformed { text: s.into() }
                    } else {
                        SizeError::UnknownUnit {
                            text: s.into(),
                            unit: unit.into(),
                        }
                    }
                })?
        };
        let number: u64 = number
            .parse()
            .map_err(|_| SizeError::Overflow { text: s.into() })?;
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or(SizeError::Overflow { text: s.into() })
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the value exactly, so it parses back equal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, m) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= m && self.0.is_multiple_of(m) {
                return write!(f, "{}{unit}", self.0 / m);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"256MiB\" or a number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                s.parse()
                    .map_err(|e| E::custom(super::value::message_with_help(&e)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| {
                    E::custom(super::value::message_with_help(&SizeError::Negative {
                        value: v,
                    }))
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size: a whole number and a unit, e.g. \"256MiB\", \"1GiB\", \"500MB\", or a number of bytes.",
            "anyOf": [
                { "type": "string", "pattern": r"^\s*[0-9]+\s*(B|KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)?\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!("256MiB".parse::<ByteSize>().unwrap(), ByteSize(256 << 20));
        assert_eq!("1GiB".parse::<ByteSize>().unwrap(), ByteSize(1 << 30));
        assert_eq!("1 GiB".parse::<ByteSize>().unwrap(), ByteSize(1 << 30));
        assert_eq!("500MB".parse::<ByteSize>().unwrap(), ByteSize(500_000_000));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert_eq!("10B".parse::<ByteSize>().unwrap(), ByteSize(10));
    }

    #[test]
    fn rejects_ambiguous_units_with_a_suggestion() {
        let e = "256m".parse::<ByteSize>().unwrap_err();
        assert!(
            e.help().unwrap().contains("did you mean `MiB`"),
            "{:?}",
            e.help()
        );
        assert!(matches!(
            "1.5GiB".parse::<ByteSize>(),
            Err(SizeError::Malformed { .. })
        ));
        assert!(matches!(
            "GiB".parse::<ByteSize>(),
            Err(SizeError::Malformed { .. })
        ));
        assert!(matches!(
            "".parse::<ByteSize>(),
            Err(SizeError::Malformed { .. })
        ));
        assert!(matches!(
            "-1MiB".parse::<ByteSize>(),
            Err(SizeError::Malformed { .. })
        ));
    }

    #[test]
    fn rejects_overflow() {
        assert!(matches!(
            "99999999999999999999".parse::<ByteSize>(),
            Err(SizeError::Overflow { .. })
        ));
        assert!(matches!(
            "20000000TiB".parse::<ByteSize>(),
            Err(SizeError::Overflow { .. })
        ));
    }

    #[test]
    fn display_round_trips() {
        for v in [
            0u64,
            1,
            1023,
            1024,
            256 << 20,
            500_000_000,
            (1 << 40) * 3,
            u64::MAX,
        ] {
            let s = ByteSize(v).to_string();
            assert_eq!(s.parse::<ByteSize>().unwrap(), ByteSize(v), "{s}");
        }
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
    }
}
