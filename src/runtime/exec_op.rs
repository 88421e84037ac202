//! `Runtime::exec`: a command run inside a running container through its engine (the pty
//! relay of `berth exec -t` is `exec`).

use super::{Runtime, RuntimeError, State, engine};

impl Runtime {
    /// Run a command inside a running container (joins its namespaces and cgroup). Must be
    /// called from a single-threaded process.
    pub fn exec(&self, id: &str, request: &engine::ExecRequest) -> Result<i32, RuntimeError> {
        let record = self.record(id)?;
        if !matches!(self.state(id)?, State::Running(_)) {
            return Err(RuntimeError::StartFailed {
                id: id.into(),
                message: "it is not running".into(),
            });
        }
        let bundle = self.paths(id)?;
        // Docker's exec sees the container's environment: its env-passed secrets too. The
        // embedded engine adds them itself; runc reads them from the spec it was created from.
        let secret_env = match record.engine {
            crate::state::record::EngineRecord::Embedded => self.secret_env_of(id)?,
            crate::state::record::EngineRecord::Oci { .. } => Vec::new(),
        };
        let with_secrets;
        let request = if secret_env.is_empty() {
            request
        } else {
            with_secrets = engine::ExecRequest {
                secret_env,
                ..request.clone()
            };
            &with_secrets
        };
        Ok(
            engine::for_record(&record, &self.layout.engine_root()).exec(
                id,
                bundle.bundle(),
                request,
            )?,
        )
    }
}

/// Why a command could not be started in a container, as Docker's exit codes tell it
/// (127: not found, 126: found but not executable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CannotRun {
    NotFound,
    NotExecutable,
}

impl CannotRun {
    /// The exit status Docker gives: 127 or 126.
    pub fn exit_code(self) -> u8 {
        match self {
            CannotRun::NotFound => 127,
            CannotRun::NotExecutable => 126,
        }
    }

    /// What an engine's failure to start a command says, if it says the command could not
    /// be run. Engines report it only in words (libcontainer's executor, runc's `exec`), so
    /// their words are read, as dockerd reads runc's.
    pub fn of(error: &str) -> Option<CannotRun> {
        let text = error.to_ascii_lowercase();
        const NOT_FOUND: [&str; 3] = [
            "not found in $path",
            "executable file not found",
            "no such file or directory",
        ];
        const NOT_EXECUTABLE: [&str; 4] = [
            "does not have correct permissions",
            "permission denied",
            "is a directory",
            "exec format error",
        ];
        if NOT_FOUND.iter().any(|p| text.contains(p)) {
            Some(CannotRun::NotFound)
        } else if NOT_EXECUTABLE.iter().any(|p| text.contains(p)) {
            Some(CannotRun::NotExecutable)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CannotRun;

    #[test]
    fn engines_words_become_dockers_exit_codes() {
        let cases = [
            // libcontainer's executor
            (
                "exec process failed with error error in executing process : executable 'nope' not found in $PATH",
                Some(127),
            ),
            (
                "executable '/etc/hostname' at path '\"/etc/hostname\"' does not have correct permissions",
                Some(126),
            ),
            // runc
            (
                "exec: \"nope\": executable file not found in $PATH: unknown",
                Some(127),
            ),
            ("exec: \"/bin/x\": permission denied: unknown", Some(126)),
            ("exec: \"/tmp\": is a directory: unknown", Some(126)),
            ("the container is not running", None),
        ];
        for (text, code) in cases {
            assert_eq!(
                CannotRun::of(text).map(CannotRun::exit_code),
                code,
                "{text}"
            );
        }
    }
}
