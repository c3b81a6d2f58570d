//! A container's processes (its init and its execs) and their lifecycle:
//! created -> (starting) -> running <-> paused -> stopped, with the exit
//! status, waiters and the order of the events they cause.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use containerd_shim::protos::events::task::TaskExit;
use containerd_shim::protos::topics::TASK_EXIT_EVENT_TOPIC;
use containerd_shim::protos::types::task::Status as ApiStatus;

use crate::events::{timestamp, Events};
use crate::stdio::{Held, Paths};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    /// The runtime's start/exec is under way; an exit now waits for the
    /// start event to be published first.
    Starting,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn api(self) -> ApiStatus {
        match self {
            Status::Created | Status::Starting => ApiStatus::CREATED,
            Status::Running => ApiStatus::RUNNING,
            Status::Paused => ApiStatus::PAUSED,
            Status::Stopped => ApiStatus::STOPPED,
        }
    }
}

pub struct State {
    pub status: Status,
    pub pid: u32,
    pub exit_status: u32,
    pub exited_at: Option<SystemTime>,
    /// An exit that arrived while Starting.
    pending_exit: Option<i32>,
    pub io: Held,
}

pub struct Process {
    pub container_id: String,
    /// Empty for the init process.
    pub exec_id: String,
    pub stdio: Paths,
    /// An exec's OCI process spec (JSON), written out at start.
    pub spec: Vec<u8>,
    state: Mutex<State>,
    exited: Condvar,
    events: Events,
}

impl Process {
    pub fn new(container_id: &str, exec_id: &str, stdio: Paths, spec: Vec<u8>, events: Events) -> Process {
        Process {
            container_id: container_id.to_string(),
            exec_id: exec_id.to_string(),
            stdio,
            spec,
            state: Mutex::new(State {
                status: Status::Created,
                pid: 0,
                exit_status: 0,
                exited_at: None,
                pending_exit: None,
                io: Held::default(),
            }),
            exited: Condvar::new(),
            events,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id containerd knows the process by in events: the exec id, or the
    /// container id for init.
    fn event_id(&self) -> &str {
        if self.exec_id.is_empty() {
            &self.container_id
        } else {
            &self.exec_id
        }
    }

    /// The reaper's callback: the process exited with `code`.
    pub fn exited(&self, code: i32) {
        let mut st = self.lock();
        if st.status == Status::Starting {
            st.pending_exit = Some(code);
            return;
        }
        self.finish(st, code);
    }

    /// Ends a Starting phase: `started` tells whether the runtime succeeded
    /// (the caller has published the start event while holding `st`).
    pub fn started(&self, mut st: MutexGuard<'_, State>, started: bool) {
        st.status = if started { Status::Running } else { Status::Created };
        if let Some(code) = st.pending_exit.take() {
            self.finish(st, code);
        }
    }

    fn finish(&self, mut st: MutexGuard<'_, State>, code: i32) {
        if st.status == Status::Stopped {
            return;
        }
        // A terminal's last output reaches the client before the exit does.
        st.io.drain(Duration::from_secs(2));
        let now = SystemTime::now();
        st.status = Status::Stopped;
        st.exit_status = code as u32;
        st.exited_at = Some(now);
        st.io.close_stdin();
        self.events.publish(
            TASK_EXIT_EVENT_TOPIC,
            TaskExit {
                container_id: self.container_id.clone(),
                id: self.event_id().to_string(),
                pid: st.pid,
                exit_status: code as u32,
                exited_at: Some(timestamp(now)).into(),
                ..Default::default()
            },
        );
        self.exited.notify_all();
    }

    /// Marks a process that never ran (its start failed) as stopped, silently.
    pub fn never_ran(&self, code: u32) {
        let mut st = self.lock();
        st.status = Status::Stopped;
        st.exit_status = code;
        st.exited_at = Some(SystemTime::now());
        self.exited.notify_all();
    }

    /// Blocks until the process has exited; its status and time.
    pub fn wait(&self) -> (u32, SystemTime) {
        let mut st = self.lock();
        while st.status != Status::Stopped {
            st = self.exited.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        (st.exit_status, st.exited_at.unwrap_or(SystemTime::UNIX_EPOCH))
    }

    /// Like [`wait`](Self::wait) but gives up after `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let st = self.lock();
        let (st, _) = self
            .exited
            .wait_timeout_while(st, timeout, |s| s.status != Status::Stopped)
            .unwrap_or_else(|p| p.into_inner());
        st.status == Status::Stopped
    }
}
