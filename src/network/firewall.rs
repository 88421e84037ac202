//! Noticing that something else changed the host's nftables ruleset: Debian's
//! `nftables.service` starts and reloads with `flush ruleset`, firewalld and
//! `iptables-restore` (nft backend) replace what they own, and each of these takes berth's
//! table with it. The kernel announces every committed ruleset change to the
//! `NFNLGRP_NFTABLES` netlink group (what `nft monitor` prints); the agent listens there and
//! runs a pass, whose observation finds the table out of sync and rebuilds it. The watch does
//! not parse the messages: any change is a reason to look, and the pass's check
//! (`rules::in_sync`, one `nft list table`) decides. berth's own rebuilds are changes too:
//! they cost one pass that finds nothing to do.

use std::os::fd::OwnedFd;

use rustix::net::netlink::{NETFILTER, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use tokio::io::unix::AsyncFd;

/// `NFNLGRP_NFTABLES` (linux/netfilter/nfnetlink.h): ruleset changes, as `nft monitor` sees.
const NFNLGRP_NFTABLES: u32 = 7;

/// A subscription to the ruleset's change notifications, in the caller's network namespace.
pub struct RulesetWatch {
    fd: AsyncFd<OwnedFd>,
}

impl RulesetWatch {
    /// Subscribes; fails where the kernel has no nf_tables (then only the periodic resync
    /// repairs the rules).
    pub fn open() -> std::io::Result<RulesetWatch> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(NETFILTER),
        )?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 1 << (NFNLGRP_NFTABLES - 1)))?;
        Ok(RulesetWatch {
            fd: crate::sys::async_readable(fd)?,
        })
    }

    /// Until the ruleset changes; everything already announced is consumed, so a burst of
    /// changes (a whole file loaded by `nft -f`) wakes once.
    pub async fn changed(&mut self) -> std::io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf = [0u8; 8192];
            let mut got = false;
            loop {
                match rustix::net::recv(self.fd.get_ref(), &mut buf, RecvFlags::DONTWAIT) {
                    Ok(_) => got = true,
                    // The kernel dropped notifications for want of room: changes happened.
                    Err(rustix::io::Errno::NOBUFS) => got = true,
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            guard.clear_ready();
            if got {
                return Ok(());
            }
        }
    }
}
