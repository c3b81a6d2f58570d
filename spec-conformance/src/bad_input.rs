//! Bad inputs: each must fail with a non-zero exit and a one-line error on
//! stderr, and leave nothing behind in --root.

use crate::harness::Out;
use crate::lifecycle::running_sleeper;
use crate::{cases, Env, Outcome};
use anyhow::{ensure, Result};
use serde_json::json;

cases![
    bad_input_malformed_config,
    bad_input_missing_rootfs,
    bad_input_unknown_namespace_type,
    bad_input_missing_executable,
    bad_input_bad_signal,
    bad_input_unknown_container_id,
    bad_input_path_traversal_id,
];

fn one_line_error(out: &Out) -> Result<()> {
    ensure!(
        !out.success(),
        "`{}` succeeded but must fail",
        out.args.join(" ")
    );
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    ensure!(
        lines.len() == 1,
        "`{}` must print one error line on stderr, printed {}: {:?}",
        out.args.join(" "),
        lines.len(),
        out.stderr
    );
    Ok(())
}

fn bad_input_malformed_config(env: &Env) -> Result<Outcome> {
    let b = env.bundle()?;
    std::fs::write(
        b.dir.join("config.json"),
        b"{\"ociVersion\": \"1.0.2\", \"process\": ",
    )?;
    let id = env.id();
    let out = env.rt(&["create", "--bundle", b.path(), &id])?;
    one_line_error(&out)?;
    env.assert_root_empty()?;
    Ok(Outcome::Pass)
}

fn bad_input_missing_rootfs(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.set("/root/path", json!("no-such-rootfs"));
    let id = env.id();
    let out = env.create(&b, &id)?;
    one_line_error(&out)?;
    env.assert_root_empty()?;
    Ok(Outcome::Pass)
}

fn bad_input_unknown_namespace_type(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.namespaces(&["pid", "network", "ipc", "uts", "mount", "bogus"]);
    let id = env.id();
    let out = env.create(&b, &id)?;
    one_line_error(&out)?;
    env.assert_root_empty()?;
    Ok(Outcome::Pass)
}

/// The spec: if the program cannot be executed, the runtime MUST generate an
/// error (at create or at start).
fn bad_input_missing_executable(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.args(&["/no/such/program"]);
    let id = env.id();
    let created = env.create(&b, &id)?;
    if created.success() {
        let start = env.rt(&["start", &id])?;
        ensure!(
            !start.success(),
            "create and start both succeeded for a program that does not exist"
        );
        env.rt(&["delete", "--force", &id])?;
    } else {
        one_line_error(&created)?;
    }
    env.assert_root_empty()?;
    Ok(Outcome::Pass)
}

fn bad_input_bad_signal(env: &Env) -> Result<Outcome> {
    let id = running_sleeper(env)?;
    one_line_error(&env.rt(&["kill", &id, "SIGNOTASIGNAL"])?)?;
    let st = env.state(&id)?;
    ensure!(
        st["status"] == "running",
        "container not running after a bad kill: {st}"
    );
    Ok(Outcome::Pass)
}

fn bad_input_unknown_container_id(env: &Env) -> Result<Outcome> {
    let id = "no-such-container-conformance";
    for args in [
        vec!["state", id],
        vec!["start", id],
        vec!["kill", id, "KILL"],
        vec!["delete", id],
    ] {
        one_line_error(&env.rt(&args)?)?;
    }
    env.assert_root_empty()?;
    Ok(Outcome::Pass)
}

/// An id must never name a path outside --root.
fn bad_input_path_traversal_id(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.args(&["/bin/true"]);
    let out = env.create(&b, "../escaped")?;
    if out.success() {
        // Clean up what it made before failing.
        let _ = env.rt(&["delete", "--force", "../escaped"]);
    }
    one_line_error(&out)?;
    ensure!(
        !env.dir.join("escaped").exists(),
        "the runtime wrote state outside --root"
    );
    env.assert_root_empty()?;
    Ok(Outcome::Pass)
}
