//! `network connect` / `network disconnect`: a container's networks change in its record and,
//! while it runs, in its network namespace.

use super::ContainerService;
use crate::errors::{Error, Kind, Result};
use bollard_stubs::models::EndpointSettings;
use std::sync::Arc;

impl ContainerService {
    pub async fn connect(self: &Arc<Self>, container: &str, net: &str, cfg: EndpointSettings) -> Result<()> {
        let id = self.find(container)?.id;
        let lock = self.lock_for(&id);
        let _g = lock.lock().await;
        let svc = self.clone();
        let net = net.to_string();
        tokio::task::spawn_blocking(move || svc.connect_blocking(&id, &net, cfg)).await.map_err(|e| Error::internal(e.to_string()))?
    }

    fn connect_blocking(&self, id: &str, net: &str, cfg: EndpointSettings) -> Result<()> {
        let rec = self.get(id)?;
        let n = self.networks.find(net)?;
        let mode = rec.network_mode();
        if mode == "host" || mode == "none" || mode.starts_with("container:") || n.driver != "bridge" {
            return Err(Error::new(Kind::Forbidden, "container sharing network namespace with another container or host cannot be connected to any other network"));
        }
        if rec.bridge_networks().iter().any(|(k, _)| self.networks.find(k).map(|o| o.id == n.id).unwrap_or(false)) {
            return Err(Error::new(Kind::Forbidden, format!("endpoint with name {} already exists in network {}", rec.name, n.name)));
        }
        if cfg.ipam_config.as_ref().and_then(|c| c.ipv4_address.as_deref()).is_some_and(|a| !a.is_empty()) && n.predefined {
            return Err(Error::invalid("user specified IP address is supported on user defined networks only"));
        }
        if rec.state.status.is_live() {
            let st = rec.net.clone().unwrap_or_default();
            let netns = super::netns::path(&self.exec_root, id);
            // Interface numbers are never reused while the container runs.
            let index = st.attachments.iter().filter_map(|a| a.ifname.strip_prefix("eth")?.parse::<usize>().ok()).max().map_or(0, |m| m + 1);
            let a = match self.networks.attach_extra(id, &rec.name, &netns, &n.id, &cfg, index) {
                Ok(a) => a,
                Err(e) => {
                    let _ = self.networks.detach_one(id, &crate::network::Attachment {
                        network_id: n.id.clone(),
                        network: n.name.clone(),
                        ip: std::net::Ipv4Addr::UNSPECIFIED,
                        prefix: 0,
                        gateway: std::net::Ipv4Addr::UNSPECIFIED,
                        mac: String::new(),
                        ifname: String::new(),
                        host_veth: crate::network::veth_name(id, index),
                        aliases: vec![],
                    });
                    return Err(e);
                }
            };
            self.update(id, |r| r.net.get_or_insert_with(Default::default).attachments.push(a))?;
        }
        self.update(id, |r| {
            r.endpoints.insert(n.name.clone(), cfg);
        })?;
        self.network_event(&n, "connect", id);
        Ok(())
    }

    pub async fn disconnect(self: &Arc<Self>, container: &str, net: &str, force: bool) -> Result<()> {
        let n = self.networks.find(net)?;
        let rec = match self.find(container) {
            Ok(r) => r,
            // Docker's --force: drop a stale endpoint of a container that is gone.
            Err(e) if force && e.kind == Kind::NotFound => {
                if let Some((cid, _)) = n.endpoints.iter().find(|(c, e)| c.starts_with(container) || e.name == container) {
                    let cid = cid.clone();
                    let nets = self.networks.clone();
                    return tokio::task::spawn_blocking(move || nets.detach(&cid)).await.map_err(|e| Error::internal(e.to_string()));
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let lock = self.lock_for(&rec.id);
        let _g = lock.lock().await;
        let rec = self.get(&rec.id)?;
        let joined = rec.bridge_networks().into_iter().find(|(k, _)| self.networks.find(k).map(|o| o.id == n.id).unwrap_or(false));
        let Some((key, _)) = joined else {
            return Err(Error::new(Kind::Forbidden, format!("container {} is not connected to network {}", rec.id, n.name)));
        };
        let svc = self.clone();
        let id = rec.id.clone();
        let nid = n.id.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let rec = svc.get(&id)?;
            let a = rec.net.as_ref().and_then(|s| s.attachments.iter().find(|a| a.network_id == nid)).cloned();
            if let Some(a) = &a {
                svc.networks.detach_one(&id, a)?;
            }
            svc.update(&id, |r| {
                if let Some(s) = r.net.as_mut() {
                    s.attachments.retain(|a| a.network_id != nid);
                    // Ports published through that address went with it.
                    if let Some(a) = &a {
                        s.ports.retain(|p| p.ip != a.ip);
                    }
                }
                r.endpoints.remove(&key);
                // Its primary network gone, the container is left with loopback only.
                if r.network_mode() == key {
                    r.host_config.network_mode = Some("none".into());
                }
            })?;
            Ok(())
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        self.network_event(&n, "disconnect", &rec.id);
        Ok(())
    }

    fn network_event(&self, n: &crate::network::NetworkRecord, action: &str, container: &str) {
        let mut attrs = std::collections::HashMap::new();
        attrs.insert("container".to_string(), container.to_string());
        attrs.insert("name".to_string(), n.name.clone());
        attrs.insert("type".to_string(), n.driver.clone());
        self.events.publish("network", action, &n.id, attrs);
    }
}
