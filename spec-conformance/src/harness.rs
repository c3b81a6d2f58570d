//! The host side of the suite: running the runtime binary, building bundles,
//! running the in-container checker, and cleaning up after each test.
//!
//! Every test works inside one [`Env`]: a private temp dir holding the
//! runtime's `--root`, the bundles and captured output. Dropping the `Env`
//! force-deletes every container id it handed out, removes the network
//! namespaces and cgroups it registered and then the temp dir, so a test
//! cleans up even when it fails or panics.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Prefix of the annotations the checker reads its extra expectations from.
pub const ANN: &str = "org.berth.conformance.";
/// How long any one runtime command may take before the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `$RUNTIME`, or the workspace's release build of berth-runtime.
pub fn default_runtime() -> PathBuf {
    std::env::var_os("RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target/release/berth-runtime"))
}

/// runc, if installed: `/usr/sbin/runc` or `runc` on PATH.
pub fn find_runc() -> Option<PathBuf> {
    let fixed = PathBuf::from("/usr/sbin/runc");
    if fixed.exists() {
        return Some(fixed);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("runc"))
        .find(|p| p.is_file())
}

fn busybox_path() -> PathBuf {
    std::env::var_os("BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

/// The static checker binary: `$CONFORMANCE_CHECKER`, or built on first use.
pub fn checker_path() -> Result<PathBuf> {
    static CHECKER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CHECKER
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("CONFORMANCE_CHECKER") {
                return Ok(PathBuf::from(p));
            }
            build_checker().map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Build checker/ statically, in its own target dir so that its RUSTFLAGS do
/// not invalidate the workspace's builds.
pub fn build_checker() -> Result<PathBuf> {
    let target = "x86_64-unknown-linux-gnu";
    let target_dir = workspace_dir().join("target/conformance-checker");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("checker/Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            target,
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(Stdio::null())
        .output()
        .context("running cargo to build the checker")?;
    if !out.status.success() {
        bail!(
            "building the checker failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(target_dir.join(target).join("release/checker"))
}

/// One finished runtime command.
#[derive(Debug)]
pub struct Out {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Where stdout was captured; a container started by `create` keeps
    /// writing its own stdout here after the command returned.
    pub stdout_path: PathBuf,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    /// Fail unless the command exited 0.
    pub fn ok(self) -> Result<Out> {
        if !self.success() {
            bail!("{}", self.describe());
        }
        Ok(self)
    }
    pub fn describe(&self) -> String {
        format!(
            "`{}` exited {:?}; stderr: {}",
            self.args.join(" "),
            self.code,
            self.stderr.trim()
        )
    }
}

static NEXT_ENV: AtomicU32 = AtomicU32::new(0);

/// One test's private world; see the module docs.
pub struct Env {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub runtime: PathBuf,
    seq: Cell<u32>,
    ids: RefCell<Vec<String>>,
    netns: RefCell<Vec<String>>,
    cgroups: RefCell<Vec<String>>,
    tag: String,
}

impl Env {
    pub fn new(runtime: &Path) -> Result<Env> {
        if !runtime.is_file() {
            bail!(
                "runtime binary {} not found (build it, or set RUNTIME=/path/to/runtime)",
                runtime.display()
            );
        }
        let tag = format!(
            "bcf{}x{}",
            std::process::id(),
            NEXT_ENV.fetch_add(1, Ordering::SeqCst)
        );
        // Short path: unix socket paths (console socket) must stay under 108 bytes.
        let dir = std::env::temp_dir().join(&tag);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("root"))?;
        fs::create_dir_all(dir.join("out"))?;
        Ok(Env {
            root: dir.join("root"),
            dir,
            runtime: runtime.to_path_buf(),
            seq: Cell::new(0),
            ids: RefCell::new(vec![]),
            netns: RefCell::new(vec![]),
            cgroups: RefCell::new(vec![]),
            tag,
        })
    }

    fn next(&self) -> u32 {
        let n = self.seq.get();
        self.seq.set(n + 1);
        n
    }

    /// A fresh container id, force-deleted when the Env drops.
    pub fn id(&self) -> String {
        let id = format!("{}-{}", self.tag, self.next());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// Run `runtime --root <root> args...` with stdio captured to files.
    pub fn rt(&self, args: &[&str]) -> Result<Out> {
        self.rt_with(args, |_| {})
    }

    pub fn rt_with(&self, args: &[&str], tweak: impl FnOnce(&mut Command)) -> Result<Out> {
        let n = self.next();
        let out_path = self.dir.join("out").join(format!("{n}.stdout"));
        let err_path = self.dir.join("out").join(format!("{n}.stderr"));
        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root").arg(&self.root).args(args);
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&out_path)?)
            .stderr(fs::File::create(&err_path)?);
        tweak(&mut cmd);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", self.runtime.display()))?;
        let deadline = Instant::now() + CMD_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "`{}` did not finish within {:?}",
                    args.join(" "),
                    CMD_TIMEOUT
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Out {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: status.code(),
            stdout: fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: fs::read_to_string(&err_path).unwrap_or_default(),
            stdout_path: out_path,
        })
    }

    pub fn create(&self, bundle: &Bundle, id: &str) -> Result<Out> {
        bundle.write()?;
        self.rt(&["create", "--bundle", bundle.dir.to_str().unwrap(), id])
    }

    /// `state ID`, parsed; fails if the command fails or prints no JSON.
    pub fn state(&self, id: &str) -> Result<Value> {
        let out = self.rt(&["state", id])?.ok()?;
        serde_json::from_str(&out.stdout)
            .with_context(|| format!("state output is not JSON: {:?}", out.stdout))
    }

    /// Poll `state` until the status is `want`.
    pub fn wait_status(&self, id: &str, want: &str) -> Result<Value> {
        let deadline = Instant::now() + CMD_TIMEOUT;
        loop {
            let st = self.state(id)?;
            if st["status"] == want {
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!("container {id} did not reach status {want:?}; last state {st}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Entries left in the runtime's --root (nothing may remain after delete
    /// or a failed create).
    pub fn root_entries(&self) -> Vec<String> {
        fs::read_dir(&self.root)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn assert_root_empty(&self) -> Result<()> {
        let left = self.root_entries();
        if !left.is_empty() {
            bail!("runtime left state behind in --root: {left:?}");
        }
        Ok(())
    }

    /// A new bundle directory with a busybox + checker rootfs and a base config.
    pub fn bundle(&self) -> Result<Bundle> {
        Bundle::new(&self.dir.join(format!("bundle{}", self.next())))
    }

    /// A cgroups path for the container, removed (if left) when the Env drops.
    pub fn cgroup_path(&self, id: &str) -> String {
        let p = format!("/{id}");
        self.cgroups.borrow_mut().push(p.clone());
        p
    }

    /// A new named network namespace (`ip netns add`), deleted on drop.
    pub fn netns(&self) -> Result<PathBuf> {
        let name = format!("{}-{}", self.tag, self.next());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .context("running ip")?;
        if !out.status.success() {
            bail!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.netns.borrow_mut().push(name.clone());
        Ok(PathBuf::from("/var/run/netns").join(name))
    }

    /// Create the container, start it, wait for it to stop, delete it and
    /// return what the checker reported.
    pub fn run_checker(&self, bundle: &Bundle) -> Result<Checks> {
        let id = self.id();
        let created = self.create(bundle, &id)?.ok()?;
        self.rt(&["start", &id])?.ok()?;
        self.wait_status(&id, "stopped")?;
        self.rt(&["delete", &id])?.ok()?;
        Checks::parse(&fs::read_to_string(&created.stdout_path)?)
    }
}

impl Env {
    /// Force-delete every container this Env handed out, then report what
    /// the runtime left behind: entries in --root and cgroup directories
    /// named after one of our container ids (a runtime's default cgroup
    /// path embeds the id). Called after each case; leftovers fail it.
    pub fn cleanup_and_find_leftovers(&self) -> Vec<String> {
        self.force_delete_all();
        let mut left: Vec<String> = self.root_entries().into_iter().map(|e| format!("--root entry {e}")).collect();
        left.extend(self.leftover_cgroups().into_iter().map(|p| format!("cgroup {}", p.display())));
        left
    }

    fn force_delete_all(&self) {
        for id in self.ids.borrow().iter() {
            let _ = Command::new(&self.runtime)
                .arg("--root")
                .arg(&self.root)
                .args(["delete", "--force", id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Cgroup dirs (depth 1 or 2 under each hierarchy) whose name contains
    /// this Env's tag, deepest first.
    fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let mut found = vec![];
        let Ok(hierarchies) = fs::read_dir("/sys/fs/cgroup") else { return found };
        for h in hierarchies.filter_map(|e| e.ok()) {
            let Ok(level1) = fs::read_dir(h.path()) else { continue };
            for d1 in level1.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
                if let Ok(level2) = fs::read_dir(d1.path()) {
                    for d2 in level2.filter_map(|e| e.ok()) {
                        if d2.file_name().to_string_lossy().contains(&format!("{}-", self.tag)) && d2.path().is_dir() {
                            found.push(d2.path());
                        }
                    }
                }
                if d1.file_name().to_string_lossy().contains(&format!("{}-", self.tag)) {
                    found.push(d1.path());
                }
            }
        }
        found
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.force_delete_all();
        for cg in self.leftover_cgroups() {
            let _ = fs::remove_dir(cg);
        }
        for ns in self.netns.borrow().iter() {
            let _ = Command::new("ip")
                .args(["netns", "delete", ns])
                .stderr(Stdio::null())
                .status();
        }
        for cg in self.cgroups.borrow().iter() {
            if let Ok(ctrls) = fs::read_dir("/sys/fs/cgroup") {
                for c in ctrls.filter_map(|e| e.ok()) {
                    let _ = fs::remove_dir(c.path().join(cg.trim_start_matches('/')));
                }
            }
            let _ = fs::remove_dir(Path::new("/sys/fs/cgroup").join(cg.trim_start_matches('/')));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The checker's report: one JSON object per check.
#[derive(Debug)]
pub struct Checks {
    pub checks: Vec<Value>,
    pub done: bool,
    pub raw: String,
}

impl Checks {
    pub fn parse(text: &str) -> Result<Checks> {
        let mut checks = vec![];
        let mut done = false;
        for line in text.lines() {
            let line = line.trim_matches(|c| c == '\r' || c == ' ');
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v["done"] == true {
                done = true;
            } else if v.get("check").is_some() {
                checks.push(v);
            }
        }
        Ok(Checks {
            checks,
            done,
            raw: text.to_string(),
        })
    }

    /// All checks passed, the checker finished, and every name in `required`
    /// is the prefix of at least one reported check.
    pub fn assert_ok(&self, required: &[&str]) -> Result<()> {
        if !self.done {
            bail!("checker did not finish; output: {:?}", self.raw);
        }
        if self.checks.is_empty() {
            bail!("checker reported no checks");
        }
        let mut problems: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c["ok"] != true)
            .map(|c| {
                format!(
                    "{}: {}",
                    c["check"].as_str().unwrap_or("?"),
                    c["detail"].as_str().unwrap_or("")
                )
            })
            .collect();
        for r in required {
            if !self
                .checks
                .iter()
                .any(|c| c["check"].as_str().unwrap_or("").starts_with(r))
            {
                problems.push(format!("no check reported for {r}"));
            }
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        Ok(())
    }
}

/// A bundle directory: `config.json` (built up as JSON in `spec`) + `rootfs/`.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Value,
}

impl Bundle {
    fn new(dir: &Path) -> Result<Bundle> {
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "work", "data"] {
            fs::create_dir_all(rootfs.join(d))?;
        }
        fs::create_dir_all(rootfs.join("tmp"))?;
        fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))?;
        fs::copy(busybox_path(), rootfs.join("bin/busybox"))
            .context("copying busybox (apt install busybox-static)")?;
        for applet in [
            "sh", "cat", "echo", "sleep", "true", "false", "touch", "ls", "id", "kill", "env",
            "readlink",
        ] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
        }
        fs::copy(checker_path()?, rootfs.join("checker"))?;
        fs::write(rootfs.join("spec.json"), b"")?;
        fs::write(rootfs.join("etc/passwd"), b"root:x:0:0:root:/:/bin/sh\n")?;
        fs::write(rootfs.join("etc/group"), b"root:x:0:\n")?;
        let spec = base_spec(&dir.join("config.json"));
        Ok(Bundle {
            dir: dir.to_path_buf(),
            spec,
        })
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    pub fn write(&self) -> Result<()> {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.spec)?,
        )?;
        Ok(())
    }

    /// Set a value at a JSON pointer, creating intermediate objects.
    pub fn set(&mut self, pointer: &str, v: Value) -> &mut Self {
        let mut cur = &mut self.spec;
        for part in pointer.trim_start_matches('/').split('/') {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = cur
                .as_object_mut()
                .unwrap()
                .entry(part.to_string())
                .or_insert(Value::Null);
        }
        *cur = v;
        self
    }

    /// Remove the value at a JSON pointer (a key of an object).
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        if let Some(obj) = self
            .spec
            .pointer_mut(parent)
            .and_then(|p| p.as_object_mut())
        {
            obj.remove(key);
        }
        self
    }

    /// The process runs the checker over the given areas.
    pub fn checker(&mut self, areas: &[&str]) -> &mut Self {
        let mut args = vec!["/checker".to_string()];
        args.extend(areas.iter().map(|s| s.to_string()));
        self.set("/process/args", json!(args))
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    pub fn annotate(&mut self, key: &str, value: &str) -> &mut Self {
        self.spec["annotations"][format!("{ANN}{key}")] = json!(value);
        self
    }

    pub fn add_mount(&mut self, m: Value) -> &mut Self {
        self.spec["mounts"].as_array_mut().unwrap().push(m);
        self
    }

    /// Bind-mount a host directory at the same path inside the container, so
    /// that a path means the same file on both sides (hooks, markers).
    pub fn share_dir(&mut self, host_dir: &Path) -> &mut Self {
        let p = host_dir.to_str().unwrap();
        self.add_mount(
            json!({"destination": p, "type": "bind", "source": p, "options": ["rbind", "rw"]}),
        )
    }

    pub fn namespaces(&mut self, types: &[&str]) -> &mut Self {
        let ns: Vec<Value> = types.iter().map(|t| json!({"type": t})).collect();
        self.set("/linux/namespaces", json!(ns))
    }

    /// Give the rootfs to `uid:gid` (for user-namespace tests).
    pub fn chown_rootfs(&self, uid: u32, gid: u32) -> Result<()> {
        fn walk(p: &Path, uid: u32, gid: u32) -> Result<()> {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
            if fs::symlink_metadata(p)?.is_dir() {
                for e in fs::read_dir(p)? {
                    walk(&e?.path(), uid, gid)?;
                }
            }
            Ok(())
        }
        walk(&self.rootfs(), uid, gid)
    }
}

/// Inode of the harness's own namespace of a kind (`net`, `mnt`, ...).
pub fn host_ns_inode(proc_name: &str) -> u64 {
    fs::metadata(format!("/proc/self/ns/{proc_name}"))
        .map(|m| m.ino())
        .unwrap_or(0)
}

pub const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// A config like `runc spec` makes, plus the read-only /spec.json bind
/// mount and the host namespace inodes for the checker.
fn base_spec(config_path: &Path) -> Value {
    let mut annotations = serde_json::Map::new();
    for ns in ["pid", "net", "mnt", "ipc", "uts", "user", "cgroup"] {
        annotations.insert(
            format!("{ANN}hostns.{ns}"),
            json!(host_ns_inode(ns).to_string()),
        );
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/checker"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
                "inheritable": [],
                "ambient": []
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth-conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/spec.json", "type": "bind", "source": config_path.to_str().unwrap(), "options": ["rbind", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        },
        "annotations": annotations
    })
}
