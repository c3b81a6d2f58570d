//! The ttrpc Task service: containerd's requests, each turned into runtime
//! commands, process state and events.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use containerd_shim::api::{self, Options};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskIO, TaskPaused, TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::topics;
use containerd_shim::protos::types::task::ProcessInfo;
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};

use crate::error::{Error, Result};
use crate::events::{timestamp, Events};
use crate::mount;
use crate::process::{Process, Status};
use crate::reaper;
use crate::runtime::{read_pid, Runtime};
use crate::stdio::{self, ConsoleSocket, Held, Paths};

const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
/// How long a runtime may take to send a terminal's pty master.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Container {
    pub id: String,
    bundle: PathBuf,
    rootfs_mounted: bool,
    runtime: Runtime,
    pub init: Arc<Process>,
    execs: Mutex<HashMap<String, Arc<Process>>>,
}

impl Container {
    fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    fn execs(&self) -> MutexGuard<'_, HashMap<String, Arc<Process>>> {
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs()
            .get(exec_id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} in task {}", self.id)))
    }
}

pub struct TaskService {
    namespace: String,
    events: Events,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    exit: Arc<ExitSignal>,
}

impl TaskService {
    pub fn new(namespace: &str, events: Events, exit: Arc<ExitSignal>) -> TaskService {
        TaskService { namespace: namespace.to_string(), events, containers: Mutex::default(), exit }
    }

    fn containers(&self) -> MutexGuard<'_, HashMap<String, Arc<Container>>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn container(&self, id: &str) -> Result<Arc<Container>> {
        self.containers().get(id).cloned().ok_or_else(|| Error::NotFound(format!("task {id}")))
    }

    // ---- the operations, in berth's own Result -------------------------------

    fn create(&self, req: api::CreateTaskRequest) -> Result<api::CreateTaskResponse> {
        if req.id.is_empty() || req.bundle.is_empty() {
            return Err(Error::InvalidArgument("create needs a task id and a bundle".into()));
        }
        if self.containers().contains_key(&req.id) {
            return Err(Error::AlreadyExists(format!("task {}", req.id)));
        }
        if !req.checkpoint.is_empty() {
            return Err(Error::Unimplemented("restore from a checkpoint"));
        }
        let bundle = PathBuf::from(&req.bundle);
        if !bundle.join("config.json").is_file() {
            return Err(Error::NotFound(format!("bundle {} (no config.json)", bundle.display())));
        }
        let opts = runc_options(&req)?;
        let runtime = Runtime::new(&opts.binary_name, &opts.root, &self.namespace, &bundle);
        runtime.save(&bundle)?;

        let rootfs = bundle.join("rootfs");
        let mounted = !req.rootfs.is_empty();
        if mounted {
            std::fs::create_dir_all(&rootfs).map_err(crate::error::io("create rootfs dir"))?;
            mount::mount_all(&req.rootfs, &rootfs)?;
        }
        let paths = Paths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let init = Arc::new(Process::new(&req.id, "", paths.clone(), Vec::new(), self.events.clone()));
        let pid_file = bundle.join("init.pid");
        let since = reaper::mark();
        let started = start_process(&paths, |console, io| runtime.create(&req.id, &bundle, &pid_file, console, io))
            .and_then(|held| Ok((held, read_pid(&pid_file)?)));
        let (held, pid) = match started {
            Ok(v) => v,
            Err(e) => {
                let _ = runtime.delete(&req.id, true);
                if mounted {
                    mount::unmount_all(&rootfs);
                }
                return Err(e);
            }
        };
        {
            let mut st = init.lock();
            st.pid = pid as u32;
            st.io = held;
        }
        let watcher = init.clone();
        reaper::watch(pid, since, move |code| watcher.exited(code));
        crate::oom::watch(&req.id, pid as u32, self.events.clone());

        let container = Arc::new(Container {
            id: req.id.clone(),
            bundle: bundle.clone(),
            rootfs_mounted: mounted,
            runtime,
            init,
            execs: Mutex::default(),
        });
        self.containers().insert(req.id.clone(), container);
        self.events.publish(
            topics::TASK_CREATE_EVENT_TOPIC,
            TaskCreate {
                container_id: req.id.clone(),
                bundle: req.bundle.clone(),
                rootfs: req.rootfs.clone(),
                io: MessageField::some(TaskIO {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Default::default()
                }),
                checkpoint: req.checkpoint.clone(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        Ok(api::CreateTaskResponse { pid: pid as u32, ..Default::default() })
    }

    fn start(&self, req: api::StartRequest) -> Result<api::StartResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        {
            let mut st = p.lock();
            if st.status != Status::Created {
                return Err(Error::FailedPrecondition(format!(
                    "process {} of task {} is {:?}, not created",
                    p.exec_id, c.id, st.status
                )));
            }
            st.status = Status::Starting;
        }
        if req.exec_id.is_empty() {
            self.start_init(&c, &p)
        } else {
            if c.init.lock().status != Status::Running {
                p.never_ran(255);
                return Err(Error::FailedPrecondition(format!("task {} is not running", c.id)));
            }
            self.start_exec(&c, &p)
        }
    }

    fn start_init(&self, c: &Container, p: &Arc<Process>) -> Result<api::StartResponse> {
        let result = c.runtime.start(&c.id);
        let st = p.lock();
        let pid = st.pid;
        if result.is_ok() {
            self.events.publish(
                topics::TASK_START_EVENT_TOPIC,
                TaskStart { container_id: c.id.clone(), pid, ..Default::default() },
            );
        }
        p.started(st, result.is_ok());
        result.map(|()| api::StartResponse { pid, ..Default::default() })
    }

    fn start_exec(&self, c: &Container, p: &Arc<Process>) -> Result<api::StartResponse> {
        let spec = c.bundle.join(format!(".exec-{}.json", p.exec_id));
        let pid_file = c.bundle.join(format!(".exec-{}.pid", p.exec_id));
        let since = reaper::mark();
        let result = std::fs::write(&spec, &p.spec)
            .map_err(crate::error::io("write exec process spec"))
            .and_then(|()| start_process(&p.stdio, |console, io| c.runtime.exec(&c.id, &spec, &pid_file, console, io)))
            .and_then(|held| Ok((held, read_pid(&pid_file)?)));
        let _ = std::fs::remove_file(&spec);
        let _ = std::fs::remove_file(&pid_file);
        let (held, pid) = match result {
            Ok(v) => v,
            Err(e) => {
                p.never_ran(255);
                return Err(e);
            }
        };
        let mut st = p.lock();
        st.pid = pid as u32;
        st.io = held;
        self.events.publish(
            topics::TASK_EXEC_STARTED_EVENT_TOPIC,
            TaskExecStarted {
                container_id: c.id.clone(),
                exec_id: p.exec_id.clone(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        p.started(st, true);
        let watcher = p.clone();
        reaper::watch(pid, since, move |code| watcher.exited(code));
        Ok(api::StartResponse { pid: pid as u32, ..Default::default() })
    }

    fn delete(&self, req: api::DeleteRequest) -> Result<api::DeleteResponse> {
        let c = self.container(&req.id)?;
        if !req.exec_id.is_empty() {
            let p = c.process(&req.exec_id)?;
            let st = p.lock();
            if matches!(st.status, Status::Running | Status::Paused | Status::Starting) {
                return Err(Error::FailedPrecondition(format!("exec {} is still running", p.exec_id)));
            }
            let resp = delete_response(st.pid, st.exit_status, st.exited_at);
            drop(st);
            c.execs().remove(&req.exec_id);
            return Ok(resp);
        }

        let status = c.init.lock().status;
        match status {
            Status::Running | Status::Paused | Status::Starting => {
                return Err(Error::FailedPrecondition(format!("task {} is still running", c.id)));
            }
            Status::Created => {
                // Never started: the runtime kills the waiting init.
                c.runtime.delete(&c.id, true)?;
                if !c.init.wait_timeout(Duration::from_secs(10)) {
                    c.init.never_ran(137);
                }
            }
            Status::Stopped => c.runtime.delete(&c.id, true)?,
        }
        if c.rootfs_mounted {
            mount::unmount_all(&c.rootfs());
        }
        self.containers().remove(&c.id);
        let (pid, exit_status, exited_at) = {
            let mut st = c.init.lock();
            st.io = Held::default();
            (st.pid, st.exit_status, st.exited_at)
        };
        self.events.publish(
            topics::TASK_DELETE_EVENT_TOPIC,
            TaskDelete {
                container_id: c.id.clone(),
                pid,
                exit_status,
                exited_at: exited_at.map(timestamp).into(),
                id: c.id.clone(),
                ..Default::default()
            },
        );
        Ok(delete_response(pid, exit_status, exited_at))
    }

    fn exec(&self, req: api::ExecProcessRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        if req.exec_id.is_empty() {
            return Err(Error::InvalidArgument("exec needs an exec id".into()));
        }
        let Some(spec) = req.spec.as_ref() else {
            return Err(Error::InvalidArgument("exec needs a process spec".into()));
        };
        if c.init.lock().status == Status::Stopped {
            return Err(Error::FailedPrecondition(format!("task {} has exited", c.id)));
        }
        let paths = Paths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        {
            let mut execs = c.execs();
            if execs.contains_key(&req.exec_id) {
                return Err(Error::AlreadyExists(format!("exec {} in task {}", req.exec_id, c.id)));
            }
            let p = Process::new(&c.id, &req.exec_id, paths, spec.value.clone(), self.events.clone());
            execs.insert(req.exec_id.clone(), Arc::new(p));
        }
        self.events.publish(
            topics::TASK_EXEC_ADDED_EVENT_TOPIC,
            TaskExecAdded { container_id: c.id.clone(), exec_id: req.exec_id.clone(), ..Default::default() },
        );
        Ok(())
    }

    fn state(&self, req: api::StateRequest) -> Result<api::StateResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let st = p.lock();
        Ok(api::StateResponse {
            id: if req.exec_id.is_empty() { c.id.clone() } else { p.exec_id.clone() },
            bundle: c.bundle.display().to_string(),
            pid: st.pid,
            status: st.status.api().into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: st.exit_status,
            exited_at: st.exited_at.map(timestamp).into(),
            exec_id: p.exec_id.clone(),
            ..Default::default()
        })
    }

    fn kill(&self, req: api::KillRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let (status, pid) = {
            let st = p.lock();
            (st.status, st.pid)
        };
        let finished = || Error::NotFound(format!("process {}: already finished", pid));
        if req.exec_id.is_empty() {
            if status == Status::Stopped && !req.all {
                return Err(finished());
            }
            return c.runtime.kill(&c.id, req.signal, req.all).map_err(|e| {
                if p.lock().status == Status::Stopped {
                    finished()
                } else {
                    e
                }
            });
        }
        if status != Status::Running && status != Status::Paused {
            return Err(if status == Status::Stopped {
                finished()
            } else {
                Error::FailedPrecondition(format!("exec {} is not running", p.exec_id))
            });
        }
        let sig = nix::sys::signal::Signal::try_from(req.signal as i32)
            .map_err(|_| Error::InvalidArgument(format!("signal {}", req.signal)))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).map_err(|e| {
            if e == nix::Error::ESRCH {
                finished()
            } else {
                Error::Io { context: format!("kill {pid}"), source: e.into() }
            }
        })
    }

    fn pids(&self, req: api::PidsRequest) -> Result<api::PidsResponse> {
        let c = self.container(&req.id)?;
        let pids = c.runtime.ps(&c.id)?;
        let processes = pids
            .into_iter()
            .map(|pid| ProcessInfo { pid, ..Default::default() })
            .collect();
        Ok(api::PidsResponse { processes, ..Default::default() })
    }

    fn pause(&self, req: api::PauseRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        c.runtime.pause(&c.id)?;
        let mut st = c.init.lock();
        if st.status == Status::Running {
            st.status = Status::Paused;
        }
        self.events.publish(topics::TASK_PAUSED_EVENT_TOPIC, TaskPaused { container_id: c.id.clone(), ..Default::default() });
        Ok(())
    }

    fn resume(&self, req: api::ResumeRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        c.runtime.resume(&c.id)?;
        let mut st = c.init.lock();
        if st.status == Status::Paused {
            st.status = Status::Running;
        }
        self.events.publish(topics::TASK_RESUMED_EVENT_TOPIC, TaskResumed { container_id: c.id.clone(), ..Default::default() });
        Ok(())
    }

    fn close_io(&self, req: api::CloseIORequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if req.stdin {
            p.lock().io.close_stdin();
        }
        Ok(())
    }

    fn resize_pty(&self, req: api::ResizePtyRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let st = p.lock();
        st.io.resize(req.width, req.height)
    }

    fn update(&self, req: api::UpdateTaskRequest) -> Result<()> {
        let c = self.container(&req.id)?;
        let Some(res) = req.resources.as_ref() else {
            return Err(Error::InvalidArgument("update needs resources".into()));
        };
        c.runtime.update(&c.id, &res.value)
    }

    fn wait(&self, req: api::WaitRequest) -> Result<api::WaitResponse> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        let (exit_status, at) = p.wait();
        Ok(api::WaitResponse { exit_status, exited_at: Some(timestamp(at)).into(), ..Default::default() })
    }

    fn stats(&self, req: api::StatsRequest) -> Result<api::StatsResponse> {
        let c = self.container(&req.id)?;
        let (status, pid) = {
            let st = c.init.lock();
            (st.status, st.pid)
        };
        if status == Status::Stopped {
            return Err(Error::FailedPrecondition(format!("task {} has exited", c.id)));
        }
        let stats = crate::stats::metrics(pid)?;
        Ok(api::StatsResponse { stats: MessageField::some(stats), ..Default::default() })
    }

    fn connect(&self, req: api::ConnectRequest) -> Result<api::ConnectResponse> {
        let task_pid = match self.container(&req.id) {
            Ok(c) => c.init.lock().pid,
            Err(_) => 0,
        };
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, req: api::ShutdownRequest) -> Result<()> {
        if !req.now && !self.containers().is_empty() {
            return Ok(());
        }
        // The last events (the delete) go out before the shim does.
        self.events.flush(Duration::from_secs(5));
        self.exit.signal();
        Ok(())
    }
}

/// The runc options containerd attached to the create (BinaryName, Root).
fn runc_options(req: &api::CreateTaskRequest) -> Result<Options> {
    match req.options.as_ref() {
        Some(any) if any.type_url.ends_with(RUNC_OPTIONS) => Options::parse_from_bytes(&any.value)
            .map_err(|e| Error::InvalidArgument(format!("runtime options: {e}"))),
        _ => Ok(Options::default()),
    }
}

/// Runs `launch` (a runtime create or exec) with the process's stdio: the
/// fifos directly, or a console socket whose pty master is then attached.
fn start_process<F>(paths: &Paths, launch: F) -> Result<Held>
where
    F: FnOnce(Option<&Path>, crate::runtime::ChildIo) -> Result<()>,
{
    if paths.terminal {
        let socket = ConsoleSocket::new()?;
        launch(Some(socket.path()), crate::runtime::ChildIo::default())?;
        let master = socket.receive(CONSOLE_TIMEOUT)?;
        Held::attach_console(paths, master)
    } else {
        let (child, held) = stdio::open_direct(paths)?;
        launch(None, child)?;
        Ok(held)
    }
}

fn delete_response(pid: u32, exit_status: u32, exited_at: Option<std::time::SystemTime>) -> api::DeleteResponse {
    api::DeleteResponse { pid, exit_status, exited_at: exited_at.map(timestamp).into(), ..Default::default() }
}

// ---- the ttrpc trait: each method calls its operation and maps the error ----

macro_rules! handlers {
    ($($method:ident($req:ty) -> $resp:ty $(=> $wrap:expr)?;)*) => {
        impl containerd_shim::Task for TaskService {
            $(
                fn $method(&self, _ctx: &TtrpcContext, req: $req) -> TtrpcResult<$resp> {
                    log::debug!("{} {:?}", stringify!($method), req);
                    let r = TaskService::$method(self, req)$(.map($wrap))?;
                    if let Err(e) = &r {
                        log::info!("{}: {e}", stringify!($method));
                    }
                    crate::shim::trim_heap();
                    r.map_err(Into::into)
                }
            )*

            fn checkpoint(&self, _ctx: &TtrpcContext, _req: api::CheckpointTaskRequest) -> TtrpcResult<api::Empty> {
                Err(Error::Unimplemented("checkpoint").into())
            }
        }
    };
}

fn empty(_: ()) -> api::Empty {
    api::Empty::default()
}

handlers! {
    create(api::CreateTaskRequest) -> api::CreateTaskResponse;
    start(api::StartRequest) -> api::StartResponse;
    delete(api::DeleteRequest) -> api::DeleteResponse;
    exec(api::ExecProcessRequest) -> api::Empty => empty;
    state(api::StateRequest) -> api::StateResponse;
    kill(api::KillRequest) -> api::Empty => empty;
    pids(api::PidsRequest) -> api::PidsResponse;
    pause(api::PauseRequest) -> api::Empty => empty;
    resume(api::ResumeRequest) -> api::Empty => empty;
    close_io(api::CloseIORequest) -> api::Empty => empty;
    resize_pty(api::ResizePtyRequest) -> api::Empty => empty;
    update(api::UpdateTaskRequest) -> api::Empty => empty;
    wait(api::WaitRequest) -> api::WaitResponse;
    stats(api::StatsRequest) -> api::StatsResponse;
    connect(api::ConnectRequest) -> api::ConnectResponse;
    shutdown(api::ShutdownRequest) -> api::Empty => empty;
}
