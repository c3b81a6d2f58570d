use anyhow::{Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;

use crate::bundle;
use crate::cli::{Create, CreateOpts, Global};

pub fn run(g: &Global, a: Create) -> Result<i32> {
    build(g, &a.opts, &a.id, true)?;
    Ok(0)
}

/// Creates the container and leaves its process waiting for `start`.
pub fn build(g: &Global, opts: &CreateOpts, id: &str, detach: bool) -> Result<Container> {
    super::validate_id(id)?;
    if super::container_dir(&g.root, id)?.exists() {
        anyhow::bail!("container {id} already exists");
    }
    super::ensure_root(&g.root)?;
    let pid_file = super::absolute(&opts.pid_file)?;
    let console_socket = super::absolute(&opts.console_socket)?;
    let mut prepared = bundle::prepare(&g.root, id, &opts.bundle, g.systemd_cgroup)?;
    // runc runs in the bundle, so relative mount sources and hook paths resolve against it.
    std::env::set_current_dir(&prepared.bundle)
        .with_context(|| format!("entering bundle {}", prepared.bundle.display()))?;

    let container = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(crate::executor::ContainerExecutor::new(prepared.seccomp.clone()))
        .with_pid_file(pid_file)?
        .with_console_socket(console_socket)
        .with_root_path(&g.root)?
        .with_preserved_fds(opts.preserve_fds)
        .validate_id()?
        .as_init(&prepared.effective)
        .with_systemd(g.systemd_cgroup)
        .with_detach(detach)
        .with_no_pivot(opts.no_pivot)
        .build()?;
    prepared.commit(&container.root)?;
    if let (Some(pid), Some(process)) = (container.pid(), prepared.spec.process()) {
        if process.terminal() == Some(true) {
            if let Some(size) = process.console_size() {
                super::set_console_size(pid.as_raw(), size.height() as u16, size.width() as u16);
            }
        }
    }
    Ok(container)
}
