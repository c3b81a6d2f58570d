//! berth conformance checker: a static binary baked into every test bundle.
//!
//! It reads the OCI config it was started with (bind-mounted read-only at
//! `/spec.json`) and checks the process environment against it. Each argument
//! names an area to check (`process`, `mounts`, `caps`, ...). Every check is
//! reported as one JSON line on stdout:
//!
//! `{"check":"caps.CapEff","ok":true,"detail":"..."}`
//!
//! and the run ends with `{"done":true}` so the harness can tell a complete
//! run from a crash. Expected values that the config alone cannot express
//! (host namespace inodes, which device must be denied, ...) come from
//! annotations under `org.berth.conformance.`.

use serde_json::{json, Value};
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

const SPEC_PATH: &str = "/spec.json";
const ANN: &str = "org.berth.conformance.";

fn report(check: &str, ok: bool, detail: impl Into<String>) {
    let line = json!({"check": check, "ok": ok, "detail": detail.into()});
    let mut out = std::io::stdout().lock();
    // One write per line so that a line never interleaves with anything else.
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(check: &str, got: T, want: T) {
    let ok = got == want;
    report(check, ok, format!("got {got:?}, want {want:?}"));
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn annotation(spec: &Value, key: &str) -> Option<String> {
    spec["annotations"][format!("{ANN}{key}")]
        .as_str()
        .map(str::to_string)
}

fn main() {
    let spec: Value = match fs::read(SPEC_PATH)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            report("spec.read", false, format!("cannot read {SPEC_PATH}: {e}"));
            println!("{}", json!({"done": true}));
            std::process::exit(1);
        }
    };
    // Arguments after "--" are payload for the `process` check, not areas.
    for area in std::env::args().skip(1).take_while(|a| a != "--") {
        match area.as_str() {
            "process" => check_process(&spec),
            "user" => check_user(&spec),
            "hostname" => check_hostname(&spec),
            "mounts" => check_mounts(&spec),
            "masked" => check_masked(&spec),
            "readonly_paths" => check_readonly_paths(&spec),
            "writable" => check_writable(&spec),
            "caps" => check_caps(&spec),
            "rlimits" => check_rlimits(&spec),
            "nnp" => check_nnp(&spec),
            "oom" => check_oom(&spec),
            "sysctl" => check_sysctl(&spec),
            "devices" => check_devices(&spec),
            "default_devices" => check_default_devices(),
            "device_denied" => check_device_denied(&spec),
            "namespaces" => check_namespaces(&spec),
            "pid1" => expect_eq("pid1.getpid", unsafe { libc::getpid() }, 1),
            "idmap" => check_idmap(&spec),
            "seccomp" => check_seccomp(&spec),
            "cgroup" => check_cgroup(&spec),
            "terminal" => check_terminal(&spec),
            other => report("checker.area", false, format!("unknown area {other:?}")),
        }
    }
    println!("{}", json!({"done": true}));
}

// ---------------------------------------------------------------- process

fn check_process(spec: &Value) {
    let p = &spec["process"];
    let want_args: Vec<String> = p["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let got_args: Vec<String> = std::env::args().collect();
    expect_eq("process.args", got_args, want_args);

    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    for e in p["env"].as_array().into_iter().flatten() {
        let e = e.as_str().unwrap_or_default();
        report(
            &format!("process.env[{e}]"),
            env.iter().any(|x| x == e),
            format!("environment: {env:?}"),
        );
    }
    let cwd = std::env::current_dir()
        .map(|c| c.display().to_string())
        .unwrap_or_else(|e| format!("error {e}"));
    expect_eq(
        "process.cwd",
        cwd,
        p["cwd"].as_str().unwrap_or("/").to_string(),
    );
}

fn check_user(spec: &Value) {
    let u = &spec["process"]["user"];
    let uid = u["uid"].as_u64().unwrap_or(0) as u32;
    let gid = u["gid"].as_u64().unwrap_or(0) as u32;
    unsafe {
        expect_eq("user.uid", libc::getuid(), uid);
        expect_eq("user.euid", libc::geteuid(), uid);
        expect_eq("user.gid", libc::getgid(), gid);
        expect_eq("user.egid", libc::getegid(), gid);
    }
    let mut want: Vec<u32> = u["additionalGids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_u64().map(|g| g as u32))
                .collect()
        })
        .unwrap_or_default();
    let mut groups = vec![0 as libc::gid_t; 256];
    let n = unsafe { libc::getgroups(groups.len() as i32, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    // The primary gid may or may not be repeated in the supplementary list.
    groups.retain(|g| *g != gid);
    want.retain(|g| *g != gid);
    groups.sort();
    groups.dedup();
    want.sort();
    want.dedup();
    expect_eq("user.additionalGids", groups, want);
}

fn check_hostname(spec: &Value) {
    let mut buf = [0u8; 256];
    unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let got = String::from_utf8_lossy(&buf[..end]).to_string();
    expect_eq(
        "hostname",
        got,
        spec["hostname"].as_str().unwrap_or("").to_string(),
    );
}

// ---------------------------------------------------------------- mounts

struct MountInfo {
    root: String,
    mount_point: String,
    opts: Vec<String>,
    fstype: String,
    super_opts: Vec<String>,
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn mountinfo() -> Vec<MountInfo> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(MountInfo {
                root: unescape(f.get(3)?),
                mount_point: unescape(f.get(4)?),
                opts: f.get(5)?.split(',').map(String::from).collect(),
                fstype: f.get(sep + 1)?.to_string(),
                super_opts: f
                    .get(sep + 3)
                    .unwrap_or(&"")
                    .split(',')
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

/// The mount visible at `path`: the last one mounted there.
fn mount_at<'a>(mi: &'a [MountInfo], path: &str) -> Option<&'a MountInfo> {
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    mi.iter().rev().find(|m| m.mount_point == path)
}

fn check_mounts(spec: &Value) {
    let mi = mountinfo();
    for m in spec["mounts"].as_array().into_iter().flatten() {
        let dest = m["destination"].as_str().unwrap_or("");
        let typ = m["type"].as_str().unwrap_or("");
        let opts: Vec<&str> = m["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str())
            .collect();
        let name = format!("mount[{dest}]");
        let Some(got) = mount_at(&mi, dest) else {
            report(&name, false, format!("no mount at {dest}"));
            continue;
        };
        let is_bind = typ == "bind" || opts.iter().any(|o| *o == "bind" || *o == "rbind");
        if typ == "cgroup" {
            // v1: a tmpfs with one cgroup mount per controller under it; v2: cgroup2.
            let sub = mi.iter().any(|x| {
                (x.fstype == "cgroup" || x.fstype == "cgroup2")
                    && (x.mount_point == dest || x.mount_point.starts_with(&format!("{dest}/")))
            });
            report(
                &format!("{name}.cgroupfs"),
                sub,
                format!("fstype at {dest} is {}", got.fstype),
            );
        } else if !is_bind && !typ.is_empty() {
            expect_eq(&format!("{name}.type"), got.fstype.as_str(), typ);
        }
        for flag in ["ro", "nosuid", "nodev", "noexec"] {
            if opts.contains(&flag) && typ != "cgroup" {
                report(
                    &format!("{name}.{flag}"),
                    got.opts.iter().any(|o| o == flag),
                    format!(
                        "mount options {:?} (super {:?}, root {})",
                        got.opts, got.super_opts, got.root
                    ),
                );
            }
        }
        if opts.contains(&"rw")
            || (!opts.contains(&"ro") && typ != "cgroup" && typ != "sysfs" && is_bind)
        {
            report(
                &format!("{name}.rw"),
                got.opts.iter().any(|o| o == "rw"),
                format!("mount options {:?}", got.opts),
            );
        }
    }
}

fn check_masked(spec: &Value) {
    for p in spec["linux"]["maskedPaths"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let p = p.as_str().unwrap_or("");
        let name = format!("masked[{p}]");
        match fs::metadata(p) {
            Err(e) => report(&name, true, format!("absent: {e}")),
            Ok(md) if md.is_dir() => {
                let entries: Vec<String> = fs::read_dir(p)
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                report(
                    &name,
                    entries.is_empty(),
                    format!("directory entries: {entries:?}"),
                );
            }
            Ok(_) => {
                let mut buf = Vec::new();
                match fs::File::open(p).and_then(|f| f.take(4096).read_to_end(&mut buf)) {
                    Ok(0) => report(&name, true, "reads as empty"),
                    Ok(n) => report(&name, false, format!("read {n} bytes")),
                    Err(e) => report(&name, true, format!("unreadable: {e}")),
                }
            }
        }
    }
}

fn check_readonly_paths(spec: &Value) {
    let mi = mountinfo();
    for p in spec["linux"]["readonlyPaths"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let p = p.as_str().unwrap_or("");
        let name = format!("readonly[{p}]");
        let Ok(md) = fs::metadata(p) else {
            report(&name, true, "absent");
            continue;
        };
        match mount_at(&mi, p) {
            Some(m) => report(
                &name,
                m.opts.iter().any(|o| o == "ro"),
                format!("mount options {:?}", m.opts),
            ),
            None => report(&name, false, "not a mount point"),
        }
        if !md.is_dir() {
            let r = fs::OpenOptions::new().write(true).open(p);
            let e = r.err().and_then(|e| e.raw_os_error());
            report(
                &format!("{name}.write"),
                e == Some(libc::EROFS),
                format!("open for write: errno {e:?}"),
            );
        }
    }
}

/// Directories listed in annotation `expect-rw` must accept a new file;
/// those in `expect-ro` must refuse one with EROFS.
fn check_writable(spec: &Value) {
    let list = |k: &str| -> Vec<String> {
        annotation(spec, k)
            .map(|s| {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let probe = |d: &str| {
        format!(
            "{}/.conformance-probe-{}",
            d.trim_end_matches('/'),
            std::process::id()
        )
    };
    for d in list("expect-rw") {
        let p = probe(&d);
        let r = fs::write(&p, b"probe");
        report(
            &format!("writable[{d}]"),
            r.is_ok(),
            format!("create {p}: {r:?}"),
        );
        let _ = fs::remove_file(&p);
    }
    for d in list("expect-ro") {
        let p = probe(&d);
        let r = fs::write(&p, b"probe");
        let e = r.as_ref().err().and_then(|e| e.raw_os_error());
        report(
            &format!("readonly[{d}]"),
            e == Some(libc::EROFS),
            format!("create {p}: {r:?}"),
        );
        if r.is_ok() {
            let _ = fs::remove_file(&p);
        }
    }
}

// ---------------------------------------------------------------- security

const CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn status_field(name: &str) -> Option<String> {
    let s = fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(&format!("{name}:"))
            .map(|v| v.trim().to_string())
    })
}

fn cap_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| {
            CAPS.get(b)
                .map(|s| format!("CAP_{s}"))
                .unwrap_or(format!("cap{b}"))
        })
        .collect()
}

fn check_caps(spec: &Value) {
    let c = &spec["process"]["capabilities"];
    for (field, key) in [
        ("CapBnd", "bounding"),
        ("CapEff", "effective"),
        ("CapPrm", "permitted"),
        ("CapInh", "inheritable"),
        ("CapAmb", "ambient"),
    ] {
        let mut want = 0u64;
        for n in c[key].as_array().into_iter().flatten() {
            let n = n.as_str().unwrap_or("");
            match CAPS.iter().position(|x| format!("CAP_{x}") == n) {
                Some(b) => want |= 1 << b,
                None => report(
                    &format!("caps.{key}.name"),
                    false,
                    format!("unknown capability {n}"),
                ),
            }
        }
        let got = status_field(field).and_then(|v| u64::from_str_radix(&v, 16).ok());
        match got {
            Some(got) => report(
                &format!("caps.{field}"),
                got == want,
                format!(
                    "got {:?}, want {:?} ({key})",
                    cap_names(got),
                    cap_names(want)
                ),
            ),
            None => report(
                &format!("caps.{field}"),
                false,
                "field missing in /proc/self/status",
            ),
        }
    }
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

fn check_rlimits(spec: &Value) {
    for r in spec["process"]["rlimits"].as_array().into_iter().flatten() {
        let t = r["type"].as_str().unwrap_or("");
        let Some(res) = rlimit_resource(t) else {
            report(&format!("rlimit[{t}]"), false, "unknown rlimit type");
            continue;
        };
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(res, &mut lim) };
        let want = (
            r["soft"].as_u64().unwrap_or(0),
            r["hard"].as_u64().unwrap_or(0),
        );
        expect_eq(&format!("rlimit[{t}]"), (lim.rlim_cur, lim.rlim_max), want);
    }
}

fn check_nnp(spec: &Value) {
    let want = spec["process"]["noNewPrivileges"]
        .as_bool()
        .unwrap_or(false);
    let got = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    expect_eq("noNewPrivileges.prctl", got, want as i32);
    expect_eq(
        "noNewPrivileges.status",
        status_field("NoNewPrivs"),
        Some(if want { "1" } else { "0" }.to_string()),
    );
}

fn check_oom(spec: &Value) {
    let got = fs::read_to_string("/proc/self/oom_score_adj")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let want = spec["process"]["oomScoreAdj"]
        .as_i64()
        .map(|v| v.to_string())
        .unwrap_or_default();
    expect_eq("oomScoreAdj", got, want);
}

fn check_sysctl(spec: &Value) {
    for (k, v) in spec["linux"]["sysctl"].as_object().into_iter().flatten() {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        let got = fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("error {e}"));
        expect_eq(
            &format!("sysctl[{k}]"),
            got,
            v.as_str().unwrap_or("").to_string(),
        );
    }
}

fn check_seccomp(spec: &Value) {
    expect_eq(
        "seccomp.status",
        status_field("Seccomp"),
        Some("2".to_string()),
    );
    if let Some(e) = annotation(spec, "seccomp-getcwd-errno") {
        let mut buf = [0u8; 256];
        let r = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
        let got = if r < 0 { errno() } else { 0 };
        expect_eq("seccomp.getcwd.errno", got.to_string(), e);
    }
    if let Some(e) = annotation(spec, "seccomp-getpriority-pgrp-errno") {
        // The rule matches only when arg0 == PRIO_PGRP; PRIO_PROCESS must still work.
        let r = unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PGRP, 0) };
        let got = if r < 0 { errno() } else { 0 };
        expect_eq("seccomp.getpriority(PRIO_PGRP).errno", got.to_string(), e);
        let r = unsafe { libc::syscall(libc::SYS_getpriority, libc::PRIO_PROCESS, 0) };
        report(
            "seccomp.getpriority(PRIO_PROCESS).allowed",
            r >= 0,
            format!("returned {r}, errno {}", errno()),
        );
    }
}

// ---------------------------------------------------------------- devices

fn check_devices(spec: &Value) {
    for d in spec["linux"]["devices"].as_array().into_iter().flatten() {
        let path = d["path"].as_str().unwrap_or("");
        let name = format!("device[{path}]");
        let md = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                report(&name, false, format!("stat: {e}"));
                continue;
            }
        };
        let ft = md.file_type();
        let typ = d["type"].as_str().unwrap_or("");
        let type_ok = match typ {
            "c" | "u" => ft.is_char_device(),
            "b" => ft.is_block_device(),
            "p" => ft.is_fifo(),
            _ => false,
        };
        report(
            &format!("{name}.type"),
            type_ok,
            format!("want {typ}, got {ft:?}"),
        );
        if typ != "p" {
            let rdev = md.rdev();
            let got = (libc::major(rdev) as u64, libc::minor(rdev) as u64);
            expect_eq(
                &format!("{name}.majmin"),
                got,
                (
                    d["major"].as_u64().unwrap_or(0),
                    d["minor"].as_u64().unwrap_or(0),
                ),
            );
        }
        if let Some(mode) = d["fileMode"].as_u64() {
            expect_eq(
                &format!("{name}.mode"),
                format!("{:o}", md.mode() & 0o777),
                format!("{:o}", mode & 0o777),
            );
        }
        if let Some(uid) = d["uid"].as_u64() {
            expect_eq(&format!("{name}.uid"), md.uid() as u64, uid);
        }
        if let Some(gid) = d["gid"].as_u64() {
            expect_eq(&format!("{name}.gid"), md.gid() as u64, gid);
        }
    }
}

fn check_default_devices() {
    for (path, maj, min) in [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ] {
        let name = format!("default_device[{path}]");
        match fs::metadata(path) {
            Ok(md) => {
                let got = (
                    md.file_type().is_char_device(),
                    libc::major(md.rdev()),
                    libc::minor(md.rdev()),
                );
                expect_eq(&name, got, (true, maj, min));
            }
            Err(e) => report(&name, false, format!("stat: {e}")),
        }
    }
    let w = fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .and_then(|mut f| f.write_all(b"x"));
    report(
        "default_device[/dev/null].write",
        w.is_ok(),
        format!("{w:?}"),
    );
    let mut b = [1u8; 8];
    let r = fs::File::open("/dev/zero").and_then(|mut f| f.read_exact(&mut b));
    report(
        "default_device[/dev/zero].read",
        r.is_ok() && b == [0u8; 8],
        format!("{r:?} {b:?}"),
    );
    report(
        "default_device[/dev/ptmx]",
        fs::symlink_metadata("/dev/ptmx").is_ok(),
        "must exist",
    );
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let got = fs::read_link(link)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|e| format!("error {e}"));
        expect_eq(&format!("dev_symlink[{link}]"), got, target.to_string());
    }
}

fn check_device_denied(spec: &Value) {
    let Some(path) = annotation(spec, "denied-device") else {
        report("device_denied", false, "annotation denied-device missing");
        return;
    };
    let r = fs::File::open(&path);
    let e = r.as_ref().err().and_then(|e| e.raw_os_error());
    report(
        &format!("device_denied[{path}]"),
        e == Some(libc::EPERM),
        format!("open: {r:?}"),
    );
}

// ---------------------------------------------------------------- namespaces

fn ns_inode(path: &str) -> Option<u64> {
    fs::metadata(path).ok().map(|m| m.ino())
}

fn check_namespaces(spec: &Value) {
    let listed = spec["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (spec_name, proc_name) in [
        ("pid", "pid"),
        ("network", "net"),
        ("mount", "mnt"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("user", "user"),
        ("cgroup", "cgroup"),
    ] {
        let name = format!("namespace[{spec_name}]");
        let Some(mine) = ns_inode(&format!("/proc/self/ns/{proc_name}")) else {
            report(&name, false, "cannot stat own namespace");
            continue;
        };
        let host: Option<u64> =
            annotation(spec, &format!("hostns.{proc_name}")).and_then(|s| s.parse().ok());
        let entry = listed.iter().find(|n| n["type"] == spec_name);
        match (entry, host) {
            (_, None) => report(&name, false, "host namespace inode annotation missing"),
            (None, Some(h)) => report(
                &name,
                mine == h,
                format!("not listed: must share the runtime's ({h}), got {mine}"),
            ),
            (Some(e), Some(h)) if e.get("path").and_then(|p| p.as_str()).is_some() => {
                let want: Option<u64> =
                    annotation(spec, &format!("nsinode.{proc_name}")).and_then(|s| s.parse().ok());
                report(
                    &name,
                    Some(mine) == want,
                    format!("joined by path: want inode {want:?}, got {mine} (host {h})"),
                );
            }
            (Some(_), Some(h)) => report(
                &name,
                mine != h,
                format!("must be new: host {h}, got {mine}"),
            ),
        }
    }
}

fn check_idmap(spec: &Value) {
    for (file, key) in [("uid_map", "uidMappings"), ("gid_map", "gidMappings")] {
        let text = fs::read_to_string(format!("/proc/self/{file}")).unwrap_or_default();
        let mut got: Vec<(u64, u64, u64)> = text
            .lines()
            .filter_map(|l| {
                let v: Vec<u64> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (v.len() == 3).then(|| (v[0], v[1], v[2]))
            })
            .collect();
        let mut want: Vec<(u64, u64, u64)> = spec["linux"][key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["containerID"].as_u64().unwrap_or(0),
                    m["hostID"].as_u64().unwrap_or(0),
                    m["size"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        got.sort();
        want.sort();
        expect_eq(&format!("idmap.{file}"), got, want);
    }
}

// ---------------------------------------------------------------- cgroups

/// Find a cgroup v1 controller file for this process: the container's own
/// cgroup may be the root of the in-container mount (as runc does) or a
/// sub-directory of it (with a mount of the whole hierarchy).
fn cgroup_v1_file(controller: &str, file: &str) -> Option<String> {
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut rel = String::new();
    let mut dirs = vec![controller.to_string()];
    for l in own.lines() {
        let parts: Vec<&str> = l.splitn(3, ':').collect();
        if parts.len() == 3 && parts[1].split(',').any(|c| c == controller) {
            rel = parts[2].to_string();
            dirs.push(parts[1].to_string());
        }
    }
    for d in &dirs {
        for sub in [rel.as_str(), ""] {
            let p = format!(
                "/sys/fs/cgroup/{d}{}/{file}",
                if sub == "/" { "" } else { sub }
            );
            if let Ok(v) = fs::read_to_string(&p) {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

fn check_cgroup(spec: &Value) {
    let r = &spec["linux"]["resources"];
    let v2 = !std::path::Path::new("/sys/fs/cgroup/memory").exists()
        && std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let expect = |name: &str, ctrl: &str, file_v1: &str, file_v2: &str, want: Option<String>| {
        let Some(want) = want else { return };
        let got = if v2 {
            fs::read_to_string(format!("/sys/fs/cgroup/{file_v2}"))
                .ok()
                .map(|s| s.trim().to_string())
        } else {
            cgroup_v1_file(ctrl, file_v1)
        };
        report(
            &format!("cgroup.{name}"),
            got.as_deref() == Some(want.as_str()),
            format!("got {got:?}, want {want:?}"),
        );
    };
    let num = |v: &Value| v.as_i64().map(|n| n.to_string());
    if v2 {
        expect(
            "memory.limit",
            "memory",
            "",
            "memory.max",
            num(&r["memory"]["limit"]),
        );
        expect(
            "pids.limit",
            "pids",
            "",
            "pids.max",
            num(&r["pids"]["limit"]),
        );
        if let (Some(q), Some(p)) = (r["cpu"]["quota"].as_i64(), r["cpu"]["period"].as_u64()) {
            expect("cpu.quota", "cpu", "", "cpu.max", Some(format!("{q} {p}")));
        }
    } else {
        expect(
            "memory.limit",
            "memory",
            "memory.limit_in_bytes",
            "",
            num(&r["memory"]["limit"]),
        );
        expect(
            "pids.limit",
            "pids",
            "pids.max",
            "",
            num(&r["pids"]["limit"]),
        );
        expect(
            "cpu.shares",
            "cpu",
            "cpu.shares",
            "",
            num(&r["cpu"]["shares"]),
        );
        expect(
            "cpu.quota",
            "cpu",
            "cpu.cfs_quota_us",
            "",
            num(&r["cpu"]["quota"]),
        );
        expect(
            "cpu.period",
            "cpu",
            "cpu.cfs_period_us",
            "",
            num(&r["cpu"]["period"]),
        );
    }
    expect(
        "cpuset.cpus",
        "cpuset",
        "cpuset.cpus",
        "cpuset.cpus",
        r["cpu"]["cpus"].as_str().map(String::from),
    );
}

// ---------------------------------------------------------------- terminal

fn check_terminal(spec: &Value) {
    for fd in 0..3 {
        expect_eq(
            &format!("terminal.isatty({fd})"),
            unsafe { libc::isatty(fd) },
            1,
        );
    }
    if let (Some(h), Some(w)) = (
        spec["process"]["consoleSize"]["height"].as_u64(),
        spec["process"]["consoleSize"]["width"].as_u64(),
    ) {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) };
        expect_eq(
            "terminal.consoleSize",
            (ws.ws_row as u64, ws.ws_col as u64),
            (h, w),
        );
    }
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(0, &mut st) };
    let console = CString::new("/dev/console").unwrap();
    let mut cs: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::stat(console.as_ptr(), &mut cs) };
    report(
        "terminal./dev/console",
        r == 0 && cs.st_rdev == st.st_rdev,
        format!(
            "stat rc {r}, /dev/console rdev {:x}, stdin rdev {:x}",
            cs.st_rdev, st.st_rdev
        ),
    );
}
