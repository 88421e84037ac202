//! From raw entries to the [`Desired`] model: per-entry checks that need no other resource,
//! then references (images, networks, volumes, dependencies) and cross-resource rules (port
//! and address conflicts, overlapping subnets, dependency cycles). An entry with a problem is
//! left out of the result; so is a container whose references point at a broken entry.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::str::FromStr;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::diag::{Code, Diagnostic, Location};
use super::duration::Duration;
use super::image_ref::ImageSource;
use super::loader::{Entry, Kind, RawSet, suggest};
use super::model::*;
use super::mount::{Mount, parse_mode};
use super::name::Name;
use super::raw::{NetworkMode, RawContainer, RawHealth, RawImage, RawNetwork, RawVolume};
use super::value::Hint;

/// The smallest memory limit accepted (the kernel and runtimes misbehave below it).
pub const MIN_MEMORY: u64 = 6 << 20;
/// A writable layer smaller than this leaves an ext4 filesystem no room for its journal.
pub const MIN_DISK: u64 = 16 << 20;
/// ext4's limit with 4 KiB blocks and no 64-bit feature.
pub const MAX_DISK: u64 = 16 << 40;
pub const MIN_LOG_SIZE: u64 = 4 << 10;
/// The longest single argument or `NAME=VALUE` environment string execve takes, its NUL
/// included (MAX_ARG_STRLEN, 32 pages): longer ones fail with E2BIG at every start.
pub const MAX_ARG_STRLEN: usize = 32 * 4096;
/// What an entry's own arguments and environment may take at execve, each string with its
/// NUL and an 8-byte pointer. The kernel allows a quarter of the stack limit (2 MiB by
/// default) in all; the image's environment and arguments need the rest.
pub const MAX_EXEC_STRINGS: usize = 1 << 20;
/// Help for both limits.
const LARGE_DATA_HELP: &str = "pass large data as a file: a bind mount or a volume";

pub fn resolve(set: RawSet) -> (Desired, Vec<Diagnostic>) {
    let mut r = Resolver {
        diagnostics: set.diagnostics,
        declared: set.declared,
        unparsed: !set.unparsed_files.is_empty(),
        broken: BTreeSet::new(),
    };
    let mut desired = Desired::default();
    // Declared but not loaded (bad name, bad value, duplicated): referring to it is no error
    // of its own, but whatever refers to it cannot be applied.
    for kind in Kind::ALL {
        let is_loaded = |name: &str| match kind {
            Kind::Image => set.images.contains_key(name),
            Kind::Container => set.containers.contains_key(name),
            Kind::Volume => set.volumes.contains_key(name),
            Kind::Network => set.networks.contains_key(name),
        };
        let unloaded: Vec<String> = r
            .declared
            .get(&kind)
            .map(|m| m.keys().filter(|n| !is_loaded(n)).cloned().collect())
            .unwrap_or_default();
        for name in unloaded {
            r.broken.insert((kind, name));
        }
    }

    for (name, entry) in &set.images {
        match r.image(entry) {
            Some(image) if !entry.tainted() => drop(desired.images.insert(name.clone(), image)),
            _ => r.mark_broken(Kind::Image, name),
        }
    }
    r.check_image_sources(&set.images, &mut desired);
    for (name, entry) in &set.volumes {
        match r.volume(entry) {
            Some(v) if !entry.tainted() => drop(desired.volumes.insert(name.clone(), v)),
            _ => r.mark_broken(Kind::Volume, name),
        }
    }
    for (name, entry) in &set.networks {
        match r.network(entry) {
            Some(n) if !entry.tainted() => drop(desired.networks.insert(name.clone(), n)),
            _ => r.mark_broken(Kind::Network, name),
        }
    }
    r.check_subnet_overlaps(&set.networks, &mut desired);

    let mut containers = BTreeMap::new();
    for (name, entry) in &set.containers {
        match r.container(entry, &desired) {
            Some(c) if !entry.tainted() => drop(containers.insert(name.clone(), c)),
            _ => r.mark_broken(Kind::Container, name),
        }
    }
    // Dependencies may only point at containers that exist; drop transitively.
    r.check_dependencies(&set.containers, &mut containers);
    r.check_ports(&set.containers, &mut containers);
    r.check_static_addresses(&set.containers, &mut containers, &desired);
    desired.containers = containers;

    let mut diagnostics = r.diagnostics;
    diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    diagnostics.dedup();
    (desired, diagnostics)
}

struct Resolver {
    diagnostics: Vec<Diagnostic>,
    declared: BTreeMap<Kind, BTreeMap<String, Location>>,
    /// Some file failed to parse, so an unknown name may be declared there.
    unparsed: bool,
    broken: BTreeSet<(Kind, String)>,
}

fn span<T>(s: &Spanned<T>) -> Range<usize> {
    s.span()
}

impl Resolver {
    fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    fn push_opt(&mut self, d: Option<Diagnostic>) {
        self.diagnostics.extend(d);
    }

    fn hinted<T: Hint>(&mut self, entry_diag: Diagnostic, e: &T) {
        let d = match e.help() {
            Some(h) => entry_diag.with_help(h),
            None => entry_diag,
        };
        self.push(d);
    }

    fn mark_broken(&mut self, kind: Kind, name: &Name) {
        self.broken.insert((kind, name.to_string()));
    }

    /// Whether a name of this kind is declared somewhere, even if that entry is broken.
    fn is_declared(&self, kind: Kind, name: &str) -> bool {
        self.declared
            .get(&kind)
            .is_some_and(|m| m.contains_key(name))
    }

    /// Report a reference to a name that is not declared. Returns false if the reference
    /// cannot be used (unknown or broken): the referring entry is then left out.
    fn reference<T>(
        &mut self,
        entry: &Entry<T>,
        kind: Kind,
        name: &str,
        at: Range<usize>,
        what: &str,
    ) -> bool {
        if self.is_declared(kind, name) {
            return !self.broken.contains(&(kind, name.to_string()))
                && name.parse::<Name>().is_ok();
        }
        let help = self.unknown_help(
            kind,
            name,
            &format!(
                "declare it as `[{}.{name}]` in any file of the directory",
                kind.section()
            ),
        );
        let d = entry
            .diag(
                Code::UnknownReference,
                at,
                format!("{what} refers to unknown {} `{name}`", kind.section()),
            )
            .with_help(help);
        self.push(d);
        false
    }

    /// Advice for a reference to an undeclared name: the name rule when the name could not
    /// be declared at all, else a did-you-mean, what to declare, and whether a file that
    /// failed to parse may hold it.
    fn unknown_help(&self, kind: Kind, name: &str, declare: &str) -> String {
        if let Err(err) = name.parse::<Name>() {
            return format!(
                "`{name}` is not a valid name: {}",
                err.help().unwrap_or_default()
            );
        }
        let known: Vec<&str> = self
            .declared
            .get(&kind)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut help = match suggest(name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        help.push_str(declare);
        if self.unparsed {
            help.push_str(" (a file that failed to parse may declare it)");
        }
        help
    }

    fn image(&mut self, e: &Entry<RawImage>) -> Option<Image> {
        let raw = &e.raw;
        let Some(reference) = &raw.reference else {
            self.push_opt(missing(
                e,
                Kind::Image,
                "reference",
                "\"docker.io/library/nginx:1.27-alpine\"",
            ));
            return None;
        };
        let platform = match &raw.platform {
            None => None,
            Some(p) => match parse_platform(p.get_ref()) {
                Some(p) => Some(p),
                None => {
                    let d = e.diag(Code::InvalidValue, span(p), format!("image `{}`: invalid platform `{}`", e.name, p.get_ref()))
                        .with_help("write \"OS/ARCH\" or \"OS/ARCH/VARIANT\", e.g. \"linux/amd64\" or \"linux/arm64/v8\"");
                    self.push(d);
                    return None;
                }
            },
        };
        Some(Image {
            origin: origin(e),
            source: reference.get_ref().clone(),
            pull: raw.pull,
            platform,
            insecure: raw.insecure,
        })
    }

    /// Two image entries naming the same source with different settings would make the pull
    /// policy depend on which one a container names; refuse it.
    fn check_image_sources(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawImage>>,
        desired: &mut Desired,
    ) {
        let mut by_source: BTreeMap<&ImageSource, &Name> = BTreeMap::new();
        let mut conflicting = Vec::new();
        for (name, image) in &desired.images {
            if let Some(first) = by_source.get(&image.source) {
                let a = &desired.images[*first];
                if (a.pull, &a.platform, a.insecure)
                    != (image.pull, &image.platform, image.insecure)
                {
                    let e = &entries[name];
                    let at = e
                        .raw
                        .reference
                        .as_ref()
                        .map(span)
                        .unwrap_or(e.key_span.clone());
                    let d = e
                        .diag(Code::Conflict, at, format!("images `{first}` and `{name}` name the same reference `{}` with different settings", image.source))
                        .with_help("declare the image once and refer to that name from every container")
                        .with_related(entries[*first].location(), "the other image");
                    self.diagnostics.push(d);
                    conflicting.push(name.clone());
                }
            } else {
                by_source.insert(&image.source, name);
            }
        }
        for name in conflicting {
            desired.images.remove(&name);
            self.mark_broken(Kind::Image, &name);
        }
    }

    fn volume(&mut self, e: &Entry<RawVolume>) -> Option<Volume> {
        let raw = &e.raw;
        let mut ok = true;
        let mut id = |this: &mut Self, v: &Option<Spanned<i64>>, what: &str| -> Option<u32> {
            let v = v.as_ref()?;
            match u32::try_from(*v.get_ref()) {
                Ok(id) if id != u32::MAX => Some(id),
                _ => {
                    this.push(
                        e.diag(
                            Code::InvalidValue,
                            span(v),
                            format!(
                                "volume `{}`: {what} {} is out of range",
                                e.name,
                                v.get_ref()
                            ),
                        )
                        .with_help(format!("a {what} is between 0 and 4294967294")),
                    );
                    ok = false;
                    None
                }
            }
        };
        let uid = id(self, &raw.uid, "uid");
        let gid = id(self, &raw.gid, "gid");
        let mode = match &raw.mode {
            None => None,
            Some(m) => match parse_mode(m.get_ref()) {
                Ok(mode) => Some(mode),
                Err(err) => {
                    self.hinted(
                        e.diag(
                            Code::InvalidValue,
                            span(m),
                            format!("volume `{}`: {err}", e.name),
                        ),
                        &err,
                    );
                    ok = false;
                    None
                }
            },
        };
        ok.then(|| Volume {
            origin: origin(e),
            uid,
            gid,
            mode,
            labels: raw.labels.clone(),
        })
    }

    fn network(&mut self, e: &Entry<RawNetwork>) -> Option<Network> {
        let raw = &e.raw;
        let Some(subnet_text) = &raw.subnet else {
            self.push_opt(missing(e, Kind::Network, "subnet", "\"10.89.1.0/24\""));
            return None;
        };
        let text = subnet_text.get_ref();
        let subnet: Ipv4Net = match text.parse::<Ipv4Net>() {
            Ok(net) => net,
            Err(_) => {
                let help = if text.parse::<std::net::Ipv6Addr>().is_ok() || text.contains(':') {
                    "IPv6 subnets are not supported yet; write an IPv4 CIDR such as \"10.89.1.0/24\"".to_string()
                } else if text.parse::<Ipv4Addr>().is_ok() {
                    format!("add a prefix length, e.g. \"{text}/24\"")
                } else {
                    "write an IPv4 subnet in CIDR notation, e.g. \"10.89.1.0/24\"".to_string()
                };
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(subnet_text),
                        format!("network `{}`: invalid subnet `{text}`", e.name),
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        if subnet.network() != subnet.addr() {
            self.push(
                e.diag(
                    Code::InvalidValue,
                    span(subnet_text),
                    format!(
                        "network `{}`: `{text}` is an address inside a subnet, not a subnet",
                        e.name
                    ),
                )
                .with_help(format!("did you mean \"{}\"?", subnet.trunc())),
            );
            return None;
        }
        if !(8..=29).contains(&subnet.prefix_len()) {
            self.push(
                e.diag(Code::InvalidValue, span(subnet_text), format!("network `{}`: prefix /{} is out of range", e.name, subnet.prefix_len()))
                    .with_help("use a prefix between /8 and /29, e.g. \"10.89.1.0/24\" (a /29 holds the gateway and 5 containers)"),
            );
            return None;
        }
        let gateway = match &raw.gateway {
            None => first_host(subnet),
            Some(g) => {
                match g.get_ref().parse::<Ipv4Addr>() {
                    Ok(ip) if usable_host(subnet, ip) => ip,
                    Ok(ip) => {
                        self.push(
                        e.diag(Code::InvalidValue, span(g), format!("network `{}`: gateway {ip} is not a usable address of {subnet}", e.name))
                            .with_help(format!("pick an address between {} and {}, or leave `gateway` out to use {}", first_host(subnet), last_host(subnet), first_host(subnet))),
                    );
                        return None;
                    }
                    Err(_) => {
                        self.push(
                            e.diag(
                                Code::InvalidValue,
                                span(g),
                                format!(
                                    "network `{}`: invalid gateway address `{}`",
                                    e.name,
                                    g.get_ref()
                                ),
                            )
                            .with_help("write an IPv4 address, e.g. \"10.89.1.1\""),
                        );
                        return None;
                    }
                }
            }
        };
        Some(Network {
            origin: origin(e),
            subnet,
            gateway,
            internal: raw.internal,
            labels: raw.labels.clone(),
        })
    }

    fn check_subnet_overlaps(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawNetwork>>,
        desired: &mut Desired,
    ) {
        let nets: Vec<(&Name, Ipv4Net)> = desired
            .networks
            .iter()
            .map(|(n, net)| (n, net.subnet))
            .collect();
        let mut overlapping = BTreeSet::new();
        for (i, (a, na)) in nets.iter().enumerate() {
            for (b, nb) in &nets[i + 1..] {
                if na.contains(&nb.network()) || nb.contains(&na.network()) {
                    let e = &entries[*b];
                    let at = e
                        .raw
                        .subnet
                        .as_ref()
                        .map(span)
                        .unwrap_or(e.key_span.clone());
                    let d = e
                        .diag(
                            Code::SubnetOverlap,
                            at,
                            format!("subnet {nb} of network `{b}` overlaps {na} of network `{a}`"),
                        )
                        .with_help(
                            "give every network its own subnet, e.g. 10.89.1.0/24 and 10.89.2.0/24",
                        )
                        .with_related(
                            entries[*a].location(),
                            format!("network `{a}` is declared here"),
                        );
                    self.diagnostics.push(d);
                    overlapping.insert((*a).clone());
                    overlapping.insert((*b).clone());
                }
            }
        }
        for name in overlapping {
            desired.networks.remove(&name);
            self.mark_broken(Kind::Network, &name);
        }
    }

    fn container(&mut self, e: &Entry<RawContainer>, desired: &Desired) -> Option<Container> {
        let raw = &e.raw;
        let name = &e.name;
        let before = self.diagnostics.len();
        let mut unusable_reference = false;
        let what = format!("container `{name}`");

        // Image: a declared name, or a reference that is unmistakably one.
        let image_at = raw.image.as_ref().map(span).unwrap_or(e.key_span.clone());
        let image_text = raw
            .image
            .as_ref()
            .map(|i| i.get_ref().as_str())
            .unwrap_or("");
        let image = if raw.image.is_none() {
            self.push_opt(missing(e, Kind::Container, "image", "\"NAME\" (an [image.NAME]) or a reference such as \"docker.io/library/nginx:1.27\""));
            None
        } else if let Some(img) = desired.images.get(image_text) {
            Some(img.source.clone())
        } else if self.is_declared(Kind::Image, image_text) {
            unusable_reference = true;
            None
        } else if image_text.trim().is_empty() {
            self.push(
                e.diag(Code::InvalidValue, image_at.clone(), format!("{what}: `image` is empty"))
                    .with_help("write the name of an [image.NAME] or a reference such as \"docker.io/library/nginx:1.27\""),
            );
            None
        } else if !image_text.contains([':', '/', '@']) {
            let help = self.unknown_help(
                Kind::Image,
                image_text,
                &format!("declare `[image.{image_text}]`, or write a full reference such as \"docker.io/library/{image_text}:latest\" (a bare word never pulls from Docker Hub, so a typo cannot fetch someone else's image)"),
            );
            self.push(
                e.diag(
                    Code::UnknownReference,
                    image_at.clone(),
                    format!("{what} refers to unknown image `{image_text}`"),
                )
                .with_help(help),
            );
            None
        } else {
            match image_text.parse::<ImageSource>() {
                Ok(s) => Some(s),
                Err(err) => {
                    self.hinted(
                        e.diag(
                            Code::InvalidValue,
                            image_at.clone(),
                            format!("{what}: {err}"),
                        ),
                        &err,
                    );
                    None
                }
            }
        };

        let check_strings = |this: &mut Self, list: &Option<Spanned<Vec<String>>>, key: &str| {
            if let Some(list) = list
                && list.get_ref().iter().any(|s| s.contains('\0'))
            {
                this.push(
                    e.diag(
                        Code::InvalidValue,
                        span(list),
                        format!("{what}: `{key}` contains a NUL character"),
                    )
                    .with_help("arguments cannot contain NUL (\\u0000)"),
                );
            }
        };
        check_strings(self, &raw.entrypoint, "entrypoint");
        check_strings(self, &raw.command, "command");
        if let Some(entrypoint) = &raw.entrypoint
            && entrypoint.get_ref().is_empty()
        {
            self.push(
                e.diag(
                    Code::InvalidValue,
                    span(entrypoint),
                    format!("{what}: `entrypoint` is empty"),
                )
                .with_help("leave `entrypoint` out to use the image's, or name a program"),
            );
        }

        let mut env = BTreeMap::new();
        for (key, value) in &raw.env {
            let k = key.get_ref();
            if k.is_empty() || k.contains(['=', '\0']) {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(key),
                        format!("{what}: invalid environment variable name `{k}`"),
                    )
                    .with_help("names are non-empty and contain neither `=` nor NUL"),
                );
            } else if value.get_ref().contains('\0') {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(value),
                        format!("{what}: the value of environment variable `{k}` contains a NUL character"),
                    )
                    .with_help("values cannot contain NUL (\\u0000): the kernel would end the variable there"),
                );
            } else {
                env.insert(k.clone(), value.get_ref().clone());
            }
        }
        self.exec_strings(e, &what);

        let workdir = raw.workdir.as_ref().and_then(|w| {
            let p = w.get_ref();
            if p.starts_with('/') && !p.contains('\0') && !p.split('/').any(|c| c == "..") {
                Some(p.clone())
            } else {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(w),
                        format!(
                            "{what}: working directory `{p}` must be an absolute path without `..`"
                        ),
                    )
                    .with_help("write e.g. \"/app\""),
                );
                None
            }
        });
        let user = raw.user.as_ref().and_then(|u| {
            let text = u.get_ref();
            if valid_user(text) {
                Some(text.clone())
            } else {
                self.push(
                    e.diag(Code::InvalidValue, span(u), format!("{what}: invalid user `{text}`"))
                        .with_help("write \"USER\", \"USER:GROUP\", \"UID\" or \"UID:GID\", e.g. \"nginx\" or \"1000:1000\""),
                );
                None
            }
        });
        let mut groups = Vec::new();
        for g in &raw.groups {
            if valid_user_part(g.get_ref()) {
                groups.push(g.get_ref().clone());
            } else {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(g),
                        format!("{what}: invalid group `{}`", g.get_ref()),
                    )
                    .with_help("write a group name or numeric id"),
                );
            }
        }
        let hostname = match &raw.hostname {
            None => name.to_string(),
            Some(h) => {
                if !valid_hostname(h.get_ref()) {
                    self.push(
                        e.diag(Code::InvalidValue, span(h), format!("{what}: invalid hostname `{}`", h.get_ref()))
                            .with_help("a hostname is at most 64 characters of letters, digits, `-` and `.`, each label starting and ending with a letter or digit"),
                    );
                }
                h.get_ref().clone()
            }
        };

        // Networks.
        let network = match (&raw.network, raw.networks.is_empty()) {
            (Some(mode), false) => {
                self.push(
                    e.diag(
                        Code::Conflict,
                        span(mode),
                        format!(
                            "{what}: `network = \"{}\"` cannot be combined with `networks`",
                            mode_str(*mode.get_ref())
                        ),
                    )
                    .with_help("keep either `network` (host or none) or the list of `networks`"),
                );
                ContainerNetwork::None
            }
            (Some(mode), true) => match mode.get_ref() {
                NetworkMode::Host => ContainerNetwork::Host,
                NetworkMode::None => ContainerNetwork::None,
            },
            (None, true) => ContainerNetwork::None,
            (None, false) => {
                let mut attachments: Vec<Attachment> = Vec::new();
                for entry in &raw.networks {
                    let at = span(entry);
                    let t = entry.get_ref().clone().into_table();
                    if !self.reference(e, Kind::Network, &t.name, at.clone(), &what) {
                        unusable_reference = true;
                        continue;
                    }
                    let Ok(net_name) = t.name.parse::<Name>() else {
                        continue;
                    };
                    if attachments.iter().any(|a| a.network == net_name) {
                        self.push(
                            e.diag(
                                Code::Conflict,
                                at,
                                format!("{what} joins network `{net_name}` twice"),
                            )
                            .with_help("list each network once"),
                        );
                        continue;
                    }
                    let ip = match &t.ip {
                        None => None,
                        Some(text) => match text.parse::<Ipv4Addr>() {
                            Ok(ip) => {
                                let Some(net) = desired.networks.get(&net_name) else {
                                    continue;
                                };
                                if !usable_host(net.subnet, ip) || ip == net.gateway {
                                    // Outside the subnet is a bad value; the gateway's own
                                    // address is taken.
                                    let code = if ip == net.gateway {
                                        Code::AddressConflict
                                    } else {
                                        Code::InvalidValue
                                    };
                                    self.push(
                                        e.diag(code, at.clone(), format!("{what}: address {ip} is not usable on network `{net_name}` ({})", net.subnet))
                                            .with_help(format!("pick an address between {} and {} other than the gateway {}", first_host(net.subnet), last_host(net.subnet), net.gateway)),
                                    );
                                }
                                Some(ip)
                            }
                            Err(_) => {
                                self.push(
                                    e.diag(
                                        Code::InvalidValue,
                                        at.clone(),
                                        format!("{what}: invalid address `{text}`"),
                                    )
                                    .with_help("write an IPv4 address, e.g. \"10.89.1.10\""),
                                );
                                None
                            }
                        },
                    };
                    let mut aliases = BTreeSet::new();
                    for alias in &t.aliases {
                        match alias.parse::<Name>() {
                            Ok(a) => drop(aliases.insert(a)),
                            Err(err) => self.hinted(
                                e.diag(
                                    Code::InvalidName,
                                    at.clone(),
                                    format!("{what}: invalid alias `{alias}`: {err}"),
                                ),
                                &err,
                            ),
                        }
                    }
                    attachments.push(Attachment {
                        network: net_name,
                        ip,
                        aliases: aliases.into_iter().collect(),
                    });
                }
                attachments.sort_by(|a, b| a.network.cmp(&b.network));
                ContainerNetwork::Bridge(attachments)
            }
        };

        // Ports: need a network namespace with a bridge to forward into.
        let mut ports: Vec<_> = raw.ports.iter().map(|p| *p.get_ref()).collect();
        if !raw.ports.is_empty() && raw.networks.is_empty() {
            let hint = if matches!(
                raw.network.as_ref().map(|m| *m.get_ref()),
                Some(NetworkMode::Host)
            ) {
                "with `network = \"host\"` the container binds host ports itself: remove `ports`"
            } else {
                "join a network (`networks = [\"NAME\"]`) so the port can be forwarded to the container"
            };
            self.push(
                e.diag(
                    Code::Conflict,
                    span(&raw.ports[0]),
                    format!("{what} publishes ports but is on no bridge network"),
                )
                .with_help(hint),
            );
        }
        for p in &raw.ports {
            if matches!(p.get_ref().host_ip, Some(std::net::IpAddr::V6(_))) {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(p),
                        format!("{what}: IPv6 host address in `{}`", p.get_ref()),
                    )
                    .with_help("bridge networks are IPv4 only, so an IPv6 address cannot be forwarded into them; publish on an IPv4 address (\"127.0.0.1:8080:80\") or on every address (\"8080:80\")"),
                );
            }
        }
        if !raw.ports.is_empty()
            && let ContainerNetwork::Bridge(attachments) = &network
            && !attachments.is_empty()
            && attachments
                .iter()
                .all(|a| desired.networks.get(&a.network).is_some_and(|n| n.internal))
        {
            self.push(
                e.diag(
                    Code::Conflict,
                    span(&raw.ports[0]),
                    format!("{what} publishes ports but joins only internal networks"),
                )
                .with_help("internal networks have no traffic from outside; join a network without `internal = true` as well, or remove `ports`"),
            );
        }
        for (i, p) in raw.ports.iter().enumerate() {
            if let Some(q) = raw.ports[..i]
                .iter()
                .find(|q| q.get_ref().collides_with(p.get_ref()))
            {
                self.push(
                    e.diag(
                        Code::PortConflict,
                        span(p),
                        format!(
                            "{what} publishes host port {}/{} twice",
                            p.get_ref().host_port,
                            p.get_ref().protocol
                        ),
                    )
                    .with_help("publish each host port once")
                    .with_related(Location::new(&e.source, span(q)), "also published here"),
                );
            }
        }
        ports.sort();

        // Mounts.
        let mut mounts: Vec<Mount> = Vec::new();
        for m in &raw.mounts {
            let mount = m.get_ref().0.clone();
            if let Mount::Volume { source, .. } = &mount
                && !self.reference(e, Kind::Volume, source, span(m), &what)
            {
                unusable_reference = true;
                continue;
            }
            if let Some(other) = mounts.iter().find(|o| o.target() == mount.target()) {
                let other = other.to_string();
                self.push(
                    e.diag(
                        Code::MountConflict,
                        span(m),
                        format!("{what} mounts two things at `{}`", mount.target()),
                    )
                    .with_help(format!(
                        "each target takes one mount; `{other}` is already there"
                    )),
                );
                continue;
            }
            mounts.push(mount);
        }
        mounts.sort_by(|a, b| {
            a.target()
                .cmp(b.target())
                .then_with(|| a.to_string().cmp(&b.to_string()))
        });

        let backoff = match &raw.backoff {
            None => Backoff::default(),
            Some(b) => {
                let d = Backoff::default();
                let backoff = Backoff {
                    initial: b.get_ref().initial.unwrap_or(d.initial),
                    max: b.get_ref().max.unwrap_or(d.max),
                    reset_after: b.get_ref().reset_after.unwrap_or(d.reset_after),
                };
                if backoff.initial.is_zero() || backoff.max < backoff.initial {
                    self.push(
                        e.diag(Code::InvalidValue, span(b), format!("{what}: backoff needs 0 < initial ({}) <= max ({})", backoff.initial, backoff.max))
                            .with_help("e.g. backoff = { initial = \"1s\", max = \"5m\", reset_after = \"10m\" }"),
                    );
                }
                backoff
            }
        };
        let stop_timeout = raw.stop_timeout.unwrap_or(Container::DEFAULT_STOP_TIMEOUT);

        let caps =
            |this: &mut Self, list: &Vec<Spanned<super::capability::Capability>>, key: &str| {
                let mut set = BTreeSet::new();
                for c in list {
                    if !set.insert(c.get_ref().clone()) {
                        this.push(
                            e.diag(
                                Code::Conflict,
                                span(c),
                                format!("{what}: `{key}` lists {} twice", c.get_ref()),
                            )
                            .with_help("list each capability once"),
                        );
                    }
                }
                set
            };
        let cap_add = caps(self, &raw.cap_add, "cap_add");
        let cap_drop = caps(self, &raw.cap_drop, "cap_drop");
        for c in &raw.cap_add {
            if cap_drop.contains(c.get_ref()) && *c.get_ref() != super::capability::Capability::All
            {
                self.push(
                    e.diag(
                        Code::Conflict,
                        span(c),
                        format!("{what}: {} is both added and dropped", c.get_ref()),
                    )
                    .with_help("keep it in only one of `cap_add` and `cap_drop`"),
                );
            }
        }

        let memory = raw.memory.as_ref().map(|m| {
            if m.get_ref().0 < MIN_MEMORY {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(m),
                        format!(
                            "{what}: memory limit {} is below the minimum of 6MiB",
                            m.get_ref()
                        ),
                    )
                    .with_help("give the container at least \"6MiB\""),
                );
            }
            *m.get_ref()
        });
        let millicpus = raw.cpus.as_ref().and_then(|c| {
            let v = *c.get_ref();
            if v.is_finite() && (0.001..=1024.0).contains(&v) {
                Some((v * 1000.0).round() as u32)
            } else {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(c),
                        format!("{what}: cpus = {v} is out of range"),
                    )
                    .with_help("write a number of cores between 0.001 and 1024, e.g. 0.5 or 2"),
                );
                None
            }
        });
        let pids = raw
            .pids
            .as_ref()
            .and_then(|p| match u32::try_from(*p.get_ref()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    self.push(
                        e.diag(
                            Code::InvalidValue,
                            span(p),
                            format!("{what}: pids = {} is out of range", p.get_ref()),
                        )
                        .with_help("write a positive number of processes, e.g. 256"),
                    );
                    None
                }
            });

        let disk = raw.disk.as_ref().and_then(|d| {
            let bytes = d.get_ref().0;
            if (MIN_DISK..=MAX_DISK).contains(&bytes) {
                Some(*d.get_ref())
            } else {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(d),
                        format!(
                            "{what}: disk = {} is out of range (16MiB to 16TiB)",
                            d.get_ref()
                        ),
                    )
                    .with_help("write a size such as \"1GiB\"; volumes hold data that must not be bounded this way"),
                );
                None
            }
        });

        let health = raw.health.as_ref().and_then(|h| self.health(e, h, &what));

        let mut update = UpdatePolicy::default();
        if let Some(s) = &raw.update {
            update.strategy = *s.get_ref();
        }
        update.timeout = raw
            .update_timeout
            .as_ref()
            .map_or(update.timeout, |t| *t.get_ref());
        update.drain = raw.drain.unwrap_or(update.drain);
        if let Some(s) = &raw.update
            && update.strategy == UpdateStrategy::StartFirst
        {
            {
                let mut missing = Vec::new();
                if raw.health.is_none() {
                    missing.push("a `health` check (to know when the new container is ready)");
                }
                if raw.ports.is_empty() {
                    missing.push("published `ports` (the traffic to switch)");
                }
                if raw.networks.is_empty() {
                    missing.push("a bridge network in `networks` (two containers cannot share host ports otherwise)");
                }
                if !missing.is_empty() {
                    self.push(
                        e.diag(
                            Code::Conflict,
                            span(s),
                            format!(
                                "{what}: update = \"start-first\" needs {}",
                                missing.join(", ")
                            ),
                        )
                        .with_help("add what is missing, or use update = \"stop-first\""),
                    );
                }
                if update.timeout.is_zero() {
                    let at = raw.update_timeout.as_ref().map_or_else(|| span(s), span);
                    self.push(
                        e.diag(
                            Code::InvalidValue,
                            at,
                            format!("{what}: update_timeout must be more than 0s"),
                        )
                        .with_help("e.g. update_timeout = \"2m\""),
                    );
                }
            }
        }

        let mut depends_on = BTreeMap::new();
        for (dep, condition) in &raw.depends_on {
            let dep_name = dep.get_ref();
            if dep_name == name.as_str() {
                self.push(
                    e.diag(
                        Code::DependencyCycle,
                        span(dep),
                        format!("{what} depends on itself"),
                    )
                    .with_help("remove it from its own `depends_on`"),
                );
                continue;
            }
            if !self.reference(e, Kind::Container, dep_name, span(dep), &what) {
                unusable_reference = true;
                continue;
            }
            if let Ok(n) = dep_name.parse::<Name>() {
                depends_on.insert(n, *condition);
            }
        }

        let log = match &raw.log {
            None => LogPolicy::default(),
            Some(l) => {
                let mut log = LogPolicy::default();
                if let Some(s) = &l.max_size {
                    if s.get_ref().0 < MIN_LOG_SIZE {
                        self.push(
                            e.diag(
                                Code::InvalidValue,
                                span(s),
                                format!("{what}: log max_size {} is below 4KiB", s.get_ref()),
                            )
                            .with_help("e.g. max_size = \"10MiB\""),
                        );
                    }
                    log.max_size = *s.get_ref();
                }
                if let Some(n) = &l.max_files {
                    match u32::try_from(*n.get_ref()) {
                        Ok(v) if (1..=1000).contains(&v) => log.max_files = v,
                        _ => self.push(
                            e.diag(
                                Code::InvalidValue,
                                span(n),
                                format!("{what}: log max_files = {} is out of range", n.get_ref()),
                            )
                            .with_help("keep between 1 and 1000 files"),
                        ),
                    }
                }
                log
            }
        };

        if self.diagnostics.len() > before || unusable_reference {
            return None;
        }
        Some(Container {
            origin: origin(e),
            image: image?,
            entrypoint: raw.entrypoint.as_ref().map(|v| v.get_ref().clone()),
            command: raw.command.as_ref().map(|v| v.get_ref().clone()),
            env,
            workdir,
            user,
            groups,
            hostname,
            labels: raw.labels.clone(),
            network,
            ports,
            mounts,
            restart: raw.restart,
            backoff,
            stop_signal: raw.stop_signal,
            stop_timeout,
            read_only: raw.read_only,
            runtime: raw.runtime.clone().unwrap_or_default(),
            cap_add,
            cap_drop,
            resources: Resources {
                memory,
                millicpus,
                pids,
                disk,
            },
            health,
            update,
            depends_on,
            log,
        })
    }

    /// execve's limits on the entry's own arguments and environment, checked here because
    /// the kernel would refuse them only at every start (E2BIG): each string below
    /// MAX_ARG_STRLEN, and all of them within MAX_EXEC_STRINGS.
    fn exec_strings(&mut self, e: &Entry<RawContainer>, what: &str) {
        const POINTER: usize = 8;
        let raw = &e.raw;
        let mut total = 0;
        let mut too_long = false;
        for (key, list) in [("entrypoint", &raw.entrypoint), ("command", &raw.command)] {
            let Some(list) = list else { continue };
            for (i, arg) in list.get_ref().iter().enumerate() {
                total += arg.len() + 1 + POINTER;
                if arg.len() + 1 > MAX_ARG_STRLEN {
                    too_long = true;
                    self.push(
                        e.diag(
                            Code::InvalidValue,
                            span(list),
                            format!(
                                "{what}: `{key}` argument {} is {} bytes, over the kernel's limit of {} for one argument (execve would fail with E2BIG)",
                                i + 1,
                                arg.len(),
                                MAX_ARG_STRLEN - 1
                            ),
                        )
                        .with_help(LARGE_DATA_HELP),
                    );
                }
            }
        }
        for (key, value) in &raw.env {
            // `NAME=VALUE`, as the process receives it.
            let len = key.get_ref().len() + 1 + value.get_ref().len();
            total += len + 1 + POINTER;
            if len + 1 > MAX_ARG_STRLEN {
                too_long = true;
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        span(value),
                        format!(
                            "{what}: environment variable `{}` is {len} bytes as NAME=VALUE, over the kernel's limit of {} for one variable (execve would fail with E2BIG)",
                            key.get_ref(),
                            MAX_ARG_STRLEN - 1
                        ),
                    )
                    .with_help(LARGE_DATA_HELP),
                );
            }
        }
        // One string too long says enough; the sum is checked once each fits.
        if !too_long && total > MAX_EXEC_STRINGS {
            self.push(
                e.diag(
                    Code::InvalidValue,
                    e.key_span.clone(),
                    format!(
                        "{what}: `entrypoint`, `command` and `env` take {total} bytes at execve (each string with its NUL and an {POINTER}-byte pointer), over the {MAX_EXEC_STRINGS} allowed"
                    ),
                )
                .with_help(format!(
                    "the kernel allows a quarter of the stack limit (2 MiB by default) for all arguments and environment, the image's included; {LARGE_DATA_HELP}"
                )),
            );
        }
    }

    fn health(
        &mut self,
        e: &Entry<RawContainer>,
        h: &Spanned<RawHealth>,
        what: &str,
    ) -> Option<HealthCheck> {
        let raw = h.get_ref();
        let at = span(h);
        let given = [raw.exec.is_some(), raw.tcp.is_some(), raw.http.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if given != 1 {
            self.push(
                e.diag(Code::InvalidValue, at, format!("{what}: a health check needs exactly one of `exec`, `tcp`, `http` ({given} given)"))
                    .with_help("e.g. health = { http = \"http://127.0.0.1:8080/healthz\" } or { tcp = 5432 } or { exec = [\"pg_isready\"] }"),
            );
            return None;
        }
        let probe = if let Some(cmd) = &raw.exec {
            if cmd.is_empty() || cmd.iter().any(|a| a.contains('\0')) {
                self.push(
                    e.diag(
                        Code::InvalidValue,
                        at,
                        format!("{what}: health `exec` needs a command"),
                    )
                    .with_help("e.g. exec = [\"pg_isready\", \"-U\", \"app\"]"),
                );
                return None;
            }
            Probe::Exec(cmd.clone())
        } else if let Some(port) = &raw.tcp {
            match u16::try_from(*port.get_ref()) {
                Ok(p) if p > 0 => Probe::Tcp(p),
                _ => {
                    self.push(
                        e.diag(
                            Code::InvalidValue,
                            span(port),
                            format!("{what}: health tcp port {} is out of range", port.get_ref()),
                        )
                        .with_help("ports are 1-65535"),
                    );
                    return None;
                }
            }
        } else if let Some(url) = &raw.http {
            match url::Url::from_str(url.get_ref()) {
                Ok(u)
                    if u.scheme() == "http"
                        && matches!(
                            u.host(),
                            Some(url::Host::Ipv4(_)) | Some(url::Host::Domain("localhost"))
                        )
                        && u.username().is_empty() =>
                {
                    Probe::Http(u.to_string())
                }
                Ok(u) if u.scheme() == "http" && u.host().is_some() => {
                    self.push(
                        e.diag(
                            Code::InvalidValue,
                            span(url),
                            format!(
                                "{what}: the health URL's host must be an IPv4 address or localhost, not `{}`",
                                u.host_str().unwrap_or("")
                            ),
                        )
                        .with_help("it is requested from inside the container's network, where no name is resolved; write e.g. \"http://127.0.0.1:8080/healthz\""),
                    );
                    return None;
                }
                Ok(u) if u.scheme() == "https" => {
                    self.push(
                        e.diag(
                            Code::InvalidValue,
                            span(url),
                            format!("{what}: https health checks are not supported"),
                        )
                        .with_help("check a plain-HTTP port, or use a `tcp` or `exec` check"),
                    );
                    return None;
                }
                _ => {
                    self.push(e.diag(Code::InvalidValue, span(url), format!("{what}: invalid health URL `{}`", url.get_ref())).with_help("write e.g. \"http://127.0.0.1:8080/healthz\" (it is requested from inside the container's network)"));
                    return None;
                }
            }
        } else {
            return None;
        };
        let interval = raw.interval.unwrap_or(HealthCheck::DEFAULT_INTERVAL);
        let timeout = raw.timeout.unwrap_or(HealthCheck::DEFAULT_TIMEOUT);
        if interval.is_zero() || timeout.is_zero() {
            self.push(
                e.diag(
                    Code::InvalidValue,
                    at,
                    format!("{what}: health interval and timeout must be more than 0s"),
                )
                .with_help("e.g. interval = \"10s\", timeout = \"5s\""),
            );
            return None;
        }
        let retries = match &raw.retries {
            None => HealthCheck::DEFAULT_RETRIES,
            Some(r) => match u32::try_from(*r.get_ref()) {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    self.push(
                        e.diag(
                            Code::InvalidValue,
                            span(r),
                            format!("{what}: health retries = {} is out of range", r.get_ref()),
                        )
                        .with_help("write between 1 and 1000"),
                    );
                    return None;
                }
            },
        };
        Some(HealthCheck {
            probe,
            interval,
            timeout,
            retries,
            start_period: raw.start_period.unwrap_or(Duration::from_secs(0)),
        })
    }

    /// depends_on: a `healthy` condition needs a health check; cycles are refused; a container
    /// that depends on one left out is left out too.
    fn check_dependencies(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawContainer>>,
        containers: &mut BTreeMap<Name, Container>,
    ) {
        for (name, c) in containers.iter() {
            for (dep, cond) in &c.depends_on {
                if *cond == Condition::Healthy
                    && containers.get(dep).is_some_and(|d| d.health.is_none())
                {
                    let e = &entries[name];
                    let at = e
                        .raw
                        .depends_on
                        .keys()
                        .find(|k| k.get_ref() == dep.as_str())
                        .map(span)
                        .unwrap_or(e.key_span.clone());
                    self.diagnostics.push(
                        e.diag(Code::Conflict, at, format!("container `{name}` waits for `{dep}` to be healthy, but `{dep}` has no health check"))
                            .with_help(format!("add a `health` check to `{dep}`, or use `{dep}` = \"started\""))
                            .with_related(entries[dep].location(), format!("`{dep}` is declared here")),
                    );
                }
            }
        }
        // Cycles: depth-first search over the full declared graph, reporting each cycle once.
        let graph: BTreeMap<&Name, Vec<&Name>> = containers
            .iter()
            .map(|(n, c)| {
                (
                    n,
                    c.depends_on
                        .keys()
                        .filter(|d| containers.contains_key(*d))
                        .collect(),
                )
            })
            .collect();
        let mut state: BTreeMap<&Name, u8> = BTreeMap::new(); // 1 = on stack, 2 = done
        let mut in_cycle: BTreeSet<Name> = BTreeSet::new();
        fn visit<'a>(
            n: &'a Name,
            graph: &BTreeMap<&'a Name, Vec<&'a Name>>,
            state: &mut BTreeMap<&'a Name, u8>,
            stack: &mut Vec<&'a Name>,
            cycles: &mut Vec<Vec<&'a Name>>,
        ) {
            state.insert(n, 1);
            stack.push(n);
            for &next in graph.get(n).map(Vec::as_slice).unwrap_or(&[]) {
                match state.get(next) {
                    Some(1) => {
                        let start = stack.iter().position(|s| *s == next).unwrap_or(0);
                        cycles.push(stack[start..].to_vec());
                    }
                    Some(_) => {}
                    None => visit(next, graph, state, stack, cycles),
                }
            }
            stack.pop();
            state.insert(n, 2);
        }
        let mut cycles = Vec::new();
        for n in graph.keys() {
            if !state.contains_key(n) {
                visit(n, &graph, &mut state, &mut Vec::new(), &mut cycles);
            }
        }
        for cycle in cycles {
            let first = cycle[0];
            let path: Vec<String> = cycle
                .iter()
                .chain(std::iter::once(&first))
                .map(|n| n.to_string())
                .collect();
            let e = &entries[first];
            let mut d = e
                .diag(
                    Code::DependencyCycle,
                    e.key_span.clone(),
                    format!("dependency cycle: {}", path.join(" → ")),
                )
                .with_help(
                    "remove one of these `depends_on` entries so the containers can start in order",
                );
            for n in &cycle[1..] {
                d = d.with_related(
                    entries[*n].location(),
                    format!("`{n}` is part of the cycle"),
                );
            }
            self.diagnostics.push(d);
            in_cycle.extend(cycle.into_iter().cloned());
        }
        for n in &in_cycle {
            containers.remove(n);
            self.mark_broken(Kind::Container, n);
        }
        // Left-out dependencies (broken, in a cycle, or healthy-without-check) take dependents along.
        loop {
            let gone: Vec<Name> = containers
                .iter()
                .filter(|(_, c)| {
                    c.depends_on.iter().any(|(d, cond)| {
                        !containers.contains_key(d)
                            || (*cond == Condition::Healthy && containers[d].health.is_none())
                    })
                })
                .map(|(n, _)| n.clone())
                .collect();
            if gone.is_empty() {
                break;
            }
            for n in gone {
                containers.remove(&n);
                self.mark_broken(Kind::Container, &n);
            }
        }
    }

    /// Two containers must not publish the same host port; both are left out, since either
    /// could be the mistake.
    fn check_ports(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawContainer>>,
        containers: &mut BTreeMap<Name, Container>,
    ) {
        let mut all: Vec<(&Name, &Spanned<super::port::PortMapping>)> = Vec::new();
        for (name, entry) in entries {
            if containers.contains_key(name) {
                all.extend(entry.raw.ports.iter().map(|p| (name, p)));
            }
        }
        // Only mappings of the same protocol and host port can collide: compare within those
        // groups, so a thousand containers cost a sort rather than a million comparisons.
        all.sort_by_key(|(_, p)| (p.get_ref().protocol, p.get_ref().host_port));
        let mut bad = BTreeSet::new();
        for (i, (a, pa)) in all.iter().enumerate() {
            let same_port = |(_, p): &&(&Name, &Spanned<super::port::PortMapping>)| {
                (p.get_ref().protocol, p.get_ref().host_port)
                    == (pa.get_ref().protocol, pa.get_ref().host_port)
            };
            for (b, pb) in all[i + 1..].iter().take_while(same_port) {
                if a != b && pa.get_ref().collides_with(pb.get_ref()) {
                    let e = &entries[*b];
                    self.diagnostics.push(
                        e.diag(
                            Code::PortConflict,
                            span(pb),
                            format!(
                                "containers `{a}` and `{b}` both publish host port {}/{}",
                                pb.get_ref().host_port,
                                pb.get_ref().protocol
                            ),
                        )
                        .with_help(
                            "give each container its own host port (or its own host address)",
                        )
                        .with_related(
                            Location::new(&entries[*a].source, span(pa)),
                            format!("`{a}` publishes it here"),
                        ),
                    );
                    bad.insert((*a).clone());
                    bad.insert((*b).clone());
                }
            }
        }
        for n in bad {
            containers.remove(&n);
            self.mark_broken(Kind::Container, &n);
        }
    }

    fn check_static_addresses(
        &mut self,
        entries: &BTreeMap<Name, Entry<RawContainer>>,
        containers: &mut BTreeMap<Name, Container>,
        desired: &Desired,
    ) {
        let mut taken: BTreeMap<(Name, Ipv4Addr), Name> = BTreeMap::new();
        let mut bad = BTreeSet::new();
        for (name, c) in containers.iter() {
            let ContainerNetwork::Bridge(attachments) = &c.network else {
                continue;
            };
            for a in attachments {
                let Some(ip) = a.ip else { continue };
                if let Some(other) = taken.get(&(a.network.clone(), ip)) {
                    let e = &entries[name];
                    let at = e
                        .raw
                        .networks
                        .iter()
                        .find(|n| n.get_ref().clone().into_table().name == a.network.as_str())
                        .map_or(e.key_span.clone(), span);
                    let subnet = desired
                        .networks
                        .get(&a.network)
                        .map(|n| n.subnet.to_string())
                        .unwrap_or_default();
                    self.diagnostics.push(
                        e.diag(Code::AddressConflict, at, format!("containers `{other}` and `{name}` both ask for {ip} on network `{}`", a.network))
                            .with_help(format!("give each container its own address in {subnet}"))
                            .with_related(entries[other].location(), format!("`{other}` is declared here")),
                    );
                    bad.insert(other.clone());
                    bad.insert(name.clone());
                } else {
                    taken.insert((a.network.clone(), ip), name.clone());
                }
            }
        }
        for n in bad {
            containers.remove(&n);
            self.mark_broken(Kind::Container, &n);
        }
    }
}

/// A required key is absent: point at the entry's name. None when the key was present but
/// dropped for a bad value (already reported).
fn missing<T>(e: &Entry<T>, kind: Kind, key: &str, example: &str) -> Option<Diagnostic> {
    if e.dropped_keys.contains(key) {
        return None;
    }
    Some(missing_key(e, kind, key, example))
}

fn missing_key<T>(e: &Entry<T>, kind: Kind, key: &str, example: &str) -> Diagnostic {
    e.diag(
        Code::MissingKey,
        e.key_span.clone(),
        format!(
            "{} `{}` has no `{key}`, which is required",
            kind.section(),
            e.name
        ),
    )
    .with_help(format!(
        "add e.g. `{key} = {example}` under [{}.{}]",
        kind.section(),
        e.name
    ))
}

fn origin<T>(e: &Entry<T>) -> Origin {
    let loc = e.location();
    Origin {
        file: loc.file,
        line: loc.line,
    }
}

fn mode_str(m: NetworkMode) -> &'static str {
    match m {
        NetworkMode::Host => "host",
        NetworkMode::None => "none",
    }
}

fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

fn last_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.broadcast()) - 1)
}

/// Inside the subnet and neither its network nor its broadcast address.
fn usable_host(net: Ipv4Net, ip: Ipv4Addr) -> bool {
    net.contains(&ip) && ip != net.network() && ip != net.broadcast()
}

fn parse_platform(s: &str) -> Option<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match parts.as_slice() {
        [os, arch] if ok(os) && ok(arch) => Some(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: None,
        }),
        [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Some(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: Some(variant.to_string()),
        }),
        _ => None,
    }
}

fn valid_user_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
}

fn valid_user(s: &str) -> bool {
    match s.split_once(':') {
        Some((u, g)) => valid_user_part(u) && valid_user_part(g),
        None => valid_user_part(s),
    }
}

fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{InputFile, Loaded, load_files};

    /// One container with `body` appended to its table.
    fn load(body: &str) -> Loaded {
        load_files(&[InputFile {
            path: "web.toml".into(),
            text: format!("[container.web]\nimage = \"docker.io/library/app:1\"\n{body}"),
        }])
    }

    fn messages(loaded: &Loaded) -> Vec<String> {
        loaded.diagnostics.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn one_argument_or_variable_fits_execve() {
        let fits = "x".repeat(MAX_ARG_STRLEN - 1);
        let ok = load(&format!(
            "command = [\"{fits}\"]\nentrypoint = [\"{fits}\"]\nenv = {{ A = \"{}\" }}\n",
            &fits[2..]
        ));
        assert_eq!(messages(&ok), Vec::<String>::new());
        assert!(ok.desired.containers.contains_key("web"));

        let over = "x".repeat(MAX_ARG_STRLEN);
        let bad = load(&format!(
            "command = [\"sh\", \"{over}\"]\nenv = {{ A = \"{}\" }}\n",
            &over[2..]
        ));
        let m = messages(&bad);
        assert_eq!(m.len(), 2, "{m:#?}");
        assert!(
            m[0].starts_with("web.toml:3:11: error[invalid-value]: container `web`: `command` argument 2 is 131072 bytes, over the kernel's limit of 131071"),
            "{}",
            m[0]
        );
        assert!(
            m[1].starts_with("web.toml:4:13: error[invalid-value]: container `web`: environment variable `A` is 131072 bytes as NAME=VALUE"),
            "{}",
            m[1]
        );
        assert!(
            m.iter()
                .all(|m| m.contains("help: pass large data as a file"))
        );
        assert!(bad.desired.containers.is_empty());
    }

    #[test]
    fn all_arguments_and_variables_fit_execve() {
        // `V0=…`: each costs its length, a NUL and an 8-byte pointer, 120000 bytes in all.
        const PER: usize = 120_000;
        let value = "x".repeat(PER - "V0=".len() - 1 - 8);
        let env = (0..8)
            .map(|i| format!("V{i} = \"{value}\""))
            .collect::<Vec<_>>()
            .join(", ");
        // A ninth variable and the command fill the rest exactly: fine. One byte more:
        // refused, at the entry's name. (`command` costs 3 + 9 bytes.)
        let rest = MAX_EXEC_STRINGS - 8 * PER - (3 + 9);
        let last = |len: usize| {
            load(&format!(
                "command = [\"abc\"]\nenv = {{ {env}, W = \"{}\" }}\n",
                "x".repeat(len)
            ))
        };
        let exact = last(rest - "W=".len() - 1 - 8);
        assert_eq!(messages(&exact), Vec::<String>::new());
        assert!(exact.desired.containers.contains_key("web"));
        let over = last(rest - "W=".len() - 1 - 8 + 1);
        let m = messages(&over);
        assert_eq!(m.len(), 1, "{m:#?}");
        assert!(
            m[0].starts_with(&format!("web.toml:1:12: error[invalid-value]: container `web`: `entrypoint`, `command` and `env` take {} bytes at execve", MAX_EXEC_STRINGS + 1)),
            "{}",
            m[0]
        );
        assert!(over.desired.containers.is_empty());
    }

    #[test]
    fn a_nul_in_an_env_value_is_blamed_on_the_value() {
        let loaded = load("env = { GOOD = \"a\\u0000b\" }\n");
        assert_eq!(
            messages(&loaded),
            [
                "web.toml:3:16: error[invalid-value]: container `web`: the value of environment variable `GOOD` contains a NUL character\n    | \"a\\u0000b\"\n    = help: values cannot contain NUL (\\u0000): the kernel would end the variable there"
            ]
        );
    }
}
