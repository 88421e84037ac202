//! Bridges, veths, addresses and routes, through rtnetlink. Every call is synchronous for its
//! callers (the monitor is single-threaded, the reconciler's steps are blocking): a
//! current-thread runtime drives the netlink socket.
//!
//! Ownership is written on the objects themselves: every link berth makes carries an
//! `ifalias` naming the state root's scope, so a listing finds exactly berth's links and a
//! name someone else took is never touched.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("opening a netlink socket: {source}")]
    Socket { source: std::io::Error },
    #[error("{op} {link}: {source}")]
    Netlink {
        op: &'static str,
        link: String,
        source: std::io::Error,
    },
    #[error("network interface {link} exists and is not berth's ({}); remove or rename it", alias.as_deref().map_or("it has no alias".to_string(), |a| format!("its alias is `{a}`")))]
    NotOurs { link: String, alias: Option<String> },
    #[error("entering the container's network namespace: {source}")]
    Setns { source: nix::Error },
}

/// One link as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    /// The bridge it is a port of.
    pub master: Option<u32>,
}

fn netlink_err(op: &'static str, link: &str) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let link = link.to_string();
    move |e| LinkError::Netlink {
        op,
        link,
        source: errno_of(&e),
    }
}

fn errno_of(e: &rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => std::io::Error::other(other.to_string()),
    }
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == errno)
}

/// A netlink connection in the calling thread's network namespace.
pub(crate) struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

impl Netlink {
    pub(crate) fn open() -> Result<Netlink, LinkError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|source| LinkError::Socket { source })?;
        let handle = rt.block_on(async {
            let (connection, handle, _) =
                rtnetlink::new_connection().map_err(|source| LinkError::Socket { source })?;
            tokio::spawn(connection);
            Ok::<_, LinkError>(handle)
        })?;
        Ok(Netlink { rt, handle })
    }

    /// Every link of this namespace.
    pub(crate) fn links(&self) -> Result<Vec<Link>, LinkError> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut stream = self.handle.link().get().execute();
            while let Some(msg) = stream
                .try_next()
                .await
                .map_err(netlink_err("listing", "links"))?
            {
                out.push(link_of(&msg));
            }
            Ok(out)
        })
    }

    pub(crate) fn link(&self, name: &str) -> Result<Option<Link>, LinkError> {
        self.rt.block_on(self.get(name))
    }

    async fn get(&self, name: &str) -> Result<Option<Link>, LinkError> {
        let mut stream = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match stream.try_next().await {
            Ok(msg) => Ok(msg.map(|m| link_of(&m))),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(netlink_err("looking up", name)(e)),
        }
    }

    /// Write berth's ownership alias on `link`.
    async fn name_link(&self, link: &Link, alias: &str) -> Result<(), LinkError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(link.index).alias(alias).build())
            .execute()
            .await
            .map_err(netlink_err("naming", &link.name))
    }

    /// A link that must exist (just made, or named by the caller): ENODEV otherwise.
    async fn must_get(&self, op: &'static str, name: &str) -> Result<Link, LinkError> {
        self.get(name).await?.ok_or_else(|| LinkError::Netlink {
            op,
            link: name.to_string(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })
    }

    /// The bridge `name` exists, is berth's (`alias`), is up, and holds exactly `gateway/prefix`
    /// among its IPv4 addresses. Returns whether it had to be created.
    pub(crate) fn ensure_bridge(
        &self,
        name: &str,
        alias: &str,
        gateway: Ipv4Addr,
        prefix: u8,
        adopt_unnamed: bool,
    ) -> Result<bool, LinkError> {
        let ports_of = |index: u32| -> Result<usize, LinkError> {
            Ok(self
                .links()?
                .iter()
                .filter(|l| l.master == Some(index))
                .count())
        };
        // Looked up before entering the runtime: `links` runs its own block_on.
        let existing = self.link(name)?;
        let adopt = match &existing {
            // Made by an ensure that crashed before naming it: an unnamed bridge of exactly
            // the recorded name with nothing plugged in is ours to finish. Not when picking a
            // new name: there it is another state root's, created an instant ago.
            Some(l) if adopt_unnamed && l.alias.is_none() => ports_of(l.index)? == 0,
            _ => false,
        };
        self.rt.block_on(async {
            let mut created = false;
            let link = match existing {
                Some(link) if adopt => {
                    self.name_link(&link, alias).await?;
                    link
                }
                Some(link) => {
                    if link.alias.as_deref() != Some(alias) {
                        return Err(LinkError::NotOurs {
                            link: name.into(),
                            alias: link.alias,
                        });
                    }
                    link
                }
                None => {
                    match self
                        .handle
                        .link()
                        .add(LinkBridge::new(name).build())
                        .execute()
                        .await
                    {
                        Ok(()) => {}
                        // Taken between the lookup and the creation (another state root).
                        Err(e) if is_errno(&e, libc::EEXIST) => {
                            return Err(LinkError::NotOurs {
                                link: name.into(),
                                alias: None,
                            });
                        }
                        Err(e) => return Err(netlink_err("creating bridge", name)(e)),
                    }
                    created = true;
                    let link = self.must_get("finding the new bridge", name).await?;
                    self.name_link(&link, alias).await?;
                    link
                }
            };
            let mut has_gateway = false;
            let mut addrs = self
                .handle
                .address()
                .get()
                .set_link_index_filter(link.index)
                .execute();
            let mut stale = Vec::new();
            while let Some(msg) = addrs
                .try_next()
                .await
                .map_err(netlink_err("listing addresses of", name))?
            {
                let addr = msg.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                });
                match addr {
                    Some(ip) if ip == gateway && msg.header.prefix_len == prefix => {
                        has_gateway = true
                    }
                    Some(_) => stale.push(msg),
                    None => {}
                }
            }
            for msg in stale {
                self.handle
                    .address()
                    .del(msg)
                    .execute()
                    .await
                    .map_err(netlink_err("removing an old address of", name))?;
            }
            if !has_gateway {
                self.handle
                    .address()
                    .add(link.index, IpAddr::V4(gateway), prefix)
                    .execute()
                    .await
                    .map_err(netlink_err("adding the gateway address to", name))?;
            }
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(link.index).up().build())
                .execute()
                .await
                .map_err(netlink_err("bringing up", name))?;
            Ok(created)
        })
    }

    /// The main table's IPv4 routes other than default routes: (destination, output link).
    pub(crate) fn routes(&self) -> Result<Vec<(ipnet::Ipv4Net, Option<u32>)>, LinkError> {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut stream = self
                .handle
                .route()
                .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
                .execute();
            while let Some(msg) = stream
                .try_next()
                .await
                .map_err(netlink_err("listing", "routes"))?
            {
                // RT_TABLE_MAIN; the local table holds the host's own addresses.
                if msg.header.table != 254 || msg.header.destination_prefix_length == 0 {
                    continue;
                }
                let mut dst = None;
                let mut oif = None;
                for attr in &msg.attributes {
                    match attr {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(*ip),
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        _ => {}
                    }
                }
                if let Some(net) = dst.and_then(|ip| {
                    ipnet::Ipv4Net::new(ip, msg.header.destination_prefix_length).ok()
                }) {
                    out.push((net.trunc(), oif));
                }
            }
            Ok(out)
        })
    }

    /// Delete a link; one that is already gone is fine.
    pub(crate) fn delete(&self, name: &str) -> Result<(), LinkError> {
        self.rt.block_on(async {
            let Some(link) = self.get(name).await? else {
                return Ok(());
            };
            match self.handle.link().del(link.index).execute().await {
                Ok(()) => Ok(()),
                Err(e) if is_errno(&e, libc::ENODEV) => Ok(()),
                Err(e) => Err(netlink_err("deleting", name)(e)),
            }
        })
    }

    /// A veth pair: `host` (named `alias`, enslaved to `bridge`, up) here, `peer` created
    /// directly inside the namespace `netns` with the hardware address `peer_mac`.
    pub(crate) fn add_veth(
        &self,
        host: &str,
        alias: &str,
        bridge: &str,
        peer: &str,
        peer_mac: [u8; 6],
        netns: BorrowedFd<'_>,
    ) -> Result<(), LinkError> {
        self.rt.block_on(async {
            let bridge_link = self.must_get("finding bridge", bridge).await?;
            let peer_msg = LinkUnspec::new_with_name(peer)
                .address(peer_mac.to_vec())
                .setns_by_fd(netns.as_raw_fd())
                .build();
            let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
                .name(host.to_string())
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
                .build();
            self.handle
                .link()
                .add(msg)
                .execute()
                .await
                .map_err(netlink_err("creating veth", host))?;
            let link = self.must_get("finding the new veth", host).await?;
            self.handle
                .link()
                .set(
                    LinkUnspec::new_with_index(link.index)
                        .alias(alias)
                        .controller(bridge_link.index)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(netlink_err("attaching", host))?;
            Ok(())
        })
    }

    /// Put an existing link (back) on a bridge, up. Returns false if the link does not exist.
    pub(crate) fn enslave(&self, name: &str, bridge: &str) -> Result<bool, LinkError> {
        self.rt.block_on(async {
            let (Some(link), Some(bridge_link)) = (self.get(name).await?, self.get(bridge).await?)
            else {
                return Ok(false);
            };
            self.handle
                .link()
                .set(
                    LinkUnspec::new_with_index(link.index)
                        .controller(bridge_link.index)
                        .up()
                        .build(),
                )
                .execute()
                .await
                .map_err(netlink_err("attaching", name))?;
            Ok(true)
        })
    }

    /// Inside a container's namespace: give each interface its address and bring it up, then
    /// route everything else through `gateway`.
    pub(crate) fn configure_inside(
        &self,
        interfaces: &[(String, Ipv4Addr, u8)],
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), LinkError> {
        self.rt.block_on(async {
            for (name, ip, prefix) in interfaces {
                let link = self.must_get("finding", name).await?;
                match self
                    .handle
                    .address()
                    .add(link.index, IpAddr::V4(*ip), *prefix)
                    .execute()
                    .await
                {
                    Ok(()) => {}
                    Err(e) if is_errno(&e, libc::EEXIST) => {}
                    Err(e) => return Err(netlink_err("adding an address to", name)(e)),
                }
                self.handle
                    .link()
                    .set(LinkUnspec::new_with_index(link.index).up().build())
                    .execute()
                    .await
                    .map_err(netlink_err("bringing up", name))?;
            }
            if let Some(gateway) = gateway {
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gateway)
                    .build();
                match self.handle.route().add(route).execute().await {
                    Ok(()) => {}
                    Err(e) if is_errno(&e, libc::EEXIST) => {}
                    Err(e) => {
                        return Err(netlink_err(
                            "adding the default route via",
                            &gateway.to_string(),
                        )(e));
                    }
                }
            }
            Ok(())
        })
    }
}

/// A netlink connection inside the network namespace `netns`, used from a thread that
/// entered it (a netlink socket stays in the namespace it was made in; the calling thread's
/// own namespace is left alone).
pub(crate) fn in_namespace<T: Send>(
    netns: BorrowedFd<'_>,
    work: impl FnOnce(&Netlink) -> Result<T, LinkError> + Send,
) -> Result<T, LinkError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|source| LinkError::Setns { source })?;
                let netlink = Netlink::open()?;
                work(&netlink)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(LinkError::Socket {
                    source: std::io::Error::other("the namespace worker panicked"),
                })
            })
    })
}

fn link_of(msg: &rtnetlink::packet_route::link::LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        alias: None,
        master: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
            LinkAttribute::Controller(m) => link.master = Some(*m),
            _ => {}
        }
    }
    link
}

/// The hardware address of a container's interface, derived from its IPv4 address
/// (locally administered, `02:42` and the four address bytes, the scheme Docker used): a
/// container replaced or restarted at the same address keeps the same hardware address, so the
/// host's and the peers' neighbour caches stay right instead of pointing at a dead interface
/// until they expire (half a minute or more).
pub(crate) fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// Set a per-interface IPv4 sysctl (`/proc/sys/net/ipv4/conf/IF/KEY`).
pub(crate) fn set_interface_sysctl(interface: &str, key: &str, value: &str) -> std::io::Result<()> {
    let path = format!("/proc/sys/net/ipv4/conf/{interface}/{key}");
    write_sysctl(&path, value)
}

/// Set `/proc/sys/...` only if it differs (writing it is not free: ip_forward resets
/// interface settings when it flips).
pub(crate) fn write_sysctl(path: &str, value: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value)
}
