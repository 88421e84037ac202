//! What the runtime needs from the drivers beside it: networks to plug a container into and
//! volumes to seed. Whoever composes the drivers (`crate::wiring`) gives an implementation,
//! so the runtime never imports the network or volume driver, and a runtime without them
//! (tests, an embedder) is one trait object away.

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::state::record::{ContainerRecord, Seed};

pub trait Plumbing: Send + Sync + std::fmt::Debug {
    /// Plug a created container, whose init waits to be started in `netns`, into the bridge
    /// networks of its record (`record.networks` is not empty).
    fn plug_in(&self, record: &ContainerRecord, netns: BorrowedFd<'_>) -> Result<(), String>;

    /// A stopped container's forwards go; with `release`, its addresses too (it is being
    /// removed). Idempotent: a container that is not plugged in is not an error.
    fn unplug(&self, id: &str, release: bool) -> Result<(), String>;

    /// Seed a volume with the image's content at its mount target, on its first use only.
    /// `copying` is called once before a copy starts (it can take long: the monitor reports
    /// it to its starter).
    fn seed_volume(&self, seed: &Seed, root: &OwnedFd, copying: &dyn Fn()) -> Result<(), String>;
}
