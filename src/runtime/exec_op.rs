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
