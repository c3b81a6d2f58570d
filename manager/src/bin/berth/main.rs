//! berth: the command line client of berthd, with docker's syntax.
//!
//! Each command group is a module (container, image, network, volume, system, auth,
//! inspect) whose commands only parse, call the Engine API through [`client::Client`], and
//! render.
//! Container commands are split further: run/create (run, opts), exec, attach/start
//! (attach), ps, stats, events; hijack and tty hold the streaming and terminal parts.
//! build (`POST /build`) and cp (the archive API) send or unpack tars made on this side.

mod attach;
mod auth;
mod build;
mod client;
mod container;
mod cp;
mod events;
mod exec;
mod format;
mod hijack;
mod image;
mod inspect;
mod network;
mod opts;
mod progress;
mod ps;
mod reference;
mod run;
mod signals;
mod stats;
mod system;
mod tty;
mod units;
mod volume;

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
    // Containers
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(run::CreateArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Start one or more stopped containers
    Start(attach::StartArgs),
    /// Stop one or more running containers
    Stop(container::StopArgs),
    /// Restart one or more containers
    Restart(container::StopArgs),
    /// Kill one or more running containers
    Kill(container::KillArgs),
    /// Pause all processes within one or more containers
    Pause(container::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(container::NamesArgs),
    /// Remove one or more containers
    Rm(container::RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(container::NamesArgs),
    /// Rename a container
    Rename(container::RenameArgs),
    /// Fetch the logs of a container
    Logs(container::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Display the running processes of a container
    Top(container::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// List port mappings or a specific mapping for the container
    Port(container::PortArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(container::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(container::ExportArgs),
    /// Create a new image from a container's changes
    Commit(container::CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Manage containers
    #[command(subcommand, arg_required_else_help = true)]
    Container(container::ContainerCommand),

    // Images
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
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

    // Networks
    /// Manage networks
    #[command(subcommand, arg_required_else_help = true)]
    Network(network::NetworkCommand),

    // Volumes
    /// Manage volumes
    #[command(subcommand, arg_required_else_help = true)]
    Volume(volume::VolumeCommand),

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
        Command::Run(a) => run::run(ctx, a).await,
        Command::Create(a) => run::create(ctx, a).await,
        Command::Exec(a) => exec::exec(ctx, a).await,
        Command::Ps(a) => ps::ps(ctx, a).await,
        Command::Start(a) => attach::start(ctx, a).await,
        Command::Stop(a) => container::stop(ctx, a).await,
        Command::Restart(a) => container::restart(ctx, a).await,
        Command::Kill(a) => container::kill(ctx, a).await,
        Command::Pause(a) => container::pause(ctx, a, true).await,
        Command::Unpause(a) => container::pause(ctx, a, false).await,
        Command::Rm(a) => container::rm(ctx, a).await,
        Command::Wait(a) => container::wait(ctx, a).await,
        Command::Rename(a) => container::rename(ctx, a).await,
        Command::Logs(a) => container::logs(ctx, a).await,
        Command::Attach(a) => attach::attach(ctx, a).await,
        Command::Top(a) => container::top(ctx, a).await,
        Command::Stats(a) => stats::stats(ctx, a).await,
        Command::Port(a) => container::port(ctx, a).await,
        Command::Events(a) => events::events(ctx, a).await,
        Command::Diff(a) => container::diff(ctx, a).await,
        Command::Export(a) => container::export(ctx, a).await,
        Command::Commit(a) => container::commit(ctx, a).await,
        Command::Cp(a) => cp::cp(ctx, a).await,
        Command::Container(c) => container::run_group(ctx, c).await,
        Command::Build(a) => build::build(ctx, a).await,
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
        Command::Network(c) => network::run(ctx, c).await,
        Command::Volume(c) => volume::run(ctx, c).await,
        Command::Login(a) => auth::login(ctx, a).await,
        Command::Logout(a) => auth::logout(ctx, a).await,
        Command::Inspect(a) => inspect::run(ctx, a).await,
        Command::Version(a) => system::version(ctx, a).await,
        Command::Info(a) => system::info(ctx, a).await,
        Command::System(c) => system::run(ctx, c).await,
    }
}

/// docker's exit codes: a command's own status (run: 125 daemon error before the start,
/// 126/127 cannot invoke / not found, else the container's code), 125 for flag errors
/// (see main), 1 for any other error, daemon errors included.
fn exit_code(err: &anyhow::Error) -> i32 {
    match err.downcast_ref::<StatusError>() {
        Some(s) => s.code,
        None => 1,
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
                // docker: too few arguments is a plain error (1); a bad flag is 125
                ErrorKind::MissingRequiredArgument | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
                    ExitCode::from(1)
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        // docker's flag shapes that clap must accept
        for argv in [
            &["berth", "run", "-dit", "--rm", "-e", "A=1", "busybox", "sh", "-c", "echo -n x"][..],
            &["berth", "run", "--sig-proxy=false", "-h", "host", "busybox"],
            &["berth", "exec", "-it", "c", "ls", "-l"],
            &["berth", "container", "ls", "-aq"],
            &["berth", "top", "c", "-eo", "pid,comm"],
            &["berth", "logs", "-f", "--tail", "5", "c"],
            &["berth", "stop", "-t", "0", "a", "b"],
            &["berth", "system", "events", "--since", "10m"],
            &["berth", "network", "ls", "-q", "--filter", "driver=bridge"],
            &["berth", "volume", "create", "-o", "type=tmpfs", "--label", "a=b", "v1"],
            &["berth", "volume", "prune", "-af", "--filter", "label=x"],
            &["berth", "diff", "c"],
            &["berth", "container", "diff", "c"],
            &["berth", "export", "-o", "c.tar", "c"],
            &["berth", "container", "export", "--output=c.tar", "c"],
            &["berth", "commit", "-p=false", "-c", "ENV A=1", "-c", "CMD x", "-m", "msg", "-a", "me", "c", "repo:tag"],
            &["berth", "container", "commit", "--pause", "--change=EXPOSE 80", "c"],
            &["berth", "build", "-t", "a:1", "-t", "b", "-f", "df", "--build-arg", "A=1", "--build-arg", "B", "--label", "l=v", "--no-cache", "--pull", "-q", "--iidfile", "id", "--network", "host", "--target", "t", "--rm=false", "--force-rm", "."],
            &["berth", "image", "build", "-"],
            &["berth", "cp", "-aL", "c:/etc/hosts", "-"],
            &["berth", "container", "cp", "-", "c:/tmp"],
        ] {
            Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
    }
}
