//! One file per runc subcommand; each parses nothing and returns the process exit code.
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcgroups::common::{AnyCgroupManager, CgroupConfig};
use libcontainer::container::Container;

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

/// runc's rule for IDs; it also keeps an ID from naming a path outside --root.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.'");
    }
    Ok(())
}

pub fn container_dir(root: &Path, id: &str) -> Result<PathBuf> {
    validate_id(id)?;
    Ok(root.join(id))
}

pub fn load(root: &Path, id: &str) -> Result<Container> {
    let dir = container_dir(root, id)?;
    if !dir.join("state.json").exists() {
        bail!("container {id} does not exist");
    }
    Container::load(dir).with_context(|| format!("loading state of container {id}"))
}

pub fn cgroup_manager(container: &Container) -> Result<AnyCgroupManager> {
    let config = container.spec().context("reading the container's saved config")?;
    libcgroups::common::create_cgroup_manager(CgroupConfig {
        cgroup_path: config.cgroup_path,
        systemd_cgroup: container.systemd(),
        container_name: container.id().to_string(),
    })
    .context("opening the container's cgroup")
}

/// Makes a path absolute against the current directory before `create` changes into the bundle.
pub fn absolute(p: &Option<PathBuf>) -> Result<Option<PathBuf>> {
    Ok(match p {
        Some(p) if p.is_relative() => Some(std::env::current_dir()?.join(p)),
        other => other.clone(),
    })
}

pub fn ensure_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !root.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("creating state root {}", root.display()))?;
    }
    Ok(())
}

/// libcontainer does not apply process.consoleSize; the process's stdin is the pty by now.
pub fn set_console_size(pid: i32, rows: u16, cols: u16) {
    let Ok(tty) = fs::File::open(format!("/proc/{pid}/fd/0")) else { return };
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer; the fd is open for the call.
    let rc = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&tty), libc::TIOCSWINSZ, &ws) };
    if rc != 0 {
        tracing::warn!("setting console size: {}", std::io::Error::last_os_error());
    }
}

/// The bundle the user gave, even when libcontainer runs a derived copy of it.
pub fn user_bundle(c: &Container) -> PathBuf {
    fs::read(c.root.join(crate::bundle::ORIGINAL_BUNDLE))
        .ok()
        .map(|b| PathBuf::from(std::ffi::OsString::from(String::from_utf8_lossy(&b).into_owned())))
        .unwrap_or_else(|| c.state.bundle.clone())
}

pub enum HookKind {
    Poststart,
    Poststop,
}

/// Removes hooks of one kind from libcontainer's saved config, so the caller runs them.
pub fn take_hooks(c: &Container, kind: HookKind) -> Result<Vec<oci_spec::runtime::Hook>> {
    use libcontainer::config::YoukiConfig;
    let Ok(mut config) = YoukiConfig::load(&c.root) else { return Ok(Vec::new()) };
    let Some(hooks) = config.hooks.as_mut() else { return Ok(Vec::new()) };
    let taken = match kind {
        HookKind::Poststart => hooks.poststart_mut().take(),
        HookKind::Poststop => hooks.poststop_mut().take(),
    };
    let Some(taken) = taken else { return Ok(Vec::new()) };
    config.save(&c.root).context("saving the container config")?;
    Ok(taken)
}

/// Runs every hook in order with the container's state on stdin; a failure is a warning.
pub fn run_hooks_warn(c: &Container, hooks: &[oci_spec::runtime::Hook], kind: &str) {
    let mut state = c.state.clone();
    state.bundle = user_bundle(c);
    for hook in hooks {
        let one = vec![hook.clone()];
        if let Err(e) = libcontainer::hooks::run_hooks(Some(&one), Some(&state), None, None, None) {
            tracing::warn!("{kind} hook {} failed: {e}", hook.path().display());
        }
    }
}
