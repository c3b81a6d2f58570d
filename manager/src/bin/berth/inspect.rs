//! `inspect` for any object kind, and the output shared by every `X inspect`: a JSON
//! array indented with 4 spaces (docker's shape), `json` for one line, or a template
//! run over each object's raw API JSON.

use clap::Args;

use crate::client::{read_body, ClientError, Req};
use crate::format::{Template, Val};
use crate::{Ctx, StatusError};

/// Object kinds `inspect` knows, tried in this order when no `--type` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Container,
    Image,
    Network,
    Volume,
}

impl Kind {
    /// docker tries containers first, then images, networks, volumes.
    const ALL: &'static [Kind] = &[Kind::Container, Kind::Image, Kind::Network, Kind::Volume];

    fn req(self, name: &str, size: bool) -> Req {
        match self {
            Kind::Container => Req::get(format!("/containers/{name}/json")).flag("size", size),
            Kind::Image => Req::get(format!("/images/{name}/json")),
            Kind::Network => Req::get(format!("/networks/{name}")),
            Kind::Volume => Req::get(format!("/volumes/{name}")),
        }
    }
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template, or `json`
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Only look for this type of object
    #[arg(long = "type", value_enum)]
    pub kind: Option<Kind>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Objects to inspect (name or id)
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// Fetches one object's raw JSON; `Ok(Err(not found error))` when the daemon says it does
/// not exist.
pub async fn fetch(ctx: &Ctx, kind: Kind, name: &str, size: bool) -> Result<Result<Val, ClientError>, ClientError> {
    let resp = match ctx.client.send(kind.req(name, size)).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(Err(e)),
        Err(e) => return Err(e),
    };
    let body = read_body(resp).await?;
    let val = Val::from_json_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))?;
    // docker re-encodes volumes from its Go type: fields and maps come out sorted
    Ok(Ok(if kind == Kind::Volume { sorted_deep(val) } else { val }))
}

fn sorted_deep(v: Val) -> Val {
    match v {
        Val::Obj(fields) => {
            let mut fields: Vec<_> = fields.into_iter().map(|(k, v)| (k, sorted_deep(v))).collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Val::Obj(fields)
        }
        Val::Arr(items) => Val::Arr(items.into_iter().map(sorted_deep).collect()),
        other => other,
    }
}

/// Renders inspected objects per `--format` (docker prints them without escaping `<>&`).
pub fn render(objects: Vec<Val>, format: Option<&str>) -> anyhow::Result<String> {
    match format.map(str::trim).unwrap_or("") {
        "" => Ok(format!("{}\n", Val::Arr(objects).to_json_pretty_with("    ", false))),
        "json" => Ok(format!("{}\n", Val::Arr(objects).to_json(false))),
        tmpl => {
            let t = Template::parse(tmpl)?;
            let mut out = String::new();
            for obj in &objects {
                out.push_str(&t.execute(obj)?);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// Inspects `names` as `kinds` (first kind that has the name wins), prints what was found,
/// then fails with every name that was not (the daemon's own error when one kind was asked
/// for, `Error: No such object` otherwise, as docker).
pub async fn inspect_as(
    ctx: &Ctx,
    kinds: &[Kind],
    names: &[String],
    format: Option<&str>,
    what: &str,
    size: bool,
) -> anyhow::Result<()> {
    // Parse the template first so a bad one fails before any request.
    if let Some(f) = format.map(str::trim).filter(|f| !f.is_empty() && *f != "json") {
        Template::parse(f)?;
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    'names: for name in names {
        let mut last_error = None;
        for &kind in kinds {
            match fetch(ctx, kind, name, size).await? {
                Ok(v) => {
                    found.push(v);
                    continue 'names;
                }
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) if kinds.len() == 1 => missing.push(e.to_string()),
            _ => missing.push(format!("Error: No such {what}: {name}")),
        }
    }
    if !found.is_empty() || matches!(format.map(str::trim).unwrap_or(""), "" | "json") {
        print!("{}", render(found, format)?);
    }
    if !missing.is_empty() {
        return Err(StatusError {
            code: 1,
            message: missing.join("\n"),
        }
        .into());
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, args: InspectArgs) -> anyhow::Result<()> {
    let kinds: Vec<Kind> = match args.kind {
        Some(k) => vec![k],
        None => Kind::ALL.to_vec(),
    };
    let what = match args.kind {
        Some(Kind::Container) => "container",
        Some(Kind::Image) => "image",
        Some(Kind::Network) => "network",
        Some(Kind::Volume) => "volume",
        None => "object",
    };
    inspect_as(ctx, &kinds, &args.names, args.format.as_deref(), what, args.size).await
}
