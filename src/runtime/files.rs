//! Secrets and configs on the host side: one memory-backed directory per container,
//! `<run root>/files/<id>/`, root-only, each file owned and moded as the entry asks, then
//! bind-mounted read-only at its target (`bundle`). Nothing is ever written to the state
//! root or the container's writable layer. `<run root>/files` is a tmpfs of berth's own
//! when /run is not one, so values never reach a disk whatever the host's /run is. The
//! values of env-passed secrets are kept there too (`secret_env`).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Runtime, RuntimeError};
use crate::fsutil::{self, io_err};
use crate::spec::model::FileMount;

const TMPFS_MAGIC: u64 = 0x0102_1994;

/// One file to give a container: where and how, and its content.
pub(crate) struct ContainerFile<'a> {
    pub mount: &'a FileMount,
    pub bytes: &'a [u8],
}

/// The host file for the `index`th of a container's `files` (they are sorted by target).
pub(crate) fn host_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(index.to_string())
}

impl Runtime {
    /// Write (again) every file of container `id`: at create, and before each start, since
    /// a reboot empties the tmpfs while the container stays to be restarted.
    pub(crate) fn write_files(
        &self,
        id: &str,
        files: &[ContainerFile],
    ) -> Result<(), RuntimeError> {
        if files.is_empty() {
            return Ok(());
        }
        let root = self.layout.files_root();
        ensure_tmpfs(&root)?;
        let dir = self.layout.container_files(id);
        fsutil::private_dir(&dir)?;
        for (i, f) in files.iter().enumerate() {
            let path = host_path(&dir, i);
            let tmp = dir.join(format!(".{i}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io_err("create", &tmp))?;
            file.write_all(f.bytes).map_err(io_err("write", &tmp))?;
            rustix::fs::fchown(
                &file,
                Some(rustix::fs::Uid::from_raw(f.mount.uid)),
                Some(rustix::fs::Gid::from_raw(f.mount.gid)),
            )
            .map_err(|e| io_err("chown", &tmp)(e.into()))?;
            file.set_permissions(std::fs::Permissions::from_mode(f.mount.mode))
                .map_err(io_err("chmod", &tmp))?;
            std::fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        }
        Ok(())
    }

    /// Write (again) the values of container `id`'s env-passed secrets, root-only, next to
    /// its secret files: at create, and before each start.
    pub(crate) fn write_secret_env(
        &self,
        id: &str,
        values: &[super::secret_env::SecretEnvValue],
    ) -> Result<(), RuntimeError> {
        if values.is_empty() {
            return Ok(());
        }
        ensure_tmpfs(&self.layout.files_root())?;
        let files_dir = self.layout.container_files(id);
        fsutil::private_dir(&files_dir)?;
        let dir = super::secret_env::env_dir(&files_dir);
        fsutil::private_dir(&dir)?;
        for v in values {
            super::secret_env::write_private(
                &super::secret_env::value_path(&files_dir, v.name),
                v.bytes,
                0o400,
            )?;
        }
        Ok(())
    }

    /// The host files that container `id`'s runtime spec binds from its own files directory,
    /// or names as values of variables, and that are not there (a reboot emptied the tmpfs).
    pub(crate) fn missing_files(&self, id: &str) -> Result<Vec<PathBuf>, RuntimeError> {
        let config = self.paths(id)?.config();
        let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| RuntimeError::Process {
            op: "reading the runtime spec of",
            id: id.into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let dir = self.layout.container_files(id);
        let mut missing = missing_binds(&spec, &dir);
        missing.extend(super::secret_env::missing(&dir, &spec));
        Ok(missing)
    }

    /// Remove the files of ids that have no container: left by a create killed before its
    /// rename (its `.ID.creating.*` directory is swept first), or by a container directory
    /// deleted by hand. Never a create in progress: it makes its `.ID.creating.*` directory
    /// before its files and renames it to the container's, so a files directory listed here
    /// has one of the two at every moment; the temporary is looked for first and the
    /// container's directory after, so the rename cannot slip between the two checks.
    pub(crate) fn sweep_files(&self) {
        let Ok(entries) = std::fs::read_dir(self.layout.files_root()) else {
            return;
        };
        let containers = self.layout.containers();
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if !crate::state::layout::valid_id(&id) || self.layout.container(&id).dir.exists() {
                continue;
            }
            let creating = format!(".{id}.creating.");
            let being_created = std::fs::read_dir(&containers).map_or(true, |names| {
                names
                    .flatten()
                    .any(|n| n.file_name().to_string_lossy().starts_with(&creating))
            });
            if being_created || self.layout.container(&id).dir.exists() {
                continue;
            }
            tracing::info!("removing the secrets and configs of {id}, which has no container");
            if let Err(e) = self.remove_files(&id) {
                tracing::warn!("{e}");
            }
        }
    }

    /// Remove the container's files; gone already is done.
    pub(crate) fn remove_files(&self, id: &str) -> Result<(), RuntimeError> {
        let dir = self.layout.container_files(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err("removing", &dir)(e).into())
            }
            _ => Ok(()),
        }
    }
}

/// The bind sources of `spec` inside `dir` that do not exist.
fn missing_binds(spec: &oci_spec::runtime::Spec, dir: &Path) -> Vec<PathBuf> {
    spec.mounts()
        .iter()
        .flatten()
        .filter_map(|m| m.source().as_deref())
        .filter(|source| source.starts_with(dir) && std::fs::symlink_metadata(source).is_err())
        .map(Path::to_path_buf)
        .collect()
}

/// `dir` exists, root-only, on a tmpfs: /run's own, or one mounted there now.
fn ensure_tmpfs(dir: &Path) -> Result<(), RuntimeError> {
    fsutil::private_dir(dir)?;
    let is_tmpfs = |dir: &Path| {
        rustix::fs::statfs(dir)
            .map(|s| s.f_type as u64 == TMPFS_MAGIC)
            .map_err(|e| io_err("statfs", dir)(e.into()))
    };
    if is_tmpfs(dir)? {
        return Ok(());
    }
    use rustix::mount::MountFlags;
    rustix::mount::mount(
        "berth-files",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        c"mode=0700,size=64m",
    )
    .map_err(|e| io_err("mounting a tmpfs on", dir)(e.into()))?;
    if !is_tmpfs(dir)? {
        return Err(
            io_err("mounting a tmpfs on", dir)(std::io::Error::other("still not a tmpfs")).into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{MountBuilder, SpecBuilder};

    #[test]
    fn only_absent_binds_from_the_files_directory_are_missing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("files/app-0123abcd");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(host_path(&dir, 0), "kept").expect("write");
        let bind = |source: PathBuf, target: &str| {
            MountBuilder::default()
                .destination(target)
                .typ("bind")
                .source(source)
                .build()
                .expect("mount")
        };
        let spec = SpecBuilder::default()
            .mounts(vec![
                bind(host_path(&dir, 0), "/a"),
                bind(host_path(&dir, 1), "/b"),
                bind(tmp.path().join("elsewhere"), "/c"),
            ])
            .build()
            .expect("spec");
        assert_eq!(missing_binds(&spec, &dir), vec![host_path(&dir, 1)]);
        std::fs::write(host_path(&dir, 1), "back").expect("write");
        assert!(missing_binds(&spec, &dir).is_empty());
    }
}
