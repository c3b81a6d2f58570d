//! The daemon's event stream (`GET /events`): Docker's event messages, fanned out to
//! subscribers, with a bounded backlog for `since`.

use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;

const BACKLOG: usize = 1024;

pub struct Events {
    tx: broadcast::Sender<Value>,
    backlog: Mutex<VecDeque<Value>>,
}

impl Default for Events {
    fn default() -> Self {
        Events { tx: broadcast::channel(BACKLOG).0, backlog: Mutex::new(VecDeque::new()) }
    }
}

impl Events {
    /// Publish `action` on an object of `typ` (container, image, network, volume).
    pub fn publish(&self, typ: &str, action: &str, id: &str, attributes: HashMap<String, String>) {
        let now = chrono::Utc::now();
        let from = attributes.get("image").cloned();
        let mut ev = json!({
            "Type": typ,
            "Action": action,
            "Actor": { "ID": id, "Attributes": attributes },
            "scope": "local",
            "time": now.timestamp(),
            "timeNano": now.timestamp_nanos_opt().unwrap_or(0),
        });
        // The pre-1.22 fields docker still reads for containers.
        if typ == "container" {
            ev["status"] = json!(action);
            ev["id"] = json!(id);
            if let Some(f) = from {
                ev["from"] = json!(f);
            }
        }
        {
            let mut b = self.backlog.lock().unwrap();
            if b.len() == BACKLOG {
                b.pop_front();
            }
            b.push_back(ev.clone());
        }
        let _ = self.tx.send(ev);
    }

    pub fn subscribe(&self) -> (Vec<Value>, broadcast::Receiver<Value>) {
        let b = self.backlog.lock().unwrap();
        (b.iter().cloned().collect(), self.tx.subscribe())
    }
}
