//! Published ports: `[ip:]host:container[/tcp|udp]`, IPv6 host addresses in brackets.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;

use super::value::{Hint, string_value};

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
}

impl Hint for PortError {
    fn help(&self) -> Option<String> {
        Some(match self {
            PortError::BadProtocol { .. } => "the protocol is `tcp` (the default) or `udp`".into(),
            PortError::Malformed { reason, .. } if reason.contains("range") => {
                "publish each port in its own entry, e.g. [\"8000:8000\", \"8001:8001\"]".into()
            }
            _ => "write \"HOST:CONTAINER\", \"IP:HOST:CONTAINER\" or \"[IPv6]:HOST:CONTAINER\", with an optional \"/tcp\" or \"/udp\", e.g. \"8080:80\" or \"127.0.0.1:5432:5432/tcp\"".into(),
        })
    }
}

fn parse_port(text: &str, port: &str) -> Result<u16, PortError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(port) {
        // Only `N-M` is a range; `-1` or `80-` is simply not a number.
        return Err(match port.split_once('-') {
            Some((from, to)) if digits(from) && digits(to) => PortError::Malformed {
                text: text.into(),
                reason: "port ranges are not supported",
            },
            _ => PortError::NotANumber {
                text: text.into(),
                port: port.into(),
            },
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

impl FromStr for PortMapping {
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
        Ok(PortMapping {
            host_ip,
            host_port: parse_port(text, host)?,
            container_port: parse_port(text, container)?,
            protocol,
        })
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
        ] {
            let e = bad.parse::<PortMapping>().unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("invalid port `{port}` in `{bad}`: not a port number (1–65535)"),
            );
            assert!(!e.help().unwrap().contains("own entry"), "{bad}");
        }
        let e = "8000-8010:80".parse::<PortMapping>().unwrap_err();
        assert!(
            e.to_string().contains("port ranges are not supported"),
            "{e}"
        );
    }

    #[test]
    fn range_gets_specific_help() {
        let e = "8000-8010:8000-8010".parse::<PortMapping>().unwrap_err();
        assert!(e.help().unwrap().contains("own entry"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["8080:80/tcp", "127.0.0.1:53:53/udp", "[::1]:8443:443/tcp"] {
            assert_eq!(p(s).to_string(), s);
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
