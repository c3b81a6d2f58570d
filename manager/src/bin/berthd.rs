//! berthd: the berth daemon. Serves the Docker Engine API on a unix socket.

use berth_manager::config::{parse_host, Config, FileConfig};
use berth_manager::Daemon;
use clap::Parser;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "berthd", version, about = "The berth daemon: containers and images behind the Docker Engine API")]
struct Args {
    /// Root of persistent state (images, containers, volumes).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Root of runtime state (sockets, mounts).
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// Socket to listen on (repeatable), unix:///PATH.
    #[arg(short = 'H', long = "host")]
    host: Vec<String>,
    /// A registry reached over plain http (repeatable), HOST[:PORT].
    #[arg(long = "insecure-registry")]
    insecure_registry: Vec<String>,
    /// Settings file (TOML, keys named like the flags).
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// Where berthd writes its pid.
    #[arg(short = 'p', long)]
    pidfile: Option<PathBuf>,
    /// debug, info, warn, error.
    #[arg(short = 'l', long)]
    log_level: Option<String>,
    /// Debug logging.
    #[arg(short = 'D', long)]
    debug: bool,
    /// The default bridge network's Linux bridge (default berth0).
    #[arg(short = 'b', long)]
    bridge: Option<String>,
    /// The default bridge's address and prefix, e.g. 172.17.0.1/16 (default: a free pool).
    #[arg(long)]
    bip: Option<String>,
    /// MTU of the default bridge's container interfaces.
    #[arg(long)]
    mtu: Option<u32>,
    /// nftables or iptables (default: nftables where nft is installed).
    #[arg(long)]
    firewall_backend: Option<String>,
    /// Parent cgroup of containers that name none of their own (default /berth)
    #[arg(long)]
    cgroup_parent: Option<String>,
}

fn settings(a: Args) -> berth_manager::errors::Result<Config> {
    let f = FileConfig::load(a.config_file.as_deref())?;
    let data_root = a.data_root.or(f.data_root).unwrap_or_else(|| "/var/lib/berth".into());
    let exec_root = a.exec_root.or(f.exec_root).unwrap_or_else(|| "/run/berth".into());
    let hosts_raw = if !a.host.is_empty() { a.host } else { f.hosts.unwrap_or_else(|| vec!["unix:///run/berth/berth.sock".into()]) };
    let hosts = hosts_raw.iter().map(|h| parse_host(h)).collect::<Result<Vec<_>, _>>()?;
    let mut insecure = f.insecure_registries.unwrap_or_default();
    insecure.extend(a.insecure_registry);
    let debug = a.debug || f.debug.unwrap_or(false);
    let log_level = a.log_level.or(f.log_level).unwrap_or_else(|| if debug { "debug".into() } else { "info".into() });
    let pidfile = a.pidfile.or(f.pidfile).unwrap_or_else(|| exec_root.join("berthd.pid"));
    let bridge = a.bridge.or(f.bridge).unwrap_or_else(|| "berth0".into());
    let bip = a.bip.or(f.bip);
    let mtu = a.mtu.or(f.mtu).unwrap_or(0);
    let firewall_backend = a.firewall_backend.or(f.firewall_backend).unwrap_or_default();
    let cgroup_parent = berth_manager::config::cgroup_parent(&a.cgroup_parent.or(f.cgroup_parent).unwrap_or_else(|| "/berth".into()))?;
    Ok(Config { data_root, exec_root, hosts, insecure_registries: insecure, pidfile, log_level, debug, bridge, bip, mtu, firewall_backend, cgroup_parent })
}

fn main() -> ExitCode {
    // Pulls run on several threads; glibc's default of one malloc arena per thread (up to
    // 8 per core) keeps each one's high-water mark. Two arenas are plenty for berthd.
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let args = Args::parse();
    let cfg = match settings(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e}");
            return ExitCode::from(1);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(format!("berth_manager={0},berthd={0}", cfg.log_level)).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("berthd: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    for d in [&cfg.data_root, &cfg.exec_root] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::set_permissions(&cfg.data_root, std::fs::Permissions::from_mode(0o710)).ok();
    // One berthd per data root.
    let lock_path = cfg.data_root.join("berthd.lock");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| anyhow::anyhow!("another berthd is using {} ({e})", cfg.data_root.display()))?;
    if let Some(p) = cfg.pidfile.parent() {
        std::fs::create_dir_all(p).ok();
    }
    std::fs::write(&cfg.pidfile, format!("{}\n", std::process::id())).with_context(|| format!("writing {}", cfg.pidfile.display()))?;

    let daemon = Daemon::open(cfg.clone()).await?;
    let router = berth_manager::api::router(daemon.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for path in &cfg.hosts {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).ok();
        }
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).ok();
        tracing::info!(socket = %path.display(), "API listening");
        servers.push(tokio::spawn(serve(listener, router.clone(), stop_rx.clone())));
    }
    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_root = %cfg.data_root.display(), "berthd started");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for s in servers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s).await;
    }
    for path in &cfg.hosts {
        let _ = std::fs::remove_file(path);
    }
    daemon.shutdown().await;
    let _ = std::fs::remove_file(&cfg.pidfile);
    Ok(())
}

/// Accept connections until told to stop, then wait (bounded) for requests in flight.
async fn serve(listener: tokio::net::UnixListener, router: axum::Router, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let Ok((stream, _)) = acc else { continue };
                let router = router.clone();
                let mut stop = stop.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| berth_manager::api::handle(router.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).with_upgrades();
                    tokio::pin!(conn);
                    tokio::select! {
                        r = conn.as_mut() => { if let Err(e) = r { tracing::debug!("connection: {e}"); } }
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                        }
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    while conns.join_next().await.is_some() {}
}
