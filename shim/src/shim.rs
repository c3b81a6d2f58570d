//! The process side of the shim protocol: `start` (spawn the long-lived shim
//! server and print its socket address), `delete` (clean up after a shim that
//! is gone), and the server itself ([`serve`]). The `containerd-shim` crate
//! parses the flags (-namespace -address -publish-binary -id -bundle -debug)
//! and runs `start` and `delete`; the server is set up here rather than by the
//! crate's `run`, to choose the ttrpc worker pool (the crate's keeps 3 idle
//! workers per connection) and spare its signal-logging thread.
//!
//! Where an idle shim's memory goes (bench/shim.sh measures it): the binary's
//! text (shared between shims), libc, ~10 threads (a few KiB of stack each),
//! and a small heap. What kept it larger: one glibc arena per thread
//! ([`tune_malloc`]), protobuf descriptors built through reflection for an
//! `Any`'s type name (events.rs and stats.rs name their types by hand, which
//! also lets the linker drop the reflection code: half the binary), and
//! threads that only waited (events.rs starts its thread on demand).

use std::io::Read;
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, Error as ShimError, ExitSignal, Flags, StartOpts};

use crate::events::{timestamp, Events};
use crate::runtime::Runtime;
use crate::service::TaskService;
use crate::{mount, reaper};

/// The CRI groups a pod's containers in its sandbox's shim.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

pub struct Shim {
    namespace: String,
    id: String,
    bundle: PathBuf,
    exit: Arc<ExitSignal>,
}

impl containerd_shim::Shim for Shim {
    type T = TaskService;

    fn new(_runtime_id: &str, flags: &Flags, _config: &mut Config) -> Self {
        let bundle = if flags.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&flags.bundle)
        };
        Shim { namespace: flags.namespace.clone(), id: flags.id.clone(), bundle, exit: Arc::default() }
    }

    fn start_shim(&mut self, opts: StartOpts) -> Result<String, ShimError> {
        let grouping = sandbox_id(&self.bundle).unwrap_or_else(|| opts.id.clone());
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &grouping);
        let exe = std::env::current_exe().map_err(|e| ShimError::Other(format!("own binary: {e}")))?;
        let mut cmd = Command::new(exe);
        cmd.args(["-namespace", &opts.namespace, "-id", &opts.id, "-address", &opts.address, "-socket", &address])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: a signal to containerd's group (^C) spares it.
            .process_group(0);
        if opts.debug {
            cmd.arg("-debug");
        }
        let mut child = cmd.spawn().map_err(|e| ShimError::Other(format!("spawn the shim server: {e}")))?;
        // The server closes its stdout once it listens (or found a live shim).
        let mut sink = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_end(&mut sink);
        }
        if let Ok(Some(st)) = child.try_wait() {
            if !st.success() {
                return Err(ShimError::Other(format!("the shim server exited with {st}")));
            }
        }
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> Result<DeleteResponse, ShimError> {
        let runtime = Runtime::load(&self.bundle, &self.namespace);
        if let Err(e) = runtime.delete(&self.id, true) {
            log::warn!("cleanup of {}: {e}", self.id);
        }
        mount::unmount_all(&self.bundle.join("rootfs"));
        Ok(DeleteResponse {
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: Some(timestamp(SystemTime::now())).into(),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    /// Unused: [`serve`] runs the server, not the crate.
    fn create_task_service(&self, _publisher: RemotePublisher) -> TaskService {
        if let Err(e) = reaper::start() {
            log::error!("cannot reap children: {e}");
        }
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let events = Events::new(address, self.namespace.clone());
        TaskService::new(&self.namespace, events, self.exit.clone())
    }
}

/// glibc malloc for a process that mostly sleeps: one arena for all threads
/// (each thread that allocates would otherwise get its own, of which a few
/// hundred KiB stay resident), and freed memory returned to the kernel early.
pub fn tune_malloc() {
    // SAFETY: mallopt only sets allocator tunables; called first thing in
    // main, before any other thread exists or allocates.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}

/// Gives the heap's free pages back to the kernel. After each request: what a
/// request allocated (decoded messages, runtime output) is freed by then, and
/// a shim can sit idle for months on whatever stays resident.
pub fn trim_heap() {
    // SAFETY: malloc_trim takes no pointers and is thread-safe.
    unsafe { libc::malloc_trim(0) };
}

/// ttrpc worker threads per connection (the crate's server starts 3, keeps
/// at least 1 idle, up to 5): two to begin with; whenever fewer than one is
/// idle (a Wait blocks its worker for the process's life) two more are
/// started; idle ones beyond three end. ttrpc wants min < default < max.
const TTRPC_WORKERS_MIN: usize = 1;
const TTRPC_WORKERS: usize = 2;
const TTRPC_WORKERS_MAX: usize = 3;

/// The long-lived shim server: listens on `-socket`, serves the task service
/// until Shutdown, then removes its socket.
pub fn serve(flags: Flags) -> Result<(), ShimError> {
    if flags.socket.is_empty() {
        return Err(ShimError::InvalidArgument("the shim server needs -socket".into()));
    }
    if flags.namespace.is_empty() {
        return Err(ShimError::InvalidArgument("the shim server needs -namespace".into()));
    }
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(ShimError::Other(format!("become subreaper: {}", std::io::Error::last_os_error())));
    }
    // The reaper thread also takes SIGTERM, SIGINT and SIGPIPE (logged, not fatal).
    reaper::start().map_err(|e| ShimError::Other(format!("cannot reap children: {e}")))?;
    // Logs go to the `log` fifo containerd made in the bundle (the cwd); a
    // shim started by hand has none and logs nowhere.
    let _ = containerd_shim::logger::init(flags.debug, "info", &flags.namespace, &flags.id);

    let path = flags.socket.strip_prefix("unix://").unwrap_or(&flags.socket).to_string();
    let Some(listener) = listen(&path)? else {
        // A live shim already serves this socket (one shim per pod).
        containerd_shim::util::write_address(&flags.socket)?;
        server_started();
        return Ok(());
    };
    let exit = Arc::new(ExitSignal::default());
    // The events connection is opened when there is something to publish.
    let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    let events = Events::new(address, flags.namespace.clone());
    let service = TaskService::new(&flags.namespace, events, exit.clone());
    let task: Arc<dyn containerd_shim::protos::shim::shim_ttrpc::Task + Send + Sync> = Arc::new(service);
    let started = containerd_shim::protos::ttrpc::Server::new()
        .add_listener(listener.into_raw_fd())
        .map(|s| {
            s.register_service(containerd_shim::protos::shim::shim_ttrpc::create_task(task))
                .set_thread_count_default(TTRPC_WORKERS)
                .set_thread_count_min(TTRPC_WORKERS_MIN)
                .set_thread_count_max(TTRPC_WORKERS_MAX)
        })
        .and_then(|mut s| s.start().map(|()| s));
    let server = match started {
        Ok(s) => s,
        Err(e) => {
            // No one will serve this socket: leave no stale file behind.
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
    };
    server_started();
    log::info!("shim serving on {}", flags.socket);
    exit.wait();
    log::info!("shutting down");
    server.shutdown();
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Binds the socket; None when a working shim already listens on it.
fn listen(path: &str) -> Result<Option<UnixListener>, ShimError> {
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent).map_err(|e| ShimError::Other(format!("create {}: {e}", parent.display())))?;
    }
    match UnixListener::bind(path) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            for _ in 0..5 {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            // A stale socket from a shim that died: take its place.
            let _ = std::fs::remove_file(path);
            UnixListener::bind(path).map(Some).map_err(|e| ShimError::Other(format!("bind {path}: {e}")))
        }
        Err(e) => Err(ShimError::Other(format!("bind {path}: {e}"))),
    }
}

/// Tells `start` (waiting for EOF on our stdout) that the server is up.
fn server_started() {
    // SAFETY: dup2 of our own stderr (/dev/null) over stdout; no pointers.
    unsafe { libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) };
}

fn sandbox_id(bundle: &std::path::Path) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).ok()?).ok()?;
    spec.get("annotations")?.get(SANDBOX_ID)?.as_str().map(str::to_string)
}
