//! Attaching to containers: the hijacked attach request, the exit-status wait that is
//! registered before a start, and the `attach` and `start` commands built on them.

use bollard_stubs::models::{ContainerInspectResponse, ContainerWaitResponse};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use hyper::body::Incoming;
use hyper::Response;

use crate::client::{read_body, Client, ClientError, Hijacked, Req};
use crate::hijack::{self, StreamEnd, StreamOptions};
use crate::tty::{self, ResizeTarget};
use crate::{signals, Ctx, StatusError};

/// `POST /containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=…`,
/// hijacked.
pub async fn attach_request(
    client: &Client,
    id: &str,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    detach_keys: Option<&str>,
) -> Result<Hijacked, ClientError> {
    let req = Req::post(format!("/containers/{id}/attach"))
        .query("stream", "1")
        .flag("stdin", stdin)
        .flag("stdout", stdout)
        .flag("stderr", stderr)
        .query_opt("detachKeys", detach_keys);
    client.hijack(req).await
}

/// `POST /containers/{id}/wait[?condition=…]`: returns once the daemon has registered the
/// wait (it answers the headers at once); the status arrives later in the body.
pub async fn wait_request(client: &Client, id: &str, condition: Option<&str>) -> Result<Response<Incoming>, ClientError> {
    let mut req = Req::post(format!("/containers/{id}/wait"));
    if let Some(c) = condition {
        req = req.query("condition", c);
    }
    client.send(req).await
}

/// Reads a wait answer: the exit status, or the daemon's error message.
pub async fn wait_result(resp: Response<Incoming>) -> Result<i64, String> {
    let body = read_body(resp).await.map_err(|e| e.to_string())?;
    let w: ContainerWaitResponse = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    match w.error.and_then(|e| e.message).filter(|m| !m.is_empty()) {
        Some(m) => Err(m),
        None => Ok(w.status_code),
    }
}

/// docker's waitExitOrRemoved: the status, or 125 when waiting failed.
pub async fn exit_status(wait: Result<Response<Incoming>, ClientError>) -> i64 {
    let result = match wait {
        Ok(resp) => wait_result(resp).await,
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error waiting for container: {e}");
            125
        }
    }
}

/// A setting from the client's config.json (missing or unreadable: none).
pub fn config_setting(ctx: &Ctx, key: &str) -> Option<String> {
    crate::auth::ConfigFile::load(&ctx.config_dir).ok()?.setting(key)
}

/// `--detach-keys`, else config.json's `detachKeys`.
pub fn detach_keys_setting(ctx: &Ctx, flag: Option<&str>) -> Option<String> {
    match flag.filter(|f| !f.is_empty()) {
        Some(f) => Some(f.to_string()),
        None => config_setting(ctx, "detachKeys"),
    }
}

/// The client-side detach sequence (docker falls back to ctrl-p,ctrl-q with a warning).
pub fn detach_keys(spec: Option<&str>) -> Vec<u8> {
    match spec.filter(|s| !s.is_empty()) {
        None => hijack::DEFAULT_DETACH_KEYS.to_vec(),
        Some(s) => hijack::parse_detach_keys(s).unwrap_or_else(|e| {
            eprintln!("WARNING: invalid detach escape keys, using default: {e}");
            hijack::DEFAULT_DETACH_KEYS.to_vec()
        }),
    }
}

pub async fn inspect_container(client: &Client, name: &str) -> Result<ContainerInspectResponse, ClientError> {
    client.json(Req::get(format!("/containers/{name}/json"))).await
}

fn plain(msg: impl Into<String>) -> anyhow::Error {
    StatusError {
        code: 1,
        message: msg.into(),
    }
    .into()
}

// ---------------------------------------------------------------------------------------
// attach

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "STRING")]
    pub detach_keys: Option<String>,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

fn check_attachable(c: &ContainerInspectResponse) -> anyhow::Result<()> {
    let state = c.state.clone().unwrap_or_default();
    if !state.running.unwrap_or(false) {
        return Err(plain("You cannot attach to a stopped container, start it first"));
    }
    if state.paused.unwrap_or(false) {
        return Err(plain("You cannot attach to a paused container, unpause it first"));
    }
    if state.restarting.unwrap_or(false) {
        return Err(plain("You cannot attach to a restarting container, wait until it is running"));
    }
    Ok(())
}

pub async fn attach(ctx: &Ctx, args: AttachArgs) -> anyhow::Result<()> {
    let client = &ctx.client;
    // Registered first, so the exit is not missed.
    let wait = wait_request(client, &args.container, None).await;
    let c = inspect_container(client, &args.container).await?;
    check_attachable(&c)?;
    let config = c.config.clone().unwrap_or_default();
    let has_tty = config.tty.unwrap_or(false);
    if has_tty && !args.no_stdin && !tty::is_terminal(tty::STDIN) {
        return Err(plain("the input device is not a TTY"));
    }
    let stdin = !args.no_stdin && config.open_stdin.unwrap_or(false);
    let id = c.id.clone().unwrap_or_else(|| args.container.clone());
    let keys = detach_keys_setting(ctx, args.detach_keys.as_deref());
    let _proxy = (args.sig_proxy && !has_tty).then(|| signals::forward(client, &args.container));
    let conn = attach_request(client, &args.container, stdin, true, true, keys.as_deref()).await?;
    // The container may have stopped meanwhile; docker checks again.
    let c = inspect_container(client, &args.container).await?;
    check_attachable(&c)?;
    if has_tty && tty::is_terminal(tty::STDOUT) {
        // One size off first, then the real one: the change makes the program redraw (a
        // shell shows its prompt again), as docker does on attach.
        let target = ResizeTarget::Container(id.clone());
        if let Some((h, w)) = tty::size(tty::STDOUT) {
            let _ = tty::resize_to(client, &target, h.saturating_add(1), w.saturating_add(1)).await;
        }
        tty::monitor_size(client, target);
    }
    let opts = StreamOptions {
        stdin,
        stdout: true,
        stderr: true,
        tty: has_tty,
        detach_keys: detach_keys(keys.as_deref()),
    };
    match hijack::stream(conn, &opts).await? {
        StreamEnd::Detached => return Err(plain("read escape sequence")),
        StreamEnd::Closed => {}
    }
    let status = match wait {
        Ok(resp) => wait_result(resp).await.map_err(plain)?,
        Err(e) => return Err(e.into()),
    };
    if status != 0 {
        return Err(StatusError {
            code: status as i32,
            message: String::new(),
        }
        .into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// start

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long = "attach", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long = "interactive", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "STRING")]
    pub detach_keys: Option<String>,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn start(ctx: &Ctx, args: StartArgs) -> anyhow::Result<()> {
    let client = &ctx.client;
    if !(args.attach || args.interactive) {
        // Start them all, report each.
        let mut failed = Vec::new();
        for name in &args.containers {
            match client.call(Req::post(format!("/containers/{name}/start"))).await {
                Ok(()) => println!("{name}"),
                Err(e) => {
                    eprintln!("{e}");
                    failed.push(name.clone());
                }
            }
        }
        if !failed.is_empty() {
            return Err(plain(format!("Error: failed to start containers: {}", failed.join(", "))));
        }
        return Ok(());
    }
    if args.containers.len() > 1 {
        return Err(plain("you cannot start and attach multiple containers at once"));
    }
    let name = &args.containers[0];
    let c = inspect_container(client, name).await?;
    let id = c.id.clone().unwrap_or_else(|| name.clone());
    let config = c.config.clone().unwrap_or_default();
    let has_tty = config.tty.unwrap_or(false);
    let auto_remove = c.host_config.as_ref().and_then(|h| h.auto_remove).unwrap_or(false);
    let _proxy = (!has_tty).then(|| signals::forward(client, &id));
    let stdin = args.interactive && config.open_stdin.unwrap_or(false);
    let keys = detach_keys_setting(ctx, args.detach_keys.as_deref());
    let conn = attach_request(client, name, stdin, true, true, keys.as_deref()).await?;
    let wait = wait_request(client, &id, Some(if auto_remove { "removed" } else { "next-exit" })).await;
    if let Err(e) = client.call(Req::post(format!("/containers/{name}/start"))).await {
        drop(conn);
        if auto_remove {
            let _ = exit_status(wait).await;
        }
        return Err(e.into());
    }
    if has_tty && tty::is_terminal(tty::STDOUT) {
        tty::monitor_size(client, ResizeTarget::Container(id.clone()));
    }
    let opts = StreamOptions {
        stdin,
        stdout: true,
        stderr: true,
        tty: has_tty,
        detach_keys: detach_keys(keys.as_deref()),
    };
    if hijack::stream(conn, &opts).await? == StreamEnd::Detached {
        return Ok(());
    }
    let status = exit_status(wait).await;
    if status != 0 {
        return Err(StatusError {
            code: status as i32,
            message: String::new(),
        }
        .into());
    }
    Ok(())
}
