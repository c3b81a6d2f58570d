//! `exec`: create an exec instance, start it hijacked (or detached), and exit with its
//! exit code.

use bollard_stubs::models::{ExecConfig, ExecInspectResponse, ExecStartConfig, IdResponse};
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

use crate::attach::{detach_keys, detach_keys_setting, inspect_container};
use crate::client::{version_less, Req};
use crate::hijack::{self, StreamEnd, StreamOptions};
use crate::opts::read_kv_file;
use crate::tty::{self, ResizeTarget};
use crate::{Ctx, StatusError};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long = "detach", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "STRING")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long = "privileged", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long = "user", value_name = "STRING")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "STRING")]
    pub workdir: Option<String>,
    /// The container, then the command and its arguments
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub args: Vec<String>,
}

fn status(code: i32, message: impl Into<String>) -> anyhow::Error {
    StatusError {
        code,
        message: message.into(),
    }
    .into()
}

pub async fn exec(ctx: &Ctx, args: ExecArgs) -> anyhow::Result<()> {
    let client = &ctx.client;
    let container = &args.args[0];
    let cmd = args.args[1..].to_vec();

    let mut env = Vec::new();
    for f in &args.env_file {
        env.extend(read_kv_file(f, Some(&|k: &str| std::env::var(k).ok())).map_err(|e| status(1, e))?);
    }
    for e in &args.env {
        let (k, has_value) = match e.split_once('=') {
            Some((k, _)) => (k, true),
            None => (e.as_str(), false),
        };
        if k.is_empty() {
            return Err(status(
                125,
                format!("invalid argument \"{e}\" for \"-e, --env\" flag: invalid environment variable: {e}"),
            ));
        }
        env.push(match (has_value, std::env::var(k)) {
            (false, Ok(v)) => format!("{k}={v}"),
            _ => e.clone(),
        });
    }

    // A missing container is reported before anything else (and before any exec is made).
    inspect_container(client, container).await?;
    let (stdin, stdout, stderr) = if args.detach { (false, false, false) } else { (args.interactive, true, true) };
    if !args.detach && args.tty && stdin && !tty::is_terminal(tty::STDIN) {
        return Err(status(1, "the input device is not a TTY"));
    }
    let api = client.api_version().await?.to_string();
    let console_size = if args.tty && !version_less(&api, "1.42") {
        let (h, w) = tty::size(tty::STDOUT).unwrap_or((0, 0));
        Some(vec![h as usize, w as usize])
    } else {
        None
    };
    let keys = detach_keys_setting(ctx, args.detach_keys.as_deref());
    let config = ExecConfig {
        attach_stdin: Some(stdin),
        attach_stdout: Some(stdout),
        attach_stderr: Some(stderr),
        console_size: console_size.clone(),
        detach_keys: keys.clone(),
        tty: Some(args.tty),
        env: if env.is_empty() { None } else { Some(env) },
        cmd: Some(cmd),
        privileged: Some(args.privileged),
        user: args.user.clone(),
        working_dir: args.workdir.clone(),
    };
    let created: IdResponse = client
        .json(Req::post(format!("/containers/{container}/exec")).json_body(&config))
        .await?;
    let exec_id = created.id;
    if exec_id.is_empty() {
        return Err(status(1, "exec ID empty"));
    }
    let start = ExecStartConfig {
        detach: Some(args.detach),
        tty: Some(args.tty),
        console_size,
    };
    if args.detach {
        client
            .call(Req::post(format!("/exec/{exec_id}/start")).json_body(&start))
            .await?;
        return Ok(());
    }
    let conn = client
        .hijack(Req::post(format!("/exec/{exec_id}/start")).json_body(&start))
        .await?;
    if args.tty && tty::is_terminal(tty::STDIN) {
        tty::monitor_size(client, ResizeTarget::Exec(exec_id.clone()));
    }
    let opts = StreamOptions {
        stdin,
        stdout,
        stderr,
        tty: args.tty,
        detach_keys: detach_keys(keys.as_deref()),
    };
    if hijack::stream(conn, &opts).await? == StreamEnd::Detached {
        return Err(status(1, "read escape sequence"));
    }
    let inspect: ExecInspectResponse = client.json(Req::get(format!("/exec/{exec_id}/json"))).await?;
    let code = inspect.exit_code.unwrap_or(0);
    if code != 0 {
        return Err(status(code as i32, ""));
    }
    Ok(())
}
