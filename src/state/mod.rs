//! The vocabulary every part of berth shares: where things live on disk (`layout`), the
//! records written there and how they are read and written (`record`), and a container's
//! generated /etc files (`etc`). Plain data and file formats only: no driver's policy.
//! Everything above (runtime, network, health, image, volume, reconcile) may import it;
//! it imports nothing of theirs.

pub(crate) mod etc;
pub mod events;
pub mod format;
pub mod image;
pub mod layout;
pub mod network;
pub mod record;
pub mod secret_key;
