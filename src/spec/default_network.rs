//! The default network: the bridge a container joins when it publishes ports without naming
//! a network (as Docker, Compose and podman do), and that any container may join by name
//! (`networks = ["default"]`) without declaring it. `[network.default]` overrides it.
//!
//! Its subnet is built in ([`BUILTIN_SUBNET`]) unless `BERTH_DEFAULT_SUBNET` names another,
//! so two state roots (parallel tests, two agents) can each have one. The variable is read
//! by every command, since the subnet is part of the hash of the containers on the network:
//! `plan`, `apply` and the agent must agree on it.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

use super::model::{Network, Origin};

/// The network's name, reserved for it.
pub const NAME: &str = "default";

/// The environment variable that chooses the built-in network's subnet.
pub const SUBNET_VAR: &str = "BERTH_DEFAULT_SUBNET";

/// Not Docker's 172.17.0.0/16 (nor its 172.18–31 and 192.168 pools), not podman's
/// 10.88.0.0/16 nor netavark's 10.89.x.0/24 pool (berth's examples use 10.89.x too), not the
/// usual Kubernetes ranges (10.42, 10.43, 10.96, 10.244): a /24 in the middle of 10/8.
pub const BUILTIN_SUBNET: &str = "10.231.0.0/24";

#[derive(Debug, thiserror::Error)]
pub enum DefaultSubnetError {
    #[error("{SUBNET_VAR}=`{value}` is not an IPv4 subnet (e.g. \"10.231.0.0/24\")")]
    NotASubnet { value: String },
    #[error("{SUBNET_VAR}=`{value}` is an address inside a subnet; did you mean `{trunc}`?")]
    NotTruncated { value: String, trunc: Ipv4Net },
    #[error("{SUBNET_VAR}=`{value}`: the prefix must be between /8 and /29")]
    BadPrefix { value: String },
}

/// The subnet the state root's `default` network already has, when the variable is unset.
static EXISTING: std::sync::OnceLock<Ipv4Net> = std::sync::OnceLock::new();

/// Without `BERTH_DEFAULT_SUBNET`, keep the subnet the network already has: a command run
/// from a shell that forgot the variable the agent has (or the other way round) must not
/// re-address the network and replace every container on it. Setting the variable to
/// another subnet still moves it, on purpose. The CLI calls this once, before loading.
pub fn keep_existing(subnet: Ipv4Net) {
    let _ = EXISTING.set(subnet);
}

/// The built-in default network's subnet: `BERTH_DEFAULT_SUBNET`, else the existing
/// network's ([`keep_existing`]), else [`BUILTIN_SUBNET`].
pub fn subnet() -> Result<Ipv4Net, DefaultSubnetError> {
    match std::env::var(SUBNET_VAR) {
        Ok(value) if !value.is_empty() => parse_subnet(&value),
        _ => match EXISTING.get() {
            Some(existing) => Ok(*existing),
            None => parse_subnet(BUILTIN_SUBNET),
        },
    }
}

fn parse_subnet(value: &str) -> Result<Ipv4Net, DefaultSubnetError> {
    let net: Ipv4Net = value.parse().map_err(|_| DefaultSubnetError::NotASubnet {
        value: value.into(),
    })?;
    if net.network() != net.addr() {
        return Err(DefaultSubnetError::NotTruncated {
            value: value.into(),
            trunc: net.trunc(),
        });
    }
    if !(8..=29).contains(&net.prefix_len()) {
        return Err(DefaultSubnetError::BadPrefix {
            value: value.into(),
        });
    }
    Ok(net)
}

/// The built-in network on `subnet`: gateway at the first address, outside access, no labels.
pub(crate) fn builtin(subnet: Ipv4Net) -> Network {
    Network {
        origin: Origin {
            file: PathBuf::from(format!("(built-in network, {SUBNET_VAR})")),
            line: 0,
        },
        subnet,
        gateway: Ipv4Addr::from(u32::from(subnet.network()) + 1),
        internal: false,
        labels: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_subnet_is_valid_and_clear_of_docker_and_podman() {
        let net = parse_subnet(BUILTIN_SUBNET).unwrap();
        for other in [
            "172.16.0.0/12",
            "10.88.0.0/16",
            "10.89.0.0/16",
            "192.168.0.0/16",
        ] {
            let other: Ipv4Net = other.parse().unwrap();
            assert!(!other.contains(&net.network()) && !net.contains(&other.network()));
        }
        assert_eq!(
            builtin(net).gateway,
            "10.231.0.1".parse::<Ipv4Addr>().unwrap()
        );
        assert!(!builtin(net).internal);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let msg = |v: &str| parse_subnet(v).unwrap_err().to_string();
        assert_eq!(
            msg("10.1.2.3"),
            "BERTH_DEFAULT_SUBNET=`10.1.2.3` is not an IPv4 subnet (e.g. \"10.231.0.0/24\")"
        );
        assert!(msg("fd00::/64").contains("not an IPv4 subnet"));
        assert!(msg("10.1.2.3/24").contains("did you mean `10.1.2.0/24`"));
        assert!(msg("10.0.0.0/30").contains("between /8 and /29"));
        assert!(msg("10.0.0.0/7").contains("between /8 and /29"));
        assert_eq!(
            parse_subnet("10.99.7.0/24").unwrap(),
            "10.99.7.0/24".parse::<Ipv4Net>().unwrap()
        );
    }
}
