//! Network commands: the `network` group (create, ls, inspect, rm, connect, disconnect,
//! prune), with docker 28's flags and output.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::anyhow;
use bollard_stubs::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkPruneResponse, NetworkSummary,
};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Subcommand};

use crate::client::{filters_json, Req};
use crate::container::natural_cmp;
use crate::format::{ListFormat, Val};
use crate::image::confirm;
use crate::inspect::{self, Kind};
use crate::ps::{add_label_fields, rewrite_label_calls};
use crate::units;
use crate::{Ctx, StatusError};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(name = "ls", visible_alias = "list")]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(name = "rm", visible_alias = "remove")]
    Rm(RmArgs),
}

pub async fn run(ctx: &Ctx, cmd: NetworkCommand) -> anyhow::Result<()> {
    match cmd {
        NetworkCommand::Connect(a) => connect(ctx, a).await,
        NetworkCommand::Create(a) => create(ctx, a).await,
        NetworkCommand::Disconnect(a) => disconnect(ctx, a).await,
        NetworkCommand::Inspect(a) => inspect(ctx, a).await,
        NetworkCommand::Ls(a) => list(ctx, a).await,
        NetworkCommand::Prune(a) => prune(ctx, a).await,
        NetworkCommand::Rm(a) => remove(ctx, a).await,
    }
}

/// docker's error for a flag value its parser refuses (exit 125); `command` is the full
/// path, e.g. `network create`.
fn flag_error(command: &str, flag: &str, value: &str, why: &str) -> anyhow::Error {
    StatusError {
        code: 125,
        message: format!("invalid argument \"{value}\" for \"{flag}\" flag: {why}\nSee 'berth {command} --help'."),
    }
    .into()
}

/// docker's ValidateLabel on each `--label` of `command`.
pub fn validate_labels(command: &str, labels: &[String]) -> anyhow::Result<()> {
    for l in labels {
        let key = l.split_once('=').map(|(k, _)| k).unwrap_or(l).trim_start();
        if key.is_empty() {
            return Err(flag_error(command, "--label", l, &format!("invalid label '{l}': empty name")));
        }
        if key.contains(char::is_whitespace) {
            return Err(flag_error(command, "--label", l, &format!("label '{key}' contains whitespaces")));
        }
    }
    Ok(())
}

/// The docker client's check on a name or ID before any request.
pub fn trim_id(kind: &str, id: &str) -> anyhow::Result<String> {
    match id.trim() {
        "" => Err(anyhow!("invalid {kind} name or ID: value is empty")),
        id => Ok(id.to_string()),
    }
}

/// `k=v` flags into a map (docker's MapOpts: no `=` means an empty value).
pub fn kv_map(values: &[String]) -> HashMap<String, String> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// create

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Enable manual container attachment
    #[arg(long = "attachable", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub attachable: bool,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address", value_name = "map")]
    pub aux_address: Vec<String>,
    /// The network from which to copy the configuration
    #[arg(long = "config-from", value_name = "string")]
    pub config_from: Option<String>,
    /// Create a configuration only network
    #[arg(long = "config-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub config_only: bool,
    /// Driver to manage the Network
    #[arg(short = 'd', long = "driver", value_name = "string", default_value = "bridge")]
    pub driver: String,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long = "gateway", value_name = "strings", value_delimiter = ',')]
    pub gateway: Vec<String>,
    /// Create swarm routing-mesh network
    #[arg(long = "ingress", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub ingress: bool,
    /// Restrict external access to the network
    #[arg(long = "internal", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub internal: bool,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_name = "strings", value_delimiter = ',')]
    pub ip_range: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", value_name = "string", default_value = "default")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt", value_name = "map")]
    pub ipam_opt: Vec<String>,
    /// Enable or disable IPv4 address assignment (default true)
    #[arg(long = "ipv4", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub ipv4: Option<bool>,
    /// Enable or disable IPv6 address assignment
    #[arg(long = "ipv6", num_args = 0..=1, require_equals = true, default_missing_value = "true", hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub ipv6: Option<bool>,
    /// Set metadata on a network
    #[arg(long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// Control the network's scope
    #[arg(long = "scope", value_name = "string")]
    pub scope: Option<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long = "subnet", value_name = "strings", value_delimiter = ',')]
    pub subnet: Vec<String>,
    /// Network name
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

/// The create body: bollard's request plus `CheckDuplicate`, which it no longer models
/// (daemons before API 1.44 need it; later ones ignore it).
#[derive(serde::Serialize, Debug)]
struct CreateBody {
    #[serde(flatten)]
    request: NetworkCreateRequest,
    #[serde(rename = "CheckDuplicate")]
    check_duplicate: bool,
}

/// A CIDR as Go's net.ParseCIDR reads it: (network bits, prefix length, address width).
fn parse_cidr(s: &str) -> Result<(u128, u32, u32), String> {
    let bad = || format!("invalid CIDR address: {s}");
    let (ip, len) = s.split_once('/').ok_or_else(bad)?;
    let (bits, width) = ip_bits(ip.parse().map_err(|_| bad())?);
    let len: u32 = if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) {
        len.parse().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    if len > width {
        return Err(bad());
    }
    Ok((bits, len, width))
}

/// An address as (bits, width); an IPv4-mapped IPv6 address counts as IPv4, as in Go.
fn ip_bits(ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (u32::from(v4) as u128, 32),
            None => (u128::from(v6), 128),
        },
    }
}

/// Does `subnet` contain the address (or CIDR's address) `data`? (docker's subnetMatches)
fn subnet_matches(subnet: &str, data: &str) -> Result<bool, String> {
    let (net, len, width) = parse_cidr(subnet).map_err(|e| format!("invalid subnet: {e}"))?;
    let ip = if data.contains('/') {
        let (bits, _, w) = parse_cidr(data)?;
        Some((bits, w))
    } else {
        data.parse::<IpAddr>().ok().map(ip_bits)
    };
    let Some((bits, w)) = ip.filter(|(_, w)| *w == width) else {
        return Ok(false);
    };
    let mask = if len == 0 { 0 } else { (!0u128 << (w - len)) & (!0u128 >> (128 - w)) };
    Ok(bits & mask == net & mask)
}

/// Groups --subnet, --ip-range, --gateway and --aux-address per subnet (docker's
/// createIPAMConfig, with its messages; the config keeps the order of --subnet).
fn ipam_config(a: &CreateArgs) -> Result<Ipam, String> {
    if a.subnet.len() < a.ip_range.len() || a.subnet.len() < a.gateway.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    let mut configs: Vec<IpamConfig> = Vec::new();
    for s in &a.subnet {
        for c in &configs {
            let k = c.subnet.as_deref().unwrap_or("");
            if subnet_matches(s, k)? || subnet_matches(k, s)? {
                return Err("multiple overlapping subnet configuration is not supported".into());
            }
        }
        configs.push(IpamConfig {
            subnet: Some(s.clone()),
            ..Default::default()
        });
    }
    for r in &a.ip_range {
        parse_cidr(r)?;
        let mut matched = false;
        for c in configs.iter_mut() {
            let s = c.subnet.clone().unwrap_or_default();
            if !subnet_matches(&s, r)? {
                continue;
            }
            if let Some(prev) = &c.ip_range {
                return Err(format!("cannot configure multiple ranges ({r}, {prev}) on the same subnet ({s})"));
            }
            c.ip_range = Some(r.clone());
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in &a.gateway {
        let mut matched = false;
        for c in configs.iter_mut() {
            let s = c.subnet.clone().unwrap_or_default();
            if !subnet_matches(&s, g)? {
                continue;
            }
            if let Some(prev) = &c.gateway {
                return Err(format!("cannot configure multiple gateways ({g}, {prev}) for the same subnet ({s})"));
            }
            c.gateway = Some(g.clone());
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    for (key, addr) in kv_map(&a.aux_address) {
        let mut matched = false;
        for c in configs.iter_mut() {
            if subnet_matches(c.subnet.as_deref().unwrap_or(""), &addr)? {
                c.auxiliary_addresses.get_or_insert_with(HashMap::new).insert(key.clone(), addr.clone());
                matched = true;
            }
        }
        if !matched {
            return Err(format!("no matching subnet for aux-address {addr}"));
        }
    }
    Ok(Ipam {
        driver: Some(a.ipam_driver.clone()),
        config: Some(configs),
        options: Some(kv_map(&a.ipam_opt)),
    })
}

fn create_body(a: &CreateArgs) -> anyhow::Result<CreateBody> {
    validate_labels("network create", &a.label)?;
    let ipam = ipam_config(a).map_err(|e| anyhow!(e))?;
    let request = NetworkCreateRequest {
        name: a.name.clone(),
        driver: Some(a.driver.clone()),
        scope: Some(a.scope.clone().unwrap_or_default()),
        internal: Some(a.internal),
        attachable: Some(a.attachable),
        ingress: Some(a.ingress),
        config_only: Some(a.config_only),
        config_from: a.config_from.as_ref().filter(|n| !n.is_empty()).map(|n| {
            bollard_stubs::models::ConfigReference {
                network: Some(n.clone()),
            }
        }),
        ipam: Some(ipam),
        // only sent when given, so the daemon's defaults apply otherwise
        enable_ipv4: a.ipv4,
        enable_ipv6: a.ipv6,
        options: Some(kv_map(&a.opt)),
        labels: Some(kv_map(&a.label)),
    };
    Ok(CreateBody {
        request,
        check_duplicate: true,
    })
}

pub async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<()> {
    let body = create_body(&args)?;
    // serde_json::Value: bollard's response type requires `Warning`, which daemons may omit
    let resp: serde_json::Value = ctx.client.json(Req::post("/networks/create").json_body(&body)).await?;
    if let Some(w) = resp.get("Warning").and_then(|w| w.as_str()).filter(|w| !w.is_empty()) {
        // docker drops it; stderr keeps stdout as docker's
        eprintln!("WARNING: {w}");
    }
    println!("{}", resp.get("Id").and_then(|i| i.as_str()).unwrap_or(""));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ls

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub quiet: bool,
}

const NETWORKS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
const NETWORKS_RAW: &str = r"network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n";

fn networks_header() -> Val {
    Val::obj(
        [
            ("ID", "NETWORK ID"),
            ("Name", "NAME"),
            ("Driver", "DRIVER"),
            ("Scope", "SCOPE"),
            ("IPv4", "IPV4"),
            ("IPv6", "IPV6"),
            ("Internal", "INTERNAL"),
            ("Labels", "LABELS"),
            ("CreatedAt", "CREATED AT"),
        ]
        .into_iter()
        .map(|(k, v)| (k, Val::from(v)))
        .collect(),
    )
}

/// One row with docker's network formatter fields.
fn row(n: &NetworkSummary, trunc: bool) -> Val {
    let id = n.id.clone().unwrap_or_default();
    // Go prints the labels map in random order; sorted is one of its orders, and stable
    let mut labels: Vec<String> = n.labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    let flag = |b: Option<bool>| Val::from(b.unwrap_or(false).to_string());
    Val::obj(vec![
        ("ID", Val::from(if trunc { units::short_id(&id) } else { id })),
        ("Name", Val::from(n.name.clone().unwrap_or_default())),
        ("Driver", Val::from(n.driver.clone().unwrap_or_default())),
        ("Scope", Val::from(n.scope.clone().unwrap_or_default())),
        ("IPv4", flag(n.enable_ipv4)),
        ("IPv6", flag(n.enable_ipv6)),
        ("Internal", flag(n.internal)),
        ("Labels", Val::from(labels.join(","))),
        ("CreatedAt", Val::from(units::go_time_string_rfc3339(n.created.as_deref()))),
    ])
}

pub async fn list(ctx: &Ctx, args: LsArgs) -> anyhow::Result<()> {
    // docker: --format, else config.json's networksFormat (not with -q), else table
    let chosen = match args.format.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => f.to_string(),
        None => crate::attach::config_setting(ctx, "networksFormat")
            .filter(|f| !f.is_empty() && !args.quiet)
            .unwrap_or_else(|| "table".into()),
    };
    let template = match (chosen.as_str(), args.quiet) {
        ("table", true) => "{{.ID}}",
        ("table", false) => NETWORKS_TABLE,
        ("raw", true) => "network_id: {{.ID}}",
        ("raw", false) => NETWORKS_RAW,
        (f, _) => f,
    };
    let (template, label_names) = rewrite_label_calls(template);
    let format = ListFormat::parse(Some(&template), NETWORKS_TABLE)?;
    let filters = filters_json(&args.filter).map_err(|e| anyhow!(e))?;
    let mut networks: Vec<NetworkSummary> = ctx
        .client
        .json(Req::get("/networks").query_opt("filters", filters.as_deref()))
        .await?;
    networks.sort_by(|a, b| natural_cmp(a.name.as_deref().unwrap_or(""), b.name.as_deref().unwrap_or("")));
    let mut header = networks_header();
    let mut rows: Vec<Val> = networks.iter().map(|n| row(n, !args.no_trunc)).collect();
    add_label_fields(&mut header, &mut rows, &label_names, networks.iter().map(|n| n.labels.as_ref()));
    print!("{}", format.render(&header, &rows)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// inspect / rm

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Networks
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

pub async fn inspect(ctx: &Ctx, args: InspectArgs) -> anyhow::Result<()> {
    inspect::inspect_as(ctx, &[Kind::Network], &args.networks, args.format.as_deref(), "network", false).await
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub force: bool,
    /// Networks
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

/// One network after the other, errors on stderr as they come, then exit 1 with docker
/// 28's closing "exit status 1". (docker first inspects each one to confirm removing a
/// swarm ingress network; berth has no swarm.)
pub async fn remove(ctx: &Ctx, args: RmArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for name in &args.networks {
        let result = match trim_id("network", name) {
            Ok(id) => ctx.client.call(Req::delete(format!("/networks/{id}"))).await.map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => println!("{name}"),
            Err(e) if args.force && e.downcast_ref::<crate::client::ClientError>().is_some_and(|e| e.is_not_found()) => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(StatusError {
            code: 1,
            message: "exit status 1".into(),
        }
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// connect / disconnect

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias", value_name = "strings", value_delimiter = ',')]
    pub alias: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt", value_name = "strings", value_delimiter = ',')]
    pub driver_opt: Vec<String>,
    /// Highest gw-priority provides the default gateway. Accepts positive and negative values.
    #[arg(long = "gw-priority", value_name = "int", default_value_t = 0, hide_default_value = true, allow_hyphen_values = true)]
    pub gw_priority: i64,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long = "ip", value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long = "ip6", value_name = "string")]
    pub ip6: Option<String>,
    /// Add link to another container
    #[arg(long = "link", value_name = "list")]
    pub link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip", value_name = "strings", value_delimiter = ',')]
    pub link_local_ip: Vec<String>,
    /// Network
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

fn connect_body(a: &ConnectArgs) -> anyhow::Result<NetworkConnectRequest> {
    for l in &a.link {
        // docker's ValidateLink
        let why = if l.is_empty() {
            "empty string specified for links".to_string()
        } else if l.split(':').count() > 2 {
            format!("bad format for links: {l}")
        } else {
            continue;
        };
        return Err(flag_error("network connect", "--link", l, &why));
    }
    let mut driver_opts = HashMap::new();
    for o in &a.driver_opt {
        match o.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                driver_opts.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => return Err(anyhow!("invalid key/value pair format in driver options")),
        }
    }
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    Ok(NetworkConnectRequest {
        container: trim_id("container", &a.container)?,
        endpoint_config: Some(EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: non_empty(&a.ip),
                ipv6_address: non_empty(&a.ip6),
                link_local_ips: (!a.link_local_ip.is_empty()).then(|| a.link_local_ip.clone()),
            }),
            links: (!a.link.is_empty()).then(|| a.link.clone()),
            aliases: Some(a.alias.clone()),
            driver_opts: Some(driver_opts),
            gw_priority: Some(a.gw_priority),
            ..Default::default()
        }),
    })
}

pub async fn connect(ctx: &Ctx, args: ConnectArgs) -> anyhow::Result<()> {
    let network = trim_id("network", &args.network)?;
    let body = connect_body(&args)?;
    ctx.client
        .call(Req::post(format!("/networks/{network}/connect")).json_body(&body))
        .await?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub force: bool,
    /// Network
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub async fn disconnect(ctx: &Ctx, args: DisconnectArgs) -> anyhow::Result<()> {
    let network = trim_id("network", &args.network)?;
    let body = NetworkDisconnectRequest {
        container: trim_id("container", &args.container)?,
        force: Some(args.force),
    };
    ctx.client
        .call(Req::post(format!("/networks/{network}/disconnect")).json_body(&body))
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// prune

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub force: bool,
}

pub async fn prune(ctx: &Ctx, args: PruneArgs) -> anyhow::Result<()> {
    let filters = filters_json(&args.filter).map_err(|e| anyhow!(e))?;
    if !args.force && !confirm("WARNING! This will remove all custom networks not used by at least one container.")? {
        return Ok(());
    }
    let report: NetworkPruneResponse = ctx
        .client
        .json(Req::post("/networks/prune").query_opt("filters", filters.as_deref()))
        .await?;
    let deleted = report.networks_deleted.unwrap_or_default();
    // docker: no "Total reclaimed space" line for networks
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for name in deleted {
            println!("{name}");
        }
        println!();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: NetworkCommand,
    }

    fn parse(argv: &[&str]) -> NetworkCommand {
        Cli::try_parse_from(std::iter::once("network").chain(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .cmd
    }

    fn create_json(argv: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut full = vec!["create"];
        full.extend_from_slice(argv);
        match parse(&full) {
            NetworkCommand::Create(a) => Ok(serde_json::to_value(create_body(&a)?)?),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_flags_map_to_the_body() {
        let body = create_json(&[
            "-d", "bridge", "--subnet", "10.5.0.0/16,fd00:5::/64", "--gateway", "10.5.0.1", "--ip-range",
            "10.5.1.0/24", "--aux-address", "host=10.5.0.9", "--internal", "--label", "a=1", "--label", "b", "-o",
            "com.docker.network.bridge.name=br5", "--attachable", "--ipv6", "n1",
        ])
        .unwrap();
        assert_eq!(
            body,
            json!({
                "Name": "n1", "Driver": "bridge", "Scope": "", "Internal": true, "Attachable": true,
                "Ingress": false, "ConfigOnly": false, "EnableIPv6": true,
                "IPAM": {"Driver": "default", "Options": {}, "Config": [
                    {"Subnet": "10.5.0.0/16", "Gateway": "10.5.0.1", "IPRange": "10.5.1.0/24",
                     "AuxiliaryAddresses": {"host": "10.5.0.9"}},
                    {"Subnet": "fd00:5::/64"},
                ]},
                "Options": {"com.docker.network.bridge.name": "br5"},
                "Labels": {"a": "1", "b": ""},
                "CheckDuplicate": true,
            })
        );
        // nothing given: bridge, an empty IPAM config, IPv4/IPv6 left to the daemon
        let body = create_json(&["n2"]).unwrap();
        assert_eq!(body["Driver"], "bridge");
        assert_eq!(body["IPAM"], json!({"Driver": "default", "Options": {}, "Config": []}));
        assert!(body.get("EnableIPv6").is_none() && body.get("EnableIPv4").is_none());
        assert_eq!(create_json(&["--ipv6=false", "--ipv4=0", "n3"]).unwrap()["EnableIPv6"], false);
    }

    #[test]
    fn create_refuses_what_docker_refuses() {
        let err = |argv: &[&str]| create_json(argv).unwrap_err().to_string();
        assert_eq!(err(&["--gateway", "10.0.0.1", "n"]), "every ip-range or gateway must have a corresponding subnet");
        assert_eq!(
            err(&["--subnet", "10.0.0.0/8", "--subnet", "10.1.0.0/16", "n"]),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(err(&["--subnet", "10.0.0.0/24", "--gateway", "10.0.1.1", "n"]), "no matching subnet for gateway 10.0.1.1");
        assert_eq!(err(&["--subnet", "10.0.0.0/24", "--ip-range", "10.0.0.0/33", "n"]), "invalid CIDR address: 10.0.0.0/33");
        assert_eq!(err(&["--subnet", "nope", "--gateway", "1.2.3.4", "n"]), "invalid subnet: invalid CIDR address: nope");
        let e = create_json(&["--label", "=x", "n"]).unwrap_err();
        assert_eq!(e.downcast_ref::<StatusError>().map(|s| s.code), Some(125));
        assert!(e.to_string().starts_with("invalid argument \"=x\" for \"--label\" flag: invalid label '=x': empty name"));
    }

    #[test]
    fn connect_and_disconnect_bodies() {
        let NetworkCommand::Connect(a) = parse(&[
            "connect", "--alias", "web,www", "--ip", "10.5.0.7", "--link", "db:database", "--driver-opt", "k = v",
            "--gw-priority", "-5", "n1", "c1",
        ]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(connect_body(&a).unwrap()).unwrap(),
            json!({"Container": "c1", "EndpointConfig": {
                "Aliases": ["web", "www"], "IPAMConfig": {"IPv4Address": "10.5.0.7"}, "Links": ["db:database"],
                "DriverOpts": {"k": "v"}, "GwPriority": -5,
            }})
        );
        let NetworkCommand::Connect(a) = parse(&["connect", "--link", "a:b:c", "n1", "c1"]) else { panic!() };
        assert!(connect_body(&a).unwrap_err().to_string().contains("bad format for links: a:b:c"));
        let NetworkCommand::Disconnect(a) = parse(&["disconnect", "-f", "n1", "c1"]) else { panic!() };
        assert!(a.force && a.network == "n1" && a.container == "c1");
    }

    #[test]
    fn list_rows_and_subnets() {
        let n: NetworkSummary = serde_json::from_str(
            r#"{"Name":"n1","Id":"3f2504e04f8911d39a0c0305e82c3301aaaabbbbccccddddeeeeffff00001111",
                "Created":"2024-05-01T10:00:00.120000000Z","Scope":"local","Driver":"bridge",
                "EnableIPv6":true,"Internal":false,"Labels":{"b":"2","a":"1"}}"#,
        )
        .unwrap();
        let r = row(&n, true);
        let g = |k: &str| r.get(k).and_then(Val::as_str).unwrap_or("").to_string();
        assert_eq!(g("ID"), "3f2504e04f89");
        assert_eq!((g("IPv4"), g("IPv6"), g("Internal")), ("false".into(), "true".into(), "false".into()));
        assert_eq!(g("Labels"), "a=1,b=2");
        assert_eq!(g("CreatedAt"), "2024-05-01 10:00:00.12 +0000 UTC");
        let out = ListFormat::parse(None, NETWORKS_TABLE).unwrap().render(&networks_header(), &[r]).unwrap();
        assert_eq!(out, "NETWORK ID     NAME      DRIVER    SCOPE\n3f2504e04f89   n1        bridge    local\n");
        assert_eq!(subnet_matches("10.0.0.0/8", "10.2.3.4"), Ok(true));
        assert_eq!(subnet_matches("10.0.0.0/8", "11.0.0.1"), Ok(false));
        assert_eq!(subnet_matches("fd00::/64", "fd00::1/128"), Ok(true));
        assert_eq!(subnet_matches("0.0.0.0/0", "::ffff:1.2.3.4"), Ok(true));
        assert_eq!(subnet_matches("10.0.0.0/8", "fd00::1"), Ok(false));
    }
}
