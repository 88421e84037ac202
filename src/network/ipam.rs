//! Address choice, pure: the first free host address of a subnet, skipping the network and
//! broadcast addresses and the gateway.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("every address of {subnet} is taken ({taken} containers hold one)")]
    Exhausted { subnet: Ipv4Net, taken: usize },
    #[error(
        "address {ip} is not usable on {subnet} (outside it, its network or broadcast address, or the gateway)"
    )]
    Unusable { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {ip} is held by container {holder}")]
    Taken { ip: Ipv4Addr, holder: String },
}

/// Whether `ip` can be given to a container on `subnet` with `gateway`.
pub(crate) fn usable(subnet: Ipv4Net, gateway: Ipv4Addr, ip: Ipv4Addr) -> bool {
    subnet.contains(&ip)
        && ip != gateway
        && (subnet.prefix_len() >= 31 || (ip != subnet.network() && ip != subnet.broadcast()))
}

/// The address for a new lease: `wanted` if given (it must be usable and free), else the
/// lowest free one.
pub(crate) fn choose(
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    taken: &BTreeSet<Ipv4Addr>,
    wanted: Option<Ipv4Addr>,
    holder_of: impl Fn(Ipv4Addr) -> String,
) -> Result<Ipv4Addr, IpamError> {
    if let Some(ip) = wanted {
        if !usable(subnet, gateway, ip) {
            return Err(IpamError::Unusable { ip, subnet });
        }
        if taken.contains(&ip) {
            return Err(IpamError::Taken {
                ip,
                holder: holder_of(ip),
            });
        }
        return Ok(ip);
    }
    subnet
        .hosts()
        .find(|ip| usable(subnet, gateway, *ip) && !taken.contains(ip))
        .ok_or(IpamError::Exhausted {
            subnet,
            taken: taken.len(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn set(ips: &[&str]) -> BTreeSet<Ipv4Addr> {
        ips.iter().map(|s| ip(s)).collect()
    }
    fn nobody(_: Ipv4Addr) -> String {
        "x".into()
    }

    #[test]
    fn lowest_free_skips_network_gateway_and_taken() {
        let n = net("10.89.0.0/24");
        let g = ip("10.89.0.1");
        assert_eq!(choose(n, g, &set(&[]), None, nobody), Ok(ip("10.89.0.2")));
        assert_eq!(
            choose(n, g, &set(&["10.89.0.2", "10.89.0.3"]), None, nobody),
            Ok(ip("10.89.0.4"))
        );
        // A hole is filled first.
        assert_eq!(
            choose(n, g, &set(&["10.89.0.3"]), None, nobody),
            Ok(ip("10.89.0.2"))
        );
    }

    #[test]
    fn gateway_elsewhere_in_the_subnet() {
        let n = net("10.89.0.0/24");
        assert_eq!(
            choose(n, ip("10.89.0.254"), &set(&[]), None, nobody),
            Ok(ip("10.89.0.1"))
        );
    }

    #[test]
    fn exhausted_subnet() {
        let n = net("10.89.0.0/30"); // .1 gateway, .2 the only host
        let g = ip("10.89.0.1");
        assert_eq!(choose(n, g, &set(&[]), None, nobody), Ok(ip("10.89.0.2")));
        assert_eq!(
            choose(n, g, &set(&["10.89.0.2"]), None, nobody),
            Err(IpamError::Exhausted {
                subnet: n,
                taken: 1
            })
        );
    }

    #[test]
    fn static_address_must_be_usable_and_free() {
        let n = net("10.89.0.0/24");
        let g = ip("10.89.0.1");
        assert_eq!(
            choose(n, g, &set(&[]), Some(ip("10.89.0.50")), nobody),
            Ok(ip("10.89.0.50"))
        );
        for bad in ["10.89.0.1", "10.89.0.0", "10.89.0.255", "10.89.1.5"] {
            assert_eq!(
                choose(n, g, &set(&[]), Some(ip(bad)), nobody),
                Err(IpamError::Unusable {
                    ip: ip(bad),
                    subnet: n
                }),
                "{bad}"
            );
        }
        assert_eq!(
            choose(n, g, &set(&["10.89.0.50"]), Some(ip("10.89.0.50")), |_| {
                "web-1".into()
            }),
            Err(IpamError::Taken {
                ip: ip("10.89.0.50"),
                holder: "web-1".into()
            })
        );
    }
}
