//! `health`: exactly one probe (`exec`, `tcp` or `http`), and timings and retries that can
//! be honoured.

use std::ops::Range;
use std::str::FromStr;

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::duration::Duration;
use crate::spec::model::{HealthCheck, Probe};
use crate::spec::raw::RawHealth;
use crate::spec::resolve::span;

use super::report::Report;

/// The health check, or None when it is invalid. Stops at its first problem: the rest of
/// a check with a bad probe says little.
pub(super) fn resolve_health(h: &Spanned<RawHealth>, report: &mut Report) -> Option<HealthCheck> {
    let what = report.what();
    let raw = h.get_ref();
    let at = span(h);
    let given = [raw.exec.is_some(), raw.tcp.is_some(), raw.http.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given != 1 {
        report.push(
            report.diag(Code::InvalidValue, at, format!("{what}: a health check needs exactly one of `exec`, `tcp`, `http` ({given} given)"))
                .with_help("e.g. health = { http = \"http://127.0.0.1:8080/healthz\" } or { tcp = 5432 } or { exec = [\"pg_isready\"] }"),
        );
        return None;
    }
    let probe = if let Some(cmd) = &raw.exec {
        exec_probe(cmd, at.clone(), report)?
    } else if let Some(port) = &raw.tcp {
        tcp_probe(port, report)?
    } else if let Some(url) = &raw.http {
        http_probe(url, report)?
    } else {
        return None;
    };
    let interval = raw.interval.unwrap_or(HealthCheck::DEFAULT_INTERVAL);
    let timeout = raw.timeout.unwrap_or(HealthCheck::DEFAULT_TIMEOUT);
    if interval.is_zero() || timeout.is_zero() {
        report.push(
            report
                .diag(
                    Code::InvalidValue,
                    at,
                    format!("{what}: health interval and timeout must be more than 0s"),
                )
                .with_help("e.g. interval = \"10s\", timeout = \"5s\""),
        );
        return None;
    }
    let retries = match &raw.retries {
        None => HealthCheck::DEFAULT_RETRIES,
        Some(r) => match u32::try_from(*r.get_ref()) {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                report.push(
                    report
                        .diag(
                            Code::InvalidValue,
                            span(r),
                            format!("{what}: health retries = {} is out of range", r.get_ref()),
                        )
                        .with_help("write between 1 and 1000"),
                );
                return None;
            }
        },
    };
    Some(HealthCheck {
        probe,
        interval,
        timeout,
        retries,
        start_period: raw.start_period.unwrap_or(Duration::from_secs(0)),
    })
}

/// `exec`: a command, reported at the whole check (`at`) since the list carries no
/// position of its own.
fn exec_probe(cmd: &[String], at: Range<usize>, report: &mut Report) -> Option<Probe> {
    let what = report.what();
    if cmd.is_empty() || cmd.iter().any(|a| a.contains('\0')) {
        report.push(
            report
                .diag(
                    Code::InvalidValue,
                    at,
                    format!("{what}: health `exec` needs a command"),
                )
                .with_help("e.g. exec = [\"pg_isready\", \"-U\", \"app\"]"),
        );
        return None;
    }
    Some(Probe::Exec(cmd.to_vec()))
}

fn tcp_probe(port: &Spanned<i64>, report: &mut Report) -> Option<Probe> {
    let what = report.what();
    match u16::try_from(*port.get_ref()) {
        Ok(p) if p > 0 => Some(Probe::Tcp(p)),
        _ => {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(port),
                        format!("{what}: health tcp port {} is out of range", port.get_ref()),
                    )
                    .with_help("ports are 1-65535"),
            );
            None
        }
    }
}

/// `http`: a plain-HTTP URL whose host needs no name resolution inside the container's
/// network.
fn http_probe(url: &Spanned<String>, report: &mut Report) -> Option<Probe> {
    let what = report.what();
    match url::Url::from_str(url.get_ref()) {
        Ok(u)
            if u.scheme() == "http"
                && matches!(
                    u.host(),
                    Some(url::Host::Ipv4(_)) | Some(url::Host::Domain("localhost"))
                )
                && u.username().is_empty() =>
        {
            Some(Probe::Http(u.to_string()))
        }
        Ok(u) if u.scheme() == "http" && u.host().is_some() => {
            report.push(
                report.diag(
                    Code::InvalidValue,
                    span(url),
                    format!(
                        "{what}: the health URL's host must be an IPv4 address or localhost, not `{}`",
                        u.host_str().unwrap_or("")
                    ),
                )
                .with_help("it is requested from inside the container's network, where no name is resolved; write e.g. \"http://127.0.0.1:8080/healthz\""),
            );
            None
        }
        Ok(u) if u.scheme() == "https" => {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(url),
                        format!("{what}: https health checks are not supported"),
                    )
                    .with_help("check a plain-HTTP port, or use a `tcp` or `exec` check"),
            );
            None
        }
        _ => {
            report.push(report.diag(Code::InvalidValue, span(url), format!("{what}: invalid health URL `{}`", url.get_ref())).with_help("write e.g. \"http://127.0.0.1:8080/healthz\" (it is requested from inside the container's network)"));
            None
        }
    }
}
