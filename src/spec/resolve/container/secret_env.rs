//! `secrets = [{ name = "tok", env = "API_TOKEN" }]`: a secret given as an environment
//! variable of the container's process. Only the secret's name and the variable's name
//! enter the model; the value is added at each start from the run root's tmpfs
//! (`runtime::secret_env`), so it never reaches the state root.

use std::collections::BTreeMap;

use toml::Spanned;

use crate::spec::diag::Code;
use crate::spec::loader::Kind;
use crate::spec::model::{Desired, SecretEnv};
use crate::spec::name::Name;
use crate::spec::raw::FileRefEntry;
use crate::spec::resolve::{Names, span};

use super::process::MAX_ARG_STRLEN;
use super::report::Report;

/// The entries of `secrets` that carry `env`, sorted by variable; `env` in a config is
/// refused. `env` is the entry's resolved environment (env files, then `env`), `raw_env`
/// its own `env` table: a variable set in either is refused rather than silently replaced.
pub(super) fn resolve_secret_env(
    secrets: &[Spanned<FileRefEntry>],
    configs: &[Spanned<FileRefEntry>],
    env: &BTreeMap<String, String>,
    raw_env: &BTreeMap<Spanned<String>, Spanned<String>>,
    desired: &Desired,
    names: &Names,
    report: &mut Report,
) -> Vec<SecretEnv> {
    let what = report.what();
    for entry in configs.iter().filter(|e| e.get_ref().env().is_some()) {
        let name = entry.get_ref().clone().into_table().name;
        let d = report
            .diag(
                Code::InvalidValue,
                span(entry),
                format!("{what}: config `{name}` has `env`, which only a secret can have"),
            )
            .with_help("remove `env`: a config is given as a file (`target`)");
        report.push(d);
    }
    let mut out: Vec<SecretEnv> = Vec::new();
    // Every variable claimed so far, by secret name, even by a secret that cannot be used.
    let mut taken: Vec<(String, String)> = Vec::new();
    for entry in secrets {
        let Some(var) = entry.get_ref().env() else {
            continue;
        };
        let at = span(entry);
        let t = entry.get_ref().clone().into_table();
        let bad = |report: &mut Report, message: String, help: &str| {
            let d = report
                .diag(Code::InvalidValue, at.clone(), format!("{what}: {message}"))
                .with_help(help);
            report.push(d);
        };
        if t.target.is_some() || t.uid.is_some() || t.gid.is_some() || t.mode.is_some() {
            bad(
                report,
                format!(
                    "secret `{}` has `env` and a file's keys (`target`, `uid`, `gid`, `mode`)",
                    t.name
                ),
                "a secret given as a variable has no file: remove `env`, or the file's keys (list the secret twice to have both)",
            );
            continue;
        }
        if !crate::spec::secret::portable_env_name(var) {
            bad(
                report,
                format!(
                    "invalid environment variable name `{var}` for secret `{}`",
                    t.name
                ),
                "write letters, digits and `_`, not starting with a digit, e.g. \"API_TOKEN\"",
            );
            continue;
        }
        let name = &t.name;
        if let Some(other) = taken.iter().find(|(_, v)| v == var) {
            let d = report
                .diag(
                    Code::Conflict,
                    at.clone(),
                    format!(
                        "{what}: secrets `{}` and `{name}` both set environment variable `{var}`",
                        other.0
                    ),
                )
                .with_help("give each secret its own `env`");
            report.push(d);
            continue;
        }
        if env.contains_key(var) {
            let source = if raw_env.keys().any(|k| k.get_ref() == var) {
                "`env`"
            } else {
                "an `env_file`"
            };
            let d = report
                .diag(
                    Code::Conflict,
                    at.clone(),
                    format!("{what}: environment variable `{var}` of secret `{name}` is also set by {source}"),
                )
                .with_help("remove the variable from `env` and the env files, or give the secret another `env`");
            report.push(d);
            continue;
        }
        taken.push((name.clone(), var.to_string()));
        if !report.reference(names, Kind::Secret, name, at.clone()) {
            continue;
        }
        let Ok(name) = name.parse::<Name>() else {
            continue;
        };
        // The value is checked without ever being quoted.
        if let Some(secret) = desired.secrets.get(&name) {
            let value = secret.expose();
            if value.contains(&0) || std::str::from_utf8(value).is_err() {
                bad(
                    report,
                    format!(
                        "secret `{name}` is not UTF-8 text without NUL bytes and cannot be the value of `{var}`"
                    ),
                    "an environment variable is text the kernel ends at a NUL: give the secret as a file (leave out `env`)",
                );
                continue;
            }
            let len = var.len() + 1 + value.len() + 1;
            if len > MAX_ARG_STRLEN {
                bad(
                    report,
                    format!(
                        "secret `{name}` makes `{var}` {len} bytes as NAME=VALUE, over the kernel's limit of {MAX_ARG_STRLEN} for one variable"
                    ),
                    "give a large secret as a file (leave out `env`)",
                );
                continue;
            }
        }
        out.push(SecretEnv {
            name,
            env: var.to_string(),
        });
    }
    out.sort_by(|a, b| a.env.cmp(&b.env));
    out
}

#[cfg(test)]
mod tests {
    use crate::spec::model::SecretEnv;
    use crate::spec::{InputFile, Loaded, load_files};

    /// A root-only secret file holding `value`, and its directory (kept alive by the caller).
    fn secret_file(value: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tok");
        std::fs::write(&path, value).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        (dir, path)
    }

    /// `[secret.tok]` from `path`, `[config.c]`, and one container with `body`.
    fn load(path: &std::path::Path, body: &str) -> Loaded {
        load_files(&[InputFile {
            path: "web.toml".into(),
            text: format!(
                "[secret.tok]\nfile = \"{}\"\n\n[config.c]\ncontent = \"x\"\n\n[container.web]\nimage = \"docker.io/library/app:1\"\n{body}",
                path.display()
            ),
        }])
    }

    fn messages(loaded: &Loaded) -> Vec<String> {
        loaded.diagnostics.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn a_secret_becomes_a_variable_by_name_only() {
        let (_dir, path) = secret_file(b"hunter2");
        let loaded = load(
            &path,
            "secrets = [\"tok\", { name = \"tok\", env = \"Z_TOKEN\" }, { name = \"tok\", env = \"A_TOKEN\" }]\n",
        );
        assert!(loaded.diagnostics.is_empty(), "{:?}", messages(&loaded));
        let web = &loaded.desired.containers["web"];
        let vars: Vec<&str> = web.secret_env.iter().map(|s| s.env.as_str()).collect();
        assert_eq!(vars, ["A_TOKEN", "Z_TOKEN"], "sorted by variable");
        assert_eq!(web.files.len(), 1, "the plain entry stays a file");
        assert!(web.env.is_empty());
        let json = serde_json::to_string(web).expect("json");
        assert!(
            json.contains("\"secret_env\"") && !json.contains("hunter2"),
            "{json}"
        );
        assert_eq!(
            web.secret_env[0],
            SecretEnv {
                name: "tok".parse().expect("name"),
                env: "A_TOKEN".into()
            }
        );
    }

    #[test]
    fn a_container_without_env_secrets_serializes_as_before() {
        let (_dir, path) = secret_file(b"v");
        let loaded = load(&path, "secrets = [\"tok\"]\n");
        let json = serde_json::to_string(&loaded.desired.containers["web"]).expect("json");
        assert!(!json.contains("secret_env"), "{json}");
    }

    #[test]
    fn env_excludes_the_keys_of_a_file() {
        let (_dir, path) = secret_file(b"v");
        let loaded = load(
            &path,
            "secrets = [{ name = \"tok\", env = \"T\", target = \"/t\" }, { name = \"tok\", env = \"U\", mode = \"0400\" }]\n",
        );
        let m = messages(&loaded);
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(
            m[0].starts_with("web.toml:9:12: error[invalid-value]: container `web`: secret `tok` has `env` and a file's keys"),
            "{m:?}"
        );
        assert!(loaded.desired.containers.is_empty());
    }

    #[test]
    fn variable_names_are_portable() {
        let (_dir, path) = secret_file(b"v");
        for bad in ["", "1X", "A-B", "A=B", "a b", "../x"] {
            let loaded = load(
                &path,
                &format!("secrets = [{{ name = \"tok\", env = \"{bad}\" }}]\n"),
            );
            let m = messages(&loaded);
            assert!(
                m.len() == 1
                    && m[0].contains(&format!(
                        "invalid environment variable name `{bad}` for secret `tok`"
                    )),
                "{bad}: {m:?}"
            );
        }
    }

    #[test]
    fn a_variable_set_twice_is_refused_naming_where() {
        let (dir, path) = secret_file(b"v");
        let loaded = load(
            &path,
            "env = { T = \"plain\" }\nsecrets = [{ name = \"tok\", env = \"T\" }]\n",
        );
        let m = messages(&loaded);
        assert!(
            m.len() == 1
                && m[0].starts_with("web.toml:10:12: error[conflict]: container `web`: environment variable `T` of secret `tok` is also set by `env`"),
            "{m:?}"
        );
        let env_file = dir.path().join("app.env");
        std::fs::write(&env_file, "T=from-file\n").expect("write");
        let loaded = load(
            &path,
            &format!(
                "env_file = \"{}\"\nsecrets = [{{ name = \"tok\", env = \"T\" }}]\n",
                env_file.display()
            ),
        );
        let m = messages(&loaded);
        assert!(
            m.len() == 1 && m[0].contains("is also set by an `env_file`"),
            "{m:?}"
        );
        let loaded = load(
            &path,
            "secrets = [{ name = \"tok\", env = \"T\" }, { name = \"tok\", env = \"T\" }]\n",
        );
        let m = messages(&loaded);
        assert!(
            m.len() == 1
                && m[0].contains("secrets `tok` and `tok` both set environment variable `T`"),
            "{m:?}"
        );
    }

    #[test]
    fn a_value_that_cannot_be_a_variable_is_refused_unquoted() {
        for (value, says) in [
            (
                b"a\0hunter2".to_vec(),
                "is not UTF-8 text without NUL bytes",
            ),
            (
                b"\xffhunter2".to_vec(),
                "is not UTF-8 text without NUL bytes",
            ),
            (
                [b"hunter2".as_slice(), &vec![b'x'; super::MAX_ARG_STRLEN]].concat(),
                "over the kernel's limit",
            ),
        ] {
            let (_dir, path) = secret_file(&value);
            let loaded = load(&path, "secrets = [{ name = \"tok\", env = \"T\" }]\n");
            let m = messages(&loaded);
            assert!(m.len() == 1 && m[0].contains(says), "{m:?}");
            assert!(!m[0].contains("hunter2"), "{m:?}");
        }
    }

    #[test]
    fn configs_are_never_variables() {
        let (_dir, path) = secret_file(b"v");
        let loaded = load(&path, "configs = [{ name = \"c\", env = \"C\" }]\n");
        let m = messages(&loaded);
        assert!(
            m.len() == 1 && m[0].contains("config `c` has `env`, which only a secret can have"),
            "{m:?}"
        );
    }
}
