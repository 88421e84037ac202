//! One `[container.NAME]` entry: one check per concern, each given only the keys it reads
//! and reporting through [`Report`]. Every check runs even after another found a problem,
//! so all of an entry's problems are reported at once; the container is kept only if none
//! was found.

mod capabilities;
mod depends_on;
mod dns;
mod files;
mod health;
mod identity;
mod image;
mod inputs;
mod labels;

pub(super) use inputs::beside;
pub(super) mod log;
mod mounts;
mod namespaces;
mod networks;
mod ports;
pub(super) mod process;
mod report;
pub(super) mod resources;
mod restart;
mod runtime_keys;
mod secret_env;
mod update;

use crate::spec::diag::Diagnostic;
use crate::spec::loader::Entry;
use crate::spec::model::{Container, Desired};
use crate::spec::raw::RawContainer;

use super::{Names, origin};
use capabilities::resolve_capabilities;
use depends_on::resolve_depends_on;
use dns::resolve_dns;
use health::resolve_health;
use identity::{resolve_groups, resolve_hostname, resolve_user};
use image::resolve_image;
use log::resolve_log;
use mounts::resolve_mounts;
use networks::resolve_network;
use ports::resolve_ports;
use process::{check_arguments, check_exec_limits, resolve_env, resolve_workdir};
use report::Report;
use resources::resolve_resources;
use restart::resolve_backoff;
use runtime_keys::resolve_runtime_keys;
use update::resolve_update;

/// The container, or None when it has a problem (added to `diagnostics`) or refers to an
/// entry that cannot be used. `desired` holds the images and networks already resolved.
pub(super) fn container(
    e: &Entry<RawContainer>,
    desired: &Desired,
    names: &Names,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Container> {
    let raw = &e.raw;
    let what = format!("container `{}`", e.name);
    let report = &mut Report::new(e, &what, diagnostics);

    // Problems are sorted by position in the end; this order only breaks ties.
    let image = resolve_image(raw.image.as_ref(), &desired.images, names, report);
    check_arguments(raw.entrypoint.as_ref(), raw.command.as_ref(), report);
    let mut inputs = std::collections::BTreeMap::new();
    let mut env = inputs::resolve_env_files(raw.env_file.as_ref(), &mut inputs, report);
    env.extend(resolve_env(&raw.env, report));
    check_exec_limits(
        raw.entrypoint.as_ref(),
        raw.command.as_ref(),
        &raw.env,
        report,
    );
    let workdir = resolve_workdir(raw.workdir.as_ref(), report);
    let user = resolve_user(raw.user.as_ref(), report);
    let groups = resolve_groups(&raw.groups, report);
    let labels = labels::resolve_labels(&raw.labels, report);
    let hostname = resolve_hostname(raw.hostname.as_ref(), &e.name, report);
    let network = resolve_network(
        raw.network.as_ref(),
        &raw.networks,
        raw.ports.first().map(|p| p.span()),
        &desired.networks,
        names,
        report,
    );
    let ports = resolve_ports(raw, &network, &desired.networks, report);
    let mounts = resolve_mounts(&raw.mounts, names, &mut inputs, report);
    let backoff = resolve_backoff(raw.backoff.as_ref(), report);
    let (cap_add, cap_drop) = resolve_capabilities(&raw.cap_add, &raw.cap_drop, report);
    let resources = resolve_resources(raw, report);
    let health = raw.health.as_ref().and_then(|h| resolve_health(h, report));
    let update = resolve_update(raw, report);
    let (pid, ipc) = namespaces::resolve_joined(raw, names, report);
    let mut depends_on = resolve_depends_on(&raw.depends_on, &e.name, names, report);
    let network_owner = match &network {
        crate::spec::model::ContainerNetwork::Container(owner) => Some(owner),
        _ => None,
    };
    namespaces::imply_dependencies(
        network_owner.into_iter().chain(&pid).chain(&ipc),
        &mut depends_on,
    );
    let log = resolve_log(raw.log.as_ref(), report);
    let kernel = resolve_runtime_keys(raw, &network, report);
    let files = files::resolve_files(
        &raw.secrets,
        &raw.configs,
        desired,
        names,
        &mut inputs,
        report,
    );
    for f in &files {
        if mounts.iter().any(|m| m.target() == f.target) {
            let d = report
                .diag(
                    crate::spec::diag::Code::MountConflict,
                    report.key_span(),
                    format!(
                        "{what} mounts something else at `{}`, the target of {}",
                        f.target, f.name
                    ),
                )
                .with_help("give the secret or config another `target`, or move the mount");
            report.push(d);
        }
    }
    let secret_env = secret_env::resolve_secret_env(
        &raw.secrets,
        &raw.configs,
        &env,
        &raw.env,
        desired,
        names,
        report,
    );
    let dns = resolve_dns(raw, report);

    if !report.is_clean() {
        return None;
    }
    Some(Container {
        origin: origin(e),
        image: image?,
        entrypoint: raw.entrypoint.as_ref().map(|v| v.get_ref().clone()),
        command: raw.command.as_ref().map(|v| v.get_ref().clone()),
        env,
        workdir,
        user,
        groups,
        hostname,
        labels,
        network,
        pid,
        ipc,
        ports,
        mounts,
        restart: raw.restart,
        backoff,
        stop_signal: raw.stop_signal,
        stop_timeout: raw.stop_timeout.unwrap_or(Container::DEFAULT_STOP_TIMEOUT),
        read_only: raw.read_only,
        runtime: raw.runtime.clone().unwrap_or_default(),
        cap_add,
        cap_drop,
        resources,
        health,
        update,
        depends_on,
        log,
        kernel,
        inputs,
        files,
        secret_env,
        dns,
    })
}
