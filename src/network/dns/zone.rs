//! What the resolver knows, and its answers (pure): per network, the names and aliases of
//! the containers holding an address on it, made from the records and leases the way the
//! hosts files are; a query is answered here, forwarded, or refused.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use ipnet::Ipv4Net;

use crate::network::record::{Lease, NetworkRecord};

/// Names change when a container is replaced: answers are not to be cached.
const TTL: u32 = 0;
/// The UDP payload size offered in EDNS answers (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Zone {
    pub networks: BTreeMap<String, NetZone>,
    /// Who holds which address on which network: (network, address) → container id.
    holders: BTreeMap<(String, Ipv4Addr), String>,
    /// Each container's networks, in its interfaces' order.
    joined: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NetZone {
    pub gateway: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub internal: bool,
    /// Lower-case name → address (of two containers of one name, the one serving).
    names: BTreeMap<String, Ipv4Addr>,
    /// Address → its container's name.
    reverse: BTreeMap<Ipv4Addr, String>,
}

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// An answer made here.
    Answer(Message),
    /// Not a name of ours: ask the host's resolvers.
    Forward,
    /// No reply at all: a response sent to us (answering one would let two resolvers, or
    /// a spoofed source, bounce messages off each other).
    Ignore,
}

impl Zone {
    /// From the records and the current leases of existing containers (`leases` already
    /// filtered so).
    pub(super) fn build(records: &[NetworkRecord], leases: &[Lease]) -> Zone {
        let mut zone = Zone::default();
        for r in records {
            zone.networks.insert(
                r.name.clone(),
                NetZone {
                    gateway: r.gateway,
                    subnet: r.subnet,
                    internal: r.internal,
                    names: BTreeMap::new(),
                    reverse: BTreeMap::new(),
                },
            );
        }
        let mut ordered: Vec<&Lease> = leases.iter().collect();
        // The serving container of a name first, as in the hosts files.
        ordered.sort_by_key(|l| std::cmp::Reverse(l.claim));
        for l in ordered {
            let Some(net) = zone.networks.get_mut(&l.network) else {
                continue;
            };
            for name in std::iter::once(&l.name).chain(&l.aliases) {
                net.names.entry(name.to_ascii_lowercase()).or_insert(l.ip);
            }
            net.reverse.entry(l.ip).or_insert_with(|| l.name.clone());
            zone.holders
                .insert((l.network.clone(), l.ip), l.container.clone());
        }
        let mut by_container: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for l in leases {
            by_container
                .entry(l.container.clone())
                .or_default()
                .push(l.network.clone());
        }
        zone.joined = by_container;
        zone
    }

    /// The networks whose names a client at `from` on `network` sees: that network first,
    /// then the other networks of its container.
    fn visible(&self, network: &str, from: IpAddr) -> Vec<&NetZone> {
        let mut names = vec![network.to_string()];
        if let IpAddr::V4(v4) = from
            && let Some(id) = self.holders.get(&(network.to_string(), v4))
        {
            names.extend(
                self.joined
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter(|n| n.as_str() != network)
                    .cloned(),
            );
        }
        names.iter().filter_map(|n| self.networks.get(n)).collect()
    }

    /// Whether a client at `from` may ask on `network`'s gateway: only the network's own
    /// containers and the host. A container of another network (or state root) reaches this
    /// gateway too (it is a host address), and must learn nothing of this network through it.
    pub(super) fn admits(
        &self,
        network: &str,
        from: IpAddr,
        is_host: impl Fn(IpAddr) -> bool,
    ) -> bool {
        let from_here = match (self.networks.get(network), from) {
            (Some(n), IpAddr::V4(v4)) => n.subnet.contains(&v4),
            _ => false,
        };
        from_here || is_host(from)
    }

    /// The answer to `query`, received on `network`'s gateway from `from`; `is_host` says
    /// whether an address is one of the host's own.
    pub(super) fn answer(
        &self,
        network: &str,
        from: IpAddr,
        is_host: impl Fn(IpAddr) -> bool,
        query: &Message,
    ) -> Verdict {
        let reply = |code: ResponseCode| Verdict::Answer(response(query, code));
        if query.metadata.message_type != MessageType::Query {
            return Verdict::Ignore;
        }
        if query.metadata.op_code != OpCode::Query {
            return reply(ResponseCode::NotImp);
        }
        let [q] = query.queries.as_slice() else {
            return reply(ResponseCode::FormErr);
        };
        if !self.admits(network, from, is_host) {
            return reply(ResponseCode::Refused);
        }
        let internal = self.networks.get(network).is_none_or(|n| n.internal);
        if q.query_class() != DNSClass::IN {
            return if internal {
                reply(ResponseCode::Refused)
            } else {
                Verdict::Forward
            };
        }
        let visible = self.visible(network, from);
        let name = q.name();
        let text = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
        if name.num_labels() == 1 {
            // A single label is a container's name or nothing: never sent upstream.
            let found = visible.iter().find_map(|n| n.names.get(&text));
            let mut m = response(query, ResponseCode::NoError);
            match found {
                None => m.metadata.response_code = ResponseCode::NXDomain,
                Some(ip) if matches!(q.query_type(), RecordType::A | RecordType::ANY) => {
                    m.add_answer(Record::from_rdata(name.clone(), TTL, RData::A(A(*ip))));
                }
                // The name exists, without records of that type (NODATA).
                Some(_) => {}
            }
            return Verdict::Answer(m);
        }
        if let Some(ip) = reverse_address(&text)
            && let Some(net) = visible.iter().find(|n| n.subnet.contains(&ip))
        {
            let mut m = response(query, ResponseCode::NoError);
            match net.reverse.get(&ip) {
                None => m.metadata.response_code = ResponseCode::NXDomain,
                Some(owner) if matches!(q.query_type(), RecordType::PTR | RecordType::ANY) => {
                    if let Ok(target) = Name::from_ascii(format!("{owner}.")) {
                        m.add_answer(Record::from_rdata(
                            name.clone(),
                            TTL,
                            RData::PTR(PTR(target)),
                        ));
                    }
                }
                Some(_) => {}
            }
            return Verdict::Answer(m);
        }
        if internal {
            // A network without outside access has no resolver outside either: forwarding
            // would carry data out in query names.
            return reply(ResponseCode::Refused);
        }
        Verdict::Forward
    }
}

/// The address an `in-addr.arpa` name stands for, if it names a whole IPv4 address.
fn reverse_address(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let octets: Vec<u8> = rest
        .split('.')
        .map(|o| o.parse::<u8>().ok())
        .collect::<Option<Vec<u8>>>()?;
    let [d, c, b, a] = octets.as_slice() else {
        return None;
    };
    Some(Ipv4Addr::new(*a, *b, *c, *d))
}

/// A response to `query` with its id, question and flags: authoritative, recursion
/// available, EDNS when the query had it.
pub(super) fn response(query: &Message, code: ResponseCode) -> Message {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.authoritative = code != ResponseCode::Refused && code != ResponseCode::ServFail;
    m.metadata.response_code = code;
    m.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        m.set_edns(edns);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn record(name: &str, subnet: &str, gw: [u8; 4], internal: bool) -> NetworkRecord {
        NetworkRecord {
            name: name.into(),
            spec_hash: String::new(),
            bridge: "berth0".into(),
            subnet: subnet.parse().expect("subnet"),
            gateway: Ipv4Addr::from(gw),
            internal,
            created_at: String::new(),
        }
    }

    fn lease(network: &str, container: &str, name: &str, ip: &str, aliases: &[&str]) -> Lease {
        Lease {
            network: network.into(),
            ip: ip.parse().expect("ip"),
            container: container.into(),
            name: name.into(),
            hostname: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ports: vec![],
            claim: None,
            manual: false,
        }
    }

    fn zone() -> Zone {
        Zone::build(
            &[
                record("front", "10.89.1.0/24", [10, 89, 1, 1], false),
                record("back", "10.89.2.0/24", [10, 89, 2, 1], true),
            ],
            &[
                lease("front", "web-1", "web", "10.89.1.2", &["www"]),
                lease("back", "web-1", "web", "10.89.2.2", &[]),
                lease("back", "db-1", "db", "10.89.2.3", &["postgres"]),
            ],
        )
    }

    fn ask(name: &str, rtype: RecordType) -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
        m
    }

    fn answer(z: &Zone, net: &str, from: &str, q: &Message) -> Message {
        match z.answer(net, from.parse().expect("ip"), |a| a.is_loopback(), q) {
            Verdict::Answer(m) => m,
            Verdict::Forward => panic!("forwarded"),
            Verdict::Ignore => panic!("ignored"),
        }
    }

    fn addresses(m: &Message) -> Vec<String> {
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn names_and_aliases_case_insensitively() {
        let z = zone();
        let m = answer(&z, "front", "10.89.1.1", &ask("WWW.", RecordType::A));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert_eq!(addresses(&m), ["10.89.1.2"]);
        assert_eq!(m.queries, ask("WWW.", RecordType::A).queries);
    }

    #[test]
    fn unknown_single_labels_are_nxdomain_and_other_types_nodata() {
        let z = zone();
        let m = answer(&z, "front", "10.89.1.1", &ask("nope", RecordType::A));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = answer(&z, "front", "10.89.1.1", &ask("web", RecordType::AAAA));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
    }

    #[test]
    fn a_client_sees_the_networks_of_its_container_only() {
        let z = zone();
        // From the host (the gateway): the front network alone.
        let m = answer(&z, "front", "10.89.1.1", &ask("db", RecordType::A));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // From web, which is on back too: db at its back address.
        let m = answer(&z, "front", "10.89.1.2", &ask("db", RecordType::A));
        assert_eq!(addresses(&m), ["10.89.2.3"]);
        // The receiving network's address first.
        let m = answer(&z, "back", "10.89.2.3", &ask("web", RecordType::A));
        assert_eq!(addresses(&m), ["10.89.2.2"]);
    }

    #[test]
    fn other_names_are_forwarded_except_from_internal_networks() {
        let z = zone();
        let q = ask("example.com.", RecordType::A);
        assert_eq!(
            z.answer("front", "10.89.1.2".parse().expect("ip"), |_| false, &q),
            Verdict::Forward
        );
        let m = answer(&z, "back", "10.89.2.3", &q);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn reverse_lookups_inside_the_subnets() {
        let z = zone();
        let m = answer(
            &z,
            "front",
            "10.89.1.1",
            &ask("2.1.89.10.in-addr.arpa.", RecordType::PTR),
        );
        assert_eq!(addresses(&m), ["web."]);
        let m = answer(
            &z,
            "front",
            "10.89.1.1",
            &ask("9.1.89.10.in-addr.arpa.", RecordType::PTR),
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(
            z.answer(
                "front",
                "10.89.1.2".parse().expect("ip"),
                |_| false,
                &ask("8.8.8.8.in-addr.arpa.", RecordType::PTR)
            ),
            Verdict::Forward
        );
    }

    #[test]
    fn other_networks_containers_are_refused() {
        let z = zone();
        let m = answer(&z, "front", "10.89.2.3", &ask("web", RecordType::A));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty());
        let m = answer(
            &z,
            "front",
            "192.0.2.1",
            &ask("example.com.", RecordType::A),
        );
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        // The host, from an address of its own outside the subnet.
        let m = answer(&z, "front", "127.0.0.1", &ask("web", RecordType::A));
        assert_eq!(addresses(&m), ["10.89.1.2"]);
    }

    #[test]
    fn malformed_queries_are_refused_with_a_code() {
        let z = zone();
        let mut two = ask("web", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("db").expect("name"),
            RecordType::A,
        ));
        let m = answer(&z, "front", "10.89.1.1", &two);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    }

    #[test]
    fn responses_get_no_reply() {
        let z = zone();
        let mut m = ask("web", RecordType::A);
        m.metadata.message_type = MessageType::Response;
        let from = |a: &str| a.parse().expect("ip");
        assert_eq!(
            z.answer("front", from("10.89.1.2"), |_| false, &m),
            Verdict::Ignore
        );
        assert_eq!(
            z.answer("front", from("127.0.0.1"), |a| a.is_loopback(), &m),
            Verdict::Ignore
        );
    }
}
