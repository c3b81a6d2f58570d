//! Container commands: the `container` group and the lifecycle commands (stop, kill,
//! restart, pause, unpause, rm, wait, rename), logs, top, port, diff, export, commit, prune
//! and inspect.
//! run/create, exec, attach/start, ps, stats and events live in their own modules.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use bollard_stubs::models::{ContainerPruneResponse, ContainerTopResponse, IdResponse};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Subcommand};
use futures_util::future::join_all;

use crate::attach::{self, inspect_container, AttachArgs, StartArgs};
use crate::client::{filters_json, version_less, ClientError, Req};
use crate::exec::{self, ExecArgs};
use crate::format::tabwrite_with;
use crate::hijack;
use crate::image::{self, confirm};
use crate::inspect::{self, Kind};
use crate::network::trim_id;
use crate::ps::{self, PsArgs};
use crate::run::{self, CreateArgs, RunArgs};
use crate::stats::{self, StatsArgs};
use crate::units;
use crate::{Ctx, StatusError};

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::cp::CpArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Display detailed information on one or more containers
    Inspect(ContainerInspectArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// List containers
    #[command(name = "ls", visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Pause all processes within one or more containers
    Pause(NamesArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    #[command(name = "rm", visible_alias = "remove")]
    Rm(RmArgs),
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Unpause all processes within one or more containers
    Unpause(NamesArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(NamesArgs),
}

pub async fn run_group(ctx: &Ctx, cmd: ContainerCommand) -> anyhow::Result<()> {
    match cmd {
        ContainerCommand::Attach(a) => attach::attach(ctx, a).await,
        ContainerCommand::Commit(a) => commit(ctx, a).await,
        ContainerCommand::Cp(a) => crate::cp::cp(ctx, a).await,
        ContainerCommand::Create(a) => run::create(ctx, a).await,
        ContainerCommand::Diff(a) => diff(ctx, a).await,
        ContainerCommand::Exec(a) => exec::exec(ctx, a).await,
        ContainerCommand::Export(a) => export(ctx, a).await,
        ContainerCommand::Inspect(a) => inspect_containers(ctx, a).await,
        ContainerCommand::Kill(a) => kill(ctx, a).await,
        ContainerCommand::Logs(a) => logs(ctx, a).await,
        ContainerCommand::Ls(a) => ps::ps(ctx, a).await,
        ContainerCommand::Pause(a) => pause(ctx, a, true).await,
        ContainerCommand::Port(a) => port(ctx, a).await,
        ContainerCommand::Prune(a) => prune(ctx, a).await,
        ContainerCommand::Rename(a) => rename(ctx, a).await,
        ContainerCommand::Restart(a) => restart(ctx, a).await,
        ContainerCommand::Rm(a) => rm(ctx, a).await,
        ContainerCommand::Run(a) => run::run(ctx, a).await,
        ContainerCommand::Start(a) => attach::start(ctx, a).await,
        ContainerCommand::Stats(a) => stats::stats(ctx, a).await,
        ContainerCommand::Stop(a) => stop(ctx, a).await,
        ContainerCommand::Top(a) => top(ctx, a).await,
        ContainerCommand::Unpause(a) => pause(ctx, a, false).await,
        ContainerCommand::Wait(a) => wait(ctx, a).await,
    }
}

fn failure(code: i32, message: impl Into<String>) -> anyhow::Error {
    StatusError {
        code,
        message: message.into(),
    }
    .into()
}

/// Runs `op` on every name at once; prints each name that succeeded (in the order given)
/// and fails with every error, one per line (docker's parallelOperation + errors.Join).
async fn each<F, Fut>(names: &[String], op: F) -> anyhow::Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    let results = join_all(names.iter().map(|n| op(n.clone()))).await;
    let mut errors = Vec::new();
    for (name, r) in names.iter().zip(results) {
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(failure(1, errors.join("\n")))
    }
}

// ---------------------------------------------------------------------------------------
// stop / restart / kill / pause / unpause

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long = "signal", value_name = "STRING")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "timeout", visible_alias = "time", value_name = "INT", allow_hyphen_values = true)]
    pub timeout: Option<i64>,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

async fn stop_like(ctx: &Ctx, args: StopArgs, action: &str) -> anyhow::Result<()> {
    // The signal option exists from API 1.42 on; older daemons do not get it (as docker).
    let api = ctx.client.api_version().await?.to_string();
    let signal = args.signal.filter(|_| !version_less(&api, "1.42"));
    let timeout = args.timeout.map(|t| t.to_string());
    each(&args.containers, |name| {
        let req = Req::post(format!("/containers/{name}/{action}"))
            .query_opt("signal", signal.as_deref())
            .query_opt("t", timeout.as_deref());
        async move { ctx.client.call(req).await }
    })
    .await
}

pub async fn stop(ctx: &Ctx, args: StopArgs) -> anyhow::Result<()> {
    stop_like(ctx, args, "stop").await
}

pub async fn restart(ctx: &Ctx, args: StopArgs) -> anyhow::Result<()> {
    stop_like(ctx, args, "restart").await
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long = "signal", value_name = "STRING")]
    pub signal: Option<String>,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn kill(ctx: &Ctx, args: KillArgs) -> anyhow::Result<()> {
    let signal = args.signal.clone();
    each(&args.containers, |name| {
        let req = Req::post(format!("/containers/{name}/kill")).query_opt("signal", signal.as_deref());
        async move { ctx.client.call(req).await }
    })
    .await
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn pause(ctx: &Ctx, args: NamesArgs, pause: bool) -> anyhow::Result<()> {
    let action = if pause { "pause" } else { "unpause" };
    each(&args.containers, |name| {
        let req = Req::post(format!("/containers/{name}/{action}"));
        async move { ctx.client.call(req).await }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// rm / wait / rename

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub force: bool,
    /// Remove the specified link
    #[arg(short = 'l', long = "link", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub link: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long = "volumes", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub volumes: bool,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn rm(ctx: &Ctx, args: RmArgs) -> anyhow::Result<()> {
    let results = join_all(args.containers.iter().map(|name| {
        let id = name.trim_matches('/').to_string();
        async move {
            if id.is_empty() {
                return Err(anyhow!("container name cannot be empty"));
            }
            let req = Req::delete(format!("/containers/{id}"))
                .flag("v", args.volumes)
                .flag("link", args.link)
                .flag("force", args.force);
            ctx.client.call(req).await.map_err(anyhow::Error::from)
        }
    }))
    .await;
    let mut errors = Vec::new();
    for (name, r) in args.containers.iter().zip(results) {
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => {
                let not_found = e.downcast_ref::<ClientError>().is_some_and(ClientError::is_not_found);
                if args.force && not_found {
                    // docker: with --force a missing container is reported, not an error
                    eprintln!("{e}");
                } else {
                    errors.push(e.to_string());
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(failure(1, errors.join("\n")))
    }
}

pub async fn wait(ctx: &Ctx, args: NamesArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for name in &args.containers {
        let result = match attach::wait_request(&ctx.client, name, None).await {
            Ok(resp) => attach::wait_result(resp).await,
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(code) => println!("{code}"),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(failure(1, errors.join("\n")))
    }
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    /// The container's current name
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Its new name
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

pub async fn rename(ctx: &Ctx, args: RenameArgs) -> anyhow::Result<()> {
    let old = args.container.trim();
    let new = args.new_name.trim().trim_start_matches('/');
    if old.is_empty() || new.is_empty() {
        return Err(failure(1, "Error: Neither old nor new names may be empty"));
    }
    if let Err(e) = ctx
        .client
        .call(Req::post(format!("/containers/{old}/rename")).query("name", new))
        .await
    {
        eprintln!("{e}");
        return Err(failure(1, format!("Error: failed to rename container named {old}")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// logs

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long = "details", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub details: bool,
    /// Follow log output
    #[arg(short = 'f', long = "follow", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long = "since", value_name = "STRING")]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long = "tail", value_name = "STRING", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long = "timestamps", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long = "until", value_name = "STRING")]
    pub until: Option<String>,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub async fn logs(ctx: &Ctx, args: LogsArgs) -> anyhow::Result<()> {
    let c = inspect_container(&ctx.client, &args.container).await?;
    let id = c.id.clone().unwrap_or_else(|| args.container.clone());
    let has_tty = c.config.as_ref().and_then(|c| c.tty).unwrap_or(false);
    let now = chrono::Local::now();
    let since = match &args.since {
        Some(s) if !s.is_empty() => Some(
            units::api_timestamp(s, now).map_err(|e| failure(1, format!("invalid value for \"since\": {e}")))?,
        ),
        _ => None,
    };
    let until = match &args.until {
        Some(s) if !s.is_empty() => Some(
            units::api_timestamp(s, now).map_err(|e| failure(1, format!("invalid value for \"until\": {e}")))?,
        ),
        _ => None,
    };
    let req = Req::get(format!("/containers/{id}/logs"))
        .query("stdout", "1")
        .query("stderr", "1")
        .query_opt("since", since.as_deref())
        .query_opt("until", until.as_deref())
        .flag("timestamps", args.timestamps)
        .flag("follow", args.follow)
        .query_opt("tail", Some(args.tail.as_str()))
        .flag("details", args.details);
    let resp = ctx.client.send(req).await?;
    hijack::copy_body(resp.into_body(), has_tty).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// top / port

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Options for ps
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ps OPTIONS")]
    pub ps_args: Vec<String>,
}

pub async fn top(ctx: &Ctx, args: TopArgs) -> anyhow::Result<()> {
    let ps_args = args.ps_args.join(" ");
    let req = Req::get(format!("/containers/{}/top", args.container)).query_opt("ps_args", Some(ps_args.as_str()));
    let top: ContainerTopResponse = ctx.client.json(req).await?;
    let mut text = top.titles.unwrap_or_default().join("\t");
    text.push('\n');
    for p in top.processes.unwrap_or_default() {
        text.push_str(&p.join("\t"));
        text.push('\n');
    }
    print!("{}", tabwrite_with(&text, 20, 3));
    Ok(())
}

#[derive(Args, Debug)]
pub struct PortArgs {
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// `host:port`, with brackets around an IPv6 host (Go's net.JoinHostPort).
pub fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Orders strings with runs of digits compared as numbers (docker's sortorder.NaturalLess).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let na = std::str::from_utf8(&a[..da]).unwrap_or("0").trim_start_matches('0');
                let nb = std::str::from_utf8(&b[..db]).unwrap_or("0").trim_start_matches('0');
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb)).then_with(|| da.cmp(&db));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

pub async fn port(ctx: &Ctx, args: PortArgs) -> anyhow::Result<()> {
    let c = inspect_container(&ctx.client, &args.container).await?;
    let ports = c
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default();
    let mut out = Vec::new();
    match &args.port {
        Some(p) => {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let proto = if proto.is_empty() { "tcp" } else { proto };
            if port.parse::<u16>().is_err() {
                return Err(failure(
                    1,
                    format!("Error: invalid port ({port}): strconv.ParseUint: parsing \"{port}\": invalid syntax"),
                ));
            }
            let frontends = ports.get(&format!("{port}/{proto}")).cloned().flatten().unwrap_or_default();
            if frontends.is_empty() {
                return Err(failure(
                    1,
                    format!("Error: No public port '{p}' published for {}", args.container),
                ));
            }
            for f in frontends {
                out.push(join_host_port(
                    f.host_ip.as_deref().unwrap_or(""),
                    f.host_port.as_deref().unwrap_or(""),
                ));
            }
        }
        None => {
            for (from, frontends) in &ports {
                for f in frontends.clone().unwrap_or_default() {
                    out.push(format!(
                        "{from} -> {}",
                        join_host_port(f.host_ip.as_deref().unwrap_or(""), f.host_port.as_deref().unwrap_or(""))
                    ));
                }
            }
        }
    }
    out.sort_by(|a, b| natural_cmp(a, b));
    if !out.is_empty() {
        println!("{}", out.join("\n"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// diff / export / commit

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// One entry of `GET /containers/{id}/changes`. Kind is kept as a number so that a kind
/// this CLI does not know prints as docker prints it (an empty type) instead of failing.
#[derive(serde::Deserialize, Debug)]
struct Change {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "Kind")]
    kind: i64,
}

/// docker's `{{.Type}} {{.Path}}` lines, in the daemon's order: 0 = C (modified),
/// 1 = A (added), 2 = D (deleted).
fn diff_lines(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        let kind = match c.kind {
            0 => "C",
            1 => "A",
            2 => "D",
            _ => "",
        };
        out.push_str(kind);
        out.push(' ');
        out.push_str(&c.path);
        out.push('\n');
    }
    out
}

pub async fn diff(ctx: &Ctx, args: DiffArgs) -> anyhow::Result<()> {
    let id = trim_id("container", &args.container)?;
    // docker's daemon answers `null` when nothing changed
    let changes: Option<Vec<Change>> = ctx.client.json(Req::get(format!("/containers/{id}/changes"))).await?;
    print!("{}", diff_lines(&changes.unwrap_or_default()));
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output", value_name = "string")]
    pub output: Option<String>,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub async fn export(ctx: &Ctx, args: ExportArgs) -> anyhow::Result<()> {
    // docker: `-o ""` is stdout
    let output = args.output.filter(|o| !o.is_empty()).map(PathBuf::from);
    if output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    if let Some(out) = &output {
        image::validate_output_path(out).map_err(|e| anyhow!("failed to export container: {e}"))?;
    }
    let id = trim_id("container", &args.container)?;
    let resp = ctx.client.send(Req::get(format!("/containers/{id}/export"))).await?;
    match &output {
        Some(out) => image::body_to_file(resp.into_body(), out).await,
        None => image::body_to_stdout(resp.into_body()).await,
    }
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long = "author", value_name = "string")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long = "message", value_name = "string")]
    pub message: Option<String>,
    /// Pause container during commit (default true)
    #[arg(short = 'p', long = "pause", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub pause: bool,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Name (and tag) of the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `POST /commit`: docker's query (repo and tag as `tag` splits them, `latest` by
/// default; one `changes` per -c; empty values left out) and an empty JSON config.
fn commit_request(args: &CommitArgs) -> anyhow::Result<Req> {
    let id = trim_id("container", &args.container)?;
    let (repo, tag) = match args.reference.as_deref() {
        Some(r) if !r.is_empty() => {
            let (repo, tag) = image::repo_and_tag(r)?;
            (Some(repo), Some(tag))
        }
        _ => (None, None),
    };
    let mut req = Req::post("/commit")
        .query("container", id)
        .query_opt("repo", repo.as_deref())
        .query_opt("tag", tag.as_deref())
        .query_opt("comment", args.message.as_deref())
        .query_opt("author", args.author.as_deref())
        .query("pause", if args.pause { "true" } else { "false" });
    for change in &args.change {
        req = req.query("changes", change.clone());
    }
    Ok(req.json_body(&serde_json::json!({})))
}

pub async fn commit(ctx: &Ctx, args: CommitArgs) -> anyhow::Result<()> {
    let resp: IdResponse = ctx.client.json(commit_request(&args)?).await?;
    println!("{}", resp.id);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// prune / inspect

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub force: bool,
}

pub async fn prune(ctx: &Ctx, args: PruneArgs) -> anyhow::Result<()> {
    let filters = filters_json(&args.filter).map_err(|e| failure(1, e))?;
    if !args.force && !confirm("WARNING! This will remove all stopped containers.")? {
        return Ok(());
    }
    let report: ContainerPruneResponse = ctx
        .client
        .json(Req::post("/containers/prune").query_opt("filters", filters.as_deref()))
        .await?;
    let deleted = report.containers_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for id in deleted {
            println!("{id}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        units::human_size(report.space_reclaimed.unwrap_or(0))
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct ContainerInspectArgs {
    /// Format output using a Go template, or `json`
    #[arg(short = 'f', long = "format", value_name = "STRING")]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long = "size", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub size: bool,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn inspect_containers(ctx: &Ctx, args: ContainerInspectArgs) -> anyhow::Result<()> {
    inspect::inspect_as(
        ctx,
        &[Kind::Container],
        &args.containers,
        args.format.as_deref(),
        "container",
        args.size,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_and_host_ports() {
        let mut v = vec!["80/tcp -> 0.0.0.0:8080", "443/tcp -> 0.0.0.0:8443", "9000/tcp -> :::9000", "80/tcp -> :::8080"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec!["80/tcp -> 0.0.0.0:8080", "80/tcp -> :::8080", "443/tcp -> 0.0.0.0:8443", "9000/tcp -> :::9000"]
        );
        assert_eq!(join_host_port("::", "80"), "[::]:80");
        assert_eq!(join_host_port("0.0.0.0", "80"), "0.0.0.0:80");
    }

    #[test]
    fn diff_lines_follow_docker() {
        let changes: Vec<Change> = serde_json::from_str(
            r#"[{"Path":"/a","Kind":0},{"Path":"/a/b","Kind":1},{"Path":"/x","Kind":2},{"Path":"/a/c d","Kind":1}]"#,
        )
        .unwrap();
        assert_eq!(diff_lines(&changes), "C /a\nA /a/b\nD /x\nA /a/c d\n");
        assert_eq!(diff_lines(&[]), "");
        let unknown: Vec<Change> = serde_json::from_str(r#"[{"Path":"/q","Kind":7}]"#).unwrap();
        assert_eq!(diff_lines(&unknown), " /q\n");
        let none: Option<Vec<Change>> = serde_json::from_str("null").unwrap();
        assert!(none.is_none());
    }

    fn commit_args(argv: &[&str]) -> CommitArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            a: CommitArgs,
        }
        let mut full = vec!["commit"];
        full.extend_from_slice(argv);
        P::try_parse_from(full).unwrap_or_else(|e| panic!("{argv:?}: {e}")).a
    }

    fn commit_uri(argv: &[&str]) -> String {
        commit_request(&commit_args(argv)).unwrap().uri("1.47")
    }

    #[test]
    fn commit_query_follows_docker() {
        assert_eq!(commit_uri(&["c1"]), "/v1.47/commit?container=c1&pause=true");
        assert_eq!(
            commit_uri(&["c1", "busybox"]),
            "/v1.47/commit?container=c1&repo=busybox&tag=latest&pause=true"
        );
        assert_eq!(
            commit_uri(&["-p=false", "c1", "localhost:5000/me/app:v2"]),
            "/v1.47/commit?container=c1&repo=localhost%3A5000%2Fme%2Fapp&tag=v2&pause=false"
        );
        assert_eq!(
            commit_uri(&[
                "-a", "J. Smith <js@example.com>",
                "-m", "fix: a&b=c",
                "--change", "ENV A=1 B=2",
                "-c", "CMD [\"sh\", \"-c\"]",
                "--pause=false",
                "c1",
                "docker.io/library/app:1.0",
            ]),
            "/v1.47/commit?container=c1&repo=app&tag=1.0&comment=fix%3A%20a%26b%3Dc\
             &author=J.%20Smith%20%3Cjs%40example.com%3E&pause=false\
             &changes=ENV%20A%3D1%20B%3D2&changes=CMD%20%5B%22sh%22%2C%20%22-c%22%5D"
        );
        assert!(commit_args(&["-p", "c1"]).pause);
        assert!(commit_args(&["--pause=true", "c1"]).pause);
        let err = |argv: &[&str]| commit_request(&commit_args(argv)).err().map(|e| e.to_string());
        assert_eq!(
            err(&["c1", "app@sha256:abcd"]).as_deref(),
            Some("refusing to create a tag with a digest reference")
        );
        assert!(err(&["c1", "App"]).is_some_and(|e| e.starts_with("invalid reference format")));
        assert_eq!(err(&[" ", "app"]).as_deref(), Some("invalid container name or ID: value is empty"));
    }
}
