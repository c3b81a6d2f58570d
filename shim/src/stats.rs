//! Task metrics from the container's cgroups (v1 and hybrid hosts), as
//! containerd's `io.containerd.cgroups.v1.Metrics`, which `ctr task metrics`
//! and the CRI read.

use std::collections::HashMap;
use std::path::PathBuf;

use containerd_shim::protos::cgroups::metrics::{CPUStat, CPUUsage, MemoryEntry, MemoryStat, Metrics, PidsStat};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};

use crate::error::{Error, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The full protobuf name of [`Metrics`], as containerd's typeurl expects.
const METRICS_TYPE: &str = "io.containerd.cgroups.v1.Metrics";

/// controller -> directory of `pid`'s cgroup, from /proc/PID/cgroup.
fn cgroup_dirs(pid: u32) -> Result<HashMap<String, PathBuf>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| Error::FailedPrecondition(format!("cgroups of pid {pid}: {e}")))?;
    let mut dirs = HashMap::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else { continue };
        let path = path.trim_start_matches('/');
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            let c = c.trim_start_matches("name=");
            // Joined hierarchies are mounted under the joined name (cpu,cpuacct).
            let mount = [ctrls, c].into_iter().map(|m| PathBuf::from(CGROUP_ROOT).join(m)).find(|p| p.is_dir());
            if let Some(m) = mount {
                dirs.insert(c.to_string(), m.join(path));
            }
        }
    }
    Ok(dirs)
}

/// The cgroup v2 directory of `pid` (`0::/path`), on a pure v2 host or the
/// unified hierarchy of a hybrid one.
pub fn unified_cgroup(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim_start_matches('/');
    let unified = PathBuf::from(CGROUP_ROOT).join("unified");
    let root = if unified.join("cgroup.controllers").is_file() { unified } else { PathBuf::from(CGROUP_ROOT) };
    Some(root.join(path))
}

/// The v1 memory cgroup directory of `pid`.
pub fn memory_cgroup(pid: u32) -> Option<PathBuf> {
    cgroup_dirs(pid).ok()?.remove("memory")
}

fn read_u64(dir: Option<&PathBuf>, file: &str) -> u64 {
    dir.and_then(|d| std::fs::read_to_string(d.join(file)).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn read_kv(dir: Option<&PathBuf>, file: &str) -> HashMap<String, u64> {
    dir.and_then(|d| std::fs::read_to_string(d.join(file)).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn entry(dir: Option<&PathBuf>, prefix: &str) -> MessageField<MemoryEntry> {
    MessageField::some(MemoryEntry {
        usage: read_u64(dir, &format!("{prefix}.usage_in_bytes")),
        limit: read_u64(dir, &format!("{prefix}.limit_in_bytes")),
        max: read_u64(dir, &format!("{prefix}.max_usage_in_bytes")),
        failcnt: read_u64(dir, &format!("{prefix}.failcnt")),
        ..Default::default()
    })
}

/// Metrics of the cgroup the process `pid` lives in.
pub fn metrics(pid: u32) -> Result<Any> {
    let dirs = cgroup_dirs(pid)?;
    if !dirs.contains_key("memory") && !dirs.contains_key("cpuacct") {
        return Err(Error::Unimplemented("metrics without cgroup v1 memory/cpuacct controllers"));
    }
    let mut m = Metrics::new();

    let pids = dirs.get("pids");
    let limit = pids.and_then(|d| std::fs::read_to_string(d.join("pids.max")).ok());
    m.pids = MessageField::some(PidsStat {
        current: read_u64(pids, "pids.current"),
        limit: limit.and_then(|l| l.trim().parse().ok()).unwrap_or(0),
        ..Default::default()
    });

    let cpu = dirs.get("cpuacct");
    let per_cpu = cpu
        .and_then(|d| std::fs::read_to_string(d.join("cpuacct.usage_percpu")).ok())
        .map(|s| s.split_whitespace().filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    m.cpu = MessageField::some(CPUStat {
        usage: MessageField::some(CPUUsage {
            total: read_u64(cpu, "cpuacct.usage"),
            user: read_u64(cpu, "cpuacct.usage_user"),
            kernel: read_u64(cpu, "cpuacct.usage_sys"),
            per_cpu,
            ..Default::default()
        }),
        ..Default::default()
    });

    let mem = dirs.get("memory");
    let st = read_kv(mem, "memory.stat");
    let g = |k: &str| st.get(k).copied().unwrap_or(0);
    m.memory = MessageField::some(MemoryStat {
        cache: g("cache"),
        rss: g("rss"),
        rss_huge: g("rss_huge"),
        mapped_file: g("mapped_file"),
        dirty: g("dirty"),
        writeback: g("writeback"),
        pg_pg_in: g("pgpgin"),
        pg_pg_out: g("pgpgout"),
        pg_fault: g("pgfault"),
        pg_maj_fault: g("pgmajfault"),
        inactive_anon: g("inactive_anon"),
        active_anon: g("active_anon"),
        inactive_file: g("inactive_file"),
        active_file: g("active_file"),
        unevictable: g("unevictable"),
        hierarchical_memory_limit: g("hierarchical_memory_limit"),
        hierarchical_swap_limit: g("hierarchical_memsw_limit"),
        total_cache: g("total_cache"),
        total_rss: g("total_rss"),
        total_rss_huge: g("total_rss_huge"),
        total_mapped_file: g("total_mapped_file"),
        total_dirty: g("total_dirty"),
        total_writeback: g("total_writeback"),
        total_pg_pg_in: g("total_pgpgin"),
        total_pg_pg_out: g("total_pgpgout"),
        total_pg_fault: g("total_pgfault"),
        total_pg_maj_fault: g("total_pgmajfault"),
        total_inactive_anon: g("total_inactive_anon"),
        total_active_anon: g("total_active_anon"),
        total_inactive_file: g("total_inactive_file"),
        total_active_file: g("total_active_file"),
        total_unevictable: g("total_unevictable"),
        usage: entry(mem, "memory"),
        swap: entry(mem, "memory.memsw"),
        kernel: entry(mem, "memory.kmem"),
        kernel_tcp: entry(mem, "memory.kmem.tcp"),
        ..Default::default()
    });
    // Named by hand: convert_to_any would build metrics.proto's descriptors
    // through reflection and keep them resident.
    let value = m.write_to_bytes().map_err(|e| Error::Runtime(format!("encode metrics: {e}")))?;
    Ok(Any { type_url: METRICS_TYPE.to_string(), value, ..Default::default() })
}
