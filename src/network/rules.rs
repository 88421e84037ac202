//! berth's nftables table: published ports, masquerade, isolation.
//!
//! Everything berth needs from netfilter lives in ONE table of its own (family `ip`, named
//! after the state root: `berth`, or `berth-<hash>`), and that table is always written whole:
//! [`ruleset`] is a pure function of [`RulesInput`], and [`apply`] sends `add table` +
//! `delete table` + the complete table as one `nft -j -f -` transaction. So:
//!
//! - there is no per-rule bookkeeping (no handles to remember, no diff against the kernel):
//!   a container that starts or stops means a new input and a new table;
//! - the kernel never holds half a table: the transaction replaces it atomically, or fails and
//!   leaves the previous one in place (and `add` before `delete` makes it work when the table
//!   is absent);
//! - nothing outside the table is touched: other tables (firewalld, Docker, the distribution's
//!   own ruleset) are neither read nor changed, and removing berth is deleting one table.
//!
//! Checking the kernel does not read the whole table back and compare expressions (the JSON
//! nft prints is not the JSON it was given). Instead the first rule of the table carries a
//! fingerprint of what [`ruleset`] makes in its comment, and [`in_sync`] checks that comment,
//! the chains (hook, priority, policy) and the number of rules in each. That catches what
//! happens in practice: the table deleted, a table or chain flushed (`nft flush ruleset` by a
//! firewall reload), a rule deleted or added by hand, an older berth's table. A rule edited in
//! place to something else with the same count is not caught; re-applying is cheap, so a
//! caller that wants certainty just applies.
//!
//! ```text
//! prerouting   nat, dstnat     fib daddr type local jump ports     (comment: berth <fingerprint>)
//! output       nat, -100       fib daddr type local jump ports     (the host itself, 127.0.0.1 too)
//! ports        regular         [ip daddr H] tcp|udp dport P dnat to C:Q, one per Forward
//! postrouting  nat, srcnat     per bridge: 127.0.0.0/8 → bridge, hairpin, outbound (not internal)
//! forward      filter, 0       ct status dnat accept; internal bridges closed; bridges isolated
//! input        filter, 0       no 127.0.0.0/8 from the bridges (route_localnet hardening)
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, SetItem,
};
use nftables::helper::{self, NftablesError};
use nftables::schema::{Chain, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{JumpTarget, Match, NAT, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::spec::port::Protocol;

/// One bridge network as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BridgeRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
}

/// One published port of a running container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Forward {
    /// None: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub protocol: Protocol,
    pub to: Ipv4Addr,
    pub to_port: u16,
    /// The container's id, written into the rule's comment.
    pub container: String,
}

/// Everything the table is made from. Sorted by the caller (bridges by name, forwards).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RulesInput {
    /// The table's name (`Layout::scope`): `berth`, or `berth-<hash>` for another state root.
    pub table: String,
    pub bridges: Vec<BridgeRules>,
    pub forwards: Vec<Forward>,
}

/// `nft`'s error is boxed: it carries four strings, and this error travels up through
/// `Result`s that clippy wants small.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("nftables: applying table ip {table}: {}", nft_detail(source))]
    Apply {
        table: String,
        source: Box<NftablesError>,
    },
    #[error("nftables: deleting table ip {table}: {}", nft_detail(source))]
    Remove {
        table: String,
        source: Box<NftablesError>,
    },
    #[error("nftables: listing table ip {table}: {}", nft_detail(source))]
    List {
        table: String,
        source: Box<NftablesError>,
    },
    #[error(
        "nftables: listing table ip {table}: unexpected output of `nft -j list table`: {message}"
    )]
    Listing { table: String, message: String },
}

/// The helper's own message for a failed `nft` leaves out what nft said; add it when it was
/// captured (listing captures stderr; applying lets it through to our stderr).
fn nft_detail(e: &NftablesError) -> String {
    match e {
        NftablesError::NftFailed { stderr, .. } if !stderr.trim().is_empty() => {
            format!("{e}: {}", stderr.trim())
        }
        _ => e.to_string(),
    }
}

const PREROUTING: &str = "prerouting";
const OUTPUT: &str = "output";
const PORTS: &str = "ports";
const POSTROUTING: &str = "postrouting";
const FORWARD: &str = "forward";
const INPUT: &str = "input";

/// nft's standard priority names: `dstnat`, `srcnat`, `filter`.
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;
const PRIO_FILTER: i32 = 0;

/// nft refuses comments longer than 128 bytes (and with it the whole transaction).
const COMMENT_MAX: usize = 127;

/// The whole transaction: `add table` + `delete table` + the table with every chain and rule,
/// so it replaces whatever is there atomically (and works when the table is absent).
fn ruleset(input: &RulesInput) -> Nftables<'static> {
    build(input, &fingerprint_comment(input))
}

/// A short hash (16 hex) of the input's canonical form; written in the comment of the table's
/// first rule so that a check can tell whether the kernel holds what this input makes.
///
/// The canonical form is the transaction [`ruleset`] makes, with the fingerprint comment left
/// empty: it holds every field of the input, and it also changes when a newer berth makes
/// different rules from the same input, so an upgrade replaces the older table.
///
/// The order of `bridges` and `forwards` counts (it is the order of the rules), which is why
/// the caller sorts them.
fn fingerprint(input: &RulesInput) -> String {
    // Serializing these types cannot fail (no maps, no non-string keys); an empty
    // serialization would still hash to a fixed value, which `in_sync` just would not match.
    let canonical = serde_json::to_vec(&build(input, "")).unwrap_or_default();
    let mut hex = crate::sha256::hex_digest(&canonical);
    hex.truncate(16);
    hex
}

fn fingerprint_comment(input: &RulesInput) -> String {
    format!("berth {}", fingerprint(input))
}

/// Apply `ruleset(input)`.
pub(crate) fn apply(input: &RulesInput) -> Result<(), RulesError> {
    // Where each published port goes from now on, timestamped: what a lost request is
    // matched against.
    tracing::debug!(
        table = %input.table,
        forwards = ?input
            .forwards
            .iter()
            .map(|f| format!("{}/{}->{}:{}", f.host_port, f.protocol, f.to, f.to_port))
            .collect::<Vec<_>>(),
        "applying the table"
    );
    helper::apply_ruleset(&ruleset(input)).map_err(|source| RulesError::Apply {
        table: input.table.clone(),
        source: Box::new(source),
    })
}

/// Delete the table if it exists (nothing else). Absent = Ok.
///
/// `add table` + `delete table` in one transaction: the add makes the delete always find it.
pub(crate) fn remove_table(table: &str) -> Result<(), RulesError> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table_obj(table)));
    batch.delete(NfListObject::Table(table_obj(table)));
    helper::apply_ruleset(&batch.to_nftables()).map_err(|source| RulesError::Remove {
        table: table.to_string(),
        source: Box::new(source),
    })
}

/// Whether the kernel's table is what `input` makes: the table exists, the fingerprint comment
/// is there, and every chain has the number of rules `ruleset(input)` has. (Catches a deleted
/// table, a flushed table or chain, a deleted/added rule.) One `nft -j list table ip NAME`
/// call; a missing table is `Ok(false)`, not an error.
pub(crate) fn in_sync(input: &RulesInput) -> Result<bool, RulesError> {
    let args = ["list", "table", "ip", input.table.as_str()];
    let raw = match helper::get_current_ruleset_raw(helper::DEFAULT_NFT, args) {
        Ok(raw) => raw,
        // ENOENT is how nft says the table does not exist.
        Err(NftablesError::NftFailed { stderr, .. })
            if stderr.contains("No such file or directory") =>
        {
            return Ok(false);
        }
        Err(source) => {
            return Err(RulesError::List {
                table: input.table.clone(),
                source: Box::new(source),
            });
        }
    };
    let listed: serde_json::Value =
        serde_json::from_str(&raw).map_err(|e| RulesError::Listing {
            table: input.table.clone(),
            message: e.to_string(),
        })?;
    let Some(objects) = listed.get("nftables").and_then(|v| v.as_array()) else {
        return Err(RulesError::Listing {
            table: input.table.clone(),
            message: "no \"nftables\" array".to_string(),
        });
    };
    let expected = shape_of(&ruleset(input));
    Ok(listed_shape(objects).is_some_and(|shape| shape == expected))
}

/// What `in_sync` compares: every chain with its hook, priority, policy and number of rules,
/// and the comment of the table's first rule.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    chains: BTreeMap<String, ChainShape>,
    first_comment: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
struct ChainShape {
    kind: Option<NfChainType>,
    hook: Option<NfHook>,
    prio: Option<i32>,
    policy: Option<NfChainPolicy>,
    rules: usize,
}

impl ChainShape {
    fn of(chain: &Chain<'_>) -> ChainShape {
        ChainShape {
            kind: chain._type,
            hook: chain.hook,
            prio: chain.prio,
            policy: chain.policy,
            rules: 0,
        }
    }
}

fn shape_of(nftables: &Nftables<'_>) -> Shape {
    let mut shape = Shape {
        chains: BTreeMap::new(),
        first_comment: None,
    };
    let mut first_rule = true;
    for object in nftables.objects.iter() {
        let NfObject::CmdObject(nftables::schema::NfCmd::Add(object)) = object else {
            continue;
        };
        match object {
            NfListObject::Chain(chain) => {
                shape
                    .chains
                    .insert(chain.name.to_string(), ChainShape::of(chain));
            }
            NfListObject::Rule(rule) => {
                if let Some(chain) = shape.chains.get_mut(rule.chain.as_ref()) {
                    chain.rules += 1;
                }
                if std::mem::take(&mut first_rule) {
                    shape.first_comment = rule.comment.as_ref().map(|c| c.to_string());
                }
            }
            _ => {}
        }
    }
    shape
}

/// The shape of `nft -j list table` output; None when it holds something `ruleset` never
/// makes (a set, a map, a chain that does not parse): then it is not in sync either.
fn listed_shape(objects: &[serde_json::Value]) -> Option<Shape> {
    let mut shape = Shape {
        chains: BTreeMap::new(),
        first_comment: None,
    };
    // nft lists every chain first, then the rules chain by chain, in order; the table's first
    // rule is the first rule of the first chain that has one.
    let mut chain_order = Vec::new();
    let mut first_comments: BTreeMap<String, Option<String>> = BTreeMap::new();
    for object in objects {
        let (kind, value) = object.as_object()?.iter().next()?;
        match kind.as_str() {
            "metainfo" | "table" => {}
            "chain" => {
                let chain: Chain<'_> = serde_json::from_value(value.clone()).ok()?;
                chain_order.push(chain.name.to_string());
                shape
                    .chains
                    .insert(chain.name.to_string(), ChainShape::of(&chain));
            }
            "rule" => {
                let chain = value.get("chain")?.as_str()?;
                shape.chains.get_mut(chain)?.rules += 1;
                first_comments.entry(chain.to_string()).or_insert_with(|| {
                    value
                        .get("comment")
                        .and_then(|c| c.as_str())
                        .map(str::to_string)
                });
            }
            _ => return None,
        }
    }
    shape.first_comment = chain_order
        .iter()
        .find_map(|name| first_comments.remove(name))
        .flatten();
    Some(shape)
}

/// The transaction for `input`, with `fingerprint` as the comment of the table's first rule.
fn build(input: &RulesInput, fingerprint: &str) -> Nftables<'static> {
    let t = input.table.as_str();
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table_obj(t)));
    batch.delete(NfListObject::Table(table_obj(t)));
    batch.add(NfListObject::Table(table_obj(t)));

    // Chains first (a jump needs its target), in the order `nft list` will show them.
    let chains = [
        base_chain(
            t,
            PREROUTING,
            NfChainType::NAT,
            NfHook::Prerouting,
            PRIO_DSTNAT,
        ),
        base_chain(t, OUTPUT, NfChainType::NAT, NfHook::Output, PRIO_DSTNAT),
        Chain {
            family: NfFamily::IP,
            table: owned(t),
            name: owned(PORTS),
            ..Chain::default()
        },
        base_chain(
            t,
            POSTROUTING,
            NfChainType::NAT,
            NfHook::Postrouting,
            PRIO_SRCNAT,
        ),
        base_chain(
            t,
            FORWARD,
            NfChainType::Filter,
            NfHook::Forward,
            PRIO_FILTER,
        ),
        base_chain(t, INPUT, NfChainType::Filter, NfHook::Input, PRIO_FILTER),
    ];
    for chain in chains {
        batch.add(NfListObject::Chain(chain));
    }

    let mut rules = Vec::new();
    let mut rule = |chain: &'static str, expr: Vec<Statement<'static>>, comment: &str| {
        rules.push(Rule {
            family: NfFamily::IP,
            table: owned(t),
            chain: owned(chain),
            expr: Cow::Owned(expr),
            handle: None,
            index: None,
            comment: (!comment.is_empty()).then(|| owned(truncate(comment, COMMENT_MAX))),
        });
    };

    // Only traffic for one of the host's own addresses is a published port; the host itself
    // (output) counts too, so `curl 127.0.0.1:PORT` on the host works.
    let to_ports = || {
        vec![
            eq(fib_daddr_type(), string("local")),
            Statement::Jump(JumpTarget {
                target: owned(PORTS),
            }),
        ]
    };
    // The table's first rule: it always exists, whatever the input. From outside, 127.0.0.0/8
    // is never a published port: prerouting runs before the kernel's own martian check, so a
    // neighbour routing 127.0.0.1 to this host would otherwise reach ports published on
    // loopback only.
    let mut from_outside = vec![neq(payload("ip", "daddr"), prefix(loopback()))];
    from_outside.extend(to_ports());
    rule(PREROUTING, from_outside, fingerprint);
    rule(OUTPUT, to_ports(), "published ports, from the host itself");

    for f in &input.forwards {
        let proto = f.protocol.to_string();
        let mut expr = Vec::new();
        if let Some(ip) = f.host_ip {
            expr.push(eq(payload("ip", "daddr"), string(ip.to_string())));
        }
        expr.push(eq(payload(proto, "dport"), number(f.host_port)));
        expr.push(Statement::DNAT(Some(NAT {
            addr: Some(string(f.to.to_string())),
            family: None,
            port: Some(number(f.to_port)),
            flags: None,
        })));
        rule(PORTS, expr, &f.container);
    }

    for b in &input.bridges {
        let br = b.bridge.as_str();
        // The host reaching a published port through 127.0.0.1: after the DNAT the packet
        // leaves through the bridge, where a loopback source cannot be answered.
        rule(
            POSTROUTING,
            vec![
                eq(meta(MetaKey::Oifname), string(br)),
                eq(payload("ip", "saddr"), prefix(loopback())),
                masquerade(),
            ],
            &format!("{br}: host to a published port via 127.0.0.1"),
        );
        // Hairpin: a container reaching a published port of a container on its own bridge.
        // Without it the answer goes straight back over the bridge, from an address the
        // client never talked to.
        rule(
            POSTROUTING,
            vec![
                eq(meta(MetaKey::Oifname), string(br)),
                eq(payload("ip", "saddr"), prefix(b.subnet)),
                ct_status_dnat(),
                masquerade(),
            ],
            &format!("{br}: hairpin to a published port"),
        );
        if !b.internal {
            rule(
                POSTROUTING,
                vec![
                    eq(payload("ip", "saddr"), prefix(b.subnet)),
                    neq(meta(MetaKey::Oifname), string(br)),
                    masquerade(),
                ],
                &format!("{br}: outbound NAT"),
            );
        }
    }

    // Internal networks first: not even a published port (reached through the bridge's own
    // gateway address) lets their traffic out.
    for b in input.bridges.iter().filter(|b| b.internal) {
        let br = b.bridge.as_str();
        rule(
            FORWARD,
            vec![
                eq(meta(MetaKey::Iifname), string(br)),
                neq(meta(MetaKey::Oifname), string(br)),
                Statement::Drop(None),
            ],
            &format!("{br} is internal: nothing leaves it"),
        );
        rule(
            FORWARD,
            vec![
                eq(meta(MetaKey::Oifname), string(br)),
                neq(meta(MetaKey::Iifname), string(br)),
                Statement::Drop(None),
            ],
            &format!("{br} is internal: nothing enters it"),
        );
    }
    rule(
        FORWARD,
        vec![ct_status_dnat(), Statement::Accept(None)],
        "published ports are reachable from every network",
    );
    // Nothing opens a connection into a network from outside its bridge but through a
    // published port: not a neighbour routing the subnet to this host, not another of
    // berth's networks, not a network of another state root (which has the same rule).
    for b in &input.bridges {
        let br = b.bridge.as_str();
        rule(
            FORWARD,
            vec![
                eq(meta(MetaKey::Oifname), string(br)),
                neq(meta(MetaKey::Iifname), string(br)),
                ct_state_not_established(),
                Statement::Drop(None),
            ],
            &format!("{br}: only published ports and replies enter it"),
        );
    }

    // route_localnet (set on the bridges for the 127.0.0.1 case) would also let a container
    // reach the host's 127.0.0.1 services by sending to 127.x itself (CVE-2020-8558). Only
    // connections the container opens are dropped: the replies to the host's own 127.0.0.1
    // connections into a container arrive here too, un-NATed back to 127.0.0.1.
    let bridges: Vec<&str> = input.bridges.iter().map(|b| b.bridge.as_str()).collect();
    if !bridges.is_empty() {
        rule(
            INPUT,
            vec![
                eq(meta(MetaKey::Iifname), one_or_set(&bridges)),
                eq(payload("ip", "daddr"), prefix(loopback())),
                ct_state_not_established(),
                Statement::Drop(None),
            ],
            "containers cannot reach the host's 127.0.0.0/8",
        );
    }

    for r in rules {
        batch.add(NfListObject::Rule(r));
    }
    batch.to_nftables()
}

fn owned(s: impl Into<String>) -> Cow<'static, str> {
    Cow::Owned(s.into())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn table_obj(name: &str) -> Table<'static> {
    Table {
        family: NfFamily::IP,
        name: owned(name),
        handle: None,
    }
}

fn base_chain(
    table: &str,
    name: &str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: owned(table),
        name: owned(name),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

fn string(s: impl Into<String>) -> Expression<'static> {
    Expression::String(owned(s))
}

fn number(n: u16) -> Expression<'static> {
    Expression::Number(u32::from(n))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: impl Into<String>, field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: owned(protocol),
            field: owned(field),
        },
    )))
}

fn fib_daddr_type() -> Expression<'static> {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: [FibFlag::Daddr].into_iter().collect(),
    }))
}

fn loopback() -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(string(net.network().to_string())),
        len: u32::from(net.prefix_len()),
    }))
}

/// One name as itself, several as an anonymous set (`{ "a", "b" }`).
fn one_or_set(names: &[&str]) -> Expression<'static> {
    match names {
        [one] => string(*one),
        _ => Expression::Named(NamedExpression::Set(
            names.iter().map(|n| SetItem::Element(string(*n))).collect(),
        )),
    }
}

fn ct_status_dnat() -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::CT(CT {
            key: owned("status"),
            family: None,
            dir: None,
        })),
        right: string("dnat"),
        op: Operator::IN,
    })
}

/// `ct state { new, invalid, untracked }`: anything but a reply or a related packet.
fn ct_state_not_established() -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::CT(CT {
            key: owned("state"),
            family: None,
            dir: None,
        })),
        right: Expression::Named(NamedExpression::Set(
            ["new", "invalid", "untracked"]
                .into_iter()
                .map(|s| SetItem::Element(string(s)))
                .collect(),
        )),
        op: Operator::IN,
    })
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(None)
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn neq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::NEQ,
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use serde_json::json;

    use super::*;

    fn bridge(name: &str, subnet: &str, internal: bool) -> BridgeRules {
        BridgeRules {
            bridge: name.to_string(),
            subnet: subnet.parse().expect("subnet"),
            internal,
        }
    }

    fn forward(
        host_ip: Option<&str>,
        host_port: u16,
        protocol: Protocol,
        to: &str,
        to_port: u16,
        container: &str,
    ) -> Forward {
        Forward {
            host_ip: host_ip.map(|ip| ip.parse().expect("host ip")),
            host_port,
            protocol,
            to: to.parse().expect("to"),
            to_port,
            container: container.to_string(),
        }
    }

    /// Two bridges (one internal), forwards with and without a host address, tcp and udp;
    /// sorted as the caller sorts.
    fn realistic(table: &str) -> RulesInput {
        let mut forwards = vec![
            forward(None, 8080, Protocol::Tcp, "10.88.0.2", 80, "web"),
            forward(
                Some("127.0.0.1"),
                5432,
                Protocol::Tcp,
                "10.89.0.2",
                5432,
                "db",
            ),
            forward(
                Some("192.0.2.10"),
                53,
                Protocol::Udp,
                "10.88.0.3",
                53,
                "dns",
            ),
        ];
        forwards.sort();
        RulesInput {
            table: table.to_string(),
            bridges: vec![
                bridge("berth-back", "10.89.0.0/24", true),
                bridge("berth-front", "10.88.0.0/24", false),
            ],
            forwards,
        }
    }

    fn json(input: &RulesInput) -> serde_json::Value {
        serde_json::to_value(ruleset(input)).expect("serializes")
    }

    /// `(command, object kind)` of every entry of the transaction, and the rules per chain.
    type Summary = (
        Vec<(String, String)>,
        BTreeMap<String, Vec<serde_json::Value>>,
    );

    fn summary(input: &RulesInput) -> Summary {
        let v = json(input);
        let mut commands = Vec::new();
        let mut rules: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for entry in v["nftables"].as_array().expect("array") {
            let (cmd, inner) = entry
                .as_object()
                .expect("object")
                .iter()
                .next()
                .expect("cmd");
            let (kind, obj) = inner
                .as_object()
                .expect("object")
                .iter()
                .next()
                .expect("kind");
            commands.push((cmd.clone(), kind.clone()));
            match kind.as_str() {
                "chain" => {
                    rules
                        .entry(obj["name"].as_str().expect("name").to_string())
                        .or_default();
                }
                "rule" => rules
                    .get_mut(obj["chain"].as_str().expect("chain"))
                    .expect("rule after its chain")
                    .push(obj.clone()),
                _ => {}
            }
        }
        (commands, rules)
    }

    fn counts(rules: &BTreeMap<String, Vec<serde_json::Value>>) -> BTreeMap<&str, usize> {
        rules.iter().map(|(k, v)| (k.as_str(), v.len())).collect()
    }

    #[test]
    fn realistic_ruleset_has_the_expected_chains_and_rules() {
        let input = realistic("berth");
        let (commands, rules) = summary(&input);
        let pair = |c: &str, k: &str| (c.to_string(), k.to_string());
        assert_eq!(
            commands[..3],
            [
                pair("add", "table"),
                pair("delete", "table"),
                pair("add", "table")
            ]
        );
        assert_eq!(
            counts(&rules),
            BTreeMap::from([
                ("prerouting", 1),
                ("output", 1),
                ("ports", 3),
                // loopback + hairpin for both, outbound NAT for the non-internal one
                ("postrouting", 5),
                // dnat accept, 2 internal, 2 isolation
                ("forward", 5),
                ("input", 1),
            ])
        );

        let text = json(&input).to_string();
        assert!(text.contains(r#""table":"berth""#));
        assert!(!text.contains(r#""table":"other""#));

        // The fingerprint is on the table's first rule.
        assert_eq!(
            rules["prerouting"][0]["comment"],
            format!("berth {}", fingerprint(&input))
        );
        // A forward without host_ip matches no address; one with it does.
        let ports = &rules["ports"];
        let exprs = |c: &str| -> Vec<serde_json::Value> {
            let rule = ports.iter().find(|r| r["comment"] == c).expect("rule");
            rule["expr"].as_array().expect("expr").clone()
        };
        let matching = |left: serde_json::Value, right: serde_json::Value| json!({"match": {"op": "==", "left": left, "right": right}});
        let daddr = json!({"payload": {"protocol": "ip", "field": "daddr"}});
        let dport = |p: &str| json!({"payload": {"protocol": p, "field": "dport"}});
        assert_eq!(
            exprs("web"),
            [
                matching(dport("tcp"), json!(8080)),
                json!({"dnat": {"addr": "10.88.0.2", "port": 80}}),
            ]
        );
        assert_eq!(
            exprs("dns"),
            [
                matching(daddr.clone(), json!("192.0.2.10")),
                matching(dport("udp"), json!(53)),
                json!({"dnat": {"addr": "10.88.0.3", "port": 53}}),
            ]
        );
        assert_eq!(exprs("db")[0], matching(daddr, json!("127.0.0.1")));

        // The internal bridge gets no outbound NAT.
        let post = rules["postrouting"]
            .iter()
            .map(|r| r["comment"].as_str().expect("comment").to_string())
            .collect::<Vec<_>>();
        assert!(post.contains(&"berth-front: outbound NAT".to_string()));
        assert!(!post.contains(&"berth-back: outbound NAT".to_string()));
        // The internal bridge's drops come first (a published port must not let its traffic
        // out), then published ports, then the per-bridge inbound drops.
        let forward: Vec<String> = rules["forward"]
            .iter()
            .map(|r| r["comment"].as_str().expect("comment").to_string())
            .collect();
        assert_eq!(
            forward,
            [
                "berth-back is internal: nothing leaves it",
                "berth-back is internal: nothing enters it",
                "published ports are reachable from every network",
                "berth-back: only published ports and replies enter it",
                "berth-front: only published ports and replies enter it",
            ]
        );
        assert_eq!(
            rules["forward"][2]["expr"],
            json!([
                {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}},
                {"accept": null},
            ])
        );
        // Loopback is never a published port from outside the host.
        assert_eq!(
            rules["prerouting"][0]["expr"][0],
            json!({"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}})
        );
        // Two bridges: the input rule names both, as a set.
        assert_eq!(
            rules["input"][0]["expr"][0]["match"]["right"],
            json!({"set": ["berth-back", "berth-front"]})
        );
    }

    #[test]
    fn empty_input_still_makes_a_table_with_the_fingerprint() {
        let input = RulesInput {
            table: "berth".to_string(),
            ..RulesInput::default()
        };
        let (_, rules) = summary(&input);
        assert_eq!(
            counts(&rules),
            BTreeMap::from([
                ("prerouting", 1),
                ("output", 1),
                ("ports", 0),
                ("postrouting", 0),
                ("forward", 1),
                ("input", 0),
            ])
        );
        assert_eq!(
            rules["prerouting"][0]["comment"],
            format!("berth {}", fingerprint(&input))
        );
    }

    #[test]
    fn one_bridge_accepts_only_published_ports_and_replies() {
        let input = RulesInput {
            table: "berth".to_string(),
            bridges: vec![bridge("berth0", "10.88.0.0/24", false)],
            forwards: vec![],
        };
        let (_, rules) = summary(&input);
        assert_eq!(rules["forward"].len(), 2);
        assert_eq!(
            rules["forward"][1]["comment"],
            "berth0: only published ports and replies enter it"
        );
        assert_eq!(rules["postrouting"].len(), 3);
        // One bridge is written as itself, not as a one-element set.
        assert_eq!(rules["input"][0]["expr"][0]["match"]["right"], "berth0");
    }

    #[test]
    fn fingerprint_changes_with_every_field_and_only_then() {
        let base = realistic("berth");
        let fp = fingerprint(&base);
        assert_eq!(fp.len(), 16);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(fingerprint(&base.clone()), fp);
        assert_eq!(fingerprint(&realistic("berth")), fp);

        let mut variants: Vec<(&str, RulesInput)> = Vec::new();
        let mut v = |what, f: &dyn Fn(&mut RulesInput)| {
            let mut input = base.clone();
            f(&mut input);
            variants.push((what, input));
        };
        v("table", &|i| i.table = "berth-1234".into());
        v("bridge name", &|i| {
            i.bridges[0].bridge = "berth-other".into()
        });
        v("subnet", &|i| {
            i.bridges[0].subnet = "10.90.0.0/24".parse().expect("net")
        });
        v("subnet length", &|i| {
            i.bridges[1].subnet = "10.88.0.0/16".parse().expect("net")
        });
        v("internal on", &|i| i.bridges[1].internal = true);
        v("internal off", &|i| i.bridges[0].internal = false);
        v("bridge added", &|i| {
            i.bridges.push(bridge("berth-z", "10.91.0.0/24", false))
        });
        v("bridge removed", &|i| {
            i.bridges.pop();
        });
        v("host_ip set", &|i| {
            i.forwards[0].host_ip = Some("192.0.2.1".parse().expect("ip"))
        });
        v("host_ip cleared", &|i| i.forwards[1].host_ip = None);
        v("host_ip changed", &|i| {
            i.forwards[2].host_ip = Some("127.0.0.2".parse().expect("ip"))
        });
        v("host_port", &|i| i.forwards[0].host_port += 1);
        v("protocol", &|i| i.forwards[0].protocol = Protocol::Udp);
        v("to", &|i| {
            i.forwards[0].to = "10.89.0.9".parse().expect("ip")
        });
        v("to_port", &|i| i.forwards[0].to_port += 1);
        v("container", &|i| i.forwards[0].container = "other".into());
        v("forward added", &|i| {
            i.forwards
                .push(forward(None, 9, Protocol::Udp, "10.88.0.9", 9, "x"))
        });
        v("forward removed", &|i| {
            i.forwards.pop();
        });
        v("no forwards", &|i| i.forwards.clear());
        v("no bridges", &|i| i.bridges.clear());

        let mut seen = BTreeMap::from([(fp.clone(), "base")]);
        for (what, input) in &variants {
            assert_ne!(input, &base, "{what}: the variant must differ");
            let other = fingerprint(input);
            if let Some(before) = seen.insert(other, what) {
                panic!("{what}: same fingerprint as {before}");
            }
        }
    }

    /// The order of the forwards is the order of the rules, so it is part of the fingerprint;
    /// the caller sorts (as `RulesInput` says), and then the order they came in does not count.
    #[test]
    fn forwards_order_does_not_count_once_sorted() {
        let a = realistic("berth");
        let mut b = a.clone();
        b.forwards.reverse();
        assert_ne!(a.forwards, b.forwards);
        assert_ne!(
            fingerprint(&a),
            fingerprint(&b),
            "unsorted input is not canonical"
        );

        let mut sorted = b.clone();
        sorted.forwards.sort();
        assert_eq!(fingerprint(&a), fingerprint(&sorted));
        assert_eq!(ruleset(&a), ruleset(&sorted));
    }

    #[test]
    fn long_comments_are_cut_to_what_nft_takes() {
        let mut input = realistic("berth");
        input.forwards[0].container = "é".repeat(100);
        let (_, rules) = summary(&input);
        let comment = rules["ports"][0]["comment"].as_str().expect("comment");
        assert!(comment.len() <= COMMENT_MAX);
        assert!(comment.starts_with("éé"));
    }

    #[test]
    fn the_expected_shape_is_what_the_listing_shape_reads() {
        let input = realistic("berth");
        let expected = shape_of(&ruleset(&input));
        assert_eq!(expected.chains.len(), 6);
        assert_eq!(
            expected.first_comment,
            Some(format!("berth {}", fingerprint(&input)))
        );
        assert_eq!(expected.chains["forward"].rules, 5);
        assert_eq!(
            expected.chains["forward"].policy,
            Some(NfChainPolicy::Accept)
        );
        assert_eq!(expected.chains["ports"].hook, None);
    }

    // ---- the kernel ----

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Runs `nft ARGS` (from the calling thread, so in its network namespace); its stdout.
    fn nft(args: &[&str]) -> String {
        let out = Command::new("nft").args(args).output().expect("run nft");
        assert!(
            out.status.success(),
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// `nft -c -j -f -` with the transaction for `input`: nft's own validity check.
    fn nft_check(input: &RulesInput) {
        use std::io::Write;
        let mut child = Command::new("nft")
            .args(["-c", "-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run nft -c");
        let payload = serde_json::to_vec(&ruleset(input)).expect("serializes");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&payload)
            .expect("write to nft");
        let out = child.wait_with_output().expect("wait for nft");
        assert!(
            out.status.success(),
            "nft -c: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `f` on a thread of its own in a fresh network namespace: `nft` children (the
    /// helper spawns them with `std::process::Command`) inherit the thread's namespace, so the
    /// host's ruleset is never touched. The namespace goes away with the thread.
    fn in_private_netns(f: impl FnOnce() + Send + 'static) {
        assert!(
            is_root(),
            "needs root: run the tests as root (scripts/test)"
        );
        let thread = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(NEWNET)");
            f()
        });
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }

    #[test]
    fn kernel_apply_check_and_remove_in_a_private_netns() {
        in_private_netns(|| {
            let input = realistic("berth-rules-test");
            let t = input.table.as_str();
            assert!(!in_sync(&input).expect("in_sync, absent"), "absent table");
            nft_check(&input);
            remove_table(t).expect("remove an absent table");

            apply(&input).expect("apply");
            assert!(in_sync(&input).expect("in_sync"));
            let listed = nft(&["list", "table", "ip", t]);
            eprintln!("{listed}");
            for expected in [
                "dnat to 10.88.0.2:80",
                "ip daddr 192.0.2.10 udp dport 53 dnat to 10.88.0.3:53",
                "ct status dnat accept",
                "iifname { \"berth-back\", \"berth-front\" } ip daddr 127.0.0.0/8 ct state { invalid, new, untracked } drop",
                &format!("comment \"berth {}\"", fingerprint(&input)),
            ] {
                assert!(
                    listed.contains(expected),
                    "{expected:?} missing from:\n{listed}"
                );
            }

            // Applying again replaces, it does not add.
            apply(&input).expect("apply again");
            assert!(in_sync(&input).expect("in_sync"));
            assert_eq!(nft(&["list", "table", "ip", t]), listed);

            // Another input is not what the kernel holds.
            let mut other = input.clone();
            other.forwards[0].to_port += 1;
            assert!(!in_sync(&other).expect("in_sync, other input"));

            nft(&["flush", "chain", "ip", t, "forward"]);
            assert!(!in_sync(&input).expect("in_sync"), "flushed chain");
            apply(&input).expect("apply after flush");
            assert!(in_sync(&input).expect("in_sync"));

            nft(&["flush", "chain", "ip", t, "prerouting"]);
            assert!(!in_sync(&input).expect("in_sync"), "fingerprint rule gone");
            apply(&input).expect("apply");

            nft(&["add", "rule", "ip", t, "ports", "tcp", "dport", "1", "drop"]);
            assert!(!in_sync(&input).expect("in_sync"), "added rule");
            apply(&input).expect("apply");

            nft(&["chain", "ip", t, "forward", "{ policy drop ; }"]);
            assert!(!in_sync(&input).expect("in_sync"), "policy changed");
            apply(&input).expect("apply");

            nft(&["add", "chain", "ip", t, "extra"]);
            assert!(!in_sync(&input).expect("in_sync"), "extra chain");
            apply(&input).expect("apply");

            nft(&["flush", "table", "ip", t]);
            assert!(!in_sync(&input).expect("in_sync"), "flushed table");
            apply(&input).expect("apply");
            assert!(in_sync(&input).expect("in_sync"));

            nft(&["delete", "table", "ip", t]);
            assert!(!in_sync(&input).expect("in_sync"), "deleted table");

            apply(&input).expect("apply");
            remove_table(t).expect("remove");
            remove_table(t).expect("remove again");
            assert!(!in_sync(&input).expect("in_sync"), "removed table");

            // No bridges, no forwards: still a valid table, still checkable.
            let empty = RulesInput {
                table: t.to_string(),
                ..RulesInput::default()
            };
            nft_check(&empty);
            apply(&empty).expect("apply an empty input");
            assert!(in_sync(&empty).expect("in_sync, empty"));
            assert!(!in_sync(&input).expect("in_sync, other"));
            remove_table(t).expect("remove");
        });
    }
}
