//! Namespaces: new ones, shared with the host, joined by path, user
//! namespace id mappings.

use crate::{cases, check, Env, Outcome};
use anyhow::Result;
use serde_json::json;
use std::os::unix::fs::MetadataExt;

cases![
    namespaces_all_new,
    namespaces_only_mount_new,
    namespaces_join_netns_by_path,
    namespaces_user_with_mappings,
];

fn namespaces_all_new(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["namespaces", "pid1"]);
    b.namespaces(&["pid", "network", "ipc", "uts", "mount", "cgroup"]);
    check(
        env,
        &b,
        &[
            "namespace[pid]",
            "namespace[network]",
            "namespace[ipc]",
            "namespace[uts]",
            "namespace[mount]",
            "namespace[cgroup]",
            "pid1",
        ],
    )
}

fn namespaces_only_mount_new(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["namespaces"]);
    b.namespaces(&["mount"]);
    b.remove("/hostname"); // a hostname needs a private UTS namespace
    check(
        env,
        &b,
        &[
            "namespace[pid]",
            "namespace[network]",
            "namespace[uts]",
            "namespace[mount]",
        ],
    )
}

fn namespaces_join_netns_by_path(env: &Env) -> Result<Outcome> {
    let ns = match env.netns() {
        Ok(ns) => ns,
        Err(e) => {
            return Ok(Outcome::Skip(format!(
                "cannot create a network namespace here: {e:#}"
            )))
        }
    };
    let inode = std::fs::metadata(&ns)?.ino();
    let mut b = env.bundle()?;
    b.checker(&["namespaces"]);
    b.set(
        "/linux/namespaces",
        json!([{"type": "pid"}, {"type": "network", "path": ns}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
    );
    b.annotate("nsinode.net", &inode.to_string());
    check(env, &b, &["namespace[network]"])
}

fn namespaces_user_with_mappings(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["namespaces", "idmap"]);
    b.namespaces(&["pid", "network", "ipc", "uts", "mount", "user"]);
    b.set(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
    );
    b.set(
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
    );
    // No cgroup mount: without a cgroup namespace the hierarchy is not ours to mount.
    let mounts: Vec<_> = b.spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] != "cgroup")
        .cloned()
        .collect();
    b.set("/mounts", json!(mounts));
    b.chown_rootfs(100000, 200000)?;
    check(
        env,
        &b,
        &["namespace[user]", "idmap.uid_map", "idmap.gid_map"],
    )
}
