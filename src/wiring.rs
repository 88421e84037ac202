//! The drivers wired together: the runtime with the network and volume drivers as its
//! plumbing. This is the one place that composes drivers for a container's life (the
//! monitor's first stage plugs the container in and seeds its volumes; stop and removal
//! unplug it), so no driver imports another.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use crate::network::{Joiner, Networks};
use crate::runtime::{Plumbing, Runtime, RuntimeError};
use crate::state::layout::Layout;
use crate::state::record::{ContainerRecord, Seed};
use crate::volume::Volumes;

/// The network and volume drivers of one state root.
#[derive(Debug)]
struct HostPlumbing {
    networks: Networks,
    volumes: Volumes,
}

impl HostPlumbing {
    fn new(layout: &Layout) -> HostPlumbing {
        HostPlumbing {
            networks: Networks::new(layout),
            volumes: Volumes::new(&layout.state_root),
        }
    }
}

impl Plumbing for HostPlumbing {
    fn plug_in(&self, record: &ContainerRecord, netns: BorrowedFd<'_>) -> Result<(), String> {
        let joiner = Joiner {
            id: &record.id,
            name: &record.name,
            hostname: &record.hostname,
            attachments: &record.networks,
            ports: &record.ports,
            start_first: record.start_first,
            manual: record.manual,
        };
        self.networks
            .attach(&joiner, netns)
            .map_err(|e| e.to_string())
    }

    fn unplug(&self, id: &str, release: bool) -> Result<(), String> {
        let result = if release {
            self.networks.release(id)
        } else {
            self.networks.detach(id)
        };
        result.map_err(|e| e.to_string())
    }

    fn seed_volume(&self, seed: &Seed, root: &OwnedFd, copying: &dyn Fn()) -> Result<(), String> {
        seed_volume(&self.volumes, seed, root, copying)
    }
}

/// The runtime of a state root, its monitors this very executable.
pub fn runtime(state_root: &Path) -> Result<Runtime, RuntimeError> {
    Runtime::new(state_root, plumbing(state_root))
}

/// The runtime of a state root whose monitors run `binary` (tests, embedders).
pub fn runtime_with_monitor(state_root: &Path, binary: &Path) -> Runtime {
    Runtime::with_monitor_binary(state_root, binary, plumbing(state_root))
}

fn plumbing(state_root: &Path) -> Arc<dyn Plumbing> {
    Arc::new(HostPlumbing::new(&Layout::new(state_root)))
}

/// Entry point of `berth monitor ID` (the monitor's first stage).
pub fn monitor_main(layout: &Layout, id: &str) -> i32 {
    crate::runtime::monitor::main(layout, id, &HostPlumbing::new(layout))
}

/// Seed a volume on its first use. A `seeding` marker is written first, so a copy that was
/// interrupted is reported instead of being taken for the user's data next time.
fn seed_volume(
    volumes: &Volumes,
    seed: &Seed,
    root: &OwnedFd,
    copying: &dyn Fn(),
) -> Result<(), String> {
    let done = volumes.seed_marker(&seed.volume);
    if done.exists() {
        return Ok(());
    }
    let started = volumes.dir(&seed.volume).join("seeding");
    if started.exists() {
        return Err(format!(
            "volume {}: copying the image's {} into it was interrupted earlier; empty {} (or remove the volume) and start again",
            seed.volume,
            seed.target,
            seed.data.display()
        ));
    }
    copying();
    crate::fsutil::write_atomic(&started, b"").map_err(|e| e.to_string())?;
    crate::volume::seed_from(
        root,
        &seed.target,
        &seed.data,
        volumes.keeps_owner(&seed.volume),
    )
    .map_err(|e| format!("volume {}: {e}", seed.volume))?;
    // The copy is on disk before the marker that says so.
    let data = std::fs::File::open(&seed.data)
        .map_err(|e| format!("opening {}: {e}", seed.data.display()))?;
    rustix::fs::syncfs(&data).map_err(|e| format!("syncing {}: {e}", seed.data.display()))?;
    crate::fsutil::write_atomic(&done, b"").map_err(|e| e.to_string())?;
    std::fs::remove_file(&started).map_err(|e| format!("removing {}: {e}", started.display()))
}
