//! Seccomp profiles compiled once per profile and loaded ready-made by the init (seccomp.rs):
//! the filter is in force in the container and in exec'd processes, the capability lent for
//! the load is gone before the program runs, and the cache is used, and remade when damaged.
use std::fs;
use std::path::PathBuf;

mod common;
use common::{ok, Env};

/// mkdir fails with ENOMSG (42) under the profile; everything else is allowed.
fn config(args: &[&str], nnp: bool) -> serde_json::Value {
    let mut c = Env::config(args, "/");
    let caps = serde_json::json!(["CAP_CHOWN", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"]);
    c["process"]["capabilities"] = serde_json::json!({
        "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []
    });
    if nnp {
        c["process"]["noNewPrivileges"] = true.into();
    }
    c["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]
    });
    c
}

const PROBE: &str = "mkdir /x 2>&1; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status";

fn status(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn assert_confined(out: &str, nnp: bool, who: &str) {
    assert!(out.contains("No message of desired type"), "{who}: mkdir was not denied with errno 42:\n{out}");
    for (k, want) in [("CapEff", "00000000000000e1"), ("CapPrm", "00000000000000e1"), ("CapBnd", "00000000000000e1")] {
        let line = out.lines().find(|l| l.starts_with(&format!("{k}:"))).unwrap_or_default();
        assert!(line.ends_with(want), "{who}: {k} should be {want} (no CAP_SYS_ADMIN left): {line:?}\n{out}");
    }
    assert!(out.lines().any(|l| l.starts_with("Seccomp:") && l.ends_with('2')), "{who}: not in filter mode:\n{out}");
    let nnp_line = out.lines().find(|l| l.starts_with("NoNewPrivs:")).unwrap_or_default();
    assert!(nnp_line.ends_with(if nnp { '1' } else { '0' }), "{who}: {nnp_line:?}");
}

/// The test's own cache (BERTH_SECCOMP_CACHE), so parallel tests do not share entries.
fn cache(env: &Env) -> PathBuf {
    env.dir.join("seccomp-cache")
}

fn rt(env: &Env, args: &[&str]) -> std::process::Command {
    let mut c = env.rt(args);
    c.env("BERTH_SECCOMP_CACHE", cache(env));
    c
}

fn cache_files(env: &Env) -> Vec<PathBuf> {
    fs::read_dir(cache(env))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn profile_applies_in_init_and_exec_and_caps_are_the_specs() {
    for nnp in [false, true] {
        let mut env = Env::new();
        env.write(&config(&["sh", "-c", PROBE], nnp));
        let id = env.id(&format!("sc-run-{nnp}"));
        let out = env.run(&mut rt(&env, &["run", "--bundle", &env.bundle(), &id]));
        assert_confined(&status(&out.stdout), nnp, "run");

        // exec'd processes get the profile too (libcontainer loads it for them).
        env.write(&config(&["sleep", "100"], nnp));
        let id = env.id(&format!("sc-exec-{nnp}"));
        ok(env.run(&mut rt(&env, &["create", "--bundle", &env.bundle(), &id])), "create");
        ok(env.run(&mut rt(&env, &["start", &id])), "start");
        let out = env.run(&mut rt(&env, &["exec", &id, "sh", "-c", PROBE]));
        assert_confined(&status(&out.stdout), nnp, "exec");
        let out = ok(env.run(&mut rt(&env, &["exec", &id, "cat", "/proc/1/status"])), "exec cat");
        let init = status(&out.stdout);
        assert!(init.lines().any(|l| l == "CapEff:\t00000000000000e1"), "init's CapEff:\n{init}");
        assert!(init.lines().any(|l| l == "Seccomp:\t2"), "init's seccomp mode:\n{init}");
        ok(env.run(&mut rt(&env, &["delete", "--force", &id])), "delete");
    }
}

#[test]
fn compiled_once_and_remade_when_damaged() {
    let mut env = Env::new();
    env.write(&config(&["sh", "-c", PROBE], false));
    let a = env.id("sc-cache-a");
    env.run(&mut rt(&env, &["run", "--bundle", &env.bundle(), &a]));
    let files = cache_files(&env);
    assert_eq!(files.len(), 1, "one profile, one cached program: {files:?}");
    let program = fs::read(&files[0]).unwrap();
    assert!(!program.is_empty() && program.len() % 8 == 0, "not a BPF program: {} bytes", program.len());

    // The same profile again: the cached program, unchanged and used.
    let mtime = fs::metadata(&files[0]).unwrap().modified().unwrap();
    let b = env.id("sc-cache-b");
    let out = env.run(&mut rt(&env, &["run", "--bundle", &env.bundle(), &b]));
    assert_confined(&status(&out.stdout), false, "cache hit");
    assert_eq!(cache_files(&env), files);
    assert_eq!(fs::metadata(&files[0]).unwrap().modified().unwrap(), mtime, "the cached program was rewritten");

    // A damaged entry is not loaded: it is compiled again.
    fs::write(&files[0], b"bad").unwrap();
    let c = env.id("sc-cache-c");
    let out = env.run(&mut rt(&env, &["run", "--bundle", &env.bundle(), &c]));
    assert_confined(&status(&out.stdout), false, "after damage");
    assert_eq!(fs::read(&files[0]).unwrap(), program);

    // Another profile is another entry.
    let mut other = config(&["sh", "-c", PROBE], false);
    other["linux"]["seccomp"]["syscalls"][0]["names"] = serde_json::json!(["mkdir", "mkdirat", "rmdir"]);
    env.write(&other);
    let d = env.id("sc-cache-d");
    let out = env.run(&mut rt(&env, &["run", "--bundle", &env.bundle(), &d]));
    assert_confined(&status(&out.stdout), false, "second profile");
    assert_eq!(cache_files(&env).len(), 2);

    // `run` leaves nothing in the state root (no derived bundle, no state).
    let left: Vec<_> = fs::read_dir(env.root()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left in the state root: {left:?}");
}

#[test]
fn exec_args_get_runcs_default_process() {
    let mut env = Env::new();
    let mut c = config(&["sleep", "100"], false);
    c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    env.write(&c);
    let id = env.id("sc-exec-default");
    ok(env.run(&mut rt(&env, &["create", "--bundle", &env.bundle(), &id])), "create");
    ok(env.run(&mut rt(&env, &["start", &id])), "start");
    // runc's default: the container's own process (its user), the flags laid over it
    let probe = "id -u; echo FOO=$FOO; grep -E '^(CapEff|Seccomp):' /proc/self/status";
    let out = ok(env.run(&mut rt(&env, &["exec", "--env", "FOO=bar", &id, "sh", "-c", probe])), "exec");
    let text = status(&out.stdout);
    assert_eq!(text.lines().next(), Some("1000"), "uid of an exec without --user:\n{text}");
    assert!(text.contains("FOO=bar"), "--env:\n{text}");
    // a non-root program keeps no capabilities across execve (no ambient set), as under runc
    assert!(text.contains("CapEff:\t0000000000000000"), "uid 1000's CapEff:\n{text}");
    assert!(text.contains("Seccomp:\t2"), "filter:\n{text}");
    // root's effective set after execve is its bounding set: the spec's plus --cap, and not
    // the CAP_SYS_ADMIN lent for the load
    let out = ok(env.run(&mut rt(&env, &["exec", "--user", "0:0", "--cap", "CAP_NET_RAW", &id, "sh", "-c", probe])), "exec -u 0");
    let text = status(&out.stdout);
    assert_eq!(text.lines().next(), Some("0"), "exec --user 0:0:\n{text}");
    assert!(text.contains("CapEff:\t00000000000020e1"), "--cap CAP_NET_RAW:\n{text}");
    assert!(text.contains("Seccomp:\t2"), "filter:\n{text}");
    ok(env.run(&mut rt(&env, &["delete", "--force", &id])), "delete");
}
