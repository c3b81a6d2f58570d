//! Network namespaces berthd makes for containers (`--network none` today, bridges later):
//! made before the runtime starts the container, loopback up, bind-mounted so it outlives
//! any process in it.

use crate::errors::{Error, Result};
use std::path::{Path, PathBuf};

pub fn path(exec_root: &Path, id: &str) -> PathBuf {
    exec_root.join("netns").join(id)
}

/// Create the namespace file for `id` with only `lo`, up.
pub fn create(exec_root: &Path, id: &str) -> Result<PathBuf> {
    let target = path(exec_root, id);
    std::fs::create_dir_all(target.parent().unwrap())?;
    std::fs::File::create(&target).map_err(|e| Error::internal(format!("{}: {e}", target.display())))?;
    let t = target.clone();
    // unshare(CLONE_NEWNET) moves only the calling thread: do it on a thread of its own.
    let res = std::thread::spawn(move || -> Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| Error::internal(format!("unshare(CLONE_NEWNET): {e}")))?;
        nix::mount::mount(Some("/proc/thread-self/ns/net"), &t, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| Error::internal(format!("bind-mounting the network namespace at {}: {e}", t.display())))?;
        loopback_up()
    })
    .join()
    .map_err(|_| Error::internal("network namespace thread panicked"))?;
    if let Err(e) = res {
        remove(exec_root, id);
        return Err(e);
    }
    Ok(target)
}

fn loopback_up() -> Result<()> {
    // SAFETY: a plain datagram socket and the SIOC[GS]IFFLAGS ioctls on a zeroed ifreq naming
    // "lo"; the fd is closed before returning.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(Error::internal(format!("socket: {}", std::io::Error::last_os_error())));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(Error::internal(format!("bringing lo up: {err}")));
        }
    }
    Ok(())
}

pub fn remove(exec_root: &Path, id: &str) {
    let p = path(exec_root, id);
    let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(&p);
}
