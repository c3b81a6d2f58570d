//! The process object: args, env, cwd, user, hostname.

use crate::{cases, check, Env, Outcome};
use anyhow::Result;
use serde_json::json;

cases![
    process_args_env_cwd,
    process_user_and_groups,
    process_hostname
];

fn process_args_env_cwd(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["process", "--", "an arg with spaces", ""]);
    b.set(
        "/process/env",
        json!([
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "FOO=bar baz",
            "EMPTY="
        ]),
    );
    b.set("/process/cwd", json!("/work"));
    check(
        env,
        &b,
        &["process.args", "process.env[FOO=bar baz]", "process.cwd"],
    )
}

fn process_user_and_groups(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["user"]);
    b.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20, 30]}),
    );
    check(env, &b, &["user.uid", "user.gid", "user.additionalGids"])
}

fn process_hostname(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["hostname"]);
    b.set("/hostname", json!("conformance-host"));
    check(env, &b, &["hostname"])
}
