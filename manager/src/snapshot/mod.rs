//! Snapshots: one directory per unpacked layer, keyed by chain ID, stacked as overlayfs lowerdirs.
//! A layer is unpacked into `snapshots/tmp-*`, renamed to `snapshots/<n>` and recorded in the
//! store in one transaction; anything on disk the store does not know is removed at start-up.

pub mod apply;

use crate::errors::{Error, IoContext, Result};
use crate::store::{Store, SNAPSHOTS};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Directory number under `snapshots/`.
    pub id: u64,
    pub parent: Option<String>,
    pub diff_id: String,
    /// Bytes of regular-file content in this layer.
    pub size: u64,
}

pub struct Snapshots {
    root: PathBuf,
}

/// A layer being unpacked; removed on drop unless committed.
pub struct Prepared {
    pub dir: PathBuf,
    committed: bool,
}

impl Prepared {
    pub fn fs(&self) -> PathBuf {
        self.dir.join("fs")
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!("sha256:{}", hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))),
        };
        out.push(next);
    }
    out
}

impl Snapshots {
    pub fn open(root: PathBuf) -> Result<Self> {
        fs::create_dir_all(&root).at(&root)?;
        Ok(Snapshots { root })
    }

    pub fn fs_dir(&self, rec: &SnapshotRecord) -> PathBuf {
        self.root.join(rec.id.to_string()).join("fs")
    }

    pub fn prepare(&self) -> Result<Prepared> {
        let dir = self.root.join(format!("tmp-{}", crate::content::random_hex(8)));
        fs::create_dir_all(dir.join("fs")).at(&dir)?;
        Ok(Prepared { dir, committed: false })
    }

    /// Record an unpacked layer. If another pull committed the same chain ID first, ours is dropped.
    pub fn commit(&self, store: &Store, mut p: Prepared, chain_id: &str, parent: Option<&str>, diff_id: &str, size: u64) -> Result<SnapshotRecord> {
        store.write(|w| {
            if let Some(existing) = w.get::<SnapshotRecord>(SNAPSHOTS, chain_id)? {
                return Ok(existing);
            }
            let id = w.next_id("snapshot")?;
            let dst = self.root.join(id.to_string());
            fs::rename(&p.dir, &dst).at(&dst)?;
            p.dir = dst;
            p.committed = true;
            let rec = SnapshotRecord { id, parent: parent.map(str::to_string), diff_id: diff_id.to_string(), size };
            w.put(SNAPSHOTS, chain_id, &rec)?;
            Ok(rec)
        })
    }

    pub fn get(&self, store: &Store, chain_id: &str) -> Result<Option<SnapshotRecord>> {
        store.get(SNAPSHOTS, chain_id)
    }

    /// The fs dirs of `chain_id` and its parents, topmost first (overlay's lowerdir order).
    pub fn lowers(&self, store: &Store, chain_id: &str) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut cur = Some(chain_id.to_string());
        while let Some(c) = cur {
            let rec = self.get(store, &c)?.ok_or_else(|| Error::internal(format!("snapshot {c} is missing from the store")))?;
            out.push(self.fs_dir(&rec));
            cur = rec.parent;
            if out.len() > 500 {
                return Err(Error::internal("snapshot chain too deep (loop?)"));
            }
        }
        Ok(out)
    }

    /// Delete a snapshot's directory (after its record left the store).
    pub fn remove_dir(&self, rec: &SnapshotRecord) {
        let d = self.root.join(rec.id.to_string());
        if let Err(e) = fs::remove_dir_all(&d) {
            tracing::warn!("removing {}: {e}", d.display());
        }
    }

    /// Start-up: remove half-unpacked layers and directories the store does not know.
    pub fn clean(&self, store: &Store) -> Result<usize> {
        let known: std::collections::HashSet<String> = store.list::<SnapshotRecord>(SNAPSHOTS)?.into_iter().map(|(_, r)| r.id.to_string()).collect();
        let mut n = 0;
        for e in fs::read_dir(&self.root).at(&self.root)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                let _ = fs::remove_dir_all(e.path());
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Mount `lowers` (topmost first) read-only at `target`: overlayfs, or a read-only bind for one layer.
pub fn mount_readonly(lowers: &[PathBuf], target: &Path) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    fs::create_dir_all(target).at(target)?;
    if lowers.len() == 1 {
        mount(Some(&lowers[0]), target, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|e| Error::internal(format!("bind mount {}: {e}", target.display())))?;
        mount(None::<&str>, target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID, None::<&str>)
            .map_err(|e| Error::internal(format!("remount {} read-only: {e}", target.display())))?;
        return Ok(());
    }
    let lower = lowers.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":");
    let data = format!("lowerdir={lower}");
    // nodev/nosuid: what berthd reads through this mount must never be a host device.
    mount(Some("overlay"), target, Some("overlay"), MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID, Some(data.as_str())).map_err(|e| Error::internal(format!("overlay mount at {}: {e}", target.display())))
}

pub fn unmount(target: &Path) -> Result<()> {
    nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH).map_err(|e| Error::internal(format!("unmount {}: {e}", target.display())))?;
    let _ = fs::remove_dir(target);
    Ok(())
}

pub fn is_mountpoint(p: &Path) -> bool {
    let Ok(m) = fs::read_to_string("/proc/self/mountinfo") else { return false };
    let s = p.to_string_lossy();
    m.lines().any(|l| l.split(' ').nth(4) == Some(&*s))
}
