//! The runtime: from an image and a `[container.*]` entry to an isolated, limited, logged
//! process under its own monitor.

pub mod logfile;
pub mod seccomp;
pub mod stats;
pub mod users;
