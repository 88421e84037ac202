//! Health checks: `exec`, `tcp` and `http` checks of running containers, their verdict
//! over time (`starting`, `healthy`, `unhealthy`), kept in each container's `health.json`.
//!
//! The reconciler runs them (`checks`), for the agent and for `apply` alike: what it does
//! with a verdict — restart an unhealthy container, start a dependent, switch a start-first
//! update's ports — is the planner's business, from what `observe` reads back.

pub mod checks;
pub(crate) mod probe;
pub mod verdict;

pub(crate) use self::checks::{HealthChecks, Subject};
pub use self::verdict::{Health, HealthRecord};
