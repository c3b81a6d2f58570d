//! `version`, `info`, `system df`.

use bollard_stubs::models::{SystemInfo, SystemVersion};
use clap::{Args, Subcommand};

use crate::client::{read_body, ClientError, Req, CLIENT_API_VERSION};
use crate::format::{ListFormat, Template, Val};
use crate::units;
use crate::Ctx;

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Display system-wide information
    Info(InfoArgs),
    /// Show disk usage
    Df(DfArgs),
    /// Get real time events from the server
    Events(crate::events::EventsArgs),
}

pub async fn run(ctx: &Ctx, cmd: SystemCommand) -> anyhow::Result<()> {
    match cmd {
        SystemCommand::Info(a) => info(ctx, a).await,
        SystemCommand::Df(a) => df(ctx, a).await,
        SystemCommand::Events(a) => crate::events::events(ctx, a).await,
    }
}

/// The platform name docker uses for GOARCH.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Renders a template against one object (for `version`/`info` `--format`).
fn render_one(format: &str, data: &Val) -> anyhow::Result<()> {
    if format.trim() == "json" {
        println!("{}", data.to_json(true));
        return Ok(());
    }
    let t = Template::parse(&format.replace("\\t", "\t").replace("\\n", "\n"))?;
    println!("{}", t.execute(data)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// version

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Format output using a Go template, or `json`
    #[arg(short, long)]
    pub format: Option<String>,
}

pub async fn version(ctx: &Ctx, args: VersionArgs) -> anyhow::Result<()> {
    let server: Result<SystemVersion, ClientError> = ctx.client.json(Req::get("/version")).await;
    let api = ctx.client.api_version().await.ok().map(str::to_string);
    if let Some(fmt) = &args.format {
        let client = Val::obj(vec![
            ("Version", Val::from(env!("CARGO_PKG_VERSION"))),
            ("ApiVersion", Val::from(api.clone().unwrap_or_else(|| CLIENT_API_VERSION.into()))),
            ("DefaultAPIVersion", Val::from(CLIENT_API_VERSION)),
            ("Os", Val::from(std::env::consts::OS)),
            ("Arch", Val::from(go_arch())),
        ]);
        let server_val = match &server {
            Ok(v) => Val::from_serialize(v),
            Err(_) => Val::Null,
        };
        let data = Val::obj(vec![("Client", client), ("Server", server_val)]);
        render_one(fmt, &data)?;
        return server.map(|_| ()).map_err(Into::into);
    }
    println!("Client:");
    println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    match &api {
        Some(v) if v != CLIENT_API_VERSION => {
            println!(" API version:       {v} (downgraded from {CLIENT_API_VERSION})")
        }
        _ => println!(" API version:       {CLIENT_API_VERSION}"),
    }
    println!(" OS/Arch:           {}/{}", std::env::consts::OS, go_arch());
    let server = server?;
    println!();
    match server.platform.as_ref().map(|p| p.name.as_str()).filter(|n| !n.is_empty()) {
        Some(name) => println!("Server: {name}"),
        None => println!("Server:"),
    }
    let engine = |v: &SystemVersion| {
        println!(" Engine:");
        println!("  Version:          {}", v.version.as_deref().unwrap_or(""));
        let api = v.api_version.as_deref().unwrap_or("");
        match v.min_api_version.as_deref() {
            Some(min) if !min.is_empty() => println!("  API version:      {api} (minimum version {min})"),
            _ => println!("  API version:      {api}"),
        }
        if let Some(go) = v.go_version.as_deref().filter(|s| !s.is_empty()) {
            println!("  Go version:       {go}");
        }
        if let Some(c) = v.git_commit.as_deref().filter(|s| !s.is_empty()) {
            println!("  Git commit:       {c}");
        }
        if let Some(b) = v.build_time.as_deref().filter(|s| !s.is_empty()) {
            let built = chrono::DateTime::parse_from_rfc3339(b)
                .map(|t| t.format("%a %b %e %H:%M:%S %Y").to_string())
                .unwrap_or_else(|_| b.to_string());
            println!("  Built:            {built}");
        }
        println!(
            "  OS/Arch:          {}/{}",
            v.os.as_deref().unwrap_or(""),
            v.arch.as_deref().unwrap_or("")
        );
        println!("  Experimental:     {}", v.experimental.unwrap_or(false));
    };
    match server.components.as_ref().filter(|c| !c.is_empty()) {
        None => engine(&server),
        Some(components) => {
            for c in components {
                if c.name == "Engine" {
                    engine(&server);
                    continue;
                }
                println!(" {}:", c.name);
                println!("  Version:          {}", c.version);
                if let Some(details) = &c.details {
                    let mut keys: Vec<&String> = details.keys().collect();
                    keys.sort();
                    for k in keys {
                        let label = format!("{k}:");
                        println!("  {label:<18}{}", details[k]);
                    }
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// info

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Format output using a Go template, or `json`
    #[arg(short, long)]
    pub format: Option<String>,
}

pub async fn info(ctx: &Ctx, args: InfoArgs) -> anyhow::Result<()> {
    if args.format.is_none() {
        println!("Client:");
        println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
        println!(" Debug Mode: {}", ctx.debug);
        println!();
        println!("Server:");
    }
    let resp = ctx.client.send(Req::get("/info")).await?;
    let body = read_body(resp).await?;
    if let Some(fmt) = &args.format {
        let raw = Val::from_json_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
        return render_one(fmt, &raw);
    }
    let i: SystemInfo = serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
    let n = |v: Option<i64>| v.unwrap_or(0);
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    println!(" Containers: {}", n(i.containers));
    println!("  Running: {}", n(i.containers_running));
    println!("  Paused: {}", n(i.containers_paused));
    println!("  Stopped: {}", n(i.containers_stopped));
    println!(" Images: {}", n(i.images));
    println!(" Server Version: {}", s(&i.server_version));
    println!(" Storage Driver: {}", s(&i.driver));
    for pair in i.driver_status.clone().unwrap_or_default() {
        if pair.len() == 2 {
            println!("  {}: {}", pair[0], pair[1]);
        }
    }
    if let Some(v) = &i.logging_driver {
        println!(" Logging Driver: {v}");
    }
    if let Some(v) = &i.cgroup_driver {
        println!(" Cgroup Driver: {}", Val::from_serialize(v).to_text());
    }
    if let Some(v) = &i.cgroup_version {
        println!(" Cgroup Version: {}", Val::from_serialize(v).to_text());
    }
    if let Some(runtimes) = &i.runtimes {
        let mut names: Vec<&String> = runtimes.keys().collect();
        names.sort();
        println!(
            " Runtimes: {}",
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
        );
    }
    if let Some(v) = &i.default_runtime {
        println!(" Default Runtime: {v}");
    }
    if let Some(opts) = i.security_options.as_ref().filter(|o| !o.is_empty()) {
        println!(" Security Options:");
        for o in opts {
            // "name=seccomp,profile=builtin" → "seccomp"
            let name = o
                .split(',')
                .find_map(|kv| kv.strip_prefix("name="))
                .unwrap_or(o);
            println!("  {name}");
        }
    }
    println!(" Kernel Version: {}", s(&i.kernel_version));
    println!(" Operating System: {}", s(&i.operating_system));
    println!(" OSType: {}", s(&i.os_type));
    println!(" Architecture: {}", s(&i.architecture));
    println!(" CPUs: {}", n(i.ncpu));
    println!(" Total Memory: {}", units::bytes_size(n(i.mem_total)));
    println!(" Name: {}", s(&i.name));
    println!(" ID: {}", s(&i.id));
    println!(" Data Root: {}", s(&i.docker_root_dir));
    println!(" Debug Mode: {}", i.debug.unwrap_or(false));
    println!(" Experimental: {}", i.experimental_build.unwrap_or(false));
    if let Some(reg) = &i.registry_config {
        let insecure = reg.insecure_registry_cidrs.clone().unwrap_or_default();
        let mut insecure_names: Vec<String> = reg
            .index_configs
            .as_ref()
            .map(|m| {
                m.values()
                    .filter(|c| c.secure == Some(false))
                    .filter_map(|c| c.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        insecure_names.sort();
        if !insecure.is_empty() || !insecure_names.is_empty() {
            println!(" Insecure Registries:");
            for r in insecure_names.iter().chain(insecure.iter()) {
                println!("  {r}");
            }
        }
        if let Some(mirrors) = reg.mirrors.as_ref().filter(|m| !m.is_empty()) {
            println!(" Registry Mirrors:");
            for m in mirrors {
                println!("  {m}");
            }
        }
    }
    println!(" Live Restore Enabled: {}", i.live_restore_enabled.unwrap_or(false));
    for w in i.warnings.unwrap_or_default() {
        eprintln!("{w}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// system df

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Format output using a Go template, `table`, `table TEMPLATE` or `json`
    #[arg(long)]
    pub format: Option<String>,
}

const DF_TABLE: &str = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";

struct Usage {
    kind: &'static str,
    total: i64,
    active: i64,
    size: i64,
    reclaimable: i64,
}

impl Usage {
    fn row(&self) -> Val {
        let reclaimable = if self.size > 0 {
            format!(
                "{} ({}%)",
                units::human_size(self.reclaimable),
                self.reclaimable * 100 / self.size
            )
        } else {
            units::human_size(self.reclaimable)
        };
        Val::obj(vec![
            ("Type", Val::from(self.kind)),
            ("TotalCount", Val::from(self.total.to_string())),
            ("Active", Val::from(self.active.to_string())),
            ("Size", Val::from(units::human_size(self.size))),
            ("Reclaimable", Val::from(reclaimable)),
        ])
    }
}

fn num(v: Option<&Val>) -> i64 {
    v.and_then(Val::as_i64).unwrap_or(0)
}

fn list(v: &Val, key: &str) -> Vec<Val> {
    match v.get(key) {
        Some(Val::Arr(a)) => a.clone(),
        _ => Vec::new(),
    }
}

/// Summaries from the API ≤ 1.51 shape (`LayersSize`, `Images`, `Containers`, `Volumes`,
/// `BuildCache`) or the 1.52+ one (`ImageUsage`, `ContainerUsage`, …).
fn usages(df: &Val) -> Vec<Usage> {
    let summary = |kind: &'static str, key: &str| -> Option<Usage> {
        let u = df.get(key)?;
        Some(Usage {
            kind,
            total: num(u.get("TotalCount")),
            active: num(u.get("ActiveCount")),
            size: num(u.get("TotalSize")),
            reclaimable: num(u.get("Reclaimable")),
        })
    };
    if df.get("ImageUsage").is_some() {
        return [
            summary("Images", "ImageUsage"),
            summary("Containers", "ContainerUsage"),
            summary("Local Volumes", "VolumeUsage"),
            summary("Build Cache", "BuildCacheUsage"),
        ]
        .into_iter()
        .flatten()
        .collect();
    }
    let images = list(df, "Images");
    let layers = num(df.get("LayersSize"));
    let used: i64 = images
        .iter()
        .filter(|i| num(i.get("Containers")) > 0)
        .filter(|i| num(i.get("SharedSize")) >= 0)
        .map(|i| num(i.get("Size")) - num(i.get("SharedSize")))
        .sum();
    let containers = list(df, "Containers");
    let running = |c: &Val| c.get("State").and_then(Val::as_str) == Some("running");
    let volumes = list(df, "Volumes");
    let vol_size = |v: &Val| num(v.get("UsageData").and_then(|u| u.get("Size"))).max(0);
    let vol_refs = |v: &Val| num(v.get("UsageData").and_then(|u| u.get("RefCount")));
    let cache = list(df, "BuildCache");
    let in_use = |b: &Val| b.get("InUse").is_some_and(Val::truthy);
    let shared = |b: &Val| b.get("Shared").is_some_and(Val::truthy);
    vec![
        Usage {
            kind: "Images",
            total: images.len() as i64,
            active: images.iter().filter(|i| num(i.get("Containers")) > 0).count() as i64,
            size: layers,
            reclaimable: layers - used,
        },
        Usage {
            kind: "Containers",
            total: containers.len() as i64,
            active: containers.iter().filter(|c| running(c)).count() as i64,
            size: containers.iter().map(|c| num(c.get("SizeRw"))).sum(),
            reclaimable: containers
                .iter()
                .filter(|c| !running(c))
                .map(|c| num(c.get("SizeRw")))
                .sum(),
        },
        Usage {
            kind: "Local Volumes",
            total: volumes.len() as i64,
            active: volumes.iter().filter(|v| vol_refs(v) > 0).count() as i64,
            size: volumes.iter().map(vol_size).sum(),
            reclaimable: volumes.iter().filter(|v| vol_refs(v) < 1).map(vol_size).sum(),
        },
        Usage {
            kind: "Build Cache",
            total: cache.len() as i64,
            active: cache.iter().filter(|b| in_use(b)).count() as i64,
            size: cache.iter().filter(|b| !shared(b)).map(|b| num(b.get("Size"))).sum(),
            reclaimable: cache
                .iter()
                .filter(|b| !shared(b) && !in_use(b))
                .map(|b| num(b.get("Size")))
                .sum(),
        },
    ]
}

pub async fn df(ctx: &Ctx, args: DfArgs) -> anyhow::Result<()> {
    let format = ListFormat::parse(args.format.as_deref(), DF_TABLE)?;
    let resp = ctx.client.send(Req::get("/system/df")).await?;
    let body = read_body(resp).await?;
    let df = Val::from_json_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
    let rows: Vec<Val> = usages(&df).iter().map(Usage::row).collect();
    let header = Val::obj(vec![
        ("Type", Val::from("TYPE")),
        ("TotalCount", Val::from("TOTAL")),
        ("Active", Val::from("ACTIVE")),
        ("Size", Val::from("SIZE")),
        ("Reclaimable", Val::from("RECLAIMABLE")),
    ]);
    print!("{}", format.render(&header, &rows)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_old_shape() {
        let df = Val::from_json_slice(
            br#"{"LayersSize":1982291,"Images":[{"Containers":0,"Size":1982291,"SharedSize":-1}],
                "Containers":[],"Volumes":[],"BuildCache":[]}"#,
        )
        .unwrap();
        let u = usages(&df);
        let row = u[0].row();
        assert_eq!(row.get("Size").and_then(Val::as_str), Some("1.982MB"));
        assert_eq!(row.get("Reclaimable").and_then(Val::as_str), Some("1.982MB (100%)"));
        assert_eq!(u[1].row().get("Reclaimable").and_then(Val::as_str), Some("0B"));
    }
}
