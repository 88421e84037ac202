//! Published ports: `[ip:]host:container[/tcp|udp]`, IPv6 host addresses in brackets, and
//! ranges of equal length (`8000-8010:8000-8010`). A range is written in `ports` only
//! ([`PortRange`]); the resolver expands it into one [`PortMapping`] per port, so the
//! model, the records and the rules only ever hold single ports.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;

use super::value::{Hint, string_value};

/// The most ports one range may publish: each is a rule in berth's nftables table, which is
/// rebuilt whole on every change, so `1-65535:1-65535` would cost megabytes per rebuild.
pub const MAX_RANGE: u32 = 1024;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortMapping {
    /// None: every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// Two mappings collide when they bind the same port and protocol on overlapping addresses.
    pub(crate) fn collides_with(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (None, _) | (_, None) => true,
                (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
            }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("invalid port mapping `{text}`: {reason}")]
    Malformed { text: String, reason: &'static str },
    #[error("invalid port `{port}` in `{text}`: ports are 1-65535")]
    BadPort { text: String, port: String },
    #[error("invalid port `{port}` in `{text}`: not a port number (1–65535)")]
    NotANumber { text: String, port: String },
    #[error("invalid host address `{ip}` in `{text}`")]
    BadAddress { text: String, ip: String },
    #[error("unknown protocol `{proto}` in `{text}`")]
    BadProtocol { text: String, proto: String },
    #[error("invalid port range `{range}` in `{text}`: it runs backwards")]
    Backwards { text: String, range: String },
    #[error(
        "invalid port mapping `{text}`: {host} host ports for {container} container ports (a range maps port to port)"
    )]
    RangeLengths {
        text: String,
        host: u32,
        container: u32,
    },
    #[error(
        "invalid port mapping `{text}`: a host range for one container port (Docker's \"pick a free host port\") is not supported"
    )]
    PickOne { text: String },
    #[error("invalid port mapping `{text}`: {count} ports in one range, at most {MAX_RANGE}")]
    TooLong { text: String, count: u32 },
    #[error("invalid port mapping `{text}`: one port is expected here, not a range")]
    RangeNotAllowed { text: String },
}

impl Hint for PortError {
    fn help(&self) -> Option<String> {
        Some(match self {
            PortError::BadProtocol { .. } => "the protocol is `tcp` (the default) or `udp`".into(),
            PortError::Backwards { .. } => "write the lower port first, e.g. \"8000-8010\"".into(),
            PortError::RangeLengths { .. } => {
                "give ranges of the same length on both sides, e.g. \"8000-8010:9000-9010\"".into()
            }
            PortError::PickOne { .. } => "berth publishes fixed host ports, so `plan` and `status` can say which: name one host port (\"8000:80\"), or map a range onto a range of the same length".into(),
            PortError::TooLong { .. } => format!(
                "each published port is a rule in berth's nftables table; split the range or publish fewer ports (at most {MAX_RANGE} per entry)"
            ),
            PortError::RangeNotAllowed { .. } => "write a single port, e.g. \"8080:80\"".into(),
            _ => "write \"HOST:CONTAINER\", \"IP:HOST:CONTAINER\" or \"[IPv6]:HOST:CONTAINER\" (ports or equal-length ranges \"8000-8010\"), with an optional \"/tcp\" or \"/udp\", e.g. \"8080:80\" or \"127.0.0.1:5432:5432/tcp\"".into(),
        })
    }
}

fn parse_port(text: &str, port: &str) -> Result<u16, PortError> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::NotANumber {
            text: text.into(),
            port: port.into(),
        });
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(PortError::BadPort {
            text: text.into(),
            port: port.into(),
        }),
    }
}

/// A port or `FIRST-LAST`: the first port and how many. Only digits on both sides of one
/// `-` make a range; `-1` or `80-` is simply not a number.
fn parse_ports(text: &str, ports: &str) -> Result<(u16, u32), PortError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match ports.split_once('-') {
        Some((first, last)) if digits(first) && digits(last) => {
            let (first_port, last_port) = (parse_port(text, first)?, parse_port(text, last)?);
            if last_port < first_port {
                return Err(PortError::Backwards {
                    text: text.into(),
                    range: ports.into(),
                });
            }
            Ok((first_port, u32::from(last_port - first_port) + 1))
        }
        _ => Ok((parse_port(text, ports)?, 1)),
    }
}

/// What `ports` accepts: one port or a range, on one host address (or all) and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// None: every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    /// How many consecutive ports, at least 1 and at most [`MAX_RANGE`].
    pub count: u16,
    pub protocol: Protocol,
}

impl PortRange {
    /// One mapping per port, in order.
    pub fn mappings(&self) -> impl Iterator<Item = PortMapping> + '_ {
        (0..self.count).map(move |i| PortMapping {
            host_ip: self.host_ip,
            // Cannot overflow: the parser checked both ends are ports.
            host_port: self.host_port.saturating_add(i),
            container_port: self.container_port.saturating_add(i),
            protocol: self.protocol,
        })
    }

    fn host_last(&self) -> u16 {
        self.host_port.saturating_add(self.count - 1)
    }

    /// The first host port both publish on overlapping addresses, if any.
    pub(crate) fn first_collision(&self, other: &PortRange) -> Option<u16> {
        let first = self.host_port.max(other.host_port);
        let probe = |r: &PortRange| PortMapping {
            host_ip: r.host_ip,
            host_port: first,
            container_port: r.container_port,
            protocol: r.protocol,
        };
        (first <= self.host_last().min(other.host_last())
            && probe(self).collides_with(&probe(other)))
        .then_some(first)
    }
}

impl FromStr for PortRange {
    type Err = PortError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s;
        let (spec, protocol) = match s.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Protocol::Tcp),
            Some((spec, "udp")) => (spec, Protocol::Udp),
            Some((_, proto)) => {
                return Err(PortError::BadProtocol {
                    text: text.into(),
                    proto: proto.into(),
                });
            }
            None => (s, Protocol::Tcp),
        };
        let (host_ip, ports) = if let Some(rest) = spec.strip_prefix('[') {
            let (ip, rest) = rest.split_once("]:").ok_or(PortError::Malformed {
                text: text.into(),
                reason: "an IPv6 address in brackets must be followed by `:HOST:CONTAINER`",
            })?;
            let ip: IpAddr = ip.parse().map_err(|_| PortError::BadAddress {
                text: text.into(),
                ip: ip.into(),
            })?;
            if !ip.is_ipv6() {
                return Err(PortError::BadAddress {
                    text: text.into(),
                    ip: ip.to_string(),
                });
            }
            (Some(ip), rest)
        } else {
            match spec.matches(':').count() {
                1 => (None, spec),
                2 => {
                    let (ip, rest) = spec.split_once(':').ok_or(PortError::Malformed {
                        text: text.into(),
                        reason: "expected `:`",
                    })?;
                    let ip: IpAddr = ip.parse().map_err(|_| PortError::BadAddress {
                        text: text.into(),
                        ip: ip.into(),
                    })?;
                    (Some(ip), rest)
                }
                0 => {
                    return Err(PortError::Malformed {
                        text: text.into(),
                        reason: "a host port is required (berth does not pick random host ports)",
                    });
                }
                _ => {
                    return Err(PortError::Malformed {
                        text: text.into(),
                        reason: "too many `:`; put an IPv6 host address in brackets",
                    });
                }
            }
        };
        let (host, container) = ports.split_once(':').ok_or(PortError::Malformed {
            text: text.into(),
            reason: "expected `HOST:CONTAINER`",
        })?;
        let (host_port, host_count) = parse_ports(text, host)?;
        let (container_port, container_count) = parse_ports(text, container)?;
        if host_count != container_count {
            return Err(if container_count == 1 {
                PortError::PickOne { text: text.into() }
            } else {
                PortError::RangeLengths {
                    text: text.into(),
                    host: host_count,
                    container: container_count,
                }
            });
        }
        if host_count > MAX_RANGE {
            return Err(PortError::TooLong {
                text: text.into(),
                count: host_count,
            });
        }
        Ok(PortRange {
            host_ip,
            host_port,
            container_port,
            count: u16::try_from(host_count).map_err(|_| PortError::TooLong {
                text: text.into(),
                count: host_count,
            })?,
            protocol,
        })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            None => {}
        }
        if self.count == 1 {
            write!(f, "{}:{}", self.host_port, self.container_port)?;
        } else {
            let last = |first: u16| first.saturating_add(self.count - 1);
            write!(
                f,
                "{}-{}:{}-{}",
                self.host_port,
                last(self.host_port),
                self.container_port,
                last(self.container_port)
            )?;
        }
        write!(f, "/{}", self.protocol)
    }
}

impl FromStr for PortMapping {
    type Err = PortError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let range: PortRange = s.parse()?;
        let mut mappings = range.mappings();
        match (mappings.next(), mappings.next()) {
            (Some(one), None) => Ok(one),
            _ => Err(PortError::RangeNotAllowed { text: s.into() }),
        }
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

string_value!(
    PortMapping,
    expecting = "a port mapping such as \"8080:80\"",
    schema = "A published port: \"HOST:CONTAINER\", \"IP:HOST:CONTAINER\" or \"[IPv6]:HOST:CONTAINER\", optionally followed by \"/tcp\" (default) or \"/udp\".",
    pattern = r"^(\[[0-9a-fA-F:.]+\]:|[0-9.]+:)?[0-9]{1,5}:[0-9]{1,5}(/(tcp|udp))?$"
);

string_value!(
    PortRange,
    expecting = "a port mapping such as \"8080:80\" or \"8000-8010:8000-8010\"",
    schema = "Published ports: \"HOST:CONTAINER\", \"IP:HOST:CONTAINER\" or \"[IPv6]:HOST:CONTAINER\", optionally followed by \"/tcp\" (default) or \"/udp\"; HOST and CONTAINER are ports or ranges of the same length (\"8000-8010:9000-9010\", at most 1024 ports).",
    pattern = r"^(\[[0-9a-fA-F:.]+\]:|[0-9.]+:)?[0-9]{1,5}(-[0-9]{1,5})?:[0-9]{1,5}(-[0-9]{1,5})?(/(tcp|udp))?$"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PortMapping {
        s.parse().unwrap()
    }

    #[test]
    fn parses_all_forms() {
        assert_eq!(
            p("8080:80"),
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        assert_eq!(p("53:53/udp").protocol, Protocol::Udp);
        assert_eq!(
            p("127.0.0.1:5432:5432/tcp").host_ip,
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(p("[::1]:8443:443").host_ip, Some("::1".parse().unwrap()));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "80",
            "0:80",
            "8080:0",
            "70000:80",
            "a:80",
            "8080:80/sctp",
            "1.2.3:80:80",
            "8000-8010:8000-8010",
            "::1:80:80",
            "[1.2.3.4]:80:80",
            "8080:80:90:100",
            ":80",
            "8080:",
        ] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_range_is_called_one() {
        for (bad, port) in [
            ("-1:80", "-1"),
            ("8080:-80", "-80"),
            ("a:80", "a"),
            ("80-:80", "80-"),
            (":80", ""),
            ("1-2-3:1-2-3", "1-2-3"),
            ("8000 - 8010:80", "8000 - 8010"),
        ] {
            let e = bad.parse::<PortRange>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid port `{port}` in `{bad}`: not a port number (1–65535)"),
            );
        }
    }

    fn r(s: &str) -> PortRange {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_in_every_form() {
        assert_eq!(
            r("8000-8010:9000-9010"),
            PortRange {
                host_ip: None,
                host_port: 8000,
                container_port: 9000,
                count: 11,
                protocol: Protocol::Tcp
            }
        );
        let ip = r("127.0.0.1:9000-9001:80-81/udp");
        assert_eq!(ip.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!((ip.host_port, ip.container_port, ip.count), (9000, 80, 2));
        assert_eq!(ip.protocol, Protocol::Udp);
        assert_eq!(
            r("[::1]:8443-8444:443-444").host_ip,
            Some("::1".parse().unwrap())
        );
        // A one-port range is a port.
        assert_eq!(r("80-80:90-90"), r("80:90"));
        assert_eq!(r("80-80:90-90").to_string(), "80:90/tcp");
        // The edges of the port space and of the length limit.
        assert_eq!(r("65535-65535:1-1").count, 1);
        assert_eq!(r("65534-65535:1-2").count, 2);
        assert_eq!(r("1-1024:1-1024").count, 1024);
    }

    #[test]
    fn ranges_expand_port_to_port() {
        let all: Vec<String> = r("127.0.0.1:9000-9002:80-82/udp")
            .mappings()
            .map(|m| m.to_string())
            .collect();
        assert_eq!(
            all,
            [
                "127.0.0.1:9000:80/udp",
                "127.0.0.1:9001:81/udp",
                "127.0.0.1:9002:82/udp"
            ]
        );
        let top: Vec<PortMapping> = r("65534-65535:65534-65535").mappings().collect();
        assert_eq!(
            top.last().map(|m| (m.host_port, m.container_port)),
            Some((65535, 65535))
        );
        assert_eq!(
            r("8080:80").mappings().collect::<Vec<_>>(),
            vec![p("8080:80")]
        );
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        let msg = |s: &str| s.parse::<PortRange>().unwrap_err().to_string();
        assert_eq!(
            msg("8010-8000:80-90"),
            "invalid port range `8010-8000` in `8010-8000:80-90`: it runs backwards"
        );
        assert_eq!(
            msg("80-90:8010-8000"),
            "invalid port range `8010-8000` in `80-90:8010-8000`: it runs backwards"
        );
        assert_eq!(
            msg("8000-8010:9000-9005"),
            "invalid port mapping `8000-8010:9000-9005`: 11 host ports for 6 container ports (a range maps port to port)"
        );
        assert_eq!(
            msg("8000:9000-9005"),
            "invalid port mapping `8000:9000-9005`: 1 host ports for 6 container ports (a range maps port to port)"
        );
        assert_eq!(
            msg("8000-8010:80"),
            "invalid port mapping `8000-8010:80`: a host range for one container port (Docker's \"pick a free host port\") is not supported"
        );
        assert_eq!(
            msg("1-1025:1-1025"),
            "invalid port mapping `1-1025:1-1025`: 1025 ports in one range, at most 1024"
        );
        assert!(msg("1-65535:1-65535").contains("at most 1024"));
        assert_eq!(
            msg("0-10:0-10"),
            "invalid port `0` in `0-10:0-10`: ports are 1-65535"
        );
        assert_eq!(
            msg("65535-65536:1-2"),
            "invalid port `65536` in `65535-65536:1-2`: ports are 1-65535"
        );
        assert!(msg("8000-8001:80-81/sctp").contains("unknown protocol"));
        assert!(msg("8000-8001").contains("host port is required"));
        let help = |s: &str| s.parse::<PortRange>().unwrap_err().help().unwrap();
        assert!(help("8000-8010:80").contains("fixed host ports"));
        assert!(help("8000-8010:80-81").contains("same length"));
        assert!(help("8010-8000:80-90").contains("lower port first"));
        assert!(help("1-2000:1-2000").contains("split the range"));
    }

    #[test]
    fn a_single_mapping_refuses_a_range() {
        let e = "8000-8001:80-81".parse::<PortMapping>().unwrap_err();
        assert!(e.to_string().contains("not a range"), "{e}");
        assert_eq!(p("8000-8000:80-80"), p("8000:80"));
    }

    #[test]
    fn range_collisions() {
        let hit = |a: &str, b: &str| r(a).first_collision(&r(b));
        assert_eq!(hit("8000-8010:80-90", "8010-8020:80-90"), Some(8010));
        assert_eq!(hit("8010-8020:80-90", "8000-8010:80-90"), Some(8010));
        assert_eq!(hit("8000-8010:80-90", "8005:80"), Some(8005));
        assert_eq!(hit("8000-8010:80-90", "8011-8012:80-81"), None);
        assert_eq!(hit("8000-8010:80-90", "8000-8010:80-90/udp"), None);
        assert_eq!(
            hit("127.0.0.1:8000-8001:80-81", "127.0.0.2:8000-8001:80-81"),
            None
        );
        assert_eq!(hit("127.0.0.1:8000-8001:80-81", "8001:80"), Some(8001));
        assert_eq!(
            hit("0.0.0.0:8000-8001:80-81", "127.0.0.1:8001:80"),
            Some(8001)
        );
    }

    #[test]
    fn display_round_trips() {
        for s in ["8080:80/tcp", "127.0.0.1:53:53/udp", "[::1]:8443:443/tcp"] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(r(s).to_string(), s);
        }
        for s in ["8000-8010:9000-9010/tcp", "127.0.0.1:53-54:53-54/udp"] {
            assert_eq!(r(s).to_string(), s);
        }
    }

    #[test]
    fn collisions() {
        assert!(p("8080:80").collides_with(&p("127.0.0.1:8080:81")));
        assert!(p("0.0.0.0:8080:80").collides_with(&p("127.0.0.1:8080:81")));
        assert!(!p("127.0.0.1:8080:80").collides_with(&p("127.0.0.2:8080:80")));
        assert!(!p("8080:80/tcp").collides_with(&p("8080:80/udp")));
        assert!(!p("8080:80").collides_with(&p("8081:80")));
    }
}
