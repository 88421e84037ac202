//! Table and golden tests for the planner (`plan.rs`).
//!
//! Desired state comes from small TOML snippets through the real loader; the observed state
//! is built by hand. A plan is rendered one line per step, wait, kept entry, prune block and
//! wake-up time (times relative to `NOW`), and compared with the expected text inline.

use std::collections::BTreeMap;

use super::observe::{Health, Observed, ObservedContainer, Phase};
use super::plan::{
    Action, Failure, FailureBook, Inputs, Plan, Step, backoff_delay_ms, human_ms, jobs_of, plan,
    short_digest,
};
use crate::spec::duration::Duration;
use crate::spec::hash::SpecHashed;
use crate::spec::loader::InputFile;
use crate::spec::model::{Backoff, Desired};
use crate::state::network::PortHold;
use crate::state::record::{ExitRecord, RestartRecord};

const NOW: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn files(texts: &[(&str, &str)]) -> crate::spec::Loaded {
    crate::spec::load_files(
        &texts
            .iter()
            .map(|(path, text)| InputFile {
                path: (*path).into(),
                text: (*text).into(),
            })
            .collect::<Vec<_>>(),
    )
}

/// A desired state from one TOML file that must load without a problem.
fn desired(toml: &str) -> Desired {
    let loaded = files(&[("desired.toml", toml)]);
    assert!(loaded.is_complete(), "{:#?}", loaded.diagnostics);
    loaded.desired
}

fn running() -> Phase {
    Phase::Running {
        started_at_ms: NOW - HOUR,
    }
}

fn lost(running: bool) -> Phase {
    Phase::Lost {
        reason: "its monitor is gone".into(),
        running,
        started_at_ms: None,
    }
}

/// An exit that ran `ran_ms` and finished `ago_ms` before `NOW`.
fn exit(code: i32, ran_ms: u64, ago_ms: u64) -> ExitRecord {
    ExitRecord {
        code: Some(code),
        signal: None,
        oom_killed: false,
        started_at_ms: NOW - ago_ms - ran_ms,
        finished_at_ms: NOW - ago_ms,
        error: None,
        stopped_because: None,
    }
}

fn exited(code: i32, ran_ms: u64, ago_ms: u64) -> Phase {
    Phase::Exited {
        exit: exit(code, ran_ms, ago_ms),
    }
}

/// An observed container of name `name`, the `n`th made (ids and creation times follow `n`).
fn container(
    name: &str,
    n: u32,
    spec_hash: &str,
    image: &str,
    image_digest: &str,
    phase: Phase,
) -> ObservedContainer {
    ObservedContainer {
        id: format!("{name}-{n:08x}"),
        name: name.into(),
        spec_hash: spec_hash.into(),
        image: image.into(),
        image_digest: image_digest.into(),
        created_at: format!("2024-05-01T10:{n:02}:00Z"),
        phase,
        restarts: RestartRecord::default(),
        health: None,
        ports: None,
        monitor: None,
        init: None,
        health_check: None,
        stale_join: None,
        joins: Default::default(),
    }
}

/// What the planner is given, built step by step.
#[derive(Clone)]
struct World {
    desired: Desired,
    complete: bool,
    observed: Observed,
    failures: FailureBook,
    now: u64,
    hold: Option<String>,
    missing_since: BTreeMap<String, u64>,
    grace_ms: u64,
    targeted: bool,
}

impl World {
    fn new(toml: &str) -> World {
        World {
            desired: desired(toml),
            complete: true,
            observed: Observed::default(),
            failures: FailureBook::new(),
            now: NOW,
            hold: None,
            missing_since: BTreeMap::new(),
            grace_ms: 0,
            targeted: false,
        }
    }

    fn image(mut self, source: &str, digest: &str) -> World {
        self.observed
            .images
            .insert(source.to_string(), digest.to_string());
        self
    }

    /// Every image a desired container names is in the store (digest `a…`).
    fn images_present(mut self) -> World {
        for c in self.desired.containers.values() {
            self.observed
                .images
                .insert(c.image.to_string(), digest('a'));
        }
        self
    }

    /// An observed network: as its entry is now (`hash: None`) or with another hash.
    fn network(
        mut self,
        name: &str,
        hash: Option<&str>,
        bridge_ok: bool,
        holders: &[&str],
    ) -> World {
        let hash = match hash {
            Some(h) => h.to_string(),
            None => self.desired.networks[name]
                .spec_hash()
                .expect("hash")
                .to_string(),
        };
        self.observed.networks.records.insert(
            name.to_string(),
            crate::state::network::ObservedNetwork {
                spec_hash: hash,
                bridge: format!("berth{}", self.observed.networks.records.len()),
                bridge_ok,
                holders: holders.iter().map(|h| h.to_string()).collect(),
            },
        );
        self
    }

    /// `name` as observed in `from`'s desired state (for a state where it is no longer described).
    fn network_from(mut self, from: &World, name: &str, holders: &[&str]) -> World {
        self.observed.networks.records.insert(
            name.to_string(),
            crate::state::network::ObservedNetwork {
                spec_hash: from.desired.networks[name]
                    .spec_hash()
                    .expect("hash")
                    .to_string(),
                bridge: "berth0".into(),
                bridge_ok: true,
                holders: holders.iter().map(|h| h.to_string()).collect(),
            },
        );
        self
    }

    fn rules_out_of_sync(mut self) -> World {
        self.observed.networks.rules_in_sync = false;
        self
    }

    fn volume(mut self, name: &str) -> World {
        self.observed.volumes.insert(name.into());
        self
    }

    /// An observed container made from `name`'s desired entry as it is now: its spec hash,
    /// its image and the digest the store holds for it (`a…` if none).
    fn current(&self, name: &str, n: u32, phase: Phase) -> ObservedContainer {
        let c = &self.desired.containers[name];
        let image = c.image.to_string();
        let digest = self
            .observed
            .images
            .get(&image)
            .cloned()
            .unwrap_or_else(|| digest('a'));
        let hash = crate::spec::hash::container_hash(&self.desired, c)
            .expect("hash")
            .to_string();
        container(name, n, &hash, &image, &digest, phase)
    }

    fn with(mut self, c: ObservedContainer) -> World {
        self.observed.containers.push(c);
        self
    }

    /// Adds `current(name, n, phase)`, changed by `tweak`.
    fn add(
        self,
        name: &str,
        n: u32,
        phase: Phase,
        tweak: impl FnOnce(&mut ObservedContainer),
    ) -> World {
        let mut c = self.current(name, n, phase);
        tweak(&mut c);
        self.with(c)
    }

    fn failure(mut self, key: &str, count: u32, ago_ms: u64) -> World {
        self.failures.insert(
            key.into(),
            Failure {
                spec: None,
                count,
                last_at_ms: self.now - ago_ms,
                error: "boom".into(),
            },
        );
        self
    }

    fn plan(&self) -> Plan {
        let plan = plan(Inputs {
            desired: &self.desired,
            desired_complete: self.complete,
            observed: &self.observed,
            failures: &self.failures,
            now_ms: self.now,
            targeted: self.targeted,
            prune_hold: self.hold.as_deref(),
            missing_since: &self.missing_since,
            prune_grace_ms: self.grace_ms,
            hashes: None,
            jobs: &jobs_of(&self.desired),
        });
        check_invariants(&plan, self.now);
        plan
    }
}

/// What holds for every plan: `after` points backwards, at most one step brings an entry
/// to running, and `wake_at_ms` is the earliest timed wait.
fn check_invariants(plan: &Plan, now: u64) {
    let mut starts = BTreeMap::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for &a in &step.after {
            assert!(a < i, "step {i} runs after a later step {a}: {plan:#?}");
        }
        if let Action::Run { name }
        | Action::Start { name, .. }
        | Action::Restart { name, .. }
        | Action::Replace { name, .. }
        | Action::StartFirst { name, .. } = &step.action
        {
            assert!(
                starts.insert(name.clone(), i).is_none(),
                "{name} is started twice: {plan:#?}"
            );
        }
    }
    let earliest = plan.waits.iter().filter_map(|w| w.until_ms).min();
    assert_eq!(plan.wake_at_ms, earliest);
    if let Some(wake) = plan.wake_at_ms {
        assert!(wake > now, "a wait already over: {plan:#?}");
    }
}

fn render_action(action: &Action) -> String {
    match action {
        Action::Pull { image } => format!("pull image/{image}"),
        Action::CreateVolume { name } => format!("create-volume volume/{name}"),
        Action::EnsureNetwork { name } => format!("ensure-network network/{name}"),
        Action::RemoveNetwork { name } => format!("remove-network network/{name}"),
        Action::RepairNetworkRules => "repair-network-rules".into(),
        Action::Run { name } => format!("run container/{name}"),
        Action::Start { name, id } => format!("start container/{name} id={id}"),
        Action::Restart { name, id, streak } => {
            format!("restart container/{name} id={id} streak={streak}")
        }
        Action::Replace { name, old } => {
            format!("replace container/{name} old=[{}]", old.join(","))
        }
        Action::StartFirst { name, serving } => {
            format!(
                "start-first container/{name} serving=[{}]",
                serving.join(",")
            )
        }
        Action::TakeOver { name, id, from } => {
            format!(
                "take-over container/{name} id={id} from=[{}]",
                from.join(",")
            )
        }
        Action::AbortUpdate { name, id, why } => {
            format!("abort-update container/{name} id={id} why={why}")
        }
        Action::StopUnhealthy { name, id } => format!("stop-unhealthy container/{name} id={id}"),
        Action::Rejoin { name, id, streak } => {
            format!("rejoin container/{name} id={id} streak={streak}")
        }
        Action::Stop { name, id } => format!("stop container/{name} id={id}"),
        Action::Remove { name, id } if name.is_empty() => format!("remove container-id/{id}"),
        Action::Remove { name, id } => format!("remove container/{name} id={id}"),
        Action::RemoveOrphan { id } => format!("remove-orphan container-id/{id}"),
        Action::PruneImages { images } => format!("prune-images [{}]", images.join(",")),
    }
}

fn render_step(step: &Step) -> String {
    let mut line = render_action(&step.action);
    if !step.after.is_empty() {
        let after: Vec<String> = step.after.iter().map(|a| a.to_string()).collect();
        line.push_str(&format!(" after=[{}]", after.join(",")));
    }
    line
}

fn rel(ms: u64) -> String {
    format!("+{}ms", ms as i128 - NOW as i128)
}

/// The golden rendering: steps (without reasons), then waits, kept entries, the prune block
/// and the wake-up time.
fn render(plan: &Plan) -> String {
    let mut out: Vec<String> = plan.steps.iter().map(render_step).collect();
    for w in &plan.waits {
        match w.until_ms {
            Some(until) => out.push(format!("wait {} until={}: {}", w.key, rel(until), w.reason)),
            None => out.push(format!("wait {}: {}", w.key, w.reason)),
        }
    }
    for k in &plan.kept {
        out.push(format!("kept {}: {}", k.key, k.reason));
    }
    for b in &plan.blocked {
        out.push(format!("blocked {}: {}", b.key, b.reason));
    }
    if let Some(why) = &plan.prune_blocked {
        out.push(format!("prune-blocked: {why}"));
    }
    if let Some(wake) = plan.wake_at_ms {
        out.push(format!("wake {}", rel(wake)));
    }
    out.join("\n")
}

/// An expected rendering written indented inline: lines trimmed, blank lines dropped.
fn norm(expected: &str) -> String {
    let lines: Vec<&str> = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("\n")
}

#[track_caller]
fn golden(plan: &Plan, expected: &str) {
    let want = norm(expected);
    let got = render(plan);
    assert_eq!(got, want, "\n--- got ---\n{got}\n--- want ---\n{want}\n");
}

/// Step reasons, one "action: reason" line each.
fn reasons(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| format!("{}: {}", render_action(&s.action), s.reason))
        .collect()
}

const WEB: &str = r#"
[container.web]
image = "registry.example/app:1"
"#;

const WEB_DB: &str = r#"
[volume.data]

[container.db]
image = "oci-archive:/x/busybox.tar"
mounts = ["data:/var/lib/db"]
"#;

// ---------------------------------------------------------------------------------------
// Creating what is missing.

#[test]
fn empty_desired_and_empty_observed_plan_nothing() {
    let plan = World::new("").plan();
    assert_eq!(plan, Plan::default());
    assert!(plan.steps.is_empty());
    golden(&plan, "");
}

#[test]
fn creation_table() {
    struct Case {
        name: &'static str,
        toml: &'static str,
        images: &'static [&'static str],
        volumes: &'static [&'static str],
        want: &'static str,
    }
    let cases = [
        Case {
            name: "image missing: pull, then run after the pull",
            toml: WEB,
            images: &[],
            volumes: &[],
            want: "
                pull image/registry.example/app:1
                run container/web after=[0]
            ",
        },
        Case {
            name: "image present: run alone",
            toml: WEB,
            images: &["registry.example/app:1"],
            volumes: &[],
            want: "run container/web",
        },
        Case {
            name: "volume missing: create it before the run",
            toml: WEB_DB,
            images: &["oci-archive:/x/busybox.tar"],
            volumes: &[],
            want: "
                create-volume volume/data
                run container/db after=[0]
            ",
        },
        Case {
            name: "image and volume missing: run after both",
            toml: WEB_DB,
            images: &[],
            volumes: &[],
            want: "
                pull image/oci-archive:/x/busybox.tar
                create-volume volume/data
                run container/db after=[0,1]
            ",
        },
        Case {
            name: "volume present: no volume step",
            toml: WEB_DB,
            images: &["oci-archive:/x/busybox.tar"],
            volumes: &["data"],
            want: "run container/db",
        },
        Case {
            name: "a described volume alone is created, nothing else",
            toml: "[volume.cache]\n[volume.data]\n",
            images: &[],
            volumes: &["data"],
            want: "create-volume volume/cache",
        },
        Case {
            name: "an image entry nobody uses is still pulled",
            toml: "[image.tools]\nreference = \"registry.example/tools:3\"\n",
            images: &[],
            volumes: &[],
            want: "pull image/registry.example/tools:3",
        },
        Case {
            name: "two containers on one image: one pull, both runs after it",
            toml: r#"
                [image.app]
                reference = "registry.example/app:1"
                [container.a]
                image = "app"
                [container.b]
                image = "registry.example/app:1"
            "#,
            images: &[],
            volumes: &[],
            want: "
                pull image/registry.example/app:1
                run container/a after=[0]
                run container/b after=[0]
            ",
        },
    ];
    for case in cases {
        let mut w = World::new(case.toml);
        for image in case.images {
            w = w.image(image, &digest('a'));
        }
        for v in case.volumes {
            w = w.volume(v);
        }
        let plan = w.plan();
        let got = render(&plan);
        assert_eq!(got, norm(case.want), "case: {}", case.name);
    }
}

#[test]
fn new_container_reasons() {
    let plan = World::new(WEB_DB).plan();
    assert_eq!(
        reasons(&plan),
        [
            "pull image/oci-archive:/x/busybox.tar: not in the store",
            "create-volume volume/data: described, not present",
            "run container/db: described, not present",
        ]
    );
}

/// Containers that cannot be listed (a record of a newer berth, an I/O error) may all be
/// running: starting any would make a twin, so every entry waits and nothing is pruned.
#[test]
fn unlisted_containers_start_nothing() {
    let mut w = World::new(WEB_DB).images_present().volume("data");
    let why = "record /x/container.json: a container record of format 99, written by a newer berth";
    w.observed
        .problems
        .push(format!("listing containers: {why}"));
    w.observed.containers_unreadable = Some(why.to_string());
    let plan = w.plan();
    assert!(plan.steps.is_empty(), "{plan:#?}");
    assert_eq!(plan.waits.len(), 1, "{plan:#?}");
    for wait in &plan.waits {
        assert!(wait.reason.contains("cannot be listed"), "{wait:?}");
        assert!(wait.reason.contains("newer berth"), "{wait:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Idempotence.

const STACK: &str = r#"
[image.app]
reference = "registry.example/app:1"

[volume.data]

[container.db]
image = "oci-archive:/x/busybox.tar"
mounts = ["data:/var/lib/db"]
health = { tcp = 5432 }

[container.web]
image = "app"
env = { DB = "db" }
depends_on = { db = "healthy" }
"#;

#[test]
fn converged_state_plans_nothing() {
    let w = World::new(STACK).images_present().volume("data");
    let w = w
        .add("db", 1, running(), |c| c.health = Some(Health::Healthy))
        .add("web", 2, running(), |_| {});
    let plan = w.plan();
    assert_eq!(plan, Plan::default());
    golden(&plan, "");
    // And planning is deterministic: the same inputs, the same plan.
    assert_eq!(w.plan(), plan);
}

#[test]
fn converged_single_container_plans_nothing() {
    let plan = World::new(WEB)
        .images_present()
        .add("web", 1, running(), |_| {})
        .plan();
    assert_eq!(plan, Plan::default());
}

#[test]
fn converged_state_stays_converged_whatever_the_observed_order() {
    let w = World::new(STACK).images_present().volume("data");
    let db = w.current("db", 1, running());
    let web = w.current("web", 2, running());
    for order in [[db.clone(), web.clone()], [web, db]] {
        let mut w = w.clone();
        w.observed.containers = order.to_vec();
        w.observed.containers[0].health = Some(Health::Healthy);
        w.observed.containers[1].health = Some(Health::Healthy);
        assert_eq!(w.plan(), Plan::default());
    }
}

// ---------------------------------------------------------------------------------------
// Replacement.

#[test]
fn changed_spec_replaces_the_old_container() {
    let old = desired(
        r#"
        [container.web]
        image = "registry.example/app:1"
        env = { MODE = "blue" }
        "#,
    );
    let old_hash = old.containers["web"].spec_hash().unwrap().to_string();
    let w = World::new(
        r#"
        [container.web]
        image = "registry.example/app:1"
        env = { MODE = "green" }
        "#,
    )
    .images_present();
    assert_ne!(
        w.desired.containers["web"].spec_hash().unwrap().to_string(),
        old_hash
    );
    let plan = w
        .with(container(
            "web",
            1,
            &old_hash,
            "registry.example/app:1",
            &digest('a'),
            running(),
        ))
        .plan();
    golden(&plan, "replace container/web old=[web-00000001]");
    assert_eq!(
        reasons(&plan),
        ["replace container/web old=[web-00000001]: web-00000001: its spec changed"]
    );
}

#[test]
fn changed_image_digest_replaces_the_container() {
    let plan = World::new(WEB)
        .image("registry.example/app:1", &digest('b'))
        .add("web", 1, running(), |c| c.image_digest = digest('a'))
        .plan();
    golden(&plan, "replace container/web old=[web-00000001]");
    assert_eq!(
        reasons(&plan),
        [
            "replace container/web old=[web-00000001]: web-00000001: its image changed (aaaaaaaaaaaa → bbbbbbbbbbbb)"
        ]
    );
}

#[test]
fn replacement_of_several_stale_containers_names_them_all_and_blames_the_newest() {
    let old_hash = "sha256:0000";
    let plan = World::new(WEB)
        .image("registry.example/app:1", &digest('b'))
        .with(container(
            "web",
            1,
            old_hash,
            "registry.example/app:1",
            &digest('b'),
            exited(0, 10, HOUR),
        ))
        .add("web", 2, running(), |c| c.image_digest = digest('a'))
        .plan();
    golden(
        &plan,
        "replace container/web old=[web-00000001,web-00000002]",
    );
    // The newest stale one has the current spec: the image is what changed.
    assert!(
        plan.steps[0]
            .reason
            .starts_with("web-00000002: its image changed"),
        "{}",
        plan.steps[0].reason
    );
}

#[test]
fn new_image_to_pull_then_replace_then_prune_the_old_one() {
    let old = desired(WEB);
    let w = World::new(
        r#"
        [container.web]
        image = "registry.example/app:2"
        "#,
    )
    .image("registry.example/app:1", &digest('a'));
    let old_container = {
        let mut c = World {
            desired: old,
            ..w.clone()
        }
        .current("web", 1, running());
        c.image_digest = digest('a');
        c
    };
    let plan = w.with(old_container).plan();
    golden(
        &plan,
        "
        pull image/registry.example/app:2
        replace container/web old=[web-00000001] after=[0]
        prune-images [registry.example/app:1] after=[1]
        ",
    );
}

#[test]
fn reformatted_toml_with_the_same_meaning_plans_nothing() {
    let written = r#"
[container.web]
image = "registry.example/app:1"
env = { B = "2", A = "1" }
command = ["serve", "--port", "80"]
labels = { tier = "front" }
"#;
    let rewritten = r#"
# The same container, written another way: key order, sub-tables, explicit defaults.
[container.web]
labels.tier = "front"
restart   = "always"
stop_timeout = "10s"
backoff = { max = "5m", initial = "1s" }
command = [ "serve",
            "--port", "80" ]
image="registry.example/app:1"

[container.web.env]
A = "1"
B = "2"
"#;
    let before = World::new(written).images_present();
    let running_container = before.current("web", 1, running());
    let after = World {
        desired: desired(rewritten),
        ..before
    };
    assert_eq!(
        after.current("web", 1, running()).spec_hash,
        running_container.spec_hash
    );
    let plan = after.with(running_container).plan();
    assert_eq!(plan, Plan::default());
}

#[test]
fn a_container_of_the_current_spec_with_its_image_gone_from_the_store_is_kept() {
    // Only the image is missing: it is pulled again, the container stays as it is.
    let plan = World::new(WEB).add("web", 1, running(), |_| {}).plan();
    golden(&plan, "pull image/registry.example/app:1");
}

// ---------------------------------------------------------------------------------------
// Crash leftovers.

#[test]
fn interrupted_replacement_removes_the_old_then_starts_the_new() {
    let w = World::new(WEB).images_present();
    let plan = w
        .clone()
        .with(container(
            "web",
            1,
            "sha256:stale",
            "registry.example/app:1",
            &digest('a'),
            running(),
        ))
        .add("web", 2, Phase::Created, |_| {})
        .plan();
    golden(
        &plan,
        "
        remove container/web id=web-00000001
        start container/web id=web-00000002 after=[0]
        ",
    );
    assert_eq!(
        reasons(&plan),
        [
            "remove container/web id=web-00000001: a stale container of this entry",
            "start container/web id=web-00000002: created, not started",
        ]
    );
}

#[test]
fn two_current_containers_keep_the_running_one() {
    struct Case {
        name: &'static str,
        phases: [(u32, Phase); 2],
        want: &'static str,
    }
    let cases = [
        Case {
            name: "running older, created newer",
            phases: [(1, running()), (2, Phase::Created)],
            want: "remove container/web id=web-00000002",
        },
        Case {
            name: "created older, running newer",
            phases: [(1, Phase::Created), (2, running())],
            want: "remove container/web id=web-00000001",
        },
        Case {
            name: "a lost but still running one counts as running",
            phases: [(1, lost(true)), (2, Phase::Created)],
            want: "
                remove container/web id=web-00000002
                restart container/web id=web-00000001 streak=1 after=[0]
            ",
        },
        Case {
            name: "both created: the newest stays and starts after the other goes",
            phases: [(1, Phase::Created), (2, Phase::Created)],
            want: "
                remove container/web id=web-00000001
                start container/web id=web-00000002 after=[0]
            ",
        },
        Case {
            name: "both running: the newest stays",
            phases: [(1, running()), (2, running())],
            want: "remove container/web id=web-00000001",
        },
        Case {
            name: "exited older, created newer: the newest is the entry",
            phases: [(1, exited(0, 10, HOUR)), (2, Phase::Created)],
            want: "
                remove container/web id=web-00000001
                start container/web id=web-00000002 after=[0]
            ",
        },
    ];
    for case in cases {
        let base = World::new(WEB).images_present();
        let [(n1, p1), (n2, p2)] = case.phases;
        let c1 = base.current("web", n1, p1);
        let c2 = base.current("web", n2, p2);
        // The observed order must not matter, only creation times.
        for order in [[c1.clone(), c2.clone()], [c2, c1]] {
            let mut w = base.clone();
            w.observed.containers = order.to_vec();
            let got = render(&w.plan());
            assert_eq!(got, norm(case.want), "case: {}", case.name);
        }
    }
}

#[test]
fn stale_leftover_beside_an_exited_current_one_goes_before_the_restart() {
    let plan = World::new(WEB)
        .images_present()
        .with(container(
            "web",
            1,
            "sha256:stale",
            "registry.example/app:1",
            &digest('a'),
            running(),
        ))
        .add("web", 2, exited(1, 10, HOUR), |_| {})
        .plan();
    golden(
        &plan,
        "
        remove container/web id=web-00000001
        restart container/web id=web-00000002 streak=1 after=[0]
        ",
    );
}

#[test]
fn stale_leftover_with_another_digest_goes_when_a_current_one_exists() {
    let plan = World::new(WEB)
        .image("registry.example/app:1", &digest('b'))
        .add("web", 1, running(), |c| c.image_digest = digest('a'))
        .add("web", 2, Phase::Created, |_| {})
        .plan();
    golden(
        &plan,
        "
        remove container/web id=web-00000001
        start container/web id=web-00000002 after=[0]
        ",
    );
}

// ---------------------------------------------------------------------------------------
// Undescribed containers and pruning safety.

fn undescribed(n: u32, phase: Phase) -> ObservedContainer {
    container(
        "gone",
        n,
        "sha256:whatever",
        "registry.example/gone:1",
        &digest('c'),
        phase,
    )
}

#[test]
fn undescribed_container_is_removed_and_its_image_pruned_after() {
    let plan = World::new("")
        .image("registry.example/gone:1", &digest('c'))
        .with(undescribed(1, running()))
        .plan();
    golden(
        &plan,
        "
        remove container/gone id=gone-00000001
        prune-images [registry.example/gone:1] after=[0]
        ",
    );
    assert_eq!(
        reasons(&plan),
        [
            "remove container/gone id=gone-00000001: no longer described",
            "prune-images [registry.example/gone:1]: no entry and no container uses them",
        ]
    );
}

#[test]
fn incomplete_desired_state_blocks_every_removal() {
    // A second file that does not parse: the valid file still loads, but is incomplete.
    let loaded = files(&[
        ("a.toml", WEB),
        ("b.toml", "[container.broken\nimage = 1\n"),
    ]);
    assert!(!loaded.is_complete());
    let mut w = World::new(WEB);
    w.complete = loaded.is_complete();
    w.desired = loaded.desired;
    let plan = w
        .images_present()
        .image("registry.example/gone:1", &digest('c'))
        .image("registry.example/junk:1", &digest('d'))
        .add("web", 1, running(), |_| {})
        .with(undescribed(2, running()))
        .plan();
    golden(
        &plan,
        "
        kept container/gone: gone-00000002 is no longer described, but the desired state has problems: a partial view must not delete anything
        prune-blocked: the desired state has problems: a partial view must not delete anything
        ",
    );
}

#[test]
fn observation_problems_block_every_removal() {
    let mut w = World::new(WEB)
        .images_present()
        .image("registry.example/junk:1", &digest('d'))
        .add("web", 1, running(), |_| {})
        .with(undescribed(2, exited(0, 10, HOUR)));
    w.observed.damaged = vec!["x-0badc0de".into()];
    w.observed.problems = vec!["listing volumes: EIO".into(), "image y: bad".into()];
    golden(
        &w.plan(),
        "
        kept container/gone: gone-00000002 is no longer described, but the actual state could not be read completely (listing volumes: EIO; image y: bad)
        kept container-id/x-0badc0de: its record is damaged, but the actual state could not be read completely (listing volumes: EIO; image y: bad)
        prune-blocked: the actual state could not be read completely (listing volumes: EIO; image y: bad)
        ",
    );
}

#[test]
fn prune_block_table() {
    // (desired complete, observation problems, damaged ids) → removals planned?
    let cases = [
        (true, false, false, true),
        (true, false, true, true),
        (false, false, true, false),
        (true, true, true, false),
        (false, true, false, false),
    ];
    for (complete, problems, damaged, prunes) in cases {
        let mut w = World::new("").with(undescribed(1, running()));
        w.complete = complete;
        if problems {
            w.observed.problems = vec!["x".into()];
        }
        if damaged {
            w.observed.damaged = vec!["d-00000001".into()];
        }
        let plan = w.plan();
        let removes = plan
            .steps
            .iter()
            .filter(|s| matches!(s.action, Action::Remove { .. }))
            .count();
        let expected_removes = if prunes { 1 + usize::from(damaged) } else { 0 };
        assert_eq!(
            removes, expected_removes,
            "complete={complete} problems={problems} damaged={damaged}: {plan:#?}"
        );
        assert_eq!(plan.prune_blocked.is_none(), prunes);
        assert_eq!(
            plan.kept.len(),
            if prunes { 0 } else { 1 + usize::from(damaged) }
        );
    }
}

#[test]
fn damaged_records_are_removed_when_pruning_is_allowed() {
    let mut w = World::new("");
    w.observed.damaged = vec!["a-00000001".into(), "b-00000002".into()];
    let plan = w.plan();
    golden(
        &plan,
        "
        remove container-id/a-00000001
        remove container-id/b-00000002
        ",
    );
    assert_eq!(plan.steps[0].reason, "its record is damaged");
    assert_eq!(plan.steps[0].action.key(), "container-id/a-00000001");
}

#[test]
fn orphans_are_killed_before_their_entry_runs_whatever_the_desired_files_say() {
    for complete in [true, false] {
        let mut w = World::new(WEB).images_present();
        w.complete = complete;
        w.observed.orphans = vec!["web-0badc0de".into(), "gone-00000009".into()];
        let plan = w.plan();
        golden(
            &plan,
            &format!(
                "
                remove-orphan container-id/web-0badc0de
                remove-orphan container-id/gone-00000009
                run container/web after=[0,1]{}
                ",
                if complete {
                    ""
                } else {
                    "\n prune-blocked: the desired state has problems: a partial view must not delete anything"
                }
            ),
        );
        assert_eq!(
            plan.steps[0].reason,
            "its state directory was deleted while it ran: nothing supervises it"
        );
        assert_eq!(plan.steps[0].action.key(), "container-id/web-0badc0de");
    }
    // Under --target, only the targeted entries' orphans.
    let mut w = World::new(WEB).images_present();
    w.targeted = true;
    w.observed.orphans = vec!["web-0badc0de".into(), "gone-00000009".into()];
    let plan = w.plan();
    assert_eq!(
        reasons(&plan)[..1],
        [
            "remove-orphan container-id/web-0badc0de: its state directory was deleted while it ran: nothing supervises it"
        ]
    );
    assert_eq!(plan.steps.len(), 2, "{plan:#?}");
}

/// `web` with a restart policy and its image present, and a stale container of it (for the
/// replace case).
fn orphan_world() -> (World, ObservedContainer) {
    let base = World::new(&format!("{WEB}restart = \"always\"\n")).images_present();
    let stale = container(
        "web",
        1,
        "sha256:old",
        "registry.example/app:1",
        &digest('a'),
        running(),
    );
    (base, stale)
}

#[test]
fn an_orphan_whose_removal_backs_off_holds_its_entry_back() {
    // Nothing of the entry starts beside a live orphan: not a new container, not a
    // replacement, not a restart in place, not a start of a created one. An orphan of
    // another name holds nothing back.
    let (base, stale) = orphan_world();
    let cases = [
        ("run", base.clone()),
        ("replace", base.clone().with(stale)),
        (
            "restart",
            base.clone().add("web", 1, exited(1, HOUR, HOUR), |_| {}),
        ),
        ("start", base.clone().add("web", 1, Phase::Created, |_| {})),
    ];
    for (what, w) in cases {
        let mut w = w.failure("container-id/web-0badc0de", 2, 500);
        w.observed.orphans = vec!["web-0badc0de".into(), "db-00000001".into()];
        let plan = w.plan();
        golden(
            &plan,
            "
            remove-orphan container-id/db-00000001
            wait container-id/web-0badc0de until=+1500ms: failed 2 time(s), retrying in 1s: boom
            wait container/web: orphaned container web-0badc0de of this entry still has to be killed (its removal failed); nothing of this entry is started until it is gone
            wake +1500ms
            ",
        );
        assert!(
            plan.steps.iter().all(|s| s.action.key() != "container/web"),
            "{what}: {plan:#?}"
        );
    }
    // Once its backoff is over, the orphan is killed first and the entry follows.
    let mut w = base.failure("container-id/web-0badc0de", 2, 5_000);
    w.observed.orphans = vec!["web-0badc0de".into()];
    golden(
        &w.plan(),
        "
        remove-orphan container-id/web-0badc0de
        run container/web after=[0]
        ",
    );
}

#[test]
fn every_start_of_an_entry_comes_after_its_orphans_are_killed() {
    let (base, stale) = orphan_world();
    let cases = [
        (
            base.clone().with(stale),
            "replace container/web old=[web-00000001] after=[0]",
        ),
        (
            base.clone().add("web", 1, exited(1, HOUR, HOUR), |_| {}),
            "restart container/web id=web-00000001 streak=0 after=[0]",
        ),
        (
            base.clone().add("web", 1, Phase::Created, |_| {}),
            "start container/web id=web-00000001 after=[0]",
        ),
    ];
    for (w, step) in cases {
        let mut w = w;
        w.observed.orphans = vec!["web-0badc0de".into()];
        golden(
            &w.plan(),
            &format!(
                "
                remove-orphan container-id/web-0badc0de
                {step}
                "
            ),
        );
    }
    // A running current container is left alone: the orphan is killed beside it.
    let mut w = base.add("web", 1, running(), |_| {});
    w.observed.orphans = vec!["web-0badc0de".into()];
    golden(&w.plan(), "remove-orphan container-id/web-0badc0de");
}

// ---------------------------------------------------------------------------------------
// Restart policies and backoff.

fn restart_world(policy: &str, phase: Phase) -> World {
    let w = World::new(&format!(
        "[container.web]\nimage = \"registry.example/app:1\"\nrestart = \"{policy}\"\n"
    ))
    .images_present();
    w.add("web", 1, phase, |_| {})
}

#[test]
fn restart_policy_table() {
    let never_ran = Phase::Exited {
        exit: ExitRecord {
            error: Some("exec format error".into()),
            code: None,
            ..exit(0, 0, HOUR)
        },
    };
    let killed = Phase::Exited {
        exit: ExitRecord {
            code: None,
            signal: Some(9),
            ..exit(0, 10, HOUR)
        },
    };
    let restart = "restart container/web id=web-00000001 streak=1";
    // (policy, phase, expected rendering)
    let cases = [
        ("always", exited(0, 10, HOUR), restart),
        ("always", exited(3, 10, HOUR), restart),
        ("always", never_ran.clone(), restart),
        ("always", killed.clone(), restart),
        ("on-failure", exited(0, 10, HOUR), ""),
        ("on-failure", exited(3, 10, HOUR), restart),
        ("on-failure", never_ran.clone(), restart),
        ("on-failure", killed.clone(), restart),
        ("never", exited(0, 10, HOUR), ""),
        ("never", exited(3, 10, HOUR), ""),
        ("never", never_ran, ""),
        ("never", killed, ""),
        (
            "always",
            Phase::Created,
            "start container/web id=web-00000001",
        ),
        (
            "never",
            Phase::Created,
            "start container/web id=web-00000001",
        ),
        ("always", running(), ""),
        ("never", running(), ""),
    ];
    for (policy, phase, want) in cases {
        let plan = restart_world(policy, phase.clone()).plan();
        assert_eq!(render(&plan), want, "restart = {policy}, {phase:?}");
    }
}

#[test]
fn restart_reasons_describe_the_exit_and_count_restarts() {
    let w = World::new(
        "[container.web]\nimage = \"registry.example/app:1\"\nrestart = \"on-failure\"\n",
    )
    .images_present()
    .add("web", 1, exited(3, 10, HOUR), |c| {
        c.restarts.count = 4;
    });
    assert_eq!(
        reasons(&w.plan()),
        [
            "restart container/web id=web-00000001 streak=1: exited with code 3; restart policy \"on-failure\" (restart #5)"
        ]
    );
    let never_ran = Phase::Exited {
        exit: ExitRecord {
            error: Some("exec format error".into()),
            code: None,
            ..exit(0, 0, HOUR)
        },
    };
    assert_eq!(
        reasons(&restart_world("always", never_ran).plan()),
        [
            "restart container/web id=web-00000001 streak=1: failed to start: exec format error; restart policy \"always\" (restart #1)"
        ]
    );
}

const BACKOFF: &str = r#"
[container.web]
image = "registry.example/app:1"
backoff = { initial = "2s", max = "30s", reset_after = "1m" }
"#;

#[test]
fn restart_backoff_golden() {
    // Exited 500ms ago after a short run, first restart: the delay is `initial` (2s).
    let plan = World::new(BACKOFF)
        .images_present()
        .add("web", 1, exited(1, 10, 500), |_| {})
        .plan();
    golden(
        &plan,
        r#"
        wait container/web until=+1500ms: exited with code 1; restart policy "always" (restart #1): restarting in 1s (backoff)
        wake +1500ms
        "#,
    );
}

#[test]
fn restart_backoff_table() {
    // (previous streak, how long it ran, expected new streak, expected delay)
    let cases: [(u32, u64, u32, u64); 9] = [
        (0, 10, 1, 2_000),
        (1, 10, 2, 4_000),
        (2, 10, 3, 8_000),
        (3, 10, 4, 16_000),
        (4, 10, 5, 30_000), // 32s capped at max
        (17, 10, 18, 30_000),
        (7, 59_999, 8, 30_000), // just short of reset_after: still growing
        (7, 60_000, 0, 2_000),  // ran reset_after: the streak starts again
        (7, 5 * HOUR, 0, 2_000),
    ];
    for (streak, ran, new_streak, delay) in cases {
        let world = |ago: u64| {
            World::new(BACKOFF)
                .images_present()
                .add("web", 1, exited(1, ran, ago), |c| {
                    c.restarts.streak = streak;
                    c.restarts.count = streak + 3;
                })
        };
        // 1ms before the delay is over: a timed wait.
        let plan = world(delay - 1).plan();
        assert!(
            plan.steps.is_empty(),
            "streak {streak}, ran {ran}: {plan:#?}"
        );
        assert_eq!(plan.waits.len(), 1);
        assert_eq!(plan.waits[0].key, "container/web");
        assert_eq!(
            plan.waits[0].until_ms,
            Some(NOW + 1),
            "streak {streak}, ran {ran}"
        );
        assert_eq!(plan.wake_at_ms, Some(NOW + 1));
        // The delay is over: restart with the new streak.
        let plan = world(delay).plan();
        assert_eq!(
            render(&plan),
            format!("restart container/web id=web-00000001 streak={new_streak}"),
            "streak {streak}, ran {ran}"
        );
    }
}

#[test]
fn backoff_delay_table() {
    fn b(initial_ms: u64, max_ms: u64) -> Backoff {
        Backoff {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            reset_after: Duration::from_secs(600),
        }
    }
    let cases: [(Backoff, u32, u64); 14] = [
        (b(1_000, 300_000), 0, 1_000),
        (b(1_000, 300_000), 1, 1_000),
        (b(1_000, 300_000), 2, 2_000),
        (b(1_000, 300_000), 3, 4_000),
        (b(1_000, 300_000), 9, 256_000),
        (b(1_000, 300_000), 10, 300_000),
        (b(1_000, 300_000), u32::MAX, 300_000),
        (b(500, 5_000), 4, 4_000),
        (b(500, 5_000), 5, 5_000),
        (b(10_000, 5_000), 1, 5_000), // initial above max: max wins
        (b(0, 5_000), 10, 0),
        (b(250, 250), 30, 250),
        // The exponent stops at 40: 1s · 2^40, below a huge max.
        (b(1_000, 1u64 << 52), 100, 1_000 << 40),
        (b(u64::MAX / 2, u64::MAX), 3, u64::MAX),
    ];
    for (backoff, n, want) in cases {
        assert_eq!(backoff_delay_ms(&backoff, n), want, "{backoff:?} n={n}");
    }
    assert_eq!(backoff_delay_ms(&Backoff::default(), 1), 1_000);
}

// ---------------------------------------------------------------------------------------
// Lost containers.

#[test]
fn lost_container_table() {
    let stop = "stop container/web id=web-00000001";
    let restart = "restart container/web id=web-00000001 streak=1";
    let cases = [
        ("never", true, stop),
        // Nothing runs, but its cgroup and engine state remain: stopping cleans them up.
        ("never", false, stop),
        ("always", true, restart),
        ("always", false, restart),
        ("on-failure", true, restart),
        ("on-failure", false, restart),
    ];
    for (policy, still_running, want) in cases {
        let plan = restart_world(policy, lost(still_running)).plan();
        assert_eq!(
            render(&plan),
            want,
            "restart = {policy}, running = {still_running}"
        );
    }
}

#[test]
fn lost_container_reasons_and_immediate_restart() {
    let plan = restart_world("never", lost(true)).plan();
    assert_eq!(
        plan.steps[0].reason,
        "its monitor is gone; it runs unsupervised, and its restart policy is \"never\""
    );
    // No exit time, so no backoff: restarted at once, whatever the streak.
    let plan = World::new(BACKOFF)
        .images_present()
        .add("web", 1, lost(false), |c| c.restarts.streak = 6)
        .plan();
    golden(&plan, "restart container/web id=web-00000001 streak=7");
    assert_eq!(
        plan.steps[0].reason,
        "its monitor is gone; restart policy \"always\""
    );
}

// ---------------------------------------------------------------------------------------
// Dependencies.

const DEPS: &str = r#"
[container.db]
image = "registry.example/db:1"
restart = "never"
health = { tcp = 5432 }

[container.web]
image = "registry.example/app:1"
depends_on = { db = "started" }
"#;

const DEPS_HEALTHY: &str = r#"
[container.db]
image = "registry.example/db:1"
health = { tcp = 5432 }

[container.web]
image = "registry.example/app:1"
depends_on = { db = "healthy" }
"#;

#[test]
fn started_dependency_run_in_the_same_plan_comes_first() {
    let plan = World::new(DEPS).plan();
    golden(
        &plan,
        "
        pull image/registry.example/app:1
        pull image/registry.example/db:1
        run container/db after=[1]
        run container/web after=[2,0]
        ",
    );
    let plan = World::new(DEPS).images_present().plan();
    golden(
        &plan,
        "
        run container/db
        run container/web after=[0]
        ",
    );
}

#[test]
fn started_dependency_table() {
    // (db's state, web's state, expected)
    let cases: Vec<(Option<Phase>, Option<Phase>, &str)> = vec![
        (Some(running()), None, "run container/web"),
        (
            Some(Phase::Created),
            None,
            "
            start container/db id=db-00000001
            run container/web after=[0]
            ",
        ),
        (
            Some(exited(0, 10, HOUR)),
            None,
            "wait container/web: waiting for db to be started",
        ),
        (
            Some(exited(0, 10, HOUR)),
            Some(Phase::Created),
            "wait container/web: waiting for db to be started",
        ),
        (
            Some(exited(0, 10, HOUR)),
            Some(exited(1, 10, HOUR)),
            "wait container/web: waiting for db to be started",
        ),
        (
            Some(lost(true)),
            Some(Phase::Created),
            "
            stop container/db id=db-00000001
            wait container/web: waiting for db to be started
            ",
        ),
        (
            Some(running()),
            Some(Phase::Created),
            "start container/web id=web-00000002",
        ),
        (
            Some(running()),
            Some(exited(1, 10, HOUR)),
            "restart container/web id=web-00000002 streak=1",
        ),
        (
            // A running dependent is left alone, even when its dependency stopped.
            Some(exited(0, 10, HOUR)),
            Some(running()),
            "",
        ),
    ];
    for (db, web, want) in cases {
        let mut w = World::new(DEPS).images_present();
        if let Some(p) = db.clone() {
            w = w.add("db", 1, p, |_| {});
        }
        if let Some(p) = web.clone() {
            w = w.add("web", 2, p, |_| {});
        }
        assert_eq!(render(&w.plan()), norm(want), "db {db:?}, web {web:?}");
    }
}

#[test]
fn dependency_replaced_in_the_same_plan_is_waited_for() {
    let plan = World::new(DEPS)
        .images_present()
        .with(container(
            "db",
            1,
            "sha256:old",
            "registry.example/db:1",
            &digest('a'),
            running(),
        ))
        .plan();
    golden(
        &plan,
        "
        replace container/db old=[db-00000001]
        run container/web after=[0]
        ",
    );
}

#[test]
fn healthy_dependency_table() {
    // (db's state, db's health, expected)
    let cases: [(Option<Phase>, Option<Health>, &str); 8] = [
        (
            // db is started in this plan, but it is not healthy yet: web waits.
            None,
            None,
            "
            run container/db
            wait container/web: waiting for db to be healthy
            ",
        ),
        (
            Some(running()),
            None,
            "wait container/web: waiting for db to be healthy",
        ),
        (
            Some(running()),
            Some(Health::Starting),
            "
            wait container/db: db-00000001 runs; waiting for its health check to pass
            wait container/web: waiting for db to be healthy
            ",
        ),
        (
            // Restarted per its policy; web waits for it to be healthy again.
            Some(running()),
            Some(Health::Unhealthy),
            "
            stop-unhealthy container/db id=db-00000001
            wait container/web: waiting for db to be healthy
            ",
        ),
        (Some(running()), Some(Health::Healthy), "run container/web"),
        (
            Some(Phase::Created),
            None,
            "
            start container/db id=db-00000001
            wait container/web: waiting for db to be healthy
            ",
        ),
        (
            // Healthy once, but exited since.
            Some(exited(1, 10, HOUR)),
            Some(Health::Healthy),
            "
            restart container/db id=db-00000001 streak=1
            wait container/web: waiting for db to be healthy
            ",
        ),
        (
            // Its process still runs, but unsupervised: not healthy as far as berth knows.
            Some(lost(true)),
            Some(Health::Healthy),
            "
            restart container/db id=db-00000001 streak=1
            wait container/web: waiting for db to be healthy
            ",
        ),
    ];
    for (db, health, want) in cases {
        let mut w = World::new(DEPS_HEALTHY).images_present();
        if let Some(p) = db.clone() {
            w = w.add("db", 1, p, |c| c.health = health);
        }
        assert_eq!(
            render(&w.plan()),
            norm(want),
            "db {db:?}, health {health:?}"
        );
    }
}

#[test]
fn dependency_order_does_not_follow_names() {
    let plan = World::new(
        r#"
        [container.a]
        image = "registry.example/app:1"
        depends_on = { z = "started" }

        [container.m]
        image = "registry.example/app:1"
        depends_on = { a = "started", z = "started" }

        [container.z]
        image = "registry.example/app:1"

        [container.b]
        image = "registry.example/app:1"
        "#,
    )
    .images_present()
    .plan();
    golden(
        &plan,
        "
        run container/b
        run container/z
        run container/a after=[1]
        run container/m after=[2,1]
        ",
    );
}

#[test]
fn a_dependent_waits_for_a_dependency_waiting_for_its_image() {
    let plan = World::new(
        r#"
        [image.db]
        reference = "registry.example/db:1"
        pull = "never"

        [container.db]
        image = "db"

        [container.web]
        image = "registry.example/app:1"
        depends_on = { db = "started" }
        "#,
    )
    .image("registry.example/app:1", &digest('a'))
    .plan();
    golden(
        &plan,
        r#"
        wait image/registry.example/db:1: not in the store and its pull policy is "never"; load it with `berth pull`
        wait container/db: waiting for its image registry.example/db:1
        wait container/web: waiting for db to be started
        "#,
    );
}

// ---------------------------------------------------------------------------------------
// The failure book.

#[test]
fn failure_book_golden() {
    let plan = World::new(WEB)
        .images_present()
        .failure("container/web", 1, 400)
        .plan();
    golden(
        &plan,
        "
        wait container/web until=+600ms: failed 1 time(s), retrying in 600ms: boom
        wake +600ms
        ",
    );
}

#[test]
fn failure_book_table() {
    // (desired, failed key, count, ms since the failure, expected)
    let with_backoff = r#"
        [container.web]
        image = "registry.example/app:1"
        backoff = { initial = "10s", max = "1m" }
    "#;
    let cases: Vec<(&str, &str, u32, u64, &str)> = vec![
        (
            WEB,
            "container/web",
            1,
            999,
            "wait container/web until=+1ms",
        ),
        (WEB, "container/web", 1, 1_000, "run container/web"),
        (
            WEB,
            "container/web",
            3,
            3_999,
            "wait container/web until=+1ms",
        ),
        (WEB, "container/web", 3, 4_000, "run container/web"),
        (WEB, "container/other", 9, 0, "run container/web"),
        // The container's own backoff applies to its steps.
        (
            with_backoff,
            "container/web",
            1,
            9_000,
            "wait container/web until=+1000ms",
        ),
        (
            with_backoff,
            "container/web",
            2,
            19_000,
            "wait container/web until=+1000ms",
        ),
        (
            with_backoff,
            "container/web",
            9,
            59_000,
            "wait container/web until=+1000ms",
        ),
        (
            with_backoff,
            "container/web",
            9,
            60_000,
            "run container/web",
        ),
    ];
    for (toml, key, count, ago, want) in cases {
        let plan = World::new(toml)
            .images_present()
            .failure(key, count, ago)
            .plan();
        let first = render(&plan)
            .lines()
            .next()
            .unwrap_or_default()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        assert_eq!(first, want, "{key} failed {count}× {ago}ms ago");
    }
}

#[test]
fn failed_pull_in_backoff_makes_its_container_wait() {
    let plan = World::new(WEB)
        .failure("image/registry.example/app:1", 2, 500)
        .plan();
    golden(
        &plan,
        "
        wait image/registry.example/app:1 until=+1500ms: failed 2 time(s), retrying in 1s: boom
        wait container/web: waiting for its image registry.example/app:1
        wake +1500ms
        ",
    );
    // After its backoff, the pull and the run are planned again.
    let plan = World::new(WEB)
        .failure("image/registry.example/app:1", 2, 2_000)
        .plan();
    golden(
        &plan,
        "
        pull image/registry.example/app:1
        run container/web after=[0]
        ",
    );
}

#[test]
fn failures_of_other_resources_wait_by_their_keys() {
    let w = World::new(WEB_DB)
        .images_present()
        .with(undescribed(1, running()))
        .image("registry.example/gone:1", &digest('c'));
    let plan = w
        .clone()
        .volume("data")
        .failure("prune/images", 1, 0)
        .plan();
    golden(
        &plan,
        "
        remove container/gone id=gone-00000001
        run container/db after=[0]
        wait prune/images until=+1000ms: failed 1 time(s), retrying in 1s: boom
        wake +1000ms
        ",
    );
    let plan = w
        .clone()
        .failure("volume/data", 1, 100)
        .failure("container-id/gone-00000001", 4, 7_000)
        .plan();
    let rendered = render(&plan);
    assert!(
        rendered.contains("wait volume/data until=+900ms:"),
        "{rendered}"
    );
    assert!(
        rendered.contains("wait container-id/gone-00000001 until=+1000ms:"),
        "{rendered}"
    );
    assert!(!rendered.contains("create-volume"), "{rendered}");
    assert!(!rendered.contains("remove container/gone"), "{rendered}");
    assert_eq!(plan.wake_at_ms, Some(NOW + 900));
}

#[test]
fn a_restart_waits_out_both_its_exit_backoff_and_its_failure_backoff() {
    // The exit's own backoff is over, the failure book's is not.
    let plan = World::new(WEB)
        .images_present()
        .add("web", 1, exited(1, 10, 5_000), |_| {})
        .failure("container/web", 2, 500)
        .plan();
    assert!(plan.steps.is_empty(), "{plan:#?}");
    assert_eq!(plan.waits.len(), 1);
    assert_eq!(plan.waits[0].until_ms, Some(NOW + 1_500));
    // The failure book's backoff is over, the exit's is not.
    let plan = World::new(WEB)
        .images_present()
        .add("web", 1, exited(1, 10, 100), |_| {})
        .failure("container/web", 1, 5_000)
        .plan();
    assert!(plan.steps.is_empty(), "{plan:#?}");
    assert_eq!(plan.waits[0].until_ms, Some(NOW + 900));
}

// ---------------------------------------------------------------------------------------
// Pull policies.

#[test]
fn pull_policy_never_with_the_image_missing_waits() {
    let toml = r#"
        [image.app]
        reference = "oci-archive:/x/busybox.tar"
        pull = "never"

        [container.web]
        image = "app"
    "#;
    golden(
        &World::new(toml).plan(),
        r#"
        wait image/oci-archive:/x/busybox.tar: not in the store and its pull policy is "never"; load it with `berth pull`
        wait container/web: waiting for its image oci-archive:/x/busybox.tar
        "#,
    );
    // Present: it runs.
    golden(
        &World::new(toml).images_present().plan(),
        "run container/web",
    );
}

#[test]
fn pull_policy_table() {
    // Whatever the policy, an image in the store is not pulled again by the planner
    // (`pull = "always"` images are refreshed before planning).
    for (policy, present, want) in [
        ("missing", false, "pull"),
        ("always", false, "pull"),
        ("never", false, "wait"),
        ("missing", true, ""),
        ("always", true, ""),
        ("never", true, ""),
    ] {
        let mut w = World::new(&format!(
            "[image.app]\nreference = \"registry.example/app:1\"\npull = \"{policy}\"\n"
        ));
        if present {
            w = w.image("registry.example/app:1", &digest('a'));
        }
        let got = render(&w.plan());
        let first = got.split(' ').next().unwrap_or_default();
        assert_eq!(first, want, "pull = {policy}, present = {present}: {got}");
    }
}

// ---------------------------------------------------------------------------------------
// Pruning images and volumes.

#[test]
fn prune_images_keeps_what_desired_entries_use() {
    let plan = World::new(
        r#"
        [image.tools]
        reference = "registry.example/tools:3"

        [container.web]
        image = "registry.example/app:2"
        "#,
    )
    .image("registry.example/app:1", &digest('1'))
    .image("registry.example/app:2", &digest('2'))
    .image("registry.example/tools:3", &digest('3'))
    .image("registry.example/junk:1", &digest('4'))
    .image("registry.example/gone:1", &digest('c'))
    .add("web", 1, running(), |_| {})
    .with(undescribed(2, running()))
    .plan();
    golden(
        &plan,
        "
        remove container/gone id=gone-00000002
        prune-images [registry.example/app:1,registry.example/gone:1,registry.example/junk:1] after=[0]
        ",
    );
}

#[test]
fn prune_images_comes_after_every_removal_and_replacement() {
    let old = desired(WEB);
    let w = World::new(
        r#"
        [container.web]
        image = "registry.example/app:2"

        [container.api]
        image = "registry.example/app:2"
        env = { V = "2" }
        "#,
    )
    .image("registry.example/app:1", &digest('1'))
    .image("registry.example/app:2", &digest('2'))
    .image("registry.example/gone:1", &digest('c'));
    let old_web = World {
        desired: old,
        ..w.clone()
    }
    .current("web", 1, running());
    let plan = w
        .add("api", 2, running(), |_| {})
        .add("api", 3, Phase::Created, |c| {
            c.spec_hash = "sha256:old".into()
        })
        .with(old_web)
        .with(undescribed(4, exited(0, 1, HOUR)))
        .plan();
    golden(
        &plan,
        "
        remove container/gone id=gone-00000004
        remove container/api id=api-00000003
        replace container/web old=[web-00000001]
        prune-images [registry.example/app:1,registry.example/gone:1] after=[0,1,2]
        ",
    );
}

#[test]
fn images_of_kept_undescribed_containers_are_not_pruned() {
    let mut w = World::new(WEB)
        .images_present()
        .image("registry.example/gone:1", &digest('c'))
        .image("registry.example/junk:1", &digest('d'))
        .add("web", 1, running(), |_| {})
        .with(undescribed(2, running()));
    w.complete = false;
    let plan = w.plan();
    assert!(
        plan.steps.is_empty(),
        "nothing is pruned while pruning is blocked: {plan:#?}"
    );
    assert_eq!(plan.kept.len(), 1);
    assert_eq!(plan.kept[0].key, "container/gone");
}

#[test]
fn undescribed_volumes_are_kept_never_removed() {
    let plan = World::new(WEB_DB)
        .images_present()
        .volume("data")
        .volume("old")
        .add("db", 1, running(), |_| {})
        .plan();
    golden(
        &plan,
        "kept volume/old: no longer described; volumes hold data and are never pruned implicitly (`berth volume rm old`)",
    );
    assert!(plan.prune_blocked.is_none());
    assert!(plan.waits.is_empty());
}

// ---------------------------------------------------------------------------------------
// Containers that stay keep their images.
//
// `PruneImages` must name only images that no *remaining* container uses. A stale or
// undescribed container whose replacement or removal is not planned on this pass (it
// waits for an image, a dependency or a failure backoff) remains, and so must its image.

/// `web` was made from `registry.example/app:1` and now runs that way; the desired state
/// moved it to `app:2` as described by `toml`.
fn moved_web(toml: &str) -> World {
    let w = World::new(toml).image("registry.example/app:1", &digest('1'));
    let old = World {
        desired: desired(WEB),
        ..w.clone()
    }
    .current("web", 1, running());
    w.with(old)
}

fn pruned(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::PruneImages { images } => Some(images.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn replacement_waiting_for_its_image_keeps_the_old_image() {
    let plan = moved_web(
        r#"
        [image.app]
        reference = "registry.example/app:2"
        pull = "never"

        [container.web]
        image = "app"
        "#,
    )
    .plan();
    golden(
        &plan,
        r#"
        wait image/registry.example/app:2: not in the store and its pull policy is "never"; load it with `berth pull`
        wait container/web: waiting for its image registry.example/app:2
        "#,
    );
}

#[test]
fn replacement_waiting_for_a_dependency_keeps_the_old_image() {
    let plan = moved_web(
        r#"
        [container.db]
        image = "registry.example/db:1"
        restart = "never"

        [container.web]
        image = "registry.example/app:2"
        depends_on = { db = "started" }
        "#,
    )
    .image("registry.example/app:2", &digest('2'))
    .image("registry.example/db:1", &digest('a'))
    .add("db", 2, exited(0, 10, HOUR), |_| {})
    .plan();
    golden(&plan, "wait container/web: waiting for db to be started");
    assert!(pruned(&plan).is_empty());
}

#[test]
fn replacement_in_failure_backoff_keeps_the_old_image() {
    let plan = moved_web("[container.web]\nimage = \"registry.example/app:2\"\n")
        .image("registry.example/app:2", &digest('2'))
        .failure("container/web", 1, 0)
        .plan();
    golden(
        &plan,
        "
        wait container/web until=+1000ms: failed 1 time(s), retrying in 1s: boom
        wake +1000ms
        ",
    );
    // Once the backoff is over, the replacement runs and the old image goes after it.
    let plan = moved_web("[container.web]\nimage = \"registry.example/app:2\"\n")
        .image("registry.example/app:2", &digest('2'))
        .failure("container/web", 1, 1_000)
        .plan();
    golden(
        &plan,
        "
        replace container/web old=[web-00000001]
        prune-images [registry.example/app:1] after=[0]
        ",
    );
}

#[test]
fn removal_in_failure_backoff_keeps_the_image() {
    // An undescribed container whose removal failed a moment ago.
    let plan = World::new("")
        .image("registry.example/gone:1", &digest('c'))
        .image("registry.example/junk:1", &digest('d'))
        .with(undescribed(1, running()))
        .failure("container-id/gone-00000001", 1, 0)
        .plan();
    golden(
        &plan,
        "
        prune-images [registry.example/junk:1]
        wait container-id/gone-00000001 until=+1000ms: failed 1 time(s), retrying in 1s: boom
        wake +1000ms
        ",
    );
    // A stale container of a described entry whose removal failed a moment ago.
    let plan = moved_web("[container.web]\nimage = \"registry.example/app:2\"\n")
        .image("registry.example/app:2", &digest('2'))
        .add("web", 2, running(), |_| {})
        .failure("container-id/web-00000001", 1, 0)
        .plan();
    golden(
        &plan,
        "
        wait container-id/web-00000001 until=+1000ms: failed 1 time(s), retrying in 1s: boom
        wake +1000ms
        ",
    );
}

// ---------------------------------------------------------------------------------------
// Waits, keys and formats.

#[test]
fn wake_is_the_earliest_timed_wait() {
    let plan = World::new(
        r#"
        [container.a]
        image = "registry.example/app:1"
        [container.b]
        image = "registry.example/app:1"
        [container.c]
        image = "registry.example/nope:1"
        "#,
    )
    .image("registry.example/app:1", &digest('a'))
    .failure("image/registry.example/nope:1", 1, 0)
    .add("a", 1, exited(1, 10, 0), |c| c.restarts.streak = 2)
    .add("b", 2, exited(1, 10, 700), |_| {})
    .plan();
    golden(
        &plan,
        r#"
        wait image/registry.example/nope:1 until=+1000ms: failed 1 time(s), retrying in 1s: boom
        wait container/a until=+4000ms: exited with code 1; restart policy "always" (restart #1): restarting in 4s (backoff)
        wait container/b until=+300ms: exited with code 1; restart policy "always" (restart #1): restarting in 300ms (backoff)
        wait container/c: waiting for its image registry.example/nope:1
        wake +300ms
        "#,
    );
}

#[test]
fn action_keys() {
    let n = |s: &str| s.parse::<crate::spec::name::Name>().unwrap();
    let cases = [
        (
            Action::Pull {
                image: "registry.example/app:1".into(),
            },
            "image/registry.example/app:1",
        ),
        (Action::CreateVolume { name: n("data") }, "volume/data"),
        (Action::Run { name: n("web") }, "container/web"),
        (
            Action::Start {
                name: n("web"),
                id: "web-1".into(),
            },
            "container/web",
        ),
        (
            Action::Restart {
                name: n("web"),
                id: "web-1".into(),
                streak: 3,
            },
            "container/web",
        ),
        (
            Action::Replace {
                name: n("web"),
                old: vec!["web-1".into()],
            },
            "container/web",
        ),
        (
            Action::Stop {
                name: n("web"),
                id: "web-1".into(),
            },
            "container/web",
        ),
        (
            Action::Remove {
                name: "web".into(),
                id: "web-1".into(),
            },
            "container-id/web-1",
        ),
        (
            Action::Remove {
                name: String::new(),
                id: "x-2".into(),
            },
            "container-id/x-2",
        ),
        (
            Action::PruneImages {
                images: vec!["a".into()],
            },
            "prune/images",
        ),
    ];
    for (action, key) in cases {
        assert_eq!(action.key(), key, "{action:?}");
    }
}

#[test]
fn plan_json_shape() {
    let plan = World::new(WEB)
        .failure("image/registry.example/app:1", 1, 0)
        .plan();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "steps": [],
            "waits": [
                {
                    "key": "image/registry.example/app:1",
                    "reason": "failed 1 time(s), retrying in 1s: boom",
                    "until_ms": NOW + 1000,
                },
                {
                    "key": "container/web",
                    "reason": "waiting for its image registry.example/app:1",
                },
            ],
            "kept": [],
            "prune_blocked": null,
            "wake_at_ms": NOW + 1000,
        })
    );
    let plan = World::new(WEB).plan();
    let hash = desired(WEB).containers["web"]
        .spec_hash()
        .unwrap()
        .to_string();
    assert_eq!(
        serde_json::to_value(&plan.steps).unwrap(),
        serde_json::json!([
            {"action": {"action": "pull", "image": "registry.example/app:1"}, "after": [], "reason": "not in the store"},
            {"action": {"action": "run", "name": "web"}, "after": [0], "reason": "described, not present", "spec": hash},
        ])
    );
}

#[test]
fn human_ms_and_short_digest_tables() {
    for (ms, want) in [
        (0, "0s"),
        (1, "1ms"),
        (999, "999ms"),
        (1_000, "1s"),
        (1_999, "1s"),
        (61_500, "1m 1s"),
        (HOUR + 1, "1h"),
    ] {
        assert_eq!(human_ms(ms), want, "{ms}");
    }
    for (d, want) in [
        (digest('a'), "aaaaaaaaaaaa".to_string()),
        ("sha256:0123".to_string(), "0123".to_string()),
        (
            "md5:0123456789abcdef".to_string(),
            "md5:01234567".to_string(),
        ),
    ] {
        assert_eq!(short_digest(&d), want);
    }
}

// ---------------------------------------------------------------------------------------
// Found in review: unknown states, lost backoff, failures of a changed entry, prune grace.

#[test]
fn a_container_whose_state_cannot_be_read_blocks_its_entry() {
    let unknown = || Phase::Unknown {
        reason: "EIO".into(),
    };
    // Described: no run beside it, no replace, no restart, just a wait.
    let w = World::new(WEB).images_present();
    let plan = w.clone().add("web", 1, unknown(), |_| {}).plan();
    assert!(plan.steps.is_empty(), "{}", render(&plan));
    assert!(
        plan.waits[0].reason.contains("cannot be read"),
        "{:?}",
        plan.waits
    );
    // Even with a changed spec (it would otherwise be replaced).
    let plan = w
        .clone()
        .add("web", 1, unknown(), |c| c.spec_hash = "sha256:old".into())
        .plan();
    assert!(plan.steps.is_empty(), "{}", render(&plan));
    // Undescribed: kept, never removed, and its image stays.
    let plan = w
        .image("registry.example/gone:1", &digest('c'))
        .with(container(
            "gone",
            2,
            "sha256:x",
            "registry.example/gone:1",
            &digest('c'),
            unknown(),
        ))
        .plan();
    golden(
        &plan,
        "
                run container/web
        kept container/gone: gone-00000002 is no longer described, but its state cannot be read (EIO)
        ",
    );
}

#[test]
fn a_lost_container_backs_off_from_its_last_start() {
    let lost_at = |started: Option<u64>| Phase::Lost {
        reason: "its monitor is gone".into(),
        running: false,
        started_at_ms: started,
    };
    // Started 100 ms ago, lost already, third time in a row: waits initial · 2^2.
    let w = World::new(BACKOFF).images_present();
    let plan = w
        .clone()
        .add("web", 1, lost_at(Some(NOW - 100)), |c| {
            c.restarts.streak = 2
        })
        .plan();
    assert!(plan.steps.is_empty(), "{}", render(&plan));
    let delay = backoff_delay_ms(&desired(BACKOFF).containers["web"].backoff, 3);
    assert_eq!(plan.wake_at_ms, Some(NOW - 100 + delay));
    // Lost long after its start (a stable run): restarted at once with the streak reset.
    let plan = w
        .add("web", 1, lost_at(Some(NOW - 10 * HOUR)), |c| {
            c.restarts.streak = 5
        })
        .plan();
    golden(&plan, "restart container/web id=web-00000001 streak=0");
}

#[test]
fn a_changed_entry_is_tried_at_once_despite_earlier_failures() {
    let w = World::new(WEB).images_present();
    let failed = |spec: &str| {
        let mut w = w.clone().failure("container/web", 5, 100);
        if let Some(f) = w.failures.get_mut("container/web") {
            f.spec = Some(spec.into());
        }
        w
    };
    // The same entry that failed: it waits out its backoff.
    let hash = desired(WEB).containers["web"]
        .spec_hash()
        .unwrap()
        .to_string();
    let plan = failed(&hash).plan();
    assert!(plan.steps.is_empty(), "{}", render(&plan));
    // Another entry (the file was fixed): planned now.
    let plan = failed("sha256:before-the-fix").plan();
    golden(&plan, "run container/web");
    assert_eq!(plan.steps[0].spec.as_deref(), Some(hash.as_str()));
}

#[test]
fn an_undescribed_container_goes_only_after_the_grace_period() {
    let w = World::new(WEB)
        .images_present()
        .add("web", 1, running(), |_| {})
        .with(undescribed(2, running()));
    let mut fresh = w.clone();
    fresh.grace_ms = 3_000;
    // Missing since now: kept for the grace period, with a wake-up when it ends.
    let plan = fresh.plan();
    assert!(plan.steps.is_empty(), "{}", render(&plan));
    assert_eq!(plan.wake_at_ms, Some(NOW + 3_000));
    assert!(plan.waits[0].reason.contains("unless its entry comes back"));
    // Missing for longer than that: removed.
    let mut old = fresh.clone();
    old.missing_since.insert("gone".into(), NOW - 3_000);
    golden(&old.plan(), "remove container/gone id=gone-00000002");
}

#[test]
fn a_prune_hold_keeps_everything_and_says_why() {
    let mut w = World::new(WEB)
        .images_present()
        .add("web", 1, running(), |_| {})
        .with(undescribed(2, running()));
    w.hold = Some("the directory is empty".into());
    let plan = w.plan();
    assert!(plan.steps.is_empty(), "{}", render(&plan));
    assert_eq!(
        plan.prune_blocked.as_deref(),
        Some("the directory is empty")
    );
    assert_eq!(plan.kept.len(), 1);
}

const NET: &str = r#"
[network.front]
subnet = "10.89.1.0/24"

[container.web]
image = "registry.example/app:1"
networks = ["front"]
ports = ["8080:80"]
"#;

#[test]
fn a_new_network_comes_before_the_containers_on_it() {
    let w = World::new(NET).images_present();
    golden(
        &w.plan(),
        "ensure-network network/front
         run container/web after=[0]",
    );
    assert_eq!(
        reasons(&w.plan())[0],
        "ensure-network network/front: described, not present"
    );
}

#[test]
fn a_converged_network_plans_nothing() {
    let w = World::new(NET)
        .images_present()
        .network("front", None, true, &["web-00000001"]);
    let w = {
        let c = w.current("web", 1, running());
        w.with(c)
    };
    golden(&w.plan(), "");
}

#[test]
fn a_deleted_bridge_is_created_again_without_touching_running_containers() {
    let w = World::new(NET)
        .images_present()
        .network("front", None, false, &["web-00000001"]);
    let w = {
        let c = w.current("web", 1, running());
        w.with(c)
    };
    golden(&w.plan(), "ensure-network network/front");
    assert!(reasons(&w.plan())[0].contains("its bridge berth0 is missing"));
}

#[test]
fn a_new_subnet_updates_the_network_then_replaces_its_containers() {
    let before = World::new(NET).images_present();
    let old = before.current("web", 1, running());
    let w = World::new(&NET.replace("10.89.1.0/24", "10.89.9.0/24"))
        .images_present()
        .network("front", Some("sha256:old"), true, &["web-00000001"])
        .with(old);
    golden(
        &w.plan(),
        "ensure-network network/front
         replace container/web old=[web-00000001] after=[0]",
    );
}

#[test]
fn internal_replaces_the_containers_after_the_network() {
    let before = World::new(NET).images_present();
    let old = before.current("web", 1, running());
    let changed = NET
        .replace(
            "subnet = \"10.89.1.0/24\"",
            "subnet = \"10.89.1.0/24\"\ninternal = true",
        )
        .replace("ports = [\"8080:80\"]\n", "");
    let w = World::new(&changed)
        .images_present()
        .network("front", Some("sha256:old"), true, &["web-00000001"])
        .with(old);
    golden(
        &w.plan(),
        "ensure-network network/front
         replace container/web old=[web-00000001] after=[0]",
    );
}

#[test]
fn labels_change_only_the_network() {
    let before = World::new(NET).images_present();
    let old = before.current("web", 1, running());
    let changed = NET.replace(
        "subnet = \"10.89.1.0/24\"",
        "subnet = \"10.89.1.0/24\"\nlabels = { tier = \"public\" }",
    );
    let w = World::new(&changed)
        .images_present()
        .network("front", Some("sha256:old"), true, &["web-00000001"])
        .with(old);
    golden(&w.plan(), "ensure-network network/front");
}

#[test]
fn an_undescribed_network_goes_after_the_containers_on_it() {
    let before = World::new(NET).images_present();
    let old = before.current("web", 1, running());
    let mut w = World::new("")
        .network_from(&before, "front", &["web-00000001"])
        .with(old);
    w.observed.images = before.observed.images.clone();
    golden(
        &w.plan(),
        "remove container/web id=web-00000001
         remove-network network/front after=[0]
         prune-images [registry.example/app:1] after=[0]",
    );
}

#[test]
fn an_undescribed_network_a_container_still_uses_is_kept() {
    let before = World::new(NET).images_present();
    // A holder the reconciler does not remove (made by hand with `berth run`).
    let w = World::new("").network_from(&before, "front", &["manual-00000001"]);
    golden(
        &w.plan(),
        "kept network/front: no longer described, but still used by manual-00000001",
    );
}

#[test]
fn an_undescribed_network_is_kept_when_pruning_is_blocked() {
    let before = World::new(NET).images_present();
    let mut w = World::new("").network_from(&before, "front", &[]);
    w.complete = false;
    let plan = w.plan();
    assert!(plan.steps.is_empty(), "{plan:#?}");
    assert!(plan.kept[0].key == "network/front" && plan.kept[0].reason.contains("kept because"));
}

#[test]
fn rules_that_differ_from_the_state_are_rebuilt_once() {
    let w = World::new(NET)
        .images_present()
        .network("front", None, true, &["web-00000001"])
        .rules_out_of_sync();
    let w = {
        let c = w.current("web", 1, running());
        w.with(c)
    };
    golden(&w.plan(), "repair-network-rules");
    // A network step rebuilds them anyway: no second step.
    let w = w.network("front", None, false, &["web-00000001"]);
    golden(&w.plan(), "ensure-network network/front");
}

#[test]
fn restarts_wait_for_a_network_being_repaired() {
    let w = World::new(&NET.replace("image = ", "restart = \"always\"\nimage = "))
        .images_present()
        .network("front", None, false, &["web-00000001"]);
    let w = {
        let c = w.current("web", 1, exited(1, HOUR, HOUR));
        w.with(c)
    };
    golden(
        &w.plan(),
        "ensure-network network/front
         restart container/web id=web-00000001 streak=0 after=[0]",
    );
}

#[test]
fn nothing_is_done_to_networks_that_cannot_be_read() {
    let mut w = World::new(NET).images_present();
    w.observed.networks.readable = false;
    w.observed.networks.rules_in_sync = false;
    let plan = w.plan();
    assert!(
        !plan.steps.iter().any(|s| matches!(
            s.action,
            Action::EnsureNetwork { .. }
                | Action::RemoveNetwork { .. }
                | Action::RepairNetworkRules
        )),
        "{plan:#?}"
    );
    assert!(plan.waits.iter().any(|w| w.key == "network/front"));
}

// ---------------------------------------------------------------------------------------
// Start-first updates and health.

const START_FIRST: &str = r#"
[network.front]
subnet = "10.89.1.0/24"

[container.web]
image = "registry.example/app:1"
networks = ["front"]
ports = ["8080:80"]
health = { tcp = 80 }
update = "start-first"
update_timeout = "1m"
drain = "5s"
"#;

/// `web-00000001` made from an older spec, running, healthy, with the ports `hold`.
fn old_web(hold: Option<PortHold>) -> ObservedContainer {
    let mut c = container(
        "web",
        1,
        "older-spec",
        "registry.example/app:1",
        &digest('a'),
        running(),
    );
    c.health = Some(Health::Healthy);
    c.ports = hold;
    c
}

const SERVING: Option<PortHold> = Some(PortHold::Serving {
    since_ms: NOW - HOUR,
});

/// The update's world: the network is there, the old container serves.
fn update_world() -> World {
    World::new(START_FIRST)
        .images_present()
        .network("front", None, true, &["web-00000001"])
        .with(old_web(SERVING))
}

fn started(ago_ms: u64) -> Phase {
    Phase::Running {
        started_at_ms: NOW - ago_ms,
    }
}

#[test]
fn a_start_first_update_starts_the_new_container_beside_the_serving_one() {
    let plan = update_world().plan();
    golden(&plan, "start-first container/web serving=[web-00000001]");
    assert_eq!(plan.updating, vec!["web".to_string()]);
    assert!(
        reasons(&plan)[0].contains("web-00000001: its spec changed; start-first"),
        "{:?}",
        reasons(&plan)
    );
}

#[test]
fn start_first_table() {
    let standby = Some(PortHold::Standby);
    let serving_since = |ago: u64| {
        Some(PortHold::Serving {
            since_ms: NOW - ago,
        })
    };
    let superseded = Some(PortHold::Superseded {
        since_ms: NOW - 2_000,
    });
    // (new container's phase, its ports, its health, the old one's ports, expected)
    type Case = (
        Phase,
        Option<PortHold>,
        Option<Health>,
        Option<PortHold>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            // Created by a pass that was cut short: started, the old one untouched.
            Phase::Created,
            None,
            None,
            SERVING,
            "start container/web id=web-00000002",
        ),
        (
            started(10_000),
            standby,
            Some(Health::Starting),
            SERVING,
            "wait container/web until=+50000ms: start-first update: waiting for web-00000002 to become healthy (at most 50s more); web-00000001 serves
             wake +50000ms",
        ),
        (
            started(60_000),
            standby,
            Some(Health::Starting),
            SERVING,
            "abort-update container/web id=web-00000002 why=web-00000002 was not healthy within update_timeout 1m",
        ),
        (
            started(10_000),
            standby,
            Some(Health::Healthy),
            SERVING,
            "take-over container/web id=web-00000002 from=[web-00000001]",
        ),
        (
            started(10_000),
            standby,
            Some(Health::Unhealthy),
            SERVING,
            "abort-update container/web id=web-00000002 why=web-00000002 is unhealthy",
        ),
        (
            started(10_000),
            serving_since(2_000),
            Some(Health::Healthy),
            superseded,
            "wait container/web until=+3000ms: start-first update: web-00000002 serves; web-00000001 drains for 3s more
             wake +3000ms",
        ),
        (
            started(10_000),
            serving_since(5_000),
            Some(Health::Healthy),
            superseded,
            "remove container/web id=web-00000001",
        ),
        (
            exited(1, 1_000, 500),
            None,
            None,
            SERVING,
            "abort-update container/web id=web-00000002 why=web-00000002 exited with code 1",
        ),
        (
            // The old one died meanwhile: nothing to protect; it goes, the new one takes over
            // once healthy.
            started(10_000),
            standby,
            Some(Health::Starting),
            None,
            "wait container/web: web-00000002 takes over the published ports once healthy (nothing else serves them)",
        ),
    ];
    for (phase, hold, health, old_hold, want) in cases {
        let mut w = World::new(START_FIRST).images_present().network(
            "front",
            None,
            true,
            &["web-00000001", "web-00000002"],
        );
        let mut old = old_web(old_hold);
        if old_hold.is_none() {
            old.phase = exited(0, HOUR, 1_000);
        }
        w = w.with(old).add("web", 2, phase.clone(), |c| {
            c.ports = hold;
            c.health = health;
        });
        let plan = w.plan();
        let mut want = norm(want);
        if old_hold.is_none() {
            // A stopped old container is simply stale.
            want = format!("remove container/web id=web-00000001\n{want}");
        }
        assert_eq!(
            render(&plan),
            want,
            "{phase:?} {hold:?} {health:?} {old_hold:?}"
        );
        assert_eq!(plan.updating, vec!["web".to_string()], "{phase:?} {hold:?}");
    }
}

#[test]
fn an_aborted_update_waits_out_its_backoff_and_is_not_under_way() {
    let w = update_world();
    let hash = crate::spec::hash::container_hash(&w.desired, &w.desired.containers["web"])
        .expect("hash")
        .to_string();
    let mut w = w.failure("container/web", 1, 500);
    if let Some(f) = w.failures.get_mut("container/web") {
        f.spec = Some(hash);
    }
    let plan = w.plan();
    assert!(plan.steps.is_empty(), "{}", render(&plan));
    assert!(plan.updating.is_empty());
    assert!(render(&plan).contains("wait container/web until=+500ms: failed 1 time(s)"));
    // Another spec (perhaps the fix) is tried at once.
    let mut w = update_world().failure("container/web", 1, 500);
    if let Some(f) = w.failures.get_mut("container/web") {
        f.spec = Some("another-spec".into());
    }
    golden(
        &w.plan(),
        "start-first container/web serving=[web-00000001]",
    );
}

#[test]
fn an_abandoned_attempt_goes_before_the_next_one_starts() {
    let mut abandoned = container(
        "web",
        2,
        "spec-in-between",
        "registry.example/app:1",
        &digest('a'),
        running(),
    );
    abandoned.ports = Some(PortHold::Standby);
    let w = update_world().with(abandoned);
    golden(
        &w.plan(),
        "remove container/web id=web-00000002
         start-first container/web serving=[web-00000001] after=[0]",
    );
}

#[test]
fn a_start_first_entry_without_an_update_follows_the_usual_rules() {
    // Serving alone, healthy: nothing to do.
    let w = World::new(START_FIRST)
        .images_present()
        .network("front", None, true, &["web-00000001"])
        .add("web", 1, running(), |c| {
            c.ports = SERVING;
            c.health = Some(Health::Healthy);
        });
    golden(&w.plan(), "");
    // First container of the entry: a plain run.
    let w = World::new(START_FIRST)
        .images_present()
        .network("front", None, true, &[]);
    golden(&w.plan(), "run container/web");
    // The old container is gone (exited): stop-first is all that is left.
    let mut old = old_web(None);
    old.phase = exited(0, HOUR, 1_000);
    let w = World::new(START_FIRST)
        .images_present()
        .network("front", None, true, &["web-00000001"])
        .with(old);
    golden(&w.plan(), "replace container/web old=[web-00000001]");
}

#[test]
fn unhealthy_containers_are_stopped_for_their_restart_policy() {
    for (policy, want) in [
        ("always", "stop-unhealthy container/web id=web-00000001"),
        ("on-failure", "stop-unhealthy container/web id=web-00000001"),
        (
            "never",
            "wait container/web: web-00000001 is unhealthy; restart policy \"never\" leaves it as it is",
        ),
    ] {
        let toml = format!(
            "[container.web]\nimage = \"registry.example/app:1\"\nhealth = {{ tcp = 80 }}\nrestart = \"{policy}\"\n"
        );
        let w = World::new(&toml)
            .images_present()
            .add("web", 1, running(), |c| c.health = Some(Health::Unhealthy));
        golden(&w.plan(), want);
    }
    // A start-first container on standby that turned unhealthy with nothing else serving:
    // restarted like any other (it takes the ports when it starts again).
    let w = World::new(START_FIRST)
        .images_present()
        .network("front", None, true, &["web-00000001"])
        .add("web", 1, running(), |c| {
            c.ports = Some(PortHold::Standby);
            c.health = Some(Health::Unhealthy);
        });
    golden(&w.plan(), "stop-unhealthy container/web id=web-00000001");
}

#[test]
fn only_taking_over_settles_a_start_first_failure() {
    let start = Action::StartFirst {
        name: "web".parse().expect("name"),
        serving: vec![],
    };
    assert!(!start.settles());
    let take = Action::TakeOver {
        name: "web".parse().expect("name"),
        id: "web-1".into(),
        from: vec![],
    };
    assert!(take.settles());
    assert_eq!(start.key(), take.key());
}

#[test]
fn a_start_first_update_waits_while_the_networks_cannot_be_read() {
    let mut w = update_world();
    w.observed.networks.readable = false;
    w.observed.containers[0].ports = None;
    let plan = w.plan();
    assert!(
        plan.steps.iter().all(|s| !matches!(
            s.action,
            Action::Replace { .. } | Action::StartFirst { .. } | Action::Remove { .. }
        )),
        "{}",
        render(&plan)
    );
    assert!(
        render(&plan)
            .contains("wait container/web: start-first update: the networks' state cannot be read")
    );
}

#[test]
fn an_old_container_that_ends_during_an_update_is_restarted() {
    let mut old = old_web(Some(PortHold::Down { claimed: true }));
    old.phase = exited(1, HOUR, 10_000);
    let w = World::new(START_FIRST)
        .images_present()
        .network("front", None, true, &["web-00000001", "web-00000002"])
        .with(old)
        .add("web", 2, started(5_000), |c| {
            c.ports = Some(PortHold::Standby);
            c.health = Some(Health::Starting);
        });
    let plan = w.plan();
    golden(
        &plan,
        "restart container/web id=web-00000001 streak=0
         wait container/web until=+55000ms: start-first update: waiting for web-00000002 to become healthy (at most 55s more); web-00000001 serves
         wake +55000ms",
    );
    assert_eq!(plan.updating, vec!["web".to_string()]);
    // The new one is unhealthy: rolled back, never given the ports; the old one comes back.
    let mut old = old_web(Some(PortHold::Down { claimed: true }));
    old.phase = exited(1, HOUR, 10_000);
    let w = World::new(START_FIRST)
        .images_present()
        .network("front", None, true, &["web-00000001", "web-00000002"])
        .with(old)
        .add("web", 2, started(5_000), |c| {
            c.ports = Some(PortHold::Standby);
            c.health = Some(Health::Unhealthy);
        });
    golden(
        &w.plan(),
        "restart container/web id=web-00000001 streak=0
         abort-update container/web id=web-00000002 why=web-00000002 is unhealthy",
    );
}

#[test]
fn going_back_to_the_old_spec_during_the_drain_takes_the_ports_back() {
    // web-00000002 (a newer spec) took over; the entry went back to web-00000001's spec.
    let mut newer = container(
        "web",
        2,
        "newer-spec",
        "registry.example/app:1",
        &digest('a'),
        started(3_000),
    );
    newer.ports = Some(PortHold::Serving {
        since_ms: NOW - 2_000,
    });
    newer.health = Some(Health::Healthy);
    let w = World::new(START_FIRST)
        .images_present()
        .network("front", None, true, &["web-00000001", "web-00000002"])
        .add("web", 1, running(), |c| {
            c.ports = Some(PortHold::Superseded {
                since_ms: NOW - 2_000,
            });
            c.health = Some(Health::Healthy);
        })
        .with(newer);
    golden(
        &w.plan(),
        "take-over container/web id=web-00000001 from=[web-00000002]",
    );
}

const DEPENDS_ON_WEB: &str = r#"
[network.front]
subnet = "10.89.1.0/24"

[container.web]
image = "registry.example/app:1"
networks = ["front"]
ports = ["8080:80"]
health = { tcp = 80 }
update = "start-first"

[container.app]
image = "registry.example/app:1"
depends_on = { web = "healthy" }
"#;

#[test]
fn dependents_count_the_old_container_while_an_update_is_under_way_or_failed() {
    let w = World::new(DEPENDS_ON_WEB)
        .images_present()
        .network("front", None, true, &["web-00000001"])
        .with(old_web(SERVING))
        .add("app", 1, exited(137, HOUR, 10_000), |_| {});
    // web's update waits out its backoff; app is restarted all the same.
    let hash = crate::spec::hash::container_hash(&w.desired, &w.desired.containers["web"])
        .expect("hash")
        .to_string();
    let mut w = w.failure("container/web", 1, 500);
    if let Some(f) = w.failures.get_mut("container/web") {
        f.spec = Some(hash);
    }
    let plan = w.plan();
    assert!(
        render(&plan).contains("restart container/app id=app-00000001"),
        "{}",
        render(&plan)
    );
    // A new container on standby does not count, even when healthy: it does not serve yet.
    let w = World::new(DEPENDS_ON_WEB)
        .images_present()
        .network("front", None, true, &["web-00000001"])
        .with(old_web(Some(PortHold::Superseded { since_ms: NOW })))
        .add("web", 2, started(1_000), |c| {
            c.ports = Some(PortHold::Standby);
            c.health = Some(Health::Healthy);
        });
    let plan = w.plan();
    assert!(
        render(&plan).contains("wait container/app: waiting for web to be healthy"),
        "{}",
        render(&plan)
    );
}

#[test]
fn changing_only_the_update_policy_replaces_nothing() {
    let before = World::new(START_FIRST).images_present();
    let running_web = {
        let mut c = before.current("web", 1, running());
        c.ports = SERVING;
        c.health = Some(Health::Healthy);
        c
    };
    let after = World::new(
        &START_FIRST
            .replace("drain = \"5s\"", "drain = \"30s\"")
            .replace("update_timeout = \"1m\"", "update_timeout = \"5m\""),
    )
    .images_present()
    .network("front", None, true, &["web-00000001"])
    .with(running_web.clone());
    golden(&after.plan(), "");
    let stop_first = World::new(&START_FIRST.replace("update = \"start-first\"", ""))
        .images_present()
        .network("front", None, true, &["web-00000001"])
        .with(running_web);
    golden(&stop_first.plan(), "");
}

// ---------------------------------------------------------------------------------------
// One-shot jobs: `depends_on = { migrate = "completed" }`.

const JOB: &str = r#"
[container.migrate]
image = "registry.example/app:1"
command = ["migrate"]
restart = "never"

[container.web]
image = "registry.example/app:1"
depends_on = { migrate = "completed" }
"#;

const JOB_ON_FAILURE: &str = r#"
[container.migrate]
image = "registry.example/app:1"
command = ["migrate"]
restart = "on-failure"

[container.web]
image = "registry.example/app:1"
depends_on = { migrate = "completed" }
"#;

fn killed(signal: i32) -> Phase {
    Phase::Exited {
        exit: ExitRecord {
            code: None,
            signal: Some(signal),
            ..exit(0, 10, HOUR)
        },
    }
}

const BLOCKED_3: &str = "
    blocked container/migrate: job migrate-00000001 failed with exit code 3; it is not run again until its spec changes (its output: `berth logs migrate-00000001`; to run it again as it is: `berth rm migrate-00000001`)
    blocked container/web: blocked: migrate failed with exit code 3
";

#[test]
fn completed_dependency_table() {
    let unhealthy_stop = Phase::Exited {
        exit: ExitRecord {
            stopped_because: Some("unhealthy".into()),
            ..exit(0, 10, HOUR)
        },
    };
    let never_ran = Phase::Exited {
        exit: ExitRecord {
            code: None,
            error: Some("no such binary".into()),
            ..exit(0, 10, HOUR)
        },
    };
    // (name, migrate's state, web's state, expected)
    let cases: Vec<(&str, Option<Phase>, Option<Phase>, String)> = vec![
        (
            "nothing yet: the job runs, its dependent waits for it to end (not just to start)",
            None,
            None,
            "
            run container/migrate
            wait container/web: waiting for migrate to complete
            "
            .into(),
        ),
        (
            "the job is created: started; the dependent waits",
            Some(Phase::Created),
            None,
            "
            start container/migrate id=migrate-00000001
            wait container/web: waiting for migrate to complete
            "
            .into(),
        ),
        (
            "the job runs: both wait (no timed wake-up: its exit wakes the agent)",
            Some(running()),
            None,
            "
            wait container/migrate: job migrate-00000001 runs; waiting for it to complete
            wait container/web: waiting for migrate to complete
            "
            .into(),
        ),
        (
            "the job exited 0: completed, the dependent runs, the job is not run again",
            Some(exited(0, 10, HOUR)),
            None,
            "run container/web".into(),
        ),
        (
            "completed and the dependent runs: nothing to do",
            Some(exited(0, 10, HOUR)),
            Some(running()),
            "".into(),
        ),
        (
            "completed, the dependent created: started",
            Some(exited(0, 10, HOUR)),
            Some(Phase::Created),
            "start container/web id=web-00000002".into(),
        ),
        (
            "completed, the dependent exited: restarted per its own policy",
            Some(exited(0, 10, HOUR)),
            Some(exited(1, 10, HOUR)),
            "restart container/web id=web-00000002 streak=1".into(),
        ),
        (
            "the job failed: it and its dependent are blocked, nothing is retried",
            Some(exited(3, 10, HOUR)),
            None,
            BLOCKED_3.into(),
        ),
        (
            "failed long ago: still blocked (no backoff for a job that is not retried)",
            Some(exited(3, 10, 1000 * HOUR)),
            None,
            BLOCKED_3.into(),
        ),
        (
            "the job was killed: blocked",
            Some(killed(9)),
            None,
            "
            blocked container/migrate: job migrate-00000001 failed: killed by signal 9; it is not run again until its spec changes (its output: `berth logs migrate-00000001`; to run it again as it is: `berth rm migrate-00000001`)
            blocked container/web: blocked: migrate failed: killed by signal 9
            "
            .into(),
        ),
        (
            "stopped by berth as unhealthy, even with status 0: failed",
            Some(unhealthy_stop),
            None,
            "
            blocked container/migrate: job migrate-00000001 failed: stopped by berth, unhealthy (exited with code 0); it is not run again until its spec changes (its output: `berth logs migrate-00000001`; to run it again as it is: `berth rm migrate-00000001`)
            blocked container/web: blocked: migrate failed: stopped by berth, unhealthy (exited with code 0)
            "
            .into(),
        ),
        (
            "it never ran (the engine failed): failed",
            Some(never_ran),
            None,
            "
            blocked container/migrate: job migrate-00000001 failed: failed to start: no such binary; it is not run again until its spec changes (its output: `berth logs migrate-00000001`; to run it again as it is: `berth rm migrate-00000001`)
            blocked container/web: blocked: migrate failed: failed to start: no such binary
            "
            .into(),
        ),
        (
            "the job failed while its dependent still runs from before: the dependent is left alone",
            Some(exited(3, 10, HOUR)),
            Some(running()),
            "blocked container/migrate: job migrate-00000001 failed with exit code 3; it is not run again until its spec changes (its output: `berth logs migrate-00000001`; to run it again as it is: `berth rm migrate-00000001`)".into(),
        ),
        (
            "lost while it ran: what is left is stopped; the dependent waits for the verdict",
            Some(lost(false)),
            None,
            "
            stop container/migrate id=migrate-00000001
            wait container/web: waiting for migrate to complete
            "
            .into(),
        ),
        (
            "runs unsupervised: stopped (restart \"never\"); waiting",
            Some(lost(true)),
            None,
            "
            stop container/migrate id=migrate-00000001
            wait container/web: waiting for migrate to complete
            "
            .into(),
        ),
    ];
    for (name, migrate, web, want) in cases {
        let mut w = World::new(JOB).images_present();
        if let Some(p) = migrate.clone() {
            w = w.add("migrate", 1, p, |_| {});
        }
        if let Some(p) = web.clone() {
            w = w.add("web", 2, p, |_| {});
        }
        let plan = w.plan();
        assert_eq!(render(&plan), norm(&want), "{name}");
        assert_eq!(
            plan.wake_at_ms, None,
            "{name}: a job is waited for by its exit"
        );
    }
}

#[test]
fn a_completed_job_is_not_run_again_on_a_fresh_reconciler() {
    // An agent restart: the same records, an empty failure book, a later clock.
    for now in [NOW, NOW + 1000 * HOUR] {
        let mut w = World::new(JOB)
            .images_present()
            .add("migrate", 1, exited(0, 10, HOUR), |_| {})
            .add("web", 2, running(), |_| {});
        w.now = now;
        golden(&w.plan(), "");
    }
    // Observed again with the restart record a previous run left: still nothing.
    let plan = World::new(JOB)
        .images_present()
        .add("migrate", 1, exited(0, 10, HOUR), |c| {
            c.restarts = RestartRecord {
                count: 2,
                streak: 2,
                last_exit: Some(exit(1, 10, 2 * HOUR)),
            }
        })
        .add("web", 2, running(), |_| {})
        .plan();
    golden(&plan, "");
}

#[test]
fn a_job_whose_spec_changed_runs_again_once() {
    let before = World::new(JOB).images_present();
    let after_toml = JOB.replace(
        r#"command = ["migrate"]"#,
        r#"command = ["migrate", "--v2"]"#,
    );
    let old_hash =
        crate::spec::hash::container_hash(&before.desired, &before.desired.containers["migrate"])
            .expect("hash")
            .to_string();
    let old_job = |phase| {
        container(
            "migrate",
            1,
            &old_hash,
            "registry.example/app:1",
            &digest('a'),
            phase,
        )
    };
    // Completed for the old spec, the dependent runs: the job is replaced; the running
    // dependent is not restarted (as Compose).
    let w = World::new(&after_toml)
        .images_present()
        .with(old_job(exited(0, 10, HOUR)))
        .add("web", 2, running(), |_| {});
    golden(
        &w.plan(),
        "replace container/migrate old=[migrate-00000001]",
    );
    // A failed old run does not block the new spec: it runs, the dependent waits for it.
    let w = World::new(&after_toml)
        .images_present()
        .with(old_job(exited(3, 10, HOUR)));
    golden(
        &w.plan(),
        "
        replace container/migrate old=[migrate-00000001]
        wait container/web: waiting for migrate to complete
        ",
    );
    // The new run (container 3) is under way: nothing else happens, but the job is not
    // done yet (`apply --wait` waits for it).
    let w = World::new(&after_toml)
        .images_present()
        .add("migrate", 3, running(), |_| {})
        .add("web", 2, running(), |_| {});
    golden(
        &w.plan(),
        "wait container/migrate: job migrate-00000003 runs; waiting for it to complete",
    );
    // It completed: no step at all, on this pass or any later one.
    let w = World::new(&after_toml)
        .images_present()
        .add("migrate", 3, exited(0, 10, 1000), |_| {})
        .add("web", 2, running(), |_| {});
    golden(&w.plan(), "");
    // A new image behind the tag is a new effective spec too.
    let w = World::new(JOB)
        .images_present()
        .image("registry.example/app:1", &digest('b'))
        .with(container(
            "migrate",
            1,
            &old_hash,
            "registry.example/app:1",
            &digest('a'),
            exited(0, 10, HOUR),
        ));
    let plan = w.plan();
    assert_eq!(
        render(&plan),
        norm(
            "
            replace container/migrate old=[migrate-00000001]
            wait container/web: waiting for migrate to complete
            "
        )
    );
}

#[test]
fn an_on_failure_job_is_retried_with_backoff_and_gates_until_it_succeeds() {
    // Failed a moment ago: backoff, the dependent waits (not blocked).
    let plan = World::new(JOB_ON_FAILURE)
        .images_present()
        .add("migrate", 1, exited(3, 10, 100), |_| {})
        .plan();
    golden(
        &plan,
        "
        wait container/migrate until=+900ms: exited with code 3; restart policy \"on-failure\" (restart #1): restarting in 900ms (backoff)
        wait container/web: waiting for migrate to complete (its last run failed with exit code 3; restart policy \"on-failure\" runs it again)
        wake +900ms
        ",
    );
    // Backoff over: restarted in place; the dependent still waits.
    let plan = World::new(JOB_ON_FAILURE)
        .images_present()
        .add("migrate", 1, exited(3, 10, HOUR), |_| {})
        .plan();
    golden(
        &plan,
        "
        restart container/migrate id=migrate-00000001 streak=1
        wait container/web: waiting for migrate to complete (its last run failed with exit code 3; restart policy \"on-failure\" runs it again)
        ",
    );
    // Exited 0 at last: completed, not restarted, the dependent runs.
    let plan = World::new(JOB_ON_FAILURE)
        .images_present()
        .add("migrate", 1, exited(0, 10, HOUR), |_| {})
        .plan();
    golden(&plan, "run container/web");
}

#[test]
fn jobs_chain_and_mix_with_other_conditions() {
    let toml = r#"
[container.migrate]
image = "registry.example/app:1"
restart = "never"

[container.seed]
image = "registry.example/app:1"
restart = "never"
depends_on = { migrate = "completed" }

[container.db]
image = "registry.example/db:1"

[container.web]
image = "registry.example/app:1"
depends_on = { seed = "completed", db = "started" }
"#;
    // migrate done, seed not yet: seed runs; web waits for seed (db is started in this plan).
    let plan = World::new(toml)
        .images_present()
        .add("migrate", 1, exited(0, 10, HOUR), |_| {})
        .plan();
    golden(
        &plan,
        "
        run container/db
        run container/seed
        wait container/web: waiting for seed to complete
        ",
    );
    // migrate failed: seed is blocked, and web waits for seed (which never runs on this spec).
    let plan = World::new(toml)
        .images_present()
        .add("migrate", 1, exited(1, 10, HOUR), |_| {})
        .add("db", 2, running(), |_| {})
        .plan();
    golden(
        &plan,
        "
        wait container/web: waiting for seed to complete
        blocked container/migrate: job migrate-00000001 failed with exit code 1; it is not run again until its spec changes (its output: `berth logs migrate-00000001`; to run it again as it is: `berth rm migrate-00000001`)
        blocked container/seed: blocked: migrate failed with exit code 1
        ",
    );
    // Both completed: web runs.
    let plan = World::new(toml)
        .images_present()
        .add("migrate", 1, exited(0, 10, HOUR), |_| {})
        .add("seed", 2, exited(0, 10, HOUR), |_| {})
        .add("db", 3, running(), |_| {})
        .plan();
    golden(&plan, "run container/web");
}

#[test]
fn a_plan_with_a_failed_job_is_not_converged_and_says_why_in_text() {
    let plan = World::new(JOB)
        .images_present()
        .add("migrate", 1, exited(3, 10, HOUR), |_| {})
        .plan();
    assert!(plan.steps.is_empty() && plan.waits.is_empty());
    let text = super::render::plan_text(&plan, &BTreeMap::new(), &[]);
    assert!(!text.contains("No changes"), "{text}");
    assert!(
        text.contains("Blocked (until the desired state changes):\n")
            && text.contains("✗ container/web: blocked: migrate failed with exit code 3"),
        "{text}"
    );
}

#[test]
fn completed_on_a_job_that_always_restarts_is_refused() {
    let loaded = files(&[(
        "desired.toml",
        r#"
[container.migrate]
image = "registry.example/app:1"

[container.web]
image = "registry.example/app:1"
depends_on = { migrate = "completed" }
"#,
    )]);
    assert!(!loaded.is_complete());
    assert!(loaded.desired.containers.contains_key("migrate"));
    assert!(!loaded.desired.containers.contains_key("web"));
    let text: Vec<String> = loaded.diagnostics.iter().map(|d| d.one_line()).collect();
    assert!(
        text.iter().any(|t| t.contains("never completes")),
        "{text:#?}"
    );
}

#[test]
fn a_targeted_job_is_still_known_as_a_job() {
    // `--target migrate` keeps migrate's dependencies, not its dependents: the jobs come
    // from the whole desired state, or `apply --wait` would not wait for it.
    let full = desired(
        "[container.migrate]\nimage = \"oci-archive:/x.tar\"\nrestart = \"never\"\n\
         [container.web]\nimage = \"oci-archive:/x.tar\"\ndepends_on = { migrate = \"completed\" }\n",
    );
    let targeted = super::plan::restrict(&full, &["migrate".to_string()].into()).unwrap();
    assert!(jobs_of(&targeted).is_empty());
    let jobs: Vec<String> = jobs_of(&full).iter().map(ToString::to_string).collect();
    assert_eq!(jobs, ["migrate"]);
}

// ---------------------------------------------------------------------------------------
// Shared namespaces.

const POD: &str = r#"
    [container.web]
    image = "registry.example/app:1"

    [container.side]
    image = "registry.example/app:1"
    network = "container:web"
    pid = "container:web"
"#;

#[test]
fn a_sharer_starts_after_its_owner() {
    let plan = World::new(POD).images_present().plan();
    golden(
        &plan,
        "
        run container/web
        run container/side after=[0]
        ",
    );
}

#[test]
fn a_running_sharer_rejoins_an_owner_started_in_the_same_pass() {
    // An owner that ran an hour starts its streak again; a lost one's run is unknown.
    for (owner, streak) in [(exited(1, HOUR, HOUR), 0), (lost(false), 1)] {
        let plan = World::new(POD)
            .images_present()
            .add("web", 1, owner, |_| {})
            .add("side", 2, running(), |c| {
                c.restarts.streak = 3;
            })
            .plan();
        golden(
            &plan,
            &format!(
                "
                restart container/web id=web-00000001 streak={streak}
                rejoin container/side id=side-00000002 streak=3 after=[0]
                "
            ),
        );
        assert!(
            plan.steps[1]
                .reason
                .contains("`web`, whose network namespace it shares, starts in this pass"),
            "{}",
            plan.steps[1].reason
        );
    }
}

#[test]
fn a_sharer_found_stale_rejoins_a_running_owner_and_waits_for_a_stopped_one() {
    let stale = "`web` started again (web-00000003), with a new network namespace";
    let w = World::new(POD)
        .images_present()
        .add("web", 1, running(), |_| {})
        .add("side", 2, running(), |c| c.stale_join = Some(stale.into()));
    let plan = w.plan();
    golden(&plan, "rejoin container/side id=side-00000002 streak=0");
    assert_eq!(
        plan.steps[0].reason,
        format!("{stale}: restarting it in the current namespaces")
    );

    // The owner waits out its backoff: the sharer waits for it, still running.
    let plan = World::new(POD)
        .images_present()
        .add("web", 1, exited(1, 1_000, 100), |_| {})
        .add("side", 2, running(), |c| {
            c.stale_join = Some("`web`, whose network namespace it shares, is not running".into())
        })
        .plan();
    let text = render(&plan);
    assert!(plan.steps.is_empty(), "{text}");
    assert!(
        text.contains("wait container/side: waiting for web to be started"),
        "{text}"
    );
}

#[test]
fn a_stale_sharer_that_never_restarts_is_left_as_it_is_and_unhealthy_goes_first() {
    let never = POD.replace(
        "pid = \"container:web\"",
        "pid = \"container:web\"\nrestart = \"never\"",
    );
    let plan = World::new(&never)
        .images_present()
        .add("web", 1, running(), |_| {})
        .add("side", 2, running(), |c| {
            c.stale_join = Some("owner gone".into())
        })
        .plan();
    golden(
        &plan,
        "wait container/side: owner gone; restart policy \"never\" leaves side-00000002 as it is",
    );

    let checked = format!("{POD}\n    health = {{ exec = [\"true\"] }}\n");
    let plan = World::new(&checked)
        .images_present()
        .add("web", 1, running(), |_| {})
        .add("side", 2, running(), |c| {
            c.stale_join = Some("owner gone".into());
            c.health = Some(Health::Unhealthy);
        })
        .plan();
    golden(&plan, "stop-unhealthy container/side id=side-00000002");
}

#[test]
fn a_sharer_waiting_for_a_healthy_owner_still_runs_after_the_owners_replacement() {
    let toml = POD
        .replace(
            "[container.web]\n    image = \"registry.example/app:1\"",
            "[container.web]\n    image = \"registry.example/app:1\"\n    env = { V = \"2\" }\n    health = { exec = [\"true\"] }",
        )
        + "\n    depends_on = { web = \"healthy\" }\n";
    let w = World::new(&toml).images_present();
    let web_hash_old = "sha256:old";
    // The old web still serves, healthy: what `healthy` alone would be satisfied with.
    let mut old_web = container(
        "web",
        1,
        web_hash_old,
        "registry.example/app:1",
        &digest('a'),
        running(),
    );
    old_web.health = Some(Health::Healthy);
    old_web.ports = SERVING;
    let plan = w
        .clone()
        .with(old_web)
        .add("side", 2, running(), |_| {})
        .plan();
    let text = render(&plan);
    let replace = plan
        .steps
        .iter()
        .position(|s| matches!(s.action, Action::Replace { .. }))
        .unwrap_or_else(|| panic!("{text}"));
    let rejoin = plan
        .steps
        .iter()
        .position(|s| matches!(s.action, Action::Rejoin { .. }))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        plan.steps[rejoin].after.contains(&replace),
        "the rejoin must wait for the owner's replacement:\n{text}"
    );
}
