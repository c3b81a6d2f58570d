//! `build`: `POST /build`, the classic builder. The context directory goes as a streamed tar
//! (with `.dockerignore` applied) and the answer is rendered as it comes: build output as is,
//! pulls as `pull` shows them, the image ID kept for `-q` and `--iidfile`.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use base64::Engine as _;
use berth_manager::build::ignore::Ignore;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::auth;
use crate::client::Req;
use crate::cp::{self, TarWriter};
use crate::progress::{Messages, Renderer};
use crate::reference::Reference;
use crate::{Ctx, StatusError};

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag", value_name = "list")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (Default is 'PATH/Dockerfile')
    #[arg(short = 'f', long = "file", value_name = "string")]
    pub file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "list")]
    pub build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "list")]
    pub labels: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "string")]
    pub iidfile: Option<PathBuf>,
    /// Set the networking mode for the RUN instructions during build (default "default")
    #[arg(long, value_name = "string")]
    pub network: Option<String>,
    /// Set the target build stage to build.
    #[arg(long, value_name = "string")]
    pub target: Option<String>,
    /// Remove intermediate containers after a successful build (default true)
    #[arg(long = "rm", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", hide_default_value = true, hide_possible_values = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set)]
    pub rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    pub force_rm: bool,
    /// The build context: a directory, or - for a tar archive (or a Dockerfile) on stdin
    #[arg(value_name = "PATH | -")]
    pub context: String,
}

pub async fn build(ctx: &Ctx, args: BuildArgs) -> anyhow::Result<()> {
    for t in &args.tags {
        Reference::parse(t).map_err(|e| anyhow!("invalid argument {t:?} for \"-t, --tag\" flag: {e}"))?;
    }
    if let Some(f) = &args.iidfile {
        // no stale ID if this build fails
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => bail!("Removing image ID file: {e}"),
            _ => {}
        }
    }
    let build_args = serde_json::to_string(&build_args(&args.build_args, |k| std::env::var(k).ok()))?;
    let labels = serde_json::to_string(&labels(&args.labels))?;

    let context = prepare(&args).await?;
    cp::ignore_sigpipe();
    let (dockerfile, body, walker): (Option<String>, Box<dyn AsyncRead + Send + Unpin>, _) = match context {
        Context::Stream { dockerfile, body } => (dockerfile, body, None),
        Context::Dir(dir) => {
            let dockerfile = dir.dockerfile.clone();
            let (writer, body) = cp::body_pipe();
            let walker = tokio::task::spawn_blocking(move || {
                let mut tar = TarWriter::new(writer, false);
                let written = dir.write(&mut tar);
                tar.finish(written)
            });
            (Some(dockerfile), Box::new(body), Some(walker))
        }
    };

    let mut req = Req::post("/build");
    for t in &args.tags {
        req = req.query("t", t.clone());
    }
    req = req
        .query_opt("dockerfile", dockerfile.as_deref())
        .query("buildargs", build_args)
        .query("labels", labels)
        .flag("nocache", args.no_cache)
        .flag("pull", args.pull)
        .flag("q", args.quiet)
        .query_opt("target", args.target.as_deref())
        .query_opt("networkmode", args.network.as_deref())
        .query("rm", if args.rm { "1" } else { "0" })
        .flag("forcerm", args.force_rm);
    if let Some(h) = registry_config(ctx)? {
        req = req.header("X-Registry-Config", h);
    }
    let req = req.stream_body("application/x-tar", body);

    let outcome = match ctx.client.send(req).await {
        Ok(resp) => render(resp, args.quiet).await,
        Err(e) => Err(e.into()),
    };
    // A context that could not be read explains a failed request best.
    if let Some(walker) = walker {
        if let Ok(Err(e)) = walker.await {
            if e.kind() != io::ErrorKind::BrokenPipe {
                bail!("error checking context: {e}");
            }
        }
    }
    let id = outcome?;
    if let Some(f) = &args.iidfile {
        let Some(id) = &id else {
            bail!("Server did not provide an image ID. Cannot write {}", f.display());
        };
        std::fs::write(f, id).map_err(|e| anyhow!("Failed to write image ID to file: {e}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// flags (pure)

/// `--build-arg K=V`; a bare `K` takes K's value from the environment, and is left out when
/// K is unset.
pub fn build_args(values: &[String], env: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for v in values {
        match v.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Some(val) = env(v) {
                    out.insert(v.clone(), val);
                }
            }
        }
    }
    out
}

/// `--label K=V`; a bare `K` is an empty label.
pub fn labels(values: &[String]) -> BTreeMap<String, String> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

/// Is this the start of an archive (tar, or a compressed stream) rather than a Dockerfile?
pub fn is_archive(head: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        &[0x1f, 0x8b, 0x08],                   // gzip
        b"BZh",                                // bzip2
        &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], // xz
        &[0x28, 0xb5, 0x2f, 0xfd],             // zstd
    ];
    if MAGICS.iter().any(|m| head.starts_with(m)) {
        return true;
    }
    if head.len() < 512 {
        return false;
    }
    if &head[257..262] == b"ustar" {
        return true;
    }
    // an old-style tar header: its checksum adds up
    let field = String::from_utf8_lossy(&head[148..156]);
    let Ok(sum) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8) else {
        return false;
    };
    let computed: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| if (148..156).contains(&i) { b' ' as u32 } else { b as u32 })
        .sum();
    computed == sum
}

// ---------------------------------------------------------------------------------------
// the context

enum Context {
    /// A body sent as is (stdin's tar, or a tar made around stdin's Dockerfile).
    Stream {
        dockerfile: Option<String>,
        body: Box<dyn AsyncRead + Send + Unpin>,
    },
    Dir(DirContext),
}

/// A context directory and what goes with it.
struct DirContext {
    root: PathBuf,
    /// The Dockerfile's name in the context as sent.
    dockerfile: String,
    /// A Dockerfile from outside the context (or stdin), sent under `dockerfile`.
    extra: Option<Vec<u8>>,
    ignore: Ignore,
    /// `.dockerignore` as sent when `extra` must be hidden from the build's COPY.
    dockerignore: Option<(Vec<u8>, u32, u64)>,
}

fn prepare_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("unable to prepare context: {e}")
}

async fn prepare(args: &BuildArgs) -> anyhow::Result<Context> {
    if args.context == "-" {
        return prepare_stdin(args).await;
    }
    let given = &args.context;
    let meta = match std::fs::metadata(given) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(prepare_error(format!("path {given:?} not found"))),
        Err(e) => return Err(prepare_error(format!("unable to evaluate symlinks in context path: {}", cp::go_error(&e)))),
    };
    let root = std::fs::canonicalize(given).map_err(|e| prepare_error(cp::go_error(&e)))?;
    if !meta.is_dir() {
        return Err(prepare_error(format!("context must be a directory: {}", root.display())));
    }

    // The Dockerfile: -f is relative to the current directory, the default in the context.
    let (dockerfile, extra) = match args.file.as_deref() {
        Some("-") => {
            let mut text = Vec::new();
            tokio::io::stdin().read_to_end(&mut text).await?;
            (random_name(), Some(text))
        }
        given_file => {
            let path = match given_file {
                Some(f) => std::path::absolute(f)?,
                None => {
                    let default = root.join("Dockerfile");
                    let alt = root.join("dockerfile");
                    if std::fs::symlink_metadata(&default).is_err() && std::fs::symlink_metadata(&alt).is_ok() {
                        alt
                    } else {
                        default
                    }
                }
            };
            let real = std::fs::canonicalize(&path).map_err(|e| {
                prepare_error(format!(
                    "unable to evaluate symlinks in Dockerfile path: lstat {}: {}",
                    path.display(),
                    cp::go_error(&e)
                ))
            })?;
            match real.strip_prefix(&root) {
                Ok(rel) if !rel.as_os_str().is_empty() => (rel.to_string_lossy().into_owned(), None),
                _ => {
                    let text = std::fs::read(&real).map_err(|e| prepare_error(format!("{}: {}", real.display(), cp::go_error(&e))))?;
                    (random_name(), Some(text))
                }
            }
        }
    };

    let ignore_path = root.join(".dockerignore");
    let (ignore, dockerignore) = match std::fs::read(&ignore_path) {
        Ok(bytes) => {
            let ig = Ignore::parse(&String::from_utf8_lossy(&bytes))
                .map_err(|e| anyhow!("error reading .dockerignore: {e}"))?;
            (ig, Some(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Ignore::default(), None),
        Err(e) => bail!("error reading .dockerignore: {}", cp::go_error(&e)),
    };
    // A Dockerfile from elsewhere travels in the context, listed in .dockerignore so the
    // build cannot COPY it (the daemon drops what .dockerignore names once it has read the
    // Dockerfile).
    let dockerignore = if extra.is_some() {
        let (mut text, mode, mtime) = match dockerignore {
            Some(bytes) => {
                use std::os::unix::fs::MetadataExt;
                let m = std::fs::symlink_metadata(&ignore_path)?;
                (bytes, m.mode() & 0o7777, m.mtime().max(0) as u64)
            }
            None => (b".dockerignore".to_vec(), 0o600, now()),
        };
        text.extend_from_slice(format!("\n{dockerfile}\n").as_bytes());
        Some((text, mode, mtime))
    } else {
        None
    };
    Ok(Context::Dir(DirContext {
        root,
        dockerfile,
        extra,
        ignore,
        dockerignore,
    }))
}

async fn prepare_stdin(args: &BuildArgs) -> anyhow::Result<Context> {
    if args.file.as_deref() == Some("-") {
        bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    let mut stdin = tokio::io::stdin();
    let mut head = Vec::with_capacity(512);
    while head.len() < 512 {
        let mut buf = [0u8; 512];
        let n = stdin.read(&mut buf[..512 - head.len()]).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    if is_archive(&head) {
        return Ok(Context::Stream {
            dockerfile: args.file.clone(),
            body: Box::new(std::io::Cursor::new(head).chain(stdin)),
        });
    }
    // A Dockerfile alone: the context is just it.
    let mut text = head;
    stdin.read_to_end(&mut text).await?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_mtime(now());
    h.set_size(text.len() as u64);
    tar.append_data(&mut h, "Dockerfile", &text[..])?;
    Ok(Context::Stream {
        dockerfile: Some("Dockerfile".into()),
        body: Box::new(std::io::Cursor::new(tar.into_inner()?)),
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `.dockerfile.` and 20 random hex digits.
fn random_name() -> String {
    let mut b = [0u8; 10];
    let _ = getrandom::getrandom(&mut b);
    format!(".dockerfile.{}", hex::encode(b))
}

impl DirContext {
    /// Is this context path always sent, whatever .dockerignore says?
    fn always_sent(&self, rel: &str) -> bool {
        rel == ".dockerignore" || (self.extra.is_none() && rel == self.dockerfile)
    }

    /// Must an excluded directory still be walked (something below it may be sent)?
    fn walk_excluded(&self, rel: &str) -> bool {
        self.ignore.may_reinclude_below(rel)
            || (self.extra.is_none()
                && self.dockerfile.len() > rel.len()
                && self.dockerfile.starts_with(rel)
                && self.dockerfile.as_bytes()[rel.len()] == b'/')
    }

    /// Writes the context: the directory less what .dockerignore excludes, then the
    /// generated files.
    fn write(&self, tar: &mut TarWriter) -> io::Result<()> {
        self.walk(tar, &self.root, Path::new(""), "")?;
        if let Some(text) = &self.extra {
            tar.append_bytes(&self.dockerfile, text, 0o600, now())?;
        }
        if let Some((text, mode, mtime)) = &self.dockerignore {
            tar.append_bytes(".dockerignore", text, *mode, *mtime)?;
        }
        Ok(())
    }

    fn walk(&self, tar: &mut TarWriter, dir: &Path, arc: &Path, rel: &str) -> io::Result<()> {
        for (name, path) in cp::read_dir_sorted(dir)? {
            let child_rel = if rel.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            if child_rel == ".dockerignore" && self.dockerignore.is_some() {
                continue; // sent amended at the end
            }
            let child_arc = arc.join(&name);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| with_name(e, &path))?;
            if !self.always_sent(&child_rel) && self.ignore.excluded(&child_rel) {
                if meta.is_dir() && self.walk_excluded(&child_rel) {
                    self.walk(tar, &path, &child_arc, &child_rel)?;
                }
                continue;
            }
            tar.append(&path, &meta, &child_arc)?;
            if meta.is_dir() {
                self.walk(tar, &path, &child_arc, &child_rel)?;
            }
        }
        Ok(())
    }
}

fn with_name(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {}", path.display(), cp::go_error(&e)))
}

/// `X-Registry-Config`: every stored credential, for the pulls of FROM.
fn registry_config(ctx: &Ctx) -> anyhow::Result<Option<String>> {
    let config = auth::ConfigFile::load(&ctx.config_dir)?;
    let all: BTreeMap<String, _> = config.all_credentials().into_iter().collect();
    if all.is_empty() {
        return Ok(None);
    }
    Ok(Some(base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&all)?)))
}

// ---------------------------------------------------------------------------------------
// the answer

/// Renders the build's stream; returns the image ID the daemon reported. An error in the
/// stream is the command's failure (its code, else 1), after any output `-q` held back.
async fn render(resp: hyper::Response<hyper::body::Incoming>, quiet: bool) -> anyhow::Result<Option<String>> {
    let mut messages = Messages::new(resp);
    let mut pulls: Option<Renderer> = None;
    let mut id: Option<String> = None;
    let mut held = String::new();
    let mut stdout = io::stdout();
    let result = loop {
        let msg = match messages.next().await {
            Ok(Some(m)) => m,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        if let Some(i) = msg.info.aux.as_ref().and_then(|a| a.id.clone()) {
            id = Some(i);
        }
        if let Some(message) = msg.error_text() {
            let code = msg.info.error_detail.as_ref().and_then(|d| d.code).filter(|&c| c != 0).unwrap_or(1);
            break Err(StatusError {
                code: code as i32,
                message,
            }
            .into());
        }
        if let Some(text) = &msg.info.stream {
            if quiet {
                held.push_str(text);
                continue;
            }
            if let Some(r) = pulls.take() {
                r.finish();
            }
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        } else if let Some(status) = &msg.info.status {
            if quiet {
                if let Some(i) = msg.info.id.as_deref().filter(|i| !i.is_empty()) {
                    held.push_str(&format!("{i}: "));
                }
                held.push_str(status);
                held.push('\n');
                continue;
            }
            pulls.get_or_insert_with(|| Renderer::with_target(false, false)).show(&msg);
        }
    };
    if let Some(r) = pulls.take() {
        r.finish();
    }
    if result.is_err() && quiet && !held.is_empty() {
        let mut err = io::stderr();
        let _ = err.write_all(held.as_bytes());
        if !held.ends_with('\n') {
            let _ = err.write_all(b"\n");
        }
    }
    result?;
    if quiet {
        let shown = id.clone().unwrap_or_else(|| held.trim().lines().last().unwrap_or("").to_string());
        if !shown.is_empty() {
            let _ = writeln!(stdout, "{shown}");
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_build_args_and_labels() {
        let env = |k: &str| (k == "SET").then(|| "from-env".to_string());
        let a = build_args(&["A=1".into(), "B=x=y".into(), "SET".into(), "UNSET".into(), "E=".into()], env);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"A":"1","B":"x=y","E":"","SET":"from-env"}"#
        );
        let l = labels(&["a=b".into(), "c".into()]);
        assert_eq!(serde_json::to_string(&l).unwrap(), r#"{"a":"b","c":""}"#);
    }

    #[test]
    fn tells_archives_from_dockerfiles() {
        assert!(!is_archive(b"FROM busybox\nRUN true\n"));
        assert!(is_archive(&[0x1f, 0x8b, 0x08, 0, 0]));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_old();
        h.set_size(1);
        b.append_data(&mut h, "Dockerfile", &b"x"[..]).unwrap();
        assert!(is_archive(&b.into_inner().unwrap()[..512]));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, "Dockerfile", &b"x"[..]).unwrap();
        assert!(is_archive(&b.into_inner().unwrap()[..512]));
    }

    fn names_sent(dir: &DirContext) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (writer, mut body) = cp::body_pipe();
        let bytes = std::thread::scope(|s| {
            let w = s.spawn(move || {
                let mut tar = TarWriter::new(writer, false);
                let written = dir.write(&mut tar);
                tar.finish(written)
            });
            let mut v = Vec::new();
            rt.block_on(body.read_to_end(&mut v)).unwrap();
            w.join().unwrap().unwrap();
            v
        });
        let mut a = tar::Archive::new(&bytes[..]);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(e.header().uid().unwrap(), 0);
                String::from_utf8_lossy(&e.path_bytes()).into_owned()
            })
            .collect()
    }

    #[test]
    fn context_follows_dockerignore() {
        let root = std::env::temp_dir().join(format!("berth-build-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["src/keep", "logs", "docker"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["src/a.rs", "src/keep/k.txt", "logs/x.log", "docker/Dockerfile", "secret", "README.md"] {
            std::fs::write(root.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let ignore_text = "logs\nsecret\ndocker\n*.md\n!README.md\n.dockerignore\n";
        std::fs::write(root.join(".dockerignore"), ignore_text).unwrap();
        let dir = DirContext {
            root: root.clone(),
            dockerfile: "docker/Dockerfile".into(),
            extra: None,
            ignore: Ignore::parse(ignore_text).unwrap(),
            dockerignore: None,
        };
        assert_eq!(
            names_sent(&dir),
            vec![".dockerignore", "README.md", "docker/Dockerfile", "link", "src/", "src/a.rs", "src/keep/", "src/keep/k.txt"]
        );
        // a Dockerfile from outside: sent under its generated name and listed in .dockerignore
        let dir = DirContext {
            dockerfile: ".dockerfile.0123".into(),
            extra: Some(b"FROM scratch\n".to_vec()),
            dockerignore: Some((format!("{ignore_text}\n.dockerfile.0123\n").into_bytes(), 0o644, 0)),
            ..dir
        };
        let names = names_sent(&dir);
        assert_eq!(names.iter().filter(|n| *n == ".dockerignore").count(), 1);
        assert!(!names.contains(&"docker/Dockerfile".to_string()));
        assert_eq!(&names[names.len() - 2..], [".dockerfile.0123", ".dockerignore"]);
        let _ = std::fs::remove_dir_all(&root);
    }
}
