//! The kernel's first move of a task into a cgroup after a quiet spell waits for an RCU grace
//! period (cgroup_threadgroup_rwsem's rcu_sync; ~10-20 ms here), and every runtime pays it
//! when it puts the container's first process in its cgroup. One grace period serves every
//! writer that arrives while it runs, so a throw-away child that moves itself into its own
//! cgroup at our very start lets that wait overlap our start-up instead of following it.
use std::ffi::CString;

pub fn start() {
    let Some(procs) = own_procs_file() else { return };
    let Ok(path) = CString::new(procs) else { return };
    // SAFETY: we are single-threaded here (before any thread is spawned); the child only makes
    // async-signal-safe syscalls on a path prepared before fork and exits without unwinding.
    unsafe {
        if libc::fork() == 0 {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, b"0".as_ptr().cast(), 1);
            }
            libc::_exit(0);
        }
    }
}

/// cgroup.procs of the cgroup we are in on the unified hierarchy (pure v2 or hybrid).
fn own_procs_file() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|root| format!("{root}{path}/cgroup.procs"))
        .find(|p| std::path::Path::new(p).exists())
}
