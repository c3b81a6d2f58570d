//! Shared harness for berth's black-box image tests: a temp sandbox per test with its own
//! registry (docker-registry on a free loopback port), its own berthd (data root, exec root,
//! socket) and a guard that tears everything down in Drop, also when the test panics.
//!
//! Tools the tests need (umoci, skopeo, ...) are checked with [`need_tools`]: a missing tool
//! skips the test with a message, unless the environment variable CI is set, where it is a
//! failure. Set BERTH_TEST_KEEP=1 to keep a failed test's temp dir (daemons are still
//! stopped and mounts undone).
#![allow(dead_code)]

pub mod containers;
pub mod images;
pub mod oci;
pub mod token;
pub mod tree;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BERTHD: &str = env!("CARGO_BIN_EXE_berthd");
pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// How long one CLI or tool command may take before the test calls it hung.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// tools

fn on_path(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).exists();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .any(|d| d.join(tool).is_file())
}

/// True when every tool is there. Otherwise: in CI (env CI set and not empty) a panic,
/// elsewhere a SKIP line on stderr and false (the caller returns).
pub fn need_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{test}: missing {} (bash scripts/install-deps.sh installs them)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{msg}; CI is set, so a missing tool fails the test");
    }
    eprintln!("SKIP {msg}");
    false
}

/// The tools that building the standard test image needs.
pub const IMAGE_TOOLS: &[&str] = &["umoci", "skopeo", "setcap", "setfattr", "/bin/busybox"];

// ---------------------------------------------------------------------------
// commands

pub struct Out {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    /// stdout and stderr together, lower-cased: for looking for words in messages.
    pub fn text_lc(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr).to_lowercase()
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.status,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// What a command printed, still being read when it was killed for hanging.
pub type Hung = (std::thread::JoinHandle<Vec<u8>>, std::thread::JoinHandle<Vec<u8>>);

/// Runs `cmd` with `input` on its stdin (then closed; None: /dev/null), capturing output.
/// A command still running after `timeout` is killed: Err holds the readers of its output.
pub fn run_capture(cmd: &mut Command, desc: String, input: Option<&[u8]>, timeout: Duration) -> Result<Out, Hung> {
    let mut child = cmd
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{desc}`: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
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
            return Err((t_out, t_err));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Out {
        cmd: desc,
        status,
        stdout: String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned(),
    })
}

/// Runs a command to completion (killed and reported after `timeout`), capturing output.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Out {
    let desc = describe(cmd);
    run_capture(cmd, desc.clone(), None, timeout).unwrap_or_else(|(t_out, t_err)| {
        let out = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
        let err = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
        panic!("`{desc}` hung for {timeout:?}; killed\nstdout: {out}\nstderr: {err}");
    })
}

pub fn run(cmd: &mut Command) -> Out {
    run_timeout(cmd, CMD_TIMEOUT)
}

/// Runs a command and panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Out {
    let out = run(cmd);
    assert!(out.ok(), "command failed: {out}");
    out
}

pub fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

// ---------------------------------------------------------------------------
// the sandbox

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Registry {
    child: Child,
    pub port: u16,
    /// The registry's storage root (filesystem driver).
    pub storage: PathBuf,
    pub log: PathBuf,
    /// user, password when the registry wants basic auth (htpasswd).
    pub creds: Option<(String, String)>,
}

pub struct Daemon {
    child: Child,
    pub data: PathBuf,
    pub exec: PathBuf,
    pub sock: PathBuf,
    pub log: PathBuf,
}

/// One test's world. Dropping it stops berthd and the registry, kills anything else
/// running from its temp dir, unmounts everything under it and removes it.
pub struct Sandbox {
    pub name: String,
    pub root: PathBuf,
    pub registry: Option<Registry>,
    pub daemon: Option<Daemon>,
    /// The token server of a registry started with [`Sandbox::start_registry_token`].
    pub token: Option<token::TokenServer>,
    /// How many times berthd was started in this sandbox.
    starts: u32,
    /// berthd's default bridge here; the sandbox's user networks are named after it too, so
    /// clean-up finds every bridge, veth and nft table the sandbox made.
    pub bridge: String,
    /// Extra berthd flags for every start.
    pub berthd_args: Vec<String>,
    /// berthd's `--cgroup-parent` here: the sandbox's containers' cgroups are its children,
    /// and the parent goes with the sandbox (sandboxes run in parallel: no shared parent to
    /// remove while another daemon puts a container in it).
    pub cgroup_parent: String,
    /// Eight /24s of 10.0.0.0/8 no other sandbox of this run uses: `10.A.B` to `10.A.B+7`.
    net: (u32, u32),
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        // Short: the daemon's socket path must stay under 108 bytes.
        let short: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).take(10).collect();
        let (pid, seq) = (std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
        let root = PathBuf::from(format!("/tmp/bit-{short}-{pid}-{seq}"));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create sandbox dir");
        fs::create_dir_all(root.join("cli")).unwrap();
        let bridge = format!("bt{}x{seq}", pid % 100_000);
        // Sandboxes of one test binary differ in B; test binaries (pids) in A.
        let net = (100 + pid % 100, (seq * 8) % 248);
        let cgroup_parent = format!("/berth-test-{bridge}");
        Sandbox { name: name.to_string(), root, registry: None, daemon: None, token: None, starts: 0, bridge, net, berthd_args: vec![], cgroup_parent }
    }

    /// The sandbox's `k`th /24 (0 is berthd's default bridge), e.g. `10.142.8.0/24`.
    pub fn subnet(&self, k: u32) -> String {
        format!("10.{}.{}.0/24", self.net.0, self.net.1 + k)
    }

    /// Address `host` of the sandbox's `k`th /24.
    pub fn addr(&self, k: u32, host: u32) -> String {
        format!("10.{}.{}.{host}", self.net.0, self.net.1 + k)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The registry's host:port.
    pub fn reg(&self) -> String {
        format!("127.0.0.1:{}", self.registry.as_ref().expect("no registry started").port)
    }

    /// `<registry>/<repo>` for a repo:tag.
    pub fn image(&self, repo_tag: &str) -> String {
        format!("{}/{}", self.reg(), repo_tag)
    }

    /// Starts docker-registry on a free loopback port, with basic auth when `creds` is
    /// given (a bcrypt htpasswd file made with `htpasswd -Bbn`).
    pub fn start_registry(&mut self, creds: Option<(&str, &str)>) {
        let mut auth = String::new();
        if let Some((u, p)) = creds {
            let out = run_ok(&mut cmd("htpasswd", &["-Bbn", u, p]));
            let file = self.path("htpasswd");
            fs::write(&file, out.stdout.trim_end().to_string() + "\n").unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            );
        }
        self.start_registry_with(&auth, creds);
    }

    /// Starts docker-registry with token authentication: a [`token::TokenServer`] (kept in
    /// `self.token`, stopped on drop) that knows one user, `creds`, and hands anonymous
    /// callers tokens without access. The skopeo helpers log in with `creds`.
    pub fn start_registry_token(&mut self, creds: (&str, &str)) {
        assert!(self.token.is_none(), "token server already started");
        let ts = token::TokenServer::start(&self.path("token"), creds.0, creds.1);
        let auth = format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            ts.realm(),
            token::SERVICE,
            token::ISSUER,
            ts.cert.display()
        );
        self.token = Some(ts);
        self.start_registry_with(&auth, Some(creds));
    }

    /// Starts docker-registry with `auth` (YAML for the config's `auth:` section, or empty).
    fn start_registry_with(&mut self, auth: &str, creds: Option<(&str, &str)>) {
        assert!(self.registry.is_none(), "registry already started");
        let storage = self.path("registry");
        fs::create_dir_all(&storage).unwrap();
        let log = self.path("registry.log");
        for attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let config = self.path("registry.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n{auth}",
                    storage.display()
                ),
            )
            .unwrap();
            let logf = fs::File::create(&log).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(logf.try_clone().unwrap())
                .stderr(logf)
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(20);
            let up = loop {
                if http_status_tcp(port, "/v2/").is_some_and(|s| s == 200 || s == 401) {
                    break true;
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            if up {
                self.registry = Some(Registry {
                    child,
                    port,
                    storage,
                    log,
                    creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
                });
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "registry did not come up on port {port} (attempt {attempt}): {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("docker-registry did not start");
    }

    /// Starts berthd with the sandbox's data and exec roots (fresh the first time; a restart
    /// after [`Sandbox::kill9_berthd`] finds what the killed one left), the registry, if any,
    /// as an insecure one, and waits until it answers /_ping. Every start appends to one
    /// log, after a `=== berthd start N ===` line.
    pub fn start_berthd(&mut self) {
        assert!(self.daemon.is_none(), "berthd already started");
        let data = self.path("data");
        let exec = self.path("exec");
        let sock = self.path("s.sock");
        let log = self.path("berthd.log");
        self.starts += 1;
        let mut logf = fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        writeln!(logf, "=== berthd start {} ===", self.starts).unwrap();
        let mut c = Command::new(BERTHD);
        c.arg("--data-root").arg(&data);
        c.arg("--exec-root").arg(&exec);
        c.arg("-H").arg(format!("unix://{}", sock.display()));
        c.arg("--pidfile").arg(self.path("berthd.pid"));
        c.args(["--log-level", "debug"]);
        c.arg("--bridge").arg(&self.bridge);
        c.arg("--bip").arg(format!("{}/24", self.addr(0, 1)));
        c.arg("--cgroup-parent").arg(&self.cgroup_parent);
        c.args(&self.berthd_args);
        if self.registry.is_some() {
            c.args(["--insecure-registry", &self.reg()]);
        }
        let mut child = c
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BERTHD}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if sock.exists() && ping_unix(&sock) {
                break;
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "berthd exited ({st}) before answering /_ping:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "berthd did not answer /_ping in 30 s:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.daemon = Some(Daemon { child, data, exec, sock, log });
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("berthd not started")
    }

    /// Stops berthd gracefully (SIGTERM), as an operator would.
    pub fn stop_berthd(&mut self) {
        let mut d = self.daemon.take().expect("berthd not started");
        stop_child(&mut d.child, Duration::from_secs(15));
    }

    /// SIGKILLs berthd, giving it no chance to clean up, and reaps it. Its data and exec
    /// roots stay as they are, for [`Sandbox::start_berthd`] to start on again.
    pub fn kill9_berthd(&mut self) {
        let mut d = self.daemon.take().expect("berthd not started");
        if let Some(st) = d.child.try_wait().unwrap() {
            panic!("berthd had already exited ({st}) when it was to be killed; log:\n{}", tail(&d.log, 60));
        }
        d.child.kill().expect("SIGKILL berthd");
        d.child.wait().expect("reap berthd");
    }

    /// What berthd logged since its last start (the killed ones' lines are before it).
    pub fn berthd_log_since_start(&self) -> String {
        let s = fs::read_to_string(self.path("berthd.log")).unwrap_or_default();
        let marker = format!("=== berthd start {} ===", self.starts);
        s.rfind(&marker).map_or(s.clone(), |i| s[i..].to_string())
    }

    /// Panics unless berthd is still running and answers /_ping.
    pub fn assert_daemon_alive(&mut self, after: &str) {
        let d = self.daemon.as_mut().expect("berthd not started");
        if let Some(st) = d.child.try_wait().unwrap() {
            panic!("berthd died ({st}) after {after}; log:\n{}", tail(&d.log, 60));
        }
        assert!(ping_unix(&d.sock), "berthd does not answer /_ping after {after}");
    }

    /// A `berth` command against this sandbox's berthd, with its own client config dir.
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.arg("-H").arg(format!("unix://{}", self.daemon().sock.display()));
        c.args(args);
        c.env("BERTH_CONFIG", self.path("cli"));
        c.env("DOCKER_CONFIG", self.path("cli"));
        c.env_remove("BERTH_HOST");
        c.env_remove("DOCKER_HOST");
        c
    }

    pub fn berth(&self, args: &[&str]) -> Out {
        run(&mut self.berth_cmd(args))
    }

    /// Runs berth and panics (with berthd's log tail) unless it succeeds; returns stdout.
    pub fn berth_ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.ok(),
            "berth failed: {out}\n--- berthd log (tail) ---\n{}",
            tail(&self.daemon().log, 40)
        );
        out.stdout
    }

    /// `berth image inspect --format '{{.Id}}'`.
    pub fn image_id(&self, image: &str) -> String {
        self.berth_ok(&["image", "inspect", "--format", "{{.Id}}", image]).trim().to_string()
    }

    fn skopeo_creds(&self, flag: &str) -> Vec<String> {
        match self.registry.as_ref().and_then(|r| r.creds.clone()) {
            Some((u, p)) => vec![flag.to_string(), format!("{u}:{p}")],
            None => vec![],
        }
    }

    /// `skopeo copy oci:<layout>:<tag> docker://<registry>/<repo_tag>`.
    pub fn push_layout(&self, layout: &Path, tag: &str, repo_tag: &str) {
        let mut c = Command::new("skopeo");
        c.args(["--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false"]);
        c.args(self.skopeo_creds("--dest-creds"));
        c.arg(format!("oci:{}:{tag}", layout.display()));
        c.arg(format!("docker://{}", self.image(repo_tag)));
        c.env("REGISTRY_AUTH_FILE", self.path("skopeo-auth.json"));
        run_ok(&mut c);
    }

    /// `skopeo inspect [--raw] docker://<registry>/<repo_tag>`, parsed.
    pub fn skopeo_inspect(&self, repo_tag: &str, raw: bool) -> serde_json::Value {
        let mut c = Command::new("skopeo");
        c.args(["--insecure-policy", "inspect", "--tls-verify=false"]);
        if raw {
            c.arg("--raw");
        }
        c.args(self.skopeo_creds("--creds"));
        c.arg(format!("docker://{}", self.image(repo_tag)));
        c.env("REGISTRY_AUTH_FILE", self.path("skopeo-auth.json"));
        json(&run_ok(&mut c).stdout)
    }

    /// `skopeo copy docker://<registry>/<repo_tag> oci:<layout>:<tag>`.
    pub fn fetch_to_layout(&self, repo_tag: &str, layout: &Path, tag: &str) {
        let mut c = Command::new("skopeo");
        c.args(["--insecure-policy", "copy", "--quiet", "--src-tls-verify=false"]);
        c.args(self.skopeo_creds("--src-creds"));
        c.arg(format!("docker://{}", self.image(repo_tag)));
        c.arg(format!("oci:{}:{tag}", layout.display()));
        c.env("REGISTRY_AUTH_FILE", self.path("skopeo-auth.json"));
        run_ok(&mut c);
    }

    /// The file a blob is kept in by the registry's filesystem driver.
    pub fn registry_blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.registry
            .as_ref()
            .expect("no registry")
            .storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            if let Some(d) = &self.daemon {
                eprintln!("--- {}: berthd log (tail) ---\n{}", self.name, tail(&d.log, 60));
            }
            if let Some(r) = &self.registry {
                eprintln!("--- {}: registry log (tail) ---\n{}", self.name, tail(&r.log, 15));
            }
            if let Some(t) = &self.token {
                let log: Vec<String> = t.log().iter().map(|r| format!("{r:?}")).collect();
                eprintln!("--- {}: token requests ---\n{}", self.name, log.join("\n"));
            }
        }
        if let Some(mut d) = self.daemon.take() {
            stop_child(&mut d.child, Duration::from_secs(15));
        }
        if let Some(mut r) = self.registry.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
        if let Some(mut t) = self.token.take() {
            t.stop();
        }
        kill_procs_under(&self.root);
        remove_cgroup_tree(&self.cgroup_parent);
        unmount_under(&self.root);
        remove_links(&self.bridge);
        if failed && std::env::var_os("BERTH_TEST_KEEP").is_some() {
            eprintln!("BERTH_TEST_KEEP: left {}", self.root.display());
            return;
        }
        for _ in 0..5 {
            match fs::remove_dir_all(&self.root) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => {
                    eprintln!("removing {}: {e}; retrying", self.root.display());
                    unmount_under(&self.root);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

/// Links named `prefix*` (a sandbox's bridges and whatever is left on them) and the
/// sandbox berthd's nft table: berthd removes them on a graceful stop with nothing
/// running; this is for the other endings.
pub fn remove_links(prefix: &str) {
    for l in links_with_prefix(prefix) {
        let _ = cmd("ip", &["link", "del", &l]).output();
    }
    let _ = cmd("nft", &["delete", "table", "ip", &format!("berth_{prefix}")]).output();
    // The iptables backend's chains and the jumps to them.
    let up = format!("BERTH_{}", prefix.to_ascii_uppercase());
    for t in ["nat", "filter"] {
        let rules = cmd("iptables", &["-w", "-t", t, "-S"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        for l in rules.lines().filter(|l| l.starts_with("-A ") && l.contains(&format!("-j {up}-"))) {
            let mut args = vec!["-w", "-t", t, "-D"];
            args.extend(l[3..].split_whitespace());
            let _ = cmd("iptables", &args).output();
        }
        for l in rules.lines().filter_map(|l| l.strip_prefix("-N ")).filter(|c| c.starts_with(&up)) {
            let _ = cmd("iptables", &["-w", "-t", t, "-F", l]).output();
            let _ = cmd("iptables", &["-w", "-t", t, "-X", l]).output();
        }
    }
}

pub fn links_with_prefix(prefix: &str) -> Vec<String> {
    fs::read_dir("/sys/class/net").into_iter().flatten().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(prefix)).collect()
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
fn stop_child(child: &mut Child, grace: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("berthd did not exit {grace:?} after SIGTERM; killing it");
    let _ = child.kill();
    let _ = child.wait();
}

/// Kills processes whose command line names a path under `dir` (what the test started:
/// a berth CLI left hanging, helpers the daemon spawned with our paths).
fn kill_procs_under(dir: &Path) {
    let me = std::process::id();
    let needle = format!("{}/", dir.display());
    let Ok(rd) = fs::read_dir("/proc") else { return };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == me {
            continue;
        }
        let Ok(cl) = fs::read(e.path().join("cmdline")) else { continue };
        let cl = String::from_utf8_lossy(&cl).replace('\0', " ");
        if cl.contains(&needle) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Mount points at or under `dir`, from /proc/self/mountinfo (octal escapes decoded).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    v.dedup();
    v
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lazily unmounts everything at or under `dir`, deepest first, until nothing is left.
pub fn unmount_under(dir: &Path) {
    for _ in 0..10 {
        let m = mounts_under(dir);
        if m.is_empty() {
            return;
        }
        for p in m {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// HTTP status of GET `path` on 127.0.0.1:`port`, or None if nothing answered.
fn http_status_tcp(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    status_of(&mut s)
}

fn status_of(s: &mut impl Read) -> Option<u16> {
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    head.split_whitespace().nth(1)?.parse().ok()
}

/// GET /_ping on a unix socket answers 200.
pub fn ping_unix(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    status_of(&mut s) == Some(200)
}

/// Removes cgroup `path` (e.g. `/berth-test-x`) and everything below it in every hierarchy,
/// killing what still runs there first (a container berthd could not stop).
pub fn remove_cgroup_tree(path: &str) {
    let rel = path.trim_start_matches('/');
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    roots.extend(fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path()));
    for dir in roots.into_iter().map(|r| r.join(rel)).filter(|d| d.join("cgroup.procs").exists()) {
        for _ in 0..50 {
            if remove_cgroup_dir(&dir) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if dir.exists() {
            eprintln!("cgroup {} could not be removed", dir.display());
        }
    }
}

/// One pass, children first; true when `dir` is gone.
fn remove_cgroup_dir(dir: &Path) -> bool {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_dir(&e.path());
        }
    }
    let _ = fs::write(dir.join("freezer.state"), "THAWED");
    for p in fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().split_whitespace() {
        if let Ok(pid) = p.parse::<i32>() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    fs::remove_dir(dir).is_ok() || !dir.exists()
}
