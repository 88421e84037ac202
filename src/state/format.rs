//! The on-disk format of berth's JSON records, and how an older one is carried forward.
//!
//! Every record names its format in a top-level `"format"` key. A record without one was
//! written by berth 0.1.0, before formats were named: that is format 1. Reading a record
//! of an older format runs the record type's migrations, oldest first, on the JSON object
//! before it is deserialized (containerd's metadata schema and its `migrations.go` are the
//! model); a newer format than this berth knows is refused, never guessed at. Writing
//! always writes the current format.
//!
//! Changing a record's fields in a way older records do not deserialize into (a renamed or
//! retyped field, a new field without a default) raises its `FORMAT` and adds the
//! migration from the previous one: `tests/fixtures/records/` holds records written by
//! earlier releases, and every one of them must load in every later version.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The key that names a record's format.
const FORMAT_KEY: &str = "format";

/// The format of a record that names none: what berth 0.1.0 wrote.
const UNNAMED_FORMAT: u64 = 1;

/// A JSON record berth keeps on disk.
pub trait Record: Serialize + DeserializeOwned {
    /// What the record is, in messages ("container record").
    const KIND: &'static str;
    /// The format this berth writes.
    const FORMAT: u64;
    /// The steps from every older format to `FORMAT`, one per format, oldest first.
    const MIGRATIONS: &'static [Migration] = &[];
}

/// One step: turns a record of format `from` into one of format `from + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub from: u64,
    /// What changed, for the log and for readers of the code.
    pub change: &'static str,
    pub apply: fn(&mut Map<String, Value>) -> Result<(), String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a {kind} in JSON: {source}")]
    Json {
        kind: &'static str,
        source: serde_json::Error,
    },
    #[error("the {kind}'s \"format\" is {found}, not a format number")]
    BadFormat { kind: &'static str, found: String },
    #[error(
        "a {kind} of format {found}, written by a newer berth (this one reads formats 1 to {known}): run that berth, or a newer one"
    )]
    Newer {
        kind: &'static str,
        found: u64,
        known: u64,
    },
    #[error("migrating a {kind} from format {from}: {message}")]
    Migration {
        kind: &'static str,
        from: u64,
        message: String,
    },
    #[error("encoding a {kind}: {source}")]
    Encode {
        kind: &'static str,
        source: serde_json::Error,
    },
}

#[derive(Serialize)]
struct Written<'a, T> {
    format: u64,
    #[serde(flatten)]
    record: &'a T,
}

/// The record as this berth writes it: pretty JSON, its format first.
pub(crate) fn encode<T: Record>(record: &T) -> Result<Vec<u8>, FormatError> {
    encode_as(T::KIND, T::FORMAT, record)
}

/// For a file that is written in a named format but read leniently, never migrated (the
/// reconciler's status report).
pub(crate) fn encode_as<T: Serialize>(
    kind: &'static str,
    format: u64,
    record: &T,
) -> Result<Vec<u8>, FormatError> {
    serde_json::to_vec_pretty(&Written { format, record })
        .map_err(|source| FormatError::Encode { kind, source })
}

/// Only the format of a record (the rest is skipped unread).
#[derive(serde::Deserialize)]
struct FormatOnly {
    #[serde(default)]
    format: Option<Value>,
}

/// A record of any format this berth knows, migrated to the current one.
pub(crate) fn decode<T: Record>(bytes: &[u8]) -> Result<T, FormatError> {
    let json = |source| FormatError::Json {
        kind: T::KIND,
        source,
    };
    let found = format_of::<T>(
        serde_json::from_slice::<FormatOnly>(bytes)
            .map_err(json)?
            .format
            .as_ref(),
    )?;
    if found == T::FORMAT {
        // The common case: one parse, the format key ignored as an unknown field.
        return serde_json::from_slice(bytes).map_err(json);
    }
    let mut value: Value = serde_json::from_slice(bytes).map_err(json)?;
    if let Value::Object(object) = &mut value {
        object.remove(FORMAT_KEY);
        migrate::<T>(object, found)?;
    }
    serde_json::from_value(value).map_err(json)
}

fn format_of<T: Record>(value: Option<&Value>) -> Result<u64, FormatError> {
    let found = match value {
        None => UNNAMED_FORMAT,
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| FormatError::BadFormat {
                kind: T::KIND,
                found: v.to_string(),
            })?,
    };
    if found > T::FORMAT {
        return Err(FormatError::Newer {
            kind: T::KIND,
            found,
            known: T::FORMAT,
        });
    }
    Ok(found)
}

fn migrate<T: Record>(object: &mut Map<String, Value>, from: u64) -> Result<(), FormatError> {
    for format in from..T::FORMAT {
        let step = T::MIGRATIONS
            .iter()
            .find(|m| m.from == format)
            .ok_or_else(|| FormatError::Migration {
                kind: T::KIND,
                from: format,
                message: "no migration from this format".into(),
            })?;
        (step.apply)(object).map_err(|message| FormatError::Migration {
            kind: T::KIND,
            from: format,
            message,
        })?;
    }
    Ok(())
}

/// The migrations of `T` lead from format 1 to its current format, one step per format.
/// Every record type's tests call it.
pub fn check_migrations<T: Record>() -> Result<(), String> {
    let froms: Vec<u64> = T::MIGRATIONS.iter().map(|m| m.from).collect();
    let expected: Vec<u64> = (1..T::FORMAT).collect();
    if froms == expected {
        Ok(())
    } else {
        Err(format!(
            "{}: format {} needs one migration from each of {expected:?}, has {froms:?}",
            T::KIND,
            T::FORMAT
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// A record whose history has two changes: format 1 named its field `addr`, format 2
    /// renamed it `address`, format 3 added `port` (which format 2 did not have).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Endpoint {
        address: String,
        port: u16,
    }

    impl Record for Endpoint {
        const KIND: &'static str = "endpoint record";
        const FORMAT: u64 = 3;
        const MIGRATIONS: &'static [Migration] = &[
            Migration {
                from: 1,
                change: "`addr` renamed `address`",
                apply: |o| {
                    let addr = o.remove("addr").ok_or("no `addr`")?;
                    o.insert("address".into(), addr);
                    Ok(())
                },
            },
            Migration {
                from: 2,
                change: "`port` added; before, every endpoint was on 80",
                apply: |o| {
                    o.insert("port".into(), Value::from(80));
                    Ok(())
                },
            },
        ];
    }

    fn endpoint(address: &str, port: u16) -> Endpoint {
        Endpoint {
            address: address.into(),
            port,
        }
    }

    #[test]
    fn the_current_format_is_written_first_and_read_back() {
        let bytes = encode(&endpoint("10.0.0.1", 8080)).expect("encode");
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(text.starts_with("{\n  \"format\": 3,\n"), "{text}");
        assert_eq!(
            decode::<Endpoint>(&bytes).expect("decode"),
            endpoint("10.0.0.1", 8080)
        );
    }

    #[test]
    fn a_record_without_a_format_is_format_one_and_migrated_step_by_step() {
        let old = br#"{ "addr": "10.0.0.2" }"#;
        assert_eq!(
            decode::<Endpoint>(old).expect("decode"),
            endpoint("10.0.0.2", 80)
        );
        let two = br#"{ "format": 2, "address": "10.0.0.3" }"#;
        assert_eq!(
            decode::<Endpoint>(two).expect("decode"),
            endpoint("10.0.0.3", 80)
        );
    }

    #[test]
    fn a_newer_format_is_refused_not_guessed_at() {
        let newer = br#"{ "format": 4, "address": "10.0.0.4", "port": 1 }"#;
        match decode::<Endpoint>(newer) {
            Err(
                e @ FormatError::Newer {
                    found: 4, known: 3, ..
                },
            ) => {
                assert!(e.to_string().contains("newer berth"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_malformed_format_or_a_failing_migration_is_an_error() {
        for bad in [
            &br#"{ "format": "2", "address": "a", "port": 1 }"#[..],
            br#"{ "format": 0, "address": "a", "port": 1 }"#,
            br#"{ "format": -1, "address": "a", "port": 1 }"#,
            br#"{ "format": 2.5, "address": "a", "port": 1 }"#,
        ] {
            assert!(
                matches!(decode::<Endpoint>(bad), Err(FormatError::BadFormat { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        match decode::<Endpoint>(br#"{ "address": "renamed too early" }"#) {
            Err(FormatError::Migration {
                from: 1, message, ..
            }) => {
                assert_eq!(message, "no `addr`")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode::<Endpoint>(b"{ not json"),
            Err(FormatError::Json { .. })
        ));
    }

    #[test]
    fn migrations_must_cover_every_older_format() {
        assert_eq!(check_migrations::<Endpoint>(), Ok(()));

        #[derive(Serialize, Deserialize)]
        struct Gappy {}
        impl Record for Gappy {
            const KIND: &'static str = "gappy record";
            const FORMAT: u64 = 3;
            const MIGRATIONS: &'static [Migration] = &[Migration {
                from: 2,
                change: "",
                apply: |_| Ok(()),
            }];
        }
        assert!(check_migrations::<Gappy>().is_err());
        assert!(matches!(
            decode::<Gappy>(b"{}"),
            Err(FormatError::Migration { from: 1, .. })
        ));
    }
}
