//! Container test helpers: the real docker CLI against a sandbox's berthd ([`Docker`]), which
//! remembers every container a test made and removes them in Drop (also when the test fails,
//! with a host-side fallback when berthd cannot), the checks that a removed container left
//! nothing behind ([`Docker::finish`]), background commands ([`Bg`]) and polling.
//!
//! Declare the `Docker` after the `Sandbox` (`let sb = …; let d = Docker::new(&sb);`) so
//! that it is dropped first, while berthd still runs.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{images, ping_unix, run_timeout, tail, Out, Sandbox, CMD_TIMEOUT};

/// The docker CLI the tests drive: $BERTH_TEST_DOCKER, else /usr/local/bin/docker (a recent
/// static CLI), else `docker` on PATH (docker.io's, from scripts/install-deps.sh).
pub fn docker_bin() -> String {
    if let Some(p) = std::env::var_os("BERTH_TEST_DOCKER").filter(|p| !p.is_empty()) {
        return p.to_string_lossy().into_owned();
    }
    if Path::new("/usr/local/bin/docker").exists() {
        return "/usr/local/bin/docker".into();
    }
    "docker".into()
}
/// The shim's runtime state root for berthd's namespace (`<root>/<namespace>/<id>`).
pub const RUNTIME_STATE: &str = "/run/containerd/berth/berth";
pub const SHIM: &str = "containerd-shim-berth-v2";

/// Polls `f` every 100 ms until it gives Some, or `timeout` passes (None).
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command with `input` on its stdin (then closed), capturing output; None (the
/// command killed) after `timeout`.
pub fn run_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Option<Out> {
    let desc = format!("{cmd:?}");
    super::run_capture(cmd, desc, Some(input), timeout).ok()
}

/// Like [`run_timeout`] but never panics: None when the command could not run or hung.
fn try_run(cmd: &mut Command, timeout: Duration) -> Option<Out> {
    run_input(cmd, b"", timeout)
}

// ---------------------------------------------------------------------------
// background commands

/// A command running in the background; its stdout and stderr are collected as they come.
pub struct Bg {
    pub desc: String,
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    pub stdin: Option<ChildStdin>,
}

impl Bg {
    /// Starts `c`; with `stdin` its stdin is a pipe (see [`Bg::send`]), else /dev/null.
    pub fn spawn(mut c: Command, stdin: bool) -> Bg {
        let desc = format!("{c:?}");
        let mut child = c
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        for (mut r, buf) in [
            (Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, out.clone()),
            (Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>, err.clone()),
        ] {
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                loop {
                    match r.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.lock().unwrap().extend_from_slice(&b[..n]),
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Bg { desc, child, out, err, stdin }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Waits until stdout satisfies `f`; false if the command ended or `timeout` passed first.
    pub fn wait_stdout(&mut self, timeout: Duration, f: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if f(&self.stdout()) {
                return true;
            }
            if self.child.try_wait().ok().flatten().is_some() {
                std::thread::sleep(Duration::from_millis(200));
                return f(&self.stdout());
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn send(&mut self, data: &[u8]) {
        let s = self.stdin.as_mut().expect("spawned without a stdin pipe");
        s.write_all(data).expect("write to a background command's stdin");
        s.flush().unwrap();
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the command to end by itself; None after `timeout` (then it is killed).
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers finish
                return Some(st);
            }
            if Instant::now() > deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// the docker CLI

/// The real docker CLI against one sandbox's berthd. Every `docker run`/`docker create`
/// made through it gets a `--cidfile`, so the test knows every container it made, also
/// `--rm` ones and ones that failed to start.
pub struct Docker {
    pub host: String,
    sock: PathBuf,
    config: PathBuf,
    cids: PathBuf,
    root: PathBuf,
    data: PathBuf,
    exec: PathBuf,
    log: PathBuf,
    seq: AtomicU32,
    finished: bool,
    /// The sandbox's `--cgroup-parent`.
    cgroup_parent: String,
}

impl Docker {
    /// [`cgroup_file`] under this sandbox's cgroup parent.
    pub fn cgroup_file(&self, controller: &str, id: &str, file: &str) -> Option<String> {
        cgroup_file(&self.cgroup_parent, controller, id, file)
    }

    pub fn new(sb: &Sandbox) -> Docker {
        let d = sb.daemon();
        let cids = sb.path("cids");
        fs::create_dir_all(&cids).unwrap();
        Docker {
            host: format!("unix://{}", d.sock.display()),
            sock: d.sock.clone(),
            config: sb.path("cli"),
            cids,
            root: sb.root.clone(),
            data: d.data.clone(),
            exec: d.exec.clone(),
            log: d.log.clone(),
            seq: AtomicU32::new(0),
            finished: false,
            cgroup_parent: sb.cgroup_parent.clone(),
        }
    }

    /// A docker command; `run` and `create` get a `--cidfile` of their own.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(docker_bin());
        c.env("DOCKER_HOST", &self.host);
        c.env("DOCKER_CONFIG", &self.config);
        c.env("DOCKER_CLI_HINTS", "false");
        // The classic builder: the API berthd serves for `docker build`.
        c.env("DOCKER_BUILDKIT", "0");
        for v in ["DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION"] {
            c.env_remove(v);
        }
        let sub = match args {
            ["container", s, ..] => Some((2, *s)),
            [s, ..] => Some((1, *s)),
            _ => None,
        };
        match sub {
            Some((i, "run" | "create")) => {
                c.args(&args[..i]);
                let f = self.cids.join(format!("c{}", self.seq.fetch_add(1, Ordering::SeqCst)));
                c.arg("--cidfile").arg(f);
                c.args(&args[i..]);
            }
            _ => {
                c.args(args);
            }
        }
        c
    }

    /// Runs docker (panics if it hangs longer than `timeout`).
    pub fn run_t(&self, args: &[&str], timeout: Duration) -> Out {
        run_timeout(&mut self.cmd(args), timeout)
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_t(args, CMD_TIMEOUT)
    }

    /// Runs docker with `input` on its stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        let mut c = self.cmd(args);
        run_input(&mut c, input, CMD_TIMEOUT).unwrap_or_else(|| panic!("{c:?} hung for {CMD_TIMEOUT:?}"))
    }

    /// Runs docker and panics (with berthd's log tail) unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.ok(), "docker failed: {out}\n--- berthd log (tail) ---\n{}", tail(&self.log, 40));
        out.stdout
    }

    /// `docker inspect -f FORMAT NAME`, trimmed.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, name]).trim().to_string()
    }

    /// `docker <args>` in the background.
    pub fn spawn(&self, args: &[&str], stdin: bool) -> Bg {
        Bg::spawn(self.cmd(args), stdin)
    }

    /// Records a container made some other way (e.g. by the berth CLI).
    pub fn track(&self, id: &str) {
        let f = self.cids.join(format!("c{}", self.seq.fetch_add(1, Ordering::SeqCst)));
        fs::write(f, id).unwrap();
    }

    /// Full IDs of every container made through this helper (and tracked), oldest first.
    pub fn ids(&self) -> Vec<String> {
        let mut v: Vec<(u32, String)> = fs::read_dir(&self.cids)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n: u32 = e.file_name().to_string_lossy().strip_prefix('c')?.parse().ok()?;
                let id = fs::read_to_string(e.path()).ok()?.trim().to_string();
                (!id.is_empty()).then_some((n, id))
            })
            .collect();
        v.sort();
        let mut seen = BTreeSet::new();
        v.into_iter().map(|(_, id)| id).filter(|id| seen.insert(id.clone())).collect()
    }

    /// The ID of the last container `docker run`/`create` made.
    pub fn last_id(&self) -> String {
        self.ids().pop().expect("no container made yet")
    }

    /// What `docker ps -a` lists (full IDs), or None when berthd does not answer.
    fn listed(&self) -> Option<Vec<String>> {
        let out = try_run(&mut self.cmd(&["ps", "-aq", "--no-trunc"]), Duration::from_secs(30))?;
        out.ok().then(|| out.stdout.split_whitespace().map(str::to_string).collect())
    }

    /// `docker rm -f` every container this test made or berthd lists; false if berthd did
    /// not answer or refused. Never panics.
    pub fn remove_all(&self) -> bool {
        if !ping_unix(&self.sock) {
            return false;
        }
        let mut all: BTreeSet<String> = self.ids().into_iter().collect();
        all.extend(self.listed().unwrap_or_default());
        let present: Vec<String> = match self.listed() {
            Some(l) => all.into_iter().filter(|id| l.contains(id)).collect(),
            None => return false,
        };
        if present.is_empty() {
            return true;
        }
        let mut args = vec!["rm", "-f"];
        args.extend(present.iter().map(String::as_str));
        match try_run(&mut self.cmd(&args), Duration::from_secs(60)) {
            Some(o) if o.ok() => true,
            Some(o) => {
                eprintln!("cleanup: {o}");
                false
            }
            None => {
                eprintln!("cleanup: docker rm -f hung");
                false
            }
        }
    }

    /// What a container left on the host: shim processes, mounts, netns files, cgroups,
    /// runtime state, its directories. Empty when it is all gone.
    pub fn leftovers(&self, id: &str) -> Vec<String> {
        let mut v = Vec::new();
        for pid in shim_pids(id) {
            v.push(format!("{SHIM} for it still runs (pid {pid})"));
        }
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for l in info.lines() {
            let mp = l.split(' ').nth(4).unwrap_or("");
            if mp.contains(id) {
                v.push(format!("mounted: {mp}"));
            }
        }
        for p in [
            self.exec.join("netns").join(id),
            PathBuf::from("/run/netns").join(id),
            PathBuf::from("/run/berth-test").join(id),
            PathBuf::from("/run/berth-test/netns").join(id),
            PathBuf::from(RUNTIME_STATE).join(id),
            self.shim_socket(id),
            self.data.join("containers").join(id),
            self.exec.join("containers").join(id),
        ] {
            if p.exists() {
                v.push(format!("{} exists", p.display()));
            }
        }
        for cg in cgroup_dirs(&self.cgroup_parent, id) {
            v.push(format!("cgroup {} exists", cg.display()));
        }
        // berthd's veths: `vb` + 10 ID characters + the interface number.
        for l in super::links_with_prefix(&format!("vb{}", &id[..10])) {
            v.push(format!("veth {l} exists"));
        }
        v
    }

    /// Removes every container (`docker rm -f`), then checks that each one this test made
    /// left nothing behind (waiting a little for shims to exit), and that nothing is mounted
    /// under the sandbox any more. Returns what is wrong (empty when all is well).
    pub fn finish_problems(&mut self) -> Vec<String> {
        if !self.remove_all() {
            return vec![format!("removing the containers failed\n--- berthd log (tail) ---\n{}", tail(&self.log, 40))];
        }
        self.finished = true;
        let listed = self.listed().unwrap_or_default();
        if !listed.is_empty() {
            return vec![format!("docker ps -a still lists {listed:?} after docker rm -f")];
        }
        let mut left = Vec::new();
        poll(Duration::from_secs(10), || {
            left = self.ids().iter().flat_map(|id| self.leftovers(id).into_iter().map(move |l| format!("{}: {l}", &id[..12]))).collect();
            left.extend(super::mounts_under(&self.root).iter().map(|m| format!("mounted under the sandbox: {}", m.display())));
            left.is_empty().then_some(())
        });
        left.into_iter().map(|l| format!("left behind by a removed container: {l}")).collect()
    }

    /// [`Docker::finish_problems`], panicking when there are any.
    pub fn finish(&mut self) {
        let p = self.finish_problems();
        assert!(p.is_empty(), "{}", p.join("\n"));
    }

    /// Where the shim of container `id` listens: containerd's socket_address, a hash of
    /// `<address>/<namespace>/<id>` under /run/containerd/s.
    pub fn shim_socket(&self, id: &str) -> PathBuf {
        let addr = format!("{}/berth/{id}", self.exec.join("berthd.ttrpc").display());
        PathBuf::from("/run/containerd/s").join(super::sha256_hex(addr.as_bytes()))
    }

    /// Host-side clean-up for containers berthd could not remove: thaw and SIGKILL what is
    /// in their cgroups, remove the cgroups, the runtime state and the netns mounts.
    fn force_cleanup(&self) {
        for id in self.ids() {
            let cgs = cgroup_dirs(&self.cgroup_parent, &id);
            if cgs.is_empty() && !Path::new(RUNTIME_STATE).join(&id).exists() && !self.shim_socket(&id).exists() {
                continue;
            }
            eprintln!("cleanup: removing container {} behind berthd's back", &id[..12]);
            for cg in &cgs {
                let _ = fs::write(cg.join("freezer.state"), "THAWED");
            }
            poll(Duration::from_secs(10), || {
                let mut any = false;
                for cg in &cgs {
                    for p in fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default().split_whitespace() {
                        if let Ok(pid) = p.parse::<i32>() {
                            any = true;
                            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                        }
                    }
                }
                (!any).then_some(())
            });
            for pid in shim_pids(&id) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            for cg in &cgs {
                rmdir_tree(cg);
            }
            let _ = fs::remove_dir_all(Path::new(RUNTIME_STATE).join(&id));
            let _ = fs::remove_file(self.shim_socket(&id));
            let ns = self.exec.join("netns").join(&id);
            let _ = nix::mount::umount2(&ns, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// Builds the busybox test image, pushes it to the sandbox's registry as
    /// `busybox:latest` and pulls it with `docker pull`; returns its reference.
    pub fn busybox(&self, sb: &Sandbox) -> String {
        let layout = images::busybox_image(&sb.path("bb-layout"), "latest", &sb.path("bb-work"));
        sb.push_layout(&layout, "latest", "busybox:latest");
        let img = sb.image("busybox:latest");
        self.ok(&["pull", "-q", &img]);
        img
    }

    pub fn berthd_log(&self) -> String {
        tail(&self.log, 60)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if !self.finished && !self.remove_all() {
            eprintln!("cleanup: berthd could not remove the containers; cleaning up on the host");
        }
        self.force_cleanup();
    }
}

/// PIDs of shim processes serving container `id`.
pub fn shim_pids(id: &str) -> Vec<i32> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else { return v };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cl) = fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<String> = cl.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.first().is_some_and(|a| a.ends_with(SHIM)) && args.iter().any(|a| a == id) {
            v.push(pid);
        }
    }
    v
}

/// `/sys/fs/cgroup/<hierarchy>/<parent>/<id>` directories that exist.
pub fn cgroup_dirs(parent: &str, id: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    roots.extend(fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path()));
    for r in roots {
        let p = r.join(parent.trim_start_matches('/')).join(id);
        if p.is_dir() {
            v.push(p);
        }
    }
    v
}

fn rmdir_tree(p: &Path) {
    for e in fs::read_dir(p).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            rmdir_tree(&e.path());
        }
    }
    let _ = fs::remove_dir(p);
}

/// The container's cgroup file `file` in hierarchy `controller` (cgroup v1), from the host.
pub fn cgroup_file(parent: &str, controller: &str, id: &str, file: &str) -> Option<String> {
    fs::read_to_string(Path::new("/sys/fs/cgroup").join(controller).join(parent.trim_start_matches('/')).join(id).join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// One HTTP request to berthd's socket (Connection: close): (status, body). For what the
/// docker CLI does not show, such as status codes.
pub fn api(sock: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Quotes a word for sh.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Docker {
    pub fn sock(&self) -> &Path {
        &self.sock
    }

    /// `docker <args>` under a pseudo-terminal: util-linux `script -qefc "docker …" /dev/null`,
    /// which returns docker's exit code.
    pub fn in_pty(&self, args: &[&str]) -> Command {
        self.in_pty_sized(None, args)
    }

    /// [`Docker::in_pty`] with the pseudo-terminal set to `(rows, cols)` first (else it is
    /// 0x0). Keep the command's stdin open (a pipe): at EOF on its stdin `script` types a NUL.
    pub fn in_pty_sized(&self, size: Option<(u16, u16)>, args: &[&str]) -> Command {
        let c = self.cmd(args);
        let mut line = match size {
            Some((r, c)) => format!("stty rows {r} cols {c}; "),
            None => String::new(),
        };
        line.push_str(&shell_quote(&c.get_program().to_string_lossy()));
        for a in c.get_args() {
            line.push(' ');
            line.push_str(&shell_quote(&a.to_string_lossy()));
        }
        let mut s = Command::new("script");
        s.args(["-qefc", &line, "/dev/null"]);
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => s.env(k, v),
                None => s.env_remove(k),
            };
        }
        s.env("TERM", "xterm");
        s
    }
}
