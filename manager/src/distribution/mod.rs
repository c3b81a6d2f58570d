//! Registry client: OCI distribution spec / Docker registry v2, with Bearer token and basic auth,
//! plain http only for insecure registries, retries with backoff on transient failures.

mod auth;

use crate::errors::{Error, Kind, Result};
use crate::reference::Reference;
pub use auth::Credentials;
use reqwest::{header, Method, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Manifests and indexes above this size are refused (containerd uses the same order of limit).
pub const MANIFEST_LIMIT: u64 = 4 << 20;

pub struct Registry {
    http: reqwest::Client,
    insecure: Vec<String>,
    tokens: Mutex<HashMap<(String, String), String>>,
}

/// A registry and a repository in it, with the credentials to use.
pub struct Repo<'a> {
    reg: &'a Registry,
    host: String,
    base: String,
    pub path: String,
    creds: Option<Credentials>,
    scope: String,
}

impl Registry {
    pub fn new(insecure: Vec<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::internal(format!("http client: {e}")))?;
        Ok(Registry { http, insecure, tokens: Mutex::new(HashMap::new()) })
    }

    /// Docker's rule: configured registries and loopback are contacted over plain http.
    pub fn is_insecure(&self, host: &str) -> bool {
        let bare = host.rsplit_once(':').map(|(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host }).unwrap_or(host);
        self.insecure.iter().any(|i| i == host || i == bare)
            || bare == "localhost"
            || bare.starts_with("127.")
            || bare == "[::1]"
    }

    pub fn repo(&self, r: &Reference, creds: Option<Credentials>, push: bool) -> Repo<'_> {
        let host = r.registry_host().to_string();
        let scheme = if self.is_insecure(&r.domain) { "http" } else { "https" };
        Repo {
            reg: self,
            base: format!("{scheme}://{host}"),
            host,
            path: r.path.clone(),
            creds,
            scope: format!("repository:{}:{}", r.path, if push { "pull,push" } else { "pull" }),
        }
    }

    /// Check credentials against a registry (POST /auth): GET /v2/ with them.
    pub async fn login(&self, domain: &str, creds: Credentials) -> Result<()> {
        let r = Reference { domain: domain.to_string(), path: "x".into(), tag: None, digest: None };
        let mut repo = self.repo(&r, Some(creds), false);
        repo.scope = String::new();
        let resp = repo.send(Method::GET, "/v2/", &[], None).await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => Err(Error::unauthorized(format!("login to {domain} failed: unauthorized: incorrect username or password"))),
            s => Err(Error::internal(format!("login to {domain}: registry answered {s}"))),
        }
    }

    /// Repositories in a registry (its /v2/_catalog), for `search`.
    pub async fn catalog(&self, domain: &str, creds: Option<Credentials>) -> Result<Vec<String>> {
        let r = Reference { domain: domain.to_string(), path: "x".into(), tag: None, digest: None };
        let mut repo = self.repo(&r, creds, false);
        repo.scope = "registry:catalog:*".into();
        let resp = repo.send(Method::GET, "/v2/_catalog?n=1000", &[], None).await?;
        let resp = check(resp, "catalog").await?;
        #[derive(serde::Deserialize)]
        struct Cat {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let body = read_limited(resp, MANIFEST_LIMIT).await?;
        Ok(serde_json::from_slice::<Cat>(&body)?.repositories)
    }
}

impl Repo<'_> {
    /// One request with auth and retries. `body` is rebuilt for each attempt.
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        headers: &[(header::HeaderName, String)],
        body: Option<&(dyn Fn() -> reqwest::Body + Send + Sync)>,
    ) -> Result<reqwest::Response> {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        };
        let mut delay = Duration::from_millis(200);
        let mut authed_once = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.reg.http.request(method.clone(), &url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(a) = self.authorization() {
                req = req.header(header::AUTHORIZATION, a);
            }
            if let Some(b) = body {
                req = req.body(b());
            }
            match req.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authed_once => {
                    authed_once = true;
                    let challenge = resp.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    if self.authenticate(&challenge).await? {
                        continue;
                    }
                    return Ok(resp);
                }
                Ok(resp) if (resp.status().is_server_error() || resp.status() == StatusCode::TOO_MANY_REQUESTS) && attempt < 4 => {
                    tracing::debug!(%url, status = %resp.status(), "retrying");
                }
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < 4 && (e.is_connect() || e.is_timeout()) => {
                    tracing::debug!(%url, error = %e, "retrying");
                }
                Err(e) => return Err(Error::internal(format!("{method} {url}: {}", error_chain(&e)))),
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }

    /// Cached answers to challenges are keyed by who asked too: a token or Basic header got
    /// with one client's credentials must never serve another client (or an anonymous one).
    fn cache_key(&self) -> (String, String) {
        let who = match &self.creds {
            Some(c) => crate::content::sha256_digest(format!("{}\0{}\0{}", c.username, c.password, c.identity_token).as_bytes()),
            None => String::new(),
        };
        (self.host.clone(), format!("{}|{who}", self.scope))
    }

    fn authorization(&self) -> Option<String> {
        self.reg.tokens.lock().unwrap().get(&self.cache_key()).cloned()
    }

    /// Answer a 401 challenge; true when we now hold something to retry with.
    async fn authenticate(&self, challenge: &str) -> Result<bool> {
        let value = match auth::parse_challenge(challenge) {
            Some(auth::Challenge::Basic) => match &self.creds {
                Some(c) => c.basic_header(),
                None => return Ok(false),
            },
            Some(auth::Challenge::Bearer(params)) => {
                let token = auth::fetch_token(&self.reg.http, &params, &self.scope, self.creds.as_ref()).await?;
                format!("Bearer {token}")
            }
            None => return Ok(false),
        };
        self.reg.tokens.lock().unwrap().insert(self.cache_key(), value);
        Ok(true)
    }

    /// GET a manifest or index; returns (bytes, media type, digest), verified when asked by digest.
    pub async fn get_manifest(&self, object: &str) -> Result<(Vec<u8>, String, String)> {
        let accept = [MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST].join(", ");
        let resp = self.send(Method::GET, &format!("/v2/{}/manifests/{object}", self.path), &[(header::ACCEPT, accept)], None).await?;
        let resp = check(resp, &format!("manifest for {}:{object}", self.path)).await?;
        let mt = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
        let body = read_limited(resp, MANIFEST_LIMIT).await?;
        let digest = crate::content::sha256_digest(&body);
        if object.starts_with("sha256:") && object != digest {
            return Err(Error::internal(format!("manifest digest mismatch: asked for {object}, got {digest}")));
        }
        let mt = if mt.is_empty() || mt == "application/json" || mt == "text/plain" { sniff_media_type(&body) } else { mt };
        Ok((body, mt, digest))
    }

    /// Start downloading a blob, from `offset` when resuming.
    pub async fn get_blob(&self, digest: &str, offset: u64) -> Result<reqwest::Response> {
        let mut h = vec![];
        if offset > 0 {
            h.push((header::RANGE, format!("bytes={offset}-")));
        }
        let resp = self.send(Method::GET, &format!("/v2/{}/blobs/{digest}", self.path), &h, None).await?;
        let resp = check(resp, &format!("blob {digest}")).await?;
        if offset > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
            return Err(Error::internal(format!("blob {digest}: registry ignored the Range request")));
        }
        Ok(resp)
    }

    pub async fn blob_exists(&self, digest: &str) -> Result<bool> {
        let resp = self.send(Method::HEAD, &format!("/v2/{}/blobs/{digest}", self.path), &[], None).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(status_error(s, &format!("checking blob {digest}"), "")),
        }
    }

    /// Cross-repository mount; true when the registry mounted it.
    pub async fn mount_blob(&self, digest: &str, from: &str) -> Result<bool> {
        let url = format!("/v2/{}/blobs/uploads/?mount={digest}&from={from}", self.path);
        let resp = self.send(Method::POST, &url, &[], None).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(true);
        }
        // 202: the registry started an upload instead; cancel it (we start our own).
        if let Some(loc) = location(&resp, &self.base) {
            let _ = self.send(Method::DELETE, &loc, &[], None).await;
        }
        Ok(false)
    }

    /// Monolithic upload: POST to open a session, PUT the whole blob with its digest.
    pub async fn upload_blob(&self, digest: &str, size: u64, body: &(dyn Fn() -> reqwest::Body + Send + Sync)) -> Result<()> {
        let resp = self.send(Method::POST, &format!("/v2/{}/blobs/uploads/", self.path), &[], None).await?;
        let resp = check(resp, &format!("starting upload of {digest}")).await?;
        let loc = location(&resp, &self.base).ok_or_else(|| Error::internal("registry gave no upload location"))?;
        let sep = if loc.contains('?') { '&' } else { '?' };
        let url = format!("{loc}{sep}digest={digest}");
        let h = [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, size.to_string())];
        let resp = self.send(Method::PUT, &url, &h, Some(body)).await?;
        check(resp, &format!("uploading {digest}")).await?;
        Ok(())
    }

    pub async fn put_manifest(&self, object: &str, media_type: &str, bytes: Vec<u8>) -> Result<()> {
        let body = bytes::Bytes::from(bytes);
        let make = move || reqwest::Body::from(body.clone());
        let resp = self.send(Method::PUT, &format!("/v2/{}/manifests/{object}", self.path), &[(header::CONTENT_TYPE, media_type.to_string())], Some(&make)).await?;
        check(resp, &format!("pushing manifest {}:{object}", self.path)).await?;
        Ok(())
    }
}

fn location(resp: &reqwest::Response, base: &str) -> Option<String> {
    let l = resp.headers().get(header::LOCATION)?.to_str().ok()?;
    Some(if l.starts_with("http://") || l.starts_with("https://") { l.to_string() } else { format!("{base}{l}") })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Turn a registry error status into berth's error, with the registry's own message when present.
async fn check(resp: reqwest::Response, what: &str) -> Result<reqwest::Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
    Err(status_error(status, what, &registry_message(&body)))
}

fn registry_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errs>(body) {
        Ok(e) => e.errors.iter().map(|e| format!("{}: {}", e.code.to_lowercase().replace('_', " "), e.message)).collect::<Vec<_>>().join("; "),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string(),
    }
}

fn status_error(status: StatusCode, what: &str, msg: &str) -> Error {
    let kind = match status {
        StatusCode::NOT_FOUND => Kind::NotFound,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Kind::Unauthorized,
        _ => Kind::Internal,
    };
    let detail = if msg.is_empty() { status.to_string() } else { msg.to_string() };
    let m = match kind {
        Kind::NotFound => format!("{what}: not found: {detail}"),
        Kind::Unauthorized => format!("{what}: {detail} (pull access denied or authentication required: try `berth login`)"),
        _ => format!("{what}: registry answered {status}: {detail}"),
    };
    Error::new(kind, m)
}

pub async fn read_limited(mut resp: reqwest::Response, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Error::internal(format!("reading response: {}", error_chain(&e))))? {
        out.extend_from_slice(&chunk);
        if out.len() as u64 > limit {
            return Err(Error::invalid(format!("response is larger than {limit} bytes")));
        }
    }
    Ok(out)
}

/// Some registries label manifests application/json; the mediaType field or the shape tells.
pub fn sniff_media_type(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(body) {
        Ok(Probe { media_type: Some(m), .. }) => m,
        Ok(Probe { manifests: Some(_), .. }) => MT_OCI_INDEX.into(),
        _ => MT_OCI_MANIFEST.into(),
    }
}
