//! berth: the command line client of berthd, with docker's syntax.
//!
//! Each command group is a module (image, system, auth, inspect) whose commands only
//! parse, call the Engine API through [`client::Client`], and render.

mod auth;
mod client;
mod format;
mod image;
mod inspect;
mod progress;
mod reference;
mod system;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError, DEFAULT_HOST};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    about = "A container engine with docker's command line",
    disable_version_flag = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", env = "BERTH_HOST", default_value = DEFAULT_HOST, value_name = "unix://PATH")]
    host: String,
    /// Location of client config files (default ~/.berth)
    #[arg(long = "config", env = "BERTH_CONFIG", value_name = "DIR")]
    config: Option<PathBuf>,
    /// Enable debug mode
    #[arg(short = 'D', long)]
    debug: bool,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    // Containers (run, ps, exec, logs, …) slot in here.

    // Images
    /// Download an image from a registry
    Pull(image::PullArgs),
    /// Upload an image to a registry
    Push(image::PushArgs),
    /// List images
    Images(image::ImagesArgs),
    /// Manage images
    #[command(subcommand, arg_required_else_help = true)]
    Image(image::ImageCommand),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(image::TagArgs),
    /// Remove one or more images
    Rmi(image::RmiArgs),
    /// Show the history of an image
    History(image::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(image::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(image::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(image::ImportArgs),
    /// Search registries for images
    Search(image::SearchArgs),

    // Registries
    /// Log in to a registry
    Login(auth::LoginArgs),
    /// Log out from a registry
    Logout(auth::LogoutArgs),

    // Anything
    /// Return low-level information on berth objects
    Inspect(inspect::InspectArgs),

    // System
    /// Show the berth version information
    Version(system::VersionArgs),
    /// Display system-wide information
    Info(system::InfoArgs),
    /// Manage berth
    #[command(subcommand, arg_required_else_help = true)]
    System(system::SystemCommand),
}

/// What every command gets: the API client and where config.json lives.
pub struct Ctx {
    pub client: Client,
    pub config_dir: PathBuf,
    pub debug: bool,
}

/// An error that carries its own exit code (its message may hold several lines).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StatusError {
    pub code: i32,
    pub message: String,
}

fn default_config_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join(".berth"),
        _ => PathBuf::from("/root/.berth"),
    }
}

async fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pull(a) => image::pull(ctx, a).await,
        Command::Push(a) => image::push(ctx, a).await,
        Command::Images(a) => image::list(ctx, a).await,
        Command::Image(c) => image::run(ctx, c).await,
        Command::Tag(a) => image::tag(ctx, a).await,
        Command::Rmi(a) => image::remove(ctx, a).await,
        Command::History(a) => image::history(ctx, a).await,
        Command::Save(a) => image::save(ctx, a).await,
        Command::Load(a) => image::load(ctx, a).await,
        Command::Import(a) => image::import(ctx, a).await,
        Command::Search(a) => image::search(ctx, a).await,
        Command::Login(a) => auth::login(ctx, a).await,
        Command::Logout(a) => auth::logout(ctx, a).await,
        Command::Inspect(a) => inspect::run(ctx, a).await,
        Command::Version(a) => system::version(ctx, a).await,
        Command::Info(a) => system::info(ctx, a).await,
        Command::System(c) => system::run(ctx, c).await,
    }
}

/// docker's exit codes: 125 for flag errors and daemon errors, 1 otherwise.
fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(s) = err.downcast_ref::<StatusError>() {
        return s.code;
    }
    match err.downcast_ref::<ClientError>() {
        Some(ClientError::Daemon { .. }) => 125,
        _ => 1,
    }
}

fn main() -> ExitCode {
    // Rust starts with SIGPIPE ignored, which turns `berth images | head -1` into a panic
    // on the next print. Restore the default so a closed pipe ends us quietly, as it does
    // any Unix filter.
    // SAFETY: setting a signal disposition to SIG_DFL before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
                _ => ExitCode::from(125),
            };
        }
    };
    if cli.version {
        println!("berth version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some(command) = cli.command else {
        return ExitCode::SUCCESS;
    };
    let client = match Client::new(&cli.host, cli.debug) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let ctx = Ctx {
        client,
        config_dir: cli.config.unwrap_or_else(default_config_dir),
        debug: cli.debug,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(&ctx, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = format!("{err:#}");
            if !message.is_empty() {
                eprintln!("{message}");
            }
            if cli.debug {
                if let Some(ClientError::Connect { cause, .. }) = err.downcast_ref::<ClientError>() {
                    eprintln!("DEBU cause: {cause}");
                }
            }
            ExitCode::from(exit_code(&err).clamp(0, 255) as u8)
        }
    }
}
