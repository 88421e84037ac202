//! The planner: a pure function from the desired state, the observed state and the
//! reconciler's memory of recent failures to an ordered list of steps. No I/O, no clock
//! (the caller passes `now`), so every decision is covered by table tests.
//!
//! Per `[container.NAME]`, the container that *is* the entry is the newest one made from
//! the same effective spec (spec hash and image digest): every other container of that name
//! is stale and goes. That single rule makes every interrupted sequence converge: a crash
//! after a replacement's new container was created but before the old one was removed
//! leaves two containers of one name, and the next plan removes the stale one and starts
//! the current one. No container is ever created twice for one spec, because a created
//! container (its record written before anything runs) is the intent.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::observe::{Health, Observed, ObservedContainer, Phase};
use crate::spec::hash::SpecHash;
use crate::spec::model::{
    Backoff, Condition, Container, Desired, PullPolicy, RestartPolicy, UpdateStrategy,
};
use crate::spec::name::Name;
use crate::state::network::PortHold;
use crate::state::record::ExitRecord;

/// Failures of earlier passes, by resource key (`Action::key`): retried with backoff.
pub(crate) type FailureBook = BTreeMap<String, Failure>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Consecutive failed attempts.
    pub count: u32,
    pub last_at_ms: u64,
    pub error: String,
    /// The entry's spec hash when it failed: a changed entry is tried at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
}

/// What the planner is given besides the two states.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs<'a> {
    pub desired: &'a Desired,
    /// Every desired file loaded without a problem.
    pub desired_complete: bool,
    pub observed: &'a Observed,
    pub failures: &'a FailureBook,
    pub now_ms: u64,
    /// Only some entries were asked for (`--target`): nothing outside them is touched.
    pub targeted: bool,
    /// Another reason not to prune on this pass (e.g. an empty directory).
    pub prune_hold: Option<&'a str>,
    /// Since when (ms) each undescribed container name has been missing from the desired
    /// state; with `prune_grace_ms`, a name must stay missing that long before its containers
    /// go (a file rewritten in place must not prune what it is about to describe again).
    pub missing_since: &'a BTreeMap<String, u64>,
    pub prune_grace_ms: u64,
    /// The entries' spec hashes, if the caller has them (`entry_hashes`); else computed.
    pub hashes: Option<&'a EntryHashes>,
    /// The containers another entry waits on to complete, in the whole desired state
    /// (`jobs_of`, before `--target` restricts it: a targeted job is still waited for and
    /// its failure still reported).
    pub jobs: &'a BTreeSet<Name>,
}

/// The containers some entry of `desired` depends on with `completed`.
pub(crate) fn jobs_of(desired: &Desired) -> BTreeSet<Name> {
    desired
        .containers
        .values()
        .flat_map(|c| &c.depends_on)
        .filter(|(_, condition)| **condition == Condition::Completed)
        .map(|(name, _)| name.clone())
        .collect()
}

/// Each container entry's spec hash (or why it has none).
pub(crate) type EntryHashes = BTreeMap<Name, Result<SpecHash, String>>;

/// The spec hash of every container entry of `desired`.
pub(crate) fn entry_hashes(desired: &Desired) -> EntryHashes {
    desired
        .containers
        .iter()
        .map(|(name, c)| {
            (
                name.clone(),
                crate::spec::hash::container_hash(desired, c).map_err(|e| e.to_string()),
            )
        })
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Resources that need something later, not now (backoff, a dependency).
    pub waits: Vec<Wait>,
    /// Undescribed resources that stay, and why.
    pub kept: Vec<Kept>,
    /// Entries that cannot go on until the desired state changes: a failed one-shot job
    /// (`restart = "never"`) and the containers waiting for it to complete. Nothing wakes
    /// the agent for them; a change of the job's spec does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<Kept>,
    /// Why nothing is pruned on this pass, if so.
    pub prune_blocked: Option<String>,
    /// When the earliest wait ends: the agent plans again then.
    pub wake_at_ms: Option<u64>,
    /// Entries in the middle of a start-first update (new container on standby, or old one
    /// draining): `apply` carries on until they are done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updating: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Step {
    pub action: Action,
    /// Indices of the steps that must have succeeded first.
    pub after: Vec<usize>,
    pub reason: String,
    /// For container steps: the spec hash of the entry (recorded with a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Fetch an image into the store.
    Pull {
        image: String,
    },
    CreateVolume {
        name: Name,
    },
    /// Create a network, bring it to its entry in place, or repair its bridge.
    EnsureNetwork {
        name: Name,
    },
    /// Remove a network no longer described and no longer used.
    RemoveNetwork {
        name: String,
    },
    /// Rebuild berth's nftables table from the state (flushed or edited by hand, or a
    /// container that stopped by itself is still forwarded to).
    RepairNetworkRules,
    /// Create and start a container for an entry that has none.
    Run {
        name: Name,
    },
    /// Start a created container.
    Start {
        name: Name,
        id: String,
    },
    /// Start an exited or lost container again, in place, per its restart policy.
    Restart {
        name: Name,
        id: String,
        streak: u32,
    },
    /// Stop-first replacement: create the new container, stop and remove the old ones,
    /// start the new one.
    Replace {
        name: Name,
        old: Vec<String>,
    },
    /// Start-first update, first step: create and start the new container beside the ones
    /// serving the entry's published ports; it takes them over once healthy (`TakeOver`).
    StartFirst {
        name: Name,
        serving: Vec<String>,
    },
    /// Start-first update: switch the published ports to the new, healthy container in one
    /// nftables transaction; the old ones drain, then go.
    TakeOver {
        name: Name,
        id: String,
        from: Vec<String>,
    },
    /// Start-first update that failed (the new container is unhealthy, not healthy in time,
    /// or ended): remove the new container; the old one never stopped serving. Reported as
    /// a failure, so the same spec waits out its backoff before it is tried again.
    AbortUpdate {
        name: Name,
        id: String,
        why: String,
    },
    /// Stop a container its health check found unhealthy; its restart policy brings it back.
    StopUnhealthy {
        name: Name,
        id: String,
    },
    /// Stop a running container whose owner (the container whose namespaces it joins)
    /// started again or stopped, and start it again in place, in the owner's current
    /// namespaces. Not a failure of its own: its backoff streak stays.
    Rejoin {
        name: Name,
        id: String,
        streak: u32,
    },
    /// Kill what is left of a lost container that is not to be restarted.
    Stop {
        name: Name,
        id: String,
    },
    /// Stop and remove a container (stale, or no longer described).
    Remove {
        name: String,
        id: String,
    },
    /// Kill what runs of a container whose state directory was deleted by hand (its
    /// cgroup's processes), and remove its cgroup and engine state: nothing supervises or
    /// records it, and its entry's new container must not run beside it.
    RemoveOrphan {
        id: String,
    },
    /// Remove images no desired entry and no remaining container uses.
    PruneImages {
        images: Vec<String>,
    },
}

impl Action {
    /// Whether succeeding ends the resource's failure streak. Starting a start-first update's
    /// new container proves nothing yet: only taking over does, so an update that keeps
    /// failing keeps backing off.
    pub(crate) fn settles(&self) -> bool {
        !matches!(self, Action::StartFirst { .. })
    }

    /// The resource an action works on: failures are remembered and retried per key.
    pub(crate) fn key(&self) -> String {
        match self {
            Action::Pull { image } => format!("image/{image}"),
            Action::CreateVolume { name } => format!("volume/{name}"),
            Action::EnsureNetwork { name } => format!("network/{name}"),
            Action::RemoveNetwork { name } => format!("network/{name}"),
            Action::RepairNetworkRules => "network-rules".into(),
            Action::Run { name }
            | Action::Start { name, .. }
            | Action::Restart { name, .. }
            | Action::Replace { name, .. }
            | Action::StartFirst { name, .. }
            | Action::TakeOver { name, .. }
            | Action::AbortUpdate { name, .. }
            | Action::StopUnhealthy { name, .. }
            | Action::Rejoin { name, .. }
            | Action::Stop { name, .. } => format!("container/{name}"),
            Action::Remove { id, .. } | Action::RemoveOrphan { id } => {
                format!("container-id/{id}")
            }
            Action::PruneImages { .. } => "prune/images".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Wait {
    /// `Action::key` of the resource.
    pub key: String,
    pub reason: String,
    /// When it is due, if it waits for time rather than for another resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Kept {
    pub key: String,
    pub reason: String,
}

/// Backoff for failed steps of resources without a policy of their own (images, volumes).
const DEFAULT_BACKOFF: Backoff = Backoff {
    initial: crate::spec::duration::Duration::from_secs(1),
    max: crate::spec::duration::Duration::from_secs(300),
    reset_after: crate::spec::duration::Duration::from_secs(600),
};

/// `initial · 2^(n-1)`, at most `max`; `n` = 0 or 1 gives `initial`.
pub(crate) fn backoff_delay_ms(backoff: &Backoff, n: u32) -> u64 {
    let initial = crate::units::millis(backoff.initial.0);
    let max = crate::units::millis(backoff.max.0);
    let exp = n.saturating_sub(1).min(40);
    initial
        .saturating_mul(1u64 << exp)
        .min(max)
        .max(initial.min(max))
}

pub(crate) fn plan(inputs: Inputs) -> Plan {
    Planner::new(inputs).run()
}

struct Planner<'a> {
    inputs: Inputs<'a>,
    plan: Plan,
    /// Step index that pulls an image, by source.
    pulls: BTreeMap<String, usize>,
    volume_steps: BTreeMap<Name, usize>,
    network_steps: BTreeMap<Name, usize>,
    /// Step index that brings a container (by entry name) to running in this plan.
    starts: BTreeMap<Name, usize>,
    /// Containers that stay (their images must stay too).
    remaining_images: BTreeSet<String>,
    removals: Vec<usize>,
    /// Orphans by entry name (`orphan_name`): the steps that kill them in this plan, which
    /// the entry's starts come after, and those whose removal waits out a failure backoff,
    /// which hold the entry back (nothing of it starts beside a live orphan).
    orphan_steps: BTreeMap<String, Vec<usize>>,
    orphans_waiting: BTreeMap<String, Vec<String>>,
    /// Each entry's spec hash, computed once per plan (or given).
    hashes: std::borrow::Cow<'a, EntryHashes>,
}

impl<'a> Planner<'a> {
    fn new(inputs: Inputs<'a>) -> Self {
        let hashes = match inputs.hashes {
            Some(h) => std::borrow::Cow::Borrowed(h),
            None => std::borrow::Cow::Owned(entry_hashes(inputs.desired)),
        };
        Planner {
            hashes,
            inputs,
            plan: Plan::default(),
            pulls: BTreeMap::new(),
            volume_steps: BTreeMap::new(),
            network_steps: BTreeMap::new(),
            starts: BTreeMap::new(),
            remaining_images: BTreeSet::new(),
            removals: Vec::new(),
            orphan_steps: BTreeMap::new(),
            orphans_waiting: BTreeMap::new(),
        }
    }

    fn run(mut self) -> Plan {
        let Inputs {
            desired_complete,
            observed,
            ..
        } = self.inputs;
        self.plan.prune_blocked = if self.inputs.targeted {
            Some("only the targeted entries are applied; nothing else is touched".into())
        } else if let Some(hold) = self.inputs.prune_hold {
            Some(hold.to_string())
        } else if !desired_complete {
            Some("the desired state has problems: a partial view must not delete anything".into())
        } else if !observed.problems.is_empty() {
            Some(format!(
                "the actual state could not be read completely ({})",
                observed.problems.join("; ")
            ))
        } else {
            None
        };
        self.images();
        self.volumes();
        self.networks();
        // Before the entries: a new container comes after the removals of the undescribed
        // ones, whose names, ports or addresses it may be taking over (a rename).
        self.undescribed_containers();
        let undescribed_removals = self.removals.clone();
        for name in self.container_order() {
            self.container(&name, &undescribed_removals);
        }
        self.undescribed_networks();
        self.network_rules();
        self.prune_images();
        self.plan.wake_at_ms = self.plan.waits.iter().filter_map(|w| w.until_ms).min();
        self.plan
    }

    fn push(
        &mut self,
        action: Action,
        after: Vec<usize>,
        reason: impl Into<String>,
    ) -> Option<usize> {
        let key = action.key();
        if let Some(wait) = self.failure_wait(&key, None, None) {
            self.plan.waits.push(wait);
            return None;
        }
        self.plan.steps.push(Step {
            action,
            after,
            reason: reason.into(),
            spec: None,
        });
        Some(self.plan.steps.len() - 1)
    }

    /// A resource whose last attempt failed waits out its backoff before the next one.
    fn failure_wait(
        &self,
        key: &str,
        backoff: Option<&Backoff>,
        spec: Option<&str>,
    ) -> Option<Wait> {
        let failure = self.inputs.failures.get(key)?;
        if spec.is_some() && failure.spec.is_some() && failure.spec.as_deref() != spec {
            // The entry changed since it failed: the change may be the fix.
            return None;
        }
        let backoff = backoff.unwrap_or(&DEFAULT_BACKOFF);
        let until = failure
            .last_at_ms
            .saturating_add(backoff_delay_ms(backoff, failure.count));
        (until > self.inputs.now_ms).then(|| Wait {
            key: key.to_string(),
            reason: format!(
                "failed {} time(s), retrying in {}: {}",
                failure.count,
                human_ms(until - self.inputs.now_ms),
                failure.error
            ),
            until_ms: Some(until),
        })
    }

    fn images(&mut self) {
        let desired = self.inputs.desired;
        // Every image an entry or a container names, once.
        let mut wanted: BTreeMap<String, PullPolicy> = BTreeMap::new();
        for image in desired.images.values() {
            wanted.insert(image.source.to_string(), image.pull);
        }
        for c in desired.containers.values() {
            wanted
                .entry(c.image.to_string())
                .or_insert(PullPolicy::Missing);
        }
        for (source, policy) in wanted {
            if self.inputs.observed.images.contains_key(&source) {
                continue;
            }
            if policy == PullPolicy::Never {
                self.plan.waits.push(Wait {
                    key: format!("image/{source}"),
                    reason: "not in the store and its pull policy is \"never\"; load it with `berth pull`".into(),
                    until_ms: None,
                });
                continue;
            }
            if let Some(i) = self.push(
                Action::Pull {
                    image: source.clone(),
                },
                vec![],
                "not in the store",
            ) {
                self.pulls.insert(source, i);
            }
        }
    }

    fn volumes(&mut self) {
        let desired = self.inputs.desired;
        for name in desired.volumes.keys() {
            if self.inputs.observed.volumes.contains(name.as_str()) {
                continue;
            }
            if let Some(i) = self.push(
                Action::CreateVolume { name: name.clone() },
                vec![],
                "described, not present",
            ) {
                self.volume_steps.insert(name.clone(), i);
            }
        }
        for name in &self.inputs.observed.volumes {
            if !desired.volumes.contains_key(name.as_str()) {
                self.plan.kept.push(Kept {
                    key: format!("volume/{name}"),
                    reason: format!(
                        "no longer described; volumes hold data and are never pruned implicitly (`berth volume rm {name}`)"
                    ),
                });
            }
        }
    }

    fn networks(&mut self) {
        let desired = self.inputs.desired;
        let observed = &self.inputs.observed.networks;
        if !observed.readable {
            // Without knowing what exists, every network would look absent.
            for name in desired.networks.keys() {
                self.plan.waits.push(Wait {
                    key: format!("network/{name}"),
                    reason: "the networks' state cannot be read; nothing is done to networks until it can".into(),
                    until_ms: None,
                });
            }
            return;
        }
        for (name, spec) in &desired.networks {
            let hash = match crate::spec::hash::SpecHashed::spec_hash(spec) {
                Ok(h) => h,
                Err(e) => {
                    self.plan.waits.push(Wait {
                        key: format!("network/{name}"),
                        reason: e.to_string(),
                        until_ms: None,
                    });
                    continue;
                }
            };
            let reason = match observed.records.get(name.as_str()) {
                None => "described, not present".to_string(),
                Some(o) if o.spec_hash != hash.as_str() => {
                    "its entry changed; updated in place".to_string()
                }
                Some(o) if !o.bridge_ok => format!(
                    "its bridge {} is missing or not berth's; created again",
                    o.bridge
                ),
                Some(_) => continue,
            };
            if let Some(i) = self.push(Action::EnsureNetwork { name: name.clone() }, vec![], reason)
            {
                self.network_steps.insert(name.clone(), i);
            }
        }
    }

    /// A network no longer described goes once no container holds an address on it; its
    /// holders' removals in this plan come first.
    fn undescribed_networks(&mut self) {
        let observed = &self.inputs.observed.networks;
        for (name, o) in &observed.records {
            if self.inputs.desired.networks.contains_key(name.as_str()) {
                continue;
            }
            let key = format!("network/{name}");
            if let Some(why) = &self.plan.prune_blocked {
                self.plan.kept.push(Kept {
                    key,
                    reason: format!("no longer described; kept because {why}"),
                });
                continue;
            }
            let mut after = Vec::new();
            let mut staying = Vec::new();
            for holder in &o.holders {
                match self
                    .plan
                    .steps
                    .iter()
                    .position(|s| matches!(&s.action, Action::Remove { id, .. } if id == holder))
                {
                    Some(i) => after.push(i),
                    None => staying.push(holder.clone()),
                }
            }
            if !staying.is_empty() {
                self.plan.kept.push(Kept {
                    key,
                    reason: format!(
                        "no longer described, but still used by {}",
                        staying.join(", ")
                    ),
                });
                continue;
            }
            self.push(
                Action::RemoveNetwork { name: name.clone() },
                after,
                "no longer described",
            );
        }
    }

    /// The rules differ from what the state makes, and no network step rebuilds them.
    fn network_rules(&mut self) {
        if !self.inputs.observed.networks.readable {
            return;
        }
        let networks_touched = self.plan.steps.iter().any(|s| {
            matches!(
                s.action,
                Action::EnsureNetwork { .. } | Action::RemoveNetwork { .. }
            )
        });
        if !self.inputs.observed.networks.rules_in_sync && !networks_touched {
            self.push(
                Action::RepairNetworkRules,
                vec![],
                "berth's nftables table differs from its state (changed by hand, or a stopped container is still forwarded to)",
            );
        }
    }

    /// The steps that bring the networks a container joins.
    fn network_deps(&self, c: &Container) -> Vec<usize> {
        match &c.network {
            crate::spec::model::ContainerNetwork::Bridge(attachments) => attachments
                .iter()
                .filter_map(|a| self.network_steps.get(&a.network).copied())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Entries in dependency order (dependencies first), then by name. The loader refused
    /// cycles, so this always completes.
    fn container_order(&self) -> Vec<Name> {
        let containers = &self.inputs.desired.containers;
        let mut done: BTreeSet<&Name> = BTreeSet::new();
        let mut order = Vec::new();
        while order.len() < containers.len() {
            let before = order.len();
            for (name, c) in containers {
                if !done.contains(name)
                    && c.depends_on
                        .keys()
                        .all(|d| done.contains(d) || !containers.contains_key(d))
                {
                    done.insert(name);
                    order.push(name.clone());
                }
            }
            if order.len() == before {
                // A cycle the loader should have refused: take the rest by name.
                order.extend(containers.keys().filter(|n| !done.contains(n)).cloned());
                break;
            }
        }
        order
    }

    fn container(&mut self, name: &Name, undescribed_removals: &[usize]) {
        let Inputs {
            desired, observed, ..
        } = self.inputs;
        let c = &desired.containers[name];
        let key = format!("container/{name}");
        let hash = match &self.hashes[name] {
            Ok(h) => h.clone(),
            Err(e) => {
                self.plan.waits.push(Wait {
                    key,
                    reason: e.clone(),
                    until_ms: None,
                });
                return;
            }
        };
        if let Some(why) = &observed.containers_unreadable {
            // Which containers exist is unknown: anything started now could be a twin.
            self.plan.waits.push(Wait {
                key,
                reason: format!(
                    "the containers cannot be listed ({why}); nothing is done to any container until they can"
                ),
                until_ms: None,
            });
            return;
        }
        let source = c.image.to_string();
        let digest = observed.images.get(&source);
        let mine: Vec<&ObservedContainer> = observed
            .containers
            .iter()
            .filter(|o| o.name == name.as_str())
            .collect();
        if let Some(unknown) = mine.iter().find_map(|o| match &o.phase {
            Phase::Unknown { reason } => Some((o.id.as_str(), reason.as_str())),
            _ => None,
        }) {
            // Deciding anything without knowing what runs could start a second container.
            self.remaining_images
                .extend(mine.iter().map(|o| o.image.clone()));
            self.plan.waits.push(Wait {
                key,
                reason: format!(
                    "the state of {} cannot be read ({}); nothing is done to this entry until it can",
                    unknown.0, unknown.1
                ),
                until_ms: None,
            });
            return;
        }
        if let Some(ids) = self.orphans_waiting.get(name.as_str()) {
            // Its removal failed and waits out its backoff (the orphan's own wait says when
            // and why): anything started now would run beside it.
            self.remaining_images
                .extend(mine.iter().map(|o| o.image.clone()));
            self.plan.waits.push(Wait {
                key,
                reason: format!(
                    "orphaned container {} of this entry still has to be killed (its removal failed); nothing of this entry is started until it is gone",
                    ids.join(", ")
                ),
                until_ms: None,
            });
            return;
        }
        let current = current_container(&mine, &hash, digest);
        if c.update.strategy == UpdateStrategy::StartFirst
            && self.start_first(name, c, &hash, digest, &mine, current, undescribed_removals)
        {
            return;
        }
        // Leftovers beside the current one (an interrupted replacement) go before it starts.
        let mut stale_removals = Vec::new();
        for o in &mine {
            if current.is_none_or(|cur| cur.id != o.id) {
                if current.is_some() {
                    match self.remove(
                        o.name.clone(),
                        &o.id,
                        "a stale container of this entry".into(),
                    ) {
                        Some(i) => stale_removals.push(i),
                        // Not removed on this pass (failure backoff): it stays, so does its image.
                        None => {
                            self.remaining_images.insert(o.image.clone());
                        }
                    }
                }
            } else {
                self.remaining_images.insert(o.image.clone());
            }
        }
        let Some(cur) = current else {
            let stale: Vec<&ObservedContainer> = mine.clone();
            self.run_or_replace(name, c, &hash, digest, &stale, undescribed_removals);
            if !self.starts.contains_key(name) {
                // Not replaced on this pass (it waits): the old containers stay, so do their images.
                self.remaining_images
                    .extend(stale.iter().map(|o| o.image.clone()));
            }
            return;
        };
        match &cur.phase {
            Phase::Running { .. } => {
                // A job is not done until it has ended: `apply --wait` waits for it (its exit
                // wakes the agent, so the wait has no deadline).
                if c.restart != RestartPolicy::Always && self.is_job(name) {
                    self.plan.waits.push(Wait {
                        key: format!("container/{name}"),
                        reason: format!("job {} runs; waiting for it to complete", cur.id),
                        until_ms: None,
                    });
                }
                // Not done until healthy: `apply --wait` waits for it, as `compose up --wait`.
                match cur.health {
                    Some(Health::Starting) => self.plan.waits.push(Wait {
                        key: format!("container/{name}"),
                        reason: format!("{} runs; waiting for its health check to pass", cur.id),
                        until_ms: None,
                    }),
                    Some(Health::Unhealthy) if c.restart == RestartPolicy::Never => {
                        self.plan.waits.push(Wait {
                            key: format!("container/{name}"),
                            reason: format!(
                                "{} is unhealthy; restart policy \"never\" leaves it as it is",
                                cur.id
                            ),
                            until_ms: None,
                        })
                    }
                    _ => {}
                }
                let rejoin = cur.stale_join.clone().or_else(|| {
                    c.joins()
                        .into_iter()
                        .find(|(_, owner)| self.starts.contains_key(*owner))
                        .map(|(kind, owner)| {
                            format!(
                                "`{owner}`, whose {} namespace it shares, starts in this pass",
                                kind.key()
                            )
                        })
                });
                if let Some(why) = rejoin
                    && cur.health != Some(Health::Unhealthy)
                {
                    self.rejoin(name, c, cur, why, stale_removals);
                } else if cur.health == Some(Health::Unhealthy) && c.restart != RestartPolicy::Never
                {
                    self.entry_step(
                        name,
                        Action::StopUnhealthy {
                            name: name.clone(),
                            id: cur.id.clone(),
                        },
                        stale_removals,
                        format!(
                            "its health check fails; restart policy \"{}\" starts it again",
                            restart_policy_name(c.restart)
                        ),
                    );
                }
            }
            Phase::Created => {
                self.start_created(name, c, cur, stale_removals, "created, not started".into())
            }
            Phase::Exited { exit } => self.exited(name, c, cur, Some(exit), stale_removals),
            Phase::Lost {
                running, reason, ..
            } => {
                if c.restart == RestartPolicy::Never {
                    // Stopping a lost container also releases what its monitor would have
                    // (cgroup, engine state) and records its end.
                    let why = if *running {
                        "it runs unsupervised"
                    } else {
                        "what it left behind is cleaned up"
                    };
                    self.push(
                        Action::Stop {
                            name: name.clone(),
                            id: cur.id.clone(),
                        },
                        vec![],
                        format!("{reason}; {why}, and its restart policy is \"never\""),
                    );
                } else {
                    self.exited(name, c, cur, None, stale_removals);
                }
            }
            Phase::Unknown { .. } => {}
        }
    }

    /// A running container that no longer shares its owners' current namespaces: stopped and
    /// started again in place once they run, unless its restart policy is "never".
    fn rejoin(
        &mut self,
        name: &Name,
        c: &Container,
        cur: &ObservedContainer,
        why: String,
        stale_removals: Vec<usize>,
    ) {
        if c.restart == RestartPolicy::Never {
            self.plan.waits.push(Wait {
                key: format!("container/{name}"),
                reason: format!("{why}; restart policy \"never\" leaves {} as it is", cur.id),
                until_ms: None,
            });
            return;
        }
        let id = cur.id.clone();
        let streak = cur.restarts.streak;
        self.when_dependencies_ready(name, c, |planner, mut after| {
            after.extend(stale_removals);
            planner.start_step(
                name,
                Action::Rejoin {
                    name: name.clone(),
                    id,
                    streak,
                },
                after,
                format!("{why}: restarting it in the current namespaces"),
            )
        });
    }

    /// A start-first entry: the moves of its update's phase (`update`), read once from its
    /// containers. Returns false when no update is under way (the usual rules apply).
    #[allow(clippy::too_many_arguments)]
    fn start_first(
        &mut self,
        name: &Name,
        c: &Container,
        hash: &SpecHash,
        digest: Option<&String>,
        mine: &[&ObservedContainer],
        current: Option<&ObservedContainer>,
        undescribed_removals: &[usize],
    ) -> bool {
        use super::update::{Move, UpdateClock, classify, transition};
        let update = classify(mine, current, self.inputs.observed.networks.readable);
        let now = self.inputs.now_ms;
        let clock = UpdateClock {
            now_ms: now,
            timeout_ms: crate::units::millis(c.update.timeout.0),
            drain_ms: crate::units::millis(c.update.drain.0),
        };
        let moves = transition(&update.phase, clock);
        if moves.is_empty() {
            return false;
        }
        let key = format!("container/{name}");
        let old = update.old_ids();
        // The stale containers' removals: every later step of the update comes after them.
        let mut removals = Vec::new();
        for next in moves {
            match (next, update.successor) {
                (Move::WaitForNetworks, _) => {
                    self.remaining_images
                        .extend(mine.iter().map(|o| o.image.clone()));
                    self.plan.waits.push(Wait {
                        key: key.clone(),
                        reason: "start-first update: the networks' state cannot be read; waiting until it can".into(),
                        until_ms: None,
                    });
                }
                (Move::RemoveStale, _) => {
                    self.remaining_images.extend(
                        update
                            .serving
                            .iter()
                            .chain(update.fallen.iter())
                            .map(|o| o.image.clone()),
                    );
                    for o in &update.stale {
                        match self.remove(
                            o.name.clone(),
                            &o.id,
                            "a stale container of this entry".into(),
                        ) {
                            Some(i) => removals.push(i),
                            // Not removed on this pass (failure backoff): its image stays.
                            None => {
                                self.remaining_images.insert(o.image.clone());
                            }
                        }
                    }
                }
                (Move::StartFirst, _) => {
                    let mut after = removals.clone();
                    after.extend_from_slice(undescribed_removals);
                    self.create_step(name, c, hash, digest, &[], &update.serving, &after);
                    // A failed update waiting out its backoff is not under way.
                    if self.starts.contains_key(name) {
                        self.plan.updating.push(name.to_string());
                    }
                }
                (Move::RestartFallen, _) => {
                    if let Some(fallen) = update.fallen {
                        let exit = match &fallen.phase {
                            Phase::Exited { exit } => Some(exit),
                            _ => None,
                        };
                        self.exited(name, c, fallen, exit, removals.clone());
                    }
                }
                (Move::RemoveServingAsStale, _) => {
                    for o in &update.serving {
                        self.remove(
                            o.name.clone(),
                            &o.id,
                            "a stale container of this entry".into(),
                        );
                    }
                }
                // The other moves are the successor's: only phases with one make them.
                (_, None) => {}
                (Move::MarkUnderWay, Some(cur)) => {
                    // Under way until the successor serves alone (or is removed).
                    self.plan.updating.push(name.to_string());
                    self.remaining_images.insert(cur.image.clone());
                }
                (Move::StartSuccessor, Some(cur)) => self.start_created(
                    name,
                    c,
                    cur,
                    removals.clone(),
                    format!("created for a start-first update beside {old}, not started"),
                ),
                (Move::AwaitHealth { deadline_ms }, Some(cur)) => self.plan.waits.push(Wait {
                    key: key.clone(),
                    reason: format!(
                        "start-first update: waiting for {} to become healthy (at most {} more); {old} serves",
                        cur.id,
                        human_ms(deadline_ms.saturating_sub(now))
                    ),
                    until_ms: Some(deadline_ms),
                }),
                (Move::AwaitHealthAlone, Some(cur)) => self.plan.waits.push(Wait {
                    key: key.clone(),
                    reason: format!(
                        "{} takes over the published ports once healthy (nothing else serves them)",
                        cur.id
                    ),
                    until_ms: None,
                }),
                (Move::TakeOver, Some(cur)) => {
                    self.entry_step(
                        name,
                        Action::TakeOver {
                            name: name.clone(),
                            id: cur.id.clone(),
                            from: update.serving.iter().map(|o| o.id.clone()).collect(),
                        },
                        removals.clone(),
                        if old.is_empty() {
                            "healthy; its ports are served by no one".to_string()
                        } else {
                            format!("healthy; takes the published ports over from {old}")
                        },
                    );
                }
                (Move::AbortUpdate(abort), Some(cur)) => {
                    let why = abort.why(&cur.id, &c.update.timeout);
                    self.entry_step(
                        name,
                        Action::AbortUpdate {
                            name: name.clone(),
                            id: cur.id.clone(),
                            why: why.clone(),
                        },
                        vec![],
                        format!("{why}; {old} keeps serving"),
                    );
                }
                (Move::AwaitDrain { until_ms }, Some(cur)) => self.plan.waits.push(Wait {
                    key: key.clone(),
                    reason: format!(
                        "start-first update: {} serves; {old} drains for {} more",
                        cur.id,
                        human_ms(until_ms.saturating_sub(now))
                    ),
                    until_ms: Some(until_ms),
                }),
                (Move::RemoveDrained, Some(cur)) => {
                    for o in &update.serving {
                        self.remove(
                            o.name.clone(),
                            &o.id,
                            format!("drained for {} after {} took over", c.update.drain, cur.id),
                        );
                    }
                }
            }
        }
        true
    }

    /// Start the entry's created container once its dependencies are ready, after `removals`.
    fn start_created(
        &mut self,
        name: &Name,
        c: &Container,
        cur: &ObservedContainer,
        removals: Vec<usize>,
        reason: String,
    ) {
        self.when_dependencies_ready(name, c, |planner, mut after| {
            after.extend(removals);
            planner.start_step(
                name,
                Action::Start {
                    name: name.clone(),
                    id: cur.id.clone(),
                },
                after,
                reason,
            )
        });
    }

    /// An exited or lost current container: restart it in place per its policy, after
    /// its backoff delay.
    fn exited(
        &mut self,
        name: &Name,
        c: &Container,
        cur: &ObservedContainer,
        exit: Option<&ExitRecord>,
        stale_removals: Vec<usize>,
    ) {
        // Stopped by berth for failing its health check: a failure, whatever its exit code.
        let failed = exit
            .is_none_or(|e| e.error.is_some() || e.stopped_because.is_some() || e.status() != 0);
        let due = match c.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => failed,
            RestartPolicy::Never => false,
        };
        if !due {
            if let Some(exit) = exit.filter(|e| !super::job::succeeded(e))
                && self.is_job(name)
            {
                // Not retried: only a new spec (or removing it by hand) runs it again.
                let id = &cur.id;
                self.plan.blocked.push(Kept {
                    key: format!("container/{name}"),
                    reason: format!(
                        "job {id} {}; it is not run again until its spec changes (its output: `berth logs {id}`; to run it again as it is: `berth rm {id}`)",
                        super::job::failed(exit)
                    ),
                });
            }
            return;
        }
        // A lost container's end is unknown: its last start stands in for it.
        let lost_started = match &cur.phase {
            Phase::Lost { started_at_ms, .. } => *started_at_ms,
            _ => None,
        };
        let ran_ms = match exit {
            Some(e) => Some(e.finished_at_ms.saturating_sub(e.started_at_ms)),
            None => lost_started.map(|s| self.inputs.now_ms.saturating_sub(s)),
        };
        let stable = ran_ms.is_some_and(|ran| ran >= crate::units::millis(c.backoff.reset_after.0));
        // Killed by the kernel with the pid namespace it shares, whose owner starts again in
        // this pass: not its own failure, so no backoff; it starts right after the owner.
        let with_owner = exit
            .is_some_and(|e| e.signal == Some(crate::spec::signal::Signal::KILL.0))
            && c.pid.as_ref().is_some_and(|o| self.starts.contains_key(o));
        let streak = if stable {
            0
        } else if with_owner {
            cur.restarts.streak
        } else {
            cur.restarts.streak.saturating_add(1)
        };
        let reason = match exit {
            Some(e) => format!(
                "{}; restart policy \"{}\"{}",
                e.describe(),
                restart_policy_name(c.restart),
                ordinal_restart(cur.restarts.count + 1)
            ),
            None => format!(
                "{}; restart policy \"{}\"",
                match &cur.phase {
                    Phase::Lost { reason, .. } => reason.as_str(),
                    _ => "lost",
                },
                restart_policy_name(c.restart)
            ),
        };
        if let Some(from) = exit.map(|e| e.finished_at_ms).or(lost_started)
            && !with_owner
        {
            let until = from.saturating_add(backoff_delay_ms(&c.backoff, streak));
            if until > self.inputs.now_ms {
                self.plan.waits.push(Wait {
                    key: format!("container/{name}"),
                    reason: format!(
                        "{reason}: restarting in {} (backoff)",
                        human_ms(until - self.inputs.now_ms)
                    ),
                    until_ms: Some(until),
                });
                return;
            }
        }
        let id = cur.id.clone();
        self.when_dependencies_ready(name, c, |planner, mut after| {
            after.extend(stale_removals);
            planner.start_step(
                name,
                Action::Restart {
                    name: name.clone(),
                    id,
                    streak,
                },
                after,
                reason,
            )
        });
    }

    /// Whether another entry waits for this one to complete.
    fn is_job(&self, name: &Name) -> bool {
        self.inputs.jobs.contains(name)
    }

    fn run_or_replace(
        &mut self,
        name: &Name,
        c: &Container,
        hash: &SpecHash,
        digest: Option<&String>,
        stale: &[&ObservedContainer],
        undescribed_removals: &[usize],
    ) {
        self.create_step(name, c, hash, digest, stale, &[], undescribed_removals)
    }

    /// The step that makes the entry's new container: `Run`, a stop-first `Replace` of
    /// `stale`, or a `StartFirst` beside `serving`.
    #[allow(clippy::too_many_arguments)]
    fn create_step(
        &mut self,
        name: &Name,
        c: &Container,
        hash: &SpecHash,
        digest: Option<&String>,
        stale: &[&ObservedContainer],
        serving: &[&ObservedContainer],
        after_steps: &[usize],
    ) {
        let mut after: Vec<usize> = Vec::new();
        if stale.is_empty() {
            after.extend_from_slice(after_steps);
        }
        if let Some(&i) = self.pulls.get(&c.image.to_string()) {
            after.push(i);
        } else if digest.is_none() {
            // Not in the store and not pulled on this pass (policy "never", or in backoff).
            self.plan.waits.push(Wait {
                key: format!("container/{name}"),
                reason: format!("waiting for its image {}", c.image),
                until_ms: None,
            });
            return;
        }
        for m in &c.mounts {
            if let crate::spec::mount::Mount::Volume { source, .. } = m
                && let Some(&i) = self.volume_steps.get(source.as_str())
            {
                after.push(i);
            }
        }
        let (action, reason) = if !serving.is_empty() {
            (
                Action::StartFirst {
                    name: name.clone(),
                    serving: serving.iter().map(|o| o.id.clone()).collect(),
                },
                format!(
                    "{}; start-first: the new container starts beside it and takes over its ports once healthy",
                    replace_reason(serving, hash, digest)
                ),
            )
        } else if stale.is_empty() {
            (
                Action::Run { name: name.clone() },
                "described, not present".to_string(),
            )
        } else {
            let why = replace_reason(stale, hash, digest);
            (
                Action::Replace {
                    name: name.clone(),
                    old: stale.iter().map(|o| o.id.clone()).collect(),
                },
                why,
            )
        };
        self.when_dependencies_ready(name, c, move |planner, mut deps| {
            deps.extend(after);
            planner.start_step(name, action, deps, reason)
        });
    }

    /// Run `make` with the steps the container's dependencies need first, or record a wait
    /// if a dependency is not there yet and nothing in this plan brings it.
    fn when_dependencies_ready(
        &mut self,
        name: &Name,
        c: &Container,
        make: impl FnOnce(&mut Self, Vec<usize>) -> Option<usize>,
    ) {
        let mut after = Vec::new();
        // Namespaces are joined from the owner's container that runs when the step does:
        // after the owner's start in this pass, whatever the condition (a `healthy` one is
        // otherwise met by the container the start replaces).
        for (_, owner) in c.joins() {
            if let Some(&i) = self.starts.get(owner)
                && !after.contains(&i)
            {
                after.push(i);
            }
        }
        for (dep, condition) in &c.depends_on {
            if let Some(&i) = self.starts.get(dep)
                && *condition == Condition::Started
            {
                if !after.contains(&i) {
                    after.push(i);
                }
                continue;
            }
            match self.unmet(dep, *condition) {
                None => {}
                Some(Unmet::Waiting(missing)) => {
                    self.plan.waits.push(Wait {
                        key: format!("container/{name}"),
                        reason: missing,
                        until_ms: None,
                    });
                    return;
                }
                Some(Unmet::Blocked(dependent)) => {
                    self.plan.blocked.push(Kept {
                        key: format!("container/{name}"),
                        reason: dependent,
                    });
                    return;
                }
            }
        }
        make(self, after);
    }

    /// Why a dependency does not meet its condition in the observed state, if it does not.
    fn unmet(&self, dep: &Name, condition: Condition) -> Option<Unmet> {
        let observed = &self.inputs.observed;
        let desired = self.inputs.desired.containers.get(dep)?;
        let hash = self.hashes.get(dep)?.as_ref().ok()?;
        let mine: Vec<&ObservedContainer> = observed
            .containers
            .iter()
            .filter(|o| o.name == dep.as_str())
            .collect();
        let current =
            current_container(&mine, hash, observed.images.get(&desired.image.to_string()));
        // For a job, the container of this spec counts whatever its phase: it is meant to end.
        let latest_run = current;
        // During a start-first update (or after one failed) the old container serves the
        // entry until the new one takes over: it is the one that counts.
        let serves = |c: &&ObservedContainer| {
            c.phase.is_running()
                && !matches!(
                    c.ports,
                    Some(PortHold::Standby | PortHold::Superseded { .. })
                )
        };
        let current = current.filter(serves).or_else(|| {
            mine.iter()
                .copied()
                .find(|c| serves(c) && matches!(c.ports, Some(PortHold::Serving { .. })))
        });
        let running = current.is_some_and(|c| matches!(c.phase, Phase::Running { .. }));
        match condition {
            Condition::Started if running => None,
            Condition::Started => Some(Unmet::Waiting(format!("waiting for {dep} to be started"))),
            Condition::Healthy
                if running && current.is_some_and(|c| c.health == Some(Health::Healthy)) =>
            {
                None
            }
            Condition::Healthy => Some(Unmet::Waiting(format!("waiting for {dep} to be healthy"))),
            Condition::Completed => job_unmet(dep, desired, latest_run),
        }
    }

    fn start_step(
        &mut self,
        name: &Name,
        action: Action,
        after: Vec<usize>,
        reason: String,
    ) -> Option<usize> {
        // Never beside an orphan of the entry: after the steps that kill them.
        let mut after = after;
        for &i in self.orphan_steps.get(name.as_str()).into_iter().flatten() {
            if !after.contains(&i) {
                after.push(i);
            }
        }
        let i = self.entry_step(name, action, after, reason)?;
        self.starts.insert(name.clone(), i);
        Some(i)
    }

    /// A step on an entry's containers: after its failure backoff (the entry's own, reset by
    /// a change of its spec) and after the steps bringing its networks.
    fn entry_step(
        &mut self,
        name: &Name,
        action: Action,
        after: Vec<usize>,
        reason: String,
    ) -> Option<usize> {
        let entry = &self.inputs.desired.containers[name];
        let spec = self
            .hashes
            .get(name)
            .and_then(|h| h.as_ref().ok())
            .map(|h| h.to_string());
        if let Some(wait) = self.failure_wait(&action.key(), Some(&entry.backoff), spec.as_deref())
        {
            self.plan.waits.push(wait);
            return None;
        }
        let mut after = after;
        for i in self.network_deps(entry) {
            if !after.contains(&i) {
                after.push(i);
            }
        }
        self.plan.steps.push(Step {
            action,
            after,
            reason,
            spec,
        });
        Some(self.plan.steps.len() - 1)
    }

    fn remove(&mut self, name: String, id: &str, reason: String) -> Option<usize> {
        let i = self.push(
            Action::Remove {
                name,
                id: id.to_string(),
            },
            vec![],
            reason,
        )?;
        self.removals.push(i);
        Some(i)
    }

    fn undescribed_containers(&mut self) {
        let observed = self.inputs.observed;
        for o in &observed.containers {
            if self.inputs.desired.containers.contains_key(o.name.as_str()) {
                continue;
            }
            if let Phase::Unknown { reason } = &o.phase {
                self.remaining_images.insert(o.image.clone());
                self.plan.kept.push(Kept {
                    key: format!("container/{}", o.name),
                    reason: format!(
                        "{} is no longer described, but its state cannot be read ({reason})",
                        o.id
                    ),
                });
                continue;
            }
            let missing_since = self
                .inputs
                .missing_since
                .get(&o.name)
                .copied()
                .unwrap_or(self.inputs.now_ms);
            let due = missing_since.saturating_add(self.inputs.prune_grace_ms);
            if self.plan.prune_blocked.is_none() && due > self.inputs.now_ms {
                self.remaining_images.insert(o.image.clone());
                self.plan.waits.push(Wait {
                    key: format!("container/{}", o.name),
                    reason: format!(
                        "{} is no longer described; removed in {} unless its entry comes back",
                        o.id,
                        human_ms(due - self.inputs.now_ms)
                    ),
                    until_ms: Some(due),
                });
                continue;
            }
            match &self.plan.prune_blocked {
                None => {
                    if self
                        .remove(o.name.clone(), &o.id, "no longer described".into())
                        .is_none()
                    {
                        // Not removed on this pass (failure backoff): it stays, so does its image.
                        self.remaining_images.insert(o.image.clone());
                    }
                }
                Some(_) if self.inputs.targeted => {
                    // Outside the targets: not this pass's business at all.
                    self.remaining_images.insert(o.image.clone());
                }
                Some(why) => {
                    self.remaining_images.insert(o.image.clone());
                    self.plan.kept.push(Kept {
                        key: format!("container/{}", o.name),
                        reason: format!("{} is no longer described, but {why}", o.id),
                    });
                }
            }
        }
        // Not held back by problems of the desired files: no entry can ever adopt an
        // orphan (it has no record), and leaving it running means a twin beside its
        // entry's container. Under --target, only the targeted entries' orphans.
        for id in &observed.orphans {
            let name = orphan_name(id);
            if self.inputs.targeted && !self.inputs.desired.containers.contains_key(name) {
                continue;
            }
            match self.push(
                Action::RemoveOrphan { id: id.clone() },
                vec![],
                "its state directory was deleted while it ran: nothing supervises it",
            ) {
                Some(i) => {
                    self.removals.push(i);
                    self.orphan_steps
                        .entry(name.to_string())
                        .or_default()
                        .push(i);
                }
                None => self
                    .orphans_waiting
                    .entry(name.to_string())
                    .or_default()
                    .push(id.clone()),
            }
        }
        for id in &observed.damaged {
            match &self.plan.prune_blocked {
                None => {
                    self.remove(String::new(), id, "its record is damaged".into());
                }
                Some(why) => self.plan.kept.push(Kept {
                    key: format!("container-id/{id}"),
                    reason: format!("its record is damaged, but {why}"),
                }),
            }
        }
    }

    fn prune_images(&mut self) {
        if self.plan.prune_blocked.is_some() {
            return;
        }
        let desired = self.inputs.desired;
        let mut keep = desired.image_sources();
        keep.extend(self.remaining_images.iter().cloned());
        keep.extend(self.inputs.observed.manual_images.iter().cloned());
        let unused: Vec<String> = self
            .inputs
            .observed
            .images
            .keys()
            .filter(|s| !keep.contains(*s))
            .cloned()
            .collect();
        if unused.is_empty() {
            return;
        }
        // After every removal and replacement: their images are released only then.
        let mut after = self.removals.clone();
        after.extend(
            self.plan
                .steps
                .iter()
                .enumerate()
                .filter_map(|(i, s)| matches!(s.action, Action::Replace { .. }).then_some(i)),
        );
        self.push(
            Action::PruneImages { images: unused },
            after,
            "no entry and no container uses them",
        );
    }
}

/// A dependency's condition not met yet.
enum Unmet {
    /// It may still be met without a change of the desired state.
    Waiting(String),
    /// A one-shot job failed and is not run again for the same spec (the job itself says
    /// so in `Planner::exited`).
    Blocked(String),
}

/// `completed`: the job's current container (same spec and image) exited 0. A job that
/// was replaced because its spec changed has no current container until its new one runs.
fn job_unmet(
    dep: &Name,
    desired: &Container,
    current: Option<&ObservedContainer>,
) -> Option<Unmet> {
    use super::job::{JobRun, failed, run_of};
    match run_of(current) {
        JobRun::Completed => None,
        JobRun::Pending | JobRun::Lost { .. } => {
            Some(Unmet::Waiting(format!("waiting for {dep} to complete")))
        }
        JobRun::Failed { exit, .. } if desired.restart == RestartPolicy::OnFailure => {
            Some(Unmet::Waiting(format!(
                "waiting for {dep} to complete (its last run {}; restart policy \"on-failure\" runs it again)",
                failed(exit)
            )))
        }
        JobRun::Failed { exit, .. } => {
            Some(Unmet::Blocked(format!("blocked: {dep} {}", failed(exit))))
        }
    }
}

/// The entry name of an orphan's id (`NAME-<8 hex>`).
fn orphan_name(id: &str) -> &str {
    id.rsplit_once('-').map_or(id, |(name, _)| name)
}

/// The container that is the entry: the newest of its spec hash and image digest, a
/// running one first (a leftover created container never displaces a serving one).
fn current_container<'o>(
    mine: &[&'o ObservedContainer],
    hash: &SpecHash,
    digest: Option<&String>,
) -> Option<&'o ObservedContainer> {
    let matching = mine
        .iter()
        .filter(|o| o.spec_hash == hash.as_str() && digest.is_none_or(|d| *d == o.image_digest));
    matching
        .clone()
        .filter(|o| o.phase.is_running())
        .max_by(|a, b| a.created_at.cmp(&b.created_at))
        .or_else(|| matching.max_by(|a, b| a.created_at.cmp(&b.created_at)))
        .copied()
}

fn replace_reason(
    stale: &[&ObservedContainer],
    hash: &SpecHash,
    digest: Option<&String>,
) -> String {
    let newest = stale.iter().max_by(|a, b| a.created_at.cmp(&b.created_at));
    match newest {
        Some(o) if o.spec_hash != hash.as_str() => format!("{}: its spec changed", o.id),
        Some(o) => match digest {
            Some(d) => format!(
                "{}: its image changed ({} → {})",
                o.id,
                short_digest(&o.image_digest),
                short_digest(d)
            ),
            None => format!("{}: its image changed", o.id),
        },
        None => "replaced".into(),
    }
}

pub fn short_digest(d: &str) -> String {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    hex.chars().take(12).collect()
}

fn restart_policy_name(p: RestartPolicy) -> &'static str {
    match p {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "never",
    }
}

fn ordinal_restart(n: u32) -> String {
    format!(" (restart #{n})")
}

/// "1.5s", "2m3s": for waits in messages.
pub(crate) fn human_ms(ms: u64) -> String {
    let d = std::time::Duration::from_millis(if ms >= 1000 { ms / 1000 * 1000 } else { ms });
    humantime::format_duration(d).to_string()
}

/// An unknown `--target`.
#[derive(Debug, thiserror::Error)]
#[error("--target {name}: the desired state has no valid container `{name}`")]
pub(crate) struct UnknownTarget {
    pub name: String,
}

/// The part of `desired` that `targets` need: those containers, the containers they
/// depend on, and the images, volumes and networks these use.
pub(crate) fn restrict(
    desired: &Desired,
    targets: &BTreeSet<String>,
) -> Result<Desired, UnknownTarget> {
    let mut keep: BTreeSet<Name> = BTreeSet::new();
    let mut queue: Vec<Name> = Vec::new();
    for t in targets {
        let Some((name, _)) = desired.containers.get_key_value(t.as_str()) else {
            return Err(UnknownTarget { name: t.clone() });
        };
        queue.push(name.clone());
    }
    while let Some(name) = queue.pop() {
        if keep.insert(name.clone())
            && let Some(c) = desired.containers.get(&name)
        {
            queue.extend(c.depends_on.keys().cloned());
        }
    }
    let mut out = Desired {
        // Values only: what the kept containers name is looked up by name.
        secrets: desired.secrets.clone(),
        configs: desired.configs.clone(),
        ..Desired::default()
    };
    for name in &keep {
        let Some(c) = desired.containers.get(name) else {
            continue;
        };
        for m in &c.mounts {
            if let crate::spec::mount::Mount::Volume { source, .. } = m
                && let Some((n, v)) = desired.volumes.get_key_value(source.as_str())
            {
                out.volumes.insert(n.clone(), v.clone());
            }
        }
        if let crate::spec::model::ContainerNetwork::Bridge(attachments) = &c.network {
            for a in attachments {
                if let Some((n, net)) = desired.networks.get_key_value(&a.network) {
                    out.networks.insert(n.clone(), net.clone());
                }
            }
        }
        for (n, image) in &desired.images {
            if image.source == c.image {
                out.images.insert(n.clone(), image.clone());
            }
        }
        out.containers.insert(name.clone(), c.clone());
    }
    Ok(out)
}
