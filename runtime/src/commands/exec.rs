use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};

use crate::cli::{Exec, Global};

pub fn run(g: &Global, a: Exec) -> Result<i32> {
    let c = super::load(&g.root, &a.id)?;
    if a.process.is_none() && a.command.is_empty() {
        bail!("exec needs a command or --process FILE");
    }
    let (uid, gid) = parse_user(a.user.as_deref())?;
    if let Some(kv) = a.env.iter().find(|kv| !kv.contains('=')) {
        bail!("invalid --env {kv:?}: use KEY=VALUE");
    }
    let pid_file = super::absolute(&a.pid_file)?;
    let console_socket = super::absolute(&a.console_socket)?;

    // libcontainer is always given the process as a file: `exec ARGS` becomes runc's default
    // process (the container's own, with the flags laid over it), which libcontainer's own
    // (uid 0, no terminal) is not. The container's seccomp filter is loaded by our executor
    // (libcontainer leaves it out of exec'd processes; seccomp.rs), with CAP_SYS_ADMIN lent
    // through that file.
    let spec = crate::bundle::load_spec(&c.state.bundle)?;
    let filter = crate::seccomp::filter(&spec)?;
    let mut process = match &a.process {
        Some(p) => serde_json::from_slice::<oci_spec::runtime::Process>(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("invalid process file {}", p.display()))?,
        None => process_from_flags(&spec, &a, uid, gid)?,
    };
    let plan = filter.map(|f| {
        let plan = crate::seccomp::Plan::new(f, Some(&process));
        plan.lend(&mut process);
        std::sync::Arc::new(plan)
    });
    let mut tmp_process: Option<PathBuf> = None;
    let process_file = match &a.process {
        Some(p) if plan.is_none() => p.clone(),
        _ => {
            let path = c.root.join(format!("exec-process-{}.json", std::process::id()));
            std::fs::write(&path, serde_json::to_vec(&process)?).context("writing exec process file")?;
            tmp_process = Some(path.clone());
            path
        }
    };

    let result = ContainerBuilder::new(a.id.clone(), SyscallType::default())
        .with_executor(crate::executor::ContainerExecutor::new(plan))
        .with_root_path(&g.root)?
        .with_console_socket(console_socket)
        .with_pid_file(pid_file)?
        .with_preserved_fds(a.preserve_fds)
        .validate_id()?
        .as_tenant()
        .with_detach(a.detach)
        .with_process(Some(process_file))
        .with_ignore_paused(a.ignore_paused)
        .with_sub_cgroup(a.cgroup.clone())
        .build();
    if let Some(p) = tmp_process {
        let _ = std::fs::remove_file(p);
    }
    let pid = result?;
    // As for create: a terminal gets the size the process asks for before it can look.
    if a.process.is_some() {
        if let (Some(true), Some(size)) = (process.terminal(), process.console_size()) {
            super::set_console_size(pid.as_raw(), size.height() as u16, size.width() as u16);
        }
    }
    if a.detach {
        return Ok(0);
    }
    match waitpid(pid, None)? {
        WaitStatus::Exited(_, code) => Ok(code),
        WaitStatus::Signaled(_, sig, _) => Ok(128 + sig as i32),
        _ => Ok(0),
    }
}

/// runc's default process for `exec ARGS`: the container's own, with the flags laid over it.
fn process_from_flags(
    spec: &oci_spec::runtime::Spec,
    a: &Exec,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<oci_spec::runtime::Process> {
    let mut p = spec.process().clone().context("the container's config has no process")?;
    let mut user = p.user().clone();
    if let Some(uid) = uid {
        user.set_uid(uid);
        user.set_gid(gid.unwrap_or(0));
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    let mut envs = p.env().clone().unwrap_or_default();
    envs.extend(a.env.iter().cloned());
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    p.set_args(Some(a.command.clone()));
    p.set_env(Some(envs));
    p.set_user(user);
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if a.apparmor.is_some() {
        p.set_apparmor_profile(a.apparmor.clone());
    }
    if a.process_label.is_some() {
        p.set_selinux_label(a.process_label.clone());
    }
    // --cap adds to the bounding, effective and permitted sets, and to the ambient set when
    // the process has inheritable capabilities (runc's rule).
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_else(|| {
            // oci-spec's default is a set of its own; no capabilities means none.
            let mut none = oci_spec::runtime::LinuxCapabilities::default();
            none.set_bounding(None).set_effective(None).set_permitted(None);
            none.set_inheritable(None).set_ambient(None);
            none
        });
        let add: Vec<oci_spec::runtime::Capability> = a
            .cap
            .iter()
            .map(|c| {
                let name = if c.starts_with("CAP_") { c.clone() } else { format!("CAP_{c}") };
                serde_json::from_value(serde_json::Value::String(name.to_uppercase()))
                    .map_err(|_| anyhow::anyhow!("unknown capability {c:?}"))
            })
            .collect::<Result<_>>()?;
        let with = |set: &Option<std::collections::HashSet<oci_spec::runtime::Capability>>| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(add.iter().copied());
            Some(s)
        };
        caps.set_bounding(with(caps.bounding()));
        caps.set_effective(with(caps.effective()));
        caps.set_permitted(with(caps.permitted()));
        if caps.inheritable().is_some() {
            caps.set_ambient(with(caps.ambient()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

/// runc's `-u UID[:GID]`.
fn parse_user(u: Option<&str>) -> Result<(Option<u32>, Option<u32>)> {
    let Some(u) = u else { return Ok((None, None)) };
    let (uid, gid) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let bad = || anyhow::anyhow!("invalid --user {u:?}: use UID[:GID] (numbers)");
    let uid = uid.parse::<u32>().map_err(|_| bad())?;
    let gid = gid.map(|g| g.parse::<u32>().map_err(|_| bad())).transpose()?;
    Ok((Some(uid), gid))
}
