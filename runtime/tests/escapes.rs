//! The known runtime escapes, attempted for real against berth-runtime.
//!
//! - CVE-2019-5736: a process in the container keeps a handle on a runtime process's
//!   /proc/PID/exe and, once the runtime process is gone, reopens it for writing to replace
//!   the host binary. berth-runtime must run from a file that cannot be written.
//! - CVE-2024-21626: a file descriptor the runtime holds on a host directory leaks into the
//!   container, and `process.cwd = /proc/self/fd/N` puts the container on the host fs.
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::Output;

mod common;
use common::{ok, Env};

#[test]
fn host_binary_cannot_be_reopened_for_writing_from_the_container() {
    let mut env = Env::new();
    env.write_config(&["sleep", "100"], "/");
    let id = env.id("exe");
    let bundle = env.dir.join("bundle");
    ok(env.run(&mut env.rt(&["create", "--bundle", bundle.to_str().unwrap(), &id])), "create");
    let state: serde_json::Value =
        serde_json::from_slice(&ok(env.run(&mut env.rt(&["state", &id])), "state").stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    // Until `start`, the container's pid 1 is a berth-runtime process: the attacker's target.
    let handle = fs::File::options()
        .custom_flags(libc::O_PATH)
        .read(true)
        .open(format!("/proc/{pid}/exe"))
        .expect("open the runtime's exe by O_PATH");
    ok(env.run(&mut env.rt(&["delete", "--force", &id])), "delete");
    let reopened = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    match reopened {
        Ok(_) => panic!("the runtime binary behind /proc/{pid}/exe can be opened for writing"),
        Err(e) => assert_eq!(
            e.raw_os_error(),
            Some(libc::EROFS),
            "expected EROFS from the read-only copy, got {e}"
        ),
    }
}

#[test]
fn host_fd_does_not_leak_and_cannot_be_a_cwd() {
    let mut env = Env::new();
    // A host directory fd, open without CLOEXEC in the process that calls the runtime.
    let host = env.dir.join("host-secret");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("marker"), "host").unwrap();
    let dirfd = fs::File::open(&host).unwrap();
    let leaked: i32 = 7;

    let spawn = |env: &Env, args: &[&str]| -> Output {
        let raw = dirfd.as_raw_fd();
        let mut cmd = env.rt(args);
        // SAFETY: dup2 between fork and exec to place the host fd at a fixed number.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, leaked) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        env.run(&mut cmd)
    };

    // 1. The container sees only its stdio.
    env.write_config(&["ls", "/proc/self/fd"], "/");
    let id = env.id("fds");
    let bundle = env.dir.join("bundle");
    let out = ok(spawn(&env, &["run", "--bundle", bundle.to_str().unwrap(), &id]), "run ls");
    let fds: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect();
    // 0-2 are stdio; ls itself holds one more for the directory it lists.
    assert!(
        fds.iter().all(|f| ["0", "1", "2", "3"].contains(&f.as_str())),
        "fds visible in the container: {fds:?}"
    );

    // 2. A cwd through the leaked fd must not land on the host.
    env.write_config(&["cat", "marker"], &format!("/proc/self/fd/{leaked}"));
    let id = env.id("cwd");
    let out = spawn(&env, &["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("host"),
        "the container read a host file through a leaked fd as cwd"
    );
}
