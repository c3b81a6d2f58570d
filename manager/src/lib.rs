//! berth_manager: the library behind berthd (the daemon) — images, content, snapshots, the
//! embedded store and the Docker Engine API.

pub mod api;
pub mod build;
pub mod config;
pub mod content;
pub mod distribution;
pub mod errors;
pub mod events;
pub mod container;
pub mod image;
pub mod network;
pub mod reference;
pub mod snapshot;
pub mod store;
pub mod task;
pub mod volume;

use std::sync::Arc;

/// What every API handler can reach.
pub struct Daemon {
    pub config: config::Config,
    pub id: String,
    pub images: Arc<image::ImageService>,
    pub containers: Arc<container::ContainerService>,
    pub networks: Arc<network::NetworkService>,
    pub volumes: Arc<volume::VolumeService>,
    pub builds: Arc<build::BuildService>,
    pub events: Arc<events::Events>,
    /// The ttrpc server the shims publish their events to; kept alive with the daemon.
    _events_server: std::sync::Mutex<Option<containerd_shim_protos::ttrpc::Server>>,
}

impl Daemon {
    /// Open the store and services and clean up after a previous run.
    pub async fn open(config: config::Config) -> errors::Result<Arc<Self>> {
        let store = Arc::new(store::Store::open(&config.data_root.join("berth.db"))?);
        let images = Arc::new(image::ImageService::new(store.clone(), &config.data_root, &config.exec_root, config.insecure_registries.clone())?);
        images.recover().await?;
        let id = match store.get::<String>(store::META, "engine-id")? {
            Some(id) => id,
            None => {
                let id = content::random_hex(16);
                store.write(|w| w.put(store::META, "engine-id", &id))?;
                id
            }
        };
        let events = Arc::new(events::Events::default());
        let networks = network::NetworkService::new(store.clone(), network::Options { bridge: config.bridge.clone(), bip: config.bip.clone(), mtu: config.mtu, firewall_backend: config.firewall_backend.clone() })?;
        let volumes = volume::VolumeService::new(store.clone(), &config.data_root)?;
        let containers = container::ContainerService::new(store.clone(), images.clone(), networks.clone(), volumes.clone(), events.clone(), &config.data_root, &config.exec_root, &config.cgroup_parent)?;
        let wv = Arc::downgrade(&containers);
        volumes.set_users(Box::new(move |v: &str| wv.upgrade().map(|c| c.volume_users(v)).unwrap_or_default()));
        let wc = Arc::downgrade(&containers);
        networks.set_in_use(Box::new(move |net: &str| wc.upgrade().is_some_and(|c| c.network_in_use(net))));
        let weak = Arc::downgrade(&containers);
        let w2 = weak.clone();
        images.set_in_use(Box::new(move |id: &str| w2.upgrade().and_then(|c| c.image_in_use(id).ok().flatten())));
        let sink: task::events::Sink = Arc::new(move |id: String, topic: &'static str| {
            if let (Some(c), "oom") = (weak.upgrade(), topic) {
                c.oom(&id);
            }
        });
        let server = task::events::serve(&config.exec_root, sink)?;
        containers.recover().await?;
        let builds = build::BuildService::new(store.clone(), images.clone(), containers.clone(), &config.data_root)?;
        Ok(Arc::new(Daemon { config, id, images, containers, networks, volumes, builds, events, _events_server: std::sync::Mutex::new(Some(server)) }))
    }

    /// Graceful stop: with nothing left running, networks leave no bridge or rule behind.
    pub async fn shutdown(&self) {
        let (n, c, v) = (self.networks.clone(), self.containers.clone(), self.volumes.clone());
        let _ = tokio::task::spawn_blocking(move || {
            if c.running_count().map(|(_, running, paused, _)| running + paused == 0).unwrap_or(false) {
                n.shutdown();
                v.shutdown();
            }
        })
        .await;
    }
}

