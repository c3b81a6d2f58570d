//! /networks/…: handlers parse, call the network (or container) service once, render.

use super::{json, json_status, ApiResult, Query};
use crate::errors::Error;
use crate::Daemon;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bollard_stubs::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest};
use std::sync::Arc;

type D = State<Arc<Daemon>>;

fn body<T: serde::de::DeserializeOwned>(b: &Bytes, what: &str) -> Result<T, Error> {
    serde_json::from_slice(b).map_err(|e| Error::invalid(format!("invalid {what}: {e}")))
}

fn filters(q: &Query) -> Result<std::collections::HashMap<String, Vec<String>>, Error> {
    Ok(crate::image::ListFilters::parse_any(q.get("filters"))?.0)
}

/// Blocking network operations (netlink, nft) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> crate::errors::Result<T> + Send + 'static) -> crate::errors::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal(e.to_string()))?
}

pub async fn list(State(d): D, RawQuery(q): RawQuery) -> ApiResult {
    let f = filters(&Query::parse(q.as_deref()))?;
    let n = d.networks.clone();
    let list: Vec<_> = n.list(&f)?.iter().map(|r| n.inspect(r)).collect();
    Ok(json(&list))
}

pub async fn inspect(State(d): D, Path(id): Path<String>) -> ApiResult {
    let r = d.networks.find(&id)?;
    Ok(json(&d.networks.inspect(&r)))
}

pub async fn create(State(d): D, b: Bytes) -> ApiResult {
    let req: NetworkCreateRequest = body(&b, "network configuration")?;
    let n = d.networks.clone();
    let (id, warning) = blocking(move || n.create(req)).await?;
    Ok(json_status(StatusCode::CREATED, &NetworkCreateResponse { id, warning }))
}

pub async fn remove(State(d): D, Path(id): Path<String>) -> ApiResult {
    let n = d.networks.clone();
    blocking(move || n.remove(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn prune(State(d): D, RawQuery(q): RawQuery) -> ApiResult {
    let f = filters(&Query::parse(q.as_deref()))?;
    let n = d.networks.clone();
    let gone = blocking(move || {
        let keep = |r: &crate::network::NetworkRecord| {
            f.get("label").is_some_and(|ls| {
                !ls.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => r.labels.get(k).is_some_and(|x| x == val),
                    None => r.labels.contains_key(v.as_str()),
                })
            })
        };
        n.prune(keep)
    })
    .await?;
    Ok(json(&serde_json::json!({ "NetworksDeleted": gone })))
}

pub async fn connect(State(d): D, Path(id): Path<String>, b: Bytes) -> ApiResult {
    let req: NetworkConnectRequest = body(&b, "connect request")?;
    d.containers.connect(&req.container, &id, req.endpoint_config.unwrap_or_default()).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn disconnect(State(d): D, Path(id): Path<String>, b: Bytes) -> ApiResult {
    let req: NetworkDisconnectRequest = body(&b, "disconnect request")?;
    d.containers.disconnect(&req.container, &id, req.force.unwrap_or(false)).await?;
    Ok(StatusCode::OK.into_response())
}
