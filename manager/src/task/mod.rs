//! The shim client: berthd starts one `containerd-shim-berth-v2` per container and drives it
//! over ttrpc with containerd's Task API, exactly as containerd would. Calls are blocking;
//! callers run them on blocking threads.

pub mod events;

use crate::errors::{Error, Kind, Result};
use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::ttrpc::context;
use containerd_shim_protos::TaskClient;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const NAMESPACE: &str = "berth";
pub const SHIM_BINARY: &str = "containerd-shim-berth-v2";

/// The shim beside berthd's own binary wins over one on PATH (a build tree, `make install`).
pub fn shim_binary() -> Result<PathBuf> {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join(SHIM_BINARY);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for d in std::env::split_paths(&path) {
        let p = d.join(SHIM_BINARY);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::internal(format!("{SHIM_BINARY} not found beside berthd or on PATH: install it (make install)")))
}

pub struct Shim {
    client: TaskClient,
    pub id: String,
    pub address: String,
}

fn ctx() -> context::Context {
    context::with_timeout(Duration::from_secs(60).as_nanos() as i64)
}

fn map_err(what: &str, e: containerd_shim_protos::ttrpc::Error) -> Error {
    use containerd_shim_protos::ttrpc::{Code, Error as T};
    let (kind, msg) = match &e {
        T::RpcStatus(s) => {
            let k = match s.code() {
                Code::NOT_FOUND => Kind::NotFound,
                Code::ALREADY_EXISTS | Code::FAILED_PRECONDITION => Kind::Conflict,
                Code::INVALID_ARGUMENT => Kind::InvalidArgument,
                _ => Kind::Internal,
            };
            (k, s.message().to_string())
        }
        other => (Kind::Internal, other.to_string()),
    };
    Error::new(kind, format!("{what}: {msg}"))
}

impl Shim {
    /// Start a shim for container `id` with its bundle at `bundle`; returns its address.
    pub fn launch(id: &str, bundle: &Path, exec_root: &Path) -> Result<String> {
        let bin = shim_binary()?;
        let me = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "berthd".into());
        let out = std::process::Command::new(&bin)
            .args(["-namespace", NAMESPACE, "-address"])
            .arg(exec_root.join("berthd.ttrpc"))
            .args(["-publish-binary", &me, "-id", id, "start"])
            .current_dir(bundle)
            .env("TTRPC_ADDRESS", events::socket_path(exec_root))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::internal(format!("starting {}: {e}", bin.display())))?;
        if !out.status.success() {
            return Err(Error::internal(format!("shim failed to start: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if addr.is_empty() {
            return Err(Error::internal("shim printed no address"));
        }
        Ok(addr)
    }

    pub fn connect(id: &str, address: &str) -> Result<Shim> {
        let client = containerd_shim_protos::ttrpc::Client::connect(address).map_err(|e| Error::internal(format!("connecting to shim at {address}: {e}")))?;
        Ok(Shim { client: TaskClient::new(client), id: id.to_string(), address: address.to_string() })
    }

    pub fn create(&self, bundle: &Path, terminal: bool, stdin: &str, stdout: &str, stderr: &str) -> Result<u32> {
        let req = api::CreateTaskRequest {
            id: self.id.clone(),
            bundle: bundle.display().to_string(),
            terminal,
            stdin: stdin.into(),
            stdout: stdout.into(),
            stderr: stderr.into(),
            ..Default::default()
        };
        Ok(self.client.create(ctx(), &req).map_err(|e| map_err("create", e))?.pid)
    }

    pub fn start(&self, exec_id: &str) -> Result<u32> {
        let req = api::StartRequest { id: self.id.clone(), exec_id: exec_id.into(), ..Default::default() };
        Ok(self.client.start(ctx(), &req).map_err(|e| map_err("start", e))?.pid)
    }

    /// Blocks until the process exits: (exit status, exited at, unix seconds and nanos).
    pub fn wait(&self, exec_id: &str) -> Result<(u32, i64, i32)> {
        let req = api::WaitRequest { id: self.id.clone(), exec_id: exec_id.into(), ..Default::default() };
        let r = self.client.wait(context::Context::default(), &req).map_err(|e| map_err("wait", e))?;
        let (s, n) = r.exited_at.as_ref().map(|t| (t.seconds, t.nanos)).unwrap_or((0, 0));
        Ok((r.exit_status, s, n))
    }

    pub fn state(&self, exec_id: &str) -> Result<api::StateResponse> {
        let req = api::StateRequest { id: self.id.clone(), exec_id: exec_id.into(), ..Default::default() };
        self.client.state(ctx(), &req).map_err(|e| map_err("state", e))
    }

    pub fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let req = api::KillRequest { id: self.id.clone(), exec_id: exec_id.into(), signal, all, ..Default::default() };
        self.client.kill(ctx(), &req).map_err(|e| map_err("kill", e)).map(|_| ())
    }

    pub fn delete(&self, exec_id: &str) -> Result<()> {
        let req = api::DeleteRequest { id: self.id.clone(), exec_id: exec_id.into(), ..Default::default() };
        self.client.delete(ctx(), &req).map_err(|e| map_err("delete", e)).map(|_| ())
    }

    pub fn exec(&self, exec_id: &str, process_json: Vec<u8>, terminal: bool, stdin: &str, stdout: &str, stderr: &str) -> Result<()> {
        let spec = Any { type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(), value: process_json, ..Default::default() };
        let req = api::ExecProcessRequest {
            id: self.id.clone(),
            exec_id: exec_id.into(),
            terminal,
            stdin: stdin.into(),
            stdout: stdout.into(),
            stderr: stderr.into(),
            spec: MessageField::some(spec),
            ..Default::default()
        };
        self.client.exec(ctx(), &req).map_err(|e| map_err("exec", e)).map(|_| ())
    }

    pub fn resize(&self, exec_id: &str, width: u32, height: u32) -> Result<()> {
        let req = api::ResizePtyRequest { id: self.id.clone(), exec_id: exec_id.into(), width, height, ..Default::default() };
        self.client.resize_pty(ctx(), &req).map_err(|e| map_err("resize", e)).map(|_| ())
    }

    pub fn close_stdin(&self, exec_id: &str) -> Result<()> {
        let req = api::CloseIORequest { id: self.id.clone(), exec_id: exec_id.into(), stdin: true, ..Default::default() };
        self.client.close_io(ctx(), &req).map_err(|e| map_err("close stdin", e)).map(|_| ())
    }

    pub fn pause(&self) -> Result<()> {
        let req = api::PauseRequest { id: self.id.clone(), ..Default::default() };
        self.client.pause(ctx(), &req).map_err(|e| map_err("pause", e)).map(|_| ())
    }

    pub fn resume(&self) -> Result<()> {
        let req = api::ResumeRequest { id: self.id.clone(), ..Default::default() };
        self.client.resume(ctx(), &req).map_err(|e| map_err("resume", e)).map(|_| ())
    }

    pub fn pids(&self) -> Result<Vec<u32>> {
        let req = api::PidsRequest { id: self.id.clone(), ..Default::default() };
        Ok(self.client.pids(ctx(), &req).map_err(|e| map_err("pids", e))?.processes.iter().map(|p| p.pid).collect())
    }

    pub fn shutdown(&self) {
        let req = api::ShutdownRequest { id: self.id.clone(), now: true, ..Default::default() };
        let _ = self.client.shutdown(context::with_timeout(Duration::from_secs(5).as_nanos() as i64), &req);
    }
}
