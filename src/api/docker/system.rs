//! `_ping`, `version` and `info`: what clients ask first. `info` counts berth's containers
//! and images and describes the host as dockerd would; berth's version is the server's.

use hyper::{Response, StatusCode, header};
use serde_json::json;

use super::{Call, MIN_VERSION, VERSION};
use crate::api::{Body, error};

/// `GET`/`HEAD /_ping`: "OK" and the headers clients negotiate from.
pub(super) fn ping(call: &Call) -> Response<Body> {
    let body = if call.method == hyper::Method::HEAD {
        ""
    } else {
        "OK"
    };
    let mut response = crate::api::with_type(StatusCode::OK, "text/plain; charset=utf-8", body);
    let headers = response.headers_mut();
    for (name, value) in [
        ("api-version", VERSION),
        ("builder-version", "1"),
        ("docker-experimental", "false"),
        ("ostype", "linux"),
        ("cache-control", "no-cache, no-store, must-revalidate"),
        ("pragma", "no-cache"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Go's name of this machine's architecture, as dockerd reports it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub(super) async fn version(_call: Call) -> Response<Body> {
    super::blocking(|| {
        let kernel = read_trimmed("/proc/sys/kernel/osrelease");
        let berth = env!("CARGO_PKG_VERSION");
        let body = json!({
            "Platform": { "Name": format!("berth {berth}") },
            "Components": [{
                "Name": "Engine",
                "Version": berth,
                "Details": {
                    "ApiVersion": VERSION,
                    "MinAPIVersion": MIN_VERSION,
                    "GitCommit": "",
                    "GoVersion": "n/a (berth is written in Rust)",
                    "Os": "linux",
                    "Arch": go_arch(),
                    "KernelVersion": kernel,
                    "Experimental": "false",
                    "BuildTime": "",
                },
            }],
            "Version": berth,
            "ApiVersion": VERSION,
            "MinAPIVersion": MIN_VERSION,
            "GitCommit": "",
            "GoVersion": "n/a (berth is written in Rust)",
            "Os": "linux",
            "Arch": go_arch(),
            "KernelVersion": kernel,
            "BuildTime": "",
        });
        crate::api::json(StatusCode::OK, &body)
    })
    .await
}

/// `PRETTY_NAME` of /etc/os-release.
fn operating_system() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (field("PRETTY_NAME"), field("VERSION_ID"))
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

pub(super) async fn info(call: Call) -> Response<Body> {
    let context = call.context.clone();
    super::blocking(move || {
        let seen = match super::gather::all(&context.machine) {
            Ok(s) => s,
            Err((status, message)) => return error(status, &message),
        };
        let running = seen.iter().filter(|s| s.phase.state() == "running").count();
        let images = super::images::config_digests(&context.machine)
            .into_values()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let (os, os_version) = operating_system();
        let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "2"
        } else {
            "1"
        };
        let mut body = json!({
            "ID": super::ids::docker_id(&context.root.display().to_string()),
            "Containers": seen.len(),
            "ContainersRunning": running,
            "ContainersPaused": 0,
            "ContainersStopped": seen.len() - running,
            "Images": images,
            "Driver": "overlay2",
            "DriverStatus": [],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge"],
                "Authorization": null,
                "Log": ["json-file"],
            },
            "MemoryLimit": true,
            "SwapLimit": false,
            "KernelMemory": false,
            "KernelMemoryTCP": false,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "IPv4Forwarding": read_trimmed("/proc/sys/net/ipv4/ip_forward") == "1",
            // As the host has them (berth's rules do not need them; the CLI warns as it
            // would for dockerd).
            "BridgeNfIptables": read_trimmed("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
            "BridgeNfIp6tables": read_trimmed("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1",
            "Debug": false,
            "NFd": 0,
            "OomKillDisable": false,
            "NGoroutines": 0,
            "SystemTime": humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version,
            "NEventsListener": 0,
        });
        let host = json!({
            "KernelVersion": read_trimmed("/proc/sys/kernel/osrelease"),
            "OperatingSystem": os,
            "OSVersion": os_version,
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": [],
                "IndexConfigs": {},
                "Mirrors": [],
            },
            "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "MemTotal": mem_total(),
            "GenericResources": null,
            "DockerRootDir": context.root,
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": read_trimmed("/proc/sys/kernel/hostname"),
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "Runtimes": { "berth": { "path": context.machine.runtime.binary() } },
            "DefaultRuntime": "berth",
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": false,
                "Error": "",
                "RemoteManagers": null,
            },
            // Containers outlive the agent, as with dockerd's live restore.
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": { "ID": "", "Expected": "" },
            "RuncCommit": { "ID": "", "Expected": "" },
            "InitCommit": { "ID": "", "Expected": "" },
            "SecurityOptions": ["name=seccomp,profile=default"],
            "Warnings": [],
        });
        if let (Some(body), serde_json::Value::Object(host)) = (body.as_object_mut(), host) {
            body.extend(host);
        }
        crate::api::json(StatusCode::OK, &body)
    })
    .await
}
