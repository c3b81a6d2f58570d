//! `--sig-proxy`: signals the CLI receives are passed on to the container
//! (`POST /containers/{id}/kill?signal=NAME`), as docker does for attached non-TTY runs.

use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

use crate::client::{Client, Req};

/// The signals forwarded: every catchable one except those that concern the CLI itself
/// (SIGCHLD, SIGPIPE) or the runtime (SIGURG), as docker's ForwardAllSignals.
const FORWARDED: &[(&str, libc::c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("TERM", libc::SIGTERM),
    ("ALRM", libc::SIGALRM),
    ("CONT", libc::SIGCONT),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("WINCH", libc::SIGWINCH),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
];

/// Forwards signals to container `id` until the returned [`Forwarder`] is dropped.
pub fn forward(client: &Client, id: &str) -> Forwarder {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let mut listeners = Vec::new();
    for &(name, number) in FORWARDED {
        let Ok(mut stream) = signal(SignalKind::from_raw(number)) else { continue };
        let tx = tx.clone();
        listeners.push(tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(name).is_err() {
                    break;
                }
            }
        }));
    }
    let client = client.clone();
    let id = id.to_string();
    let sender = tokio::spawn(async move {
        while let Some(name) = rx.recv().await {
            let req = Req::post(format!("/containers/{id}/kill")).query("signal", name);
            // docker only logs a failed forward (at debug level)
            let _ = client.call(req).await;
        }
    });
    listeners.push(sender);
    Forwarder(listeners)
}

/// The forwarding tasks; dropping it stops forwarding.
pub struct Forwarder(Vec<JoinHandle<()>>);

impl Drop for Forwarder {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
