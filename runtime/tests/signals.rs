//! Signal dispositions a container starts with are the caller's, not the runtime's own:
//! Rust programs ignore SIGPIPE, and an ignored signal would survive into the container.
mod common;
use common::{ok, Env};

fn ignored_mask(status: &str) -> u64 {
    let line = status.lines().find(|l| l.starts_with("SigIgn:")).expect("SigIgn line");
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn sigpipe_is_not_ignored_in_the_container() {
    let mut env = Env::new();
    env.write_config(&["cat", "/proc/self/status"], "/");
    let id = env.id("sigpipe");
    // The caller has SIGPIPE at its default (as a shell or containerd's shim would); the
    // runtime, a Rust program, ignores it internally and must not pass that on.
    let mut cmd = env.rt(&["run", "--bundle", &env.bundle(), &id]);
    // SAFETY: only signal(2) between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            Ok(())
        });
    }
    let out = ok(env.run(&mut cmd), "run");
    let mask = ignored_mask(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE is ignored in the container (SigIgn {mask:x})");
}
