use std::io::Read;

use anyhow::{bail, Context, Result};
use libcgroups::common::{CgroupManager, ControllerOpt};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
};

use crate::cli::{Global, Update};

pub fn run(g: &Global, a: Update) -> Result<i32> {
    let c = super::load(&g.root, &a.id)?;
    let resources = match &a.resources {
        Some(path) => {
            let mut raw = String::new();
            if path.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut raw)?;
            } else {
                raw = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            serde_json::from_str::<LinuxResources>(&raw)
                .map_err(|e| anyhow::anyhow!("invalid resources JSON: {e}"))?
        }
        None => from_flags(&a)?,
    };
    super::cgroup_manager(&c)?
        .apply(&ControllerOpt {
            resources: &resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        })
        .context("applying resources")?;
    Ok(0)
}

fn from_flags(a: &Update) -> Result<LinuxResources> {
    let mut r = LinuxResources::default();
    let mut cpu = LinuxCpuBuilder::default();
    let mut cpu_set = false;
    macro_rules! cpu_field {
        ($opt:expr, $setter:ident) => {
            if let Some(v) = $opt.clone() {
                cpu = cpu.$setter(v);
                cpu_set = true;
            }
        };
    }
    cpu_field!(a.cpu_period, period);
    cpu_field!(a.cpu_quota, quota);
    cpu_field!(a.cpu_rt_period, realtime_period);
    cpu_field!(a.cpu_rt_runtime, realtime_runtime);
    cpu_field!(a.cpu_share, shares);
    cpu_field!(a.cpuset_cpus, cpus);
    cpu_field!(a.cpuset_mems, mems);
    if cpu_set {
        r.set_cpu(Some(cpu.build()?));
    }
    if a.memory.is_some() || a.memory_reservation.is_some() || a.memory_swap.is_some() {
        let mut m = LinuxMemoryBuilder::default();
        if let Some(v) = &a.memory {
            m = m.limit(parse_bytes(v)?);
        }
        if let Some(v) = &a.memory_reservation {
            m = m.reservation(parse_bytes(v)?);
        }
        if let Some(v) = &a.memory_swap {
            m = m.swap(parse_bytes(v)?);
        }
        r.set_memory(Some(m.build()?));
    }
    if let Some(p) = a.pids_limit {
        r.set_pids(Some(LinuxPidsBuilder::default().limit(p).build()?));
    }
    if let Some(w) = a.blkio_weight {
        r.set_block_io(Some(LinuxBlockIoBuilder::default().weight(w).build()?));
    }
    Ok(r)
}

/// Bytes with an optional k/m/g suffix (powers of 1024), or -1 for unlimited.
fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.trim_end_matches('b');
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    match num.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n * mul),
        _ => bail!("invalid size {s:?}: use bytes, or a number with k, m or g"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_bytes("1024").unwrap(), 1024);
        assert_eq!(super::parse_bytes("10m").unwrap(), 10 << 20);
        assert_eq!(super::parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(super::parse_bytes("-1").unwrap(), -1);
        assert!(super::parse_bytes("ten").is_err());
    }
}
