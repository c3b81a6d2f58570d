//! Capabilities, seccomp, no_new_privileges, masked and readonly paths.

use crate::{cases, check, Env, Outcome};
use anyhow::Result;
use serde_json::json;

cases![
    security_capabilities_default,
    security_capabilities_custom_root,
    security_capabilities_ambient_non_root,
    security_no_new_privileges_set,
    security_no_new_privileges_unset,
    security_seccomp_errno_ret,
    security_seccomp_arg_filter_default_eperm,
    security_masked_paths,
    security_readonly_paths,
];

fn security_capabilities_default(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["caps"]);
    check(
        env,
        &b,
        &[
            "caps.CapBnd",
            "caps.CapEff",
            "caps.CapPrm",
            "caps.CapInh",
            "caps.CapAmb",
        ],
    )
}

fn security_capabilities_custom_root(env: &Env) -> Result<Outcome> {
    let set = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_NET_RAW",
        "CAP_SYS_ADMIN",
    ];
    let mut b = env.bundle()?;
    b.checker(&["caps"]);
    // For uid 0 the kernel computes permitted = inheritable | bounding at
    // exec, so a consistent config has inheritable within bounding.
    b.set(
        "/process/capabilities",
        json!({"bounding": set, "effective": set, "permitted": set, "inheritable": ["CAP_CHOWN"], "ambient": []}),
    );
    check(env, &b, &["caps.CapBnd", "caps.CapEff", "caps.CapInh"])
}

fn security_capabilities_ambient_non_root(env: &Env) -> Result<Outcome> {
    let amb = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let mut b = env.bundle()?;
    b.checker(&["caps", "user"]);
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.set(
        "/process/capabilities",
        json!({"bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"], "effective": amb, "permitted": amb, "inheritable": amb, "ambient": amb}),
    );
    check(
        env,
        &b,
        &["caps.CapAmb", "caps.CapEff", "caps.CapPrm", "user.uid"],
    )
}

fn security_no_new_privileges_set(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["nnp"]);
    b.set("/process/noNewPrivileges", json!(true));
    check(
        env,
        &b,
        &["noNewPrivileges.prctl", "noNewPrivileges.status"],
    )
}

fn security_no_new_privileges_unset(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["nnp"]);
    b.set("/process/noNewPrivileges", json!(false));
    check(
        env,
        &b,
        &["noNewPrivileges.prctl", "noNewPrivileges.status"],
    )
}

const ARCHES: [&str; 3] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

fn security_seccomp_errno_ret(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["seccomp"]);
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ARCHES,
               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42}]}),
    );
    b.annotate("seccomp-getcwd-errno", "42");
    check(env, &b, &["seccomp.status", "seccomp.getcwd.errno"])
}

fn security_seccomp_arg_filter_default_eperm(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["seccomp"]);
    // getpriority(PRIO_PGRP=1, ...) denied with the default errno (EPERM);
    // getpriority(PRIO_PROCESS, ...) still allowed.
    b.set(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ARCHES,
               "syscalls": [{"names": ["getpriority"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
    );
    b.annotate("seccomp-getpriority-pgrp-errno", &libc::EPERM.to_string());
    check(
        env,
        &b,
        &[
            "seccomp.status",
            "seccomp.getpriority(PRIO_PGRP)",
            "seccomp.getpriority(PRIO_PROCESS)",
        ],
    )
}

fn security_masked_paths(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["masked"]);
    check(
        env,
        &b,
        &[
            "masked[/proc/kcore]",
            "masked[/proc/keys]",
            "masked[/sys/firmware]",
            "masked[/proc/timer_list]",
        ],
    )
}

fn security_readonly_paths(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["readonly_paths", "writable"]);
    // A writable root, so that /data can only be read-only through readonlyPaths.
    b.set("/root/readonly", json!(false));
    let mut paths = b.spec["linux"]["readonlyPaths"].as_array().unwrap().clone();
    paths.push(json!("/data"));
    paths.push(json!("/etc/passwd")); // a file (this kernel has no /proc/sysrq-trigger)
    b.set("/linux/readonlyPaths", json!(paths));
    b.annotate("expect-ro", "/data")
        .annotate("expect-rw", "/tmp");
    check(
        env,
        &b,
        &[
            "readonly[/proc/sys]",
            "readonly[/etc/passwd].write",
            "readonly[/data]",
            "writable[/tmp]",
        ],
    )
}
