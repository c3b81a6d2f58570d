use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;

use crate::cli::{Global, IdArg};

pub fn run(g: &Global, a: IdArg) -> Result<i32> {
    let mut c = super::load(&g.root, &a.id)?;
    if !c.can_start() {
        bail!("cannot start container {} in state {}: it must be created", a.id, c.status());
    }
    if let Err(e) = c.start() {
        // The runtime spec: a failing poststart hook is a warning; the container keeps running.
        if super::load(&g.root, &a.id).is_ok_and(|mut c| {
            c.refresh_status().is_ok() && c.status() == ContainerStatus::Running
        }) {
            tracing::warn!("container {} started, but a poststart hook failed: {e}", a.id);
            return Ok(0);
        }
        return Err(e.into());
    }
    Ok(0)
}
