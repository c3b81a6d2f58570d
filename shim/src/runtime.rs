//! The runc command line: every container operation is one run of a
//! runc-compatible binary (berth-runtime by default) with the shim's `--root`
//! and a JSON log in the bundle, whose last error line becomes the error.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};
use crate::reaper;

pub const DEFAULT_BINARY: &str = "berth-runtime";
/// Runtime state lives in `<root>/<namespace>`, as the runc shim does it.
pub const DEFAULT_ROOT: &str = "/run/containerd/berth";
/// Written at Create so that `delete` (after the shim died) uses the same runtime.
const RECORD: &str = "berth-shim.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub log: PathBuf,
}

/// Stdio handed to a process the runtime starts; None means /dev/null.
#[derive(Default)]
pub struct ChildIo {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Finds `name`: a path as is, else next to the shim's own binary, else on PATH.
pub fn find_binary(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join(name)));
    let path = std::env::var_os("PATH").unwrap_or_default();
    beside
        .into_iter()
        .chain(std::env::split_paths(&path).map(|d| d.join(name)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

impl Runtime {
    /// `binary` and `root` as the create options name them (empty: defaults).
    pub fn new(binary: &str, root: &str, namespace: &str, bundle: &Path) -> Runtime {
        let binary = find_binary(if binary.is_empty() { DEFAULT_BINARY } else { binary });
        let root = Path::new(if root.is_empty() { DEFAULT_ROOT } else { root }).join(namespace);
        Runtime { binary, root, log: bundle.join("log.json") }
    }

    pub fn save(&self, bundle: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).expect("serialize runtime record");
        std::fs::write(bundle.join(RECORD), json).map_err(io("write runtime record"))
    }

    /// The runtime recorded by a Create in `bundle`, else the default one.
    pub fn load(bundle: &Path, namespace: &str) -> Runtime {
        std::fs::read(bundle.join(RECORD))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| Runtime::new("", "", namespace, bundle))
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root).arg("--log").arg(&self.log).arg("--log-format").arg("json").args(args);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Runs `cmd`; its stdout on success, an error naming what failed otherwise.
    fn run(&self, what: &str, mut cmd: Command, stdin: Option<&[u8]>) -> Result<Vec<u8>> {
        let out = reaper::output(&mut cmd, stdin)
            .map_err(io(format!("run {} {what}", self.binary.display())))?;
        if out.code == 0 {
            return Ok(out.stdout);
        }
        let mut msg = self.last_log_error().unwrap_or_default();
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        }
        if msg.is_empty() {
            msg = format!("exit status {}", out.code);
        }
        Err(Error::Runtime(format!("{} {what}: {msg}", self.binary.display())))
    }

    /// The last error entry of the JSON log (what runc's users report too).
    /// The runtime's last errors, oldest first: the final line alone ("failed to create
    /// container: io error") often hides the one before it that says why.
    fn last_log_error(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let error_of = |l: &str| -> Option<String> {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let level = v.get("level")?.as_str()?;
            (level == "error" || level == "fatal").then(|| v.get("msg")?.as_str().map(str::to_string))?
        };
        let mut msgs: Vec<String> = vec![];
        for l in text.lines().rev() {
            match error_of(l) {
                Some(m) if msgs.len() < 3 => msgs.push(m),
                Some(_) => break,
                None if msgs.is_empty() => continue,
                None => break,
            }
        }
        msgs.reverse();
        msgs.dedup();
        (!msgs.is_empty()).then(|| msgs.join(": "))
    }

    fn with_io(mut cmd: Command, stdio: ChildIo) -> Command {
        let pick = |fd: Option<OwnedFd>| fd.map(Stdio::from).unwrap_or_else(Stdio::null);
        cmd.stdin(pick(stdio.stdin)).stdout(pick(stdio.stdout)).stderr(pick(stdio.stderr));
        cmd
    }

    pub fn create(&self, id: &str, bundle: &Path, pid_file: &Path, console: Option<&Path>, stdio: ChildIo) -> Result<()> {
        let mut args: Vec<&OsStr> = vec!["create".as_ref(), "--bundle".as_ref(), bundle.as_os_str()];
        args.extend(["--pid-file".as_ref(), pid_file.as_os_str()]);
        if let Some(c) = console {
            args.extend(["--console-socket".as_ref(), c.as_os_str()]);
        }
        args.push(id.as_ref());
        self.run("create", Self::with_io(self.command(args), stdio), None).map(drop)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.run("start", self.command(["start", id]), None).map(drop)
    }

    pub fn exec(&self, id: &str, process: &Path, pid_file: &Path, console: Option<&Path>, stdio: ChildIo) -> Result<()> {
        let mut args: Vec<&OsStr> = vec!["exec".as_ref(), "--process".as_ref(), process.as_os_str(), "--detach".as_ref()];
        args.extend(["--pid-file".as_ref(), pid_file.as_os_str()]);
        if let Some(c) = console {
            args.extend(["--console-socket".as_ref(), c.as_os_str()]);
        }
        args.push(id.as_ref());
        self.run("exec", Self::with_io(self.command(args), stdio), None).map(drop)
    }

    pub fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        self.run("kill", self.command(args), None).map(drop)
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.run("delete", self.command(args), None).map(drop)
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.run("pause", self.command(["pause", id]), None).map(drop)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.run("resume", self.command(["resume", id]), None).map(drop)
    }

    /// Pids of every process in the container.
    pub fn ps(&self, id: &str) -> Result<Vec<u32>> {
        let out = self.run("ps", self.command(["ps", "--format", "json", id]), None)?;
        serde_json::from_slice(&out).map_err(|e| Error::Runtime(format!("ps output: {e}")))
    }

    /// Applies a LinuxResources JSON document.
    pub fn update(&self, id: &str, resources: &[u8]) -> Result<()> {
        self.run("update", self.command(["update", "--resources", "-", id]), Some(resources)).map(drop)
    }
}

/// Reads a pid file the runtime wrote.
pub fn read_pid(path: &Path) -> Result<i32> {
    let s = std::fs::read_to_string(path).map_err(io(format!("read pid file {}", path.display())))?;
    s.trim()
        .parse()
        .map_err(|_| Error::Runtime(format!("pid file {} holds {s:?}", path.display())))
}
