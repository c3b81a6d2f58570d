//! `save` (docker-archive with an OCI layout beside it, as Docker 25+ writes), `load` (either
//! format) and `import` (a root filesystem tar becomes a one-layer image).

use super::layer::{self, HashReader};
use super::{ImageRecord, ImageService, LayerRecord};
use crate::distribution as dist;
use crate::errors::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::snapshot::{apply, chain_ids};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

impl ImageService {
    /// Write the named images as one tar to `out`.
    pub fn save(&self, names: &[String], out: impl Write) -> Result<()> {
        if names.is_empty() {
            return Err(Error::invalid("no images named to save"));
        }
        let mut images: Vec<(ImageRecord, Vec<String>)> = Vec::new();
        for n in names {
            let rec = self.resolve(n)?;
            let tag = Reference::parse(n).ok().and_then(|r| r.tag_key()).filter(|k| self.store.get::<String>(crate::store::TAGS, k).ok().flatten().as_deref() == Some(&rec.id));
            match images.iter_mut().find(|(r, _)| r.id == rec.id) {
                Some((_, tags)) => tags.extend(tag),
                None => images.push((rec, tag.into_iter().collect())),
            }
        }
        let mut tar = tar::Builder::new(out);
        let mut written = HashSet::new();
        for dir in ["blobs", "blobs/sha256"] {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, dir, io::empty())?;
        }
        let mut docker_manifest = Vec::new();
        let mut index = Vec::new();
        for (rec, tags) in &images {
            let (mbytes, mt) = match (&rec.manifest, &rec.manifest_media_type) {
                (Some(d), Some(mt)) if self.content.has(d) => (self.content.read(d, dist::MANIFEST_LIMIT)?, mt.clone()),
                _ => self.manifest_for(rec)?,
            };
            let mdigest = self.content.put(&mbytes, None)?;
            for d in std::iter::once(&rec.id).chain(rec.layers.iter().map(|l| &l.digest)).chain(std::iter::once(&mdigest)) {
                if written.insert(d.clone()) {
                    let mut h = tar::Header::new_ustar();
                    h.set_mode(0o644);
                    h.set_size(self.content.size(d)?);
                    tar.append_data(&mut h, blob_path(d), self.content.open_blob(d)?)?;
                }
            }
            let familiar: Vec<String> = tags.iter().map(|t| super::familiar_key(t)).collect();
            docker_manifest.push(json!({
                "Config": blob_path(&rec.id),
                "RepoTags": familiar,
                "Layers": rec.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
            }));
            let mut entries: Vec<serde_json::Value> = tags
                .iter()
                .map(|t| {
                    let tag = t.rsplit_once(':').map(|x| x.1).unwrap_or("latest");
                    json!({ "mediaType": mt, "digest": mdigest, "size": mbytes.len(),
                        "annotations": { "io.containerd.image.name": t, "org.opencontainers.image.ref.name": tag } })
                })
                .collect();
            if entries.is_empty() {
                entries.push(json!({ "mediaType": mt, "digest": mdigest, "size": mbytes.len() }));
            }
            index.extend(entries);
        }
        let files = [
            ("manifest.json", serde_json::to_vec(&docker_manifest).unwrap()),
            ("index.json", serde_json::to_vec(&json!({ "schemaVersion": 2, "mediaType": dist::MT_OCI_INDEX, "manifests": index })).unwrap()),
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ];
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, name, data.as_slice())?;
        }
        tar.into_inner()?.flush()?;
        Ok(())
    }

    /// Load a docker-archive or OCI-layout tar. Returns Docker's "Loaded image…" lines.
    pub fn load(&self, input: impl Read) -> Result<Vec<String>> {
        let dir = self.tmp_root.join(format!("load-{}", crate::content::random_hex(8)));
        fs::create_dir_all(&dir).at(&dir)?;
        let res = self.load_in(input, &dir);
        let _ = fs::remove_dir_all(&dir);
        res
    }

    fn load_in(&self, input: impl Read, dir: &Path) -> Result<Vec<String>> {
        let links = spool(input, dir)?;
        let open = |name: &str| -> Result<File> {
            let p = resolve_spooled(&links, name)?;
            File::open(dir.join(&p)).map_err(|e| Error::invalid(format!("archive member {name}: {e}")))
        };
        let read_small = |name: &str, limit: u64| -> Result<Vec<u8>> {
            let mut b = Vec::new();
            open(name)?.take(limit + 1).read_to_end(&mut b)?;
            if b.len() as u64 > limit {
                return Err(Error::invalid(format!("archive member {name} is too large")));
            }
            Ok(b)
        };
        // (config path, layer paths, tags) for each image in the archive.
        let mut wanted: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        // Manifests of an OCI layout, by config digest: kept so a push keeps their digest.
        let mut manifests: HashMap<String, (Vec<u8>, String)> = HashMap::new();
        let has = |n: &str| dir.join(n).exists() || links.contains_key(n);
        if has("index.json") {
            let idx: oci_spec::image::ImageIndex = serde_json::from_slice(&read_small("index.json", dist::MANIFEST_LIMIT)?).map_err(|e| Error::invalid(format!("index.json: {e}")))?;
            for d in idx.manifests() {
                let mb = read_small(&blob_path(&d.digest().to_string()), dist::MANIFEST_LIMIT)?;
                let m: oci_spec::image::ImageManifest = serde_json::from_slice(&mb).map_err(|e| Error::invalid(format!("manifest {}: {e}", d.digest())))?;
                let cfg = m.config().digest().to_string();
                if !has("manifest.json") {
                    let ann = d.annotations().clone().unwrap_or_default();
                    let tags: Vec<String> = ann.get("io.containerd.image.name").cloned().into_iter().collect();
                    wanted.push((blob_path(&cfg), m.layers().iter().map(|l| blob_path(&l.digest().to_string())).collect(), tags));
                }
                manifests.insert(cfg, (mb, d.media_type().to_string()));
            }
        }
        if has("manifest.json") {
            #[derive(serde::Deserialize)]
            struct Entry {
                #[serde(rename = "Config")]
                config: String,
                #[serde(rename = "RepoTags", default)]
                repo_tags: Option<Vec<String>>,
                #[serde(rename = "Layers", default)]
                layers: Vec<String>,
            }
            let m: Vec<Entry> = serde_json::from_slice(&read_small("manifest.json", dist::MANIFEST_LIMIT)?).map_err(|e| Error::invalid(format!("manifest.json: {e}")))?;
            for e in m {
                wanted.push((e.config, e.layers, e.repo_tags.unwrap_or_default()));
            }
        }
        if wanted.is_empty() && !has("manifest.json") && !has("index.json") {
            return Err(Error::invalid("not an image archive: it has neither manifest.json nor index.json"));
        }
        let mut out = Vec::new();
        for (config_path, layer_paths, tags) in wanted {
            let cbytes = read_small(&config_path, super::CONFIG_LIMIT)?;
            let id = self.content.put(&cbytes, None)?;
            let cfg: oci_spec::image::ImageConfiguration = serde_json::from_slice(&cbytes).map_err(|e| Error::invalid(format!("image config {config_path}: {e}")))?;
            let diff_ids = cfg.rootfs().diff_ids().clone();
            if diff_ids.len() != layer_paths.len() {
                return Err(Error::invalid(format!("image config lists {} layers, the archive {}", diff_ids.len(), layer_paths.len())));
            }
            let chains = chain_ids(&diff_ids);
            let _lease = self.lease(chains.iter().cloned().chain([id.clone()]));
            let mut layers = Vec::new();
            for (i, p) in layer_paths.iter().enumerate() {
                let f = open(p)?;
                let mut ingest = self.content.ingest(None, None)?;
                let snap = self.snapshots.get(&self.store, &chains[i])?;
                let mut head = BufReader::with_capacity(256 * 1024, f);
                let comp = layer::sniff(&mut head)?;
                if snap.is_some() {
                    io::copy(&mut head, &mut ingest)?;
                } else {
                    let lowers = if i > 0 { self.snapshots.lowers(&self.store, &chains[i - 1])? } else { vec![] };
                    let u = layer::unpack(&self.snapshots, head, Some(&mut ingest), Some(&diff_ids[i]), &lowers)?;
                    self.snapshots.commit(&self.store, u.prepared, &chains[i], (i > 0).then(|| chains[i - 1].as_str()), &u.diff_id, u.size)?;
                }
                let size = ingest.written();
                let digest = ingest.commit()?;
                let media_type = match comp {
                    layer::Compression::Gzip => dist::MT_DOCKER_LAYER_GZIP.to_string(),
                    layer::Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd".to_string(),
                    layer::Compression::None => "application/vnd.docker.image.rootfs.diff.tar".to_string(),
                };
                layers.push(LayerRecord { digest, media_type, size, diff_id: diff_ids[i].clone() });
            }
            let size = chains.iter().map(|c| self.snapshots.get(&self.store, c).ok().flatten().map(|s| s.size).unwrap_or(0)).sum();
            let mut keys = Vec::new();
            for t in &tags {
                keys.push(Reference::parse(t)?.tag_key().unwrap());
            }
            // The layout's manifest, if it describes exactly these blobs.
            let (manifest, manifest_media_type) = match manifests.get(&id) {
                Some((mb, mt)) if self.manifest_matches(mb, &layers) => (Some(self.content.put(mb, None)?), Some(mt.clone())),
                _ => (None, None),
            };
            let rec = ImageRecord { id: id.clone(), manifest, manifest_media_type, repo_digests: vec![], extra_blobs: vec![], layers, chain_ids: chains, size, added: super::now_rfc3339(), last_tag_time: None, parent: None };
            self.commit_image(rec, &keys, None)?;
            if tags.is_empty() {
                out.push(format!("Loaded image ID: {id}"));
            }
            for t in tags {
                out.push(format!("Loaded image: {t}"));
            }
        }
        Ok(out)
    }

    fn manifest_matches(&self, bytes: &[u8], layers: &[LayerRecord]) -> bool {
        match serde_json::from_slice::<oci_spec::image::ImageManifest>(bytes) {
            Ok(m) => m.layers().len() == layers.len() && m.layers().iter().zip(layers).all(|(d, l)| d.digest().to_string() == l.digest),
            Err(_) => false,
        }
    }

    /// `import`: a root filesystem tar (plain or compressed) becomes a one-layer image.
    pub fn import(&self, input: impl Read, repo: Option<&str>, tag: Option<&str>, message: &str, changes: &[String]) -> Result<String> {
        let tag_key = tag_key(repo, tag)?;
        let mut config_extra = serde_json::Map::new();
        for c in changes {
            apply_change(&mut config_extra, c)?;
        }
        let prepared = self.snapshots.prepare()?;
        let mut ingest = self.content.ingest(None, None)?;
        let (diff_id, stats) = {
            let dec = layer::decompressor(BufReader::with_capacity(256 * 1024, input)).map_err(|e| Error::invalid(format!("import: {e}")))?;
            let gz = flate2::write::GzEncoder::new(&mut ingest, flate2::Compression::fast());
            let mut tee = TeeWrite { inner: dec, out: gz };
            let mut h = HashReader { inner: &mut tee, hasher: Sha256::new(), count: 0 };
            let stats = apply::apply_layer(&mut h, &prepared.fs(), &[]).map_err(|e| Error::invalid(format!("import: {e}")))?;
            io::copy(&mut h, &mut io::sink())?;
            let d = format!("sha256:{}", hex::encode(h.hasher.finalize()));
            tee.out.finish()?;
            (d, stats)
        };
        let size = ingest.written();
        let blob = ingest.commit()?;
        let _lease = self.lease([blob.clone(), diff_id.clone()]);
        let snap = self.snapshots.commit(&self.store, prepared, &diff_id, None, &diff_id, stats.bytes)?;
        let now = super::now_rfc3339();
        let comment = if message.is_empty() { "Imported from -".to_string() } else { message.to_string() };
        let cfg = json!({
            "architecture": super::pull::Platform::host().arch,
            "os": "linux",
            "created": now,
            "config": serde_json::Value::Object(config_extra),
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": now, "comment": comment }],
        });
        let id = self.content.put(&serde_json::to_vec(&cfg).unwrap(), None)?;
        let rec = ImageRecord {
            id: id.clone(),
            manifest: None,
            manifest_media_type: None,
            repo_digests: vec![],
            extra_blobs: vec![],
            layers: vec![LayerRecord { digest: blob, media_type: dist::MT_DOCKER_LAYER_GZIP.into(), size, diff_id: diff_id.clone() }],
            chain_ids: vec![diff_id],
            size: snap.size,
            added: now,
            last_tag_time: None,
            parent: None,
        };
        self.commit_image(rec, tag_key.as_slice(), None)?;
        Ok(id)
    }
}

/// The store's tag key for an optional `repo` and `tag` (import, commit).
fn tag_key(repo: Option<&str>, tag: Option<&str>) -> Result<Option<String>> {
    let Some(r) = repo.filter(|r| !r.is_empty()) else { return Ok(None) };
    let mut rf = Reference::parse_name_only(r)?;
    if let Some(t) = tag.filter(|t| !t.is_empty()) {
        rf = Reference::parse_name_only(&format!("{}:{t}", rf.name()))?;
    }
    Ok(Some(Reference::parse(&rf.to_string())?.tag_key().unwrap()))
}

/// What `commit` records besides the layer.
pub struct CommitInfo<'a> {
    /// The container's config (Docker's `ContainerConfig` JSON), before `changes`.
    pub config: serde_json::Value,
    pub changes: &'a [String],
    pub author: &'a str,
    pub comment: &'a str,
    pub created_by: &'a str,
    pub repo: Option<&'a str>,
    pub tag: Option<&'a str>,
}

impl ImageService {
    /// `commit`: a layer tar (uncompressed, overlay changes in OCI whiteout form) on top of
    /// `parent` becomes a new image, stored, unpacked and tagged like a pulled one.
    pub fn commit_layer(&self, parent: &ImageRecord, input: impl Read, info: CommitInfo) -> Result<String> {
        let tag_key = tag_key(info.repo, info.tag)?;
        let mut config = match info.config {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        for c in info.changes {
            apply_change(&mut config, c)?;
        }
        let parent_top = parent.chain_ids.last().cloned();
        let lowers = match &parent_top {
            Some(t) => self.snapshots.lowers(&self.store, t)?,
            None => vec![],
        };
        let prepared = self.snapshots.prepare()?;
        let mut ingest = self.content.ingest(None, None)?;
        let (diff_id, stats) = {
            let gz = flate2::write::GzEncoder::new(&mut ingest, flate2::Compression::fast());
            let mut tee = TeeWrite { inner: input, out: gz };
            let mut h = HashReader { inner: &mut tee, hasher: Sha256::new(), count: 0 };
            let stats = apply::apply_layer(&mut h, &prepared.fs(), &lowers).map_err(|e| Error::internal(format!("commit: {e}")))?;
            io::copy(&mut h, &mut io::sink())?;
            let d = format!("sha256:{}", hex::encode(h.hasher.finalize()));
            tee.out.finish()?;
            (d, stats)
        };
        let size = ingest.written();
        let blob = ingest.commit()?;
        let mut diffs: Vec<String> = parent.layers.iter().map(|l| l.diff_id.clone()).collect();
        diffs.push(diff_id.clone());
        let chains = chain_ids(&diffs);
        let top = chains.last().cloned().unwrap_or_default();
        let _lease = self.lease([blob.clone(), top.clone()]);
        let snap = self.snapshots.commit(&self.store, prepared, &top, parent_top.as_deref(), &diff_id, stats.bytes)?;
        let now = super::now_rfc3339();
        let mut cfg = self.config_json(parent)?;
        cfg["created"] = json!(now);
        cfg["config"] = serde_json::Value::Object(config);
        if !info.author.is_empty() {
            cfg["author"] = json!(info.author);
        }
        cfg["rootfs"] = json!({ "type": "layers", "diff_ids": diffs });
        let mut h = json!({ "created": now, "created_by": info.created_by });
        if !info.author.is_empty() {
            h["author"] = json!(info.author);
        }
        if !info.comment.is_empty() {
            h["comment"] = json!(info.comment);
        }
        match cfg.get_mut("history").and_then(|v| v.as_array_mut()) {
            Some(a) => a.push(h),
            None => cfg["history"] = json!([h]),
        }
        let id = self.content.put(&serde_json::to_vec(&cfg).map_err(|e| Error::internal(e.to_string()))?, None)?;
        let mut layers = parent.layers.clone();
        layers.push(LayerRecord { digest: blob, media_type: dist::MT_DOCKER_LAYER_GZIP.into(), size, diff_id });
        let rec = ImageRecord {
            id: id.clone(),
            manifest: None,
            manifest_media_type: None,
            repo_digests: vec![],
            extra_blobs: vec![],
            layers,
            chain_ids: chains,
            size: parent.size + snap.size,
            added: now,
            last_tag_time: None,
            parent: Some(parent.id.clone()),
        };
        self.commit_image(rec, tag_key.as_slice(), None)?;
        Ok(id)
    }
}

impl ImageService {
    /// A new image with `parent`'s layers and a new `config` (a build step that changes only
    /// the configuration: ENV, CMD, LABEL…), recorded in the history as an empty layer.
    pub fn derive(&self, parent: &ImageRecord, config: serde_json::Map<String, serde_json::Value>, created_by: &str, author: Option<&str>) -> Result<String> {
        let now = super::now_rfc3339();
        let mut cfg = self.config_json(parent)?;
        cfg["created"] = json!(now);
        cfg["config"] = serde_json::Value::Object(config);
        if let Some(a) = author {
            cfg["author"] = json!(a);
        }
        let h = json!({ "created": now, "created_by": created_by, "empty_layer": true });
        match cfg.get_mut("history").and_then(|v| v.as_array_mut()) {
            Some(a) => a.push(h),
            None => cfg["history"] = json!([h]),
        }
        let _parent = self.lease(std::iter::once(parent.id.clone()).chain(parent.layers.iter().map(|l| l.digest.clone())).chain(parent.chain_ids.iter().cloned()));
        let bytes = serde_json::to_vec(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        let id = crate::content::sha256_digest(&bytes);
        let _new = self.lease([id.clone()]);
        self.content.put(&bytes, None)?;
        let rec = ImageRecord { id: id.clone(), manifest: None, manifest_media_type: None, repo_digests: vec![], extra_blobs: vec![], layers: parent.layers.clone(), chain_ids: parent.chain_ids.clone(), size: parent.size, added: now, last_tag_time: None, parent: Some(parent.id.clone()) };
        self.commit_image(rec, &[], None)?;
        Ok(id)
    }

    /// `FROM scratch`: an image with no layers and an empty configuration, to build on.
    pub fn scratch(&self) -> Result<ImageRecord> {
        let cfg = json!({
            "architecture": super::pull::Platform::host().arch,
            "os": "linux",
            "config": {},
            "rootfs": { "type": "layers", "diff_ids": [] },
            "history": [],
        });
        let bytes = serde_json::to_vec(&cfg).map_err(|e| Error::internal(e.to_string()))?;
        let _new = self.lease([crate::content::sha256_digest(&bytes)]);
        let id = self.content.put(&bytes, None)?;
        let rec = ImageRecord { id, manifest: None, manifest_media_type: None, repo_digests: vec![], extra_blobs: vec![], layers: vec![], chain_ids: vec![], size: 0, added: super::now_rfc3339(), last_tag_time: None, parent: None };
        self.commit_image(rec.clone(), &[], None)?;
        Ok(rec)
    }
}

/// `--change` for import: the Dockerfile instructions that only touch the config.
pub(crate) fn apply_change(cfg: &mut serde_json::Map<String, serde_json::Value>, change: &str) -> Result<()> {
    let (instr, rest) = change.trim().split_once(char::is_whitespace).unwrap_or((change.trim(), ""));
    let rest = rest.trim();
    let list = |s: &str| -> serde_json::Value {
        match serde_json::from_str::<Vec<String>>(s) {
            Ok(v) => json!(v),
            Err(_) => json!(["/bin/sh", "-c", s]),
        }
    };
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => {
            cfg.insert("Cmd".into(), list(rest));
        }
        "ENTRYPOINT" => {
            cfg.insert("Entrypoint".into(), list(rest));
        }
        "WORKDIR" => {
            cfg.insert("WorkingDir".into(), json!(rest));
        }
        "USER" => {
            cfg.insert("User".into(), json!(rest));
        }
        "STOPSIGNAL" => {
            cfg.insert("StopSignal".into(), json!(rest));
        }
        "ENV" => {
            let (k, v) = rest.split_once('=').or_else(|| rest.split_once(' ')).ok_or_else(|| Error::invalid(format!("ENV needs KEY=VALUE: {change:?}")))?;
            let env = cfg.entry("Env").or_insert_with(|| json!([]));
            env.as_array_mut().unwrap().push(json!(format!("{}={}", k.trim(), v.trim())));
        }
        "LABEL" => {
            let (k, v) = rest.split_once('=').ok_or_else(|| Error::invalid(format!("LABEL needs KEY=VALUE: {change:?}")))?;
            let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
            labels.as_object_mut().unwrap().insert(k.trim().into(), json!(v.trim().trim_matches('"')));
        }
        "EXPOSE" => {
            let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
            for p in rest.split_whitespace() {
                let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                ports.as_object_mut().unwrap().insert(p, json!({}));
            }
        }
        "VOLUME" => {
            let vols = cfg.entry("Volumes").or_insert_with(|| json!({}));
            let paths: Vec<String> = serde_json::from_str(rest).unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
            for p in paths {
                vols.as_object_mut().unwrap().insert(p, json!({}));
            }
        }
        other => return Err(Error::invalid(format!("{other} is not a valid change command"))),
    }
    Ok(())
}

/// Reads from `inner` and writes the same bytes to `out` (the gzip encoder of the new blob).
struct TeeWrite<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for TeeWrite<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Clean an archive member name; refuse anything that climbs out.
fn member_name(raw: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(Error::invalid(format!("archive member {} is outside the archive", raw.display()))),
        }
    }
    Ok(out)
}

/// Unpack the archive's regular files into `dir` (nothing else is needed to load it);
/// symlinks (docker's old format links duplicate layers) are returned, not created.
fn spool(input: impl Read, dir: &Path) -> Result<HashMap<String, String>> {
    let mut links = HashMap::new();
    let mut ar = tar::Archive::new(input);
    for e in ar.entries().map_err(|e| Error::invalid(format!("reading archive: {e}")))? {
        let mut e = e.map_err(|e| Error::invalid(format!("reading archive: {e}")))?;
        let name = member_name(&e.path().map_err(|e| Error::invalid(format!("archive member name: {e}")))?)?;
        match e.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(dir.join(&name)).at(&name)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let p = dir.join(&name);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).at(parent)?;
                }
                let mut f = File::create(&p).at(&p)?;
                io::copy(&mut e, &mut f).map_err(|err| Error::invalid(format!("reading archive member {}: {err}", name.display())))?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = e.link_name().ok().flatten().ok_or_else(|| Error::invalid("archive link without a target"))?.into_owned();
                let base = if e.header().entry_type() == tar::EntryType::Symlink { name.parent().map(Path::to_path_buf).unwrap_or_default().join(target) } else { target };
                links.insert(name.to_string_lossy().into_owned(), base.to_string_lossy().into_owned());
            }
            _ => {}
        }
    }
    Ok(links)
}

/// Follow recorded links lexically, staying inside the archive.
fn resolve_spooled(links: &HashMap<String, String>, name: &str) -> Result<PathBuf> {
    let mut cur = name.to_string();
    for _ in 0..16 {
        let mut clean = PathBuf::new();
        for c in Path::new(&cur).components() {
            match c {
                Component::Normal(n) => clean.push(n),
                Component::ParentDir => {
                    if !clean.pop() {
                        return Err(Error::invalid(format!("archive member {name} points outside the archive")));
                    }
                }
                Component::CurDir => {}
                _ => return Err(Error::invalid(format!("archive member {name} points outside the archive"))),
            }
        }
        match links.get(&*clean.to_string_lossy()) {
            Some(t) => cur = t.clone(),
            None => return Ok(clean),
        }
    }
    Err(Error::invalid(format!("archive member {name}: too many links")))
}
