use std::fs;

use anyhow::Result;
use serde::Serialize;

use crate::cli::{Global, List, ListFormat};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    oci_version: String,
    id: String,
    pid: i32,
    status: String,
    bundle: String,
    rootfs: String,
    created: String,
    owner: String,
}

pub fn run(g: &Global, a: List) -> Result<i32> {
    let mut entries = Vec::new();
    if let Ok(dir) = fs::read_dir(&g.root) {
        for e in dir.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let Ok(mut c) = super::load(&g.root, &id) else { continue };
            let _ = c.refresh_status();
            let s = super::state::State::of(&c);
            let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(
                c.state.creator.unwrap_or(0),
            ))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "root".into());
            let rootfs = crate::bundle::load_spec(&s.bundle)
                .ok()
                .and_then(|sp| sp.root().as_ref().map(|r| s.bundle.join(r.path())))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            entries.push(Entry {
                oci_version: s.oci_version.to_string(),
                id: s.id.to_string(),
                pid: s.pid,
                status: s.status.to_string(),
                bundle: s.bundle.display().to_string(),
                rootfs,
                created: s.created.unwrap_or_default(),
                owner,
            });
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    if a.quiet {
        for e in &entries {
            println!("{}", e.id);
        }
        return Ok(0);
    }
    match a.format {
        ListFormat::Json => println!("{}", serde_json::to_string(&entries)?),
        ListFormat::Table => {
            println!("{:<12} {:<8} {:<10} {:<40} {:<31} {}", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
            for e in &entries {
                println!("{:<12} {:<8} {:<10} {:<40} {:<31} {}", e.id, e.pid, e.status, e.bundle, e.created, e.owner);
            }
        }
    }
    Ok(0)
}
