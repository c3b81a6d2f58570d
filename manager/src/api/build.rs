//! /build and /build/prune: the classic builder's endpoints.

use super::{body_reader, json, stream_response, ApiResult, Query};
use crate::build::BuildOptions;
use crate::errors::Error;
use crate::image::Progress;
use crate::Daemon;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use std::collections::BTreeMap;
use std::sync::Arc;

type D = State<Arc<Daemon>>;

fn json_map<T: serde::de::DeserializeOwned>(q: &Query, k: &str) -> Result<BTreeMap<String, T>, Error> {
    match q.get(k).filter(|s| !s.is_empty()) {
        Some(s) => serde_json::from_str(s).map_err(|e| Error::invalid(format!("invalid {k}: {e}"))),
        None => Ok(BTreeMap::new()),
    }
}

/// X-Registry-Config: base64 JSON of registry → credentials; the build's pulls use the first.
fn registry_config(h: &HeaderMap) -> Option<crate::distribution::Credentials> {
    use base64::Engine;
    let raw = h.get("x-registry-config")?.to_str().ok()?;
    let bytes = base64::engine::general_purpose::URL_SAFE.decode(raw.trim()).or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw.trim())).ok()?;
    let m: BTreeMap<String, crate::distribution::Credentials> = serde_json::from_slice(&bytes).ok()?;
    m.into_values().find(|c| !c.username.is_empty())
}

/// POST /build: the body is the context tar; the answer Docker's JSON progress stream.
pub async fn build(State(d): D, RawQuery(q): RawQuery, headers: HeaderMap, body: Body) -> ApiResult {
    let q = Query::parse(q.as_deref());
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(Error::new(crate::errors::Kind::NotImplemented, "building from a remote URL is not supported; send the context as the request body").into());
    }
    let opts = BuildOptions {
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
        build_args: json_map(&q, "buildargs")?,
        labels: json_map(&q, "labels")?,
        no_cache: q.flag("nocache"),
        pull: q.flag("pull"),
        quiet: q.flag("q"),
        target: q.get("target").filter(|t| !t.is_empty()).map(str::to_string),
        network: q.get("networkmode").filter(|t| !t.is_empty()).map(str::to_string),
        remove: q.get("rm").is_none() || q.flag("rm"),
        force_remove: q.flag("forcerm"),
        creds: registry_config(&headers),
    };
    for t in &opts.tags {
        crate::reference::Reference::parse(t).map_err(|e| Error::invalid(format!("invalid tag {t:?}: {}", e.message)))?;
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = Progress::new(tx);
    let reader = body_reader(body);
    let svc = d.builds.clone();
    tokio::spawn(async move {
        // The service reports its errors into the stream itself (with a failing RUN's code).
        if let Err(e) = svc.build(opts, reader, progress).await {
            tracing::info!(error = %e, "build failed");
        }
    });
    Ok(stream_response(rx, "application/json"))
}

/// POST /build/prune
pub async fn prune(State(d): D) -> ApiResult {
    let (deleted, reclaimed) = d.builds.prune().await?;
    Ok(json(&serde_json::json!({ "CachesDeleted": deleted, "SpaceReclaimed": reclaimed })))
}
