//! Hooks whose state libcontainer cannot get right, made right.
//!
//! libcontainer gives createContainer and startContainer hooks a state with status
//! "creating" and no pid, and, when berth runs a derived copy of the bundle, every hook sees
//! the copy's path. So for a derived bundle berth (1) routes prestart, createRuntime and
//! createContainer hooks through `berth-runtime hook-relay`, which corrects the state on
//! stdin before running the real hook, and (2) runs startContainer hooks itself, in the
//! container's namespaces, from `start`.
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Hook, HookBuilder, Hooks, Spec};

/// Where `start` finds the startContainer hooks taken out of a derived spec.
pub const START_HOOKS: &str = "start-container-hooks.json";

/// Set across the self re-exec so hook relays name the host binary, not the sealed copy.
pub const EXE_ENV: &str = "_BERTH_RUNTIME_EXE";

pub fn host_exe() -> PathBuf {
    std::env::var_os(EXE_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// Rewrites the spec's hooks for a derived bundle; returns the startContainer hooks to stash.
pub fn relay(spec: &mut Spec, user_bundle: &Path) -> Result<Vec<Hook>> {
    let Some(hooks) = spec.hooks().clone() else { return Ok(Vec::new()) };
    let exe = host_exe();
    let wrap = |list: &Option<Vec<Hook>>| -> Result<Option<Vec<Hook>>> {
        let Some(list) = list else { return Ok(None) };
        list.iter().map(|h| relayed(h, &exe, user_bundle)).collect::<Result<Vec<_>>>().map(Some)
    };
    let mut new: Hooks = hooks.clone();
    #[allow(deprecated)]
    new.set_prestart(wrap(hooks.prestart())?);
    new.set_create_runtime(wrap(hooks.create_runtime())?);
    new.set_create_container(wrap(hooks.create_container())?);
    new.set_start_container(None);
    spec.set_hooks(Some(new));
    Ok(hooks.start_container().clone().unwrap_or_default())
}

fn relayed(h: &Hook, exe: &Path, bundle: &Path) -> Result<Hook> {
    let mut args = vec![
        "berth-runtime".to_string(),
        "hook-relay".into(),
        "--bundle".into(),
        bundle.display().to_string(),
        "--".into(),
        h.path().display().to_string(),
    ];
    match h.args() {
        Some(a) if !a.is_empty() => args.extend(a.iter().cloned()),
        _ => args.push(h.path().display().to_string()),
    }
    let mut b = HookBuilder::default().path(exe).args(args);
    if let Some(env) = h.env() {
        b = b.env(env.clone());
    }
    if let Some(t) = h.timeout() {
        b = b.timeout(t);
    }
    Ok(b.build()?)
}

/// `hook-relay`: the state on stdin gets the user's bundle (and a pid if it has none),
/// then the real hook runs with it. `target` is the hook's path followed by its args
/// (args[0] first).
pub fn relay_main(bundle: &Path, target: &[String]) -> Result<i32> {
    let [path, argv0, rest @ ..] = target else { bail!("hook-relay: missing hook path and args") };
    let mut raw = Vec::new();
    std::io::stdin().read_to_end(&mut raw)?;
    let mut state: serde_json::Value =
        serde_json::from_slice(&raw).context("hook-relay: state on stdin is not JSON")?;
    state["bundle"] = bundle.display().to_string().into();
    if state.get("pid").is_none_or(|p| p.is_null()) {
        // Inside the container's pid namespace our parent is its init.
        state["pid"] = nix::unistd::getppid().as_raw().into();
        state["status"] = "created".into();
    }
    let mut child = Command::new(path)
        .arg0(argv0)
        .args(rest)
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("running hook {path}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let status = child.wait()?;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Runs startContainer hooks in the namespaces of the container's init process.
pub fn run_start_container(hooks: &[Hook], state: &serde_json::Value, init_pid: i32) -> Result<()> {
    // User namespace first: joining the others needs the capabilities it grants.
    let mut ns_files = Vec::new();
    for ns in ["user", "mnt", "uts", "ipc", "net", "cgroup", "pid"] {
        let theirs = format!("/proc/{init_pid}/ns/{ns}");
        if fs::read_link(&theirs).ok() != fs::read_link(format!("/proc/self/ns/{ns}")).ok() {
            ns_files.push(fs::File::open(&theirs).with_context(|| format!("opening {theirs}"))?);
        }
    }
    let fds: Vec<i32> = ns_files.iter().map(|f| f.as_raw_fd()).collect();
    for hook in hooks {
        let args = hook.args().clone().unwrap_or_default();
        let mut cmd = Command::new(hook.path());
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
        let env: HashMap<String, String> = hook
            .env()
            .iter()
            .flatten()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        cmd.env_clear().envs(env).stdin(Stdio::piped());
        let fds = fds.clone();
        // SAFETY: only setns(2) between fork and exec, on fds that stay open in the parent.
        unsafe {
            cmd.pre_exec(move || {
                for fd in &fds {
                    if libc::setns(*fd, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child =
            cmd.spawn().with_context(|| format!("startContainer hook {}", hook.path().display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(state.to_string().as_bytes());
        }
        let deadline = hook.timeout().map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("startContainer hook {} timed out", hook.path().display());
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if !status.success() {
            bail!("startContainer hook {} failed: {status}", hook.path().display());
        }
    }
    Ok(())
}
