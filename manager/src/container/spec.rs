//! From an image and a Docker create request to an OCI runtime spec: the process (entrypoint,
//! cmd, env, user looked up in the image's /etc/passwd and /etc/group), Docker's default
//! security profile, mounts, namespaces and resources.

use super::defaults;
use super::record::ContainerRecord;
use crate::errors::{Error, Result};
use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub struct Paths {
    pub rootfs: PathBuf,
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
    /// Network namespace to join; `None` shares the host's.
    pub netns: Option<PathBuf>,
    /// Extra mounts (volumes, binds) already resolved to host paths.
    pub mounts: Vec<Mount>,
    /// `--init`: the host's static init (tini), run as the container's pid 1.
    pub init: Option<PathBuf>,
    /// linux.cgroupsPath.
    pub cgroup: String,
}

/// Where Docker's `--init` binary is mounted in the container.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// The static init for `--init`: docker-init (Docker's name for tini) or tini-static on PATH.
/// It must be static: it runs on the image's libc, if any.
pub fn find_init() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    for name in ["docker-init", "tini-static"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(std::fs::canonicalize(&p).unwrap_or(p));
            }
        }
    }
    Err(Error::invalid("--init needs a static init binary (docker-init or tini-static) on berthd's PATH: apt-get install tini"))
}

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolved user: uid, gid, extra groups, home.
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Read a file of the container's root filesystem without following links out of it.
fn read_in_root(root: &Path, rel: &str) -> Option<String> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::io::Read;
    let dir = std::fs::File::open(root).ok()?;
    // Non-blocking, and only a regular file: an image's /etc/passwd that is a fifo or a
    // device must neither hang the caller nor read a host device.
    let how = OpenHow::new().flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(std::os::fd::AsRawFd::as_raw_fd(&dir), rel, how).ok()?;
    // SAFETY: openat2 returned a fresh fd that nothing else owns.
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut s = String::new();
    f.by_ref().take(4 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

/// Docker's `--user` forms: `name`, `uid`, `name:group`, `uid:gid`; names from the image.
pub fn resolve_user(root: &Path, user: &str, group_add: &[String]) -> Result<User> {
    let passwd = read_in_root(root, "etc/passwd").unwrap_or_default();
    let group = read_in_root(root, "etc/group").unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let pw: Vec<Vec<&str>> = passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 7).collect();
    let gr: Vec<Vec<&str>> = group.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 3).collect();
    let (uid, mut gid, name, home) = if u.is_empty() {
        let e = pw.iter().find(|f| f[2] == "0");
        (0, 0, e.map(|f| f[0].to_string()).unwrap_or_else(|| "root".into()), e.map(|f| f[5].to_string()).unwrap_or_else(|| "/root".into()))
    } else if let Some(e) = pw.iter().find(|f| f[0] == u || f[2] == u) {
        (e[2].parse().unwrap_or(0), e[3].parse().unwrap_or(0), e[0].to_string(), e[5].to_string())
    } else if let Ok(n) = u.parse::<u32>() {
        (n, 0, String::new(), "/".into())
    } else {
        return Err(Error::invalid(format!("unable to find user {u}: no matching entries in passwd file")));
    };
    if let Some(g) = g {
        gid = match gr.iter().find(|f| f[0] == g || f[2] == g) {
            Some(e) => e[2].parse().unwrap_or(0),
            None => g.parse().map_err(|_| Error::invalid(format!("unable to find group {g}: no matching entries in group file")))?,
        };
    }
    let mut groups: Vec<u32> = vec![];
    if !name.is_empty() {
        for e in &gr {
            if e.len() >= 4 && e[3].split(',').any(|m| m == name) {
                if let Ok(n) = e[2].parse::<u32>() {
                    if n != gid && !groups.contains(&n) {
                        groups.push(n);
                    }
                }
            }
        }
    }
    for g in group_add {
        let n = match gr.iter().find(|f| f[0] == g) {
            Some(e) => e[2].parse().unwrap_or(0),
            None => g.parse().map_err(|_| Error::invalid(format!("unable to find group {g}")))?,
        };
        if !groups.contains(&n) {
            groups.push(n);
        }
    }
    Ok(User { uid, gid, groups, home })
}

fn mount(dst: &str, typ: &str, src: &str, opts: &[&str]) -> Mount {
    MountBuilder::default().destination(dst).typ(typ).source(src).options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>()).build().expect("mount")
}

pub fn bind(src: &Path, dst: &str, readonly: bool) -> Mount {
    let mut o = vec!["rbind", "rprivate"];
    if readonly {
        o.push("ro");
    }
    mount(dst, "bind", &src.display().to_string(), &o)
}

/// Docker's sizes: bytes, or with b/k/m/g suffix (1024-based).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mul) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        'b' => (&s[..s.len() - 1], 1),
        _ => (&s[..], 1),
    };
    num.parse::<f64>().ok().map(|n| (n * mul as f64) as u64)
}

/// The process part, shared by the container's init and its execs.
pub fn environment(rec: &ContainerRecord, user: &User, hostname: &str) -> Vec<String> {
    let mut env: Vec<String> = rec.config.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.into());
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.insert(1.min(env.len()), format!("HOSTNAME={hostname}"));
    }
    if rec.tty() && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", if user.home.is_empty() { "/" } else { &user.home }));
    }
    env
}

pub fn capabilities(rec: &ContainerRecord) -> Result<Vec<String>> {
    let hc = &rec.host_config;
    if hc.privileged.unwrap_or(false) {
        return Ok(defaults::all_capabilities());
    }
    defaults::apply_cap_changes(defaults::default_capabilities(), hc.cap_add.as_deref().unwrap_or(&[]), hc.cap_drop.as_deref().unwrap_or(&[])).map_err(Error::invalid)
}

fn security_opts(rec: &ContainerRecord) -> (bool, Option<String>) {
    let mut nnp = false;
    let mut seccomp = None;
    for o in rec.host_config.security_opt.iter().flatten() {
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o.as_str(), ""));
        match k {
            "no-new-privileges" => nnp = v.is_empty() || v == "true",
            "seccomp" => seccomp = Some(v.to_string()),
            _ => {}
        }
    }
    (nnp, seccomp)
}

pub fn build(rec: &ContainerRecord, p: &Paths, user: &User) -> Result<Spec> {
    let hc = &rec.host_config;
    let privileged = hc.privileged.unwrap_or(false);
    let hostname = rec.config.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| rec.short_id().to_string());
    let caps = capabilities(rec)?;
    let (nnp, seccomp_opt) = security_opts(rec);

    let mut rlimits = Vec::new();
    for u in hc.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        let typ = PosixRlimitType::from_str(&format!("RLIMIT_{}", name.to_ascii_uppercase())).map_err(|_| Error::invalid(format!("invalid ulimit type: {name}")))?;
        let soft = u.soft.unwrap_or(0).max(0) as u64;
        let hard = u.hard.unwrap_or(soft as i64).max(0) as u64;
        rlimits.push(PosixRlimitBuilder::default().typ(typ).soft(soft).hard(hard).build().expect("rlimit"));
    }
    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    if p.init.is_some() {
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let mut process = ProcessBuilder::default()
        .terminal(rec.tty())
        .args(args)
        .env(environment(rec, user, &hostname))
        .cwd(rec.config.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into()))
        .user(UserBuilder::default().uid(user.uid).gid(user.gid).additional_gids(user.groups.clone()).build().expect("user"))
        .capabilities(defaults::capabilities_for(&caps))
        .rlimits(rlimits)
        .build()
        .map_err(|e| Error::internal(format!("process spec: {e}")))?;
    // The builder defaults to true; Docker's default is off unless asked for.
    process.set_no_new_privileges(nnp.then_some(true));
    if let Some(adj) = hc.oom_score_adj.filter(|a| *a != 0) {
        process.set_oom_score_adj(Some(adj as i32));
    }
    if let Some(sz) = &hc.console_size {
        if sz.len() == 2 && sz[0] > 0 && sz[1] > 0 {
            process.set_console_size(Some(oci_spec::runtime::BoxBuilder::default().height(sz[0] as u64).width(sz[1] as u64).build().expect("box")));
        }
    }

    let shm = hc.shm_size.filter(|s| *s > 0).map(|s| s as u64).unwrap_or(64 << 20);
    let mut mounts = defaults::default_mounts(privileged, shm);
    let ro = hc.readonly_rootfs.unwrap_or(false);
    mounts.push(bind(&p.hostname, "/etc/hostname", ro));
    mounts.push(bind(&p.hosts, "/etc/hosts", ro));
    mounts.push(bind(&p.resolv_conf, "/etc/resolv.conf", ro));
    for (dst, opts) in hc.tmpfs.iter().flatten() {
        let mut o: Vec<&str> = vec!["nosuid", "nodev", "noexec"];
        o.extend(opts.split(',').filter(|s| !s.is_empty()));
        mounts.retain(|m| m.destination() != Path::new(dst));
        mounts.push(mount(dst, "tmpfs", "tmpfs", &o));
    }
    for m in &p.mounts {
        mounts.retain(|x| x.destination() != m.destination());
        mounts.push(m.clone());
    }
    if let Some(init) = &p.init {
        mounts.push(bind(init, INIT_PATH, true));
    }

    let mut namespaces = vec![];
    for t in [LinuxNamespaceType::Pid, LinuxNamespaceType::Ipc, LinuxNamespaceType::Uts, LinuxNamespaceType::Mount] {
        namespaces.push(LinuxNamespaceBuilder::default().typ(t).build().expect("ns"));
    }
    if let Some(n) = &p.netns {
        namespaces.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).path(n.clone()).build().expect("ns"));
    }

    let mut mem = LinuxMemoryBuilder::default();
    if let Some(m) = hc.memory.filter(|m| *m > 0) {
        mem = mem.limit(m);
        match hc.memory_swap {
            Some(-1) => mem = mem.swap(-1),
            Some(s) if s > 0 => mem = mem.swap(s),
            _ => mem = mem.swap(m * 2),
        }
    }
    if let Some(r) = hc.memory_reservation.filter(|m| *m > 0) {
        mem = mem.reservation(r);
    }
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu = cpu.shares(s as u64);
    }
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        cpu = cpu.period(100_000u64).quota(n / 10_000);
    } else if let Some(q) = hc.cpu_quota.filter(|q| *q > 0) {
        cpu = cpu.quota(q).period(hc.cpu_period.filter(|p| *p > 0).unwrap_or(100_000) as u64);
    }
    if let Some(c) = hc.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        cpu = cpu.cpus(c);
    }
    let mut devices = vec![LinuxDeviceCgroupBuilder::default().allow(privileged).access("rwm").build().expect("dev")];
    if !privileged {
        // The devices every container may use (null, zero, full, random, urandom, tty, console, ptmx, pts).
        for (typ, major, minor) in [('c', 1, 3), ('c', 1, 5), ('c', 1, 7), ('c', 1, 8), ('c', 1, 9), ('c', 5, 0), ('c', 5, 1), ('c', 5, 2), ('c', 136, -1)] {
            let t = oci_spec::runtime::LinuxDeviceType::from_str(&typ.to_string()).unwrap_or(oci_spec::runtime::LinuxDeviceType::C);
            let mut b = LinuxDeviceCgroupBuilder::default().allow(true).typ(t).major(major).access("rwm");
            if minor >= 0 {
                b = b.minor(minor);
            }
            devices.push(b.build().expect("dev"));
        }
    }
    // --device HOST[:CONTAINER[:PERMS]]: the node in the container and a cgroup rule for it.
    let mut linux_devices = Vec::new();
    for dm in hc.devices.iter().flatten() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let host = dm.path_on_host.clone().unwrap_or_default();
        let meta = std::fs::metadata(&host).map_err(|e| Error::invalid(format!("error gathering device information while adding custom device {host:?}: {e}")))?;
        let ft = meta.file_type();
        let typ = if ft.is_char_device() {
            oci_spec::runtime::LinuxDeviceType::C
        } else if ft.is_block_device() {
            oci_spec::runtime::LinuxDeviceType::B
        } else {
            return Err(Error::invalid(format!("{host} is not a device node")));
        };
        let rdev = meta.rdev();
        let (major, minor) = (nix::sys::stat::major(rdev) as i64, nix::sys::stat::minor(rdev) as i64);
        let dst = dm.path_in_container.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| host.clone());
        let perms = dm.cgroup_permissions.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "rwm".into());
        linux_devices.push(
            oci_spec::runtime::LinuxDeviceBuilder::default()
                .path(PathBuf::from(dst))
                .typ(typ)
                .major(major)
                .minor(minor)
                .file_mode(meta.mode() & 0o777)
                .uid(meta.uid())
                .gid(meta.gid())
                .build()
                .expect("device"),
        );
        if !privileged {
            devices.push(LinuxDeviceCgroupBuilder::default().allow(true).typ(typ).major(major).minor(minor).access(perms).build().expect("dev"));
        }
    }
    let mut res = LinuxResourcesBuilder::default().memory(mem.build().expect("mem")).cpu(cpu.build().expect("cpu")).devices(devices);
    if let Some(l) = hc.pids_limit.filter(|l| *l != 0) {
        res = res.pids(LinuxPidsBuilder::default().limit(l).build().expect("pids"));
    }

    let mut linux = LinuxBuilder::default()
        .devices(linux_devices)
        .namespaces(namespaces)
        .resources(res.build().map_err(|e| Error::internal(format!("resources: {e}")))?)
        .cgroups_path(PathBuf::from(&p.cgroup));
    if !privileged {
        linux = linux.masked_paths(defaults::masked_paths()).readonly_paths(defaults::readonly_paths());
    }
    match seccomp_opt.as_deref() {
        _ if privileged => {}
        Some("unconfined") => {}
        Some(profile) if !profile.is_empty() => {
            let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(profile).map_err(|e| Error::invalid(format!("seccomp profile: {e}")))?;
            linux = linux.seccomp(s);
        }
        _ => linux = linux.seccomp(defaults::default_seccomp(&caps)),
    }
    if let Some(sysctls) = hc.sysctls.clone().filter(|s| !s.is_empty()) {
        linux = linux.sysctl(sysctls.into_iter().collect::<HashMap<_, _>>());
    }
    SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(p.rootfs.clone()).readonly(ro).build().expect("root"))
        .hostname(hostname)
        .process(process)
        .mounts(mounts)
        .linux(linux.build().map_err(|e| Error::internal(format!("linux spec: {e}")))?)
        .build()
        .map_err(|e| Error::internal(format!("spec: {e}")))
}
