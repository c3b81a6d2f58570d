//! What the containerd integration tests of berth-runtime (runtime/tests/containerd.rs) and of
//! the shim (shim/tests/containerd.rs, shim/tests/cri.rs) share: running commands with a
//! timeout, the busybox test image made with umoci, a private containerd per test and the steps
//! of the guards that clean up after it. Included by each with #[path].
#![allow(dead_code)]
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(60);
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs `cmd` to completion, killing it after `timeout` so a hung client
/// fails the test instead of hanging it.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {timeout:?}: {desc}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }
}

pub fn check(cmd: Command) -> Output {
    let desc = format!("{cmd:?}");
    let out = run_with_timeout(cmd, TIMEOUT);
    assert!(
        out.status.success(),
        "{desc} failed with {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn argv(pid: i32) -> Vec<Vec<u8>> {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args: Vec<Vec<u8>> = cmdline.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    if args.last().is_some_and(Vec::is_empty) {
        args.pop();
    }
    args
}

pub fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')).unwrap_or(true))
        .unwrap_or(true)
}

// ---------------------------------------------------------------------------
// the test image: static busybox in an OCI layout, made with umoci

/// Builds `<dir>/image.tar`: an OCI image layout (tag `latest`) as a tar that
/// `ctr images import --base-name berth.test/busybox` turns into `berth.test/busybox:latest`.
pub fn build_image(dir: &Path) -> PathBuf {
    let umoci = which("umoci").expect("umoci is required to build the test image (apt-get install umoci)");
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("a static busybox is required (apt-get install busybox-static)");

    let rootfs = dir.join("image-rootfs");
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy(&busybox, bin.join("busybox")).unwrap();
    for applet in ["sh", "true", "false", "echo", "cat", "sleep", "ls", "ps", "id", "hostname", "kill", "tr", "tty", "stty"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }

    let layout = dir.join("image-layout");
    let image = format!("{}:latest", layout.display());
    let umoci_cmd = |args: &[&str]| {
        let mut c = Command::new(&umoci);
        c.args(args);
        check(c);
    };
    umoci_cmd(&["init", "--layout", layout.to_str().unwrap()]);
    umoci_cmd(&["new", "--image", &image]);
    umoci_cmd(&["insert", "--image", &image, rootfs.to_str().unwrap(), "/"]);
    umoci_cmd(&[
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "PATH=/bin",
        "--config.workingdir",
        "/",
    ]);
    umoci_cmd(&["gc", "--layout", layout.to_str().unwrap()]);

    let index = fs::read_to_string(layout.join("index.json")).unwrap();
    assert!(
        index.contains("\"org.opencontainers.image.ref.name\":\"latest\""),
        "umoci index.json lacks the ref.name annotation ctr import needs: {index}"
    );

    let tar = dir.join("image.tar");
    let mut c = Command::new("tar");
    c.arg("-C").arg(&layout).arg("-cf").arg(&tar).arg(".");
    check(c);
    tar
}

/// Builds `<dir>/<name>.tar`: [`build_image`]'s image (built first if `<dir>/image-layout` is
/// not there yet) with its config's command replaced by `cmd`, again tagged `latest`; for a
/// second image beside the busybox one, e.g. a pod's pause image that sleeps forever.
pub fn build_image_with_cmd(dir: &Path, name: &str, cmd: &[&str]) -> PathBuf {
    let base = dir.join("image-layout");
    if !base.is_dir() {
        build_image(dir);
    }
    let umoci = which("umoci").expect("umoci is required to build the test image (apt-get install umoci)");
    let layout = dir.join(format!("{name}-layout"));
    let _ = fs::remove_dir_all(&layout);
    let mut c = Command::new("cp");
    c.arg("-a").arg(&base).arg(&layout);
    check(c);
    let image = format!("{}:latest", layout.display());
    let mut c = Command::new(&umoci);
    c.args(["config", "--image", &image]);
    for arg in cmd {
        c.args(["--config.cmd", arg]);
    }
    check(c);
    let mut c = Command::new(&umoci);
    c.args(["gc", "--layout", layout.to_str().unwrap()]);
    check(c);

    let tar = dir.join(format!("{name}.tar"));
    let mut c = Command::new("tar");
    c.arg("-C").arg(&layout).arg("-cf").arg(&tar).arg(".");
    check(c);
    tar
}

pub fn cgroup_dirs_depth_first(root: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                cgroup_dirs_depth_first(&e.path(), out);
            }
        }
    }
    out.push(root.to_path_buf());
}

pub fn kill_pid(pid: i32) {
    if pid > 1 {
        // SAFETY: plain kill(2) on a pid we found in our own cgroup/cmdline scan.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Unix socket paths held open by `pid` (via /proc/net/unix inodes).
pub fn unix_socket_paths(pid: i32) -> Vec<PathBuf> {
    let mut inodes = Vec::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(l) = fs::read_link(e.path()) {
                let l = l.to_string_lossy().into_owned();
                if let Some(i) = l.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    inodes.push(i.to_string());
                }
            }
        }
    }
    let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && inodes.iter().any(|i| i == f[6]) && f[7].starts_with('/'))
                .then(|| PathBuf::from(f[7]))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// a private containerd per test, and the steps of the guards that clean up after it

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// `<pid>-<n>`: tests of one binary run in parallel, and several binaries at once.
pub fn unique_id() -> String {
    format!("{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst))
}

/// containerd and ctr, or None after saying why: their absence is the one reason to skip.
pub fn find_containerd() -> Option<(PathBuf, PathBuf)> {
    let (Some(containerd), Some(ctr)) = (which("containerd"), which("ctr")) else {
        eprintln!("SKIP: containerd and ctr are not installed (apt-get install containerd)");
        return None;
    };
    Some((containerd, ctr))
}

pub fn assert_root() {
    // SAFETY: geteuid(2) cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root");
}

/// The directory of the shim binary `shim` (its CARGO_BIN_EXE path), checked to hold
/// berth-runtime too.
pub fn shim_bin_dir(shim: &str) -> PathBuf {
    let bin_dir = Path::new(shim).parent().unwrap().to_path_buf();
    let runtime = bin_dir.join("berth-runtime");
    assert!(
        runtime.is_file(),
        "{} is missing: the shim runs containers through berth-runtime from its own directory; \
         build the workspace first (cargo build --release --workspace, or make build)",
        runtime.display()
    );
    bin_dir
}

/// A containerd of one test's own, run as our child, with everything it keeps under `dir`;
/// `ctr` talks to it in namespace `ns`. Its owner's Drop cleans up with the steps below, in
/// the order that test needs.
pub struct Daemon {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub ns: String,
    pub ctr: PathBuf,
    containerd: PathBuf,
    /// Put first on containerd's PATH: shims that are not installed are found there.
    path_first: Option<PathBuf>,
    child: Option<Child>,
}

impl Daemon {
    /// Makes a fresh `<tmp>/<name>`; [`Daemon::start`] then runs containerd. Build the owning
    /// guard right away, so that its Drop runs whatever fails later.
    pub fn new(
        (containerd, ctr): (PathBuf, PathBuf),
        name: &str,
        ns: &str,
        path_first: Option<PathBuf>,
    ) -> Daemon {
        // Keep `name` short: unix socket paths are limited to 108 bytes.
        let dir = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("c.sock");
        Daemon { dir, sock, ns: ns.to_string(), ctr, containerd, path_first, child: None }
    }

    /// The part of the config all tests share: root, state and both sockets under our dir,
    /// the plugins no test uses off (the CRI plugin too unless `cri`). Tables may follow.
    pub fn config(&self, log_level: &str, cri: bool) -> String {
        let cri_off = if cri { "" } else { "\"io.containerd.grpc.v1.cri\", " };
        format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{cri_off}"io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.opt"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "{log_level}"
"#,
            root = self.dir.join("root").display(),
            state = self.dir.join("state").display(),
            sock = self.sock.display(),
        )
    }

    /// Starts containerd with `config` and waits until it answers.
    pub fn start(&mut self, config: &str) {
        fs::write(self.dir.join("config.toml"), config).unwrap();
        self.spawn();
    }

    /// SIGKILLs containerd and starts it again (the shims live on).
    pub fn restart(&mut self) {
        let mut child = self.child.take().expect("containerd runs");
        let _ = child.kill();
        let _ = child.wait();
        self.spawn();
    }

    fn spawn(&mut self) {
        // Appended to: a restarted containerd's log follows the first one's.
        let log = fs::OpenOptions::new().create(true).append(true).open(self.dir.join("containerd.log")).unwrap();
        let mut cmd = Command::new(&self.containerd);
        cmd.arg("--config").arg(self.dir.join("config.toml"));
        if let Some(first) = &self.path_first {
            let inherited = std::env::var_os("PATH").unwrap_or_default();
            let path = std::env::join_paths(std::iter::once(first.clone()).chain(std::env::split_paths(&inherited)));
            cmd.env("PATH", path.unwrap());
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(self.sock.exists()
            && run_with_timeout(self.ctr_cmd(&["version"]), Duration::from_secs(10)).status.success())
        {
            self.assert_alive();
            assert!(Instant::now() < deadline, "containerd did not come up in 30s; log:\n{}", self.log_tail(40));
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails with containerd's log if it exited: better than waiting out a timeout.
    pub fn assert_alive(&mut self) {
        if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("containerd exited early with {st}; log:\n{}", self.log_tail(40));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().map(|c| matches!(c.try_wait(), Ok(None))).unwrap_or(false)
    }

    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address").arg(&self.sock).arg("--namespace").arg(&self.ns).args(args);
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        run_with_timeout(self.ctr_cmd(args), TIMEOUT)
    }

    pub fn ctr_ok(&self, args: &[&str]) -> Output {
        check(self.ctr_cmd(args))
    }

    pub fn containers(&self) -> Vec<String> {
        text(&self.ctr_ok(&["containers", "ls", "-q"]).stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Container `id`'s cgroup in any hierarchy: ctr puts it at `/<namespace>/<id>`.
    pub fn container_cgroup(&self, id: &str) -> Option<PathBuf> {
        cgroups(&self.ns).into_iter().map(|p| p.join(id)).find(|p| p.is_dir())
    }

    pub fn log_tail(&self, n: usize) -> String {
        let s = fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// For a failed test: the assertion rarely says why containerd or a shim went wrong.
    pub fn print_log_if_panicking(&self, n: usize) {
        if thread::panicking() {
            eprintln!("--- containerd log (tail) ---\n{}\n---", self.log_tail(n));
        }
    }

    /// Live processes whose argv[0] `is_shim` accepts and that serve this containerd: shims
    /// are started with `-address <containerd's socket>`.
    pub fn shim_pids(&self, is_shim: impl Fn(&[u8]) -> bool) -> Vec<i32> {
        let addr = self.sock.as_os_str().as_bytes();
        let Ok(rd) = fs::read_dir("/proc") else { return vec![] };
        rd.flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|pid| {
                let args = argv(*pid);
                let named = args.first().map(|a| is_shim(a)).unwrap_or(false);
                named && !is_zombie(*pid) && args.iter().any(|a| a == addr)
            })
            .collect()
    }

    /// Mount points at or under our dir.
    pub fn mounts(&self) -> Vec<String> {
        let prefix = self.dir.to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| m.replace("\\040", " "))
            .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
            .collect()
    }

    // ---- clean-up steps; none of them fails, so one cannot keep the next from running ----

    /// Kills and deletes every task, then deletes every container, while containerd still
    /// runs: it then also unmounts their rootfs and lets their shims exit.
    pub fn remove_tasks_and_containers(&mut self) {
        if !self.running() {
            return;
        }
        let short = Duration::from_secs(15);
        let ls = run_with_timeout(self.ctr_cmd(&["task", "ls", "-q"]), short);
        for id in text(&ls.stdout).lines().map(str::trim).filter(|s| !s.is_empty()) {
            // (A paused task would not die of the SIGKILL.)
            let _ = run_with_timeout(self.ctr_cmd(&["task", "resume", id]), short);
            let _ = run_with_timeout(self.ctr_cmd(&["task", "kill", "-a", "-s", "SIGKILL", id]), short);
            let _ = run_with_timeout(self.ctr_cmd(&["task", "delete", "-f", id]), short);
        }
        let ls = run_with_timeout(self.ctr_cmd(&["containers", "ls", "-q"]), short);
        for id in text(&ls.stdout).lines().map(str::trim).filter(|s| !s.is_empty()) {
            let _ = run_with_timeout(self.ctr_cmd(&["containers", "rm", id]), short);
        }
    }

    /// SIGTERM, and SIGKILL if containerd is not gone after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Deepest first, detached: a busy mount must not keep the dir from going.
    pub fn unmount_all(&self) {
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let c = CString::new(m).unwrap();
            // SAFETY: umount2 with a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Kills shims and removes their sockets, which a killed shim leaves in /run/containerd/s.
pub fn kill_shims(pids: &[i32]) {
    for &pid in pids {
        for p in unix_socket_paths(pid) {
            if p.starts_with("/run/containerd/s") {
                let _ = fs::remove_file(p);
            }
        }
        kill_pid(pid);
    }
}

/// `rel`'s directory in each mounted cgroup hierarchy that has it.
pub fn cgroups(rel: &str) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(CGROUP_ROOT) else { return vec![] };
    rd.flatten().map(|e| e.path().join(rel)).filter(|p| p.is_dir()).collect()
}

/// Kills every process in the cgroup trees at `roots` (thawed first: SIGKILL does not reach a
/// frozen one).
pub fn kill_cgroup_procs(roots: &[PathBuf]) {
    for root in roots {
        let mut dirs = Vec::new();
        cgroup_dirs_depth_first(root, &mut dirs);
        for d in &dirs {
            let _ = fs::write(d.join("freezer.state"), "THAWED");
            for pid in fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default().lines() {
                kill_pid(pid.trim().parse().unwrap_or(0));
            }
        }
    }
}

/// Removes the cgroup trees at `roots`, depth first, retrying a while: a cgroup goes only once
/// its killed processes are reaped.
pub fn remove_cgroups(roots: &[PathBuf]) {
    for root in roots {
        let mut dirs = Vec::new();
        cgroup_dirs_depth_first(root, &mut dirs);
        for d in dirs {
            for _ in 0..50 {
                if fs::remove_dir(&d).is_ok() || !d.exists() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
