//! What this host cannot honour as a spec asks, handled as runc does or better: an rlimit above
//! the runtime's hard limit is clamped (no CAP_SYS_RESOURCE to raise it), kernel memory limits
//! are ignored (kernels >= 5.16 reject them), and the systemd cgroup path form works on a v1
//! host. Each test would fail the container without the adaptation.
use std::path::Path;

mod common;
use common::{ok, Env};

fn hard_nofile() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r.rlim_max
}

#[test]
fn rlimit_above_the_hard_limit_is_clamped() {
    let mut env = Env::new();
    let mut config = Env::config(&["sh", "-c", "ulimit -n; ulimit -Hn"], "/");
    config["process"]["rlimits"] =
        serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 1u64 << 40, "hard": 1u64 << 40}]);
    env.write(&config);
    let id = env.id("rlimit");
    let out = ok(env.run(&mut env.rt(&["run", "--bundle", &env.bundle(), &id])), "run");
    let hard = hard_nofile();
    let got: Vec<u64> =
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(|v| v.parse().unwrap()).collect();
    assert_eq!(got, vec![hard, hard], "soft and hard RLIMIT_NOFILE in the container");
    if hard < 1u64 << 40 {
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("clamped"),
            "the clamp is not reported: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn memory_cgroup(path: &str) -> Option<std::path::PathBuf> {
    let root = Path::new("/sys/fs/cgroup/memory");
    root.is_dir().then(|| root.join(path.trim_start_matches('/')))
}

#[test]
fn kernel_memory_limits_are_ignored_and_the_limit_applied() {
    let mut env = Env::new();
    let id = env.id("kmem");
    // A top-level cgroup of its own: the runtime removes it, and no parent is left behind.
    let cg = format!("/{id}");
    let mut config = Env::config(&["sleep", "100"], "/");
    config["linux"]["cgroupsPath"] = cg.clone().into();
    config["linux"]["resources"] =
        serde_json::json!({"memory": {"limit": 67108864, "kernel": 33554432, "kernelTCP": 16777216}});
    env.write(&config);
    ok(env.run(&mut env.rt(&["create", "--bundle", &env.bundle(), &id])), "create");
    if let Some(dir) = memory_cgroup(&cg) {
        let limit = std::fs::read_to_string(dir.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(limit.trim(), "67108864");
        ok(env.run(&mut env.rt(&["delete", "--force", &id])), "delete");
        assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    }
}

#[test]
fn systemd_cgroup_path_on_a_v1_host() {
    let Some(memory) = memory_cgroup("/") else {
        eprintln!("skipped: no cgroup v1 memory hierarchy on this host");
        return;
    };
    let mut env = Env::new();
    let id = env.id("sd");
    let mut config = Env::config(&["sleep", "100"], "/");
    // A slice of the test's own, removed at the end (system.slice may be the host's).
    config["linux"]["cgroupsPath"] = format!("berth-test.slice:berth-test:{id}").into();
    env.write(&config);
    let mut create = env.rt(&["--systemd-cgroup", "create", "--bundle", &env.bundle(), &id]);
    ok(env.run(&mut create), "create");
    let scope = memory.join(format!("berth-test.slice/berth-test-{id}.scope"));
    assert!(scope.is_dir(), "expected the container in {}", scope.display());
    let state: serde_json::Value =
        serde_json::from_slice(&ok(env.run(&mut env.rt(&["state", &id])), "state").stdout).unwrap();
    let procs = std::fs::read_to_string(scope.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|p| p.parse::<i64>().ok() == state["pid"].as_i64()), "init not in {}", scope.display());
    ok(env.run(&mut env.rt(&["delete", "--force", &id])), "delete");
    assert!(!scope.exists(), "cgroup {} left behind", scope.display());
    for ctrl in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(ctrl.path().join("berth-test.slice"));
    }
}
