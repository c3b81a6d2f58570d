//! Shared by the runtime's integration tests: a busybox bundle in a temp dir, the runtime
//! with its own --root, and a guard that force-deletes every container it named.
#![allow(dead_code)]
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static SEQ: AtomicUsize = AtomicUsize::new(0);

pub struct Env {
    pub dir: PathBuf,
    ids: Vec<String>,
}

impl Env {
    pub fn new() -> Env {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(format!("/tmp/berth-escape-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("bundle/rootfs/bin")).unwrap();
        fs::copy(busybox(), dir.join("bundle/rootfs/bin/busybox")).unwrap();
        for tool in ["sh", "sleep", "ls", "cat", "pwd", "id", "grep", "mkdir"] {
            std::os::unix::fs::symlink("busybox", dir.join("bundle/rootfs/bin").join(tool)).unwrap();
        }
        Env { dir, ids: Vec::new() }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn write_config(&self, args: &[&str], cwd: &str) {
        self.write(&Self::config(args, cwd));
    }

    pub fn write(&self, config: &serde_json::Value) {
        fs::write(self.dir.join("bundle/config.json"), config.to_string()).unwrap();
    }

    /// A minimal bundle config: pid, mount, ipc and uts namespaces, read-only busybox root.
    pub fn config(args: &[&str], cwd: &str) -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": true},
            "process": {
                "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": cwd,
                "args": args, "env": ["PATH=/bin"],
            },
            "hostname": "escape",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            ],
            "linux": {"maskedPaths": [], "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]}
        })
    }

    pub fn bundle(&self) -> String {
        self.dir.join("bundle").display().to_string()
    }

    pub fn rt(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth-runtime"));
        c.arg("--root").arg(self.root()).args(args);
        c
    }

    /// Runs the runtime with stdio in files: a created container keeps its stdio open, so
    /// pipes would never reach EOF.
    pub fn run(&self, cmd: &mut Command) -> Output {
        let (o, e) = (self.dir.join("stdout"), self.dir.join("stderr"));
        let status = cmd
            .stdin(Stdio::null())
            .stdout(fs::File::create(&o).unwrap())
            .stderr(fs::File::create(&e).unwrap())
            .status()
            .unwrap();
        Output { status, stdout: fs::read(&o).unwrap(), stderr: fs::read(&e).unwrap() }
    }

    pub fn id(&mut self, name: &str) -> String {
        let id = format!("esc-{}-{name}", std::process::id());
        self.ids.push(id.clone());
        id
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.rt(&["delete", "--force", id]).output();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn busybox() -> &'static str {
    ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists()).expect("busybox-static is needed")
}

pub fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

