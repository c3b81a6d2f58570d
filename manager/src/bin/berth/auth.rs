//! Registry credentials: config.json in docker's format (`{"auths": {REGISTRY: {"auth":
//! base64("user:pass")}}}`), the `X-Registry-Auth` header, and `login` / `logout`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use bollard_stubs::models::{AuthConfig, AuthResponse};
use clap::Args;
use serde_json::{Map, Value};

use crate::client::Req;
use crate::reference::{registry_auth_key, INDEX_SERVER};
use crate::Ctx;

/// config.json, keeping keys berth does not use.
pub struct ConfigFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl ConfigFile {
    pub fn load(dir: &Path) -> anyhow::Result<ConfigFile> {
        let path = dir.join("config.json");
        let doc = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("loading config file {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(ConfigFile { path, doc })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A top-level string setting (`detachKeys`, `psFormat`, `statsFormat`…).
    pub fn setting(&self, key: &str) -> Option<String> {
        self.doc
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.doc.get("auths").and_then(Value::as_object)
    }

    /// The entry for `key`, trying the spellings docker accepts for the same registry.
    fn find_entry(&self, key: &str) -> Option<(String, &Map<String, Value>)> {
        let auths = self.auths()?;
        if let Some(e) = auths.get(key).and_then(Value::as_object) {
            return Some((key.to_string(), e));
        }
        let want = hostname_of(key);
        auths
            .iter()
            .find(|(k, _)| hostname_of(k) == want)
            .and_then(|(k, v)| v.as_object().map(|o| (k.clone(), o)))
    }

    /// Credentials stored for a registry key (see [`registry_auth_key`]).
    pub fn credentials(&self, key: &str) -> Option<AuthConfig> {
        let (_, entry) = self.find_entry(key)?;
        let (mut username, mut password) = (None, None);
        if let Some(auth) = entry.get("auth").and_then(Value::as_str).filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (u, p) = decoded.split_once(':')?;
            username = Some(u.to_string());
            password = Some(p.to_string());
        }
        if username.is_none() {
            username = entry.get("username").and_then(Value::as_str).map(str::to_string);
            password = entry.get("password").and_then(Value::as_str).map(str::to_string);
        }
        username.as_ref()?;
        Some(AuthConfig {
            username,
            password,
            serveraddress: Some(key.to_string()),
        })
    }

    /// Every registry key with usable stored credentials (build's `X-Registry-Config`).
    pub fn all_credentials(&self) -> Vec<(String, AuthConfig)> {
        let keys: Vec<String> = self.auths().map(|a| a.keys().cloned().collect()).unwrap_or_default();
        keys.into_iter()
            .filter_map(|k| self.credentials(&k).map(|c| (k, c)))
            .collect()
    }

    pub fn store(&mut self, key: &str, username: &str, password: &str) -> anyhow::Result<()> {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Value::Object(map) = auths {
            let mut entry = Map::new();
            entry.insert("auth".to_string(), Value::String(auth));
            map.insert(key.to_string(), Value::Object(entry));
        }
        self.save()
    }

    /// Removes the credentials for `key`; false when there were none.
    pub fn remove(&mut self, key: &str) -> anyhow::Result<bool> {
        let Some((found, _)) = self.find_entry(key) else {
            return Ok(false);
        };
        if let Some(Value::Object(map)) = self.doc.get_mut("auths") {
            map.remove(&found);
        }
        self.save()?;
        Ok(true)
    }

    /// Writes config.json (mode 0600) through a temporary file and a rename.
    fn save(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let mut bytes = serde_json::to_vec_pretty(&Value::Object(self.doc.clone()))?;
        bytes.push(b'\n');
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow!("saving {}: {e}", self.path.display())
        })
    }
}

/// `https://host/v1/` → `host` (docker's ConvertToHostname).
fn hostname_of(s: &str) -> String {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// The `X-Registry-Auth` value: base64url of the AuthConfig JSON (`{}` when empty).
pub fn encode_header(auth: &AuthConfig) -> String {
    let json = serde_json::to_vec(auth).unwrap_or_else(|_| b"{}".to_vec());
    base64::engine::general_purpose::URL_SAFE.encode(json)
}

/// The header for an image's registry, or None without stored credentials.
pub fn header_for(ctx: &Ctx, auth_key: &str) -> anyhow::Result<Option<String>> {
    let config = ConfigFile::load(&ctx.config_dir)?;
    Ok(config.credentials(auth_key).map(|a| encode_header(&a)))
}

// ---------------------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry server (default: Docker Hub)
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry server (default: Docker Hub)
    pub server: Option<String>,
}

/// The config.json key for a server argument as given to login/logout.
fn server_key(server: Option<&str>) -> String {
    match server {
        None | Some("") => INDEX_SERVER.to_string(),
        Some(s) => {
            let host = hostname_of(s);
            if host == "docker.io" {
                INDEX_SERVER.to_string()
            } else {
                registry_auth_key(&host)
            }
        }
    }
}

pub async fn login(ctx: &Ctx, args: LoginArgs) -> anyhow::Result<()> {
    let key = server_key(args.server.as_deref());
    if args.password.is_some() && args.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let mut password = args.password.clone();
    if args.password_stdin {
        if args.username.is_none() {
            bail!("Must provide --username with --password-stdin");
        }
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)?;
        password = Some(buf.trim_end_matches(['\n', '\r']).to_string());
    }
    let username = match args.username.clone() {
        Some(u) => u,
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("Error: Cannot perform an interactive login from a non TTY device");
            }
            let u = prompt_line("Username: ")?;
            if u.is_empty() {
                bail!("Error: Non-null Username Required");
            }
            u
        }
    };
    let password = match password {
        Some(p) => p,
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("Error: Cannot perform an interactive login from a non TTY device");
            }
            let p = prompt_password("Password: ")?;
            if p.is_empty() {
                bail!("Error: Password Required");
            }
            p
        }
    };
    let auth = AuthConfig {
        username: Some(username.clone()),
        password: Some(password.clone()),
        serveraddress: Some(key.clone()),
    };
    let resp: AuthResponse = ctx.client.json(Req::post("/auth").json_body(&auth)).await?;
    let mut config = ConfigFile::load(&ctx.config_dir)?;
    config.store(&key, &username, &password)?;
    eprintln!(
        "WARNING! Your credentials are stored unencrypted in '{}'.",
        config.path().display()
    );
    if !resp.status.is_empty() && resp.status != "Login Succeeded" {
        println!("{}", resp.status);
    }
    println!("Login Succeeded");
    Ok(())
}

pub async fn logout(ctx: &Ctx, args: LogoutArgs) -> anyhow::Result<()> {
    let key = server_key(args.server.as_deref());
    let mut config = ConfigFile::load(&ctx.config_dir)?;
    if config.find_entry(&key).is_none() {
        println!("Not logged in to {key}");
        return Ok(());
    }
    println!("Removing login credentials for {key}");
    config.remove(&key)?;
    Ok(())
}

fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).trim().to_string())
}

/// Reads a line with the terminal's echo turned off.
fn prompt_password(prompt: &str) -> anyhow::Result<String> {
    print!("{prompt}");
    std::io::stdout().flush()?;
    // SAFETY: termios is plain old data, so a zeroed value is valid; tcgetattr fills it
    // for fd 0 and reports failure (not a terminal) through its return value.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have_tty = unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) } == 0;
    if have_tty {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: `quiet` is a valid termios copied from the terminal's own settings.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if have_tty {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved) };
    }
    println!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_finds_and_removes_credentials() {
        let dir = std::env::temp_dir().join(format!("berth-auth-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"psFormat":"x","auths":{}}"#).unwrap();
        let mut c = ConfigFile::load(&dir).unwrap();
        c.store("127.0.0.1:5000", "me", "se:cret").unwrap();
        let c = ConfigFile::load(&dir).unwrap();
        let a = c.credentials("127.0.0.1:5000").unwrap();
        assert_eq!(a.username.as_deref(), Some("me"));
        assert_eq!(a.password.as_deref(), Some("se:cret"));
        // other keys survive, mode is 0600
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        assert!(text.contains("psFormat"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("config.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut c = ConfigFile::load(&dir).unwrap();
        assert!(c.remove("https://127.0.0.1:5000").unwrap());
        assert!(ConfigFile::load(&dir).unwrap().credentials("127.0.0.1:5000").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn header_is_base64url_json() {
        assert_eq!(encode_header(&AuthConfig::default()), "e30=");
        assert_eq!(server_key(None), INDEX_SERVER);
        assert_eq!(server_key(Some("docker.io")), INDEX_SERVER);
        assert_eq!(server_key(Some("https://127.0.0.1:5000/v2/")), "127.0.0.1:5000");
    }
}
