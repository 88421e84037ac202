//! `berth stats [NAME…]`: CPU, memory, pids and block I/O of running containers, from their
//! cgroups; live (refreshed every second) or once with `--no-stream`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use berth::runtime::stats;
use berth::state::record::ContainerRecord;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Containers (names or ids); default: every running one.
    containers: Vec<String>,
    /// Print one sample and exit.
    #[arg(long)]
    no_stream: bool,
    /// Print JSON (implies --no-stream).
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = berth::wiring::runtime(root)?;
    let targets: Vec<ContainerRecord> = if args.containers.is_empty() {
        runtime
            .list()?
            .into_iter()
            .filter(|r| runtime.state(&r.id).is_ok_and(|s| s.is_running()))
            .collect()
    } else {
        args.containers
            .iter()
            .map(|n| runtime.resolve(n))
            .collect::<Result<_, _>>()?
    };
    let host_memory = stats::host_memory().ok();
    let mut probes = Vec::new();
    for r in &targets {
        let probe = stats::Probe::open(Path::new(&r.cgroup_path))?;
        let first = probe.sample()?;
        probes.push((r, probe, first));
    }
    // CPU percentages need two samples.
    std::thread::sleep(Duration::from_millis(if args.json || args.no_stream {
        200
    } else {
        0
    }));
    loop {
        let mut rows = Vec::new();
        for (record, probe, prev) in &mut probes {
            let Ok(now) = probe.sample() else { continue };
            rows.push(stats::Row::new(&record.name, Some(prev), &now, host_memory));
            *prev = now;
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(ExitCode::SUCCESS);
        }
        if !args.no_stream {
            // Clear the screen and go home, like `top`.
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", stats::render_table(&rows));
        if args.no_stream {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
