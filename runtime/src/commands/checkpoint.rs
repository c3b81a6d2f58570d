//! CRIU checkpoint/restore: through libcontainer where CRIU is installed.
use anyhow::{bail, Result};
use libcontainer::container::CheckpointOptions;

use crate::cli::{Checkpoint, Global, Restore};

fn criu_installed() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("criu").is_file()))
        .unwrap_or(false)
}

pub fn checkpoint(g: &Global, a: Checkpoint) -> Result<i32> {
    if !criu_installed() {
        bail!("checkpoint is not supported: criu is not installed on this host");
    }
    let mut c = super::load(&g.root, &a.id)?;
    c.refresh_status()?;
    std::fs::create_dir_all(&a.image_path)?;
    c.checkpoint(&CheckpointOptions {
        ext_unix_sk: a.ext_unix_sk,
        file_locks: a.file_locks,
        image_path: a.image_path.clone(),
        leave_running: a.leave_running,
        shell_job: a.shell_job,
        tcp_established: a.tcp_established,
        work_path: a.work_path.clone(),
        manage_cgroups_mode: rust_criu::CgMode::SOFT,
        link_remap: false,
    })?;
    Ok(0)
}

pub fn restore(_g: &Global, a: Restore) -> Result<i32> {
    if !criu_installed() {
        bail!("restore is not supported: criu is not installed on this host");
    }
    bail!("restore of {} is not supported yet by berth-runtime (libcontainer has no restore)", a.id)
}
