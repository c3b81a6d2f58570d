use std::process::Command;

use anyhow::{bail, Context, Result};
use libcgroups::common::CgroupManager;

use crate::cli::{Global, ListFormat, Ps};

pub fn run(g: &Global, a: Ps) -> Result<i32> {
    let c = super::load(&g.root, &a.id)?;
    let pids: Vec<i32> = super::cgroup_manager(&c)?
        .get_all_pids()
        .context("reading the container's pids")?
        .iter()
        .map(|p| p.as_raw())
        .collect();
    match a.format {
        ListFormat::Json => println!("{}", serde_json::to_string(&pids)?),
        ListFormat::Table => {
            let args = if a.ps_args.is_empty() { vec!["-ef".to_string()] } else { a.ps_args };
            let out = Command::new("ps").args(&args).output().context("running ps")?;
            if !out.status.success() {
                bail!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for line in lines {
                let pid = line.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{line}");
                }
            }
        }
    }
    Ok(0)
}
