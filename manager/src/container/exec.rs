//! `exec`: extra processes in a running container, each with its own stdio through the shim.

use super::io::{self, Fifos, Stream};
use super::ContainerService;
use crate::errors::{Error, Result};
use bollard_stubs::models::{ExecConfig, ExecInspectResponse};
use std::sync::{Arc, Mutex};

pub struct ExecInstance {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
    pub output: io::Output,
}

#[derive(Default, Clone)]
pub struct ExecState {
    pub running: bool,
    pub started: bool,
    pub pid: u32,
    pub exit_code: Option<i64>,
    pub stdin: Option<std::path::PathBuf>,
}

/// What the API layer needs to stream an exec.
pub struct ExecStart {
    pub tty: bool,
    pub output: tokio::sync::broadcast::Receiver<(Stream, bytes::Bytes)>,
    pub stdin: Option<std::path::PathBuf>,
    pub streams: usize,
}

impl ContainerService {
    pub fn exec_create(&self, name: &str, config: ExecConfig) -> Result<String> {
        let r = self.find(name)?;
        if !r.state.status.is_live() {
            return Err(Error::conflict(format!("container {} is not running", r.id)));
        }
        if r.state.status == super::record::Status::Paused {
            return Err(Error::conflict(format!("container {} is paused, unpause the container before exec", r.id)));
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::invalid("No exec command specified"));
        }
        let id = crate::content::random_hex(32);
        let inst = ExecInstance { id: id.clone(), container: r.id.clone(), config, state: Mutex::new(ExecState::default()), output: tokio::sync::broadcast::channel(1024).0 };
        self.execs.lock().unwrap().insert(id.clone(), Arc::new(inst));
        Ok(id)
    }

    fn exec_get(&self, id: &str) -> Result<Arc<ExecInstance>> {
        self.execs.lock().unwrap().get(id).cloned().ok_or_else(|| Error::not_found(format!("No such exec instance: {id}")))
    }

    /// Start an exec; the receiver gets its output (subscribe before the process runs).
    pub async fn exec_start(self: &Arc<Self>, id: &str, tty: Option<bool>, console_size: Option<Vec<usize>>) -> Result<ExecStart> {
        let inst = self.exec_get(id)?;
        {
            let mut st = inst.state.lock().unwrap();
            if st.started {
                return Err(Error::conflict(format!("Error: Exec command {id} has already run")));
            }
            st.started = true;
        }
        let r = self.get(&inst.container)?;
        let live = self.live(&r.id).filter(|_| r.state.status.is_live()).ok_or_else(|| Error::conflict(format!("container {} is not running", r.id)))?;
        let tty = tty.or(inst.config.tty).unwrap_or(false);
        let run = self.run_dir(&r.id);
        let fifos = Fifos::create(&run, &format!("exec-{}", &id[..12]), !tty)?;
        let base: oci_spec::runtime::Spec = serde_json::from_slice(&std::fs::read(run.join("config.json"))?).map_err(|e| Error::internal(format!("container spec: {e}")))?;
        let mut process = base.process().clone().ok_or_else(|| Error::internal("container spec has no process"))?;
        process.set_args(inst.config.cmd.clone());
        process.set_terminal(Some(tty));
        let mut env = process.env().clone().unwrap_or_default();
        for e in inst.config.env.clone().unwrap_or_default() {
            let key = e.split('=').next().unwrap_or("").to_string();
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        process.set_env(Some(env));
        if let Some(w) = inst.config.working_dir.clone().filter(|w| !w.is_empty()) {
            process.set_cwd(w.into());
        }
        if let Some(u) = inst.config.user.clone().filter(|u| !u.is_empty()) {
            let user = super::spec::resolve_user(&run.join("rootfs"), &u, &[])?;
            process.set_user(oci_spec::runtime::UserBuilder::default().uid(user.uid).gid(user.gid).additional_gids(user.groups).build().expect("user"));
        }
        if inst.config.privileged.unwrap_or(false) {
            process.set_capabilities(Some(super::defaults::capabilities_for(&super::defaults::all_capabilities())));
        }
        let size = console_size.or(inst.config.console_size.clone()).filter(|s| s.len() == 2 && s[0] > 0 && s[1] > 0);
        process.set_console_size(size.map(|s| oci_spec::runtime::BoxBuilder::default().height(s[0] as u64).width(s[1] as u64).build().expect("box")));
        let json = serde_json::to_vec(&process).map_err(|e| Error::internal(e.to_string()))?;
        let attach_stdin = inst.config.attach_stdin.unwrap_or(false);
        let output = inst.output.subscribe();
        let mut streams = vec![(fifos.stdout.clone(), Stream::Stdout)];
        if !tty {
            streams.push((fifos.stderr.clone(), Stream::Stderr));
        }
        let nstreams = streams.len();
        let (exited, done) = tokio::sync::watch::channel(false);
        for (path, stream) in streams {
            let (out, done) = (inst.output.clone(), done.clone());
            tokio::spawn(async move {
                io::pump(path, stream, None, out.clone(), done).await;
                let _ = out.send((Stream::Stdin, bytes::Bytes::new()));
            });
        }
        let shim = live.shim.clone();
        let exec_id = id.to_string();
        let stdin = if attach_stdin { fifos.stdin.display().to_string() } else { String::new() };
        let (out_p, err_p) = (fifos.stdout.display().to_string(), if tty { String::new() } else { fifos.stderr.display().to_string() });
        let sh = shim.clone();
        let eid = exec_id.clone();
        let pid = tokio::task::spawn_blocking(move || {
            sh.exec(&eid, json, tty, &stdin, &out_p, &err_p)?;
            sh.start(&eid)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
        let pid = match pid {
            Ok(p) => p,
            Err(e) => {
                let _ = exited.send(true);
                fifos.remove();
                inst.state.lock().unwrap().exit_code = Some(126);
                return Err(e);
            }
        };
        {
            let mut st = inst.state.lock().unwrap();
            st.running = true;
            st.pid = pid;
            st.stdin = attach_stdin.then(|| fifos.stdin.clone());
        }
        let stdin_path = attach_stdin.then(|| fifos.stdin.clone());
        let inst2 = inst.clone();
        std::thread::Builder::new()
            .name("exec-wait".into())
            .spawn(move || {
                let code = shim.wait(&exec_id).map(|w| w.0 as i64).unwrap_or(255);
                // The exit code is recorded before the output ends: a client inspects the
                // exec as soon as its stream closes (docker exec's exit status).
                {
                    let mut st = inst2.state.lock().unwrap();
                    st.running = false;
                    st.exit_code = Some(code);
                }
                let _ = exited.send(true);
                let _ = shim.delete(&exec_id);
                fifos.remove();
            })
            .map_err(|e| Error::internal(e.to_string()))?;
        let mut attrs = std::collections::HashMap::new();
        attrs.insert("execID".to_string(), id.to_string());
        self.events.publish("container", "exec_start", &r.id, attrs);
        Ok(ExecStart { tty, output, stdin: stdin_path, streams: nstreams })
    }

    pub fn exec_inspect(&self, id: &str) -> Result<ExecInspectResponse> {
        let inst = self.exec_get(id)?;
        let st = inst.state.lock().unwrap().clone();
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            id: Some(inst.id.clone()),
            running: Some(st.running),
            exit_code: st.exit_code,
            open_stdin: Some(inst.config.attach_stdin.unwrap_or(false)),
            open_stdout: Some(inst.config.attach_stdout.unwrap_or(true)),
            open_stderr: Some(inst.config.attach_stderr.unwrap_or(true)),
            container_id: Some(inst.container.clone()),
            pid: Some(st.pid as i64),
            ..Default::default()
        })
    }

    pub async fn exec_resize(&self, id: &str, w: u32, h: u32) -> Result<()> {
        let inst = self.exec_get(id)?;
        let live = self.live(&inst.container).ok_or_else(|| Error::conflict("container is not running"))?;
        let shim = live.shim.clone();
        let eid = id.to_string();
        tokio::task::spawn_blocking(move || shim.resize(&eid, w, h)).await.map_err(|e| Error::internal(e.to_string()))?
    }

    pub async fn exec_close_stdin(&self, id: &str) {
        if let Ok(inst) = self.exec_get(id) {
            if let Some(live) = self.live(&inst.container) {
                let shim = live.shim.clone();
                let eid = id.to_string();
                let _ = tokio::task::spawn_blocking(move || shim.close_stdin(&eid)).await;
            }
        }
    }

    pub async fn resize(&self, name: &str, w: u32, h: u32) -> Result<()> {
        let r = self.find(name)?;
        let live = self.live(&r.id).ok_or_else(|| Error::conflict(format!("Container {} is not running", r.id)))?;
        let shim = live.shim.clone();
        tokio::task::spawn_blocking(move || shim.resize("", w, h)).await.map_err(|e| Error::internal(e.to_string()))?
    }

    /// For attach: the container's TTY flag, its output, and its stdin fifo once it runs.
    pub fn attach_handles(&self, name: &str) -> Result<(super::record::ContainerRecord, tokio::sync::broadcast::Receiver<(Stream, bytes::Bytes)>)> {
        let r = self.find(name)?;
        Ok((r.clone(), self.output(&r.id).subscribe()))
    }

    /// The stdin fifo of a running container, waiting (up to a minute) for it to start.
    pub async fn stdin_when_running(&self, id: &str) -> Option<std::path::PathBuf> {
        let mut rx = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(l) = self.live(id) {
                return l.stdin.clone();
            }
            let r = self.get(id).ok()?;
            if matches!(r.state.status, super::record::Status::Exited | super::record::Status::Dead) && r.state.started_at.is_some() && r.state.finished_at.is_some() {
                // started and already gone
                if r.state.finished_at >= r.state.started_at {
                    return None;
                }
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    pub async fn close_stdin(&self, id: &str) {
        if let Some(live) = self.live(id) {
            let shim = live.shim.clone();
            let _ = tokio::task::spawn_blocking(move || shim.close_stdin("")).await;
        }
    }
}
