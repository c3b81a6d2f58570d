//! Read side: ps, inspect, logs, top.

use super::io::{self, Stream};
use super::record::{ContainerRecord, Status};
use super::redb_tables::CONTAINERS;
use super::ContainerService;
use crate::errors::{Error, Result};
use bollard_stubs::models::{ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum, ContainerTopResponse, DriverData};
use std::collections::HashMap;

#[derive(Default)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<usize>,
    pub filters: HashMap<String, Vec<String>>,
}

pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    pub tail: Option<usize>,
    pub since: Option<f64>,
    pub until: Option<f64>,
}

fn ts(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

fn unix(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp()).unwrap_or(0)
}

/// Docker's human status: "Up 5 minutes", "Exited (0) 2 seconds ago", "Created".
fn human_status(r: &ContainerRecord) -> String {
    let ago = |t: &Option<String>| {
        let secs = t.as_deref().map(|t| (chrono::Utc::now().timestamp() - unix(t)).max(0)).unwrap_or(0);
        human_duration(secs)
    };
    match r.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", ago(&r.state.started_at)),
        Status::Paused => format!("Up {} (Paused)", ago(&r.state.started_at)),
        Status::Restarting => format!("Restarting ({}) {} ago", r.state.exit_code, ago(&r.state.finished_at)),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!("Exited ({}) {} ago", r.state.exit_code, ago(&r.state.finished_at)),
        Status::Dead => "Dead".into(),
    }
}

fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 172800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

impl ContainerService {
    pub fn list(&self, opts: &ListOptions) -> Result<Vec<ContainerSummary>> {
        let mut recs: Vec<ContainerRecord> = self.store.list::<ContainerRecord>(CONTAINERS)?.into_iter().map(|(_, r)| r).collect();
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let mut out = Vec::new();
        for r in recs {
            let has_status_filter = opts.filters.contains_key("status");
            if !opts.all && !has_status_filter && !r.state.status.is_live() && r.state.status != Status::Restarting {
                continue;
            }
            if !self.matches(&r, &opts.filters)? {
                continue;
            }
            out.push(self.summary(&r));
            if opts.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    fn matches(&self, r: &ContainerRecord, f: &HashMap<String, Vec<String>>) -> Result<bool> {
        for (k, vals) in f {
            if vals.is_empty() {
                continue;
            }
            let ok = match k.as_str() {
                "status" => vals.iter().any(|v| v == r.state.status.as_str()),
                "name" => vals.iter().any(|v| r.name.contains(v.trim_start_matches('/'))),
                "id" => vals.iter().any(|v| r.id.starts_with(v.as_str())),
                "label" => vals.iter().all(|v| {
                    let labels = r.config.labels.clone().unwrap_or_default();
                    match v.split_once('=') {
                        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                        None => labels.contains_key(v.as_str()),
                    }
                }),
                "ancestor" => vals.iter().any(|v| r.image == *v || self.images.resolve(v).map(|i| i.id == r.image_id).unwrap_or(false)),
                "exited" => vals.iter().any(|v| r.state.status == Status::Exited && v.parse::<i64>().ok() == Some(r.state.exit_code)),
                "before" | "since" => {
                    let other = self.find(&vals[0])?;
                    if k == "before" { r.created < other.created } else { r.created > other.created }
                }
                "volume" => vals.iter().any(|v| Self::volume_names(r).contains(v) || self.mount_points(r).iter().any(|m| m.destination.as_deref() == Some(v.as_str()))),
                "network" => vals.iter().any(|v| r.bridge_networks().iter().any(|(n, _)| n == v) || r.network_mode() == *v || self.networks.find(v).is_ok_and(|n| r.bridge_networks().iter().any(|(k, _)| *k == n.name))),
                "health" | "publish" | "expose" | "isolation" | "is-task" => true,
                other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn command(r: &ContainerRecord) -> String {
        std::iter::once(r.path.as_str()).chain(r.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
    }

    fn summary(&self, r: &ContainerRecord) -> ContainerSummary {
        let state = match r.state.status {
            Status::Created => ContainerSummaryStateEnum::CREATED,
            Status::Running => ContainerSummaryStateEnum::RUNNING,
            Status::Paused => ContainerSummaryStateEnum::PAUSED,
            Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
            Status::Removing => ContainerSummaryStateEnum::REMOVING,
            Status::Exited => ContainerSummaryStateEnum::EXITED,
            Status::Dead => ContainerSummaryStateEnum::DEAD,
        };
        ContainerSummary {
            id: Some(r.id.clone()),
            names: Some(vec![format!("/{}", r.name)]),
            image: Some(r.image.clone()),
            image_id: Some(r.image_id.clone()),
            command: Some(Self::command(r)),
            created: Some(unix(&r.created)),
            ports: Some(Self::summary_ports(r)),
            labels: Some(r.config.labels.clone().unwrap_or_default()),
            state: Some(state),
            status: Some(human_status(r)),
            mounts: Some(self.mount_points(r)),
            ..Default::default()
        }
    }

    /// `docker ps`'s PORTS: each published port, or the exposed ones without bindings.
    fn summary_ports(r: &ContainerRecord) -> Vec<bollard_stubs::models::PortSummary> {
        use bollard_stubs::models::{PortSummary, PortSummaryTypeEnum};
        let typ = |p: &str| if p == "udp" { PortSummaryTypeEnum::UDP } else { PortSummaryTypeEnum::TCP };
        let rules = r.net.as_ref().map(|n| n.ports.clone()).unwrap_or_default();
        let mut out: Vec<PortSummary> = rules
            .iter()
            .map(|p| PortSummary { ip: Some(p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED).to_string()), private_port: p.port, public_port: Some(p.host_port), typ: Some(typ(&p.proto)) })
            .collect();
        for e in r.config.exposed_ports.clone().unwrap_or_default() {
            let (port, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
            let Ok(port) = port.parse::<u16>() else { continue };
            if !rules.iter().any(|p| p.port == port && p.proto == proto) {
                out.push(PortSummary { ip: None, private_port: port, public_port: None, typ: Some(typ(proto)) });
            }
        }
        out
    }

    pub fn inspect(&self, name: &str) -> Result<ContainerInspectResponse> {
        let r = self.find(name)?;
        let status = match r.state.status {
            Status::Created => ContainerStateStatusEnum::CREATED,
            Status::Running => ContainerStateStatusEnum::RUNNING,
            Status::Paused => ContainerStateStatusEnum::PAUSED,
            Status::Restarting => ContainerStateStatusEnum::RESTARTING,
            Status::Removing => ContainerStateStatusEnum::REMOVING,
            Status::Exited => ContainerStateStatusEnum::EXITED,
            Status::Dead => ContainerStateStatusEnum::DEAD,
        };
        let data = self.data_dir(&r.id);
        let mut gd = HashMap::new();
        gd.insert("UpperDir".to_string(), data.join("upper").display().to_string());
        gd.insert("WorkDir".to_string(), data.join("work").display().to_string());
        gd.insert("MergedDir".to_string(), self.run_dir(&r.id).join("rootfs").display().to_string());
        let execs: Vec<String> = self.execs.lock().unwrap().values().filter(|e| e.container == r.id).map(|e| e.id.clone()).collect();
        Ok(ContainerInspectResponse {
            id: Some(r.id.clone()),
            created: Some(r.created.clone()),
            path: Some(r.path.clone()),
            args: Some(r.args.clone()),
            state: Some(ContainerState {
                status: Some(status),
                running: Some(r.state.status.is_live()),
                paused: Some(r.state.status == Status::Paused),
                restarting: Some(r.state.status == Status::Restarting),
                oom_killed: Some(r.state.oom_killed),
                dead: Some(r.state.status == Status::Dead),
                pid: Some(r.state.pid as i64),
                exit_code: Some(r.state.exit_code),
                error: Some(r.state.error.clone()),
                started_at: Some(ts(&r.state.started_at)),
                finished_at: Some(ts(&r.state.finished_at)),
                ..Default::default()
            }),
            image: Some(r.image_id.clone()),
            resolv_conf_path: Some(data.join("resolv.conf").display().to_string()),
            hostname_path: Some(data.join("hostname").display().to_string()),
            hosts_path: Some(data.join("hosts").display().to_string()),
            log_path: Some(self.log_path(&r.id).display().to_string()),
            name: Some(format!("/{}", r.name)),
            restart_count: Some(r.restart_count),
            driver: Some("overlay2".into()),
            platform: Some("linux".into()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: (!execs.is_empty()).then_some(execs),
            host_config: Some(r.host_config.clone()),
            graph_driver: Some(DriverData { name: "overlay2".into(), data: gd }),
            mounts: Some(self.mount_points(&r)),
            config: Some(r.config.clone()),
            network_settings: Some(self.network_settings(&r)),
            ..Default::default()
        })
    }

    /// Docker's `NetworkSettings`: one entry per network (keyed by name), addresses while
    /// running, every exposed port with its host bindings.
    fn network_settings(&self, r: &ContainerRecord) -> bollard_stubs::models::NetworkSettings {
        use bollard_stubs::models::EndpointSettings;
        let mode = r.network_mode();
        let mut nets = HashMap::new();
        let st = r.net.clone().unwrap_or_default();
        if mode == "host" || mode == "none" {
            let id = self.networks.find(&mode).map(|n| n.id).ok();
            nets.insert(mode.clone(), EndpointSettings { network_id: id, ..Default::default() });
        }
        for (name, cfg) in r.bridge_networks() {
            let n = self.networks.find(&name).ok();
            let key = n.as_ref().map(|n| n.name.clone()).unwrap_or(name.clone());
            let a = n.as_ref().and_then(|n| st.attachments.iter().find(|a| a.network_id == n.id));
            let mut e = EndpointSettings {
                ipam_config: cfg.ipam_config.clone(),
                links: cfg.links.clone(),
                aliases: cfg.aliases.clone(),
                network_id: n.as_ref().map(|n| n.id.clone()),
                mac_address: Some(String::new()),
                gateway: Some(String::new()),
                ip_address: Some(String::new()),
                ip_prefix_len: Some(0),
                ipv6_gateway: Some(String::new()),
                global_ipv6_address: Some(String::new()),
                global_ipv6_prefix_len: Some(0),
                endpoint_id: Some(String::new()),
                ..Default::default()
            };
            if let (Some(a), Some(n)) = (a, n.as_ref()) {
                e.endpoint_id = Some(crate::network::endpoint_id(&n.id, &r.id));
                e.mac_address = Some(a.mac.clone());
                e.gateway = Some(a.gateway.to_string());
                e.ip_address = Some(a.ip.to_string());
                e.ip_prefix_len = Some(a.prefix as i64);
                if n.user_defined() {
                    e.dns_names = Some(std::iter::once(r.name.clone()).chain(a.aliases.iter().cloned()).collect());
                }
            }
            nets.insert(key, e);
        }
        let exposed = r.config.exposed_ports.clone().unwrap_or_default();
        bollard_stubs::models::NetworkSettings {
            sandbox_id: Some(r.id.clone()),
            sandbox_key: (mode != "host" && r.state.status.is_live()).then(|| super::netns::path(&self.exec_root, &r.id).display().to_string()),
            ports: Some(crate::network::ports::port_map(&st.ports, &exposed)),
            networks: Some(nets),
        }
    }

    /// The log as Docker frames it: 8-byte multiplexed frames without a TTY, raw with one.
    pub fn read_logs(&self, r: &ContainerRecord, o: &LogOptions) -> Vec<u8> {
        let entries = io::read_log(&self.log_path(&r.id), super::lifecycle::log_files(&r.host_config));
        let selected: Vec<&io::LogEntry> = entries
            .iter()
            .filter(|e| (e.stream == "stdout" && o.stdout) || (e.stream == "stderr" && o.stderr))
            .filter(|e| {
                let t = chrono::DateTime::parse_from_rfc3339(&e.time).map(|t| t.timestamp() as f64 + t.timestamp_subsec_nanos() as f64 / 1e9).unwrap_or(0.0);
                o.since.is_none_or(|s| t >= s) && o.until.is_none_or(|u| t <= u)
            })
            .collect();
        let start = o.tail.map(|n| selected.len().saturating_sub(n)).unwrap_or(0);
        let mut out = Vec::new();
        for e in &selected[start..] {
            let stream = if e.stream == "stderr" { Stream::Stderr } else { Stream::Stdout };
            let mut line = Vec::new();
            if o.timestamps {
                line.extend_from_slice(e.time.as_bytes());
                line.push(b' ');
            }
            line.extend_from_slice(e.log.as_bytes());
            out.extend(if r.tty() { line } else { io::frame(stream, &line) });
        }
        out
    }

    /// `top`: the container's processes through `ps`, like Docker (its pids from the shim).
    pub async fn top(&self, name: &str, ps_args: &str) -> Result<ContainerTopResponse> {
        let r = self.find(name)?;
        let live = self.live(&r.id).filter(|_| r.state.status.is_live()).ok_or_else(|| Error::conflict(format!("Container {} is not running", r.id)))?;
        let shim = live.shim.clone();
        let pids = tokio::task::spawn_blocking(move || shim.pids()).await.map_err(|e| Error::internal(e.to_string()))??;
        let args: Vec<String> = if ps_args.is_empty() { vec!["-ef".into()] } else { ps_args.split_whitespace().map(str::to_string).collect() };
        let out = tokio::process::Command::new("ps").args(&args).output().await.map_err(|e| Error::internal(format!("ps: {e}")))?;
        if !out.status.success() {
            return Err(Error::invalid(format!("ps: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or("");
        let titles: Vec<String> = header.split_whitespace().map(str::to_string).collect();
        let pid_col = titles.iter().position(|t| t == "PID").ok_or_else(|| Error::invalid("ps output has no PID column"))?;
        let mut procs = Vec::new();
        for l in lines {
            let fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() < titles.len() {
                continue;
            }
            let Ok(pid) = fields[pid_col].parse::<u32>() else { continue };
            if !pids.contains(&pid) {
                continue;
            }
            let mut row: Vec<String> = fields[..titles.len() - 1].iter().map(|s| s.to_string()).collect();
            row.push(fields[titles.len() - 1..].join(" "));
            procs.push(row);
        }
        Ok(ContainerTopResponse { titles: Some(titles), processes: Some(procs) })
    }
}
