//! Image commands: pull, push, images/ls, inspect, tag, rmi, history, save, load, import,
//! prune, search, and berth's mount/unmount.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use bollard_stubs::models::{
    AuthConfig, ImageDeleteResponseItem, ImageHistoryResponseItem, ImagePruneResponse, ImageSearchResponseItem,
    ImageSummary,
};
use clap::{Args, Subcommand};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;

use crate::auth;
use crate::client::{filters_json, read_body, Req};
use crate::format::{ListFormat, Val};
use crate::inspect;
use crate::progress;
use crate::reference::Reference;
use crate::units;
use crate::{Ctx, StatusError};

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Build an image from a Dockerfile
    Build(crate::build::BuildArgs),
    /// List images
    #[command(name = "ls", visible_alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    #[command(name = "rm", visible_alias = "remove")]
    Rm(RmiArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Mount an image's root filesystem read-only and print where (berth extension)
    Mount(MountArgs),
    /// Unmount an image mounted with `image mount` (berth extension)
    Unmount(MountArgs),
}

pub async fn run(ctx: &Ctx, cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Build(a) => crate::build::build(ctx, a).await,
        ImageCommand::Ls(a) => list(ctx, a).await,
        ImageCommand::Inspect(a) => inspect_images(ctx, a).await,
        ImageCommand::Pull(a) => pull(ctx, a).await,
        ImageCommand::Push(a) => push(ctx, a).await,
        ImageCommand::Tag(a) => tag(ctx, a).await,
        ImageCommand::Rm(a) => remove(ctx, a).await,
        ImageCommand::History(a) => history(ctx, a).await,
        ImageCommand::Save(a) => save(ctx, a).await,
        ImageCommand::Load(a) => load(ctx, a).await,
        ImageCommand::Import(a) => import(ctx, a).await,
        ImageCommand::Prune(a) => prune(ctx, a).await,
        ImageCommand::Mount(a) => mount(ctx, a).await,
        ImageCommand::Unmount(a) => unmount(ctx, a).await,
    }
}

fn parse_ref(s: &str) -> anyhow::Result<Reference> {
    Reference::parse(s).map_err(|e| anyhow!("{e}"))
}

// ---------------------------------------------------------------------------------------
// pull / push

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable (os[/arch[/variant]])
    #[arg(long)]
    pub platform: Option<String>,
    /// NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

pub async fn pull(ctx: &Ctx, args: PullArgs) -> anyhow::Result<()> {
    let r = parse_ref(&args.name)?;
    if !r.has_tag_or_digest() && !args.quiet {
        println!("Using default tag: latest");
    }
    let tag = r.digest.clone().or_else(|| r.tag_or_latest()).unwrap_or_default();
    let mut req = Req::post("/images/create")
        .query("fromImage", r.familiar_name())
        .query("tag", tag)
        .query_opt("platform", args.platform.as_deref());
    if let Some(h) = auth::header_for(ctx, &r.auth_key())? {
        req = req.header("X-Registry-Auth", h);
    }
    let resp = ctx.client.send(req).await?;
    progress::render(resp, args.quiet).await?;
    let mut shown = r.clone();
    if !shown.has_tag_or_digest() {
        shown.tag = Some("latest".into());
    }
    println!("{}", shown.full_string());
    Ok(())
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG]
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
}

pub async fn push(ctx: &Ctx, args: PushArgs) -> anyhow::Result<()> {
    let r = parse_ref(&args.name)?;
    if r.digest.is_some() {
        bail!("cannot push a digest reference");
    }
    if args.all_tags && r.tag.is_some() {
        bail!("tag can't be used with --all-tags/-a");
    }
    let tag = if args.all_tags {
        None
    } else {
        if r.tag.is_none() && !args.quiet {
            println!("Using default tag: latest");
        }
        r.tag_or_latest()
    };
    let header = match auth::header_for(ctx, &r.auth_key())? {
        Some(h) => h,
        None => auth::encode_header(&AuthConfig::default()),
    };
    let req = Req::post(format!("/images/{}/push", r.familiar_name()))
        .query_opt("tag", tag.as_deref())
        .header("X-Registry-Auth", header);
    let resp = ctx.client.send(req).await?;
    progress::render(resp, args.quiet).await?;
    if args.quiet {
        match &tag {
            Some(t) => println!("{}:{t}", r.familiar_name()),
            None => println!("{}", r.familiar_name()),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// images / image ls

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (dangling=, reference=, label=, before=, since=)
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template, `table`, `table TEMPLATE` or `json`
    #[arg(long)]
    pub format: Option<String>,
    /// Only show images matching REPOSITORY[:TAG]
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_TABLE_DIGESTS: &str = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

fn images_header() -> Val {
    Val::obj(vec![
        ("ID", Val::from("IMAGE ID")),
        ("Repository", Val::from("REPOSITORY")),
        ("Tag", Val::from("TAG")),
        ("Digest", Val::from("DIGEST")),
        ("CreatedSince", Val::from("CREATED")),
        ("CreatedAt", Val::from("CREATED AT")),
        ("Size", Val::from("SIZE")),
        ("Containers", Val::from("CONTAINERS")),
        ("SharedSize", Val::from("SHARED SIZE")),
        ("UniqueSize", Val::from("UNIQUE SIZE")),
        ("VirtualSize", Val::from("VIRTUAL SIZE")),
    ])
}

/// Splits `repo:tag` (the tag is after the last `:` that follows the last `/`).
fn split_repo_tag(s: &str) -> (String, String) {
    let slash = s.rfind('/').map(|i| i + 1).unwrap_or(0);
    match s[slash..].rfind(':') {
        Some(i) => (s[..slash + i].to_string(), s[slash + i + 1..].to_string()),
        None => (s.to_string(), "<none>".to_string()),
    }
}

fn familiar(repo: &str) -> String {
    match Reference::parse(repo) {
        Ok(r) => r.familiar_name(),
        Err(_) => repo.to_string(),
    }
}

/// One row per (repository, tag[, digest]) as docker lists them.
fn image_rows(img: &ImageSummary, digests: bool, no_trunc: bool) -> Vec<Val> {
    let tags: Vec<&String> = img.repo_tags.iter().filter(|t| t.as_str() != "<none>:<none>").collect();
    let dgs: Vec<&String> = img.repo_digests.iter().filter(|d| d.as_str() != "<none>@<none>").collect();
    let mut combos: Vec<(String, String, String)> = Vec::new();
    if tags.is_empty() && dgs.is_empty() {
        combos.push(("<none>".into(), "<none>".into(), "<none>".into()));
    } else {
        // repository → tags and digests, in order of first appearance
        let mut repos: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        let slot = |repos: &mut Vec<(String, Vec<String>, Vec<String>)>, repo: String| -> usize {
            match repos.iter().position(|r| r.0 == repo) {
                Some(i) => i,
                None => {
                    repos.push((repo, Vec::new(), Vec::new()));
                    repos.len() - 1
                }
            }
        };
        for t in &tags {
            let (repo, tag) = split_repo_tag(t);
            let i = slot(&mut repos, familiar(&repo));
            repos[i].1.push(tag);
        }
        for d in &dgs {
            if let Some((repo, digest)) = d.split_once('@') {
                let i = slot(&mut repos, familiar(repo));
                repos[i].2.push(digest.to_string());
            }
        }
        for (repo, tags, digests_of_repo) in repos {
            if tags.is_empty() {
                if digests {
                    for d in digests_of_repo {
                        combos.push((repo.clone(), "<none>".into(), d));
                    }
                } else {
                    combos.push((repo, "<none>".into(), "<none>".into()));
                }
                continue;
            }
            for tag in tags {
                if !digests || digests_of_repo.is_empty() {
                    combos.push((repo.clone(), tag, "<none>".into()));
                } else {
                    for d in &digests_of_repo {
                        combos.push((repo.clone(), tag.clone(), d.clone()));
                    }
                }
            }
        }
    }
    let id = if no_trunc { img.id.clone() } else { units::short_id(&img.id) };
    let na_or = |n: i64, f: &dyn Fn(i64) -> String| if n < 0 { "N/A".to_string() } else { f(n) };
    combos
        .into_iter()
        .map(|(repo, tag, digest)| {
            Val::obj(vec![
                ("ID", Val::from(id.clone())),
                ("Repository", Val::from(repo)),
                ("Tag", Val::from(tag)),
                ("Digest", Val::from(digest)),
                ("CreatedSince", Val::from(units::since(img.created))),
                ("CreatedAt", Val::from(units::go_time_string(img.created))),
                ("Size", Val::from(units::human_size_prec(img.size, 3))),
                ("Containers", Val::from(na_or(img.containers, &|n| n.to_string()))),
                ("SharedSize", Val::from(na_or(img.shared_size, &|n| units::human_size_prec(n, 3)))),
                (
                    "UniqueSize",
                    Val::from(na_or(img.shared_size, &|n| units::human_size_prec(img.size - n, 3))),
                ),
                ("VirtualSize", Val::from(units::human_size(img.size))),
            ])
        })
        .collect()
}

pub async fn list(ctx: &Ctx, args: ImagesArgs) -> anyhow::Result<()> {
    let format = if args.quiet {
        ListFormat::parse(Some("{{.ID}}"), IMAGES_TABLE)?
    } else {
        let default = if args.digests { IMAGES_TABLE_DIGESTS } else { IMAGES_TABLE };
        ListFormat::parse(args.format.as_deref(), default)?
    };
    let mut filters = args.filter.clone();
    if let Some(r) = &args.reference {
        filters.push(format!("reference={r}"));
    }
    let filters = filters_json(&filters).map_err(|e| anyhow!(e))?;
    let req = Req::get("/images/json")
        .flag("all", args.all)
        .flag("digests", args.digests)
        .query_opt("filters", filters.as_deref());
    let images: Vec<ImageSummary> = ctx.client.json(req).await?;
    let rows: Vec<Val> = images
        .iter()
        .flat_map(|img| image_rows(img, args.digests, args.no_trunc))
        .collect();
    print!("{}", format.render(&images_header(), &rows)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// inspect / tag / rmi

#[derive(Args, Debug)]
pub struct ImageInspectArgs {
    /// Format output using a Go template, or `json`
    #[arg(short, long)]
    pub format: Option<String>,
    /// Images to inspect
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub async fn inspect_images(ctx: &Ctx, args: ImageInspectArgs) -> anyhow::Result<()> {
    inspect::inspect_as(ctx, &[inspect::Kind::Image], &args.images, args.format.as_deref(), "image", false).await
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// Splits `REPOSITORY[:TAG]` into the API's `repo` (familiar name) and `tag` (`latest`
/// when none is given); a digest is refused (docker's TagNameOnly + FamiliarName). Used by
/// `tag` and `commit`.
pub fn repo_and_tag(reference: &str) -> anyhow::Result<(String, String)> {
    let target = parse_ref(reference)?;
    if target.digest.is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    let tag = target.tag_or_latest().unwrap_or_else(|| "latest".into());
    Ok((target.familiar_name(), tag))
}

pub async fn tag(ctx: &Ctx, args: TagArgs) -> anyhow::Result<()> {
    let (repo, tag) = repo_and_tag(&args.target)?;
    let req = Req::post(format!("/images/{}/tag", args.source))
        .query("repo", repo)
        .query("tag", tag);
    ctx.client.call(req).await?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
    /// Images to remove
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub async fn remove(ctx: &Ctx, args: RmiArgs) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    let mut all_daemon = true;
    for image in &args.images {
        let req = Req::delete(format!("/images/{image}"))
            .flag("force", args.force)
            .flag("noprune", args.no_prune);
        match ctx.client.json::<Vec<ImageDeleteResponseItem>>(req).await {
            Ok(items) => {
                for item in items {
                    if let Some(u) = item.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = item.deleted {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                all_daemon &= matches!(e, crate::client::ClientError::Daemon { .. });
                if matches!(e, crate::client::ClientError::Connect { .. }) {
                    return Err(e.into());
                }
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(StatusError {
        code: if all_daemon { 125 } else { 1 },
        message: errors.join("\n"),
    }
    .into())
}

// ---------------------------------------------------------------------------------------
// history

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output using a Go template, `table`, `table TEMPLATE` or `json`
    #[arg(long)]
    pub format: Option<String>,
    /// Image
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

const HISTORY_TABLE: &str = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

fn history_row(h: &ImageHistoryResponseItem, human: bool, no_trunc: bool) -> Val {
    let id = if no_trunc || h.id.starts_with('<') {
        h.id.clone()
    } else {
        units::short_id(&h.id)
    };
    let created_by = h.created_by.replace('\t', " ");
    let created_by = if no_trunc { created_by } else { units::ellipsis(&created_by, 45) };
    let (since, size) = if human {
        (units::since(h.created), units::human_size_prec(h.size, 3))
    } else {
        (units::rfc3339(h.created), h.size.to_string())
    };
    Val::obj(vec![
        ("ID", Val::from(id)),
        ("CreatedSince", Val::from(since)),
        ("CreatedAt", Val::from(units::rfc3339(h.created))),
        ("CreatedBy", Val::from(created_by)),
        ("Size", Val::from(size)),
        ("Comment", Val::from(h.comment.clone())),
    ])
}

pub async fn history(ctx: &Ctx, args: HistoryArgs) -> anyhow::Result<()> {
    let format = if args.quiet {
        ListFormat::parse(Some("{{.ID}}"), HISTORY_TABLE)?
    } else {
        ListFormat::parse(args.format.as_deref(), HISTORY_TABLE)?
    };
    let items: Vec<ImageHistoryResponseItem> = ctx
        .client
        .json(Req::get(format!("/images/{}/history", args.image)))
        .await?;
    let header = Val::obj(vec![
        ("ID", Val::from("IMAGE")),
        // without -H the "since" column holds timestamps, and docker titles it so
        ("CreatedSince", Val::from(if args.human { "CREATED" } else { "CREATED AT" })),
        ("CreatedAt", Val::from("CREATED AT")),
        ("CreatedBy", Val::from("CREATED BY")),
        ("Size", Val::from("SIZE")),
        ("Comment", Val::from("COMMENT")),
    ]);
    let rows: Vec<Val> = items.iter().map(|h| history_row(h, args.human, args.no_trunc)).collect();
    print!("{}", format.render(&header, &rows)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// save / load / import

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Images to save
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub async fn save(ctx: &Ctx, args: SaveArgs) -> anyhow::Result<()> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    if let Some(out) = &args.output {
        validate_output_path(out).map_err(|e| anyhow!("failed to save image: {e}"))?;
    }
    let mut req = Req::get("/images/get");
    for image in &args.images {
        req = req.query("names", image.clone());
    }
    let resp = ctx.client.send(req).await?;
    match &args.output {
        Some(out) => body_to_file(resp.into_body(), out)
            .await
            .with_context(|| format!("failed to save image to {}", out.display())),
        None => body_to_stdout(resp.into_body()).await,
    }
}

/// docker's ValidateOutputPath, for `-o FILE`: the directory must exist, and an existing
/// FILE must be a directory or a regular file (a device such as /dev/null would otherwise
/// be replaced by the renamed temporary file).
pub fn validate_output_path(out: &Path) -> Result<(), String> {
    let dir = parent_dir(out);
    if !dir.is_dir() {
        return Err(format!(
            "invalid output path: directory {:?} does not exist",
            dir.display().to_string()
        ));
    }
    match std::fs::metadata(out) {
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let t = m.file_type();
            if t.is_block_device() || t.is_char_device() {
                return Err(format!(
                    "invalid output path: {:?} must be a directory or a regular file: got a device",
                    out.display().to_string()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("stat {}: {e}", out.display())),
    }
}

/// Streams a response body into `out` through a temporary file in the same directory,
/// renamed into place once complete (docker's CopyToFile): a failed transfer leaves no
/// partial `out` behind.
pub async fn body_to_file(mut body: Incoming, out: &Path) -> anyhow::Result<()> {
    let tmp = parent_dir(out).join(format!(
        ".{}.berth-{}",
        out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp).await?;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                file.write_all(&data).await?;
            }
        }
        file.sync_all().await?;
        tokio::fs::rename(&tmp, out).await?;
        anyhow::Ok(())
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Streams a response body to stdout as it arrives.
pub async fn body_to_stdout(mut body: Incoming) -> anyhow::Result<()> {
    let mut stdout = tokio::io::stdout();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            stdout.write_all(&data).await?;
        }
    }
    stdout.flush().await?;
    Ok(())
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn load(ctx: &Ctx, args: LoadArgs) -> anyhow::Result<()> {
    let req = Req::post("/images/load").flag("quiet", args.quiet);
    let req = match &args.input {
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("open {}", path.display()))?;
            req.stream_body("application/x-tar", file)
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            req.stream_body("application/x-tar", tokio::io::stdin())
        }
    };
    let resp = ctx.client.send(req).await?;
    let is_json = resp
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        progress::render(resp, false).await
    } else {
        let body = read_body(resp).await?;
        std::io::stdout().write_all(&body)?;
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Tar file, URL, or `-` for STDIN
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    /// REPOSITORY[:TAG] to tag the image as
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

pub async fn import(ctx: &Ctx, args: ImportArgs) -> anyhow::Result<()> {
    let mut req = Req::post("/images/create");
    let is_url = args.source.starts_with("http://") || args.source.starts_with("https://");
    req = req.query("fromSrc", if is_url { args.source.as_str() } else { "-" });
    if let Some(r) = &args.reference {
        let r = parse_ref(r)?;
        if r.digest.is_some() {
            bail!("cannot import to a digest reference");
        }
        req = req
            .query("repo", r.familiar_name())
            .query("tag", r.tag_or_latest().unwrap_or_else(|| "latest".into()));
    }
    req = req
        .query_opt("message", args.message.as_deref())
        .query_opt("platform", args.platform.as_deref());
    for c in &args.change {
        req = req.query("changes", c.clone());
    }
    if !is_url {
        req = if args.source == "-" {
            req.stream_body("application/x-tar", tokio::io::stdin())
        } else {
            let file = tokio::fs::File::open(&args.source)
                .await
                .with_context(|| format!("open {}", args.source))?;
            req.stream_body("application/x-tar", file)
        };
    }
    let resp = ctx.client.send(req).await?;
    progress::render(resp, false).await
}

// ---------------------------------------------------------------------------------------
// prune

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>", "label=<key>=<value>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// Asks `[y/N]` on stdin; anything but y/yes is no.
pub fn confirm(warning: &str) -> anyhow::Result<bool> {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let answer = answer.trim().to_lowercase();
    Ok(answer == "y" || answer == "yes")
}

pub async fn prune(ctx: &Ctx, args: PruneArgs) -> anyhow::Result<()> {
    let mut filters = args.filter.clone();
    filters.push(format!("dangling={}", !args.all));
    let filters = filters_json(&filters).map_err(|e| anyhow!(e))?;
    if !args.force {
        let warning = if args.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        if !confirm(warning)? {
            return Ok(());
        }
    }
    let report: ImagePruneResponse = ctx
        .client
        .json(Req::post("/images/prune").query_opt("filters", filters.as_deref()))
        .await?;
    let deleted = report.images_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for item in deleted {
            if let Some(u) = item.untagged.filter(|u| !u.is_empty()) {
                println!("untagged: {u}");
            } else if let Some(d) = item.deleted {
                println!("deleted: {d}");
            }
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        units::human_size(report.space_reclaimed.unwrap_or(0))
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// search

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Filter output based on conditions provided (stars=N, is-official=true)
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Max number of search results
    #[arg(long)]
    pub limit: Option<u32>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output using a Go template, `table`, `table TEMPLATE` or `json`
    #[arg(long)]
    pub format: Option<String>,
    /// Search term
    pub term: String,
}

const SEARCH_TABLE: &str = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}";

pub async fn search(ctx: &Ctx, args: SearchArgs) -> anyhow::Result<()> {
    let format = ListFormat::parse(args.format.as_deref(), SEARCH_TABLE)?;
    let filters = filters_json(&args.filter).map_err(|e| anyhow!(e))?;
    // Credentials for the registry the term names (Docker Hub for a bare term).
    let registry_key = match args.term.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            crate::reference::registry_auth_key(first)
        }
        _ => crate::reference::INDEX_SERVER.to_string(),
    };
    let mut req = Req::get("/images/search")
        .query("term", args.term.clone())
        .query_opt("limit", args.limit.map(|l| l.to_string()).as_deref())
        .query_opt("filters", filters.as_deref());
    if let Some(h) = auth::header_for(ctx, &registry_key)? {
        req = req.header("X-Registry-Auth", h);
    }
    let results: Vec<ImageSearchResponseItem> = ctx.client.json(req).await?;
    let rows: Vec<Val> = results
        .iter()
        .map(|r| {
            let desc = r.description.clone().unwrap_or_default().replace('\n', " ");
            let desc = if args.no_trunc { desc } else { units::ellipsis(&desc, 45) };
            Val::obj(vec![
                ("Name", Val::from(r.name.clone().unwrap_or_default())),
                ("Description", Val::from(desc)),
                ("StarCount", Val::from(r.star_count.unwrap_or(0).to_string())),
                (
                    "IsOfficial",
                    Val::from(if r.is_official.unwrap_or(false) { "[OK]" } else { "" }),
                ),
                (
                    "IsAutomated",
                    Val::from(if r.is_automated.unwrap_or(false) { "[OK]" } else { "" }),
                ),
            ])
        })
        .collect();
    let header = Val::obj(vec![
        ("Name", Val::from("NAME")),
        ("Description", Val::from("DESCRIPTION")),
        ("StarCount", Val::from("STARS")),
        ("IsOfficial", Val::from("OFFICIAL")),
        ("IsAutomated", Val::from("AUTOMATED")),
    ]);
    print!("{}", format.render(&header, &rows)?);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// mount / unmount (berth extensions)

#[derive(Args, Debug)]
pub struct MountArgs {
    /// Image
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(serde::Deserialize)]
struct MountResponse {
    #[serde(rename = "Path")]
    path: String,
}

pub async fn mount(ctx: &Ctx, args: MountArgs) -> anyhow::Result<()> {
    let resp: MountResponse = ctx
        .client
        .json(Req::post(format!("/images/{}/mount", args.image)))
        .await?;
    println!("{}", resp.path);
    Ok(())
}

pub async fn unmount(ctx: &Ctx, args: MountArgs) -> anyhow::Result<()> {
    ctx.client
        .call(Req::post(format!("/images/{}/unmount", args.image)))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(tags: &[&str], digests: &[&str]) -> ImageSummary {
        ImageSummary {
            id: "sha256:aae0211e373d70102c09f8d200ea224423aea20244805e0295204cd03808cfa6".into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            created: 0,
            size: 1_982_291,
            shared_size: -1,
            containers: -1,
            ..Default::default()
        }
    }

    fn cells(rows: &[Val]) -> Vec<(String, String, String)> {
        rows.iter()
            .map(|r| {
                let g = |k: &str| r.get(k).and_then(Val::as_str).unwrap_or("").to_string();
                (g("Repository"), g("Tag"), g("Digest"))
            })
            .collect()
    }

    #[test]
    fn rows_follow_docker() {
        let img = summary(
            &["127.0.0.1:5000/busybox:latest", "foo/bar:v1", "docker.io/library/busybox:1"],
            &["127.0.0.1:5000/busybox@sha256:39f9", "other/x@sha256:1234"],
        );
        assert_eq!(
            cells(&image_rows(&img, false, false)),
            vec![
                ("127.0.0.1:5000/busybox".into(), "latest".into(), "<none>".into()),
                ("foo/bar".into(), "v1".into(), "<none>".into()),
                ("busybox".into(), "1".into(), "<none>".into()),
                ("other/x".into(), "<none>".into(), "<none>".into()),
            ]
        );
        assert_eq!(
            cells(&image_rows(&img, true, false))[0],
            ("127.0.0.1:5000/busybox".into(), "latest".into(), "sha256:39f9".into())
        );
        let dangling = summary(&[], &[]);
        let rows = image_rows(&dangling, false, false);
        assert_eq!(cells(&rows), vec![("<none>".into(), "<none>".into(), "<none>".into())]);
        assert_eq!(rows[0].get("ID").and_then(Val::as_str), Some("aae0211e373d"));
        assert_eq!(rows[0].get("Size").and_then(Val::as_str), Some("1.98MB"));
        assert_eq!(rows[0].get("Containers").and_then(Val::as_str), Some("N/A"));
    }
}
