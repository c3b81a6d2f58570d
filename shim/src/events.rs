//! Publishing task events to containerd, in order.
//!
//! Handlers and the reaper only enqueue; one thread forwards the queue over
//! ttrpc, so events reach containerd in the order they were enqueued
//! (/tasks/create before /tasks/start before /tasks/exit before /tasks/delete)
//! and no handler waits on containerd. A broken connection (containerd
//! restarted) is redialled once per event.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::publisher::RemotePublisher;

struct Event {
    topic: &'static str,
    body: Box<dyn MessageDyn>,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Events {
    tx: Sender<Event>,
    /// Events enqueued but not yet forwarded (or dropped).
    pending: Arc<(Mutex<usize>, Condvar)>,
}

impl Events {
    pub fn start(publisher: RemotePublisher, ttrpc_address: String, namespace: String) -> Events {
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new((Mutex::new(0), Condvar::new()));
        let p = pending.clone();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || forward(rx, publisher, ttrpc_address, namespace, p))
            .expect("spawn events thread");
        Events { tx, pending }
    }

    pub fn publish(&self, topic: &'static str, body: impl MessageDyn) {
        *self.pending.0.lock().unwrap() += 1;
        if self.tx.send(Event { topic, body: Box::new(body) }).is_err() {
            *self.pending.0.lock().unwrap() -= 1;
        }
    }

    /// Waits until everything enqueued so far was forwarded, at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
        let (lock, cv) = &*self.pending;
        let guard = lock.lock().unwrap();
        let _ = cv.wait_timeout_while(guard, timeout, |n| *n > 0);
    }
}

fn forward(
    rx: Receiver<Event>,
    publisher: RemotePublisher,
    address: String,
    namespace: String,
    pending: Arc<(Mutex<usize>, Condvar)>,
) {
    let mut publisher = Some(publisher);
    for ev in rx {
        let mut sent = false;
        for attempt in 0..2 {
            if publisher.is_none() || attempt > 0 {
                publisher = RemotePublisher::new(&address).ok();
            }
            let Some(p) = &publisher else { continue };
            let ctx = Context { timeout_nano: 10_000_000_000, ..Default::default() };
            match p.publish(ctx, ev.topic, &namespace, dyn_clone(&*ev.body)) {
                Ok(()) => {
                    sent = true;
                    break;
                }
                Err(e) => log::warn!("publish {}: {e}", ev.topic),
            }
        }
        if !sent {
            log::error!("dropped event {}", ev.topic);
        }
        let (lock, cv) = &*pending;
        *lock.lock().unwrap() -= 1;
        cv.notify_all();
    }
}

fn dyn_clone(m: &dyn MessageDyn) -> Box<dyn MessageDyn> {
    m.clone_box()
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32, ..Default::default() }
}
