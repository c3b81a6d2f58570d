//! What the containerd integration tests of berth-runtime (runtime/tests/containerd.rs) and of
//! the shim (shim/tests/containerd.rs) share: running commands with a timeout, the busybox test
//! image made with umoci, and the scans their cleanup guards use. Included by both with #[path].
#![allow(dead_code)]
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(60);

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
