//! containerd-shim-berth-v2: berth's containerd shim (runtime v2, task API
//! v2), runtime name `io.containerd.berth.v2`. One process per container (or
//! per pod): holds its stdio, reaps it, reports its exit, outlives its client.
//! Containers run through a runc-compatible binary, berth-runtime by default.

mod error;
mod events;
mod mount;
mod oom;
mod process;
mod reaper;
mod runtime;
mod service;
mod shim;
mod stats;
mod stdio;

pub const RUNTIME_NAME: &str = "io.containerd.berth.v2";

fn main() {
    shim::tune_malloc();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let flags = match containerd_shim::parse(&args[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{RUNTIME_NAME}: {e}");
            std::process::exit(1);
        }
    };
    // The long-lived server is berth's own (shim::serve: few threads); the
    // short-lived `start` and `delete` commands go through the crate.
    if flags.action.is_empty() {
        if let Err(e) = shim::serve(flags) {
            eprintln!("{RUNTIME_NAME}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let config = containerd_shim::Config {
        // berth's own reaper (reaper.rs) hands every exit to its owner.
        no_reaper: true,
        ..Default::default()
    };
    containerd_shim::run::<shim::Shim>(RUNTIME_NAME, Some(config));
}
