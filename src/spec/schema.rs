//! The JSON Schema of the desired-state format, generated from the `raw` types so it cannot
//! drift from what the loader accepts. Editors (Taplo / Even Better TOML) use it through a
//! `#:schema ./berth.schema.json` line at the top of a file or a taplo.toml association.

use super::raw::RawFile;

pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RawFile);
    schema.to_value()
}
