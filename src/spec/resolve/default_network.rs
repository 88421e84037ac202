//! The built-in default network in the resolved state: offered to containers when no file
//! declares `[network.default]`, kept only when a container joins it, and checked against
//! the declared networks' subnets.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::default_network::{self, NAME, SUBNET_VAR};
use crate::spec::diag::Code;
use crate::spec::loader::{Entry, Kind};
use crate::spec::model::{Container, ContainerNetwork, Desired};
use crate::spec::name::Name;
use crate::spec::raw::RawNetwork;

use super::{Resolver, span};

fn joins(c: &Container, network: &Name) -> bool {
    matches!(&c.network, ContainerNetwork::Bridge(a) if a.iter().any(|a| &a.network == network))
}

impl Resolver {
    /// Offers the built-in network to the containers about to be resolved, unless a file
    /// declares one of that name (even a broken one) or the subnet variable is unusable
    /// (the CLI refuses to start then), or a file failed to parse: it may declare one, and
    /// offering the built-in subnet would re-address the network under its containers.
    /// Returns whether it was offered.
    pub(super) fn offer_default_network(&mut self, desired: &mut Desired) -> bool {
        if self.names.is_declared(Kind::Network, NAME) || self.names.unparsed {
            return false;
        }
        let (Ok(name), Ok(subnet)) = (NAME.parse::<Name>(), default_network::subnet()) else {
            return false;
        };
        desired
            .networks
            .insert(name, default_network::builtin(subnet));
        true
    }

    /// Drops the built-in network when no container joins it (any more).
    pub(super) fn drop_unused_default_network(
        &mut self,
        containers: &BTreeMap<Name, Container>,
        desired: &mut Desired,
    ) {
        if let Ok(name) = NAME.parse::<Name>()
            && !containers.values().any(|c| joins(c, &name))
        {
            desired.networks.remove(&name);
        }
    }

    /// Refuses the built-in network, with the containers that join it, when its subnet
    /// overlaps a declared network's.
    pub(super) fn check_default_network_overlaps(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawNetwork>>,
        containers: &mut BTreeMap<Name, Container>,
        desired: &mut Desired,
    ) {
        let Ok(name) = NAME.parse::<Name>() else {
            return;
        };
        let users: BTreeSet<Name> = containers
            .iter()
            .filter(|(_, c)| joins(c, &name))
            .map(|(n, _)| n.clone())
            .collect();
        let Some(builtin) = desired.networks.get(&name) else {
            return;
        };
        let builtin_subnet = builtin.subnet;
        if users.is_empty() {
            return;
        }
        let overlapping: Vec<&Name> = desired
            .networks
            .iter()
            .filter(|(n, net)| {
                **n != name
                    && (net.subnet.contains(&builtin_subnet.network())
                        || builtin_subnet.contains(&net.subnet.network()))
            })
            .map(|(n, _)| n)
            .collect();
        if overlapping.is_empty() {
            return;
        }
        let list = users
            .iter()
            .map(|u| format!("`{u}`"))
            .collect::<Vec<_>>()
            .join(", ");
        for other in overlapping {
            let e = &entries[other];
            let at = e
                .raw
                .subnet
                .as_ref()
                .map(span)
                .unwrap_or(e.key_span.clone());
            let subnet = desired.networks[other].subnet;
            self.diagnostics.push(
                e.diag(
                    Code::SubnetOverlap,
                    at,
                    format!("subnet {subnet} of network `{other}` overlaps {builtin_subnet} of the built-in network `{NAME}`, which {list} join"),
                )
                .with_help(format!("give network `{other}` another subnet, declare `[network.{NAME}]` with a subnet of your own, or set {SUBNET_VAR}")),
            );
        }
        desired.networks.remove(&name);
        for user in users {
            containers.remove(&user);
            self.mark_broken(Kind::Container, &user);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::loader::InputFile;
    use crate::spec::model::{ContainerNetwork, Desired};
    use crate::spec::{Loaded, default_network, load_files};

    const IMAGE: &str = "image = \"docker.io/library/busybox:1\"\n";

    fn load(text: &str) -> Loaded {
        load_files(&[InputFile {
            path: "d.toml".into(),
            text: text.into(),
        }])
    }

    fn clean(text: &str) -> Desired {
        let loaded = load(text);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.desired
    }

    fn joined(d: &Desired, c: &str) -> Vec<String> {
        match &d.containers[c].network {
            ContainerNetwork::Bridge(a) => a.iter().map(|a| a.network.to_string()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn publishing_ports_without_a_network_joins_the_default_one() {
        let d = clean(&format!(
            "[container.web]\n{IMAGE}ports = [\"8080:80\", \"9000-9001:9000-9001\"]\n"
        ));
        assert_eq!(joined(&d, "web"), ["default"]);
        let net = &d.networks["default"];
        assert_eq!(net.subnet, default_network::subnet().unwrap());
        assert!(!net.internal);
        let ports: Vec<String> = d.containers["web"]
            .ports
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(ports, ["8080:80/tcp", "9000:9000/tcp", "9001:9001/tcp"]);
    }

    #[test]
    fn no_ports_and_no_network_stays_loopback_only_as_in_0_1_0() {
        let d = clean(&format!("[container.job]\n{IMAGE}"));
        assert_eq!(d.containers["job"].network, ContainerNetwork::None);
        assert!(
            d.networks.is_empty(),
            "an unused default network is not kept"
        );
        let d = clean(&format!(
            "[container.web]\n{IMAGE}network = \"host\"\n[container.quiet]\n{IMAGE}network = \"none\"\n"
        ));
        assert_eq!(d.containers["web"].network, ContainerNetwork::Host);
        assert_eq!(d.containers["quiet"].network, ContainerNetwork::None);
        assert!(d.networks.is_empty());
    }

    #[test]
    fn the_default_network_is_joined_by_name_without_a_declaration() {
        let d = clean(&format!(
            "[network.front]\nsubnet = \"10.89.1.0/24\"\n[container.app]\n{IMAGE}networks = [\"front\", {{ name = \"default\", aliases = [\"api\"] }}]\n"
        ));
        assert_eq!(joined(&d, "app"), ["default", "front"]);
        assert!(d.networks.contains_key("default"));
    }

    #[test]
    fn a_declared_default_network_overrides_the_builtin_one() {
        let d = clean(&format!(
            "[network.default]\nsubnet = \"10.77.0.0/24\"\n[container.web]\n{IMAGE}ports = [\"8080:80\"]\n"
        ));
        assert_eq!(joined(&d, "web"), ["default"]);
        assert_eq!(d.networks["default"].subnet.to_string(), "10.77.0.0/24");
        // Declared and unused: kept, like any declared network.
        let d = clean("[network.default]\nsubnet = \"10.77.0.0/24\"\n");
        assert!(d.networks.contains_key("default"));
    }

    #[test]
    fn a_broken_declared_default_network_holds_its_users_back_silently() {
        let loaded = load(&format!(
            "[network.default]\nsubnet = \"nonsense\"\n[container.web]\n{IMAGE}ports = [\"8080:80\"]\n[container.app]\n{IMAGE}networks = [\"default\"]\n"
        ));
        assert_eq!(loaded.diagnostics.len(), 1, "{:?}", loaded.diagnostics);
        assert!(loaded.diagnostics[0].to_string().contains("invalid subnet"));
        assert!(loaded.desired.containers.is_empty());
        assert!(loaded.desired.networks.is_empty());
    }

    #[test]
    fn a_file_that_failed_to_parse_holds_the_default_networks_users_back() {
        // It may declare `[network.default]` with another subnet: offering the built-in one
        // would re-address the live network and replace every container on it.
        let loaded = load_files(&[
            InputFile {
                path: "net.toml".into(),
                text: "[network.default\nsubnet = \"10.77.0.0/24\"\n".into(),
            },
            InputFile {
                path: "apps.toml".into(),
                text: format!(
                    "[container.web]\n{IMAGE}ports = [\"8080:80\"]\n[container.app]\n{IMAGE}networks = [\"default\"]\n[container.job]\n{IMAGE}"
                ),
            },
        ]);
        assert!(
            loaded.desired.networks.is_empty(),
            "{:?}",
            loaded.desired.networks
        );
        let names: Vec<&str> = loaded
            .desired
            .containers
            .keys()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(
            names,
            ["job"],
            "only the container that joins no network is kept"
        );
        let waiting: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .filter(|d| d.contains("unknown network `default`"))
            .collect();
        assert_eq!(waiting.len(), 2, "{:?}", loaded.diagnostics);
        assert!(
            waiting
                .iter()
                .all(|d| d.contains("a file that failed to parse may declare it"))
        );
    }

    #[test]
    fn explicit_none_with_ports_is_still_refused() {
        let loaded = load(&format!(
            "[container.quiet]\n{IMAGE}network = \"none\"\nports = [\"8080:80\"]\n"
        ));
        assert_eq!(loaded.diagnostics.len(), 1);
        let d = &loaded.diagnostics[0];
        assert!(d.to_string().contains("on no bridge network"), "{d}");
        assert!(loaded.desired.containers.is_empty());
    }

    #[test]
    fn a_declared_network_overlapping_the_builtin_one_refuses_its_users() {
        let builtin = default_network::subnet().unwrap();
        let loaded = load(&format!(
            "[network.lan]\nsubnet = \"{}\"\n[container.web]\n{IMAGE}ports = [\"8080:80\"]\n[container.db]\n{IMAGE}networks = [\"lan\"]\n[container.after]\n{IMAGE}depends_on = {{ web = \"started\" }}\n",
            builtin.supernet().unwrap()
        ));
        assert_eq!(loaded.diagnostics.len(), 1, "{:?}", loaded.diagnostics);
        let text = loaded.diagnostics[0].to_string();
        assert!(
            text.contains("of the built-in network `default`, which `web` join"),
            "{text}"
        );
        assert!(text.contains("BERTH_DEFAULT_SUBNET"), "{text}");
        let names: Vec<&str> = loaded
            .desired
            .containers
            .keys()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names, ["db"], "its users and their dependents are left out");
        assert!(!loaded.desired.networks.contains_key("default"));
        // Without a user, the overlap does not matter.
        clean(&format!(
            "[network.lan]\nsubnet = \"{}\"\n[container.db]\n{IMAGE}networks = [\"lan\"]\n",
            builtin.supernet().unwrap()
        ));
    }
}
