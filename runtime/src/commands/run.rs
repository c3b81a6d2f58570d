use anyhow::{Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::cli::{Global, Run};

pub fn run(g: &Global, a: Run) -> Result<i32> {
    // Foreground: the container's exit is our exit, so we must be the one to reap it.
    if !a.detach {
        nix::sys::prctl::set_child_subreaper(true).context("becoming child subreaper")?;
    }
    let mut c = super::create::build(g, &a.opts, &a.id, a.detach)?;
    // Block signals before the process can run, so its SIGCHLD waits for us in sigwait.
    let all = SigSet::all();
    if !a.detach {
        all.thread_block()?;
    }
    if let Err(e) = c.start() {
        let _ = c.delete(true);
        let _ = std::fs::remove_dir_all(crate::bundle::derived_dir(&g.root, &a.id));
        return Err(e.into());
    }
    if a.detach {
        return Ok(0);
    }
    let pid = c.pid().context("container has no pid after start")?;
    let code = forward_and_wait(pid, &all);
    if !a.keep {
        if let Ok(mut c) = super::load(&g.root, &a.id) {
            c.delete(true)?;
        }
        let _ = std::fs::remove_dir_all(crate::bundle::derived_dir(&g.root, &a.id));
    }
    code
}

/// Relays signals to the container and returns its exit code as a shell reports it.
fn forward_and_wait(init: Pid, all: &SigSet) -> Result<i32> {
    let mut sig = Signal::SIGCHLD; // the process may already have exited
    loop {
        match sig {
            Signal::SIGCHLD => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == init => return Ok(code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => {
                        return Ok(128 + sig as i32)
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => {}
                }
            },
            Signal::SIGWINCH | Signal::SIGURG => {}
            other => {
                let _ = kill(init, other);
            }
        }
        sig = wait_signal(all);
    }
}

/// sigwait with a timeout: should a SIGCHLD ever be missed, the reap loop still runs.
fn wait_signal(set: &SigSet) -> Signal {
    let timeout = libc::timespec { tv_sec: 0, tv_nsec: 200_000_000 };
    // SAFETY: valid set and timespec pointers for the call; a null siginfo is allowed.
    let n = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
    Signal::try_from(n).unwrap_or(Signal::SIGCHLD)
}
