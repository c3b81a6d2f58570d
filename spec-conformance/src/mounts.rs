//! Mounts: the default set, bind and tmpfs mounts, readonly/writable root.

use crate::{cases, check, Env, Outcome};
use anyhow::Result;
use serde_json::json;

cases![
    mounts_default_set,
    mounts_bind_ro_and_rw,
    mounts_tmpfs_with_flags,
    mounts_readonly_root,
    mounts_writable_root,
];

fn mounts_default_set(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["mounts"]);
    check(
        env,
        &b,
        &[
            "mount[/proc]",
            "mount[/dev]",
            "mount[/dev/pts]",
            "mount[/dev/shm]",
            "mount[/dev/mqueue]",
            "mount[/sys]",
            "mount[/sys/fs/cgroup]",
        ],
    )
}

fn mounts_bind_ro_and_rw(env: &Env) -> Result<Outcome> {
    let (ro, rw) = (env.dir.join("host-ro"), env.dir.join("host-rw"));
    std::fs::create_dir_all(&ro)?;
    std::fs::create_dir_all(&rw)?;
    let mut b = env.bundle()?;
    b.checker(&["mounts", "writable"]);
    b.add_mount(json!({"destination": "/data/ro", "type": "bind", "source": ro, "options": ["rbind", "ro"]}));
    b.add_mount(json!({"destination": "/data/rw", "type": "bind", "source": rw, "options": ["rbind", "rw"]}));
    b.annotate("expect-ro", "/data/ro")
        .annotate("expect-rw", "/data/rw");
    check(
        env,
        &b,
        &[
            "mount[/data/ro].ro",
            "mount[/data/rw].rw",
            "readonly[/data/ro]",
            "writable[/data/rw]",
        ],
    )
}

fn mounts_tmpfs_with_flags(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["mounts", "writable"]);
    b.add_mount(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1777"]}));
    b.annotate("expect-rw", "/scratch");
    check(
        env,
        &b,
        &[
            "mount[/scratch].type",
            "mount[/scratch].nosuid",
            "mount[/scratch].noexec",
            "mount[/scratch].nodev",
            "writable[/scratch]",
        ],
    )
}

fn mounts_readonly_root(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["writable"]);
    b.set("/root/readonly", json!(true));
    b.annotate("expect-ro", "/")
        .annotate("expect-rw", "/dev/shm");
    check(env, &b, &["readonly[/]", "writable[/dev/shm]"])
}

fn mounts_writable_root(env: &Env) -> Result<Outcome> {
    let mut b = env.bundle()?;
    b.checker(&["writable"]);
    b.set("/root/readonly", json!(false));
    b.annotate("expect-rw", "/,/tmp");
    check(env, &b, &["writable[/]", "writable[/tmp]"])
}
