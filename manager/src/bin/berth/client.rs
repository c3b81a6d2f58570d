//! The Docker Engine API client: HTTP/1.1 over berthd's unix socket, API version
//! negotiation, request helpers and the mapping of daemon errors.

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::io::AsyncRead;
use tokio::net::UnixStream;
use tokio::sync::OnceCell;

/// The newest API version this CLI speaks.
pub const CLIENT_API_VERSION: &str = "1.47";
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

pub type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Cannot connect to the berth daemon at {host}: is berthd running?")]
    Connect { host: String, cause: std::io::Error },
    #[error("Error response from daemon: {message}")]
    Daemon { status: StatusCode, message: String },
    #[error("unsupported host {0}: berth only speaks to unix:// sockets")]
    BadHost(String),
    #[error("error during connect: {0}")]
    Http(#[from] hyper::Error),
    #[error("error reading the daemon's response: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Daemon { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// One request, before it is sent. Paths are unversioned (`/images/json`); the client
/// adds the negotiated `/vX.Y` prefix.
pub struct Req {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(&'static str, String)>,
    body: Option<ReqBody>,
}

impl Req {
    pub fn new(method: Method, path: impl Into<String>) -> Req {
        Req {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(path: impl Into<String>) -> Req {
        Req::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Req {
        Req::new(Method::POST, path)
    }

    pub fn delete(path: impl Into<String>) -> Req {
        Req::new(Method::DELETE, path)
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> Req {
        self.query.push((key.to_string(), value.into()));
        self
    }

    /// Adds `key=1` when `flag` is set (docker's encoding of boolean options).
    pub fn flag(self, key: &str, flag: bool) -> Req {
        if flag {
            self.query(key, "1")
        } else {
            self
        }
    }

    /// Adds `key=value` when the value is present and not empty.
    pub fn query_opt(self, key: &str, value: Option<&str>) -> Req {
        match value {
            Some(v) if !v.is_empty() => self.query(key, v),
            _ => self,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.push((name, value.into()));
        self
    }

    pub fn json_body<T: serde::Serialize>(mut self, value: &T) -> Req {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.headers.push(("Content-Type", "application/json".to_string()));
        self.body = Some(full_body(bytes));
        self
    }

    /// Streams `reader` as the request body (chunked).
    pub fn stream_body<R: AsyncRead + Send + 'static>(mut self, content_type: &str, reader: R) -> Req {
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024).map(|r| r.map(Frame::data));
        self.headers.push(("Content-Type", content_type.to_string()));
        self.body = Some(UnsyncBoxBody::new(StreamBody::new(stream)));
        self
    }
}

#[cfg(test)]
impl Req {
    /// The request target as it would be sent to a daemon speaking API `version`.
    pub fn uri(&self, version: &str) -> String {
        versioned_uri(version, self)
    }
}

fn full_body(bytes: Vec<u8>) -> ReqBody {
    UnsyncBoxBody::new(Full::new(Bytes::from(bytes)).map_err(|never| match never {}))
}

fn empty_body() -> ReqBody {
    UnsyncBoxBody::new(Empty::<Bytes>::new().map_err(|never| match never {}))
}

#[derive(Clone)]
pub struct Client {
    host: String,
    socket: PathBuf,
    debug: bool,
    api_version: OnceCell<String>,
}

impl Client {
    pub fn new(host: &str, debug: bool) -> Result<Client, ClientError> {
        let socket = host
            .strip_prefix("unix://")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ClientError::BadHost(host.to_string()))?;
        Ok(Client {
            host: host.to_string(),
            socket: PathBuf::from(socket),
            debug,
            api_version: OnceCell::new(),
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The API version in use: min(client, daemon), learnt from `GET /_ping` once.
    pub async fn api_version(&self) -> Result<&str, ClientError> {
        let v = self
            .api_version
            .get_or_try_init(|| async {
                let resp = self.send_raw(Method::GET, "/_ping".to_string(), Vec::new(), empty_body()).await?;
                let server = resp
                    .headers()
                    .get("Api-Version")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                Ok::<String, ClientError>(match server {
                    Some(server) if version_less(&server, CLIENT_API_VERSION) => server,
                    _ => CLIENT_API_VERSION.to_string(),
                })
            })
            .await?;
        Ok(v.as_str())
    }

    /// Sends a request; a non-2xx answer becomes [`ClientError::Daemon`].
    pub async fn send(&self, req: Req) -> Result<Response<Incoming>, ClientError> {
        let resp = self.send_unchecked(req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(daemon_error(resp).await)
    }

    /// Sends a request and returns the response whatever its status.
    pub async fn send_unchecked(&self, req: Req) -> Result<Response<Incoming>, ClientError> {
        let version = self.api_version().await?.to_string();
        let uri = versioned_uri(&version, &req);
        self.send_raw(req.method, uri, req.headers, req.body.unwrap_or_else(empty_body))
            .await
    }

    /// Sends a request that asks to take over the connection (docker's "hijack": attach,
    /// exec start): `Connection: Upgrade`, `Upgrade: tcp`, answered by `101 UPGRADED`, after
    /// which the socket carries the raw stream both ways. A daemon that answers `200`
    /// instead streams the output as the response body (no input).
    pub async fn hijack(&self, req: Req) -> Result<Hijacked, ClientError> {
        let version = self.api_version().await?.to_string();
        let uri = versioned_uri(&version, &req);
        if self.debug {
            eprintln!("DEBU {} {uri} (upgrade)", req.method);
        }
        let stream = UnixStream::connect(&self.socket).await.map_err(|cause| ClientError::Connect {
            host: self.host.clone(),
            cause,
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let debug = self.debug;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                if debug {
                    eprintln!("DEBU connection: {e}");
                }
            }
        });
        let mut builder = Request::builder()
            .method(req.method)
            .uri(uri)
            .header("Host", "berth")
            .header("User-Agent", concat!("berth-cli/", env!("CARGO_PKG_VERSION")))
            .header("Connection", "Upgrade")
            .header("Upgrade", "tcp");
        let has_content_type = req.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        if !has_content_type {
            builder = builder.header("Content-Type", "text/plain");
        }
        let request = builder
            .body(req.body.unwrap_or_else(empty_body))
            .map_err(|e| ClientError::Decode(format!("bad request: {e}")))?;
        let resp = sender.send_request(request).await?;
        if self.debug {
            eprintln!("DEBU -> {}", resp.status());
        }
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upgraded = hyper::upgrade::on(resp).await?;
            let parts = upgraded
                .downcast::<TokioIo<UnixStream>>()
                .map_err(|_| ClientError::Decode("the upgraded connection is not a unix socket".into()))?;
            return Ok(Hijacked::Upgraded {
                stream: parts.io.into_inner(),
                buffered: parts.read_buf,
            });
        }
        if resp.status().is_success() {
            return Ok(Hijacked::Body(resp.into_body()));
        }
        Err(daemon_error(resp).await)
    }

    /// Sends and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, req: Req) -> Result<T, ClientError> {
        let resp = self.send(req).await?;
        let bytes = read_body(resp).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends and discards the answer's body.
    pub async fn call(&self, req: Req) -> Result<(), ClientError> {
        let resp = self.send(req).await?;
        read_body(resp).await?;
        Ok(())
    }

    async fn send_raw(
        &self,
        method: Method,
        uri: String,
        headers: Vec<(&'static str, String)>,
        body: ReqBody,
    ) -> Result<Response<Incoming>, ClientError> {
        if self.debug {
            eprintln!("DEBU {method} {uri}");
        }
        let stream = UnixStream::connect(&self.socket).await.map_err(|cause| ClientError::Connect {
            host: self.host.clone(),
            cause,
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let debug = self.debug;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                if debug {
                    eprintln!("DEBU connection: {e}");
                }
            }
        });
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("Host", "berth")
            .header("User-Agent", concat!("berth-cli/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(body)
            .map_err(|e| ClientError::Decode(format!("bad request: {e}")))?;
        let resp = sender.send_request(request).await?;
        if self.debug {
            eprintln!("DEBU -> {}", resp.status());
        }
        Ok(resp)
    }
}

/// The versioned request URI with its query string.
fn versioned_uri(version: &str, req: &Req) -> String {
    let mut uri = format!("/v{version}{}", encode_path(&req.path));
    if !req.query.is_empty() {
        uri.push('?');
        let pairs: Vec<String> = req
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
            .collect();
        uri.push_str(&pairs.join("&"));
    }
    uri
}

/// A connection taken over for a raw stream (see [`Client::hijack`]).
pub enum Hijacked {
    /// The socket after `101`, and the bytes the HTTP layer had already read past the
    /// response head.
    Upgraded { stream: UnixStream, buffered: Bytes },
    /// The daemon answered `200`: output only, as the body.
    Body(Incoming),
}

/// Reads a whole response body.
pub async fn read_body(resp: Response<Incoming>) -> Result<Bytes, ClientError> {
    Ok(resp.into_body().collect().await?.to_bytes())
}

/// Turns an error response into `Error response from daemon: MESSAGE`.
pub async fn daemon_error(resp: Response<Incoming>) -> ClientError {
    let status = resp.status();
    let body = match read_body(resp).await {
        Ok(b) => b,
        Err(e) => return e,
    };
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    let message = match serde_json::from_slice::<Message>(&body) {
        Ok(m) => m.message,
        Err(_) => {
            let text = String::from_utf8_lossy(&body).trim().to_string();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("unknown error").to_string()
            } else {
                text
            }
        }
    };
    ClientError::Daemon { status, message }
}

/// Yields a streaming body line by line as it arrives (newline-delimited JSON).
pub struct Lines {
    body: Incoming,
    buf: Vec<u8>,
    done: bool,
}

impl Lines {
    pub fn new(resp: Response<Incoming>) -> Lines {
        Lines {
            body: resp.into_body(),
            buf: Vec::new(),
            done: false,
        }
    }

    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.done {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            match self.body.frame().await {
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                None => self.done = true,
            }
        }
    }
}

/// Is dotted version `a` older than `b`? (`1.41` < `1.47`)
pub fn version_less(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(a) < parse(b)
}

fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escapes a path, keeping the characters image references use (`/`, `:`, `@`).
fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':' | b'@' | b'+' | b'=') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Encodes filters as the API's JSON map of name → list of values.
pub fn filters_json(filters: &[String]) -> Result<Option<String>, String> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| format!("bad format of filter (expected name=value): {f}"))?;
        map.entry(k.trim().to_lowercase()).or_default().push(v.to_string());
    }
    Ok(Some(serde_json::to_string(&map).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_less("1.41", "1.47"));
        assert!(version_less("1.9", "1.47"));
        assert!(!version_less("1.47", "1.47"));
        assert!(!version_less("1.50", "1.47"));
    }

    #[test]
    fn encodes_query_and_filters() {
        assert_eq!(encode_query("a b/c=d"), "a%20b%2Fc%3Dd");
        assert_eq!(encode_path("/images/127.0.0.1:5000/busybox:latest/json"), "/images/127.0.0.1:5000/busybox:latest/json");
        assert_eq!(
            filters_json(&["dangling=true".into(), "label=a=b".into(), "label=c".into()]).unwrap().unwrap(),
            r#"{"dangling":["true"],"label":["a=b","c"]}"#
        );
        assert!(filters_json(&["nope".into()]).is_err());
    }
}
