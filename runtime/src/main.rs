//! berth-runtime: a runc-compatible OCI runtime over libcontainer.
mod bundle;
mod cli;
mod commands;
mod executor;
mod hooks;
mod logging;
mod prewarm;
mod seccomp;
mod selfexe;
mod signal;

use clap::Parser;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    // Rust ignores SIGPIPE. Commands that only print get the default back, so `state | head`
    // ends quietly as with other tools; the others keep ignoring it, since a hook that exits
    // without reading its state must not kill us (containers get the default: executor.rs).
    if matches!(
        cli.command,
        Command::State(_) | Command::List(_) | Command::Ps(_) | Command::Features | Command::Spec(_)
    ) {
        // SAFETY: setting a default disposition before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // CVE-2019-5736: commands that enter a container first re-execute from a read-only file.
    let enters_container = matches!(
        cli.command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_) | Command::HookRelay(_)
    );
    if matches!(cli.command, Command::Create(_) | Command::Run(_)) && std::env::var_os(hooks::EXE_ENV).is_none() {
        prewarm::start();
    }
    if enters_container {
        if std::env::var_os(hooks::EXE_ENV).is_none() {
            if let Ok(exe) = std::env::current_exe() {
                std::env::set_var(hooks::EXE_ENV, exe);
            }
        }
        if let Err(e) = selfexe::ensure_protected() {
            eprintln!("berth-runtime: {e:#}");
            std::process::exit(1);
        }
    }
    // After a memfd re-exec our name is the fd number; ps should say who we are.
    let _ = nix::sys::prctl::set_name(c"berth-runtime");
    let log_to_file = logging::init(&cli.global);
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line, naming the problem: libcontainer errors may span lines.
            let msg = runc_wording(&format!("{e:#}").replace('\n', " "));
            tracing::error!("{msg}");
            if log_to_file || !tracing::enabled!(tracing::Level::ERROR) {
                eprintln!("berth-runtime: {msg}");
            }
            1
        }
    };
    std::process::exit(code);
}

/// Clients (the docker CLI, containerd) tell "command not found" (127) from "cannot invoke"
/// (126) by runc's words; libcontainer says the same thing differently.
fn runc_wording(msg: &str) -> String {
    if let Some(start) = msg.find("executable '") {
        let rest = &msg[start + "executable '".len()..];
        if let Some(end) = rest.find("' not found in $PATH") {
            let name = &rest[..end];
            return format!("{msg}: exec: \"{name}\": executable file not found in $PATH");
        }
    }
    if msg.contains("does not have correct permissions") || msg.contains("is not executable") {
        return format!("{msg}: permission denied");
    }
    if msg.contains("not found in rootfs") || msg.contains("doesn't exist") {
        return format!("{msg}: no such file or directory");
    }
    msg.to_string()
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    use commands::*;
    let g = &cli.global;
    match cli.command {
        Command::Create(a) => create::run(g, a),
        Command::Start(a) => start::run(g, a),
        Command::Run(a) => run::run(g, a),
        Command::State(a) => state::run(g, a),
        Command::Kill(a) => kill::run(g, a),
        Command::Delete(a) => delete::run(g, a),
        Command::Exec(a) => exec::run(g, a),
        Command::Ps(a) => ps::run(g, a),
        Command::Pause(a) => pause::pause(g, a),
        Command::Resume(a) => pause::resume(g, a),
        Command::Events(a) => events::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Spec(a) => spec::run(a, g.rootless.as_deref().is_some_and(|v| v != "false")),
        Command::Update(a) => update::run(g, a),
        Command::Features => features::run(),
        Command::Checkpoint(a) => checkpoint::checkpoint(g, a),
        Command::Restore(a) => checkpoint::restore(g, a),
        Command::HookRelay(a) => crate::hooks::relay_main(&a.bundle, &a.target),
    }
}
