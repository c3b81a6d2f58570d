//! /images/…: each handler parses, calls the image service once, renders.

use super::{body_reader, json, stream_response, ApiError, ApiResult, Query};
use crate::errors::Error;
use crate::image::{decode_auth_header, ListFilters, Progress};
use crate::reference::Reference;
use crate::Daemon;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use std::sync::Arc;

type D = State<Arc<Daemon>>;

fn auth(h: &HeaderMap) -> Option<crate::distribution::Credentials> {
    decode_auth_header(h.get("x-registry-auth").and_then(|v| v.to_str().ok()))
}

pub async fn list(State(d): D, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let filters = ListFilters::parse(q.get("filters"))?;
    Ok(json(&d.images.list(&filters, q.flag("all"))?))
}

/// POST /images/create: pull (`fromImage`) or import (`fromSrc=-`).
pub async fn create(State(d): D, RawQuery(q): RawQuery, headers: HeaderMap, body: Body) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = Progress::new(tx);
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return Err(Error::invalid("importing from a URL is not supported; send the tar as the request body (fromSrc=-)").into());
        }
        let (repo, tag, message) = (q.get("repo").map(str::to_string), q.get("tag").map(str::to_string), q.get("message").unwrap_or("").to_string());
        let changes = q.all("changes");
        let reader = body_reader(body);
        let svc = d.images.clone();
        tokio::task::spawn_blocking(move || match svc.import(reader, repo.as_deref(), tag.as_deref(), &message, &changes) {
            Ok(id) => progress.status(&id),
            Err(e) => progress.error(&e.message),
        });
        return Ok(stream_response(rx, "application/json"));
    }
    let image = q.get("fromImage").filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid("fromImage or fromSrc is required"))?;
    let mut r = Reference::parse_name_only(image)?;
    if let Some(t) = q.get("tag").filter(|t| !t.is_empty()) {
        if t.starts_with("sha256:") {
            r.digest = Some(t.to_string());
            crate::reference::validate_digest(t)?;
        } else {
            r = Reference::parse_name_only(&format!("{}:{t}", r.name()))?;
        }
    }
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some(crate::reference::DEFAULT_TAG.into());
    }
    let platform = crate::image::Platform::parse(q.get("platform").unwrap_or(""))?;
    let creds = auth(&headers);
    let svc = d.images.clone();
    tokio::spawn(async move {
        if let Err(e) = svc.pull(&r, &platform, creds, &progress).await {
            tracing::info!(image = %r, error = %e, "pull failed");
            progress.error(&e.message);
        }
    });
    Ok(stream_response(rx, "application/json"))
}

pub async fn load(State(d): D, RawQuery(q): RawQuery, body: Body) -> ApiResult {
    // `quiet` only silences progress bars (berth prints none); the result lines always go out.
    let _ = q;
    let reader = body_reader(body);
    let svc = d.images.clone();
    let res = tokio::task::spawn_blocking(move || svc.load(reader)).await.map_err(|e| Error::internal(e.to_string()))?;
    let lines = res?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let p = Progress::new(tx);
    for l in lines {
        p.stream(&format!("{l}\n"));
    }
    drop(p);
    Ok(stream_response(rx, "application/json"))
}

pub async fn save(State(d): D, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    save_names(d, q.all("names")).await
}

async fn save_names(d: Arc<Daemon>, names: Vec<String>) -> ApiResult {
    // Resolve first, so a bad name is a 404 rather than a broken tar.
    for n in &names {
        d.images.resolve(n)?;
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let svc = d.images.clone();
    tokio::task::spawn_blocking(move || {
        let w = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(256 * 1024) };
        if let Err(e) = svc.save(&names, w) {
            tracing::warn!("save: {e}");
            // Ending the body early makes the tar truncated, which the client reports.
        }
    });
    Ok(stream_response(rx, "application/x-tar"))
}

struct ChannelWriter {
    tx: tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(256 * 1024));
            self.tx.send(chunk.into()).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        }
        Ok(())
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = std::io::Write::flush(self);
    }
}

pub async fn search(State(d): D, RawQuery(q): RawQuery, headers: HeaderMap) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let term = q.get("term").filter(|t| !t.is_empty()).ok_or_else(|| Error::invalid("term is required"))?;
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(25);
    Ok(json(&d.images.search(term, limit, auth(&headers)).await?))
}

pub async fn prune(State(d): D, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let filters = ListFilters::parse(q.get("filters"))?;
    Ok(json(&d.images.prune(&filters).await?))
}

/// `/images/NAME/ACTION`: names contain slashes, so the action is the last segment.
fn split_action(rest: &str) -> (&str, &str) {
    match rest.rsplit_once('/') {
        Some((name, action)) if ["json", "history", "get", "tag", "push", "mount", "unmount"].contains(&action) => (name, action),
        _ => (rest, ""),
    }
}

pub async fn by_name_get(State(d): D, Path(rest): Path<String>) -> ApiResult {
    match split_action(&rest) {
        (name, "json") => Ok(json(&d.images.inspect(name)?)),
        (name, "history") => Ok(json(&d.images.history(name)?)),
        (name, "get") => save_names(d.clone(), vec![name.to_string()]).await,
        _ => Err(not_found(&rest)),
    }
}

pub async fn by_name_post(State(d): D, Path(rest): Path<String>, RawQuery(q): RawQuery, headers: HeaderMap) -> ApiResult {
    let q = Query::parse(q.as_deref());
    match split_action(&rest) {
        (name, "tag") => {
            let repo = q.get("repo").filter(|r| !r.is_empty()).ok_or_else(|| Error::invalid("repo is required"))?;
            d.images.tag(name, repo, q.get("tag"))?;
            Ok(axum::response::Response::builder().status(StatusCode::CREATED).body(Body::empty()).unwrap())
        }
        (name, "push") => {
            if headers.get("x-registry-auth").is_none() {
                return Err(Error::invalid("X-Registry-Auth header is required").into());
            }
            let creds = auth(&headers);
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let progress = Progress::new(tx);
            let (svc, name, tag) = (d.images.clone(), name.to_string(), q.get("tag").map(str::to_string));
            tokio::spawn(async move {
                if let Err(e) = svc.push(&name, tag.as_deref(), creds, &progress).await {
                    tracing::info!(image = %name, error = %e, "push failed");
                    progress.error(&e.message);
                }
            });
            Ok(stream_response(rx, "application/json"))
        }
        (name, "mount") => {
            let path = d.images.mount(name)?;
            Ok(json(&serde_json::json!({ "Path": path })))
        }
        (name, "unmount") => {
            d.images.unmount(name)?;
            Ok(json(&serde_json::json!({})))
        }
        _ => Err(not_found(&rest)),
    }
}

pub async fn by_name_delete(State(d): D, Path(rest): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    Ok(json(&d.images.remove(&rest, q.flag("force")).await?))
}

fn not_found(rest: &str) -> ApiError {
    ApiError(Error::not_found(format!("page not found: /images/{rest}")))
}
