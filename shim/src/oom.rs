//! OOM notifications from cgroup v1: an eventfd registered for the
//! container's `memory.oom_control` through `cgroup.event_control`. The kernel
//! signals it on every OOM in the cgroup, and once more when the cgroup is
//! removed; each signal while the cgroup still exists becomes a /tasks/oom
//! event.
//!
//! One small thread per container blocks on its eventfd and ends with the
//! cgroup.
//!
//! cgroup v2 has no `memory.oom_control`: there the container's
//! `memory.events` is watched with inotify (the kernel notifies a change of
//! it as a modification) and each rise of its `oom_kill` count is an OOM, as
//! containerd's v2 monitor does. The thread ends when the file goes with the
//! cgroup.

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
    let Some(dir) = crate::stats::memory_cgroup(pid) else {
        if let Some(dir) = crate::stats::unified_cgroup(pid).filter(|d| d.join("memory.events").is_file()) {
            let id = container_id.to_string();
            let publish = move || {
                log::info!("OOM in the memory cgroup of {id}");
                events.publish(TASK_OOM_EVENT_TOPIC, TaskOOM { container_id: id.clone(), ..Default::default() });
            };
            if let Err(e) = watch_events_file(dir.join("memory.events"), publish) {
                log::warn!("no OOM events for {container_id}: {e}");
            }
        }
        return;
    };
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

/// The `oom_kill` count of a cgroup v2 `memory.events`.
fn oom_kills(text: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Calls `on_oom` for every rise of `oom_kill` in the v2 `memory.events` at
/// `path`, on a thread of its own that ends when the file is gone.
fn watch_events_file(path: std::path::PathBuf, on_oom: impl Fn() + Send + 'static) -> std::io::Result<std::thread::JoinHandle<()>> {
    // SAFETY: inotify_init1 takes no pointers; a non-negative result is a new fd we own.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by inotify_init1 and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: c is a NUL-terminated path; fd is a valid inotify descriptor.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY | libc::IN_DELETE_SELF) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Counted from now: earlier OOMs were reported (or belong to before us).
    let mut seen = oom_kills(&std::fs::read_to_string(&path)?);
    std::thread::Builder::new().name("oom".into()).stack_size(STACK).spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            // SAFETY: reads at most buf.len() bytes into a local buffer from an fd we own.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { return };
            let now = oom_kills(&text);
            for _ in seen..now {
                on_oom();
            }
            seen = seen.max(now);
            // IN_DELETE_SELF / IN_IGNORED: the cgroup is gone.
            let mut off = 0usize;
            while off + std::mem::size_of::<libc::inotify_event>() <= n as usize {
                // SAFETY: the kernel wrote whole inotify_event records into buf; read_unaligned copes with alignment.
                let ev: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                if ev.mask & (libc::IN_DELETE_SELF | libc::IN_IGNORED) != 0 {
                    return;
                }
                off += std::mem::size_of::<libc::inotify_event>() + ev.len as usize;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn v2_memory_events_rises_are_ooms() {
        let dir = std::env::temp_dir().join(format!("berth-oom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("memory.events");
        let events = |k: u64| format!("low 0\nhigh 0\nmax 3\noom {k}\noom_kill {k}\noom_group_kill 0\n");
        std::fs::write(&f, events(2)).unwrap();
        assert_eq!(oom_kills(&events(7)), 7);
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let t = watch_events_file(f.clone(), move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let wait_for = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while count.load(Ordering::SeqCst) < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            count.load(Ordering::SeqCst)
        };
        // A change that is no OOM reports nothing; the OOMs before the watch neither.
        std::fs::write(&f, events(2).replace("max 3", "max 4")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(count.load(Ordering::SeqCst), 0);
        std::fs::write(&f, events(3)).unwrap();
        assert_eq!(wait_for(1), 1);
        std::fs::write(&f, events(5)).unwrap();
        assert_eq!(wait_for(3), 3, "two more kills, two more events");
        // The cgroup goes: the watcher ends.
        std::fs::remove_dir_all(&dir).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(t.is_finished(), "the watcher outlived its file");
    }
}
