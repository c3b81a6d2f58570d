//! The image service: pull, push, list, inspect, tag, remove, history, save/load/import,
//! prune and garbage collection of blobs and snapshots no image refers to.

mod archive;
pub use archive::CommitInfo;
pub(crate) mod layer;
pub mod layer_reader {
    pub use super::layer::ChannelReader;
}
pub mod progress;
mod pull;
mod push;
mod query;

use crate::content::ContentStore;
use crate::distribution::{Credentials, Registry};
use crate::errors::{Error, Result};
use crate::reference::Reference;
use crate::snapshot::{SnapshotRecord, Snapshots};
use crate::store::{Store, IMAGES, SNAPSHOTS, TAGS};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use progress::Progress;
pub use query::ListFilters;

/// Configs above this size are refused.
pub const CONFIG_LIMIT: u64 = 8 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as stored (compressed, usually).
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub diff_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:` of the config blob: Docker's image ID.
    pub id: String,
    /// The manifest this image came with or was pushed as, kept in the content store.
    pub manifest: Option<String>,
    pub manifest_media_type: Option<String>,
    /// Fully qualified `name@sha256:…` references.
    pub repo_digests: Vec<String>,
    /// Other blobs that belong to this image (e.g. the index it was pulled through).
    #[serde(default)]
    pub extra_blobs: Vec<String>,
    pub layers: Vec<LayerRecord>,
    pub chain_ids: Vec<String>,
    /// Unpacked size, in bytes.
    pub size: u64,
    /// When berth stored it (RFC 3339).
    pub added: String,
    pub last_tag_time: Option<String>,
    /// The image this one was built or committed on (Docker's `Parent`); an untagged image
    /// that is some other image's parent is a build step, hidden from `images` without `-a`.
    #[serde(default)]
    pub parent: Option<String>,
}

pub struct ImageService {
    pub store: Arc<Store>,
    pub content: ContentStore,
    pub snapshots: Snapshots,
    pub registry: Registry,
    /// Where `image mount` mounts (under the exec root).
    mount_root: PathBuf,
    /// Scratch space on the data root's filesystem (load spools here).
    tmp_root: PathBuf,
    /// Blobs and snapshots an operation in flight is writing; GC leaves them alone.
    leases: Mutex<HashMap<String, usize>>,
    /// One GC or delete at a time.
    gc_lock: tokio::sync::Mutex<()>,
    /// Which container (if any) runs from an image: such an image is never deleted.
    in_use: std::sync::OnceLock<Box<dyn Fn(&str) -> Option<String> + Send + Sync>>,
}

/// Holds digests/chain IDs out of GC's reach until dropped.
pub struct Lease<'a> {
    svc: &'a ImageService,
    keys: Vec<String>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.svc.release(&self.keys);
    }
}

/// A lease that owns its service: held across awaits by long operations (a build).
pub struct OwnedLease {
    svc: Arc<ImageService>,
    keys: Vec<String>,
}

impl Drop for OwnedLease {
    fn drop(&mut self) {
        self.svc.release(&self.keys);
    }
}

impl ImageService {
    pub fn new(store: Arc<Store>, data_root: &std::path::Path, exec_root: &std::path::Path, insecure: Vec<String>) -> Result<Self> {
        let tmp_root = data_root.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp_root);
        std::fs::create_dir_all(&tmp_root)?;
        Ok(ImageService {
            content: ContentStore::open(data_root.join("content"))?,
            snapshots: Snapshots::open(data_root.join("snapshots"))?,
            registry: Registry::new(insecure)?,
            mount_root: exec_root.join("image-mounts"),
            tmp_root,
            store,
            leases: Mutex::new(HashMap::new()),
            gc_lock: tokio::sync::Mutex::new(()),
            in_use: std::sync::OnceLock::new(),
        })
    }

    pub fn set_in_use(&self, f: Box<dyn Fn(&str) -> Option<String> + Send + Sync>) {
        let _ = self.in_use.set(f);
    }

    pub fn used_by(&self, image_id: &str) -> Option<String> {
        self.in_use.get().and_then(|f| f(image_id))
    }

    pub fn lease(&self, keys: impl IntoIterator<Item = String>) -> Lease<'_> {
        let keys = self.take(keys);
        Lease { svc: self, keys }
    }

    /// Everything an image needs (config, layers, snapshots), out of GC's reach until dropped.
    pub fn lease_image(self: &Arc<Self>, rec: &ImageRecord) -> OwnedLease {
        let keys = std::iter::once(rec.id.clone()).chain(rec.layers.iter().map(|l| l.digest.clone())).chain(rec.chain_ids.iter().cloned());
        let keys = self.take(keys);
        OwnedLease { svc: self.clone(), keys }
    }

    fn take(&self, keys: impl IntoIterator<Item = String>) -> Vec<String> {
        let keys: Vec<String> = keys.into_iter().collect();
        let mut l = self.leases.lock().unwrap();
        for k in &keys {
            *l.entry(k.clone()).or_insert(0) += 1;
        }
        keys
    }

    fn release(&self, keys: &[String]) {
        let mut l = self.leases.lock().unwrap();
        for k in keys {
            if let Some(n) = l.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    l.remove(k);
                }
            }
        }
    }

    /// Start-up: drop half-written blobs and layers, then anything no image refers to.
    pub async fn recover(&self) -> Result<()> {
        let ingest = self.content.clean_ingest()?;
        let snaps = self.snapshots.clean(&self.store)?;
        let (b, s) = self.gc().await?;
        if ingest + snaps + b + s > 0 {
            tracing::info!(partial_blobs = ingest, partial_layers = snaps, orphan_blobs = b, orphan_snapshots = s, "cleaned up after the previous run");
        }
        // Mounts from a previous life are gone with the exec root or stale: forget them.
        if let Ok(rd) = std::fs::read_dir(&self.mount_root) {
            for e in rd.flatten() {
                let _ = crate::snapshot::unmount(&e.path());
            }
        }
        Ok(())
    }

    pub fn get_record(&self, id: &str) -> Result<ImageRecord> {
        self.store.get(IMAGES, id)?.ok_or_else(|| Error::not_found(format!("No such image: {id}")))
    }

    /// Docker's lookup order: a tag, a full or short image ID, a `name@digest`.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let not_found = || Error::not_found(format!("No such image: {name}"));
        if let Ok(r) = Reference::parse(name) {
            if let Some(key) = r.tag_key().filter(|_| r.digest.is_none()) {
                if let Some(id) = self.store.get::<String>(TAGS, &key)? {
                    return self.get_record(&id);
                }
            }
            if let Some(d) = &r.digest {
                let want = format!("{}@{d}", r.name());
                for (_, rec) in self.store.list::<ImageRecord>(IMAGES)? {
                    if rec.repo_digests.contains(&want) {
                        return Ok(rec);
                    }
                }
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            let mut found: Vec<ImageRecord> = self.store.list::<ImageRecord>(IMAGES)?.into_iter().map(|(_, r)| r).filter(|r| r.id[7..].starts_with(hex)).collect();
            match found.len() {
                1 => return Ok(found.pop().unwrap()),
                0 => {}
                _ => return Err(Error::invalid(format!("{name} is ambiguous: it is the prefix of several image IDs"))),
            }
        }
        Err(not_found())
    }

    /// Tag keys pointing at `id`.
    pub fn tags_of(&self, id: &str) -> Result<Vec<String>> {
        Ok(self.store.list::<String>(TAGS)?.into_iter().filter(|(_, v)| v == id).map(|(k, _)| k).collect())
    }

    pub fn config_json(&self, rec: &ImageRecord) -> Result<serde_json::Value> {
        let bytes = self.content.read(&rec.id, CONFIG_LIMIT)?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    pub fn tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let rec = self.resolve(source)?;
        let mut r = Reference::parse_name_only(repo)?;
        if r.digest.is_some() {
            return Err(Error::invalid("refusing to create a tag with a digest reference"));
        }
        if let Some(t) = tag.filter(|t| !t.is_empty()) {
            r = Reference::parse_name_only(&format!("{}:{t}", r.name()))?;
        }
        if r.tag.is_none() {
            r.tag = Some(crate::reference::DEFAULT_TAG.into());
        }
        let key = r.tag_key().unwrap();
        let now = now_rfc3339();
        self.store.write(|w| {
            w.put(TAGS, &key, &rec.id)?;
            let mut rec: ImageRecord = w.get(IMAGES, &rec.id)?.ok_or_else(|| Error::not_found("image vanished"))?;
            rec.last_tag_time = Some(now.clone());
            w.put(IMAGES, &rec.id.clone(), &rec)
        })
    }

    /// `rmi`: untag, and delete the image when nothing names it any more.
    pub async fn remove(&self, name: &str, force: bool) -> Result<Vec<bollard_stubs::models::ImageDeleteResponseItem>> {
        use bollard_stubs::models::ImageDeleteResponseItem as Item;
        let _g = self.gc_lock.lock().await;
        let rec = self.resolve(name)?;
        let tags = self.tags_of(&rec.id)?;
        let by_tag = Reference::parse(name).ok().and_then(|r| r.tag_key()).filter(|k| tags.contains(k));
        let mut out = Vec::new();
        let untag: Vec<String> = match &by_tag {
            Some(k) if tags.len() > 1 => vec![k.clone()],
            Some(k) => vec![k.clone()],
            None if tags.len() > 1 && !force => {
                return Err(Error::conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    &rec.id[7..19]
                )))
            }
            None => tags.clone(),
        };
        let delete_image = untag.len() == tags.len();
        if delete_image {
            if let Some(c) = self.used_by(&rec.id) {
                return Err(Error::conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image is being used by container {}",
                    by_tag.as_deref().map(familiar_key).unwrap_or_else(|| rec.id[7..19].to_string()),
                    &c[..12.min(c.len())]
                )));
            }
        }
        self.store.write(|w| {
            for k in &untag {
                w.delete(TAGS, k)?;
            }
            if delete_image {
                w.delete(IMAGES, &rec.id)?;
            }
            Ok(())
        })?;
        for k in &untag {
            out.push(Item { untagged: Some(familiar_key(k)), deleted: None });
        }
        if delete_image {
            for d in &rec.repo_digests {
                out.push(Item { untagged: Some(familiar_key(d)), deleted: None });
            }
            out.push(Item { untagged: None, deleted: Some(rec.id.clone()) });
            let _ = self.unmount_id(&rec.id);
            drop(_g);
            self.gc().await?;
        }
        Ok(out)
    }

    /// Remove blobs and snapshots that no image (and no operation in flight) refers to.
    /// The store forgets them first, in one transaction; files go after.
    pub async fn gc(&self) -> Result<(usize, usize)> {
        let leased: HashSet<String> = self.leases.lock().unwrap().keys().cloned().collect();
        let images = self.store.list::<ImageRecord>(IMAGES)?;
        let mut keep_blobs: HashSet<String> = leased.clone();
        let mut keep_snaps: HashSet<String> = leased;
        for (_, r) in &images {
            keep_blobs.insert(r.id.clone());
            keep_blobs.extend(r.manifest.iter().cloned());
            keep_blobs.extend(r.extra_blobs.iter().cloned());
            keep_blobs.extend(r.layers.iter().map(|l| l.digest.clone()));
            keep_snaps.extend(r.chain_ids.iter().cloned());
        }
        let removed: Vec<SnapshotRecord> = self.store.write(|w| {
            let mut gone = Vec::new();
            for (chain, rec) in w.list::<SnapshotRecord>(SNAPSHOTS)? {
                if !keep_snaps.contains(&chain) {
                    w.delete(SNAPSHOTS, &chain)?;
                    gone.push(rec);
                }
            }
            Ok(gone)
        })?;
        for rec in &removed {
            self.snapshots.remove_dir(rec);
        }
        let mut blobs = 0;
        for d in self.content.list()? {
            if !keep_blobs.contains(&d) {
                self.content.delete(&d)?;
                blobs += 1;
            }
        }
        Ok((blobs, removed.len()))
    }

    /// `image mount`: the image's root filesystem, read-only, at a path under the exec root.
    pub fn mount(&self, name: &str) -> Result<PathBuf> {
        let rec = self.resolve(name)?;
        let target = self.mount_root.join(&rec.id[7..]);
        if crate::snapshot::is_mountpoint(&target) {
            return Ok(target);
        }
        let lowers = match rec.chain_ids.last() {
            Some(top) => self.snapshots.lowers(&self.store, top)?,
            None => return Err(Error::invalid(format!("image {name} has no layers to mount"))),
        };
        crate::snapshot::mount_readonly(&lowers, &target)?;
        Ok(target)
    }

    pub fn unmount(&self, name: &str) -> Result<()> {
        let rec = self.resolve(name)?;
        self.unmount_id(&rec.id)
    }

    fn unmount_id(&self, id: &str) -> Result<()> {
        let target = self.mount_root.join(&id[7..]);
        if crate::snapshot::is_mountpoint(&target) {
            crate::snapshot::unmount(&target)?;
        }
        Ok(())
    }

    /// Record a finished image: record, tags and repo digest in one transaction.
    fn commit_image(&self, mut rec: ImageRecord, tags: &[String], repo_digest: Option<String>) -> Result<bool> {
        let now = now_rfc3339();
        self.store.write(|w| {
            let existing: Option<ImageRecord> = w.get(IMAGES, &rec.id)?;
            let is_new = existing.is_none();
            if let Some(old) = existing {
                // Keep what the old record knew (other repo digests, its manifest).
                for d in old.repo_digests {
                    if !rec.repo_digests.contains(&d) {
                        rec.repo_digests.push(d);
                    }
                }
                for b in old.extra_blobs {
                    if !rec.extra_blobs.contains(&b) {
                        rec.extra_blobs.push(b);
                    }
                }
                if rec.manifest.is_none() {
                    rec.manifest = old.manifest;
                    rec.manifest_media_type = old.manifest_media_type;
                }
                rec.added = old.added;
            }
            if let Some(d) = &repo_digest {
                // One digest per repository name, as docker keeps it.
                let name = d.split('@').next().unwrap_or("").to_string();
                rec.repo_digests.retain(|x| !x.starts_with(&format!("{name}@")));
                rec.repo_digests.push(d.clone());
            }
            let mut changed = is_new;
            for t in tags {
                let old: Option<String> = w.get(TAGS, t)?;
                if old.as_deref() != Some(rec.id.as_str()) {
                    changed = true;
                    rec.last_tag_time = Some(now.clone());
                }
                w.put(TAGS, t, &rec.id)?;
            }
            w.put(IMAGES, &rec.id.clone(), &rec)?;
            Ok(changed)
        })
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// `docker.io/library/busybox:latest` → `busybox:latest` (also for `@digest` forms).
pub fn familiar_key(k: &str) -> String {
    let (name, rest, sep) = match k.split_once('@') {
        Some((n, d)) => (n, d, "@"),
        None => {
            let last_slash = k.rfind('/').map(|i| i + 1).unwrap_or(0);
            match k[last_slash..].rfind(':') {
                Some(i) => (&k[..last_slash + i], &k[last_slash + i + 1..], ":"),
                None => (k, "", ""),
            }
        }
    };
    let n = Reference::parse_name_only(name).map(|r| r.familiar_name()).unwrap_or_else(|_| name.to_string());
    format!("{n}{sep}{rest}")
}

/// Parse an `X-Registry-Auth` header (base64url JSON AuthConfig); empty or `{}` means none.
pub fn decode_auth_header(h: Option<&str>) -> Option<Credentials> {
    use base64::Engine;
    let h = h?.trim();
    if h.is_empty() {
        return None;
    }
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let raw = engines.iter().find_map(|e| e.decode(h).ok())?;
    let c: Credentials = serde_json::from_slice(&raw).ok()?;
    (!c.is_empty()).then_some(c)
}

pub use pull::Platform;

/// The host's architecture in OCI/Go terms.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}
