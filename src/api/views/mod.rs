//! What berth shows about the machine, built once for both the CLI (`status`, `ps`) and the
//! agent's API, so the two never disagree.

pub mod containers;
pub mod status;
