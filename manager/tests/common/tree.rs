//! A filesystem tree as data, for comparing what berth unpacked with what umoci unpacked:
//! path, type, permission bits (setuid/setgid/sticky included), owner, symlink target,
//! content digest, device numbers, extended attributes (security.capability included),
//! regular files' mtime, and which paths are hard links of one another.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Char,
    Block,
    Socket,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// st_mode & 0o7777
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub link: Option<PathBuf>,
    /// (major, minor) of a device node
    pub dev: Option<(u64, u64)>,
    /// regular files only: directories' times change as later layers add to them
    pub mtime: Option<i64>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct Tree {
    /// relative path -> node; the root itself is not included
    pub nodes: BTreeMap<PathBuf, Node>,
    /// groups of two or more paths that are one inode (hard links)
    pub links: BTreeSet<BTreeSet<PathBuf>>,
}

impl Tree {
    pub fn get(&self, p: &str) -> Option<&Node> {
        self.nodes.get(Path::new(p))
    }
    /// Names directly inside directory `p`.
    pub fn children(&self, p: &str) -> Vec<String> {
        let p = Path::new(p);
        self.nodes
            .keys()
            .filter(|k| k.parent() == Some(p))
            .map(|k| k.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }
}

pub fn major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfffu64)
}
pub fn minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xffu64)
}

/// Extended attributes of `path` itself (not following a symlink). overlayfs' own
/// `trusted.overlay.*` attributes are left out.
pub fn xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path; a null buffer with size 0 asks for the size.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n <= 0 {
        return out;
    }
    let mut names = vec![0u8; n as usize + 256];
    // SAFETY: names is writable for names.len() bytes.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return out;
    }
    for name in names[..n as usize].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let key = String::from_utf8_lossy(name).into_owned();
        if key.starts_with("trusted.overlay.") {
            continue;
        }
        let cname = CString::new(name).unwrap();
        // SAFETY: both strings are NUL-terminated; size query with a null buffer.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            continue;
        }
        let mut val = vec![0u8; len as usize + 64];
        // SAFETY: val is writable for val.len() bytes.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if len < 0 {
            continue;
        }
        val.truncate(len as usize);
        out.insert(key, val);
    }
    out
}

pub fn scan(root: &Path) -> Tree {
    let mut tree = Tree::default();
    let mut inodes: HashMap<(u64, u64), BTreeSet<PathBuf>> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let rd = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in rd {
            let entry = entry.unwrap();
            let path = entry.path();
            let r = rel.join(entry.file_name());
            let md = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                Kind::Dir
            } else if ft.is_file() {
                Kind::File
            } else if ft.is_symlink() {
                Kind::Symlink
            } else if ft.is_fifo() {
                Kind::Fifo
            } else if ft.is_char_device() {
                Kind::Char
            } else if ft.is_block_device() {
                Kind::Block
            } else {
                Kind::Socket
            };
            let node = Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: (kind == Kind::File).then_some(md.len()),
                sha256: (kind == Kind::File).then(|| {
                    super::sha256_hex(&fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
                }),
                link: (kind == Kind::Symlink).then(|| fs::read_link(&path).unwrap()),
                dev: matches!(kind, Kind::Char | Kind::Block).then(|| (major(md.rdev()), minor(md.rdev()))),
                mtime: (kind == Kind::File).then(|| md.mtime()),
                xattrs: xattrs(&path),
            };
            if kind != Kind::Dir && md.nlink() > 1 {
                inodes.entry((md.dev(), md.ino())).or_default().insert(r.clone());
            }
            if kind == Kind::Dir {
                stack.push(r.clone());
            }
            tree.nodes.insert(r, node);
        }
    }
    tree.links = inodes.into_values().filter(|s| s.len() > 1).collect();
    tree
}

/// Differences between two trees, one line each (empty when they are the same).
pub fn diff(want: &Tree, got: &Tree, want_name: &str, got_name: &str) -> Vec<String> {
    let mut d = Vec::new();
    for (p, w) in &want.nodes {
        match got.nodes.get(p) {
            None => d.push(format!("{}: in {want_name}, missing in {got_name}", p.display())),
            Some(g) if g != w => {
                let mut what = Vec::new();
                if g.kind != w.kind {
                    what.push(format!("type {:?} != {:?}", g.kind, w.kind));
                }
                if g.mode != w.mode {
                    what.push(format!("mode {:o} != {:o}", g.mode, w.mode));
                }
                if (g.uid, g.gid) != (w.uid, w.gid) {
                    what.push(format!("owner {}:{} != {}:{}", g.uid, g.gid, w.uid, w.gid));
                }
                if g.size != w.size || g.sha256 != w.sha256 {
                    what.push(format!("content ({:?} bytes) != ({:?} bytes)", g.size, w.size));
                }
                if g.link != w.link {
                    what.push(format!("symlink {:?} != {:?}", g.link, w.link));
                }
                if g.dev != w.dev {
                    what.push(format!("device {:?} != {:?}", g.dev, w.dev));
                }
                if g.mtime != w.mtime {
                    what.push(format!("mtime {:?} != {:?}", g.mtime, w.mtime));
                }
                if g.xattrs != w.xattrs {
                    what.push(format!("xattrs {:?} != {:?}", show(&g.xattrs), show(&w.xattrs)));
                }
                d.push(format!("{}: {got_name} vs {want_name}: {}", p.display(), what.join("; ")));
            }
            Some(_) => {}
        }
    }
    for p in got.nodes.keys().filter(|p| !want.nodes.contains_key(*p)) {
        d.push(format!("{}: in {got_name}, not in {want_name}", p.display()));
    }
    for l in &want.links {
        if !got.links.contains(l) {
            d.push(format!("hard links {l:?} of {want_name} are not one inode in {got_name}"));
        }
    }
    for l in &got.links {
        if !want.links.contains(l) {
            d.push(format!("hard links {l:?} in {got_name} are not so in {want_name}"));
        }
    }
    d
}

fn show(x: &BTreeMap<String, Vec<u8>>) -> BTreeMap<&str, String> {
    x.iter()
        .map(|(k, v)| {
            let s = match std::str::from_utf8(v) {
                Ok(s) if !s.contains('\0') => s.to_string(),
                _ => format!("0x{}", hex::encode(v)),
            };
            (k.as_str(), s)
        })
        .collect()
}
