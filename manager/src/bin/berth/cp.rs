//! `cp`: copies between a container and the local filesystem through the archive API
//! (`HEAD`/`GET`/`PUT /containers/{id}/archive`), with docker's rules for where a copy
//! lands. Also the tar plumbing `build` shares: a local tree written as tar entries into a
//! streamed request body.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Response};
use tokio::io::AsyncRead;

use berth_manager::build::ignore::clean;

use crate::client::{ClientError, Req};
use crate::Ctx;

#[derive(Args, Debug)]
#[command(
    override_usage = "berth cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    after_help = "Use '-' as the source to read a tar archive from stdin and extract it to a directory\n\
                  destination in a container. Use '-' as the destination to stream a tar archive of\n\
                  a container source to stdout."
)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy (berth shows none)
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, SRC_PATH or -
    #[arg(value_name = "SRC")]
    pub source: String,
    /// CONTAINER:DEST_PATH, DEST_PATH or -
    #[arg(value_name = "DEST")]
    pub destination: String,
}

pub async fn cp(ctx: &Ctx, args: CpArgs) -> anyhow::Result<()> {
    if args.source.is_empty() {
        bail!("source can not be empty");
    }
    if args.destination.is_empty() {
        bail!("destination can not be empty");
    }
    match (split_cp_arg(&args.source), split_cp_arg(&args.destination)) {
        (Side::Container(c, src), Side::Local(dst)) => copy_from(ctx, &c, &src, &dst, args.follow_link).await,
        (Side::Local(src), Side::Container(c, dst)) => {
            copy_to(ctx, &src, &c, &dst, args.follow_link, args.archive).await
        }
        (Side::Container(..), Side::Container(..)) => bail!("copying between containers is not supported"),
        (Side::Local(_), Side::Local(_)) => bail!("must specify at least one container source"),
    }
}

// ---------------------------------------------------------------------------------------
// arguments and path rules (pure)

/// One side of `cp`.
#[derive(Debug, PartialEq)]
pub enum Side {
    Local(String),
    /// container, path inside it
    Container(String, String),
}

/// `CONTAINER:PATH` or a local path. A local path may hold a `:` only when it starts with
/// `/` or `.` (`./a:b`, `/tmp/a:b`); `:x` (no container) is local too.
pub fn split_cp_arg(arg: &str) -> Side {
    if arg.starts_with('/') {
        return Side::Local(arg.to_string());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.starts_with('.') => Side::Container(c.to_string(), p.to_string()),
        _ => Side::Local(arg.to_string()),
    }
}

/// The last element (`/` for the root, `.` for an empty path), trailing slashes ignored.
fn base_name(p: &str) -> &str {
    if p.is_empty() {
        return ".";
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/";
    }
    t.rsplit('/').next().unwrap_or(t)
}

/// Everything but the last element, cleaned.
fn dir_name(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean(&p[..=i]),
        None => ".".into(),
    }
}

/// `DIR/.` (or `.`): the contents of DIR rather than DIR itself.
fn specifies_current_dir(p: &str) -> bool {
    base_name(p) == "."
}

/// A path that can only name a directory (`x/`, `x/.`).
fn asserts_directory(p: &str) -> bool {
    p.ends_with('/') || specifies_current_dir(p)
}

/// `(directory, entry)` of a path; the entry is `.` for `DIR/.` and the directory is then DIR.
pub fn split_dir_entry(p: &str) -> (String, String) {
    let mut cleaned = clean(p);
    if specifies_current_dir(p) {
        cleaned.push_str("/.");
    }
    (dir_name(&cleaned), base_name(&cleaned).to_string())
}

/// A container path made absolute (the archive API resolves from the container's root).
fn container_path(p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    }
}

/// Where a link at `path` points, as a path (relative targets are relative to its directory).
fn link_path(path: &str, target: &str) -> String {
    if target.starts_with('/') {
        target.to_string()
    } else {
        clean(&format!("{}/{target}", dir_name(path.trim_end_matches('/'))))
    }
}

/// What is known of a copy's destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Dest {
    pub path: String,
    pub exists: bool,
    pub is_dir: bool,
}

/// Where a copy lands, as docker decides it: the existing directory to extract into and the
/// name the source's top entry takes there. `src_base` is the source's own name (`.` for
/// `DIR/.`, its contents); `rebase` the name to keep instead (a link followed with -L).
///
/// - DEST an existing directory: into it, under the source's name;
/// - DEST an existing file: a directory source is an error, a file replaces it;
/// - DEST missing: into its parent, renamed to DEST's name (`x/` must then be a directory).
pub fn landing(src_base: &str, src_is_dir: bool, rebase: Option<&str>, dst: &Dest) -> Result<(String, String), String> {
    if dst.exists && dst.is_dir {
        return Ok((clean(&dst.path), rebase.unwrap_or(src_base).to_string()));
    }
    if dst.exists && src_is_dir {
        return Err("cannot copy a directory to a file".into());
    }
    let (dir, base) = split_dir_entry(&dst.path);
    if !dst.exists && ((!src_is_dir && asserts_directory(&dst.path)) || base == ".") {
        return Err(format!("destination directory {} does not exist", dst.path));
    }
    Ok((dir, base))
}

/// An entry name with its top element `from` renamed `to` (`from` may be `.` or `/`, the
/// names of the contents of a directory and of the root); None when it does not start so.
pub fn rebase_name(name: &[u8], from: &str, to: &str) -> Option<Vec<u8>> {
    let rest: &[u8] = if from == "/" {
        if !name.starts_with(b"/") {
            return None;
        }
        let r = &name[1..];
        let r = &r[r.iter().take_while(|&&b| b == b'/').count()..];
        if r.is_empty() {
            b""
        } else {
            // keep the separator: `/bin` → `to/bin`
            return Some([to.as_bytes(), b"/", r].concat());
        }
    } else {
        let r = name.strip_prefix(from.as_bytes())?;
        if !r.is_empty() && !r.starts_with(b"/") {
            return None;
        }
        r
    };
    let mut out = to.as_bytes().to_vec();
    if from == "/" {
        out.push(b'/');
    } else {
        out.extend_from_slice(rest);
    }
    Some(out)
}

/// Refuses an entry name that could land outside the extraction directory.
fn check_entry_name(name: &[u8], allow_absolute: bool) -> io::Result<()> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name.starts_with(b"/") && !allow_absolute {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("refusing to extract {:?}: absolute path in archive", shown()),
        ));
    }
    if name.split(|&b| b == b'/').any(|c| c == b"..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("refusing to extract {:?}: it climbs out of the destination", shown()),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// the archive API

/// `X-Docker-Container-Path-Stat` (mode holds Go's os.FileMode bits).
#[derive(Debug, serde::Deserialize)]
pub struct PathStat {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mode: u32,
    #[serde(default, rename = "linkTarget")]
    pub link_target: String,
}

const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
/// device, named pipe, socket, irregular
const MODE_NOT_REGULAR: u32 = (1 << 26) | (1 << 25) | (1 << 24) | (1 << 19);

impl PathStat {
    fn is_dir(&self) -> bool {
        self.mode & MODE_DIR != 0
    }
    fn is_symlink(&self) -> bool {
        self.mode & MODE_SYMLINK != 0
    }
}

fn decode_stat(resp: &Response<Incoming>) -> anyhow::Result<PathStat> {
    let raw = resp
        .headers()
        .get("X-Docker-Container-Path-Stat")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("the daemon sent no X-Docker-Container-Path-Stat header"))?;
    let json = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(raw.trim()))
        .map_err(|e| anyhow!("unable to decode container path stat header: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| anyhow!("unable to decode container path stat header: {e}"))
}

/// A 404 from the archive API is docker's `No such container:path` (the container or the path).
fn archive_error(e: ClientError, container: &str, path: &str) -> anyhow::Error {
    if e.is_not_found() {
        anyhow!("Error: No such container:path: {container}:{path}")
    } else {
        e.into()
    }
}

fn archive_req(method: Method, container: &str, path: &str) -> Req {
    Req::new(method, format!("/containers/{container}/archive")).query("path", path)
}

async fn stat(ctx: &Ctx, container: &str, path: &str) -> Result<PathStat, anyhow::Error> {
    let resp = ctx
        .client
        .send(archive_req(Method::HEAD, container, &container_path(path)))
        .await
        .map_err(|e| archive_error(e, container, path))?;
    decode_stat(&resp)
}

// ---------------------------------------------------------------------------------------
// container → local

async fn copy_from(ctx: &Ctx, container: &str, src: &str, dst: &str, follow: bool) -> anyhow::Result<()> {
    if dst != "-" {
        crate::image::validate_output_path(Path::new(dst)).map_err(|e| anyhow!(e))?;
    }
    let mut src_path = src.to_string();
    let mut rebase = None;
    if follow {
        let st = stat(ctx, container, &src_path).await?;
        if st.is_symlink() {
            let target = link_path(&container_path(&src_path), &st.link_target);
            // keep what the user asked for: the link's name, and a trailing `/` or `/.`
            let suffix = if src_path.ends_with("/.") {
                "/."
            } else if src_path.ends_with('/') {
                "/"
            } else {
                ""
            };
            let resolved = format!("{target}{suffix}");
            if suffix.is_empty() && base_name(&resolved) != base_name(&src_path) {
                rebase = Some(base_name(&src_path).to_string());
            }
            src_path = resolved;
        }
    }
    let resp = ctx
        .client
        .send(archive_req(Method::GET, container, &container_path(&src_path)))
        .await
        .map_err(|e| archive_error(e, container, &src_path))?;
    if dst == "-" {
        return crate::image::body_to_stdout(resp.into_body()).await;
    }
    let st = decode_stat(&resp)?;
    let dest = local_dest(dst)?;
    let top = if st.name.is_empty() { base_name(&src_path).to_string() } else { st.name.clone() };
    let (dir, name) = landing(&top, st.is_dir(), rebase.as_deref(), &dest).map_err(|e| anyhow!(e))?;
    let rename = (name != top).then_some(name);
    let reader = tokio_util::io::SyncIoBridge::new(body_reader(resp));
    tokio::task::spawn_blocking(move || extract(reader, Path::new(&dir), &top, rename.as_deref()))
        .await
        .map_err(|e| anyhow!("extracting: {e}"))??;
    Ok(())
}

/// The local destination, a link at it followed (as docker does; links below it never are).
fn local_dest(path: &str) -> anyhow::Result<Dest> {
    let mut p = path.to_string();
    for _ in 0..10 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p)?;
                p = link_path(&p, &target.to_string_lossy());
            }
            Ok(m) => {
                return Ok(Dest {
                    path: p,
                    exists: true,
                    is_dir: m.is_dir(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = dir_name(p.trim_end_matches('/'));
                return match std::fs::metadata(&parent) {
                    Ok(m) if m.is_dir() => Ok(Dest {
                        path: p,
                        exists: false,
                        is_dir: false,
                    }),
                    Ok(_) => Err(anyhow!("{parent}: not a directory")),
                    Err(e) => Err(anyhow!("stat {parent}: {}", go_error(&e))),
                };
            }
            Err(e) => bail!("lstat {p}: {}", go_error(&e)),
        }
    }
    bail!("{path}: too many levels of symbolic links")
}

/// A response body as an AsyncRead.
fn body_reader(resp: Response<Incoming>) -> impl AsyncRead + Send + Unpin + 'static {
    let stream = resp.into_body().into_data_stream().map(|r| r.map_err(io::Error::other));
    tokio_util::io::StreamReader::new(stream)
}

/// Extracts a tar from the container into `dir`, its top entry (named `top`) renamed when
/// `rename` says so.
fn extract(reader: impl Read + Send, dir: &Path, top: &str, rename: Option<&str>) -> io::Result<()> {
    let Some(to) = rename else {
        // berthd names the entries of `/` absolutely; they land inside `dir` all the same
        return unpack(reader, dir, top == "/");
    };
    // Rewrite the names on another thread and extract what it writes.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    std::thread::scope(|s| {
        let rewriter = s.spawn(move || rewrite(reader, io::BufWriter::with_capacity(64 * 1024, ChanWriter(tx)), top, to));
        let unpacked = unpack(ChanReader { rx, cur: Vec::new(), pos: 0 }, dir, false);
        let rewritten = rewriter.join().unwrap_or_else(|_| Err(io::Error::other("the archive rewriter panicked")));
        match (unpacked, rewritten) {
            (Ok(()), r) => r,
            // a failed read or rewrite explains a truncated archive best
            (Err(_), Err(w)) if w.kind() != io::ErrorKind::BrokenPipe => Err(w),
            // else the rewriter only stopped because extraction had failed
            (Err(e), _) => Err(e),
        }
    })
}

/// Copies a tar, renaming its top entry `from` to `to` (and hard links to it).
fn rewrite(src: impl Read, dst: impl Write, from: &str, to: &str) -> io::Result<()> {
    let mut archive = tar::Archive::new(src);
    let mut out = tar::Builder::new(dst);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path_bytes().into_owned();
        let new = rebase_name(&name, from, to).unwrap_or(name);
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
            let target = if kind.is_hard_link() {
                rebase_name(&target, from, to).unwrap_or(target)
            } else {
                target
            };
            out.append_link(&mut header, OsStr::from_bytes(&new), OsStr::from_bytes(&target))?;
        } else {
            out.append_data(&mut header, OsStr::from_bytes(&new), &mut entry)?;
        }
    }
    out.into_inner()?.flush()
}

/// Extracts a tar into the existing directory `dir` with the tar crate's `unpack_in`, which
/// creates nothing outside `dir` (no link already there or made by the archive is followed
/// out of it). Names that are absolute or hold `..` are refused; owners are not restored
/// (the files are the caller's); directories are finished last so their modes and mtimes hold.
fn unpack(reader: impl Read, dir: &Path, allow_absolute: bool) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    let mut dirs = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        check_entry_name(&entry.path_bytes(), allow_absolute)?;
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            if let Some(target) = entry.link_name_bytes() {
                check_entry_name(&target, allow_absolute)?;
            }
        }
        if kind.is_dir() {
            dirs.push(entry);
            continue;
        }
        entry.unpack_in(dir)?;
    }
    dirs.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut d in dirs {
        d.unpack_in(dir)?;
    }
    Ok(())
}

struct ChanWriter(std::sync::mpsc::SyncSender<Vec<u8>>);

impl Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the extraction stopped"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ChanReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// local → container

async fn copy_to(ctx: &Ctx, src: &str, container: &str, dst: &str, follow: bool, keep_ids: bool) -> anyhow::Result<()> {
    ignore_sigpipe();
    let who = format!("{container}:{dst}");
    let mut dest = Dest {
        path: container_path(dst),
        exists: false,
        is_dir: false,
    };
    // As docker: a failed stat means DEST is missing (the PUT tells if its parent is too).
    match stat(ctx, container, dst).await {
        Ok(st) => {
            let st = if st.is_symlink() {
                dest.path = link_path(&dest.path, &st.link_target);
                stat(ctx, container, &dest.path).await.ok()
            } else {
                Some(st)
            };
            if let Some(st) = st {
                if st.mode & MODE_NOT_REGULAR != 0 {
                    bail!("destination \"{who}\" must be a directory or a regular file");
                }
                dest.exists = true;
                dest.is_dir = st.is_dir();
            }
        }
        Err(e) if matches!(e.downcast_ref::<ClientError>(), Some(ClientError::Connect { .. })) => return Err(e),
        Err(_) => {}
    }
    if src == "-" {
        if !dest.is_dir {
            bail!("destination \"{who}\" must be a directory");
        }
        return put(ctx, container, &dest.path, tokio::io::stdin(), keep_ids).await;
    }

    let lmeta = std::fs::symlink_metadata(src).map_err(|e| anyhow!("lstat {}: {}", absolute(src), go_error(&e)))?;
    let (fs_path, meta) = if follow && lmeta.file_type().is_symlink() {
        let real = std::fs::canonicalize(src).map_err(|e| anyhow!("{}: {}", absolute(src), go_error(&e)))?;
        let m = std::fs::metadata(&real)?;
        (real, m)
    } else {
        (PathBuf::from(src), lmeta)
    };
    if asserts_directory(src) && !meta.is_dir() {
        bail!("{}: not a directory", absolute(src));
    }
    let (_, base) = split_dir_entry(src);
    let (dir, top) = landing(&base, meta.is_dir(), None, &dest).map_err(|e| anyhow!(e))?;

    let (writer, body) = body_pipe();
    let walker = tokio::task::spawn_blocking(move || {
        let mut tar = TarWriter::new(writer, keep_ids);
        let written = if top == "." || top == "/" {
            tar.append_tree(&fs_path, Path::new(""), &meta, false)
        } else {
            tar.append_tree(&fs_path, Path::new(&top), &meta, true)
        };
        tar.finish(written)
    });
    let sent = put(ctx, container, &dir, body, keep_ids).await;
    match walker.await {
        Ok(Err(e)) if e.kind() != io::ErrorKind::BrokenPipe => Err(anyhow!("{e}")),
        _ => sent,
    }
}

async fn put(ctx: &Ctx, container: &str, dir: &str, body: impl AsyncRead + Send + 'static, keep_ids: bool) -> anyhow::Result<()> {
    let mut req = archive_req(Method::PUT, container, dir).query("noOverwriteDirNonDir", "true");
    if keep_ids {
        req = req.query("copyUIDGID", "true");
    }
    ctx.client
        .call(req.stream_body("application/x-tar", body))
        .await
        .map_err(|e| archive_error(e, container, dir))
}

fn absolute(p: &str) -> String {
    std::path::absolute(p)
        .map(|a| a.display().to_string())
        .unwrap_or_else(|_| p.to_string())
}

/// An io error as Go words it (`no such file or directory`).
pub fn go_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let s = nix::errno::Errno::from_raw(n).desc();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => e.to_string(),
            }
        }
        None => e.to_string(),
    }
}

/// Writing a request body to a daemon that has stopped reading must be an error, not a
/// silent death by SIGPIPE (main restores the default disposition for stdout's sake).
pub fn ignore_sigpipe() {
    // SAFETY: changes a signal disposition to SIG_IGN; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

// ---------------------------------------------------------------------------------------
// local trees as tar entries, streamed as a request body (shared with build)

const CHUNK: usize = 64 * 1024;

/// A `Write` whose bytes become a streamed request body (see [`body_pipe`]). Writing after the
/// request has gone fails with `BrokenPipe`.
pub struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the request is gone"))?;
        }
        Ok(())
    }
}

impl BodyWriter {
    /// Ends the body: flushed when `result` is Ok, else failed so the request is aborted
    /// instead of sending a truncated archive.
    pub fn end(mut self, result: io::Result<()>) -> io::Result<()> {
        match result {
            Ok(()) => self.flush(),
            Err(e) => {
                let _ = self.tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }
}

/// A body written from a blocking thread through [`BodyWriter`], read by the request.
pub fn body_pipe() -> (BodyWriter, impl AsyncRead + Send + Unpin + 'static) {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (
        BodyWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        tokio_util::io::StreamReader::new(Box::pin(stream)),
    )
}

/// Local files as tar entries: not following links, modes and mtimes kept, owners kept only
/// when asked (else 0:0), hard links written once.
pub struct TarWriter {
    tar: tar::Builder<BodyWriter>,
    keep_ids: bool,
    links: HashMap<(u64, u64), PathBuf>,
}

impl TarWriter {
    pub fn new(w: BodyWriter, keep_ids: bool) -> TarWriter {
        TarWriter {
            tar: tar::Builder::new(w),
            keep_ids,
            links: HashMap::new(),
        }
    }

    fn header(&self, meta: &Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_mtime(meta.mtime().max(0) as u64);
        let (uid, gid) = if self.keep_ids { (meta.uid(), meta.gid()) } else { (0, 0) };
        h.set_uid(uid as u64);
        h.set_gid(gid as u64);
        h.set_size(0);
        h
    }

    /// Appends `fs` (its lstat in `meta`) as `arc`; a directory's content is not included.
    pub fn append(&mut self, fs: &Path, meta: &Metadata, arc: &Path) -> io::Result<()> {
        let ft = meta.file_type();
        let res = if ft.is_dir() {
            let mut h = self.header(meta, tar::EntryType::Directory);
            let mut name = arc.as_os_str().to_owned();
            name.push("/");
            self.tar.append_data(&mut h, name, io::empty())
        } else if ft.is_symlink() {
            let mut h = self.header(meta, tar::EntryType::Symlink);
            let target = std::fs::read_link(fs).map_err(|e| with_path(e, fs))?;
            self.tar.append_link(&mut h, arc, target)
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = self.links.get(&key).cloned() {
                    let mut h = self.header(meta, tar::EntryType::Link);
                    return self.tar.append_link(&mut h, arc, first).map_err(|e| with_path(e, fs));
                }
            }
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(fs)
                .map_err(|e| with_path(e, fs))?;
            let size = meta.len();
            let mut h = self.header(meta, tar::EntryType::Regular);
            h.set_size(size);
            // exactly `size` bytes, whatever happens to the file meanwhile
            let data = file.take(size).chain(io::repeat(0)).take(size);
            let r = self.tar.append_data(&mut h, arc, data);
            if r.is_ok() && meta.nlink() > 1 {
                self.links.insert(key, arc.to_path_buf());
            }
            r
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = self.header(meta, kind);
            let rdev = meta.rdev();
            let _ = h.set_device_major(libc::major(rdev));
            let _ = h.set_device_minor(libc::minor(rdev));
            self.tar.append_data(&mut h, arc, io::empty())
        } else {
            Ok(()) // sockets are not content
        };
        res.map_err(|e| with_path(e, fs))
    }

    /// Appends generated content as a regular file.
    pub fn append_bytes(&mut self, arc: &str, data: &[u8], mode: u32, mtime: u64) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        self.tar.append_data(&mut h, arc, data)
    }

    /// Appends `fs` as `arc` (itself when `with_self`) and, for a directory, everything
    /// below it, in name order.
    pub fn append_tree(&mut self, fs: &Path, arc: &Path, meta: &Metadata, with_self: bool) -> io::Result<()> {
        if with_self {
            self.append(fs, meta, arc)?;
        }
        if meta.is_dir() {
            for (name, path) in read_dir_sorted(fs)? {
                let m = std::fs::symlink_metadata(&path).map_err(|e| with_path(e, &path))?;
                self.append_tree(&path, &arc.join(&name), &m, true)?;
            }
        }
        Ok(())
    }

    /// Finishes the archive after `written` (the result of the appends) and ends the body.
    pub fn finish(self, written: io::Result<()>) -> io::Result<()> {
        let TarWriter { mut tar, .. } = self;
        let written = written.and_then(|()| tar.finish());
        match tar.into_inner() {
            Ok(w) => w.end(written),
            Err(e) => Err(e),
        }
    }
}

/// A directory's entries (name, path), sorted by name.
pub fn read_dir_sorted(dir: &Path) -> io::Result<Vec<(std::ffi::OsString, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| with_path(e, dir))? {
        let e = e.map_err(|e| with_path(e, dir))?;
        out.push((e.file_name(), e.path()));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// Names the file in an io error (a closed body stays a bare BrokenPipe).
fn with_path(e: io::Error, path: &Path) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe || e.to_string().starts_with(&path.display().to_string()) {
        return e;
    }
    io::Error::new(e.kind(), format!("{}: {}", path.display(), go_error(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_container_and_local_paths() {
        let c = |a: &str, b: &str| Side::Container(a.into(), b.into());
        let l = |a: &str| Side::Local(a.into());
        assert_eq!(split_cp_arg("web:/etc/hosts"), c("web", "/etc/hosts"));
        assert_eq!(split_cp_arg("web:etc"), c("web", "etc"));
        assert_eq!(split_cp_arg("web:"), c("web", ""));
        assert_eq!(split_cp_arg("web:/a:b"), c("web", "/a:b"));
        assert_eq!(split_cp_arg("/tmp/a:b"), l("/tmp/a:b"));
        assert_eq!(split_cp_arg("./a:b"), l("./a:b"));
        assert_eq!(split_cp_arg("../a:b"), l("../a:b"));
        assert_eq!(split_cp_arg(":x"), l(":x"));
        assert_eq!(split_cp_arg("file.txt"), l("file.txt"));
        assert_eq!(split_cp_arg("-"), l("-"));
    }

    #[test]
    fn splits_dir_and_entry() {
        let s = |p: &str| split_dir_entry(p);
        assert_eq!(s("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(s("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(s("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(s("b"), (".".into(), "b".into()));
        assert_eq!(s("."), (".".into(), ".".into()));
        assert_eq!(s("/"), ("/".into(), "/".into()));
        assert_eq!(s("/."), ("/".into(), ".".into()));
        assert_eq!(link_path("/usr/bin/sh", "dash"), "/usr/bin/dash");
        assert_eq!(link_path("/etc/alt", "../lib/x"), "/lib/x");
        assert_eq!(link_path("/etc/alt", "/abs"), "/abs");
    }

    #[test]
    fn lands_as_docker_cp() {
        let d = |path: &str, exists: bool, is_dir: bool| Dest {
            path: path.into(),
            exists,
            is_dir,
        };
        let ok = |a: &str, b: &str| Ok((a.to_string(), b.to_string()));
        // into an existing directory, under the source's name
        assert_eq!(landing("hosts", false, None, &d("/tmp", true, true)), ok("/tmp", "hosts"));
        assert_eq!(landing("etc", true, None, &d("out/", true, true)), ok("out", "etc"));
        // a directory's contents into an existing directory
        assert_eq!(landing(".", true, None, &d("out", true, true)), ok("out", "."));
        // -L: the link's name, not its target's
        assert_eq!(landing("dash", false, Some("sh"), &d("out", true, true)), ok("out", "sh"));
        // a missing DEST: into its parent, renamed
        assert_eq!(landing("hosts", false, None, &d("/tmp/h2", false, false)), ok("/tmp", "h2"));
        assert_eq!(landing("etc", true, None, &d("new", false, false)), ok(".", "new"));
        assert_eq!(landing("etc", true, None, &d("new/", false, false)), ok(".", "new"));
        assert_eq!(landing(".", true, None, &d("/tmp/copy", false, false)), ok("/tmp", "copy"));
        assert_eq!(landing("sh", false, Some("sh"), &d("x", false, false)), ok(".", "x"));
        // an existing file: replaced by a file, never by a directory
        assert_eq!(landing("hosts", false, None, &d("/etc/h", true, false)), ok("/etc", "h"));
        assert_eq!(
            landing("etc", true, None, &d("/etc/h", true, false)),
            Err("cannot copy a directory to a file".into())
        );
        // a file cannot make a directory
        assert!(landing("hosts", false, None, &d("nodir/", false, false)).is_err());
        assert!(landing("etc", true, None, &d("nodir/.", false, false)).is_err());
    }

    #[test]
    fn rebases_top_entries() {
        let r = |n: &str, f: &str, t: &str| rebase_name(n.as_bytes(), f, t).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(r("etc/", "etc", "x").as_deref(), Some("x/"));
        assert_eq!(r("etc/hosts", "etc", "x").as_deref(), Some("x/hosts"));
        assert_eq!(r("etc", "etc", "x").as_deref(), Some("x"));
        assert_eq!(r("etcetera/a", "etc", "x"), None);
        assert_eq!(r("./", ".", "x").as_deref(), Some("x/"));
        assert_eq!(r("./a/b", ".", "x").as_deref(), Some("x/a/b"));
        assert_eq!(r("/", "/", "root").as_deref(), Some("root/"));
        assert_eq!(r("/bin/sh", "/", "root").as_deref(), Some("root/bin/sh"));
        assert!(check_entry_name(b"a/../../b", false).is_err());
        assert!(check_entry_name(b"/etc/passwd", false).is_err());
        assert!(check_entry_name(b"/etc/passwd", true).is_ok());
        assert!(check_entry_name(b"a/..b/c", false).is_ok());
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-cp-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn tar_of(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, content) in entries {
            let mut h = tar::Header::new_gnu();
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o640);
                    h.set_size(c.len() as u64);
                    b.append_data(&mut h, name, c.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o750);
                    h.set_size(0);
                    b.append_data(&mut h, name, io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn extracts_renamed_and_refuses_escapes() {
        let d = scratch("extract");
        let t = tar_of(&[("etc/", None), ("etc/hosts", Some("127.0.0.1 localhost\n")), ("etc/sub/", None)]);
        extract(&t[..], &d, "etc", Some("copy")).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("copy/hosts")).unwrap(), "127.0.0.1 localhost\n");
        assert!(d.join("copy/sub").is_dir());
        assert_eq!(std::fs::metadata(d.join("copy/hosts")).unwrap().mode() & 0o777, 0o640);
        assert!(!d.join("etc").exists());
        // contents of a directory (`DIR/.`) into an existing one
        let t = tar_of(&[("./", None), ("./a", Some("A"))]);
        extract(&t[..], &d, ".", None).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "A");
        // escapes
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let t = b.into_inner().unwrap();
        assert!(extract(&t[..], &d, "..", None).is_err());
        assert!(!d.parent().unwrap().join("escape").exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
