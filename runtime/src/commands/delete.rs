use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;

use crate::cli::{Delete, Global};

pub fn run(g: &Global, a: Delete) -> Result<i32> {
    let dir = super::container_dir(&g.root, &a.id)?;
    if !dir.join("state.json").exists() {
        if a.force {
            // A create that died half-way may leave a bare directory; force cleans it.
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(0);
        }
        bail!("container {} does not exist", a.id);
    }
    let mut c = super::load(&g.root, &a.id)?;
    c.refresh_status()?;
    if !a.force && matches!(c.status(), ContainerStatus::Running | ContainerStatus::Paused) {
        bail!("cannot delete container {} that is {}: stop it first or use --force", a.id, c.status());
    }
    c.delete(a.force)?;
    Ok(0)
}
