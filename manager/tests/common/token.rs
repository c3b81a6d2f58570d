//! A registry token server for tests (the Docker token authentication protocol that
//! docker-registry's `auth: token:` speaks), on a free loopback port, one std thread.
//!
//! `GET /token?service=S&scope=T:NAME:ACTIONS[&scope=...]`:
//! - with HTTP Basic credentials that match the one configured user: a token granting
//!   exactly the scopes asked for;
//! - with other credentials: 401 (so a wrong password fails `login`);
//! - without credentials: a token with `access: []` (as Docker Hub does for anonymous
//!   callers), which the registry accepts for `/v2/` but refuses for every repository.
//!
//! Tokens are RS256 JWTs signed with `openssl dgst -sha256 -sign` by a key whose
//! self-signed certificate is both the registry's `rootcertbundle` and the token's `x5c`.
//! Every request is logged in [`TokenServer::requests`] so tests can see who asked for what.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::{cmd, run_ok};

pub const SERVICE: &str = "berth-test";
pub const ISSUER: &str = "berth-test-issuer";

/// What the server answered one request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A token for an authenticated user, with the access it grants ("type:name:actions").
    Granted(Vec<String>),
    /// A token without access, for a caller that sent no credentials.
    Anonymous,
    /// 401: wrong user name or password.
    Refused,
    /// Not a token request (404 / 400).
    BadRequest,
}

#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The Basic user name, if credentials were sent.
    pub user: Option<String>,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    pub outcome: Outcome,
}

pub struct TokenServer {
    pub port: u16,
    /// The certificate the registry must trust (its `rootcertbundle`).
    pub cert: PathBuf,
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Signer {
    key: PathBuf,
    /// base64 (standard, padded) DER of the certificate, for the JWT's x5c.
    x5c: String,
    user: String,
    password: String,
    seq: AtomicU64,
}

impl TokenServer {
    /// Makes a key and a self-signed certificate in `dir` and starts serving on a free port.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        std::fs::create_dir_all(dir).unwrap();
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        let der = dir.join("token-cert.der");
        let s = |p: &Path| p.to_string_lossy().into_owned();
        run_ok(&mut cmd(
            "openssl",
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2", "-subj", "/CN=berth test token issuer",
              "-keyout", &s(&key), "-out", &s(&cert)],
        ));
        run_ok(&mut cmd("openssl", &["x509", "-in", &s(&cert), "-outform", "DER", "-out", &s(&der)]));
        let x5c = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&der).unwrap());

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let signer = Signer { key, x5c, user: user.into(), password: password.into(), seq: AtomicU64::new(0) };
        let thread = {
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::Builder::new()
                .name("token-server".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match listener.accept() {
                            Ok((conn, _)) => {
                                if let Some(r) = serve(conn, &signer) {
                                    requests.lock().unwrap().push(r);
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            Err(e) => {
                                eprintln!("token server: accept: {e}");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                })
                .unwrap()
        };
        TokenServer { port, cert, requests, stop, thread: Some(thread) }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The requests answered so far.
    pub fn log(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Stops the thread (also done on drop).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// "repository:team/app:pull,push" -> ("repository", "team/app", ["pull", "push"]).
fn parse_scope(s: &str) -> Option<(String, String, Vec<String>)> {
    let (kind, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions = actions.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect();
    Some((kind.to_string(), name.to_string(), actions))
}

fn respond(conn: &mut TcpStream, status: &str, extra: &str, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = conn.flush();
}

/// Reads one request and answers it; returns what was asked and answered.
fn serve(mut conn: TcpStream, signer: &Signer) -> Option<TokenRequest> {
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            respond(&mut conn, "431 Request Header Fields Too Large", "", "{}");
            return None;
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut basic: Option<(String, String)> = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else { continue };
        if k.trim().eq_ignore_ascii_case("authorization") {
            let v = v.trim();
            if let Some(enc) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) {
                let raw = base64::engine::general_purpose::STANDARD.decode(enc.trim()).unwrap_or_default();
                let raw = String::from_utf8_lossy(&raw).into_owned();
                let (u, p) = raw.split_once(':').unwrap_or((&raw, ""));
                basic = Some((u.to_string(), p.to_string()));
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut service = None;
    let mut scopes = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(k).as_str() {
            "service" => service = Some(percent_decode(v)),
            // a scope parameter may itself hold several space-separated scopes
            "scope" => scopes.extend(percent_decode(v).split(' ').filter(|s| !s.is_empty()).map(str::to_string)),
            _ => {}
        }
    }
    let mut rec = TokenRequest { user: basic.as_ref().map(|(u, _)| u.clone()), service, scopes: scopes.clone(), outcome: Outcome::BadRequest };
    if method != "GET" || path != "/token" {
        respond(&mut conn, "404 Not Found", "", r#"{"details":"only GET /token is served here"}"#);
        return Some(rec);
    }
    let access: Vec<(String, String, Vec<String>)> = match &basic {
        Some((u, p)) if *u == signer.user && *p == signer.password => scopes.iter().filter_map(|s| parse_scope(s)).collect(),
        Some(_) => {
            rec.outcome = Outcome::Refused;
            respond(
                &mut conn,
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"berth-test-token\"\r\n",
                r#"{"details":"incorrect username or password"}"#,
            );
            return Some(rec);
        }
        None => vec![],
    };
    rec.outcome = if basic.is_some() {
        Outcome::Granted(access.iter().map(|(t, n, a)| format!("{t}:{n}:{}", a.join(","))).collect())
    } else {
        Outcome::Anonymous
    };
    match signer.token(rec.user.as_deref().unwrap_or(""), &access) {
        Ok(jwt) => {
            let body = serde_json::json!({ "token": jwt, "access_token": jwt, "expires_in": 300 }).to_string();
            respond(&mut conn, "200 OK", "", &body);
        }
        Err(e) => {
            eprintln!("token server: signing failed: {e}");
            respond(&mut conn, "500 Internal Server Error", "", r#"{"details":"signing failed"}"#);
        }
    }
    Some(rec)
}

impl Signer {
    fn token(&self, subject: &str, access: &[(String, String, Vec<String>)]) -> Result<String, String> {
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5c": [self.x5c] });
        let t = now();
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": t + 300,
            "nbf": t - 10,
            "iat": t,
            "jti": format!("berth-test-{}-{}", std::process::id(), self.seq.fetch_add(1, Ordering::SeqCst)),
            "access": access.iter().map(|(kind, name, actions)| serde_json::json!({
                "type": kind, "name": name, "actions": actions,
            })).collect::<Vec<_>>(),
        });
        let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("openssl: {e}"))?;
        child.stdin.take().unwrap().write_all(input.as_bytes()).map_err(|e| format!("openssl stdin: {e}"))?;
        let out = child.wait_with_output().map_err(|e| format!("openssl: {e}"))?;
        if !out.status.success() || out.stdout.is_empty() {
            return Err(format!("openssl dgst -sign: {} {}", out.status, String::from_utf8_lossy(&out.stderr)));
        }
        Ok(format!("{input}.{}", b64url(&out.stdout)))
    }
}
