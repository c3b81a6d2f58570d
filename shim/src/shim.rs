//! The process side of the shim protocol: `start` (spawn the long-lived shim
//! server and print its socket address), `delete` (clean up after a shim that
//! is gone), and the server's task service. The `containerd-shim` crate parses
//! the flags (-namespace -address -publish-binary -id -bundle -debug), serves
//! ttrpc and connects the event publisher.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
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

    fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        if let Err(e) = reaper::start() {
            log::error!("cannot reap children: {e}");
        }
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let events = Events::start(publisher, address, self.namespace.clone());
        TaskService::new(&self.namespace, events, self.exit.clone())
    }
}

fn sandbox_id(bundle: &std::path::Path) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).ok()?).ok()?;
    spec.get("annotations")?.get(SANDBOX_ID)?.as_str().map(str::to_string)
}
