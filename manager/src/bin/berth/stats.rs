//! `stats`: resource usage computed from the daemon's stats JSON as docker does (CPU % from
//! the deltas against `precpu_stats`, memory without the inactive file cache).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use bollard_stubs::models::{ContainerStatsResponse, ContainerSummary};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use crate::client::{Client, Lines, Req};
use crate::format::{ListFormat, Val};
use crate::units;
use crate::{Ctx, StatusError};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub all: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long = "format", value_name = "STRING")]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub no_trunc: bool,
    /// Containers (default: all running)
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

const STATS_TABLE: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

fn stats_header() -> Val {
    Val::obj(
        [
            ("Container", "CONTAINER"),
            ("Name", "NAME"),
            ("ID", "CONTAINER ID"),
            ("CPUPerc", "CPU %"),
            ("MemUsage", "MEM USAGE / LIMIT"),
            ("MemPerc", "MEM %"),
            ("NetIO", "NET I/O"),
            ("BlockIO", "BLOCK I/O"),
            ("PIDs", "PIDS"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), Val::from(*v)))
        .collect(),
    )
}

/// One container's figures (docker's StatsEntry).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub container: String,
    pub name: String,
    pub id: String,
    pub cpu_percent: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percent: f64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: u64,
    /// No data (yet), or the container went away.
    pub invalid: bool,
}

/// CPU % = container delta / system delta × online CPUs × 100.
pub fn cpu_percent(s: &ContainerStatsResponse) -> f64 {
    let cur = s.cpu_stats.clone().unwrap_or_default();
    let pre = s.precpu_stats.clone().unwrap_or_default();
    let total = |c: &bollard_stubs::models::ContainerCpuStats| c.cpu_usage.as_ref().and_then(|u| u.total_usage).unwrap_or(0) as f64;
    let cpu_delta = total(&cur) - total(&pre);
    let system_delta = cur.system_cpu_usage.unwrap_or(0) as f64 - pre.system_cpu_usage.unwrap_or(0) as f64;
    let mut online = f64::from(cur.online_cpus.unwrap_or(0));
    if online == 0.0 {
        online = cur
            .cpu_usage
            .as_ref()
            .and_then(|u| u.percpu_usage.as_ref())
            .map(|p| p.len() as f64)
            .unwrap_or(0.0);
    }
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    }
}

/// Memory in use without the inactive file cache (cgroup v1 `total_inactive_file`, v2
/// `inactive_file`).
pub fn memory_usage(s: &ContainerStatsResponse) -> f64 {
    let Some(mem) = &s.memory_stats else { return 0.0 };
    let usage = mem.usage.unwrap_or(0);
    let stats = mem.stats.clone().unwrap_or_default();
    if let Some(&v) = stats.get("total_inactive_file") {
        if v < usage {
            return (usage - v) as f64;
        }
    }
    let v = stats.get("inactive_file").copied().unwrap_or(0);
    if v < usage {
        return (usage - v) as f64;
    }
    usage as f64
}

pub fn entry(container: &str, s: &ContainerStatsResponse) -> Entry {
    let memory = memory_usage(s);
    let limit = s.memory_stats.as_ref().and_then(|m| m.limit).unwrap_or(0) as f64;
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in s.networks.clone().unwrap_or_default().values() {
        rx += n.rx_bytes.unwrap_or(0) as f64;
        tx += n.tx_bytes.unwrap_or(0) as f64;
    }
    let (mut read, mut write) = (0.0, 0.0);
    for e in s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.clone())
        .unwrap_or_default()
    {
        match e.op.unwrap_or_default().to_lowercase().as_str() {
            "read" => read += e.value.unwrap_or(0) as f64,
            "write" => write += e.value.unwrap_or(0) as f64,
            _ => {}
        }
    }
    Entry {
        container: container.to_string(),
        name: s.name.clone().unwrap_or_default(),
        id: s.id.clone().unwrap_or_default(),
        cpu_percent: cpu_percent(s),
        memory,
        memory_limit: limit,
        memory_percent: if limit != 0.0 { memory / limit * 100.0 } else { 0.0 },
        net_rx: rx,
        net_tx: tx,
        block_read: read,
        block_write: write,
        pids: s.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
        invalid: false,
    }
}

fn row(e: &Entry, trunc: bool) -> Val {
    let pct = |v: f64| format!("{v:.2}%");
    let dec = |v: f64| units::human_size_prec(v as i64, 3);
    let name = if e.name.len() > 1 { e.name[1..].to_string() } else { "--".to_string() };
    let id = if trunc { units::short_id(&e.id) } else { e.id.clone() };
    let (cpu, mem, mem_pct, net, block, pids) = if e.invalid {
        ("--".to_string(), "-- / --".to_string(), "--".to_string(), "--".to_string(), "--".to_string(), "--".to_string())
    } else {
        (
            pct(e.cpu_percent),
            format!("{} / {}", units::bytes_size(e.memory as i64), units::bytes_size(e.memory_limit as i64)),
            pct(e.memory_percent),
            format!("{} / {}", dec(e.net_rx), dec(e.net_tx)),
            format!("{} / {}", dec(e.block_read), dec(e.block_write)),
            e.pids.to_string(),
        )
    };
    Val::obj(vec![
        ("BlockIO", Val::from(block)),
        ("CPUPerc", Val::from(cpu)),
        ("Container", Val::from(e.container.clone())),
        ("ID", Val::from(id)),
        ("MemPerc", Val::from(mem_pct)),
        ("MemUsage", Val::from(mem)),
        ("Name", Val::from(name)),
        ("NetIO", Val::from(net)),
        ("PIDs", Val::from(pids)),
    ])
}

/// One sample (`stream=0`: the daemon waits for a second reading so CPU % has a delta).
async fn sample(client: &Client, name: &str) -> anyhow::Result<Entry> {
    let s: ContainerStatsResponse = client
        .json(Req::get(format!("/containers/{name}/stats")).query("stream", "0"))
        .await?;
    Ok(entry(name, &s))
}

type Shared = Arc<Mutex<HashMap<String, Entry>>>;

/// Follows `stream=1` for one container, keeping its latest entry.
fn follow(client: &Client, name: String, shared: Shared) {
    let client = client.clone();
    tokio::spawn(async move {
        let resp = match client
            .send(Req::get(format!("/containers/{name}/stats")).query("stream", "1"))
            .await
        {
            Ok(r) => r,
            Err(_) => {
                if let Ok(mut m) = shared.lock() {
                    m.entry(name.clone()).or_default().invalid = true;
                }
                return;
            }
        };
        let mut lines = Lines::new(resp);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(s) = serde_json::from_slice::<ContainerStatsResponse>(&line) {
                if let Ok(mut m) = shared.lock() {
                    m.insert(name.clone(), entry(&name, &s));
                }
            }
        }
        if let Ok(mut m) = shared.lock() {
            if let Some(e) = m.get_mut(&name) {
                e.invalid = true;
            }
        }
    });
}

pub async fn stats(ctx: &Ctx, args: StatsArgs) -> anyhow::Result<()> {
    let client = &ctx.client;
    let configured = crate::attach::config_setting(ctx, "statsFormat");
    let format = ListFormat::parse(args.format.as_deref().or(configured.as_deref()), STATS_TABLE)?;
    let trunc = !args.no_trunc;
    let names: Vec<String> = if args.containers.is_empty() {
        let list: Vec<ContainerSummary> = client.json(Req::get("/containers/json").flag("all", args.all)).await?;
        // docker names listed containers by their short ID
        list.into_iter().filter_map(|c| c.id).map(|id| units::short_id(&id)).collect()
    } else {
        args.containers.clone()
    };

    if args.no_stream {
        let results = futures_util::future::join_all(names.iter().map(|n| sample(client, n))).await;
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(e) => entries.push(e),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() && !args.containers.is_empty() {
            return Err(StatusError {
                code: 1,
                message: errors.join("\n"),
            }
            .into());
        }
        let rows: Vec<Val> = entries.iter().map(|e| row(e, trunc)).collect();
        print!("{}", format.render(&stats_header(), &rows)?);
        return Ok(());
    }

    // Streaming: a follower per container, the screen redrawn twice a second.
    if !args.containers.is_empty() {
        // names that do not exist fail up front, as docker reports them
        let mut errors = Vec::new();
        for n in &names {
            if let Err(e) = client.call(Req::get(format!("/containers/{n}/json"))).await {
                errors.push(e.to_string());
            }
        }
        if !errors.is_empty() {
            return Err(anyhow!(errors.join("\n")));
        }
    }
    let shared: Shared = Arc::new(Mutex::new(HashMap::new()));
    for n in &names {
        shared.lock().map_err(|_| anyhow!("stats lock poisoned"))?.insert(
            n.clone(),
            Entry {
                container: n.clone(),
                invalid: true,
                ..Default::default()
            },
        );
        follow(client, n.clone(), shared.clone());
    }
    // Give the first samples a moment (up to 1.5 s) so the first screen is not all dashes.
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        let all_in = shared
            .lock()
            .map(|m| m.values().all(|e| !e.invalid))
            .unwrap_or(true);
        if all_in {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    print!("\x1b[2J");
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        ticker.tick().await;
        let rows: Vec<Val> = {
            let m = shared.lock().map_err(|_| anyhow!("stats lock poisoned"))?;
            names.iter().filter_map(|n| m.get(n)).map(|e| row(e, trunc)).collect()
        };
        let text = format.render(&stats_header(), &rows)?;
        let mut out = String::from("\x1b[H");
        for line in text.lines() {
            out.push_str(line);
            out.push_str("\x1b[K\n");
        }
        out.push_str("\x1b[J");
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_like_docker() {
        let s: ContainerStatsResponse = serde_json::from_str(
            r#"{"id":"abcdef0123456789abcdef","name":"/web","read":"2024-01-01T00:00:01Z",
                "cpu_stats":{"cpu_usage":{"total_usage":300000000},"system_cpu_usage":20000000000,"online_cpus":2},
                "precpu_stats":{"cpu_usage":{"total_usage":100000000},"system_cpu_usage":18000000000,"online_cpus":2},
                "memory_stats":{"usage":10485760,"limit":104857600,"stats":{"inactive_file":2097152}},
                "networks":{"eth0":{"rx_bytes":1500,"tx_bytes":2500},"eth1":{"rx_bytes":500,"tx_bytes":0}},
                "blkio_stats":{"io_service_bytes_recursive":[{"major":8,"minor":0,"op":"Read","value":4096},{"major":8,"minor":0,"op":"write","value":8192},{"major":8,"minor":0,"op":"Total","value":12288}]},
                "pids_stats":{"current":3}}"#,
        )
        .unwrap();
        let e = entry("web", &s);
        assert!((e.cpu_percent - 20.0).abs() < 1e-9, "{}", e.cpu_percent);
        assert_eq!(e.memory, 8388608.0);
        assert!((e.memory_percent - 8.0).abs() < 1e-9);
        let r = row(&e, true);
        let g = |k: &str| r.get(k).and_then(Val::as_str).unwrap_or("").to_string();
        assert_eq!(g("CPUPerc"), "20.00%");
        assert_eq!(g("MemUsage"), "8MiB / 100MiB");
        assert_eq!(g("MemPerc"), "8.00%");
        assert_eq!(g("NetIO"), "2kB / 2.5kB");
        assert_eq!(g("BlockIO"), "4.1kB / 8.19kB");
        assert_eq!(g("PIDs"), "3");
        assert_eq!(g("Name"), "web");
        assert_eq!(g("ID"), "abcdef012345");
        // cgroup v1 figures
        let s: ContainerStatsResponse = serde_json::from_str(
            r#"{"memory_stats":{"usage":1000,"limit":0,"stats":{"total_inactive_file":400,"inactive_file":100}}}"#,
        )
        .unwrap();
        assert_eq!(memory_usage(&s), 600.0);
        let e = entry("x", &s);
        assert_eq!(e.memory_percent, 0.0);
        let r = row(&Entry { invalid: true, ..e }, true);
        assert_eq!(r.get("MemUsage").and_then(Val::as_str), Some("-- / --"));
        assert_eq!(r.get("Name").and_then(Val::as_str), Some("--"));
    }
}
