//! One build in flight: its stages, each instruction as a step with its cache key.

use super::context::{self, append_tree, fd_path, open_in, Context, Owner, Scratch};
use super::dockerfile::{self, CmdForm, Dockerfile, Heredoc, Instruction, Kind, Stage};
use super::{short, BuildOptions, BuildService, PREDEFINED_ARGS};
use crate::container::io::Stream;
use crate::errors::{Error, Result};
use crate::image::{CommitInfo, ImageRecord, Progress};
use nix::fcntl::OFlag;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Builder {
    svc: Arc<BuildService>,
    opts: BuildOptions,
    ctx: Arc<Context>,
    work: Scratch,
    out: Progress,
    step: usize,
    total: usize,
    escape: char,
    /// ARGs before the first FROM, with their values.
    meta: BTreeMap<String, String>,
    /// Finished stages: name and image.
    stages: Vec<(Option<String>, ImageRecord)>,
    used: HashSet<String>,
    seq: usize,
    /// Every image this build stands on, out of GC's (and prune's) reach until it ends.
    leases: Vec<crate::image::OwnedLease>,
    /// The exit code of a RUN that failed (the docker CLI exits with it).
    pub failed_code: Option<i64>,
    /// Whether any instruction ran (FROM scratch alone makes no image).
    pub any_step: bool,
}

/// The image a stage has reached and what later steps need of it.
struct State {
    image: ImageRecord,
    config: Map<String, Value>,
    /// ARGs declared in this stage that have a value.
    args: Vec<(String, String)>,
    author: Option<String>,
    /// CMD set in this stage (a new ENTRYPOINT clears an inherited CMD only).
    cmd_set: bool,
}

impl State {
    fn env(&self) -> Vec<String> {
        self.config.get("Env").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
    }
    /// ENV wins over ARG, as in Docker.
    fn lookup(&self, name: &str) -> Option<String> {
        let env = self.env();
        env.iter().rev().find_map(|e| e.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string())).or_else(|| self.args.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }
    fn set_env(&mut self, k: &str, v: &str) {
        let mut env = self.env();
        env.retain(|e| e.split('=').next() != Some(k));
        env.push(format!("{k}={v}"));
        self.config.insert("Env".into(), json!(env));
    }
    fn workdir(&self) -> String {
        self.config.get("WorkingDir").and_then(|v| v.as_str()).filter(|s| !s.is_empty()).unwrap_or("/").to_string()
    }
    fn shell(&self) -> Vec<String> {
        self.config.get("Shell").and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok()).filter(|s| !s.is_empty()).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }
    fn argv(&self, f: &CmdForm) -> Vec<String> {
        match f {
            CmdForm::Exec(v) => v.clone(),
            CmdForm::Shell(s) => self.shell().into_iter().chain(std::iter::once(s.clone())).collect(),
        }
    }
    /// Declared args not shadowed by ENV: what RUN sees in its environment.
    fn run_args(&self) -> Vec<String> {
        let env = self.env();
        let mut seen = HashSet::new();
        let mut out: Vec<String> = self.args.iter().rev().filter(|(k, _)| seen.insert(k.clone()) && !env.iter().any(|e| e.split('=').next() == Some(k))).map(|(k, v)| format!("{k}={v}")).collect();
        out.sort();
        out
    }
}

/// A COPY/ADD source, opened inside its root.
struct Src {
    _fd: OwnedFd,
    path: PathBuf,
    name: String,
    is_dir: bool,
    archive: bool,
}

/// Join `p` to `base` unless absolute, with `.`/`..` resolved lexically and a trailing `/` kept.
fn abs_path(base: &str, p: &str) -> String {
    let joined = if p.starts_with('/') { p.to_string() } else { format!("{}/{p}", base.trim_end_matches('/')) };
    let mut parts: Vec<&str> = vec![];
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut s = format!("/{}", parts.join("/"));
    if p.ends_with('/') && s != "/" {
        s.push('/');
    }
    s
}

fn key_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    hex::encode(h.finalize())
}

/// Go-style durations of HEALTHCHECK flags (`30s`, `1m30s`, `500ms`) in nanoseconds.
fn duration_ns(s: &str) -> Result<i64> {
    let bad = || Error::invalid(format!("invalid duration {s:?}"));
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let v: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += v * mult;
        rest = &rest[u..];
    }
    Ok(total as i64)
}

/// Create every missing directory of `path` inside `root` (never leaving it); the last one opened.
fn mkdir_p(root: &OwnedFd, path: &str, own: Option<(u32, u32)>) -> Result<OwnedFd> {
    let mut cur = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let parent = open_in(root, &cur, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(|e| Error::invalid(format!("{path}: {e}")))?;
        match nix::sys::stat::mkdirat(Some(std::os::fd::AsRawFd::as_raw_fd(&parent)), comp, nix::sys::stat::Mode::from_bits_truncate(0o755)) {
            Ok(()) => {
                if let Some((u, g)) = own {
                    let _ = nix::unistd::fchownat(Some(std::os::fd::AsRawFd::as_raw_fd(&parent)), comp, Some(u.into()), Some(g.into()), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
                }
            }
            Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::invalid(format!("creating {path}: {e}"))),
        }
        cur = format!("{cur}/{comp}");
    }
    open_in(root, &cur, OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(|e| Error::invalid(format!("{path}: {}", if e == nix::errno::Errno::ENOTDIR { "not a directory".to_string() } else { e.to_string() })))
}

/// What kind of archive ADD would unpack; None for a plain file.
fn archive_kind(p: &Path) -> std::io::Result<Option<&'static str>> {
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(p)?;
    let mut n = 0;
    while n < head.len() {
        let k = f.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let h = &head[..n];
    Ok(if h.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if h.starts_with(b"BZh") {
        Some("bzip2")
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Some("tar")
    } else {
        None
    })
}

impl Builder {
    pub fn new(svc: Arc<BuildService>, opts: BuildOptions, ctx: Context, work: Scratch, out: Progress, total: usize, df: &Dockerfile) -> Builder {
        let mut b = Builder { svc, opts, ctx: Arc::new(ctx), work, out, step: 0, total, escape: df.escape, meta: BTreeMap::new(), stages: vec![], used: HashSet::new(), seq: 0, leases: vec![], failed_code: None, any_step: false };
        for (name, default) in &df.meta_args {
            let val = match b.opts.build_args.get(name) {
                Some(Some(v)) => Some(v.clone()),
                _ => default.as_ref().and_then(|d| dockerfile::expand(d, b.escape, &|n| b.meta.get(n).cloned()).ok()),
            };
            b.used.insert(name.clone());
            if let Some(v) = val {
                b.meta.insert(name.clone(), v);
            }
        }
        b
    }

    pub fn say(&self, s: &str) {
        if !self.opts.quiet {
            self.out.stream(s);
        }
    }

    fn hold(&mut self, rec: &ImageRecord) {
        self.leases.push(self.svc.images.lease_image(rec));
    }

    /// The client went away: nobody waits for this build any more.
    fn check_client(&self) -> Result<()> {
        if self.out.closed() {
            return Err(Error::invalid("the build was cancelled: the client went away"));
        }
        Ok(())
    }

    fn step_line(&mut self, original: &str) {
        self.step += 1;
        self.say(&format!("Step {}/{} : {}\n", self.step, self.total, original));
    }

    pub fn unused_args(&self) -> Vec<String> {
        self.opts.build_args.keys().filter(|k| !self.used.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str())).cloned().collect()
    }

    fn cached(&self, key: &str) -> Option<ImageRecord> {
        if self.opts.no_cache {
            return None;
        }
        self.svc.cached(key)
    }

    fn step_dir(&mut self) -> PathBuf {
        self.seq += 1;
        self.work.0.join(format!("step-{}", self.seq))
    }

    fn expand(&self, st: &State, raw: &str, line: usize) -> Result<String> {
        dockerfile::expand(raw, self.escape, &|n| st.lookup(n)).map_err(|e| Error::invalid(format!("Dockerfile line {line}: {e}")))
    }

    /// Raw words expanded, unquoted variables split into words as Docker does (a word with
    /// whitespace in it came from a JSON array and stays one).
    fn expand_all(&self, st: &State, words: &[String], line: usize) -> Result<Vec<String>> {
        let mut out = vec![];
        for w in words {
            if w.chars().any(char::is_whitespace) {
                out.push(self.expand(st, w, line)?);
            } else {
                out.extend(dockerfile::expand_words(w, self.escape, &|n| st.lookup(n)).map_err(|e| Error::invalid(format!("Dockerfile line {line}: {e}")))?);
            }
        }
        Ok(out)
    }

    fn image_config(&self, rec: &ImageRecord) -> Result<Map<String, Value>> {
        Ok(match self.svc.images.config_json(rec)?.get("config") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        })
    }

    /// An image by reference for `platform`: local if it is there for that platform, else
    /// pulled (always with `--pull`).
    async fn base_image(&self, name: &str, platform: &crate::image::Platform) -> Result<ImageRecord> {
        let r = crate::reference::Reference::parse(name)?;
        if !self.opts.pull {
            if let Ok(rec) = self.svc.images.resolve(name) {
                let arch = self.svc.images.config_json(&rec)?.get("architecture").and_then(|a| a.as_str()).unwrap_or("").to_string();
                if arch.is_empty() || arch == platform.arch {
                    return Ok(rec);
                }
            }
        }
        let progress = if self.opts.quiet { Progress::discard() } else { self.out.clone() };
        let id = self.svc.images.pull(&r, platform, self.opts.creds.clone(), &progress).await?;
        self.svc.images.get_record(&id)
    }

    /// An earlier stage by name or index, else an image.
    async fn stage_or_image(&self, name: &str, platform: &crate::image::Platform) -> Result<ImageRecord> {
        let lower = name.to_ascii_lowercase();
        if let Some((_, img)) = self.stages.iter().rev().find(|(n, _)| n.as_deref() == Some(lower.as_str())) {
            return Ok(img.clone());
        }
        if let Ok(i) = name.parse::<usize>() {
            return self.stages.get(i).map(|(_, img)| img.clone()).ok_or_else(|| Error::invalid(format!("invalid from flag value {name}: refers to a stage that is not built before this one")));
        }
        self.base_image(name, platform).await
    }

    pub async fn stage(&mut self, stage: &Stage, _df: &Dockerfile) -> Result<ImageRecord> {
        self.step_line(&stage.original);
        let base = dockerfile::expand(&stage.base, self.escape, &|n| self.meta.get(n).cloned()).map_err(|e| Error::invalid(format!("Dockerfile line {}: {e}", stage.line)))?;
        if base.is_empty() {
            return Err(Error::invalid(format!("Dockerfile line {}: FROM names no image", stage.line)));
        }
        // FROM --platform: the base image for that platform (pulled if the local one is
        // for another); the build's RUN steps still run on this host.
        let platform = match &stage.platform {
            Some(p) => {
                let p = dockerfile::expand(p, self.escape, &|n| self.meta.get(n).cloned()).map_err(|e| Error::invalid(format!("Dockerfile line {}: {e}", stage.line)))?;
                crate::image::Platform::parse(&p)?
            }
            None => crate::image::Platform::host(),
        };
        let image = if base.eq_ignore_ascii_case("scratch") {
            self.svc.images.scratch()?
        } else {
            self.stage_or_image(&base, &platform).await?
        };
        self.hold(&image);
        self.say(&format!(" ---> {}\n", short(&image.id)));
        let config = self.image_config(&image)?;
        let triggers: Vec<String> = config.get("OnBuild").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
        let mut st = State { image, config, args: vec![], author: None, cmd_set: false };
        if !triggers.is_empty() {
            self.say(&format!("# Executing {} build trigger{}\n", triggers.len(), if triggers.len() == 1 { "" } else { "s" }));
            st.config.remove("OnBuild");
            for t in &triggers {
                let parsed = dockerfile::parse(&format!("FROM scratch\n{t}\n")).map_err(|e| Error::invalid(format!("ONBUILD trigger {t:?}: {e}")))?;
                for inst in parsed.stages.into_iter().flat_map(|s| s.instructions) {
                    self.exec(&mut st, &inst).await?;
                }
            }
        }
        for inst in &stage.instructions {
            self.check_client()?;
            self.step_line(&inst.original);
            self.any_step = true;
            self.exec(&mut st, inst).await?;
            let img = st.image.clone();
            self.hold(&img);
        }
        self.stages.push((stage.name.clone(), st.image.clone()));
        Ok(st.image)
    }

    /// `--label`: set on the final image, as a cached configuration step.
    pub async fn labels(&mut self, image: ImageRecord, labels: &BTreeMap<String, String>) -> Result<ImageRecord> {
        let config = self.image_config(&image)?;
        let mut st = State { image, config, args: vec![], author: None, cmd_set: true };
        let mut l = st.config.get("Labels").and_then(|v| v.as_object().cloned()).unwrap_or_default();
        for (k, v) in labels {
            l.insert(k.clone(), json!(v));
        }
        st.config.insert("Labels".into(), Value::Object(l));
        let desc = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        self.meta_step(&mut st, format!("LABEL {desc}")).await?;
        Ok(st.image)
    }

    async fn exec(&mut self, st: &mut State, inst: &Instruction) -> Result<()> {
        let line = inst.line;
        match &inst.kind {
            Kind::Env(pairs) | Kind::Label(pairs) => {
                let is_env = matches!(inst.kind, Kind::Env(_));
                // Every pair sees the values from before the instruction (Docker's
                // `ENV abc=bye def=$abc` gives def the old abc).
                let mut expanded = vec![];
                for (k, v) in pairs {
                    let (k, v) = (self.expand(st, k, line)?, self.expand(st, v, line)?);
                    if k.is_empty() {
                        return Err(Error::invalid(format!("Dockerfile line {line}: empty key")));
                    }
                    expanded.push((k, v));
                }
                let mut desc = vec![];
                for (k, v) in expanded {
                    desc.push(format!("{k}={v}"));
                    if is_env {
                        st.set_env(&k, &v);
                    } else {
                        let mut l = st.config.get("Labels").and_then(|v| v.as_object().cloned()).unwrap_or_default();
                        l.insert(k, json!(v));
                        st.config.insert("Labels".into(), Value::Object(l));
                    }
                }
                self.meta_step(st, format!("{} {}", if is_env { "ENV" } else { "LABEL" }, desc.join(" "))).await
            }
            Kind::Arg(list) => {
                let mut vals = vec![];
                for (name, default) in list {
                    self.used.insert(name.clone());
                    let val = match self.opts.build_args.get(name) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => match default {
                            Some(d) => Some(self.expand(st, d, line)?),
                            None => self.meta.get(name).cloned(),
                        },
                    };
                    vals.push((name.clone(), val));
                }
                for (name, val) in vals {
                    st.args.retain(|(k, _)| *k != name);
                    if let Some(v) = val {
                        st.args.push((name, v));
                    }
                }
                self.say(&format!(" ---> {}\n", short(&st.image.id)));
                Ok(())
            }
            Kind::Workdir(raw) => {
                let p = self.expand(st, raw, line)?;
                let dir = abs_path(&st.workdir(), &p).trim_end_matches('/').to_string();
                let dir = if dir.is_empty() { "/".to_string() } else { dir };
                st.config.insert("WorkingDir".into(), json!(dir));
                let created_by = format!("/bin/sh -c #(nop) WORKDIR {dir}");
                let d = dir.clone();
                self.fs_step(st, created_by, String::new(), move |root, _| mkdir_p(root, &d, None).map(|_| ())).await
            }
            Kind::User(raw) | Kind::StopSignal(raw) => {
                let v = self.expand(st, raw, line)?;
                let (key, word) = if matches!(inst.kind, Kind::User(_)) { ("User", "USER") } else { ("StopSignal", "STOPSIGNAL") };
                st.config.insert(key.into(), json!(v));
                self.meta_step(st, format!("{word} {v}")).await
            }
            Kind::Maintainer(raw) => {
                st.author = Some(raw.clone());
                self.meta_step(st, format!("MAINTAINER {raw}")).await
            }
            Kind::Expose(words) => {
                let mut ports = st.config.get("ExposedPorts").and_then(|v| v.as_object().cloned()).unwrap_or_default();
                let mut desc = vec![];
                for w in self.expand_all(st, words, line)? {
                    let (range, proto) = w.split_once('/').unwrap_or((w.as_str(), "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
                        return Err(Error::invalid(format!("Dockerfile line {line}: invalid proto {proto:?} in EXPOSE {w}")));
                    }
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    let (a, b): (u16, u16) = match (a.parse(), b.parse()) {
                        (Ok(a), Ok(b)) if a <= b => (a, b),
                        _ => return Err(Error::invalid(format!("Dockerfile line {line}: invalid port {w:?} in EXPOSE"))),
                    };
                    for p in a..=b {
                        ports.insert(format!("{p}/{proto}"), json!({}));
                        desc.push(format!("{p}/{proto}"));
                    }
                }
                st.config.insert("ExposedPorts".into(), Value::Object(ports));
                self.meta_step(st, format!("EXPOSE {}", desc.join(" "))).await
            }
            Kind::Volume(words) => {
                let mut vols = st.config.get("Volumes").and_then(|v| v.as_object().cloned()).unwrap_or_default();
                let mut desc = vec![];
                for w in words {
                    let v = self.expand(st, w, line)?;
                    if v.is_empty() {
                        return Err(Error::invalid(format!("Dockerfile line {line}: VOLUME specified can not be an empty string")));
                    }
                    vols.insert(v.clone(), json!({}));
                    desc.push(v);
                }
                st.config.insert("Volumes".into(), Value::Object(vols));
                self.meta_step(st, format!("VOLUME [{}]", desc.join(" "))).await
            }
            Kind::Cmd(f) => {
                let argv = st.argv(f);
                st.config.insert("Cmd".into(), json!(argv));
                st.cmd_set = true;
                self.meta_step(st, format!("CMD {}", json!(argv))).await
            }
            Kind::Entrypoint(f) => {
                let argv = st.argv(f);
                st.config.insert("Entrypoint".into(), json!(argv));
                if !st.cmd_set {
                    st.config.insert("Cmd".into(), Value::Null);
                }
                self.meta_step(st, format!("ENTRYPOINT {}", json!(argv))).await
            }
            Kind::Shell(v) => {
                if v.is_empty() {
                    return Err(Error::invalid(format!("Dockerfile line {line}: SHELL requires at least one argument")));
                }
                st.config.insert("Shell".into(), json!(v));
                self.meta_step(st, format!("SHELL {}", json!(v))).await
            }
            Kind::Healthcheck(h) => {
                let mut hc = Map::new();
                match &h.test {
                    None => {
                        hc.insert("Test".into(), json!(["NONE"]));
                    }
                    Some(CmdForm::Exec(v)) => {
                        hc.insert("Test".into(), json!(std::iter::once("CMD".to_string()).chain(v.iter().cloned()).collect::<Vec<_>>()));
                    }
                    Some(CmdForm::Shell(s)) => {
                        hc.insert("Test".into(), json!(["CMD-SHELL", s]));
                    }
                }
                for (k, v) in &h.flags {
                    let field = match k.as_str() {
                        "interval" => "Interval",
                        "timeout" => "Timeout",
                        "start-period" => "StartPeriod",
                        "start-interval" => "StartInterval",
                        "retries" => {
                            let n: i64 = v.parse().map_err(|_| Error::invalid(format!("Dockerfile line {line}: invalid retries {v:?}")))?;
                            hc.insert("Retries".into(), json!(n));
                            continue;
                        }
                        other => return Err(Error::invalid(format!("Dockerfile line {line}: unknown flag --{other}"))),
                    };
                    hc.insert(field.into(), json!(duration_ns(v).map_err(|e| e.context(format!("Dockerfile line {line}")))?));
                }
                let desc = format!("HEALTHCHECK {}", Value::Object(hc.clone()));
                st.config.insert("Healthcheck".into(), Value::Object(hc));
                self.meta_step(st, desc).await
            }
            Kind::Onbuild(t) => {
                dockerfile::parse(&format!("FROM scratch\n{t}\n")).map_err(|e| Error::invalid(format!("Dockerfile line {line}: ONBUILD {t}: {e}")))?;
                let mut list: Vec<Value> = st.config.get("OnBuild").and_then(|v| v.as_array().cloned()).unwrap_or_default();
                list.push(json!(t));
                st.config.insert("OnBuild".into(), Value::Array(list));
                self.meta_step(st, format!("ONBUILD {t}")).await
            }
            Kind::Run { cmd, flags, heredocs } => self.run(st, cmd, flags, heredocs).await,
            Kind::Copy { add, srcs, dest, flags, heredocs } => self.copy(st, *add, srcs, dest, flags, heredocs, line).await,
        }
    }

    /// A step that changes only the configuration.
    async fn meta_step(&mut self, st: &mut State, desc: String) -> Result<()> {
        let created_by = format!("/bin/sh -c #(nop)  {desc}");
        let cfg = Value::Object(st.config.clone()).to_string();
        let key = key_of(&[&st.image.id, &created_by, &cfg, st.author.as_deref().unwrap_or("")]);
        let rec = match self.cached(&key) {
            Some(rec) => {
                self.say(" ---> Using cache\n");
                rec
            }
            None => {
                let id = self.svc.images.derive(&st.image, st.config.clone(), &created_by, st.author.as_deref())?;
                self.svc.remember(&key, &id)?;
                self.svc.images.get_record(&id)?
            }
        };
        self.say(&format!(" ---> {}\n", short(&rec.id)));
        st.image = rec;
        Ok(())
    }

    /// A step that changes files in a temporary overlay of the image (COPY, ADD, WORKDIR):
    /// `f` gets the mounted root's path and descriptor. No change at all gives a
    /// configuration-only image.
    async fn fs_step(&mut self, st: &mut State, created_by: String, inputs: String, f: impl FnOnce(&OwnedFd, &Path) -> Result<()> + Send + 'static) -> Result<()> {
        let cfg = Value::Object(st.config.clone()).to_string();
        let key = key_of(&[&st.image.id, &created_by, &inputs, &cfg, st.author.as_deref().unwrap_or("")]);
        if let Some(rec) = self.cached(&key) {
            self.say(&format!(" ---> Using cache\n ---> {}\n", short(&rec.id)));
            st.image = rec;
            return Ok(());
        }
        let dir = self.step_dir();
        let (svc, parent, config, author) = (self.svc.clone(), st.image.clone(), st.config.clone(), st.author.clone());
        let id = tokio::task::spawn_blocking(move || -> Result<String> {
            let images = &svc.images;
            let lowers = match parent.chain_ids.last() {
                Some(t) => images.snapshots.lowers(&svc.store, t)?,
                None => vec![],
            };
            for d in ["upper", "work", "root", "empty"] {
                std::fs::create_dir_all(dir.join(d))?;
            }
            let lowerdir = if lowers.is_empty() { dir.join("empty").display().to_string() } else { lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":") };
            let opts = format!("lowerdir={lowerdir},upperdir={},workdir={}", dir.join("upper").display(), dir.join("work").display());
            let root = dir.join("root");
            nix::mount::mount(Some("overlay"), &root, Some("overlay"), nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOSUID, Some(opts.as_str())).map_err(|e| Error::internal(format!("mounting the image for the step: {e}")))?;
            let res = (|| {
                let fd = nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).map_err(|e| Error::internal(format!("the step's root: {e}")))?;
                // SAFETY: open returned a fresh descriptor that nothing else owns.
                let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                f(&fd, &root)
            })();
            let _ = nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH);
            res?;
            let upper = dir.join("upper");
            let id = if std::fs::read_dir(&upper)?.next().is_none() {
                images.derive(&parent, config, &created_by, author.as_deref())?
            } else {
                let info = CommitInfo { config: Value::Object(config), changes: &[], author: author.as_deref().unwrap_or(""), comment: "", created_by: &created_by, repo: None, tag: None };
                crate::container::changes::commit_upper(images, &parent, &upper, &lowers, info)?
            };
            context::remove_tree(&dir);
            Ok(id)
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        self.svc.remember(&key, &id)?;
        let rec = self.svc.images.get_record(&id)?;
        self.say(&format!(" ---> {}\n", short(&rec.id)));
        st.image = rec;
        Ok(())
    }

    async fn run(&mut self, st: &mut State, cmd: &CmdForm, flags: &[(String, String)], heredocs: &[Heredoc]) -> Result<()> {
        let mut argv = st.argv(cmd);
        if let (CmdForm::Shell(text), Some(first)) = (cmd, heredocs.first()) {
            // `RUN <<EOF` runs the body as the script; `RUN cmd <<EOF` gives the shell the
            // heredoc as written, for it to feed to cmd.
            let script = if text.trim_start().starts_with("<<") {
                first.content.clone()
            } else {
                let mut s = text.clone();
                for h in heredocs {
                    s.push('\n');
                    s.push_str(&h.content);
                    if !h.content.ends_with('\n') {
                        s.push('\n');
                    }
                    s.push_str(&h.name);
                }
                s
            };
            argv = st.shell().into_iter().chain(std::iter::once(script)).collect();
        }
        let args = st.run_args();
        let created_by = if args.is_empty() { argv.join(" ") } else { format!("|{} {} {}", args.len(), args.join(" "), argv.join(" ")) };
        let cfg = Value::Object(st.config.clone()).to_string();
        let key = key_of(&[&st.image.id, "RUN", &serde_json::to_string(&argv).unwrap_or_default(), &created_by, &cfg]);
        if let Some(rec) = self.cached(&key) {
            self.say(&format!(" ---> Using cache\n ---> {}\n", short(&rec.id)));
            st.image = rec;
            return Ok(());
        }
        let mut network = self.opts.network.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
        for (k, v) in flags {
            match k.as_str() {
                "network" => network = v.clone(),
                other => return Err(Error::new(crate::errors::Kind::NotImplemented, format!("RUN --{other} is not supported by the classic builder"))),
            }
        }
        let str_of = |k: &str| st.config.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let mut env = st.env();
        env.extend(args);
        // Proxy settings given as build args reach RUN without being declared, and stay out
        // of the history and the cache key (Docker's predefined ARGs).
        for (k, v) in &self.opts.build_args {
            if let (true, Some(v)) = (PREDEFINED_ARGS.contains(&k.as_str()), v) {
                if !env.iter().any(|e| e.split('=').next() == Some(k)) {
                    env.push(format!("{k}={v}"));
                }
            }
        }
        let body = bollard_stubs::models::ContainerCreateBody {
            image: Some(st.image.id.clone()),
            cmd: Some(argv.clone()),
            entrypoint: Some(vec![String::new()]),
            env: Some(env),
            user: str_of("User"),
            working_dir: str_of("WorkingDir"),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(bollard_stubs::models::HostConfig { network_mode: Some(network), ..Default::default() }),
            // No health probes in a build step.
            healthcheck: Some(bollard_stubs::models::HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() }),
            ..Default::default()
        };
        let containers = self.svc.containers.clone();
        let (cid, _) = containers.create(None, body)?;
        self.say(&format!(" ---> Running in {}\n", &cid[..12.min(cid.len())]));
        let res = self.run_container(&cid).await;
        let res = match res {
            Ok(0) => {
                let (svc, parent, config, author, created_by, cid2) = (self.svc.clone(), st.image.clone(), st.config.clone(), st.author.clone(), created_by.clone(), cid.clone());
                tokio::task::spawn_blocking(move || -> Result<String> {
                    let lowers = match parent.chain_ids.last() {
                        Some(t) => svc.images.snapshots.lowers(&svc.store, t)?,
                        None => vec![],
                    };
                    let info = CommitInfo { config: Value::Object(config), changes: &[], author: author.as_deref().unwrap_or(""), comment: "", created_by: &created_by, repo: None, tag: None };
                    crate::container::changes::commit_upper(&svc.images, &parent, &svc.containers.data_dir(&cid2).join("upper"), &lowers, info)
                })
                .await
                .map_err(|e| Error::internal(e.to_string()))
                .and_then(|r| r)
            }
            Ok(code) => {
                self.failed_code = Some(code);
                Err(Error::invalid(format!("The command '{}' returned a non-zero code: {code}", argv.join(" "))))
            }
            Err(e) => Err(e),
        };
        if self.opts.force_remove || (self.opts.remove && res.is_ok()) || res.is_err() {
            if let Err(e) = containers.remove(&cid, true, true).await {
                tracing::warn!(container = %cid, "removing a build container: {e}");
            }
            if res.is_ok() {
                self.say(&format!("Removing intermediate container {}\n", &cid[..12.min(cid.len())]));
            }
        }
        let id = res?;
        self.svc.remember(&key, &id)?;
        let rec = self.svc.images.get_record(&id)?;
        self.say(&format!(" ---> {}\n", short(&rec.id)));
        st.image = rec;
        Ok(())
    }

    /// Start the container, stream its output into the build's, and return its exit code.
    async fn run_container(&self, cid: &str) -> Result<i64> {
        let containers = &self.svc.containers;
        let ticket = containers.wait_ticket(cid, "next-exit")?;
        let (_, mut rx) = containers.attach_handles(cid)?;
        let out = self.out.clone();
        let quiet = self.opts.quiet;
        let fwd = tokio::spawn(async move {
            let mut ends = 0;
            loop {
                match rx.recv().await {
                    Ok((Stream::Stdin, b)) if b.is_empty() => {
                        ends += 1;
                        if ends >= 2 {
                            break;
                        }
                    }
                    Ok((Stream::Stdin, _)) => {}
                    Ok((_, b)) => {
                        if !quiet {
                            out.stream(&String::from_utf8_lossy(&b));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
        });
        if let Err(e) = containers.start(cid).await {
            fwd.abort();
            return Err(e);
        }
        let wait = containers.wait_with(ticket);
        tokio::pin!(wait);
        let code = loop {
            tokio::select! {
                c = &mut wait => break c,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    // Nobody waits for this build any more: stop the step.
                    if self.out.closed() {
                        let _ = containers.kill(cid, Some("KILL")).await;
                    }
                }
            }
        };
        if self.out.closed() {
            fwd.abort();
            return Err(Error::invalid("the build was cancelled: the client went away"));
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), fwd).await;
        code
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy(&mut self, st: &mut State, add: bool, srcs: &[String], dest: &str, flags: &[(String, String)], heredocs: &[Heredoc], line: usize) -> Result<()> {
        let word = if add { "ADD" } else { "COPY" };
        let (mut from, mut chown, mut chmod) = (None, None, None);
        for (k, v) in flags {
            match k.as_str() {
                "from" if !add => from = Some(self.expand(st, v, line)?),
                "chown" => chown = Some(self.expand(st, v, line)?).filter(|s| !s.is_empty()),
                "chmod" => chmod = Some(u32::from_str_radix(v, 8).map_err(|_| Error::invalid(format!("Dockerfile line {line}: invalid chmod {v:?}: expected octal")))?),
                "link" => {}
                other => return Err(Error::new(crate::errors::Kind::NotImplemented, format!("Dockerfile line {line}: {word} --{other} is not supported by the classic builder"))),
            }
        }
        if srcs.is_empty() {
            return Err(Error::invalid(format!("Dockerfile line {line}: {word} requires at least two arguments")));
        }
        let dest = self.expand(st, dest, line)?;
        let dest = abs_path(&st.workdir(), &dest);
        let dir = self.step_dir();
        std::fs::create_dir_all(&dir)?;
        // Where sources are read from: the context, another stage's or image's files, or
        // files this step writes (heredocs, downloads).
        let from_root: Option<(OwnedFd, PathBuf)> = match &from {
            Some(f) => {
                let img = self.stage_or_image(f, &crate::image::Platform::host()).await?;
                self.hold(&img);
                let lowers = match img.chain_ids.last() {
                    Some(t) => self.svc.images.snapshots.lowers(&self.svc.store, t)?,
                    None => vec![],
                };
                let mnt = dir.join("from");
                if lowers.is_empty() {
                    std::fs::create_dir_all(&mnt)?;
                } else {
                    crate::snapshot::mount_readonly(&lowers, &mnt)?;
                }
                let fd = nix::fcntl::open(&mnt, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).map_err(|e| Error::internal(e.to_string()))?;
                // SAFETY: open returned a fresh descriptor that nothing else owns.
                Some((unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }, mnt))
            }
            None => None,
        };
        let (root_fd, root_dir) = match &from_root {
            Some((fd, p)) => (fd, p.clone()),
            None => (self.ctx.root(), self.ctx.dir.clone()),
        };
        let own_dir = dir.join("own");
        let mut sources: Vec<Src> = vec![];
        let mut hash = Sha256::new();
        let mut all: Option<Vec<String>> = None;
        let mut words: Vec<String> = vec![];
        for (i, raw) in srcs.iter().enumerate() {
            if let Some(h) = raw.strip_prefix("<<").map(|n| n.trim_start_matches('-').trim_matches(['"', '\''])).and_then(|n| heredocs.iter().find(|h| h.name == n)) {
                // The body goes to a name of the build's own; the heredoc's name is only
                // what the file is called at the destination, and must be a plain name.
                if h.name.is_empty() || h.name.contains(['/', '\0']) || h.name == "." || h.name == ".." {
                    return Err(Error::invalid(format!("Dockerfile line {line}: invalid heredoc name {:?}", h.name)));
                }
                std::fs::create_dir_all(&own_dir)?;
                let file = format!("heredoc-{i}");
                std::fs::write(own_dir.join(&file), &h.content)?;
                std::fs::set_permissions(own_dir.join(&file), std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
                let mut src = self.open_src(&own_dir_fd(&own_dir)?, &file, false)?;
                src.name = h.name.clone();
                sources.push(src);
                continue;
            }
            words.extend(self.expand_all(st, std::slice::from_ref(raw), line)?);
        }
        for src in words {
            if add && (src.starts_with("http://") || src.starts_with("https://")) {
                std::fs::create_dir_all(&own_dir)?;
                let name = self.download(&src, &own_dir).await?;
                sources.push(self.open_src(&own_dir_fd(&own_dir)?, &name, false)?);
                continue;
            }
            if context::has_glob(&src) {
                let pattern = context::clean_source(&src)?;
                let base = root_dir.clone();
                let list = match &all {
                    Some(l) => l.clone(),
                    None => {
                        let l = tokio::task::spawn_blocking(move || context::all_paths(&base)).await.map_err(|e| Error::internal(e.to_string()))?;
                        all = Some(l.clone());
                        l
                    }
                };
                let hits: Vec<String> = list.iter().filter(|p| context::glob_match(&pattern, p)).cloned().collect();
                for h in hits {
                    sources.push(self.open_src(root_fd, &h, add && from.is_none())?);
                }
                continue;
            }
            let rel = context::clean_source(&src)?;
            sources.push(self.open_src(root_fd, &rel, add && from.is_none()).map_err(|e| if e.kind == crate::errors::Kind::NotFound { Error::invalid(format!("{word} failed: file not found in build context or excluded by .dockerignore: stat {src}: file does not exist")) } else { e })?);
        }
        if sources.is_empty() {
            return Err(Error::invalid(format!("{word} failed: no source files were specified")));
        }
        let many = sources.len() > 1;
        for s in &sources {
            hash.update(format!("{}\0{}\0{}\0", s.name, s.is_dir, s.archive));
            let p = s.path.clone();
            let mut h2 = Sha256::new();
            tokio::task::block_in_place(|| context::hash_tree(&p, &mut h2)).map_err(|e| Error::internal(format!("{word}: reading {}: {e}", s.name)))?;
            hash.update(h2.finalize());
        }
        let kind = if many { "multi" } else if sources[0].is_dir { "dir" } else { "file" };
        let created_by = format!("/bin/sh -c #(nop) {word} {kind}:{} in {dest} ", hex::encode(hash.finalize()));
        let inputs = format!("chown={chown:?} chmod={chmod:?}");
        let dest_c = dest.clone();
        let res = self
            .fs_step(st, created_by, inputs, move |root, root_path| {
                let own = match &chown {
                    Some(spec) => {
                        let (u, g) = spec.split_once(':').map(|(u, g)| (u, Some(g))).unwrap_or((spec.as_str(), None));
                        let user = crate::container::spec::resolve_user(root_path, u, &[])?;
                        let gid = match g {
                            Some(g) => crate::container::spec::resolve_user(root_path, &format!("{u}:{g}"), &[])?.gid,
                            None => user.uid,
                        };
                        Some((user.uid, gid))
                    }
                    None => None,
                };
                copy_into(root, &dest_c, &sources, own, chmod, many)
            })
            .await;
        if let Some((_, mnt)) = &from_root {
            if crate::snapshot::is_mountpoint(mnt) {
                let _ = crate::snapshot::unmount(mnt);
            }
        }
        context::remove_tree(&dir);
        res
    }

    fn open_src(&self, root: &OwnedFd, rel: &str, may_unpack: bool) -> Result<Src> {
        let fd = open_in(root, rel, OFlag::O_PATH).map_err(|e| match e {
            nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => Error::not_found(rel.to_string()),
            e => Error::invalid(format!("{rel}: {e}")),
        })?;
        let path = fd_path(&fd);
        let md = std::fs::metadata(&path).map_err(|e| Error::invalid(format!("{rel}: {e}")))?;
        let name = rel.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or(".").to_string();
        let archive = if may_unpack && md.is_file() {
            match archive_kind(&path)? {
                Some(k @ ("bzip2" | "xz")) => return Err(Error::new(crate::errors::Kind::NotImplemented, format!("ADD {rel}: unpacking {k} archives is not supported yet"))),
                Some(_) => true,
                None => false,
            }
        } else {
            false
        };
        Ok(Src { _fd: fd, path, name, is_dir: md.is_dir(), archive })
    }

    /// ADD of a URL: downloaded into `dir` under the URL's last path segment, mode 0600.
    async fn download(&self, url: &str, dir: &Path) -> Result<String> {
        let name = url.split(['?', '#']).next().unwrap_or("").rsplit('/').next().unwrap_or("").to_string();
        if name.is_empty() || name == "." || name == ".." {
            return Err(Error::invalid(format!("cannot determine filename from url: {url}")));
        }
        const LIMIT: u64 = 4 << 30;
        let client = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(30)).timeout(std::time::Duration::from_secs(3600)).build().map_err(|e| Error::internal(e.to_string()))?;
        let mut resp = client.get(url).send().await.map_err(|e| Error::invalid(format!("ADD {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(Error::invalid(format!("ADD {url}: the server answered {}", resp.status())));
        }
        let p = dir.join(&name);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&p)?;
        let mut got = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| Error::invalid(format!("ADD {url}: {e}")))? {
            got += chunk.len() as u64;
            if got > LIMIT {
                return Err(Error::invalid(format!("ADD {url}: larger than {} GiB", LIMIT >> 30)));
            }
            std::io::Write::write_all(&mut f, &chunk)?;
            self.check_client()?;
        }
        Ok(name)
    }
}

fn own_dir_fd(dir: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).map_err(|e| Error::internal(e.to_string()))?;
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// COPY's rules: a directory source copies its content; a file goes to `dest` itself, or
/// into it when `dest` ends with `/`, is an existing directory or several sources are given.
fn copy_into(root: &OwnedFd, dest: &str, sources: &[Src], own: Option<(u32, u32)>, chmod: Option<u32>, many: bool) -> Result<()> {
    let dest_is_dir = dest.ends_with('/') || open_in(root, dest, OFlag::O_PATH | OFlag::O_DIRECTORY).is_ok();
    if many && !dest_is_dir {
        return Err(Error::invalid(format!("When using COPY with more than one source file, the destination must be a directory and end with a /: {dest}")));
    }
    let owner = Owner { uid: own.map(|o| o.0).unwrap_or(0), gid: own.map(|o| o.1).unwrap_or(0), mode: chmod };
    for s in sources {
        let (target, name) = if s.is_dir || s.archive || dest_is_dir {
            (dest.trim_end_matches('/').to_string(), s.name.clone())
        } else {
            let d = dest.trim_end_matches('/');
            let (parent, base) = d.rsplit_once('/').unwrap_or(("", d));
            (parent.to_string(), base.to_string())
        };
        let dir = mkdir_p(root, &target, own)?;
        let at = fd_path(&dir);
        let apply = |r: &mut dyn Read| crate::snapshot::apply::extract_plain(r, &at).map_err(|e| Error::invalid(format!("copying {} to {dest}: {e}", s.name)));
        if s.archive {
            let f = std::fs::File::open(&s.path)?;
            let mut dec = crate::image::layer::decompressor(std::io::BufReader::new(f)).map_err(|e| Error::invalid(format!("ADD {}: {e}", s.name)))?;
            apply(&mut dec)?;
            continue;
        }
        let (mut reader, writer) = std::io::pipe()?;
        let res = std::thread::scope(|sc| {
            let producer = sc.spawn(|| -> std::io::Result<()> {
                let mut b = tar::Builder::new(writer);
                append_tree(&mut b, &s.path, if s.is_dir { "" } else { &name }, owner, !s.is_dir)?;
                b.finish()
            });
            let applied = apply(&mut reader);
            drop(reader);
            let produced = producer.join().map_err(|_| Error::internal("the copy thread panicked"))?;
            applied?;
            produced.map_err(|e| Error::internal(format!("reading {}: {e}", s.name)))
        });
        res?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_durations_keys() {
        assert_eq!(abs_path("/app", "src"), "/app/src");
        assert_eq!(abs_path("/app", "src/"), "/app/src/");
        assert_eq!(abs_path("/app", "/x/../y"), "/y");
        assert_eq!(abs_path("/", "."), "/");
        assert_eq!(duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert!(duration_ns("10").is_err() && duration_ns("").is_err() && duration_ns("5x").is_err());
        assert_ne!(key_of(&["a", "bc"]), key_of(&["ab", "c"]));
    }
}
