//! The local terminal: raw mode (restored when the guard drops, on panic and on fatal
//! signals), its size, and keeping a container's or exec's TTY the same size (initial
//! resize, then one per SIGWINCH).

use std::os::fd::RawFd;
use std::sync::{Mutex, Once};
use std::time::Duration;

use crate::client::{Client, ClientError, Req};

/// The terminal state to put back, if raw mode is on.
static SAVED: Mutex<Option<(RawFd, libc::termios)>> = Mutex::new(None);
static HOOKS: Once = Once::new();

pub const STDIN: RawFd = libc::STDIN_FILENO;
pub const STDOUT: RawFd = libc::STDOUT_FILENO;

pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The terminal's size as (rows, columns), if `fd` is a terminal.
pub fn size(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    if rc != 0 {
        return None;
    }
    Some((ws.ws_row, ws.ws_col))
}

/// Puts the saved terminal state back (idempotent; safe from a panic hook).
pub fn restore() {
    let saved = match SAVED.lock() {
        Ok(mut g) => g.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some((fd, termios)) = saved {
        // SAFETY: tcsetattr with a termios read from the same descriptor earlier.
        unsafe {
            libc::tcsetattr(fd, libc::TCSANOW, &termios);
        }
    }
}

/// Raw mode on a terminal for as long as the guard lives (docker's MakeRaw: no echo, no
/// line editing, no signal keys, no output processing, 8-bit characters).
pub struct RawMode(());

impl RawMode {
    /// Switches `fd` to raw mode; `Ok(None)` when it is not a terminal (or NORAW is set,
    /// as docker honours).
    pub fn enable(fd: RawFd) -> std::io::Result<Option<RawMode>> {
        if !is_terminal(fd) || std::env::var_os("NORAW").is_some_and(|v| !v.is_empty()) {
            return Ok(None);
        }
        // SAFETY: tcgetattr fills a termios we own; cfmakeraw edits it in place.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut termios) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let original = termios;
        unsafe { libc::cfmakeraw(&mut termios) };
        termios.c_cc[libc::VMIN] = 1;
        termios.c_cc[libc::VTIME] = 0;
        install_hooks();
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some((fd, original));
        // SAFETY: applying the raw copy of this descriptor's own settings.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &termios) } != 0 {
            let err = std::io::Error::last_os_error();
            SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(err);
        }
        Ok(Some(RawMode(())))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Once per process: restore the terminal before a panic message, and on the signals that
/// would otherwise end us with the terminal still raw.
fn install_hooks() {
    HOOKS.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        use tokio::signal::unix::{signal, SignalKind};
        for (kind, code) in [
            (SignalKind::interrupt(), 1),
            (SignalKind::terminate(), 128 + libc::SIGTERM),
            (SignalKind::hangup(), 128 + libc::SIGHUP),
            (SignalKind::quit(), 128 + libc::SIGQUIT),
        ] {
            let Ok(mut stream) = signal(kind) else { continue };
            tokio::spawn(async move {
                if stream.recv().await.is_some() {
                    let was_raw = SAVED.lock().map(|g| g.is_some()).unwrap_or(false);
                    restore();
                    if was_raw && code == 1 {
                        // docker ends an interrupted raw session on a fresh line
                        println!();
                    }
                    std::process::exit(code);
                }
            });
        }
    });
}

/// What a resize applies to.
#[derive(Clone, Debug)]
pub enum ResizeTarget {
    Container(String),
    Exec(String),
}

impl ResizeTarget {
    fn path(&self) -> String {
        match self {
            ResizeTarget::Container(id) => format!("/containers/{id}/resize"),
            ResizeTarget::Exec(id) => format!("/exec/{id}/resize"),
        }
    }
}

/// Sends the local terminal's size (`POST …/resize?h=&w=`); nothing when it is unknown.
pub async fn resize(client: &Client, target: &ResizeTarget) -> Result<(), ClientError> {
    let Some((h, w)) = size(STDOUT) else { return Ok(()) };
    resize_to(client, target, h, w).await
}

/// `POST …/resize?h=H&w=W` (nothing for 0×0).
pub async fn resize_to(client: &Client, target: &ResizeTarget, h: u16, w: u16) -> Result<(), ClientError> {
    if h == 0 && w == 0 {
        return Ok(());
    }
    client
        .call(Req::post(target.path()).query("h", h.to_string()).query("w", w.to_string()))
        .await
}

/// docker's MonitorTtySize: the initial size (retried for a moment, as a just-started
/// process may not have its TTY yet), then a resize on every SIGWINCH.
pub fn monitor_size(client: &Client, target: ResizeTarget) {
    let c = client.clone();
    let t = target.clone();
    tokio::spawn(async move {
        if resize(&c, &t).await.is_err() {
            let mut ok = false;
            for attempt in 1..=10u64 {
                tokio::time::sleep(Duration::from_millis(attempt * 10)).await;
                if resize(&c, &t).await.is_ok() {
                    ok = true;
                    break;
                }
            }
            if !ok {
                eprintln!("failed to resize tty, using default size");
            }
        }
    });
    let c = client.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut winch) = signal(SignalKind::window_change()) else { return };
        while winch.recv().await.is_some() {
            let _ = resize(&c, &target).await;
        }
    });
}
