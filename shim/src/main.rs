//! containerd-shim-berth-v2: not built yet (issue 4). Exits non-zero so nobody mistakes it for a shim.
fn main() {
    eprintln!("containerd-shim-berth-v2: not implemented yet");
    std::process::exit(1);
}
