//! Crash injection for the crash-safety tests: `BERTH_FAILPOINTS=name[,name…]` makes the
//! process SIGKILL itself when it reaches one of the named points, exactly as a power cut or
//! an OOM kill of the agent would stop it. Unset (always, outside tests) it costs one branch.

use std::sync::OnceLock;

/// Every point, so tests and docs can name them; `hit` ignores names outside this list.
pub const POINTS: &[&str] = &[
    // Runtime
    "create-before-rename",
    "create-after-rename",
    "start-after-spawn",
    "restart-after-clear",
    "remove-after-rename",
    // Reconciler
    "replace-after-create",
    "replace-after-stop",
    "replace-after-remove",
    "apply-after-pull",
    "prune-after-stop",
    // Start-first updates
    "start-first-after-create",
    "take-over-after-claim",
    "abort-after-stop",
    // Networks
    "network-create-after-record",
    "network-remove-after-rename",
];

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("BERTH_FAILPOINTS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Die here, without unwinding or cleanup, if this point is armed.
pub(crate) fn hit(point: &'static str) {
    debug_assert!(POINTS.contains(&point), "unknown failpoint {point}");
    if armed().iter().any(|p| p == point) {
        tracing::error!(failpoint = point, "failpoint hit: killing this process");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL to oneself is delivered before kill(2) returns; this is unreachable.
        std::process::abort();
    }
}
