//! The last steps in the container's init before its program runs.
use std::collections::HashMap;
use std::sync::Arc;

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError};

#[derive(Clone, Default)]
pub struct ContainerExecutor {
    /// A ready-made seccomp filter for the init (seccomp.rs); None when libcontainer loads the
    /// profile itself, or there is none.
    seccomp: Option<Arc<crate::seccomp::Plan>>,
}

impl ContainerExecutor {
    pub fn new(seccomp: Option<Arc<crate::seccomp::Plan>>) -> Self {
        ContainerExecutor { seccomp }
    }
}

impl Executor for ContainerExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // The init is a clone of this Rust process, which ignores SIGPIPE; an ignored signal
        // survives execve, so the container's program would start with it ignored.
        // SAFETY: signal(2) with a valid signal number and SIG_DFL, just before execve.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }

    /// The last call libcontainer makes in the init before it reports ready and waits for
    /// `start`: capabilities are dropped (but a lent CAP_SYS_ADMIN), where libcontainer loads
    /// a profile for a process with no_new_privs.
    fn setup_envs(&self, envs: HashMap<String, String>) -> Result<(), ExecutorSetEnvsError> {
        Executor::setup_envs(&DefaultExecutor {}, envs)?;
        let Some(plan) = &self.seccomp else { return Ok(()) };
        plan.filter
            .load()
            .map_err(|e| ExecutorSetEnvsError::Other(format!("loading the seccomp filter: {e}")))?;
        if let Some(caps) = &plan.restore_caps {
            let syscall = libcontainer::syscall::syscall::create_syscall();
            libcontainer::capabilities::drop_privileges(caps, syscall.as_ref())
                .map_err(|e| ExecutorSetEnvsError::Other(format!("dropping capabilities: {e}")))?;
        }
        Ok(())
    }
}
