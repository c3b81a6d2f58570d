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
    Image,
    // Container, Volume, Network: added with their commands.
}

impl Kind {
    const ALL: &'static [Kind] = &[Kind::Image];

    fn path(self, name: &str) -> String {
        match self {
            Kind::Image => format!("/images/{name}/json"),
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
    /// Objects to inspect (name or id)
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// Fetches one object's raw JSON; `Ok(None)` when the daemon says it does not exist.
pub async fn fetch(ctx: &Ctx, kind: Kind, name: &str) -> Result<Option<Val>, ClientError> {
    let resp = match ctx.client.send(Req::get(kind.path(name))).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let body = read_body(resp).await?;
    Val::from_json_slice(&body)
        .map(Some)
        .map_err(|e| ClientError::Decode(e.to_string()))
}

/// Renders inspected objects per `--format`.
pub fn render(objects: Vec<Val>, format: Option<&str>) -> anyhow::Result<String> {
    match format.map(str::trim).unwrap_or("") {
        "" => Ok(format!("{}\n", Val::Arr(objects).to_json_pretty("    "))),
        "json" => Ok(format!("{}\n", Val::Arr(objects).to_json(true))),
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
/// then fails with every name that was not.
pub async fn inspect_as(ctx: &Ctx, kinds: &[Kind], names: &[String], format: Option<&str>, what: &str) -> anyhow::Result<()> {
    // Parse the template first so a bad one fails before any request.
    if let Some(f) = format.map(str::trim).filter(|f| !f.is_empty() && *f != "json") {
        Template::parse(f)?;
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    'names: for name in names {
        for &kind in kinds {
            if let Some(v) = fetch(ctx, kind, name).await? {
                found.push(v);
                continue 'names;
            }
        }
        missing.push(format!("Error: No such {what}: {name}"));
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
        Some(Kind::Image) => "image",
        None => "object",
    };
    inspect_as(ctx, &kinds, &args.names, args.format.as_deref(), what).await
}
