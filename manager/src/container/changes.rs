//! A container's own changes: `diff` (its overlay upper directory against the image),
//! `commit` (those changes as a new layer and image) and `export` (its whole filesystem).

use super::record::ContainerRecord;
use super::ContainerService;
use crate::errors::{Error, Result};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Docker's change kinds (`GET /containers/{id}/changes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

#[derive(Clone, Debug)]
pub struct Change {
    /// Relative to the root, no leading `/`.
    pub path: String,
    pub kind: Kind,
    /// An opaque directory (overlay's `trusted.overlay.opaque`): its lower content is gone.
    pub opaque: bool,
}

/// Mount points the runtime makes in every container's upper directory; Docker keeps them in
/// a hidden init layer, so they are no change of the container's own.
const MOUNTPOINTS: &[&str] = &["dev", "proc", "sys", "dev/shm", "dev/pts", "dev/mqueue", "dev/console", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab", ".dockerenv", "sbin/docker-init"];

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let mut buf = [0u8; 4];
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: lgetxattr reads at most buf.len() bytes into buf; c and the name are NUL-terminated.
    let n = unsafe { libc::lgetxattr(c.as_ptr(), c"trusted.overlay.opaque".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    n == 1 && buf[0] == b'y'
}

/// Walk `upper/rel` (sorted), appending changes; true if anything beneath was reported.
fn walk(upper: &Path, lowers: &[PathBuf], rel: &str, out: &mut Vec<Change>) -> std::io::Result<bool> {
    let mut names: Vec<String> = std::fs::read_dir(upper.join(rel))?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut any = false;
    for n in names {
        let p = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
        let full = upper.join(&p);
        let md = std::fs::symlink_metadata(&full)?;
        if is_whiteout(&md) {
            out.push(Change { path: p, kind: Kind::Deleted, opaque: false });
            any = true;
            continue;
        }
        let lower = lowers.iter().find_map(|l| std::fs::symlink_metadata(l.join(&p)).ok());
        if MOUNTPOINTS.contains(&p.as_str()) && (md.is_dir() || md.len() == 0) {
            continue;
        }
        if md.is_dir() {
            let at = out.len();
            let opaque = is_opaque(&full);
            let beneath = walk(upper, lowers, &p, out)?;
            let kind = match &lower {
                None => Some(Kind::Added),
                Some(l) if opaque || beneath || l.mode() != md.mode() || l.uid() != md.uid() || l.gid() != md.gid() => Some(Kind::Modified),
                Some(_) => None,
            };
            if let Some(kind) = kind {
                out.insert(at, Change { path: p, kind, opaque });
                any = true;
            }
        } else {
            out.push(Change { path: p, kind: if lower.is_some() { Kind::Modified } else { Kind::Added }, opaque: false });
            any = true;
        }
    }
    Ok(any)
}

/// A file's extended attributes as PAX records (`SCHILY.xattr.NAME`), overlay's own left out:
/// file capabilities (`security.capability`) and ACLs survive a commit.
fn xattrs_of(p: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return vec![] };
    let mut names = vec![0u8; 4096];
    // SAFETY: llistxattr writes at most names.len() bytes into names; c is NUL-terminated.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return vec![];
    }
    let mut out = vec![];
    for name in names[..n as usize].split(|b| *b == 0).filter(|n| !n.is_empty() && !n.starts_with(b"trusted.overlay.")) {
        let Ok(cn) = std::ffi::CString::new(name) else { continue };
        let mut val = vec![0u8; 64 * 1024];
        // SAFETY: lgetxattr writes at most val.len() bytes into val; both strings are NUL-terminated.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if m >= 0 {
            val.truncate(m as usize);
            out.push((format!("SCHILY.xattr.{}", String::from_utf8_lossy(name)), val));
        }
    }
    out
}

/// The layer tar for `changes` (OCI whiteouts: `.wh.NAME`, `.wh..wh..opq`).
fn write_layer(upper: &Path, changes: &[Change], w: impl Write) -> std::io::Result<()> {
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    let empty = |name: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(0);
        h.set_mode(0o600);
        h.set_mtime(0);
        let _ = h.set_path(name);
        h.set_cksum();
        h
    };
    for c in changes {
        if c.kind == Kind::Deleted {
            let (dir, name) = c.path.rsplit_once('/').map(|(d, n)| (format!("{d}/"), n)).unwrap_or((String::new(), c.path.as_str()));
            let path = format!("{dir}.wh.{name}");
            b.append_data(&mut empty(&path), &path, std::io::empty())?;
            continue;
        }
        let full = upper.join(&c.path);
        let xattrs = xattrs_of(&full);
        if !xattrs.is_empty() {
            b.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        b.append_path_with_name(&full, &c.path)?;
        if c.opaque {
            let path = format!("{}/.wh..wh..opq", c.path);
            b.append_data(&mut empty(&path), &path, std::io::empty())?;
        }
    }
    b.finish()
}

/// The changes in `upper` (an overlay upper directory over `lowers`) as a layer on top of
/// `parent`: a new image. The tar is produced on a thread of its own and consumed as written.
pub(crate) fn commit_upper(images: &crate::image::ImageService, parent: &crate::image::ImageRecord, upper: &Path, lowers: &[PathBuf], info: crate::image::CommitInfo) -> Result<String> {
    let mut list = vec![];
    walk(upper, lowers, "", &mut list)?;
    let upper = upper.to_path_buf();
    let (reader, writer) = std::io::pipe()?;
    let producer = std::thread::spawn(move || write_layer(&upper, &list, writer));
    let res = images.commit_layer(parent, reader, info);
    let produced = producer.join().map_err(|_| Error::internal("commit: the layer writer panicked"))?;
    let image = res?;
    produced.map_err(|e| Error::internal(format!("commit: writing the layer: {e}")))?;
    Ok(image)
}

impl ContainerService {
    pub(crate) fn image_lowers(&self, rec: &ContainerRecord) -> Result<Vec<PathBuf>> {
        let img = self.images.get_record(&rec.image_id).map_err(|_| Error::not_found(format!("image {} of container {} is gone", rec.image_id, rec.name)))?;
        match img.chain_ids.last() {
            Some(top) => self.images.snapshots.lowers(&self.store, top),
            None => Ok(vec![]),
        }
    }

    /// `diff`: what the container changed, sorted by path.
    pub fn changes(&self, name: &str) -> Result<Vec<Change>> {
        let rec = self.find(name)?;
        let lowers = self.image_lowers(&rec)?;
        let mut out = vec![];
        walk(&self.data_dir(&rec.id).join("upper"), &lowers, "", &mut out)?;
        Ok(out)
    }

    /// `commit`: the container's changes as a new image on top of its own; paused meanwhile
    /// (Docker's default) so the layer is consistent.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(self: &Arc<Self>, name: &str, repo: Option<String>, tag: Option<String>, comment: String, author: String, changes: Vec<String>, pause: bool, config: Option<serde_json::Value>) -> Result<String> {
        let rec = self.find(name)?;
        let paused = pause && rec.state.status == super::record::Status::Running;
        if paused {
            self.pause(&rec.id, true).await?;
        }
        let svc = self.clone();
        let id = rec.id.clone();
        let res = tokio::task::spawn_blocking(move || svc.commit_blocking(&id, repo, tag, comment, author, changes, config)).await.map_err(|e| Error::internal(e.to_string()))?;
        if paused {
            self.pause(&rec.id, false).await?;
        }
        let image = res?;
        let mut attrs = std::collections::HashMap::new();
        attrs.insert("comment".to_string(), String::new());
        attrs.insert("imageID".to_string(), image.clone());
        self.events.publish("container", "commit", &rec.id, attrs);
        Ok(image)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_blocking(&self, id: &str, repo: Option<String>, tag: Option<String>, comment: String, author: String, changes: Vec<String>, config: Option<serde_json::Value>) -> Result<String> {
        let rec = self.get(id)?;
        let parent = self.images.get_record(&rec.image_id).map_err(|_| Error::not_found(format!("image {} of container {} is gone", rec.image_id, rec.name)))?;
        let mut cfg = serde_json::to_value(&rec.config).map_err(|e| Error::internal(e.to_string()))?;
        if let (Some(serde_json::Value::Object(over)), Some(base)) = (config, cfg.as_object_mut()) {
            for (k, v) in over {
                base.insert(k, v);
            }
        }
        let created_by = std::iter::once(rec.path.as_str()).chain(rec.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
        let info = crate::image::CommitInfo { config: cfg, changes: &changes, author: &author, comment: &comment, created_by: &created_by, repo: repo.as_deref(), tag: tag.as_deref() };
        let lowers = self.image_lowers(&rec)?;
        let image = commit_upper(&self.images, &parent, &self.data_dir(id).join("upper"), &lowers, info)?;
        Ok(image)
    }

    /// `export`: the container's root filesystem as a tar, written to `out`. A stopped
    /// container's layers are mounted read-only for the time it takes.
    pub fn export(&self, name: &str, out: impl Write) -> Result<()> {
        let rec = self.find(name)?;
        let running = self.run_dir(&rec.id).join("rootfs");
        let (root, temp) = if crate::snapshot::is_mountpoint(&running) {
            (running, None)
        } else {
            let mut lowers = vec![self.data_dir(&rec.id).join("upper")];
            lowers.extend(self.image_lowers(&rec)?);
            let t = self.run_dir(&rec.id).join(format!("export-{}", crate::content::random_hex(4)));
            crate::snapshot::mount_readonly(&lowers, &t)?;
            (t.clone(), Some(t))
        };
        let res = (|| -> std::io::Result<()> {
            let mut b = tar::Builder::new(out);
            b.follow_symlinks(false);
            b.append_dir_all(".", &root)?;
            b.finish()
        })();
        if let Some(t) = temp {
            let _ = crate::snapshot::unmount(&t);
            let _ = std::fs::remove_dir(&t);
        }
        res.map_err(|e| Error::internal(format!("export: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_against_lowers_and_the_layer_tar() {
        let t = std::env::temp_dir().join(format!("berth-changes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let (upper, lower) = (t.join("upper"), t.join("lower"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), "root").unwrap();
        std::fs::write(lower.join("gone"), "x").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("proc")).unwrap();
        std::fs::write(upper.join("etc/hosts"), "").unwrap();
        std::fs::write(upper.join("etc/passwd"), "root\nme").unwrap();
        std::fs::create_dir_all(upper.join("new/sub")).unwrap();
        std::fs::write(upper.join("new/sub/f"), "f").unwrap();
        nix::sys::stat::mknod(&upper.join("gone"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).unwrap();
        let f = std::ffi::CString::new(upper.join("new/sub/f").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: the path and name are NUL-terminated; the value is 3 bytes long.
        let set = unsafe { libc::lsetxattr(f.as_ptr(), c"user.berth".as_ptr(), b"yes".as_ptr().cast(), 3, 0) };
        let mut out = vec![];
        walk(&upper, &[lower.clone()], "", &mut out).unwrap();
        let got: Vec<(String, Kind)> = out.iter().map(|c| (c.path.clone(), c.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("etc".into(), Kind::Modified),
                ("etc/passwd".into(), Kind::Modified),
                ("gone".into(), Kind::Deleted),
                ("new".into(), Kind::Added),
                ("new/sub".into(), Kind::Added),
                ("new/sub/f".into(), Kind::Added),
            ],
            "mount points (proc, etc/hosts) are no change"
        );
        let mut tar_bytes = vec![];
        write_layer(&upper, &out, &mut tar_bytes).unwrap();
        let mut a = tar::Archive::new(&tar_bytes[..]);
        let mut names = vec![];
        let mut xattr = None;
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
            if let Some(exts) = e.pax_extensions().unwrap() {
                for x in exts.flatten() {
                    if x.key() == Ok("SCHILY.xattr.user.berth") {
                        xattr = Some((name.clone(), x.value_bytes().to_vec()));
                    }
                }
            }
            names.push(name);
        }
        assert_eq!(names, ["etc", "etc/passwd", ".wh.gone", "new", "new/sub", "new/sub/f"]);
        if set == 0 {
            assert_eq!(xattr, Some(("new/sub/f".to_string(), b"yes".to_vec())), "the xattr is in the layer");
        }
        std::fs::remove_dir_all(&t).unwrap();
    }
}
