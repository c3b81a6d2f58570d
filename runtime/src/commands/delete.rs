use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;

use crate::cli::{Delete, Global};

pub fn run(g: &Global, a: Delete) -> Result<i32> {
    let dir = super::container_dir(&g.root, &a.id)?;
    if !dir.join("state.json").exists() {
        if a.force {
            // A create that died half-way may leave a bare directory; force cleans it.
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_dir_all(crate::bundle::derived_dir(&g.root, &a.id));
            return Ok(0);
        }
        bail!("container {} does not exist", a.id);
    }
    let mut c = super::load(&g.root, &a.id)?;
    c.refresh_status()?;
    if !a.force && matches!(c.status(), ContainerStatus::Running | ContainerStatus::Paused) {
        bail!("cannot delete container {} that is {}: stop it first or use --force", a.id, c.status());
    }
    // libcontainer stops at the first failing poststop hook and then keeps the state dir;
    // the spec wants every hook run and a failure to be only a warning. So run them here.
    let poststop = super::take_hooks(&c, super::HookKind::Poststop)?;
    let bundle = super::user_bundle(&c);
    c.delete(a.force)?;
    let _ = std::fs::remove_dir_all(crate::bundle::derived_dir(&g.root, &a.id));
    c.state.bundle = bundle;
    c.state.status = ContainerStatus::Stopped;
    super::run_hooks_warn(&c, &poststop, "poststop");
    Ok(0)
}
