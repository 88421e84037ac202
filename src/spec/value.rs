//! Plumbing shared by the small value types of the format (durations, sizes, ports…): they
//! are written as strings in TOML, parsed on deserialization (so serde errors carry the
//! value's span), written back in canonical form, and described in the JSON Schema.

/// Separates a message from its hint inside a serde error; the loader splits on it.
const HELP_SEPARATOR: &str = "\n\u{1}help: ";

/// A parse error that knows what the user should write instead.
pub trait Hint: std::fmt::Display {
    fn help(&self) -> Option<String> {
        None
    }
}

/// Render a hinted error into a serde error message.
pub(crate) fn message_with_help(err: &dyn Hint) -> String {
    match err.help() {
        Some(help) => format!("{err}{HELP_SEPARATOR}{help}"),
        None => err.to_string(),
    }
}

/// The help of a hinted error, for callers outside the format (the CLI).
pub fn help_of(err: &dyn Hint) -> Option<String> {
    err.help()
}

/// Split a message produced by [`message_with_help`].
pub(crate) fn split_help(message: &str) -> (&str, Option<&str>) {
    match message.split_once(HELP_SEPARATOR) {
        Some((m, h)) => (m, Some(h)),
        None => (message, None),
    }
}

/// Implements Deserialize (from a string, via `FromStr`), Serialize (via `Display`) and
/// JsonSchema (a string with a description and optional pattern) for a value type.
macro_rules! string_value {
    ($ty:ty, expecting = $expecting:expr, schema = $schema:expr $(, pattern = $pattern:expr)?) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse::<$ty>()
                            .map_err(|e| E::custom($crate::spec::value::message_with_help(&e)))
                    }
                }
                d.deserialize_str(V)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                #[allow(unused_mut)]
                let mut schema = schemars::json_schema!({
                    "type": "string",
                    "description": $schema,
                });
                $( schema.insert("pattern".into(), $pattern.into()); )?
                schema
            }
        }
    };
}
pub(crate) use string_value;
