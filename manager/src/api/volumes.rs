//! /volumes/…: handlers parse, call the volume service once, render.

use super::{blocking, filters, json, json_status, ApiResult, Query};
use crate::errors::Error;
use crate::Daemon;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bollard_stubs::models::{VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};
use std::sync::Arc;

type D = State<Arc<Daemon>>;



pub async fn list(State(d): D, RawQuery(q): RawQuery) -> ApiResult {
    let f = filters(&Query::parse(q.as_deref()))?;
    let v = d.volumes.clone();
    let list = blocking(move || Ok(v.list(&f)?.iter().map(|r| v.inspect(r)).collect::<Vec<_>>())).await?;
    Ok(json(&VolumeListResponse { volumes: Some(list), warnings: Some(vec![]) }))
}

pub async fn inspect(State(d): D, Path(name): Path<String>) -> ApiResult {
    let r = d.volumes.get(&name)?;
    Ok(json(&d.volumes.inspect(&r)))
}

pub async fn create(State(d): D, b: Bytes) -> ApiResult {
    let req: VolumeCreateRequest = serde_json::from_slice(&b).map_err(|e| Error::invalid(format!("invalid volume configuration: {e}")))?;
    let v = d.volumes.clone();
    let r = blocking(move || v.create(req.name.as_deref(), req.driver.as_deref(), req.driver_opts.unwrap_or_default(), req.labels.unwrap_or_default(), false)).await?;
    Ok(json_status(StatusCode::CREATED, &d.volumes.inspect(&r)))
}

pub async fn remove(State(d): D, Path(name): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let force = Query::parse(q.as_deref()).flag("force");
    let v = d.volumes.clone();
    blocking(move || v.remove(&name, force)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn prune(State(d): D, RawQuery(q): RawQuery) -> ApiResult {
    let f = filters(&Query::parse(q.as_deref()))?;
    // API >= 1.42: only anonymous volumes unless the `all` filter says otherwise.
    let all = f.get("all").is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
    let v = d.volumes.clone();
    let (gone, bytes) = blocking(move || v.prune(all, &f)).await?;
    Ok(json(&VolumePruneResponse { volumes_deleted: Some(gone), space_reclaimed: Some(bytes as i64) }))
}
