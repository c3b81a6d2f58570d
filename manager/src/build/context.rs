//! The build context: the tar a client sends, unpacked into a private directory, with
//! `.dockerignore` applied; sources for COPY/ADD resolved inside it and hashed for the cache.

use super::ignore::Ignore;
use crate::errors::{Error, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A directory owned by the build, removed (with anything mounted under it) when dropped.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_tree(&self.0);
    }
}

/// Unmount whatever is mounted under `dir` (deepest first), then remove it.
pub fn remove_tree(dir: &Path) {
    if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
        let prefix = format!("{}/", dir.display());
        let mut points: Vec<&str> = m.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&prefix)).collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

pub struct Context {
    pub dir: PathBuf,
    root: OwnedFd,
}

/// Open `rel` inside the directory `root` (links followed, but never out of it).
pub fn open_in(root: &OwnedFd, rel: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    let rel = rel.trim_start_matches('/');
    let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root.as_raw_fd(), if rel.is_empty() { "." } else { rel }, how)?;
    // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The path through which a descriptor's file is reached (for std::fs walks below it).
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl Context {
    /// Unpack the context tar (plain or compressed) into `dir`. The tar crate refuses entries
    /// that would land outside `dir` (`..`, absolute paths, links climbing out).
    pub fn unpack(input: impl Read, dir: &Path) -> Result<Context> {
        std::fs::create_dir_all(dir)?;
        let dec = crate::image::layer::decompressor(std::io::BufReader::with_capacity(256 * 1024, input)).map_err(|e| Error::invalid(format!("reading the build context: {e}")))?;
        let mut a = tar::Archive::new(dec);
        a.set_preserve_permissions(true);
        a.set_preserve_mtime(true);
        a.set_unpack_xattrs(false);
        a.set_overwrite(true);
        a.unpack(dir).map_err(|e| Error::invalid(format!("unpacking the build context: {e}")))?;
        // tar pads its archive past the end marker (to 10 KiB records): read that too, or a
        // client still writing it sees the connection reset instead of our answer.
        let _ = std::io::copy(&mut a.into_inner().take(1 << 20), &mut std::io::sink());
        let root = nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).map_err(|e| Error::internal(format!("the build context: {e}")))?;
        // SAFETY: open returned a fresh descriptor that nothing else owns.
        Ok(Context { dir: dir.to_path_buf(), root: unsafe { OwnedFd::from_raw_fd(root) } })
    }

    /// A file of the context as text (the Dockerfile, .dockerignore); None if absent.
    pub fn read(&self, rel: &str) -> Result<Option<String>> {
        match open_in(&self.root, rel, OFlag::O_RDONLY) {
            Ok(fd) => {
                let mut s = String::new();
                std::fs::File::from(fd).take(16 << 20).read_to_string(&mut s).map_err(|e| Error::invalid(format!("{rel}: {e}")))?;
                Ok(Some(s))
            }
            Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(Error::invalid(format!("{rel}: {e}"))),
        }
    }

    /// Remove what `.dockerignore` excludes, so no step can see it.
    pub fn apply_ignore(&self, ig: &Ignore) -> Result<()> {
        fn walk(ig: &Ignore, base: &Path, rel: &str) -> std::io::Result<()> {
            let dir = if rel.is_empty() { base.to_path_buf() } else { base.join(rel) };
            for e in std::fs::read_dir(&dir)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let p = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                let is_dir = e.file_type()?.is_dir();
                if ig.excluded(&p) {
                    if is_dir && ig.may_reinclude_below(&p) {
                        walk(ig, base, &p)?;
                    } else if is_dir {
                        std::fs::remove_dir_all(e.path())?;
                    } else {
                        std::fs::remove_file(e.path())?;
                    }
                } else if is_dir {
                    walk(ig, base, &p)?;
                }
            }
            Ok(())
        }
        walk(ig, &self.dir, "").map_err(|e| Error::internal(format!("applying .dockerignore: {e}")))
    }

    pub fn root(&self) -> &OwnedFd {
        &self.root
    }
}

/// A source path as the Dockerfile names it, made relative to the context root; a path that
/// climbs out of the context is refused, as Docker does.
pub fn clean_source(src: &str) -> Result<String> {
    let mut parts: Vec<&str> = vec![];
    for c in src.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::invalid(format!("forbidden path outside the build context: {src}")));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's filepath.Match on '/'-separated paths: `*` and `?` stay within one segment.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), name.split('/').collect());
    p.len() == n.len() && p.iter().zip(&n).all(|(p, n)| segment_match(p.as_bytes(), n.as_bytes()))
}

/// One segment, iteratively: a `*` remembers where it was and is retried one character
/// further on a mismatch, so no pattern takes more than |p|·|s| steps.
fn segment_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if p.get(pi) == Some(&b'*') {
            star = Some((pi, si));
            pi += 1;
            continue;
        }
        if let Some(n) = one(&p[pi.min(p.len())..], s[si]) {
            pi += n;
            si += 1;
            continue;
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
}

/// Whether the pattern's first element matches `c`; its length in the pattern if so.
fn one(p: &[u8], c: u8) -> Option<usize> {
    match p.first()? {
        b'?' => Some(1),
        b'[' => {
            let Some(end) = p.iter().skip(1).position(|&x| x == b']').map(|i| i + 1) else { return (c == b'[').then_some(1) };
            let mut class = &p[1..end];
            let negate = matches!(class.first(), Some(b'^') | Some(b'!'));
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            (hit != negate).then_some(end + 1)
        }
        b'\\' if p.len() > 1 => (p[1] == c).then_some(2),
        &x => (x == c).then_some(1),
    }
}

/// Every path in the tree below `base` ('/'-separated, relative), sorted.
pub fn all_paths(base: &Path) -> Vec<String> {
    fn walk(base: &Path, rel: &str, out: &mut Vec<String>) {
        let dir = if rel.is_empty() { base.to_path_buf() } else { base.join(rel) };
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            out.push(p.clone());
            if is_dir {
                walk(base, &p, out);
            }
        }
    }
    let mut out = vec![];
    walk(base, "", &mut out);
    out.sort();
    out
}

/// What COPY --chown/--chmod make of each entry.
#[derive(Clone, Copy, Default)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: Option<u32>,
}

/// Append the tree at `fs` (not following links below it) to `b` as `arc`; `with_self`
/// false appends only what is inside a directory.
/// (`fs` itself is followed: it is a source already resolved inside its root, often a
/// `/proc/self/fd` link.)
pub fn append_tree<W: std::io::Write>(b: &mut tar::Builder<W>, fs: &Path, arc: &str, own: Owner, with_self: bool) -> std::io::Result<()> {
    append_entry(b, fs, arc, own, with_self, true)
}

fn append_entry<W: std::io::Write>(b: &mut tar::Builder<W>, fs: &Path, arc: &str, own: Owner, with_self: bool, top: bool) -> std::io::Result<()> {
    let md = if top { std::fs::metadata(fs)? } else { std::fs::symlink_metadata(fs)? };
    let mut h = tar::Header::new_gnu();
    h.set_uid(own.uid as u64);
    h.set_gid(own.gid as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_mode(own.mode.unwrap_or(md.permissions().mode() & 0o7777));
    h.set_size(0);
    let ft = md.file_type();
    if ft.is_dir() {
        if with_self {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{}/", arc.trim_end_matches('/')), std::io::empty())?;
        }
        let mut names: Vec<_> = std::fs::read_dir(fs)?.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            let child = if arc.is_empty() || arc == "." { n.to_string_lossy().into_owned() } else { format!("{}/{}", arc.trim_end_matches('/'), n.to_string_lossy()) };
            append_entry(b, &fs.join(&n), &child, own, true, false)?;
        }
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        b.append_link(&mut h, arc, std::fs::read_link(fs)?)?;
    } else if ft.is_file() {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        b.append_data(&mut h, arc, std::fs::File::open(fs)?.take(md.len()))?;
    }
    Ok(())
}

/// A content hash of the tree at `fs` for the cache: names, types, modes, sizes, link
/// targets and bytes (not times or owners, which COPY does not keep either).
pub fn hash_tree(fs: &Path, h: &mut Sha256) -> std::io::Result<()> {
    fn walk(fs: &Path, rel: &str, h: &mut Sha256) -> std::io::Result<()> {
        let md = if rel.is_empty() { std::fs::metadata(fs)? } else { std::fs::symlink_metadata(fs)? };
        let ft = md.file_type();
        h.update(format!("{rel}\0{:o}\0", md.permissions().mode() & 0o7777));
        if ft.is_dir() {
            h.update(b"d\0");
            let mut names: Vec<_> = std::fs::read_dir(fs)?.flatten().map(|e| e.file_name()).collect();
            names.sort();
            for n in names {
                walk(&fs.join(&n), &format!("{rel}/{}", n.to_string_lossy()), h)?;
            }
        } else if ft.is_symlink() {
            h.update(b"l\0");
            h.update(std::fs::read_link(fs)?.as_os_str().as_encoded_bytes());
        } else if ft.is_file() {
            h.update(format!("f{}\0", md.len()));
            let mut f = std::fs::File::open(fs)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        h.update(b"\n");
        Ok(())
    }
    walk(fs, "", h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_globs() {
        assert_eq!(clean_source("/a/./b/../c/").unwrap(), "a/c");
        assert_eq!(clean_source(".").unwrap(), "");
        assert!(clean_source("../x").is_err());
        assert!(clean_source("a/../../x").is_err());
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("d/*.txt", "d/a.txt"));
        assert!(glob_match("f?le[0-9]", "file7"));
        assert!(!glob_match("f?le[!0-9]", "file7"));
        assert!(has_glob("a*") && !has_glob("plain/path"));
        assert!(glob_match("*", "") && glob_match("a*b*c", "aXbYc") && !glob_match("a*b*c", "aXbY"));
        assert!(glob_match("\\*x", "*x") && !glob_match("\\*x", "ax"));
        // Linear, not exponential: this would never finish with naive backtracking.
        let long = "a".repeat(5000);
        assert!(!glob_match("*a*a*a*a*a*a*a*a*a*a*a*b", &long));
    }
}
