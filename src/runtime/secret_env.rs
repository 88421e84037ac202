//! Secrets given as environment variables (`secrets = [{ name, env = "VAR" }]`) on the host
//! side. A value never enters the runtime spec on the state root: it is written, like a
//! secret file, to the container's root-only tmpfs directory (`<run root>/files/<id>/env/VAR`,
//! mode 0400) at create and before every start, and read from there when the monitor starts
//! the container. The runtime spec names the variables only, in the `io.berth.secret-env`
//! annotation (labels can never spell one). The embedded engine adds the values in its
//! executor just before exec; an OCI runtime (runc), which takes the environment only from
//! a `config.json`, gets a copy of the spec with them on the same tmpfs
//! (`files/<id>/bundle/config.json`, 0600), which its `exec` reads again.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use super::{Runtime, RuntimeError};
use crate::fsutil::{self, FsError, io_err};
use crate::spec::secret::Secret;

/// The annotation naming a container's env-passed secrets, comma-separated.
pub(crate) const ANNOTATION: &str = "io.berth.secret-env";

/// A variable and its value, for one start or exec. `Debug` shows the name only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretVar {
    pub name: String,
    pub value: Secret,
}

impl std::fmt::Debug for SecretVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretVar({}, {:?})", self.name, self.value)
    }
}

impl SecretVar {
    /// `NAME=VALUE`; the value was checked to be UTF-8 without NUL when it was read.
    pub(crate) fn entry(&self) -> String {
        format!(
            "{}={}",
            self.name,
            String::from_utf8_lossy(self.value.expose())
        )
    }
}

/// What the engine gets at a start: the values, and the container's tmpfs directory where an
/// engine that needs a `config.json` with them writes it.
#[derive(Debug, Default)]
pub(crate) struct StartSecrets {
    pub vars: Vec<SecretVar>,
    pub files_dir: PathBuf,
}

/// One value to write: the variable and the secret's content.
pub(crate) struct SecretEnvValue<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum SecretEnvError {
    #[error(
        "the value of {name} is gone from {} (the run root was emptied, e.g. by a reboot); the next pass of the agent writes it again", path.display()
    )]
    Gone { name: String, path: PathBuf },
    #[error("reading the value of {name} from {}: {source}", path.display())]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the value of {name} in {} is not UTF-8 text without NUL", path.display())]
    Invalid { name: String, path: PathBuf },
}

/// Name the variables in the spec (nothing when there are none, so specs of containers
/// without env-passed secrets stay as they were).
pub(crate) fn annotate(spec: &mut Spec, names: &[&str]) {
    if names.is_empty() {
        return;
    }
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    annotations.insert(ANNOTATION.to_string(), names.join(","));
    spec.set_annotations(Some(annotations));
}

/// The variables the spec names; only portable names, since each names a file.
pub(crate) fn names(spec: &Spec) -> Vec<String> {
    spec.annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .map(|list| {
            list.split(',')
                .filter(|n| crate::spec::secret::portable_env_name(n))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn env_dir(files_dir: &Path) -> PathBuf {
    files_dir.join("env")
}

/// Where the value of `name` is kept.
pub(crate) fn value_path(files_dir: &Path, name: &str) -> PathBuf {
    env_dir(files_dir).join(name)
}

/// The values the spec names, read from the container's files directory.
pub(crate) fn read(files_dir: &Path, spec: &Spec) -> Result<Vec<SecretVar>, SecretEnvError> {
    names(spec)
        .into_iter()
        .map(|name| {
            let path = value_path(files_dir, &name);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(SecretEnvError::Gone { name, path });
                }
                Err(source) => return Err(SecretEnvError::Read { name, path, source }),
            };
            if bytes.contains(&0) || std::str::from_utf8(&bytes).is_err() {
                return Err(SecretEnvError::Invalid { name, path });
            }
            Ok(SecretVar {
                name,
                value: Secret::new(bytes),
            })
        })
        .collect()
}

/// What the monitor gives the engine at a start, read from `files_dir`.
pub(crate) fn for_start(files_dir: &Path, spec: &Spec) -> Result<StartSecrets, SecretEnvError> {
    Ok(StartSecrets {
        vars: read(files_dir, spec)?,
        files_dir: files_dir.to_path_buf(),
    })
}

/// The value files the spec names that are not there.
pub(crate) fn missing(files_dir: &Path, spec: &Spec) -> Vec<PathBuf> {
    names(spec)
        .iter()
        .map(|name| value_path(files_dir, name))
        .filter(|path| std::fs::symlink_metadata(path).is_err())
        .collect()
}

/// `env` with each of `vars` set, replacing a variable of the same name.
pub(crate) fn with_vars(mut env: Vec<String>, vars: &[SecretVar]) -> Vec<String> {
    env.retain(|e| {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        !vars.iter().any(|v| v.name == key)
    });
    env.extend(vars.iter().map(SecretVar::entry));
    env
}

/// For an OCI runtime: the bundle's `config.json` with the values added to the process's
/// environment and the root filesystem made absolute, written to `files_dir/bundle`, whose
/// path is returned. None without values: the bundle itself is used.
pub(crate) fn config_bundle(
    bundle: &Path,
    secrets: &StartSecrets,
) -> Result<Option<PathBuf>, FsError> {
    if secrets.vars.is_empty() {
        return Ok(None);
    }
    let config = bundle.join("config.json");
    let mut spec = Spec::load(&config)
        .map_err(|e| io_err("reading", &config)(std::io::Error::other(e.to_string())))?;
    if let Some(root) = spec.root_mut() {
        let path = bundle.join(root.path());
        root.set_path(path);
    }
    if let Some(process) = spec.process_mut() {
        let env = process.env().clone().unwrap_or_default();
        process.set_env(Some(with_vars(env, &secrets.vars)));
    }
    let dir = secrets.files_dir.join("bundle");
    fsutil::private_dir(&dir)?;
    let bytes = serde_json::to_vec(&spec)
        .map_err(|e| io_err("encoding", &config)(std::io::Error::other(e.to_string())))?;
    write_private(&dir.join("config.json"), &bytes, 0o600)?;
    Ok(Some(dir))
}

/// Written to a temporary of `mode` in the same directory, then renamed into place.
pub(super) fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    file.write_all(bytes).map_err(io_err("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("rename", &tmp))
}

impl Runtime {
    /// The values for `berth exec` in container `id` (none unless its spec names some).
    pub(crate) fn secret_env_of(&self, id: &str) -> Result<Vec<SecretVar>, RuntimeError> {
        let config = self.paths(id)?.config();
        let spec = Spec::load(&config).map_err(|e| RuntimeError::Process {
            op: "reading the runtime spec of",
            id: id.into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(read(&self.layout.container_files(id), &spec)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{ProcessBuilder, RootBuilder, SpecBuilder};

    fn var(name: &str, value: &str) -> SecretVar {
        SecretVar {
            name: name.into(),
            value: Secret::new(value.as_bytes().to_vec()),
        }
    }

    #[test]
    fn debug_shows_names_only() {
        assert_eq!(
            format!("{:?}", var("API_TOKEN", "hunter2")),
            "SecretVar(API_TOKEN, Secret(7 bytes))"
        );
    }

    #[test]
    fn vars_replace_variables_of_the_same_name() {
        let env = vec!["PATH=/bin".into(), "TOKEN=image".into(), "TOKENS=x".into()];
        assert_eq!(
            with_vars(env, &[var("TOKEN", "s=1")]),
            ["PATH=/bin", "TOKENS=x", "TOKEN=s=1"]
        );
    }

    #[test]
    fn the_annotation_names_portable_variables_only() {
        let mut spec = Spec::default();
        annotate(&mut spec, &[]);
        assert!(names(&spec).is_empty());
        annotate(&mut spec, &["A", "B_2"]);
        assert_eq!(names(&spec), ["A", "B_2"]);
        let mut annotations = spec.annotations().clone().unwrap_or_default();
        annotations.insert(ANNOTATION.into(), "A,../x,,1B".into());
        spec.set_annotations(Some(annotations));
        assert_eq!(names(&spec), ["A"]);
    }

    #[test]
    fn values_are_read_from_the_files_directory_and_checked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut spec = Spec::default();
        annotate(&mut spec, &["A", "B"]);
        std::fs::create_dir_all(env_dir(tmp.path())).expect("mkdir");
        std::fs::write(value_path(tmp.path(), "A"), "one").expect("write");
        assert_eq!(missing(tmp.path(), &spec), [value_path(tmp.path(), "B")]);
        let gone = read(tmp.path(), &spec).unwrap_err();
        assert!(matches!(&gone, SecretEnvError::Gone { name, .. } if name == "B"));
        std::fs::write(value_path(tmp.path(), "B"), b"t\0wo").expect("write");
        let invalid = read(tmp.path(), &spec).unwrap_err();
        assert!(matches!(invalid, SecretEnvError::Invalid { .. }));
        std::fs::write(value_path(tmp.path(), "B"), "two").expect("write");
        assert_eq!(
            read(tmp.path(), &spec).expect("read"),
            [var("A", "one"), var("B", "two")]
        );
    }

    #[test]
    fn the_config_bundle_holds_the_values_and_an_absolute_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bundle = tmp.path().join("state/c1");
        std::fs::create_dir_all(&bundle).expect("mkdir");
        let spec = SpecBuilder::default()
            .root(RootBuilder::default().path("rootfs").build().expect("root"))
            .process(
                ProcessBuilder::default()
                    .env(vec!["PATH=/bin".to_string()])
                    .build()
                    .expect("process"),
            )
            .build()
            .expect("spec");
        spec.save(bundle.join("config.json")).expect("save");
        let files_dir = tmp.path().join("files/c1");
        let none = StartSecrets {
            vars: Vec::new(),
            files_dir: files_dir.clone(),
        };
        assert_eq!(config_bundle(&bundle, &none).expect("none"), None);
        let secrets = StartSecrets {
            vars: vec![var("TOKEN", "v")],
            files_dir: files_dir.clone(),
        };
        let dir = config_bundle(&bundle, &secrets)
            .expect("write")
            .expect("a bundle");
        assert_eq!(dir, files_dir.join("bundle"));
        let written = Spec::load(dir.join("config.json")).expect("load");
        assert_eq!(
            written.root().as_ref().expect("root").path(),
            &bundle.join("rootfs")
        );
        assert_eq!(
            written.process().as_ref().and_then(|p| p.env().clone()),
            Some(vec!["PATH=/bin".to_string(), "TOKEN=v".to_string()])
        );
        let mode = std::fs::metadata(dir.join("config.json")).expect("stat");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        // The state root's spec is untouched.
        let kept = Spec::load(bundle.join("config.json")).expect("load");
        assert_eq!(
            kept.process().as_ref().and_then(|p| p.env().clone()),
            Some(vec!["PATH=/bin".to_string()])
        );
    }
}
