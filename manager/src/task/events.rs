//! berthd's side of the shims' event stream: a ttrpc Events service on the exec root (what
//! `TTRPC_ADDRESS` names for the shims), turning /tasks/oom into a flag on the container.

use containerd_shim_protos::api::{ForwardRequest, Empty};
use containerd_shim_protos::events::task::TaskOOM;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::ttrpc::{self, TtrpcContext};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn socket_path(exec_root: &Path) -> PathBuf {
    exec_root.join("events.sock")
}

/// What berthd does with an event: (container ID, topic).
pub type Sink = Arc<dyn Fn(String, &'static str) + Send + Sync>;

struct Service {
    sink: Sink,
}

impl containerd_shim_protos::Events for Service {
    fn forward(&self, _ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let Some(env) = req.envelope.as_ref() else { return Ok(Empty::new()) };
        if env.topic == "/tasks/oom" {
            if let Some(ev) = env.event.as_ref() {
                if let Ok(oom) = TaskOOM::parse_from_bytes(&ev.value) {
                    (self.sink)(oom.container_id, "oom");
                }
            }
        }
        Ok(Empty::new())
    }
}

/// Serve until berthd exits (the server's threads die with the process).
pub fn serve(exec_root: &Path, sink: Sink) -> crate::errors::Result<ttrpc::Server> {
    let path = socket_path(exec_root);
    let _ = std::fs::remove_file(&path);
    let svc = containerd_shim_protos::create_events(Arc::new(Service { sink }));
    let mut server = ttrpc::Server::new()
        .bind(&format!("unix://{}", path.display()))
        .map_err(|e| crate::errors::Error::internal(format!("events socket {}: {e}", path.display())))?
        .register_service(svc);
    server.start().map_err(|e| crate::errors::Error::internal(format!("events server: {e}")))?;
    Ok(server)
}
