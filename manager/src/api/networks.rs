//! /networks/…: handlers parse, call the network (or container) service once, render.

use super::{blocking, filters, json, json_status, ApiResult, Query};
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
    for k in f.keys() {
        if !["label", "label!", "until"].contains(&k.as_str()) {
            return Err(Error::invalid(format!("invalid filter '{k}'")).into());
        }
    }
    let until = match f.get("until").and_then(|v| v.last()) {
        Some(u) => Some(until_time(u)?),
        None => None,
    };
    let gone = blocking(move || {
        let has = |r: &crate::network::NetworkRecord, v: &str| match v.split_once('=') {
            Some((k, val)) => r.labels.get(k).is_some_and(|x| x == val),
            None => r.labels.contains_key(v),
        };
        // Docker's prune filters: keep what they do not select.
        let keep = |r: &crate::network::NetworkRecord| {
            f.get("label").is_some_and(|ls| !ls.iter().all(|v| has(r, v)))
                || f.get("label!").is_some_and(|ls| ls.iter().any(|v| has(r, v)))
                || until.is_some_and(|u| chrono::DateTime::parse_from_rfc3339(&r.created).map(|c| c.timestamp() >= u).unwrap_or(true))
        };
        n.prune(keep)
    })
    .await?;
    Ok(json(&serde_json::json!({ "NetworksDeleted": gone })))
}

/// Docker's `until`: a Unix time, an RFC 3339 time, or a duration before now (`24h`, `90m`).
fn until_time(s: &str) -> Result<i64, Error> {
    let bad = || Error::invalid(format!("invalid filter 'until={s}': a timestamp or a duration such as 24h"));
    if let Ok(n) = s.parse::<f64>() {
        return Ok(n as i64);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Ok(chrono::Utc::now().timestamp() - secs as i64)
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
