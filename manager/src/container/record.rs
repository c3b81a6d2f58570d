//! What berthd keeps about a container, in the store (one JSON record per container).

use bollard_stubs::models::{ContainerConfig, EndpointSettings, HostConfig};
use std::collections::BTreeMap;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
    /// A process exists (running or frozen).
    pub fn is_live(&self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: u32,
    pub exit_code: i64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub oom_killed: bool,
    pub error: String,
    /// Stopped by a user (stop/kill): `unless-stopped` and `always` leave it stopped until
    /// started again, also across daemon restarts.
    pub manually_stopped: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// The process: entrypoint + cmd, resolved at create.
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: i64,
    /// The shim serving this container while it has a task.
    pub shim_address: Option<String>,
    /// Networks to join besides the one `NetworkMode` names (create's `EndpointsConfig`,
    /// `network connect`), by name, with their settings (aliases, a fixed address).
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointSettings>,
    /// While it runs: its addresses, veths and published ports.
    #[serde(default)]
    pub net: Option<crate::network::NetState>,
    /// Anonymous volumes made at create: (destination, volume name).
    #[serde(default)]
    pub anon_volumes: Vec<(String, String)>,
}

impl ContainerRecord {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
    /// `NetworkMode` as Docker reads it: empty and `default` are `bridge`.
    pub fn network_mode(&self) -> String {
        match self.host_config.network_mode.as_deref().unwrap_or("") {
            "" | "default" => "bridge".into(),
            m => m.to_string(),
        }
    }
    /// The networks with an endpoint (bridge-driver networks), the mode's network first.
    pub fn bridge_networks(&self) -> Vec<(String, EndpointSettings)> {
        let mode = self.network_mode();
        let mut out = vec![];
        if !["none", "host"].contains(&mode.as_str()) && !mode.starts_with("container:") {
            out.push((mode.clone(), self.endpoints.get(&mode).cloned().unwrap_or_default()));
        }
        for (n, s) in &self.endpoints {
            if *n != mode && !["none", "host"].contains(&n.as_str()) {
                out.push((n.clone(), s.clone()));
            }
        }
        out
    }
}
