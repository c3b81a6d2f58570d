use anyhow::{bail, Result};

use crate::cli::{Global, IdArg};

pub fn run(g: &Global, a: IdArg) -> Result<i32> {
    let mut c = super::load(&g.root, &a.id)?;
    if !c.can_start() {
        bail!("cannot start container {} in state {}: it must be created", a.id, c.status());
    }
    c.start()?;
    Ok(0)
}
