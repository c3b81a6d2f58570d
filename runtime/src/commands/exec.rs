use std::collections::HashMap;
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
    let env: HashMap<String, String> = a
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => bail!("invalid --env {kv:?}: use KEY=VALUE"),
        })
        .collect::<Result<_>>()?;
    let pid_file = super::absolute(&a.pid_file)?;
    let console_socket = super::absolute(&a.console_socket)?;

    // The container's seccomp filter: libcontainer leaves it out of exec'd processes, so our
    // executor loads it (seccomp.rs), which needs the process as a file to lend it
    // CAP_SYS_ADMIN. libcontainer also only takes a terminal from a process file, so `-t ARGS`
    // becomes one too.
    let spec = crate::bundle::load_spec(&c.state.bundle)?;
    let filter = crate::seccomp::filter(&spec)?;
    let given = match &a.process {
        Some(p) => Some(
            serde_json::from_slice::<oci_spec::runtime::Process>(
                &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("invalid process file {}", p.display()))?,
        ),
        None => None,
    };
    let mut process = match given {
        Some(p) => Some(p),
        None if a.tty || filter.is_some() => Some(process_from_flags(&spec, &a, uid, gid)?),
        None => None,
    };
    let plan = match (filter, process.as_mut()) {
        (Some(f), Some(p)) => {
            let plan = crate::seccomp::Plan::new(f, Some(p));
            plan.lend(p);
            Some(std::sync::Arc::new(plan))
        }
        _ => None,
    };
    let mut tmp_process: Option<PathBuf> = None;
    let process_file = match (&a.process, &process) {
        (Some(p), Some(_)) if plan.is_none() => Some(p.clone()),
        (_, Some(p)) => {
            let path = c.root.join(format!("exec-process-{}.json", std::process::id()));
            std::fs::write(&path, serde_json::to_vec(p)?).context("writing exec process file")?;
            tmp_process = Some(path.clone());
            Some(path)
        }
        (_, None) => None,
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
        .with_cwd(if process_file.is_some() { None } else { a.cwd.clone() })
        .with_env(if process_file.is_some() { HashMap::new() } else { env })
        .with_process(process_file)
        .with_no_new_privs(a.no_new_privs)
        .with_container_args(a.command.clone())
        .with_additional_gids(a.additional_gids.clone())
        .with_user(uid)
        .with_group(gid)
        .with_capabilities(a.cap.clone())
        .with_ignore_paused(a.ignore_paused)
        .with_sub_cgroup(a.cgroup.clone())
        .with_process_label(a.process_label.clone())
        .with_apparmor(a.apparmor.clone())
        .build();
    if let Some(p) = tmp_process {
        let _ = std::fs::remove_file(p);
    }
    let pid = result?;
    // As for create: a terminal gets the size the process asks for before it can look.
    if let Some(p) = process.as_ref().filter(|_| a.process.is_some()) {
        if let (Some(true), Some(size)) = (p.terminal(), p.console_size()) {
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
