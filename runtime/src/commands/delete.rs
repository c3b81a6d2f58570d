use anyhow::{bail, Result};
use libcontainer::config::YoukiConfig;
use libcontainer::container::ContainerStatus;
use libcontainer::hooks;

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
    let poststop = take_poststop_hooks(&c)?;
    let bundle = super::user_bundle(&c);
    c.delete(a.force)?;
    let _ = std::fs::remove_dir_all(crate::bundle::derived_dir(&g.root, &a.id));
    c.state.bundle = bundle;
    c.state.status = ContainerStatus::Stopped;
    for hook in poststop {
        if let Err(e) = hooks::run_hooks(Some(&vec![hook.clone()]), Some(&c.state), None, None, None) {
            tracing::warn!("poststop hook {} failed: {e}", hook.path().display());
        }
    }
    Ok(0)
}

fn take_poststop_hooks(c: &libcontainer::container::Container) -> Result<Vec<oci_spec::runtime::Hook>> {
    let Ok(mut config) = YoukiConfig::load(&c.root) else { return Ok(Vec::new()) };
    let Some(hooks) = config.hooks.as_mut() else { return Ok(Vec::new()) };
    let Some(poststop) = hooks.poststop().clone() else { return Ok(Vec::new()) };
    hooks.set_poststop(None);
    config.save(&c.root)?;
    Ok(poststop)
}
