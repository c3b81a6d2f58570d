//! A container's binds and volumes: anonymous volumes made at create for the image's
//! `VOLUME`s, OCI mounts at start (with Docker's copy-up into empty volumes), which
//! containers use a volume, and `Mounts` as inspect shows them.

use super::record::ContainerRecord;
use super::{spec, ContainerService};
use crate::errors::{Error, Result};
use bollard_stubs::models::{HostConfig, MountPoint};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `-v SRC:DST[:OPTS]` split; SRC is a host path or a volume name.
fn parse_bind(b: &str) -> Result<(&str, &str, &str)> {
    let parts: Vec<&str> = b.split(':').collect();
    match parts.as_slice() {
        [s, d] => Ok((s, d, "")),
        [s, d, o] => Ok((s, d, o)),
        _ => Err(Error::invalid(format!("invalid volume specification: '{b}'"))),
    }
}

/// Where a container's mounts go, to know which image volumes they already cover.
fn destinations(hc: &HostConfig) -> Vec<String> {
    let mut d: Vec<String> = hc.binds.iter().flatten().filter_map(|b| parse_bind(b).ok().map(|(_, d, _)| d.to_string())).collect();
    d.extend(hc.mounts.iter().flatten().filter_map(|m| m.target.clone()));
    d.extend(hc.tmpfs.iter().flatten().map(|(k, _)| k.clone()));
    d.iter().map(|p| p.trim_end_matches('/').to_string()).collect()
}

impl ContainerService {
    /// At create: an anonymous volume for every `VOLUME` (image or `-v /path`) that no bind,
    /// mount or tmpfs covers, and for `--mount type=volume` without a source. Returns
    /// (destination, volume name) pairs; the host config's mounts get their names.
    pub(super) fn anonymous_volumes(&self, volumes: &[String], hc: &mut HostConfig) -> Result<Vec<(String, String)>> {
        let covered = destinations(hc);
        let mut out = vec![];
        for m in hc.mounts.iter_mut().flatten() {
            if m.typ.map(|t| t.to_string()).as_deref() == Some("volume") && m.source.as_deref().unwrap_or("").is_empty() {
                let v = self.volumes.create(None, None, HashMap::new(), HashMap::new(), true)?;
                m.source = Some(v.name);
            }
        }
        for dst in volumes {
            let d = dst.trim_end_matches('/');
            if d.is_empty() || covered.iter().any(|c| c == d) || out.iter().any(|(o, _): &(String, String)| o == d) {
                continue;
            }
            let v = self.volumes.create(None, None, HashMap::new(), HashMap::new(), true)?;
            out.push((d.to_string(), v.name));
        }
        Ok(out)
    }

    /// Binds, volumes, `--mount`s and `--volumes-from` as OCI mounts; empty volumes get the
    /// image's content at their destination first (unless `nocopy`).
    pub(super) fn volume_mounts(&self, rec: &ContainerRecord, rootfs: &Path) -> Result<Vec<oci_spec::runtime::Mount>> {
        self.volume_mounts_depth(rec, Some(rootfs), 0)
    }

    fn volume(&self, name: &str, dst: &str, rootfs: Option<&Path>, nocopy: bool) -> Result<PathBuf> {
        let data = self.volumes.use_volume(name)?;
        if let (Some(root), false) = (rootfs, nocopy) {
            super::super::volume::copy_up(root, dst, &data)?;
        }
        Ok(data)
    }

    fn volume_mounts_depth(&self, rec: &ContainerRecord, rootfs: Option<&Path>, depth: usize) -> Result<Vec<oci_spec::runtime::Mount>> {
        if depth > 8 {
            return Err(Error::invalid("--volumes-from chains too deep (a cycle?)"));
        }
        let mut out = Vec::new();
        // --volumes-from NAME[:ro|rw]: that container's binds and volumes, first (ours win).
        for vf in rec.host_config.volumes_from.iter().flatten() {
            let (name, mode) = vf.split_once(':').unwrap_or((vf.as_str(), ""));
            let other = self.find(name)?;
            for mut m in self.volume_mounts_depth(&other, None, depth + 1)? {
                if mode == "ro" {
                    let mut o = m.options().clone().unwrap_or_default();
                    o.retain(|x| x != "rw");
                    if !o.iter().any(|x| x == "ro") {
                        o.push("ro".into());
                    }
                    m.set_options(Some(o));
                }
                out.push(m);
            }
        }
        for (dst, name) in &rec.anon_volumes {
            out.push(spec::bind(&self.volume(name, dst, rootfs, false)?, dst, false));
        }
        for b in rec.host_config.binds.iter().flatten() {
            let (src, dst, opts) = parse_bind(b)?;
            let ro = opts.split(',').any(|o| o == "ro");
            let host = if src.starts_with('/') {
                let host = PathBuf::from(src);
                // Docker makes a missing bind source directory.
                if !host.exists() {
                    std::fs::create_dir_all(&host).map_err(|e| Error::invalid(format!("bind source {}: {e}", host.display())))?;
                }
                host
            } else {
                self.volume(src, dst, rootfs, opts.split(',').any(|o| o == "nocopy"))?
            };
            out.push(spec::bind(&host, dst, ro));
        }
        for m in rec.host_config.mounts.iter().flatten() {
            let dst = m.target.clone().unwrap_or_default();
            let ro = m.read_only.unwrap_or(false);
            let typ = m.typ.map(|t| t.to_string()).unwrap_or_default();
            match typ.as_str() {
                "bind" => out.push(spec::bind(Path::new(&m.source.clone().unwrap_or_default()), &dst, ro)),
                "volume" => {
                    let name = m.source.clone().unwrap_or_default();
                    let nocopy = m.volume_options.as_ref().and_then(|o| o.no_copy).unwrap_or(false);
                    out.push(spec::bind(&self.volume(&name, &dst, rootfs, nocopy)?, &dst, ro));
                }
                "tmpfs" => {
                    let mut o = vec!["nosuid".to_string(), "nodev".to_string()];
                    if let Some(t) = &m.tmpfs_options {
                        if let Some(s) = t.size_bytes {
                            o.push(format!("size={s}"));
                        }
                        if let Some(mode) = t.mode {
                            o.push(format!("mode={mode:o}"));
                        }
                    }
                    out.push(oci_spec::runtime::MountBuilder::default().destination(dst).typ("tmpfs").source("tmpfs").options(o).build().expect("mount"));
                }
                other => return Err(Error::invalid(format!("mount type {other:?} is not supported"))),
            }
        }
        Ok(out)
    }

    /// Volume names a container refers to (binds by name, `--mount` volumes, anonymous ones).
    pub fn volume_names(rec: &ContainerRecord) -> Vec<String> {
        let mut v: Vec<String> = rec.anon_volumes.iter().map(|(_, n)| n.clone()).collect();
        v.extend(rec.host_config.binds.iter().flatten().filter_map(|b| parse_bind(b).ok()).filter(|(s, _, _)| !s.starts_with('/')).map(|(s, _, _)| s.to_string()));
        v.extend(rec.host_config.mounts.iter().flatten().filter(|m| m.typ.map(|t| t.to_string()).as_deref() == Some("volume")).filter_map(|m| m.source.clone()));
        v
    }

    /// IDs of the containers (running or not) that refer to volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.store
            .list::<ContainerRecord>(super::redb_tables::CONTAINERS)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, r)| Self::volume_names(r).iter().any(|n| n == name))
            .map(|(id, _)| id)
            .collect()
    }

    /// Docker's `Mounts` in inspect.
    pub fn mount_points(&self, rec: &ContainerRecord) -> Vec<MountPoint> {
        let vol = |name: &str, dst: &str, rw: bool, mode: &str| MountPoint {
            typ: Some("volume".into()),
            name: Some(name.to_string()),
            source: Some(self.volumes.data(name).display().to_string()),
            destination: Some(dst.to_string()),
            driver: Some("local".into()),
            mode: Some(mode.to_string()),
            rw: Some(rw),
            propagation: Some(String::new()),
        };
        let mut out: Vec<MountPoint> = rec.anon_volumes.iter().map(|(d, n)| vol(n, d, true, "")).collect();
        for b in rec.host_config.binds.iter().flatten() {
            let Ok((src, dst, opts)) = parse_bind(b) else { continue };
            let rw = !opts.split(',').any(|o| o == "ro");
            if src.starts_with('/') {
                out.push(MountPoint { typ: Some("bind".into()), source: Some(src.into()), destination: Some(dst.into()), mode: Some(opts.into()), rw: Some(rw), propagation: Some("rprivate".into()), ..Default::default() });
            } else {
                out.push(vol(src, dst, rw, if opts.is_empty() { "z" } else { opts }));
            }
        }
        for m in rec.host_config.mounts.iter().flatten() {
            let (typ, dst, rw) = (m.typ.map(|t| t.to_string()).unwrap_or_default(), m.target.clone().unwrap_or_default(), !m.read_only.unwrap_or(false));
            match typ.as_str() {
                "volume" => out.push(vol(&m.source.clone().unwrap_or_default(), &dst, rw, "z")),
                "bind" | "tmpfs" => out.push(MountPoint { typ: Some(typ.clone()), source: m.source.clone().or(Some(String::new())), destination: Some(dst), mode: Some(String::new()), rw: Some(rw), propagation: Some(if typ == "bind" { "rprivate".into() } else { String::new() }), ..Default::default() }),
                _ => {}
            }
        }
        out
    }
}
