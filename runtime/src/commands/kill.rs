use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;

use crate::cli::{Global, Kill};

pub fn run(g: &Global, a: Kill) -> Result<i32> {
    let sig = crate::signal::parse(&a.signal)?;
    let mut c = super::load(&g.root, &a.id)?;
    c.refresh_status()?;
    if c.status() == ContainerStatus::Stopped && !a.all {
        bail!("container {} is not running", a.id);
    }
    c.kill(sig, a.all)?;
    Ok(0)
}
