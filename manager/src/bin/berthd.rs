//! berthd: not built yet (issue 3). Exits non-zero so nobody mistakes it for the real thing.
fn main() {
    eprintln!("berthd: not implemented yet");
    std::process::exit(1);
}
