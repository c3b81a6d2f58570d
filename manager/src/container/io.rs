//! A process's stdio on berthd's side: fifos the shim writes into, pumped into the container's
//! json-file log and to every attached client; a stdin fifo clients write into.

use crate::errors::{Error, IoContext, Result};
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The fifos of one process (init or an exec), under the container's exec-root dir.
pub struct Fifos {
    pub stdin: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Fifos {
    pub fn create(dir: &Path, prefix: &str, with_stderr: bool) -> Result<Fifos> {
        let f = Fifos { stdin: dir.join(format!("{prefix}-stdin")), stdout: dir.join(format!("{prefix}-stdout")), stderr: dir.join(format!("{prefix}-stderr")) };
        for p in [&f.stdin, &f.stdout, &f.stderr] {
            if p == &f.stderr && !with_stderr {
                continue;
            }
            let _ = std::fs::remove_file(p);
            nix::unistd::mkfifo(p.as_path(), nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| Error::internal(format!("mkfifo {}: {e}", p.display())))?;
        }
        Ok(f)
    }

    pub fn remove(&self) {
        for p in [&self.stdin, &self.stdout, &self.stderr] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Output of a process as it happens, for attached clients.
pub type Output = broadcast::Sender<(Stream, Bytes)>;

/// Docker's json-file log driver: one JSON object per line of output, rotated by size.
pub struct JsonLog {
    path: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
}

impl JsonLog {
    pub fn open(path: PathBuf, max_size: Option<u64>, max_files: u32) -> Result<JsonLog> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).at(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(JsonLog { path, file: Some(file), size, max_size, max_files: max_files.max(1) })
    }

    pub fn write(&mut self, stream: Stream, line: &[u8]) {
        let rec = serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": stream.name(),
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        });
        let mut bytes = serde_json::to_vec(&rec).unwrap_or_default();
        bytes.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size + bytes.len() as u64 > max && self.size > 0 {
                self.rotate();
            }
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(&bytes).is_ok() {
                self.size += bytes.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        if self.max_files <= 1 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            for i in (1..self.max_files).rev() {
                let from = if i == 1 { self.path.clone() } else { rotated(&self.path, i - 1) };
                let _ = std::fs::rename(&from, rotated(&self.path, i));
            }
        }
        self.file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).ok();
        self.size = 0;
    }
}

pub fn rotated(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// Copy one fifo into the log and to attached clients until the process has exited (`done`)
/// and the fifo is drained. The fifo is opened read-write, so opening never waits for the
/// shim and a reader that came first never sees a premature end-of-file; the end comes from
/// the exit instead. Lines are logged whole; a line over 16 KiB is logged in pieces, as Docker does.
pub async fn pump(fifo: PathBuf, stream: Stream, log: Option<Arc<Mutex<JsonLog>>>, out: Output, mut done: tokio::sync::watch::Receiver<bool>) {
    let mut rx = match tokio::net::unix::pipe::OpenOptions::new().read_write(true).open_receiver(&fifo) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("opening {}: {e}", fifo.display());
            return;
        }
    };
    let mut buf = vec![0u8; 32 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut exited = *done.borrow();
    loop {
        let n = if exited {
            // Drain what is already in the pipe, then stop: without a terminal the process
            // wrote into the fifo itself, so all it wrote before its exit is in the pipe by
            // the time the exit is known (with one, the shim reports the exit only once its
            // copy has drained). Waiting for more would only delay every attached client.
            match rx.try_read(&mut buf) {
                Ok(n) if n > 0 => n,
                _ => break,
            }
        } else {
            tokio::select! {
                r = rx.read(&mut buf) => match r {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => break,
                },
                c = done.changed() => {
                    exited = c.is_err() || *done.borrow();
                    continue;
                }
            }
        };
        let chunk = &buf[..n];
        let _ = out.send((stream, Bytes::copy_from_slice(chunk)));
        if let Some(log) = &log {
            pending.extend_from_slice(chunk);
            let mut l = log.lock().unwrap();
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                l.write(stream, &line);
            }
            if pending.len() > 16 * 1024 {
                l.write(stream, &pending);
                pending.clear();
            }
        }
    }
    if let (Some(log), false) = (&log, pending.is_empty()) {
        log.lock().unwrap().write(stream, &pending);
    }
}

/// Docker's multiplexed stream framing: [stream, 0, 0, 0, len (u32 BE)] + payload.
pub fn frame(stream: Stream, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&[stream as u8, 0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// One entry of a json-file log.
#[derive(serde::Deserialize)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Read the log files (oldest rotated first) as entries.
pub fn read_log(path: &Path, max_files: u32) -> Vec<LogEntry> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = (1..max_files.max(1)).rev().map(|i| rotated(path, i)).collect();
    files.push(path.to_path_buf());
    for f in files {
        if let Ok(s) = std::fs::read_to_string(&f) {
            for line in s.lines() {
                if let Ok(e) = serde_json::from_str::<LogEntry>(line) {
                    out.push(e);
                }
            }
        }
    }
    out
}
