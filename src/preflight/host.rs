//! What berth needs beside the kernel: libseccomp, the `nft` tool and netfilter, IP
//! forwarding, tini.

use std::path::{Path, PathBuf};

use super::{Check, judge};

/// The program berth's rule updates run: the nftables crate's default, found on `PATH`.
const NFT: &str = "nft";

pub(super) fn libseccomp() -> Check {
    let version = libseccomp::ScmpVersion::current()
        .ok()
        .map(|v| (v.major, v.minor, v.micro));
    judge::libseccomp(version)
}

/// How `nft -j list chains` went: the tool's path and its output, or why not.
pub(super) enum NftAnswer {
    Missing,
    Failed { path: PathBuf, message: String },
    Listed { path: PathBuf, json: String },
}

/// `nft -j list chains`: read-only, and it needs the nf_tables netlink interface berth's
/// rule updates use.
pub(super) fn nft_chains() -> NftAnswer {
    let Some(path) = find_in_path(NFT) else {
        return NftAnswer::Missing;
    };
    match std::process::Command::new(&path)
        .args(["-j", "list", "chains"])
        .stdin(std::process::Stdio::null())
        .output()
    {
        Err(e) => NftAnswer::Failed {
            path,
            message: e.to_string(),
        },
        Ok(out) if !out.status.success() => NftAnswer::Failed {
            path,
            message: String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_string(),
        },
        Ok(out) => NftAnswer::Listed {
            path,
            json: String::from_utf8_lossy(&out.stdout).into_owned(),
        },
    }
}

pub(super) fn nftables(answer: &NftAnswer) -> Check {
    const NAME: &str = "nftables";
    match answer {
        NftAnswer::Missing => Check::fail(
            NAME,
            format!("no `{}` on PATH", NFT),
            "apt-get install nftables",
        ),
        NftAnswer::Failed { path, message } => Check::fail(
            NAME,
            format!("`{} list chains` failed: {message}", path.display()),
            "nf_tables must answer over netlink: modprobe nf_tables (kernel option \
             CONFIG_NF_TABLES), and run berth as root (CAP_NET_ADMIN)",
        ),
        NftAnswer::Listed { path, .. } => Check::ok(
            NAME,
            format!("{}; nf_tables answers over netlink", path.display()),
        ),
    }
}

pub(super) fn forward_policy(answer: &NftAnswer) -> Check {
    const NAME: &str = "forward-policy";
    let NftAnswer::Listed { json, .. } = answer else {
        return Check::warn(
            NAME,
            "not checked: nft did not list the chains",
            "see the nftables check",
        );
    };
    match judge::forward_drops(json) {
        Ok(drops) => judge::forward_policy(&drops),
        Err(e) => Check::warn(NAME, format!("not checked: {e}"), "see the nftables check"),
    }
}

pub(super) fn ip_forward() -> Check {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    let on = super::read(PATH).and_then(|text| judge::sysctl_flag("net.ipv4.ip_forward", &text));
    match on {
        Ok(on) => judge::ip_forward(on, writable(Path::new(PATH))),
        Err(e) => Check::fail(
            "ip-forward",
            e.to_string(),
            "mount /proc (and /proc/sys) as the host does",
        ),
    }
}

/// Whether this process may write `path` (a read-only /proc/sys mount says no).
fn writable(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok()
}

pub(super) fn tini() -> Check {
    const NAME: &str = "tini";
    let path = Path::new(crate::runtime::kernel_keys::TINI);
    match rustix::fs::access(path, rustix::fs::Access::EXEC_OK) {
        Ok(()) => Check::ok(NAME, format!("{} (for `init = true`)", path.display())),
        Err(e) => Check::warn(
            NAME,
            format!(
                "{}: {} (only containers with `init = true` need it)",
                path.display(),
                std::io::Error::from(e)
            ),
            "apt-get install tini",
        ),
    }
}

/// The first executable `name` in `$PATH`, as a shell would find it.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate.is_file()
                && rustix::fs::access(candidate, rustix::fs::Access::EXEC_OK).is_ok()
        })
}
