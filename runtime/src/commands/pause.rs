use anyhow::Result;

use crate::cli::{Global, IdArg};

pub fn pause(g: &Global, a: IdArg) -> Result<i32> {
    let mut c = super::load(&g.root, &a.id)?;
    c.refresh_status()?;
    c.pause()?;
    Ok(0)
}

pub fn resume(g: &Global, a: IdArg) -> Result<i32> {
    let mut c = super::load(&g.root, &a.id)?;
    c.refresh_status()?;
    c.resume()?;
    Ok(0)
}
