//! The state operation: JSON shape and the pid file.

use crate::{cases, Env, Outcome};
use anyhow::{ensure, Result};
use serde_json::json;

cases![state_json_shape, state_pid_file, state_stopped_after_exit];

fn state_json_shape(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.args(&["/bin/sleep", "600"]);
    b.spec["annotations"]["org.example.answer"] = json!("42");
    let id = env.id();
    env.create(&b, &id)?.ok()?;
    let st = env.state(&id)?;
    ensure!(
        st["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "ociVersion missing: {st}"
    );
    ensure!(st["id"] == id.as_str(), "id: {st}");
    ensure!(st["status"] == "created", "status: {st}");
    ensure!(
        st["pid"].as_i64().is_some_and(|p| p > 0),
        "pid must be set while created: {st}"
    );
    ensure!(
        st["bundle"].as_str() == Some(b.path()),
        "bundle must be the absolute bundle path {}: {st}",
        b.path()
    );
    ensure!(
        st["annotations"]["org.example.answer"] == "42",
        "annotations from config.json missing: {st}"
    );
    env.rt(&["start", &id])?.ok()?;
    let st = env.state(&id)?;
    ensure!(
        st["status"] == "running" && st["pid"].as_i64().is_some_and(|p| p > 0),
        "running state: {st}"
    );
    Ok(Outcome::Pass)
}

fn state_pid_file(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.args(&["/bin/sleep", "600"]);
    b.write()?;
    let id = env.id();
    let pid_file = env.dir.join("container.pid");
    env.rt(&[
        "create",
        "--bundle",
        b.path(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ])?
    .ok()?;
    let written = std::fs::read_to_string(&pid_file)?;
    let st = env.state(&id)?;
    ensure!(
        written.trim().parse::<i64>().ok() == st["pid"].as_i64(),
        "pid file says {written:?}, state says {}",
        st["pid"]
    );
    let ns = std::fs::read_link(format!("/proc/{}/ns/pid", written.trim()))?;
    ensure!(
        ns != std::fs::read_link("/proc/self/ns/pid")?,
        "the pid in the pid file is not in the container's pid namespace"
    );
    Ok(Outcome::Pass)
}

fn state_stopped_after_exit(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.args(&["/bin/true"]);
    let id = env.id();
    env.create(&b, &id)?.ok()?;
    env.rt(&["start", &id])?.ok()?;
    let st = env.wait_status(&id, "stopped")?;
    ensure!(st["id"] == id.as_str(), "stopped state: {st}");
    Ok(Outcome::Pass)
}
