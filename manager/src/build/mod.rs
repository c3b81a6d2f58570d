//! Dockerfile builds, as Docker's classic builder makes them: every instruction gives an image
//! on top of the previous one. RUN runs as a real container (shim and berth-runtime) whose
//! changes are committed; COPY, ADD and WORKDIR change a temporary overlay of the image; the
//! other instructions only change the configuration. A cache in the store maps a step (its
//! parent image, its text after substitution, the hash of its inputs) to the image it made.

pub mod context;
pub mod dockerfile;
pub mod ignore;
mod steps;

use crate::container::ContainerService;
use crate::distribution::Credentials;
use crate::errors::{Error, Result};
use crate::image::{ImageRecord, ImageService, Progress};
use crate::store::{Store, Table};
use context::{Context, Scratch};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// step key (sha256 of parent, step and inputs) → the image that step made.
pub const BUILD_CACHE: Table = Table::new("build_cache");

/// The classic builder's options (`POST /build` query, `berth build` flags).
#[derive(Default, Clone)]
pub struct BuildOptions {
    pub tags: Vec<String>,
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    /// `--build-arg`; a name without a value takes the value from nowhere (the client
    /// resolves `--build-arg NAME` from its environment).
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    pub quiet: bool,
    pub target: Option<String>,
    /// Network mode of RUN containers (`default` = the bridge).
    pub network: Option<String>,
    /// Remove intermediate containers (Docker's `rm`, default true); `force_rm` even on failure.
    pub remove: bool,
    pub force_remove: bool,
    pub creds: Option<Credentials>,
}

pub struct BuildService {
    store: Arc<Store>,
    images: Arc<ImageService>,
    containers: Arc<ContainerService>,
    /// Contexts and step overlays of builds in flight, under the data root.
    root: PathBuf,
}

/// Args any build may pass without declaring them (Docker's predefined ARGs).
const PREDEFINED_ARGS: &[&str] = &["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"];

impl BuildService {
    pub fn new(store: Arc<Store>, images: Arc<ImageService>, containers: Arc<ContainerService>, data_root: &std::path::Path) -> Result<Arc<Self>> {
        let root = data_root.join("build");
        // What a build killed mid-way left: its context and any overlay still mounted.
        context::remove_tree(&root);
        std::fs::create_dir_all(&root)?;
        store.write(|w| w.ensure_table(BUILD_CACHE))?;
        Ok(Arc::new(BuildService { store, images, containers, root }))
    }

    /// Build `input` (the context tar), reporting on `out` (errors too); returns the image ID.
    pub async fn build(self: &Arc<Self>, opts: BuildOptions, input: impl Read + Send + 'static, out: Progress) -> Result<String> {
        let mut code = None;
        let res = self.build_inner(opts, input, out.clone(), &mut code).await;
        if let Err(e) = &res {
            match code {
                Some(c) => out.error_code(&e.message, c),
                None => out.error(&e.message),
            }
        }
        res
    }

    async fn build_inner(self: &Arc<Self>, opts: BuildOptions, input: impl Read + Send + 'static, out: Progress, code: &mut Option<i64>) -> Result<String> {
        for t in &opts.tags {
            crate::reference::Reference::parse(t).map_err(|e| Error::invalid(format!("invalid tag {t:?}: {e}")))?;
        }
        let work = Scratch(self.root.join(crate::content::random_hex(8)));
        let ctx_dir = work.0.join("context");
        let dockerfile = if opts.dockerfile.is_empty() { "Dockerfile".to_string() } else { opts.dockerfile.clone() };
        let (ctx, df) = tokio::task::spawn_blocking(move || -> Result<_> {
            let ctx = Context::unpack(input, &ctx_dir)?;
            let text = ctx.read(&dockerfile)?.ok_or_else(|| Error::invalid(format!("Cannot locate specified Dockerfile: {dockerfile}")))?;
            let df = dockerfile::parse(&text).map_err(|e| Error::invalid(e.to_string()))?;
            if let Some(ig) = ctx.read(".dockerignore")? {
                ctx.apply_ignore(&ignore::Ignore::parse(&ig).map_err(|e| Error::invalid(format!(".dockerignore: {e}")))?)?;
            }
            Ok((ctx, df))
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        let last = match &opts.target {
            Some(t) if !t.is_empty() => df.stages.iter().position(|s| s.name.as_deref() == Some(&t.to_ascii_lowercase())).ok_or_else(|| Error::invalid(format!("failed to reach build target {t} in Dockerfile")))?,
            _ => df.stages.len().checked_sub(1).ok_or_else(|| Error::invalid("the Dockerfile has no FROM"))?,
        };
        let total = df.stages[..=last].iter().map(|s| 1 + s.instructions.len()).sum::<usize>();
        let mut b = steps::Builder::new(self.clone(), opts.clone(), ctx, work, out.clone(), total, &df);
        for n in &df.notes {
            b.say(&format!("[Note] {n}\n"));
        }
        let mut image = None;
        for stage in &df.stages[..=last] {
            match b.stage(stage, &df).await {
                Ok(i) => image = Some(i),
                Err(e) => {
                    *code = b.failed_code;
                    return Err(e);
                }
            }
        }
        let mut image = image.ok_or_else(|| Error::invalid("the Dockerfile has no FROM"))?;
        if !opts.labels.is_empty() {
            image = b.labels(image, &opts.labels).await?;
        }
        if !b.any_step && image.layers.is_empty() {
            return Err(Error::invalid("No image was generated. Is your Dockerfile empty?"));
        }
        let unused = b.unused_args();
        if !unused.is_empty() {
            b.say(&format!("[Warning] One or more build-args [{}] were not consumed\n", unused.join(" ")));
        }
        out.aux(serde_json::json!({ "ID": image.id }));
        b.say(&format!("Successfully built {}\n", short(&image.id)));
        for t in &opts.tags {
            self.images.tag(&image.id, t, None)?;
            let r = crate::reference::Reference::parse(t)?;
            b.say(&format!("Successfully tagged {}\n", crate::image::familiar_key(&r.tag_key().unwrap_or_default())));
        }
        if opts.quiet {
            out.stream(&format!("{}\n", image.id));
        }
        Ok(image.id)
    }

    /// `POST /build/prune`: forget every cached step and delete the images only the cache
    /// kept (untagged, unused); returns the keys dropped and the bytes reclaimed.
    pub async fn prune(&self) -> Result<(Vec<String>, u64)> {
        let entries: Vec<(String, String)> = self.store.list(BUILD_CACHE)?;
        self.store.write(|w| {
            for (k, _) in &entries {
                w.delete(BUILD_CACHE, k)?;
            }
            Ok(())
        })?;
        let before = self.images.disk_usage_bytes()?;
        for (_, id) in &entries {
            if self.images.tags_of(id).map(|t| t.is_empty()).unwrap_or(false) && self.images.used_by(id).is_none() && !self.images.has_children(id)? {
                let _ = self.images.remove(id, false).await;
            }
        }
        // Deleting one step can make its parent childless: repeat until nothing changes.
        loop {
            let mut removed = false;
            for (_, id) in &entries {
                if self.images.get_record(id).is_ok() && self.images.tags_of(id).map(|t| t.is_empty()).unwrap_or(false) && self.images.used_by(id).is_none() && !self.images.has_children(id)? {
                    removed |= self.images.remove(id, false).await.is_ok();
                }
            }
            if !removed {
                break;
            }
        }
        let after = self.images.disk_usage_bytes()?;
        Ok((entries.into_iter().map(|(k, _)| k).collect(), before.saturating_sub(after)))
    }

    fn cached(&self, key: &str) -> Option<ImageRecord> {
        let id: String = self.store.get(BUILD_CACHE, key).ok()??;
        self.images.get_record(&id).ok()
    }

    fn remember(&self, key: &str, id: &str) -> Result<()> {
        self.store.write(|w| w.put(BUILD_CACHE, key, &id.to_string()))
    }
}

/// Docker's short image ID (12 hex digits).
pub fn short(id: &str) -> &str {
    let h = id.strip_prefix("sha256:").unwrap_or(id);
    &h[..h.len().min(12)]
}
