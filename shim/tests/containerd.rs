//! containerd-shim-berth-v2 under real containerd 1.6: `ctr run --runtime
//! io.containerd.berth.v2` with the shim (and berth-runtime beside it) on the
//! PATH containerd is started with.
//!
//! Each test starts its own containerd as a child process with a private
//! config (root, state and sockets under one temp dir, CRI off), imports a
//! busybox image it builds with umoci, and drives containers with `ctr`. A
//! [`Containerd`] guard undoes everything on drop, also when a test fails:
//! tasks, containerd, shims and their sockets, container processes, mounts
//! under the temp dir, the namespace's cgroups and runtime state.
//!
//! Needs root, containerd + ctr, umoci, a static busybox, `script` (for the
//! terminal test) and berth-runtime built into the same target directory as
//! the shim (`cargo build --release --workspace`; `make test` does it).
//! Skips (with a printed reason) only when containerd or ctr is not installed.

use std::fs;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const RUNTIME: &str = "io.containerd.berth.v2";
const IMAGE: &str = "berth.test/busybox:latest";
const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-berth-v2");
const SHIM_NAME: &str = "containerd-shim-berth-v2";
/// Where the shim keeps runtime state: `<root>/<namespace>/<id>`.
const RUNTIME_ROOT: &str = "/run/containerd/berth";

#[path = "../../testsupport/containerd.rs"]
mod support;
use support::{
    assert_root, build_image, cgroups, find_containerd, kill_cgroup_procs, kill_shims, remove_cgroups,
    run_with_timeout, shim_bin_dir, text, unique_id, wait_until, which, Daemon, CGROUP_ROOT, TIMEOUT,
};

// ---------------------------------------------------------------------------
// a private containerd

struct Containerd(Daemon);

// The tests use the daemon's dir, socket, namespace and ctr as their own.
impl Deref for Containerd {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.0
    }
}

impl DerefMut for Containerd {
    fn deref_mut(&mut self) -> &mut Daemon {
        &mut self.0
    }
}

impl Containerd {
    fn start() -> Option<Containerd> {
        let tools = find_containerd()?;
        assert_root();
        // The shim is found on containerd's PATH; berth-runtime beside it.
        let bin_dir = shim_bin_dir(SHIM);
        let name = format!("berth-shim-{}", unique_id());
        let mut cd = Containerd(Daemon::new(tools, &name, &name, Some(bin_dir)));
        let config = cd.config("debug", false);
        cd.0.start(&config);
        let tar = build_image(&cd.dir);
        cd.ctr_ok(&["images", "import", "--base-name", "berth.test/busybox", tar.to_str().unwrap()]);
        Some(cd)
    }

    /// `ctr run --runtime io.containerd.berth.v2 [extra] IMAGE id argv...`
    fn run(&self, extra: &[&str], id: &str, argv: &[&str]) -> Output {
        let mut args = vec!["run", "--runtime", RUNTIME];
        args.extend(extra);
        args.extend([IMAGE, id]);
        args.extend(argv);
        self.ctr(&args)
    }

    /// task id -> (pid, status)
    fn tasks(&self) -> Vec<(String, u32, String)> {
        text(&self.ctr_ok(&["task", "ls"]).stdout)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3).then(|| (f[0].to_string(), f[1].parse().unwrap_or(0), f[2].to_string()))
            })
            .collect()
    }

    fn task(&self, id: &str) -> Option<(u32, String)> {
        self.tasks().into_iter().find(|t| t.0 == id).map(|t| (t.1, t.2))
    }

    fn wait_status(&self, id: &str, want: &str) {
        wait_until(&format!("task {id} to be {want}"), Duration::from_secs(20), || {
            self.task(id).map(|t| t.1 == want).unwrap_or(false)
        });
    }

    fn runtime_state(&self, id: &str) -> PathBuf {
        Path::new(RUNTIME_ROOT).join(&self.ns).join(id)
    }

    /// Pids of the shims serving this containerd.
    fn shims(&self) -> Vec<i32> {
        self.shim_pids(|a| a.ends_with(SHIM_NAME.as_bytes()))
    }
}

// ---------------------------------------------------------------------------
// cleanup, run even when a test panics

impl Drop for Containerd {
    fn drop(&mut self) {
        self.print_log_if_panicking(80);
        self.0.remove_tasks_and_containers();
        // Shims before containerd here: they still serve it.
        kill_shims(&self.shims());
        self.0.stop();
        // Container processes left in the namespace's cgroups; rootfs overlays under our dir.
        let cgroups = cgroups(&self.ns);
        kill_cgroup_procs(&cgroups);
        self.unmount_all();
        remove_cgroups(&cgroups);
        let _ = fs::remove_dir_all(Path::new(RUNTIME_ROOT).join(&self.ns));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// tests

#[test]
fn run_rm_returns_exit_code_and_output() {
    let Some(cd) = Containerd::start() else { return };
    let out = cd.run(&["--rm"], "exit7", &["sh", "-c", "echo hello-from-berth-shim; echo to-stderr >&2; exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "ctr run should exit with the container's code\nstdout: {}\nstderr: {}\n{}",
        text(&out.stdout),
        text(&out.stderr),
        cd.log_tail(30)
    );
    assert!(text(&out.stdout).contains("hello-from-berth-shim"), "stdout: {}", text(&out.stdout));
    assert!(text(&out.stderr).contains("to-stderr"), "stderr: {}", text(&out.stderr));

    // --rm took everything away, and the shim went with it.
    assert!(cd.tasks().is_empty(), "tasks left: {:?}", cd.tasks());
    assert!(cd.containers().is_empty(), "containers left: {:?}", cd.containers());
    assert!(!cd.runtime_state("exit7").exists(), "runtime state left behind");
    assert_eq!(cd.container_cgroup("exit7"), None, "container cgroup left behind");
    wait_until("the shim to exit", Duration::from_secs(10), || cd.shims().is_empty());

    let out = cd.run(&["--rm"], "exit0", &["true"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));

    // An init killed by a signal exits 128+N.
    let out = cd.run(&["-d", "--null-io"], "killed", &["sleep", "1000"]);
    assert!(out.status.success(), "ctr run -d: {}", text(&out.stderr));
    cd.wait_status("killed", "RUNNING");
    cd.ctr_ok(&["task", "kill", "-s", "SIGKILL", "killed"]);
    cd.wait_status("killed", "STOPPED");
    let out = cd.ctr_ok(&["task", "delete", "killed"]);
    assert!(text(&out.stderr).contains("exit code 137"), "stderr: {}", text(&out.stderr));
    cd.ctr_ok(&["containers", "rm", "killed"]);
}

#[test]
fn detached_exec_ps_pause_kill_delete() {
    let Some(cd) = Containerd::start() else { return };
    let id = "detached";
    // PID 1 ignores SIGTERM unless it traps it: trap it to a known code.
    let script = "trap 'exit 42' TERM; sleep 1000 & wait";
    let out = cd.run(&["-d", "--null-io"], id, &["sh", "-c", script]);
    assert!(out.status.success(), "ctr run -d: {}\n{}", text(&out.stderr), cd.log_tail(30));
    cd.wait_status(id, "RUNNING");
    let (init_pid, _) = cd.task(id).unwrap();
    assert!(Path::new(&format!("/proc/{init_pid}")).exists(), "init pid {init_pid} not alive");
    assert!(cd.runtime_state(id).is_dir(), "no runtime state at {}", cd.runtime_state(id).display());
    assert_eq!(cd.shims().len(), 1, "one shim serves the container");

    // exec: output, stderr and exit code come back; it runs in the container.
    let out = cd.ctr(&[
        "task", "exec", "--exec-id", "e1", id, "sh", "-c",
        "echo out-$((6*7)); tr '\\0' ' ' < /proc/1/cmdline; echo; echo to-stderr >&2; exit 3",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "exec exit code; stdout: {stdout} stderr: {}", text(&out.stderr));
    assert!(stdout.contains("out-42"), "exec stdout: {stdout}");
    assert!(stdout.contains(script), "exec should see the container's PID 1: {stdout}");
    assert!(text(&out.stderr).contains("to-stderr"), "exec stderr: {}", text(&out.stderr));
    // The same exec id again once the first is gone.
    let out = cd.ctr(&["task", "exec", "--exec-id", "e1", id, "true"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));

    // A detached exec shows in ps; its id cannot be reused while it exists.
    // ctr leaves a detached exec's fifos behind: keep them in our dir.
    let fifo = cd.dir.join("fifo").display().to_string();
    cd.ctr_ok(&["task", "exec", "-d", "--fifo-dir", &fifo, "--exec-id", "bg", id, "sleep", "301"]);
    let out = cd.ctr(&["task", "exec", "-d", "--fifo-dir", &fifo, "--exec-id", "bg", id, "true"]);
    assert!(!out.status.success(), "a reused exec id should fail");
    assert!(text(&out.stderr).contains("already exists"), "stderr: {}", text(&out.stderr));
    let cmdline = |pid: u32| fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ");
    let mut pids = Vec::new();
    wait_until("ps to list `sleep 301`", Duration::from_secs(10), || {
        pids = text(&cd.ctr_ok(&["task", "ps", id]).stdout)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect::<Vec<u32>>();
        pids.iter().any(|p| cmdline(*p).trim() == "sleep 301")
    });
    assert!(pids.contains(&init_pid), "ps {pids:?} lacks init pid {init_pid}");

    // metrics come from the container's cgroups.
    let out = text(&cd.ctr_ok(&["task", "metrics", id]).stdout);
    let metric = |name: &str| -> u64 {
        out.lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(name)).then(|| f.next()?.parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no {name} in metrics:\n{out}"))
    };
    assert!(metric("memory.usage_in_bytes") > 0, "metrics:\n{out}");
    assert!(metric("pids.current") >= 3, "sh, its sleep and the exec'd sleep; metrics:\n{out}");

    // Kill the exec; killing it again finds nothing to kill.
    cd.ctr_ok(&["task", "kill", "--exec-id", "bg", "-s", "SIGKILL", id]);
    wait_until("the exec to be gone", Duration::from_secs(10), || {
        !text(&cd.ctr_ok(&["task", "ps", id]).stdout).lines().skip(1).any(|l| {
            l.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()).map(|p| cmdline(p).trim() == "sleep 301").unwrap_or(false)
        })
    });
    let mut gone = false;
    wait_until("a second kill to report not found", Duration::from_secs(10), || {
        let out = cd.ctr(&["task", "kill", "--exec-id", "bg", "-s", "SIGKILL", id]);
        gone = !out.status.success() && text(&out.stderr).contains("not found");
        gone
    });

    // A running task cannot be deleted.
    let out = cd.ctr(&["task", "delete", id]);
    assert!(!out.status.success(), "deleting a running task should fail");

    // pause freezes the cgroup; resume thaws it.
    cd.ctr_ok(&["task", "pause", id]);
    cd.wait_status(id, "PAUSED");
    let freezer = Path::new(CGROUP_ROOT).join("freezer").join(&cd.ns).join(id).join("freezer.state");
    if freezer.parent().unwrap().is_dir() {
        assert_eq!(fs::read_to_string(&freezer).unwrap().trim(), "FROZEN");
    }
    cd.ctr_ok(&["task", "resume", id]);
    cd.wait_status(id, "RUNNING");

    // kill (SIGTERM) reaches PID 1's trap; its exit code comes through.
    cd.ctr_ok(&["task", "kill", id]);
    cd.wait_status(id, "STOPPED");
    let out = cd.ctr_ok(&["task", "delete", id]);
    assert!(text(&out.stderr).contains("exit code 42"), "task delete should report 42; stderr: {}", text(&out.stderr));
    assert!(cd.task(id).is_none(), "task still listed after delete");
    assert!(!cd.runtime_state(id).exists(), "runtime state left after delete");
    assert_eq!(cd.container_cgroup(id), None, "container cgroup left after delete");
    cd.ctr_ok(&["containers", "rm", id]);
    wait_until("the shim to exit", Duration::from_secs(10), || cd.shims().is_empty());
}

#[test]
fn terminal_through_console_socket() {
    let Some(cd) = Containerd::start() else { return };
    let Some(script) = which("script") else {
        panic!("`script` (util-linux) is needed to give ctr a terminal");
    };
    // ctr -t wants a terminal of its own: script(1) provides one.
    let ctr = format!(
        "{} --address {} --namespace {} run --rm -t --runtime {RUNTIME} {IMAGE} tty1 sh -c 'tty; echo on-a-tty; exit 5'",
        cd.ctr.display(),
        cd.sock.display(),
        cd.ns
    );
    let mut c = Command::new(script);
    c.args(["-qec", &ctr, "/dev/null"]);
    let out = run_with_timeout(c, TIMEOUT);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "stdout: {stdout}\nstderr: {}", text(&out.stderr));
    assert!(stdout.contains("/dev/pts/"), "the process should have a pty: {stdout}");
    assert!(stdout.contains("on-a-tty"), "output through the pty: {stdout}");
    assert!(cd.tasks().is_empty(), "tasks left: {:?}", cd.tasks());
}

#[test]
fn container_outlives_a_containerd_restart() {
    let Some(mut cd) = Containerd::start() else { return };
    let id = "survivor";
    let out = cd.run(&["-d", "--null-io"], id, &["sh", "-c", "trap 'exit 9' TERM; sleep 1000 & wait"]);
    assert!(out.status.success(), "ctr run -d: {}", text(&out.stderr));
    cd.wait_status(id, "RUNNING");
    let (pid, _) = cd.task(id).unwrap();
    let shims = cd.shims();
    assert_eq!(shims.len(), 1);

    cd.restart();
    assert_eq!(cd.shims(), shims, "the shim should outlive containerd");
    assert_eq!(cd.task(id), Some((pid, "RUNNING".to_string())), "the task after the restart");

    // Still controllable: exec (its events go over a new connection), kill, delete.
    let out = cd.ctr(&["task", "exec", "--exec-id", "after", id, "sh", "-c", "echo after-restart; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("after-restart"), "stdout: {}", text(&out.stdout));
    cd.ctr_ok(&["task", "kill", id]);
    cd.wait_status(id, "STOPPED");
    let out = cd.ctr_ok(&["task", "delete", id]);
    assert!(text(&out.stderr).contains("exit code 9"), "stderr: {}", text(&out.stderr));
    cd.ctr_ok(&["containers", "rm", id]);
    wait_until("the shim to exit", Duration::from_secs(10), || cd.shims().is_empty());
}

/// Kills a helper child (here `ctr events`) when dropped, also on panic.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn memory_limit_oom_kill_reports_event_and_137() {
    let Some(cd) = Containerd::start() else { return };
    let log = cd.dir.join("events.log");
    let events = KillOnDrop(
        cd.ctr_cmd(&["events"])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctr events"),
    );
    // ctr events is subscribed once it saw an event of ours: a throw-away task.
    wait_until("ctr events to subscribe", Duration::from_secs(20), || {
        let out = cd.run(&["--rm"], "ping", &["true"]);
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        fs::read_to_string(&log).unwrap_or_default().contains("/tasks/delete")
    });

    // 16 MiB, and a shell that doubles a string until the OOM killer ends it.
    let out = cd.run(
        &["--rm", "--memory-limit", "16777216"],
        "oom",
        &["sh", "-c", "a=aaaaaaaaaaaaaaaa; while true; do a=$a$a; done"],
    );
    assert_eq!(out.status.code(), Some(137), "stderr: {}\n{}", text(&out.stderr), cd.log_tail(30));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&log).unwrap_or_default().lines().any(|l| l.contains("/tasks/oom") && l.contains("oom")) {
        assert!(Instant::now() < deadline, "no /tasks/oom event in 10s; events:\n{}", fs::read_to_string(&log).unwrap_or_default());
        thread::sleep(Duration::from_millis(50));
    }
    drop(events);
    assert!(cd.tasks().is_empty(), "tasks left: {:?}", cd.tasks());
}
