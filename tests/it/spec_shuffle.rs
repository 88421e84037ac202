//! Property: how a desired state is written — which file holds which resource, file names and
//! order, key order, inline or standard tables, comments and spacing — changes neither the
//! loaded state nor any spec hash. And a real change changes exactly the hashes it should.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth::spec::{self, InputFile, hash};
use proptest::prelude::*;

/// A tiny deterministic generator, so a proptest seed fully describes a case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below n, a usize")
    }
    fn chance(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

#[derive(Debug, Clone)]
struct Resource {
    kind: &'static str,
    name: String,
    /// Top-level keys with their TOML value text.
    keys: Vec<(String, Value)>,
}

/// A value whose writing can vary without changing its meaning.
#[derive(Debug, Clone)]
enum Value {
    Plain(String),
    /// An array whose order does not matter to berth (ports, mounts, networks).
    Set(Vec<String>),
    /// A table: written inline or as a sub-table, in any key order.
    Table(Vec<(String, String)>),
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

fn generate(seed: u64) -> Vec<Resource> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    let networks = 1 + rng.below(3);
    let volumes = 1 + rng.below(3);
    let images = 1 + rng.below(3);
    let containers = 1 + rng.below(8);
    for i in 0..networks {
        let mut keys = vec![(
            "subnet".to_string(),
            Value::Plain(quoted(&format!("10.{}.0.0/16", 10 + i))),
        )];
        if rng.chance() {
            // net0 always has outside access: containers publishing ports join it.
            let internal = i > 0 && rng.chance();
            keys.push(("internal".into(), Value::Plain(internal.to_string())));
        }
        if rng.chance() {
            keys.push((
                "gateway".into(),
                Value::Plain(quoted(&format!("10.{}.0.254", 10 + i))),
            ));
        }
        if rng.chance() {
            keys.push((
                "labels".into(),
                Value::Table(vec![
                    ("tier".into(), quoted("a")),
                    ("owner".into(), quoted("ops")),
                ]),
            ));
        }
        out.push(Resource {
            kind: "network",
            name: format!("net{i}"),
            keys,
        });
    }
    for i in 0..volumes {
        let mut keys = Vec::new();
        if rng.chance() {
            keys.push(("mode".into(), Value::Plain(quoted("0750"))));
            keys.push(("uid".into(), Value::Plain("1000".into())));
        }
        out.push(Resource {
            kind: "volume",
            name: format!("vol{i}"),
            keys,
        });
    }
    for i in 0..images {
        let mut keys = vec![(
            "reference".to_string(),
            Value::Plain(quoted(&format!(
                "registry.example:5000/team/img{i}:v{}",
                rng.below(5)
            ))),
        )];
        if rng.chance() {
            keys.push((
                "pull".into(),
                Value::Plain(quoted(["missing", "always", "never"][rng.below(3)])),
            ));
        }
        if rng.chance() {
            keys.push(("platform".into(), Value::Plain(quoted("linux/arm64/v8"))));
        }
        out.push(Resource {
            kind: "image",
            name: format!("img{i}"),
            keys,
        });
    }
    for i in 0..containers {
        let image = if rng.chance() {
            quoted(&format!("img{}", rng.below(images)))
        } else {
            quoted(&format!("ghcr.io/org/app{i}:1.{i}"))
        };
        let mut keys = vec![("image".to_string(), Value::Plain(image))];
        let mut nets: Vec<String> = (0..networks)
            .filter(|_| rng.chance())
            .map(|n| quoted(&format!("net{n}")))
            .collect();
        if rng.chance() && !nets.is_empty() {
            nets[0] = format!("{{ name = {}, aliases = [\"a{i}\", \"b{i}\"] }}", nets[0]);
        }
        if !nets.is_empty() {
            let on_net0 = nets.iter().any(|n| n.contains("\"net0\""));
            keys.push(("networks".into(), Value::Set(nets)));
            let ports: Vec<String> = (0..rng.below(3))
                .map(|p| quoted(&format!("{}:{}", 20000 + i * 10 + p, 80 + p)))
                .collect();
            if !ports.is_empty() && on_net0 {
                keys.push(("ports".into(), Value::Set(ports)));
            }
        }
        let mut mounts = vec![quoted(&format!("vol{}:/data", rng.below(volumes)))];
        if rng.chance() {
            mounts.push(quoted("tmpfs:/tmp:size=64MiB"));
        }
        if rng.chance() {
            mounts.push("{ type = \"bind\", source = \"/srv/conf\", target = \"/etc/conf\", read_only = true }".into());
        }
        keys.push(("mounts".into(), Value::Set(mounts)));
        if rng.chance() {
            keys.push((
                "command".into(),
                Value::Plain(format!("[\"sh\", \"-c\", \"echo {i}\"]")),
            ));
        }
        if rng.chance() {
            keys.push((
                "env".into(),
                Value::Table(vec![
                    ("A".into(), quoted("1")),
                    ("B".into(), quoted(&format!("x{i}"))),
                    ("TZ".into(), quoted("UTC")),
                ]),
            ));
        }
        if rng.chance() {
            keys.push((
                "memory".into(),
                Value::Plain(quoted(&format!("{}MiB", 64 + i))),
            ));
            keys.push(("cpus".into(), Value::Plain("0.5".into())));
            keys.push(("pids".into(), Value::Plain("128".into())));
        }
        if rng.chance() {
            keys.push(("restart".into(), Value::Plain(quoted("on-failure"))));
            keys.push((
                "backoff".into(),
                Value::Table(vec![
                    ("initial".into(), quoted("2s")),
                    ("max".into(), quoted("1m")),
                ]),
            ));
        }
        if rng.chance() {
            keys.push(("stop_signal".into(), Value::Plain(quoted("SIGINT"))));
            keys.push(("stop_timeout".into(), Value::Plain(quoted("30s"))));
            keys.push((
                "cap_add".into(),
                Value::Set(vec![quoted("NET_ADMIN"), quoted("SYS_TIME")]),
            ));
            keys.push(("read_only".into(), Value::Plain("true".into())));
        }
        if rng.chance() {
            keys.push((
                "health".into(),
                Value::Table(vec![
                    ("tcp".into(), "80".into()),
                    ("interval".into(), quoted("5s")),
                    ("retries".into(), "4".into()),
                ]),
            ));
        }
        if i > 0 && rng.chance() {
            keys.push((
                "depends_on".into(),
                Value::Table(vec![(format!("c{}", rng.below(i)), quoted("started"))]),
            ));
        }
        if rng.chance() {
            keys.push((
                "labels".into(),
                Value::Table(vec![
                    ("team".into(), quoted("x")),
                    ("\"com.example.v\"".into(), quoted("2")),
                ]),
            ));
        }
        out.push(Resource {
            kind: "container",
            name: format!("c{i}"),
            keys,
        });
    }
    out
}

fn render_table(rng: &mut Rng, pairs: &[(String, String)]) -> String {
    let mut pairs = pairs.to_vec();
    rng.shuffle(&mut pairs);
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", body.join(", "))
}

fn render_value(rng: &mut Rng, v: &Value) -> String {
    match v {
        Value::Plain(s) => s.clone(),
        Value::Set(items) => {
            let mut items = items.clone();
            rng.shuffle(&mut items);
            format!("[{}]", items.join(", "))
        }
        Value::Table(pairs) => render_table(rng, pairs),
    }
}

/// Returns the text and whether it is a one-line entry, which must precede every `[header]`
/// of its file (after a header it would land inside that table).
fn render_resource(rng: &mut Rng, r: &Resource) -> (String, bool) {
    let mut keys = r.keys.clone();
    rng.shuffle(&mut keys);
    let eq = if rng.chance() { " = " } else { "=" };
    if rng.below(3) == 0 {
        // One line: `kind.name = { … }`.
        let body: Vec<String> = keys
            .iter()
            .map(|(k, v)| format!("{k}{eq}{}", render_value(rng, v)))
            .collect();
        return (
            format!("{}.{} = {{ {} }}\n", r.kind, r.name, body.join(", ")),
            true,
        );
    }
    let mut text = format!("[{}.{}]\n", r.kind, r.name);
    let mut subtables = Vec::new();
    for (k, v) in &keys {
        if rng.chance() {
            text.push_str("# a comment that means nothing\n\n");
        }
        match v {
            Value::Table(pairs) if rng.chance() => subtables.push((k.clone(), pairs.clone())),
            _ => text.push_str(&format!("{k}{eq}{}\n", render_value(rng, v))),
        }
    }
    for (k, mut pairs) in subtables {
        rng.shuffle(&mut pairs);
        text.push_str(&format!("\n[{}.{}.{k}]\n", r.kind, r.name));
        for (pk, pv) in pairs {
            text.push_str(&format!("{pk}{eq}{pv}\n"));
        }
    }
    (text, false)
}

/// Spread the resources over 1–6 files with random names, in random order and layout.
fn render(resources: &[Resource], seed: u64) -> Vec<InputFile> {
    let mut rng = Rng(seed | 1);
    let files = 1 + rng.below(6);
    let mut order: Vec<&Resource> = resources.iter().collect();
    rng.shuffle(&mut order);
    let mut heads = vec![String::new(); files];
    let mut bodies = vec![String::new(); files];
    for r in order {
        let f = rng.below(files);
        let (text, one_line) = render_resource(&mut rng, r);
        let part = if one_line {
            &mut heads[f]
        } else {
            &mut bodies[f]
        };
        part.push_str(&text);
        part.push('\n');
    }
    let bodies: Vec<String> = heads.into_iter().zip(bodies).map(|(h, b)| h + &b).collect();
    let mut out: Vec<InputFile> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, text)| InputFile {
            path: PathBuf::from(format!("/desired/{:x}-{i}.toml", rng.next() % 4096)),
            text,
        })
        .collect();
    rng.shuffle(&mut out);
    out
}

fn load(files: &[InputFile]) -> (serde_json::Value, BTreeMap<String, hash::SpecHash>) {
    let loaded = spec::load_files(files);
    let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        rendered.is_empty(),
        "generated state must be valid:\n{}\nfiles: {files:#?}",
        rendered.join("\n")
    );
    let json = serde_json::to_value(&loaded.desired).expect("serialize desired");
    (json, hash::all_hashes(&loaded.desired).expect("hashes"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn layout_changes_neither_state_nor_hashes(spec_seed: u64, layout_a: u64, layout_b: u64) {
        let resources = generate(spec_seed);
        let (state_a, hashes_a) = load(&render(&resources, layout_a));
        let (state_b, hashes_b) = load(&render(&resources, layout_b));
        prop_assert_eq!(&state_a, &state_b);
        prop_assert_eq!(&hashes_a, &hashes_b);
        let expected = resources.len();
        prop_assert_eq!(hashes_a.len(), expected);
    }

    #[test]
    fn a_real_change_changes_only_its_own_hash(spec_seed: u64, layout: u64) {
        let mut resources = generate(spec_seed);
        let (_, before) = load(&render(&resources, layout));
        let target = resources.iter().position(|r| r.kind == "container").expect("a container");
        resources[target].keys.push(("workdir".into(), Value::Plain(quoted("/changed"))));
        let (_, after) = load(&render(&resources, layout));
        let changed: Vec<String> = before.keys().filter(|k| before[*k] != after[*k]).cloned().collect();
        prop_assert_eq!(changed, vec![format!("container/{}", resources[target].name)]);
    }
}

#[test]
fn writing_a_default_explicitly_changes_nothing() {
    let implicit = [InputFile {
        path: "/d/a.toml".into(),
        text: "[container.web]\nimage = \"ghcr.io/o/web:1\"\n".into(),
    }];
    let explicit = [InputFile {
        path: "/d/b.toml".into(),
        text: "[container.web]\nimage = \"ghcr.io/o/web:1\"\nrestart = \"always\"\nstop_timeout = \"10s\"\nupdate = \"stop-first\"\nread_only = false\nlog = { max_size = \"10MiB\", max_files = 3 }\nbackoff = { initial = \"1s\" }\nhostname = \"web\"\n".into(),
    }];
    assert_eq!(load(&implicit), load(&explicit));
}

#[test]
fn equivalent_spellings_hash_alike() {
    let a = [InputFile { path: "/d/a.toml".into(), text: "[image.app]\nreference = \"nginx:1\"\n[container.web]\nimage = \"app\"\nmemory = \"1GiB\"\nstop_timeout = \"60s\"\ncap_add = [\"NET_ADMIN\"]\n".into() }];
    let b = [InputFile { path: "/d/b.toml".into(), text: "[image.app]\nreference = \"docker.io/library/nginx:1\"\n[container.web]\nimage = \"docker.io/library/nginx:1\"\nmemory = 1073741824\nstop_timeout = \"1m\"\ncap_add = [\"cap_net_admin\"]\n".into() }];
    assert_eq!(load(&a), load(&b));
}
