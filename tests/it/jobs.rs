//! One-shot jobs on real containers: a migration job (`restart = "never"`) writing to a
//! volume, and a dependent with `depends_on = { migrate = "completed" }` that starts only
//! after the job exited 0 and reads what it wrote. A job runs once per spec: not again on
//! a re-apply, on an agent restart or on a resync, and exactly once more when its command
//! changes. A failed job blocks its dependent and is reported by `apply`, `plan` and
//! `status`.

use std::time::{Duration, Instant};

use berth::runtime::State;
use berth::state::record::ExitRecord;

use crate::agent::{Agent, containers, sole_running, status_json, wait_for};
use crate::support::images::ready_made::busybox_image;
use crate::support::sandbox::Sandbox;

/// A volume, a job appending one line per run to it, and a server that prints the file
/// when it starts. `v` goes into the job's command (a new `v` is a new spec).
fn stack(image: &str, v: &str, job_exit: u8) -> String {
    format!(
        r#"
[volume.data]

[container.migrate]
image = "{image}"
restart = "never"
mounts = ["data:/data"]
command = ["sh", "-c", "sleep 1; echo migration-{v} >> /data/migrations; echo migrate ran {v}; exit {job_exit}"]

[container.web]
image = "{image}"
mounts = ["data:/data"]
depends_on = {{ migrate = "completed" }}
command = ["sh", "-c", "echo web sees: $(cat /data/migrations | tr '\n' ' '); trap 'exit 0' TERM; while true; do sleep 1; done"]
stop_timeout = "2s"
"#
    )
}

fn exit_of(sb: &Sandbox, id: &str) -> ExitRecord {
    match sb.state(id) {
        State::Exited(exit) => exit,
        other => panic!("{id} has not exited: {other:?}"),
    }
}

fn migrations(sb: &Sandbox) -> String {
    std::fs::read_to_string(sb.root().join("volumes/data/_data/migrations")).unwrap_or_default()
}

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn status_row(sb: &Sandbox, name: &str) -> serde_json::Value {
    let status = status_json(sb);
    status["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no status row for {name}: {status:#}"))
}

#[test]
fn a_job_gates_its_dependent_and_runs_once_per_spec() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let dir = sb.desired();
    let dir = dir.to_str().expect("utf-8");
    sb.write("app.toml", &stack(&image, "1", 0));

    let apply = sb.berth(&["apply", dir, "--wait", "--timeout", "60s"]);
    assert!(apply.status.success(), "{}", output(&apply));
    let jobs = containers(&sb, "migrate");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    let exit = exit_of(&sb, &job.id);
    assert_eq!(exit.code, Some(0), "{exit:?}");
    let web = sole_running(&sb, "web", Duration::from_secs(5));
    let web_started = match sb.state(&web.id) {
        State::Running(m) => m.started_at_ms,
        other => panic!("{other:?}"),
    };
    assert!(
        web_started >= exit.finished_at_ms,
        "web started at {web_started}, before the job ended at {}",
        exit.finished_at_ms
    );
    wait_for(Duration::from_secs(5), "web's output", || {
        sb.logs(&web.id)
            .contains("web sees: migration-1")
            .then_some(())
    });
    assert_eq!(migrations(&sb), "migration-1\n");

    // Shown as a result, not as a problem.
    let row = status_row(&sb, "migrate");
    assert_eq!(row["state"], "completed (exit 0)", "{row:#}");
    let ps = sb.berth(&["ps", "-a"]);
    let ps_text = output(&ps);
    assert!(
        ps.status.success() && ps_text.contains("completed (exited with code 0)"),
        "{ps_text}"
    );

    // A re-apply and a plan: nothing to do; the job is not run again.
    let plan = sb.berth(&["plan", dir, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", output(&plan));
    assert!(output(&plan).contains("No changes"), "{}", output(&plan));
    let apply = sb.berth(&["apply", dir, "--json"]);
    assert!(apply.status.success(), "{}", output(&apply));
    let report: serde_json::Value = serde_json::from_slice(&apply.stdout).expect("json");
    assert_eq!(report["plan"]["steps"], serde_json::json!([]), "{report:#}");

    // An agent, restarted twice, with resyncs every second: the job stays done.
    for _ in 0..2 {
        let agent = Agent::start(&sb, &sb.desired());
        std::thread::sleep(Duration::from_secs(3));
        let log = agent.log();
        assert!(agent.terminate().success(), "{log}");
        assert!(
            !log.contains("migrate"),
            "the agent touched the job:\n{log}"
        );
    }
    let jobs = containers(&sb, "migrate");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].id, job.id);
    assert_eq!(exit_of(&sb, &job.id), exit, "the job ran again");
    assert_eq!(migrations(&sb), "migration-1\n");
    assert_eq!(sole_running(&sb, "web", Duration::from_secs(1)).id, web.id);

    // A new command: the job runs again, once; its running dependent is left alone.
    sb.write("app.toml", &stack(&image, "2", 0));
    let plan = sb.berth(&["plan", dir]);
    let plan_text = output(&plan);
    assert!(
        plan_text.contains("replace  container migrate") && !plan_text.contains("container web"),
        "{plan_text}"
    );
    let apply = sb.berth(&["apply", dir, "--wait", "--timeout", "60s"]);
    assert!(apply.status.success(), "{}", output(&apply));
    let jobs = containers(&sb, "migrate");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_ne!(jobs[0].id, job.id);
    assert_eq!(exit_of(&sb, &jobs[0].id).code, Some(0));
    assert_eq!(migrations(&sb), "migration-1\nmigration-2\n");
    assert_eq!(sole_running(&sb, "web", Duration::from_secs(1)).id, web.id);
    let apply = sb.berth(&["apply", dir, "--wait", "--timeout", "60s"]);
    assert!(apply.status.success(), "{}", output(&apply));
    assert!(output(&apply).contains("No changes"), "{}", output(&apply));
    assert_eq!(migrations(&sb), "migration-1\nmigration-2\n");
}

#[test]
fn the_agent_waits_for_a_job_without_spinning_and_keeps_it_done_across_restarts() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    sb.write(
        "app.toml",
        &stack(&image, "1", 0).replace("sleep 1;", "sleep 4;"),
    );
    let agent = Agent::start(&sb, &sb.desired());
    let job = wait_for(Duration::from_secs(30), "the job to run", || {
        containers(&sb, "migrate")
            .into_iter()
            .find(|r| matches!(sb.state(&r.id), State::Running(_)))
    });
    // While it runs, its dependent waits: not created, and no pass beyond the resyncs (1s)
    // and the follow-ups of the passes that started something.
    let passes_before = agent.log().matches("pass done").count();
    let waited = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    assert!(containers(&sb, "web").is_empty());
    assert!(matches!(sb.state(&job.id), State::Running(_)));
    let passes = agent.log().matches("pass done").count() - passes_before;
    let seconds = waited.elapsed().as_secs_f64();
    assert!(
        (passes as f64) <= seconds + 2.0,
        "{passes} passes in {seconds:.1}s while waiting for the job:\n{}",
        agent.log()
    );
    let web = sole_running(&sb, "web", Duration::from_secs(30));
    let exit = exit_of(&sb, &job.id);
    assert_eq!(exit.code, Some(0));
    wait_for(Duration::from_secs(5), "web's output", || {
        sb.logs(&web.id)
            .contains("web sees: migration-1")
            .then_some(())
    });
    let log = agent.log();
    assert!(agent.terminate().success(), "{log}");

    // The next agent adopts the completed job: not run again.
    let agent = Agent::start(&sb, &sb.desired());
    std::thread::sleep(Duration::from_secs(3));
    let log = agent.log();
    assert!(agent.terminate().success(), "{log}");
    let jobs = containers(&sb, "migrate");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(exit_of(&sb, &job.id), exit, "the job ran again:\n{log}");
    assert_eq!(migrations(&sb), "migration-1\n");
    assert_eq!(sole_running(&sb, "web", Duration::from_secs(1)).id, web.id);
}

#[test]
fn a_failed_job_blocks_its_dependent_and_is_reported() {
    let sb = Sandbox::new();
    let image = sb.image("busybox", &busybox_image());
    let dir = sb.desired();
    let dir = dir.to_str().expect("utf-8");
    sb.write("app.toml", &stack(&image, "1", 3));

    // apply --wait gives up as soon as only the blocked entries are left (not at its
    // timeout), and fails.
    let started = Instant::now();
    let apply = sb.berth(&["apply", dir, "--wait", "--timeout", "60s"]);
    let text = output(&apply);
    assert!(!apply.status.success(), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "apply --wait waited for a blocked entry: {text}"
    );
    assert!(
        text.contains("container/web: blocked: migrate failed with exit code 3")
            && text.contains(", 2 blocked"),
        "{text}"
    );
    let jobs = containers(&sb, "migrate");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(exit_of(&sb, &job.id).code, Some(3));
    assert!(containers(&sb, "web").is_empty(), "web started");
    assert!(sb.logs(&job.id).contains("migrate ran 1"));

    let plan = sb.berth(&["plan", dir]);
    let plan_text = output(&plan);
    assert!(
        plan_text.contains("Blocked (until the desired state changes):")
            && plan_text.contains(&format!(
                "container/migrate: job {} failed with exit code 3",
                job.id
            ))
            && plan_text.contains("container/web: blocked: migrate failed with exit code 3"),
        "{plan_text}"
    );

    let row = status_row(&sb, "migrate");
    assert_eq!(row["state"], "failed (exit code 3)", "{row:#}");
    assert_eq!(row["exit_code"], 3, "{row:#}");
    let log_path = sb
        .runtime
        .layout()
        .container(&job.id)
        .logs()
        .join("container.log");
    let note = row["note"].as_str().unwrap_or_default();
    assert!(
        note.contains(&log_path.display().to_string()) && std::fs::metadata(&log_path).is_ok(),
        "{row:#}"
    );
    let web_row = status_row(&sb, "web");
    assert_eq!(web_row["state"], "missing");
    assert_eq!(
        web_row["note"], "blocked: migrate failed with exit code 3",
        "{web_row:#}"
    );

    // Applying again does not retry the job.
    let apply = sb.berth(&["apply", dir]);
    assert!(!apply.status.success(), "{}", output(&apply));
    let jobs = containers(&sb, "migrate");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].id, job.id);
    assert_eq!(migrations(&sb), "migration-1\n");

    // Fixed: the new spec runs, completes, and the dependent starts.
    sb.write("app.toml", &stack(&image, "2", 0));
    let apply = sb.berth(&["apply", dir, "--wait", "--timeout", "60s"]);
    assert!(apply.status.success(), "{}", output(&apply));
    let web = sole_running(&sb, "web", Duration::from_secs(5));
    wait_for(Duration::from_secs(5), "web's output", || {
        sb.logs(&web.id)
            .contains("web sees: migration-1 migration-2")
            .then_some(())
    });
}
