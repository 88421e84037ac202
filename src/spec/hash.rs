//! Canonical hashes of effective specs: sha256 over a canonical JSON encoding of the resolved
//! model (struct fields in declaration order, maps sorted, lists normalised by the resolver,
//! origins left out). Key order, formatting, comments, file names and writing a default
//! explicitly therefore never change a hash; any change to what would run does.

use crate::sha256::Sha256;
use serde::Serialize;
use std::path::PathBuf;

use super::model::{Container, Desired, FileKind, Image, Network, Volume};
use super::name::Name;

/// Bumped when the meaning of the encoding changes, so old records are not mistaken for equal.
const ENCODING: &str = "berth.spec.v1";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SpecHash(String);

impl SpecHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SpecHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(
        "the secret `{name}` has no keyed digest: secrets must be keyed with the state root's key before hashing"
    )]
    UnkeyedSecret { name: String },
    #[error("cannot encode the {kind} spec for hashing: {source}")]
    Encode {
        kind: &'static str,
        source: serde_json::Error,
    },
}

fn hash_of<T: Serialize + ?Sized>(kind: &'static str, value: &T) -> Result<SpecHash, HashError> {
    let json = serde_json::to_vec(value).map_err(|source| HashError::Encode { kind, source })?;
    let mut hasher = Sha256::new();
    hasher.update(ENCODING.as_bytes());
    hasher.update(&[0]);
    hasher.update(kind.as_bytes());
    hasher.update(&[0]);
    hasher.update(&json);
    Ok(SpecHash(format!("sha256:{}", hasher.finish_hex())))
}

pub trait SpecHashed: Serialize {
    const KIND: &'static str;
    fn spec_hash(&self) -> Result<SpecHash, HashError> {
        hash_of(Self::KIND, self)
    }
}

impl SpecHashed for Container {
    const KIND: &'static str = "container";
}
impl SpecHashed for Image {
    const KIND: &'static str = "image";
}
impl SpecHashed for Volume {
    const KIND: &'static str = "volume";
}
impl SpecHashed for Network {
    const KIND: &'static str = "network";
}

/// A container's effective hash: its entry, plus the addressing (subnet, gateway) and
/// `internal` flag of the networks it joins, because both are set inside the container when
/// it is plugged in (its address, its default route, which network carries its published
/// ports): a change needs new containers. Labels of networks do not count, nor does the
/// entry's update policy. Otherwise it is the entry's own hash.
pub fn container_hash(desired: &Desired, c: &Container) -> Result<SpecHash, HashError> {
    if let Some(name) = unkeyed(c) {
        return Err(HashError::UnkeyedSecret { name: name.into() });
    }
    // How a container is to be replaced is not part of it: changing `update`, `drain` or
    // `update_timeout` replaces nothing (it applies to the next change).
    let normalized;
    let c = if c.update == super::model::UpdatePolicy::default() {
        c
    } else {
        normalized = Container {
            update: super::model::UpdatePolicy::default(),
            ..c.clone()
        };
        &normalized
    };
    let super::model::ContainerNetwork::Bridge(attachments) = &c.network else {
        return c.spec_hash();
    };
    /// What of a network is set inside a container joining it.
    #[derive(Serialize)]
    struct Plugged<'a> {
        network: &'a str,
        subnet: Option<String>,
        gateway: Option<String>,
        internal: Option<bool>,
    }
    let addressing: Vec<Plugged> = attachments
        .iter()
        .map(|a| {
            let net = desired.networks.get(&a.network);
            Plugged {
                network: a.network.as_str(),
                subnet: net.map(|n| n.subnet.to_string()),
                gateway: net.map(|n| n.gateway.to_string()),
                internal: net.map(|n| n.internal),
            }
        })
        .collect();
    hash_of(Container::KIND, &(c, addressing))
}

/// Put every secret a container uses into its `inputs`, as an HMAC-SHA256 of the secret's
/// name and value under `key` (the state root's). Needed before any container's hash.
pub fn key_secrets(desired: &mut Desired, key: &[u8]) {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let secrets = &desired.secrets;
    for c in desired.containers.values_mut() {
        let used: Vec<(&Name, PathBuf)> = c
            .files
            .iter()
            .filter(|f| f.kind == FileKind::Secret)
            .map(|f| (&f.name, f.input_key()))
            .chain(c.secret_env.iter().map(|s| (&s.name, s.input_key())))
            .collect();
        let mut keyed = Vec::new();
        for (name, input) in used {
            let Some(secret) = secrets.get(name) else {
                continue;
            };
            let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
            ctx.update(name.as_str().as_bytes());
            ctx.update(&[0]);
            ctx.update(secret.expose());
            let tag = ctx.sign();
            keyed.push((
                input,
                format!("hmac-sha256:{}", crate::sha256::hex(tag.as_ref())),
            ));
        }
        c.inputs.extend(keyed);
    }
}

/// A secret of the container that has not been keyed, if any.
fn unkeyed(c: &Container) -> Option<&str> {
    c.files
        .iter()
        .find(|f| f.kind == FileKind::Secret && !c.inputs.contains_key(&f.input_key()))
        .map(|f| f.name.as_str())
        .or_else(|| {
            c.secret_env
                .iter()
                .find(|s| !c.inputs.contains_key(&s.input_key()))
                .map(|s| s.name.as_str())
        })
}

/// Every resource's hash, keyed "kind/name"; what tests and `validate --json` compare.
pub fn all_hashes(
    desired: &Desired,
) -> Result<std::collections::BTreeMap<String, SpecHash>, HashError> {
    fn add<T: SpecHashed>(
        out: &mut std::collections::BTreeMap<String, SpecHash>,
        items: &std::collections::BTreeMap<Name, T>,
    ) -> Result<(), HashError> {
        for (name, item) in items {
            out.insert(format!("{}/{name}", T::KIND), item.spec_hash()?);
        }
        Ok(())
    }
    let mut out = std::collections::BTreeMap::new();
    add(&mut out, &desired.images)?;
    add(&mut out, &desired.containers)?;
    add(&mut out, &desired.volumes)?;
    add(&mut out, &desired.networks)?;
    Ok(out)
}
