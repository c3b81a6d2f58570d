//! `run` and `create`, with docker's flow: create (pulling a missing image and trying
//! again), then for `run` attach, register the wait, start, stream, and exit with the
//! container's status.

use std::io::Write;

use bollard_stubs::models::ContainerCreateResponse;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use crate::attach::{self, attach_request, exit_status, wait_request};
use crate::client::{read_body, ClientError, Req};
use crate::hijack::{self, StreamEnd, StreamOptions};
use crate::opts::{CreateFlags, CreateSpec, FlagError, ParseEnv, PullPolicy};
use crate::reference::Reference;
use crate::tty::{self, ResizeTarget};
use crate::{auth, progress, signals, Ctx, StatusError};

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Run container in background and print container ID
    #[arg(short = 'd', long = "detach", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "STRING")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub flags: CreateFlags,
    /// The image, then the command and its arguments
    #[arg(required = true, trailing_var_arg = true, value_name = "IMAGE [COMMAND] [ARG...]")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    #[command(flatten)]
    pub flags: CreateFlags,
    /// The image, then the command and its arguments
    #[arg(required = true, trailing_var_arg = true, value_name = "IMAGE [COMMAND] [ARG...]")]
    pub args: Vec<String>,
}

fn build(flags: &CreateFlags, args: &[String], command: &str) -> Result<CreateSpec, anyhow::Error> {
    ParseEnv::with_process(|env| flags.build(&args[0], &args[1..], env)).map_err(|e: FlagError| {
        StatusError {
            code: 125,
            message: e.render(command),
        }
        .into()
    })
}

/// docker's exit code for a failed create or start: 127 when the command is not found,
/// 126 when it cannot be run, 125 otherwise.
pub fn start_error_code(message: &str) -> i32 {
    let m = message.strip_prefix("Error response from daemon: ").unwrap_or(message);
    if m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("system cannot find the file specified")
    {
        127
    } else if m.contains("permission denied") || m.contains("is a directory") {
        126
    } else {
        125
    }
}

/// `berth: MESSAGE` with the help hint, as docker reports run errors.
fn run_error(message: &str, code: i32) -> anyhow::Error {
    StatusError {
        code,
        message: format!("berth: {message}\n\nRun 'berth run --help' for more information"),
    }
    .into()
}

/// The container ID file (`--cidfile`): refused if present, removed again unless an ID
/// was written.
struct CidFile {
    path: Option<String>,
    written: bool,
}

impl CidFile {
    fn create(path: Option<&str>) -> anyhow::Result<CidFile> {
        let Some(path) = path else {
            return Ok(CidFile {
                path: None,
                written: false,
            });
        };
        if std::fs::symlink_metadata(path).is_ok() {
            anyhow::bail!("container ID file found, make sure the other container isn't running or delete {path}");
        }
        std::fs::File::create(path).map_err(|e| {
            anyhow::anyhow!(
                "failed to create the container ID file: open {path}: {}",
                crate::opts::io_error_text(&e)
            )
        })?;
        Ok(CidFile {
            path: Some(path.to_string()),
            written: false,
        })
    }

    fn write(&mut self, id: &str) -> anyhow::Result<()> {
        if let Some(path) = &self.path {
            std::fs::write(path, id).map_err(|e| anyhow::anyhow!("failed to write the container ID to the file: {e}"))?;
            self.written = true;
        }
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if let (Some(path), false) = (&self.path, self.written) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An image name that is an ID or digest rather than a name (never pulled).
fn is_image_id(image: &str) -> bool {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

async fn pull_image(ctx: &Ctx, r: &Reference, spec: &CreateSpec) -> anyhow::Result<()> {
    let tag = r.digest.clone().or_else(|| r.tag_or_latest()).unwrap_or_default();
    let mut req = Req::post("/images/create")
        .query("fromImage", r.familiar_name())
        .query("tag", tag)
        .query_opt("platform", spec.platform.as_deref());
    if let Some(h) = auth::header_for(ctx, &r.auth_key())? {
        req = req.header("X-Registry-Auth", h);
    }
    let resp = ctx.client.send(req).await?;
    progress::render_to(resp, spec.quiet, true).await
}

/// Creates the container (docker's createContainer): `--pull always` pulls first; a
/// missing image is pulled (progress on stderr) and the create tried once more.
pub async fn create_container(ctx: &Ctx, spec: &CreateSpec) -> anyhow::Result<String> {
    let mut cid = CidFile::create(spec.cidfile.as_deref())?;
    let image = spec.body.image.clone().unwrap_or_default();
    let named = if is_image_id(&image) {
        None
    } else {
        Some(Reference::parse(&image).map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    if spec.pull == PullPolicy::Always {
        if let Some(r) = &named {
            pull_image(ctx, r, spec).await?;
        }
    }
    let mut body = spec.body.clone();
    if let Some(h) = body.host_config.as_mut() {
        let (rows, cols) = tty::size(tty::STDOUT).unwrap_or((0, 0));
        h.console_size = Some(vec![rows as usize, cols as usize]);
    }
    let api = ctx.client.api_version().await?.to_string();
    let platform = if crate::client::version_less(&api, "1.41") { None } else { spec.platform.clone() };
    let per_network_mac = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref())
        .is_some_and(|eps| eps.values().any(|e| e.mac_address.is_some()));
    if per_network_mac && crate::client::version_less(&api, "1.44") {
        anyhow::bail!(
            "\"specify mac-address per network\" requires API version 1.44, but the daemon API version is {api}"
        );
    }
    let request = || {
        Req::post("/containers/create")
            .query_opt("name", spec.name.as_deref())
            .query_opt("platform", platform.as_deref())
            .json_body(&body)
    };
    let resp = match ctx.client.send(request()).await {
        Ok(resp) => resp,
        Err(e) if e.is_not_found() && named.is_some() && spec.pull == PullPolicy::Missing => {
            let r = named.as_ref().expect("checked above");
            if !spec.quiet {
                let mut shown = r.clone();
                if !shown.has_tag_or_digest() {
                    shown.tag = Some("latest".into());
                }
                let familiar = match (&shown.tag, &shown.digest) {
                    (Some(t), _) => format!("{}:{t}", shown.familiar_name()),
                    (None, Some(d)) => format!("{}@{d}", shown.familiar_name()),
                    (None, None) => shown.familiar_name(),
                };
                eprintln!("Unable to find image '{familiar}' locally");
            }
            pull_image(ctx, r, spec).await?;
            ctx.client.send(request()).await?
        }
        Err(e) => return Err(e.into()),
    };
    let body = read_body(resp).await?;
    let created: ContainerCreateResponse =
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
    cid.write(&created.id)?;
    Ok(created.id)
}

pub async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<()> {
    let spec = build(&args.flags, &args.args, "create")?;
    let id = create_container(ctx, &spec).await?;
    println!("{id}");
    Ok(())
}

pub async fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<()> {
    let mut spec = build(&args.flags, &args.args, "run")?;
    let client = &ctx.client;
    let body = &mut spec.body;
    let has_tty = body.tty.unwrap_or(false);
    if !args.detach {
        if has_tty && body.attach_stdin.unwrap_or(false) && !tty::is_terminal(tty::STDIN) {
            return Err(StatusError {
                code: 1,
                message: "the input device is not a TTY".into(),
            }
            .into());
        }
    } else {
        if !args.flags.attach.is_empty() {
            return Err(StatusError {
                code: 1,
                message: "conflicting options: cannot specify both --attach and --detach".into(),
            }
            .into());
        }
        body.attach_stdin = Some(false);
        body.attach_stdout = Some(false);
        body.attach_stderr = Some(false);
        body.stdin_once = Some(false);
    }
    let (stdin, stdout, stderr) = (
        body.attach_stdin.unwrap_or(false),
        body.attach_stdout.unwrap_or(false),
        body.attach_stderr.unwrap_or(false),
    );
    let auto_remove = args.flags.rm;

    let id = match create_container(ctx, &spec).await {
        Ok(id) => id,
        Err(e) => {
            let msg = format!("{e:#}");
            return Err(run_error(&msg, start_error_code(&msg)));
        }
    };
    // Signals go to the container (not with a TTY: there the keys reach it directly).
    let _proxy = (args.sig_proxy && !has_tty).then(|| signals::forward(client, &id));
    if !stdout && !stderr {
        println!("{id}");
        let _ = std::io::stdout().flush();
    }
    let keys = attach::detach_keys_setting(ctx, args.detach_keys.as_deref());
    let conn = if stdin || stdout || stderr {
        Some(attach_request(client, &id, stdin, stdout, stderr, keys.as_deref()).await?)
    } else {
        None
    };
    // Registered before the start, so a quick exit is not missed.
    let wait = wait_request(client, &id, Some(if auto_remove { "removed" } else { "next-exit" })).await;
    if let Err(e) = client.call(Req::post(format!("/containers/{id}/start"))).await {
        drop(conn);
        let msg = e.to_string();
        if auto_remove {
            let _ = exit_status(wait).await;
        }
        return Err(run_error(&msg, start_error_code(&msg)));
    }
    if (stdin || stdout || stderr) && has_tty && tty::is_terminal(tty::STDOUT) {
        tty::monitor_size(client, ResizeTarget::Container(id.clone()));
    }
    if let Some(conn) = conn {
        let opts = StreamOptions {
            stdin,
            stdout,
            stderr,
            tty: has_tty,
            detach_keys: attach::detach_keys(keys.as_deref()),
        };
        if hijack::stream(conn, &opts).await? == StreamEnd::Detached {
            return Ok(());
        }
    }
    if !stdout && !stderr {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_docker_codes() {
        assert_eq!(
            start_error_code("Error response from daemon: failed to create shim task: exec: \"x\": executable file not found in $PATH: unknown"),
            127
        );
        assert_eq!(start_error_code("exec: \"/etc\": permission denied: unknown"), 126);
        assert_eq!(start_error_code("open /x: no such file or directory"), 127);
        assert_eq!(start_error_code("Error response from daemon: No such image: busybox:latest"), 125);
        assert!(is_image_id("sha256:0e60d1efe6e5a7d1f2e2bb2f0c7b0ad2f0a8b4f0d2b5e4c1a9d7f3e2b1c0d9e8"));
        assert!(!is_image_id("busybox"));
    }
}
