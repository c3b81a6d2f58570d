//! process.terminal with --console-socket: the runtime sends the pty master
//! over a unix socket (SCM_RIGHTS); the checker reports through the pty.

use crate::harness::Checks;
use crate::{cases, Env, Outcome};
use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixListener;
use std::time::Duration;

cases![terminal_console_socket];

/// Receive one file descriptor sent with SCM_RIGHTS on `stream`.
fn recv_fd(stream: &std::os::unix::net::UnixStream) -> Result<OwnedFd> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr() as *mut _,
        iov_len: data.len(),
    };
    // Room for one control message carrying a few fds, properly aligned.
    let mut cbuf = [0u64; 16];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut _;
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: msg points at live buffers sized as declared above.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        bail!("recvmsg: {}", std::io::Error::last_os_error());
    }
    // SAFETY: CMSG_* walk the control buffer filled in by the kernel.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32);
                return Ok(OwnedFd::from_raw_fd(fd));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    bail!("no SCM_RIGHTS fd in the console socket message ({n} data bytes)")
}

fn terminal_console_socket(env: &Env) -> Result<Outcome> {
    let sock = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock)?;
    let mut b = env.bundle()?;
    b.checker(&["terminal"]);
    b.set("/process/terminal", json!(true));
    b.set("/process/consoleSize", json!({"height": 30, "width": 100}));
    b.write()?;

    let receiver = std::thread::spawn(move || -> Result<OwnedFd> {
        let (stream, _) = listener.accept()?;
        recv_fd(&stream)
    });
    let id = env.id();
    let created = env.rt(&[
        "create",
        "--bundle",
        b.path(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ])?;
    if !created.success() {
        // Unblock the accept() so the thread ends.
        let _ = std::os::unix::net::UnixStream::connect(&sock);
        bail!("{}", created.describe());
    }
    ensure!(
        receiver.is_finished() || wait_thread(&receiver),
        "create returned but never connected to the console socket"
    );
    let master = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;
    env.rt(&["start", &id])?.ok()?;

    // Read the pty until the process exits (EIO once the slave side closes).
    let reader = std::thread::spawn(move || {
        let mut f = File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if out.windows(12).any(|w| w == b"{\"done\":true") {
                break;
            }
        }
        out
    });
    env.wait_status(&id, "stopped")?;
    ensure!(
        wait_thread(&reader),
        "no output from the container's terminal"
    );
    let out = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
    env.rt(&["delete", &id])?.ok()?;
    Checks::parse(&String::from_utf8_lossy(&out))
        .context("parsing terminal output")?
        .assert_ok(&[
            "terminal.isatty(0)",
            "terminal.isatty(1)",
            "terminal.consoleSize",
            "terminal./dev/console",
        ])?;
    Ok(Outcome::Pass)
}

fn wait_thread<T>(h: &std::thread::JoinHandle<T>) -> bool {
    for _ in 0..500 {
        if h.is_finished() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
