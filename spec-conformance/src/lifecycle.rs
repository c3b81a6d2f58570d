//! Create / start / kill / delete and the transitions between states.

use crate::{cases, Env, Outcome};
use anyhow::{ensure, Result};
use std::path::Path;
use std::time::{Duration, Instant};

cases![
    lifecycle_create_start_kill_delete,
    lifecycle_created_does_not_run_program,
    lifecycle_start_twice_fails,
    lifecycle_delete_running_needs_force,
    lifecycle_kill_stopped_fails,
    lifecycle_kill_delivers_signal,
    lifecycle_duplicate_id_fails,
    lifecycle_run_exit_code,
    lifecycle_exec_joins_container,
];

fn wait_for(path: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        ensure!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A running container whose process sleeps; returns its id.
pub(crate) fn running_sleeper(env: &Env) -> Result<String> {
    let mut b = env.bundle()?;
    b.args(&["/bin/sleep", "600"]);
    let id = env.id();
    env.create(&b, &id)?.ok()?;
    env.rt(&["start", &id])?.ok()?;
    env.wait_status(&id, "running")?;
    Ok(id)
}

fn lifecycle_create_start_kill_delete(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.args(&["/bin/sleep", "600"]);
    let id = env.id();
    env.create(&b, &id)?.ok()?;
    let st = env.state(&id)?;
    ensure!(st["status"] == "created", "after create: {st}");
    let pid = st["pid"].as_i64().unwrap_or(0);
    ensure!(
        pid > 0 && Path::new(&format!("/proc/{pid}")).exists(),
        "created container has no live pid: {st}"
    );
    env.rt(&["start", &id])?.ok()?;
    let st = env.state(&id)?;
    ensure!(st["status"] == "running", "after start: {st}");
    env.rt(&["kill", &id, "9"])?.ok()?;
    env.wait_status(&id, "stopped")?;
    env.rt(&["delete", &id])?.ok()?;
    let after = env.rt(&["state", &id])?;
    ensure!(
        !after.success(),
        "state still succeeds after delete: {}",
        after.stdout
    );
    env.assert_root_empty()?;
    Ok(Outcome::Pass)
}

fn lifecycle_created_does_not_run_program(env: &Env) -> Result<Outcome> {
    let shared = env.dir.join("shared");
    std::fs::create_dir_all(&shared)?;
    let marker = shared.join("ran");
    let mut b = env.bundle()?;
    b.share_dir(&shared)
        .args(&["/bin/touch", marker.to_str().unwrap()]);
    let id = env.id();
    env.create(&b, &id)?.ok()?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(!marker.exists(), "the user program ran before start");
    env.rt(&["start", &id])?.ok()?;
    env.wait_status(&id, "stopped")?;
    ensure!(marker.exists(), "the user program did not run after start");
    Ok(Outcome::Pass)
}

fn lifecycle_start_twice_fails(env: &Env) -> Result<Outcome> {
    let id = running_sleeper(env)?;
    let again = env.rt(&["start", &id])?;
    ensure!(
        !again.success(),
        "second start of a running container succeeded"
    );
    let st = env.state(&id)?;
    ensure!(st["status"] == "running", "after failed second start: {st}");
    Ok(Outcome::Pass)
}

fn lifecycle_delete_running_needs_force(env: &Env) -> Result<Outcome> {
    let id = running_sleeper(env)?;
    let pid = env.state(&id)?["pid"].as_i64().unwrap_or(0);
    let del = env.rt(&["delete", &id])?;
    ensure!(
        !del.success(),
        "delete of a running container without --force succeeded"
    );
    let st = env.state(&id)?;
    ensure!(st["status"] == "running", "after refused delete: {st}");
    env.rt(&["delete", "--force", &id])?.ok()?;
    ensure!(
        !env.rt(&["state", &id])?.success(),
        "state still succeeds after delete --force"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        ensure!(
            Instant::now() < deadline,
            "container process {pid} survived delete --force"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.assert_root_empty()?;
    Ok(Outcome::Pass)
}

/// Alive and not a zombie.
pub(crate) fn process_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, r)| !r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn lifecycle_kill_stopped_fails(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.args(&["/bin/true"]);
    let id = env.id();
    env.create(&b, &id)?.ok()?;
    env.rt(&["start", &id])?.ok()?;
    env.wait_status(&id, "stopped")?;
    let k = env.rt(&["kill", &id, "KILL"])?;
    ensure!(!k.success(), "kill of a stopped container succeeded");
    Ok(Outcome::Pass)
}

fn lifecycle_kill_delivers_signal(env: &Env) -> Result<Outcome> {
    let shared = env.dir.join("shared");
    std::fs::create_dir_all(&shared)?;
    let d = shared.to_str().unwrap();
    let script =
        format!("trap 'touch {d}/got; exit 0' USR1; touch {d}/ready; while :; do sleep 0.05; done");
    let mut b = env.bundle()?;
    b.share_dir(&shared).args(&["/bin/sh", "-c", &script]);
    let id = env.id();
    env.create(&b, &id)?.ok()?;
    env.rt(&["start", &id])?.ok()?;
    wait_for(&shared.join("ready"))?;
    env.rt(&["kill", &id, "10"])?.ok()?; // SIGUSR1, numeric as containerd sends it
    env.wait_status(&id, "stopped")?;
    ensure!(
        shared.join("got").exists(),
        "the process did not receive SIGUSR1"
    );
    Ok(Outcome::Pass)
}

fn lifecycle_duplicate_id_fails(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.args(&["/bin/sleep", "600"]);
    let id = env.id();
    env.create(&b, &id)?.ok()?;
    let mut b2 = env.bundle()?;
    b2.args(&["/bin/sleep", "600"]);
    let dup = env.create(&b2, &id)?;
    ensure!(!dup.success(), "a second create with the same id succeeded");
    let st = env.state(&id)?;
    ensure!(
        st["status"] == "created",
        "the first container was disturbed: {st}"
    );
    ensure!(
        st["bundle"].as_str() == Some(b.path()),
        "state now names another bundle: {st}"
    );
    Ok(Outcome::Pass)
}

fn lifecycle_run_exit_code(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.args(&["/bin/sh", "-c", "exit 7"]);
    b.write()?;
    let id = env.id();
    let out = env.rt(&["run", "--bundle", b.path(), &id])?;
    ensure!(
        out.code == Some(7),
        "run must exit with the container's code 7: {}",
        out.describe()
    );
    Ok(Outcome::Pass)
}

fn lifecycle_exec_joins_container(env: &Env) -> Result<Outcome> {
    let id = running_sleeper(env)?;
    // The exec'd checker sees the container's namespaces and hostname, and
    // reads the same /spec.json.
    let out = env
        .rt(&["exec", &id, "/checker", "hostname", "namespaces"])?
        .ok()?;
    crate::harness::Checks::parse(&out.stdout)?.assert_ok(&[
        "hostname",
        "namespace[pid]",
        "namespace[network]",
    ])?;
    let code = env.rt(&["exec", &id, "/bin/sh", "-c", "exit 3"])?;
    ensure!(
        code.code == Some(3),
        "exec must exit with the process's code 3: {}",
        code.describe()
    );
    Ok(Outcome::Pass)
}
