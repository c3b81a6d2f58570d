//! The Docker Engine API on a unix socket: routing, version prefixes and negotiation, the
//! headers Docker sends, and the one place errors become HTTP statuses.

mod build;
mod containers;
mod images;
mod networks;
mod system;
mod volumes;

use crate::errors::{Error, Kind};
use crate::Daemon;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

/// The newest API version berth speaks, and the oldest it accepts.
pub const API_VERSION: &str = "1.47";
pub const MIN_API_VERSION: &str = "1.24";

/// The API version a request asked for (its `/v1.NN` prefix, or the newest).
#[derive(Clone, Copy, Debug)]
pub struct ApiVersion(pub u32, pub u32);

pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = match self.0.kind {
            Kind::InvalidArgument => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::Conflict => StatusCode::CONFLICT,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Kind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        };
        json_status(status, &serde_json::json!({ "message": self.0.message }))
    }
}

pub type ApiResult<T = axum::response::Response> = Result<T, ApiError>;

pub fn json_status<T: serde::Serialize>(status: StatusCode, v: &T) -> axum::response::Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder().status(status).header("content-type", "application/json").body(Body::from(body)).unwrap()
}

pub fn json<T: serde::Serialize>(v: &T) -> axum::response::Response {
    json_status(StatusCode::OK, v)
}

/// A response whose body is whatever the receiver yields (progress streams, tar exports).
pub fn stream_response(rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>, content_type: &str) -> axum::response::Response {
    let s = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx)) });
    Response::builder().status(StatusCode::OK).header("content-type", content_type).body(Body::from_stream(s)).unwrap()
}

/// A `Write` for blocking code whose bytes become a response body (tar exports): bounded,
/// so a slow client slows the writer instead of filling memory.
pub struct BodyWriter(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for BodyWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(Bytes::copy_from_slice(b)).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A buffered [`BodyWriter`] and the body it feeds.
pub fn body_channel() -> (std::io::BufWriter<BodyWriter>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let s = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx)) });
    (std::io::BufWriter::with_capacity(256 << 10, BodyWriter(tx)), Body::from_stream(s))
}

/// Docker's `filters` query parameter (JSON), as key → values.
pub fn filters(q: &Query) -> Result<HashMap<String, Vec<String>>, Error> {
    Ok(crate::image::ListFilters::parse_any(q.get("filters"))?.0)
}

/// Blocking service work (disk, mounts, netlink, nft) off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> crate::errors::Result<T> + Send + 'static) -> crate::errors::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::internal(e.to_string()))?
}

/// Query parameters, keeping repeated keys (`names=a&names=b`).
#[derive(Default, Debug)]
pub struct Query(pub HashMap<String, Vec<String>>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.entry(percent_decode(k)).or_default().push(percent_decode(v));
        }
        Query(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.last()).map(String::as_str)
    }
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0.get(k).cloned().unwrap_or_default()
    }
    /// Docker's booleans: `1`, `true`, `True` are true; absent, empty, `0`, `false` are false.
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some(v) if !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/system/df", get(system::df))
        .route("/auth", post(system::auth))
        .route("/build", post(build::build))
        .route("/build/prune", post(build::prune))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::save))
        .route("/images/search", get(images::search))
        .route("/images/prune", post(images::prune))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/changes", get(containers::changes))
        .route("/containers/{id}/export", get(containers::export))
        .route("/containers/{id}/archive", get(containers::archive_get).head(containers::archive_head).put(containers::archive_put))
        .route("/commit", post(containers::commit))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/exec", post(containers::exec_create))
        .route("/containers/{id}", axum::routing::delete(containers::remove))
        .route("/exec/{id}/start", post(containers::exec_start))
        .route("/exec/{id}/resize", post(containers::exec_resize))
        .route("/exec/{id}/json", get(containers::exec_inspect))
        .route("/events", get(containers::events))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route("/volumes/{name}", get(volumes::inspect).delete(volumes::remove))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route("/networks/{id}", get(networks::inspect).delete(networks::remove))
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/images/{*rest}", get(images::by_name_get).post(images::by_name_post).delete(images::by_name_delete))
        .fallback(|req: Request<Body>| async move {
            ApiError(Error::not_found(format!("page not found: {} {}", req.method(), req.uri().path())))
        })
        .with_state(daemon)
}

/// Strip `/v1.NN`, refuse versions outside what berth speaks, then route.
pub async fn handle(router: Router, mut req: Request<hyper::body::Incoming>) -> Result<Response<Body>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let mut version = parse_version(API_VERSION).unwrap();
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some((v, tail)) = rest.split_once('/') {
            if let Some(ver) = parse_version(v) {
                let min = parse_version(MIN_API_VERSION).unwrap();
                let max = parse_version(API_VERSION).unwrap();
                let msg = if (ver.0, ver.1) < (min.0, min.1) {
                    Some(format!("client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"))
                } else if (ver.0, ver.1) > (max.0, max.1) {
                    Some(format!("client version {v} is too new. Maximum supported API version is {API_VERSION}"))
                } else {
                    None
                };
                if let Some(m) = msg {
                    return Ok(with_headers(ApiError(Error::invalid(m)).into_response()));
                }
                version = ver;
                let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
                let new = format!("/{tail}{}", pq.strip_prefix(&path).unwrap_or(""));
                if let Ok(uri) = new.parse() {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    req.extensions_mut().insert(version);
    let req = req.map(Body::new);
    let resp = router.oneshot(req).await.unwrap_or_else(|e| match e {});
    Ok(with_headers(resp))
}

fn parse_version(v: &str) -> Option<ApiVersion> {
    let (a, b) = v.split_once('.')?;
    Some(ApiVersion(a.parse().ok()?, b.parse().ok()?))
}

fn with_headers(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("server", HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    resp
}

/// Feed a request body to blocking code as a `Read`.
pub fn body_reader(body: Body) -> crate::image::layer_reader::ChannelReader {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut s = body.into_data_stream();
        while let Some(chunk) = s.next().await {
            match chunk {
                Ok(b) => {
                    if tx.send(b).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!("request body: {e}");
                    break;
                }
            }
        }
    });
    crate::image::layer_reader::ChannelReader::new(rx)
}
