//! The rootfs mounts containerd hands over in CreateTaskRequest (an overlay
//! from the overlayfs snapshotter, a bind from the native one), mounted on
//! `<bundle>/rootfs` and taken down again on Delete.

use std::path::Path;

use containerd_shim::protos::types::mount::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Splits mount(8)-style options into flags and the filesystem's data string.
fn parse_options(options: &[String]) -> (MsFlags, MsFlags, String) {
    let mut flags = MsFlags::empty();
    // Propagation changes are separate mount(2) calls.
    let mut propagation = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        let (set, f) = match o.as_str() {
            "ro" => (true, MsFlags::MS_RDONLY),
            "rw" => (false, MsFlags::MS_RDONLY),
            "bind" => (true, MsFlags::MS_BIND),
            "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
            "nosuid" => (true, MsFlags::MS_NOSUID),
            "suid" => (false, MsFlags::MS_NOSUID),
            "nodev" => (true, MsFlags::MS_NODEV),
            "dev" => (false, MsFlags::MS_NODEV),
            "noexec" => (true, MsFlags::MS_NOEXEC),
            "exec" => (false, MsFlags::MS_NOEXEC),
            "noatime" => (true, MsFlags::MS_NOATIME),
            "nodiratime" => (true, MsFlags::MS_NODIRATIME),
            "relatime" => (true, MsFlags::MS_RELATIME),
            "strictatime" => (true, MsFlags::MS_STRICTATIME),
            "sync" => (true, MsFlags::MS_SYNCHRONOUS),
            "remount" => (true, MsFlags::MS_REMOUNT),
            "defaults" => continue,
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" => {
                propagation |= match o.as_str() {
                    "private" => MsFlags::MS_PRIVATE,
                    "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                    "slave" => MsFlags::MS_SLAVE,
                    "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
                    "shared" => MsFlags::MS_SHARED,
                    _ => MsFlags::MS_SHARED | MsFlags::MS_REC,
                };
                continue;
            }
            _ => {
                data.push(o.as_str());
                continue;
            }
        };
        if set {
            flags |= f;
        } else {
            flags &= !f;
        }
    }
    (flags, propagation, data.join(","))
}

/// Mounts `mounts` in order on `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            if i > 0 {
                unmount_all(target);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let (flags, propagation, data) = parse_options(&m.options);
    let fstype = if m.type_ == "bind" || m.type_ == "rbind" { None } else { Some(m.type_.as_str()) };
    let data = (!data.is_empty()).then_some(data.as_str());
    let fail = |what: &str, e: nix::Error| {
        Error::Io {
            context: format!("{what} {} ({}) on {}", m.source, m.type_, target.display()),
            source: e.into(),
        }
    };
    mount(Some(m.source.as_str()), target, fstype, flags & !MsFlags::MS_RDONLY | bind_ro(flags), data)
        .map_err(|e| fail("mount", e))?;
    // A bind mount ignores MS_RDONLY on the first call: remount it read-only.
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        let f = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        mount(None::<&str>, target, None::<&str>, f, None::<&str>).map_err(|e| fail("remount ro", e))?;
    }
    if !propagation.is_empty() {
        mount(None::<&str>, target, None::<&str>, propagation, None::<&str>)
            .map_err(|e| fail("set propagation", e))?;
    }
    Ok(())
}

/// MS_RDONLY is honoured at once except on bind mounts.
fn bind_ro(flags: MsFlags) -> MsFlags {
    if flags.contains(MsFlags::MS_BIND) {
        MsFlags::empty()
    } else {
        flags & MsFlags::MS_RDONLY
    }
}

/// Unmounts everything stacked on `target` (no error if nothing is mounted).
pub fn unmount_all(target: &Path) {
    for _ in 0..64 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(nix::Error::EBUSY) => {
                if umount2(target, MntFlags::MNT_DETACH).is_err() {
                    break;
                }
            }
            Err(_) => break, // EINVAL: not a mount point any more
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = ["ro", "nosuid", "lowerdir=/a:/b", "index=off", "rprivate"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, prop, data) = parse_options(&opts);
        assert_eq!(flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(prop, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(data, "lowerdir=/a:/b,index=off");
        let (flags, _, data) = parse_options(&["rbind".to_string(), "rw".to_string()]);
        assert_eq!(flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert!(data.is_empty());
    }
}
