//! CVE-2019-5736: a process inside the container must not be able to write to the host's
//! runtime binary through /proc/PID/exe of a runtime process that joined the container.
//!
//! Before entering a container we re-execute ourselves from a file that cannot be written:
//! the binary seen through a detached, read-only overlayfs mount of its own directory (no
//! copy, so it costs one exec), or, where overlayfs is unavailable, a sealed memfd copy.
//! A binary already on a read-only filesystem needs neither.
use std::ffi::{CStr, CString};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Context, Result};

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 0x1;
const MOUNT_ATTR_NODEV: libc::c_uint = 0x4;

pub fn ensure_protected() -> Result<()> {
    if exe_is_read_only() {
        return Ok(());
    }
    match overlay_reexec() {
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

/// A detached mount (never attached to any tree, gone with its last reference).
fn detached_mount(fstype: &CStr, options: &[(&CStr, &CStr)], attrs: libc::c_uint) -> Result<OwnedFd> {
    // SAFETY: raw mount API syscalls with valid NUL-terminated strings; every returned fd is
    // wrapped in an OwnedFd at once so it is closed on every path.
    unsafe {
        let fs = check(libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC), "fsopen")?;
        let fs = OwnedFd::from_raw_fd(fs as i32);
        for (key, value) in options {
            check(
                libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), value.as_ptr(), 0),
                "fsconfig",
            )?;
        }
        check(
            libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, std::ptr::null::<u8>(), std::ptr::null::<u8>(), 0),
            "creating the overlay",
        )?;
        let m = check(libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs), "fsmount")?;
        Ok(OwnedFd::from_raw_fd(m as i32))
    }
}

fn overlay_reexec() -> Result<std::convert::Infallible> {
    let exe = fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        bail!("odd executable path {}", exe.display());
    };
    if dir.as_os_str().as_bytes().iter().any(|b| b":,\\".contains(b)) {
        bail!("executable directory {} has characters overlayfs options cannot carry", dir.display());
    }
    // overlayfs without an upper dir needs two lower layers; the second is an empty,
    // detached tmpfs, so nothing is created on any filesystem.
    let empty = detached_mount(c"tmpfs", &[], MOUNT_ATTR_RDONLY)?;
    let lower = [
        dir.as_os_str().as_bytes(),
        format!(":/proc/self/fd/{}", empty.as_raw_fd()).as_bytes(),
    ]
    .concat();
    let lower = CString::new(lower)?;
    let mnt = detached_mount(c"overlay", &[(c"lowerdir", &lower)], MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV)?;
    drop(empty);
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
