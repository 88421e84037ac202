//! A container's name-resolution settings: `dns`, `dns_search`, `dns_options` (its
//! /etc/resolv.conf) and `extra_hosts` (lines added to its /etc/hosts), and the syntax
//! checks of each value.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The most name servers glibc and musl read from resolv.conf (`MAXNS`): more are ignored.
pub const MAX_SERVERS: usize = 3;

/// The options glibc's and musl's resolv.conf parsers know; with `:N` for those taking one.
const OPTIONS: &[(&str, bool)] = &[
    ("ndots", true),
    ("timeout", true),
    ("attempts", true),
    ("rotate", false),
    ("debug", false),
    ("edns0", false),
    ("single-request", false),
    ("single-request-reopen", false),
    ("no-tld-query", false),
    ("use-vc", false),
    ("no-reload", false),
    ("trust-ad", false),
    ("inet6", false),
    ("no-aaaa", false),
];

/// Part of a container's spec, left out of its hash when empty (so containers made before
/// these keys existed keep their hash).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsSettings {
    /// Name servers that replace berth's resolver in resolv.conf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// In the order written (a map: sorted by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<ExtraHost>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraHost {
    pub host: String,
    pub ip: IpAddr,
}

impl DnsSettings {
    pub fn is_empty(&self) -> bool {
        self == &DnsSettings::default()
    }
}

/// A search domain: dot-separated labels of letters, digits, `-` and `_` (not at a label's
/// ends for `-`), 1–63 characters each, at most 253 in all; no trailing dot.
pub fn valid_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Why a `dns_options` entry is not one resolv.conf knows, if it is not.
pub fn check_option(s: &str) -> Result<(), String> {
    let (name, value) = match s.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    };
    let Some((_, takes_value)) = OPTIONS.iter().find(|(n, _)| *n == name) else {
        return Err(format!("unknown resolver option `{name}`"));
    };
    match (takes_value, value) {
        (true, Some(v)) if v.parse::<u8>().is_ok_and(|n| n <= 30) => Ok(()),
        (true, Some(v)) => Err(format!("`{name}` takes a number 0–30, not `{v}`")),
        (true, None) => Err(format!("`{name}` needs a value, e.g. `{name}:2`")),
        (false, Some(_)) => Err(format!("`{name}` takes no value")),
        (false, None) => Ok(()),
    }
}

/// The options resolv.conf knows, for help texts.
pub fn known_options() -> String {
    OPTIONS
        .iter()
        .map(|(n, v)| if *v { format!("{n}:N") } else { n.to_string() })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `extra_hosts` list form: "HOST:IP" (an IPv6 address keeps its colons: the host name has
/// none).
pub fn parse_extra_host(s: &str) -> Result<ExtraHost, String> {
    let Some((host, ip)) = s.split_once(':') else {
        return Err(format!("`{s}` is not \"HOST:IP\""));
    };
    extra_host(host, ip)
}

/// One `extra_hosts` entry, from its name and address.
pub fn extra_host(host: &str, ip: &str) -> Result<ExtraHost, String> {
    if !valid_domain(host) {
        return Err(format!("invalid host name `{host}`"));
    }
    if ip == "host-gateway" {
        return Err("`host-gateway` is not supported: write the address".into());
    }
    let ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map_err(|_| format!("invalid address `{ip}` for `{host}`"))?;
    Ok(ExtraHost {
        host: host.to_string(),
        ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert!(valid_domain("example.com"));
        assert!(valid_domain("svc_1.cluster-a.local"));
        assert!(!valid_domain(""));
        assert!(!valid_domain("a..b"));
        assert!(!valid_domain("-a.b"));
        assert!(!valid_domain("a b"));
        assert!(!valid_domain("example.com."));
        assert!(!valid_domain(&"a".repeat(64)));
    }

    #[test]
    fn options() {
        assert!(check_option("ndots:2").is_ok());
        assert!(check_option("edns0").is_ok());
        assert!(check_option("timeout:1").is_ok());
        assert!(check_option("ndots").is_err());
        assert!(check_option("ndots:x").is_err());
        assert!(check_option("rotate:1").is_err());
        assert!(check_option("bogus").is_err());
    }

    #[test]
    fn extra_hosts() {
        let e = parse_extra_host("db.local:10.0.0.5").unwrap();
        assert_eq!(e.host, "db.local");
        assert_eq!(e.ip, "10.0.0.5".parse::<IpAddr>().unwrap());
        let v6 = parse_extra_host("v6:fd00::1").unwrap();
        assert_eq!(v6.ip, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            parse_extra_host("v6:[fd00::2]").unwrap().ip,
            "fd00::2".parse::<IpAddr>().unwrap()
        );
        assert!(parse_extra_host("nocolon").is_err());
        assert!(parse_extra_host("db:999.1.1.1").is_err());
        assert!(parse_extra_host("bad host:10.0.0.1").is_err());
        assert!(parse_extra_host("gw:host-gateway").is_err());
    }
}
