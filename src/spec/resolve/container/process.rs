//! What the process is started with: `entrypoint`, `command` and `env`, each valid for
//! execve and all of them within its limits, and the working directory.

use std::collections::BTreeMap;

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::resolve::span;

use super::report::Report;

/// The longest single argument or `NAME=VALUE` environment string execve takes, its NUL
/// included (MAX_ARG_STRLEN, 32 pages): longer ones fail with E2BIG at every start.
pub(super) const MAX_ARG_STRLEN: usize = 32 * 4096;
/// What an entry's own arguments and environment may take at execve, each string with its
/// NUL and an 8-byte pointer. The kernel allows a quarter of the stack limit (2 MiB by
/// default) in all; the image's environment and arguments need the rest.
const MAX_EXEC_STRINGS: usize = 1 << 20;
/// Help for both limits.
const LARGE_DATA_HELP: &str = "pass large data as a file: a bind mount or a volume";

/// `entrypoint` and `command`: no NUL in any argument, and an entrypoint names a program.
pub(super) fn check_arguments(
    entrypoint: Option<&Spanned<Vec<String>>>,
    command: Option<&Spanned<Vec<String>>>,
    report: &mut Report,
) {
    let what = report.what();
    for (key, list) in [("entrypoint", entrypoint), ("command", command)] {
        if let Some(list) = list
            && list.get_ref().iter().any(|s| s.contains('\0'))
        {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(list),
                        format!("{what}: `{key}` contains a NUL character"),
                    )
                    .with_help("arguments cannot contain NUL (\\u0000)"),
            );
        }
    }
    if let Some(entrypoint) = entrypoint
        && entrypoint.get_ref().is_empty()
    {
        report.push(
            report
                .diag(
                    Code::InvalidValue,
                    span(entrypoint),
                    format!("{what}: `entrypoint` is empty"),
                )
                .with_help("leave `entrypoint` out to use the image's, or name a program"),
        );
    }
}

/// `env`: the variables whose name and value the kernel can pass on.
pub(super) fn resolve_env(
    env: &BTreeMap<Spanned<String>, Spanned<String>>,
    report: &mut Report,
) -> BTreeMap<String, String> {
    let what = report.what();
    let mut resolved = BTreeMap::new();
    for (key, value) in env {
        let k = key.get_ref();
        if k.is_empty() || k.contains(['=', '\0']) {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(key),
                        format!("{what}: invalid environment variable name `{k}`"),
                    )
                    .with_help("names are non-empty and contain neither `=` nor NUL"),
            );
        } else if value.get_ref().contains('\0') {
            report.push(
                report.diag(
                    Code::InvalidValue,
                    span(value),
                    format!("{what}: the value of environment variable `{k}` contains a NUL character"),
                )
                .with_help("values cannot contain NUL (\\u0000): the kernel would end the variable there"),
            );
        } else {
            resolved.insert(k.clone(), value.get_ref().clone());
        }
    }
    resolved
}

/// `workdir`: an absolute path that stays where it is written.
pub(super) fn resolve_workdir(
    workdir: Option<&Spanned<String>>,
    report: &mut Report,
) -> Option<String> {
    let what = report.what();
    workdir.and_then(|w| {
        let p = w.get_ref();
        if p.starts_with('/') && !p.contains('\0') && !p.split('/').any(|c| c == "..") {
            Some(p.clone())
        } else {
            report.push(
                report
                    .diag(
                        Code::InvalidValue,
                        span(w),
                        format!(
                            "{what}: working directory `{p}` must be an absolute path without `..`"
                        ),
                    )
                    .with_help("write e.g. \"/app\""),
            );
            None
        }
    })
}

/// execve's limits on the entry's own arguments and environment, checked here because
/// the kernel would refuse them only at every start (E2BIG): each string below
/// MAX_ARG_STRLEN, and all of them within MAX_EXEC_STRINGS.
pub(super) fn check_exec_limits(
    entrypoint: Option<&Spanned<Vec<String>>>,
    command: Option<&Spanned<Vec<String>>>,
    env: &BTreeMap<Spanned<String>, Spanned<String>>,
    report: &mut Report,
) {
    const POINTER: usize = 8;
    let what = report.what();
    let mut total = 0;
    let mut too_long = false;
    for (key, list) in [("entrypoint", entrypoint), ("command", command)] {
        let Some(list) = list else { continue };
        for (i, arg) in list.get_ref().iter().enumerate() {
            total += arg.len() + 1 + POINTER;
            if arg.len() + 1 > MAX_ARG_STRLEN {
                too_long = true;
                report.push(
                    report.diag(
                        Code::InvalidValue,
                        span(list),
                        format!(
                            "{what}: `{key}` argument {} is {} bytes, over the kernel's limit of {} for one argument (execve would fail with E2BIG)",
                            i + 1,
                            arg.len(),
                            MAX_ARG_STRLEN - 1
                        ),
                    )
                    .with_help(LARGE_DATA_HELP),
                );
            }
        }
    }
    for (key, value) in env {
        // `NAME=VALUE`, as the process receives it.
        let len = key.get_ref().len() + 1 + value.get_ref().len();
        total += len + 1 + POINTER;
        if len + 1 > MAX_ARG_STRLEN {
            too_long = true;
            report.push(
                report.diag(
                    Code::InvalidValue,
                    span(value),
                    format!(
                        "{what}: environment variable `{}` is {len} bytes as NAME=VALUE, over the kernel's limit of {} for one variable (execve would fail with E2BIG)",
                        key.get_ref(),
                        MAX_ARG_STRLEN - 1
                    ),
                )
                .with_help(LARGE_DATA_HELP),
            );
        }
    }
    // One string too long says enough; the sum is checked once each fits.
    if !too_long && total > MAX_EXEC_STRINGS {
        report.push(
            report.diag(
                Code::InvalidValue,
                report.key_span(),
                format!(
                    "{what}: `entrypoint`, `command` and `env` take {total} bytes at execve (each string with its NUL and an {POINTER}-byte pointer), over the {MAX_EXEC_STRINGS} allowed"
                ),
            )
            .with_help(format!(
                "the kernel allows a quarter of the stack limit (2 MiB by default) for all arguments and environment, the image's included; {LARGE_DATA_HELP}"
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{InputFile, Loaded, load_files};

    /// One container with `body` appended to its table.
    fn load(body: &str) -> Loaded {
        load_files(&[InputFile {
            path: "web.toml".into(),
            text: format!("[container.web]\nimage = \"docker.io/library/app:1\"\n{body}"),
        }])
    }

    fn messages(loaded: &Loaded) -> Vec<String> {
        loaded.diagnostics.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn one_argument_or_variable_fits_execve() {
        let fits = "x".repeat(MAX_ARG_STRLEN - 1);
        let ok = load(&format!(
            "command = [\"{fits}\"]\nentrypoint = [\"{fits}\"]\nenv = {{ A = \"{}\" }}\n",
            &fits[2..]
        ));
        assert_eq!(messages(&ok), Vec::<String>::new());
        assert!(ok.desired.containers.contains_key("web"));

        let over = "x".repeat(MAX_ARG_STRLEN);
        let bad = load(&format!(
            "command = [\"sh\", \"{over}\"]\nenv = {{ A = \"{}\" }}\n",
            &over[2..]
        ));
        let m = messages(&bad);
        assert_eq!(m.len(), 2, "{m:#?}");
        assert!(
            m[0].starts_with("web.toml:3:11: error[invalid-value]: container `web`: `command` argument 2 is 131072 bytes, over the kernel's limit of 131071"),
            "{}",
            m[0]
        );
        assert!(
            m[1].starts_with("web.toml:4:13: error[invalid-value]: container `web`: environment variable `A` is 131072 bytes as NAME=VALUE"),
            "{}",
            m[1]
        );
        assert!(
            m.iter()
                .all(|m| m.contains("help: pass large data as a file"))
        );
        assert!(bad.desired.containers.is_empty());
    }

    #[test]
    fn all_arguments_and_variables_fit_execve() {
        // `V0=…`: each costs its length, a NUL and an 8-byte pointer, 120000 bytes in all.
        const PER: usize = 120_000;
        let value = "x".repeat(PER - "V0=".len() - 1 - 8);
        let env = (0..8)
            .map(|i| format!("V{i} = \"{value}\""))
            .collect::<Vec<_>>()
            .join(", ");
        // A ninth variable and the command fill the rest exactly: fine. One byte more:
        // refused, at the entry's name. (`command` costs 3 + 9 bytes.)
        let rest = MAX_EXEC_STRINGS - 8 * PER - (3 + 9);
        let last = |len: usize| {
            load(&format!(
                "command = [\"abc\"]\nenv = {{ {env}, W = \"{}\" }}\n",
                "x".repeat(len)
            ))
        };
        let exact = last(rest - "W=".len() - 1 - 8);
        assert_eq!(messages(&exact), Vec::<String>::new());
        assert!(exact.desired.containers.contains_key("web"));
        let over = last(rest - "W=".len() - 1 - 8 + 1);
        let m = messages(&over);
        assert_eq!(m.len(), 1, "{m:#?}");
        assert!(
            m[0].starts_with(&format!("web.toml:1:12: error[invalid-value]: container `web`: `entrypoint`, `command` and `env` take {} bytes at execve", MAX_EXEC_STRINGS + 1)),
            "{}",
            m[0]
        );
        assert!(over.desired.containers.is_empty());
    }

    #[test]
    fn a_nul_in_an_env_value_is_blamed_on_the_value() {
        let loaded = load("env = { GOOD = \"a\\u0000b\" }\n");
        assert_eq!(
            messages(&loaded),
            [
                "web.toml:3:16: error[invalid-value]: container `web`: the value of environment variable `GOOD` contains a NUL character\n    | \"a\\u0000b\"\n    = help: values cannot contain NUL (\\u0000): the kernel would end the variable there"
            ]
        );
    }
}
