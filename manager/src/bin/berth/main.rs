//! berth: not built yet (issue 3). Exits non-zero so nobody mistakes it for the real thing.
fn main() {
    eprintln!("berth: not implemented yet");
    std::process::exit(1);
}
