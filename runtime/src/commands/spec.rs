use std::fs;

use anyhow::{bail, Result};
use oci_spec::runtime::Spec;

use crate::cli::SpecCmd;

pub fn run(a: SpecCmd, rootless: bool) -> Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("{} already exists: remove it first", path.display());
    }
    let mut spec = if rootless {
        Spec::rootless(nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw())
    } else {
        Spec::default()
    };
    spec.set_hostname(Some("berth".into()));
    fs::write(&path, serde_json::to_string_pretty(&spec)?)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(0)
}
