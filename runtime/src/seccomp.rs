//! Seccomp filters compiled once and loaded ready-made.
//!
//! libseccomp takes ~10 ms to compile Docker's default profile (three architectures, ~350
//! syscalls), and libcontainer does it in every container's init, between create and start.
//! The same profile always compiles to the same program, so berth-runtime compiles each
//! profile once, keeps the BPF in /run/berth-runtime/seccomp named by the profile's hash, and hands it
//! to the init, which loads it with seccomp(2) itself (executor.rs).
//!
//! Loading a filter without no_new_privs needs CAP_SYS_ADMIN, which libcontainer drops before
//! our code runs in the init. Such a container is created with CAP_SYS_ADMIN added to the
//! sets that would lose it; the init loads the filter and then drops to the spec's
//! capabilities, at the point libcontainer would have loaded it, before `start`.
//!
//! exec'd processes get the container's filter the same way: libcontainer 0.7 leaves the
//! profile out of an exec'd process altogether (runc applies it). Profiles with
//! SCMP_ACT_NOTIFY (a listener fd to pass on) stay with libcontainer, for the init only.
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{
    Arch, Capability, LinuxCapabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, Process, Spec,
};
use sha2::{Digest, Sha256};

/// Shared by every state root (a state root holds containers only); BERTH_SECCOMP_CACHE
/// overrides it. On /run, so a reboot empties it; the name also carries the kernel release
/// and libseccomp version, so an upgrade never loads an old program.
const CACHE_DIR: &str = "/run/berth-runtime/seccomp";
/// More distinct profiles than this and the cache starts over (they are cheap to remake).
const CACHE_MAX: usize = 64;
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_ulong = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_ulong = 4;

/// A compiled filter and how to load it.
#[derive(Debug)]
pub struct Filter {
    insns: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

/// What the init does with a ready-made filter: load it, then drop to the spec's
/// capabilities when CAP_SYS_ADMIN was lent for the load.
#[derive(Debug)]
pub struct Plan {
    pub filter: Filter,
    pub restore_caps: Option<LinuxCapabilities>,
}

impl Filter {
    fn from_bytes(raw: &[u8], flags: libc::c_ulong) -> Result<Filter> {
        if raw.is_empty() || raw.len() % 8 != 0 || raw.len() / 8 > u16::MAX as usize {
            bail!("not a BPF program ({} bytes)", raw.len());
        }
        let insns = raw
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(Filter { insns, flags })
    }

    /// seccomp(SECCOMP_SET_MODE_FILTER) on the calling thread: what libseccomp's
    /// seccomp_load does once it has generated the same program.
    pub fn load(&self) -> io::Result<()> {
        let prog = libc::sock_fprog { len: self.insns.len() as u16, filter: self.insns.as_ptr() as *mut _ };
        // SAFETY: prog points at insns, which outlive the call; the kernel copies the program.
        let rc = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, self.flags, &prog) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The ready-made filter for this spec's profile, compiled on a cache miss. None when the
/// spec has no profile or one libcontainer must handle itself.
pub fn filter(spec: &Spec) -> Result<Option<Filter>> {
    let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else { return Ok(None) };
    if profile.listener_path().is_some() || uses_notify(profile) {
        return Ok(None);
    }
    let dir = std::env::var_os("BERTH_SECCOMP_CACHE").map_or_else(|| PathBuf::from(CACHE_DIR), PathBuf::from);
    cached(&dir, profile).map(Some)
}

impl Plan {
    /// How `process` gets `filter`: without no_new_privs, with CAP_SYS_ADMIN lent if its
    /// capabilities lack it.
    pub fn new(filter: Filter, process: Option<&Process>) -> Plan {
        let restore_caps = process
            .filter(|p| p.no_new_privileges() != Some(true))
            .and_then(|p| p.capabilities().clone())
            .filter(|caps| lend_sys_admin(caps) != *caps);
        Plan { filter, restore_caps }
    }

    /// The process libcontainer should make: CAP_SYS_ADMIN lent where the load needs it.
    pub fn lend(&self, process: &mut Process) {
        if let Some(caps) = &self.restore_caps {
            process.set_capabilities(Some(lend_sys_admin(caps)));
        }
    }

    /// The spec libcontainer makes the init from: no profile, and CAP_SYS_ADMIN lent.
    pub fn init_spec(&self, spec: &Spec) -> Spec {
        let mut init = spec.clone();
        if let Some(linux) = init.linux_mut() {
            linux.set_seccomp(None);
        }
        if let Some(process) = init.process_mut() {
            self.lend(process);
        }
        init
    }
}

/// The capabilities with CAP_SYS_ADMIN added to the effective and permitted sets (what
/// seccomp(2) checks), not to the bounding set: taking it out of the bounding set again
/// would need CAP_SETPCAP, which the spec may not grant.
fn lend_sys_admin(caps: &LinuxCapabilities) -> LinuxCapabilities {
    let add = |set: &Option<std::collections::HashSet<Capability>>| {
        set.clone().map(|mut s| {
            s.insert(Capability::SysAdmin);
            s
        })
    };
    let mut lent = caps.clone();
    lent.set_effective(add(caps.effective()));
    lent.set_permitted(add(caps.permitted()));
    lent
}

fn uses_notify(p: &LinuxSeccomp) -> bool {
    p.default_action() == LinuxSeccompAction::ScmpActNotify
        || p.syscalls().iter().flatten().any(|s| s.action() == LinuxSeccompAction::ScmpActNotify)
}

fn flags(p: &LinuxSeccomp) -> libc::c_ulong {
    p.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // Only means something with a notify listener, which never comes here.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        }
    })
}

/// The program depends on the profile, libseccomp's syscall tables and the kernel it checks
/// features against: all are in the name.
fn cache_key(p: &LinuxSeccomp) -> Result<String> {
    let mut h = Sha256::new();
    h.update(b"berth-seccomp-1\0");
    let v = libseccomp::ScmpVersion::current().map_err(|e| anyhow!("libseccomp version: {e}"))?;
    h.update(format!("{}.{}.{}\0", v.major, v.minor, v.micro));
    let u = nix::sys::utsname::uname().context("uname")?;
    h.update(u.release().as_encoded_bytes());
    h.update(b"\0");
    h.update(u.machine().as_encoded_bytes());
    h.update(b"\0");
    h.update(serde_json::to_vec(p)?);
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn cached(dir: &Path, p: &LinuxSeccomp) -> Result<Filter> {
    let path = dir.join(cache_key(p)?);
    if let Ok(raw) = fs::read(&path) {
        if let Ok(f) = Filter::from_bytes(&raw, flags(p)) {
            return Ok(f);
        }
    }
    let raw = compile(p).context("compiling the seccomp profile")?;
    store(dir, &path, &raw);
    Filter::from_bytes(&raw, flags(p))
}

/// Best effort: a cache that cannot be written only costs the next container the compile.
fn store(dir: &Path, path: &PathBuf, raw: &[u8]) {
    let write = || -> io::Result<()> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        if fs::read_dir(dir)?.count() >= CACHE_MAX {
            for e in fs::read_dir(dir)?.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        let tmp = dir.join(format!(".tmp-{}", std::process::id()));
        let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(raw)?;
        drop(f);
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::debug!("not caching the seccomp filter in {}: {e}", dir.display());
    }
}

/// libseccomp's program for the profile, built by the same rules as libcontainer's
/// initialize_seccomp (rules with the default action left out, unknown syscalls skipped,
/// comparisons on one argument index split into rules of their own). Masked comparisons take
/// `valueTwo` as the mask, as libcontainer reads them: bundle.rs has already put the spec's
/// mask there.
fn compile(p: &LinuxSeccomp) -> Result<Vec<u8>> {
    let default = action(p.default_action(), p.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| anyhow!("new filter: {e}"))?;
    for &arch in p.architectures().iter().flatten() {
        ctx.add_arch(scmp_arch(arch)).map_err(|e| anyhow!("architecture {arch:?}: {e}"))?;
    }
    ctx.set_ctl_nnp(false).map_err(|e| anyhow!("SCMP_FLTATR_CTL_NNP: {e}"))?;
    for sc in p.syscalls().iter().flatten() {
        let act = action(sc.action(), sc.errno_ret())?;
        if act == default {
            continue;
        }
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: unknown syscall {name:?} skipped");
                continue;
            };
            let add = |ctx: &mut ScmpFilterContext, cmps: &[ScmpArgCompare]| {
                let r = if cmps.is_empty() { ctx.add_rule(act, nr) } else { ctx.add_rule_conditional(act, nr, cmps) };
                r.map(|_| ()).map_err(|e| anyhow!("rule for {name}: {e}"))
            };
            let cmps: Vec<ScmpArgCompare> = sc
                .args()
                .iter()
                .flatten()
                .map(|a| ScmpArgCompare::new(a.index() as u32, op(a.op(), a.value_two()), a.value()))
                .collect();
            let mut seen = std::collections::HashSet::new();
            if sc.args().iter().flatten().all(|a| seen.insert(a.index())) {
                add(&mut ctx, &cmps)?;
            } else {
                for c in &cmps {
                    add(&mut ctx, std::slice::from_ref(c))?;
                }
            }
        }
    }
    // libseccomp 2.5 exports to an fd only.
    let mut f = fs::File::from(
        nix::sys::memfd::memfd_create(c"berth-seccomp", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
            .context("memfd_create")?,
    );
    ctx.export_bpf(&f).map_err(|e| anyhow!("exporting the filter: {e}"))?;
    f.seek(io::SeekFrom::Start(0))?;
    let mut raw = Vec::new();
    f.read_to_end(&mut raw)?;
    Ok(raw)
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.try_into().map_err(|_| anyhow!("SCMP_ACT_TRACE: errnoRet {errno} out of range"))?)
        }
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => bail!("SCMP_ACT_NOTIFY is left to libcontainer"),
    })
}

fn op(o: LinuxSeccompOperator, value_two: Option<u64>) -> ScmpCompareOp {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two.unwrap_or(0)),
    }
}

fn scmp_arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}
