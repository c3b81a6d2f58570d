//! Volumes: Docker's `local` driver. A volume is `volumes/<name>/_data` under the data root and
//! a record in the store; `type`/`device`/`o` options (tmpfs, a bind of a host directory) are
//! mounted on `_data` when a container first needs it. Anonymous volumes (an image's
//! `VOLUME`s) belong to their container and go with `rm -v`.

mod copyup;

pub use copyup::copy_up;

use crate::errors::{Error, Kind, Result};
use crate::store::{Store, Table};
use bollard_stubs::models::{Volume, VolumeScopeEnum};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Name → `VolumeRecord` JSON.
pub const VOLUMES: Table = Table::new("volumes");

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    pub created: String,
    pub labels: HashMap<String, String>,
    /// The local driver's `type`, `device`, `o`.
    pub options: HashMap<String, String>,
    /// Made for an image's `VOLUME` (or `-v /path`): removed with its container by `rm -v`.
    pub anonymous: bool,
}

/// Containers (IDs) that refer to a volume, running or not.
pub type Users = Box<dyn Fn(&str) -> Vec<String> + Send + Sync>;

pub struct VolumeService {
    store: Arc<Store>,
    root: PathBuf,
    users: OnceLock<Users>,
    /// Serialises option mounts and removals.
    lock: Mutex<()>,
}

pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl VolumeService {
    pub fn new(store: Arc<Store>, data_root: &Path) -> Result<Arc<Self>> {
        store.write(|w| w.ensure_table(VOLUMES))?;
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root)?;
        let svc = Arc::new(VolumeService { store, root, users: OnceLock::new(), lock: Mutex::new(()) });
        svc.adopt()?;
        Ok(svc)
    }

    pub fn set_users(&self, f: Users) {
        let _ = self.users.set(f);
    }

    fn users(&self, name: &str) -> Vec<String> {
        self.users.get().map(|f| f(name)).unwrap_or_default()
    }

    /// Directories made before volumes had records (or whose record a crash lost) become
    /// plain local volumes; nothing on disk is ever dropped silently.
    fn adopt(&self) -> Result<()> {
        for e in std::fs::read_dir(&self.root)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !valid_name(&name) || !e.path().join("_data").is_dir() || self.store.get::<VolumeRecord>(VOLUMES, &name)?.is_some() {
                continue;
            }
            let rec = VolumeRecord { name: name.clone(), driver: "local".into(), created: now(), labels: HashMap::new(), options: HashMap::new(), anonymous: false };
            self.store.write(|w| w.put(VOLUMES, &name, &rec))?;
        }
        Ok(())
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn data(&self, name: &str) -> PathBuf {
        self.dir(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Result<VolumeRecord> {
        self.store.get(VOLUMES, name)?.ok_or_else(|| Error::not_found(format!("get {name}: no such volume")))
    }

    /// `volume create`; an existing volume of the same name is returned as it is (Docker).
    pub fn create(&self, name: Option<&str>, driver: Option<&str>, options: HashMap<String, String>, labels: HashMap<String, String>, anonymous: bool) -> Result<VolumeRecord> {
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or("local");
        if driver != "local" {
            return Err(Error::not_found(format!("error looking up volume plugin {driver}: plugin \"{driver}\" not found (berth has the local driver)")));
        }
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) if !valid_name(n) => return Err(Error::invalid(format!("create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"))),
            Some(n) => n.to_string(),
            None => crate::content::random_hex(32),
        };
        for k in options.keys() {
            if !["type", "device", "o", "size"].contains(&k.as_str()) {
                return Err(Error::invalid(format!("create {name}: invalid option key: {k:?}")));
            }
        }
        if options.contains_key("device") != options.contains_key("type") && !options.get("o").is_some_and(|o| o.split(',').any(|x| x == "bind")) {
            return Err(Error::invalid(format!("create {name}: missing required option: \"{}\"", if options.contains_key("device") { "type" } else { "device" })));
        }
        let _g = self.lock.lock().unwrap();
        if let Some(r) = self.store.get::<VolumeRecord>(VOLUMES, &name)? {
            return Ok(r);
        }
        std::fs::create_dir_all(self.data(&name))?;
        let rec = VolumeRecord { name: name.clone(), driver: driver.into(), created: now(), labels, options, anonymous };
        self.store.write(|w| w.put(VOLUMES, &name, &rec))?;
        Ok(rec)
    }

    /// The host directory a container mounts for volume `name`, made on first use (as
    /// Docker's `-v NAME:/path`) and with its options' filesystem mounted on it.
    pub fn use_volume(&self, name: &str) -> Result<PathBuf> {
        let rec = match self.store.get::<VolumeRecord>(VOLUMES, name)? {
            Some(r) => r,
            None => self.create(Some(name), None, HashMap::new(), HashMap::new(), false)?,
        };
        let data = self.data(name);
        std::fs::create_dir_all(&data)?;
        if !rec.options.is_empty() {
            let _g = self.lock.lock().unwrap();
            if !crate::snapshot::is_mountpoint(&data) {
                self.mount_options(&rec, &data)?;
            }
        }
        Ok(data)
    }

    fn mount_options(&self, rec: &VolumeRecord, data: &Path) -> Result<()> {
        use nix::mount::{mount, MsFlags};
        let o = rec.options.get("o").cloned().unwrap_or_default();
        let typ = rec.options.get("type").cloned().unwrap_or_default();
        let dev = rec.options.get("device").cloned().unwrap_or_default();
        let err = |e: nix::Error| Error::internal(format!("mounting volume {}: {e}", rec.name));
        if o.split(',').any(|x| x == "bind") || typ == "none" {
            if !dev.starts_with('/') || !Path::new(&dev).is_dir() {
                return Err(Error::invalid(format!("volume {}: device {dev:?} must be an existing absolute directory", rec.name)));
            }
            mount(Some(dev.as_str()), data, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).map_err(err)?;
            if o.split(',').any(|x| x == "ro") {
                mount(None::<&str>, data, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>).map_err(err)?;
            }
            return Ok(());
        }
        let mut data_opts: Vec<&str> = o.split(',').filter(|x| !x.is_empty()).collect();
        let size;
        if let Some(s) = rec.options.get("size") {
            size = format!("size={s}");
            data_opts.push(&size);
        }
        let src = if dev.is_empty() { typ.as_str() } else { dev.as_str() };
        mount(Some(src), data, Some(typ.as_str()), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(data_opts.join(",").as_str())).map_err(err)
    }

    pub fn list(&self, filters: &HashMap<String, Vec<String>>) -> Result<Vec<VolumeRecord>> {
        let mut out = vec![];
        'next: for (_, v) in self.store.list::<VolumeRecord>(VOLUMES)? {
            for (k, vals) in filters {
                let ok = match k.as_str() {
                    "name" => vals.iter().any(|f| v.name.contains(f.as_str())),
                    "driver" => vals.iter().any(|f| *f == v.driver),
                    "label" => vals.iter().all(|f| match f.split_once('=') {
                        Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
                        None => v.labels.contains_key(f.as_str()),
                    }),
                    "dangling" => vals.iter().any(|f| (f == "true" || f == "1") == self.users(&v.name).is_empty()),
                    "all" => true,
                    other => return Err(Error::invalid(format!("invalid filter '{other}'"))),
                };
                if !ok {
                    continue 'next;
                }
            }
            out.push(v);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn inspect(&self, v: &VolumeRecord) -> Volume {
        Volume {
            name: v.name.clone(),
            driver: v.driver.clone(),
            mountpoint: self.data(&v.name).display().to_string(),
            created_at: Some(v.created.clone()),
            labels: v.labels.clone(),
            scope: Some(VolumeScopeEnum::LOCAL),
            options: v.options.clone(),
            ..Default::default()
        }
    }

    /// `volume rm`: refused while any container refers to it; `force` only ignores a
    /// volume that does not exist.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let rec = match self.get(name) {
            Ok(r) => r,
            Err(e) if force && e.kind == Kind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let users = self.users(name);
        if !users.is_empty() {
            return Err(Error::conflict(format!("remove {name}: volume is in use - [{}]", users.join(", "))));
        }
        self.delete(&rec)
    }

    fn delete(&self, rec: &VolumeRecord) -> Result<()> {
        let _g = self.lock.lock().unwrap();
        // The store forgets first: a crash half-way leaves a directory that `adopt` keeps,
        // never a record without data.
        self.store.write(|w| w.delete(VOLUMES, &rec.name).map(|_| ()))?;
        let data = self.data(&rec.name);
        if crate::snapshot::is_mountpoint(&data) {
            let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
        }
        std::fs::remove_dir_all(self.dir(&rec.name)).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })?;
        Ok(())
    }

    /// `volume prune`: unused anonymous volumes, or with `all` every unused one; names and bytes.
    pub fn prune(&self, all: bool, filters: &HashMap<String, Vec<String>>) -> Result<(Vec<String>, u64)> {
        let mut f = filters.clone();
        f.remove("all");
        let (mut gone, mut bytes) = (vec![], 0u64);
        for v in self.list(&f)? {
            if (!all && !v.anonymous) || !self.users(&v.name).is_empty() {
                continue;
            }
            bytes += du(&self.data(&v.name));
            self.delete(&v)?;
            gone.push(v.name);
        }
        Ok((gone, bytes))
    }

    /// Anonymous volumes a removed container (`rm -v`) leaves that nothing else uses.
    pub fn remove_anonymous(&self, names: &[String]) {
        for n in names {
            if let Ok(rec) = self.get(n) {
                if rec.anonymous && self.users(n).is_empty() {
                    if let Err(e) = self.delete(&rec) {
                        tracing::warn!(volume = %n, "removing: {e}");
                    }
                }
            }
        }
    }

    /// Graceful stop: option mounts (tmpfs, binds) come off; the next use mounts them again.
    pub fn shutdown(&self) {
        for (name, rec) in self.store.list::<VolumeRecord>(VOLUMES).unwrap_or_default() {
            let data = self.data(&name);
            if !rec.options.is_empty() && crate::snapshot::is_mountpoint(&data) && self.users(&name).is_empty() {
                let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// Bytes under `p` (not following links, not crossing into other mounts' accounting).
fn du(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
    if md.is_dir() {
        std::fs::read_dir(p).into_iter().flatten().flatten().map(|e| du(&e.path())).sum()
    } else {
        md.len()
    }
}
