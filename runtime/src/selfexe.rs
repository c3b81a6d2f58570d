//! CVE-2019-5736: a process inside the container must not be able to write to the host's
//! runtime binary through /proc/PID/exe of a runtime process that joined the container.
//!
//! Before entering a container we re-execute ourselves from a file that cannot be written:
//! the binary seen through a detached, read-only overlayfs mount of its own directory (no
//! copy, so it costs one exec), or, where overlayfs is unavailable, a sealed memfd copy.
//! A binary already on a read-only filesystem needs neither.
use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

pub fn ensure_protected(state_root: &Path) -> Result<()> {
    if exe_is_read_only() {
        return Ok(());
    }
    match overlay_reexec(state_root) {
        Err(e) => {
            tracing::debug!("read-only overlay re-exec unavailable ({e:#}); sealing a memfd copy");
            pentacle::ensure_sealed().context("re-executing from a sealed copy of itself")
        }
        Ok(never) => match never {},
    }
}

/// EROFS on a write-access check: the binary we run from cannot be modified by anyone.
fn exe_is_read_only() -> bool {
    let path = c"/proc/self/exe";
    // SAFETY: a valid NUL-terminated path; access(2) only reads it.
    let rc = unsafe { libc::access(path.as_ptr(), libc::W_OK) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EROFS)
        || pentacle::is_sealed()
}

fn check(rc: libc::c_long, what: &str) -> Result<libc::c_long> {
    if rc < 0 {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(rc)
}

fn overlay_reexec(state_root: &Path) -> Result<std::convert::Infallible> {
    let exe = fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        bail!("odd executable path {}", exe.display());
    };
    // overlayfs without an upper dir needs two lower dirs; the second is an empty one of ours.
    let empty = state_root.join(".exe-lower");
    fs::create_dir_all(&empty).with_context(|| format!("creating {}", empty.display()))?;
    let lower = [dir.as_os_str().as_bytes(), b":", empty.as_os_str().as_bytes()].concat();
    if dir.as_os_str().as_bytes().iter().any(|b| b":,\\".contains(b)) {
        bail!("executable directory {} has characters overlayfs options cannot carry", dir.display());
    }
    let lower = CString::new(lower)?;

    // SAFETY: raw mount API syscalls with valid NUL-terminated strings; every returned fd is
    // wrapped in an OwnedFd at once so it is closed on every path.
    let mnt = unsafe {
        let fs = check(libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC), "fsopen overlay")?;
        let fs = OwnedFd::from_raw_fd(fs as i32);
        check(
            libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_SET_STRING, c"lowerdir".as_ptr(), lower.as_ptr(), 0),
            "fsconfig lowerdir",
        )?;
        check(
            libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, std::ptr::null::<u8>(), std::ptr::null::<u8>(), 0),
            "creating the overlay",
        )?;
        let m = check(
            libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV),
            "fsmount",
        )?;
        OwnedFd::from_raw_fd(m as i32)
    };
    let cname = CString::new(name.as_bytes())?;
    // SAFETY: openat on a valid dirfd with a NUL-terminated relative name.
    let bin = unsafe { libc::openat(mnt.as_raw_fd(), cname.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    let bin = check(bin as libc::c_long, "opening the binary through the overlay")?;
    // SAFETY: fresh fd from openat above, owned from here on.
    let bin = unsafe { OwnedFd::from_raw_fd(bin as i32) };

    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| CString::new([k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv/envp are NUL-terminated arrays of valid C strings that outlive the call;
    // execveat only returns on failure.
    unsafe {
        libc::syscall(libc::SYS_execveat, bin.as_raw_fd(), c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
    }
    bail!("execveat through the overlay: {}", std::io::Error::last_os_error())
}
