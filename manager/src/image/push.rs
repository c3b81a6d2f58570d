//! `push`: layers (skipped when the registry has them, mounted from another repository of the
//! same registry when we know one, uploaded otherwise), the config, then the manifest.

use super::progress::short;
use super::{ImageRecord, ImageService, Progress};
use crate::distribution::{self as dist, Credentials, Repo};
use crate::errors::{Error, Result};
use crate::reference::Reference;
use serde_json::json;
use std::sync::Arc;

impl ImageService {
    /// Push `name` (and with no tag, every tag of that repository).
    pub async fn push(self: &Arc<Self>, name: &str, tag: Option<&str>, creds: Option<Credentials>, progress: &Progress) -> Result<()> {
        let base = Reference::parse_name_only(name)?;
        let refs: Vec<Reference> = match tag.filter(|t| !t.is_empty()).map(str::to_string).or(base.tag.clone()) {
            Some(t) => vec![Reference::parse(&format!("{}:{t}", base.name()))?],
            None => {
                let prefix = format!("{}:", base.name());
                let mut v = Vec::new();
                for (k, _) in self.store.list::<String>(crate::store::TAGS)? {
                    if k.starts_with(&prefix) && !k[prefix.len()..].contains('/') {
                        v.push(Reference::parse(&k)?);
                    }
                }
                if v.is_empty() {
                    return Err(Error::not_found(format!("An image does not exist locally with the tag: {}", base.familiar_name())));
                }
                v
            }
        };
        for r in refs {
            let rec = self.resolve(&r.to_string()).map_err(|_| Error::not_found(format!("An image does not exist locally with the tag: {}", r.familiar_name())))?;
            progress.status(&format!("The push refers to repository [{}]", r.familiar_name()));
            let repo = self.registry.repo(&r, creds.clone(), true);
            let (digest, size) = self.push_one(&repo, &r, &rec, progress).await?;
            let tag = r.tag.clone().unwrap_or_default();
            progress.status(&format!("{tag}: digest: {digest} size: {size}"));
            progress.aux(json!({ "Tag": tag, "Digest": digest, "Size": size }));
            self.commit_image(self.get_record(&rec.id)?, &[], Some(format!("{}@{digest}", r.name())))?;
        }
        Ok(())
    }

    async fn push_one(self: &Arc<Self>, repo: &Repo<'_>, r: &Reference, rec: &ImageRecord, progress: &Progress) -> Result<(String, usize)> {
        let _lease = self.lease(rec.layers.iter().map(|l| l.digest.clone()).chain([rec.id.clone()]));
        // Repositories on the same registry that already hold this image's blobs.
        let mount_from: Vec<String> = rec
            .repo_digests
            .iter()
            .filter_map(|d| Reference::parse_name_only(d.split('@').next()?).ok())
            .filter(|x| x.domain == r.domain && x.path != r.path)
            .map(|x| x.path)
            .collect();
        for l in &rec.layers {
            let id = short(&l.digest);
            progress.id_status(&id, "Preparing");
            if repo.blob_exists(&l.digest).await? {
                progress.id_status(&id, "Layer already exists");
                continue;
            }
            let mut mounted = false;
            for from in &mount_from {
                if repo.mount_blob(&l.digest, from).await? {
                    progress.id_status(&id, &format!("Mounted from {from}"));
                    mounted = true;
                    break;
                }
            }
            if mounted {
                continue;
            }
            self.upload(repo, &l.digest, progress, Some(&id)).await?;
            progress.id_status(&id, "Pushed");
        }
        if !repo.blob_exists(&rec.id).await? {
            self.upload(repo, &rec.id, progress, None).await?;
        }
        // The manifest we pulled, byte for byte, keeps the digest; otherwise write one.
        let (bytes, mt) = match (&rec.manifest, &rec.manifest_media_type) {
            (Some(d), Some(mt)) if self.content.has(d) => (self.content.read(d, dist::MANIFEST_LIMIT)?, mt.clone()),
            _ => self.manifest_for(rec)?,
        };
        let digest = self.content.put(&bytes, None)?;
        repo.put_manifest(r.tag.as_deref().unwrap_or("latest"), &mt, bytes.clone()).await?;
        if rec.manifest.is_none() {
            self.store.write(|w| {
                if let Some(mut cur) = w.get::<ImageRecord>(crate::store::IMAGES, &rec.id)? {
                    cur.manifest = Some(digest.clone());
                    cur.manifest_media_type = Some(mt.clone());
                    w.put(crate::store::IMAGES, &rec.id, &cur)?;
                }
                Ok(())
            })?;
        }
        Ok((digest, bytes.len()))
    }

    async fn upload(&self, repo: &Repo<'_>, digest: &str, progress: &Progress, id: Option<&str>) -> Result<()> {
        let path = self.content.path(digest)?;
        let size = self.content.size(digest)?;
        if let Some(id) = id {
            progress.bar(id, "Pushing", 0, size);
        }
        let make = move || {
            let path = path.clone();
            let stream = async_stream_file(path);
            reqwest::Body::wrap_stream(stream)
        };
        repo.upload_blob(digest, size, &make).await?;
        if let Some(id) = id {
            progress.bar(id, "Pushing", size, size);
        }
        Ok(())
    }

    /// A Docker schema2 manifest for an image that came without one (load, import).
    pub(super) fn manifest_for(&self, rec: &ImageRecord) -> Result<(Vec<u8>, String)> {
        let layers: Vec<_> = rec
            .layers
            .iter()
            .map(|l| {
                let mt = if l.media_type.contains("zstd") {
                    dist::MT_OCI_LAYER_GZIP.replace("gzip", "zstd")
                } else if l.media_type.ends_with(".tar") || l.media_type.ends_with("tar") {
                    l.media_type.clone()
                } else {
                    dist::MT_DOCKER_LAYER_GZIP.to_string()
                };
                json!({ "mediaType": mt, "size": l.size, "digest": l.digest })
            })
            .collect();
        let m = json!({
            "schemaVersion": 2,
            "mediaType": dist::MT_DOCKER_MANIFEST,
            "config": { "mediaType": dist::MT_DOCKER_CONFIG, "size": self.content.size(&rec.id)?, "digest": rec.id },
            "layers": layers,
        });
        Ok((serde_json::to_vec(&m).unwrap(), dist::MT_DOCKER_MANIFEST.to_string()))
    }
}

fn async_stream_file(path: std::path::PathBuf) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use futures_util::StreamExt;
    futures_util::stream::once(async move { tokio::fs::File::open(path).await })
        .map(|f| match f {
            Ok(f) => tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).left_stream(),
            Err(e) => futures_util::stream::once(async move { Err(e) }).right_stream(),
        })
        .flatten()
}
