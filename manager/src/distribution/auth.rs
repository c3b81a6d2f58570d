//! Registry authentication: parse WWW-Authenticate challenges and fetch Bearer tokens.

use crate::errors::{Error, Result};
use base64::Engine;
use std::collections::HashMap;

#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct Credentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// An OAuth refresh token from a previous login, used instead of the password.
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.username.is_empty() && self.password.is_empty() && self.identity_token.is_empty()
    }
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

pub enum Challenge {
    Basic,
    Bearer(HashMap<String, String>),
}

/// `Bearer realm="https://auth.example/token",service="reg",scope="repository:x:pull"`.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(k.trim().to_ascii_lowercase(), v.to_string());
        s = tail.trim_start_matches([',', ' ']);
    }
    params.contains_key("realm").then_some(Challenge::Bearer(params))
}

pub async fn fetch_token(http: &reqwest::Client, p: &HashMap<String, String>, scope: &str, creds: Option<&Credentials>) -> Result<String> {
    let realm = &p["realm"];
    let mut q: Vec<(&str, &str)> = vec![];
    if let Some(s) = p.get("service") {
        q.push(("service", s));
    }
    // Our own scope (pull,push) wins over the one the registry guessed for this request.
    let scope = if scope.is_empty() { p.get("scope").map(String::as_str).unwrap_or("") } else { scope };
    if !scope.is_empty() {
        q.push(("scope", scope));
    }
    let mut req = http.get(realm).query(&q);
    if let Some(c) = creds.filter(|c| !c.username.is_empty()) {
        req = req.basic_auth(&c.username, Some(&c.password));
    }
    let resp = req.send().await.map_err(|e| Error::internal(format!("token server {realm}: {e}")))?;
    let status = resp.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(Error::unauthorized(format!("token server {realm} refused the credentials ({status}): incorrect username or password")));
    }
    if !status.is_success() {
        return Err(Error::internal(format!("token server {realm} answered {status}")));
    }
    #[derive(serde::Deserialize)]
    struct Tok {
        token: Option<String>,
        access_token: Option<String>,
    }
    let body = super::read_limited(resp, 1 << 20).await?;
    let t: Tok = serde_json::from_slice(&body).map_err(|e| Error::internal(format!("token server {realm}: bad answer: {e}")))?;
    t.token.or(t.access_token).filter(|t| !t.is_empty()).ok_or_else(|| Error::internal(format!("token server {realm} returned no token")))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_bearer_challenge() {
        let Some(Challenge::Bearer(p)) = parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#) else {
            panic!("not bearer")
        };
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        assert!(matches!(parse_challenge(r#"Basic realm="x""#), Some(Challenge::Basic)));
        assert!(parse_challenge("Negotiate").is_none());
    }
}
