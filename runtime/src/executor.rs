//! The last step in the container's init before its program runs.
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

#[derive(Clone)]
pub struct ContainerExecutor;

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
}
