//! Docker's default security profile for a Linux container, as OCI runtime-spec types.
//!
//! berthd builds each container's `config.json` from an image and a Docker-style HostConfig;
//! this module supplies the parts that Docker applies to every container unless told
//! otherwise: the capability set and `--cap-add`/`--cap-drop` rules, the masked and read-only
//! `/proc` and `/sys` paths, the standard kernel filesystem mounts, and the default seccomp
//! allowlist (x86_64 family).
//!
//! The facts (which syscalls, which capabilities, which paths) follow Docker's behaviour so that
//! images behave the same under berth; the code and its grouping are berth's own. What a
//! `--privileged` container gets instead is the caller's business: Docker gives it
//! [`all_capabilities`], no masked or read-only paths, no seccomp filter, and
//! `default_mounts(true, ..)`.

use std::collections::{BTreeSet, HashSet};

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder, LinuxSeccomp,
    LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder, Mount, MountBuilder,
};

// ---------------------------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------------------------

/// Capability names indexed by their kernel number (`include/uapi/linux/capability.h`).
/// The last one, CAP_CHECKPOINT_RESTORE, arrived in Linux 5.9.
const CAPABILITY_NAMES: [&str; 41] = [
    "CAP_CHOWN",              // 0
    "CAP_DAC_OVERRIDE",       // 1
    "CAP_DAC_READ_SEARCH",    // 2
    "CAP_FOWNER",             // 3
    "CAP_FSETID",             // 4
    "CAP_KILL",               // 5
    "CAP_SETGID",             // 6
    "CAP_SETUID",             // 7
    "CAP_SETPCAP",            // 8
    "CAP_LINUX_IMMUTABLE",    // 9
    "CAP_NET_BIND_SERVICE",   // 10
    "CAP_NET_BROADCAST",      // 11
    "CAP_NET_ADMIN",          // 12
    "CAP_NET_RAW",            // 13
    "CAP_IPC_LOCK",           // 14
    "CAP_IPC_OWNER",          // 15
    "CAP_SYS_MODULE",         // 16
    "CAP_SYS_RAWIO",          // 17
    "CAP_SYS_CHROOT",         // 18
    "CAP_SYS_PTRACE",         // 19
    "CAP_SYS_PACCT",          // 20
    "CAP_SYS_ADMIN",          // 21
    "CAP_SYS_BOOT",           // 22
    "CAP_SYS_NICE",           // 23
    "CAP_SYS_RESOURCE",       // 24
    "CAP_SYS_TIME",           // 25
    "CAP_SYS_TTY_CONFIG",     // 26
    "CAP_MKNOD",              // 27
    "CAP_LEASE",              // 28
    "CAP_AUDIT_WRITE",        // 29
    "CAP_AUDIT_CONTROL",      // 30
    "CAP_SETFCAP",            // 31
    "CAP_MAC_OVERRIDE",       // 32
    "CAP_MAC_ADMIN",          // 33
    "CAP_SYSLOG",             // 34
    "CAP_WAKE_ALARM",         // 35
    "CAP_BLOCK_SUSPEND",      // 36
    "CAP_AUDIT_READ",         // 37
    "CAP_PERFMON",            // 38
    "CAP_BPF",                // 39
    "CAP_CHECKPOINT_RESTORE", // 40
];

/// What a Docker container gets without `--cap-add`/`--cap-drop`: enough for a root process to
/// manage files it owns, switch users, bind low ports and send signals, but nothing that reaches
/// past the container (no SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE, ...).
const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The word `--cap-add`/`--cap-drop` accept for "every capability".
const ALL: &str = "ALL";

/// Docker's default capability set (14 capabilities, `CAP_`-prefixed names).
pub fn default_capabilities() -> Vec<String> {
    DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
}

/// Every capability the running kernel knows, for `--privileged` and `--cap-add ALL`.
///
/// The kernel's highest capability number comes from `/proc/sys/kernel/cap_last_cap`; numbers
/// this module has no name for (a kernel newer than CAP_CHECKPOINT_RESTORE = 40) are skipped.
/// If the file cannot be read (no /proc), every capability this module knows is returned.
pub fn all_capabilities() -> Vec<String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(CAPABILITY_NAMES.len() - 1);
    // Only what berthd itself may pass on: asking for a capability outside our bounding set
    // makes capset fail (here CAP_SYS_RESOURCE is not in it).
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string())))
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(u64::MAX);
    CAPABILITY_NAMES
        .iter()
        .take(last.saturating_add(1))
        .enumerate()
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// Normalises one `--cap-add`/`--cap-drop` word: case-insensitive, `CAP_` prefix optional,
/// `ALL` passed through. Returns the canonical `CAP_XXX` name (or `ALL`).
fn normalize_capability(word: &str) -> Result<String, String> {
    let upper = word.trim().to_ascii_uppercase();
    if upper == ALL {
        return Ok(upper);
    }
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if CAPABILITY_NAMES.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(format!(
            "unknown capability: {word:?} (expected a name such as NET_ADMIN or CAP_NET_ADMIN, \
             or ALL; see capabilities(7))"
        ))
    }
}

fn normalize_all(words: &[String]) -> Result<Vec<String>, String> {
    words.iter().map(|w| normalize_capability(w)).collect()
}

/// Applies Docker's `--cap-add`/`--cap-drop` rules to `base` (usually
/// [`default_capabilities`]):
///
/// - `--cap-add ALL`: every capability the kernel knows, minus the dropped ones;
/// - otherwise `--cap-drop ALL`: exactly the added capabilities (Docker drops all, then adds);
/// - otherwise: `base` minus the dropped ones, then plus the added ones. As in Docker, naming a
///   capability in both lists keeps it (the drop is applied to the base set only).
///
/// Names are case-insensitive, with or without the `CAP_` prefix; the result uses canonical
/// `CAP_XXX` names, each once, in a stable order. An unknown name is an error.
pub fn apply_cap_changes(
    base: Vec<String>,
    add: &[String],
    drop: &[String],
) -> Result<Vec<String>, String> {
    let base = normalize_all(&base)?;
    let add = normalize_all(add)?;
    let drop = normalize_all(drop)?;
    if base.iter().any(|c| c == ALL) {
        return Err("the base capability set cannot contain ALL".to_string());
    }

    let contains = |list: &[String], name: &str| list.iter().any(|c| c == name);
    let chosen: Vec<String> = if contains(&add, ALL) {
        all_capabilities()
            .into_iter()
            .filter(|c| !contains(&drop, c))
            .collect()
    } else if contains(&drop, ALL) {
        add
    } else {
        base.into_iter()
            .filter(|c| !contains(&drop, c))
            .chain(add)
            .collect()
    };

    let mut seen = HashSet::new();
    Ok(chosen
        .into_iter()
        .filter(|c| seen.insert(c.clone()))
        .collect())
}

/// Parses a `CAP_XXX` (or `XXX`) name into oci-spec's enum.
fn to_capability(name: &str) -> Option<Capability> {
    let upper = name.trim().to_ascii_uppercase();
    upper
        .strip_prefix("CAP_")
        .unwrap_or(&upper)
        .parse::<Capability>()
        .ok()
}

/// The five capability sets of a container's process, as Docker (and runc) set them for any
/// user: bounding = effective = permitted = `caps`; inheritable and ambient empty, so nothing is
/// passed on through `execve` of a non-privileged file. Names oci-spec does not know are left
/// out (validate with [`apply_cap_changes`] first).
pub fn capabilities_for(caps: &[String]) -> LinuxCapabilities {
    let set: Capabilities = caps.iter().filter_map(|c| to_capability(c)).collect();
    LinuxCapabilitiesBuilder::default()
        .bounding(set.clone())
        .effective(set.clone())
        .permitted(set)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .expect("every LinuxCapabilities field is set")
}

// ---------------------------------------------------------------------------------------------
// Masked and read-only paths
// ---------------------------------------------------------------------------------------------

/// Paths the runtime hides (a file gets /dev/null bound over it, a directory an empty read-only
/// tmpfs): they leak host information (kernel memory, keyrings, timers, hardware) or offer
/// host-wide knobs. `/proc/interrupts`, `/sys/devices/virtual/powercap` and the per-CPU
/// `thermal_throttle` directories are masked because they expose side channels (energy and
/// interrupt counters) that can leak another tenant's activity.
const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths bound read-only: host-wide kernel settings and triggers under /proc.
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's masked paths: the fixed list plus, for each possible CPU of this host that has one,
/// `/sys/devices/system/cpu/cpuN/thermal_throttle`.
pub fn masked_paths() -> Vec<String> {
    let mut paths: Vec<String> = MASKED_PATHS.iter().map(|p| p.to_string()).collect();
    if let Ok(possible) = std::fs::read_to_string("/sys/devices/system/cpu/possible") {
        for cpu in parse_cpu_list(&possible) {
            let path = format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle");
            if std::path::Path::new(&path).exists() {
                paths.push(path);
            }
        }
    }
    paths
}

/// Docker's read-only paths.
pub fn readonly_paths() -> Vec<String> {
    READONLY_PATHS.iter().map(|p| p.to_string()).collect()
}

/// Parses the kernel's CPU list format ("0-3,6,8-9"); malformed parts are ignored, and a range
/// is capped so a corrupt file cannot make us loop for long.
fn parse_cpu_list(list: &str) -> Vec<u32> {
    const MAX_CPUS: u32 = 8192;
    let mut cpus = Vec::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.trim().parse::<u32>(), hi.trim().parse::<u32>()),
            None => (part.trim().parse::<u32>(), part.trim().parse::<u32>()),
        };
        if let (Ok(lo), Ok(hi)) = (lo, hi) {
            cpus.extend(lo..=hi.min(MAX_CPUS));
        }
    }
    cpus
}

// ---------------------------------------------------------------------------------------------
// Mounts
// ---------------------------------------------------------------------------------------------

/// Docker's default /dev/shm size when HostConfig.ShmSize is 0: 64 MiB.
pub const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .expect("every Mount field is set")
}

/// The kernel filesystems every Docker container gets, in mount order. A privileged container
/// gets /sys and /sys/fs/cgroup writable; everyone else read-only. `shm_size` is /dev/shm's size
/// in bytes (0 means Docker's default, [`DEFAULT_SHM_SIZE`]).
pub fn default_mounts(privileged: bool, shm_size: u64) -> Vec<Mount> {
    let ro_or_rw = if privileged { "rw" } else { "ro" };
    let shm_size = if shm_size == 0 {
        DEFAULT_SHM_SIZE
    } else {
        shm_size
    };
    let shm_size_opt = format!("size={shm_size}");
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        // A small tmpfs: the runtime creates the standard device nodes in it.
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        // A private devpts instance; gid 5 is the conventional "tty" group.
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", ro_or_rw],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &[ro_or_rw, "nosuid", "noexec", "nodev", "relatime"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size_opt],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Seccomp
// ---------------------------------------------------------------------------------------------
//
// The profile is an allowlist: anything not named below fails with EPERM. Names are libseccomp's
// for the x86 family (x86_64, i386, x32); a name one of those ABIs lacks (the `*32`/`*64`
// variants of the 32-bit ABI, `arch_prctl` on i386...) is simply ignored there by the runtime,
// as is a name newer than the host's libseccomp. Left out on purpose, as in Docker: io_uring_*
// (a large kernel attack surface, dropped from Docker's profile in 25.0), keyctl/add_key/
// request_key (the keyring is not namespaced), userfaultfd, kexec_*, swapon/swapoff, nfsservctl,
// the obsolete uselib/ustat/sysfs/_sysctl, pivot_root, and everything gated on a capability
// below when that capability is absent.

/// Syscalls every container may make, grouped by what they are for.
#[rustfmt::skip]
const ALWAYS_ALLOWED: &[&[&str]] = &[
    // Process life cycle. Plain clone is allowed only without namespace flags unless
    // CAP_SYS_ADMIN (see the argument rules); clone3 likewise.
    &[
        "execve", "execveat", "exit", "exit_group", "fork", "vfork", "wait4", "waitid", "waitpid",
        "restart_syscall",
    ],
    // Identity of the process and its credentials (changing them needs CAP_SETUID/SETGID,
    // which the kernel checks).
    &[
        "getpid", "getppid", "gettid", "getpgid", "getpgrp", "getsid", "setpgid", "setsid",
        "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid",
        "getegid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups",
        "getgroups32", "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32",
        "setregid", "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32",
        "setfsuid", "setfsuid32", "setfsgid", "setfsgid32", "setgroups", "setgroups32", "capget",
        "capset", "prctl", "arch_prctl", "seccomp", "landlock_create_ruleset",
        "landlock_add_rule", "landlock_restrict_self",
    ],
    // Thread setup that glibc and musl do at start-up, TLS and futexes.
    &[
        "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "set_thread_area",
        "get_thread_area", "modify_ldt", "futex", "futex_time64", "futex_waitv", "futex_wait",
        "futex_wake", "futex_requeue", "membarrier", "sched_yield", "map_shadow_stack",
        "uretprobe",
    ],
    // Memory.
    &[
        "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
        "mlock", "mlock2", "mlockall", "munlock", "munlockall", "remap_file_pages",
        "pkey_alloc", "pkey_free", "pkey_mprotect", "memfd_create", "memfd_secret", "mseal",
        "process_mrelease",
    ],
    // Signals.
    &[
        "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
        "rt_sigpending", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
        "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "sigprocmask", "sigreturn",
        "signalfd", "signalfd4", "pause", "pidfd_open", "pidfd_send_signal",
    ],
    // Files: open, read, write, seek, sync.
    &[
        "open", "openat", "openat2", "creat", "close", "close_range", "read", "readv", "pread64",
        "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2", "lseek",
        "_llseek", "dup", "dup2", "dup3", "fcntl", "fcntl64", "flock", "ioctl", "fsync",
        "fdatasync", "sync", "syncfs", "sync_file_range", "fallocate", "ftruncate",
        "ftruncate64", "truncate", "truncate64", "fadvise64", "fadvise64_64", "readahead",
        "sendfile", "sendfile64", "copy_file_range", "splice", "tee", "vmsplice", "cachestat",
        "name_to_handle_at",
    ],
    // File metadata and directories (permission checks stay with the kernel).
    &[
        "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat",
        "statx", "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat",
        "faccessat2", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "chown32", "fchown",
        "fchown32", "fchownat", "lchown", "lchown32", "umask", "utime", "utimes", "utimensat",
        "utimensat_time64", "futimesat", "getcwd", "chdir", "fchdir", "getdents", "getdents64",
        "mkdir", "mkdirat", "rmdir", "mknod", "mknodat", "link", "linkat", "symlink",
        "symlinkat", "readlink", "readlinkat", "unlink", "unlinkat", "rename", "renameat",
        "renameat2", "statmount", "listmount",
    ],
    // Extended attributes.
    &[
        "getxattr", "lgetxattr", "fgetxattr", "getxattrat", "setxattr", "lsetxattr", "fsetxattr",
        "setxattrat", "listxattr", "llistxattr", "flistxattr", "listxattrat", "removexattr",
        "lremovexattr", "fremovexattr", "removexattrat",
    ],
    // Waiting for events: poll/select/epoll, inotify, fanotify marks (creating a fanotify group
    // needs CAP_SYS_ADMIN), eventfd, timerfd.
    &[
        "poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait",
        "epoll_wait_old", "epoll_pwait", "epoll_pwait2", "inotify_init", "inotify_init1",
        "inotify_add_watch", "inotify_rm_watch", "fanotify_mark", "eventfd", "eventfd2",
        "timerfd_create", "timerfd_settime", "timerfd_settime64", "timerfd_gettime",
        "timerfd_gettime64",
    ],
    // Pipes and sockets. `socket` itself is argument-filtered (no AF_ALG, no AF_VSOCK);
    // `socketcall` is the i386 multiplexer.
    &[
        "pipe", "pipe2", "socketpair", "bind", "connect", "listen", "accept", "accept4",
        "getsockname", "getpeername", "getsockopt", "setsockopt", "send", "sendto", "sendmsg",
        "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64", "shutdown",
        "socketcall",
    ],
    // Time and timers (setting the clock needs CAP_SYS_TIME; adjtimex and clock_adjtime only
    // read it without that capability).
    &[
        "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
        "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
        "adjtimex", "clock_adjtime", "clock_adjtime64", "alarm", "getitimer", "setitimer",
        "timer_create", "timer_delete", "timer_settime", "timer_settime64", "timer_gettime",
        "timer_gettime64", "timer_getoverrun", "times",
    ],
    // Scheduling, priorities and resource limits (raising them is still checked by the kernel
    // against CAP_SYS_NICE / CAP_SYS_RESOURCE).
    &[
        "getpriority", "setpriority", "sched_getaffinity", "sched_setaffinity", "sched_getattr",
        "sched_setattr", "sched_getparam", "sched_setparam", "sched_getscheduler",
        "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
        "sched_rr_get_interval", "sched_rr_get_interval_time64", "ioprio_get", "ioprio_set",
        "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "getcpu", "getrandom",
        "sysinfo", "uname",
    ],
    // System V and POSIX IPC, inside the container's IPC namespace.
    &[
        "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
        "semtimedop_time64", "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open",
        "mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
        "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
    ],
    // Linux AIO (not io_uring).
    &[
        "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64",
    ],
    // Tracing one's own children. Safe since Linux 4.8, where a tracer can no longer use ptrace
    // to step around the tracee's seccomp filter; berth needs far newer kernels anyway. This is
    // why `strace` works in a default Docker container.
    &["ptrace", "process_vm_readv", "process_vm_writev"],
];

/// Syscalls allowed only when the container has a capability: each is what that capability
/// exists to permit, so without it the call would fail anyway, and the filter removes the
/// kernel code behind it from reach.
#[rustfmt::skip]
const CAPABILITY_GATED: &[(&str, &[&str])] = &[
    // Open a file by handle, which bypasses path permission checks.
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    // Mounts, namespaces, hostname, quotas, BPF, perf, kernel log: the catch-all admin
    // capability. clone/clone3 here are the unrestricted forms (namespace flags allowed).
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
            "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr",
            "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl",
            "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
            "umount2", "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["init_module", "finit_module", "delete_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    // Looking into other processes beyond plain ptrace (which is always allowed, see above).
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "pidfd_getfd", "process_madvise"],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    // NUMA memory policy.
    (
        "CAP_SYS_NICE",
        &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// personality(2) values a container may select: PER_LINUX, PER_LINUX32, UNAME26,
/// UNAME26|PER_LINUX32, and 0xffffffff, which only queries the current persona. Other
/// personas enable odd legacy behaviour (e.g. READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE).
const PERSONALITY_ALLOWED: [u64; 5] = [0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Address families socket(2) must not create: AF_ALG (38, the kernel crypto API) and AF_VSOCK
/// (40, host/guest sockets, not namespaced). The rules below rely on exactly one family (39,
/// AF_QIPCRTR) lying between them.
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// The clone(2) flags that create namespaces: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
/// NEWPID, NEWNET. Without CAP_SYS_ADMIN a clone with any of them set is refused.
const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

fn allow(names: Vec<String>) -> LinuxSyscall {
    LinuxSyscallBuilder::default()
        .names(names)
        .action(LinuxSeccompAction::ScmpActAllow)
        .build()
        .expect("every LinuxSyscall field is set")
}

fn allow_if(
    name: &str,
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> LinuxSyscall {
    let mut arg = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    if let Some(two) = value_two {
        arg = arg.value_two(two);
    }
    let arg: LinuxSeccompArg = arg.build().expect("every LinuxSeccompArg field is set");
    LinuxSyscallBuilder::default()
        .names(vec![name.to_string()])
        .action(LinuxSeccompAction::ScmpActAllow)
        .args(vec![arg])
        .build()
        .expect("every LinuxSyscall field is set")
}

/// Docker's default seccomp profile for the x86 family, specialised for a container holding
/// `caps` (names as from [`apply_cap_changes`]; with or without `CAP_`).
///
/// Default action: fail with EPERM. Rules, in order: the always-allowed syscalls (one rule,
/// each name once); one rule per held capability that unlocks syscalls (names already allowed
/// by an earlier rule left out); then the argument filters: personality with the harmless
/// personas, socket for every family but AF_ALG and AF_VSOCK, and, without CAP_SYS_ADMIN,
/// clone only with no namespace flag and clone3 answered with ENOSYS, so that libcs fall back
/// to clone, whose flags (unlike clone3's, passed in memory) the filter can inspect.
pub fn default_seccomp(caps: &[String]) -> LinuxSeccomp {
    let held: HashSet<String> = caps
        .iter()
        .filter_map(|c| normalize_capability(c).ok())
        .collect();
    let has = |cap: &str| held.contains(cap);

    let mut rules = Vec::new();
    let mut allowed: BTreeSet<&str> = BTreeSet::new();

    let always: Vec<String> = ALWAYS_ALLOWED
        .iter()
        .flat_map(|group| group.iter())
        .filter(|name| allowed.insert(name))
        .map(|name| name.to_string())
        .collect();
    rules.push(allow(always));

    for (cap, names) in CAPABILITY_GATED {
        if !has(cap) {
            continue;
        }
        let fresh: Vec<String> = names
            .iter()
            .filter(|name| allowed.insert(name))
            .map(|name| name.to_string())
            .collect();
        if !fresh.is_empty() {
            rules.push(allow(fresh));
        }
    }

    for persona in PERSONALITY_ALLOWED {
        rules.push(allow_if(
            "personality",
            0,
            LinuxSeccompOperator::ScmpCmpEq,
            persona,
            None,
        ));
    }

    // socket(domain, ...): domain < AF_ALG, domain == AF_ALG + 1, or domain > AF_VSOCK.
    rules.push(allow_if(
        "socket",
        0,
        LinuxSeccompOperator::ScmpCmpLt,
        AF_ALG,
        None,
    ));
    rules.push(allow_if(
        "socket",
        0,
        LinuxSeccompOperator::ScmpCmpEq,
        AF_ALG + 1,
        None,
    ));
    rules.push(allow_if(
        "socket",
        0,
        LinuxSeccompOperator::ScmpCmpGt,
        AF_VSOCK,
        None,
    ));

    if !has("CAP_SYS_ADMIN") {
        // clone(flags, ...) with (flags & CLONE_NAMESPACE_FLAGS) == 0. In OCI (and runc's)
        // reading of SCMP_CMP_MASKED_EQ, `value` is the mask and `valueTwo` the datum.
        rules.push(allow_if(
            "clone",
            0,
            LinuxSeccompOperator::ScmpCmpMaskedEq,
            CLONE_NAMESPACE_FLAGS,
            Some(0),
        ));
        rules.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(ENOSYS)
                .build()
                .expect("every LinuxSyscall field is set"),
        );
    }

    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
        .syscalls(rules)
        .build()
        .expect("every LinuxSeccomp field is set")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    // --- capabilities ---

    #[test]
    fn default_capabilities_are_dockers_fourteen() {
        let caps = default_capabilities();
        assert_eq!(caps.len(), 14);
        for cap in [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ] {
            assert!(caps.iter().any(|c| c == cap), "{cap} missing");
        }
        assert!(!caps
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN" || c == "CAP_NET_ADMIN"));
        // Every default is a name oci-spec understands.
        assert_eq!(
            capabilities_for(&caps).bounding().as_ref().unwrap().len(),
            14
        );
    }

    #[test]
    fn capability_table_matches_oci_spec_and_kernel_numbers() {
        for name in CAPABILITY_NAMES {
            assert!(
                to_capability(name).is_some(),
                "oci-spec does not know {name}"
            );
        }
        let unique: HashSet<_> = CAPABILITY_NAMES.iter().collect();
        assert_eq!(unique.len(), CAPABILITY_NAMES.len());
        assert_eq!(CAPABILITY_NAMES[0], "CAP_CHOWN");
        assert_eq!(CAPABILITY_NAMES[21], "CAP_SYS_ADMIN");
        assert_eq!(CAPABILITY_NAMES[40], "CAP_CHECKPOINT_RESTORE");
    }

    #[test]
    fn all_capabilities_follow_the_kernel() {
        let all = all_capabilities();
        let known = match std::fs::read_to_string("/proc/sys/kernel/cap_last_cap") {
            Ok(s) => (s.trim().parse::<usize>().unwrap() + 1).min(41),
            Err(_) => 41,
        };
        // Everything the kernel knows that this process may still hand out.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let bnd = status.lines().find_map(|l| l.strip_prefix("CapBnd:")).map(|v| u64::from_str_radix(v.trim(), 16).unwrap()).unwrap();
        let expected = (0..known).filter(|i| bnd & (1u64 << i) != 0).count();
        assert_eq!(all.len(), expected);
        assert!(all.iter().all(|c| {
            let i = CAPABILITY_NAMES.iter().position(|n| n == c).unwrap();
            bnd & (1u64 << i) != 0
        }));
        assert_eq!(all[0], "CAP_CHOWN");
        for cap in default_capabilities() {
            assert!(all.contains(&cap));
        }
    }

    #[test]
    fn cap_add_and_drop_with_either_spelling() {
        let caps = apply_cap_changes(
            default_capabilities(),
            &strings(&["net_admin", "CAP_SYS_PTRACE", "Sys_Time"]),
            &strings(&["MKNOD", "cap_net_raw"]),
        )
        .unwrap();
        for cap in [
            "CAP_NET_ADMIN",
            "CAP_SYS_PTRACE",
            "CAP_SYS_TIME",
            "CAP_CHOWN",
        ] {
            assert!(caps.contains(&cap.to_string()), "{cap} missing");
        }
        assert!(!caps.contains(&"CAP_MKNOD".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert_eq!(caps.len(), 14 - 2 + 3);
    }

    #[test]
    fn no_changes_keeps_the_base() {
        let caps = apply_cap_changes(default_capabilities(), &[], &[]).unwrap();
        assert_eq!(caps, default_capabilities());
    }

    #[test]
    fn adding_a_held_capability_does_not_duplicate_it() {
        let caps =
            apply_cap_changes(default_capabilities(), &strings(&["CHOWN", "chown"]), &[]).unwrap();
        assert_eq!(sorted(caps), sorted(default_capabilities()));
    }

    #[test]
    fn drop_all_then_add() {
        let caps = apply_cap_changes(
            default_capabilities(),
            &strings(&["NET_BIND_SERVICE"]),
            &strings(&["all"]),
        )
        .unwrap();
        assert_eq!(caps, strings(&["CAP_NET_BIND_SERVICE"]));

        let none = apply_cap_changes(default_capabilities(), &[], &strings(&["ALL"])).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn add_all_minus_drops() {
        let caps = apply_cap_changes(
            default_capabilities(),
            &strings(&["ALL"]),
            &strings(&["SYS_ADMIN", "CAP_NET_ADMIN"]),
        )
        .unwrap();
        assert_eq!(caps.len(), all_capabilities().len() - 2);
        assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_SYS_MODULE".to_string()));

        // ALL in both lists: Docker lets the add win.
        let both = apply_cap_changes(
            default_capabilities(),
            &strings(&["ALL"]),
            &strings(&["ALL"]),
        )
        .unwrap();
        assert_eq!(both, all_capabilities());
    }

    #[test]
    fn same_capability_added_and_dropped_is_kept_as_docker_does() {
        let caps = apply_cap_changes(
            default_capabilities(),
            &strings(&["NET_ADMIN"]),
            &strings(&["NET_ADMIN", "KILL"]),
        )
        .unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()));
    }

    #[test]
    fn unknown_capability_is_an_error() {
        let err =
            apply_cap_changes(default_capabilities(), &strings(&["CAP_FLY"]), &[]).unwrap_err();
        assert!(
            err.contains("unknown capability") && err.contains("CAP_FLY"),
            "{err}"
        );
        let err =
            apply_cap_changes(default_capabilities(), &[], &strings(&["teleport"])).unwrap_err();
        assert!(err.contains("teleport"), "{err}");
        assert!(apply_cap_changes(default_capabilities(), &strings(&[""]), &[]).is_err());
    }

    #[test]
    fn capability_sets_for_a_process() {
        let caps =
            apply_cap_changes(default_capabilities(), &strings(&["SYS_ADMIN"]), &[]).unwrap();
        let sets = capabilities_for(&caps);
        let expected: Capabilities = caps.iter().filter_map(|c| to_capability(c)).collect();
        assert_eq!(expected.len(), 15);
        assert!(expected.contains(&Capability::SysAdmin));
        assert_eq!(sets.bounding().as_ref(), Some(&expected));
        assert_eq!(sets.effective().as_ref(), Some(&expected));
        assert_eq!(sets.permitted().as_ref(), Some(&expected));
        assert_eq!(sets.inheritable().as_ref(), Some(&Capabilities::new()));
        assert_eq!(sets.ambient().as_ref(), Some(&Capabilities::new()));

        let json = serde_json::to_value(&sets).unwrap();
        assert!(json["bounding"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("CAP_SYS_ADMIN")));
        assert_eq!(json["inheritable"], serde_json::json!([]));
    }

    // --- paths ---

    #[test]
    fn masked_and_readonly_paths() {
        let masked = masked_paths();
        for p in [
            "/proc/asound",
            "/proc/acpi",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
            "/proc/interrupts",
        ] {
            assert!(masked.iter().any(|m| m == p), "{p} not masked");
        }
        for extra in &masked[MASKED_PATHS.len()..] {
            assert!(extra.starts_with("/sys/devices/system/cpu/cpu"), "{extra}");
            assert!(extra.ends_with("/thermal_throttle"), "{extra}");
        }
        assert_eq!(
            readonly_paths(),
            strings(&[
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger"
            ])
        );
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-3,6,8-9\n"), vec![0, 1, 2, 3, 6, 8, 9]);
        assert_eq!(parse_cpu_list("0\n"), vec![0]);
        assert_eq!(parse_cpu_list("garbage,2"), vec![2]);
        assert!(parse_cpu_list("").is_empty());
    }

    // --- mounts ---

    fn find<'a>(mounts: &'a [Mount], dest: &str) -> &'a Mount {
        mounts
            .iter()
            .find(|m| m.destination().to_str() == Some(dest))
            .unwrap_or_else(|| panic!("no mount at {dest}"))
    }

    fn opts(m: &Mount) -> Vec<&str> {
        m.options()
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.as_str())
            .collect()
    }

    #[test]
    fn unprivileged_mounts() {
        let mounts = default_mounts(false, 0);
        let dests: Vec<_> = mounts
            .iter()
            .map(|m| m.destination().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            dests,
            strings(&[
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm"
            ])
        );

        let proc_ = find(&mounts, "/proc");
        assert_eq!(proc_.typ().as_deref(), Some("proc"));
        assert_eq!(opts(proc_), ["nosuid", "noexec", "nodev"]);

        let dev = find(&mounts, "/dev");
        assert_eq!(dev.typ().as_deref(), Some("tmpfs"));
        assert_eq!(
            opts(dev),
            ["nosuid", "strictatime", "mode=755", "size=65536k"]
        );

        let pts = find(&mounts, "/dev/pts");
        assert_eq!(pts.typ().as_deref(), Some("devpts"));
        for o in ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] {
            assert!(opts(pts).contains(&o), "{o}");
        }

        let sys = find(&mounts, "/sys");
        assert_eq!(sys.typ().as_deref(), Some("sysfs"));
        assert_eq!(opts(sys), ["nosuid", "noexec", "nodev", "ro"]);

        let cg = find(&mounts, "/sys/fs/cgroup");
        assert_eq!(cg.typ().as_deref(), Some("cgroup"));
        assert_eq!(opts(cg), ["ro", "nosuid", "noexec", "nodev", "relatime"]);

        let mq = find(&mounts, "/dev/mqueue");
        assert_eq!(mq.typ().as_deref(), Some("mqueue"));

        let shm = find(&mounts, "/dev/shm");
        assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
        assert_eq!(shm.source().as_ref().unwrap().to_str(), Some("shm"));
        assert_eq!(
            opts(shm),
            ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
        );
    }

    #[test]
    fn privileged_mounts_are_writable_and_shm_is_sized() {
        let mounts = default_mounts(true, 128 * 1024 * 1024);
        assert_eq!(mounts.len(), 7);
        let sys = opts(find(&mounts, "/sys"));
        assert!(sys.contains(&"rw") && !sys.contains(&"ro"));
        let cg = opts(find(&mounts, "/sys/fs/cgroup"));
        assert!(cg.contains(&"rw") && !cg.contains(&"ro"));
        assert!(opts(find(&mounts, "/dev/shm")).contains(&"size=134217728"));
        // Everything else is the same as unprivileged.
        let plain = default_mounts(false, 128 * 1024 * 1024);
        for dest in ["/proc", "/dev", "/dev/pts", "/dev/mqueue", "/dev/shm"] {
            assert_eq!(find(&mounts, dest), find(&plain, dest));
        }
    }

    #[test]
    fn mounts_serialize_as_oci_json() {
        let json = serde_json::to_value(default_mounts(false, 0)).unwrap();
        assert_eq!(json[0]["destination"], "/proc");
        assert_eq!(json[0]["type"], "proc");
        assert_eq!(json[0]["source"], "proc");
    }

    // --- seccomp ---

    fn rules(profile: &LinuxSeccomp) -> &[LinuxSyscall] {
        profile.syscalls().as_deref().unwrap()
    }

    /// Names a profile lets through without looking at arguments.
    fn unconditional(profile: &LinuxSeccomp) -> HashSet<String> {
        rules(profile)
            .iter()
            .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
            .flat_map(|r| r.names().iter().cloned())
            .collect()
    }

    fn mentions(profile: &LinuxSeccomp, name: &str) -> Vec<LinuxSyscall> {
        rules(profile)
            .iter()
            .filter(|r| r.names().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    #[test]
    fn seccomp_header() {
        let p = default_seccomp(&default_capabilities());
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        assert!(p.flags().is_none());
    }

    #[test]
    fn seccomp_json_round_trip() {
        for caps in [default_capabilities(), all_capabilities(), vec![]] {
            let p = default_seccomp(&caps);
            let json = serde_json::to_string(&p).unwrap();
            let back: LinuxSeccomp = serde_json::from_str(&json).unwrap();
            assert_eq!(back, p);
        }
        let v = serde_json::to_value(default_seccomp(&default_capabilities())).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(
            v["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
    }

    #[test]
    fn no_duplicate_names_in_the_unconditional_rule() {
        for caps in [default_capabilities(), all_capabilities()] {
            let p = default_seccomp(&caps);
            let first = &rules(&p)[0];
            assert_eq!(first.action(), LinuxSeccompAction::ScmpActAllow);
            assert!(first.args().is_none());
            let unique: HashSet<_> = first.names().iter().collect();
            assert_eq!(unique.len(), first.names().len());
            // And no name is allowed unconditionally by two rules.
            let total: usize = rules(&p)
                .iter()
                .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
                .map(|r| r.names().len())
                .sum();
            assert_eq!(total, unconditional(&p).len());
        }
    }

    #[test]
    fn source_lists_have_no_duplicates_or_overlaps() {
        let mut seen = HashSet::new();
        for name in ALWAYS_ALLOWED.iter().flat_map(|g| g.iter()) {
            assert!(seen.insert(*name), "{name} listed twice in ALWAYS_ALLOWED");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
        for (cap, names) in CAPABILITY_GATED {
            assert!(CAPABILITY_NAMES.contains(cap), "{cap}");
            for name in *names {
                assert!(
                    !seen.contains(name),
                    "{name} is both always allowed and gated by {cap}"
                );
            }
        }
        // Argument-filtered syscalls never appear in an unconditional list.
        for name in ["socket", "personality", "clone3"] {
            assert!(!seen.contains(name), "{name}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn userland_essentials_are_allowed() {
        let allowed = unconditional(&default_seccomp(&default_capabilities()));
        for name in [
            "read", "write", "openat", "openat2", "close", "close_range", "execve", "exit_group",
            "fork", "vfork", "wait4", "rseq", "set_robust_list", "set_tid_address", "prlimit64",
            "getrandom", "statx", "newfstatat", "clock_nanosleep", "faccessat2", "epoll_pwait2",
            "pidfd_open", "pidfd_send_signal", "memfd_create", "copy_file_range", "mmap",
            "mprotect", "futex", "arch_prctl", "ioctl", "getdents64", "pipe2", "connect",
            "sendto", "recvfrom", "setuid", "setgroups", "chown", "fchownat", "utimensat",
            "sched_getaffinity", "sysinfo", "uname", "rt_sigaction", "sigaltstack", "ptrace",
            "socketcall", "chown32", "_llseek",
        ] {
            assert!(allowed.contains(name), "{name} not allowed");
        }
        for denied in [
            "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key",
            "request_key", "userfaultfd", "kexec_load", "swapon", "pivot_root", "mount",
            "unshare", "setns", "reboot",
        ] {
            assert!(!allowed.contains(denied), "{denied} should not be allowed");
        }
    }

    #[test]
    fn sys_admin_gates_mount_namespaces_and_unrestricted_clone() {
        let without = default_seccomp(&default_capabilities());
        let with = default_seccomp(
            &apply_cap_changes(default_capabilities(), &strings(&["SYS_ADMIN"]), &[]).unwrap(),
        );
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "sethostname",
            "bpf",
            "perf_event_open",
            "syslog",
        ] {
            assert!(
                mentions(&without, name).is_empty(),
                "{name} without CAP_SYS_ADMIN"
            );
            assert!(
                unconditional(&with).contains(name),
                "{name} with CAP_SYS_ADMIN"
            );
        }

        // clone: only without namespace flags.
        let clone = mentions(&without, "clone");
        assert_eq!(clone.len(), 1);
        let args = clone[0].args().as_ref().unwrap();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(args[0].value(), 0x7E02_0000);
        assert_eq!(args[0].value_two(), Some(0));
        assert!(unconditional(&with).contains("clone"));
        assert_eq!(mentions(&with, "clone").len(), 1);

        // clone3: ENOSYS without, allowed with.
        let clone3 = mentions(&without, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38));
        assert!(clone3[0].args().is_none());
        assert!(unconditional(&with).contains("clone3"));
        assert_eq!(mentions(&with, "clone3").len(), 1);
    }

    #[test]
    fn other_capabilities_gate_their_syscalls() {
        let base = default_seccomp(&[]);
        let cases: &[(&str, &[&str])] = &[
            (
                "CAP_SYS_PTRACE",
                &["kcmp", "pidfd_getfd", "process_madvise"],
            ),
            (
                "CAP_SYS_MODULE",
                &["init_module", "finit_module", "delete_module"],
            ),
            ("CAP_SYS_TIME", &["settimeofday", "clock_settime", "stime"]),
            ("CAP_SYS_NICE", &["mbind", "set_mempolicy", "get_mempolicy"]),
            ("CAP_SYS_BOOT", &["reboot"]),
            ("CAP_SYS_CHROOT", &["chroot"]),
            ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
            ("CAP_SYS_PACCT", &["acct"]),
            ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
            ("CAP_SYSLOG", &["syslog"]),
            ("CAP_BPF", &["bpf"]),
            ("CAP_PERFMON", &["perf_event_open"]),
            ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
        ];
        for (cap, names) in cases {
            let with = unconditional(&default_seccomp(&strings(&[cap])));
            for name in *names {
                assert!(
                    mentions(&base, name).is_empty(),
                    "{name} allowed without {cap}"
                );
                assert!(with.contains(*name), "{name} not allowed with {cap}");
            }
        }
        // The default set includes CAP_SYS_CHROOT, so chroot is allowed by default.
        assert!(unconditional(&default_seccomp(&default_capabilities())).contains("chroot"));
        // Short spellings work too.
        assert!(unconditional(&default_seccomp(&strings(&["sys_boot"]))).contains("reboot"));
    }

    #[test]
    fn ptrace_of_children_is_allowed_without_cap_sys_ptrace() {
        let allowed = unconditional(&default_seccomp(&default_capabilities()));
        for name in ["ptrace", "process_vm_readv", "process_vm_writev"] {
            assert!(allowed.contains(name), "{name}");
        }
        assert!(!allowed.contains("kcmp"));
    }

    #[test]
    fn personality_and_socket_argument_rules() {
        let p = default_seccomp(&default_capabilities());
        let persona: Vec<u64> = mentions(&p, "personality")
            .iter()
            .map(|r| {
                let args = r.args().as_ref().unwrap();
                assert_eq!(args.len(), 1);
                assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpEq);
                assert_eq!(r.action(), LinuxSeccompAction::ScmpActAllow);
                args[0].value()
            })
            .collect();
        assert_eq!(persona, vec![0x0, 0x8, 0x20000, 0x20008, 0xffffffff]);

        // socket: allowed for every family except 38 (AF_ALG) and 40 (AF_VSOCK).
        let socket = mentions(&p, "socket");
        assert_eq!(socket.len(), 3);
        let permits = |family: u64| {
            socket.iter().any(|r| {
                let a = &r.args().as_ref().unwrap()[0];
                assert_eq!(a.index(), 0);
                match a.op() {
                    LinuxSeccompOperator::ScmpCmpLt => family < a.value(),
                    LinuxSeccompOperator::ScmpCmpEq => family == a.value(),
                    LinuxSeccompOperator::ScmpCmpGt => family > a.value(),
                    other => panic!("unexpected op {other:?}"),
                }
            })
        };
        for family in 0..64u64 {
            assert_eq!(
                permits(family),
                family != 38 && family != 40,
                "family {family}"
            );
        }
    }

    #[test]
    fn clone_flag_mask_is_the_namespace_flags() {
        assert_eq!(CLONE_NAMESPACE_FLAGS, 0x7E02_0000);
        // CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|... (what pthread_create
        // passes) and SIGCHLD (fork) carry none of them.
        let pthread_flags: u64 = 0x3d0f00;
        assert_eq!(pthread_flags & CLONE_NAMESPACE_FLAGS, 0);
        assert_eq!(17 & CLONE_NAMESPACE_FLAGS, 0);
    }
}
