//! The desired-state format: TOML files → validated, resolved [`Desired`] model.
//!
//! `loader` reads files and deserializes entries (`raw`), `resolve` checks them against each
//! other and builds the `model`; `diag` carries every problem with its file, line and column.
//! Loading never stops at the first problem and never fails as a whole: it returns the valid
//! part and the list of problems, and callers decide (an agent pass with problems creates and
//! repairs but never prunes).

pub mod capability;
pub mod default_network;
pub mod device;
pub mod diag;
pub mod dns;
pub mod duration;
pub(crate) mod engine;
pub(crate) mod envfile;
pub mod hash;
pub mod image_ref;
pub(crate) mod loader;
pub mod model;
pub mod mount;
pub mod name;
pub(crate) mod namespace;
pub mod port;
pub(crate) mod raw;
pub(crate) mod referenced;
pub(crate) mod resolve;
pub mod runtime_keys;
pub mod schema;
pub mod seccomp_profile;
pub mod secret;
pub mod signal;
pub mod size;
pub mod value;

use std::path::{Path, PathBuf};

use diag::Diagnostic;
pub use loader::{InputFile, LoadError};
pub use model::Desired;

/// The outcome of loading a desired-state directory.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Every resource that is valid and whose references are valid.
    pub desired: Desired,
    /// Every problem found, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Secrets or configs are declared: their files (outside `files`) are read again on
    /// every load.
    pub declares_files: bool,
}

impl Loaded {
    /// True when every file loaded without a problem: only then may anything be pruned.
    pub fn is_complete(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

/// Load already-read files (tests, fuzzing, and the directory loader below).
pub fn load_files(files: &[InputFile]) -> Loaded {
    load_with_read_problems(files.to_vec(), Vec::new())
}

/// Files that could not be read count as unparsed: their names are unknown, which the
/// resolver mentions when a reference is not found.
fn load_with_read_problems(files: Vec<InputFile>, read_problems: Vec<Diagnostic>) -> Loaded {
    let mut paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    paths.sort();
    let mut set = loader::load_files(files);
    set.unparsed_files
        .extend(read_problems.iter().map(|d| d.location.file.clone()));
    set.diagnostics.extend(read_problems);
    let declares_files = [loader::Kind::Secret, loader::Kind::Config]
        .iter()
        .any(|k| set.declared.get(k).is_some_and(|names| !names.is_empty()));
    let (desired, diagnostics) = resolve::resolve(set);
    Loaded {
        desired,
        diagnostics,
        files: paths,
        declares_files,
    }
}

/// Load every desired-state file of a directory.
pub fn load_dir(dir: &Path) -> Result<Loaded, LoadError> {
    let (files, read_problems) = loader::read_dir(dir)?;
    Ok(load_with_read_problems(files, read_problems))
}

/// What `load_dir_cached` remembers: the files as read, and what they loaded to.
#[derive(Debug, Default)]
pub(crate) struct LoadCache {
    last: Option<(Vec<InputFile>, Vec<Diagnostic>, Loaded)>,
}

/// `load_dir`, reusing the previous result when every file reads back byte for byte the
/// same (the agent reads its directory on every pass; reading is cheap, parsing is not), and
/// so does every file the entries named (env files, binds inside the directory). A result
/// with any problem is never reused: some are located in a TOML file but caused by another
/// one (a seccomp profile missing or invalid), which may have been fixed since.
pub(crate) fn load_dir_cached(dir: &Path, cache: &mut LoadCache) -> Result<Loaded, LoadError> {
    let (files, read_problems) = loader::read_dir(dir)?;
    if let Some((last_files, last_problems, loaded)) = &cache.last
        && *last_files == files
        && *last_problems == read_problems
        && inputs_unchanged(loaded)
        // A seccomp profile is another file: its content is read at every load.
        && !loaded
            .desired
            .containers
            .values()
            .any(|c| matches!(c.kernel.seccomp, seccomp_profile::Seccomp::Profile(_)))
    {
        return Ok(loaded.clone());
    }
    let loaded = load_with_read_problems(files.clone(), read_problems.clone());
    cache.last = Some((files, read_problems, loaded.clone()));
    Ok(loaded)
}

/// Whether every file named by the entries still has the digest it was loaded with, and
/// nothing was wrong.
fn inputs_unchanged(loaded: &Loaded) -> bool {
    !loaded.declares_files
        && loaded.diagnostics.is_empty()
        && loaded.desired.containers.values().all(|c| {
            c.inputs
                .iter()
                .all(|(path, digest)| referenced::digest(path).is_ok_and(|d| d == *digest))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_cache_sees_a_seccomp_profile_written_after_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.toml"),
            "[container.a]\nimage = \"oci-archive:/x.tar\"\nseccomp = \"p.json\"\n",
        )
        .unwrap();
        let mut cache = LoadCache::default();
        let missing = load_dir_cached(dir.path(), &mut cache).unwrap();
        assert!(!missing.diagnostics.is_empty());
        assert!(missing.desired.containers.is_empty());
        // No TOML file changed: the profile appearing must still be seen.
        std::fs::write(
            dir.path().join("p.json"),
            r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#,
        )
        .unwrap();
        let fixed = load_dir_cached(dir.path(), &mut cache).unwrap();
        assert!(fixed.diagnostics.is_empty(), "{:?}", fixed.diagnostics);
        assert!(fixed.desired.containers.contains_key("a"));
    }

    #[test]
    fn only_relative_read_only_binds_are_tracked() {
        // 0.1.0 hashed an absolute bind inside the directory without its content: tracking
        // it now would replace such containers at the upgrade.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/app.ini"), "x=1\n").unwrap();
        let conf = dir.path().join("conf");
        std::fs::write(
            dir.path().join("a.toml"),
            format!(
                "[container.abs]\nimage = \"oci-archive:/x.tar\"\nmounts = [\"{}:/etc/app:ro\"]\n\
                 [container.rel]\nimage = \"oci-archive:/x.tar\"\nmounts = [\"./conf:/etc/app:ro\"]\n",
                conf.display()
            ),
        )
        .unwrap();
        let loaded = load_dir(dir.path()).unwrap();
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert!(loaded.desired.containers["abs"].inputs.is_empty());
        let tracked: Vec<&std::path::PathBuf> =
            loaded.desired.containers["rel"].inputs.keys().collect();
        assert_eq!(tracked, [&std::path::absolute(&conf).unwrap()]);
    }

    #[test]
    fn the_load_cache_notices_a_same_size_edit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        let write = |v: &str| {
            std::fs::write(
                &file,
                format!("[container.a]\nimage = \"oci-archive:/x.tar\"\nenv = {{ V = \"{v}\" }}\n"),
            )
            .unwrap()
        };
        let hash = |l: &Loaded| hash::all_hashes(&l.desired).unwrap()["container/a"].clone();
        let mut cache = LoadCache::default();
        write("1");
        let first = load_dir_cached(dir.path(), &mut cache).unwrap();
        // Same bytes: the same result, from the cache.
        let again = load_dir_cached(dir.path(), &mut cache).unwrap();
        assert_eq!(first.desired, again.desired);
        // Same size, same inode, probably the same mtime tick: still seen.
        write("2");
        let changed = load_dir_cached(dir.path(), &mut cache).unwrap();
        assert_ne!(hash(&first), hash(&changed));
        assert_eq!(changed.desired, load_dir(dir.path()).unwrap().desired);
        // An env file edited: seen although no TOML file changed.
        std::fs::write(
            &file,
            "[container.a]\nimage = \"oci-archive:/x.tar\"\nenv_file = \"a.env\"\n",
        )
        .unwrap();
        let env = dir.path().join("a.env");
        std::fs::write(&env, "V=1\n").unwrap();
        let before = load_dir_cached(dir.path(), &mut cache).unwrap();
        assert_eq!(before.desired.containers["a"].env["V"], "1");
        std::fs::write(&env, "V=2\n").unwrap();
        let after = load_dir_cached(dir.path(), &mut cache).unwrap();
        assert_eq!(after.desired.containers["a"].env["V"], "2");
        assert_ne!(hash(&before), hash(&after));
        // A broken env file is read again on the next pass, and its repair seen.
        std::fs::write(&env, "V\n").unwrap();
        assert!(
            !load_dir_cached(dir.path(), &mut cache)
                .unwrap()
                .is_complete()
        );
        std::fs::write(&env, "V=3\n").unwrap();
        let fixed = load_dir_cached(dir.path(), &mut cache).unwrap();
        assert!(fixed.is_complete(), "{:?}", fixed.diagnostics);
        assert_eq!(fixed.desired.containers["a"].env["V"], "3");
        // A file gone: seen too.
        std::fs::remove_file(&file).unwrap();
        assert!(
            load_dir_cached(dir.path(), &mut cache)
                .unwrap()
                .desired
                .containers
                .is_empty()
        );
    }
}
