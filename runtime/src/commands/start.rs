use anyhow::{bail, Result};

use crate::cli::{Global, IdArg};

pub fn run(g: &Global, a: IdArg) -> Result<i32> {
    let mut c = super::load(&g.root, &a.id)?;
    if !c.can_start() {
        bail!("cannot start container {} in state {}: it must be created", a.id, c.status());
    }
    // libcontainer stops at the first failing poststart hook and reports an error; the spec
    // wants the rest run and a failure logged as a warning. So run them here.
    let poststart = super::take_hooks(&c, super::HookKind::Poststart)?;
    let start_hooks = crate::bundle::derived_dir(&g.root, &a.id).join(crate::hooks::START_HOOKS);
    if let Ok(raw) = std::fs::read(&start_hooks) {
        let hooks: Vec<oci_spec::runtime::Hook> = serde_json::from_slice(&raw)?;
        let pid = c.pid().map(|p| p.as_raw()).unwrap_or(0);
        let mut state = serde_json::to_value(super::state::State::of(&c))?;
        state["status"] = "created".into();
        if let Err(e) = crate::hooks::run_start_container(&hooks, &state, pid) {
            // The spec: a failing startContainer hook stops the container.
            let _ = c.kill(nix::sys::signal::Signal::SIGKILL, true);
            return Err(e);
        }
    }
    c.start()?;
    super::run_hooks_warn(&c, &poststart, "poststart");
    Ok(0)
}
