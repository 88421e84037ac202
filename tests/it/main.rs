//! berth's integration tests: one binary, one module per area (the build is shared).

mod agent;
mod cli_check;
mod cli_validate;
mod confinement;
mod desired_files;
mod dns;
mod docker_streams;
mod image_pull;
mod import;
mod jobs;
mod layering;
mod netmodes;
mod network;
mod quickstart;
mod records;
mod registry_support_selftest;
mod runtime;
mod runtime_keys;
mod secrets;
mod shared_ns;
mod spec_errors;
mod spec_hashes;
mod spec_shuffle;
mod support;
mod update;
mod upgrade;
