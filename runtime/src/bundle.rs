//! Reading a bundle, rejecting bad ones with a one-line reason, and adapting what this host
//! cannot honour the way runc does (kernel memory limits, rlimits above the hard limit, the
//! systemd cgroup path form on a v1 host) or reads differently from runc (seccomp's masked
//! comparisons).
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxMemoryBuilder, LinuxSeccompArgBuilder, LinuxSeccompOperator, PosixRlimit, PosixRlimitBuilder, Spec};

/// A bundle ready for libcontainer: either the user's own, or, when the spec had to be
/// adapted, a derived config.json under the state root (the user's bundle is never written).
/// libcontainer re-reads the bundle on every exec, so a derived bundle lives as long as the
/// container; `state` reports the user's bundle, recorded in ORIGINAL_BUNDLE.
pub struct Prepared {
    /// The user's bundle, absolute; what `state` reports.
    pub bundle: PathBuf,
    /// The directory libcontainer reads config.json from.
    pub effective: PathBuf,
    pub spec: Spec,
    /// A ready-made seccomp filter for the init (seccomp.rs).
    pub seccomp: Option<std::sync::Arc<crate::seccomp::Plan>>,
    derived: Option<PathBuf>,
    /// The config.json exec'd processes should see, once the init has been made from another.
    tenant_config: Option<Vec<u8>>,
    keep: bool,
}

/// In a container's state dir: the user's bundle path when libcontainer runs a derived one.
pub const ORIGINAL_BUNDLE: &str = "berth-bundle";

pub fn derived_dir(state_root: &Path, id: &str) -> PathBuf {
    state_root.join(format!(".bundle-{id}"))
}

impl Prepared {
    /// Call once the container exists: records the user's bundle beside libcontainer's state.
    pub fn commit(&mut self, container_dir: &Path) -> Result<()> {
        // The container exists: its derived bundle stays, whatever follows (delete removes it).
        self.keep = true;
        if self.derived.is_some() {
            fs::write(container_dir.join(ORIGINAL_BUNDLE), self.bundle.as_os_str().as_encoded_bytes())
                .context("recording the bundle path")?;
        }
        // libcontainer reads the bundle again for every exec: from here on it holds the
        // profile and capabilities as the spec has them.
        if let (Some(dir), Some(raw)) = (&self.derived, self.tenant_config.take()) {
            let tmp = dir.join("config.json.tmp");
            fs::write(&tmp, raw).and_then(|_| fs::rename(&tmp, dir.join("config.json")))
                .with_context(|| format!("writing {}", dir.display()))?;
        }
        Ok(())
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let (Some(dir), false) = (&self.derived, self.keep) {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let raw = fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow::anyhow!("bundle {}: config.json not found", bundle.display())
        }
        _ => anyhow::anyhow!("reading {}: {e}", path.display()),
    })?;
    let spec: Spec = serde_json::from_slice(&raw)
        .map_err(|e| anyhow::anyhow!("invalid {}: {e}", path.display()))?;
    validate(&spec, bundle)?;
    Ok(spec)
}

fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    if !spec.version().starts_with("1.") {
        bail!("config.json: unsupported ociVersion {:?} (need 1.x)", spec.version());
    }
    let root = spec.root().as_ref().context("config.json: root is missing")?;
    let rootfs = bundle.join(root.path());
    if !rootfs.is_dir() {
        bail!("rootfs {} does not exist or is not a directory", rootfs.display());
    }
    let process = spec.process().as_ref().context("config.json: process is missing")?;
    if process.args().as_ref().map_or(true, |a| a.is_empty()) {
        bail!("config.json: process.args must not be empty");
    }
    if !process.cwd().is_absolute() {
        bail!("config.json: process.cwd {:?} must be absolute", process.cwd());
    }
    Ok(())
}

pub fn prepare(state_root: &Path, id: &str, bundle: &Path, systemd: bool) -> Result<Prepared> {
    let bundle = fs::canonicalize(bundle)
        .map_err(|e| anyhow::anyhow!("bundle {}: {e}", bundle.display()))?;
    let mut spec = load_spec(&bundle)?;
    // startContainer hooks need the derived bundle: berth runs them itself (see hooks.rs).
    let has_start_hooks =
        spec.hooks().as_ref().is_some_and(|h| h.start_container().as_ref().is_some_and(|l| !l.is_empty()));
    let adapted = adapt(&mut spec, id, systemd, cgroup_v1_host());
    let seccomp =
        crate::seccomp::filter(&spec)?.map(|f| crate::seccomp::Plan::new(f, spec.process().as_ref()));
    if !adapted && !has_start_hooks && seccomp.is_none() {
        return Ok(Prepared {
            effective: bundle.clone(),
            bundle,
            spec,
            seccomp: None,
            derived: None,
            tenant_config: None,
            keep: false,
        });
    }
    // Relative paths in the derived spec must still point into the user's bundle.
    if let Some(mut root) = spec.root().clone() {
        root.set_path(bundle.join(root.path()));
        spec.set_root(Some(root));
    }
    let start_hooks = crate::hooks::relay(&mut spec, &bundle)?;
    let dir = derived_dir(state_root, id);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if !start_hooks.is_empty() {
        fs::write(dir.join(crate::hooks::START_HOOKS), serde_json::to_vec(&start_hooks)?)?;
    }
    let raw = serde_json::to_vec(&spec)?;
    // With a ready-made filter the init is made from a spec without the profile (seccomp.rs).
    let (seccomp, init_raw, tenant_config) = match seccomp {
        Some(plan) => {
            let init = serde_json::to_vec(&plan.init_spec(&spec))?;
            (Some(std::sync::Arc::new(plan)), init, Some(raw))
        }
        None => (None, raw, None),
    };
    let prepared = Prepared {
        bundle,
        effective: dir.clone(),
        spec,
        seccomp,
        derived: Some(dir.clone()),
        tenant_config,
        keep: false,
    };
    fs::write(dir.join("config.json"), init_raw).with_context(|| format!("writing {}", dir.display()))?;
    Ok(prepared)
}

fn cgroup_v1_host() -> bool {
    // cgroup2 mounted at /sys/fs/cgroup means a unified host; anything else is v1 or hybrid.
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() != nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Changes the spec where this host cannot honour it as written. Returns whether it changed.
fn adapt(spec: &mut Spec, id: &str, systemd: bool, v1_host: bool) -> bool {
    let mut changed = false;
    if let Some(linux) = spec.linux_mut() {
        // runc ignores kernel memory limits; kernels >= 5.16 reject the write.
        if let Some(res) = linux.resources_mut() {
            if let Some(mem) = res.memory() {
                if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
                    let mut m = LinuxMemoryBuilder::default().build().unwrap();
                    m.set_limit(mem.limit());
                    m.set_reservation(mem.reservation());
                    m.set_swap(mem.swap());
                    m.set_swappiness(mem.swappiness());
                    m.set_disable_oom_killer(mem.disable_oom_killer());
                    m.set_use_hierarchy(mem.use_hierarchy());
                    m.set_check_before_update(mem.check_before_update());
                    tracing::debug!("ignoring linux.resources.memory.kernel/kernelTCP as runc does");
                    res.set_memory(Some(m));
                    changed = true;
                }
            }
        }
        // SCMP_CMP_MASKED_EQ: the spec (and runc) take `value` as the mask and `valueTwo` as
        // what the masked argument must equal; libcontainer 0.7 reads them the other way
        // round, which turns Docker's "no namespace flags in clone" rule into "allow any".
        if let Some(seccomp) = linux.seccomp_mut() {
            if let Some(mut syscalls) = seccomp.syscalls().clone() {
                let mut swapped = false;
                for sc in syscalls.iter_mut() {
                    if let Some(mut args) = sc.args().clone() {
                        for a in args.iter_mut() {
                            if a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq {
                                let (mask, want) = (a.value(), a.value_two().unwrap_or(0));
                                *a = LinuxSeccompArgBuilder::default().index(a.index()).value(want).value_two(mask).op(a.op()).build().expect("seccomp arg");
                                swapped = true;
                            }
                        }
                        sc.set_args(Some(args));
                    }
                }
                if swapped {
                    seccomp.set_syscalls(Some(syscalls));
                    changed = true;
                }
            }
        }
        // No cgroupsPath: runc's defaults, not libcontainer's `:youki:ID`. The systemd form
        // on a v1 host becomes the cgroupfs path systemd would have made.
        let new_path = match linux.cgroups_path().clone() {
            None if systemd => PathBuf::from(format!("system.slice:berth:{id}")),
            None => PathBuf::from(format!("/{id}")),
            Some(p) => p,
        };
        let new_path = Some(if v1_host && systemd { systemd_to_cgroupfs(&new_path) } else { new_path });
        if new_path != *linux.cgroups_path() {
            linux.set_cgroups_path(new_path);
            changed = true;
        }
    }
    if let Some(process) = spec.process_mut() {
        // `noNewPrivileges: false` means the same as leaving it out, but libcontainer 0.7
        // tells them apart by `is_none()`: with an explicit false it loads seccomp after
        // dropping CAP_SYS_ADMIN and without no_new_privs, which the kernel refuses.
        if process.no_new_privileges() == Some(false) {
            process.set_no_new_privileges(None);
            changed = true;
        }
        if let Some(rlimits) = process.rlimits() {
            let clamped: Vec<PosixRlimit> = rlimits.iter().map(clamp_rlimit).collect();
            if clamped != *rlimits {
                process.set_rlimits(Some(clamped));
                changed = true;
            }
        }
    }
    changed
}

/// `slice:prefix:name` is the systemd driver's form. On a v1 host libcgroups only drives
/// cgroupfs, so place the container where systemd would have: /slice/prefix-name.scope.
fn systemd_to_cgroupfs(p: &Path) -> PathBuf {
    let s = p.to_string_lossy();
    if s.starts_with('/') {
        return p.to_path_buf();
    }
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [slice, prefix, name] => {
            let slice = if slice.is_empty() { "system.slice" } else { slice };
            let scope = if prefix.is_empty() {
                format!("{name}.scope")
            } else {
                format!("{prefix}-{name}.scope")
            };
            PathBuf::from(format!("/{slice}/{scope}"))
        }
        _ => PathBuf::from(format!("/{s}")),
    }
}

/// Without CAP_SYS_RESOURCE no process can raise a hard limit, so asking for more than ours
/// would fail the container; take what we have and say so.
fn clamp_rlimit(r: &PosixRlimit) -> PosixRlimit {
    let res = nix::sys::resource::Resource::try_from_oci(r);
    let Some((_, cur_hard)) = res.and_then(|res| nix::sys::resource::getrlimit(res).ok()) else {
        return r.clone();
    };
    if r.hard() <= cur_hard {
        return r.clone();
    }
    let hard = cur_hard;
    let soft = r.soft().min(hard);
    tracing::warn!(
        "rlimit {:?} {}:{} exceeds the hard limit {} this runtime runs with; clamped to {}:{}",
        r.typ(),
        r.soft(),
        r.hard(),
        cur_hard,
        soft,
        hard
    );
    PosixRlimitBuilder::default().typ(r.typ()).soft(soft).hard(hard).build().unwrap_or(r.clone())
}

trait FromOci: Sized {
    fn try_from_oci(r: &PosixRlimit) -> Option<Self>;
}

impl FromOci for nix::sys::resource::Resource {
    fn try_from_oci(r: &PosixRlimit) -> Option<Self> {
        use nix::sys::resource::Resource as R;
        use oci_spec::runtime::PosixRlimitType as T;
        Some(match r.typ() {
            T::RlimitAs => R::RLIMIT_AS,
            T::RlimitCore => R::RLIMIT_CORE,
            T::RlimitCpu => R::RLIMIT_CPU,
            T::RlimitData => R::RLIMIT_DATA,
            T::RlimitFsize => R::RLIMIT_FSIZE,
            T::RlimitLocks => R::RLIMIT_LOCKS,
            T::RlimitMemlock => R::RLIMIT_MEMLOCK,
            T::RlimitMsgqueue => R::RLIMIT_MSGQUEUE,
            T::RlimitNice => R::RLIMIT_NICE,
            T::RlimitNofile => R::RLIMIT_NOFILE,
            T::RlimitNproc => R::RLIMIT_NPROC,
            T::RlimitRss => R::RLIMIT_RSS,
            T::RlimitRtprio => R::RLIMIT_RTPRIO,
            T::RlimitRttime => R::RLIMIT_RTTIME,
            T::RlimitSigpending => R::RLIMIT_SIGPENDING,
            T::RlimitStack => R::RLIMIT_STACK,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_paths_become_scopes_on_v1() {
        assert_eq!(
            systemd_to_cgroupfs(Path::new("system.slice:docker:abc")),
            PathBuf::from("/system.slice/docker-abc.scope")
        );
        assert_eq!(systemd_to_cgroupfs(Path::new("/a/b")), PathBuf::from("/a/b"));
        assert_eq!(
            systemd_to_cgroupfs(Path::new(":berth:x")),
            PathBuf::from("/system.slice/berth-x.scope")
        );
    }

    #[test]
    fn masked_eq_operands_are_swapped_for_libcontainer() {
        let mut spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "linux": {"cgroupsPath": "/x", "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}}
        }))
        .unwrap();
        assert!(adapt(&mut spec, "x", false, false));
        let sc = spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap().syscalls().as_ref().unwrap();
        let a = &sc[0].args().as_ref().unwrap()[0];
        assert_eq!((a.value(), a.value_two()), (0, Some(2114060288)));
        let b = &sc[1].args().as_ref().unwrap()[0];
        assert_eq!((b.value(), b.value_two()), (8, None));
    }

    #[test]
    fn explicit_false_no_new_privileges_is_dropped() {
        let mut spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2", "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0}, "noNewPrivileges": false},
            "linux": {"cgroupsPath": "/x"}
        }))
        .unwrap();
        assert!(adapt(&mut spec, "x", false, false));
        assert_eq!(spec.process().as_ref().unwrap().no_new_privileges(), None);
    }

    #[test]
    fn kernel_memory_is_dropped_and_rlimits_clamped() {
        let mut spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0},
                "rlimits": [{"type": "RLIMIT_NOFILE", "soft": u64::MAX, "hard": u64::MAX}]},
            "linux": {"cgroupsPath": "/x", "resources": {"memory": {"limit": 1048576, "kernel": 1048576}}}
        }))
        .unwrap();
        assert!(adapt(&mut spec, "x", false, false));
        let mem = spec.linux().as_ref().unwrap().resources().as_ref().unwrap().memory().unwrap();
        assert_eq!(mem.kernel(), None);
        assert_eq!(mem.limit(), Some(1048576));
        let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        let r = &spec.process().as_ref().unwrap().rlimits().as_ref().unwrap()[0];
        assert_eq!((r.soft(), r.hard()), (hard, hard));
        // Nothing left to adapt the second time.
        assert!(!adapt(&mut spec, "x", false, false));
    }
}
