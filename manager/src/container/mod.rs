//! The container service: create, start, stop, kill, remove, wait, list, inspect, logs,
//! attach, exec, restart policies and live restore. Every container runs under its own
//! `containerd-shim-berth-v2` (which runs berth-runtime); berthd never forks container
//! processes itself, so containers outlive berthd and it reconnects when it comes back.

mod archive;
pub(crate) mod changes;
mod connect;
pub mod defaults;
mod exec;
pub mod io;
mod lifecycle;
mod mounts;
mod netns;
mod query;
pub mod record;
pub(crate) mod spec;
mod stats;

use crate::errors::{Error, Result};
use crate::events::Events;
use crate::image::ImageService;
use crate::store::Store;
use record::{ContainerRecord, Status};
use redb_tables::{CONTAINERS, NAMES};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use archive::PathStat;
pub use changes::{Change, Kind as ChangeKind};
pub use exec::ExecStart;
pub use lifecycle::WaitTicket;
pub use query::{ListOptions, LogOptions};

pub mod redb_tables {
    use crate::store::Table;
    /// Container ID → `ContainerRecord` JSON.
    pub const CONTAINERS: Table = Table::new("containers");
    /// Name (without `/`) → container ID.
    pub const NAMES: Table = Table::new("container_names");
}

/// What berthd holds for a container while it has a task (process).
pub struct Live {
    pub shim: Arc<crate::task::Shim>,
    pub output: io::Output,
    pub stdin: Option<PathBuf>,
    pub log: Option<Arc<Mutex<io::JsonLog>>>,
    /// Set when the process has exited: the output pumps drain and stop.
    pub exited: tokio::sync::watch::Sender<bool>,
}

pub struct ContainerService {
    pub store: Arc<Store>,
    pub images: Arc<ImageService>,
    pub networks: Arc<crate::network::NetworkService>,
    pub volumes: Arc<crate::volume::VolumeService>,
    pub events: Arc<Events>,
    data_root: PathBuf,
    exec_root: PathBuf,
    /// `--cgroup-parent`, already checked.
    cgroup_parent: String,
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// One lifecycle operation at a time per container.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped on every exit and removal; waiters watch it.
    changes: tokio::sync::watch::Sender<u64>,
    execs: Mutex<HashMap<String, Arc<exec::ExecInstance>>>,
    /// Each container's output, for attach and `logs -f`; lives as long as berthd knows it.
    outputs: Mutex<HashMap<String, io::Output>>,
    rt: tokio::runtime::Handle,
    /// Exit codes of removed containers, for waiters that see only the removal (`--rm`).
    removed_codes: Mutex<HashMap<String, i64>>,
}

impl ContainerService {
    pub fn new(store: Arc<Store>, images: Arc<ImageService>, networks: Arc<crate::network::NetworkService>, volumes: Arc<crate::volume::VolumeService>, events: Arc<Events>, data_root: &std::path::Path, exec_root: &std::path::Path, cgroup_parent: &str) -> Result<Arc<Self>> {
        std::fs::create_dir_all(data_root.join("containers"))?;
        std::fs::create_dir_all(exec_root.join("containers"))?;
        store.write(|w| {
            w.ensure_table(CONTAINERS)?;
            w.ensure_table(NAMES)
        })?;
        Ok(Arc::new(ContainerService {
            store,
            images,
            networks,
            volumes,
            events,
            data_root: data_root.to_path_buf(),
            exec_root: exec_root.to_path_buf(),
            cgroup_parent: cgroup_parent.to_string(),
            live: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            changes: tokio::sync::watch::channel(0).0,
            execs: Mutex::new(HashMap::new()),
            outputs: Mutex::new(HashMap::new()),
            rt: tokio::runtime::Handle::current(),
            removed_codes: Mutex::new(HashMap::new()),
        }))
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap().entry(id.to_string()).or_default().clone()
    }

    /// The container's cgroup path: `<its CgroupParent, else --cgroup-parent>/<id>`.
    pub fn cgroup_path(&self, rec: &ContainerRecord) -> String {
        let own = rec.host_config.cgroup_parent.as_deref().filter(|p| !p.is_empty());
        let parent = own.and_then(|p| crate::config::cgroup_parent(p).ok()).unwrap_or_else(|| self.cgroup_parent.clone());
        format!("{}/{}", parent.trim_end_matches('/'), rec.id)
    }

    pub fn data_dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.data_dir(id).join(format!("{id}-json.log"))
    }

    /// Docker's lookup: full ID, name (with or without `/`), unique ID prefix.
    pub fn find(&self, name: &str) -> Result<ContainerRecord> {
        let not_found = || Error::not_found(format!("No such container: {name}"));
        if name.is_empty() {
            return Err(not_found());
        }
        if let Some(r) = self.store.get::<ContainerRecord>(CONTAINERS, name)? {
            return Ok(r);
        }
        let n = name.strip_prefix('/').unwrap_or(name);
        if let Some(id) = self.store.get::<String>(NAMES, n)? {
            if let Some(r) = self.store.get::<ContainerRecord>(CONTAINERS, &id)? {
                return Ok(r);
            }
        }
        if name.bytes().all(|c| c.is_ascii_hexdigit()) {
            let mut found: Vec<ContainerRecord> = self.store.list::<ContainerRecord>(CONTAINERS)?.into_iter().map(|(_, r)| r).filter(|r| r.id.starts_with(name)).collect();
            match found.len() {
                1 => return Ok(found.pop().unwrap()),
                0 => {}
                _ => return Err(Error::invalid(format!("multiple IDs found with provided prefix: {name}"))),
            }
        }
        Err(not_found())
    }

    pub fn get(&self, id: &str) -> Result<ContainerRecord> {
        self.store.get(CONTAINERS, id)?.ok_or_else(|| Error::not_found(format!("No such container: {id}")))
    }

    /// Update a record in one transaction.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut ContainerRecord)) -> Result<ContainerRecord> {
        self.store.write(|w| {
            let mut r: ContainerRecord = w.get(CONTAINERS, id)?.ok_or_else(|| Error::not_found(format!("No such container: {id}")))?;
            f(&mut r);
            w.put(CONTAINERS, id, &r)?;
            Ok(r)
        })
    }

    pub fn output(&self, id: &str) -> io::Output {
        self.outputs.lock().unwrap().entry(id.to_string()).or_insert_with(|| tokio::sync::broadcast::channel(1024).0).clone()
    }

    fn live(&self, id: &str) -> Option<Arc<Live>> {
        self.live.lock().unwrap().get(id).cloned()
    }

    fn notify(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub fn running_count(&self) -> Result<(i64, i64, i64, i64)> {
        let all = self.store.list::<ContainerRecord>(CONTAINERS)?;
        let running = all.iter().filter(|(_, r)| r.state.status == Status::Running).count() as i64;
        let paused = all.iter().filter(|(_, r)| r.state.status == Status::Paused).count() as i64;
        let total = all.len() as i64;
        Ok((total, running, paused, total - running - paused))
    }

    /// A network (by ID or name) that some container is configured to join.
    pub fn network_in_use(&self, net: &str) -> bool {
        let (id, name) = self.networks.find(net).map(|n| (n.id, n.name)).unwrap_or_default();
        self.store.list::<ContainerRecord>(CONTAINERS).unwrap_or_default().iter().any(|(_, r)| {
            r.bridge_networks().iter().any(|(n, _)| *n == net || *n == id || *n == name)
        })
    }

    /// Images used by a container cannot be removed without force.
    pub fn image_in_use(&self, image_id: &str) -> Result<Option<String>> {
        Ok(self.store.list::<ContainerRecord>(CONTAINERS)?.into_iter().find(|(_, r)| r.image_id == image_id).map(|(_, r)| r.id))
    }
}
