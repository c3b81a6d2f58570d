//! Resources: cgroup limits, rlimits, oom_score_adj, sysctl, devices.

use crate::{cases, check, Env, Outcome};
use anyhow::{ensure, Result};
use serde_json::json;
use std::path::Path;

cases![
    resources_memory_limit,
    resources_cpu,
    resources_pids_limit,
    resources_cgroup_created_and_removed,
    resources_rlimits,
    resources_oom_score_adj,
    resources_sysctl,
    resources_default_devices,
    resources_linux_devices,
    resources_device_cgroup_denies,
];

/// Cgroup tests need a cgroup v1 memory/cpu/pids hierarchy or cgroup v2.
fn cgroups_available() -> Option<String> {
    let v1 = Path::new("/sys/fs/cgroup/memory").exists();
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    (!v1 && !v2).then(|| "no usable cgroup hierarchy at /sys/fs/cgroup".to_string())
}

fn cgroup_test(env: &Env, resources: serde_json::Value, required: &[&str]) -> Result<Outcome> {
    if let Some(why) = cgroups_available() {
        return Ok(Outcome::Skip(why));
    }
    let mut b = env.bundle()?;
    b.checker(&["cgroup"]);
    let id_hint = format!("{}-cg", env.dir.file_name().unwrap().to_string_lossy());
    b.set("/linux/cgroupsPath", json!(env.cgroup_path(&id_hint)));
    let mut r = resources;
    r["devices"] = b.spec["linux"]["resources"]["devices"].clone();
    b.set("/linux/resources", r);
    check(env, &b, required)
}

fn resources_memory_limit(env: &Env) -> Result<Outcome> {
    cgroup_test(
        env,
        json!({"memory": {"limit": 67108864}}),
        &["cgroup.memory.limit"],
    )
}

fn resources_cpu(env: &Env) -> Result<Outcome> {
    cgroup_test(
        env,
        json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}}),
        &["cgroup.cpu.quota", "cgroup.cpuset.cpus"],
    )
}

fn resources_pids_limit(env: &Env) -> Result<Outcome> {
    cgroup_test(env, json!({"pids": {"limit": 64}}), &["cgroup.pids.limit"])
}

/// Host side: the cgroup exists with the limit and the container's pid while
/// the container exists, and is gone after delete.
fn resources_cgroup_created_and_removed(env: &Env) -> Result<Outcome> {
    if !Path::new("/sys/fs/cgroup/memory").exists() {
        return Ok(Outcome::Skip(
            "host-side check written for cgroup v1; this machine has no v1 memory controller"
                .into(),
        ));
    }
    let mut b = env.bundle()?;
    b.args(&["/bin/sleep", "600"]);
    let id = env.id();
    let cg = env.cgroup_path(&id);
    b.set("/linux/cgroupsPath", json!(cg));
    b.set("/linux/resources/memory", json!({"limit": 33554432}));
    env.create(&b, &id)?.ok()?;
    let dir = Path::new("/sys/fs/cgroup/memory").join(cg.trim_start_matches('/'));
    let limit = std::fs::read_to_string(dir.join("memory.limit_in_bytes"))?;
    ensure!(
        limit.trim() == "33554432",
        "memory.limit_in_bytes on the host is {limit:?}"
    );
    let pid = env.state(&id)?["pid"].to_string();
    let procs = std::fs::read_to_string(dir.join("cgroup.procs"))?;
    ensure!(
        procs.lines().any(|l| l == pid),
        "container pid {pid} not in {}/cgroup.procs: {procs:?}",
        dir.display()
    );
    env.rt(&["delete", "--force", &id])?.ok()?;
    ensure!(
        !dir.exists(),
        "cgroup {} left behind after delete",
        dir.display()
    );
    Ok(Outcome::Pass)
}

fn resources_rlimits(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["rlimits"]);
    // Below this machine's hard limits: raising a hard limit needs CAP_SYS_RESOURCE.
    b.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
               {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
               {"type": "RLIMIT_CPU", "soft": 100, "hard": 200}]),
    );
    check(
        env,
        &b,
        &[
            "rlimit[RLIMIT_NOFILE]",
            "rlimit[RLIMIT_CORE]",
            "rlimit[RLIMIT_CPU]",
        ],
    )
}

fn resources_oom_score_adj(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["oom"]);
    b.set("/process/oomScoreAdj", json!(500));
    check(env, &b, &["oomScoreAdj"])
}

fn resources_sysctl(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["sysctl"]);
    b.set(
        "/linux/sysctl",
        json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "16384"}),
    );
    check(
        env,
        &b,
        &["sysctl[net.ipv4.ip_forward]", "sysctl[kernel.msgmax]"],
    )
}

fn resources_default_devices(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["default_devices"]);
    check(
        env,
        &b,
        &[
            "default_device[/dev/null]",
            "default_device[/dev/tty]",
            "dev_symlink[/dev/fd]",
        ],
    )
}

fn resources_linux_devices(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["devices"]);
    b.set(
        "/linux/devices",
        json!([{"path": "/dev/conf-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1234, "gid": 4321},
               {"path": "/dev/conf-fifo", "type": "p", "fileMode": 0o600}]),
    );
    b.set(
        "/linux/resources/devices",
        json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]),
    );
    check(
        env,
        &b,
        &[
            "device[/dev/conf-null].majmin",
            "device[/dev/conf-null].mode",
            "device[/dev/conf-null].uid",
            "device[/dev/conf-fifo].type",
        ],
    )
}

fn resources_device_cgroup_denies(env: &Env) -> Result<Outcome> {
    if !Path::new("/sys/fs/cgroup/devices").exists() {
        return Ok(Outcome::Skip(
            "no cgroup v1 devices controller (v2 device filtering is eBPF)".into(),
        ));
    }
    let mut b = env.bundle()?;
    b.checker(&["device_denied"]);
    // /dev/mem exists in the container but no rule allows c 1:1.
    b.set(
        "/linux/devices",
        json!([{"path": "/dev/conf-mem", "type": "c", "major": 1, "minor": 1, "fileMode": 0o600}]),
    );
    b.annotate("denied-device", "/dev/conf-mem");
    check(env, &b, &["device_denied[/dev/conf-mem]"])
}
