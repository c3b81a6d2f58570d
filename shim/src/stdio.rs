//! A process's stdio: the fifos containerd names in the request (or files),
//! handed to the process directly, or, for a terminal, the pty master the
//! runtime sends over a console socket, copied to and from those fifos.
//!
//! The shim keeps one extra end of each fifo open for the process's life: a
//! reader on stdout/stderr (so a client that goes away does not kill the
//! process with EPIPE) and a writer on stdin (so the process does not read EOF
//! before the client opens it; CloseIO drops it).

use std::fs::{File, OpenOptions};
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::error::{io, Error, Result};
use crate::runtime::ChildIo;

#[derive(Debug, Clone, Default)]
pub struct Paths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Ends of the stdio the shim holds while the process lives.
#[derive(Default)]
pub struct Held {
    stdin_writer: Option<OwnedFd>,
    keep: Vec<OwnedFd>,
    console: Option<Console>,
}

struct Console {
    master: File,
    /// Signalled when the master -> stdout copy has drained.
    drained: mpsc::Receiver<()>,
}

fn local_path(p: &str) -> Result<Option<&Path>> {
    if p.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = p.strip_prefix("file://") {
        return Ok(Some(Path::new(rest)));
    }
    if p.starts_with("binary://") {
        return Err(Error::Unimplemented("binary:// logging"));
    }
    Ok(Some(Path::new(p)))
}

fn is_fifo(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.file_type().is_fifo()).unwrap_or(false)
}

fn open(p: &Path, read: bool, write: bool, flags: i32) -> Result<File> {
    OpenOptions::new()
        .read(read)
        .write(write)
        .custom_flags(flags)
        .open(p)
        .map_err(io(format!("open {}", p.display())))
}

/// A writable end for the process, plus a reader the shim keeps (fifos only).
fn output_end(p: &Path) -> Result<(OwnedFd, Option<OwnedFd>)> {
    if is_fifo(p) {
        // The reader first: then opening the writer cannot block.
        let keep = open(p, true, false, libc::O_NONBLOCK)?;
        let w = open(p, false, true, 0)?;
        Ok((w.into(), Some(keep.into())))
    } else {
        let w = OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
            .map_err(io(format!("open {}", p.display())))?;
        Ok((w.into(), None))
    }
}

/// A readable end for the process, plus a writer the shim keeps until CloseIO.
fn input_end(p: &Path) -> Result<(OwnedFd, Option<OwnedFd>)> {
    if !is_fifo(p) {
        return Ok((open(p, true, false, 0)?.into(), None));
    }
    let r = open(p, true, false, libc::O_NONBLOCK)?;
    let keep = open(p, false, true, libc::O_NONBLOCK)?;
    // The process must block on reads.
    fcntl(&r, FcntlArg::F_SETFL(OFlag::empty())).map_err(|e| io("clear O_NONBLOCK")(e.into()))?;
    Ok((r.into(), Some(keep.into())))
}

/// Opens the fifos for a process without a terminal.
pub fn open_direct(paths: &Paths) -> Result<(ChildIo, Held)> {
    let mut child = ChildIo::default();
    let mut held = Held::default();
    if let Some(p) = local_path(&paths.stdin)? {
        let (r, keep) = input_end(p)?;
        child.stdin = Some(r);
        held.stdin_writer = keep;
    }
    for (which, slot) in [(&paths.stdout, &mut child.stdout), (&paths.stderr, &mut child.stderr)] {
        if let Some(p) = local_path(which)? {
            let (w, keep) = output_end(p)?;
            *slot = Some(w);
            held.keep.extend(keep);
        }
    }
    Ok((child, held))
}

impl Held {
    /// CloseIO: the process reads EOF once the client closes its end, too.
    pub fn close_stdin(&mut self) {
        self.stdin_writer = None;
    }

    /// Waits (at most `timeout`) until the terminal's output was copied out.
    pub fn drain(&mut self, timeout: Duration) {
        if let Some(c) = &self.console {
            let _ = c.drained.recv_timeout(timeout);
        }
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let Some(c) = &self.console else {
            return Err(Error::FailedPrecondition("the process has no terminal".into()));
        };
        let ws = libc::winsize { ws_row: height as u16, ws_col: width as u16, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the fd is
        // an open pty master owned by `c`.
        let rc = unsafe { libc::ioctl(c.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        if rc < 0 {
            return Err(io("resize pty")(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Copies between the pty master and the client's fifos.
    pub fn attach_console(paths: &Paths, master: OwnedFd) -> Result<Held> {
        let master = File::from(master);
        let mut held = Held::default();
        if let Some(p) = local_path(&paths.stdin)? {
            let (r, keep) = input_end(p)?;
            held.stdin_writer = keep;
            let mut to = master.try_clone().map_err(io("dup pty master"))?;
            let mut from = File::from(r);
            std::thread::Builder::new()
                .name("pty-in".into())
                .spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                })
                .map_err(io("spawn pty copy"))?;
        }
        let (tx, drained) = mpsc::channel();
        let out = match local_path(&paths.stdout)? {
            Some(p) => {
                let (w, keep) = output_end(p)?;
                held.keep.extend(keep);
                Some(File::from(w))
            }
            None => None,
        };
        let mut from = master.try_clone().map_err(io("dup pty master"))?;
        std::thread::Builder::new()
            .name("pty-out".into())
            .spawn(move || {
                let mut buf = [0u8; 8192];
                let mut out = out;
                // EIO once every slave end is closed: the process is gone.
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Some(o) = out.as_mut() {
                        if o.write_all(&buf[..n]).is_err() {
                            out = None;
                        }
                    }
                }
                drop(out);
                let _ = tx.send(());
            })
            .map_err(io("spawn pty copy"))?;
        held.console = Some(Console { master, drained });
        Ok(held)
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A unix socket the runtime sends a terminal's pty master to.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    pub fn new() -> Result<ConsoleSocket> {
        // Short and private: socket paths are limited to 108 bytes.
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("berth-pty-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(io(format!("bind {}", path.display())))?;
        Ok(ConsoleSocket { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master the runtime sent (it connected during create/exec).
    pub fn receive(&self, timeout: Duration) -> Result<OwnedFd> {
        self.listener.set_nonblocking(true).map_err(io("console socket"))?;
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(io("receive the pty master")(e)),
            }
        };
        stream.set_nonblocking(false).map_err(io("console socket"))?;
        stream.set_read_timeout(Some(timeout)).map_err(io("console socket"))?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(|e| io("receive the pty master")(e.into()))?;
        for c in msg.cmsgs().map_err(|e| io("receive the pty master")(e.into()))? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed this fd in our table for us.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(Error::Runtime("the runtime sent no pty master over the console socket".into()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
