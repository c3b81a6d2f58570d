//! The standard test image, made by tools independent of berth (umoci, setcap, setfattr)
//! from the static busybox, with one of each kind of thing an unpacker can get wrong:
//!
//! layer 1 (umoci repack): busybox and symlinks to it, a hard link pair, a fifo, a char
//!   and a block device, a setuid file, a setgid dir, a sticky dir, files owned by other
//!   users, a file with a `user.*` xattr and one with `security.capability`, a deep dir,
//!   odd names (spaces, UTF-8, a 150-byte name), an empty and a 1 MiB file;
//! layer 2 (umoci repack): deletes a file and a directory (whiteouts), changes a file's
//!   content and mode, adds a file;
//! layer 3 (written here, added with `umoci raw add-layer`): replaces directory `opq`
//!   opaquely (`opq/.wh..wh..opq`) with one new file.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{cmd, run_ok};

pub const LONG_NAME_LEN: usize = 150;

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn mknod(p: &Path, kind: nix::sys::stat::SFlag, mode: u32, dev: u64) {
    nix::sys::stat::mknod(p, kind, nix::sys::stat::Mode::from_bits_truncate(mode), dev)
        .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
}

fn write(p: &Path, data: impl AsRef<[u8]>) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// Pseudo-random bytes (xorshift), so content is not trivially compressible.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn populate_layer1(r: &Path) {
    for d in ["bin", "etc", "dev", "proc", "sys", "run", "tmp", "srv/shared", "home/user", "a/b/c/d", "opq/sub", "gone/inner", "data", "files", "long"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    chmod(&r.join("bin/busybox"), 0o755);
    for a in ["sh", "ls", "cat", "true"] {
        symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    symlink("/bin/busybox", r.join("abs-link")).unwrap();
    symlink("/does/not/exist", r.join("dangling")).unwrap();
    // hard links: one pair in a dir, one across dirs
    write(&r.join("data/a"), b"shared inode\n");
    fs::hard_link(r.join("data/a"), r.join("data/b")).unwrap();
    fs::hard_link(r.join("bin/busybox"), r.join("data/bb-hardlink")).unwrap();
    // special files
    use nix::sys::stat::{makedev, SFlag};
    mknod(&r.join("run/fifo"), SFlag::S_IFIFO, 0o640, 0);
    mknod(&r.join("dev/testnull"), SFlag::S_IFCHR, 0o666, makedev(1, 3));
    mknod(&r.join("dev/testblk"), SFlag::S_IFBLK, 0o660, makedev(7, 200));
    // permission bits beyond rwx
    fs::copy("/bin/busybox", r.join("bin/suid")).unwrap();
    chmod(&r.join("bin/suid"), 0o4755);
    chmod(&r.join("srv/shared"), 0o2775);
    chmod(&r.join("tmp"), 0o1777);
    // other owners
    write(&r.join("home/user/notes.txt"), b"owned by 1000\n");
    std::os::unix::fs::chown(r.join("home/user/notes.txt"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(r.join("home/user"), Some(1000), Some(1000)).unwrap();
    chmod(&r.join("home/user"), 0o700);
    std::os::unix::fs::lchown(r.join("dangling"), Some(33), Some(33)).unwrap();
    std::os::unix::fs::chown(r.join("srv/shared"), Some(0), Some(50)).unwrap();
    // extended attributes, set by independent tools
    write(&r.join("etc/with-xattr"), b"has a user xattr\n");
    run_ok(&mut cmd("setfattr", &["-n", "user.berth.test", "-v", "hello", &r.join("etc/with-xattr").to_string_lossy()]));
    run_ok(&mut cmd("setfattr", &["-n", "user.dirattr", "-v", "0x00ff10", &r.join("srv/shared").to_string_lossy()]));
    fs::copy("/bin/busybox", r.join("bin/pinger")).unwrap();
    run_ok(&mut cmd("setcap", &["cap_net_raw,cap_net_bind_service+ep", &r.join("bin/pinger").to_string_lossy()]));
    // names and sizes
    write(&r.join("a/b/c/d/deep.txt"), b"deep\n");
    write(&r.join("files/with space.txt"), b"space\n");
    write(&r.join("files/ünïcødé ✓"), b"utf-8\n");
    write(&r.join("long").join("L".repeat(LONG_NAME_LEN)), b"long name\n");
    write(&r.join("files/empty"), b"");
    write(&r.join("files/noise.bin"), noise(1 << 20, 42));
    // to be changed or deleted by later layers
    write(&r.join("etc/to-delete"), b"deleted in layer 2\n");
    write(&r.join("gone/inner/file"), b"whole dir deleted in layer 2\n");
    write(&r.join("etc/changed"), b"version 1\n");
    write(&r.join("opq/old"), b"hidden by the opaque dir in layer 3\n");
    write(&r.join("opq/sub/older"), b"hidden too\n");
    write(&r.join("etc/hostname"), b"berth-test\n");
}

fn change_layer2(r: &Path) {
    fs::remove_file(r.join("etc/to-delete")).unwrap();
    fs::remove_dir_all(r.join("gone")).unwrap();
    fs::write(r.join("etc/changed"), b"version 2, longer than before\n").unwrap();
    chmod(&r.join("etc/changed"), 0o600);
    write(&r.join("etc/added"), b"added in layer 2\n");
}

fn layer3() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("opq/", tar::EntryType::Directory, 0o755, b"");
    add("opq/.wh..wh..opq", tar::EntryType::Regular, 0o644, b"");
    add("opq/fresh", tar::EntryType::Regular, 0o644, b"the only file in opq\n");
    b.into_inner().unwrap()
}

/// Makes the standard test image as `<layout>:<tag>` (a new OCI layout), using `work` as
/// scratch space. Returns the layout path.
pub fn standard_image(layout: &Path, tag: &str, work: &Path) -> PathBuf {
    let l = layout.to_string_lossy().into_owned();
    let image = format!("{l}:{tag}");
    let bundle = work.join("bundle");
    let b = bundle.to_string_lossy().into_owned();
    fs::create_dir_all(work).unwrap();
    run_ok(&mut cmd("umoci", &["init", "--layout", &l]));
    run_ok(&mut cmd("umoci", &["new", "--image", &image]));
    run_ok(&mut cmd(
        "umoci",
        &["config", "--image", &image, "--config.cmd", "/bin/sh", "--config.env", "PATH=/bin", "--config.workingdir", "/"],
    ));
    run_ok(&mut cmd("umoci", &["unpack", "--image", &image, &b]));
    populate_layer1(&bundle.join("rootfs"));
    run_ok(&mut cmd("umoci", &["repack", "--refresh-bundle", "--history.created_by", "layer 1", "--image", &image, &b]));
    change_layer2(&bundle.join("rootfs"));
    run_ok(&mut cmd("umoci", &["repack", "--refresh-bundle", "--history.created_by", "layer 2", "--image", &image, &b]));
    let l3 = work.join("layer3.tar");
    fs::write(&l3, layer3()).unwrap();
    run_ok(&mut cmd(
        "umoci",
        &["raw", "add-layer", "--history.created_by", "layer 3 (opaque dir)", "--image", &image, &l3.to_string_lossy()],
    ));
    run_ok(&mut cmd("umoci", &["gc", "--layout", &l]));
    fs::remove_dir_all(&bundle).unwrap();
    layout.to_path_buf()
}

/// A second, small image with content of its own (so no layer is shared with the
/// standard one): busybox-free, one layer with a 2 MiB file seeded by `seed`.
pub fn small_image(layout: &Path, tag: &str, seed: u64) -> String {
    let mut t = super::oci::RawTar::new();
    t.dir("etc/", 0o755)
        .file("etc/small", format!("small image {seed}\n").as_bytes())
        .dir("blob/", 0o755)
        .file("blob/noise", &noise(2 << 20, seed));
    super::oci::write_layout(layout, tag, &[t.finish()])
}

/// `umoci unpack` of `<layout>:<tag>` into `bundle`; returns the rootfs path.
pub fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    run_ok(&mut cmd(
        "umoci",
        &["unpack", "--image", &format!("{}:{tag}", layout.display()), &bundle.to_string_lossy()],
    ));
    bundle.join("rootfs")
}

/// The busybox applets the container tests call, as symlinks in /bin.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "id", "hostname", "ps", "grep", "ls", "top", "env", "unshare",
    "stty", "tty", "true", "false", "wc", "head", "tail", "pwd", "touch", "kill", "mkdir", "rm",
    "seq", "test", "[", "printf", "readlink", "stat", "mount", "whoami", "date", "tr",
    "httpd", "wget", "nslookup", "ip", "timeout", "nc",
];

/// A one-layer busybox image as `<layout>:<tag>` (a new OCI layout), made with umoci from
/// the host's static /bin/busybox: the applets in [`BUSYBOX_APPLETS`], root and nobody in
/// /etc/passwd, `CMD ["sh"]`, `PATH` set. `work` is scratch space. Returns the layout path.
pub fn busybox_image(layout: &Path, tag: &str, work: &Path) -> PathBuf {
    let l = layout.to_string_lossy().into_owned();
    let image = format!("{l}:{tag}");
    let bundle = work.join("bb-bundle");
    let b = bundle.to_string_lossy().into_owned();
    fs::create_dir_all(work).unwrap();
    run_ok(&mut cmd("umoci", &["init", "--layout", &l]));
    run_ok(&mut cmd("umoci", &["new", "--image", &image]));
    run_ok(&mut cmd(
        "umoci",
        &[
            "config", "--image", &image, "--config.cmd", "sh",
            "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--config.workingdir", "/",
        ],
    ));
    run_ok(&mut cmd("umoci", &["unpack", "--image", &image, &b]));
    let r = bundle.join("rootfs");
    for d in ["bin", "etc", "dev", "proc", "sys", "run", "tmp", "root", "home", "var/tmp"] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    chmod(&r.join("tmp"), 0o1777);
    chmod(&r.join("var/tmp"), 0o1777);
    fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
    chmod(&r.join("bin/busybox"), 0o755);
    for a in BUSYBOX_APPLETS {
        symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    write(&r.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n");
    write(&r.join("etc/group"), b"root:x:0:\nnogroup:x:65534:\n");
    run_ok(&mut cmd("umoci", &["repack", "--refresh-bundle", "--history.created_by", "busybox", "--image", &image, &b]));
    run_ok(&mut cmd("umoci", &["gc", "--layout", &l]));
    fs::remove_dir_all(&bundle).unwrap();
    layout.to_path_buf()
}
