//! `berth check [--json]`: the host preflight (`preflight::run`) as lines or JSON. Exit 1
//! when a check fails; warnings pass.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use berth::preflight::{self, Check, Verdict};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON report on standard output instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<ExitCode> {
    let checks = preflight::run(root);
    let failed = checks.iter().any(|c| c.verdict == Verdict::Fail);
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({
            "ok": !failed,
            "root": root,
            "checks": checks,
        });
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let fancy = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        for check in &checks {
            write!(out, "{}", render(check, fancy))?;
        }
        let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
        writeln!(
            out,
            "{}: {} ok, {} warning{}, {} failed",
            root.display(),
            count(Verdict::Ok),
            count(Verdict::Warn),
            if count(Verdict::Warn) == 1 { "" } else { "s" },
            count(Verdict::Fail)
        )?;
    }
    out.flush().context("writing to standard output")?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One check: `[ok]   name: found`, then `       fix: …` for anything not ok. On a
/// terminal the marker is ✓, ! or ✗ in colour.
fn render(check: &Check, fancy: bool) -> String {
    let marker = match (check.verdict, fancy) {
        (Verdict::Ok, false) => "[ok]  ",
        (Verdict::Warn, false) => "[warn]",
        (Verdict::Fail, false) => "[FAIL]",
        (Verdict::Ok, true) => "\x1b[32m✓\x1b[0m",
        (Verdict::Warn, true) => "\x1b[33m!\x1b[0m",
        (Verdict::Fail, true) => "\x1b[31m✗\x1b[0m",
    };
    let indent = if fancy { "  " } else { "       " };
    let mut text = format!("{marker} {}: {}\n", check.name, check.found);
    if let Some(fix) = &check.fix {
        text.push_str(&format!("{indent}fix: {fix}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_carry_the_verdict_and_the_fix() {
        let check = Check {
            name: "tini",
            verdict: Verdict::Warn,
            found: "/usr/bin/tini-static: missing".into(),
            fix: Some("apt-get install tini".into()),
        };
        assert_eq!(
            render(&check, false),
            "[warn] tini: /usr/bin/tini-static: missing\n       fix: apt-get install tini\n"
        );
        let ok = Check {
            fix: None,
            verdict: Verdict::Ok,
            ..check
        };
        assert_eq!(
            render(&ok, false),
            "[ok]   tini: /usr/bin/tini-static: missing\n"
        );
        assert!(render(&ok, true).contains('✓'));
    }
}
