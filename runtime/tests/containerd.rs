//! berth-runtime under real containerd 1.6: containerd's stock runc shim
//! (`io.containerd.runc.v2`) drives berth-runtime through `ctr run --runc-binary`.
//!
//! Each test starts its own containerd as a child process with a private config
//! (root, state, sockets and the runtime's `--root` all under one temp dir, CRI
//! and other unneeded plugins off), imports a busybox image it builds itself
//! with umoci, and drives containers with `ctr`. A [`Containerd`] guard undoes
//! everything on drop, also when a test fails: tasks, shims, container
//! processes, mounts under the temp dir, the namespace's cgroups, shim sockets.
//!
//! Needs root, `containerd`, `ctr`, `containerd-shim-runc-v2`, `umoci` and a
//! static busybox. Skips (with a printed reason) only when containerd or ctr
//! is not installed.
//!
//! `BERTH_TEST_RUNTIME=/usr/sbin/runc` runs the same tests against another
//! runc-compatible binary, to compare.

use std::collections::HashMap;
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

const IMAGE: &str = "berth.test/busybox:latest";

#[path = "../../testsupport/containerd.rs"]
mod support;
use support::{
    assert_root, build_image, cgroups, find_containerd, kill_cgroup_procs, kill_shims, remove_cgroups, text,
    unique_id, which, Daemon, CGROUP_ROOT,
};

fn runtime_binary() -> PathBuf {
    match std::env::var_os("BERTH_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime")),
    }
}

fn code(st: &ExitStatus) -> Option<i32> {
    st.code()
}

// ---------------------------------------------------------------------------
// a private containerd

struct Containerd {
    d: Daemon,
    runtime: PathBuf,
}

// The tests use the daemon's dir, namespace and ctr as their own.
impl Deref for Containerd {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.d
    }
}

impl Containerd {
    /// Starts containerd, or returns None (after printing why) when containerd
    /// or ctr is not installed.
    fn start() -> Option<Containerd> {
        let tools = find_containerd()?;
        assert!(
            which("containerd-shim-runc-v2").is_some(),
            "containerd is installed but containerd-shim-runc-v2 is not on PATH"
        );
        assert_root();
        let runtime = runtime_binary();
        assert!(runtime.is_file(), "runtime binary {} does not exist", runtime.display());

        let id = unique_id();
        let d = Daemon::new(tools, &format!("berth-ctrd-{id}"), &format!("berth-test-{id}"), None);
        let mut cd = Containerd { d, runtime };
        let config = cd.config("info", false);
        cd.d.start(&config);

        let tar = build_image(&cd.dir);
        let out = cd.ctr_ok(&[
            "images",
            "import",
            "--base-name",
            "berth.test/busybox",
            tar.to_str().unwrap(),
        ]);
        let ls = cd.ctr_ok(&["images", "ls", "-q"]);
        assert!(
            text(&ls.stdout).lines().any(|l| l.trim() == IMAGE),
            "image {IMAGE} not present after import; import said: {}{}; images: {}",
            text(&out.stdout),
            text(&out.stderr),
            text(&ls.stdout)
        );
        Some(cd)
    }

    fn runc_root(&self) -> PathBuf {
        // the runc shim passes `--root <runc-root>/<namespace>` to the runtime
        self.dir.join("runtime-root").join(&self.ns)
    }

    /// `ctr run` with the runtime under test and its state kept in our dir.
    fn run_args<'a>(&'a self, extra: &[&'a str], id: &'a str, argv: &[&'a str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "run".into(),
            "--runc-binary".into(),
            self.runtime.display().to_string(),
            "--runc-root".into(),
            self.dir.join("runtime-root").display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(IMAGE.into());
        v.push(id.into());
        v.extend(argv.iter().map(|s| s.to_string()));
        v
    }

    fn tasks(&self) -> HashMap<String, (u32, String)> {
        let out = self.ctr_ok(&["task", "ls"]);
        text(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3).then(|| (f[0].to_string(), (f[1].parse().unwrap_or(0), f[2].to_string())))
            })
            .collect()
    }

    fn task_status(&self, id: &str) -> Option<String> {
        self.tasks().get(id).map(|t| t.1.clone())
    }

    fn wait_status(&self, id: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.task_status(id);
            if st.as_deref() == Some(want) {
                return;
            }
            if Instant::now() > deadline {
                panic!("task {id} did not reach {want} within {timeout:?}; it is {st:?}\n{}", self.log_tail(30));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------
// cleanup, run even when a test panics

impl Drop for Containerd {
    fn drop(&mut self) {
        self.print_log_if_panicking(60);
        self.d.remove_tasks_and_containers();
        self.d.stop();
        // runc shims started for our containerd outlive it.
        kill_shims(&self.shim_pids(|a| a.windows(15).any(|w| w == b"containerd-shim")));
        // Container processes left in the namespace's cgroups; rootfs overlays and shm under
        // our dir. The runtime removes a container's own cgroup; the /<ns> parent made for it
        // stays behind.
        let cgroups = cgroups(&self.ns);
        kill_cgroup_procs(&cgroups);
        self.unmount_all();
        remove_cgroups(&cgroups);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// tests

#[test]
fn run_rm_returns_exit_code_and_output() {
    let Some(cd) = Containerd::start() else { return };
    let args = cd.run_args(&["--rm"], "exit7", &["sh", "-c", "echo hello-from-berth; exit 7"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cd.ctr(&args);
    assert_eq!(
        code(&out.status),
        Some(7),
        "ctr run should exit with the container's code\nstdout: {}\nstderr: {}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        cd.log_tail(30)
    );
    assert!(text(&out.stdout).contains("hello-from-berth"), "stdout: {}", text(&out.stdout));

    // --rm removed the task and the container, and the runtime its state.
    assert!(cd.tasks().is_empty(), "tasks left: {:?}", cd.tasks());
    assert!(cd.containers().is_empty(), "containers left: {:?}", cd.containers());
    assert!(!cd.runc_root().join("exit7").exists(), "runtime state dir left behind");
    assert_eq!(cd.container_cgroup("exit7"), None, "container cgroup left behind");

    // A zero exit is zero, too.
    let args = cd.run_args(&["--rm"], "exit0", &["true"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cd.ctr(&args);
    assert_eq!(code(&out.status), Some(0), "stderr: {}", text(&out.stderr));
}

#[test]
fn detached_exec_ps_kill_delete() {
    let Some(cd) = Containerd::start() else { return };
    let id = "detached";
    // PID 1 ignores SIGTERM unless it handles it: trap it to a known code.
    // `wait` returns as soon as a trapped signal arrives.
    let script = "trap 'exit 42' TERM; sleep 1000 & wait";
    let args = cd.run_args(&["-d", "--null-io"], id, &["sh", "-c", script]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cd.ctr_ok(&args);

    cd.wait_status(id, "RUNNING", Duration::from_secs(10));
    let init_pid = cd.tasks()[id].0;
    assert!(init_pid > 1, "task pid {init_pid}");
    assert!(Path::new(&format!("/proc/{init_pid}")).exists(), "init pid {init_pid} not alive");
    // The shim ran the runtime under test with the --root we gave it.
    assert!(
        cd.runc_root().join(id).is_dir(),
        "no state for {id} under the runtime root {}",
        cd.runc_root().display()
    );

    // exec: output and exit code come back; it runs inside the container's
    // pid and mount namespaces (its PID 1 is our shell loop).
    let out = cd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        id,
        "sh",
        "-c",
        "echo out-$((6*7)); tr '\\0' ' ' < /proc/1/cmdline; echo; echo to-stderr >&2; exit 3",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out.status), Some(3), "exec exit code; stdout: {stdout} stderr: {}", text(&out.stderr));
    assert!(stdout.contains("out-42"), "exec stdout: {stdout}");
    assert!(stdout.contains(script), "exec should see the container's PID 1: {stdout}");
    assert!(text(&out.stderr).contains("to-stderr"), "exec stderr: {}", text(&out.stderr));

    // A second exec with the same id after the first finished works too,
    // and a zero exit is zero.
    let out = cd.ctr(&["task", "exec", "--exec-id", "e1", id, "true"]);
    assert_eq!(code(&out.status), Some(0), "stderr: {}", text(&out.stderr));

    // ps lists the init process and a detached exec.
    // ctr leaves a detached exec's fifos behind: keep them in our dir.
    let fifo = cd.dir.join("fifo").display().to_string();
    cd.ctr_ok(&["task", "exec", "-d", "--fifo-dir", &fifo, "--exec-id", "bg", id, "sleep", "301"]);
    let cmdline = |pid: u32| fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (pids, bg) = loop {
        let out = cd.ctr_ok(&["task", "ps", id]);
        let pids: Vec<u32> = text(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        let bg = pids.iter().copied().find(|p| cmdline(*p).trim() == "sleep 301");
        if bg.is_some() || Instant::now() > deadline {
            break (pids, bg);
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(pids.contains(&init_pid), "ps {pids:?} lacks init pid {init_pid}");
    let bg = bg.unwrap_or_else(|| {
        let all: Vec<String> = pids.iter().map(|p| format!("{p}: {}", cmdline(*p))).collect();
        panic!("ps does not list the detached exec `sleep 301`: {all:?}")
    });

    // A running task cannot be deleted.
    let out = cd.ctr(&["task", "delete", id]);
    assert!(!out.status.success(), "deleting a running task should fail");

    // kill (SIGTERM by default) reaches PID 1's trap.
    cd.ctr_ok(&["task", "kill", id]);
    cd.wait_status(id, "STOPPED", Duration::from_secs(20));
    assert!(
        !Path::new(&format!("/proc/{bg}")).exists()
            || fs::read_to_string(format!("/proc/{bg}/stat")).map(|s| s.contains(") Z")).unwrap_or(true),
        "exec'd process {bg} outlived the container's PID 1"
    );

    let out = cd.ctr_ok(&["task", "delete", id]);
    assert!(
        text(&out.stderr).contains("exit code 42"),
        "task delete should report the exit code 42 of the SIGTERM trap; stderr: {}",
        text(&out.stderr)
    );
    assert!(!cd.tasks().contains_key(id), "task still listed after delete");
    assert!(!cd.runc_root().join(id).exists(), "runtime state dir left after delete");
    assert_eq!(cd.container_cgroup(id), None, "container cgroup left after delete");

    cd.ctr_ok(&["containers", "rm", id]);
    assert!(cd.containers().is_empty(), "containers left: {:?}", cd.containers());
}

#[test]
fn sigkill_pause_resume() {
    let Some(cd) = Containerd::start() else { return };
    let id = "pausing";
    let args = cd.run_args(&["-d", "--null-io"], id, &["sleep", "1000"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cd.ctr_ok(&args);
    cd.wait_status(id, "RUNNING", Duration::from_secs(10));

    cd.ctr_ok(&["task", "pause", id]);
    cd.wait_status(id, "PAUSED", Duration::from_secs(10));
    // The container's cgroup is frozen: v1 freezer, or cgroup.freeze on v2.
    let v1 = Path::new(CGROUP_ROOT).join("freezer").join(&cd.ns).join(id).join("freezer.state");
    let v2 = Path::new(CGROUP_ROOT).join(&cd.ns).join(id).join("cgroup.freeze");
    let state = fs::read_to_string(&v1)
        .map(|s| s.trim() == "FROZEN")
        .or_else(|_| fs::read_to_string(&v2).map(|s| s.trim() == "1"))
        .unwrap_or(false);
    assert!(state, "paused task's cgroup is not frozen ({} / {})", v1.display(), v2.display());

    cd.ctr_ok(&["task", "resume", id]);
    cd.wait_status(id, "RUNNING", Duration::from_secs(10));

    // sleep as PID 1 ignores SIGTERM; SIGKILL stops it with 137.
    cd.ctr_ok(&["task", "kill", "-s", "SIGKILL", id]);
    cd.wait_status(id, "STOPPED", Duration::from_secs(20));
    let out = cd.ctr_ok(&["task", "delete", id]);
    assert!(text(&out.stderr).contains("exit code 137"), "stderr: {}", text(&out.stderr));
    cd.ctr_ok(&["containers", "rm", id]);
    assert!(cd.containers().is_empty());
}
