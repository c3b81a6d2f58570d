//! /containers/…, /exec/…, /events: handlers parse, call the container service once, render.
//! attach and exec start take over the connection (HTTP upgrade), as Docker's API does.

use super::{json, json_status, stream_response, ApiError, ApiResult, Query};
use crate::container::io::{frame, Stream};
use crate::container::{ListOptions, LogOptions};
use crate::errors::Error;
use crate::Daemon;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::{ContainerCreateBody, ContainerCreateResponse, ContainerWaitResponse, ExecConfig};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type D = State<Arc<Daemon>>;

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn not_modified() -> Response {
    StatusCode::NOT_MODIFIED.into_response()
}

fn filters(q: &Query) -> Result<std::collections::HashMap<String, Vec<String>>, ApiError> {
    Ok(super::filters(q)?)
}

pub async fn create(State(d): D, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let body: ContainerCreateBody = serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("invalid container configuration: {e}")))?;
    let (id, warnings) = d.containers.create(q.get("name"), body)?;
    Ok(json_status(StatusCode::CREATED, &ContainerCreateResponse { id, warnings }))
}

pub async fn list(State(d): D, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let opts = ListOptions { all: q.flag("all"), limit: q.get("limit").and_then(|l| l.parse::<i64>().ok()).filter(|l| *l > 0).map(|l| l as usize), filters: filters(&q)? };
    Ok(json(&d.containers.list(&opts)?))
}

pub async fn inspect(State(d): D, Path(id): Path<String>) -> ApiResult {
    let mut v = serde_json::to_value(d.containers.inspect(&id)?).map_err(|e| Error::internal(e.to_string()))?;
    legacy_network_fields(&mut v);
    Ok(json(&v))
}

/// Docker still fills the deprecated top-level `NetworkSettings.IPAddress` & co. from the
/// default bridge's endpoint (scripts use `{{.NetworkSettings.IPAddress}}`); the generated
/// types no longer have them.
fn legacy_network_fields(v: &mut serde_json::Value) {
    let Some(ns) = v.get_mut("NetworkSettings").and_then(|n| n.as_object_mut()) else { return };
    let bridge = ns.get("Networks").and_then(|n| n.get("bridge")).cloned().unwrap_or_default();
    let s = |k: &str| bridge.get(k).cloned().unwrap_or_else(|| serde_json::json!(""));
    for k in ["EndpointID", "Gateway", "GlobalIPv6Address", "IPAddress", "IPv6Gateway", "MacAddress"] {
        ns.insert(k.into(), s(k));
    }
    for k in ["GlobalIPv6PrefixLen", "IPPrefixLen"] {
        ns.insert(k.into(), bridge.get(k).cloned().unwrap_or_else(|| serde_json::json!(0)));
    }
    ns.insert("Bridge".into(), serde_json::json!(""));
    ns.insert("HairpinMode".into(), serde_json::json!(false));
    ns.insert("LinkLocalIPv6Address".into(), serde_json::json!(""));
    ns.insert("LinkLocalIPv6PrefixLen".into(), serde_json::json!(0));
    ns.insert("SecondaryIPAddresses".into(), serde_json::Value::Null);
    ns.insert("SecondaryIPv6Addresses".into(), serde_json::Value::Null);
}

pub async fn start(State(d): D, Path(id): Path<String>) -> ApiResult {
    Ok(if d.containers.start(&id).await? { no_content() } else { not_modified() })
}

pub async fn stop(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let t = q.get("t").and_then(|t| t.parse().ok());
    Ok(if d.containers.stop(&id, t, q.get("signal").filter(|s| !s.is_empty())).await? { no_content() } else { not_modified() })
}

pub async fn kill(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    d.containers.kill(&id, q.get("signal")).await?;
    Ok(no_content())
}

pub async fn restart(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    d.containers.restart(&id, q.get("t").and_then(|t| t.parse().ok())).await?;
    Ok(no_content())
}

pub async fn pause(State(d): D, Path(id): Path<String>) -> ApiResult {
    d.containers.pause(&id, true).await?;
    Ok(no_content())
}

pub async fn unpause(State(d): D, Path(id): Path<String>) -> ApiResult {
    d.containers.pause(&id, false).await?;
    Ok(no_content())
}

pub async fn rename(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    d.containers.rename(&id, q.get("name").unwrap_or(""))?;
    Ok(no_content())
}

pub async fn remove(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    d.containers.remove(&id, q.flag("force"), q.flag("v")).await?;
    Ok(no_content())
}

pub async fn prune(State(d): D) -> ApiResult {
    let mut deleted = Vec::new();
    for c in d.containers.list(&ListOptions { all: true, ..Default::default() })? {
        let st = c.state.map(|s| s.to_string()).unwrap_or_default();
        if st == "exited" || st == "created" || st == "dead" {
            let id = c.id.unwrap_or_default();
            if d.containers.remove(&id, false, false).await.is_ok() {
                deleted.push(id);
            }
        }
    }
    Ok(json(&serde_json::json!({ "ContainersDeleted": deleted, "SpaceReclaimed": 0 })))
}

/// The response headers go out at once, the body when the condition is met: Docker's
/// clients wait for the headers before they start the container.
pub async fn wait(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let condition = q.get("condition").unwrap_or("").to_string();
    let ticket = d.containers.wait_ticket(&id, &condition)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let svc = d.containers.clone();
    tokio::spawn(async move {
        let resp = match svc.wait_with(ticket).await {
            Ok(code) => ContainerWaitResponse { status_code: code, error: None },
            Err(e) => ContainerWaitResponse { status_code: -1, error: Some(bollard_stubs::models::ContainerWaitExitError { message: Some(e.message) }) },
        };
        let _ = tx.send(Bytes::from(serde_json::to_vec(&resp).unwrap_or_default()));
    });
    Ok(stream_response(rx, "application/json"))
}

pub async fn resize(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let (w, h) = dims(&q)?;
    d.containers.resize(&id, w, h).await?;
    Ok(StatusCode::OK.into_response())
}

fn dims(q: &Query) -> Result<(u32, u32), ApiError> {
    let w = q.get("w").and_then(|v| v.parse().ok()).ok_or_else(|| Error::invalid("w must be a number"))?;
    let h = q.get("h").and_then(|v| v.parse().ok()).ok_or_else(|| Error::invalid("h must be a number"))?;
    Ok((w, h))
}

pub async fn top(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    Ok(json(&d.containers.top(&id, q.get("ps_args").unwrap_or("")).await?))
}

fn since(v: Option<&str>) -> Option<f64> {
    let v = v.filter(|v| !v.is_empty() && *v != "0")?;
    v.parse::<f64>().ok().or_else(|| chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| t.timestamp() as f64))
}

pub async fn logs(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let opts = LogOptions {
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        follow: q.flag("follow"),
        timestamps: q.flag("timestamps"),
        tail: q.get("tail").and_then(|t| t.parse().ok()),
        since: since(q.get("since")),
        until: since(q.get("until")),
    };
    if !opts.stdout && !opts.stderr {
        return Err(Error::invalid("Bad parameters: you must choose at least one stream").into());
    }
    let (rec, mut live_rx) = d.containers.attach_handles(&id)?;
    let tty = rec.tty();
    let past = d.containers.read_logs(&rec, &opts);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = tx.send(Bytes::from(past));
    if opts.follow && rec.state.status.is_live() && opts.until.is_none() {
        let streams = if tty { 1 } else { 2 };
        tokio::spawn(async move {
            let mut ended = 0;
            while let Ok((s, b)) = live_rx.recv().await {
                if s == Stream::Stdin {
                    ended += 1;
                    if ended >= streams {
                        break;
                    }
                    continue;
                }
                if (s == Stream::Stdout && !opts.stdout) || (s == Stream::Stderr && !opts.stderr) {
                    continue;
                }
                let mut data = Vec::new();
                if opts.timestamps {
                    data.extend_from_slice(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).as_bytes());
                    data.push(b' ');
                }
                data.extend_from_slice(&b);
                let out = if tty { data } else { frame(s, &data) };
                if tx.send(Bytes::from(out)).is_err() {
                    break;
                }
            }
        });
    } else {
        drop(tx);
    }
    let ct = if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    Ok(stream_response(rx, ct))
}

/// 101 and the stream types Docker announces; the caller spawns the I/O on the upgrade.
fn upgraded_response(tty: bool) -> Response {
    let mut r = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS).body(Body::empty()).unwrap();
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" }));
    r
}

/// Docker's detach keys: `ctrl-p,ctrl-q` by default; `ctrl-X`, `a`..`z`, `@`, `[`, `\`, `]`, `^`, `_`.
fn detach_keys(spec: Option<&str>) -> Vec<u8> {
    let spec = spec.filter(|s| !s.is_empty()).unwrap_or("ctrl-p,ctrl-q");
    let mut out = Vec::new();
    for k in spec.split(',') {
        let k = k.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            match c.as_bytes() {
                [b] if b.is_ascii_alphabetic() => out.push(b.to_ascii_lowercase() - b'a' + 1),
                b"@" => out.push(0),
                b"[" => out.push(27),
                b"\\" => out.push(28),
                b"]" => out.push(29),
                b"^" => out.push(30),
                b"_" => out.push(31),
                _ => return vec![16, 17],
            }
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return vec![16, 17];
        }
    }
    out
}

/// Pump a process's output to a hijacked connection and its stdin from it.
/// `stdin` resolves to the fifo once the process runs; `close_stdin` ends its input.
#[allow(clippy::too_many_arguments)]
async fn hijacked_io<S, F, C>(
    upgraded: hyper::upgrade::Upgraded,
    tty: bool,
    mut output: tokio::sync::broadcast::Receiver<(Stream, Bytes)>,
    streams: usize,
    want: (bool, bool),
    stdin: Option<S>,
    close_stdin: C,
    prelude: Vec<u8>,
    detach: Vec<u8>,
) where
    S: std::future::Future<Output = Option<std::path::PathBuf>> + Send + 'static,
    C: FnOnce() -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(upgraded);
    let (mut rd, mut wr) = tokio::io::split(io);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    if let Some(stdin) = stdin {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            let Some(path) = stdin.await else { return };
            let mut fifo = match tokio::net::unix::pipe::OpenOptions::new().read_write(true).open_sender(&path) {
                Ok(f) => f,
                Err(_) => return,
            };
            let mut buf = vec![0u8; 16 * 1024];
            let mut matched = 0usize;
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                // Detach keys: swallow the sequence and end the attachment, the process runs on.
                let mut data = Vec::with_capacity(n);
                for &b in &buf[..n] {
                    if tty && !detach.is_empty() && b == detach[matched] {
                        matched += 1;
                        if matched == detach.len() {
                            let _ = fifo.write_all(&data).await;
                            let _ = stop_tx.send(true);
                            return;
                        }
                        continue;
                    }
                    if matched > 0 {
                        data.extend_from_slice(&detach[..matched]);
                        matched = 0;
                    }
                    data.push(b);
                }
                if fifo.write_all(&data).await.is_err() {
                    break;
                }
            }
            drop(fifo);
            close_stdin().await;
        });
    }
    if !prelude.is_empty() && wr.write_all(&prelude).await.is_err() {
        return;
    }
    let mut ended = 0;
    loop {
        tokio::select! {
            m = output.recv() => match m {
                Ok((Stream::Stdin, _)) => {
                    ended += 1;
                    if ended >= streams {
                        break;
                    }
                }
                Ok((s, b)) => {
                    if (s == Stream::Stdout && !want.0) || (s == Stream::Stderr && !want.1) {
                        continue;
                    }
                    let data = if tty { b.to_vec() } else { frame(s, &b) };
                    if wr.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            },
            _ = stop_rx.changed() => break,
        }
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}

pub async fn attach(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery, mut req: Request) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let (rec, output) = d.containers.attach_handles(&id)?;
    if !rec.state.status.is_live() && rec.state.status != crate::container::record::Status::Created && !q.flag("logs") {
        return Err(Error::conflict("You cannot attach to a stopped container, start it first").into());
    }
    let tty = rec.tty();
    let want = (q.flag("stdout"), q.flag("stderr"));
    let prelude = if q.flag("logs") {
        d.containers.read_logs(&rec, &LogOptions { stdout: want.0, stderr: want.1, follow: false, timestamps: false, tail: None, since: None, until: None })
    } else {
        vec![]
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let streaming = q.flag("stream");
    let with_stdin = q.flag("stdin") && rec.config.open_stdin.unwrap_or(false);
    let svc = d.containers.clone();
    let cid = rec.id.clone();
    let once = rec.config.stdin_once.unwrap_or(false);
    let detach = detach_keys(q.get("detachKeys"));
    tokio::spawn(async move {
        let Ok(up) = on_upgrade.await else { return };
        let (svc2, cid2) = (svc.clone(), cid.clone());
        let stdin = with_stdin.then(|| async move { svc2.stdin_when_running(&cid2).await });
        let streams = if !streaming { 0 } else if tty { 1 } else { 2 };
        let close = move || async move {
            if once {
                svc.close_stdin(&cid).await;
            }
        };
        if streams == 0 {
            let io = hyper_util::rt::TokioIo::new(up);
            let (_, mut wr) = tokio::io::split(io);
            let _ = wr.write_all(&prelude).await;
            let _ = wr.shutdown().await;
            return;
        }
        hijacked_io(up, tty, output, streams, want, stdin, close, prelude, detach).await;
    });
    Ok(upgraded_response(tty))
}

pub async fn exec_create(State(d): D, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let cfg: ExecConfig = serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("invalid exec configuration: {e}")))?;
    let eid = d.containers.exec_create(&id, cfg)?;
    Ok(json_status(StatusCode::CREATED, &serde_json::json!({ "Id": eid })))
}

pub async fn exec_start(State(d): D, Path(id): Path<String>, mut req: Request) -> ApiResult {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.map_err(|e| Error::invalid(format!("reading body: {e}")))?;
    #[derive(serde::Deserialize, Default)]
    struct StartBody {
        #[serde(rename = "Detach", default)]
        detach: bool,
        #[serde(rename = "Tty", default)]
        tty: Option<bool>,
        #[serde(rename = "ConsoleSize", default)]
        console_size: Option<Vec<usize>>,
    }
    let b: StartBody = if body.is_empty() { StartBody::default() } else { serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("invalid exec start request: {e}")))? };
    let start = d.containers.exec_start(&id, b.tty, b.console_size).await?;
    if b.detach {
        return Ok(StatusCode::OK.into_response());
    }
    let tty = start.tty;
    let svc = d.containers.clone();
    let eid = id.clone();
    tokio::spawn(async move {
        let Ok(up) = on_upgrade.await else { return };
        let path = start.stdin.clone();
        let stdin = path.map(|p| async move { Some(p) });
        let close = move || async move { svc.exec_close_stdin(&eid).await };
        hijacked_io(up, tty, start.output, start.streams, (true, true), stdin, close, vec![], vec![]).await;
    });
    Ok(upgraded_response(tty))
}

pub async fn exec_inspect(State(d): D, Path(id): Path<String>) -> ApiResult {
    Ok(json(&d.containers.exec_inspect(&id)?))
}

pub async fn exec_resize(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let (w, h) = dims(&q)?;
    d.containers.exec_resize(&id, w, h).await?;
    Ok(StatusCode::OK.into_response())
}

/// GET /events: past events (since) then live ones, until `until` or the client leaves.
pub async fn events(State(d): D, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let since_t = since(q.get("since"));
    let until_t = since(q.get("until"));
    let f = filters(&q)?;
    let (past, mut live) = d.events.subscribe();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let keep = move |ev: &serde_json::Value| -> bool {
        let t = ev["time"].as_i64().unwrap_or(0) as f64;
        if until_t.is_some_and(|u| t > u) {
            return false;
        }
        for (k, vals) in &f {
            let ok = match k.as_str() {
                "type" => vals.iter().any(|v| ev["Type"] == *v),
                "event" => vals.iter().any(|v| ev["Action"] == *v),
                "container" => vals.iter().any(|v| ev["Actor"]["ID"].as_str().is_some_and(|id| id.starts_with(v.as_str())) || ev["Actor"]["Attributes"]["name"] == *v),
                "image" => vals.iter().any(|v| ev["Actor"]["Attributes"]["image"] == *v),
                "label" => vals.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => ev["Actor"]["Attributes"][k] == val,
                    None => !ev["Actor"]["Attributes"][v.as_str()].is_null(),
                }),
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        true
    };
    if let Some(s) = since_t {
        for ev in past.iter().filter(|e| e["time"].as_i64().unwrap_or(0) as f64 >= s) {
            if keep(ev) {
                let mut b = serde_json::to_vec(ev).unwrap_or_default();
                b.push(b'\n');
                let _ = tx.send(Bytes::from(b));
            }
        }
    }
    let until_deadline = until_t.map(|u| {
        let now = chrono::Utc::now().timestamp() as f64;
        std::time::Duration::from_secs_f64((u - now).max(0.0))
    });
    tokio::spawn(async move {
        let sleep = async {
            match until_deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                ev = live.recv() => match ev {
                    Ok(ev) => {
                        if keep(&ev) {
                            let mut b = serde_json::to_vec(&ev).unwrap_or_default();
                            b.push(b'\n');
                            if tx.send(Bytes::from(b)).is_err() {
                                break;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                },
                _ = &mut sleep => break,
                _ = tx.closed() => break,
            }
        }
    });
    Ok(stream_response(rx, "application/json"))
}

/// GET /containers/{id}/stats: one sample (`stream=false`) or one a second.
pub async fn stats(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let stream = q.get("stream").is_none_or(|v| v != "0" && v != "false");
    let one_shot = q.flag("one-shot");
    d.containers.check_exists(&id)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let svc = d.containers.clone();
    tokio::spawn(async move {
        let mut pre = serde_json::json!({});
        // Without streaming Docker still takes two samples a second apart, so CPU % means something.
        if !stream && !one_shot {
            if let Ok(s) = svc.stats_sample(&id, &pre) {
                pre = s;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        loop {
            let Ok(s) = svc.stats_sample(&id, &pre) else { break };
            let mut b = serde_json::to_vec(&s).unwrap_or_default();
            b.push(b'\n');
            if tx.send(Bytes::from(b)).is_err() || !stream {
                break;
            }
            pre = s;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    Ok(stream_response(rx, "application/json"))
}

/// GET /containers/{id}/changes: Docker's `[{"Path", "Kind"}]`.
pub async fn changes(State(d): D, Path(id): Path<String>) -> ApiResult {
    let c = d.containers.clone();
    let list = tokio::task::spawn_blocking(move || c.changes(&id)).await.map_err(|e| Error::internal(e.to_string()))??;
    let v: Vec<serde_json::Value> = list.iter().map(|c| serde_json::json!({ "Path": format!("/{}", c.path), "Kind": c.kind as u8 })).collect();
    Ok(json(&v))
}

/// GET /containers/{id}/export: the filesystem as a tar, streamed as it is written.
pub async fn export(State(d): D, Path(id): Path<String>) -> ApiResult {
    d.containers.find(&id)?;
    let (w, body) = super::body_channel();
    let c = d.containers.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = c.export(&id, w) {
            tracing::warn!(container = %id, "export: {e}");
        }
    });
    Ok(Response::builder().status(StatusCode::OK).header("content-type", "application/x-tar").body(body).unwrap())
}

/// POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=: body an optional
/// config overriding the container's.
pub async fn commit(State(d): D, RawQuery(q): RawQuery, body: Bytes) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let container = q.get("container").filter(|c| !c.is_empty()).ok_or_else(|| Error::invalid("commit: no container given (?container=)"))?.to_string();
    let config: Option<serde_json::Value> = if body.iter().all(|b| b.is_ascii_whitespace()) {
        None
    } else {
        Some(serde_json::from_slice(&body).map_err(|e| Error::invalid(format!("invalid commit configuration: {e}")))?)
    };
    let pause = q.get("pause").is_none_or(|p| p.is_empty() || q.flag("pause"));
    let opt = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    let changes: Vec<String> = q.all("changes").into_iter().flat_map(|c| c.lines().map(str::to_string).collect::<Vec<_>>()).filter(|c| !c.trim().is_empty()).collect();
    let id = d.containers.commit(&container, opt("repo"), opt("tag"), opt("comment").unwrap_or_default(), opt("author").unwrap_or_default(), changes, pause, config).await?;
    Ok(json_status(StatusCode::CREATED, &serde_json::json!({ "Id": id })))
}

fn path_stat_header(st: &crate::container::PathStat) -> HeaderValue {
    use base64::Engine;
    let j = serde_json::to_vec(st).unwrap_or_default();
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(j)).unwrap_or(HeaderValue::from_static(""))
}

fn archive_path(q: &Query) -> Result<String, Error> {
    q.get("path").filter(|p| !p.is_empty()).map(str::to_string).ok_or_else(|| Error::invalid("path is required (?path=)"))
}

/// HEAD /containers/{id}/archive?path=: the path's stat in `X-Docker-Container-Path-Stat`.
pub async fn archive_head(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let path = archive_path(&Query::parse(q.as_deref()))?;
    let st = d.containers.path_stat(&id, &path).await?;
    Ok(Response::builder().status(StatusCode::OK).header("x-docker-container-path-stat", path_stat_header(&st)).body(Body::empty()).unwrap())
}

/// GET /containers/{id}/archive?path=: the path as a tar, streamed.
pub async fn archive_get(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    let path = archive_path(&Query::parse(q.as_deref()))?;
    let (w, body) = super::body_channel();
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel();
    let c = d.containers.clone();
    let (idc, pathc) = (id.clone(), path.clone());
    tokio::spawn(async move {
        if let Err(e) = c.read_archive(&idc, &pathc, w, stat_tx).await {
            tracing::debug!(container = %idc, "archive of {pathc}: {e}");
        }
    });
    let st = match stat_rx.await {
        Ok(r) => r?,
        // The operation failed before it could stat (no such container, …): ask again for the error.
        Err(_) => {
            d.containers.path_stat(&id, &path).await?;
            return Err(Error::internal("archive failed").into());
        }
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-tar")
        .header("x-docker-container-path-stat", path_stat_header(&st))
        .body(body)
        .unwrap())
}

/// PUT /containers/{id}/archive?path=DIR: the body (a tar) extracted into DIR.
pub async fn archive_put(State(d): D, Path(id): Path<String>, RawQuery(q): RawQuery, body: Body) -> ApiResult {
    let q = Query::parse(q.as_deref());
    let path = archive_path(&q)?;
    let reader = super::body_reader(body);
    d.containers.extract_archive(&id, &path, reader, q.flag("copyUIDGID")).await?;
    Ok(StatusCode::OK.into_response())
}
