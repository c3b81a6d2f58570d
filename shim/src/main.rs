//! containerd-shim-berth-v2: berth's containerd shim (runtime v2, task API
//! v2), runtime name `io.containerd.berth.v2`. One process per container (or
//! per pod): holds its stdio, reaps it, reports its exit, outlives its client.
//! Containers run through a runc-compatible binary, berth-runtime by default.

mod error;
mod events;
mod mount;
mod process;
mod reaper;
mod runtime;
mod service;
mod shim;
mod stats;
mod stdio;

pub const RUNTIME_NAME: &str = "io.containerd.berth.v2";

fn main() {
    let config = containerd_shim::Config {
        // berth's own reaper (reaper.rs) hands every exit to its owner.
        no_reaper: true,
        ..Default::default()
    };
    containerd_shim::run::<shim::Shim>(RUNTIME_NAME, Some(config));
}
