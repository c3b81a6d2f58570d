//! containerd-shim-berth-v2 under Kubernetes' Container Runtime Interface: the
//! calls kubelet makes, over CRI v1 gRPC on containerd 1.6's socket, for a pod
//! whose RuntimeClass names the handler `berth` (runtime_type
//! io.containerd.berth.v2).
//!
//! The test starts its own containerd (as shim/tests/containerd.rs does: root,
//! state and sockets under one temp dir) with the CRI plugin on, the `berth`
//! handler configured beside the default runc one, and CNI pointed at empty
//! directories: the pod uses the host's network, so no CNI plugin is needed.
//! No registry is reachable, so the images are built here (static busybox,
//! made with umoci) and imported into containerd's `k8s.io` namespace with
//! `ctr`: `berth.test/busybox:latest` and, with a command that sleeps
//! forever, the pod's sandbox (pause) image `berth.test/pause:latest`.
//! Where root lacks CAP_SYS_RESOURCE (so no runtime can give the sandbox
//! CRI's oom_score_adj of -998), CRI's `restrict_oom_score_adj` is turned on.
//!
//! A [`Cri`] guard undoes everything on drop, also when the test fails: pods
//! (through CRI), shims and their sockets, containerd, processes left in the
//! pod's cgroups, mounts under the temp dir (rootfs overlays, the pod's
//! /dev/shm), the pod's cgroup parent in every controller, the runtime's state
//! and the temp dir.
//!
//! Needs root, containerd + ctr, umoci, a static busybox and berth-runtime
//! built into the same target directory as the shim (`cargo build --release
//! --workspace`). Skips (with a printed reason) only when containerd or ctr is
//! not installed.

use std::collections::HashMap;
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatus, ContainerStatusRequest,
    CreateContainerRequest, ExecSyncRequest, ImageSpec, ImageStatusRequest, LinuxContainerConfig,
    LinuxContainerResources, LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    ListContainersRequest, ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxState, PodSandboxStatusRequest, PodSandboxStatusResponse,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StatusRequest, StopContainerRequest, StopPodSandboxRequest, VersionRequest,
};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

/// The RuntimeClass handler name, as a pod's runtimeClassName selects it.
const HANDLER: &str = "berth";
const RUNTIME_TYPE: &str = "io.containerd.berth.v2";
/// containerd's namespace for everything the CRI plugin does.
const NS: &str = "k8s.io";
const BUSYBOX: &str = "berth.test/busybox:latest";
const PAUSE: &str = "berth.test/pause:latest";
const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-berth-v2");
const SHIM_NAME: &str = "containerd-shim-berth-v2";
const RUNC_SHIM_NAME: &str = "containerd-shim-runc-v2";
/// Where the shim has berth-runtime keep its state: `<root>/<namespace>/<id>`.
const RUNTIME_ROOT: &str = "/run/containerd/berth";
/// capability(7) number.
const CAP_SYS_RESOURCE: u32 = 24;
/// Every CRI call fails after this instead of hanging the test.
const RPC_TIMEOUT: Duration = Duration::from_secs(60);

#[path = "../../testsupport/containerd.rs"]
mod support;
use support::{
    argv, assert_root, build_image, build_image_with_cmd, cgroups, find_containerd, kill_cgroup_procs, kill_shims,
    remove_cgroups, shim_bin_dir, text, wait_until, Daemon,
};

// ---------------------------------------------------------------------------
// helpers

fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces and parentheses.
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// The value after `flag` in `args` (`-id <sandbox id>`).
fn flag_value<'a>(args: &'a [Vec<u8>], flag: &str) -> Option<&'a [u8]> {
    args.iter().position(|a| a == flag.as_bytes()).and_then(|i| args.get(i + 1)).map(Vec::as_slice)
}

/// The `pid` of a verbose CRI status's `info` JSON.
fn info_pid(info: &HashMap<String, String>) -> i32 {
    let json = info.get("info").unwrap_or_else(|| panic!("no `info` in a verbose status: {info:?}"));
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("info JSON {json}: {e}"));
    v["pid"].as_i64().unwrap_or_else(|| panic!("no pid in {json}")) as i32
}

/// Whether this process may lower an oom_score_adj (CAP_SYS_RESOURCE in its effective set).
fn has_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .map(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
        .unwrap_or(false)
}

fn info_json(info: &HashMap<String, String>) -> serde_json::Value {
    serde_json::from_str(info.get("info").map(String::as_str).unwrap_or("{}")).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// a private containerd with the CRI plugin, and a CRI client

struct Cri {
    d: Daemon,
    /// The pod's cgroup parent, as kubelet would give it (cgroupfs driver).
    cgroup_parent: String,
    rt: tokio::runtime::Runtime,
    runtime: Option<RuntimeServiceClient<Channel>>,
    images: Option<ImageServiceClient<Channel>>,
    /// Every pod sandbox and container id CRI gave us: their runtime state is
    /// cleaned up on drop even if containerd is gone by then.
    ids: Mutex<Vec<String>>,
}

// The test uses the daemon's dir as its own.
impl Deref for Cri {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.d
    }
}

impl Cri {
    fn start() -> Option<Cri> {
        let tools = find_containerd()?;
        assert_root();
        // The shim is found on containerd's PATH; berth-runtime beside it.
        let bin_dir = shim_bin_dir(SHIM);

        let pid = std::process::id();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let mut cri = Cri {
            d: Daemon::new(tools, &format!("berth-cri-{pid}"), NS, Some(bin_dir)),
            cgroup_parent: format!("/berth-cri-{pid}"),
            rt,
            runtime: None,
            images: None,
            ids: Mutex::default(),
        };
        for d in ["cni-conf", "cni-bin", "pod-logs"] {
            fs::create_dir_all(cri.dir.join(d)).unwrap();
        }
        let config = cri.containerd_config();
        cri.d.start(&config);
        cri.connect();

        let busybox = build_image(&cri.dir);
        let pause = build_image_with_cmd(&cri.dir, "pause", &["/bin/sleep", "2147483647"]);
        cri.ctr_ok(&["images", "import", "--base-name", "berth.test/busybox", busybox.to_str().unwrap()]);
        cri.ctr_ok(&["images", "import", "--base-name", "berth.test/pause", pause.to_str().unwrap()]);
        Some(cri)
    }

    fn containerd_config(&self) -> String {
        let d = |p: &str| self.dir.join(p).display().to_string();
        // CRI gives a sandbox oom_score_adj -998; lowering it needs CAP_SYS_RESOURCE, which some
        // machines' root lacks (containers, some VMs). There the runtime's write fails with
        // EACCES (runc's as well), so have CRI cap scores at containerd's own, as it does for
        // rootless containerd.
        let restrict_oom = !has_cap_sys_resource();
        if restrict_oom {
            eprintln!("note: no CAP_SYS_RESOURCE here: CRI's restrict_oom_score_adj is on");
        }
        // CRI on, with its state and root (they follow containerd's) under our dir; the plugins
        // nothing here uses stay off. Pods pick the `berth` handler per RunPodSandbox, as
        // kubelet does for a RuntimeClass; runc stays the default.
        let cri = format!(
            r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  disable_apparmor = true
  restrict_oom_score_adj = {restrict_oom}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}]
      runtime_type = "{RUNTIME_TYPE}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
"#,
            cni_bin = d("cni-bin"),
            cni_conf = d("cni-conf"),
        );
        self.d.config("debug", true) + &cri
    }

    /// A gRPC channel over containerd's unix socket, then the CRI services on it: waits until
    /// the CRI plugin answers Version and reports the runtime ready.
    fn connect(&mut self) {
        let sock = self.sock.clone();
        let channel = self.rt.block_on(async move {
            Endpoint::try_from("http://[::]")
                .unwrap()
                .timeout(RPC_TIMEOUT)
                .connect_timeout(Duration::from_secs(10))
                .connect_with_connector(service_fn(move |_: Uri| {
                    let sock = sock.clone();
                    async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(sock).await?)) }
                }))
                .await
        });
        let channel = channel.unwrap_or_else(|e| panic!("connect to {}: {e}", self.sock.display()));
        self.runtime = Some(RuntimeServiceClient::new(channel.clone()));
        self.images = Some(ImageServiceClient::new(channel));

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut rs = self.rs();
            let status = self.rt.block_on(rs.status(StatusRequest { verbose: false }));
            match status {
                Ok(r) => {
                    let conds = r.into_inner().status.map(|s| s.conditions).unwrap_or_default();
                    if conds.iter().any(|c| c.r#type == "RuntimeReady" && c.status) {
                        return;
                    }
                    assert!(Instant::now() < deadline, "CRI runtime not ready in 30s: {conds:?}");
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "the CRI plugin does not answer in 30s: {e}; log:\n{}",
                        self.log_tail(40)
                    );
                }
            }
            self.d.assert_alive();
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn rs(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone().expect("connected to CRI")
    }

    fn is(&self) -> ImageServiceClient<Channel> {
        self.images.clone().expect("connected to CRI")
    }

    /// Runs a CRI call to its end; a failure fails the test, naming the call.
    fn call<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        match self.rt.block_on(f) {
            Ok(r) => r.into_inner(),
            Err(e) => panic!("CRI {what}: {e}"),
        }
    }

    fn remember(&self, id: &str) {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).push(id.to_string());
    }

    /// Pids of live processes named `name` (argv[0]'s last component) that serve this
    /// containerd.
    fn shims_named(&self, name: &str) -> Vec<i32> {
        self.shim_pids(|a| a.ends_with(name.as_bytes()))
    }

    fn shims(&self) -> Vec<i32> {
        self.shims_named(SHIM_NAME)
    }

    /// The berth shim started for sandbox `id` (`-id <id>`); it also holds the pod's containers.
    fn sandbox_shim(&self, id: &str) -> Option<i32> {
        self.shims().into_iter().find(|pid| flag_value(&argv(*pid), "-id") == Some(id.as_bytes()))
    }

    /// The pod's cgroup parent in each controller that has it.
    fn pod_cgroups(&self) -> Vec<PathBuf> {
        cgroups(self.cgroup_parent.trim_start_matches('/'))
    }

    fn runtime_state(&self, id: &str) -> PathBuf {
        Path::new(RUNTIME_ROOT).join(NS).join(id)
    }

    // ---- the pod, as kubelet describes it ---------------------------------

    fn pod_config(&self) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "berth-pod".into(),
                uid: format!("berth-cri-uid-{}", std::process::id()),
                namespace: "default".into(),
                attempt: 0,
            }),
            log_directory: self.dir.join("pod-logs").display().to_string(),
            labels: [("io.kubernetes.pod.name".to_string(), "berth-pod".to_string())].into(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    // hostNetwork: true; no CNI plugin needed.
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn container_config(&self, name: &str, command: &[&str], log_path: &str) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata { name: name.into(), attempt: 0 }),
            image: Some(ImageSpec { image: BUSYBOX.into(), ..Default::default() }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: log_path.into(),
            linux: Some(LinuxContainerConfig {
                // A BestEffort pod's container, as kubelet asks for it.
                resources: Some(LinuxContainerResources { cpu_shares: 2, oom_score_adj: 1000, ..Default::default() }),
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }

    fn image_visible(&self, image: &str) -> bool {
        let mut is = self.is();
        let req = ImageStatusRequest { image: Some(ImageSpec { image: image.into(), ..Default::default() }), verbose: false };
        self.call("ImageStatus", is.image_status(req))
            .image
            .map(|i| i.repo_tags.iter().any(|t| t == image))
            .unwrap_or(false)
    }

    fn run_pod(&self, config: &PodSandboxConfig) -> String {
        let mut rs = self.rs();
        let req = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: HANDLER.into() };
        let id = self.call("RunPodSandbox", rs.run_pod_sandbox(req)).pod_sandbox_id;
        self.remember(&id);
        id
    }

    fn pod_status(&self, id: &str) -> PodSandboxStatusResponse {
        let mut rs = self.rs();
        let req = PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true };
        self.call("PodSandboxStatus", rs.pod_sandbox_status(req))
    }

    fn create_container(&self, pod: &str, pod_config: &PodSandboxConfig, config: ContainerConfig) -> String {
        let mut rs = self.rs();
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        let id = self.call("CreateContainer", rs.create_container(req)).container_id;
        self.remember(&id);
        id
    }

    fn start_container(&self, id: &str) {
        let mut rs = self.rs();
        self.call("StartContainer", rs.start_container(StartContainerRequest { container_id: id.into() }));
    }

    /// The container's status and its verbose info.
    fn container_status(&self, id: &str) -> (ContainerStatus, HashMap<String, String>) {
        let mut rs = self.rs();
        let r = self.call(
            "ContainerStatus",
            rs.container_status(ContainerStatusRequest { container_id: id.into(), verbose: true }),
        );
        (r.status.expect("ContainerStatus without a status"), r.info)
    }

    fn wait_container_state(&self, id: &str, want: ContainerState, timeout: Duration) -> ContainerStatus {
        let mut last = None;
        let deadline = Instant::now() + timeout;
        loop {
            let (st, _) = self.container_status(id);
            if st.state == want as i32 {
                return st;
            }
            assert!(Instant::now() < deadline, "container {id} not {want:?} after {timeout:?}: {last:?}");
            last = Some(st);
            thread::sleep(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------
// cleanup, run even when the test panics

impl Drop for Cri {
    fn drop(&mut self) {
        self.print_log_if_panicking(120);
        let short = Duration::from_secs(20);
        // 1. Pods, through CRI while containerd runs, as kubelet would tear them down.
        let alive = self.d.running();
        if let (true, Some(rs)) = (alive, self.runtime.clone()) {
            let mut rs2 = rs.clone();
            let listed = self.rt.block_on(async {
                let pods = tokio::time::timeout(short, rs2.list_pod_sandbox(ListPodSandboxRequest { filter: None })).await;
                let ctrs = tokio::time::timeout(short, rs2.list_containers(ListContainersRequest { filter: None })).await;
                (pods, ctrs)
            });
            let pods: Vec<String> = match listed.0 {
                Ok(Ok(r)) => r.into_inner().items.into_iter().map(|p| p.id).collect(),
                _ => vec![],
            };
            if let Ok(Ok(r)) = listed.1 {
                for c in r.into_inner().containers {
                    self.remember(&c.id);
                }
            }
            for id in pods {
                self.remember(&id);
                let mut rs = rs.clone();
                self.rt.block_on(async {
                    let stop = StopPodSandboxRequest { pod_sandbox_id: id.clone() };
                    let _ = tokio::time::timeout(short, rs.stop_pod_sandbox(stop)).await;
                    let rm = RemovePodSandboxRequest { pod_sandbox_id: id.clone() };
                    let _ = tokio::time::timeout(short, rs.remove_pod_sandbox(rm)).await;
                });
            }
        }
        self.runtime = None;
        self.images = None;
        // 2. Shims still serving our containerd (berth's, or runc's if one got started).
        kill_shims(&[self.shims_named(SHIM_NAME), self.shims_named(RUNC_SHIM_NAME)].concat());
        // 3. containerd.
        self.d.stop();
        // 4. Processes left in the pod's cgroups (the pause process, containers, execs).
        let cgroups = self.pod_cgroups();
        kill_cgroup_procs(&cgroups);
        // 5. Mounts under our dir (rootfs overlays, the pod's /dev/shm).
        self.unmount_all();
        // 6. The pod's cgroup parent in every controller.
        remove_cgroups(&cgroups);
        // 7. The runtime's state of our sandboxes and containers (the namespace's directory
        //    too, once empty: other users of k8s.io keep theirs).
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|p| p.into_inner()));
        for id in ids.iter().filter(|id| !id.is_empty() && !id.contains('/')) {
            let _ = fs::remove_dir_all(self.runtime_state(id));
        }
        let _ = fs::remove_dir(Path::new(RUNTIME_ROOT).join(NS));
        // 8. Files.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// the test

#[test]
fn pod_lifecycle_through_cri_with_the_berth_handler() {
    let t0 = Instant::now();
    let Some(cri) = Cri::start() else { return };
    eprintln!("[{:>6.2?}] containerd with CRI up, images imported", t0.elapsed());

    // The runtime, as kubelet sees it.
    let mut rs = cri.rs();
    let version = cri.call("Version", rs.version(VersionRequest { version: "v1".into() }));
    assert_eq!(version.runtime_name, "containerd", "{version:?}");
    assert_eq!(version.runtime_api_version, "v1", "{version:?}");

    // The imported images are visible to CRI (it learns of them from containerd's events).
    for image in [PAUSE, BUSYBOX] {
        wait_until(&format!("CRI to see {image}"), Duration::from_secs(20), || cri.image_visible(image));
    }

    // The pod, with the `berth` handler (a RuntimeClass's handler).
    let pod_config = cri.pod_config();
    let pod = cri.run_pod(&pod_config);
    eprintln!("[{:>6.2?}] RunPodSandbox {pod}", t0.elapsed());
    let status = cri.pod_status(&pod);
    let st = status.status.as_ref().expect("PodSandboxStatus without a status");
    assert_eq!(st.state, PodSandboxState::SandboxReady as i32, "{st:?}");
    assert_eq!(st.id, pod);
    assert_eq!(st.metadata.as_ref().map(|m| m.name.as_str()), Some("berth-pod"));
    let info = info_json(&status.info);
    assert_eq!(info["runtimeHandler"], HANDLER, "sandbox info: {info}");
    assert_eq!(info["runtimeType"], RUNTIME_TYPE, "sandbox info: {info}");

    // berth's shim serves the pod: started for the sandbox (`-id <sandbox id>`), parent of the
    // pause process; no runc shim serves anything here.
    let shim = cri.sandbox_shim(&pod).unwrap_or_else(|| {
        panic!("no {SHIM_NAME} with `-id {pod}`; berth shims of this containerd: {:?}", cri.shims())
    });
    assert_eq!(flag_value(&argv(shim), "-namespace"), Some(NS.as_bytes()));
    let pause_pid = info_pid(&status.info);
    assert_eq!(ppid(pause_pid), Some(shim), "the pause process {pause_pid} should be a child of the shim {shim}");
    // (Start returns once the init was told to go on, maybe before its execve.)
    let want = vec![b"/bin/sleep".to_vec(), b"2147483647".to_vec()];
    wait_until("the pause process to run the sandbox image's command", Duration::from_secs(5), || {
        argv(pause_pid) == want
    });
    assert!(cri.shims_named(RUNC_SHIM_NAME).is_empty(), "a runc shim serves this containerd");
    assert!(cri.runtime_state(&pod).is_dir(), "no berth-runtime state at {}", cri.runtime_state(&pod).display());
    // The sandbox runs in the pod's cgroup parent.
    let memcg = fs::read_to_string(format!("/proc/{pause_pid}/cgroup")).unwrap();
    assert!(
        memcg.lines().any(|l| l.contains(":memory:") && l.ends_with(&format!("{}/{pod}", cri.cgroup_parent))),
        "the pause process's cgroups: {memcg}"
    );

    // A long-running container: created, started, running.
    let c1 = cri.create_container(
        &pod,
        &pod_config,
        cri.container_config("main", &["sh", "-c", "echo started; exec sleep 600"], "main/0.log"),
    );
    cri.start_container(&c1);
    let st = cri.wait_container_state(&c1, ContainerState::ContainerRunning, Duration::from_secs(20));
    assert!(st.started_at > 0, "{st:?}");
    eprintln!("[{:>6.2?}] container {c1} running", t0.elapsed());
    let (_, info) = cri.container_status(&c1);
    let c1_pid = info_pid(&info);
    // containerd's grouping: the pod's containers live in the sandbox's shim (the server a
    // container's `start` spawns finds it serving and exits).
    assert_eq!(ppid(c1_pid), Some(shim), "the container's init {c1_pid} should be a child of the pod's shim {shim}");
    wait_until("one berth shim for the pod", Duration::from_secs(5), || cri.shims() == vec![shim]);
    assert!(cri.shims_named(RUNC_SHIM_NAME).is_empty(), "a runc shim serves this containerd");
    // The pod's namespaces as CRI asked: the sandbox's IPC, the host's network, a PID
    // namespace of its own; and a cgroup under the pod's parent.
    let ns = |pid: i32, kind: &str| fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    assert_eq!(ns(c1_pid, "ipc"), ns(pause_pid, "ipc"), "the container joins the pod's IPC namespace");
    assert_eq!(ns(c1_pid, "net"), ns(std::process::id() as i32, "net"), "hostNetwork");
    assert_ne!(ns(c1_pid, "pid"), ns(pause_pid, "pid"), "a PID namespace per container");
    let memcg = fs::read_to_string(format!("/proc/{c1_pid}/cgroup")).unwrap();
    assert!(
        memcg.lines().any(|l| l.contains(":memory:") && l.ends_with(&format!("{}/{c1}", cri.cgroup_parent))),
        "the container's cgroups: {memcg}"
    );

    // ExecSync: output and exit code come back; it runs as root in the container.
    let exec = cri.call(
        "ExecSync",
        rs.exec_sync(ExecSyncRequest {
            container_id: c1.clone(),
            cmd: ["sh", "-c", "echo hi-from-exec; id -u; cat /proc/1/cmdline | tr '\\0' ' '; exit 3"]
                .map(String::from)
                .to_vec(),
            timeout: 30,
        }),
    );
    let out = text(&exec.stdout);
    assert_eq!(exec.exit_code, 3, "ExecSync exit code; stdout: {out} stderr: {}", text(&exec.stderr));
    assert!(out.contains("hi-from-exec"), "ExecSync stdout: {out}");
    assert!(out.lines().any(|l| l.trim() == "0"), "id -u should print 0: {out}");
    assert!(out.contains("sleep 600"), "the exec should see the container's PID 1: {out}");

    // The container's log: CRI's format, `<RFC 3339 time> stdout F started`.
    let log = cri.dir.join("pod-logs/main/0.log");
    assert_eq!(st.log_path, log.display().to_string());
    let mut content = String::new();
    wait_until("`started` in the container's log", Duration::from_secs(10), || {
        content = fs::read_to_string(&log).unwrap_or_default();
        content.lines().any(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            f.len() == 4 && f[0].contains('T') && f[1] == "stdout" && f[2] == "F" && f[3] == "started"
        })
    });

    // A short-lived container in the same pod: its exit code comes through.
    let c2 = cri.create_container(&pod, &pod_config, cri.container_config("once", &["sh", "-c", "echo bye; exit 7"], "once/0.log"));
    cri.start_container(&c2);
    let st2 = cri.wait_container_state(&c2, ContainerState::ContainerExited, Duration::from_secs(20));
    assert_eq!(st2.exit_code, 7, "{st2:?}");
    // (No order between the two: CRI stamps started_at after the shim's Start returned, the
    // exit comes with the shim's own time, and `exit 7` can beat the former.)
    assert!(st2.started_at > 0 && st2.finished_at > 0, "{st2:?}");
    assert!(fs::read_to_string(cri.dir.join("pod-logs/once/0.log")).unwrap_or_default().contains(" stdout F bye"));
    cri.call("RemoveContainer", rs.remove_container(RemoveContainerRequest { container_id: c2.clone() }));
    assert_eq!(cri.shims(), vec![shim], "the pod's shim lives on after one of its containers is removed");
    eprintln!("[{:>6.2?}] container {c2} exited 7 and was removed", t0.elapsed());

    // StopContainer: `sleep` as PID 1 ignores SIGTERM, so after 2s it is killed.
    let stop_t = Instant::now();
    cri.call("StopContainer", rs.stop_container(StopContainerRequest { container_id: c1.clone(), timeout: 2 }));
    let st = cri.wait_container_state(&c1, ContainerState::ContainerExited, Duration::from_secs(10));
    assert_eq!(st.exit_code, 137, "{st:?}");
    assert!(stop_t.elapsed() >= Duration::from_secs(2), "StopContainer should wait its timeout before SIGKILL");
    eprintln!("[{:>6.2?}] container {c1} stopped", t0.elapsed());

    // The pod goes away: stopped, then removed with its containers.
    cri.call("StopPodSandbox", rs.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.clone() }));
    let st = cri.pod_status(&pod).status.unwrap();
    assert_eq!(st.state, PodSandboxState::SandboxNotready as i32, "{st:?}");
    cri.call("RemovePodSandbox", rs.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod.clone() }));
    let pods = cri.call("ListPodSandbox", rs.list_pod_sandbox(ListPodSandboxRequest { filter: None })).items;
    assert!(pods.is_empty(), "pods left: {pods:?}");
    let ctrs = cri.call("ListContainers", rs.list_containers(ListContainersRequest { filter: None })).containers;
    assert!(ctrs.is_empty(), "containers left: {ctrs:?}");
    eprintln!("[{:>6.2?}] pod stopped and removed", t0.elapsed());

    // Nothing left behind: the shim exited, no mounts under our dir, no runtime state, no
    // container cgroups under the pod's parent.
    wait_until("the pod's shim to exit", Duration::from_secs(10), || cri.shims().is_empty());
    assert!(cri.shims_named(RUNC_SHIM_NAME).is_empty());
    assert_eq!(cri.mounts(), Vec::<String>::new(), "mounts left under {}", cri.dir.display());
    for id in [&pod, &c1, &c2] {
        assert!(!cri.runtime_state(id).exists(), "runtime state left: {}", cri.runtime_state(id).display());
    }
    for parent in cri.pod_cgroups() {
        let children: Vec<_> = fs::read_dir(&parent)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .collect();
        assert!(children.is_empty(), "cgroups left under {}: {children:?}", parent.display());
    }
    drop(rs);
    drop(cri);
    eprintln!("[{:>6.2?}] done, cleaned up", t0.elapsed());
}
