//! `pull`: manifest (through an index, for the requested platform), config, then every missing
//! layer downloaded and unpacked at once, several layers in parallel.

use super::layer::{self, ChannelReader};
use super::progress::short;
use super::{ImageRecord, ImageService, LayerRecord, Progress, CONFIG_LIMIT};
use crate::distribution::{self as dist, Credentials, Repo};
use crate::errors::{Error, Result};
use crate::reference::Reference;
use crate::snapshot::chain_ids;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use std::sync::Arc;

/// Layers downloaded at once (dockerd's default max-concurrent-downloads is 3).
const PARALLEL_LAYERS: usize = 3;

#[derive(Clone, Debug)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform { os: "linux".into(), arch: arch.into(), variant: None }
    }

    /// `linux/arm64/v8`, `linux/amd64`, or empty for the host's.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Ok(Self::host());
        }
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] => Ok(Platform { os: os.to_string(), arch: arch.to_string(), variant: None }),
            [os, arch, v] => Ok(Platform { os: os.to_string(), arch: arch.to_string(), variant: Some(v.to_string()) }),
            _ => Err(Error::invalid(format!("invalid platform {s:?}: expected os/arch[/variant]"))),
        }
    }
}

impl ImageService {
    pub async fn pull(self: &Arc<Self>, r: &Reference, platform: &Platform, creds: Option<Credentials>, progress: &Progress) -> Result<String> {
        let res = self.pull_inner(r, platform, creds, progress).await;
        if res.is_err() {
            // Verified manifests and configs of a pull that failed belong to no image: drop them.
            if let Err(e) = self.gc().await {
                tracing::warn!("cleaning up after a failed pull: {e}");
            }
        }
        res
    }

    async fn pull_inner(self: &Arc<Self>, r: &Reference, platform: &Platform, creds: Option<Credentials>, progress: &Progress) -> Result<String> {
        let repo = self.registry.repo(r, creds, false);
        progress.send(serde_json::json!({ "status": format!("Pulling from {}", r.familiar_name()), "id": r.object() }));

        let (mut bytes, mut mt, top_digest) = repo.get_manifest(r.object()).await?;
        let mut manifest_digest = top_digest.clone();
        let mut index_blob = None;
        if mt == dist::MT_OCI_INDEX || mt == dist::MT_DOCKER_LIST {
            let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("bad image index: {e}")))?;
            let chosen = select_platform(&index, platform).ok_or_else(|| {
                Error::not_found(format!("no matching manifest for {}/{} in the manifest list entries", platform.os, platform.arch))
            })?;
            index_blob = Some(self.content.put(&bytes, Some(&top_digest))?);
            let (b, m, d) = repo.get_manifest(&chosen).await?;
            if d != chosen {
                return Err(Error::internal(format!("manifest digest mismatch: index names {chosen}, got {d}")));
            }
            (bytes, mt, manifest_digest) = (b, m, d);
        }
        if mt != dist::MT_OCI_MANIFEST && mt != dist::MT_DOCKER_MANIFEST {
            return Err(Error::invalid(format!("unsupported manifest media type {mt:?} (schema 1 and artifacts are not images berth can run)")));
        }
        let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("bad image manifest: {e}")))?;
        let config_desc = manifest.config();
        let config_digest = config_desc.digest().to_string();
        crate::reference::validate_digest(&config_digest)?;
        if config_desc.size() > CONFIG_LIMIT {
            return Err(Error::invalid(format!("image config is {} bytes, over the {CONFIG_LIMIT} limit", config_desc.size())));
        }
        let config_bytes = if self.content.has(&config_digest) {
            self.content.read(&config_digest, CONFIG_LIMIT)?
        } else {
            let resp = repo.get_blob(&config_digest, 0).await?;
            let b = dist::read_limited(resp, config_desc.size()).await?;
            self.content.put(&b, Some(&config_digest))?;
            b
        };
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes).map_err(|e| Error::invalid(format!("bad image config: {e}")))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != manifest.layers().len() {
            return Err(Error::invalid(format!("image config lists {} layers, the manifest {}", diff_ids.len(), manifest.layers().len())));
        }
        let chains = chain_ids(&diff_ids);
        let mut layers = Vec::new();
        for (d, diff) in manifest.layers().iter().zip(&diff_ids) {
            crate::reference::validate_digest(&d.digest().to_string())?;
            crate::reference::validate_digest(diff)?;
            layers.push(LayerRecord { digest: d.digest().to_string(), media_type: d.media_type().to_string(), size: d.size(), diff_id: diff.clone() });
        }
        let manifest_blob = self.content.put(&bytes, Some(&manifest_digest))?;
        let _lease = self.lease(
            [config_digest.clone(), manifest_blob.clone()].into_iter().chain(index_blob.clone()).chain(layers.iter().map(|l| l.digest.clone())).chain(chains.iter().cloned()),
        );

        self.fetch_layers(&repo, &layers, &chains, progress).await?;

        let size = chains.iter().map(|c| self.snapshots.get(&self.store, c).ok().flatten().map(|s| s.size).unwrap_or(0)).sum();
        let rec = ImageRecord {
            id: config_digest.clone(),
            manifest: Some(manifest_blob),
            manifest_media_type: Some(mt),
            repo_digests: vec![],
            extra_blobs: index_blob.into_iter().collect(),
            layers,
            chain_ids: chains,
            size,
            added: super::now_rfc3339(),
            last_tag_time: None,
            parent: None,
        };
        let tags: Vec<String> = r.tag_key().filter(|_| r.digest.is_none()).into_iter().collect();
        let changed = self.commit_image(rec, &tags, Some(format!("{}@{top_digest}", r.name())))?;
        progress.status(&format!("Digest: {top_digest}"));
        let shown = match (&r.tag, &r.digest) {
            (_, Some(d)) => format!("{}@{d}", r.familiar_name()),
            (Some(t), None) => format!("{}:{t}", r.familiar_name()),
            _ => r.familiar_name(),
        };
        if changed {
            progress.status(&format!("Status: Downloaded newer image for {shown}"));
        } else {
            progress.status(&format!("Status: Image is up to date for {shown}"));
        }
        Ok(config_digest)
    }

    /// Download and unpack the layers that are not unpacked yet.
    async fn fetch_layers(self: &Arc<Self>, repo: &Repo<'_>, layers: &[LayerRecord], chains: &[String], progress: &Progress) -> Result<()> {
        let mut todo = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            if self.snapshots.get(&self.store, &chains[i])?.is_some() {
                progress.id_status(&short(&l.digest), "Already exists");
            } else {
                progress.id_status(&short(&l.digest), "Pulling fs layer");
                todo.push(i);
            }
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL_LAYERS));
        let mut results: Vec<(usize, Result<()>)> = Vec::new();
        {
            let mut futs = futures_util::stream::FuturesUnordered::new();
            for &i in &todo {
                let sem = sem.clone();
                futs.push(async move {
                    let _permit = sem.acquire().await;
                    (i, self.fetch_layer(repo, &layers[i], chains, i, progress).await)
                });
            }
            use futures_util::StreamExt;
            while let Some(r) = futs.next().await {
                results.push(r);
            }
        }
        // A layer that hardlinks into a lower layer can fail while that lower one is still
        // unpacking: retry those in order, from the stored blob, once all lowers are in.
        results.sort_by_key(|(i, _)| *i);
        for (i, res) in results {
            if let Err(e) = res {
                if i == 0 || self.snapshots.get(&self.store, &chains[i - 1])?.is_none() {
                    return Err(e);
                }
                tracing::debug!(layer = %layers[i].digest, error = %e, "retrying layer on top of its completed lowers");
                self.fetch_layer(repo, &layers[i], chains, i, progress).await?;
            }
        }
        Ok(())
    }

    async fn fetch_layer(self: &Arc<Self>, repo: &Repo<'_>, l: &LayerRecord, chains: &[String], i: usize, progress: &Progress) -> Result<()> {
        let id = short(&l.digest);
        let parent = (i > 0).then(|| chains[i - 1].clone());
        // Lowers that exist now: only hardlinks into lower layers need them.
        let lowers = match &parent {
            Some(p) if self.snapshots.get(&self.store, p)?.is_some() => self.snapshots.lowers(&self.store, p)?,
            _ => vec![],
        };
        let svc = self.clone();
        let (digest, diff_id, chain) = (l.digest.clone(), l.diff_id.clone(), chains[i].clone());
        if self.content.has(&l.digest) {
            let res = tokio::task::spawn_blocking(move || {
                let u = layer::unpack_from_store(&svc.content, &svc.snapshots, &digest, &diff_id, &lowers)?;
                svc.snapshots.commit(&svc.store, u.prepared, &chain, parent.as_deref(), &u.diff_id, u.size)
            })
            .await
            .map_err(|e| Error::internal(format!("unpack task: {e}")))?;
            res?;
            progress.id_status(&id, "Pull complete");
            return Ok(());
        }

        // Unpacking is slower than a loopback download: a short queue bounds the memory held in
        // chunks waiting for it (hyper hands out chunks of up to a few hundred KiB).
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
        let size = l.size;
        let unpacker = tokio::task::spawn_blocking(move || -> Result<()> {
            let mut ingest = svc.content.ingest(Some(&digest), Some(size))?;
            let u = layer::unpack(&svc.snapshots, ChannelReader::new(rx), Some(&mut ingest), Some(&diff_id), &lowers)?;
            ingest.commit().map_err(|e| e.context(format!("layer {digest}")))?;
            svc.snapshots.commit(&svc.store, u.prepared, &chain, parent.as_deref(), &u.diff_id, u.size)?;
            Ok(())
        });

        let download = async {
            let mut offset = 0u64;
            let mut last_report = 0u64;
            let mut attempts = 0;
            'outer: loop {
                let mut resp = repo.get_blob(&l.digest, offset).await?;
                loop {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => {
                            offset += chunk.len() as u64;
                            if offset > size {
                                return Err(Error::internal(format!("layer {}: the registry sent more than the {size} bytes the manifest declares", l.digest)));
                            }
                            if tx.send(chunk).await.is_err() {
                                return Ok(()); // the unpacker stopped: its error says why
                            }
                            if offset - last_report >= 512 * 1024 || offset == size {
                                last_report = offset;
                                progress.bar(&id, "Downloading", offset, size);
                            }
                        }
                        Ok(None) => break 'outer,
                        Err(e) if attempts < 3 => {
                            attempts += 1;
                            tracing::debug!(layer = %l.digest, offset, error = %e, "download interrupted, resuming");
                            tokio::time::sleep(std::time::Duration::from_millis(200 << attempts)).await;
                            continue 'outer;
                        }
                        Err(e) => return Err(Error::internal(format!("downloading {}: {e}", l.digest))),
                    }
                }
            }
            progress.id_status(&id, "Download complete");
            Ok(())
        };
        let dl = download.await;
        drop(tx);
        let unpacked = unpacker.await.map_err(|e| Error::internal(format!("unpack task: {e}")))?;
        dl?;
        unpacked?;
        progress.id_status(&id, "Pull complete");
        Ok(())
    }
}

fn select_platform(index: &ImageIndex, want: &Platform) -> Option<String> {
    let mut best: Option<(u8, String)> = None;
    for m in index.manifests() {
        let Some(p) = m.platform() else { continue };
        if p.os().to_string() != want.os || p.architecture().to_string() != want.arch {
            continue;
        }
        // An exact variant beats a missing one.
        let score = match (&want.variant, p.variant()) {
            (Some(w), Some(v)) if w == v => 2,
            (Some(_), Some(_)) => continue,
            (None, None) => 2,
            _ => 1,
        };
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, m.digest().to_string()));
        }
    }
    best.map(|(_, d)| d)
}
