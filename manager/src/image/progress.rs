//! Docker's newline-delimited JSON progress stream (pull, push, load, import).

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

/// Where progress goes: the HTTP response body. Sending never blocks, so blocking code
/// (unpacking threads) can report too; a client that went away just stops receiving.
#[derive(Clone)]
pub struct Progress {
    tx: Option<UnboundedSender<Bytes>>,
}

impl Progress {
    pub fn new(tx: UnboundedSender<Bytes>) -> Self {
        Progress { tx: Some(tx) }
    }
    pub fn discard() -> Self {
        Progress { tx: None }
    }

    pub fn send(&self, v: Value) {
        if let Some(tx) = &self.tx {
            let mut line = serde_json::to_vec(&v).unwrap_or_default();
            line.push(b'\n');
            let _ = tx.send(Bytes::from(line));
        }
    }

    pub fn status(&self, status: &str) {
        self.send(json!({ "status": status }));
    }

    pub fn id_status(&self, id: &str, status: &str) {
        self.send(json!({ "status": status, "progressDetail": {}, "id": id }));
    }

    pub fn bar(&self, id: &str, status: &str, current: u64, total: u64) {
        self.send(json!({
            "status": status,
            "progressDetail": { "current": current, "total": total },
            "progress": bar_text(current, total),
            "id": id,
        }));
    }

    /// Whether the client went away (nothing more can reach it).
    pub fn closed(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.is_closed())
    }

    /// An error with a code (the classic builder's failing RUN: the docker CLI exits with it).
    pub fn error_code(&self, message: &str, code: i64) {
        self.send(json!({ "errorDetail": { "code": code, "message": message }, "error": message }));
    }

    pub fn error(&self, message: &str) {
        self.send(json!({ "errorDetail": { "message": message }, "error": message }));
    }

    pub fn stream(&self, text: &str) {
        self.send(json!({ "stream": text }));
    }

    pub fn aux(&self, v: Value) {
        self.send(json!({ "aux": v }));
    }
}

/// Docker's `[=====>     ]  12.3MB/45.6MB` text, for clients that print `progress` as is.
fn bar_text(current: u64, total: u64) -> String {
    let width = 50u64;
    let filled = if total > 0 { (current.min(total) * width / total) as usize } else { 0 };
    let mut bar = "=".repeat(filled);
    if filled < width as usize {
        bar.push('>');
        bar.push_str(&" ".repeat(width as usize - filled - 1));
    }
    format!("[{bar}] {:>8}/{}", human(current), human(total))
}

pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 { format!("{n}B") } else { format!("{v:.3}{}", units[i]).replace(".000", "") }
}

/// Docker's short layer IDs: the first 12 hex digits.
pub fn short(digest: &str) -> String {
    let h = digest.strip_prefix("sha256:").unwrap_or(digest);
    h[..h.len().min(12)].to_string()
}
