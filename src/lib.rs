//! berth: a declarative container agent. See ARCHITECTURE.md for the map.

pub mod api;
pub mod digest;
pub mod failpoint;
pub(crate) mod fsutil;
pub mod health;
pub mod image;
pub mod import;
pub mod network;
pub mod preflight;
pub mod reconcile;
pub mod runtime;
pub(crate) mod sha256;
pub mod spec;
pub mod state;
pub mod sys;
pub mod units;
pub mod volume;
pub mod wiring;
