//! `stats`: Docker's stats JSON from the container's cgroup (v1 or v2), read directly.

use super::{ContainerRecord, ContainerService};
use crate::errors::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn kv(p: &Path) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    if let Ok(s) = std::fs::read_to_string(p) {
        for l in s.lines() {
            if let Some((k, v)) = l.split_once(' ') {
                if let Ok(n) = v.trim().parse::<u64>() {
                    m.insert(k.to_string(), json!(n));
                }
            }
        }
    }
    m
}

fn system_cpu_ns() -> u64 {
    // /proc/stat's first line, in USER_HZ ticks, as nanoseconds (what Docker reports).
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = s.lines().next().unwrap_or("").split_whitespace().skip(1).take(7).filter_map(|v| v.parse::<u64>().ok()).sum();
    ticks * (1_000_000_000 / 100)
}

impl ContainerService {
    fn cgroup(&self, r: &ContainerRecord, controller: &str) -> PathBuf {
        let path = self.cgroup_path(r);
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        if v2 {
            PathBuf::from(format!("/sys/fs/cgroup{path}"))
        } else {
            PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}"))
        }
    }

    /// One sample of Docker's stats JSON; `pre` is the previous sample's cpu_stats.
    pub fn stats_sample(&self, name: &str, pre: &Value) -> Result<Value> {
        let r = self.find(name)?;
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        if !r.state.status.is_live() {
            return Ok(json!({ "read": now, "preread": "0001-01-01T00:00:00Z", "name": format!("/{}", r.name), "id": r.id,
                "pids_stats": {}, "cpu_stats": { "cpu_usage": { "total_usage": 0 }, "throttling_data": {} }, "precpu_stats": { "cpu_usage": { "total_usage": 0 }, "throttling_data": {} },
                "memory_stats": {}, "blkio_stats": {}, "networks": {} }));
        }
        let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let (cpu_total, cpu_user, cpu_sys, mem_usage, mem_limit, mem_stats, pids) = if v2 {
            let d = self.cgroup(&r, "");
            let cs = kv(&d.join("cpu.stat"));
            let us = |k: &str| cs.get(k).and_then(|v| v.as_u64()).unwrap_or(0) * 1000;
            let limit = std::fs::read_to_string(d.join("memory.max")).ok().and_then(|s| s.trim().parse::<u64>().ok());
            (us("usage_usec"), us("user_usec"), us("system_usec"), read_u64(&d.join("memory.current")).unwrap_or(0), limit, kv(&d.join("memory.stat")), read_u64(&d.join("pids.current")).unwrap_or(0))
        } else {
            let cpu = self.cgroup(&r, "cpuacct");
            let mem = self.cgroup(&r, "memory");
            let st = kv(&cpu.join("cpuacct.stat"));
            let tick = |k: &str| st.get(k).and_then(|v| v.as_u64()).unwrap_or(0) * 10_000_000;
            let limit = read_u64(&mem.join("memory.limit_in_bytes"));
            (
                read_u64(&cpu.join("cpuacct.usage")).unwrap_or(0),
                tick("user"),
                tick("system"),
                read_u64(&mem.join("memory.usage_in_bytes")).unwrap_or(0),
                limit,
                kv(&mem.join("memory.stat")),
                read_u64(&self.cgroup(&r, "pids").join("pids.current")).unwrap_or(0),
            )
        };
        let host_mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
            .map(|kb| kb * 1024)
            .unwrap_or(0);
        let limit = mem_limit.filter(|l| *l < host_mem && *l > 0).unwrap_or(host_mem);
        Ok(json!({
            "read": now,
            "preread": pre.get("read").cloned().unwrap_or(json!("0001-01-01T00:00:00Z")),
            "name": format!("/{}", r.name),
            "id": r.id,
            "num_procs": 0,
            "pids_stats": { "current": pids },
            "cpu_stats": {
                "cpu_usage": { "total_usage": cpu_total, "usage_in_usermode": cpu_user, "usage_in_kernelmode": cpu_sys },
                "system_cpu_usage": system_cpu_ns(),
                "online_cpus": ncpu,
                "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
            },
            "precpu_stats": pre.get("cpu_stats").cloned().unwrap_or(json!({ "cpu_usage": { "total_usage": 0 }, "throttling_data": {} })),
            "memory_stats": { "usage": mem_usage, "limit": limit, "stats": mem_stats },
            "blkio_stats": { "io_service_bytes_recursive": null },
            "networks": {},
        }))
    }

    pub fn check_exists(&self, name: &str) -> Result<()> {
        self.find(name).map(|_| ()).map_err(|e| if e.kind == crate::errors::Kind::NotFound { e } else { Error::internal(e.message) })
    }
}
