//! Publishing task events to containerd, in order.
//!
//! Handlers and the reaper only enqueue; one thread forwards the queue over
//! ttrpc, so events reach containerd in the order they were enqueued
//! (/tasks/create before /tasks/start before /tasks/exit before /tasks/delete)
//! and no handler waits on containerd. A broken connection (containerd
//! restarted) is redialled once per event.
//!
//! An idle shim holds neither the thread nor the connection (whose ttrpc client
//! has two threads of its own): the forwarding thread is started by the first
//! event after a quiet spell, dials containerd, and ends, closing the
//! connection, once nothing was enqueued for [`IDLE`].
//!
//! Events are encoded when enqueued and wrapped in an `Any` named by hand:
//! the crate's publisher asks protobuf's reflection for the type name, which
//! builds the descriptors of every message in the .proto files involved on
//! first use and keeps them for the process's life (a few hundred KiB).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::protos::{Client, EventsClient};

/// The protobuf package of containerd's task events (events/task.proto).
const EVENTS_PACKAGE: &str = "containerd.events";

/// How long the forwarding thread and its connection outlive the last event.
const IDLE: Duration = Duration::from_secs(2);

struct Event {
    topic: &'static str,
    at: Timestamp,
    /// containerd.events.<Message>, encoded.
    body: Any,
}

/// A connection to containerd's events service.
struct Publisher(EventsClient);

struct Queue {
    events: VecDeque<Event>,
    /// Events enqueued but not yet forwarded (or dropped).
    pending: usize,
    /// A forwarding thread runs.
    forwarding: bool,
    /// A connection to hand to the next forwarding thread.
    publisher: Option<Publisher>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled on every enqueue and every event forwarded.
    changed: Condvar,
    address: String,
    namespace: String,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Events(Arc<Shared>);

impl Events {
    /// Events for containerd's events service at `ttrpc_address`, dialled
    /// when there is something to send.
    pub fn new(ttrpc_address: String, namespace: String) -> Events {
        Events(Arc::new(Shared {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                pending: 0,
                forwarding: false,
                publisher: None,
            }),
            changed: Condvar::new(),
            address: ttrpc_address,
            namespace,
        }))
    }

    /// Enqueues `body`, a message of containerd's events package.
    pub fn publish<M: Message>(&self, topic: &'static str, body: M) {
        let body = match body.write_to_bytes() {
            Ok(value) => Any { type_url: format!("{EVENTS_PACKAGE}.{}", M::NAME), value, ..Default::default() },
            Err(e) => {
                log::error!("encode event {topic}: {e}");
                return;
            }
        };
        let at = timestamp(SystemTime::now());
        let mut q = self.0.lock();
        q.events.push_back(Event { topic, at, body });
        q.pending += 1;
        if q.forwarding {
            self.0.changed.notify_all();
            return;
        }
        let shared = self.0.clone();
        let publisher = q.publisher.take();
        match std::thread::Builder::new().name("events".into()).spawn(move || forward(shared, publisher)) {
            Ok(_) => q.forwarding = true,
            Err(e) => {
                log::error!("cannot start the events thread: {e}; dropped {} events", q.events.len());
                q.events.clear();
                q.pending = 0;
            }
        }
    }

    /// Waits until everything enqueued so far was forwarded, at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
        let q = self.0.lock();
        let _ = self.0.changed.wait_timeout_while(q, timeout, |q| q.pending > 0);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn connect(address: &str) -> Result<Publisher, String> {
    let fd = containerd_shim::util::connect(address).map_err(|e| e.to_string())?;
    let client = Client::new(fd).map_err(|e| e.to_string())?;
    Ok(Publisher(EventsClient::new(client)))
}

impl Publisher {
    fn send(&self, namespace: &str, ev: &Event) -> Result<(), String> {
        let ctx = Context { timeout_nano: 10_000_000_000, ..Default::default() };
        let envelope = Envelope {
            timestamp: MessageField::some(ev.at.clone()),
            namespace: namespace.to_string(),
            topic: ev.topic.to_string(),
            event: MessageField::some(ev.body.clone()),
            ..Default::default()
        };
        let req = ForwardRequest { envelope: MessageField::some(envelope), ..Default::default() };
        self.0.forward(ctx, &req).map(drop).map_err(|e| e.to_string())
    }
}

fn forward(shared: Arc<Shared>, mut publisher: Option<Publisher>) {
    loop {
        let ev = {
            let mut q = shared.lock();
            loop {
                if let Some(ev) = q.events.pop_front() {
                    break ev;
                }
                let (guard, timeout) =
                    shared.changed.wait_timeout(q, IDLE).unwrap_or_else(|p| p.into_inner());
                q = guard;
                if timeout.timed_out() && q.events.is_empty() {
                    q.forwarding = false;
                    drop(q);
                    // Closing the connection ends the ttrpc client's threads.
                    drop(publisher);
                    return;
                }
            }
        };
        let mut sent = false;
        for attempt in 0..2 {
            if publisher.is_none() || attempt > 0 {
                publisher = match connect(&shared.address) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        log::warn!("connect to containerd at {}: {e}", shared.address);
                        None
                    }
                };
            }
            let Some(p) = &publisher else { continue };
            match p.send(&shared.namespace, &ev) {
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
        shared.lock().pending -= 1;
        shared.changed.notify_all();
    }
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32, ..Default::default() }
}
