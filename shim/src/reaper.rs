//! Reaping as child subreaper.
//!
//! The shim is the subreaper of everything the runtime starts: the runtime
//! binary itself (a direct child) and, once the runtime exits, the container's
//! init and exec processes. One thread waits for SIGCHLD and reaps every child
//! with `waitpid(-1)`; an exit is handed to whoever [`watch`]es that pid, or
//! kept as unclaimed (a process can exit before the runtime's pid file has
//! been read). Because that thread reaps everything, no other code may wait
//! for a child: every command goes through [`output`].
//!
//! Exit codes follow the shell: a process killed by signal N exits 128+N.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, LazyLock, Mutex};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

type Callback = Box<dyn FnOnce(i32) + Send>;

/// Unclaimed exits kept at most; older ones belong to nobody we will ask for.
const UNCLAIMED_MAX: usize = 256;

struct State {
    watchers: HashMap<i32, Callback>,
    /// (sequence number, pid, exit code), oldest first.
    unclaimed: VecDeque<(u64, i32, i32)>,
    seq: u64,
}

static STATE: LazyLock<Mutex<State>> =
    LazyLock::new(|| Mutex::new(State { watchers: HashMap::new(), unclaimed: VecDeque::new(), seq: 0 }));
static RUNNING: AtomicBool = AtomicBool::new(false);

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the reaper thread. Call once, before any child is started.
pub fn start() -> std::io::Result<()> {
    // The shim's other signals are taken here too, to spare a thread: SIGTERM
    // and SIGINT must not end a shim that holds a running container (only
    // Shutdown does), and SIGPIPE is an error on the write, not a death. Caught
    // rather than ignored, so that children start with default dispositions.
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGPIPE])?;
    RUNNING.store(true, Ordering::SeqCst);
    std::thread::Builder::new().name("reaper".into()).spawn(move || {
        for sig in signals.forever() {
            if sig == libc::SIGCHLD {
                reap_all();
            } else {
                log::debug!("received signal {sig}");
            }
        }
    })?;
    // Children that exited before the handler was installed.
    reap_all();
    Ok(())
}

fn reap_all() {
    loop {
        let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid.as_raw(), code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid.as_raw(), 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                log::warn!("waitpid: {e}");
                return;
            }
        };
        let callback = {
            let mut st = state();
            st.seq += 1;
            match st.watchers.remove(&pid) {
                Some(cb) => Some(cb),
                None => {
                    let seq = st.seq;
                    st.unclaimed.push_back((seq, pid, code));
                    if st.unclaimed.len() > UNCLAIMED_MAX {
                        st.unclaimed.pop_front();
                    }
                    None
                }
            }
        };
        // Called without the lock: a callback may take other locks.
        if let Some(cb) = callback {
            cb(code);
        }
    }
}

/// A point in the reaper's history; exits reaped after it can still be
/// claimed by [`watch`]. Take it before starting the command that makes a pid.
pub fn mark() -> u64 {
    state().seq
}

/// Calls `f(exit_code)` when `pid` exits, or at once if it exited after `since`.
pub fn watch(pid: i32, since: u64, f: impl FnOnce(i32) + Send + 'static) {
    let mut st = state();
    if let Some(i) = st.unclaimed.iter().position(|&(seq, p, _)| p == pid && seq > since) {
        let (_, _, code) = st.unclaimed.remove(i).expect("index from position");
        drop(st);
        f(code);
        return;
    }
    st.watchers.insert(pid, Box::new(f));
}

/// What a finished command left behind.
pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `cmd` to completion (its stdout and stderr captured unless the caller
/// set them), feeding `stdin` if given. Works with and without the reaper thread.
pub fn output(cmd: &mut Command, stdin: Option<&[u8]>) -> std::io::Result<Output> {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    if !RUNNING.load(Ordering::SeqCst) {
        let mut child = cmd.spawn()?;
        feed(&mut child, stdin);
        let out = child.wait_with_output()?;
        let code = out.status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
        });
        return Ok(Output { code, stdout: out.stdout, stderr: out.stderr });
    }
    let (tx, rx) = mpsc::channel();
    let mut child = {
        // Holding the lock across spawn and registration: the reaper cannot
        // hand this pid's exit to nobody in between.
        let mut st = state();
        let child = cmd.spawn()?;
        st.watchers.insert(child.id() as i32, Box::new(move |code| {
            let _ = tx.send(code);
        }));
        child
    };
    feed(&mut child, stdin);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let err_pipe = child.stderr.take();
    let err_reader = err_pipe.map(|mut e| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = e.read_to_end(&mut v);
            v
        })
    });
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut stdout);
    }
    if let Some(t) = err_reader {
        stderr = t.join().unwrap_or_default();
    }
    let code = rx.recv().map_err(|_| std::io::Error::other("reaper thread went away"))?;
    Ok(Output { code, stdout, stderr })
}

fn feed(child: &mut std::process::Child, stdin: Option<&[u8]>) {
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        let _ = pipe.write_all(data);
    }
}
