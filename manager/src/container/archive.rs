//! The archive API behind `docker cp`: stat a path, read it as a tar, extract a tar into a
//! directory. Every path is resolved inside the container's root with `RESOLVE_IN_ROOT` and
//! walked by file descriptor without following links, so a link in the container can never
//! make berthd read or write the host (the CVE-2018-15664 and CVE-2019-14271 classes). A running
//! container is reached through `/proc/<pid>/root`, its own mount namespace's view (volumes and
//! binds included); a stopped one through its layers, mounted for the time it takes.

use super::record::Status;
use super::ContainerService;
use crate::errors::{Error, Result};
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};
use std::ffi::{CStr, CString};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;

/// Docker's `X-Docker-Container-Path-Stat` (Go's `os.FileMode` bits in `mode`).
#[derive(serde::Serialize, Debug)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

fn go_mode(st: &FileStat) -> u32 {
    let perm = st.st_mode & 0o777;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let mut m = perm;
    m |= match kind {
        SFlag::S_IFDIR => 1 << 31,
        SFlag::S_IFLNK => 1 << 27,
        SFlag::S_IFIFO => 1 << 25,
        SFlag::S_IFSOCK => 1 << 24,
        SFlag::S_IFBLK => 1 << 26,
        SFlag::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    if st.st_mode & 0o4000 != 0 {
        m |= 1 << 23;
    }
    if st.st_mode & 0o2000 != 0 {
        m |= 1 << 22;
    }
    if st.st_mode & 0o1000 != 0 {
        m |= 1 << 20;
    }
    m
}

fn nerr(path: &str, container: &str, e: nix::Error) -> Error {
    match e {
        nix::errno::Errno::ENOENT => Error::not_found(format!("Could not find the file {path} in container {container}")),
        nix::errno::Errno::ENOTDIR => Error::invalid(format!("{path}: not a directory")),
        nix::errno::Errno::EROFS => Error::new(crate::errors::Kind::Forbidden, format!("container rootfs is marked read-only: {path}")),
        e => Error::internal(format!("{path}: {e}")),
    }
}

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: every caller passes a fresh fd from openat/openat2 that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `path` split into its parent directory (opened inside `root`) and its last component.
fn parent_and_name(root: RawFd, path: &str, container: &str) -> Result<(OwnedFd, CString, String)> {
    let p = path.trim_end_matches('/');
    let (dir, name) = match p.rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
        None => ("/", p),
    };
    let (name, base) = if name.is_empty() || name == "." { (".", if p.is_empty() { "/".to_string() } else { ".".to_string() }) } else { (name, name.to_string()) };
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let rel = dir.trim_start_matches('/');
    let d = openat2(root, if rel.is_empty() { "." } else { rel }, how).map_err(|e| nerr(path, container, e))?;
    Ok((own(d), CString::new(name).map_err(|_| Error::invalid("path with a NUL byte"))?, base))
}

fn stat_at(dir: RawFd, name: &CStr) -> nix::Result<FileStat> {
    fstatat(Some(dir), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn header(st: &FileStat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Append `dir/name` (and, for a directory, everything beneath) as `arc`.
fn append<W: Write>(b: &mut tar::Builder<W>, dir: RawFd, name: &CStr, arc: &str, depth: usize) -> std::io::Result<()> {
    if depth > 512 {
        return Err(std::io::Error::other("directories nested too deep"));
    }
    let st = stat_at(dir, name)?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    match kind {
        SFlag::S_IFREG => {
            let fd = own(openat(Some(dir), name, OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?);
            let f = std::fs::File::from(fd);
            let mut h = header(&st, tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            b.append_data(&mut h, arc, f.take(st.st_size as u64))?;
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(Some(dir), name)?;
            let mut h = header(&st, tar::EntryType::Symlink);
            b.append_link(&mut h, arc, target)?;
        }
        SFlag::S_IFDIR => {
            let mut h = header(&st, tar::EntryType::Directory);
            b.append_data(&mut h, format!("{}/", arc.trim_end_matches('/')), std::io::empty())?;
            let fd = own(openat(Some(dir), name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?);
            let mut d = nix::dir::Dir::from_fd(fd.as_raw_fd()).map_err(std::io::Error::from)?;
            std::mem::forget(fd); // Dir owns it now
            let mut names: Vec<CString> = d.iter().flatten().map(|e| e.file_name().to_owned()).filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..").collect();
            names.sort();
            for n in names {
                let child = format!("{}/{}", arc.trim_end_matches('/'), n.to_string_lossy());
                append(b, d.as_raw_fd(), &n, &child, depth + 1)?;
            }
        }
        SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
            let t = match kind {
                SFlag::S_IFCHR => tar::EntryType::Char,
                SFlag::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            };
            let mut h = header(&st, t);
            let _ = h.set_device_major(nix::sys::stat::major(st.st_rdev) as u32);
            let _ = h.set_device_minor(nix::sys::stat::minor(st.st_rdev) as u32);
            b.append_data(&mut h, arc, std::io::empty())?;
        }
        _ => {} // sockets are not content
    }
    Ok(())
}

/// The container's root for one archive operation; a temporary mount is undone on drop.
struct Root {
    fd: std::fs::File,
    mounted: Option<PathBuf>,
}

impl Drop for Root {
    fn drop(&mut self) {
        if let Some(t) = self.mounted.take() {
            let _ = nix::mount::umount2(&t, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&t);
        }
    }
}

impl ContainerService {
    fn archive_root(&self, id: &str) -> Result<Root> {
        let rec = self.get(id)?;
        if rec.state.status.is_live() && rec.state.pid > 0 {
            let fd = std::fs::File::open(format!("/proc/{}/root", rec.state.pid)).map_err(|e| Error::internal(format!("the container's root: {e}")))?;
            return Ok(Root { fd, mounted: None });
        }
        // Stopped: its layers, writable (cp into a stopped container lands in its upper dir).
        let img = self.images.get_record(&rec.image_id).map_err(|_| Error::not_found(format!("image {} of container {} is gone", rec.image_id, rec.name)))?;
        let top = img.chain_ids.last().ok_or_else(|| Error::invalid("the image has no layers"))?;
        let lowers = self.images.snapshots.lowers(&self.store, top)?;
        let data = self.data_dir(id);
        let t = self.run_dir(id).join(format!("cp-{}", crate::content::random_hex(4)));
        std::fs::create_dir_all(&t)?;
        let lower = lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        let opts = format!("lowerdir={lower},upperdir={},workdir={}", data.join("upper").display(), data.join("work").display());
        nix::mount::mount(Some("overlay"), &t, Some("overlay"), nix::mount::MsFlags::empty(), Some(opts.as_str())).map_err(|e| Error::internal(format!("mounting the container's layers: {e}")))?;
        let root = Root { fd: std::fs::File::open(&t)?, mounted: Some(t) };
        Ok(root)
    }

    /// Run `f` on the container's root with its lifecycle lock held (no start or removal
    /// can interleave with a temporary mount).
    async fn with_root<T: Send + 'static>(self: &Arc<Self>, name: &str, f: impl FnOnce(&ContainerService, &Root, &str) -> Result<T> + Send + 'static) -> Result<T> {
        let rec = self.find(name)?;
        let lock = self.lock_for(&rec.id);
        let _g = lock.lock().await;
        if rec.state.status == Status::Removing {
            return Err(Error::conflict(format!("container {} is being removed", rec.name)));
        }
        let svc = self.clone();
        let id = rec.id.clone();
        let cname = rec.name.clone();
        tokio::task::spawn_blocking(move || {
            let root = svc.archive_root(&id)?;
            f(&svc, &root, &cname)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?
    }

    /// HEAD /containers/{id}/archive: the path's stat, without following a final link.
    pub async fn path_stat(self: &Arc<Self>, name: &str, path: &str) -> Result<PathStat> {
        let path = path.to_string();
        self.with_root(name, move |_, root, cname| stat_path(root.fd.as_raw_fd(), &path, cname)).await
    }

    /// GET /containers/{id}/archive: the stat, then the tar written to `out` (on the blocking
    /// thread, as it is read).
    pub async fn read_archive(self: &Arc<Self>, name: &str, path: &str, out: impl Write + Send + 'static, stat_tx: tokio::sync::oneshot::Sender<Result<PathStat>>) -> Result<()> {
        let path = path.to_string();
        self.with_root(name, move |_, root, cname| {
            let st = match stat_path(root.fd.as_raw_fd(), &path, cname) {
                Ok(s) => s,
                Err(e) => {
                    let msg = e.message.clone();
                    let _ = stat_tx.send(Err(e));
                    return Err(Error::invalid(msg));
                }
            };
            let base = st.name.clone();
            let _ = stat_tx.send(Ok(st));
            let (dir, cname_c, _) = parent_and_name(root.fd.as_raw_fd(), &path, cname)?;
            let mut b = tar::Builder::new(out);
            append(&mut b, dir.as_raw_fd(), &cname_c, &base, 0).and_then(|_| b.finish()).map_err(|e| Error::internal(format!("archive of {path}: {e}")))
        })
        .await
    }

    /// PUT /containers/{id}/archive: extract `tar` into the directory `path`; with
    /// `copy_uid_gid` (docker cp -a) everything is owned by the container's user.
    pub async fn extract_archive(self: &Arc<Self>, name: &str, path: &str, tar: impl Read + Send + 'static, copy_uid_gid: bool) -> Result<()> {
        let path = path.to_string();
        let user = self.find(name)?.config.user.clone().unwrap_or_default();
        self.with_root(name, move |_, root, cname| {
            let owner = if copy_uid_gid {
                let u = super::spec::resolve_user(&PathBuf::from(format!("/proc/self/fd/{}", root.fd.as_raw_fd())), &user, &[])?;
                Some((u.uid, u.gid))
            } else {
                None
            };
            let how = OpenHow::new().flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            let rel = path.trim_start_matches('/');
            let dir = own(openat2(root.fd.as_raw_fd(), if rel.is_empty() { "." } else { rel }, how).map_err(|e| nerr(&path, cname, e))?);
            // The directory by its fd: the applier resolves every entry inside it, so the
            // tar cannot climb out of it, whatever links the container holds.
            let at = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
            let bad = |e: &dyn std::fmt::Display| Error::invalid(format!("extracting into {path}: {e}"));
            match owner {
                None => {
                    crate::snapshot::apply::extract_plain(tar, &at).map_err(|e| bad(&e))?;
                }
                Some(o) => {
                    let (reader, writer) = std::io::pipe()?;
                    std::thread::scope(|sc| -> Result<()> {
                        let t = sc.spawn(move || rewrite_owner(tar, writer, o));
                        let applied = crate::snapshot::apply::extract_plain(reader, &at);
                        // A tar the rewriter could not read is an error even if what it
                        // passed on applied cleanly.
                        let rewritten = t.join().map_err(|_| Error::internal("the tar rewriter panicked"))?;
                        applied.map_err(|e| bad(&e))?;
                        rewritten.map_err(|e| bad(&e))
                    })?;
                }
            }
            Ok(())
        })
        .await
    }
}

/// Copy a tar with every entry owned by `owner` (uid, gid).
fn rewrite_owner(input: impl Read, out: impl Write, owner: (u32, u32)) -> std::io::Result<()> {
    let mut a = tar::Archive::new(input);
    let mut b = tar::Builder::new(out);
    for e in a.entries()? {
        let mut e = e?;
        let mut h = e.header().clone();
        h.set_uid(owner.0 as u64);
        h.set_gid(owner.1 as u64);
        let path = e.path()?.into_owned();
        match e.header().entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e.link_name()?.map(|l| l.into_owned()).unwrap_or_default();
                b.append_link(&mut h, &path, target)?;
            }
            _ => b.append_data(&mut h, &path, &mut e)?,
        }
    }
    b.finish()
}

fn stat_path(root: RawFd, path: &str, cname: &str) -> Result<PathStat> {
    let (dir, name, base) = parent_and_name(root, path, cname)?;
    let st = stat_at(dir.as_raw_fd(), &name).map_err(|e| nerr(path, cname, e))?;
    let link_target = if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK {
        nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_c_str()).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default()
    } else {
        String::new()
    };
    let mtime = chrono::DateTime::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)).unwrap_or_default();
    Ok(PathStat { name: base, size: st.st_size, mode: go_mode(&st), mtime, link_target })
}
