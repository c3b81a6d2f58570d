//! OOM notifications from cgroup v1: an eventfd registered for the
//! container's `memory.oom_control` through `cgroup.event_control`. The kernel
//! signals it on every OOM in the cgroup, and once more when the cgroup is
//! removed; each signal while the cgroup still exists becomes a /tasks/oom
//! event.
//!
//! One small thread per container blocks on its eventfd and ends with the
//! cgroup. On cgroup v2 (no `memory.oom_control`) nothing is watched yet.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use containerd_shim::protos::events::task::TaskOOM;
use containerd_shim::protos::topics::TASK_OOM_EVENT_TOPIC;

use crate::events::Events;

/// The watcher only reads an eventfd and a small file.
const STACK: usize = 64 * 1024;

/// Watches the memory cgroup of `pid` (the container's init) for OOMs.
pub fn watch(container_id: &str, pid: u32, events: Events) {
    let Some(dir) = crate::stats::memory_cgroup(pid) else { return };
    match register(&dir) {
        Ok((efd, control)) => {
            let id = container_id.to_string();
            let spawned = std::thread::Builder::new()
                .name("oom".into())
                .stack_size(STACK)
                .spawn(move || wait_loop(&id, &dir, efd, control, &events));
            if let Err(e) = spawned {
                log::warn!("no OOM events for {container_id}: {e}");
            }
        }
        Err(e) => log::debug!("no OOM events for {container_id} ({}): {e}", dir.display()),
    }
}

fn register(dir: &Path) -> std::io::Result<(OwnedFd, File)> {
    let control = File::open(dir.join("memory.oom_control"))?;
    // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: efd was just returned by eventfd and is owned by nobody else.
    let efd = unsafe { OwnedFd::from_raw_fd(efd) };
    let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
    std::fs::write(dir.join("cgroup.event_control"), line)?;
    Ok((efd, control))
}

fn wait_loop(id: &str, dir: &Path, efd: OwnedFd, _control: File, events: &Events) {
    loop {
        let mut buf = [0u8; 8];
        // SAFETY: reads 8 bytes into a local buffer from an eventfd we own.
        let n = unsafe { libc::read(efd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        // The kernel signals at the start of the OOM, before it counts the
        // kill in `oom_kill`: a signal while the cgroup exists is the OOM.
        if !dir.exists() {
            return; // the cgroup was removed: the container is gone
        }
        log::info!("OOM in the memory cgroup of {id}");
        events.publish(TASK_OOM_EVENT_TOPIC, TaskOOM { container_id: id.to_string(), ..Default::default() });
    }
}
