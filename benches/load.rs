//! Loading benchmark: 1,000 containers (plus their images, networks and volumes) spread over
//! 200 files, loaded from disk as `berth validate` and every agent pass do. The peer measured
//! in the same run is the floor: reading the same files and parsing them into plain
//! `toml::Table`s with no validation at all.
//!
//! Run: `cargo bench --bench load` (or scripts/bench-load.sh). Target: loading (read, parse,
//! validate, resolve) in under 50 ms median; the row with every spec hash computed is shown
//! too, as `validate --json` and each agent pass need them.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

const FILES: usize = 200;
const CONTAINERS: usize = 1000;
const ROUNDS: usize = 40;

fn write_state(dir: &Path) {
    let per_file = CONTAINERS / FILES;
    for f in 0..FILES {
        let mut text = String::new();
        // Each file is one "app": a network, a volume, an image and five containers.
        let _ = write!(
            text,
            "[network.net{f}]\nsubnet = \"10.{}.{}.0/24\"\n\n[volume.data{f}]\nmode = \"0750\"\n\n[image.img{f}]\nreference = \"registry.example:5000/team/app{f}:1.{f}\"\npull = \"missing\"\n\n",
            f / 250 + 1,
            f % 250
        );
        for c in 0..per_file {
            let i = f * per_file + c;
            let depends = if c > 0 {
                format!("depends_on = {{ c{} = \"started\" }}\n", i - 1)
            } else {
                String::new()
            };
            let _ = write!(
                text,
                "[container.c{i}]\nimage = \"img{f}\"\ncommand = [\"/bin/app\", \"--port\", \"8080\", \"--id\", \"{i}\"]\nenv = {{ TZ = \"UTC\", APP_ID = \"{i}\", LOG = \"info\" }}\nnetworks = [\"net{f}\"]\nports = [\"{}:8080\"]\nmounts = [\"data{f}:/data/{c}\", \"tmpfs:/tmp:size=64MiB\"]\nmemory = \"256MiB\"\ncpus = 0.5\npids = 256\nrestart = \"always\"\nstop_timeout = \"10s\"\ncap_drop = [\"ALL\"]\ncap_add = [\"NET_BIND_SERVICE\"]\n{depends}labels = {{ app = \"app{f}\", idx = \"{c}\" }}\n\n[container.c{i}.health]\nhttp = \"http://127.0.0.1:8080/healthz\"\ninterval = \"5s\"\n\n",
                10000 + i
            );
        }
        std::fs::write(dir.join(format!("app-{f:03}.toml")), text).expect("write bench file");
    }
}

fn measure(mut f: impl FnMut()) -> (Duration, Duration, Duration) {
    f(); // warm the page cache and allocator
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[0], times[ROUNDS / 2], times[ROUNDS - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_state(dir.path());

    let loaded = berth::spec::load_dir(dir.path()).expect("load");
    assert!(
        loaded.is_complete(),
        "bench state must be valid: {:?}",
        loaded.diagnostics.first()
    );
    assert_eq!(loaded.desired.containers.len(), CONTAINERS);

    let (load_min, load_med, load_max) = measure(|| {
        let loaded = berth::spec::load_dir(dir.path()).expect("load");
        assert_eq!(loaded.desired.containers.len(), CONTAINERS);
    });
    let (hash_min, hash_med, hash_max) = measure(|| {
        let loaded = berth::spec::load_dir(dir.path()).expect("load");
        let hashes = berth::spec::hash::all_hashes(&loaded.desired).expect("hash");
        assert!(hashes.len() > CONTAINERS);
    });
    let (toml_min, toml_med, toml_max) = measure(|| {
        let mut tables = 0;
        let mut entries: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).expect("read");
            let table: toml::Table = text.parse().expect("parse");
            tables += table.len();
        }
        assert!(tables >= FILES);
    });

    println!(
        "load {CONTAINERS} containers in {FILES} files ({ROUNDS} rounds, min / median / max):"
    );
    let row = |label: &str, (min, med, max): (Duration, Duration, Duration)| {
        println!(
            "  {label:<24}: {:7.2} / {:7.2} / {:7.2} ms",
            ms(min),
            ms(med),
            ms(max)
        );
    };
    row("berth load_dir", (load_min, load_med, load_max));
    row("berth load_dir + hashes", (hash_min, hash_med, hash_max));
    row("plain toml::Table parse", (toml_min, toml_med, toml_max));
    println!(
        "  ratio (median)          : {:.2}x the unvalidated parse",
        load_med.as_secs_f64() / toml_med.as_secs_f64()
    );
    let verdict = if load_med < Duration::from_millis(50) {
        "met"
    } else {
        "MISSED"
    };
    println!("  target                  : load_dir median < 50 ms -> {verdict}");
}
