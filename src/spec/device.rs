//! Device keys: `devices = ["/dev/fuse", "/dev/net/tun:/dev/net/tun:rwm"]` (Docker's
//! HOST[:CONTAINER[:PERMS]]) and `device_cgroup_rules = ["c 10:200 rwm"]`.

use std::fmt;
use std::str::FromStr;

use super::value::{Hint, string_value};

/// A host device node made visible in the container, and allowed by its device cgroup.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceMapping {
    /// Absolute path of the node on the host, under /dev.
    pub host: String,
    /// Where it appears in the container (default: the host path).
    pub container: String,
    /// Some of "r", "w", "m" (mknod), in that order (default "rwm").
    pub access: String,
}

/// One device cgroup rule: `TYPE MAJOR:MINOR ACCESS`, `*` for any number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceRule {
    /// 'a' (all), 'b' (block) or 'c' (character).
    pub kind: char,
    /// None: any.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("invalid device `{text}`: {reason}")]
    Mapping { text: String, reason: &'static str },
    #[error("invalid device cgroup rule `{text}`: {reason}")]
    Rule { text: String, reason: &'static str },
}

impl Hint for DeviceError {
    fn help(&self) -> Option<String> {
        Some(match self {
            DeviceError::Mapping { .. } => "write \"/dev/HOST[:/dev/CONTAINER[:PERMS]]\", e.g. \"/dev/fuse\" or \"/dev/net/tun:/dev/net/tun:rwm\"; PERMS is some of r, w, m".into(),
            DeviceError::Rule { .. } => "write \"TYPE MAJOR:MINOR ACCESS\", e.g. \"c 10:200 rwm\" or \"b 8:* r\"; TYPE is a, b or c, ACCESS some of r, w, m".into(),
        })
    }
}

/// "rwm" letters, each at most once, normalised to that order; None if anything else.
fn access(text: &str) -> Option<String> {
    if text.is_empty() || text.chars().any(|c| !"rwm".contains(c)) {
        return None;
    }
    let mut seen = String::new();
    for c in ['r', 'w', 'm'] {
        match text.matches(c).count() {
            0 => {}
            1 => seen.push(c),
            _ => return None,
        }
    }
    Some(seen)
}

/// An absolute, normal path (no `.`/`..`, no empty components).
fn clean_absolute(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && path[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

impl FromStr for DeviceMapping {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DeviceError::Mapping {
            text: s.into(),
            reason,
        };
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, perms) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, c] if access(c).is_some() && !c.starts_with('/') => (*h, *h, *c),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] => (*h, *c, *p),
            _ => return Err(err("too many `:`")),
        };
        if !host.starts_with("/dev/") || !clean_absolute(host) {
            return Err(err("the host path must be a device node under /dev"));
        }
        if !clean_absolute(container) {
            return Err(err("the container path must be absolute"));
        }
        if !container.starts_with("/dev/") {
            return Err(err("the container path must be under /dev"));
        }
        let access = access(perms).ok_or_else(|| err("permissions are some of r, w, m"))?;
        Ok(DeviceMapping {
            host: host.into(),
            container: container.into(),
            access,
        })
    }
}

impl fmt::Display for DeviceMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.container, self.access)
    }
}

impl FromStr for DeviceRule {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DeviceError::Rule {
            text: s.into(),
            reason,
        };
        let fields: Vec<&str> = s.split_whitespace().collect();
        let [kind, numbers, perms] = fields.as_slice() else {
            return Err(err("expected three fields"));
        };
        let kind = match *kind {
            "a" => 'a',
            "b" => 'b',
            "c" => 'c',
            _ => return Err(err("the type is a, b or c")),
        };
        let number = |n: &str| -> Result<Option<u32>, DeviceError> {
            if n == "*" {
                return Ok(None);
            }
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("major and minor are numbers or `*`"));
            }
            n.parse()
                .map(Some)
                .map_err(|_| err("major and minor are numbers or `*`"))
        };
        let (major, minor) = numbers
            .split_once(':')
            .ok_or_else(|| err("expected MAJOR:MINOR"))?;
        let access = access(perms).ok_or_else(|| err("access is some of r, w, m"))?;
        Ok(DeviceRule {
            kind,
            major: number(major)?,
            minor: number(minor)?,
            access,
        })
    }
}

impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

string_value!(
    DeviceMapping,
    expecting = "a device such as \"/dev/fuse\" or \"/dev/net/tun:/dev/net/tun:rwm\"",
    schema = "A host device node: \"/dev/HOST[:/dev/CONTAINER[:PERMS]]\" (PERMS some of r, w, m; default \"rwm\")."
);

string_value!(
    DeviceRule,
    expecting = "a device cgroup rule such as \"c 10:200 rwm\"",
    schema = "A device cgroup rule \"TYPE MAJOR:MINOR ACCESS\" (TYPE a, b or c; `*` for any number; ACCESS some of r, w, m), e.g. \"c 10:200 rwm\"."
);

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(s: &str) -> DeviceMapping {
        s.parse().unwrap()
    }

    #[test]
    fn device_forms() {
        assert_eq!(dev("/dev/fuse").to_string(), "/dev/fuse:/dev/fuse:rwm");
        assert_eq!(dev("/dev/fuse:r").to_string(), "/dev/fuse:/dev/fuse:r");
        assert_eq!(
            dev("/dev/sda:/dev/xvda").to_string(),
            "/dev/sda:/dev/xvda:rwm"
        );
        assert_eq!(
            dev("/dev/net/tun:/dev/net/tun:mwr").to_string(),
            "/dev/net/tun:/dev/net/tun:rwm"
        );
    }

    #[test]
    fn bad_devices() {
        for bad in [
            "fuse",
            "/etc/passwd",
            "/dev/../etc/passwd",
            "/dev/fuse:/fuse",
            "/dev/fuse:/dev/fuse:rx",
            "/dev/fuse:/dev/fuse:rr",
            "/dev/a:/dev/b:r:w",
            "/dev/",
        ] {
            assert!(bad.parse::<DeviceMapping>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rules() {
        let r: DeviceRule = "c 10:200 rwm".parse().unwrap();
        assert_eq!((r.kind, r.major, r.minor), ('c', Some(10), Some(200)));
        assert_eq!(
            "b 8:* r".parse::<DeviceRule>().unwrap().to_string(),
            "b 8:* r"
        );
        assert_eq!(
            "a *:* wmr".parse::<DeviceRule>().unwrap().to_string(),
            "a *:* rwm"
        );
        for bad in [
            "c 10:200", "x 1:2 r", "c 10 r", "c a:1 r", "c 1:2 q", "c -1:2 r",
        ] {
            assert!(bad.parse::<DeviceRule>().is_err(), "{bad}");
        }
    }
}
