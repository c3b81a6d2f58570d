//! Networks: Docker's predefined `bridge`/`host`/`none` and user-defined bridge networks,
//! IPAM kept in the store, a veth endpoint per container and network, NAT, published ports
//! and isolation in nftables, and an embedded DNS server per user-defined network.

pub mod dns;
pub mod firewall;
pub mod ipam;
mod link;
pub mod ports;

use crate::errors::{Error, Kind, Result};
use crate::store::{Store, Table};
use bollard_stubs::models::{EndpointResource, EndpointSettings, Ipam, IpamConfig, NetworkCreateRequest, NetworkInspect};
use firewall::{NetRule, PortRule};
use ipam::Cidr;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Network ID → `NetworkRecord` JSON.
pub const NETWORKS: Table = Table::new("networks");
/// Name → network ID.
pub const NETWORK_NAMES: Table = Table::new("network_names");

const BRIDGE_NAME_OPT: &str = "com.docker.network.bridge.name";
const MTU_OPT: &str = "com.docker.network.driver.mtu";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    /// The container's name, for DNS and inspect.
    pub name: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    pub created: String,
    /// Bridge networks: subnet in canonical form, gateway, optional allocation range.
    pub subnet: Option<Cidr>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Cidr>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
    /// The Linux bridge; empty for host/null.
    pub bridge: String,
    pub mtu: u32,
    /// Container ID → its endpoint, while the container is attached.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Made by berthd itself (bridge, host, none): never removed.
    pub predefined: bool,
    /// berthd created the Linux bridge (rather than finding it, as with `--bridge br0`): only
    /// then does it ever delete it.
    #[serde(default)]
    pub own_bridge: bool,
}

impl NetworkRecord {
    /// The default bridge keeps Docker's old behaviour: no DNS, links through /etc/hosts.
    pub fn user_defined(&self) -> bool {
        !self.predefined && self.driver == "bridge"
    }
}

/// One network a container is attached to, as the container record keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attachment {
    pub network_id: String,
    pub network: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub ifname: String,
    pub host_veth: String,
    pub aliases: Vec<String>,
}

/// A running container's networking: what inspect shows and what a restart must restore.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NetState {
    pub attachments: Vec<Attachment>,
    pub ports: Vec<PortRule>,
}

/// What starting a container asks of the network service.
pub struct AttachRequest<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub netns: &'a Path,
    /// Networks by name or ID, in order (the first gets the default route and the ports).
    pub networks: Vec<(String, EndpointSettings)>,
    pub ports: Vec<(String, Option<Ipv4Addr>, u16, u16)>,
}

pub struct Options {
    /// The default bridge's Linux name (`--bridge`), `berth0` by default.
    pub bridge: String,
    /// The default bridge's gateway and prefix (`--bip`); picked from Docker's pools if unset.
    pub bip: Option<String>,
    pub mtu: u32,
    /// `--firewall-backend`: nftables, iptables, or empty (nftables where `nft` exists).
    pub firewall_backend: String,
}

pub struct NetworkService {
    store: Arc<Store>,
    rt: tokio::runtime::Handle,
    host: rtnetlink::Handle,
    default_bridge: String,
    table: String,
    backend: firewall::Backend,
    ports: Mutex<HashMap<String, (Vec<PortRule>, Vec<OwnedFd>)>>,
    dns: Mutex<HashMap<String, dns::DnsServer>>,
    /// Serialises rewrites of the firewall table.
    fw: Mutex<()>,
    /// Is the network (ID) referenced by any container? Set by the daemon (prune).
    in_use: OnceLock<Box<dyn Fn(&str) -> bool + Send + Sync>>,
    me: Weak<NetworkService>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

impl NetworkService {
    pub fn new(store: Arc<Store>, opts: Options) -> Result<Arc<Self>> {
        store.write(|w| {
            w.ensure_table(NETWORKS)?;
            w.ensure_table(NETWORK_NAMES)
        })?;
        let rt = tokio::runtime::Handle::current();
        let host = link::connect(&rt)?;
        if opts.bridge.len() > 15 || !valid_name(&opts.bridge) {
            return Err(Error::invalid(format!("invalid bridge name {:?}", opts.bridge)));
        }
        // One nft table per daemon, so daemons with their own bridges (tests) never meet.
        let table = if opts.bridge == "berth0" { "berth".to_string() } else { format!("berth_{}", opts.bridge.replace(['-', '.'], "_")) };
        let backend = firewall::Backend::choose(&opts.firewall_backend)?;
        let svc = Arc::new_cyclic(|me| NetworkService {
            store,
            rt,
            host,
            default_bridge: opts.bridge.clone(),
            table,
            backend,
            ports: Mutex::new(HashMap::new()),
            dns: Mutex::new(HashMap::new()),
            fw: Mutex::new(()),
            in_use: OnceLock::new(),
            me: me.clone(),
        });
        svc.predefined(&opts)?;
        Ok(svc)
    }

    /// Run netlink work to completion from blocking code, or from a runtime worker (some
    /// clean-ups run inside async handlers) without stalling the runtime.
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::block_in_place(|| self.rt.block_on(f))
        } else {
            self.rt.block_on(f)
        }
    }

    pub fn set_in_use(&self, f: Box<dyn Fn(&str) -> bool + Send + Sync>) {
        let _ = self.in_use.set(f);
    }

    fn predefined(&self, opts: &Options) -> Result<()> {
        let bip = opts.bip.as_deref().map(Cidr::parse).transpose()?;
        self.store.write(|w| {
            for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
                let existing: Option<String> = w.get(NETWORK_NAMES, name)?;
                let mut rec: NetworkRecord = match existing.map(|id| w.get::<NetworkRecord>(NETWORKS, &id)).transpose()?.flatten() {
                    Some(r) => r,
                    None => NetworkRecord {
                        id: crate::content::random_hex(32),
                        name: name.into(),
                        driver: driver.into(),
                        created: now(),
                        subnet: None,
                        gateway: None,
                        ip_range: None,
                        internal: false,
                        attachable: false,
                        labels: HashMap::new(),
                        options: HashMap::new(),
                        bridge: String::new(),
                        mtu: 0,
                        endpoints: BTreeMap::new(),
                        predefined: true,
                        own_bridge: false,
                    },
                };
                if driver == "bridge" {
                    rec.bridge = opts.bridge.clone();
                    rec.mtu = opts.mtu;
                    rec.options.insert(BRIDGE_NAME_OPT.into(), opts.bridge.clone());
                    rec.options.insert("com.docker.network.bridge.default_bridge".into(), "true".into());
                    rec.options.insert("com.docker.network.bridge.enable_ip_masquerade".into(), "true".into());
                    match bip {
                        Some(b) => {
                            rec.subnet = Some(b.canonical());
                            rec.gateway = Some(b.addr);
                        }
                        None if rec.subnet.is_none() => {
                            let others: Vec<Cidr> = w.list::<NetworkRecord>(NETWORKS)?.into_iter().filter_map(|(_, n)| n.subnet).collect();
                            let s = ipam::pick_subnet(&others, &ipam::host_routes())?;
                            rec.subnet = Some(s);
                            rec.gateway = Some(s.first_host());
                        }
                        None => {}
                    }
                }
                w.put(NETWORK_NAMES, name, &rec.id)?;
                w.put(NETWORKS, &rec.id.clone(), &rec)?;
            }
            Ok(())
        })
    }

    pub fn list_all(&self) -> Result<Vec<NetworkRecord>> {
        Ok(self.store.list::<NetworkRecord>(NETWORKS)?.into_iter().map(|(_, r)| r).collect())
    }

    /// `network ls` with Docker's filters: name (substring), id (prefix), driver, label,
    /// type (custom|builtin), dangling.
    pub fn list(&self, filters: &HashMap<String, Vec<String>>) -> Result<Vec<NetworkRecord>> {
        let in_use = |n: &NetworkRecord| !n.endpoints.is_empty() || self.in_use.get().is_some_and(|f| f(&n.id) || f(&n.name));
        let mut out = vec![];
        'next: for n in self.list_all()? {
            for (k, vals) in filters {
                let ok = match k.as_str() {
                    "name" => vals.iter().any(|v| n.name.contains(v.as_str())),
                    "id" => vals.iter().any(|v| n.id.starts_with(v.as_str())),
                    "driver" => vals.iter().any(|v| *v == n.driver),
                    "scope" => vals.iter().any(|v| v == "local"),
                    "type" => vals.iter().any(|v| (v == "custom") != n.predefined),
                    "label" => vals.iter().all(|v| match v.split_once('=') {
                        Some((k, val)) => n.labels.get(k).is_some_and(|x| x == val),
                        None => n.labels.contains_key(v.as_str()),
                    }),
                    "dangling" => vals.iter().any(|v| (v == "true" || v == "1") == (!n.predefined && !in_use(&n))),
                    other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
                };
                if !ok {
                    continue 'next;
                }
            }
            out.push(n);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Docker's lookup: full ID, name, unique ID prefix.
    pub fn find(&self, name: &str) -> Result<NetworkRecord> {
        let nf = || Error::not_found(format!("network {name} not found"));
        let name = if name == "default" { "bridge" } else { name };
        if name.is_empty() {
            return Err(nf());
        }
        if let Some(r) = self.store.get::<NetworkRecord>(NETWORKS, name)? {
            return Ok(r);
        }
        if let Some(id) = self.store.get::<String>(NETWORK_NAMES, name)? {
            if let Some(r) = self.store.get::<NetworkRecord>(NETWORKS, &id)? {
                return Ok(r);
            }
        }
        let mut found: Vec<NetworkRecord> = self.list_all()?.into_iter().filter(|r| r.id.starts_with(name)).collect();
        match found.len() {
            1 => Ok(found.pop().unwrap()),
            0 => Err(nf()),
            _ => Err(Error::invalid(format!("network {name} is ambiguous ({} matches found based on ID prefix)", found.len()))),
        }
    }

    pub fn create(&self, req: NetworkCreateRequest) -> Result<(String, String)> {
        let name = req.name.clone();
        if !valid_name(&name) {
            return Err(Error::invalid(format!("invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
        }
        let driver = req.driver.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "bridge".into());
        if driver != "bridge" {
            return Err(Error::not_found(format!("could not find plugin {driver} in v1 plugin registry: plugin not found (berth has the bridge driver)")));
        }
        if req.enable_ipv6.unwrap_or(false) {
            return Err(Error::new(Kind::NotImplemented, "IPv6 networks are not supported by berth yet"));
        }
        let options = req.options.clone().unwrap_or_default();
        let id = crate::content::random_hex(32);
        let bridge = options.get(BRIDGE_NAME_OPT).cloned().unwrap_or_else(|| format!("br-{}", &id[..12]));
        if bridge.len() > 15 || !valid_name(&bridge) {
            return Err(Error::invalid(format!("invalid bridge name {bridge:?} (at most 15 characters)")));
        }
        let mtu = match options.get(MTU_OPT) {
            Some(m) => m.parse::<u32>().ok().filter(|m| (68..=65535).contains(m)).ok_or_else(|| Error::invalid(format!("invalid MTU {m:?}")))?,
            None => 0,
        };
        let cfgs: Vec<IpamConfig> = req.ipam.as_ref().and_then(|i| i.config.clone()).unwrap_or_default();
        if cfgs.len() > 1 {
            return Err(Error::new(Kind::NotImplemented, "berth networks take one IPv4 pool (one --subnet)"));
        }
        let cfg = cfgs.into_iter().next().unwrap_or_default();
        let subnet = cfg.subnet.as_deref().filter(|s| !s.is_empty()).map(Cidr::parse).transpose()?.map(|c| c.canonical());
        if let Some(s) = subnet {
            if s.prefix > 30 {
                return Err(Error::invalid(format!("subnet {s} is too small for a network")));
            }
        }
        let ip_range = cfg.ip_range.as_deref().filter(|s| !s.is_empty()).map(Cidr::parse).transpose()?;
        let gateway = cfg.gateway.as_deref().filter(|s| !s.is_empty()).map(|g| g.parse::<Ipv4Addr>().map_err(|_| Error::invalid(format!("invalid gateway address {g}")))).transpose()?;
        if subnet.is_none() && (gateway.is_some() || ip_range.is_some()) {
            return Err(Error::invalid("--gateway and --ip-range need --subnet"));
        }
        let rec = self.store.write(|w| {
            if w.get::<String>(NETWORK_NAMES, &name)?.is_some() {
                return Err(Error::conflict(format!("network with name {name} already exists")));
            }
            let all: Vec<NetworkRecord> = w.list::<NetworkRecord>(NETWORKS)?.into_iter().map(|(_, r)| r).collect();
            if all.iter().any(|n| n.bridge == bridge) {
                return Err(Error::conflict(format!("bridge name {bridge} is already used by another network")));
            }
            let taken: Vec<Cidr> = all.iter().filter_map(|n| n.subnet).collect();
            let subnet = match subnet {
                Some(s) => {
                    if let Some(o) = all.iter().find(|n| n.subnet.is_some_and(|t| t.overlaps(&s))) {
                        return Err(Error::conflict(format!("invalid pool request: Pool overlaps with other one on this address space (subnet {s} overlaps network {})", o.name)));
                    }
                    s
                }
                None => ipam::pick_subnet(&taken, &ipam::host_routes())?,
            };
            let gateway = gateway.unwrap_or_else(|| subnet.first_host());
            if !subnet.contains(gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
                return Err(Error::invalid(format!("no matching subnet for gateway {gateway}: it must be a host address of {subnet}")));
            }
            if let Some(r) = ip_range {
                if !subnet.contains(r.network()) || r.prefix < subnet.prefix {
                    return Err(Error::invalid(format!("ip-range {r} is not within subnet {subnet}")));
                }
            }
            let rec = NetworkRecord {
                id: id.clone(),
                name: name.clone(),
                driver: driver.clone(),
                created: now(),
                subnet: Some(subnet),
                gateway: Some(gateway),
                ip_range,
                internal: req.internal.unwrap_or(false),
                attachable: req.attachable.unwrap_or(false),
                labels: req.labels.clone().unwrap_or_default(),
                options: options.clone(),
                bridge: bridge.clone(),
                mtu,
                endpoints: BTreeMap::new(),
                predefined: false,
                own_bridge: false,
            };
            w.put(NETWORK_NAMES, &name, &id)?;
            w.put(NETWORKS, &id, &rec)?;
            Ok(rec)
        })?;
        // Docker makes the bridge at create; a failure undoes the record.
        if let Err(e) = self.bring_up(&rec).and_then(|_| self.apply_firewall()) {
            let _ = self.forget(&rec);
            return Err(e);
        }
        Ok((id, String::new()))
    }

    /// The bridge, its firewall rules and (user-defined networks) its DNS server.
    fn bring_up(&self, n: &NetworkRecord) -> Result<u32> {
        let (Some(s), Some(gw)) = (n.subnet, n.gateway) else { return Err(Error::internal(format!("network {} has no subnet", n.name))) };
        let (idx, made) = self.block_on(link::ensure_bridge(&self.host, &n.bridge, gw, s.prefix, n.mtu))?;
        if made {
            self.store.write(|w| {
                if let Some(mut r) = w.get::<NetworkRecord>(NETWORKS, &n.id)? {
                    r.own_bridge = true;
                    w.put(NETWORKS, &n.id, &r)?;
                }
                Ok(())
            })?;
        }
        if n.user_defined() {
            let mut dns = self.dns.lock().unwrap();
            if !dns.contains_key(&n.id) {
                match self.block_on(dns::DnsServer::start(SocketAddr::from((gw, 53)), self.lookup(), self.reverse(), dns::host_upstreams())) {
                    Ok(d) => {
                        dns.insert(n.id.clone(), d);
                    }
                    Err(e) => tracing::warn!(network = %n.name, "embedded DNS on {gw}:53: {e}; containers there fall back to the host's resolvers"),
                }
            }
        }
        Ok(idx)
    }

    /// Delete a network; refused (inside the transaction, so no start can slip in) while it
    /// has endpoints. The bridge goes first: a crash after it leaves a record that the next
    /// start brings up again, never a bridge nothing knows.
    fn forget(&self, n: &NetworkRecord) -> Result<()> {
        let cur: NetworkRecord = self.store.get(NETWORKS, &n.id)?.ok_or_else(|| Error::not_found(format!("network {} not found", n.name)))?;
        if !cur.endpoints.is_empty() {
            return Err(Error::new(Kind::Forbidden, format!("error while removing network: network {} id {} has active endpoints", n.name, n.id)));
        }
        if let Some(d) = self.dns.lock().unwrap().remove(&n.id) {
            d.stop();
        }
        if cur.own_bridge {
            self.block_on(link::delete(&self.host, &n.bridge))?;
        }
        self.store.write(|w| {
            let r: Option<NetworkRecord> = w.get(NETWORKS, &n.id)?;
            if r.is_some_and(|r| !r.endpoints.is_empty()) {
                return Err(Error::new(Kind::Forbidden, format!("error while removing network: network {} id {} has active endpoints", n.name, n.id)));
            }
            w.delete(NETWORK_NAMES, &n.name)?;
            w.delete(NETWORKS, &n.id)?;
            Ok(())
        })
    }

    /// Is the embedded DNS server of this network answering?
    pub fn dns_running(&self, id: &str) -> bool {
        self.dns.lock().unwrap().contains_key(id)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        let n = self.find(name)?;
        if n.predefined {
            return Err(Error::new(Kind::Forbidden, format!("{} is a pre-defined network and cannot be removed", n.name)));
        }
        self.forget(&n)?;
        self.apply_firewall()
    }

    /// Remove user-defined networks no container refers to; their names.
    pub fn prune(&self, keep: impl Fn(&NetworkRecord) -> bool) -> Result<Vec<String>> {
        let mut gone = vec![];
        for n in self.list_all()? {
            let used = self.in_use.get().is_some_and(|f| f(&n.id) || f(&n.name));
            if n.predefined || !n.endpoints.is_empty() || used || keep(&n) {
                continue;
            }
            // A container may have joined since the list was read: then it stays.
            if self.forget(&n).is_ok() {
                gone.push(n.name);
            }
        }
        if !gone.is_empty() {
            self.apply_firewall()?;
        }
        Ok(gone)
    }

    /// Rewrite the nft table from the store and the published ports.
    pub fn apply_firewall(&self) -> Result<()> {
        let _g = self.fw.lock().unwrap();
        let nets: Vec<NetRule> = self
            .list_all()?
            .into_iter()
            .filter(|n| n.driver == "bridge")
            .filter_map(|n| Some(NetRule { bridge: n.bridge.clone(), subnet: n.subnet?, gateway: n.gateway?, internal: n.internal }))
            .collect();
        let mut ports: Vec<PortRule> = self.ports.lock().unwrap().values().flat_map(|(r, _)| r.clone()).collect();
        ports.sort_by_key(|p| (p.host_port, p.proto.clone()));
        firewall::apply(self.backend, &self.table, &nets, &ports)
    }

    /// Attach a container's namespace to its networks; on error the caller runs `detach`.
    pub fn attach(&self, req: &AttachRequest) -> Result<NetState> {
        let mut state = NetState::default();
        if req.networks.is_empty() {
            return Ok(state);
        }
        let inside = link::connect_in(&self.rt, req.netns)?;
        for (i, (net, cfg)) in req.networks.iter().enumerate() {
            let n = self.find(net)?;
            if n.driver != "bridge" {
                return Err(Error::invalid(format!("container cannot be connected to network {} (driver {})", n.name, n.driver)));
            }
            let a = self.attach_one(&inside, req.id, req.name, req.netns, &n, cfg, i, i == 0)?;
            state.attachments.push(a);
        }
        // Docker publishes nothing from an internal network: it has no way in.
        let internal = self.find(&state.attachments[0].network_id).map(|n| n.internal).unwrap_or(false);
        if !req.ports.is_empty() && !internal {
            let ip = state.attachments[0].ip;
            let (rules, fds) = ports::publish(&req.ports, ip)?;
            state.ports = rules.clone();
            self.ports.lock().unwrap().insert(req.id.to_string(), (rules, fds));
            self.apply_firewall()?;
        }
        Ok(state)
    }

    #[allow(clippy::too_many_arguments)]
    fn attach_one(&self, inside: &rtnetlink::Handle, id: &str, cname: &str, netns: &Path, n: &NetworkRecord, cfg: &EndpointSettings, index: usize, default_route: bool) -> Result<Attachment> {
        let want = cfg.ipam_config.as_ref().and_then(|c| c.ipv4_address.clone()).filter(|s| !s.is_empty());
        let want = want.map(|s| s.parse::<Ipv4Addr>().map_err(|_| Error::invalid(format!("invalid IPv4 address: {s}")))).transpose()?;
        if want.is_some() && n.predefined {
            return Err(Error::invalid("user specified IP address is supported on user defined networks only"));
        }
        let mut aliases: Vec<String> = cfg.aliases.clone().unwrap_or_default();
        if n.user_defined() && !aliases.iter().any(|a| a == &id[..12]) {
            aliases.push(id[..12].to_string());
        }
        // Allocate in one transaction: no address is ever handed out twice.
        let (ip, subnet, gateway) = self.store.write(|w| {
            let mut rec: NetworkRecord = w.get(NETWORKS, &n.id)?.ok_or_else(|| Error::not_found(format!("network {} not found", n.name)))?;
            let (Some(subnet), Some(gw)) = (rec.subnet, rec.gateway) else { return Err(Error::internal("bridge network without a subnet")) };
            let used: Vec<Ipv4Addr> = rec.endpoints.iter().filter(|(c, _)| c.as_str() != id).map(|(_, e)| e.ip).collect();
            let ip = match want {
                Some(ip) => {
                    if !subnet.contains(ip) || ip == gw || ip == subnet.network() || ip == subnet.broadcast() {
                        return Err(Error::invalid(format!("invalid address {ip}: it does not belong to any of this network's subnets ({subnet})")));
                    }
                    if used.contains(&ip) {
                        return Err(Error::conflict(format!("Address already in use: {ip} on network {}", rec.name)));
                    }
                    ip
                }
                None => ipam::allocate(&subnet, rec.ip_range.as_ref(), gw, &used)?,
            };
            let mac = ipam::mac_string(&ipam::mac_for(ip));
            rec.endpoints.insert(id.to_string(), Endpoint { name: cname.to_string(), ip, mac, aliases: aliases.clone() });
            w.put(NETWORKS, &rec.id.clone(), &rec)?;
            Ok((ip, subnet, gw))
        })?;
        let bridge = self.bring_up(n)?;
        let host_veth = veth_name(id, index);
        let ifname = format!("eth{index}");
        let mac = ipam::mac_for(ip);
        self.block_on(async {
            link::delete(&self.host, &host_veth).await?;
            link::add_veth(&self.host, &link::Veth { host_name: &host_veth, bridge, netns, ifname: &ifname, mac, mtu: n.mtu }).await?;
            link::configure_inside(inside, &ifname, ip, subnet.prefix, (default_route && !n.internal).then_some(gateway)).await
        })?;
        Ok(Attachment { network_id: n.id.clone(), network: n.name.clone(), ip, prefix: subnet.prefix, gateway, mac: ipam::mac_string(&mac), ifname, host_veth, aliases })
    }

    /// Undo `attach` (idempotent): veths and port rules removed, then endpoints released.
    pub fn detach(&self, id: &str) {
        let nets = self.list_all().unwrap_or_default();
        for i in 0..nets.len().max(4) {
            // Most containers have no veth to remove: ask the kernel cheaply before netlink.
            let name = veth_name(id, i);
            if nix::net::if_::if_nametoindex(name.as_str()).is_ok() {
                let _ = self.block_on(link::delete(&self.host, &name));
            }
        }
        if self.ports.lock().unwrap().remove(id).is_some() {
            if let Err(e) = self.apply_firewall() {
                tracing::warn!("firewall: {e}");
            }
        }
        for n in nets.iter().filter(|n| n.endpoints.contains_key(id)) {
            let _ = self.store.write(|w| {
                if let Some(mut rec) = w.get::<NetworkRecord>(NETWORKS, &n.id)? {
                    rec.endpoints.remove(id);
                    w.put(NETWORKS, &rec.id.clone(), &rec)?;
                }
                Ok(())
            });
        }
    }

    /// Detach one network from a running container (`network disconnect`): the veth, the
    /// ports published through that address, then the endpoint (so the address is free only
    /// once nothing points at it).
    pub fn detach_one(&self, id: &str, a: &Attachment) -> Result<()> {
        self.block_on(link::delete(&self.host, &a.host_veth))?;
        let had_ports = {
            let mut ports = self.ports.lock().unwrap();
            match ports.get_mut(id) {
                Some((rules, fds)) if rules.iter().any(|r| r.ip == a.ip) => {
                    // Reservations are in rule order.
                    let keep: Vec<bool> = rules.iter().map(|r| r.ip != a.ip).collect();
                    let mut i = 0;
                    rules.retain(|_| { i += 1; keep[i - 1] });
                    let mut j = 0;
                    fds.retain(|_| { j += 1; keep.get(j - 1).copied().unwrap_or(true) });
                    true
                }
                _ => false,
            }
        };
        if had_ports {
            self.apply_firewall()?;
        }
        self.store.write(|w| {
            if let Some(mut rec) = w.get::<NetworkRecord>(NETWORKS, &a.network_id)? {
                rec.endpoints.remove(id);
                w.put(NETWORKS, &rec.id.clone(), &rec)?;
            }
            Ok(())
        })
    }

    /// Attach one more network to a running container (`network connect`).
    pub fn attach_extra(&self, id: &str, name: &str, netns: &Path, net: &str, cfg: &EndpointSettings, index: usize) -> Result<Attachment> {
        let n = self.find(net)?;
        if n.driver != "bridge" {
            return Err(Error::invalid(format!("container cannot be connected to network {} (driver {})", n.name, n.driver)));
        }
        let inside = link::connect_in(&self.rt, netns)?;
        self.attach_one(&inside, id, name, netns, &n, cfg, index, false)
    }

    /// After a berthd restart: a running container's reservations and endpoints back.
    pub fn restore(&self, id: &str, st: &NetState) {
        if !st.ports.is_empty() {
            let fds = ports::rebind(&st.ports);
            self.ports.lock().unwrap().insert(id.to_string(), (st.ports.clone(), fds));
        }
    }

    /// Start-up: bridges and DNS for every bridge network, endpoints of containers that are
    /// no longer running released, the firewall rewritten.
    pub fn recover(&self, running: &dyn Fn(&str) -> bool) -> Result<()> {
        for n in self.list_all()? {
            if n.driver != "bridge" {
                continue;
            }
            let stale: Vec<String> = n.endpoints.keys().filter(|c| !running(c)).cloned().collect();
            if !stale.is_empty() {
                self.store.write(|w| {
                    if let Some(mut rec) = w.get::<NetworkRecord>(NETWORKS, &n.id)? {
                        for c in &stale {
                            rec.endpoints.remove(c);
                        }
                        w.put(NETWORKS, &rec.id.clone(), &rec)?;
                    }
                    Ok(())
                })?;
                for c in &stale {
                    for i in 0..4 {
                        let _ = self.block_on(link::delete(&self.host, &veth_name(c, i)));
                    }
                }
            }
            if let Err(e) = self.bring_up(&n) {
                tracing::warn!(network = %n.name, "bringing the network up: {e}");
            }
        }
        // Without nft containers still run; only NAT and published ports are missing.
        if let Err(e) = self.apply_firewall() {
            tracing::warn!("firewall: {e}");
        }
        Ok(())
    }

    /// Graceful stop with nothing running: bridges and the firewall table go (made again on
    /// the next start), so a stopped berthd leaves the host as it found it.
    pub fn shutdown(&self) {
        for (_, d) in self.dns.lock().unwrap().drain() {
            d.stop();
        }
        let nets = self.list_all().unwrap_or_default();
        if nets.iter().any(|n| !n.endpoints.is_empty()) {
            return;
        }
        for n in nets.iter().filter(|n| !n.bridge.is_empty() && n.own_bridge) {
            let _ = self.block_on(link::delete(&self.host, &n.bridge));
            let _ = self.store.write(|w| {
                if let Some(mut r) = w.get::<NetworkRecord>(NETWORKS, &n.id)? {
                    r.own_bridge = false;
                    w.put(NETWORKS, &n.id, &r)?;
                }
                Ok(())
            });
        }
        let _ = firewall::clear(self.backend, &self.table);
    }

    pub fn default_bridge(&self) -> &str {
        &self.default_bridge
    }

    /// DNS: names on the network the asking container is on.
    fn lookup(&self) -> dns::Lookup {
        let me = self.me.clone();
        Arc::new(move |client: Ipv4Addr, q: &str| {
            let svc = me.upgrade()?;
            let nets = svc.list_all().ok()?;
            let mine = networks_of_client(&nets, client);
            let mut out = vec![];
            for n in mine {
                let q = q.strip_suffix(&format!(".{}", n.name.to_ascii_lowercase())).unwrap_or(q);
                for e in n.endpoints.values() {
                    if e.name.eq_ignore_ascii_case(q) || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(q)) {
                        out.push(e.ip);
                    }
                }
            }
            (!out.is_empty()).then_some(out)
        })
    }

    fn reverse(&self) -> dns::Reverse {
        let me = self.me.clone();
        Arc::new(move |client: Ipv4Addr, ip: Ipv4Addr| {
            let svc = me.upgrade()?;
            let nets = svc.list_all().ok()?;
            networks_of_client(&nets, client)
                .into_iter()
                .find_map(|n| n.endpoints.values().find(|e| e.ip == ip).map(|e| format!("{}.{}", e.name, n.name)))
        })
    }

    /// Docker's network inspect shape.
    pub fn inspect(&self, n: &NetworkRecord) -> NetworkInspect {
        let containers: HashMap<String, EndpointResource> = n
            .endpoints
            .iter()
            .map(|(cid, e)| {
                let res = EndpointResource {
                    name: Some(e.name.clone()),
                    endpoint_id: Some(endpoint_id(&n.id, cid)),
                    mac_address: Some(e.mac.clone()),
                    ipv4_address: Some(format!("{}/{}", e.ip, n.subnet.map(|s| s.prefix).unwrap_or(32))),
                    ipv6_address: Some(String::new()),
                };
                (cid.clone(), res)
            })
            .collect();
        let config: Vec<IpamConfig> = n
            .subnet
            .map(|s| IpamConfig { subnet: Some(s.to_string()), gateway: n.gateway.map(|g| g.to_string()), ip_range: n.ip_range.map(|r| r.to_string()), ..Default::default() })
            .into_iter()
            .collect();
        NetworkInspect {
            name: Some(n.name.clone()),
            id: Some(n.id.clone()),
            created: Some(n.created.clone()),
            scope: Some("local".into()),
            driver: Some(n.driver.clone()),
            enable_ipv4: Some(n.driver == "bridge"),
            enable_ipv6: Some(false),
            ipam: Some(Ipam { driver: Some("default".into()), config: Some(config), options: Some(HashMap::new()) }),
            internal: Some(n.internal),
            attachable: Some(n.attachable),
            ingress: Some(false),
            config_only: Some(false),
            options: Some(n.options.clone()),
            labels: Some(n.labels.clone()),
            containers: Some(containers),
            ..Default::default()
        }
    }
}

/// The user-defined networks of the container that asks from `client` (it may ask on any
/// of its networks' gateways, and sees the names of all of them, as with Docker).
fn networks_of_client(nets: &[NetworkRecord], client: Ipv4Addr) -> Vec<&NetworkRecord> {
    let asker: Vec<&String> = nets.iter().filter(|n| n.user_defined()).flat_map(|n| n.endpoints.iter().filter(|(_, e)| e.ip == client).map(|(c, _)| c)).collect();
    nets.iter().filter(|n| n.user_defined() && n.endpoints.keys().any(|c| asker.contains(&c))).collect()
}

/// The host end of a container's `index`th veth: unique per container, at most 15 bytes.
pub fn veth_name(id: &str, index: usize) -> String {
    format!("vb{}{index:x}", &id[..10.min(id.len())])
}

pub fn endpoint_id(net: &str, container: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("{net}/{container}")))
}
