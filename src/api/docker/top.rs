//! `GET /containers/{id}/top`: `ps` (with the caller's `ps_args`, default `-ef`), keeping
//! the lines of the processes in the container's cgroup, as dockerd does.

use hyper::{Response, StatusCode};
use serde_json::json;

use super::Call;
use crate::api::{Body, error};

pub(super) async fn top(call: Call, asked: String) -> Response<Body> {
    let ps_args = call.query("ps_args").unwrap_or_default();
    let context = call.context.clone();
    super::blocking(move || {
        let seen = match super::gather::one(&context.machine, &asked) {
            Ok(s) => s,
            Err((status, message)) => return error(status, &message),
        };
        if !seen.state.is_running() {
            return error(
                StatusCode::CONFLICT,
                &format!("Container {} is not running", seen.docker_id),
            );
        }
        let pids = match crate::runtime::cgroupfs::hierarchies() {
            Ok(h) => crate::runtime::cgroupfs::processes(&h, &seen.record.cgroup_path),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
        let args: Vec<&str> = if ps_args.trim().is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let output = match std::process::Command::new("ps").args(&args).output() {
            Ok(o) if o.status.success() => o,
            Ok(o) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("ps: {}", String::from_utf8_lossy(&o.stderr).trim()),
                );
            }
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("ps: {e}")),
        };
        match parse(&String::from_utf8_lossy(&output.stdout), &pids) {
            Ok((titles, processes)) => crate::api::json(
                StatusCode::OK,
                &json!({ "Titles": titles, "Processes": processes }),
            ),
            Err(message) => error(StatusCode::INTERNAL_SERVER_ERROR, &message),
        }
    })
    .await
}

/// `ps` output: its titles, and the lines of `pids` split into as many fields (the last,
/// the command, keeps its spaces). Pure.
fn parse(output: &str, pids: &[i32]) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let pid_column = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or("Couldn't find PID field in ps output")?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_column].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let mut process: Vec<String> = fields[..titles.len() - 1]
            .iter()
            .map(|f| f.to_string())
            .collect();
        process.push(fields[titles.len() - 1..].join(" "));
        processes.push(process);
    }
    Ok((titles, processes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_lines_of_the_containers_processes_are_kept() {
        let output = "UID   PID  PPID  C STIME TTY  TIME     CMD\n\
                      root  10   1     0 10:00 ?    00:00:00 sleep 1000\n\
                      root  11   10    0 10:00 ?    00:00:00 /bin/sh -c echo hi\n\
                      root  12   1     0 10:00 ?    00:00:00 other\n";
        let (titles, processes) = parse(output, &[10, 11]).unwrap();
        assert_eq!(titles.len(), 8);
        assert_eq!(processes.len(), 2);
        assert_eq!(processes[0][1], "10");
        assert_eq!(processes[1][7], "/bin/sh -c echo hi");
        assert!(parse("USER COMMAND\nroot x\n", &[1]).is_err());
    }
}
